//! Objects in the bucket besides blobs, each under a prefix of its own: derived files
//! (`variants/<source>/<generation>/<name>`, a cache that any instance can reuse) and the
//! pieces of uploads in progress (`uploads/<upload id>/<piece>`, which any instance can
//! continue). Their keys are made here from checked parts only, so that no caller can name a
//! blob's address or step outside its prefix.

use std::io::Write;
use std::path::Path as FsPath;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{unavailable, Bucket};
use crate::hash::ContentHash;
use crate::StoreError;

/// The prefix of derived files.
pub const VARIANTS: &str = "variants";
/// The prefix of the pieces of uploads in progress.
pub const UPLOADS: &str = "uploads";

/// The key of an object that is not a blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

/// Whether `segment` is one plain path segment: lowercase letters, digits, `-`, `_` and
/// `.`, not starting with a dot.
fn plain(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= 100
        && !segment.starts_with('.')
        && segment.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

impl ObjectKey {
    /// The derived file `name` of the blob `source`, made by `generation`.
    pub fn variant(source: &ContentHash, generation: &str, name: &str) -> Option<ObjectKey> {
        (plain(generation) && plain(name)).then(|| {
            ObjectKey(format!(
                "{VARIANTS}/{}/{generation}/{name}",
                source.to_hex()
            ))
        })
    }

    /// A piece `name` of the upload in progress `upload`.
    pub fn piece(upload: &str, name: &str) -> Option<ObjectKey> {
        (plain(upload) && plain(name)).then(|| ObjectKey(format!("{UPLOADS}/{upload}/{name}")))
    }

    /// The key as the bucket names it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn path(&self) -> Path {
        Path::from(self.0.as_str())
    }
}

/// An object listed under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Its key's segments after the prefix, joined by `/`.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// When it was written, in seconds since the epoch.
    pub modified: i64,
}

impl Bucket {
    /// Writes a small object whole.
    pub fn put_object(&self, key: &ObjectKey, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.observed("put", || {
            let (store, path) = (self.store.clone(), key.path());
            self.run(async move {
                store
                    .put(&path, PutPayload::from(bytes))
                    .await
                    .map(drop)
                    .map_err(|e| unavailable("write an object to the bucket", e))
            })?
        })
    }

    /// Sends a file to `key` (a multipart upload when it is large). When this returns, the
    /// whole object is in the bucket.
    pub fn put_object_file(
        &self,
        key: &ObjectKey,
        file: &FsPath,
        size: u64,
    ) -> Result<(), StoreError> {
        self.put_file(key.path(), file, size)
    }

    /// A small object whole; `None` when there is none under `key`.
    pub fn get_object(&self, key: &ObjectKey) -> Result<Option<Bytes>, StoreError> {
        self.observed("get", || {
            let (store, path) = (self.store.clone(), key.path());
            self.run(async move {
                let got = match store.get(&path).await {
                    Ok(got) => got,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(unavailable("read an object from the bucket", e)),
                };
                got.bytes()
                    .await
                    .map(Some)
                    .map_err(|e| unavailable("read an object from the bucket", e))
            })?
        })
    }

    /// One range of an object.
    pub fn read_object_range(
        &self,
        key: &ObjectKey,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, StoreError> {
        self.observed("get", || {
            let (store, path) = (self.store.clone(), key.path());
            self.run(async move {
                store
                    .get_range(&path, range)
                    .await
                    .map_err(|e| unavailable("read an object from the bucket", e))
            })?
        })
    }

    /// Streams the object under `key` into `out`, a few chunks in flight at a time; returns
    /// its size, or `None` when there is no such object.
    pub fn copy_object_to(
        &self,
        key: &ObjectKey,
        out: &mut dyn Write,
    ) -> Result<Option<u64>, StoreError> {
        self.observed("get", || {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Option<Bytes>, StoreError>>(4);
            let (store, path) = (self.store.clone(), key.path());
            self.handle().spawn(async move {
                let mut body = match store.get(&path).await {
                    Ok(got) => got.into_stream(),
                    Err(object_store::Error::NotFound { .. }) => {
                        let _ = tx.send(Ok(None)).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx
                            .send(Err(unavailable("read an object from the bucket", e)))
                            .await;
                        return;
                    }
                };
                while let Some(chunk) = body.next().await {
                    let item = chunk
                        .map(Some)
                        .map_err(|e| unavailable("read an object from the bucket", e));
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
            });
            let mut copied = 0u64;
            while let Some(item) = rx.blocking_recv() {
                match item? {
                    None => return Ok(None),
                    Some(chunk) => {
                        out.write_all(&chunk).map_err(|e| {
                            StoreError::io("write an object read from the bucket", e)
                        })?;
                        copied += chunk.len() as u64;
                    }
                }
            }
            Ok(Some(copied))
        })
    }

    /// Removes an object. Removing one that is not there is not an error.
    pub fn delete_object(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.observed("delete", || {
            let (store, path) = (self.store.clone(), key.path());
            self.run(async move {
                match store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(unavailable("remove an object from the bucket", e)),
                }
            })?
        })
    }

    /// Every object under [`VARIANTS`] or [`UPLOADS`] (`prefix`), named by the rest of its
    /// key.
    pub fn list_objects(&self, prefix: &'static str) -> Result<Vec<StoredObject>, StoreError> {
        debug_assert!(prefix == VARIANTS || prefix == UPLOADS);
        self.observed("list", || {
            let store = self.store.clone();
            self.run(async move {
                let root = Path::from(prefix);
                let mut out = Vec::new();
                let mut list = store.list(Some(&root));
                while let Some(item) = list.next().await {
                    let meta = item.map_err(|e| unavailable("list the bucket's objects", e))?;
                    let Some(rest) = meta.location.prefix_match(&root) else {
                        continue;
                    };
                    let name = rest.map(|p| p.as_ref().to_owned()).collect::<Vec<_>>();
                    out.push(StoredObject {
                        name: name.join("/"),
                        size: meta.size,
                        modified: meta.last_modified.timestamp(),
                    });
                }
                Ok(out)
            })?
        })
    }
}

//! Blobs in an S3 bucket (Garage, MinIO, AWS S3, …): the second place bytes can live, for
//! instances that keep no state on their own disk.
//!
//! An upload is staged and hashed on the local scratch disk exactly as for local blobs, and
//! only then sent to the bucket, straight to its content address `blobs/<sha256>`: one PUT, or
//! a multipart upload for large blobs. The address is known before the first byte leaves,
//! so there is never a temporary object to copy or to forget, and the crash argument is the
//! bucket's own: a PUT or a `CompleteMultipartUpload` makes the whole object appear at once
//! or not at all. A crash before it leaves nothing under the address (at most the parts of an
//! unfinished multipart upload, which the bucket's lifecycle rule or `gc` clears); a crash
//! after it and before the records' commit leaves a complete orphan that `gc` removes. The
//! local staging is also where the ingest sniffs the type and strips metadata, which need the
//! bytes at hand anyway; and a blob that is already in the bucket is never sent twice.
//!
//! Every request carries an `x-amz-checksum-sha256`, so the bucket refuses bytes damaged on
//! the way.
//!
//! The client is the Apache Arrow project's `object_store`. Its calls are async; this store's
//! callers are threads of the blocking pool (the write path, `verify`, backups), so a
//! [`Bucket`] owns a small runtime of its own and the blocking methods wait for their future
//! on it, from any thread, without the "runtime inside a runtime" panic of `block_on`.

use std::future::Future;
use std::io::Read;
use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum};
use object_store::path::Path;
use object_store::{
    ClientOptions, GetOptions, GetRange, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};

use crate::hash::ContentHash;
use crate::StoreError;

mod config;
pub use config::BucketConfig;
/// Objects besides blobs: derived files and the pieces of uploads in progress.
mod objects;
pub use objects::{ObjectKey, StoredObject, UPLOADS, VARIANTS};

/// Blobs at or below this size go in one PUT (read into memory whole); larger ones as a
/// multipart upload.
const SINGLE_PUT_MAX: u64 = 8 << 20;
/// A multipart upload's part size (S3 wants at least 5 MiB but for the last).
const PART_SIZE: usize = 8 << 20;
/// Parts in flight at once for one upload: with the part being read, at most 24 MiB of
/// memory for each upload on its way to the bucket.
const PARTS_IN_FLIGHT: usize = 2;
/// How much one blocking read fetches at a time.
const READ_WINDOW: u64 = 8 << 20;
/// The key prefix of content-addressed blobs.
const BLOBS: &str = "blobs";

/// Told of every request to the bucket: its operation, how long it took, and whether it
/// succeeded (for `/metrics`).
pub type Observer = Arc<dyn Fn(&'static str, Duration, bool) + Send + Sync>;

/// An S3 bucket holding blobs under `blobs/<sha256>`.
pub struct Bucket {
    observer: std::sync::OnceLock<Observer>,
    store: Arc<AmazonS3>,
    /// Taken in `drop` to shut it down without waiting.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    config: BucketConfig,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("bucket", &self.config.bucket)
            .field("endpoint", &self.config.endpoint)
            .finish()
    }
}

/// A blob listed in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its content address.
    pub hash: ContentHash,
    /// Bytes.
    pub size: u64,
    /// When it was last written, in seconds since the epoch: `gc` spares blobs younger than
    /// its grace period, which an upload on another instance may be about to commit.
    pub modified: i64,
}

impl Bucket {
    /// A client for the bucket. Makes no request: [`check`](Self::check) does.
    pub fn connect(config: BucketConfig) -> Result<Bucket, StoreError> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_checksum_algorithm(Checksum::SHA256)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(300)),
            );
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let store = builder
            .build()
            .map_err(|e| unavailable("set up the blob store's client", e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("shoebox-bucket")
            .enable_all()
            .build()
            .map_err(|e| StoreError::io("start the blob store's client", e))?;
        Ok(Bucket {
            observer: std::sync::OnceLock::new(),
            store: Arc::new(store),
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            config,
        })
    }

    /// Sets what is told of every request (once; later calls are ignored).
    pub fn observe(&self, observer: Observer) {
        let _ = self.observer.set(observer);
    }

    /// Runs one operation, telling the observer how long it took and how it ended.
    fn observed<T>(
        &self,
        op: &'static str,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let began = std::time::Instant::now();
        let out = f();
        if let Some(o) = self.observer.get() {
            o(op, began.elapsed(), out.is_ok());
        }
        out
    }

    /// Where the blobs are, for logs and `/api/status` (never the credentials).
    pub fn describe(&self) -> String {
        self.config.describe()
    }

    /// Runs a future on the bucket's runtime and waits for it, from any thread.
    fn run<T: Send + 'static>(
        &self,
        f: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle().spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv().map_err(|_| StoreError::Unavailable {
            what: "the blob store",
            reason: "its client stopped".into(),
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// One request that proves the bucket answers and the key may read it.
    pub fn check(&self) -> Result<(), StoreError> {
        let store = self.store.clone();
        self.run(async move {
            let mut list = store.list(Some(&Path::from(BLOBS)));
            match list.next().await {
                Some(Err(e)) => Err(unavailable("list the blob store's bucket", e)),
                _ => Ok(()),
            }
        })?
    }

    /// The deep health check: a probe object written, read back and removed. Its key is
    /// random, so instances sharing the bucket never probe the same object.
    pub fn probe(&self) -> Result<(), StoreError> {
        self.observed("probe", || {
            let value: [u8; 32] = rand::random();
            let key = Path::from(format!("health/{}", hex::encode(&value[..8])));
            let store = self.store.clone();
            self.run(async move {
                store
                    .put(&key, PutPayload::from(value.to_vec()))
                    .await
                    .map_err(|e| unavailable("write the health probe to the bucket", e))?;
                let read = store
                    .get(&key)
                    .await
                    .map_err(|e| unavailable("read the health probe from the bucket", e))?
                    .bytes()
                    .await
                    .map_err(|e| unavailable("read the health probe from the bucket", e))?;
                store
                    .delete(&key)
                    .await
                    .map_err(|e| unavailable("remove the health probe from the bucket", e))?;
                if read[..] != value[..] {
                    return Err(StoreError::Corrupt(
                        "the bucket's health probe read back different bytes".into(),
                    ));
                }
                Ok(())
            })?
        })
    }

    fn key(hash: &ContentHash) -> Path {
        Path::from(format!("{BLOBS}/{}", hash.to_hex()))
    }

    /// The blob's size, or `None` when the bucket has no object under its address.
    pub fn head(&self, hash: &ContentHash) -> Result<Option<u64>, StoreError> {
        self.observed("head", || {
            let (store, key) = (self.store.clone(), Self::key(hash));
            self.run(async move {
                match store.head(&key).await {
                    Ok(meta) => Ok(Some(meta.size)),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(unavailable("look up a blob in the bucket", e)),
                }
            })?
        })
    }

    /// Sends a staged file to its content address. When this returns, the whole object is
    /// in the bucket (the PUT or the multipart completion succeeded).
    pub fn upload(&self, hash: &ContentHash, file: &FsPath, size: u64) -> Result<(), StoreError> {
        self.put_file(Self::key(hash), file, size)
    }

    /// Sends a file to `key`: one PUT, or a multipart upload for a large one. When this
    /// returns, the whole object is in the bucket.
    fn put_file(&self, key: Path, file: &FsPath, size: u64) -> Result<(), StoreError> {
        self.observed("put", || {
            if size <= SINGLE_PUT_MAX {
                let bytes =
                    std::fs::read(file).map_err(|e| StoreError::io("read a staged upload", e))?;
                let store = self.store.clone();
                return self.run(async move {
                    store
                        .put(&key, PutPayload::from(bytes))
                        .await
                        .map(drop)
                        .map_err(|e| unavailable("write a blob to the bucket", e))
                })?;
            }
            let mut file =
                std::fs::File::open(file).map_err(|e| StoreError::io("read a staged upload", e))?;
            let store = self.store.clone();
            let mut upload = self
                .run(async move { store.put_multipart(&key).await })?
                .map_err(|e| unavailable("start a multipart upload in the bucket", e))?;
            let sent = self.send_parts(&mut upload, &mut file);
            let finish = match sent {
                Ok(()) => self.run(async move {
                    match upload.complete().await {
                        Ok(_) => Ok(()),
                        Err(e) => {
                            let _ = upload.abort().await;
                            Err(unavailable("complete a multipart upload in the bucket", e))
                        }
                    }
                }),
                Err(e) => self.run(async move {
                    let _ = upload.abort().await;
                    Err(e)
                }),
            };
            finish?
        })
    }

    /// Reads the file part by part and sends up to [`PARTS_IN_FLIGHT`] at once.
    fn send_parts(
        &self,
        upload: &mut Box<dyn MultipartUpload>,
        file: &mut std::fs::File,
    ) -> Result<(), StoreError> {
        let mut in_flight = Vec::new();
        loop {
            let mut part = vec![0u8; PART_SIZE];
            let n = read_full(file, &mut part)?;
            if n == 0 {
                break;
            }
            part.truncate(n);
            in_flight.push(self.handle().spawn(upload.put_part(PutPayload::from(part))));
            if in_flight.len() == PARTS_IN_FLIGHT {
                let first = in_flight.remove(0);
                self.run(first)?
                    .map_err(|e| StoreError::Unavailable {
                        what: "the blob store",
                        reason: e.to_string(),
                    })?
                    .map_err(|e| unavailable("send a part to the bucket", e))?;
            }
            if n < PART_SIZE {
                break;
            }
        }
        for part in in_flight {
            self.run(part)?
                .map_err(|e| StoreError::Unavailable {
                    what: "the blob store",
                    reason: e.to_string(),
                })?
                .map_err(|e| unavailable("send a part to the bucket", e))?;
        }
        Ok(())
    }

    /// A presigned GET of a blob for `expires`, answered with `content_type` and
    /// `disposition` (S3's `response-content-*` overrides, which the signature covers): what
    /// `SHOEBOX_BLOB_REDIRECT` sends public reads to. Awaited from any runtime.
    pub async fn presigned_get(
        &self,
        hash: &ContentHash,
        expires: Duration,
        content_type: &str,
        disposition: &str,
    ) -> Result<String, StoreError> {
        use object_store::signer::{SignedUrlOptions, Signer};
        let (store, key) = (self.store.clone(), Self::key(hash));
        let mut options = SignedUrlOptions::new();
        options.extra_query = vec![
            ("response-content-type".into(), content_type.into()),
            ("response-content-disposition".into(), disposition.into()),
        ];
        let signed = self.handle().spawn(async move {
            store
                .signed_url_opts(http::Method::GET, &key, expires, &options)
                .await
        });
        match signed.await {
            Ok(Ok(url)) => Ok(url.to_string()),
            Ok(Err(e)) => Err(unavailable("presign a read of a blob", e)),
            Err(e) => Err(StoreError::Unavailable {
                what: "the blob store",
                reason: e.to_string(),
            }),
        }
    }

    /// Removes a blob. Removing one that is not there is not an error.
    pub fn remove(&self, hash: &ContentHash) -> Result<(), StoreError> {
        self.observed("delete", || {
            let (store, key) = (self.store.clone(), Self::key(hash));
            self.run(async move {
                match store.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(unavailable("remove a blob from the bucket", e)),
                }
            })?
        })
    }

    /// Every blob in the bucket. Objects under `blobs/` whose names are not content
    /// addresses are left out.
    pub fn list(&self) -> Result<Vec<Listed>, StoreError> {
        self.observed("list", || {
            let store = self.store.clone();
            self.run(async move {
                let mut out = Vec::new();
                let mut list = store.list(Some(&Path::from(BLOBS)));
                while let Some(item) = list.next().await {
                    let meta = item.map_err(|e| unavailable("list the bucket's blobs", e))?;
                    let Some(hash) = meta
                        .location
                        .filename()
                        .and_then(|name| name.parse::<ContentHash>().ok())
                    else {
                        continue;
                    };
                    out.push(Listed {
                        hash,
                        size: meta.size,
                        modified: meta.last_modified.timestamp(),
                    });
                }
                Ok(out)
            })?
        })
    }

    /// A blocking reader of the whole blob, fetching it a window at a time: for `verify`,
    /// backups and the tools that need the bytes on a thread of their own.
    pub fn reader(self: &Arc<Self>, hash: &ContentHash, size: u64) -> BucketReader {
        BucketReader {
            bucket: self.clone(),
            hash: *hash,
            size,
            offset: 0,
            window: Bytes::new(),
        }
    }

    /// Fetches one range of a blob.
    pub fn read_range(&self, hash: &ContentHash, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.observed("get", || {
            let (store, key) = (self.store.clone(), Self::key(hash));
            self.run(async move {
                store.get_range(&key, range).await.map_err(|e| match e {
                    // Not there is an answer, not an outage: the caller decides what it means.
                    object_store::Error::NotFound { .. } => StoreError::io(
                        "read a blob from the bucket",
                        std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string()),
                    ),
                    e => unavailable("read a blob from the bucket", e),
                })
            })?
        })
    }

    /// A range of a blob as a stream, for serving: the request runs on the bucket's runtime
    /// and its chunks come through a channel of a few chunks, so a slow client slows the
    /// bucket's reads rather than filling memory.
    pub fn stream_range(
        &self,
        hash: &ContentHash,
        range: Range<u64>,
    ) -> tokio::sync::mpsc::Receiver<Result<Bytes, StoreError>> {
        self.stream(Self::key(hash), Some(range))
    }

    /// An object (or a range of it) as a stream of chunks through a channel of a few.
    fn stream(
        &self,
        key: Path,
        range: Option<Range<u64>>,
    ) -> tokio::sync::mpsc::Receiver<Result<Bytes, StoreError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let store = self.store.clone();
        let observer = self.observer.get().cloned();
        self.handle().spawn(async move {
            let began = std::time::Instant::now();
            let tell = |ok: bool| {
                if let Some(o) = &observer {
                    o("get", began.elapsed(), ok);
                }
            };
            let options = GetOptions {
                range: range.map(GetRange::Bounded),
                ..GetOptions::default()
            };
            let mut body = match store.get_opts(&key, options).await {
                Ok(got) => got.into_stream(),
                Err(e) => {
                    tell(false);
                    let _ = tx
                        .send(Err(unavailable("read a blob from the bucket", e)))
                        .await;
                    return;
                }
            };
            while let Some(chunk) = body.next().await {
                let failed = chunk.is_err();
                let item = chunk.map_err(|e| unavailable("read a blob from the bucket", e));
                if tx.send(item).await.is_err() || failed {
                    tell(!failed);
                    return;
                }
            }
            tell(true);
        });
        rx
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        // Without waiting: a store may be dropped on an async thread, where a runtime's
        // blocking shutdown panics.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Reads a whole blob from the bucket, a window at a time.
pub struct BucketReader {
    bucket: Arc<Bucket>,
    hash: ContentHash,
    size: u64,
    offset: u64,
    window: Bytes,
}

impl Read for BucketReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.window.is_empty() {
            if self.offset >= self.size {
                return Ok(0);
            }
            let end = self.size.min(self.offset + READ_WINDOW);
            self.window = self
                .bucket
                .read_range(&self.hash, self.offset..end)
                .map_err(|e| match e {
                    StoreError::Io { source, .. }
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        source
                    }
                    e => std::io::Error::other(e),
                })?;
            if self.window.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the bucket's blob is shorter than its record says",
                ));
            }
            self.offset += self.window.len() as u64;
        }
        let n = buf.len().min(self.window.len());
        buf[..n].copy_from_slice(&self.window.split_to(n));
        Ok(n)
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> Result<usize, StoreError> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StoreError::io("read a staged upload", e)),
        }
    }
    Ok(n)
}

/// A failed request to the bucket: the bucket is down, unreachable or refused the key. The
/// HTTP layer answers 503, so clients retry rather than give up.
fn unavailable(action: &'static str, e: object_store::Error) -> StoreError {
    StoreError::Unavailable {
        what: "the blob store",
        reason: format!("could not {action}: {e}"),
    }
}

#[cfg(test)]
mod tests;

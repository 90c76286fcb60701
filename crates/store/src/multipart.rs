//! S3 multipart uploads in progress: `uploads/multipart/<id>/` holds `upload.json` (where the
//! object goes and what it carries) and, for each part, its bytes and a small file of facts
//! about them (`<number>.json`: the size, the MD5 and the name of the bytes' file). Nothing is
//! in the database, so a rebuild cannot lose an upload in progress.
//!
//! # Durability
//!
//! A part is streamed into `tmp/` like any upload (hashed and counted as it arrives); it is
//! acknowledged only once its bytes are fsynced and renamed into the upload's directory and
//! its facts are written durably (temp file, fsync, rename, fsync the directory). Each part's
//! bytes get a new file name, named by the facts, so a part sent again replaces the old one
//! in one rename of its facts: a crash leaves either part whole, never a mix, and the file no
//! facts name is removed with the upload.
//!
//! Completing an upload reads the parts back once, in order, into a staged blob (the sha256
//! and MD5 of the whole come from that pass), which then goes through the ordinary write path;
//! the upload's directory goes only after the object is durable.
//!
//! With the records in PostgreSQL and the blobs in a bucket, uploads and parts are kept there
//! instead, so that any instance can continue an upload (see [`shared`]).

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::durable;
use crate::layout::FILE_MODE;
use crate::record::Visibility;
use crate::{StagedBlob, StoreError};

/// Uploads any instance may continue: in PostgreSQL and the bucket.
mod shared;
pub(crate) use shared::SharedParts;

/// The upload file's format version.
const UPLOAD_VERSION: u32 = 1;
/// The highest part number S3 allows.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// A multipart upload: where its object goes, and what the object will carry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MultipartUpload {
    /// The file's format.
    pub version: u32,
    /// 32 hex digits, as S3 clients send it back.
    pub id: String,
    /// The bucket's collection (`None`: the bucket `default`).
    pub collection: Option<String>,
    /// The object's key.
    pub key: String,
    /// Who started it: only they may add parts, complete it or abort it.
    pub owner: Option<String>,
    /// The `Content-Type` the client declared.
    pub declared_type: Option<String>,
    /// `x-amz-meta-*`, as the record's custom fields.
    #[serde(default)]
    pub custom: Map<String, Value>,
    /// Set when the request chose (a canned ACL); else the bucket's default applies.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// When it was started.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One part, as its facts file holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Part {
    /// 1 to [`MAX_PART_NUMBER`].
    pub number: u32,
    /// Bytes.
    pub size: u64,
    /// Hex MD5 of the part's bytes: its ETag.
    pub md5: String,
    /// The file of the bytes, in the upload's directory.
    pub file: String,
    /// When it was received.
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified: OffsetDateTime,
}

/// The multipart uploads in `uploads/multipart/` (or, shared, in PostgreSQL and the bucket).
pub struct Multipart {
    dir: PathBuf,
    shared: Option<SharedParts>,
}

/// Upload ids are ours: 32 hex digits.
pub fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> StoreError {
    move |e| StoreError::io(what, e)
}

impl Multipart {
    /// The uploads under `dir`, which is made with the first one.
    pub(crate) fn open(dir: PathBuf) -> Result<Multipart, StoreError> {
        Ok(Multipart { dir, shared: None })
    }

    /// Keeps uploads in PostgreSQL and the bucket from now on.
    pub(crate) fn share(&mut self, shared: SharedParts) {
        self.shared = Some(shared);
    }

    /// How many uploads `uploads/multipart/` holds. With uploads shared, these are left from
    /// before (a store moved to PostgreSQL and a bucket): no instance continues them.
    pub(crate) fn count_here(&self) -> Result<usize, StoreError> {
        Ok(self.entries()?.len())
    }

    /// Every part's name under the bucket's `uploads/`, when uploads are shared.
    pub(crate) fn piece_names(&self) -> Result<Vec<String>, StoreError> {
        match &self.shared {
            Some(shared) => shared.piece_names(),
            None => Ok(Vec::new()),
        }
    }

    /// The uploads' directory entries; none when no upload was ever made.
    fn entries(&self) -> Result<Vec<fs::DirEntry>, StoreError> {
        match fs::read_dir(&self.dir) {
            Ok(d) => d
                .collect::<Result<Vec<_>, _>>()
                .map_err(io("list multipart uploads")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(StoreError::io("list multipart uploads", e)),
        }
    }

    fn upload_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn facts(&self, id: &str, number: u32) -> PathBuf {
        self.upload_dir(id).join(format!("{number:05}.json"))
    }

    /// Starts an upload: its directory and its file, durably.
    pub fn create(
        &self,
        collection: Option<String>,
        key: String,
        owner: Option<String>,
        declared_type: Option<String>,
        custom: Map<String, Value>,
        visibility: Option<Visibility>,
    ) -> Result<MultipartUpload, StoreError> {
        let upload = MultipartUpload {
            version: UPLOAD_VERSION,
            id: hex::encode(rand::random::<[u8; 16]>()),
            collection,
            key,
            owner,
            declared_type,
            custom,
            visibility,
            created_at: crate::record::now(),
        };
        if let Some(shared) = &self.shared {
            shared.create(&upload)?;
            return Ok(upload);
        }
        let dir = self.upload_dir(&upload.id);
        fs::create_dir_all(&self.dir).map_err(io("create uploads/multipart/"))?;
        fs::create_dir(&dir).map_err(io("create a multipart upload"))?;
        let bytes = serde_json::to_vec(&upload)
            .map_err(|e| StoreError::Corrupt(format!("a multipart upload does not encode: {e}")))?;
        durable::write_atomically(&dir, &dir.join("upload.json"), &bytes, FILE_MODE)
            .map_err(io("write a multipart upload"))?;
        durable::fsync_dir(&self.dir).map_err(io("make a multipart upload durable"))?;
        Ok(upload)
    }

    /// The upload with this id, if it is in progress.
    pub fn get(&self, id: &str) -> Result<Option<MultipartUpload>, StoreError> {
        if !valid_id(id) {
            return Ok(None);
        }
        if let Some(shared) = &self.shared {
            return shared.get(id);
        }
        match fs::read(self.upload_dir(id).join("upload.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                StoreError::Corrupt(format!("multipart upload {id} does not parse: {e}"))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read a multipart upload", e)),
        }
    }

    /// Every upload in progress, oldest first; one that cannot be read is skipped.
    pub fn list(&self) -> Result<Vec<MultipartUpload>, StoreError> {
        let mut out = match &self.shared {
            Some(shared) => shared.list()?,
            None => self.list_here()?,
        };
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    fn list_here(&self) -> Result<Vec<MultipartUpload>, StoreError> {
        let mut out = Vec::new();
        for entry in self.entries()? {
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            match self.get(&id) {
                Ok(Some(u)) => out.push(u),
                Ok(None) => {}
                Err(e) => tracing::warn!(upload = %id, error = %e, "skipped a multipart upload"),
            }
        }
        Ok(out)
    }

    /// Keeps a staged part as part `number` of an upload, durably; a part of that number
    /// sent before is replaced. `md5` is the hex MD5 of its bytes.
    pub fn add_part(
        &self,
        upload: &MultipartUpload,
        number: u32,
        blob: StagedBlob,
        md5: String,
    ) -> Result<Part, StoreError> {
        if let Some(shared) = &self.shared {
            return shared.add_part(upload, number, blob, md5);
        }
        let dir = self.upload_dir(&upload.id);
        if !dir.join("upload.json").exists() {
            return Err(StoreError::NotFound);
        }
        let file = format!("{number:05}-{}", hex::encode(rand::random::<[u8; 6]>()));
        let size = blob.size;
        let temp = blob.into_temp();
        temp.as_file()
            .sync_all()
            .map_err(io("make a part's bytes durable"))?;
        temp.persist(dir.join(&file))
            .map_err(|e| StoreError::io("keep a part", e.error))?;
        let old = self.part(&upload.id, number)?;
        let part = Part {
            number,
            size,
            md5,
            file,
            last_modified: crate::record::now(),
        };
        let bytes = serde_json::to_vec(&part)
            .map_err(|e| StoreError::Corrupt(format!("a part does not encode: {e}")))?;
        // Renamed into place after its bytes, with the directory fsynced: the part is durable.
        durable::write_atomically(&dir, &self.facts(&upload.id, number), &bytes, FILE_MODE)
            .map_err(io("write a part's facts"))?;
        if let Some(old) = old.filter(|o| o.file != part.file) {
            let _ = fs::remove_file(dir.join(old.file));
        }
        Ok(part)
    }

    fn part(&self, id: &str, number: u32) -> Result<Option<Part>, StoreError> {
        match fs::read(self.facts(id, number)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("a part's facts do not parse: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read a part's facts", e)),
        }
    }

    /// An upload's parts, by number.
    pub fn parts(&self, id: &str) -> Result<Vec<Part>, StoreError> {
        if let Some(shared) = &self.shared {
            return shared.parts(id);
        }
        let mut out = Vec::new();
        let dir = self.upload_dir(id);
        for entry in fs::read_dir(&dir).map_err(io("list an upload's parts"))? {
            let entry = entry.map_err(io("list an upload's parts"))?;
            let name = entry.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(p) = self.part(id, number)? {
                out.push(p);
            }
        }
        out.sort_by_key(|p| p.number);
        Ok(out)
    }

    /// The file holding a part's bytes.
    fn part_path(&self, id: &str, part: &Part) -> PathBuf {
        self.upload_dir(id).join(&part.file)
    }

    /// A part's bytes, open for reading from the start; with shared uploads, fetched from
    /// the bucket when another instance received the part. A blocking call.
    pub fn part_file(&self, id: &str, part: &Part) -> Result<fs::File, StoreError> {
        if let Some(shared) = &self.shared {
            return shared.part_file(id, part);
        }
        fs::File::open(self.part_path(id, part)).map_err(|e| StoreError::io("open a part", e))
    }

    /// Ends an upload and removes its parts; false when there was none.
    pub fn remove(&self, id: &str) -> Result<bool, StoreError> {
        if !valid_id(id) {
            return Ok(false);
        }
        if let Some(shared) = &self.shared {
            return shared.remove(id);
        }
        match fs::remove_dir_all(self.upload_dir(id)) {
            Ok(()) => {
                durable::fsync_dir(&self.dir).map_err(io("remove a multipart upload"))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io("remove a multipart upload", e)),
        }
    }

    /// Removes uploads that saw nothing new for `expiry` (and directories without an upload
    /// file, which a crash while one was being made left); returns how many went. With
    /// uploads shared, `uploads/multipart/` holds only uploads left from before, which expire
    /// as they would have.
    pub fn sweep(&self, expiry: Duration) -> Result<usize, StoreError> {
        let shared = match self.shared {
            Some(_) => self.sweep_shared(expiry)?,
            None => 0,
        };
        let mut removed = 0;
        let now = std::time::SystemTime::now();
        for entry in self.entries()? {
            let path = entry.path();
            let name = entry.file_name();
            let id = name.to_string_lossy();
            // The newest of the upload's files says when it last saw a part.
            let latest = fs::read_dir(&path)
                .map(|d| {
                    d.filter_map(Result::ok)
                        .filter_map(|e| e.metadata().and_then(|m| m.modified()).ok())
                        .max()
                })
                .ok()
                .flatten();
            let idle = latest
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or(Duration::MAX);
            let made = path.join("upload.json").exists();
            if !valid_id(&id) || !made || idle > expiry {
                let gone = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                if gone.is_ok() {
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            durable::fsync_dir(&self.dir).map_err(io("sweep multipart uploads"))?;
        }
        Ok(shared + removed)
    }
}

impl Multipart {
    /// [`sweep`](Self::sweep) of shared uploads: those whose newest part (or start) is older
    /// than `expiry`.
    fn sweep_shared(&self, expiry: Duration) -> Result<usize, StoreError> {
        let now = crate::record::now();
        let mut removed = 0;
        for upload in self.list()? {
            let latest = self
                .parts(&upload.id)?
                .iter()
                .map(|p| p.last_modified)
                .chain([upload.created_at])
                .max()
                .unwrap_or(upload.created_at);
            if now - latest > expiry && self.remove(&upload.id)? {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::staged;

    fn store() -> (tempfile::TempDir, crate::Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn parts_are_kept_replaced_listed_and_removed_with_their_upload() {
        let (_dir, store) = store();
        let m = store.multipart();
        let up = m
            .create(
                None,
                "a/b.bin".into(),
                Some("t1".into()),
                None,
                Map::new(),
                None,
            )
            .unwrap();
        assert_eq!(m.get(&up.id).unwrap().as_ref(), Some(&up));
        assert!(m.get("../../etc").unwrap().is_none());
        let p2 = m
            .add_part(&up, 2, staged(&store, b"second"), "m2".into())
            .unwrap();
        m.add_part(&up, 1, staged(&store, b"first, once"), "m1".into())
            .unwrap();
        let p1 = m
            .add_part(&up, 1, staged(&store, b"first"), "m1b".into())
            .unwrap();
        let parts = m.parts(&up.id).unwrap();
        assert_eq!(parts, vec![p1.clone(), p2.clone()]);
        assert_eq!(fs::read(m.part_path(&up.id, &p1)).unwrap(), b"first");
        // The replaced part's bytes went; only the upload file, two parts and their facts stay.
        assert_eq!(fs::read_dir(m.upload_dir(&up.id)).unwrap().count(), 5);
        assert_eq!(m.list().unwrap(), vec![up.clone()]);
        assert!(store.layout().tmp().read_dir().unwrap().next().is_none());
        assert!(m.remove(&up.id).unwrap());
        assert!(!m.remove(&up.id).unwrap());
        assert!(m.get(&up.id).unwrap().is_none());
        assert!(matches!(
            m.add_part(&up, 3, staged(&store, b"late"), "m3".into()),
            Err(StoreError::NotFound)
        ));
    }

    #[test]
    fn the_sweep_removes_idle_uploads_and_leftovers_and_keeps_the_rest() {
        let (_dir, store) = store();
        let m = store.multipart();
        let up = m
            .create(Some("c".into()), "k".into(), None, None, Map::new(), None)
            .unwrap();
        fs::create_dir(m.dir.join("0123456789abcdef0123456789abcdef")).unwrap();
        fs::write(m.dir.join("stray"), b"x").unwrap();
        assert_eq!(m.sweep(Duration::from_secs(3600)).unwrap(), 2);
        assert!(m.get(&up.id).unwrap().is_some());
        assert_eq!(m.sweep(Duration::ZERO).unwrap(), 1);
        assert!(m.list().unwrap().is_empty());
    }
}

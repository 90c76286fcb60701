//! Resumable uploads in progress (tus): `uploads/<id>.part` holds the bytes received so far,
//! and `uploads/<id>.json`, a small sidecar, says how many of them are acknowledged, how long
//! the upload will be, who started it and the metadata it came with. Neither is in the
//! database, so a rebuild of the database cannot lose an upload in progress.
//!
//! # The durable offset
//!
//! Bytes are appended to the `.part` file as they arrive; a chunk is acknowledged by
//! [`Appender::commit`](crate::partial::Appender::commit), which fsyncs the file and only then
//! writes the sidecar with the new offset (temp file, fsync, rename, fsync the directory). The
//! sidecar's offset is the truth: bytes past it may be what a crash left half-written, and
//! every open truncates them (a torn tail is never kept). A file shorter than its offset (a
//! disk that lied about an fsync) is damage, reported when the upload is next written to.
//!
//! # Completion
//!
//! The chunk that makes an upload whole also reserves, in the same sidecar write, the id its
//! media record will get. The finished `.part` file becomes the staged blob of an ordinary
//! upload by a hard link into `tmp/`
//! ([`Partials::stage`](crate::partial::Partials::stage)): no second copy of the bytes, and
//! the partial upload stays whole until the media record is durable and
//! [`Partials::completed`](crate::partial::Partials::completed) notes its id. A crash between
//! the two leaves a whole upload with no media id: it is completed again when next asked
//! about, and finds its record under the reserved id rather than making a second.
//!
//! The sha256 of the bytes is computed as they arrive, and kept in memory between chunks; after
//! a restart, the prefix already on disk is read once to rebuild it (sha2's state cannot be
//! saved).
//!
//! # Shared by instances
//!
//! With the records in PostgreSQL and the blobs in a bucket, the sidecar is a row in
//! PostgreSQL and the bytes are pieces in the bucket instead, so that any instance continues
//! any upload (see [`shared`]).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::blobs::HEAD_BYTES;
use crate::durable;
use crate::layout::FILE_MODE;
use crate::{ContentHash, StagedBlob, StoreError};

/// Appending a chunk, and checking it.
mod append;
pub use append::{AppendError, Appender, ChunkCheck};
/// The files of uploads on this disk.
mod files;
use files::{create_part, remove_file};
/// Uploads that any instance may continue: state in PostgreSQL, bytes in the bucket.
mod shared;
pub use shared::Piece;
pub(crate) use shared::Shared;

/// The directory in `uploads/` that S3 multipart uploads live in.
pub const MULTIPART: &str = "multipart";
/// The directory in `uploads/` that keeps this instance's copies of shared uploads' pieces.
pub const PIECES: &str = "pieces";

/// The sidecar's format version.
const SIDECAR_VERSION: u32 = 1;
/// How often a long chunk re-reads the free space.
const SPACE_CHECK_EVERY: u64 = 8 << 20;
/// How much of a long chunk is written before the disk is asked to start writing it back.
const WRITEBACK_STEP: u64 = 4 << 20;

/// One upload in progress (or finished lately), as its sidecar holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartialUpload {
    /// The sidecar's format.
    pub version: u32,
    /// 32 lowercase hex digits, random: the upload's URL is its only capability besides the
    /// owner's credentials, so it must not be guessable.
    pub id: String,
    /// Who started it (the caller's role), the only one who may continue it.
    pub owner: String,
    /// The whole upload's length, once known.
    pub length: Option<u64>,
    /// Bytes received and acknowledged.
    pub offset: u64,
    /// The metadata as the client sent it (tus `Upload-Metadata`), read again at completion.
    pub metadata: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When bytes last arrived (or it was created): it expires a while after this.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The id its media record gets, chosen before the record is made: after a crash in
    /// between, the record is looked up by it rather than made twice.
    #[serde(default)]
    pub reserved_id: Option<String>,
    /// The media record it became.
    #[serde(default)]
    pub media_id: Option<String>,
    /// Where its bytes are, when uploads are shared by instances (see [`shared`]): the
    /// pieces in the bucket, in order. Empty for an upload in `uploads/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pieces: Vec<Piece>,
    /// The version of the shared state it was read at (0 for an upload in `uploads/`).
    #[serde(skip)]
    pub revision: i64,
}

impl PartialUpload {
    /// Whether every byte has arrived.
    pub fn is_whole(&self) -> bool {
        self.length == Some(self.offset)
    }
}

/// What [`Partials::usage`] counts: unfinished uploads and the bytes they hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartialUsage {
    /// Uploads not yet complete.
    pub count: u64,
    /// Their acknowledged bytes.
    pub bytes: u64,
}

/// What is kept in memory of an unfinished upload.
#[derive(Debug)]
struct Open {
    owner: String,
    offset: u64,
}

/// The `uploads/` directory.
#[derive(Debug)]
pub struct Partials {
    dir: PathBuf,
    tmp: PathBuf,
    /// The data directory and the free bytes to keep there.
    guard: (PathBuf, u64),
    /// Unfinished uploads, with their owners and acknowledged offsets, kept as they start,
    /// grow and end: the cap on them and the totals cost no listing of `uploads/`.
    open: Mutex<HashMap<String, Open>>,
    /// The sha256 of each upload's acknowledged bytes, with the offset it has reached.
    hashers: Mutex<HashMap<String, (u64, Sha256)>>,
    /// Set when uploads are shared by instances: then their state and bytes are there, not
    /// in `uploads/`.
    shared: Option<Shared>,
}

/// Whether `id` has the shape of an upload id, so that it can name no other file.
pub fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Partials {
    pub(crate) fn new(dir: PathBuf, tmp: PathBuf, root: PathBuf, reserve: u64) -> Self {
        Partials {
            dir,
            tmp,
            guard: (root, reserve),
            open: Mutex::new(HashMap::new()),
            hashers: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// Keeps uploads in PostgreSQL and the bucket from now on, so that any instance can
    /// continue them.
    pub(crate) fn share(
        &mut self,
        pg: std::sync::Arc<crate::pg::PgMeta>,
        bucket: std::sync::Arc<crate::bucket::Bucket>,
    ) -> Result<(), StoreError> {
        let shared = Shared::new(pg, bucket, self.dir.join(PIECES));
        shared.recover()?;
        self.shared = Some(shared);
        Ok(())
    }

    /// Every piece's name under the bucket's `uploads/`, when uploads are shared.
    pub(crate) fn piece_names(&self) -> Result<Vec<String>, StoreError> {
        match &self.shared {
            Some(shared) => shared.piece_names(),
            None => Ok(Vec::new()),
        }
    }

    /// Whether uploads are shared by instances.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    pub(crate) fn set_reserve(&mut self, reserve: u64) {
        self.guard.1 = reserve;
    }

    fn part(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.part"))
    }

    fn sidecar(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Starts an upload: an empty `.part` file, then its sidecar, both durable. `None` when
    /// `owner` has `max_open` unfinished uploads already.
    pub fn create(
        &self,
        owner: &str,
        length: Option<u64>,
        metadata: &str,
        now: OffsetDateTime,
        max_open: usize,
    ) -> Result<Option<PartialUpload>, StoreError> {
        let id = hex::encode(rand::random::<[u8; 16]>());
        if let Some(shared) = &self.shared {
            let mut upload = new_upload(&id, owner, length, metadata, now);
            return Ok(shared.create(&mut upload, max_open)?.then_some(upload));
        }
        {
            let mut open = self.lock_open();
            if open.values().filter(|u| u.owner == owner).count() >= max_open {
                return Ok(None);
            }
            let owner = owner.to_owned();
            open.insert(id.clone(), Open { owner, offset: 0 });
        }
        let made = self.make(&id, owner, length, metadata, now);
        if made.is_err() {
            self.lock_open().remove(&id);
        }
        made.map(Some)
    }

    fn make(
        &self,
        id: &str,
        owner: &str,
        length: Option<u64>,
        metadata: &str,
        now: OffsetDateTime,
    ) -> Result<PartialUpload, StoreError> {
        create_part(&self.part(id))?;
        let mut upload = new_upload(id, owner, length, metadata, now);
        // The sidecar's rename is made durable with the directory's fsync, which covers the
        // `.part` file's entry too.
        self.save(&mut upload)?;
        Ok(upload)
    }

    /// The upload under `id`, if there is one.
    pub fn get(&self, id: &str) -> Result<Option<PartialUpload>, StoreError> {
        if !valid_id(id) {
            return Ok(None);
        }
        match &self.shared {
            Some(shared) => shared.get(id),
            None => self.read(id),
        }
    }

    /// Writes the sidecar durably: the upload's state is now what it says. A shared upload's
    /// state is written only if nobody changed it since it was read
    /// ([`StoreError::Changed`] if someone did).
    pub fn save(&self, upload: &mut PartialUpload) -> Result<(), StoreError> {
        if let Some(shared) = &self.shared {
            return shared.save(upload);
        }
        let bytes = serde_json::to_vec(upload)
            .map_err(|e| StoreError::io("encode an upload's sidecar", std::io::Error::other(e)))?;
        durable::write_atomically(&self.dir, &self.sidecar(&upload.id), &bytes, FILE_MODE)
            .map_err(|e| StoreError::io("write an upload's sidecar", e))
    }

    /// Opens the upload for appending at its acknowledged offset. `check` is a digest of the
    /// chunk to verify before it is acknowledged.
    pub fn append(
        &self,
        upload: &PartialUpload,
        check: Option<ChunkCheck>,
    ) -> Result<Appender<'_>, StoreError> {
        if let Some(shared) = &self.shared {
            let piece = Piece::new(upload.offset);
            let file = create_part(&shared.local(&upload.id, &piece))?;
            return Ok(Appender::piece(self, file, upload.offset, piece, check));
        }
        self.trim(upload)?;
        let mut file = OpenOptions::new()
            .write(true)
            .open(self.part(&upload.id))
            .map_err(|e| StoreError::io("open a partial upload", e))?;
        file.seek(SeekFrom::Start(upload.offset))
            .map_err(|e| StoreError::io("open a partial upload", e))?;
        let hasher = self.hasher_at(upload)?;
        Ok(Appender::new(self, file, upload.offset, hasher, check))
    }

    fn lock_open(&self) -> std::sync::MutexGuard<'_, HashMap<String, Open>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes an upload's new acknowledged offset.
    fn grew(&self, id: &str, offset: u64) {
        if let Some(u) = self.lock_open().get_mut(id) {
            u.offset = offset;
        }
    }

    /// How many unfinished uploads `owner` has.
    pub fn in_progress(&self, owner: &str) -> Result<usize, StoreError> {
        if let Some(shared) = &self.shared {
            return shared.in_progress(owner);
        }
        Ok(self
            .lock_open()
            .values()
            .filter(|u| u.owner == owner)
            .count())
    }

    fn lock_hashers(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Sha256)>> {
        self.hashers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The first acknowledged bytes (up to [`HEAD_BYTES`]), to sniff the upload's type before
    /// the rest arrives.
    pub fn head(&self, upload: &PartialUpload) -> Result<Vec<u8>, StoreError> {
        if let Some(shared) = &self.shared {
            return shared.head(upload);
        }
        let want = upload.offset.min(HEAD_BYTES as u64);
        let file =
            File::open(self.part(&upload.id)).map_err(|e| StoreError::io("read an upload", e))?;
        let mut head = Vec::with_capacity(want as usize);
        file.take(want)
            .read_to_end(&mut head)
            .map_err(|e| StoreError::io("read an upload", e))?;
        Ok(head)
    }

    /// The finished upload as a staged blob, ready for [`Store::create`](crate::Store::create):
    /// a hard link to its `.part` file in `tmp/`, so the bytes are not copied, and the upload
    /// itself stays whole until [`completed`](Self::completed).
    pub fn stage(&self, upload: &PartialUpload) -> Result<StagedBlob, StoreError> {
        if !upload.is_whole() {
            return Err(StoreError::Invalid {
                field: "upload",
                expected: format!("upload {} complete", upload.id),
            });
        }
        if let Some(shared) = &self.shared {
            return shared.stage(upload, &self.tmp);
        }
        self.trim(upload)?;
        let hash = ContentHash(self.hasher_at(upload)?.finalize().into());
        let part = self.part(&upload.id);
        let temp = tempfile::Builder::new()
            .prefix("upload-")
            .make_in(&self.tmp, |path| {
                fs::hard_link(&part, path)?;
                File::open(path)
            })
            .map_err(|e| StoreError::io("link a finished upload into tmp/", e))?;
        let mut head = Vec::with_capacity(HEAD_BYTES.min(upload.offset as usize));
        temp.as_file()
            .take(HEAD_BYTES as u64)
            .read_to_end(&mut head)
            .map_err(|e| StoreError::io("read a finished upload", e))?;
        Ok(StagedBlob::new(temp, hash, upload.offset, head))
    }

    /// Notes the media record an upload became, and removes its bytes (the blob has them).
    ///
    /// Not made durable: the record is, and a whole upload whose note a crash lost is completed
    /// again, which finds the record under the upload's reserved id.
    pub fn completed(
        &self,
        upload: &mut PartialUpload,
        media_id: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        crate::write::crash_point("tus-media-created", || Ok(()));
        if let Some(shared) = &self.shared {
            return shared.completed(upload, media_id, now);
        }
        upload.media_id = Some(media_id.to_owned());
        upload.updated_at = now;
        let bytes = serde_json::to_vec(upload)
            .map_err(|e| StoreError::io("encode an upload's sidecar", std::io::Error::other(e)))?;
        let temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)
            .and_then(|mut t| {
                std::io::Write::write_all(&mut t, &bytes)?;
                durable::set_mode(t.path(), FILE_MODE)?;
                Ok(t)
            })
            .map_err(|e| StoreError::io("write an upload's sidecar", e))?;
        temp.persist(self.sidecar(&upload.id))
            .map_err(|e| StoreError::io("write an upload's sidecar", e.error))?;
        self.lock_open().remove(&upload.id);
        self.lock_hashers().remove(&upload.id);
        remove_file(&self.part(&upload.id))
    }

    /// Removes an upload: its sidecar first (durably), so that a crash leaves at most a
    /// `.part` file that the next start removes.
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        if !valid_id(id) {
            return Ok(());
        }
        if let Some(shared) = &self.shared {
            return shared.remove(id);
        }
        self.remove_here(id)
    }

    /// [`remove`](Self::remove) of an upload in `uploads/`.
    fn remove_here(&self, id: &str) -> Result<(), StoreError> {
        self.lock_hashers().remove(id);
        remove_file(&self.sidecar(id))?;
        self.lock_open().remove(id);
        durable::fsync_dir(&self.dir).map_err(|e| StoreError::io("fsync uploads/", e))?;
        remove_file(&self.part(id))
    }

    /// Every upload in `uploads/`, finished ones included. A sidecar that cannot be read is
    /// skipped (and reported), not fatal: one damaged upload must not stop the others.
    pub fn list(&self) -> Result<Vec<PartialUpload>, StoreError> {
        match &self.shared {
            Some(shared) => shared.list(),
            None => self.list_here(),
        }
    }

    /// The uploads in `uploads/` itself. With uploads shared, these are left from before
    /// (a store moved to PostgreSQL and a bucket): no instance continues them.
    fn list_here(&self) -> Result<Vec<PartialUpload>, StoreError> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(StoreError::io("list uploads/", e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list uploads/", e))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if !valid_id(id) {
                continue;
            }
            match self.read(id) {
                Ok(Some(u)) => out.push(u),
                Ok(None) => {}
                Err(e) => tracing::warn!(upload = id, error = %e, "skipped an upload"),
            }
        }
        Ok(out)
    }

    /// Unfinished uploads and their acknowledged bytes (on every instance, when shared).
    pub fn usage(&self) -> Result<PartialUsage, StoreError> {
        if let Some(shared) = &self.shared {
            let (count, bytes) = shared.usage()?;
            return Ok(PartialUsage { count, bytes });
        }
        let open = self.lock_open();
        Ok(PartialUsage {
            count: open.len() as u64,
            bytes: open.values().map(|u| u.offset).sum(),
        })
    }

    /// Removes uploads that saw no bytes for `expiry`, and finished ones kept that long for
    /// their clients to look up; `busy` names uploads a request is working on, which stay.
    /// Returns how many went and the bytes they held.
    pub fn sweep(
        &self,
        now: OffsetDateTime,
        expiry: std::time::Duration,
        busy: impl Fn(&str) -> bool,
    ) -> Result<PartialUsage, StoreError> {
        let mut gone = PartialUsage::default();
        let all = self.list()?;
        if let Some(shared) = &self.shared {
            shared.prune(&all)?;
        }
        for u in all {
            if now < u.updated_at + expiry || busy(&u.id) {
                continue;
            }
            self.remove(&u.id)?;
            gone.count += 1;
            if u.media_id.is_none() {
                gone.bytes += u.offset;
            }
        }
        if self.shared.is_some() {
            // Left from before uploads were shared: they expire as they would have.
            for u in self.list_here()? {
                if now >= u.updated_at + expiry {
                    self.remove_here(&u.id)?;
                    gone.count += 1;
                }
            }
        }
        Ok(gone)
    }
}

/// A new upload's state.
fn new_upload(
    id: &str,
    owner: &str,
    length: Option<u64>,
    metadata: &str,
    now: OffsetDateTime,
) -> PartialUpload {
    PartialUpload {
        version: SIDECAR_VERSION,
        id: id.to_owned(),
        owner: owner.to_owned(),
        length,
        offset: 0,
        metadata: metadata.to_owned(),
        created_at: now,
        updated_at: now,
        reserved_id: None,
        media_id: None,
        pieces: Vec::new(),
        revision: 0,
    }
}

#[cfg(test)]
mod tests;

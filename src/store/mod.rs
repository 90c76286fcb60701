//! The store: content-addressed blobs on disk plus metadata in sled, kept in step by the
//! durable write protocol. Nothing here knows about HTTP; callers run these blocking methods
//! on a blocking thread pool.

pub mod archive;
pub mod blobs;
mod cache;
pub mod check;
mod commit;
pub mod disk;
pub mod hash;
pub mod import;
pub mod layout;
pub mod maintain;
pub mod meta;
mod parallel;
pub mod record;
pub mod records;
pub mod sniff;
pub mod timing;
mod upload_file;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use blobs::{BlobStore, BlobWriter, StagedBlob};
pub use hash::ContentHash;
pub use layout::Layout;
pub use record::{Kind, MediaFields, MediaId, MediaPatch, MediaRecord, Visibility};

use commit::{GroupCommit, HashLocks};
use meta::MetaStore;
use records::RecordFiles;

/// Everything that can go wrong below the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{field} must be {expected}")]
    Invalid {
        field: &'static str,
        expected: String,
    },
    #[error("no such media")]
    NotFound,
    #[error("could not {action}: {source}")]
    Io {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the disk is nearly full ({} MiB free, {} MiB kept in reserve): new uploads are refused \
         until space is freed; reads, edits and deletes keep working",
        free >> 20, reserve >> 20
    )]
    NoSpace { free: u64, reserve: u64 },
    #[error("{0}")]
    Format(String),
    #[error("{0}")]
    Locked(String),
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    Database(String),
}

impl StoreError {
    pub fn io(action: &'static str, source: std::io::Error) -> Self {
        StoreError::Io { action, source }
    }

    pub fn invalid(field: &'static str, expected: &str) -> Self {
        StoreError::Invalid {
            field,
            expected: expected.to_owned(),
        }
    }

    /// True when the disk is full (ENOSPC or EDQUOT) or past the reserve.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::NoSpace { .. } => true,
            // Kinds rather than errno alone: tempfile wraps its write errors with the path.
            StoreError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }
}

/// Filters for a listing; `before` is the cursor (exclusive).
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub collection: Option<String>,
    pub tag: Option<String>,
    pub kind: Option<Kind>,
    /// Case-insensitive text searched in title, description and filename; lower-cased.
    pub q: Option<String>,
    pub include_private: bool,
    /// Private media owned by this token are visible too.
    pub owner: Option<String>,
    pub limit: usize,
    pub before: Option<MediaId>,
}

impl ListQuery {
    pub fn matches(&self, r: &MediaRecord) -> bool {
        (self.include_private || r.is_public() || (self.owner.is_some() && r.owner == self.owner))
            && self
                .collection
                .as_ref()
                .is_none_or(|c| r.collection.as_ref() == Some(c))
            && self.tag.as_ref().is_none_or(|t| r.tags.contains(t))
            && self.kind.is_none_or(|k| r.kind == k)
            && self.q.as_ref().is_none_or(|q| {
                [&r.title, &r.description, &r.filename]
                    .iter()
                    .any(|f| f.to_lowercase().contains(q.as_str()))
            })
    }
}

#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<MediaRecord>,
    /// Where the next page starts, or `None` when this was the last.
    pub next: Option<MediaId>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub media_count: u64,
    pub media_bytes: u64,
    pub blob_count: u64,
    pub blob_bytes: u64,
    pub meta_bytes: u64,
}

/// A new upload: its staged bytes, the fields the caller gave, and what was learned from it.
pub struct NewMedia {
    pub blob: StagedBlob,
    /// The original name (sanitised); may be empty.
    pub filename: String,
    /// The type the client declared, used only when sniffing and the extension say nothing.
    pub declared_type: Option<String>,
    pub fields: MediaFields,
}

/// An open data directory.
pub struct Store {
    layout: Layout,
    instance: String,
    blobs: BlobStore,
    records: RecordFiles,
    meta: MetaStore,
    hash_locks: HashLocks,
    id_locks: HashLocks,
    commit: GroupCommit,
    ids: Mutex<ulid::Generator>,
    /// Free bytes below which uploads are refused.
    reserve: u64,
    /// Backups in progress; while any runs, blobs whose last record goes wait in `deferred`.
    backups: std::sync::atomic::AtomicUsize,
    deferred: Mutex<Vec<ContentHash>>,
    counters: Counters,
}

/// Running totals since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub uploads: std::sync::atomic::AtomicU64,
    pub dedup_hits: std::sync::atomic::AtomicU64,
    pub bytes_stored: std::sync::atomic::AtomicU64,
}

/// The `state` key that marks a store closed by a clean shutdown.
const CLEAN_SHUTDOWN: &str = "clean_shutdown";

impl Store {
    /// Opens (or initialises) a data directory: checks `FORMAT`, empties `tmp/`, opens sled.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let layout = Layout::new(root);
        let instance = layout.prepare()?;
        let cleared = layout.clear_tmp()?;
        if cleared > 0 {
            tracing::info!(cleared, "removed unfinished uploads from tmp/");
        }
        let records = RecordFiles::new(layout.records());
        records.clear_temp_files()?;
        let meta = MetaStore::open(&layout.meta())?;
        Ok(Store {
            blobs: BlobStore::new(layout.blobs(), layout.tmp()),
            records,
            layout,
            instance,
            meta,
            hash_locks: HashLocks::new(1024),
            id_locks: HashLocks::new(256),
            commit: GroupCommit::new(),
            ids: Mutex::new(ulid::Generator::new()),
            reserve: 0,
            backups: std::sync::atomic::AtomicUsize::new(0),
            deferred: Mutex::new(Vec::new()),
            counters: Counters::default(),
        })
    }

    /// Sets the free-space reserve; `None` picks [`disk::default_reserve`] for this disk.
    pub fn with_reserve(mut self, reserve: Option<u64>) -> Result<Self, StoreError> {
        self.reserve = match reserve {
            Some(r) => r,
            None => disk::default_reserve(disk::space(self.layout.root())?.total_bytes),
        };
        Ok(self)
    }

    pub fn reserve(&self) -> u64 {
        self.reserve
    }

    /// Refuses new work that would eat into the reserve. `incoming` is what the caller is about
    /// to write, when known.
    pub fn check_space(&self, incoming: u64) -> Result<disk::Space, StoreError> {
        let space = disk::space(self.layout.root())?;
        if space.free_bytes < self.reserve.saturating_add(incoming) {
            return Err(StoreError::NoSpace {
                free: space.free_bytes,
                reserve: self.reserve,
            });
        }
        Ok(space)
    }

    /// Starts an upload in `tmp/`, watching the reserve while it is written.
    pub fn writer(&self) -> Result<BlobWriter, StoreError> {
        self.check_space(0)?;
        Ok(self
            .blobs
            .writer()?
            .with_guard(self.layout.root().to_owned(), self.reserve))
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn record_files(&self) -> &RecordFiles {
        &self.records
    }

    pub fn blob_path(&self, hash: &ContentHash) -> PathBuf {
        self.blobs.path_for(hash)
    }

    fn new_id(&self) -> MediaId {
        let mut gen = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        // The generator only fails when 2^80 ids are made in one millisecond.
        MediaId(gen.generate().unwrap_or_else(|_| ulid::Ulid::new()))
    }

    /// Steps 3–5 of the write protocol for a batch of staged uploads: place the blobs (or
    /// deduplicate), write the record files, insert the records and bump the counts in one
    /// transaction, and return only once sled has flushed them.
    pub fn create(&self, items: Vec<NewMedia>) -> Result<Vec<MediaRecord>, StoreError> {
        let now = record::now();
        let mut records = Vec::with_capacity(items.len());
        let mut staged = Vec::with_capacity(items.len());
        for item in items {
            let content_type = sniff::content_type(
                &item.blob.head,
                &item.filename,
                item.declared_type.as_deref(),
            );
            let kind = sniff::kind(&content_type);
            let filename = if item.filename.is_empty() {
                format!("upload.{}", sniff::extension(&content_type))
            } else {
                item.filename
            };
            let dims = if kind == Kind::Image {
                sniff::dimensions(&item.blob.head)
            } else {
                None
            };
            let f = item.fields;
            let (id, created_at) = match f.created_at {
                // Ids sort by time; an imported file keeps its place in history.
                Some(t) => {
                    let ms = u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                    (MediaId(ulid::Ulid::from_parts(ms, rand::random())), t)
                }
                None => (self.new_id(), now),
            };
            records.push(MediaRecord {
                schema: record::RECORD_SCHEMA,
                id,
                hash: item.blob.hash,
                size: item.blob.size,
                content_type,
                kind,
                filename,
                title: f.title,
                description: f.description,
                alt: f.alt,
                tags: f.tags,
                collection: f.collection,
                visibility: f.visibility,
                custom: f.custom,
                legacy_path: f.legacy_path,
                owner: f.owner,
                width: dims.map(|d| d.0),
                height: dims.map(|d| d.1),
                created_at,
                updated_at: now,
            });
            staged.push(item.blob);
        }
        {
            let _guards = self
                .hash_locks
                .lock_all(records.iter().map(|r| &r.hash.as_bytes()[..]));
            self.make_durable(staged, &records)?;
            self.meta.insert(&records)?;
        }
        self.commit.wait_durable(|| self.meta.flush())?;
        self.counters
            .uploads
            .fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(records)
    }

    /// Steps 2 and 3 of the write protocol for the blobs of one request, and their record
    /// files, in three rounds of fsyncs issued side by side (the fsyncs of concurrent requests
    /// run at the same time and share the disk's journal commits):
    ///
    /// 1. the temp files of the new blobs and of the record files (an upload whose content is
    ///    already stored needs none);
    /// 2. after renaming the blobs to their content addresses, every directory on their paths
    ///    and `tmp/`;
    /// 3. after renaming the record files to `records/<id>.json`, `records/`.
    ///
    /// So every blob is durable and named before its record file is, and the record files are
    /// durable before sled is told: a rebuild from `records/` never finds a record whose blob
    /// was not yet in place. The caller holds the hashes' locks.
    fn make_durable(
        &self,
        mut staged: Vec<StagedBlob>,
        records: &[MediaRecord],
    ) -> Result<(), StoreError> {
        use parallel::Task;
        let files = records
            .iter()
            .map(|r| self.records.stage(r))
            .collect::<Result<Vec<_>, _>>()?;
        let mut tasks: Vec<Task> = Vec::new();
        for blob in staged.iter_mut() {
            if !self.blobs.exists(&blob.hash) {
                tasks.push(Box::new(move || blob.sync()));
            }
        }
        for file in &files {
            tasks.push(Box::new(move || file.sync()));
        }
        parallel::run_all(tasks)?;

        let mut dirs = std::collections::BTreeSet::new();
        for blob in staged {
            let size = blob.size;
            match self.blobs.rename_into_place(blob)? {
                Some(changed) => {
                    dirs.extend(changed);
                    self.counters
                        .bytes_stored
                        .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
                }
                None => {
                    self.counters
                        .dedup_hits
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        parallel::run_all(dirs.into_iter().map(blobs::fsync_dir_task).collect())?;

        for file in files {
            file.persist()?;
        }
        layout::fsync_dir(self.records.dir())
    }

    pub fn get(&self, id: MediaId) -> Result<Option<MediaRecord>, StoreError> {
        self.meta.get(id)
    }

    /// Finishes uploads that a crash cut off after their record file was durable but before
    /// sled was told: such a record is complete on disk (its blob was named first), so it is
    /// inserted now rather than left behind as a record file that sled does not know. Left
    /// behind, it would point at its blob without counting as a reference, and a delete of
    /// another record with the same bytes could remove the blob from under it. Run at start-up,
    /// before serving; returns how many records were completed.
    pub fn recover(&self) -> Result<usize, StoreError> {
        let ids = self.records.ids()?;
        // Every write puts the record file first, so sled never has more: equal counts mean
        // nothing to finish.
        if ids.len() == self.meta.media_count() {
            return Ok(0);
        }
        let mut completed = Vec::new();
        for id in ids {
            if self.meta.contains(id)? {
                continue;
            }
            match self.records.read(id) {
                Ok(Some(r)) if self.blobs.exists(&r.hash) => completed.push(r),
                Ok(Some(r)) => tracing::warn!(
                    id = %r.id, hash = %r.hash,
                    "a record file names a blob that is not there; `shoebox verify` reports it"
                ),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%id, error = %e, "an unreadable record file was left alone")
                }
            }
        }
        if completed.is_empty() {
            return Ok(0);
        }
        self.meta.insert(&completed)?;
        self.meta.flush()?;
        Ok(completed.len())
    }

    /// [`recover`](Self::recover), unless the previous run ended with
    /// [`close_cleanly`](Self::close_cleanly): then nothing can be half-written, and the scan
    /// of every record file is skipped. The mark is consumed (durably) either way, so a crash
    /// during this run makes the next start scan.
    pub fn recover_unless_clean(&self) -> Result<usize, StoreError> {
        if self.meta.take_state(CLEAN_SHUTDOWN)?.is_some() {
            self.meta.flush()?;
            return Ok(0);
        }
        self.recover()
    }

    /// Flushes metadata once every request has finished, and marks the store as closed
    /// cleanly for the next start.
    pub fn close_cleanly(&self) -> Result<(), StoreError> {
        self.meta.flush()?;
        self.meta.set_state(CLEAN_SHUTDOWN, "1")?;
        self.meta.flush()
    }

    /// A record as the read cache holds it, for paths that only look at it.
    pub fn get_shared(&self, id: MediaId) -> Result<Option<Arc<MediaRecord>>, StoreError> {
        self.meta.get_shared(id)
    }

    pub fn list(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        self.meta.list(q)
    }

    /// Edits a record's editable fields; durable before it returns.
    pub fn update(&self, id: MediaId, patch: &MediaPatch) -> Result<MediaRecord, StoreError> {
        let record = {
            let key = id.to_key();
            let _guard = self.id_locks.lock_all(std::iter::once(&key[..]));
            let mut record = self.meta.get(id)?.ok_or(StoreError::NotFound)?;
            let old = record.clone();
            patch.apply(&mut record);
            record.updated_at = record::now();
            self.records.write(&record)?;
            self.meta.replace(&old, &record)?;
            record
        };
        self.commit.wait_durable(|| self.meta.flush())?;
        Ok(record)
    }

    /// Deletes a record; the blob goes with its last reference. Returns false when there was no
    /// such record.
    pub fn delete(&self, id: MediaId) -> Result<bool, StoreError> {
        let key = id.to_key();
        let _id_guard = self.id_locks.lock_all(std::iter::once(&key[..]));
        let Some(existing) = self.meta.get(id)? else {
            return Ok(false);
        };
        let _guard = self
            .hash_locks
            .lock_all(std::iter::once(&existing.hash.as_bytes()[..]));
        let Some((record, remaining)) = self.meta.delete(id)? else {
            return Ok(false);
        };
        // The metadata change must be durable before the files go: a crash in between leaves
        // a stale record file and maybe an orphan blob (both reported by verify and removed by
        // gc), never a record without its blob.
        self.commit.wait_durable(|| self.meta.flush())?;
        self.records.remove(id)?;
        if remaining == 0 {
            if self.backups.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                // A backup may have read the record already; it still needs the bytes.
                self.deferred
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(record.hash);
            } else {
                self.blobs.remove(&record.hash)?;
            }
        }
        Ok(true)
    }

    /// Unlinks blobs whose deletion waited for a backup, if still unused.
    fn unlink_deferred(&self) {
        let hashes = std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|p| p.into_inner()));
        for hash in hashes {
            let _guard = self
                .hash_locks
                .lock_all(std::iter::once(&hash.as_bytes()[..]));
            if self.meta.refcount(&hash).ok() == Some(0) {
                if let Err(e) = self.blobs.remove(&hash) {
                    tracing::warn!(%hash, error = %e, "could not remove a blob after a backup; gc will");
                }
            }
        }
    }

    pub fn refcount(&self, hash: &ContentHash) -> Result<u64, StoreError> {
        self.meta.refcount(hash)
    }

    /// A record using this blob, public if any public record uses it.
    pub fn representative(
        &self,
        hash: &ContentHash,
    ) -> Result<Option<Arc<MediaRecord>>, StoreError> {
        match self.meta.representative(hash)? {
            Some(id) => self.meta.get_shared(id),
            None => Ok(None),
        }
    }

    /// Counts and sizes for the status page: a scan of the records and the blob directory.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        let mut stats = Stats {
            meta_bytes: self.meta.size_on_disk(),
            ..Stats::default()
        };
        for r in self.meta.all() {
            stats.media_count += 1;
            stats.media_bytes += r?.size;
        }
        for (_, path) in self.blobs.list()? {
            stats.blob_count += 1;
            stats.blob_bytes += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        }
        Ok(stats)
    }

    /// The media adopted from this old path by `import`.
    pub fn by_legacy_path(&self, path: &str) -> Result<Option<MediaRecord>, StoreError> {
        match self.meta.by_legacy_path(path)? {
            Some(id) => self.meta.get(id),
            None => Ok(None),
        }
    }

    pub fn media_count(&self) -> usize {
        self.meta.media_count()
    }

    pub fn all_records(&self) -> impl Iterator<Item = Result<MediaRecord, StoreError>> + '_ {
        self.meta.all()
    }

    pub fn meta_size_on_disk(&self) -> u64 {
        self.meta.size_on_disk()
    }

    /// Flushes metadata; used at shutdown.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.meta.flush()
    }

    /// The deep health check: a probe file written, fsynced, read back and removed in `tmp/`,
    /// and a probe key written, flushed, read back and removed in sled.
    pub fn probe_disk(&self) -> Result<(), StoreError> {
        use std::io::{Read, Seek, Write};
        let value: [u8; 32] = rand::random();
        let mut file = tempfile::Builder::new()
            .prefix("health-")
            .tempfile_in(self.layout.tmp())
            .map_err(|e| StoreError::io("create the health probe file", e))?;
        file.write_all(&value)
            .and_then(|_| file.as_file().sync_all())
            .map_err(|e| StoreError::io("write and fsync the health probe file", e))?;
        let mut read = Vec::new();
        file.rewind()
            .and_then(|_| file.read_to_end(&mut read))
            .map_err(|e| StoreError::io("read the health probe file", e))?;
        if read != value {
            return Err(StoreError::Corrupt(
                "the health probe file read back different bytes".into(),
            ));
        }
        file.close()
            .map_err(|e| StoreError::io("remove the health probe file", e))
    }

    pub fn probe_meta(&self) -> Result<(), StoreError> {
        self.meta.probe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn staged(store: &Store, bytes: &[u8]) -> StagedBlob {
        let mut w = store.blobs().writer().unwrap();
        w.write(bytes).unwrap();
        w.finish().unwrap()
    }

    fn new(store: &Store, bytes: &[u8]) -> NewMedia {
        NewMedia {
            blob: staged(store, bytes),
            filename: "a.txt".into(),
            declared_type: None,
            fields: MediaFields::default(),
        }
    }

    /// A crash between the record file and sled leaves a record file sled does not know; the
    /// next start completes it, so it counts as a reference to its blob.
    #[test]
    fn recover_completes_records_that_only_reached_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = store
            .create(vec![new(&store, b"shared")])
            .unwrap()
            .remove(0);
        // Another record of the same bytes whose upload stopped after its record file.
        let mut cut_off = first.clone();
        cut_off.id = store.new_id();
        store.records.write(&cut_off).unwrap();
        assert_eq!(store.refcount(&first.hash).unwrap(), 1);
        assert_eq!(store.recover().unwrap(), 1);
        assert_eq!(store.get(cut_off.id).unwrap().unwrap(), cut_off);
        assert_eq!(store.refcount(&first.hash).unwrap(), 2);
        // Deleting the first record keeps the blob for the recovered one.
        assert!(store.delete(first.id).unwrap());
        assert!(store.blob_path(&first.hash).is_file());
        assert_eq!(store.recover().unwrap(), 0);
    }

    /// After a clean shutdown the next start skips the scan once; after that (as after any
    /// crash) it scans again.
    #[test]
    fn a_clean_shutdown_spares_the_next_start_its_scan() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = store.create(vec![new(&store, b"bytes")]).unwrap().remove(0);
        let mut stray = first.clone();
        stray.id = store.new_id();
        store.records.write(&stray).unwrap();
        store.close_cleanly().unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.recover_unless_clean().unwrap(), 0, "clean: no scan");
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.recover_unless_clean().unwrap(),
            1,
            "the mark was consumed"
        );
        assert!(store.get(stray.id).unwrap().is_some());
    }

    #[test]
    fn deduplicates_and_removes_the_blob_with_its_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store
            .create(vec![new(&store, b"same bytes")])
            .unwrap()
            .remove(0);
        let b = store
            .create(vec![new(&store, b"same bytes")])
            .unwrap()
            .remove(0);
        assert_eq!(a.hash, b.hash);
        assert_eq!(store.refcount(&a.hash).unwrap(), 2);
        assert_eq!(store.blobs().list().unwrap().len(), 1);
        assert!(store.delete(a.id).unwrap());
        assert!(store.blob_path(&a.hash).is_file());
        assert!(store.delete(b.id).unwrap());
        assert!(!store.blob_path(&a.hash).exists());
        assert!(!store.delete(b.id).unwrap());
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let store = Store::open(dir.path()).unwrap();
            store.create(vec![new(&store, b"kept")]).unwrap()[0].id
        };
        let store = Store::open(dir.path()).unwrap();
        let r = store.get(id).unwrap().unwrap();
        assert_eq!(r.size, 4);
        assert_eq!(r.content_type, "text/plain");
        assert_eq!(r.kind, Kind::Document);
    }

    #[test]
    fn concurrent_uploads_and_deletes_of_one_blob_never_lose_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        let r = store
                            .create(vec![new(&store, b"contended")])
                            .unwrap()
                            .remove(0);
                        assert!(store.blob_path(&r.hash).is_file());
                        store.delete(r.id).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Each thread's record kept the blob alive while it existed (asserted above); once the
        // last one is gone, so is the blob.
        assert_eq!(store.media_count(), 0);
        assert!(store.blobs().list().unwrap().is_empty());
    }

    #[test]
    fn probes_pass_on_a_healthy_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.probe_disk().unwrap();
        store.probe_meta().unwrap();
        assert_eq!(std::fs::read_dir(store.layout().tmp()).unwrap().count(), 0);
    }
}

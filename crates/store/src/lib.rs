//! The store: content-addressed blobs on disk plus metadata in sled, kept in step by the
//! durable write protocol. Nothing here knows about HTTP; callers run these blocking methods
//! on a blocking thread pool.
#![warn(clippy::unwrap_used, clippy::expect_used, missing_docs)]

// Opening, closing and the start-up check.
/// `records/` is the truth, the database an index: the check that keeps them in step.
pub mod catalogue;
/// What the directory sits on: free space, and whether the mount persists.
pub mod disk;
/// The data directory: its folders, `FORMAT`, its lock, durable small files.
pub mod layout;
/// Rebuilding the database from `records/`, beside the old one.
pub mod rebuild;
/// Space held for the database against a disk that something else fills.
mod space;
/// Opening and closing for a server or a command: lock, check, settle, seal.
mod start;

// Writing.
/// The seams a second backend fills: where blobs live, where records are indexed.
pub mod backend;
/// The MD5s writers did not compute, filled in behind them for S3.
mod backfill;
/// Content-addressed blob files: staging, placing, fsyncing.
pub mod blobs;
/// Blobs in an S3 bucket.
pub mod bucket;
/// Content addresses: sha256 digests.
pub mod hash;
/// MD5s for S3's ETags.
pub mod md5;
/// S3 multipart uploads in progress, in `uploads/multipart/`.
pub mod multipart;
/// Resumable uploads in progress, under `uploads/`.
pub mod partial;
/// Content types, sniffed from the bytes.
pub mod sniff;
/// Derived files (image variants), a cache under `variants/`.
pub mod variants;
/// The durable write path, the one way in for every new upload: stage, then commit.
pub mod write;

// Records and the database.
/// Decoded records kept in memory for the read paths.
mod cache;
/// Collections of their own, with their settings, under `collections/`.
pub mod collections;
/// What the records imply for the database's indexes and totals.
mod derived;
/// Records by object key, for the S3 API: lookups and listings by seeking.
mod keys;
/// Listing filters and cursors.
pub mod listing;
/// The sled database: the only file that names sled.
pub mod meta;
/// Records in PostgreSQL, behind the same seam as sled, for instances that share them.
mod pg;
/// The media record and the rules for its fields.
pub mod record;
/// One JSON file per record under `records/`.
pub mod record_files;

// Writing whole files.
/// Durable whole-file writes (temp file, fsync, rename, fsync the directory): a leaf that the
/// credentials and the commands use too.
pub mod durable;

// Keeping it sound.
/// Backups and restores.
pub mod archive;
/// `verify` and `verify --repair`.
pub mod check;
/// The store's error type.
mod error;
/// The health probes and the failing-disk state.
mod health;
/// `import` of an uploads folder.
pub mod import;
/// `gc`.
pub mod maintain;
/// Copying the blobs to another blob store.
pub mod migrate;
/// The background scrub that re-hashes blobs.
pub mod scrub;
#[cfg(test)]
mod testing;
/// Timed fsyncs, reported to whoever observes them.
pub mod timing;

use std::path::Path;
use std::sync::{Arc, Mutex};

pub use backend::MetaBackend;
pub use blobs::{BlobStore, BlobWriter, Blobs, StagedBlob};
pub use collections::{CollectionInfo, Collections};
pub use derived::Totals;
pub use error::StoreError;
pub use hash::ContentHash;
pub use layout::Layout;
pub use listing::{Cursor, KeysFrom, ListPage, ListQuery};
pub use pg::PgMeta;
pub use record::{Kind, MediaFields, MediaId, MediaPatch, MediaRecord, PosterState, Visibility};
pub use start::Started;
pub use write::{NewMedia, Put};

use backend::Index;
use catalogue::InFlight;
use layout::DirLock;
use meta::MetaStore;
use record_files::RecordFiles;
use space::SpaceReserve;
use write::{Batcher, GroupCommit, RecordSync, SharedDirSync, StripedLocks};

/// What the status page and the metrics show of the store.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Records, blobs that records use, and their sizes (see [`Totals`]).
    pub totals: Totals,
    /// Bytes the database takes on disk.
    pub meta_bytes: u64,
}

/// sled's page cache when the caller says nothing (see [`Limits`]).
pub const DEFAULT_DB_CACHE: u64 = 32 << 20;

/// What the store may use, as its caller configured it: memory, and where blobs live.
#[derive(Debug, Clone)]
pub struct Limits {
    /// sled's page cache, in bytes.
    pub db_cache: u64,
    /// The bucket that holds the blobs; `None` for files under `blobs/`.
    pub bucket: Option<Arc<bucket::Bucket>>,
    /// The PostgreSQL database that holds the records; `None` for sled and `records/`.
    pub database: Option<Arc<PgMeta>>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            db_cache: DEFAULT_DB_CACHE,
            bucket: None,
            database: None,
        }
    }
}

/// An open data directory.
pub struct Store {
    layout: Layout,
    instance: String,
    blobs: Blobs,
    /// Resumable uploads in progress.
    partials: partial::Partials,
    multipart: multipart::Multipart,
    /// New records whose MD5 is to be filled in (see `backfill`).
    md5_wanted: backfill::Wanted,
    /// Collections with a file, and their settings.
    collections: Collections,
    records: RecordFiles,
    meta: Index,
    hash_locks: StripedLocks,
    id_locks: StripedLocks,
    /// Object keys (bucket ‖ key), held by whatever claims one: an upload, a keyed put, a
    /// move to another collection. Taken before the ids' and hashes' locks.
    key_locks: StripedLocks,
    commit: GroupCommit,
    /// New records of concurrent uploads, inserted in one transaction and flushed together.
    inserts: Batcher<Vec<MediaRecord>>,
    /// fsyncs of the blob root, which most uploads to a young store change, shared by
    /// concurrent uploads the way sled's flushes are.
    root_sync: Arc<SharedDirSync>,
    /// New record files on their way to the disk, and the pending marks to clear after them.
    record_sync: RecordSync,
    ids: Mutex<ulid::Generator>,
    /// Free bytes below which uploads are refused.
    reserve: u64,
    /// Backups in progress; while any runs, blobs whose last record goes wait in `deferred`.
    backups: std::sync::atomic::AtomicUsize,
    deferred: Mutex<Vec<ContentHash>>,
    counters: Counters,
    /// Record writes between their change to `records/` and their database flush.
    in_flight: InFlight,
    /// Held from [`start`](Self::start) to the end: one process per data directory.
    lock: Option<DirLock>,
    /// The database's generation since [`start`](Self::start) (0 for a bare [`open`]).
    generation: std::sync::atomic::AtomicU64,
    /// What the start-up left for the server's next start (see [`Settlement::unsettled`]).
    unsettled: usize,
    /// What the start-up did, for the status page.
    started: Started,
    /// Space held for the database against a disk that something else fills (see [`space`]).
    space: Option<SpaceReserve>,
    /// The last write error from the disk or the database, until a probe succeeds: uploads
    /// are refused meanwhile, so that a client that retries does not fill a failing disk.
    failing: Mutex<Option<String>>,
    failing_set: std::sync::atomic::AtomicBool,
    /// Blobs the scrub found damaged, no longer served (see [`scrub`]).
    damaged: scrub::Damaged,
    scrub: scrub::ScrubState,
}

/// Running totals since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// New records committed.
    pub uploads: std::sync::atomic::AtomicU64,
    /// Uploads whose bytes were stored already, so that no new blob was written.
    pub dedup_hits: std::sync::atomic::AtomicU64,
    /// Bytes of new blobs written.
    pub bytes_stored: std::sync::atomic::AtomicU64,
}

/// Where a store's blobs live under these limits.
pub(crate) fn blobs_for(layout: &Layout, limits: &Limits) -> Blobs {
    let local = BlobStore::new(layout.blobs(), layout.tmp());
    match &limits.bucket {
        None => Blobs::Disk(local),
        Some(bucket) => Blobs::Bucket {
            scratch: local,
            bucket: bucket.clone(),
        },
    }
}

impl Store {
    /// Opens (or initialises) a data directory: checks `FORMAT`, empties `tmp/`, opens sled.
    /// Nothing more: no lock, no check against `records/`. Servers and commands open a store
    /// with [`start`](Self::start); this is its first step, and the tests' shortcut.
    #[cfg(test)]
    pub(crate) fn open(root: &Path) -> Result<Store, StoreError> {
        Self::open_with(root, Limits::default())
    }

    /// [`open`](Self::open) within these limits.
    pub(crate) fn open_with(root: &Path, limits: Limits) -> Result<Store, StoreError> {
        let layout = Layout::new(root);
        let instance = layout.prepare()?;
        let cleared = layout.clear_tmp()?;
        if cleared > 0 {
            tracing::info!(cleared, "removed unfinished uploads from tmp/");
        }
        let records = RecordFiles::new(layout.records());
        records.clear_temp_files()?;
        let mut partials =
            partial::Partials::new(layout.uploads(), layout.tmp(), layout.root().to_owned(), 0);
        let in_progress = partials.recover()?;
        let mut multipart = multipart::Multipart::open(layout.uploads().join(partial::MULTIPART))?;
        if let (Some(pg), Some(bucket)) = (&limits.database, &limits.bucket) {
            // Any instance may continue an upload that another began.
            partials.share(pg.clone(), bucket.clone())?;
            multipart.share(multipart::SharedParts::new(
                pg.clone(),
                bucket.clone(),
                layout.uploads().join(partial::PIECES),
                layout.tmp(),
            ));
            let multiparts = multipart.count_here()?;
            if in_progress + multiparts > 0 {
                tracing::warn!(
                    resumable = in_progress,
                    multipart = multiparts,
                    "uploads begun before uploads were shared by instances stay in uploads/, \
                     where no instance continues them: their clients must start them again, \
                     and they go when they expire"
                );
            }
        } else if in_progress > 0 {
            tracing::info!(in_progress, "resumable uploads are waiting in uploads/");
        }
        let collections = match &limits.database {
            Some(pg) => Collections::open_shared(layout.collections(), pg.clone())?,
            None => Collections::open(layout.collections())?,
        };
        let meta = match &limits.database {
            Some(pg) => Index::Shared(pg.clone()),
            None => Index::Sled(MetaStore::open(&layout.meta(), limits.db_cache)?),
        };
        Ok(Store {
            blobs: blobs_for(&layout, &limits),
            partials,
            multipart,
            md5_wanted: backfill::Wanted::default(),
            collections,
            record_sync: RecordSync::new(records.clone())
                .map_err(|e| StoreError::io("open records/", e))?,
            root_sync: Arc::new(SharedDirSync::new(layout.blobs())),
            records,
            layout,
            instance,
            meta,
            hash_locks: StripedLocks::new(1024),
            id_locks: StripedLocks::new(256),
            key_locks: StripedLocks::new(256),
            commit: GroupCommit::new(),
            inserts: Batcher::new(),
            ids: Mutex::new(ulid::Generator::new()),
            reserve: 0,
            backups: std::sync::atomic::AtomicUsize::new(0),
            deferred: Mutex::new(Vec::new()),
            counters: Counters::default(),
            in_flight: InFlight::new(),
            lock: None,
            generation: std::sync::atomic::AtomicU64::new(0),
            unsettled: 0,
            started: Started::default(),
            space: None,
            failing: Mutex::new(None),
            failing_set: std::sync::atomic::AtomicBool::new(false),
            damaged: scrub::Damaged::default(),
            scrub: scrub::ScrubState::default(),
        })
    }

    /// The data directory's folders and files.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// This data directory's id, made when it was first prepared.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Where the blobs live: files on the data disk, or objects in a bucket.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// Resumable uploads in progress.
    pub fn partials(&self) -> &partial::Partials {
        &self.partials
    }

    /// S3 multipart uploads in progress.
    pub fn multipart(&self) -> &multipart::Multipart {
        &self.multipart
    }

    /// Collections with a file, and their settings.
    pub fn collections(&self) -> &Collections {
        &self.collections
    }

    /// Where the records are indexed, through the seam a second backend fills.
    pub fn index(&self) -> &dyn MetaBackend {
        &*self.meta
    }

    /// The PostgreSQL database, when the records are there rather than in sled and
    /// `records/` (the shared setup, which any number of instances may serve).
    pub fn database(&self) -> Option<&Arc<PgMeta>> {
        self.meta.shared()
    }

    /// Running totals since the start, for `/metrics`.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The record files under `records/`, the truth the database indexes.
    pub fn record_files(&self) -> &RecordFiles {
        &self.records
    }

    #[cfg(test)]
    pub(crate) fn blob_path(&self, hash: &ContentHash) -> std::path::PathBuf {
        self.blobs
            .local_path(hash)
            .expect("the tests' blobs are files")
    }

    /// An id for a record not made yet, for a writer that must be able to tell after a crash
    /// whether its record was made (see [`NewMedia::id`]).
    pub fn new_media_id(&self) -> MediaId {
        self.new_id()
    }

    fn new_id(&self) -> MediaId {
        let mut gen = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        // The generator only fails when 2^80 ids are made in one millisecond.
        MediaId(gen.generate().unwrap_or_else(|_| ulid::Ulid::new()))
    }

    /// A record by id.
    pub fn get(&self, id: MediaId) -> Result<Option<MediaRecord>, StoreError> {
        self.index().get(id)
    }

    /// A record as the read cache holds it, for paths that only look at it.
    pub fn get_shared(&self, id: MediaId) -> Result<Option<Arc<MediaRecord>>, StoreError> {
        self.index().get_shared(id)
    }

    /// One page of a listing.
    pub fn list(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        self.index().list(q)
    }

    /// How many records use a blob.
    pub fn refcount(&self, hash: &ContentHash) -> Result<u64, StoreError> {
        self.index().refcount(hash)
    }

    /// A record using this blob, public if any public record uses it.
    pub fn representative(
        &self,
        hash: &ContentHash,
    ) -> Result<Option<Arc<MediaRecord>>, StoreError> {
        if let Some(pg) = self.meta.shared() {
            // One round trip rather than two.
            return pg.representative_shared(hash);
        }
        match self.index().representative(hash)? {
            Some(id) => self.index().get_shared(id),
            None => Ok(None),
        }
    }

    /// Counts and sizes for the status page and the metrics, from the counters that every
    /// write keeps in step: as cheap with a million records as with one.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        Ok(Stats {
            totals: self.index().totals()?,
            meta_bytes: self.index().size_on_disk(),
        })
    }

    /// The media adopted from this old path by `import`.
    pub fn by_legacy_path(&self, path: &str) -> Result<Option<MediaRecord>, StoreError> {
        match self.index().by_legacy_path(path)? {
            Some(id) => self.index().get(id),
            None => Ok(None),
        }
    }

    /// The records, by the counters (see [`stats`](Self::stats)).
    pub fn media_count(&self) -> Result<u64, StoreError> {
        Ok(self.index().totals()?.media)
    }

    /// Every record, in id order.
    pub fn all_records(&self) -> impl Iterator<Item = Result<MediaRecord, StoreError>> + '_ {
        self.index().all()
    }

    /// Bytes the database takes on disk.
    pub fn meta_size_on_disk(&self) -> u64 {
        self.index().size_on_disk()
    }

    /// Flushes metadata; used at shutdown.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.index().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::new;
    use super::*;
    use std::sync::Arc;

    /// A blob that no record counts may hold anything a crash left; a new upload of its bytes
    /// replaces it rather than trusting it.
    #[test]
    fn an_uncounted_blob_is_replaced_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let item = new(&store, b"the real bytes");
        let path = store.blob_path(&item.blob.hash);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"the re").unwrap();
        assert!(store
            .verify()
            .unwrap()
            .orphan_blobs
            .contains(&item.blob.hash));
        assert!(
            !store.verify().unwrap().is_damaged(),
            "a short orphan is no damage"
        );
        let r = store.create(vec![item]).unwrap().remove(0);
        assert_eq!(std::fs::read(&path).unwrap(), b"the real bytes");
        assert_eq!(store.refcount(&r.hash).unwrap(), 1);
        // Counted now, so the next copy is deduplicated.
        store.create(vec![new(&store, b"the real bytes")]).unwrap();
        assert_eq!(
            store
                .counters()
                .dedup_hits
                .load(std::sync::atomic::Ordering::SeqCst),
            1
        );
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
        assert_eq!(store.media_count().unwrap(), 0);
        assert!(store.blobs().list().unwrap().is_empty());
    }
}

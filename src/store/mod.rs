//! The store: content-addressed blobs on disk plus metadata in sled, kept in step by the
//! durable write protocol. Nothing here knows about HTTP; callers run these blocking methods
//! on a blocking thread pool.

pub mod archive;
pub mod blobs;
mod cache;
pub mod catalogue;
pub mod check;
mod commit;
mod derived;
pub mod disk;
pub mod hash;
mod health;
pub mod import;
pub mod layout;
pub mod listing;
pub mod maintain;
pub mod meta;
mod parallel;
pub mod rebuild;
pub mod record;
mod record_sync;
pub mod records;
pub mod scrub;
pub mod sniff;
mod space;
mod start;
#[cfg(test)]
mod testing;
pub mod timing;
mod upload_file;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use blobs::{BlobStore, BlobWriter, StagedBlob};
pub use derived::Totals;
pub use hash::ContentHash;
pub use layout::Layout;
pub use listing::{Cursor, ListPage, ListQuery};
pub use record::{Kind, MediaFields, MediaId, MediaPatch, MediaRecord, Visibility};
pub use start::Started;

use catalogue::InFlight;
use commit::{Batcher, GroupCommit, HashLocks, SharedDirSync};
use layout::DirLock;
use meta::MetaStore;
use record_sync::RecordSync;
use records::RecordFiles;
use space::SpaceReserve;

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
    /// The database disagrees with `records/` beyond what a crash explains.
    #[error("{0}")]
    Damaged(String),
    /// Not enough free space for a maintenance step; nothing was changed.
    #[error("{0}")]
    NoRoom(String),
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

    /// An equal error for a second caller: the one of a step that several callers shared.
    pub(crate) fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Invalid { field, expected } => StoreError::Invalid {
                field,
                expected: expected.clone(),
            },
            StoreError::NotFound => StoreError::NotFound,
            StoreError::Io { action, source } => StoreError::Io {
                action,
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            StoreError::NoSpace { free, reserve } => StoreError::NoSpace {
                free: *free,
                reserve: *reserve,
            },
            StoreError::Format(m) => StoreError::Format(m.clone()),
            StoreError::Locked(m) => StoreError::Locked(m.clone()),
            StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
            StoreError::Database(m) => StoreError::Database(m.clone()),
            StoreError::Damaged(m) => StoreError::Damaged(m.clone()),
            StoreError::NoRoom(m) => StoreError::NoRoom(m.clone()),
        }
    }

    /// True for an error that says the disk or the database is failing: an I/O error other
    /// than a full disk or a missing file, or a database error.
    pub fn is_disk_failure(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => {
                !self.is_disk_full()
                    && !self.is_out_of_descriptors()
                    && source.kind() != std::io::ErrorKind::NotFound
            }
            StoreError::Database(_) => true,
            _ => false,
        }
    }

    /// True when the process (EMFILE) or the system (ENFILE) has no file descriptor left: a
    /// passing overload, not a failing disk.
    pub fn is_out_of_descriptors(&self) -> bool {
        matches!(self, StoreError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)))
    }

    /// True when the disk is full (ENOSPC or EDQUOT) or past the reserve.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::NoSpace { .. } | StoreError::NoRoom(_) => true,
            // Kinds rather than errno alone: tempfile wraps its write errors with the path.
            StoreError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }
}

/// What the status page and the metrics show of the store.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Records, blobs that records use, and their sizes (see [`Totals`]).
    pub totals: Totals,
    pub meta_bytes: u64,
}

/// sled's page cache when the caller says nothing (see [`Limits`]).
pub const DEFAULT_DB_CACHE: u64 = 32 << 20;

/// The memory the store may use, as its caller configured it (plain numbers).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// sled's page cache, in bytes.
    pub db_cache: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            db_cache: DEFAULT_DB_CACHE,
        }
    }
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
    pub uploads: std::sync::atomic::AtomicU64,
    pub dedup_hits: std::sync::atomic::AtomicU64,
    pub bytes_stored: std::sync::atomic::AtomicU64,
}

/// Fault injection for the crash tests, which cannot otherwise stop the process between two
/// exact steps: with `SHOEBOX_CRASH_AT=<point>` set, the process runs `before` and aborts when
/// it reaches that point. Unset (always, outside those tests) it costs one comparison.
fn crash_point(point: &str, before: impl FnOnce() -> Result<(), StoreError>) {
    static AT: std::sync::LazyLock<Option<String>> =
        std::sync::LazyLock::new(|| std::env::var("SHOEBOX_CRASH_AT").ok());
    if AT.as_deref() == Some(point) {
        let _ = before();
        eprintln!("SHOEBOX_CRASH_AT={point}: aborting");
        std::process::abort();
    }
}

impl Store {
    /// Opens (or initialises) a data directory: checks `FORMAT`, empties `tmp/`, opens sled.
    /// Nothing more: no lock, no check against `records/`. Servers and commands open a store
    /// with [`start`](Self::start); this is its first step, and the tests' shortcut.
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
        let meta = MetaStore::open(&layout.meta(), limits.db_cache)?;
        Ok(Store {
            blobs: BlobStore::new(layout.blobs(), layout.tmp()),
            record_sync: RecordSync::new(records.clone())
                .map_err(|e| StoreError::io("open records/", e))?,
            root_sync: Arc::new(SharedDirSync::new(layout.blobs())),
            records,
            layout,
            instance,
            meta,
            hash_locks: HashLocks::new(1024),
            id_locks: HashLocks::new(256),
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

    /// Steps 2–5 of the write protocol for a batch of staged uploads, in one round of fsyncs:
    ///
    /// 1. rename each new blob to its content address and write each record file under its
    ///    name, without waiting for the disk;
    /// 2. fsync the blobs and the directories on their paths while, side by side, the records
    ///    are inserted, their counts bumped and the records marked pending in one transaction,
    ///    and sled is flushed (concurrent uploads share that transaction and flush, see
    ///    [`commit_records`](Self::commit_records), and the fsyncs of the blob root);
    /// 3. hand the record files over to be made durable in the background, many at a time
    ///    (see [`record_sync`]), and return. The upload rests on its blob and its record in
    ///    sled; the record file is `rebuild`'s copy. Once it is durable, the record's pending
    ///    mark is cleared with the next upload's transaction.
    ///
    /// Until step 2 returns, a crash can leave any part of this on disk, and until the mark is
    /// cleared, the record file. That is safe because nothing trusts a blob or a record file
    /// that may be incomplete:
    /// - the next start checks every record still marked pending: one whose blob hashes to its
    ///   name is made durable, its file rewritten from sled, and kept (its upload may have
    ///   been acknowledged), any other is rolled back (its upload cannot have been);
    /// - a record file whose record sled does not have is indexed at the next start when its
    ///   blob is whole, and set aside when not (see [`catalogue`]);
    /// - an existing blob is reused only when a record counts it (and is fsynced in this round
    ///   too); an uncounted one may be what a crash left of an upload, and a new upload of the
    ///   same bytes replaces it.
    ///
    /// The hashes' locks are held throughout, so a second upload of the same bytes waits until
    /// the first one's blob is durable before it reuses it.
    pub fn create(&self, items: Vec<NewMedia>) -> Result<Vec<MediaRecord>, StoreError> {
        let created = self.create_records(items);
        self.watch(created)
    }

    fn create_records(&self, items: Vec<NewMedia>) -> Result<Vec<MediaRecord>, StoreError> {
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
            // Before the hashes' locks, as in every writer, so that none waits holding one.
            let _permit = self.in_flight.enter(records.len());
            let _guards = self
                .hash_locks
                .lock_all(records.iter().map(|r| &r.hash.as_bytes()[..]));
            let epoch = self.record_sync.epoch();
            let tasks = match self.place(staged, &records) {
                Ok(placed) => placed,
                Err(e) => {
                    // sled never had these records: their files must not outlive the request
                    // (the blobs are orphans, never reused).
                    self.remove_record_files(&records);
                    return Err(e);
                }
            };
            let durable = parallel::run_all(tasks, || self.commit_records(&records));
            if let Err(e) = durable {
                self.roll_back(&records);
                return Err(e);
            }
            // The marks go once the files are durable, with the next upload's transaction (or
            // at shutdown): one sled write fewer for each upload. A crash before then leaves
            // them to the next start's check.
            self.record_sync.add(records.iter().map(|r| r.id), epoch);
        }
        self.counters
            .uploads
            .fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(records)
    }

    /// Inserts new records, bumps their counts and marks them pending, then flushes sled; the
    /// records of uploads that reach this point together share one transaction and one flush.
    /// An error leaves the records of this call either absent or in sled and pending, for
    /// [`roll_back`](Self::roll_back).
    fn commit_records(&self, records: &[MediaRecord]) -> Result<(), StoreError> {
        self.inserts.submit(records.to_vec(), |batch| {
            let settled = self.take_settled();
            let all: Vec<&MediaRecord> = batch.iter().flatten().collect();
            let inserted = match self.meta.insert_pending(&all, &settled) {
                Ok(()) => batch.iter().map(|_| Ok(())).collect(),
                Err(e) => {
                    self.return_settled(settled);
                    if batch.len() == 1 {
                        return vec![Err(e)];
                    }
                    // One upload's failure (a duplicate id) must not fail the others.
                    batch
                        .iter()
                        .map(|r| self.meta.insert_pending(&r.iter().collect::<Vec<_>>(), &[]))
                        .collect::<Vec<_>>()
                }
            };
            crash_point("upload-after-metadata", || self.meta.flush());
            match self.commit.wait_durable(|| self.meta.flush()) {
                Ok(()) => inserted,
                Err(e) => inserted
                    .into_iter()
                    .map(|r| r.and_then(|()| Err(e.duplicate())))
                    .collect(),
            }
        })
    }

    fn take_settled(&self) -> Vec<MediaId> {
        self.record_sync.take_settled()
    }

    fn return_settled(&self, ids: Vec<MediaId>) {
        self.record_sync.return_settled(ids)
    }

    /// Step 1 of [`create`](Self::create): puts the blobs and record files under their names
    /// and returns the fsyncs that make the blobs durable (the record files are made durable
    /// after them). The caller holds the hashes' locks.
    fn place(
        &self,
        staged: Vec<StagedBlob>,
        records: &[MediaRecord],
    ) -> Result<Vec<parallel::Task>, StoreError> {
        let mut tasks = Vec::new();
        let mut placed = std::collections::HashSet::new();
        let mut dirs = std::collections::BTreeSet::new();
        for blob in staged {
            let counted = placed.contains(&blob.hash)
                || (self.meta.refcount(&blob.hash)? > 0 && self.blobs.exists(&blob.hash));
            if counted {
                // Deduplication: the temp file goes. The stored copy was durable when the
                // upload that counted it was acknowledged; it is fsynced with this round all
                // the same (a no-op write, a cache flush), so this upload's `201` never rests
                // on another upload's outcome, such as one whose failure could not be undone.
                if !placed.contains(&blob.hash) {
                    tasks.push(self.blobs.in_place(&blob.hash)?.durable_tasks(&mut dirs));
                }
                self.counters
                    .dedup_hits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                continue;
            }
            placed.insert(blob.hash);
            let (hash, size) = (blob.hash, blob.size);
            let new = self.blobs.rename_into_place(blob)?;
            // Whole bytes under the name again: a blob the scrub found damaged is healed.
            self.damaged.remove(&hash);
            self.counters
                .bytes_stored
                .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
            tasks.push(new.durable_tasks(&mut dirs));
        }
        for record in records {
            self.records.place(record)?;
        }
        if dirs.remove(self.root_sync.dir()) {
            tasks.push(self.root_sync.task());
        }
        tasks.extend(dirs.into_iter().map(blobs::fsync_dir_task));
        Ok(tasks)
    }

    /// Undoes the records of a [`create`](Self::create) whose files could not be made
    /// durable: the client is told it failed, so the records go. Best effort: what it cannot
    /// undo stays marked pending, and the next start settles it.
    fn roll_back(&self, records: &[MediaRecord]) {
        for r in records {
            match self.meta.delete(r.id) {
                Ok(_) => self.remove_record_files(std::slice::from_ref(r)),
                Err(e) => {
                    tracing::warn!(id = %r.id, error = %e, "could not roll back a failed upload")
                }
            }
        }
    }

    fn remove_record_files(&self, records: &[MediaRecord]) {
        for r in records {
            if let Err(e) = self.records.remove(r.id) {
                tracing::warn!(id = %r.id, error = %e, "could not remove the record file of a failed upload");
            }
        }
    }

    pub fn get(&self, id: MediaId) -> Result<Option<MediaRecord>, StoreError> {
        self.meta.get(id)
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
        let updated = self.update_record(id, patch);
        self.watch(updated)
    }

    fn update_record(&self, id: MediaId, patch: &MediaPatch) -> Result<MediaRecord, StoreError> {
        let _permit = self.in_flight.enter(1);
        self.make_room();
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
    ///
    /// `records/` changes first: the record file becomes a tombstone, durably, and only then
    /// does the database follow. A crash in between leaves the tombstone, and the next start
    /// finishes the delete; once the `204` is sent, no rebuild can bring the record back. The
    /// blob goes last, so a crash never leaves a record without its bytes.
    pub fn delete(&self, id: MediaId) -> Result<bool, StoreError> {
        let deleted = self.delete_record(id);
        self.watch(deleted)
    }

    fn delete_record(&self, id: MediaId) -> Result<bool, StoreError> {
        let _permit = self.in_flight.enter(1);
        self.make_room();
        let key = id.to_key();
        let _id_guard = self.id_locks.lock_all(std::iter::once(&key[..]));
        let Some(existing) = self.meta.get(id)? else {
            return Ok(false);
        };
        let _guard = self
            .hash_locks
            .lock_all(std::iter::once(&existing.hash.as_bytes()[..]));
        let marked = self.records.tombstone(id)?;
        let (record, remaining) = match self.meta.delete(id) {
            Ok(Some(deleted)) => deleted,
            Ok(None) => return Ok(false),
            Err(e) => {
                // The database refused: the record stays, and so must its file.
                if marked {
                    if let Err(undo) = self.records.restore_tombstone(id) {
                        tracing::error!(%id, error = %undo, "could not restore the record file of a delete the database refused; the next start finishes the delete");
                    }
                }
                return Err(e);
            }
        };
        // On an error the tombstone stays, and the next start finishes the delete.
        self.commit.wait_durable(|| self.meta.flush())?;
        if let Err(e) = self.records.clear_tombstone(id) {
            tracing::warn!(%id, error = %e, "could not remove a tombstone; the next start does");
        }
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

    /// Counts and sizes for the status page and the metrics, from the counters that every
    /// write keeps in step: as cheap with a million records as with one.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        Ok(Stats {
            totals: self.meta.totals()?,
            meta_bytes: self.meta.size_on_disk(),
        })
    }

    /// The media adopted from this old path by `import`.
    pub fn by_legacy_path(&self, path: &str) -> Result<Option<MediaRecord>, StoreError> {
        match self.meta.by_legacy_path(path)? {
            Some(id) => self.meta.get(id),
            None => Ok(None),
        }
    }

    /// The records, by the counters (see [`stats`](Self::stats)).
    pub fn media_count(&self) -> Result<u64, StoreError> {
        Ok(self.meta.totals()?.media)
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

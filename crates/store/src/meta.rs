//! Metadata in sled. This module (this file and `meta/`) is the only place that names sled:
//! everything else sees the narrow, typed interface below, so another engine could replace it
//! here alone.
//!
//! Trees (keys are bytes; ids are 16-byte big-endian ULIDs, so they sort by time):
//! - `media`: id → record JSON
//! - `blob_refs`: hash → reference count (u64 big-endian)
//! - `idx_hash`: hash ‖ id → visibility (1 public, 0 private)
//! - `idx_collection`: collection ‖ 0x00 ‖ id → ()
//! - `idx_tag`: tag ‖ 0x00 ‖ id → ()
//! - `idx_kind`: kind ‖ id → ()
//! - `idx_legacy`: old path → id, for media adopted by `import`
//! - `idx_key`: collection (empty outside any) ‖ 0x00 ‖ object key → id; unique: a
//!   transaction that would give a key to a second record fails with
//!   [`StoreError::KeyTaken`]
//! - `state`: health probes and bookkeeping
//! - `pending`: id → () for new records whose files may not be durable yet (see
//!   [`Store::create`](crate::Store::create)); a completed upload's mark goes once its
//!   record file is durable, with the next upload's transaction or at a clean shutdown
//! - `counters`: name → u64 big-endian, the store's [`Totals`] (`media`, `media_bytes`,
//!   `blobs`, `blob_bytes`, `kind:<kind>`); a zero is no entry
//!
//! The index key layouts are in `derived.rs`. Every change to a record, its
//! indexes, its blob's count and the totals happens in one transaction.
//!
//! sled 0.34 runs its transactions one at a time (each holds a global lock from before its
//! first read until it commits, see `concurrency_control.rs` in sled), so counters that every
//! transaction updates add no conflicts or retries; concurrent uploads share one transaction
//! anyway (see [`insert_pending`](MetaStore::insert_pending)).

use std::path::Path;
use std::sync::Arc;

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{IVec, Transactional, Tree};

use super::cache::ReadCache;
use super::derived::{
    changed, differences, expected, index_entries, kind_key, text_key, Delta, Entries, Index,
    Totals,
};
use super::hash::ContentHash;
use super::record::{MediaId, MediaRecord};
use super::StoreError;

/// How many index entries one listing page may examine before it returns what it has and a
/// cursor to continue: a filter that matches little cannot turn one request into a full scan.
const MAX_SCAN: usize = 20_000;

/// Decoded records kept for the file-serving paths, and which record stands for each blob.
const CACHED_RECORDS: usize = 4096;

/// The sled database: records, their indexes, reference counts and totals, and the pending
/// marks of the write path.
pub struct MetaStore {
    db: sled::Db,
    media: Tree,
    refs: Tree,
    by_hash: Tree,
    by_collection: Tree,
    by_tag: Tree,
    by_kind: Tree,
    by_legacy: Tree,
    by_key: Tree,
    state: Tree,
    pending: Tree,
    counters: Tree,
    records: ReadCache<MediaId, Arc<MediaRecord>>,
    representatives: ReadCache<ContentHash, MediaId>,
    /// sled's data file, for the fsync that its flush leaves out.
    file: std::fs::File,
}

type Abortable<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort<T>(e: StoreError) -> Abortable<T> {
    Err(ConflictableTransactionError::Abort(e))
}

fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => sled_error(e),
    }
}

/// A bookkeeping value of the `state` tree, as text.
fn sled_error(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) => StoreError::io("sled", io),
        sled::Error::Corruption { .. } => {
            StoreError::Corrupt(format!("the metadata database is corrupt: {e}"))
        }
        other => StoreError::Database(format!("metadata database error: {other}")),
    }
}

fn decode(bytes: &[u8]) -> Result<MediaRecord, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("a media record does not parse: {e}")))
}

fn encode(record: &MediaRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record)
        .map_err(|e| StoreError::Corrupt(format!("a media record does not serialise: {e}")))
}

fn count_of(v: Option<IVec>) -> u64 {
    v.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// One more record uses a blob, inside a transaction: its count goes up, and the totals
/// count the blob when it had none.
fn count_up(
    refs: &TransactionalTree,
    hash: &ContentHash,
    size: u64,
    delta: &mut Delta,
) -> Abortable<()> {
    let count = count_of(refs.get(hash.as_bytes())?);
    refs.insert(hash.as_bytes(), &(count + 1).to_be_bytes())?;
    if count == 0 {
        delta.add_blob(size);
    }
    Ok(())
}

/// One record fewer uses a blob, inside a transaction; answers the count left (at zero the
/// count goes, and the totals drop the blob).
fn count_down(
    refs: &TransactionalTree,
    hash: &ContentHash,
    size: u64,
    delta: &mut Delta,
) -> Abortable<u64> {
    let count = count_of(refs.get(hash.as_bytes())?);
    let remaining = count.saturating_sub(1);
    if remaining == 0 {
        refs.remove(hash.as_bytes())?;
    } else {
        refs.insert(hash.as_bytes(), &remaining.to_be_bytes())?;
    }
    if count == 1 {
        delta.remove_blob(size);
    }
    Ok(remaining)
}

/// Changes the totals inside a transaction.
fn apply(counters: &TransactionalTree, delta: &Delta) -> Abortable<()> {
    for (key, change) in delta.changes() {
        match changed(count_of(counters.get(key)?), change) {
            0 => counters.remove(key)?,
            n => counters.insert(key, &n.to_be_bytes())?,
        };
    }
    Ok(())
}

/// The index trees inside one transaction.
struct Indexes<'a> {
    by_hash: &'a TransactionalTree,
    by_collection: &'a TransactionalTree,
    by_tag: &'a TransactionalTree,
    by_kind: &'a TransactionalTree,
    by_legacy: &'a TransactionalTree,
    by_key: &'a TransactionalTree,
}

impl Indexes<'_> {
    fn tree(&self, index: Index) -> &TransactionalTree {
        match index {
            Index::Hash => self.by_hash,
            Index::Collection => self.by_collection,
            Index::Tag => self.by_tag,
            Index::Kind => self.by_kind,
            Index::Legacy => self.by_legacy,
            Index::Key => self.by_key,
        }
    }

    /// Adds a record's entries; aborts with [`StoreError::KeyTaken`] when its key is another
    /// record's (remove the record's old entries first when it moves).
    fn add(&self, r: &MediaRecord) -> Abortable<()> {
        for (index, key, value) in index_entries(r) {
            let held = self.tree(index).insert(key, value.as_slice())?;
            if index == Index::Key && held.is_some_and(|id| id.as_ref() != value.as_slice()) {
                return abort(StoreError::KeyTaken {
                    collection: r.collection.clone(),
                    key: r.key().into_owned(),
                });
            }
        }
        Ok(())
    }

    fn remove(&self, r: &MediaRecord) -> Abortable<()> {
        for (index, key, _) in index_entries(r) {
            self.tree(index).remove(key)?;
        }
        Ok(())
    }
}

/// Every tree a change to a record touches, inside one transaction.
struct Tx<'a> {
    media: &'a TransactionalTree,
    refs: &'a TransactionalTree,
    indexes: Indexes<'a>,
    /// The pending marks.
    marks: &'a TransactionalTree,
    counters: &'a TransactionalTree,
}

impl MetaStore {
    /// Runs `change` in one transaction over every tree a record's change touches: the one
    /// place that lists them, for inserts, edits and deletes alike. (sled runs its
    /// transactions one at a time anyway, so trees a change leaves alone cost nothing.)
    fn transaction<T>(&self, change: impl Fn(&Tx<'_>) -> Abortable<T>) -> Result<T, StoreError> {
        (
            &self.media,
            &self.refs,
            &self.by_hash,
            &self.by_collection,
            &self.by_tag,
            &self.by_kind,
            &self.by_legacy,
            &self.by_key,
            &self.pending,
            &self.counters,
        )
            .transaction(
                |(
                    media,
                    refs,
                    by_hash,
                    by_collection,
                    by_tag,
                    by_kind,
                    by_legacy,
                    by_key,
                    marks,
                    counters,
                )| {
                    change(&Tx {
                        media,
                        refs,
                        indexes: Indexes {
                            by_hash,
                            by_collection,
                            by_tag,
                            by_kind,
                            by_legacy,
                            by_key,
                        },
                        marks,
                        counters,
                    })
                },
            )
            .map_err(tx_error)
    }
}

impl MetaStore {
    /// Opens (or creates) the database. `cache_bytes` caps sled's page cache, loosely: sled
    /// settles its cache's accounts in 256 shards, each once 64 page reads have queued up
    /// there (`lru.rs` in sled 0.34), so up to 16,384 page reads go unaccounted, and one scan
    /// of a store's records (some 8,000 pages of about 12 records at 100,000) keeps most of
    /// them in memory beyond the cap: a server on such a store held 72, 87 and 99 MiB after
    /// listing every record with a cap of 8 MiB, 32 MiB and 1 GiB.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        // sled releases its file lock from a background thread after the last handle drops,
        // so a reopen in the same process can briefly find it held: retry for up to a second.
        let mut attempts = 0;
        let db = loop {
            let opened = sled::Config::new()
                .path(path)
                // Durability comes from explicit flushes before every acknowledgement; the
                // background flush only bounds how much unacknowledged work a crash can lose.
                .flush_every_ms(Some(1000))
                .cache_capacity(cache_bytes)
                .open();
            match opened {
                Ok(db) => break db,
                Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                    attempts += 1;
                    if attempts < 50 {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        continue;
                    }
                    return Err(StoreError::Locked(format!(
                        "the metadata database in {} is in use by another process (a running \
                         Shoebox?); stop it first",
                        path.display()
                    )));
                }
                // A full disk is not damage: the database opens again once space is freed.
                Err(sled::Error::Io(io))
                    if matches!(
                        io.kind(),
                        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                    ) =>
                {
                    return Err(StoreError::io("open the metadata database", io))
                }
                Err(other) => {
                    return Err(StoreError::Database(format!(
                        "the metadata database in {} could not be opened ({other})",
                        path.display()
                    )))
                }
            }
        };
        let tree = |name: &str| db.open_tree(name).map_err(sled_error);
        let meta = MetaStore {
            media: tree("media")?,
            refs: tree("blob_refs")?,
            by_hash: tree("idx_hash")?,
            by_collection: tree("idx_collection")?,
            by_tag: tree("idx_tag")?,
            by_kind: tree("idx_kind")?,
            by_legacy: tree("idx_legacy")?,
            by_key: tree("idx_key")?,
            state: tree("state")?,
            pending: tree("pending")?,
            counters: tree("counters")?,
            // sled keeps its log and pages in this one file (sled 0.34 layout).
            file: std::fs::File::open(path.join("db"))
                .map_err(|e| StoreError::io("open the metadata database file", e))?,
            db,
            records: ReadCache::new(CACHED_RECORDS),
            representatives: ReadCache::new(CACHED_RECORDS),
        };
        if meta.counters.is_empty() && !meta.media.is_empty() {
            meta.recount()?;
        }
        // Every record has a key, so records without a key index are from before it.
        if meta.by_key.is_empty() && !meta.media.is_empty() {
            meta.index_keys()?;
        }
        Ok(meta)
    }

    /// A record by id, decoded (from the read cache when it holds it).
    pub fn get(&self, id: MediaId) -> Result<Option<MediaRecord>, StoreError> {
        Ok(self.get_shared(id)?.map(|r| (*r).clone()))
    }

    /// A record without copying it out of the cache.
    pub fn get_shared(&self, id: MediaId) -> Result<Option<Arc<MediaRecord>>, StoreError> {
        self.records.get_or_load(&id, || {
            self.media
                .get(id.to_key())
                .map_err(sled_error)?
                .map(|b| decode(&b).map(Arc::new))
                .transpose()
        })
    }

    /// How many records use a blob.
    pub fn refcount(&self, hash: &ContentHash) -> Result<u64, StoreError> {
        Ok(count_of(
            self.refs.get(hash.as_bytes()).map_err(sled_error)?,
        ))
    }

    /// A record that uses this blob, preferring a public one: the blob is public exactly when
    /// the returned record is.
    pub fn representative(&self, hash: &ContentHash) -> Result<Option<MediaId>, StoreError> {
        self.representatives
            .get_or_load(hash, || self.scan_representative(hash))
    }

    fn scan_representative(&self, hash: &ContentHash) -> Result<Option<MediaId>, StoreError> {
        let mut first = None;
        for entry in self.by_hash.scan_prefix(hash.as_bytes()) {
            let (key, v) = entry.map_err(sled_error)?;
            let id = MediaId::from_key(&key[32..])
                .ok_or_else(|| StoreError::Corrupt("a hash index key has a malformed id".into()))?;
            if v.as_ref() == [1] {
                return Ok(Some(id));
            }
            first.get_or_insert(id);
        }
        Ok(first)
    }

    /// Every record, in id order; for verification and rebuilds.
    pub fn all(&self) -> impl Iterator<Item = Result<MediaRecord, StoreError>> + '_ {
        self.media
            .iter()
            .map(|e| e.map_err(sled_error).and_then(|(_, v)| decode(&v)))
    }

    /// The media adopted from an old path, if any.
    pub fn by_legacy_path(&self, path: &str) -> Result<Option<MediaId>, StoreError> {
        Ok(self
            .by_legacy
            .get(path.as_bytes())
            .map_err(sled_error)?
            .and_then(|v| MediaId::from_key(&v)))
    }

    /// The ids of every record, in order, without reading the records: from the kind index,
    /// which the record's own transaction writes and whose keys (kind ‖ id, no value) are the
    /// smallest that hold every id. Reading them through the `media` tree would bring every
    /// record into sled's cache, which outgrows its cap on such a scan (about 40 MiB at
    /// 100,000 records; see [`open`](Self::open)).
    pub fn ids(&self) -> Result<Vec<MediaId>, StoreError> {
        let mut ids = self
            .by_kind
            .iter()
            .keys()
            .map(|k| {
                let k = k.map_err(sled_error)?;
                k.get(1..)
                    .and_then(MediaId::from_key)
                    .ok_or_else(|| StoreError::Corrupt("a kind index key has no id".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort_unstable();
        Ok(ids)
    }

    /// Whether a record exists, without decoding it (or filling the read cache).
    pub fn contains(&self, id: MediaId) -> Result<bool, StoreError> {
        self.media.contains_key(id.to_key()).map_err(sled_error)
    }

    /// The records, counted one key at a time: a scan, for checks that must not trust the
    /// counters (the seal, a rebuild); [`totals`](Self::totals) says the same at once.
    pub fn media_count(&self) -> usize {
        self.media.len()
    }

    /// Makes every committed transaction durable. Blocking: call it off the async runtime.
    ///
    /// sled's own flush writes its log with `sync_file_range` on Linux, which neither flushes
    /// the disk's write cache nor persists the file's size, so it is followed by an fdatasync
    /// of the database file (<https://github.com/spacejam/sled/issues/1452>).
    pub fn flush(&self) -> Result<(), StoreError> {
        super::timing::fsync(|| self.db.flush())
            .map(|_| ())
            .map_err(sled_error)?;
        super::timing::fsync(|| self.file.sync_data())
            .map_err(|e| StoreError::io("fsync the metadata database", e))
    }

    /// Writes, flushes, reads back and removes a probe key.
    pub fn probe(&self) -> Result<(), StoreError> {
        let key = b"health-probe";
        let value: [u8; 16] = rand::random();
        self.state.insert(key, &value).map_err(sled_error)?;
        self.flush()?;
        let read = self.state.get(key).map_err(sled_error)?;
        self.state.remove(key).map_err(sled_error)?;
        if read.as_deref() != Some(&value[..]) {
            return Err(StoreError::Corrupt(
                "the health probe read back different bytes".into(),
            ));
        }
        Ok(())
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

mod change;
mod derived;
mod keys;
mod list;
mod state;

#[cfg(test)]
mod tests;

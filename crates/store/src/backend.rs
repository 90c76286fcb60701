//! The seams a second backend fills: where the bytes live ([`BlobBackend`]) and where the
//! records are indexed ([`MetaBackend`]). Local files ([`BlobStore`]) and sled
//! ([`MetaStore`]) are the first implementations. The server reaches blobs and records only
//! through [`Store`](crate::Store)'s methods and these traits, never through the local types.
//!
//! What each method promises is what the write path (see [`write`](crate::write)) needs for
//! its crash argument; a second backend keeps the same promises in its own way (an object
//! that is complete in its bucket, a committed PostgreSQL transaction).
//!
//! Still local to the sled setup, and outside these traits: the start-up check against
//! `records/`, `rebuild`, the quarantine of damaged blobs, and the hashing walks of `verify`
//! and the scrub, which read blob files by path.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use crate::blobs::Placed;
use crate::meta::MetaStore;
use crate::{
    BlobStore, BlobWriter, ContentHash, KeysFrom, ListPage, ListQuery, MediaId, MediaRecord,
    StagedBlob, StoreError, Totals,
};

/// Where blobs live, under their content address.
pub trait BlobBackend: Send + Sync {
    /// Step 1 of the write path: a new upload, written and hashed as it arrives. Dropping the
    /// writer, or the staged blob it ends in, leaves nothing behind.
    fn stage(&self) -> Result<BlobWriter, StoreError>;

    /// Step 2: puts a staged blob under its content address, replacing what may be there (the
    /// same bytes, or what a crash left of them). The blob may be relied on only once the
    /// returned [`Placed`]'s fsyncs have run; the write path runs them beside the database's
    /// flush.
    fn place(&self, staged: StagedBlob) -> Result<Placed, StoreError>;

    /// A stored blob that a new record is about to reuse, to be made durable again in the
    /// same round, so that the new record never rests on another upload's outcome.
    fn reuse(&self, hash: &ContentHash) -> Result<Placed, StoreError>;

    /// Opens a blob for reading; ranges are read with positioned reads on the file.
    fn open(&self, hash: &ContentHash) -> Result<File, StoreError>;

    /// The blob's file, where this backend keeps blobs as local files: the server serves it
    /// from that path with its own file path (non-blocking positioned reads, the small-file
    /// cache), with no copy and no extra hand-off.
    fn local_path(&self, hash: &ContentHash) -> Option<PathBuf>;

    /// Whether a blob is stored under this address (whole or not).
    fn exists(&self, hash: &ContentHash) -> bool;

    /// Whether the blob under `hash` is whole: `size` bytes that hash to its name. It reads
    /// the whole blob; callers ask for a bounded few.
    fn holds_whole(&self, hash: &ContentHash, size: u64) -> bool;

    /// Removes a blob whose last record is gone, durably. The caller holds the hash's lock
    /// and has made the records' change durable first, so a crash leaves an orphan, never a
    /// record without its bytes.
    fn remove(&self, hash: &ContentHash) -> Result<(), StoreError>;

    /// Every stored blob's address, for `gc` and `verify`.
    fn list(&self) -> Result<Vec<ContentHash>, StoreError>;
}

impl BlobBackend for BlobStore {
    fn stage(&self) -> Result<BlobWriter, StoreError> {
        BlobStore::stage(self)
    }

    fn place(&self, staged: StagedBlob) -> Result<Placed, StoreError> {
        self.rename_into_place(staged)
    }

    fn reuse(&self, hash: &ContentHash) -> Result<Placed, StoreError> {
        self.in_place(hash)
    }

    fn open(&self, hash: &ContentHash) -> Result<File, StoreError> {
        File::open(self.path_for(hash)).map_err(|e| StoreError::io("open a blob", e))
    }

    fn local_path(&self, hash: &ContentHash) -> Option<PathBuf> {
        Some(self.path_for(hash))
    }

    fn exists(&self, hash: &ContentHash) -> bool {
        BlobStore::exists(self, hash)
    }

    fn holds_whole(&self, hash: &ContentHash, size: u64) -> bool {
        BlobStore::holds_whole(self, hash, size)
    }

    fn remove(&self, hash: &ContentHash) -> Result<(), StoreError> {
        BlobStore::remove(self, hash)
    }

    fn list(&self) -> Result<Vec<ContentHash>, StoreError> {
        Ok(self
            .list_files()?
            .into_iter()
            .map(|(hash, _)| hash)
            .collect())
    }
}

/// Where records are indexed: by id, by blob (reference counts), by the listing's orders and
/// filters, with running totals. The record and index operations that the server and the
/// commands use.
pub trait MetaBackend: Send + Sync {
    /// A record by id.
    fn get(&self, id: MediaId) -> Result<Option<MediaRecord>, StoreError>;

    /// A record as the read cache holds it, for paths that only look at it.
    fn get_shared(&self, id: MediaId) -> Result<Option<Arc<MediaRecord>>, StoreError>;

    /// One page of a listing.
    fn list(&self, q: &ListQuery) -> Result<ListPage, StoreError>;

    /// The distinct collections of the records `q` matches, by name (see
    /// [`Store::collections_in_use`](crate::Store::collections_in_use)).
    fn collections_in_use(&self, q: &ListQuery) -> Result<Vec<String>, StoreError>;

    /// Step 3 of the write path: inserts new records with their counts and indexes, marked
    /// pending until their record files are durable, and clears the marks of `settled`, all
    /// in one transaction. Durable only after [`flush`](Self::flush).
    fn insert_pending(
        &self,
        records: &[&MediaRecord],
        settled: &[MediaId],
    ) -> Result<(), StoreError>;

    /// Replaces a record with its edited form, moving its index entries.
    fn replace(&self, old: &MediaRecord, new: &MediaRecord) -> Result<(), StoreError>;

    /// Replaces a record with a version naming other bytes (a keyed upload's replacement),
    /// moving its index entries and both blobs' counts in one step; answers the count the old
    /// blob has left. Durable only after [`flush`](Self::flush).
    fn replace_content(&self, old: &MediaRecord, new: &MediaRecord) -> Result<u64, StoreError>;

    /// Deletes a record; returns it with the count its blob has left.
    fn delete(&self, id: MediaId) -> Result<Option<(MediaRecord, u64)>, StoreError>;

    /// How many records use a blob.
    fn refcount(&self, hash: &ContentHash) -> Result<u64, StoreError>;

    /// A record using this blob, public if any public record uses it.
    fn representative(&self, hash: &ContentHash) -> Result<Option<MediaId>, StoreError>;

    /// The record `import` adopted from this old path.
    fn by_legacy_path(&self, path: &str) -> Result<Option<MediaId>, StoreError>;

    /// The record holding an object key in a collection (`None`: outside any).
    fn by_key(&self, collection: Option<&str>, key: &str) -> Result<Option<MediaId>, StoreError>;

    /// Up to `limit` keys of a collection that start with `prefix`, with their records'
    /// ids, in the keys' byte order, from `from`; by seeking, not scanning.
    fn keys(
        &self,
        collection: Option<&str>,
        prefix: &str,
        from: KeysFrom<'_>,
        limit: usize,
    ) -> Result<Vec<(String, MediaId)>, StoreError>;

    /// The collections that hold records (`None` for records outside any), in byte order.
    fn collections(&self) -> Result<Vec<Option<String>>, StoreError>;

    /// Whether a collection holds no record.
    fn collection_is_empty(&self, collection: Option<&str>) -> Result<bool, StoreError>;

    /// Records, blobs that records use, and their sizes, kept by every write.
    fn totals(&self) -> Result<Totals, StoreError>;

    /// Every record, in id order.
    fn all(&self) -> Box<dyn Iterator<Item = Result<MediaRecord, StoreError>> + '_>;

    /// Makes every change so far durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Bytes the index takes on disk.
    fn size_on_disk(&self) -> u64;
}

impl MetaBackend for MetaStore {
    fn get(&self, id: MediaId) -> Result<Option<MediaRecord>, StoreError> {
        MetaStore::get(self, id)
    }

    fn get_shared(&self, id: MediaId) -> Result<Option<Arc<MediaRecord>>, StoreError> {
        MetaStore::get_shared(self, id)
    }

    fn list(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        MetaStore::list(self, q)
    }

    fn collections_in_use(&self, q: &ListQuery) -> Result<Vec<String>, StoreError> {
        MetaStore::collections_in_use(self, q)
    }

    fn insert_pending(
        &self,
        records: &[&MediaRecord],
        settled: &[MediaId],
    ) -> Result<(), StoreError> {
        MetaStore::insert_pending(self, records, settled)
    }

    fn replace(&self, old: &MediaRecord, new: &MediaRecord) -> Result<(), StoreError> {
        MetaStore::replace(self, old, new)
    }

    fn replace_content(&self, old: &MediaRecord, new: &MediaRecord) -> Result<u64, StoreError> {
        MetaStore::replace_content(self, old, new)
    }

    fn delete(&self, id: MediaId) -> Result<Option<(MediaRecord, u64)>, StoreError> {
        MetaStore::delete(self, id)
    }

    fn refcount(&self, hash: &ContentHash) -> Result<u64, StoreError> {
        MetaStore::refcount(self, hash)
    }

    fn representative(&self, hash: &ContentHash) -> Result<Option<MediaId>, StoreError> {
        MetaStore::representative(self, hash)
    }

    fn by_legacy_path(&self, path: &str) -> Result<Option<MediaId>, StoreError> {
        MetaStore::by_legacy_path(self, path)
    }

    fn by_key(&self, collection: Option<&str>, key: &str) -> Result<Option<MediaId>, StoreError> {
        MetaStore::by_key(self, collection, key)
    }

    fn keys(
        &self,
        collection: Option<&str>,
        prefix: &str,
        from: KeysFrom<'_>,
        limit: usize,
    ) -> Result<Vec<(String, MediaId)>, StoreError> {
        MetaStore::keys(self, collection, prefix, from, limit)
    }

    fn collections(&self) -> Result<Vec<Option<String>>, StoreError> {
        MetaStore::collections(self)
    }

    fn collection_is_empty(&self, collection: Option<&str>) -> Result<bool, StoreError> {
        MetaStore::collection_is_empty(self, collection)
    }

    fn totals(&self) -> Result<Totals, StoreError> {
        MetaStore::totals(self)
    }

    fn all(&self) -> Box<dyn Iterator<Item = Result<MediaRecord, StoreError>> + '_> {
        Box::new(MetaStore::all(self))
    }

    fn flush(&self) -> Result<(), StoreError> {
        MetaStore::flush(self)
    }

    fn size_on_disk(&self) -> u64 {
        MetaStore::size_on_disk(self)
    }
}

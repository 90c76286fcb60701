//! The seams a second backend fills: where the bytes live ([`Blobs`](crate::Blobs): files
//! on the data disk, or objects in a bucket) and where the records are indexed
//! ([`MetaBackend`]; sled's [`MetaStore`] is the first). The server reaches blobs and records
//! only through [`Store`](crate::Store)'s methods and these, never through the local types.
//!
//! What each method promises is what the write path (see [`write`](crate::write)) needs for
//! its crash argument; a second backend keeps the same promises in its own way (an object
//! that is complete in its bucket, a committed PostgreSQL transaction).
//!
//! Still local to the sled setup, and outside these traits: the start-up check against
//! `records/`, `rebuild`, the quarantine of damaged blobs, and the hashing walks of `verify`
//! and the scrub, which read blob files by path.

use std::sync::Arc;

use crate::meta::MetaStore;
use crate::{ContentHash, KeysFrom, ListPage, ListQuery, MediaId, MediaRecord, StoreError, Totals};

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

/// The store's index: sled on the data directory, or PostgreSQL shared by every instance.
/// Dereferences to the [`MetaBackend`] seam, through which the write path and the reads go;
/// what only sled has (the pending marks, its state and counters, the rebuild) is reached
/// through [`sled`](Index::sled), which the shared setup refuses.
// One per store, never moved about: the size of sled's handle costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Index {
    /// sled under `meta/`, indexing `records/`.
    Sled(MetaStore),
    /// PostgreSQL, the source of truth for records shared by any number of instances.
    Shared(Arc<crate::PgMeta>),
}

impl Index {
    /// sled, for the parts of the store that exist only with it.
    pub(crate) fn sled(&self) -> Result<&MetaStore, StoreError> {
        match self {
            Index::Sled(meta) => Ok(meta),
            Index::Shared(_) => Err(StoreError::NotHere(
                "this step needs sled and records/; the records of this store are in \
                 PostgreSQL, which is their truth"
                    .into(),
            )),
        }
    }

    /// PostgreSQL, when the records are there.
    pub(crate) fn shared(&self) -> Option<&Arc<crate::PgMeta>> {
        match self {
            Index::Sled(_) => None,
            Index::Shared(pg) => Some(pg),
        }
    }
}

impl std::ops::Deref for Index {
    type Target = dyn MetaBackend;

    fn deref(&self) -> &Self::Target {
        match self {
            Index::Sled(meta) => meta,
            Index::Shared(pg) => &**pg,
        }
    }
}

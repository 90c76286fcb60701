//! The object keys' index (`idx_key`): a record by its key, the keys of a bucket in order
//! from any point, and the buckets in use, each found by seeking rather than scanning.

use std::ops::Bound;

use super::{sled_error, MetaStore};
use crate::derived::{bucket_key, bucket_prefix};
use crate::listing::KeysFrom;
use crate::record::MediaId;
use crate::StoreError;

/// The id an `idx_key` entry names.
fn id_of(value: &[u8]) -> Result<MediaId, StoreError> {
    MediaId::from_key(value)
        .ok_or_else(|| StoreError::Corrupt("a key index entry has a malformed id".into()))
}

impl MetaStore {
    /// The record holding `key` in `collection` (`None`: outside any collection).
    pub fn by_key(
        &self,
        collection: Option<&str>,
        key: &str,
    ) -> Result<Option<MediaId>, StoreError> {
        self.by_key
            .get(bucket_key(collection, key))
            .map_err(sled_error)?
            .map(|v| id_of(&v))
            .transpose()
    }

    /// Up to `limit` keys of `collection` that start with `prefix`, with their records' ids,
    /// in the keys' byte order, from `from`: one seek, then one entry per key.
    pub fn keys(
        &self,
        collection: Option<&str>,
        prefix: &str,
        from: KeysFrom<'_>,
        limit: usize,
    ) -> Result<Vec<(String, MediaId)>, StoreError> {
        let first = bucket_key(collection, prefix);
        let start = match from {
            KeysFrom::Start => Bound::Included(first.clone()),
            KeysFrom::After(key) => Bound::Excluded(bucket_key(collection, key)),
            KeysFrom::Past(common) => {
                // UTF-8 never holds the byte 0xff: every key that starts with `common` sorts
                // before `common` ‖ 0xff, and every later key after it.
                let mut past = bucket_key(collection, common);
                past.push(0xff);
                Bound::Included(past)
            }
        };
        // A start before the prefix's first key seeks to that key instead.
        let start = match start {
            Bound::Included(k) | Bound::Excluded(k) if k < first => Bound::Included(first.clone()),
            other => other,
        };
        let skip = bucket_prefix(collection).len();
        let mut found = Vec::new();
        for entry in self.by_key.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            if found.len() == limit {
                break;
            }
            let (k, v) = entry.map_err(sled_error)?;
            if !k.starts_with(&first) {
                break;
            }
            let key = String::from_utf8(k[skip..].to_vec())
                .map_err(|_| StoreError::Corrupt("a key index entry is not UTF-8".into()))?;
            found.push((key, id_of(&v)?));
        }
        Ok(found)
    }

    /// The collections that hold records, in byte order of their names, `None` (records
    /// outside any collection) first: one seek per collection, past its keys.
    pub fn collections(&self) -> Result<Vec<Option<String>>, StoreError> {
        let mut found = Vec::new();
        let mut from = Vec::new();
        while let Some(entry) = self.by_key.range(from.clone()..).next() {
            let (k, _) = entry.map_err(sled_error)?;
            let end = k
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| StoreError::Corrupt("a key index entry has no collection".into()))?;
            let name = std::str::from_utf8(&k[..end]).map_err(|_| {
                StoreError::Corrupt("a key index entry's collection is not UTF-8".into())
            })?;
            found.push((!name.is_empty()).then(|| name.to_owned()));
            // The smallest key past every `name` ‖ 0x00 ‖ …: no name holds a control byte.
            from = k[..end].to_vec();
            from.push(1);
        }
        Ok(found)
    }

    /// Whether no record is in `collection` (`None`: outside any collection).
    pub fn collection_is_empty(&self, collection: Option<&str>) -> Result<bool, StoreError> {
        Ok(self
            .by_key
            .scan_prefix(bucket_prefix(collection))
            .next()
            .transpose()
            .map_err(sled_error)?
            .is_none())
    }

    /// Indexes the keys of a database written before it kept them, once, in one batch: its
    /// records have no key stored, and each is indexed under `{id}/{filename}` (see
    /// [`MediaRecord::key`](crate::MediaRecord::key)), unique by its id. A record that does not
    /// decode is left out; `verify` reports it.
    pub(super) fn index_keys(&self) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let mut indexed = 0usize;
        for record in self.all().filter_map(Result::ok) {
            batch.insert(
                bucket_key(record.collection.as_deref(), &record.key()),
                &record.id.to_key()[..],
            );
            indexed += 1;
        }
        self.by_key.apply_batch(batch).map_err(sled_error)?;
        tracing::info!(
            records = indexed,
            "indexed the object keys of a database from before they were kept"
        );
        Ok(())
    }

    /// Makes the database one from before keys were kept: no key stored in any record, and
    /// no key index.
    #[cfg(test)]
    pub(crate) fn forget_keys(&self) {
        for record in self.all().map(Result::unwrap) {
            let mut old = record.clone();
            old.key = None;
            self.media
                .insert(old.id.to_key(), super::encode(&old).unwrap())
                .unwrap();
        }
        self.by_key.clear().unwrap();
        self.records.clear();
        self.flush().unwrap();
    }

    /// Sets or removes a key index entry behind the transactions' back, as damage would.
    #[cfg(test)]
    pub(crate) fn set_key_entry(&self, collection: Option<&str>, key: &str, id: Option<MediaId>) {
        let entry = bucket_key(collection, key);
        match id {
            Some(id) => self.by_key.insert(entry, &id.to_key()[..]).map(drop),
            None => self.by_key.remove(entry).map(drop),
        }
        .unwrap();
    }
}

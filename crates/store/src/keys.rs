//! Object keys, for the S3 API: buckets are collections (records outside any collection form
//! the bucket `default`), objects are records, and every record has a key, unique in its
//! collection (see [`MediaRecord::key`]). This file reads them; a keyed upload that creates or
//! replaces is [`Store::put`].
//!
//! Every lookup seeks in the key index: a record by its key, a page of keys from any point
//! (after a key, or past every key under a common prefix), the collections in use (one seek
//! each, past its keys).

use crate::{KeysFrom, MediaRecord, Store, StoreError};

impl Store {
    /// The record holding `key` in `collection` (`None`: outside any collection).
    pub fn by_key(
        &self,
        collection: Option<&str>,
        key: &str,
    ) -> Result<Option<MediaRecord>, StoreError> {
        match self.index().by_key(collection, key)? {
            Some(id) => self.index().get(id),
            None => Ok(None),
        }
    }

    /// Up to `limit` records of `collection` whose keys start with `prefix`, in the byte order
    /// of their keys (UTF-8, so the order of code points, as S3 lists), strictly after
    /// `after` when given. It seeks to where it starts: a page costs its own records, not
    /// those before it.
    ///
    /// A listing with a delimiter continues past a common prefix it rolled up with
    /// [`list_keys_past`](Self::list_keys_past).
    pub fn list_keys(
        &self,
        collection: Option<&str>,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MediaRecord>, StoreError> {
        let from = after.map_or(KeysFrom::Start, KeysFrom::After);
        self.records_by_key(collection, prefix, from, limit)
    }

    /// [`list_keys`](Self::list_keys) from the first key after every key that starts with
    /// `past`, in one seek: how a listing with a delimiter skips the keys under a common
    /// prefix it has just rolled up (`past` = the prefix, delimiter included), however many
    /// there are.
    pub fn list_keys_past(
        &self,
        collection: Option<&str>,
        prefix: &str,
        past: &str,
        limit: usize,
    ) -> Result<Vec<MediaRecord>, StoreError> {
        self.records_by_key(collection, prefix, KeysFrom::Past(past), limit)
    }

    fn records_by_key(
        &self,
        collection: Option<&str>,
        prefix: &str,
        from: KeysFrom<'_>,
        limit: usize,
    ) -> Result<Vec<MediaRecord>, StoreError> {
        let mut records = Vec::new();
        let mut last: Option<String> = None;
        while records.len() < limit {
            let from = last.as_deref().map_or(from, KeysFrom::After);
            let wanted = limit - records.len();
            let found = self.index().keys(collection, prefix, from, wanted)?;
            let ended = found.len() < wanted;
            last = found.last().map(|(key, _)| key.clone());
            for (_, id) in found {
                // A record deleted since its key was read is left out, and the page filled
                // from further on.
                if let Some(r) = self.index().get(id)? {
                    records.push(r);
                }
            }
            if ended {
                break;
            }
        }
        Ok(records)
    }

    /// The collections that hold records as S3 sees them, `None` for the records outside any
    /// (the bucket `default`), in byte order
    /// of their names (`None` first): one seek each, past its keys, however many records it
    /// holds.
    pub fn buckets_in_use(&self) -> Result<Vec<Option<String>>, StoreError> {
        self.index().collections()
    }

    /// Whether `collection` (`None`: outside any) holds no record.
    pub fn collection_is_empty(&self, collection: Option<&str>) -> Result<bool, StoreError> {
        self.index().collection_is_empty(collection)
    }
}

#[cfg(test)]
mod tests;

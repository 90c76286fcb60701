//! Listing pages of records, newest first, from the index that narrows the scan most; and
//! the cursor that continues a page without naming a record its caller cannot see.

use sled::Tree;

use super::{decode, kind_key, sled_error, text_key, MetaStore, MAX_SCAN};
use crate::record::MediaId;
use crate::{Cursor, ListPage, ListQuery, StoreError};

impl MetaStore {
    /// One page of records, newest first.
    pub fn list(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        self.list_scanning(q, MAX_SCAN)
    }

    /// [`list`](Self::list), examining at most `max_scan` index entries.
    pub(super) fn list_scanning(
        &self,
        q: &ListQuery,
        max_scan: usize,
    ) -> Result<ListPage, StoreError> {
        // Drive the scan from the most selective index the query names.
        let (tree, prefix): (&Tree, Vec<u8>) = if let Some(c) = &q.collection {
            (&self.by_collection, text_key(c, None))
        } else if let Some(t) = &q.tag {
            (&self.by_tag, text_key(t, None))
        } else if let Some(k) = q.kind {
            (&self.by_kind, kind_key(k, None))
        } else {
            (&self.media, Vec::new())
        };
        // Where the scan starts, and how many records of its first millisecond an earlier
        // page scanned already (see `Cursor`).
        let (end, carried, carried_ms) = match q.before {
            Some(Cursor::After(id)) => (Some(id.to_key()), 0, 0),
            Some(Cursor::At { ms, skip }) => (
                Some(MediaId(ulid::Ulid::from_parts(ms + 1, 0)).to_key()),
                skip,
                ms,
            ),
            None => (None, 0, 0),
        };
        let iter = match end {
            Some(end) => {
                let mut upper = prefix.clone();
                upper.extend_from_slice(&end);
                tree.range(prefix.clone()..upper)
            }
            None if prefix.is_empty() => tree.iter(),
            None => tree.scan_prefix(&prefix),
        };
        let mut items = Vec::new();
        let mut to_skip = carried;
        let mut scanned = 0;
        // The last record scanned, and whether the caller sees it.
        let mut last: Option<(MediaId, bool)> = None;
        for entry in iter.rev() {
            let (key, value) = entry.map_err(sled_error)?;
            let id = MediaId::from_key(&key[prefix.len()..])
                .ok_or_else(|| StoreError::Corrupt("an index key has a malformed id".into()))?;
            if to_skip > 0 && id.0.timestamp_ms() == carried_ms {
                to_skip -= 1;
                continue;
            }
            if items.len() == q.limit {
                // The last record scanned is the last one listed: its caller saw it.
                return Ok(ListPage {
                    items,
                    next: last.map(|(id, _)| Cursor::After(id)),
                });
            }
            if scanned == max_scan {
                let next = match last {
                    Some((id, true)) => Some(Cursor::After(id)),
                    Some((id, false)) => Some(self.resume_at(tree, &prefix, id)?),
                    None => None,
                };
                return Ok(ListPage { items, next });
            }
            scanned += 1;
            let record = if prefix.is_empty() {
                decode(&value)?
            } else {
                match self.get(id)? {
                    Some(r) => r,
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "an index names media {id}, which does not exist"
                        )))
                    }
                }
            };
            let seen = q.matches(&record);
            if seen {
                items.push(record);
            }
            last = Some((id, seen));
        }
        Ok(ListPage { items, next: None })
    }

    /// The distinct collections of the records `q` matches, by name (see
    /// [`Store::collections_in_use`](crate::Store::collections_in_use)).
    pub fn collections_in_use(&self, q: &ListQuery) -> Result<Vec<String>, StoreError> {
        self.collections_scanning(q, MAX_SCAN)
    }

    /// [`collections_in_use`](Self::collections_in_use), reading at most `max_scan` records.
    /// `idx_collection` sorts by name first: from each collection's first entry, the next
    /// collection is one seek away, past `name ‖ 0x01` (a name holds no control character, so
    /// that sorts after every `name ‖ 0x00 ‖ id` and before any longer name).
    pub(super) fn collections_scanning(
        &self,
        q: &ListQuery,
        max_scan: usize,
    ) -> Result<Vec<String>, StoreError> {
        // A record's own fields cannot change the answer: its index entry alone says enough.
        let every = q.include_private && q.tag.is_none() && q.kind.is_none() && q.q.is_none();
        let mut from = q
            .collection
            .as_deref()
            .map_or_else(Vec::new, |c| text_key(c, None));
        let mut found = Vec::new();
        let mut scanned = 0;
        while let Some(entry) = self.by_collection.range(from.clone()..).next() {
            let (key, _) = entry.map_err(sled_error)?;
            let end = key.iter().position(|b| *b == 0).ok_or_else(|| {
                StoreError::Corrupt("an idx_collection key has no separator".into())
            })?;
            let name = std::str::from_utf8(&key[..end])
                .map_err(|_| StoreError::Corrupt("an idx_collection key is not UTF-8".into()))?;
            if q.collection.as_deref().is_some_and(|c| c != name) {
                break;
            }
            let prefix = &key[..=end];
            let mut seen = every;
            if !every {
                for entry in self.by_collection.scan_prefix(prefix).rev() {
                    if scanned == max_scan {
                        return Ok(found);
                    }
                    scanned += 1;
                    let (key, _) = entry.map_err(sled_error)?;
                    let id = MediaId::from_key(&key[prefix.len()..]).ok_or_else(|| {
                        StoreError::Corrupt("an index key has a malformed id".into())
                    })?;
                    let Some(record) = self.get_shared(id)? else {
                        return Err(StoreError::Corrupt(format!(
                            "an index names media {id}, which does not exist"
                        )));
                    };
                    if q.matches(&record) {
                        seen = true;
                        break;
                    }
                }
            }
            if seen {
                found.push(name.to_owned());
            }
            from = key[..end].to_vec();
            from.push(1);
        }
        Ok(found)
    }

    /// The cursor that continues a scan after `id` without naming it: its millisecond, and
    /// how many records of that millisecond the scan has passed (those not older than `id`).
    fn resume_at(&self, tree: &Tree, prefix: &[u8], id: MediaId) -> Result<Cursor, StoreError> {
        let ms = id.0.timestamp_ms();
        let key = |id: MediaId| {
            let mut k = prefix.to_vec();
            k.extend_from_slice(&id.to_key());
            k
        };
        let mut passed = 0u32;
        for entry in tree.range(key(id)..key(MediaId(ulid::Ulid::from_parts(ms + 1, 0)))) {
            entry.map_err(sled_error)?;
            passed += 1;
        }
        Ok(Cursor::At { ms, skip: passed })
    }
}

//! What the database derives from its records (reference counts, indexes, totals), checked
//! against what the records imply, recreated from them, and counted.

use super::*;

impl MetaStore {
    /// Every stored reference count.
    pub fn refcounts(&self) -> Result<Vec<(ContentHash, u64)>, StoreError> {
        self.refs
            .iter()
            .map(|e| {
                let (k, v) = e.map_err(sled_error)?;
                let hash = ContentHash::from_slice(&k).ok_or_else(|| {
                    StoreError::Corrupt("a reference count key is not a hash".into())
                })?;
                Ok((hash, count_of(Some(v))))
            })
            .collect()
    }

    /// The trees [`expected`] derives, in its order.
    pub(super) fn derived_trees(&self) -> [&Tree; 8] {
        [
            &self.refs,
            &self.by_hash,
            &self.by_collection,
            &self.by_tag,
            &self.by_kind,
            &self.by_legacy,
            &self.by_key,
            &self.counters,
        ]
    }

    /// Compares the counts, indexes and totals with what the records imply; one line per
    /// difference.
    pub fn derived_problems(&self, records: &[MediaRecord]) -> Result<Vec<String>, StoreError> {
        let mut problems = Vec::new();
        for ((name, expected), tree) in expected(records).into_iter().zip(self.derived_trees()) {
            let actual = tree
                .iter()
                .map(|e| e.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .collect::<Result<Entries, _>>()
                .map_err(sled_error)?;
            problems.extend(differences(name, &expected, &actual));
        }
        Ok(problems)
    }

    /// Recreates every count, index and total from the records. Offline repair only.
    pub fn rederive(&self, records: &[MediaRecord]) -> Result<(), StoreError> {
        for ((_, expected), tree) in expected(records).into_iter().zip(self.derived_trees()) {
            tree.clear().map_err(sled_error)?;
            for (k, v) in expected {
                tree.insert(k, v).map_err(sled_error)?;
            }
        }
        self.representatives.clear();
        self.records.clear();
        self.flush()
    }

    /// Counts the totals of a database written before it kept them, once: records exist but
    /// no counter does (every record adds to `media`, so a database that kept them has
    /// one). A record that does not decode is left out; `verify` reports it.
    pub(super) fn recount(&self) -> Result<(), StoreError> {
        let totals = Totals::of(self.all().filter_map(Result::ok));
        let mut batch = sled::Batch::default();
        for (k, v) in totals.entries() {
            batch.insert(k, v);
        }
        self.counters.apply_batch(batch).map_err(sled_error)?;
        tracing::info!(
            records = totals.media,
            "counted the totals of a database from before they were kept"
        );
        Ok(())
    }

    /// What the store holds, from its counters: a few keys, whatever the store's size.
    pub fn totals(&self) -> Result<Totals, StoreError> {
        let entries = self
            .counters
            .iter()
            .map(|e| e.map(|(k, v)| (k, count_of(Some(v)))))
            .collect::<Result<Vec<_>, _>>()
            .map_err(sled_error)?;
        Ok(Totals::from_entries(
            entries.iter().map(|(k, v)| (k.as_ref(), *v)),
        ))
    }

    /// Removes a record's entry from the kind index behind the transactions' back.
    #[cfg(test)]
    pub(crate) fn drop_kind_entry(&self, r: &MediaRecord) {
        self.by_kind.remove(kind_key(r.kind, Some(r.id))).unwrap();
    }

    /// Sets a counter behind the transactions' back, as damage would.
    #[cfg(test)]
    pub(crate) fn set_counter(&self, name: &str, value: u64) {
        self.counters
            .insert(name.as_bytes(), &value.to_be_bytes())
            .unwrap();
    }
}

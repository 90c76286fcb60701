//! Changes to records, each one transaction over every tree it touches (`transaction` in
//! `meta.rs`): inserts, edits, replacements of the bytes, deletes.

use super::*;

impl MetaStore {
    /// Inserts new records and bumps their blobs' reference counts, all in one transaction.
    pub fn insert(&self, records: &[MediaRecord]) -> Result<(), StoreError> {
        self.insert_marked(&records.iter().collect::<Vec<_>>(), false, &[])
    }

    /// [`insert`](Self::insert), marking the records pending in the same transaction: their
    /// files are still being made durable. The same transaction clears the marks of `settled`,
    /// earlier records whose files are durable now; [`settle`](Self::settle) clears marks on
    /// its own.
    pub fn insert_pending(
        &self,
        records: &[&MediaRecord],
        settled: &[MediaId],
    ) -> Result<(), StoreError> {
        self.insert_marked(records, true, settled)
    }

    fn insert_marked(
        &self,
        records: &[&MediaRecord],
        pending: bool,
        settled: &[MediaId],
    ) -> Result<(), StoreError> {
        let encoded = records
            .iter()
            .map(|r| encode(r))
            .collect::<Result<Vec<_>, _>>()?;
        let result = self.transaction(|tx| {
            let mut delta = Delta::default();
            for id in settled {
                tx.marks.remove(&id.to_key())?;
            }
            for (record, bytes) in records.iter().zip(&encoded) {
                if pending {
                    tx.marks.insert(&record.id.to_key(), &[])?;
                }
                if tx
                    .media
                    .insert(&record.id.to_key(), bytes.as_slice())?
                    .is_some()
                {
                    return abort(StoreError::Corrupt(format!(
                        "media id {} already exists",
                        record.id
                    )));
                }
                count_up(tx.refs, &record.hash, record.size, &mut delta)?;
                tx.indexes.add(record)?;
                delta.add_record(record);
            }
            apply(tx.counters, &delta)
        });
        // A new public record can make its blob public.
        self.representatives.forget(records.iter().map(|r| &r.hash));
        self.records.forget(records.iter().map(|r| &r.id));
        result
    }

    /// Replaces a record and re-indexes it in one transaction. Fails with `NotFound` when the
    /// record is gone, and refuses to overwrite a record that is no longer `old`, or to change
    /// its bytes (the reference counts go by them).
    pub fn replace(&self, old: &MediaRecord, new: &MediaRecord) -> Result<(), StoreError> {
        if (old.id, old.hash, old.size) != (new.id, new.hash, new.size) {
            return Err(StoreError::Corrupt(format!(
                "an edit of media {} would change its id or its bytes",
                old.id
            )));
        }
        let bytes = encode(new)?;
        let result = self.transaction(|tx| {
            let Some(current) = tx.media.get(old.id.to_key())? else {
                return abort(StoreError::NotFound);
            };
            if decode(&current).or_else(abort)? != *old {
                return abort(StoreError::Changed(format!(
                    "media {} changed during an edit; try again",
                    old.id
                )));
            }
            tx.indexes.remove(old)?;
            tx.indexes.add(new)?;
            tx.media.insert(&new.id.to_key(), bytes.as_slice())?;
            // Nothing, unless the kind changed (an edit cannot change it; a record file
            // adopted at start-up might).
            let mut delta = Delta::default();
            delta.remove_record(old);
            delta.add_record(new);
            apply(tx.counters, &delta)
        });
        self.representatives.forget([&old.hash, &new.hash]);
        self.records.forget([&old.id]);
        result
    }

    /// Replaces a record with a version that names other bytes (a keyed upload's replacement;
    /// an edit goes through [`replace`](Self::replace), which refuses that), in one
    /// transaction: the record, its index entries, both blobs' counts and the totals. Answers
    /// the count the old blob has left. Fails with `NotFound` when the record is gone, and
    /// refuses to overwrite a record that is no longer `old` or to change its id.
    pub fn replace_content(&self, old: &MediaRecord, new: &MediaRecord) -> Result<u64, StoreError> {
        if old.id != new.id {
            return Err(StoreError::Corrupt(format!(
                "a replacement of media {} would change its id",
                old.id
            )));
        }
        let bytes = encode(new)?;
        let result = self.transaction(|tx| {
            let Some(current) = tx.media.get(old.id.to_key())? else {
                return abort(StoreError::NotFound);
            };
            if decode(&current).or_else(abort)? != *old {
                return abort(StoreError::Changed(format!(
                    "media {} changed during a replacement; try again",
                    old.id
                )));
            }
            tx.indexes.remove(old)?;
            tx.indexes.add(new)?;
            tx.media.insert(&new.id.to_key(), bytes.as_slice())?;
            let mut delta = Delta::default();
            delta.remove_record(old);
            delta.add_record(new);
            // Down before up: the same bytes again leave the count as it was.
            count_down(tx.refs, &old.hash, old.size, &mut delta)?;
            count_up(tx.refs, &new.hash, new.size, &mut delta)?;
            apply(tx.counters, &delta)?;
            Ok(count_of(tx.refs.get(old.hash.as_bytes())?))
        });
        self.representatives.forget([&old.hash, &new.hash]);
        self.records.forget([&old.id]);
        result
    }

    /// Removes a record and its index entries and decrements its blob's count, in one
    /// transaction. Returns the record and the blob's remaining count.
    pub fn delete(&self, id: MediaId) -> Result<Option<(MediaRecord, u64)>, StoreError> {
        let result = self.transaction(|tx| {
            tx.marks.remove(&id.to_key())?;
            let Some(bytes) = tx.media.remove(&id.to_key())? else {
                return Ok(None);
            };
            let record = decode(&bytes).or_else(abort)?;
            tx.indexes.remove(&record)?;
            let mut delta = Delta::default();
            let remaining = count_down(tx.refs, &record.hash, record.size, &mut delta)?;
            delta.remove_record(&record);
            apply(tx.counters, &delta)?;
            Ok(Some((record, remaining)))
        });
        if let Ok(Some((record, _))) = &result {
            self.representatives.forget([&record.hash]);
        }
        self.records.forget([&id]);
        result
    }
}

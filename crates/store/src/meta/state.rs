//! What the database keeps besides records and their indexes: small values the store keeps
//! about itself (the last verify and backup, the catalogue's generation), and the pending marks
//! of records whose files the write path has not yet made durable.

use sled::IVec;

use super::{sled_error, MetaStore};
use crate::record::MediaId;
use crate::StoreError;

fn state_text(v: &IVec) -> String {
    String::from_utf8_lossy(v).into_owned()
}

impl MetaStore {
    /// A small value the store keeps about itself (the last verify, the catalogue's
    /// generation).
    pub fn get_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .state
            .get(key.as_bytes())
            .map_err(sled_error)?
            .map(|v| state_text(&v)))
    }

    /// Sets one of those values; durable with the next flush.
    pub fn set_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.state
            .insert(key.as_bytes(), value.as_bytes())
            .map_err(sled_error)?;
        Ok(())
    }

    /// Removes a bookkeeping key, answering its value.
    pub fn take_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .state
            .remove(key.as_bytes())
            .map_err(sled_error)?
            .map(|v| state_text(&v)))
    }

    /// Clears the pending marks of records whose files are now durable. Not flushed: a mark
    /// that a crash keeps only costs the next start a check.
    pub fn settle(&self, ids: impl Iterator<Item = MediaId>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for id in ids {
            batch.remove(&id.to_key());
        }
        self.pending.apply_batch(batch).map_err(sled_error)
    }

    /// The records still marked pending, oldest first.
    pub fn pending(&self) -> Result<Vec<MediaId>, StoreError> {
        self.pending
            .iter()
            .keys()
            .map(|k| {
                let k = k.map_err(sled_error)?;
                MediaId::from_key(&k)
                    .ok_or_else(|| StoreError::Corrupt("a pending mark has a malformed id".into()))
            })
            .collect()
    }
}

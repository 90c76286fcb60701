//! Edits and deletes: `records/` changes first, durably (a replaced file, a tombstone), then
//! the database, whose flush concurrent writers share (see `commit.rs`).

use super::create::claim;
use crate::record;
use crate::{ContentHash, MediaId, MediaPatch, MediaRecord, Store, StoreError};

impl Store {
    /// Edits a record's editable fields; durable before it returns. A move to a collection
    /// where another record holds its key fails with [`StoreError::KeyTaken`], and changes
    /// nothing.
    pub fn update(&self, id: MediaId, patch: &MediaPatch) -> Result<MediaRecord, StoreError> {
        let updated = self.update_record(id, patch);
        self.watch(updated)
    }

    fn update_record(&self, id: MediaId, patch: &MediaPatch) -> Result<MediaRecord, StoreError> {
        // A record's key never changes, so where a move takes it is known before its lock.
        let moved_to = match &patch.collection {
            Some(collection) => {
                let mut r = self.meta.get(id)?.ok_or(StoreError::NotFound)?;
                r.collection.clone_from(collection);
                Some(claim(&r))
            }
            None => None,
        };
        self.change(id, moved_to.as_deref(), |record| {
            patch.apply(record);
            record.updated_at = record::now();
        })
    }

    /// Records what was learned of a stored file after its upload (a video's length and size,
    /// its poster's state); durable before it returns. Not an edit: `updated_at` stays.
    pub fn learned(
        &self,
        id: MediaId,
        learn: impl Fn(&mut MediaRecord),
    ) -> Result<MediaRecord, StoreError> {
        let learned = self.change(id, None, learn);
        self.watch(learned)
    }

    /// A change to one record: its file first, durably, then the database. `claim` is the
    /// bucket and key the record moves to, when it changes collection: its lock is held, and
    /// the key checked free, before anything is written.
    fn change(
        &self,
        id: MediaId,
        claim: Option<&[u8]>,
        apply: impl Fn(&mut MediaRecord),
    ) -> Result<MediaRecord, StoreError> {
        if self.meta.shared().is_some() {
            return self.change_shared(id, &apply);
        }
        let _permit = self.in_flight.enter(1);
        self.make_room();
        let record = {
            let _key = self.key_locks.lock_all(claim.into_iter());
            let key = id.to_key();
            let _guard = self.id_locks.lock_all(std::iter::once(&key[..]));
            let mut record = self.meta.get(id)?.ok_or(StoreError::NotFound)?;
            let old = record.clone();
            apply(&mut record);
            if claim.is_some() {
                let key = record.key();
                let held = self.meta.by_key(record.collection.as_deref(), &key)?;
                if held.is_some_and(|holder| holder != id) {
                    return Err(StoreError::KeyTaken {
                        collection: record.collection.clone(),
                        key: key.into_owned(),
                    });
                }
            }
            self.records.write(&record)?;
            if let Err(e) = self.meta.replace(&old, &record) {
                // The database refused: the record file goes back to the version it has.
                if let Err(undo) = self.records.write(&old) {
                    tracing::error!(%id, error = %undo, "could not restore the record file of an edit the database refused; the next start takes the edit");
                }
                return Err(e);
            }
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
        if let Some(pg) = self.meta.shared() {
            return self.delete_shared(pg, &existing);
        }
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
            self.release_blob(record.hash)?;
        }
        Ok(true)
    }

    /// The last step of a delete or a replacement, once the database's change is durable: a
    /// blob whose last record went is removed, or kept until the backup in progress ends. The
    /// caller holds the hash's lock.
    pub(crate) fn release_blob(&self, hash: ContentHash) -> Result<(), StoreError> {
        if self.backups.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            // A backup may have read the record already; it still needs the bytes.
            self.deferred
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(hash);
            Ok(())
        } else {
            self.remove_unused(&hash).map(drop)
        }
    }

    /// Removes a blob that no record counts; answers whether it went. With sled the caller
    /// knows the count is zero and holds the hash's lock; with PostgreSQL the count is read
    /// again under the blob's advisory lock, which uploads on every instance take.
    pub(crate) fn remove_unused(&self, hash: &ContentHash) -> Result<bool, StoreError> {
        match self.meta.shared() {
            Some(pg) => self.remove_unused_shared(pg, hash),
            None => self.blobs.remove(hash).map(|()| true),
        }
    }

    /// Unlinks blobs whose deletion waited for a backup, if still unused.
    pub(crate) fn unlink_deferred(&self) {
        let hashes = std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|p| p.into_inner()));
        for hash in hashes {
            let _guard = self
                .hash_locks
                .lock_all(std::iter::once(&hash.as_bytes()[..]));
            if self.meta.refcount(&hash).ok() == Some(0) {
                if let Err(e) = self.remove_unused(&hash) {
                    tracing::warn!(%hash, error = %e, "could not remove a blob after a backup; gc will");
                }
            }
        }
    }
}

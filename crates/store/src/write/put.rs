//! [`Store::put`]: a keyed upload, which makes the record holding its key, or replaces that
//! record's bytes and fields in place.

use super::{crash_point, parallel};
use crate::derived::bucket_key;
use crate::record;
use crate::{ContentHash, MediaRecord, NewMedia, Store, StoreError};

/// What [`Store::put`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Put {
    /// The record holding the key now.
    pub record: MediaRecord,
    /// When a record held the key already and was replaced (keeping its id and
    /// `created_at`): the hash of the bytes it named before. `None` when the put made the
    /// record.
    pub replaced: Option<ContentHash>,
}

impl Store {
    /// A keyed upload (the S3 API's PUT of an object): `item.fields.key` names the object in
    /// `item.fields.collection` and must be given.
    ///
    /// When no record holds the key, this is [`create`](Self::create) of the one item: the same
    /// protocol, pending mark and group commit. When one does, that record is replaced in
    /// place. It keeps its id (its `/m/{id}` address keeps working), its `created_at`, and its
    /// `legacy_path` unless the upload gives one; everything else is the upload's, as `create`
    /// would make it (bytes, type, kind, filename, picture size, the fields; what was learned
    /// of the old bytes, such as a video's length, goes), and `updated_at` is now.
    /// [`NewMedia::id`] is not used then.
    ///
    /// A replacement changes `records/` before the database, as an edit does, and the new
    /// bytes are durable before anything names them:
    /// 1. the new blob goes under its content address (or a stored copy that a record counts
    ///    is reused) and is made durable;
    /// 2. the new record file is written durably;
    /// 3. one transaction swaps the record, moves its index entries, both blobs' counts and
    ///    the totals; then sled is flushed (a flush shared with concurrent writers);
    /// 4. the old blob, when no record uses it any more, is removed (once no backup runs).
    ///
    /// A crash after 1 leaves an orphan blob, which `gc` removes. After 2, the record file
    /// names the new bytes, durable already, while the database still has the old record,
    /// whose blob is still there (it goes only after 3): the next start finds the file newer
    /// than the record and takes it, moving the counts (see [`catalogue`](crate::catalogue)),
    /// so the record comes back whole in one version, old or new. After 3, the old blob may be
    /// left, an orphan. If the database refuses 3, the old record file is written back.
    ///
    /// The key's lock is held from the lookup to the end, so two puts of a new key never both
    /// make a record; the record's id lock and both hashes' locks are held as an edit and a
    /// delete hold them.
    pub fn put(&self, item: NewMedia) -> Result<Put, StoreError> {
        let put = self.put_record(item);
        self.watch(put)
    }

    fn put_record(&self, item: NewMedia) -> Result<Put, StoreError> {
        let key = match &item.fields.key {
            Some(key) => record::object_key(key)?,
            None => return Err(StoreError::invalid("key", "given for a keyed upload")),
        };
        let collection = item.fields.collection.clone();
        let claim = bucket_key(collection.as_deref(), &key);
        let now = record::now();
        // Before the locks, as in every writer, so that none waits holding one.
        let _permit = self.in_flight.enter(1);
        let _key = self.key_locks.lock_all(std::iter::once(&claim[..]));
        let (new, blob) = self.new_record(item, now)?;
        let mut blob = Some(blob);
        // The key's lock is this instance's: with records in PostgreSQL another instance may
        // make the key's record, change it or delete it between the lookup and the commit.
        // The commit then fails (the key is taken, the record changed or gone) and the put
        // is made again, from a second link to the staged bytes.
        let mut attempts = if self.meta.shared().is_some() { 3 } else { 1 };
        loop {
            attempts -= 1;
            let staged = blob
                .take()
                .ok_or_else(|| StoreError::Corrupt("a put lost its staged bytes".into()))?;
            if attempts > 0 {
                blob = Some(staged.linked(&self.layout.tmp())?);
            }
            match self.put_once(&new, staged, collection.as_deref(), &key) {
                Err(
                    StoreError::KeyTaken { .. } | StoreError::NotFound | StoreError::Changed(_),
                ) if attempts > 0 => {}
                done => return done,
            }
        }
    }

    /// One try of [`put`](Self::put), under the key's lock.
    fn put_once(
        &self,
        new: &MediaRecord,
        blob: crate::StagedBlob,
        collection: Option<&str>,
        key: &str,
    ) -> Result<Put, StoreError> {
        let holder = self.meta.by_key(collection, key)?;
        let id_key = holder.map(|id| id.to_key());
        let _id = self.id_locks.lock_all(id_key.iter().map(|k| &k[..]));
        // Under its id's lock, the holder is checked again: an edit to another collection or
        // a delete may have taken it away from the key (none can bring another to it: that
        // takes the key's lock).
        let held = match holder {
            Some(id) => self
                .meta
                .get(id)?
                .filter(|r| r.collection.as_deref() == collection && r.key() == key),
            None => None,
        };
        let Some(old) = held else {
            let record = self
                .commit_new(vec![new.clone()], vec![blob])?
                .pop()
                .ok_or_else(|| StoreError::Corrupt("a put created nothing".into()))?;
            return Ok(Put {
                record,
                replaced: None,
            });
        };
        let new = MediaRecord {
            id: old.id,
            created_at: old.created_at,
            legacy_path: new.legacy_path.clone().or_else(|| old.legacy_path.clone()),
            ..new.clone()
        };
        self.make_room();
        let hashes = [old.hash, new.hash];
        let _hashes = self
            .hash_locks
            .lock_all(hashes.iter().map(|h| &h.as_bytes()[..]));
        let remaining = match self.meta.shared() {
            Some(pg) => self.replace_shared(pg, &old, &new, blob)?,
            None => self.replace_local(&old, &new, blob)?,
        };
        if remaining == 0 {
            // The replacement is durable: a blob left behind is only an orphan for `gc`.
            if let Err(e) = self.release_blob(old.hash) {
                tracing::warn!(hash = %old.hash, error = %e, "could not remove the blob a replacement left unused; gc will");
            }
        }
        Ok(Put {
            record: new,
            replaced: Some(old.hash),
        })
    }

    /// The replacement's steps 1 to 3 with sled and `records/` (see [`put`](Self::put));
    /// answers the count the old blob has left.
    fn replace_local(
        &self,
        old: &MediaRecord,
        new: &MediaRecord,
        blob: crate::StagedBlob,
    ) -> Result<u64, StoreError> {
        let tasks = self.place_blobs(vec![blob])?;
        parallel::run_all(tasks, || Ok(()))?;
        self.records.write(new)?;
        crash_point("put-replaced-record-file", || Ok(()));
        let remaining = match self.meta.replace_content(old, new) {
            Ok(remaining) => remaining,
            Err(e) => {
                // The database refused: the record file goes back to the version it has.
                if let Err(undo) = self.records.write(old) {
                    tracing::error!(id = %old.id, error = %undo, "could not restore the record file of a replacement the database refused; the next start takes the new version");
                }
                return Err(e);
            }
        };
        crash_point("put-replaced-metadata", || self.meta.flush());
        self.commit.wait_durable(|| self.meta.flush())?;
        Ok(remaining)
    }
}

#[cfg(test)]
mod tests;

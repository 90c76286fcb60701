//! The write path when the records are in PostgreSQL (`SHOEBOX_DATABASE_URL`), which any
//! number of instances share: no `records/`, no pending marks, no flush. A committed
//! transaction is the durability point, and the blobs are in a bucket (or, for one instance,
//! under `blobs/`).
//!
//! A new upload:
//! 1. its blob, unless a record counts it already, goes to its content address: a PUT (or
//!    multipart upload) that makes the whole object appear at once, or a rename and fsync on
//!    disk;
//! 2. one transaction locks the blobs' hashes (see [`PgMeta::insert_guarded`]), checks that
//!    each blob no record counts is in place, sending it again from the staged copy if a
//!    removal on another instance took it since 1, inserts the records and raises the counts,
//!    and commits;
//! 3. the caller answers `201`.
//!
//! A crash before 2's commit leaves at most an object that no record counts, which `gc`
//! removes once it is older than its grace period (an upload between 1 and 2 on another
//! instance is younger). After the commit, the record and its whole blob are there.
//!
//! A delete commits the record's removal and the lower count first; a blob whose count
//! reached zero is then removed under its lock, if no upload has counted it meanwhile. A crash
//! in between leaves an orphan for `gc`, never a record without its blob.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::create::crash_point;
use crate::pg::{EnsureBlobs, RemoveBlob};
use crate::{Blobs, ContentHash, MediaId, MediaRecord, PgMeta, StagedBlob, Store, StoreError};

/// How many times an edit is tried when other instances keep changing its record.
const EDIT_ATTEMPTS: u32 = 5;

/// The check run under the blobs' locks (see [`PgMeta::insert_guarded`]): each blob that no
/// record counts must be in place; one that a removal took is sent again from its staged
/// copy in `copies`.
fn ensure_blobs(blobs: Blobs, copies: HashMap<ContentHash, (PathBuf, u64)>) -> EnsureBlobs {
    Arc::new(move |uncounted: &[ContentHash]| {
        for hash in uncounted {
            if blobs.exists(hash)? {
                continue;
            }
            match (&blobs, copies.get(hash)) {
                (Blobs::Bucket { bucket, .. }, Some((path, size))) => {
                    tracing::info!(%hash, "a blob was removed before its upload counted it: sending it again");
                    bucket.upload(hash, path, *size)?;
                }
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "the blob {hash} went missing before its upload counted it"
                    )))
                }
            }
        }
        Ok(())
    })
}

impl Store {
    /// [`commit_new`](Self::commit_new) for records in PostgreSQL (see the module above).
    pub(crate) fn commit_shared(
        &self,
        pg: &PgMeta,
        records: Vec<MediaRecord>,
        staged: Vec<StagedBlob>,
    ) -> Result<Vec<MediaRecord>, StoreError> {
        // Uploads of the same bytes on this instance take turns, as with sled; the advisory
        // locks order them against the other instances.
        let hashes: Vec<ContentHash> = records.iter().map(|r| r.hash).collect();
        let _guards = self
            .hash_locks
            .lock_all(hashes.iter().map(|h| &h.as_bytes()[..]));
        let mut sent = HashSet::new();
        // Staged copies kept until the commit, to send again if a removal takes the object.
        let mut kept: HashMap<ContentHash, StagedBlob> = HashMap::new();
        for blob in staged {
            if sent.contains(&blob.hash) || kept.contains_key(&blob.hash) {
                self.counters.dedup_hits.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if pg.refcount(&blob.hash)? > 0 {
                // Counted now, checked again under the lock.
                self.counters.dedup_hits.fetch_add(1, Ordering::Relaxed);
                kept.insert(blob.hash, blob);
                continue;
            }
            let (hash, size) = (blob.hash, blob.size);
            match &self.blobs {
                Blobs::Bucket { bucket, .. } => {
                    bucket.upload(&hash, blob.path(), size)?;
                    kept.insert(hash, blob);
                }
                Blobs::Disk(disk) => disk.rename_into_place(blob)?.sync_now()?,
            }
            sent.insert(hash);
            self.counters
                .bytes_stored
                .fetch_add(size, Ordering::Relaxed);
        }
        // The blobs are under their names, whole, and nothing counts them yet.
        crash_point("upload-after-blobs", || Ok(()));
        let copies = kept
            .iter()
            .map(|(hash, blob)| (*hash, (blob.path().to_owned(), blob.size)))
            .collect();
        let ensure = ensure_blobs(self.blobs.clone(), copies);
        let rows: Vec<&MediaRecord> = records.iter().collect();
        pg.insert_guarded(&rows, ensure)?;
        drop(kept);
        crash_point("upload-after-metadata", || Ok(()));
        self.counters
            .uploads
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(records)
    }

    /// Removes a blob that no record counts, under its lock in PostgreSQL; answers whether
    /// it went. The caller holds the hash's lock on this instance.
    pub(crate) fn remove_unused_shared(
        &self,
        pg: &PgMeta,
        hash: &ContentHash,
    ) -> Result<bool, StoreError> {
        let blobs = self.blobs.clone();
        let remove: RemoveBlob = Arc::new(move |hash: &ContentHash| blobs.remove(hash));
        pg.remove_unused(hash, remove)
    }

    /// An edit in PostgreSQL: read, apply, and one transaction that writes the new version
    /// if the record is still the one read. An edit committed in between on another
    /// instance makes it read and apply again (a few times, then
    /// [`StoreError::Changed`]). A key taken by the move is refused by the key's unique
    /// index, whichever instance took it.
    pub(crate) fn change_shared(
        &self,
        id: MediaId,
        apply: &dyn Fn(&mut MediaRecord),
    ) -> Result<MediaRecord, StoreError> {
        let key = id.to_key();
        let _guard = self.id_locks.lock_all(std::iter::once(&key[..]));
        let mut attempt = 1;
        loop {
            let old = self.meta.get(id)?.ok_or(StoreError::NotFound)?;
            let mut record = old.clone();
            apply(&mut record);
            match self.meta.replace(&old, &record) {
                Err(StoreError::Changed(_)) if attempt < EDIT_ATTEMPTS => attempt += 1,
                Err(e) => return Err(e),
                Ok(()) => return Ok(record),
            }
        }
    }

    /// Deletes a record in PostgreSQL: the record and its blob's count in one transaction,
    /// then the blob if no record counts it any more.
    pub(crate) fn delete_shared(
        &self,
        pg: &PgMeta,
        record: &MediaRecord,
    ) -> Result<bool, StoreError> {
        let _guard = self
            .hash_locks
            .lock_all(std::iter::once(&record.hash.as_bytes()[..]));
        let Some((deleted, remaining)) = pg.delete(record.id)? else {
            return Ok(false);
        };
        if remaining == 0 {
            // The delete has committed: a blob left behind is only an orphan for `gc`.
            if let Err(e) = self.release_blob(deleted.hash) {
                tracing::warn!(hash = %deleted.hash, error = %e, "could not remove the blob a delete left unused; gc will");
            }
        }
        Ok(true)
    }

    /// A keyed upload's replacement of `old` by `new` (new bytes) in PostgreSQL: the new
    /// blob to its address, then one transaction under its lock; answers the count the old
    /// blob has left. The caller holds both hashes' locks on this instance.
    pub(crate) fn replace_shared(
        &self,
        pg: &PgMeta,
        old: &MediaRecord,
        new: &MediaRecord,
        blob: StagedBlob,
    ) -> Result<u64, StoreError> {
        let (hash, size) = (blob.hash, blob.size);
        let counted = pg.refcount(&hash)? > 0;
        let kept = match (&self.blobs, counted) {
            (_, true) => {
                self.counters.dedup_hits.fetch_add(1, Ordering::Relaxed);
                Some(blob)
            }
            (Blobs::Bucket { bucket, .. }, false) => {
                bucket.upload(&hash, blob.path(), size)?;
                Some(blob)
            }
            (Blobs::Disk(disk), false) => {
                disk.rename_into_place(blob)?.sync_now()?;
                None
            }
        };
        let copies = kept
            .iter()
            .map(|b| (b.hash, (b.path().to_owned(), b.size)))
            .collect();
        let ensure = ensure_blobs(self.blobs.clone(), copies);
        let remaining = pg.replace_content_guarded(old, new, ensure)?;
        drop(kept);
        Ok(remaining)
    }
}

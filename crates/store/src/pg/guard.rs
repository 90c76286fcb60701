//! Blobs guarded across instances: the advisory locks that keep an upload of some bytes and
//! the removal of the same bytes' blob apart, whichever instances they run on.
//!
//! A blob's object may be removed only while no record counts it, and a new record may count
//! a blob only while its object is there. Both are decided under the blob's advisory lock
//! (`pg_advisory_xact_lock`, held to the end of a transaction):
//! - an upload, in the transaction that inserts its records, locks their hashes, asks which
//!   blobs no record counts yet, has those checked to be in place (and sent again if a
//!   removal took them), and only then inserts the records and raises the counts;
//! - a removal, in a transaction of its own, locks the hash, finds that no record counts it,
//!   and removes the object before it lets go.
//!
//! So a removal either ends before the upload looks (and the upload sends the bytes again),
//! or starts after the upload's commit (and finds the blob counted). A delete does not take
//! the lock: lowering a count is always safe, and the removal that follows a count of zero
//! takes it. Locks are taken in the hashes' byte order, like the count rows, so two uploads
//! cannot deadlock on them.

use std::collections::BTreeSet;
use std::sync::Arc;

use deadpool_postgres::Transaction;

use super::change::{insert_rows, replace_content_row, transact, Step};
use super::fault::Fault;
use super::row::{hash_bytes, Columns};
use super::PgMeta;
use crate::{ContentHash, MediaRecord, StoreError};

/// Run with the hashes that no record counts, under their locks: answers once each of their
/// objects is in place. Called on a blocking thread.
pub type EnsureBlobs = Arc<dyn Fn(&[ContentHash]) -> Result<(), StoreError> + Send + Sync>;

/// Removes one blob's object, under its lock, once no record counts it. Called on a blocking
/// thread.
pub type RemoveBlob = Arc<dyn Fn(&ContentHash) -> Result<(), StoreError> + Send + Sync>;

/// A blob's advisory lock: its hash's first 8 bytes. Two hashes that share them share a lock,
/// which costs only some waiting.
fn lock_key(hash: &ContentHash) -> i64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    i64::from_be_bytes(first)
}

/// Locks the hashes in byte order and answers those that no record counts.
async fn lock_and_find_uncounted(
    tx: &Transaction<'_>,
    hashes: &BTreeSet<ContentHash>,
) -> Result<Vec<ContentHash>, Fault> {
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1)")
        .await?;
    let keys: BTreeSet<i64> = hashes.iter().map(lock_key).collect();
    for key in &keys {
        tx.execute(&lock, &[key]).await?;
    }
    let counted = tx
        .prepare_cached("SELECT hash FROM blobs WHERE hash = $1 AND refs > 0")
        .await?;
    let mut uncounted = Vec::new();
    for hash in hashes {
        if tx
            .query_opt(&counted, &[&hash_bytes(hash)])
            .await?
            .is_none()
        {
            uncounted.push(*hash);
        }
    }
    Ok(uncounted)
}

/// Runs a blocking blob step off the client's workers.
async fn blocking<T: Send + 'static>(
    step: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Fault> {
    match tokio::task::spawn_blocking(step).await {
        Ok(answer) => answer.map_err(Fault::from),
        Err(e) => Err(StoreError::Corrupt(format!("a blob step failed: {e}")).into()),
    }
}

async fn ensure_uncounted(
    tx: &Transaction<'_>,
    hashes: &BTreeSet<ContentHash>,
    ensure: &EnsureBlobs,
) -> Result<(), Fault> {
    let uncounted = lock_and_find_uncounted(tx, hashes).await?;
    if !uncounted.is_empty() {
        let ensure = ensure.clone();
        blocking(move || ensure(&uncounted)).await?;
    }
    Ok(())
}

/// The new records' columns, their blobs, and the blobs' check.
type Insert = (Vec<Columns>, BTreeSet<ContentHash>, EnsureBlobs);

fn insert_guarded_rows<'t>(tx: &'t Transaction<'t>, args: &'t Insert) -> Step<'t, ()> {
    Box::pin(async move {
        let (rows, hashes, ensure) = args;
        ensure_uncounted(tx, hashes, ensure).await?;
        insert_rows(tx, rows).await
    })
}

/// The old record and the new one's columns, the new blob, and its check.
type Replace = ((MediaRecord, Columns), BTreeSet<ContentHash>, EnsureBlobs);

fn replace_guarded_row<'t>(tx: &'t Transaction<'t>, args: &'t Replace) -> Step<'t, u64> {
    Box::pin(async move {
        let (change, hashes, ensure) = args;
        ensure_uncounted(tx, hashes, ensure).await?;
        replace_content_row(tx, change).await
    })
}

fn remove_unused_row<'t>(
    tx: &'t Transaction<'t>,
    args: &'t (ContentHash, RemoveBlob),
) -> Step<'t, bool> {
    Box::pin(async move {
        let (hash, remove) = args;
        let uncounted = lock_and_find_uncounted(tx, &BTreeSet::from([*hash])).await?;
        if uncounted.is_empty() || backup_running(tx).await? {
            return Ok(false);
        }
        let (hash, remove) = (*hash, remove.clone());
        blocking(move || remove(&hash)).await?;
        Ok(true)
    })
}

impl PgMeta {
    /// Inserts new records and raises their blobs' counts in one transaction, as
    /// [`insert`](Self::insert) does, under their blobs' locks: `ensure` is first given the
    /// blobs that no record counts, to make sure their objects are in place.
    pub fn insert_guarded(
        &self,
        records: &[&MediaRecord],
        ensure: EnsureBlobs,
    ) -> Result<(), StoreError> {
        let rows = records
            .iter()
            .map(|r| Columns::of(r))
            .collect::<Result<Vec<_>, _>>()?;
        let hashes = records.iter().map(|r| r.hash).collect();
        let pool = self.pool.clone();
        let args = (rows, hashes, ensure);
        let done = self.run(async move { transact(&pool, &args, insert_guarded_rows).await });
        self.forget(records.iter().copied());
        done
    }

    /// [`replace_content`](Self::replace_content) under the new blob's lock, which `ensure`
    /// is given when no record counts it yet. Answers the count the old blob has left.
    pub fn replace_content_guarded(
        &self,
        old: &MediaRecord,
        new: &MediaRecord,
        ensure: EnsureBlobs,
    ) -> Result<u64, StoreError> {
        if old.id != new.id {
            return Err(StoreError::Corrupt(format!(
                "a replacement of media {} would change its id",
                old.id
            )));
        }
        let args = (
            (old.clone(), Columns::of(new)?),
            BTreeSet::from([new.hash]),
            ensure,
        );
        let pool = self.pool.clone();
        let done = self.run(async move { transact(&pool, &args, replace_guarded_row).await });
        self.forget([old, new]);
        done
    }

    /// Removes a blob's object with `remove` if, under its lock, no record counts it.
    /// Answers whether it was removed.
    pub fn remove_unused(
        &self,
        hash: &ContentHash,
        remove: RemoveBlob,
    ) -> Result<bool, StoreError> {
        let pool = self.pool.clone();
        let args = (*hash, remove);
        self.run(async move { transact(&pool, &args, remove_unused_row).await })
    }
}

/// The advisory locks a backup holds while it runs, in the two-key space (apart from the
/// blobs' one-key locks): this class, and a random number of the backup's own.
const BACKUP_CLASS: i32 = 0x5348_4F45;

/// The advisory lock of the instance computing the MD5s older records lack, in the two-key
/// space: this class, and key 0.
const MD5_BACKFILL_CLASS: i32 = 0x5348_4F46;

/// A session advisory lock, on a connection of its own taken out of the pool. Dropped (or if
/// the process dies), the connection closes and PostgreSQL releases the lock.
///
/// A backup holds one while it runs (see [`PgMeta::backup_lease`]): while any is held, no
/// instance removes a blob that its last record left. The blob stays, an orphan that `gc`
/// removes later, because the backup may have read the record already and still need the
/// bytes.
pub struct SessionLock {
    client: Option<deadpool_postgres::Object>,
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Out of the pool and closed: the session's lock goes with it.
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// Whether a backup runs on any instance. A removal that found none goes on; a backup that
/// starts after this check reads the records after the deletion this removal follows, so it
/// never names the blob.
async fn backup_running(tx: &Transaction<'_>) -> Result<bool, Fault> {
    let stmt = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND classid = $1::bigint::oid AND objsubid = 2 AND granted)",
        )
        .await?;
    let class = i64::from(BACKUP_CLASS);
    Ok(tx.query_one(&stmt, &[&class]).await?.get(0))
}

impl PgMeta {
    /// Takes a backup's lease (see [`SessionLock`]) before the backup reads any record.
    pub fn backup_lease(&self) -> Result<SessionLock, StoreError> {
        let pool = self.pool.clone();
        let own = rand::random::<i32>();
        let client = self.run(async move {
            let client = pool.get().await?;
            client
                .execute("SELECT pg_advisory_lock($1, $2)", &[&BACKUP_CLASS, &own])
                .await?;
            Ok(client)
        })?;
        Ok(SessionLock {
            client: Some(client),
        })
    }

    /// The turn to compute the MD5s older records lack, unless another instance has it: one
    /// instance at a time reads the blobs for them.
    pub fn md5_backfill_turn(&self) -> Result<Option<SessionLock>, StoreError> {
        let pool = self.pool.clone();
        let client = self.run(async move {
            let client = pool.get().await?;
            let row = client
                .query_one("SELECT pg_try_advisory_lock($1, 0)", &[&MD5_BACKFILL_CLASS])
                .await?;
            Ok(row.get::<_, bool>(0).then_some(client))
        })?;
        Ok(client.map(|client| SessionLock {
            client: Some(client),
        }))
    }
}

//! Changes to records, each one transaction over the record's row and its blobs' counts:
//! inserts, edits, replacements of the bytes, deletes.
//!
//! Reference counts stay right when instances insert and delete records of the same blob at
//! once, because each count changes by one statement that locks its row until the commit:
//! - up: `INSERT … ON CONFLICT (hash) DO UPDATE SET refs = blobs.refs + n`. PostgreSQL
//!   guarantees that this either inserts or updates, atomically, even under concurrency: a
//!   second inserter of the same new hash waits on the first's index entry, then updates the
//!   row the first committed (or inserts, if the first rolled back).
//! - down: `UPDATE blobs SET refs = refs - 1 … RETURNING refs`, which waits for any other
//!   change to the row and then applies to its latest committed value; at zero the same
//!   transaction, still holding the row's lock, deletes it. An inserter waiting on that row
//!   finds it gone at the commit and inserts it afresh with a count of one.
//!
//! Within a transaction, counts are taken in byte order of their hashes and after the record
//! rows, so two transactions lock the rows they share in the same order and cannot deadlock
//! on them. Deadlocks are still possible on object keys (two batches claiming each other's
//! keys); PostgreSQL breaks them by aborting one transaction, which is then run again.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};

use super::fault::Fault;
use super::row::{hash_bytes, id_bytes, record_of, unsigned, Columns};
use super::PgMeta;
use crate::record::{MediaId, MediaRecord};
use crate::{ContentHash, StoreError};

/// How many times a transaction is run in all when PostgreSQL aborts it to break a deadlock.
const ATTEMPTS: u32 = 5;

/// The unique indexes whose violations mean something to the caller.
const PRIMARY_KEY: &str = "media_pkey";
const BUCKET_KEY: &str = "media_bucket_key";

const INSERT: &str = "INSERT INTO media (id, hash, size, kind, collection, bucket, key, \
     legacy_path, public, owner, tags, search, record) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

const UPDATE: &str = "UPDATE media SET (hash, size, kind, collection, bucket, key, \
     legacy_path, public, owner, tags, search, record) \
     = ($2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) WHERE id = $1";

const COUNT_UP: &str = "INSERT INTO blobs (hash, refs, size) VALUES ($1, $2, $3) \
     ON CONFLICT (hash) DO UPDATE SET refs = blobs.refs + EXCLUDED.refs RETURNING refs";

const COUNT_DOWN: &str = "UPDATE blobs SET refs = refs - 1 WHERE hash = $1 RETURNING refs";

const FORGET_BLOB: &str = "DELETE FROM blobs WHERE hash = $1 AND refs = 0";

pub(super) type Step<'t, T> = Pin<Box<dyn Future<Output = Result<T, Fault>> + Send + 't>>;

/// Runs `body` in a transaction and commits it, again when PostgreSQL aborted it to break a
/// deadlock. A failure rolls it back.
pub(super) async fn transact<A: Sync, T>(
    pool: &Pool,
    args: &A,
    body: for<'t> fn(&'t Transaction<'t>, &'t A) -> Step<'t, T>,
) -> Result<T, Fault> {
    let mut attempt = 1;
    loop {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        let result = match body(&tx, args).await {
            Ok(value) => tx.commit().await.map(|()| value).map_err(Fault::from),
            Err(e) => Err(e),
        };
        match result {
            Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                attempt += 1;
                // A little apart, so that the two sides do not meet again at once.
                let pause = rand::random::<u64>() % (20 * u64::from(attempt));
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            other => return other,
        }
    }
}

/// A failed insert or update of a record's row, told in the record's terms.
fn row_fault(e: tokio_postgres::Error, r: &Columns) -> Fault {
    let fault = Fault::from(e);
    match fault.constraint() {
        Some(PRIMARY_KEY) => {
            StoreError::Corrupt(format!("media id {} already exists", r.media_id)).into()
        }
        Some(BUCKET_KEY) => StoreError::KeyTaken {
            collection: r.collection.clone(),
            key: r.key.clone(),
        }
        .into(),
        _ => fault,
    }
}

/// `n` more records use a blob; answers its count.
async fn count_up(tx: &Transaction<'_>, hash: &[u8], n: i64, size: i64) -> Result<u64, Fault> {
    let stmt = tx.prepare_cached(COUNT_UP).await?;
    let refs: i64 = tx.query_one(&stmt, &[&hash, &n, &size]).await?.get(0);
    Ok(unsigned(refs))
}

/// One record fewer uses a blob; answers the count left (at zero the row goes). A blob
/// without a row (a count that was wrong already) stays at zero, as with sled.
async fn count_down(tx: &Transaction<'_>, hash: &[u8]) -> Result<u64, Fault> {
    let stmt = tx.prepare_cached(COUNT_DOWN).await?;
    let Some(row) = tx.query_opt(&stmt, &[&hash]).await? else {
        return Ok(0);
    };
    let refs = unsigned(row.get(0));
    if refs == 0 {
        let stmt = tx.prepare_cached(FORGET_BLOB).await?;
        tx.execute(&stmt, &[&hash]).await?;
    }
    Ok(refs)
}

/// The record as it stands, locked until the commit; refuses to go on unless it is `old`.
async fn lock_current(tx: &Transaction<'_>, old: &MediaRecord, doing: &str) -> Result<(), Fault> {
    let stmt = tx
        .prepare_cached("SELECT record FROM media WHERE id = $1 FOR UPDATE")
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&id_bytes(old.id)]).await? else {
        return Err(StoreError::NotFound.into());
    };
    if record_of(&row, "record")? != *old {
        return Err(StoreError::Changed(format!(
            "media {} changed during {doing}; try again",
            old.id
        ))
        .into());
    }
    Ok(())
}

async fn update_row(tx: &Transaction<'_>, new: &Columns) -> Result<(), Fault> {
    let stmt = tx.prepare_cached(UPDATE).await?;
    tx.execute(&stmt, &new.params())
        .await
        .map_err(|e| row_fault(e, new))?;
    Ok(())
}

pub(super) fn insert_rows<'t>(tx: &'t Transaction<'t>, rows: &'t Vec<Columns>) -> Step<'t, ()> {
    Box::pin(async move {
        let stmt = tx.prepare_cached(INSERT).await?;
        for row in rows {
            tx.execute(&stmt, &row.params())
                .await
                .map_err(|e| row_fault(e, row))?;
        }
        // Hash order: the order every transaction takes blob rows in.
        let mut counts: BTreeMap<&[u8], (i64, i64)> = BTreeMap::new();
        for row in rows {
            counts.entry(&row.hash).or_insert((0, row.size)).0 += 1;
        }
        for (hash, (n, size)) in counts {
            count_up(tx, hash, n, size).await?;
        }
        Ok(())
    })
}

/// An edit: the record and its columns, its blob unchanged.
fn replace_row<'t>(tx: &'t Transaction<'t>, args: &'t (MediaRecord, Columns)) -> Step<'t, ()> {
    Box::pin(async move {
        let (old, new) = args;
        lock_current(tx, old, "an edit").await?;
        update_row(tx, new).await
    })
}

/// New bytes: the record, its columns and both blobs' counts; answers the old blob's count.
pub(super) fn replace_content_row<'t>(
    tx: &'t Transaction<'t>,
    args: &'t (MediaRecord, Columns),
) -> Step<'t, u64> {
    Box::pin(async move {
        let (old, new) = args;
        lock_current(tx, old, "a replacement").await?;
        update_row(tx, new).await?;
        let old_hash = hash_bytes(&old.hash);
        if old_hash == new.hash {
            // The same bytes again: both counts cancel out.
            let stmt = tx
                .prepare_cached("SELECT refs FROM blobs WHERE hash = $1")
                .await?;
            let row = tx.query_opt(&stmt, &[&old_hash]).await?;
            return Ok(row.map_or(0, |r| unsigned(r.get(0))));
        }
        // In hash order, as every transaction takes blob rows.
        if old_hash < new.hash {
            let left = count_down(tx, &old_hash).await?;
            count_up(tx, &new.hash, 1, new.size).await?;
            Ok(left)
        } else {
            count_up(tx, &new.hash, 1, new.size).await?;
            count_down(tx, &old_hash).await
        }
    })
}

fn delete_row<'t>(
    tx: &'t Transaction<'t>,
    id: &'t MediaId,
) -> Step<'t, Option<(MediaRecord, u64)>> {
    Box::pin(async move {
        let stmt = tx
            .prepare_cached("DELETE FROM media WHERE id = $1 RETURNING record")
            .await?;
        let Some(row) = tx.query_opt(&stmt, &[&id_bytes(*id)]).await? else {
            return Ok(None);
        };
        // A record that does not parse stays, as with sled: the transaction rolls back.
        let record = record_of(&row, "record")?;
        let left = count_down(tx, &hash_bytes(&record.hash)).await?;
        Ok(Some((record, left)))
    })
}

impl PgMeta {
    /// Inserts new records and their blobs' counts, all in one transaction. A duplicate id
    /// aborts it as [`StoreError::Corrupt`], a taken key as [`StoreError::KeyTaken`].
    pub fn insert(&self, records: &[&MediaRecord]) -> Result<(), StoreError> {
        let rows = records
            .iter()
            .map(|r| Columns::of(r))
            .collect::<Result<Vec<_>, _>>()?;
        let pool = self.pool.clone();
        let done = self.run(async move { transact(&pool, &rows, insert_rows).await });
        self.forget(records.iter().copied());
        done
    }

    /// Replaces a record with its edited form in one transaction. Fails with `NotFound` when
    /// the record is gone, and refuses to overwrite a record that is no longer `old`, or to
    /// change its bytes (the reference counts go by them).
    pub fn replace(&self, old: &MediaRecord, new: &MediaRecord) -> Result<(), StoreError> {
        if (old.id, old.hash, old.size) != (new.id, new.hash, new.size) {
            return Err(StoreError::Corrupt(format!(
                "an edit of media {} would change its id or its bytes",
                old.id
            )));
        }
        let args = (old.clone(), Columns::of(new)?);
        let pool = self.pool.clone();
        let done = self.run(async move { transact(&pool, &args, replace_row).await });
        self.forget([old, new]);
        done
    }

    /// Replaces a record with a version that names other bytes, in one transaction: the
    /// record, its columns and both blobs' counts. Answers the count the old blob has left.
    /// Fails with `NotFound` when the record is gone, and refuses to overwrite a record that
    /// is no longer `old` or to change its id.
    pub fn replace_content(&self, old: &MediaRecord, new: &MediaRecord) -> Result<u64, StoreError> {
        if old.id != new.id {
            return Err(StoreError::Corrupt(format!(
                "a replacement of media {} would change its id",
                old.id
            )));
        }
        let args = (old.clone(), Columns::of(new)?);
        let pool = self.pool.clone();
        let done = self.run(async move { transact(&pool, &args, replace_content_row).await });
        self.forget([old, new]);
        done
    }

    /// Removes a record and decrements its blob's count, in one transaction. Returns the
    /// record and the blob's remaining count.
    pub fn delete(&self, id: MediaId) -> Result<Option<(MediaRecord, u64)>, StoreError> {
        let pool = self.pool.clone();
        let done = self.run(async move { transact(&pool, &id, delete_row).await });
        match &done {
            Ok(Some((record, _))) => self.forget([record]),
            _ => self.recent.forget(&[id], &[]),
        }
        done
    }

    /// Forgets the records a change on this instance touched, by id and by blob, from the
    /// records served in the last second.
    pub(super) fn forget<'a>(&self, records: impl IntoIterator<Item = &'a MediaRecord>) {
        let (ids, hashes): (Vec<MediaId>, Vec<ContentHash>) =
            records.into_iter().map(|r| (r.id, r.hash)).unzip();
        self.recent.forget(&ids, &hashes);
    }

    /// How many records use a blob.
    pub fn refcount(&self, hash: &ContentHash) -> Result<u64, StoreError> {
        let hash = hash_bytes(hash);
        self.read(move |client| async move {
            let stmt = client
                .prepare_cached("SELECT refs FROM blobs WHERE hash = $1")
                .await?;
            let row = client.query_opt(&stmt, &[&hash]).await?;
            Ok(row.map_or(0, |r| unsigned(r.get(0))))
        })
    }
}

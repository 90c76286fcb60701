//! Uploads in progress that any instance may continue (see
//! [`partial::shared`](crate::partial)): one row each, with its state as JSON and a version
//! that every change raises, so that a change made from a state that is no longer current is
//! refused rather than lost (two instances appending to one upload at once: one wins).

use super::PgMeta;
use crate::StoreError;

/// How many unfinished uploads of a kind (`$1`) an owner (`$2`) has.
const COUNT_OPEN: &str = "SELECT count(*) FROM uploads_in_progress \
     WHERE kind = $1 AND owner = $2 AND NOT finished";

/// One upload's row: its state and the version it was read at.
#[derive(Debug, Clone)]
pub struct UploadRow {
    /// The state as its owner wrote it (JSON).
    pub state: String,
    /// Raised by every change.
    pub version: i64,
}

impl PgMeta {
    /// Adds an upload of `kind` (`tus`) unless `owner` has `max_open` unfinished ones of that
    /// kind already; answers whether it was added. The count and the insert are one
    /// transaction under a lock on the owner, so that concurrent creations cannot pass the cap
    /// together.
    pub fn upload_insert(
        &self,
        kind: &str,
        id: &str,
        owner: &str,
        state: &str,
        max_open: usize,
    ) -> Result<bool, StoreError> {
        let (kind, id, owner, state) = (
            kind.to_owned(),
            id.to_owned(),
            owner.to_owned(),
            state.to_owned(),
        );
        let max = i64::try_from(max_open).unwrap_or(i64::MAX);
        self.read(move |mut client| async move {
            let tx = client.transaction().await?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))",
                &[&kind, &owner],
            )
            .await?;
            let open: i64 = tx.query_one(COUNT_OPEN, &[&kind, &owner]).await?.get(0);
            if open >= max {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO uploads_in_progress (id, kind, owner, state, version) \
                 VALUES ($1, $2, $3, $4, 1)",
                &[&id, &kind, &owner, &state],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// An upload's row, if there is one.
    pub fn upload_get(&self, kind: &str, id: &str) -> Result<Option<UploadRow>, StoreError> {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        self.read(move |client| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT state, version FROM uploads_in_progress WHERE kind = $1 AND id = $2",
                )
                .await?;
            Ok(client
                .query_opt(&stmt, &[&kind, &id])
                .await?
                .map(|r| UploadRow {
                    state: r.get(0),
                    version: r.get(1),
                }))
        })
    }

    /// Replaces an upload's state if it is still at version `read`; answers the new version,
    /// or `None` when another instance changed it first (or removed it).
    pub fn upload_replace(
        &self,
        kind: &str,
        id: &str,
        state: &str,
        finished: bool,
        read: i64,
    ) -> Result<Option<i64>, StoreError> {
        let (kind, id, state) = (kind.to_owned(), id.to_owned(), state.to_owned());
        self.read(move |client| async move {
            let stmt = client
                .prepare_cached(
                    "UPDATE uploads_in_progress SET state = $3, finished = $4, \
                     version = version + 1 \
                     WHERE kind = $1 AND id = $2 AND version = $5 RETURNING version",
                )
                .await?;
            Ok(client
                .query_opt(&stmt, &[&kind, &id, &state, &finished, &read])
                .await?
                .map(|r| r.get(0)))
        })
    }

    /// Removes an upload's row and its parts; answers the state it had and its parts', if
    /// it had a row.
    pub fn upload_remove(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<(String, Vec<String>)>, StoreError> {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        self.read(move |mut client| async move {
            let tx = client.transaction().await?;
            let parts = tx
                .query(
                    "SELECT state FROM upload_parts WHERE upload_id = $1 ORDER BY number",
                    &[&id],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let state = tx
                .query_opt(
                    "DELETE FROM uploads_in_progress WHERE kind = $1 AND id = $2 RETURNING state",
                    &[&kind, &id],
                )
                .await?
                .map(|r| r.get::<_, String>(0));
            tx.commit().await?;
            Ok(state.map(|s| (s, parts)))
        })
    }

    /// Keeps part `number` of an upload (replacing one of that number); answers the state
    /// of the part it replaced (`Some(None)` when there was none), or `None` when the upload
    /// is gone. The upload's row is locked against removal until the part is in.
    pub fn upload_part_put(
        &self,
        id: &str,
        number: u32,
        state: &str,
    ) -> Result<Option<Option<String>>, StoreError> {
        let (id, state) = (id.to_owned(), state.to_owned());
        let number = i32::try_from(number).unwrap_or(i32::MAX);
        self.read(move |mut client| async move {
            let tx = client.transaction().await?;
            let there = tx
                .query_opt(
                    "SELECT 1 FROM uploads_in_progress WHERE id = $1 FOR SHARE",
                    &[&id],
                )
                .await?;
            if there.is_none() {
                return Ok(None);
            }
            let old = tx
                .query_opt(
                    "SELECT state FROM upload_parts WHERE upload_id = $1 AND number = $2 \
                     FOR UPDATE",
                    &[&id, &number],
                )
                .await?
                .map(|r| r.get::<_, String>(0));
            tx.execute(
                "INSERT INTO upload_parts (upload_id, number, state) VALUES ($1, $2, $3) \
                 ON CONFLICT (upload_id, number) DO UPDATE SET state = EXCLUDED.state",
                &[&id, &number, &state],
            )
            .await?;
            tx.commit().await?;
            Ok(Some(old))
        })
    }

    /// The states of an upload's parts, by number.
    pub fn upload_parts(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let id = id.to_owned();
        self.read(move |client| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT state FROM upload_parts WHERE upload_id = $1 ORDER BY number",
                )
                .await?;
            Ok(client
                .query(&stmt, &[&id])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }

    /// Every part of every upload: its upload's id and its state.
    pub fn upload_all_parts(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.read(move |client| async move {
            let rows = client
                .query("SELECT upload_id, state FROM upload_parts", &[])
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    /// Every upload of `kind`, finished ones included, with their versions.
    pub fn upload_all(&self, kind: &str) -> Result<Vec<UploadRow>, StoreError> {
        let kind = kind.to_owned();
        self.read(move |client| async move {
            let rows = client
                .query(
                    "SELECT state, version FROM uploads_in_progress WHERE kind = $1 ORDER BY id",
                    &[&kind],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| UploadRow {
                    state: r.get(0),
                    version: r.get(1),
                })
                .collect())
        })
    }

    /// How many unfinished uploads of `kind` there are, and the bytes they have acknowledged
    /// (their states' `offset`), added up by PostgreSQL.
    pub fn upload_usage(&self, kind: &str) -> Result<(u64, u64), StoreError> {
        let kind = kind.to_owned();
        self.read(move |client| async move {
            let row = client
                .query_one(
                    "SELECT count(*), coalesce(sum((state::jsonb ->> 'offset')::bigint), 0)::bigint \
                     FROM uploads_in_progress WHERE kind = $1 AND NOT finished",
                    &[&kind],
                )
                .await?;
            let (count, bytes): (i64, i64) = (row.get(0), row.get(1));
            Ok((
                u64::try_from(count).unwrap_or(0),
                u64::try_from(bytes).unwrap_or(0),
            ))
        })
    }

    /// How many unfinished uploads of `kind` `owner` has.
    pub fn upload_count(&self, kind: &str, owner: &str) -> Result<usize, StoreError> {
        let (kind, owner) = (kind.to_owned(), owner.to_owned());
        self.read(move |client| async move {
            let n: i64 = client.query_one(COUNT_OPEN, &[&kind, &owner]).await?.get(0);
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }
}

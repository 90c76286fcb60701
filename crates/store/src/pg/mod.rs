//! Records in PostgreSQL: the same [`MetaBackend`] as sled's [`MetaStore`](crate::meta::MetaStore),
//! for any number of stateless instances sharing one database.
//!
//! Tables (see `schema.rs` for the SQL):
//! - `media`: one row per record: the record as JSONB, and the columns that the indexes and
//!   filters read (hash, kind, collection, its key's bucket and key, legacy path, visibility,
//!   owner, tags, lower-cased text for `q`). The id is the ULID's 16 big-endian bytes
//!   (`bytea`): PostgreSQL compares `bytea` bytewise, so the primary key sorts by time exactly
//!   as sled's keys do, and the listing's cursors, which name points in time, translate to
//!   plain range conditions on it. No separate creation column: sled lists by id too.
//! - `blobs`: hash → reference count and size, for the blobs that records use.
//! - `shared_values`: what the instances share besides the records (the server's
//!   credentials, sealed), each with a version.
//! - `shoebox_schema_migrations`: the schema versions applied.
//!
//! Every change to a record, its index columns and its blobs' counts is one transaction. The
//! totals are aggregates over `media` and `blobs` rather than counters that every write would
//! update: a counters row would be locked by every insert and delete until its commit, one
//! writer at a time across every instance (see `totals` in `read.rs` for the measurements).
//!
//! What stays sled's: the pending marks. With sled the record files under `records/` are the
//! source of truth and a mark says that a record's file may not be durable yet. Here the
//! committed transaction is the durability point and there are no record files, so
//! [`insert_pending`](MetaBackend::insert_pending) ignores `settled` and marks nothing, and
//! [`flush`](MetaBackend::flush) has nothing left to do.
//!
//! The trait's methods are blocking and may be called from any thread, async workers
//! included; the client is async. [`PgMeta`] owns a small runtime of its own and each method
//! hands its future to it and waits for the answer on a channel: never `block_on` on the
//! caller's thread, which panics inside an async context.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use crate::backend::MetaBackend;
use crate::{ContentHash, KeysFrom, ListPage, ListQuery, MediaId, MediaRecord, StoreError, Totals};

mod change;
mod fault;
mod guard;
mod list;
mod read;
mod recent;
mod row;
mod schema;
mod shared_values;
/// TLS, with libpq's `sslmode` and `sslrootcert`.
mod tls;
/// Uploads in progress that any instance may continue.
mod uploads;

#[cfg(test)]
mod tests;

use fault::Fault;
pub use guard::{EnsureBlobs, RemoveBlob};

/// How long a new connection may take, from the first packet to a session: past it the
/// server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a caller waits for a free connection when every one is busy.
const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest any one call may take, connecting and retrying included: a server that
/// accepts connections but never answers must not hold a request forever.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The subject of [`StoreError::Unavailable`] for this backend.
const WHAT: &str = "the database";

/// Records, their indexes and reference counts in PostgreSQL.
#[derive(Debug)]
pub struct PgMeta {
    pool: Pool,
    /// Public records served in the last second (see `recent.rs`).
    recent: recent::Recent,
    /// Runs every query; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl PgMeta {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`, or the
    /// key=value form) with a pool of up to `pool_size` connections, and brings its schema up
    /// to date. Fails with [`StoreError::Unavailable`] when no connection can be made within
    /// a few seconds, and with [`StoreError::Format`] when the database's schema is newer than
    /// this Shoebox.
    pub fn connect(url: &str, pool_size: usize) -> Result<PgMeta, StoreError> {
        let (url, tls) = tls::Tls::split(url)?;
        let mut config = tokio_postgres::Config::from_str(&url)
            .map_err(|e| StoreError::invalid("database url", &format!("a PostgreSQL URL ({e})")))?;
        config.ssl_mode(tls.ssl_mode());
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("shoebox");
        }
        // A server that vanished without closing its sockets is noticed by the keepalives.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("shoebox-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::io("start the database client's threads", e))?;
        let manager = Manager::from_config(
            config,
            tls.connector()?,
            ManagerConfig {
                // A broken connection is closed by its task and then replaced; one that
                // breaks while idle fails its next statement, once, and is replaced.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Database(format!("the database pool: {e}")))?;
        let meta = PgMeta {
            pool,
            recent: recent::Recent::new(),
            runtime: Some(runtime),
        };
        let pool = meta.pool.clone();
        meta.run(async move { schema::migrate(&pool).await })?;
        Ok(meta)
    }

    /// Connections open, and how many of them are idle: for `/metrics`.
    pub fn pool_status(&self) -> (usize, usize) {
        let status = self.pool.status();
        (status.size, status.available)
    }

    /// Runs `call` on the client's runtime and waits for its answer, from any thread.
    fn run<T: Send + 'static>(
        &self,
        call: impl Future<Output = Result<T, Fault>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let Some(runtime) = &self.runtime else {
            return Err(stopped());
        };
        runtime.spawn(async move {
            let answer = match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(answer) => answer.map_err(Fault::into_store),
                Err(_) => Err(StoreError::Unavailable {
                    what: WHAT,
                    reason: format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
                }),
            };
            // The caller may be gone only if its thread panicked; nobody is left to tell.
            let _ = tx.send(answer);
        });
        // Bounded by CALL_TIMEOUT above; a closed channel means the runtime stopped.
        rx.recv().unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable {
        what: WHAT,
        reason: "the database client has stopped".into(),
    }
}

impl Drop for PgMeta {
    fn drop(&mut self) {
        // Dropping a runtime waits for its tasks, which panics inside another runtime (an
        // actix worker's): let them go in the background instead.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl MetaBackend for PgMeta {
    fn get(&self, id: MediaId) -> Result<Option<MediaRecord>, StoreError> {
        PgMeta::get(self, id)
    }

    /// Read through, or a public record read in the last second (see `recent.rs`).
    fn get_shared(&self, id: MediaId) -> Result<Option<Arc<MediaRecord>>, StoreError> {
        if let Some(r) = self.recent.by_id(id) {
            return Ok(Some(r));
        }
        let record = PgMeta::get(self, id)?.map(Arc::new);
        if let Some(r) = &record {
            self.recent.keep(r, false);
        }
        Ok(record)
    }

    fn list(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        PgMeta::list(self, q)
    }

    fn collections_in_use(&self, q: &ListQuery) -> Result<Vec<String>, StoreError> {
        PgMeta::collections_in_use(self, q)
    }

    /// Inserts the records with their counts in one transaction. `settled` is sled's: here
    /// the commit is the durability point and nothing is marked pending.
    fn insert_pending(
        &self,
        records: &[&MediaRecord],
        _settled: &[MediaId],
    ) -> Result<(), StoreError> {
        PgMeta::insert(self, records)
    }

    fn replace(&self, old: &MediaRecord, new: &MediaRecord) -> Result<(), StoreError> {
        PgMeta::replace(self, old, new)
    }

    fn replace_content(&self, old: &MediaRecord, new: &MediaRecord) -> Result<u64, StoreError> {
        PgMeta::replace_content(self, old, new)
    }

    fn delete(&self, id: MediaId) -> Result<Option<(MediaRecord, u64)>, StoreError> {
        PgMeta::delete(self, id)
    }

    fn refcount(&self, hash: &ContentHash) -> Result<u64, StoreError> {
        PgMeta::refcount(self, hash)
    }

    fn representative(&self, hash: &ContentHash) -> Result<Option<MediaId>, StoreError> {
        PgMeta::representative(self, hash)
    }

    fn by_legacy_path(&self, path: &str) -> Result<Option<MediaId>, StoreError> {
        PgMeta::by_legacy_path(self, path)
    }

    fn by_key(&self, collection: Option<&str>, key: &str) -> Result<Option<MediaId>, StoreError> {
        PgMeta::by_key(self, collection, key)
    }

    fn keys(
        &self,
        collection: Option<&str>,
        prefix: &str,
        from: KeysFrom<'_>,
        limit: usize,
    ) -> Result<Vec<(String, MediaId)>, StoreError> {
        PgMeta::keys(self, collection, prefix, from, limit)
    }

    fn collections(&self) -> Result<Vec<Option<String>>, StoreError> {
        PgMeta::collections(self)
    }

    fn collection_is_empty(&self, collection: Option<&str>) -> Result<bool, StoreError> {
        PgMeta::collection_is_empty(self, collection)
    }

    fn totals(&self) -> Result<Totals, StoreError> {
        PgMeta::totals(self)
    }

    fn all(&self) -> Box<dyn Iterator<Item = Result<MediaRecord, StoreError>> + '_> {
        Box::new(PgMeta::all(self))
    }

    /// Nothing to do: a change is durable once its transaction has committed.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn size_on_disk(&self) -> u64 {
        PgMeta::size_on_disk(self)
    }
}

//! The schema, as numbered migrations applied in order at connect time: in one transaction
//! that holds an advisory lock, so that instances starting together apply each migration
//! once, one after the other, and none sees a half-made schema.

use deadpool_postgres::Pool;

use super::fault::Fault;
use crate::StoreError;

/// The advisory lock that migrations hold ("SHOEBOX" and 1 in ASCII): any fixed number
/// works, as long as every instance uses the same and nothing else uses it.
const MIGRATION_LOCK: i64 = 0x5348_4F45_424F_5801;

/// Every migration, in order: `MIGRATIONS[n]` makes version `n + 1`. Append only; a
/// published migration never changes.
const MIGRATIONS: &[&str] = &[
    // 1: records, their index columns, blob reference counts.
    r#"
    CREATE TABLE media (
        -- The ULID's 16 bytes, big-endian: bytewise order is time order, as in sled.
        id bytea PRIMARY KEY CHECK (length(id) = 16),
        hash bytea NOT NULL CHECK (length(hash) = 32),
        size bigint NOT NULL CHECK (size >= 0),
        kind text NOT NULL
            CHECK (kind IN ('image', 'video', 'audio', 'document', 'other')),
        -- "C": names and keys compare and sort by their UTF-8 bytes, as in sled, whatever
        -- the database's locale.
        collection text COLLATE "C",
        -- The key's bucket: the collection, or '' outside any.
        bucket text COLLATE "C" NOT NULL,
        key text COLLATE "C" NOT NULL,
        legacy_path text,
        public boolean NOT NULL,
        owner text,
        tags text[] NOT NULL,
        -- Title, description and file name, lower-cased by Shoebox, for `q`.
        search text[] NOT NULL,
        record jsonb NOT NULL
    );
    CREATE UNIQUE INDEX media_bucket_key ON media (bucket, key);
    CREATE INDEX media_hash ON media (hash, id);
    CREATE INDEX media_collection ON media (collection, id) WHERE collection IS NOT NULL;
    CREATE INDEX media_kind ON media (kind, id);
    CREATE INDEX media_tags ON media USING gin (tags);
    CREATE INDEX media_legacy_path ON media (legacy_path, id) WHERE legacy_path IS NOT NULL;

    -- Blobs that records use: how many, and their size once. A count reaches zero only
    -- inside the transaction that then deletes its row.
    CREATE TABLE blobs (
        hash bytea PRIMARY KEY CHECK (length(hash) = 32),
        refs bigint NOT NULL CHECK (refs >= 0),
        size bigint NOT NULL CHECK (size >= 0)
    );
    "#,
    // 2: what the instances share besides the records: their credentials, each a named value
    // (sealed by Shoebox before it gets here) with a version that every change raises.
    r#"
    CREATE TABLE shared_values (
        name text COLLATE "C" PRIMARY KEY,
        value bytea NOT NULL,
        version bigint NOT NULL CHECK (version > 0)
    );
    "#,
    // 3: uploads in progress (tus, and S3 multipart uploads), which any instance may
    // continue: the state of each (a tus upload's sidecar, as JSON, with the pieces its bytes
    // are in), changed only from the version read; and the parts of multipart uploads, one
    // row each, so that parts sent at once do not contend for one row.
    r#"
    CREATE TABLE uploads_in_progress (
        id text PRIMARY KEY,
        kind text NOT NULL,
        owner text NOT NULL,
        finished boolean NOT NULL DEFAULT false,
        state text NOT NULL,
        version bigint NOT NULL CHECK (version > 0)
    );
    CREATE INDEX uploads_in_progress_owner ON uploads_in_progress (kind, owner)
        WHERE NOT finished;
    CREATE TABLE upload_parts (
        upload_id text NOT NULL REFERENCES uploads_in_progress (id) ON DELETE CASCADE,
        number integer NOT NULL,
        state text NOT NULL,
        PRIMARY KEY (upload_id, number)
    );
    "#,
];

/// The schema version this Shoebox writes.
pub(super) fn latest() -> i32 {
    i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX)
}

/// Applies the migrations the database lacks; refuses a database that a newer Shoebox has
/// migrated past what this one knows.
pub(super) async fn migrate(pool: &Pool) -> Result<(), Fault> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Held until this transaction ends: the next instance waits, then finds the work done.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS shoebox_schema_migrations (
             version int PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM shoebox_schema_migrations",
            &[],
        )
        .await?
        .get(0);
    if current > latest() {
        return Err(StoreError::Format(format!(
            "the database's schema is version {current}, newer than this Shoebox knows \
             ({}): run a newer Shoebox",
            latest()
        ))
        .into());
    }
    for (version, sql) in (1..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(current).unwrap_or(0))
    {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO shoebox_schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tracing::info!(version, "applied a database schema migration");
    }
    tx.commit().await?;
    Ok(())
}

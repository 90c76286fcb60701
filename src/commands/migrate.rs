//! `shoebox migrate`: moves a stopped store to another setup. `--to-blob-store` copies the
//! blobs to a bucket (or back to the data directory); `--to-database` copies the records, the
//! collections and the credentials to PostgreSQL (or back to sled and files). Each copy is
//! verified, the source keeps everything, and an interrupted run is run again.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoebox::config::DataDirArgs;
use shoebox::credentials::{self, SecretsDir};
use shoebox::store::bucket::Bucket;
use shoebox::store::{rebuild, Limits, PgMeta, Store};

use super::{open_store, secrets_for};
use crate::CommandResult;

type Failure = Box<dyn std::error::Error>;

/// Where a `--to-…` option sends a part of the store.
pub struct Targets {
    /// `--to-blob-store`: a bucket's URL, or `disk`.
    pub blob_store: Option<String>,
    /// `--to-blob-store-access-key-id` (default: the source's key, then `AWS_*`).
    pub key_id: Option<String>,
    /// `--to-blob-store-secret-access-key`.
    pub secret: Option<String>,
    /// `--to-database`: a PostgreSQL URL, or `sled`.
    pub database: Option<String>,
}

/// A progress line every few seconds, and at the end.
fn progress(what: &'static str) -> impl FnMut(usize, usize) {
    let mut last = Instant::now();
    move |done, total| {
        if last.elapsed() >= Duration::from_secs(5) || done == total {
            last = Instant::now();
            eprintln!("{done}/{total} {what}");
        }
    }
}

pub fn migrate(data: &DataDirArgs, to: Targets) -> CommandResult {
    if to.blob_store.is_none() && to.database.is_none() {
        return Err("say where to: --to-blob-store, --to-database, or both".into());
    }
    let bucket_to = match to.blob_store.as_deref().map(str::trim) {
        None => None,
        Some("disk") => Some(None),
        Some(url) => {
            let target = DataDirArgs {
                blob_store: Some(url.to_owned()),
                blob_store_access_key_id: to
                    .key_id
                    .or_else(|| data.blob_store_access_key_id.clone()),
                blob_store_secret_access_key: to
                    .secret
                    .or_else(|| data.blob_store_secret_access_key.clone()),
                ..data.clone()
            };
            Some(
                target
                    .bucket()
                    .map_err(|e| e.replace("SHOEBOX_BLOB_STORE", "--to-blob-store"))?,
            )
        }
    };
    let store = open_store(data)?;
    // The bucket the blobs will be in: the new one, or where they are.
    let serving = match &bucket_to {
        Some(dest) => {
            copy_blobs(&store, dest.clone())?;
            dest.clone()
        }
        None => store.blobs().bucket().cloned(),
    };
    match to.database.as_deref().map(str::trim) {
        None => store.close_cleanly()?,
        Some("sled") => to_sled(data, store, serving)?,
        Some(url) => to_postgres(data, &store, url)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn copy_blobs(store: &Store, dest: Option<Arc<Bucket>>) -> Result<(), Failure> {
    let same = match (&dest, store.blobs().bucket()) {
        (None, None) => true,
        (Some(d), Some(s)) => d.describe() == s.describe(),
        _ => false,
    };
    if same {
        return Err("--to-blob-store names where the blobs already are".into());
    }
    let dest = store.blobs_with(dest);
    let report = store.copy_blobs_to(&dest, progress("blobs"))?;
    println!(
        "{} blobs at the destination, verified ({} copied now, {} bytes; {} were there already)",
        report.blobs, report.copied, report.bytes_copied, report.present
    );
    match dest.bucket() {
        Some(b) => println!(
            "start the server with SHOEBOX_BLOB_STORE set to the new bucket ({}); the files \
             under blobs/ are no longer used, and may be deleted once it serves",
            b.describe()
        ),
        None => println!(
            "start the server without SHOEBOX_BLOB_STORE; the bucket's objects are no longer \
             used, and may be deleted once it serves"
        ),
    }
    Ok(())
}

/// Records, collections and credentials from sled and files (or another database) to the
/// PostgreSQL database at `url`.
fn to_postgres(data: &DataDirArgs, store: &Store, url: &str) -> Result<(), Failure> {
    if data.database_url.as_deref().map(str::trim) == Some(url) {
        return Err("--to-database names where the records already are".into());
    }
    let key = data.secret_key.as_deref().ok_or(
        "SHOEBOX_SECRET_KEY must be set to move to PostgreSQL: it seals the credentials \
         there, and every instance needs the same",
    )?;
    let pg = Arc::new(PgMeta::connect(url, 4).map_err(|e| format!("--to-database: {e}"))?);
    let total = store.media_count()? as usize;
    let mut tick = progress("records");
    let report = store.copy_records_to_database(&pg, |done| tick(done, total))?;
    let from = secrets_for(data)?;
    let dest = SecretsDir::shared(store.layout().secrets(), pg, key)?;
    let moved = credentials::copy_all(&from, &dest)?;
    store.close_cleanly()?;
    println!(
        "{} records in PostgreSQL, verified ({} copied now, {} were there already), {} \
         collections, and the credentials ({})",
        report.records,
        report.copied,
        report.present,
        report.collections,
        moved.join(", ")
    );
    println!(
        "start the server with SHOEBOX_DATABASE_URL set to the new database and the same \
         SHOEBOX_SECRET_KEY; sled and records/ here are no longer used"
    );
    Ok(())
}

/// Records, collections and credentials from PostgreSQL to sled and files in the data
/// directory: the records as files under `records/`, which `rebuild` then indexes.
fn to_sled(data: &DataDirArgs, store: Store, serving: Option<Arc<Bucket>>) -> Result<(), Failure> {
    if store.database().is_none() {
        return Err("--to-database sled: the records are in sled already".into());
    }
    let total = store.media_count()? as usize;
    let mut tick = progress("records");
    let report = store.copy_records_to_files(&data.data_dir, |done| tick(done, total))?;
    let from = secrets_for(data)?;
    let dest = SecretsDir::new(store.layout().secrets());
    let moved = credentials::copy_all(&from, &dest)?;
    let totals = report.totals;
    store.close_cleanly()?;
    drop(store);
    let limits = Limits {
        bucket: serving,
        ..Limits::default()
    };
    let (sled, _) = rebuild::rebuild_with(&data.data_dir, limits)?;
    sled.same_totals(&totals)?;
    sled.close_cleanly()?;
    println!(
        "{} records in sled and records/, verified ({} files written now, {} were there \
         already), {} collections, and the credentials ({})",
        report.records,
        report.copied,
        report.present,
        report.collections,
        moved.join(", ")
    );
    println!("start the server without SHOEBOX_DATABASE_URL; the database is no longer used");
    Ok(())
}

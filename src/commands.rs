//! The maintenance subcommands: verify, gc, rebuild, backup, restore, import. Each opens the
//! data directory directly and locks it, so the server must be stopped.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use std::io::Write;

use shoebox::config::DataDirArgs;
use shoebox::credentials::SecretsDir;
use shoebox::store::archive;
use shoebox::store::catalogue::Role;
use shoebox::store::import::{ImportOptions, ImportOutcome as Imported};
use shoebox::store::{rebuild, Limits, Store, StoreError};

use crate::CommandResult;

/// `migrate`: blobs to another blob store, records to another database.
pub mod migrate;
pub use migrate::migrate;

/// A damaged database is reported like any other damage: a line per finding, exit 1.
fn damaged(e: Box<dyn std::error::Error>, what: &str) -> CommandResult {
    match e.downcast::<StoreError>().map(|e| *e) {
        Ok(StoreError::Damaged(msg)) => {
            println!("DAMAGE {msg}");
            println!("result: DAMAGED — {what}");
            Ok(ExitCode::from(1))
        }
        Ok(other) => Err(other.into()),
        Err(other) => Err(other),
    }
}

pub fn verify(data: &DataDirArgs, repair: bool) -> CommandResult {
    let store = match open_store(data) {
        Ok(store) => store,
        Err(e) => return damaged(e, "run `shoebox rebuild`, then verify again"),
    };
    let report = if repair {
        let (before, actions) = store.repair()?;
        print!("{}", before.render());
        for a in &actions {
            println!("repair: {a}");
        }
        let after = store.verify()?;
        print!("after repair: {}", after.render());
        after
    } else {
        let report = store.verify()?;
        print!("{}", report.render());
        report
    };
    store.record_verify(&report)?;
    store.close_cleanly()?;
    Ok(if report.is_damaged() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn gc(data: &DataDirArgs, grace: Duration, upload_expiry: Duration) -> CommandResult {
    let store = match open_store(data) {
        Ok(store) => store,
        Err(e) => {
            return damaged(
                e,
                "gc removed nothing; run `shoebox rebuild`, then gc again",
            )
        }
    };
    let r = store.gc(grace, shoebox_pictures::PIPELINE)?;
    println!(
        "removed {} orphan blobs ({} bytes), {} stale derived files, {} orphan upload pieces; \
         left {} orphans younger than {}s and {} blobs that only record files name",
        r.blobs_removed,
        r.bytes_freed,
        r.variants_removed,
        r.pieces_removed,
        r.kept_young,
        grace.as_secs(),
        r.kept_named,
    );
    // No server runs (the data directory's lock says so), so no upload is in use.
    let now = time::OffsetDateTime::now_utc();
    let gone = store.partials().sweep(now, upload_expiry, |_| false)?;
    println!(
        "removed {} expired resumable uploads ({} bytes)",
        gone.count, gone.bytes
    );
    let parts = store.multipart().sweep(upload_expiry)?;
    println!("removed {parts} expired S3 multipart uploads");
    store.close_cleanly()?;
    Ok(ExitCode::SUCCESS)
}

/// Opens the data directory as the server does at start-up, so that a command run after a
/// crash sees the store the server would; unlike the server, it never moves a record file,
/// and refuses a damaged database rather than rebuild it.
pub(crate) fn open_store(data: &DataDirArgs) -> Result<Store, Box<dyn std::error::Error>> {
    let store = Store::start_with(&data.data_dir, Role::Command, limits(data)?)?;
    let settled = &store.started().settlement;
    if !settled.is_empty() {
        eprintln!(
            "settled the writes a crash interrupted: {}",
            settled.describe()
        );
    }
    Ok(store)
}

/// The store's limits for a command: the defaults, the blob store's bucket when
/// `SHOEBOX_BLOB_STORE` names one, and the database when `SHOEBOX_DATABASE_URL` does.
fn limits(data: &DataDirArgs) -> Result<Limits, String> {
    Ok(Limits {
        bucket: data.bucket()?,
        database: data.database()?,
        ..Limits::default()
    })
}

pub fn rebuild(data: &DataDirArgs) -> CommandResult {
    let (store, report) = rebuild::rebuild_with(&data.data_dir, limits(data)?)?;
    for line in &report.unreadable {
        println!("skipped unreadable record file {line}");
    }
    for line in &report.set_aside {
        println!("set aside record file {line}");
    }
    for line in &report.recovered {
        println!("recovered record {line}");
    }
    for line in &report.kept_aside {
        println!("kept aside record {line}");
    }
    println!("{}", report.summary());
    // A rebuild ends with a check, so the operator sees at once whether every blob is there.
    let check = store.verify()?;
    print!("{}", check.render());
    store.record_verify(&check)?;
    store.close_cleanly()?;
    Ok(if check.is_damaged() || !report.unreadable.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes an archive or a map by the durable recipe (see [`shoebox::durable`]): a crash never
/// leaves a half file under the real name.
fn write_durably(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = shoebox::durable::dir_of(path);
    // Named, because a command may run as SHOEBOX_RUN_AS's user, who may not write there.
    shoebox::durable::write_with(&dir, path, 0o600, fill)
        .map_err(|e| format!("could not write {}: {e}", path.display()).into())
}

pub fn backup(
    data: &DataDirArgs,
    output: &Path,
    url: Option<&str>,
    token: Option<&str>,
) -> CommandResult {
    if let Some(url) = url {
        let token = token.ok_or("--url needs the admin token: --token or SHOEBOX_ADMIN_TOKEN")?;
        let endpoint = format!("{}/api/backup", url.trim_end_matches('/'));
        write_durably(output, |file| {
            let res = ureq::get(&endpoint)
                .header("Authorization", &format!("Bearer {token}"))
                .call()
                .map_err(|e| format!("GET {endpoint}: {e}"))?;
            std::io::copy(&mut res.into_body().into_reader(), file)?;
            Ok(())
        })?;
        // A connection cut mid-way looks like a short file: check the archive before saying so.
        let (manifest, _) = archive::read_archive(std::fs::File::open(output)?, None)
            .map_err(|e| format!("the downloaded archive is incomplete: {e}"))?;
        println!(
            "wrote {} ({} records, {} blobs)",
            output.display(),
            manifest.records,
            manifest.blobs
        );
        return Ok(ExitCode::SUCCESS);
    }
    let store = open_store(data).map_err(|e| {
        match e.downcast_ref::<shoebox::store::StoreError>() {
            Some(shoebox::store::StoreError::Locked(_)) => format!(
                "{e}. While the server runs, fetch the backup from it: shoebox backup --url http://localhost:8080 --output {} (with SHOEBOX_ADMIN_TOKEN set)",
                output.display()
            ),
            _ => e.to_string(),
        }
    })?;
    let mut manifest = None;
    write_durably(output, |file| {
        let mut out = std::io::BufWriter::new(file);
        manifest = Some(store.write_backup(&mut out)?);
        out.flush()?;
        Ok(())
    })?;
    store.close_cleanly()?;
    if let Some(m) = manifest {
        println!(
            "wrote {} ({} records, {} blobs)",
            output.display(),
            m.records,
            m.blobs
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn restore(data: &DataDirArgs, file: &Path) -> CommandResult {
    let data_dir = &data.data_dir;
    if data
        .blob_store
        .as_deref()
        .is_some_and(|u| !u.trim().is_empty())
    {
        return Err(
            "restore writes blobs into the data directory, and SHOEBOX_BLOB_STORE \
                    names a bucket: restore without it, into a data directory of its own"
                .into(),
        );
    }
    let input = std::io::BufReader::new(
        std::fs::File::open(file).map_err(|e| format!("could not open {}: {e}", file.display()))?,
    );
    let report = archive::restore(input, data_dir)?;
    println!(
        "restored {} records and {} blobs ({} bytes) into {}; verify passed",
        report.records,
        report.blobs,
        report.bytes,
        data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn import(
    data: &DataDirArgs,
    dir: &Path,
    collection: Option<String>,
    url_prefix: Option<String>,
    map: Option<&Path>,
    public_url: Option<&str>,
) -> CommandResult {
    let store = open_store(data)?;
    let opts = ImportOptions {
        collection,
        url_prefix: url_prefix.clone(),
    };
    let items = store.import(dir, &opts)?;
    // Makes the new record files durable and settles their marks, as the server does when
    // it stops.
    store.close_cleanly()?;
    let base = public_url.unwrap_or("").trim_end_matches('/');
    let prefix = url_prefix.map(|p| format!("/{}", p.trim_matches('/')));
    let rows: Vec<serde_json::Value> = items
        .iter()
        .map(|item| {
            let (status, record) = match &item.outcome {
                Imported::Imported(r) => ("imported".to_owned(), Some(r)),
                Imported::AlreadyThere(r) => ("already imported".to_owned(), Some(r)),
                Imported::Skipped(why) => (format!("skipped: {why}"), None),
            };
            serde_json::json!({
                "path": item.path,
                "old_url": prefix.as_ref().map(|p| format!("{}/{}", p.trim_end_matches('/'), item.path)),
                "new_url": record.map(|r| format!("{base}/m/{}", r.id)),
                "id": record.map(|r| r.id.to_string()),
                "status": status,
            })
        })
        .collect();
    let as_json = map.is_some_and(|p| p.extension().is_some_and(|e| e == "json"));
    let mut text = Vec::new();
    if as_json {
        serde_json::to_writer_pretty(&mut text, &rows)?;
        text.push(b'\n');
    } else {
        let mut w = csv::Writer::from_writer(&mut text);
        w.write_record(["path", "old_url", "new_url", "id", "status"])?;
        for r in &rows {
            let field = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            w.write_record([
                field("path"),
                field("old_url"),
                field("new_url"),
                field("id"),
                field("status"),
            ])?;
        }
        w.flush()?;
        drop(w);
    }
    match map {
        Some(path) => write_durably(path, |f| Ok(f.write_all(&text)?))?,
        None => std::io::stdout().write_all(&text)?,
    }
    let count = |f: fn(&Imported) -> bool| items.iter().filter(|i| f(&i.outcome)).count();
    eprintln!(
        "imported {}, already there {}, skipped {}",
        count(|o| matches!(o, Imported::Imported(_))),
        count(|o| matches!(o, Imported::AlreadyThere(_))),
        count(|o| matches!(o, Imported::Skipped(_)))
    );
    for item in &items {
        if let Imported::Skipped(why) = &item.outcome {
            eprintln!("skipped {}: {why}", item.path);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Exit 0 when `GET {url}/api/health` answers 200 (healthy or degraded), 1 otherwise.
pub fn health(url: &str, timeout: Duration) -> CommandResult {
    let endpoint = format!("{}/api/health", url.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    match agent.get(&endpoint).call() {
        Ok(res) => {
            let status = res.status();
            let body = res.into_body().read_to_string().unwrap_or_default();
            let verdict = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["status"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "unknown".into());
            println!("{endpoint}: {} {verdict}", status.as_u16());
            Ok(if status.as_u16() == 200 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Err(e) => {
            println!("{endpoint}: unreachable ({e})");
            Ok(ExitCode::from(1))
        }
    }
}

pub fn token(cmd: shoebox::config::TokenCommand) -> CommandResult {
    use shoebox::config::TokenCommand;
    use shoebox::credentials::api_tokens::Tokens;
    let open = |data: &DataDirArgs| -> Result<Tokens, Box<dyn std::error::Error>> {
        Ok(Tokens::open(&secrets_for(data)?)?)
    };
    match cmd {
        TokenCommand::Create {
            data,
            name,
            scope,
            expires_in,
            s3,
        } => {
            let expires_at = expires_in.map(|d| time::OffsetDateTime::now_utc() + d);
            let scope: shoebox::credentials::api_tokens::Scope = scope.parse()?;
            let (t, plain, s3) = open(&data)?.create(&name, scope, expires_at, s3)?;
            // The token stays the first line, for scripts that read only that.
            println!("{plain}");
            let shown = match s3 {
                Some(key) => {
                    println!("AWS_ACCESS_KEY_ID={}", key.access_key_id);
                    println!("AWS_SECRET_ACCESS_KEY={}", key.secret_access_key);
                    "the token and the S3 secret access key above are"
                }
                None => "the value above is",
            };
            eprintln!(
                "Created token {} ({:?}, scope {:?}); {shown} shown only once.",
                t.id, t.name, t.scope
            );
        }
        TokenCommand::List(data) => {
            for t in open(&data)?.list() {
                let state = match (t.revoked_at, t.expires_at) {
                    (Some(_), _) => "revoked".to_owned(),
                    (None, Some(e)) if e <= time::OffsetDateTime::now_utc() => "expired".to_owned(),
                    (None, Some(e)) => format!("expires {e}"),
                    (None, None) => "active".to_owned(),
                };
                println!("{}\t{:?}\t{}\t{}", t.id, t.scope, t.name, state);
            }
        }
        TokenCommand::Revoke { data, id } => {
            if !open(&data)?.revoke(&id)? {
                return Err(format!("no active token with id {id}").into());
            }
            println!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where a command finds the credentials: the data directory's `secrets/`, or, with
/// `SHOEBOX_DATABASE_URL`, the values the instances share in PostgreSQL.
pub fn secrets_for(data: &DataDirArgs) -> Result<SecretsDir, Box<dyn std::error::Error>> {
    let layout = shoebox::store::Layout::new(&data.data_dir);
    layout.prepare()?;
    match data.database()? {
        None => Ok(SecretsDir::new(layout.secrets())),
        Some(pg) => {
            let key = data.secret_key.as_deref().ok_or(
                "SHOEBOX_SECRET_KEY must be set with SHOEBOX_DATABASE_URL: it seals the \
                 credentials the instances share",
            )?;
            Ok(SecretsDir::shared(layout.secrets(), pg, key)?)
        }
    }
}

pub fn rotate_url_key(data: &DataDirArgs, keep: Option<usize>) -> CommandResult {
    let kid = shoebox::credentials::signing::rotate(&secrets_for(data)?, keep)?;
    println!("new URL-signing key {kid}; restart Shoebox to sign with it");
    Ok(ExitCode::SUCCESS)
}

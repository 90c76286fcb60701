//! The maintenance subcommands: verify, gc, rebuild. Each opens the data directory directly,
//! so the server must be stopped (sled allows one process at a time).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use shoebox::store::{maintain, Store};

type Outcome = Result<ExitCode, Box<dyn std::error::Error>>;

pub fn verify(data_dir: &Path, repair: bool) -> Outcome {
    let store = Store::open(data_dir)?;
    if repair {
        let (before, actions) = store.repair()?;
        print!("{}", before.render());
        for a in &actions {
            println!("repair: {a}");
        }
        let after = store.verify()?;
        print!("after repair: {}", after.render());
        store.record_verify(&after)?;
        return Ok(if after.is_damaged() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let report = store.verify()?;
    print!("{}", report.render());
    store.record_verify(&report)?;
    Ok(if report.is_damaged() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn gc(data_dir: &Path, grace: Duration) -> Outcome {
    let store = Store::open(data_dir)?;
    let r = store.gc(grace)?;
    println!(
        "removed {} orphan blobs ({} bytes), {} orphan record files, {} stale derived files; \
         restored {} record files; left {} orphans younger than {}s",
        r.blobs_removed,
        r.bytes_freed,
        r.record_files_removed,
        r.variants_removed,
        r.edits_restored,
        r.kept_young,
        grace.as_secs()
    );
    store.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn rebuild(data_dir: &Path) -> Outcome {
    let (store, report) = maintain::rebuild(data_dir)?;
    if let Some(aside) = &report.moved_aside {
        println!("moved the old database aside to {aside}");
    }
    for line in &report.unreadable {
        println!("skipped unreadable record file {line}");
    }
    println!(
        "rebuilt the metadata database from {} record files",
        report.records
    );
    // A rebuild ends with a check, so the operator sees at once whether every blob is there.
    let check = store.verify()?;
    print!("{}", check.render());
    store.record_verify(&check)?;
    Ok(if check.is_damaged() || !report.unreadable.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

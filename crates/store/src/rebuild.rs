//! Rebuilding the database from `records/`: `shoebox rebuild`, `restore`, and the server's
//! start-up when the database lost data (see [`catalogue`](crate::catalogue)).
//!
//! A rebuild never touches the database in use until its replacement is complete:
//! 1. it checks that the disk has room for a second database;
//! 2. it reads what only the old database still holds, when it opens: the records of uploads
//!    acknowledged just before a crash whose record file never reached the disk (they are
//!    marked pending and their blob is whole; their file is written), and records whose file
//!    is gone (copied to `quarantine/records/`, never thrown away);
//! 3. it builds the new database in `meta.building/`, checks its count and every index, and
//!    renames it `meta.new/`: that name means complete;
//! 4. it moves `meta/` aside to `meta.damaged-<time>/` and renames `meta.new/` to `meta/`;
//! 5. it seals the catalogue (`CATALOG`) as cleanly closed.
//!
//! Killed at any moment, it leaves the old database (a `meta.building/` is removed at the
//! next open) or the new complete one (a `meta.new/` is swapped in at the next open).

use std::fs;
use std::path::{Path, PathBuf};

use super::catalogue::{quarantined_copy, Seal, GENERATION, IN_FLIGHT};
use super::disk;
use super::layout::{fsync_dir, write_atomically, Layout, FILE_MODE};
use super::meta::MetaStore;
use super::record::{MediaId, MediaRecord};
use super::record_files::{self, RecordFiles};
use super::write::claim;
use super::{Limits, Store, StoreError};

/// What a rebuild did.
#[derive(Debug, Default)]
pub struct RebuildReport {
    /// Records in the new database.
    pub records: usize,
    /// Record files left out because they do not parse or their id is not their name: the
    /// path and why, one per file.
    pub unreadable: Vec<String>,
    /// Record files moved to `quarantine/records/` because their blob is missing or short:
    /// uploads a crash cut off (at most [`IN_FLIGHT`]; more is damage, and they stay).
    pub set_aside: Vec<String>,
    /// Records whose blob is missing or short, kept because there are too many of them to be
    /// the trace of a crash: `verify` reports them.
    pub missing_blobs: usize,
    /// Record files moved to `quarantine/records/` because an older record holds their key in
    /// their collection, which the write path never lets happen.
    pub key_clashes: Vec<String>,
    /// Record files written from the old database: uploads acknowledged just before a crash.
    pub recovered: Vec<String>,
    /// Records only the old database held, copied to `quarantine/records/`.
    pub kept_aside: Vec<String>,
    /// Why the old database could not be read, when it could not.
    pub old_unreadable: Option<String>,
    /// Where the old database went (`meta.damaged-<time>/`); `None` when there was none, or
    /// it was empty and removed.
    pub moved_aside: Option<String>,
}

/// Rebuilds the database of a stopped store (`shoebox rebuild`); returns the store, opened,
/// so that the caller can verify it.
pub fn rebuild(root: &Path) -> Result<(Store, RebuildReport), StoreError> {
    rebuild_with(root, Limits::default())
}

/// [`rebuild`] within these limits (the bucket that holds the blobs, say).
pub fn rebuild_with(root: &Path, limits: Limits) -> Result<(Store, RebuildReport), StoreError> {
    let layout = Layout::new(root);
    layout.prepare()?;
    let lock = layout.lock()?;
    let report = rebuild_locked(&layout, limits.clone())?;
    let store = Store::open_with(root, limits)?.holding(lock)?;
    Ok((store, report))
}

/// The rebuild itself; the caller holds the data directory's lock.
pub(crate) fn rebuild_locked(layout: &Layout, limits: Limits) -> Result<RebuildReport, StoreError> {
    finish_interrupted(layout)?;
    check_space(layout)?;
    let seal = Seal::read(layout).ok().flatten();
    let mut report = RebuildReport::default();
    let files = RecordFiles::new(layout.records());
    files.clear_temp_files()?;
    harvest_old(layout, &files, &mut report, limits.clone());

    let blobs = crate::blobs_for(layout, &limits);
    let mut good: Vec<MediaRecord> = Vec::new();
    let mut short: Vec<MediaRecord> = Vec::new();
    for id in files.ids()? {
        let path = files.path_for(id);
        match fs::read(&path)
            .map_err(|e| StoreError::io("read a record file", e))
            .and_then(|b| record_files::parse(&b))
        {
            Ok(r) if r.id == id => {
                // Re-hashing is verify's job; a crash's trace is missing or short.
                let whole = match blobs.disk() {
                    Some(disk) => {
                        fs::metadata(disk.path_for(&r.hash)).is_ok_and(|m| m.len() == r.size)
                    }
                    // Only whole objects appear in a bucket; one that does not answer stops
                    // the rebuild rather than let it set records aside.
                    None => blobs.exists(&r.hash)?,
                };
                if whole {
                    good.push(r)
                } else {
                    short.push(r)
                }
            }
            Ok(_) => report.unreadable.push(format!(
                "{}: its id does not match its name",
                path.display()
            )),
            Err(e) => report.unreadable.push(format!("{}: {e}", path.display())),
        }
    }
    if short.len() <= IN_FLIGHT {
        for r in &short {
            // The trace of an upload that a crash cut off before its bytes were durable (its
            // `201` was never sent): kept aside, not dropped.
            files.move_to(r.id, &layout.quarantine().join("records"))?;
            report.set_aside.push(format!(
                "{}: its blob {} is missing or shorter than {} bytes; moved to quarantine/records/",
                files.path_for(r.id).display(),
                r.hash,
                r.size
            ));
        }
    } else {
        report.missing_blobs = short.len();
        good.extend(short);
        good.sort_by_key(|r| r.id);
    }

    // One record per key in a collection, as the key index holds them: the older keeps it.
    let mut claimed = std::collections::HashSet::new();
    let (good, clashing): (Vec<MediaRecord>, Vec<MediaRecord>) =
        good.into_iter().partition(|r| claimed.insert(claim(r)));
    for r in clashing {
        files.move_to(r.id, &layout.quarantine().join("records"))?;
        report.key_clashes.push(format!(
            "{}: an older record holds its key {:?} in its collection; moved to \
             quarantine/records/",
            files.path_for(r.id).display(),
            r.key()
        ));
    }

    let generation = seal.map_or(1, |s| s.generation + 1);
    build(layout, &good, generation, limits)?;
    report.moved_aside = swap_in(layout)?.map(|p| p.display().to_string());
    Seal {
        generation,
        clean: true,
        records: good.len() as u64,
    }
    .write(layout)?;
    report.records = good.len();
    Ok(report)
}

/// Writes the new database into `meta.building/`, checks it (its count, every index and the
/// totals, which the inserts kept, against a scan of the records), and names it `meta.new/`.
fn build(
    layout: &Layout,
    records: &[MediaRecord],
    generation: u64,
    limits: Limits,
) -> Result<(), StoreError> {
    let building = layout.meta_building();
    remove_dir_if_present(&building)?;
    {
        let meta = MetaStore::open(&building, limits.db_cache)?;
        for chunk in records.chunks(1000) {
            meta.insert(chunk)?;
        }
        meta.set_state(GENERATION, &generation.to_string())?;
        meta.flush()?;
        if meta.media_count() != records.len() {
            return Err(StoreError::Corrupt(format!(
                "the rebuilt database holds {} records instead of {}",
                meta.media_count(),
                records.len()
            )));
        }
        let problems = meta.derived_problems(records)?;
        if !problems.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "the rebuilt database's indexes disagree with its records: {}",
                problems.join("; ")
            )));
        }
    }
    fsync_dir(&building)?;
    fs::rename(&building, layout.meta_new())
        .map_err(|e| StoreError::io("name the rebuilt database complete", e))?;
    fsync_dir(layout.root())
}

/// Moves `meta/` aside (unless empty) and `meta.new/` into its place; answers where the old
/// database went.
fn swap_in(layout: &Layout) -> Result<Option<PathBuf>, StoreError> {
    let meta = layout.meta();
    let mut aside = None;
    if meta.exists() {
        let empty = fs::read_dir(&meta)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if empty {
            fs::remove_dir(&meta).map_err(|e| StoreError::io("remove an empty meta/", e))?;
        } else {
            let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
            let mut target = layout.root().join(format!("meta.damaged-{stamp}"));
            let mut n = 1;
            while target.exists() {
                target = layout.root().join(format!("meta.damaged-{stamp}-{n}"));
                n += 1;
            }
            fs::rename(&meta, &target)
                .map_err(|e| StoreError::io("move the old database aside", e))?;
            aside = Some(target);
        }
    }
    fs::rename(layout.meta_new(), &meta)
        .map_err(|e| StoreError::io("move the rebuilt database into place", e))?;
    fsync_dir(layout.root())?;
    Ok(aside)
}

/// Settles a rebuild that was killed: an incomplete `meta.building/` goes, a complete
/// `meta.new/` is swapped in. Runs before every open.
pub(crate) fn finish_interrupted(layout: &Layout) -> Result<(), StoreError> {
    if layout.meta_building().exists() {
        tracing::warn!("removing meta.building/, left by a rebuild that did not finish");
        remove_dir_if_present(&layout.meta_building())?;
        fsync_dir(layout.root())?;
    }
    if layout.meta_new().exists() {
        let aside = swap_in(layout)?;
        tracing::warn!(
            old = ?aside,
            "swapped in meta.new/, the complete database of a rebuild that was stopped before it could"
        );
    }
    Ok(())
}

fn remove_dir_if_present(dir: &Path) -> Result<(), StoreError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove an unfinished database", e)),
    }
}

/// Room for the new database beside the old one: sled takes several times the size of the
/// records' JSON, and a margin for its segments.
fn check_space(layout: &Layout) -> Result<(), StoreError> {
    let mut json = 0u64;
    if let Ok(entries) = fs::read_dir(layout.records()) {
        for e in entries.flatten() {
            json += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    let needed = json.saturating_mul(4) + (32 << 20);
    let free = disk::space(layout.root())?.free_bytes;
    if free < needed {
        return Err(StoreError::NoRoom(format!(
            "not enough free space to rebuild the database: {} MiB free, about {} MiB needed. \
             Nothing was changed. Free some space on the disk and run it again",
            free >> 20,
            needed >> 20
        )));
    }
    Ok(())
}

/// Reads what only the old database holds (see the module docs). Best effort: a database
/// damaged enough not to open, or to fail while read, leaves `records/` as it is.
fn harvest_old(layout: &Layout, files: &RecordFiles, report: &mut RebuildReport, limits: Limits) {
    let meta_dir = layout.meta();
    let has_db = fs::read_dir(&meta_dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if !has_db {
        return;
    }
    // A damaged database may panic inside sled while it is read; that ends the harvest, not
    // the rebuild.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let old = MetaStore::open(&meta_dir, limits.db_cache)?;
        harvest_from(&old, layout, files, report, &limits)
    }));
    let failed = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(_) => "reading it failed inside the database engine".to_owned(),
    };
    tracing::warn!(error = %failed, "the old database could not be read; rebuilding from records/ alone");
    report.old_unreadable = Some(failed);
}

fn harvest_from(
    old: &MetaStore,
    layout: &Layout,
    files: &RecordFiles,
    report: &mut RebuildReport,
    limits: &Limits,
) -> Result<(), StoreError> {
    let pending: std::collections::BTreeSet<MediaId> =
        old.pending().unwrap_or_default().into_iter().collect();
    let tombstoned: std::collections::BTreeSet<MediaId> = files.tombstones()?.into_iter().collect();
    let blobs = crate::blobs_for(layout, limits);
    for r in old.all() {
        let Ok(r) = r else { continue };
        let file = files.read(r.id);
        if matches!(file, Ok(Some(_))) || tombstoned.contains(&r.id) {
            continue;
        }
        // A record file that is there but unreadable has its only readable copy here; a
        // missing one is an upload whose file a crash lost (pending), or a record that
        // `records/` no longer holds.
        if file.is_err() || (pending.contains(&r.id) && blobs.holds_whole(&r.hash, r.size)?) {
            files.write(&r)?;
            report
                .recovered
                .push(format!("{}: written from the old database", r.id));
        } else {
            let target = quarantined_copy(layout, r.id);
            if !target.exists() {
                let dir = layout.quarantine().join("records");
                fs::create_dir_all(&dir).map_err(|e| StoreError::io("create quarantine/", e))?;
                let json = serde_json::to_vec_pretty(&r).map_err(|e| {
                    StoreError::Corrupt(format!("a record does not serialise: {e}"))
                })?;
                write_atomically(&dir, &target, &json, FILE_MODE)?;
            }
            report.kept_aside.push(format!(
                "{}: in the old database but not in records/; copied to {}",
                r.id,
                target.display()
            ));
        }
    }
    Ok(())
}

impl RebuildReport {
    /// One paragraph for the log or the terminal.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "rebuilt the metadata database from {} record files",
            self.records
        );
        if let Some(aside) = &self.moved_aside {
            out += &format!("; the old database is kept in {aside}");
        }
        let counts = [
            (
                self.recovered.len(),
                "record files written from the old database",
            ),
            (
                self.kept_aside.len(),
                "records only the old database held, copied to quarantine/records/",
            ),
            (
                self.set_aside.len(),
                "record files of uploads a crash cut off, moved to quarantine/records/",
            ),
            (
                self.key_clashes.len(),
                "record files whose key an older record holds, moved to quarantine/records/",
            ),
            (self.unreadable.len(), "unreadable record files skipped"),
            (
                self.missing_blobs,
                "records whose blob is missing or short (run `shoebox verify`)",
            ),
        ];
        for (n, what) in counts {
            if n > 0 {
                out += &format!("; {n} {what}");
            }
        }
        if let Some(why) = &self.old_unreadable {
            out += &format!("; the old database could not be read ({why})");
        }
        out
    }
}

//! `gc` (remove what no record uses) and `rebuild` (recreate the sled database from the record
//! files).

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::layout::{fsync_dir, Layout};
use super::record::MediaRecord;
use super::records::{self, RecordFiles};
use super::{Store, StoreError};

#[derive(Debug, Default)]
pub struct GcReport {
    pub blobs_removed: usize,
    pub bytes_freed: u64,
    pub record_files_removed: usize,
    pub edits_restored: usize,
    pub variants_removed: usize,
    /// Orphans younger than the grace period, left for a later run.
    pub kept_young: usize,
}

fn older_than(path: &Path, grace: Duration) -> bool {
    let modified = fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::now());
    SystemTime::now()
        .duration_since(modified)
        .unwrap_or_default()
        >= grace
}

impl Store {
    /// Removes blobs and record files that no record uses, when older than `grace` (so an
    /// upload between placing its blob and committing its record is never collected), restores
    /// record files that hold an edit sled never committed, and drops derived files whose blob
    /// is gone.
    pub fn gc(&self, grace: Duration) -> Result<GcReport, StoreError> {
        let report = self.verify_structure()?;
        let mut gc = GcReport::default();
        for hash in &report.orphan_blobs {
            let path = self.blobs.path_for(hash);
            if !older_than(&path, grace) {
                gc.kept_young += 1;
                continue;
            }
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let _guard = self
                .hash_locks
                .lock_all(std::iter::once(&hash.as_bytes()[..]));
            // Re-check under the lock: an upload may have adopted it meanwhile.
            if self.meta.refcount(hash)? == 0 {
                self.blobs.remove(hash)?;
                gc.blobs_removed += 1;
                gc.bytes_freed += size;
            }
        }
        for id in &report.orphan_records {
            if older_than(&self.records.path_for(*id), grace) && self.meta.get(*id)?.is_none() {
                self.records.remove(*id)?;
                gc.record_files_removed += 1;
            } else {
                gc.kept_young += 1;
            }
        }
        for id in &report.interrupted_edits {
            if let Some(r) = self.meta.get(*id)? {
                self.records.write(&r)?;
                gc.edits_restored += 1;
            }
        }
        // Derived files live under variants/<hash>/…; they go with their blob.
        if let Ok(entries) = fs::read_dir(self.layout.variants()) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let stale = match name.to_str().and_then(|n| n.parse().ok()) {
                    Some(hash) => self.meta.refcount(&hash)? == 0,
                    None => true,
                };
                if stale && older_than(&entry.path(), grace) {
                    let path = entry.path();
                    let removed = if path.is_dir() {
                        fs::remove_dir_all(&path)
                    } else {
                        fs::remove_file(&path)
                    };
                    removed.map_err(|e| StoreError::io("remove a stale derived file", e))?;
                    gc.variants_removed += 1;
                }
            }
            fsync_dir(&self.layout.variants())?;
        }
        Ok(gc)
    }

    /// The cheap part of verify (no re-hashing): which blobs and record files are orphans.
    fn verify_structure(&self) -> Result<super::check::Report, StoreError> {
        let mut report = super::check::Report::default();
        let mut used = std::collections::BTreeSet::new();
        let mut ids = std::collections::BTreeSet::new();
        for r in self.meta.all() {
            let r = r?;
            used.insert(r.hash);
            ids.insert(r.id);
            if let Ok(Some(file)) = self.records.read(r.id) {
                if file != r && file.updated_at > r.updated_at {
                    report.interrupted_edits.push(r.id);
                }
            }
        }
        report.orphan_blobs = self
            .blobs
            .list()?
            .into_iter()
            .map(|(h, _)| h)
            .filter(|h| !used.contains(h))
            .collect();
        report.orphan_records = self
            .records
            .ids()?
            .into_iter()
            .filter(|id| !ids.contains(id))
            .collect();
        Ok(report)
    }
}

#[derive(Debug, Default)]
pub struct RebuildReport {
    pub records: usize,
    pub unreadable: Vec<String>,
    /// Record files moved to `quarantine/records/` because their blob is missing or short.
    pub set_aside: Vec<String>,
    pub moved_aside: Option<String>,
}

/// Whether a record's blob is there at its full size (re-hashing is verify's job).
fn blob_whole(store: &Store, r: &MediaRecord) -> bool {
    fs::metadata(store.blobs.path_for(&r.hash)).is_ok_and(|m| m.len() == r.size)
}

/// Recreates the metadata database from `records/`. The old database, if any, is moved aside
/// to `meta.damaged-<time>` rather than deleted. Run with the server stopped. Returns the
/// opened store, so the caller can verify it without reopening the database.
pub fn rebuild(root: &Path) -> Result<(Store, RebuildReport), StoreError> {
    let layout = Layout::new(root);
    layout.prepare()?;
    let mut report = RebuildReport::default();
    let meta_dir = layout.meta();
    if meta_dir.exists()
        && fs::read_dir(&meta_dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let aside = root.join(format!("meta.damaged-{stamp}"));
        fs::rename(&meta_dir, &aside)
            .map_err(|e| StoreError::io("move the old database aside", e))?;
        fsync_dir(root)?;
        report.moved_aside = Some(aside.display().to_string());
    }
    let store = Store::open(root)?;
    let meta = &store.meta;
    let files = RecordFiles::new(layout.records());
    let mut batch: Vec<MediaRecord> = Vec::new();
    for id in files.ids()? {
        let path = files.path_for(id);
        let parsed = fs::read(&path)
            .map_err(|e| StoreError::io("read a record file", e))
            .and_then(|b| records::parse(&b));
        match parsed {
            Ok(r) if r.id == id && !blob_whole(&store, &r) => {
                // The trace of an upload that a crash cut off before its bytes were durable
                // (start-up would have rolled it back), or a lost blob: either way nothing can
                // serve it, and its metadata is kept aside rather than dropped.
                files.move_to(id, &layout.quarantine().join("records"))?;
                report.set_aside.push(format!(
                    "{}: its blob {} is missing or shorter than {} bytes; moved to quarantine/records/",
                    path.display(),
                    r.hash,
                    r.size
                ));
            }
            Ok(r) if r.id == id => batch.push(r),
            Ok(_) => report.unreadable.push(format!(
                "{}: its id does not match its name",
                path.display()
            )),
            Err(e) => report.unreadable.push(format!("{}: {e}", path.display())),
        }
        if batch.len() == 1000 {
            report.records += batch.len();
            meta.insert(&batch)?;
            batch.clear();
        }
    }
    report.records += batch.len();
    meta.insert(&batch)?;
    meta.flush()?;
    Ok((store, report))
}

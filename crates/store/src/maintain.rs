//! `gc`: removes blobs that nothing names, and derived files whose blob is gone. It never
//! removes a record file, and never a blob that a record file names, in `records/` or in
//! `quarantine/records/`: record files are the truth (see [`catalogue`](crate::catalogue)),
//! and a blob the database has forgotten may still be one a record needs. It runs only on a
//! store that passed the start-up check, so a damaged database stops it before it starts.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::hash::ContentHash;
use super::layout::fsync_dir;
use super::record_files::{self, RecordFiles};
use super::{Store, StoreError};

/// What `gc` removed, and what it kept.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Orphan blobs removed.
    pub blobs_removed: usize,
    /// Their bytes, added up.
    pub bytes_freed: u64,
    /// Entries of `variants/` removed: derived files whose blob is gone.
    pub variants_removed: usize,
    /// Pieces of shared uploads in the bucket that no upload names (a crash's leftovers).
    pub pieces_removed: usize,
    /// Orphans younger than the grace period, left for a later run.
    pub kept_young: usize,
    /// Blobs no record in the database uses but a record file names: kept.
    pub kept_named: usize,
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

/// The hashes that the record files in `dir` name; files that do not parse name nothing.
fn named_in(dir: &Path, out: &mut BTreeSet<ContentHash>) -> Result<(), StoreError> {
    let files = RecordFiles::new(dir.to_owned());
    for id in files.ids()? {
        if let Ok(bytes) = fs::read(files.path_for(id)) {
            if let Ok(r) = record_files::parse(&bytes) {
                out.insert(r.hash);
            }
        }
    }
    Ok(())
}

fn remove_entry(path: &Path) -> Result<(), StoreError> {
    let removed = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    removed.map_err(|e| StoreError::io("remove a stale derived file", e))
}

/// Removes what generations other than `current` derived from one blob; returns how many.
fn remove_other_generations(dir: &Path, current: &str) -> Result<usize, StoreError> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        if entry.file_name() != current {
            remove_entry(&entry.path())?;
            removed += 1;
        }
    }
    if removed > 0 {
        fsync_dir(dir)?;
    }
    Ok(removed)
}

impl Store {
    /// Removes blobs that no record and no record file uses, when older than `grace` (so an
    /// upload between placing its blob and committing its record is never collected), and
    /// drops derived files whose blob is gone, and those of a blob still in use that another
    /// generation than `current` made (see [`variants`](crate::variants)).
    pub fn gc(&self, grace: Duration, current: &str) -> Result<GcReport, StoreError> {
        let mut used = BTreeSet::new();
        for r in self.meta.all() {
            used.insert(r?.hash);
        }
        let mut named = BTreeSet::new();
        named_in(self.records.dir(), &mut named)?;
        named_in(&self.layout.quarantine().join("records"), &mut named)?;
        let mut gc = GcReport::default();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        for listed in self.blobs.list()? {
            let (hash, size) = (listed.hash, listed.size);
            if used.contains(&hash) {
                continue;
            }
            if named.contains(&hash) {
                gc.kept_named += 1;
                continue;
            }
            // Young blobs may be uploads between their placing and their commit, here or on
            // another instance sharing the bucket.
            if now.saturating_sub(listed.modified) < grace.as_secs() as i64 {
                gc.kept_young += 1;
                continue;
            }
            let _guard = self
                .hash_locks
                .lock_all(std::iter::once(&hash.as_bytes()[..]));
            // Re-check under the lock: an upload may have adopted it meanwhile.
            if self.meta.refcount(&hash)? == 0 && self.remove_unused(&hash)? {
                gc.blobs_removed += 1;
                gc.bytes_freed += size;
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
                    remove_entry(&entry.path())?;
                    gc.variants_removed += 1;
                } else if !stale {
                    gc.variants_removed += remove_other_generations(&entry.path(), current)?;
                }
            }
            fsync_dir(&self.layout.variants())?;
        }
        let grace = grace.as_secs() as i64;
        gc.variants_removed += self.remove_bucket_variants(current, grace, now)?;
        // As for blobs, the grace period spares pieces on their way to being acknowledged.
        gc.pieces_removed = self.remove_orphan_pieces(grace, now)?;
        Ok(gc)
    }

    /// With uploads shared by instances: removes the bucket's pieces (of tus uploads and
    /// multipart parts) that no upload names and that are older than `grace` seconds, what a
    /// crash between a piece's PUT and its acknowledgement left, or a removal cut short.
    /// Returns how many went.
    fn remove_orphan_pieces(&self, grace: i64, now: i64) -> Result<usize, StoreError> {
        let (Some(bucket), true) = (self.blobs.bucket(), self.partials.is_shared()) else {
            return Ok(0);
        };
        // Listed before the names are read: a piece acknowledged meanwhile is named then.
        let listed = bucket.list_objects(crate::bucket::UPLOADS)?;
        let mut named: BTreeSet<String> = self.partials.piece_names()?.into_iter().collect();
        named.extend(self.multipart.piece_names()?);
        let mut removed = 0;
        for object in listed {
            if named.contains(&object.name) || now.saturating_sub(object.modified) < grace {
                continue;
            }
            let key = object
                .name
                .split_once('/')
                .and_then(|(id, name)| crate::bucket::ObjectKey::piece(id, name));
            if let Some(key) = key {
                bucket.delete_object(&key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

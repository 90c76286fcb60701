//! Restoring an archive into an empty directory: everything is written and checked aside, and
//! only a complete, verified store is moved into place.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{bad, read_archive, RestoreReport};
use crate::layout::{fsync_dir, Layout};
use crate::StoreError;

/// Where a restore builds the store before moving it into place.
const STAGING: &str = ".restore-partial";

/// Clears what a killed restore left in `root`: its `.restore-partial`, and the parts of the
/// store it had already moved out of it. Those are recognised by their names and by the
/// missing `FORMAT`, which a restore moves last: a directory with a `FORMAT`, or with anything
/// a restore does not write, is left alone (and refused by the caller).
fn clear_killed_restore(root: &Path) -> Result<(), StoreError> {
    let staging = root.join(STAGING);
    if !staging.exists() {
        return Ok(());
    }
    if root.join("FORMAT").exists() {
        // Killed after the store was in place, before its staging directory went.
        if fs::read_dir(&staging).is_ok_and(|mut d| d.next().is_none()) {
            fs::remove_dir(&staging)
                .map_err(|e| StoreError::io("remove the restore staging directory", e))?;
            fsync_dir(root)?;
        }
        return Ok(());
    }
    let mut ours = Vec::new();
    for entry in fs::read_dir(root).map_err(|e| StoreError::io("list the data directory", e))? {
        let name = entry
            .map_err(|e| StoreError::io("list the data directory", e))?
            .file_name();
        let name = name.to_string_lossy().into_owned();
        if name == "lost+found" || name == STAGING {
            continue;
        }
        if !crate::layout::RESTORED_ENTRIES.contains(&name.as_str()) {
            return Ok(());
        }
        ours.push(name);
    }
    tracing::warn!(
        "clearing {} and {} entries that a restore which did not finish left behind",
        staging.display(),
        ours.len()
    );
    for name in ours.iter().map(String::as_str).chain([STAGING]) {
        let path = root.join(name);
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(|e| StoreError::io("clear a restore that did not finish", e))?;
    }
    fsync_dir(root)
}

/// Restores an archive into `root`, which must be absent or empty (a fresh disk's `lost+found`
/// is fine). Everything is written and checked in `root/.restore-partial` first; only a complete,
/// verified store is moved into place, `FORMAT` last. On any failure nothing is left behind, and
/// a restore that was killed is cleared by the next one (see `clear_killed_restore`).
pub fn restore(input: impl Read, root: &Path) -> Result<RestoreReport, StoreError> {
    fs::create_dir_all(root).map_err(|e| StoreError::io("create the data directory", e))?;
    clear_killed_restore(root)?;
    for entry in fs::read_dir(root).map_err(|e| StoreError::io("list the data directory", e))? {
        let name = entry
            .map_err(|e| StoreError::io("list the data directory", e))?
            .file_name();
        if name != "lost+found" {
            return Err(StoreError::Format(format!(
                "{} is not empty (found {:?}); restore only into an empty or new directory",
                root.display(),
                name
            )));
        }
    }
    let staging = root.join(STAGING);
    let result = (|| {
        let layout = Layout::new(&staging);
        layout.prepare()?;
        let (_, report) = read_archive(input, Some(&staging))?;
        let (store, rebuilt) = crate::rebuild::rebuild(&staging)?;
        if !rebuilt.unreadable.is_empty() {
            return Err(bad(rebuilt.unreadable.join("; ")));
        }
        let check = store.verify()?;
        if check.is_damaged() {
            return Err(bad(format!(
                "the restored store does not verify:\n{}",
                check.render()
            )));
        }
        store.record_verify(&check)?;
        store.close_cleanly()?;
        drop(store);
        Ok(report)
    })();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    // Move everything but FORMAT, then FORMAT: a directory without FORMAT is never taken for a
    // store, and the leftover `.restore-partial` makes the server refuse it rather than start
    // empty.
    let mut names: Vec<PathBuf> = fs::read_dir(&staging)
        .map_err(|e| StoreError::io("list the restored store", e))?
        .filter_map(|e| e.ok().map(|e| e.file_name().into()))
        .collect();
    names.sort_by_key(|n: &PathBuf| n.as_os_str() == "FORMAT");
    for name in names {
        fs::rename(staging.join(&name), root.join(&name))
            .map_err(|e| StoreError::io("move the restored store into place", e))?;
    }
    fsync_dir(root)?;
    fs::remove_dir(&staging)
        .map_err(|e| StoreError::io("remove the restore staging directory", e))?;
    fsync_dir(root)?;
    Ok(report)
}

//! One JSON file per media record under `records/`. Edits replace the file atomically and
//! durably before sled is told; a new record's file is written before the upload is
//! acknowledged and made durable shortly after, many at a time, while the record stays marked
//! pending in sled, and start-up rewrites it from sled if a crash caught it half-written (see
//! [`Store::create`](crate::Store::create)).
//!
//! These files are the truth and sled an index over them (sled has known corruption and
//! space-growth reports): every write changes them first, a delete by renaming the file to a
//! tombstone, and the database is checked against them at every start and rebuilt from them
//! when it lost data (see [`catalogue`](crate::catalogue)).
//! A file per record rather than a journal: each write is independent (a torn or damaged file
//! affects one record, never those after it), there is nothing to compact, and a person can
//! read the store with `cat`. The cost is one extra small file per record.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use super::layout::{fsync_dir, write_atomically, FILE_MODE};
use super::record::{MediaId, MediaRecord};
use super::StoreError;

/// The record files in one directory (`records/`, or `quarantine/records/`): `<id>.json`
/// per record, and `<id>.deleted` per delete under way.
#[derive(Debug, Clone)]
pub struct RecordFiles {
    dir: PathBuf,
}

impl RecordFiles {
    /// The record files in `dir`; nothing is read or created.
    pub fn new(dir: PathBuf) -> Self {
        RecordFiles { dir }
    }

    /// Where the file of record `id` is, or would be: `<dir>/<id>.json`.
    pub fn path_for(&self, id: MediaId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Writes (or replaces) a record's file durably: temp file, fsync, rename, fsync the
    /// directory.
    pub fn write(&self, record: &MediaRecord) -> Result<(), StoreError> {
        write_atomically(
            &self.dir,
            &self.path_for(record.id),
            &encode(record)?,
            FILE_MODE,
        )
    }

    /// Writes a new record's file under its name without waiting for the disk, for the caller
    /// to make it and [`dir`](Self::dir) durable later. The id is new, so the file is created
    /// in place (no temp file to rename): until then, a crash may leave it missing, empty or
    /// torn, and new records are inserted pending, so the next start rewrites the file of any
    /// still pending (see [`catalogue`](super::catalogue)).
    pub(crate) fn place(&self, record: &MediaRecord) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let bytes = encode(record)?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.path_for(record.id))
            .map_err(|e| StoreError::io("create a record file", e))?;
        // The same mode as every other record file, whatever the umask.
        file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
            .and_then(|()| file.write_all(&bytes))
            .map_err(|e| StoreError::io("write a record file", e))
    }

    /// Removes a record's file durably; a missing file is not an error.
    pub fn remove(&self, id: MediaId) -> Result<(), StoreError> {
        match fs::remove_file(self.path_for(id)) {
            Ok(()) => fsync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove a record file", e)),
        }
    }

    /// The tombstone of a record whose delete is under way: `<id>.deleted`.
    fn tombstone_path(&self, id: MediaId) -> PathBuf {
        self.dir.join(format!("{id}.deleted"))
    }

    /// The first step of a delete: renames the record's file to its tombstone, durably, so
    /// that from here on `records/` no longer holds the record, and a crash before the
    /// database follows leaves the tombstone as proof of the delete. Answers false when the
    /// file was not there.
    pub(crate) fn tombstone(&self, id: MediaId) -> Result<bool, StoreError> {
        match fs::rename(self.path_for(id), self.tombstone_path(id)) {
            Ok(()) => fsync_dir(&self.dir).map(|()| true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io("mark a record file deleted", e)),
        }
    }

    /// Undoes [`tombstone`](Self::tombstone) for a delete that the database refused.
    pub(crate) fn restore_tombstone(&self, id: MediaId) -> Result<(), StoreError> {
        fs::rename(self.tombstone_path(id), self.path_for(id))
            .map_err(|e| StoreError::io("restore a record file", e))?;
        fsync_dir(&self.dir)
    }

    /// Removes a tombstone once the database has the delete. Not fsynced: a tombstone that a
    /// crash brings back only names a delete that is already complete.
    pub(crate) fn clear_tombstone(&self, id: MediaId) -> Result<(), StoreError> {
        match fs::remove_file(self.tombstone_path(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove a record's tombstone", e)),
        }
    }

    /// The records whose delete a crash may have cut off.
    pub fn tombstones(&self) -> Result<Vec<MediaId>, StoreError> {
        self.names_ending(".deleted")
    }

    /// Moves a record's file into `dir` (created when missing), durably.
    pub fn move_to(&self, id: MediaId, dir: &std::path::Path) -> Result<(), StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::io("create quarantine/", e))?;
        if let Some(parent) = dir.parent() {
            fsync_dir(parent)?;
        }
        fs::rename(self.path_for(id), dir.join(format!("{id}.json")))
            .map_err(|e| StoreError::io("move a record file aside", e))?;
        fsync_dir(dir)?;
        fsync_dir(&self.dir)
    }

    /// The record in `id`'s file; `None` when there is no such file, and
    /// [`StoreError::Corrupt`] when it does not parse.
    pub fn read(&self, id: MediaId) -> Result<Option<MediaRecord>, StoreError> {
        match fs::read(self.path_for(id)) {
            Ok(bytes) => parse(&bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read a record file", e)),
        }
    }

    /// The ids of every record file, sorted; names that are not `<id>.json` are skipped
    /// (leftover `.tmp-*` files from a crash and tombstones among them).
    pub fn ids(&self) -> Result<Vec<MediaId>, StoreError> {
        self.names_ending(".json")
    }

    /// The ids of the files named `<id><suffix>`, sorted.
    fn names_ending(&self, suffix: &str) -> Result<Vec<MediaId>, StoreError> {
        let mut ids = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(StoreError::io("list records/", e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list records/", e))?;
            let name = entry.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(suffix))
                .and_then(|n| n.parse().ok())
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Removes temp files left by a write that a crash interrupted.
    pub fn clear_temp_files(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        let entries = fs::read_dir(&self.dir).map_err(|e| StoreError::io("list records/", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list records/", e))?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                fs::remove_file(entry.path())
                    .map_err(|e| StoreError::io("remove a temp record file", e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

pub(crate) fn encode(record: &MediaRecord) -> Result<Vec<u8>, StoreError> {
    let mut bytes = serde_json::to_vec_pretty(record)
        .map_err(|e| StoreError::Corrupt(format!("a record does not serialise: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The record in a record file's bytes; [`StoreError::Corrupt`] when they do not parse.
pub fn parse(bytes: &[u8]) -> Result<MediaRecord, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("a record file does not parse: {e}")))
}

//! Collections as things of their own: `collections/<file name>.json` per collection, holding
//! its name and its settings, so that a collection can exist before its first record (an empty
//! S3 bucket) and can say whether what is put into it is public by default.
//!
//! A collection exists when it has a file here or when records name it (stores older than
//! these files have only the latter, and need none). The files are not an index: `rebuild`
//! leaves them alone, backups carry them (see [`archive`](crate::archive)).
//!
//! # File names
//!
//! A name is free text (see [`record::collection`]): capitals, spaces, any script, but no `/`
//! and no control character. Its file name is its UTF-8 bytes percent-encoded, keeping only
//! lower-case ASCII letters, digits, `-` and `_` as they are (`Summer 2026` is
//! `%53ummer%202026.json`): no separator, no leading dot, and, as every capital and every
//! non-ASCII byte is escaped, no two names whose file names differ only by case or by Unicode
//! normalisation, which some filesystems fold. A name whose encoding would pass the 255 bytes
//! most filesystems allow a file name (long names in other scripts) is named instead by
//! `+` and the sha256 of its bytes; `+` is never part of an encoding, so the two never meet.
//! Each file holds its name, so the names are read from the files, and a file whose name is not
//! its content's encoding is ignored.
//!
//! The collections are read once, when the store opens, and kept in memory: reads touch no
//! disk. Changes are written durably (temp file, fsync, rename, fsync the directory) one at a
//! time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::layout::{fsync_dir, write_atomically, FILE_MODE};
use crate::{record, ListQuery, Store, StoreError};

/// Version of a collection file's JSON shape.
pub const COLLECTION_SCHEMA: u32 = 1;
/// The longest file name made, `.json` included.
const MAX_FILE_NAME: usize = 255;
const SUFFIX: &str = ".json";
/// What starts the file name of a name too long to encode.
const HASHED: char = '+';

/// A collection with a file: its name and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionInfo {
    /// As [`record::collection`] keeps it (trimmed).
    pub name: String,
    /// Whether objects put into it through S3 are public when they say nothing; private when
    /// false.
    pub public: bool,
    /// When its file was first written.
    pub created_at: OffsetDateTime,
}

/// A collection file's content.
#[derive(Serialize, Deserialize)]
struct CollectionFile {
    schema: u32,
    name: String,
    public: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

/// The file name of a collection's file (see the module's notes).
pub fn file_name(name: &str) -> String {
    let mut stem = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' {
            stem.push(char::from(b));
        } else {
            let _ = write!(stem, "%{b:02X}");
        }
    }
    if stem.len() + SUFFIX.len() > MAX_FILE_NAME {
        stem = format!("{HASHED}{}", hex::encode(Sha256::digest(name.as_bytes())));
    }
    stem + SUFFIX
}

/// The name a file name encodes; `None` for a hashed name (whose file holds it) or a file name
/// that [`file_name`] does not make.
pub fn name_of(file_name: &str) -> Option<String> {
    let stem = file_name.strip_suffix(SUFFIX)?;
    let mut bytes = Vec::with_capacity(stem.len());
    let mut rest = stem.bytes();
    while let Some(b) = rest.next() {
        if b == b'%' {
            let hex = [rest.next()?, rest.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            if hex.bytes().any(|d| d.is_ascii_lowercase()) {
                return None;
            }
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
        } else if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' {
            bytes.push(b);
        } else {
            return None;
        }
    }
    let name = String::from_utf8(bytes).ok()?;
    (self::file_name(&name) == file_name).then_some(name)
}

/// The name as stored, or [`StoreError::Invalid`]: the rules of [`record::collection`], and not
/// empty.
fn canonical(name: &str) -> Result<String, StoreError> {
    record::collection(name)?.ok_or_else(|| {
        StoreError::invalid(
            "collection",
            &format!(
                "a name of 1 to {} characters without '/' or control characters",
                record::MAX_COLLECTION
            ),
        )
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The collection files under `collections/`, and a copy of them in memory; or, when the
/// records are in PostgreSQL, the collections every instance shares (see `shared.rs`).
pub struct Collections {
    dir: PathBuf,
    shared: Option<shared::Shared>,
    known: Mutex<BTreeMap<String, CollectionInfo>>,
    /// Held through each change, so that changes (of one name above all) follow one another
    /// on disk as in memory, while reads take only `known`, and only for a moment.
    writing: Mutex<()>,
}

impl Collections {
    /// Reads the collection files in `dir` (none when it does not exist). A temp file that a
    /// crash left is removed; a file that does not parse, or whose name is not its content's
    /// encoding, is left where it is and ignored, with a warning.
    pub(crate) fn open(dir: PathBuf) -> Result<Collections, StoreError> {
        let mut known = BTreeMap::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => Some(e),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::io("list collections/", e)),
        };
        for entry in entries.into_iter().flatten() {
            let entry = entry.map_err(|e| StoreError::io("list collections/", e))?;
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.starts_with(".tmp-") {
                fs::remove_file(entry.path())
                    .map_err(|e| StoreError::io("remove a temp collection file", e))?;
                continue;
            }
            if file.starts_with('.') || !file.ends_with(SUFFIX) {
                continue;
            }
            match read(&entry.path(), &file) {
                Ok(info) => {
                    known.insert(info.name.clone(), info);
                }
                Err(why) => tracing::warn!(
                    file = %entry.path().display(),
                    "ignoring a collection file: {why}"
                ),
            }
        }
        Ok(Collections {
            dir,
            shared: None,
            known: Mutex::new(known),
            writing: Mutex::new(()),
        })
    }

    /// The collections every instance shares in PostgreSQL.
    pub(crate) fn open_shared(
        dir: PathBuf,
        pg: std::sync::Arc<crate::PgMeta>,
    ) -> Result<Collections, StoreError> {
        let (shared, known) = shared::Shared::open(pg)?;
        Ok(Collections {
            dir,
            shared: Some(shared),
            known: Mutex::new(known),
            writing: Mutex::new(()),
        })
    }

    /// Brings the copy up to date with the shared collections, if they changed and were last
    /// looked at more than `interval` ago.
    fn refresh(&self, interval: std::time::Duration) {
        if let Some(known) = self.shared.as_ref().and_then(|s| s.refreshed(interval)) {
            *lock(&self.known) = known;
        }
    }

    /// A change to the shared collections; the copy becomes what was saved.
    fn change_shared<R>(
        &self,
        shared: &shared::Shared,
        change: impl Fn(&mut shared::Known) -> (R, bool),
    ) -> Result<R, StoreError> {
        let (known, answer) = shared.change(change)?;
        *lock(&self.known) = known;
        Ok(answer)
    }

    /// Where a collection's file is, or would be.
    pub fn path_for(&self, name: &str) -> PathBuf {
        self.dir.join(file_name(name))
    }

    /// A collection with a file; `None` when it has none (it may still have records).
    pub fn get(&self, name: &str) -> Result<Option<CollectionInfo>, StoreError> {
        let name = canonical(name)?;
        self.refresh(std::time::Duration::from_secs(1));
        if let Some(info) = lock(&self.known).get(&name) {
            return Ok(Some(info.clone()));
        }
        // Made on another instance a moment ago?
        self.refresh(std::time::Duration::from_millis(100));
        Ok(lock(&self.known).get(&name).cloned())
    }

    /// Every collection with a file, by name.
    pub fn list(&self) -> Result<Vec<CollectionInfo>, StoreError> {
        self.refresh(std::time::Duration::from_secs(1));
        Ok(lock(&self.known).values().cloned().collect())
    }

    /// Gives a collection its file, private by default; one that has it already is left as it
    /// is. Answers the collection and whether its file was made now.
    pub fn create(&self, name: &str) -> Result<(CollectionInfo, bool), StoreError> {
        let name = canonical(name)?;
        let _writing = lock(&self.writing);
        if let Some(shared) = &self.shared {
            return self.change_shared(shared, |known| match known.get(&name) {
                Some(info) => ((info.clone(), false), false),
                None => {
                    let info = CollectionInfo {
                        name: name.clone(),
                        public: false,
                        created_at: record::now(),
                    };
                    known.insert(name.clone(), info.clone());
                    ((info, true), true)
                }
            });
        }
        if let Some(info) = lock(&self.known).get(&name) {
            return Ok((info.clone(), false));
        }
        let info = CollectionInfo {
            name,
            public: false,
            created_at: record::now(),
        };
        self.write(&info)?;
        Ok((info, true))
    }

    /// Sets whether what is put into a collection is public by default, making its file when
    /// it has none.
    pub fn set_public(&self, name: &str, public: bool) -> Result<CollectionInfo, StoreError> {
        let name = canonical(name)?;
        let _writing = lock(&self.writing);
        if let Some(shared) = &self.shared {
            return self.change_shared(shared, |known| {
                let info = match known.get(&name) {
                    Some(info) if info.public == public => return (info.clone(), false),
                    Some(info) => CollectionInfo {
                        public,
                        ..info.clone()
                    },
                    None => CollectionInfo {
                        name: name.clone(),
                        public,
                        created_at: record::now(),
                    },
                };
                known.insert(name.clone(), info.clone());
                (info, true)
            });
        }
        let current = lock(&self.known).get(&name).cloned();
        let info = match current {
            Some(info) if info.public == public => return Ok(info),
            Some(info) => CollectionInfo { public, ..info },
            None => CollectionInfo {
                name,
                public,
                created_at: record::now(),
            },
        };
        self.write(&info)?;
        Ok(info)
    }

    /// Removes a collection's file, durably; false when it had none. Its records, if any, are
    /// not the business of this: the caller decides whether a collection in use may lose its
    /// settings.
    pub fn remove(&self, name: &str) -> Result<bool, StoreError> {
        let name = canonical(name)?;
        let _writing = lock(&self.writing);
        if let Some(shared) = &self.shared {
            return self.change_shared(shared, |known| {
                let removed = known.remove(&name).is_some();
                (removed, removed)
            });
        }
        let removed = match fs::remove_file(self.path_for(&name)) {
            Ok(()) => {
                fsync_dir(&self.dir)?;
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(StoreError::io("remove a collection file", e)),
        };
        lock(&self.known).remove(&name);
        Ok(removed)
    }

    /// Writes a collection's file, then the copy in memory; the caller holds `writing`.
    fn write(&self, info: &CollectionInfo) -> Result<(), StoreError> {
        write_atomically(
            &self.dir,
            &self.path_for(&info.name),
            &encode(info)?,
            FILE_MODE,
        )?;
        lock(&self.known).insert(info.name.clone(), info.clone());
        Ok(())
    }
}

/// A collection file's bytes.
pub(crate) fn encode(info: &CollectionInfo) -> Result<Vec<u8>, StoreError> {
    let mut bytes = serde_json::to_vec_pretty(&CollectionFile {
        schema: COLLECTION_SCHEMA,
        name: info.name.clone(),
        public: info.public,
        created_at: info.created_at,
    })
    .map_err(|e| StoreError::Corrupt(format!("a collection does not serialise: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The collection in a file's bytes, if they parse, hold a valid name, and `file` is that
/// name's file name; [`StoreError::Corrupt`] otherwise.
pub(crate) fn parse(bytes: &[u8], file: &str) -> Result<CollectionInfo, StoreError> {
    let f: CollectionFile = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("a collection file does not parse: {e}")))?;
    match record::collection(&f.name) {
        Ok(Some(name)) if name == f.name => {}
        _ => {
            return Err(StoreError::Corrupt(format!(
                "a collection file names {:?}, which is not a collection name",
                f.name
            )))
        }
    }
    if file_name(&f.name) != file {
        return Err(StoreError::Corrupt(format!(
            "the collection file {file} holds the collection {:?}, whose file is {}",
            f.name,
            file_name(&f.name)
        )));
    }
    Ok(CollectionInfo {
        name: f.name,
        public: f.public,
        created_at: f.created_at,
    })
}

fn read(path: &Path, file: &str) -> Result<CollectionInfo, StoreError> {
    let bytes = fs::read(path).map_err(|e| StoreError::io("read a collection file", e))?;
    parse(&bytes, file)
}

impl Store {
    /// The distinct collections of the records that `q` matches (the caller's visibility and
    /// its filters; `limit` and `before` aside), by name; with `q.collection`, that one or
    /// none. A collection costs one seek in the index when `q` matches every record; else
    /// its records are read, newest first, up to the first that `q` matches, and a bounded
    /// number in all: past that bound the collections not yet seen are left out.
    pub fn collections_in_use(&self, q: &ListQuery) -> Result<Vec<String>, StoreError> {
        self.index().collections_in_use(q)
    }

    /// Whether any record, private or not, is in this collection.
    pub fn collection_in_use(&self, name: &str) -> Result<bool, StoreError> {
        let q = ListQuery {
            collection: Some(canonical(name)?),
            include_private: true,
            ..ListQuery::default()
        };
        Ok(!self.collections_in_use(&q)?.is_empty())
    }
}

/// The collections every instance shares, in PostgreSQL.
mod shared;

#[cfg(test)]
mod tests;

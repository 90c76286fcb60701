//! Backup archives: a plain tar that any tool can list, holding every collection file, every
//! record file and every blob, with a manifest (the last entry) naming every file with its
//! sha256 and size.
//!
//! ```text
//! shoebox-backup/FORMAT.json              {"format": "shoebox-backup", "version": 1, …}
//! shoebox-backup/collections/<name>.json  one per collection with a file, as in collections/
//! shoebox-backup/records/<id>.json        one per media record, as in records/
//! shoebox-backup/blobs/<sha256>           one per blob
//! shoebox-backup/MANIFEST.json            {"format", "version", "collections", "records", "blobs", "files": [{"path", "sha256", "size"}]}
//! ```
//!
//! Version 2 added `collections/`. An archive without collection files is still written as
//! version 1, which older builds restore.
//!
//! A backup is consistent while the server keeps working: records are read from the database
//! one by one, and a record is only ever visible once its blob is in place; while a backup runs,
//! deletes leave the blob file for the backup and unlink it when the backup ends.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::collections;
use super::hash::ContentHash;
use super::layout::{fsync_dir, Layout};
use super::record::MediaId;
use super::{record_files, Store, StoreError};

/// Restoring an archive into an empty directory.
mod restore;
pub use restore::restore;

/// The `format` that an archive's `FORMAT.json` and manifest name.
pub const ARCHIVE_FORMAT: &str = "shoebox-backup";
/// The newest archive version this build writes; it reads this one and older ones.
pub const ARCHIVE_VERSION: u32 = 2;

/// The oldest version that holds what an archive holds: 1 without collection files.
fn version_for(collections: usize) -> u32 {
    if collections == 0 {
        1
    } else {
        ARCHIVE_VERSION
    }
}
const PREFIX: &str = "shoebox-backup";

/// One file of an archive, as its manifest lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestEntry {
    /// Its path in the archive: `shoebox-backup/collections/<name>.json`,
    /// `shoebox-backup/records/<id>.json` or `shoebox-backup/blobs/<sha256>`.
    pub path: String,
    /// The sha256 of its bytes, as 64 lowercase hex digits.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// An archive's last entry: what the archive holds, with every file's hash and size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`ARCHIVE_FORMAT`].
    pub format: String,
    /// The archive version it was written in (see [`ARCHIVE_VERSION`]).
    pub version: u32,
    /// RFC 3339; when the backup started.
    pub created_at: String,
    /// The instance id of the store backed up, from its `FORMAT`.
    pub instance: String,
    /// Collection files in the archive (none before version 2).
    #[serde(default)]
    pub collections: usize,
    /// Record files in the archive.
    pub records: usize,
    /// Blobs in the archive, each once however many records use it.
    pub blobs: usize,
    /// Every collection file, record file and blob, in archive order (not `FORMAT.json` or
    /// the manifest).
    pub files: Vec<ManifestEntry>,
}

#[derive(Serialize, Deserialize)]
struct FormatHeader {
    format: String,
    version: u32,
    created_at: String,
    instance: String,
}

fn tar_err(e: io::Error) -> StoreError {
    StoreError::io("write the backup archive", e)
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    data: impl Read,
) -> Result<(), StoreError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, data).map_err(tar_err)
}

/// Exactly `left` bytes of a blob: an early end is an error, not a short tar entry.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "a blob is shorter than its record says",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Keeps blobs whose last record is deleted during a backup until the backup has read them.
pub(crate) struct BackupPin<'a>(&'a Store);

impl Drop for BackupPin<'_> {
    fn drop(&mut self) {
        if self.0.backups.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.unlink_deferred();
        }
    }
}

impl Store {
    /// Writes a consistent archive of the whole store to `out`; returns its manifest.
    pub fn write_backup<W: Write>(&self, out: W) -> Result<Manifest, StoreError> {
        self.backups.fetch_add(1, Ordering::SeqCst);
        let _pin = BackupPin(self);
        // With records in PostgreSQL, the other instances keep the blobs too until this ends.
        let _lease = match self.meta.shared() {
            Some(pg) => Some(pg.backup_lease()?),
            None => None,
        };
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        // As they are when the backup starts, from memory.
        let collections = self.collections.list()?;
        let version = version_for(collections.len());
        let mut tar = tar::Builder::new(out);
        let header = serde_json::to_vec_pretty(&FormatHeader {
            format: ARCHIVE_FORMAT.into(),
            version,
            created_at: now.clone(),
            instance: self.instance.clone(),
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        append(
            &mut tar,
            &format!("{PREFIX}/FORMAT.json"),
            header.len() as u64,
            header.as_slice(),
        )?;

        let mut files = Vec::new();
        for info in &collections {
            let json = collections::encode(info)?;
            let path = format!(
                "{PREFIX}/collections/{}",
                collections::file_name(&info.name)
            );
            files.push(ManifestEntry {
                path: path.clone(),
                sha256: hex::encode(Sha256::digest(&json)),
                size: json.len() as u64,
            });
            append(&mut tar, &path, json.len() as u64, json.as_slice())?;
        }
        let mut blobs_done: HashSet<ContentHash> = HashSet::new();
        let mut records_done = 0;
        for record in self.meta.all() {
            let record = record?;
            let mut json = serde_json::to_vec_pretty(&record)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            json.push(b'\n');
            let path = format!("{PREFIX}/records/{}.json", record.id);
            files.push(ManifestEntry {
                path: path.clone(),
                sha256: hex::encode(Sha256::digest(&json)),
                size: json.len() as u64,
            });
            append(&mut tar, &path, json.len() as u64, json.as_slice())?;
            records_done += 1;
            if blobs_done.insert(record.hash) {
                // The record's size: a blob shorter than it fails the backup, as a damaged
                // one should, and no more than it is read.
                let size = record.size;
                let file = Exact {
                    inner: self.blobs.reader(&record.hash, size)?.take(size),
                    left: size,
                };
                let path = format!("{PREFIX}/blobs/{}", record.hash);
                // The name is the content's sha256; the restore re-hashes to prove it.
                files.push(ManifestEntry {
                    path: path.clone(),
                    sha256: record.hash.to_hex(),
                    size,
                });
                append(&mut tar, &path, size, file)?;
            }
        }
        let manifest = Manifest {
            format: ARCHIVE_FORMAT.into(),
            version,
            created_at: now.clone(),
            instance: self.instance.clone(),
            collections: collections.len(),
            records: records_done,
            blobs: blobs_done.len(),
            files,
        };
        let json =
            serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        append(
            &mut tar,
            &format!("{PREFIX}/MANIFEST.json"),
            json.len() as u64,
            json.as_slice(),
        )?;
        tar.into_inner()
            .and_then(|mut w| w.flush())
            .map_err(tar_err)?;
        // Remembered in sled for the status page; with PostgreSQL the archive is the record.
        if let Ok(sled) = self.meta.sled() {
            sled.set_state("last_backup", &now)?;
        }
        Ok(manifest)
    }

    /// RFC 3339; when the last backup that completed started. `None` before the first one,
    /// or when the database cannot say.
    pub fn last_backup(&self) -> Option<String> {
        self.meta
            .sled()
            .ok()?
            .get_state("last_backup")
            .ok()
            .flatten()
    }
}

/// What an archive entry is, from its path.
enum Entry {
    Format,
    /// A collection file, by its file name (checked against its content when read).
    Collection(String),
    Record(MediaId),
    Blob(ContentHash),
    Manifest,
}

fn classify(path: &str) -> Option<Entry> {
    let rest = path.strip_prefix(PREFIX)?.strip_prefix('/')?;
    match rest {
        "FORMAT.json" => Some(Entry::Format),
        "MANIFEST.json" => Some(Entry::Manifest),
        _ => {
            if let Some(name) = rest
                .strip_prefix("records/")
                .and_then(|n| n.strip_suffix(".json"))
            {
                name.parse().ok().map(Entry::Record)
            } else if let Some(file) = rest.strip_prefix("collections/") {
                // Only what `collections::file_name` makes: never a path, never a dot file.
                let plain = file.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'%' | b'-' | b'_' | b'+' | b'.')
                });
                (plain && file.ends_with(".json") && !file.starts_with('.'))
                    .then(|| Entry::Collection(file.to_owned()))
            } else {
                rest.strip_prefix("blobs/")
                    .and_then(|n| n.parse().ok())
                    .map(Entry::Blob)
            }
        }
    }
}

/// The largest text entries an archive can hold: its header, its manifest (a line per file of a
/// very large store), one record (a few kilobytes of fields and a 16 KiB custom object), one
/// collection file (a name and two settings).
const MAX_FORMAT: u64 = 64 << 10;
const MAX_COLLECTION: u64 = 64 << 10;
const MAX_MANIFEST: u64 = 512 << 20;
const MAX_RECORD: u64 = 1 << 20;

fn bad(msg: impl Into<String>) -> StoreError {
    StoreError::Format(format!("not a valid Shoebox backup: {}", msg.into()))
}

/// Copies an entry to `sink` while hashing it.
fn copy_hashing(mut input: impl Read, mut sink: impl Write) -> Result<(String, u64), StoreError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = input
            .read(&mut buf)
            .map_err(|e| bad(format!("the archive is unreadable or truncated ({e})")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        sink.write_all(&buf[..n])
            .map_err(|e| StoreError::io("write a restored file", e))?;
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// What a restore wrote, or what a check of an archive read.
#[derive(Debug, Default)]
pub struct RestoreReport {
    /// Collection files.
    pub collections: usize,
    /// Record files.
    pub records: usize,
    /// Blobs.
    pub blobs: usize,
    /// The blobs' bytes, added up.
    pub bytes: u64,
}

/// Reads a whole archive, checking every file against the manifest. With `target`, files are
/// written under it (as `collections/…`, `records/…` and `blobs/sha256/…`); without, the
/// archive is only checked.
pub fn read_archive(
    input: impl Read,
    target: Option<&Path>,
) -> Result<(Manifest, RestoreReport), StoreError> {
    let mut archive = tar::Archive::new(input);
    let mut seen: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    let mut report = RestoreReport::default();
    let mut first = true;
    let progress = std::io::stderr().is_terminal() && target.is_some();
    let layout = target.map(Layout::new);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("unreadable ({e})")))?;
    for entry in entries {
        let entry = entry.map_err(|e| bad(format!("unreadable or truncated ({e})")))?;
        let path = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if manifest.is_some() {
            return Err(bad(format!("{path} comes after the manifest")));
        }
        let kind = classify(&path).ok_or_else(|| bad(format!("unexpected entry {path:?}")))?;
        // A small archive must not make the restore hold or write much more than it carries:
        // only plain files (a sparse entry expands to any size from a few bytes), and no text
        // entry larger than its kind can be. A blob's size is checked against the disk.
        let entry_type = entry.header().entry_type();
        if !entry_type.is_file() {
            return Err(bad(format!(
                "{path} is not a plain file (entry type {entry_type:?})"
            )));
        }
        let size = entry.size();
        let most = match kind {
            Entry::Format => MAX_FORMAT,
            Entry::Collection(_) => MAX_COLLECTION,
            Entry::Manifest => MAX_MANIFEST,
            Entry::Record(_) => MAX_RECORD,
            Entry::Blob(_) => u64::MAX,
        };
        if size > most {
            return Err(bad(format!(
                "{path} is {size} bytes, more than such an entry can be ({most})"
            )));
        }
        if let (Entry::Blob(_), Some(l)) = (&kind, &layout) {
            let free = super::disk::space(l.root())?.free_bytes;
            if size > free {
                return Err(StoreError::NoRoom(format!(
                    "not enough free space to restore {path} ({size} bytes, {free} free); \
                     nothing is kept of this restore"
                )));
            }
        }
        let entry = entry.take(most);
        if first != matches!(kind, Entry::Format) {
            return Err(bad("it must start with FORMAT.json"));
        }
        first = false;
        match kind {
            Entry::Format => {
                let mut text = Vec::new();
                let (sum, size) = copy_hashing(entry, &mut text)?;
                let header: FormatHeader =
                    serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
                if header.format != ARCHIVE_FORMAT {
                    return Err(bad(format!("format {:?}", header.format)));
                }
                if header.version > ARCHIVE_VERSION {
                    return Err(StoreError::Format(format!(
                        "this backup has archive version {}; this Shoebox reads up to {ARCHIVE_VERSION}: upgrade it",
                        header.version
                    )));
                }
                let _ = (sum, size);
            }
            Entry::Manifest => {
                let mut text = Vec::new();
                copy_hashing(entry, &mut text)?;
                manifest = Some(
                    serde_json::from_slice(&text)
                        .map_err(|e| bad(format!("its manifest does not parse ({e})")))?,
                );
            }
            Entry::Collection(file) => {
                let mut text = Vec::new();
                let (sum, size) = copy_hashing(entry, &mut text)?;
                // Outside input too: the name follows the rules, and the file is its name's.
                let info =
                    collections::parse(&text, &file).map_err(|e| bad(format!("{path}: {e}")))?;
                if let Some(l) = &layout {
                    write_file(&l.collections().join(&file), &collections::encode(&info)?)?;
                }
                seen.insert(path, (sum, size));
                report.collections += 1;
            }
            Entry::Record(id) => {
                let mut text = Vec::new();
                let (sum, size) = copy_hashing(entry, &mut text)?;
                let mut record = record_files::parse(&text)?;
                if record.id != id {
                    return Err(bad(format!("{path} holds media {}", record.id)));
                }
                if let Some(l) = &layout {
                    // An archive is outside input: its types are cleaned as a client's are,
                    // so a crafted one never reaches a response header.
                    let clean = super::sniff::normalise(&record.content_type);
                    let bytes = if clean == record.content_type {
                        text
                    } else {
                        record.content_type = clean;
                        record.kind = super::sniff::kind(&record.content_type);
                        record_files::encode(&record)?
                    };
                    write_file(&l.records().join(format!("{id}.json")), &bytes)?;
                }
                seen.insert(path, (sum, size));
                report.records += 1;
            }
            Entry::Blob(hash) => {
                let (sum, size) = match &layout {
                    Some(l) => {
                        let blobs = super::BlobStore::new(l.blobs(), l.tmp());
                        let dest = blobs.path_for(&hash);
                        let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
                        fs::create_dir_all(&dir)
                            .map_err(|e| StoreError::io("create a blob directory", e))?;
                        let mut file = fs::File::create(&dest)
                            .map_err(|e| StoreError::io("create a restored blob", e))?;
                        let r = copy_hashing(entry, &mut file)?;
                        file.sync_all()
                            .map_err(|e| StoreError::io("fsync a restored blob", e))?;
                        r
                    }
                    None => copy_hashing(entry, io::sink())?,
                };
                if sum != hash.to_hex() {
                    return Err(bad(format!(
                        "blob {hash} is damaged: its bytes hash to {sum}"
                    )));
                }
                report.bytes += size;
                report.blobs += 1;
                seen.insert(path, (sum, size));
            }
        }
        if progress && (report.records + report.blobs) % 100 == 0 {
            eprint!(
                "\rrestored {} records, {} blobs ({} MiB)",
                report.records,
                report.blobs,
                report.bytes >> 20
            );
        }
    }
    if progress {
        eprintln!(
            "\rrestored {} records, {} blobs ({} MiB)",
            report.records,
            report.blobs,
            report.bytes >> 20
        );
    }
    let manifest = manifest.ok_or_else(|| bad("it has no manifest: the archive is truncated"))?;
    let listed: BTreeMap<String, (String, u64)> = manifest
        .files
        .iter()
        .map(|f| (f.path.clone(), (f.sha256.clone(), f.size)))
        .collect();
    for (path, expected) in &listed {
        match seen.get(path) {
            None => {
                return Err(bad(format!(
                    "{path} is in the manifest but not in the archive"
                )))
            }
            Some(got) if got != expected => {
                return Err(bad(format!("{path} does not match the manifest")))
            }
            _ => {}
        }
    }
    if let Some(extra) = seen.keys().find(|p| !listed.contains_key(*p)) {
        return Err(bad(format!("{extra} is not in the manifest")));
    }
    if manifest.records != report.records
        || manifest.blobs != report.blobs
        || manifest.collections != report.collections
    {
        return Err(bad("the manifest's counts do not match its files"));
    }
    if let (Some(l), true) = (&layout, report.collections > 0) {
        fsync_dir(&l.collections())?;
    }
    Ok((manifest, report))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut f = fs::File::create(path).map_err(|e| StoreError::io("create a restored file", e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| StoreError::io("write a restored file", e))
}

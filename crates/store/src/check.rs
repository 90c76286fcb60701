//! `verify` and `verify --repair`: re-hash every blob and check every record, count, index,
//! total and record file against each other.
//!
//! Orphan blobs (no record in sled refers to them) are the normal trace of a
//! crash between the steps of the write protocol, not damage: they are listed and `gc` removes
//! them. Damage — a missing or corrupt blob, a wrong count, an index or record file that
//! disagrees with its record — makes the report fail.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::hash::ContentHash;
use super::record::{MediaId, MediaRecord};
use super::{Store, StoreError};

/// What `verify` found: damage, and the traces a crash leaves, which are not damage.
#[derive(Debug, Default)]
pub struct Report {
    /// Records read from the database (those that decode).
    pub records: usize,
    /// Blob files on disk.
    pub blobs: usize,
    /// Bytes re-hashed.
    pub bytes_hashed: u64,
    /// Blobs whose bytes no longer hash to their name: (name, actual hash).
    pub corrupt: Vec<(ContentHash, ContentHash)>,
    /// Blobs that records need but that are not on disk, with those records.
    pub missing: Vec<(ContentHash, Vec<MediaId>)>,
    /// Counts, indexes and totals (the status page's figures) that disagree with the records.
    pub derived: Vec<String>,
    /// Records in sled without a record file, or whose file says something else.
    pub record_files: Vec<(MediaId, String)>,
    /// Blob files no record uses (trace of a crash; `gc` removes them).
    pub orphan_blobs: Vec<ContentHash>,
    /// Record files the database lacks whose upload a crash cut off (their bytes never
    /// arrived whole), left for the server's next start, which sets them aside.
    pub orphan_records: Vec<MediaId>,
    /// Records whose upload a crash cut off before their bytes were whole (still marked
    /// pending, never acknowledged), left for the server's next start, which rolls them back.
    pub interrupted: Vec<MediaId>,
}

impl Report {
    /// True when it found damage: a corrupt or missing blob, a count, index or total, or a
    /// record file, that disagrees. Orphans and interrupted uploads are not damage.
    pub fn is_damaged(&self) -> bool {
        !(self.corrupt.is_empty()
            && self.missing.is_empty()
            && self.derived.is_empty()
            && self.record_files.is_empty())
    }

    /// A human-readable report, one finding per line.
    pub fn render(&self) -> String {
        let mut out = format!(
            "checked {} records and {} blobs ({} bytes re-hashed)\n",
            self.records, self.blobs, self.bytes_hashed
        );
        for (name, actual) in &self.corrupt {
            out += &format!("DAMAGE corrupt blob {name}: its bytes hash to {actual}\n");
        }
        for (hash, ids) in &self.missing {
            let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
            out += &format!(
                "DAMAGE missing blob {hash}, used by media {}\n",
                ids.join(", ")
            );
        }
        for line in &self.derived {
            out += &format!("DAMAGE {line}\n");
        }
        for (id, problem) in &self.record_files {
            out += &format!("DAMAGE record file {id}.json {problem}\n");
        }
        for hash in &self.orphan_blobs {
            out += &format!("orphan blob {hash} (no record uses it; `shoebox gc` removes it)\n");
        }
        for id in &self.orphan_records {
            out += &format!(
                "interrupted upload: record file {id}.json, whose bytes never arrived whole \
                 (the server's next start sets it aside)\n"
            );
        }
        for id in &self.interrupted {
            out += &format!(
                "interrupted upload: media {id}, whose bytes never arrived whole (the server's \
                 next start rolls it back)\n"
            );
        }
        out += if self.is_damaged() {
            "result: DAMAGED — run `shoebox verify --repair`, or restore from a backup\n"
        } else {
            "result: ok\n"
        };
        out
    }
}

/// Hashes a file in 1 MiB reads.
pub fn hash_file(path: &Path) -> std::io::Result<(ContentHash, u64)> {
    match hash_file_with(path, |_, _| true)? {
        Some(found) => Ok(found),
        None => unreachable!("nothing asked the hashing to stop"),
    }
}

/// Hashes a file in 1 MiB reads, telling `each` after every read how many bytes it read and
/// how many so far; `None` when `each` answers `false` (stop).
pub fn hash_file_with(
    path: &Path,
    each: impl FnMut(u64, u64) -> bool,
) -> std::io::Result<Option<(ContentHash, u64)>> {
    hash_read_with(fs::File::open(path)?, each)
}

/// [`hash_file_with`] on any reader (a blob in a bucket).
pub fn hash_read_with(
    mut file: impl Read,
    mut each: impl FnMut(u64, u64) -> bool,
) -> std::io::Result<Option<(ContentHash, u64)>> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
        if !each(n as u64, total) {
            return Ok(None);
        }
    }
    Ok(Some((ContentHash(hasher.finalize().into()), total)))
}

/// A progress line on stderr, only when stderr is a terminal, at most a few times a second.
struct Progress {
    on: bool,
    last: Instant,
}

impl Progress {
    fn new() -> Self {
        Progress {
            on: std::io::stderr().is_terminal(),
            last: Instant::now(),
        }
    }

    fn tick(&mut self, done: usize, total: usize, bytes: u64) {
        if self.on && (self.last.elapsed().as_millis() > 200 || done == total) {
            self.last = Instant::now();
            let _ = write!(
                std::io::stderr(),
                "\rre-hashing blobs: {done}/{total} ({} MiB)",
                bytes >> 20
            );
            if done == total {
                let _ = writeln!(std::io::stderr());
            }
        }
    }
}

impl Store {
    /// Every record in sled. A record that does not decode is reported as damage.
    fn load_records(&self, report: &mut Report) -> Vec<MediaRecord> {
        let mut records = Vec::new();
        for r in self.meta.all() {
            match r {
                Ok(r) => records.push(r),
                Err(e) => report
                    .derived
                    .push(format!("unreadable record in the database: {e}")),
            }
        }
        report.records = records.len();
        records
    }

    /// Of `ids`, the records that still use `hash` (read again now), when its blob is still
    /// not there.
    fn still_using(&self, hash: &ContentHash, ids: &[MediaId]) -> Result<Vec<MediaId>, StoreError> {
        let mut still = Vec::new();
        for id in ids {
            if self.meta.get(*id)?.is_some_and(|r| r.hash == *hash) {
                still.push(*id);
            }
        }
        if !still.is_empty() && self.blobs.exists(hash)? {
            // Placed since the listing (an upload of these bytes again).
            still.clear();
        }
        Ok(still)
    }

    /// Checks the whole store. Read-only.
    pub fn verify(&self) -> Result<Report, StoreError> {
        let mut report = Report::default();
        let records = self.load_records(&mut report);

        // Uploads a crash cut off before their bytes were whole stay pending until the server
        // settles them; their blobs are no damage.
        // (PostgreSQL marks nothing pending: a record is there once its upload committed.)
        let pending: BTreeSet<MediaId> = match self.meta.shared() {
            Some(_) => BTreeSet::new(),
            None => self.meta.sled()?.pending()?.into_iter().collect(),
        };
        let mut users: BTreeMap<ContentHash, Vec<MediaId>> = BTreeMap::new();
        for r in &records {
            users.entry(r.hash).or_default().push(r.id);
        }
        let only_pending = |hash: &ContentHash| users[hash].iter().all(|id| pending.contains(id));

        let blobs = self.blobs.list()?;
        report.blobs = blobs.len();
        let mut on_disk = BTreeSet::new();
        let mut progress = Progress::new();
        for (i, listed) in blobs.iter().enumerate() {
            let name = &listed.hash;
            let reader = self.blobs.reader(name, listed.size)?;
            let (actual, size) = match hash_read_with(reader, |_, _| true) {
                Ok(Some(found)) => found,
                Ok(None) => unreachable!("nothing asked the hashing to stop"),
                // Gone since the listing (deleted meanwhile): not this blob's damage.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("read a blob", e)),
            };
            report.bytes_hashed += size;
            // A blob no record uses may be what a crash left of an upload, bytes and all: an
            // orphan, not damage, whatever it holds (a new upload of these bytes replaces it).
            if actual != *name && users.contains_key(name) {
                if only_pending(name) {
                    report.interrupted.extend(users[name].iter().copied());
                } else {
                    report.corrupt.push((*name, actual));
                }
            }
            on_disk.insert(*name);
            if !users.contains_key(name) {
                report.orphan_blobs.push(*name);
            }
            progress.tick(i + 1, blobs.len(), report.bytes_hashed);
        }
        for (hash, ids) in &users {
            if on_disk.contains(hash) {
                continue;
            }
            if only_pending(hash) {
                report.interrupted.extend(ids.iter().copied());
                continue;
            }
            // With records in PostgreSQL the other instances work on while this runs: a
            // record deleted since it was read may have taken its blob along. Missing means
            // missing for a record that is still there.
            let ids = match self.meta.shared() {
                Some(_) => self.still_using(hash, ids)?,
                None => ids.clone(),
            };
            if !ids.is_empty() {
                report.missing.push((*hash, ids));
            }
        }

        if let Some(pg) = self.meta.shared() {
            // No record files to compare, and the totals are aggregates: only the counts.
            report.derived.extend(pg.count_problems()?);
            return Ok(report);
        }
        report
            .derived
            .extend(self.meta.sled()?.derived_problems(&records)?);

        let file_ids: BTreeSet<MediaId> = self.records.ids()?.into_iter().collect();
        for r in &records {
            match self.records.read(r.id) {
                Ok(Some(file)) if file == *r => {}
                _ if report.interrupted.contains(&r.id) => {}
                Ok(Some(_)) => report
                    .record_files
                    .push((r.id, "disagrees with the database".into())),
                Ok(None) => report.record_files.push((r.id, "is missing".into())),
                Err(e) => report
                    .record_files
                    .push((r.id, format!("is unreadable: {e}"))),
            }
        }
        let in_db: BTreeSet<MediaId> = records.iter().map(|r| r.id).collect();
        report.orphan_records.extend(file_ids.difference(&in_db));
        Ok(report)
    }

    /// Remembers when verify last ran and what it found, for `/api/status`.
    pub fn record_verify(&self, report: &Report) -> Result<(), StoreError> {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let outcome = if report.is_damaged() { "damaged" } else { "ok" };
        let Ok(sled) = self.meta.sled() else {
            // Kept in sled only; with PostgreSQL the report is the command's output.
            return Ok(());
        };
        sled.set_state("last_verify", &format!("{now} {outcome}"))?;
        self.meta.flush()
    }

    /// When verify last ran and what it found: an RFC 3339 time, a space, and `ok` or
    /// `damaged`. `None` before the first run, or when the database cannot say.
    pub fn last_verify(&self) -> Option<String> {
        self.meta
            .sled()
            .ok()?
            .get_state("last_verify")
            .ok()
            .flatten()
    }

    /// Verifies, then repairs what can be repaired without losing anything silently: corrupt
    /// blobs and the records that need a corrupt or missing blob are moved to `quarantine/`
    /// (and named in the output), counts, indexes and totals are recreated from the records, and record
    /// files are rewritten from the database. Returns the report from before the repair and the
    /// actions taken.
    pub fn repair(&self) -> Result<(Report, Vec<String>), StoreError> {
        let report = self.verify()?;
        let mut actions = Vec::new();
        let quarantine = self.layout.quarantine();
        let q_blobs = quarantine.join("blobs");
        let q_records = quarantine.join("records");

        let mut lost: Vec<MediaId> = report
            .missing
            .iter()
            .flat_map(|(_, ids)| ids.clone())
            .collect();
        let disk = self.blobs.disk();
        if !report.corrupt.is_empty() && disk.is_none() {
            return Err(StoreError::Format(
                "repair moves corrupt blobs to quarantine/ on the data disk, and these blobs are \
                 in a bucket: restore them from a backup, or delete the records that use them"
                    .into(),
            ));
        }
        for (name, _) in &report.corrupt {
            let Some(disk) = disk else { break };
            fs::create_dir_all(&q_blobs).map_err(|e| StoreError::io("create quarantine/", e))?;
            let target = q_blobs.join(name.to_hex());
            fs::rename(disk.path_for(name), &target)
                .map_err(|e| StoreError::io("quarantine a blob", e))?;
            actions.push(format!("moved corrupt blob {name} to {}", target.display()));
            for r in self.meta.all().flatten().filter(|r| r.hash == *name) {
                lost.push(r.id);
            }
        }
        for id in lost {
            let Some(record) = self.meta.get(id)? else {
                continue;
            };
            fs::create_dir_all(&q_records).map_err(|e| StoreError::io("create quarantine/", e))?;
            let target = q_records.join(format!("{id}.json"));
            let json = serde_json::to_vec_pretty(&record)
                .map_err(|e| StoreError::Corrupt(format!("a record does not serialise: {e}")))?;
            fs::write(&target, json).map_err(|e| StoreError::io("quarantine a record", e))?;
            self.meta.delete(id)?;
            self.records.remove(id)?;
            actions.push(format!(
                "moved media {id} ({:?}, blob {}) to {}: its bytes are lost; restore them from a backup",
                record.filename,
                record.hash,
                target.display()
            ));
        }

        let mut ignored = Report::default();
        let records = self.load_records(&mut ignored);
        if !report.derived.is_empty() || !ignored.derived.is_empty() {
            self.meta.sled()?.rederive(&records)?;
            actions.push(format!(
                "recreated reference counts, indexes and totals from {} records",
                records.len()
            ));
        }
        let to_rewrite: BTreeSet<MediaId> = report.record_files.iter().map(|(id, _)| *id).collect();
        for r in records.iter().filter(|r| to_rewrite.contains(&r.id)) {
            // The record file is the truth wherever it is readable and names the same bytes.
            match self.records.read(r.id) {
                Ok(Some(file)) if file.hash == r.hash && file.size == r.size => {
                    self.meta.replace(r, &file)?;
                    actions.push(format!(
                        "updated media {} in the database from its record file",
                        r.id
                    ));
                }
                _ => {
                    self.records.write(r)?;
                    actions.push(format!(
                        "rewrote record file {}.json from the database",
                        r.id
                    ));
                }
            }
        }
        self.meta.flush()?;
        Ok((report, actions))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::new;
    use super::*;

    /// The totals are derived like the indexes: a wrong one is damage, and the repair counts
    /// them again from the records.
    #[test]
    fn wrong_totals_are_damage_that_the_repair_recounts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .create(vec![new(&store, b"one"), new(&store, b"two")])
            .unwrap();
        store.create(vec![new(&store, b"one")]).unwrap();
        let right = store.stats().unwrap().totals;
        assert_eq!((right.media, right.blobs, right.blob_bytes), (3, 2, 6));
        assert!(!store.verify().unwrap().is_damaged());

        store.meta.sled().unwrap().set_counter("media", 1000);
        store.meta.sled().unwrap().set_counter("blob_bytes", 1);
        let report = store.verify().unwrap();
        assert!(report.is_damaged());
        assert_eq!(
            report.derived,
            vec![
                "counters: wrong value for blob_bytes".to_owned(),
                "counters: wrong value for media".to_owned(),
            ]
        );
        assert!(report
            .render()
            .contains("DAMAGE counters: wrong value for media"));
        let (_, actions) = store.repair().unwrap();
        assert!(
            actions.iter().any(|a| a.contains("indexes and totals")),
            "{actions:?}"
        );
        assert_eq!(store.stats().unwrap().totals, right);
        assert!(!store.verify().unwrap().is_damaged());
    }
}

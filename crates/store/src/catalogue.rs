//! `records/` is the truth and the database an index over it: this file keeps the two in step
//! across crashes, and tells a crash from a database that lost data.
//!
//! Every write changes `records/` before the database:
//! - an upload places its record file, then commits the record (see
//!   [`Store::create`](crate::Store::create));
//! - an edit replaces the file durably, then the record;
//! - a keyed upload's replacement makes its new blob durable, then replaces the file durably,
//!   then the record (see [`Store::put`](crate::Store::put));
//! - a delete renames the file to a tombstone durably, then deletes the record.
//!
//! So a crash can leave the database behind `records/` only by the writes in flight, and
//! `InFlight` bounds those to [`IN_FLIGHT`](crate::catalogue::IN_FLIGHT). At every open the
//! record ids on both sides are compared, and after an unclean stop the records' contents too:
//! - differences within the bound are settled from `records/`: a record file the database
//!   lacks is indexed (its blob is whole) or, when its bytes never arrived whole so that its
//!   upload cannot have been acknowledged, set aside in `quarantine/records/`; a file newer
//!   than its record replaces it (with its counts, when it names other bytes: they are whole,
//!   or the difference is damage); a tombstone finishes its delete;
//! - anything more is damage: the server rebuilds the database from `records/` (see
//!   [`rebuild`](crate::rebuild)), a command refuses and names `shoebox rebuild`.
//!
//! The evidence that no write was in flight lives outside the database, in the seal
//! (`CATALOG`): a generation that the database holds too, whether the last run closed
//! cleanly, and how many records it closed with. A database that lost its last writes, was
//! replaced or was recreated empty has another generation or another count. Ids cannot serve
//! as a high-water mark, because `import` backdates them.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use super::layout::{fsync_dir, Layout};
use super::record::{MediaId, MediaRecord};
use super::write::claim;
use super::{Store, StoreError};

/// Record writes (uploads, edits, deletes) allowed between their change to `records/` and
/// their database flush: the most a crash can leave unsettled. Each upload request holds at
/// most 100 (its files), so several groups of concurrent uploads fit.
pub const IN_FLIGHT: usize = 256;

/// The `state` key holding the database's generation.
pub(crate) const GENERATION: &str = "generation";

/// `CATALOG`: the evidence, outside the database, of its generation and last clean close.
mod seal;
pub use seal::Seal;

/// Bounds the record writes in flight (see [`IN_FLIGHT`]).
pub(crate) struct InFlight {
    used: Mutex<usize>,
    freed: Condvar,
}

/// Held while some record writes are in flight.
pub(crate) struct Permit<'a> {
    gate: &'a InFlight,
    n: usize,
}

impl InFlight {
    pub(crate) fn new() -> Self {
        InFlight {
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Waits until `n` more writes fit (`n` is capped at the bound).
    pub(crate) fn enter(&self, n: usize) -> Permit<'_> {
        let n = n.clamp(1, IN_FLIGHT);
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used + n > IN_FLIGHT {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += n;
        Permit { gate: self, n }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut used = self.gate.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= self.n;
        drop(used);
        self.gate.freed.notify_all();
    }
}

/// Who opens the store: the server settles everything; a maintenance command never moves a
/// record file, and leaves what only a move would settle to the server's next start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The server: settles everything, and rebuilds a damaged database.
    Server,
    /// A maintenance command: moves no record file, and refuses a damaged database.
    Command,
}

/// What the start-up check did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Settlement {
    /// Uploads a crash interrupted after the database had them, complete on disk and kept.
    pub kept: usize,
    /// Uploads a crash interrupted before their bytes were complete (never acknowledged).
    pub rolled_back: usize,
    /// Record files the database lacked, now indexed.
    pub adopted: usize,
    /// Records replaced by a newer version from their file (an edit, or a keyed upload's
    /// replacement, that a crash cut off).
    pub edits_adopted: usize,
    /// Deletes whose tombstone outlived a crash, finished.
    pub deletes_finished: usize,
    /// Record files of uploads that were never acknowledged, moved to `quarantine/records/`.
    pub set_aside: usize,
    /// Left for the server's next start (a command never moves record files).
    pub unsettled: usize,
}

impl Settlement {
    /// True when the check found nothing to settle.
    pub fn is_empty(&self) -> bool {
        *self == Settlement::default()
    }

    /// The counts that are not zero, as a comma-separated phrase ("3 record files indexed,
    /// 2 deletes finished"); empty when all are.
    pub fn describe(&self) -> String {
        let parts = [
            (self.kept, "interrupted uploads kept"),
            (self.rolled_back, "rolled back (never acknowledged)"),
            (self.adopted, "record files indexed"),
            (self.edits_adopted, "edits taken from record files"),
            (self.deletes_finished, "deletes finished"),
            (self.set_aside, "record files moved to quarantine/records/"),
            (self.unsettled, "left for the server's next start"),
        ];
        parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How the database disagrees with `records/` beyond what a crash explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// What was found, a phrase each ("the database lacks 3 records that records/ holds").
    pub findings: Vec<String>,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.findings.join("; "))
    }
}

/// A record file as read: the record and whether its blob is whole, or why it is unreadable.
type ReadFile = Result<(MediaRecord, bool), String>;

/// The differences found, before anything is changed.
#[derive(Debug, Default)]
struct Survey {
    generation: Option<u64>,
    /// Pending records, with whether their blob is whole.
    pending: Vec<(MediaRecord, bool)>,
    tombstones: Vec<MediaId>,
    /// Record files the database lacks: the record, and whether its blob is whole; or why
    /// the file is unreadable.
    extra: Vec<(MediaId, ReadFile)>,
    /// Records in the database with no file and no tombstone (and not pending).
    stale: Vec<MediaId>,
    /// Records whose file says something else: (database, file, whether the bytes the file
    /// names are whole; only checked when they are not the database's).
    differing: Vec<(MediaRecord, MediaRecord, bool)>,
    /// Records whose file does not parse while the database has them.
    unreadable: Vec<MediaId>,
    /// The database's ids, as its index of ids has them (see [`MetaStore::ids`]).
    ///
    /// [`MetaStore::ids`]: super::meta::MetaStore::ids
    db_count: usize,
    /// After an unclean stop, the records the database holds, and how many of them its index
    /// of ids lacks: the two must agree.
    records_read: Option<(usize, usize)>,
}

impl Store {
    /// The database's generation, as the seal knows it.
    pub(crate) fn generation(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .meta
            .sled()?
            .get_state(GENERATION)?
            .and_then(|v| v.parse().ok()))
    }

    pub(crate) fn set_generation(&self, g: u64) -> Result<(), StoreError> {
        self.meta.sled()?.set_state(GENERATION, &g.to_string())
    }

    /// Compares the database with `records/` without changing either. `full` reads every
    /// record file (after an unclean stop); otherwise only the ids are compared.
    fn survey(&self, full: bool) -> Result<Survey, StoreError> {
        let mut s = Survey {
            generation: self.generation()?,
            tombstones: self.records.tombstones()?,
            ..Survey::default()
        };
        let pending: BTreeSet<MediaId> = self.meta.sled()?.pending()?.into_iter().collect();
        for &id in &pending {
            if let Some(r) = self.meta.get(id)? {
                // A bucket that does not answer stops the start rather than let it judge
                // records by blobs it could not see.
                let whole = self.blobs.holds_whole(&r.hash, r.size)?;
                s.pending.push((r, whole));
            }
        }
        let files: BTreeSet<MediaId> = self.records.ids()?.into_iter().collect();
        // From the kind index, which each record's own transaction writes: a crash leaves it
        // exactly as far behind as the records (and a full survey checks the two agree).
        let db: BTreeSet<MediaId> = self.meta.sled()?.ids()?.into_iter().collect();
        s.db_count = db.len();
        let tombstoned: BTreeSet<MediaId> = s.tombstones.iter().copied().collect();
        for &id in files.difference(&db) {
            let parsed = self
                .records
                .read(id)
                .map_err(|e| e.to_string())
                .and_then(|r| r.ok_or_else(|| "it vanished".to_owned()))
                .and_then(|r| {
                    if r.id == id {
                        Ok(r)
                    } else {
                        Err("its id does not match its name".to_owned())
                    }
                });
            let parsed = match parsed {
                Ok(r) => {
                    let whole = self.blobs.holds_whole(&r.hash, r.size)?;
                    Ok((r, whole))
                }
                Err(e) => Err(e),
            };
            s.extra.push((id, parsed));
        }
        s.stale = db
            .difference(&files)
            .filter(|id| !pending.contains(id) && !tombstoned.contains(id))
            .copied()
            .collect();
        if full {
            // Straight through the database, not record by record through the read cache:
            // a start after a crash reads every record once, and none of them needs to stay
            // in memory for it.
            let (mut read, mut unindexed) = (0, 0);
            for in_db in self.meta.all() {
                let in_db = in_db?;
                let id = in_db.id;
                read += 1;
                if !db.contains(&id) {
                    unindexed += 1;
                }
                if !files.contains(&id) {
                    continue;
                }
                match self.records.read(id) {
                    Ok(Some(file)) if file == in_db => {}
                    Ok(Some(file)) => {
                        let whole = (file.hash, file.size) == (in_db.hash, in_db.size)
                            || self.blobs.holds_whole(&file.hash, file.size)?;
                        s.differing.push((in_db, file, whole));
                    }
                    Ok(None) => {}
                    Err(_) => s.unreadable.push(id),
                }
            }
            s.records_read = Some((read, unindexed));
        }
        Ok(s)
    }

    /// What in a survey no crash explains.
    fn damage(s: &Survey, seal: Option<&Seal>) -> Option<Damage> {
        let mut findings = Vec::new();
        let clean = match seal {
            Some(seal) => {
                let g = s.generation.unwrap_or(0);
                if g != seal.generation && g != seal.generation + 1 {
                    findings.push(format!(
                        "the database is at generation {g} while CATALOG says {}: it was \
                         replaced, recreated or lost its last writes",
                        seal.generation
                    ));
                }
                seal.clean && g == seal.generation
            }
            None => false,
        };
        if clean {
            // Nothing was in flight: any difference is a loss.
            if !s.extra.is_empty() {
                findings.push(format!(
                    "the database lacks {} records that records/ holds",
                    s.extra.len()
                ));
            }
            if let Some(seal) = seal {
                if s.db_count as u64 != seal.records && s.extra.is_empty() {
                    findings.push(format!(
                        "the database holds {} records, {} at the last clean stop",
                        s.db_count, seal.records
                    ));
                }
            }
        } else if s.extra.len() + s.differing.len() > IN_FLIGHT {
            findings.push(format!(
                "the database lacks or disagrees with {} record files, more than the {IN_FLIGHT} \
                 writes a crash can leave in flight",
                s.extra.len() + s.differing.len()
            ));
        }
        if let Some((read, unindexed)) = s.records_read {
            if read != s.db_count || unindexed > 0 {
                findings.push(format!(
                    "the database holds {read} records and its index of ids {}",
                    s.db_count
                ));
            }
        }
        if !s.stale.is_empty() {
            findings.push(format!(
                "{} records in the database have no record file in records/",
                s.stale.len()
            ));
        }
        // A file naming other bytes than its record is a keyed upload's replacement that a
        // crash cut off (see `Store::put`) only when those bytes are whole: they were durable
        // before the file named them.
        let moved = s.differing.iter().filter(|(_, _, whole)| !whole).count();
        if moved > 0 {
            findings.push(format!(
                "{moved} record files name other bytes than the database's records, and those \
                 bytes are missing or damaged"
            ));
        }
        (!findings.is_empty()).then_some(Damage { findings })
    }

    /// The start-up check: compares the database with `records/` and settles what a crash
    /// left in flight, or reports damage and changes nothing.
    pub(crate) fn reconcile(
        &self,
        seal: Option<&Seal>,
        role: Role,
    ) -> Result<Result<Settlement, Damage>, StoreError> {
        let clean = seal.is_some_and(|s| s.clean);
        let survey = self.survey(!clean)?;
        if let Some(damage) = Self::damage(&survey, seal) {
            return Ok(Err(damage));
        }
        let mut out = Settlement::default();
        let quarantine = self.layout.quarantine().join("records");
        let mut settled = Vec::new();
        // Pending records this run leaves alone or rolls back: nothing else touches them.
        let mut untouched = BTreeSet::new();
        // Deletes first: a tombstoned record is gone, whatever else a crash left of it.
        let tombstoned: BTreeSet<MediaId> = survey.tombstones.iter().copied().collect();
        for &id in &tombstoned {
            if let Some((r, remaining)) = self.meta.delete(id)? {
                if remaining == 0 {
                    self.blobs.remove(&r.hash)?;
                }
                out.deletes_finished += 1;
            }
        }
        for (record, whole) in &survey.pending {
            if tombstoned.contains(&record.id) {
                continue;
            }
            if *whole {
                self.blobs.make_durable(&record.hash)?;
                // The file may be missing or torn (it was not durable yet); one that parses
                // is compared below like any other.
                if !matches!(self.records.read(record.id), Ok(Some(_))) {
                    self.records.write(record)?;
                }
                out.kept += 1;
                settled.push(record.id);
            } else if role == Role::Server {
                tracing::warn!(
                    id = %record.id, hash = %record.hash,
                    "rolled back an upload that a crash cut off before its bytes were complete"
                );
                if let Some((r, remaining)) = self.meta.delete(record.id)? {
                    if self.records.path_for(r.id).exists() {
                        self.records.move_to(r.id, &quarantine)?;
                    }
                    if remaining == 0 {
                        self.blobs.remove(&r.hash)?;
                    }
                }
                out.rolled_back += 1;
                untouched.insert(record.id);
            } else {
                out.unsettled += 1;
                untouched.insert(record.id);
            }
        }
        self.meta.sled()?.settle(settled.into_iter())?;
        let mut adopted = Vec::new();
        let mut claimed = BTreeSet::new();
        for (id, parsed) in &survey.extra {
            // A key that another record holds (never the case for an upload that was
            // acknowledged: its key was checked free under its lock).
            let taken = match parsed {
                Ok((record, true)) => self.key_taken(record)? || !claimed.insert(claim(record)),
                _ => false,
            };
            match parsed {
                Ok((record, true)) if !taken => {
                    tracing::info!(
                        %id,
                        "indexed a record file the database lacked (an upload or a delete a \
                         crash cut off, or a write the database lost)"
                    );
                    self.blobs.make_durable(&record.hash)?;
                    adopted.push(record.clone());
                }
                _ if role == Role::Command => out.unsettled += 1,
                Ok((record, true)) => {
                    tracing::warn!(
                        %id, key = %record.key(), to = %quarantine.display(),
                        "set aside the record file of an upload whose key another record holds \
                         (it was never acknowledged)"
                    );
                    self.records.move_to(*id, &quarantine)?;
                    out.set_aside += 1;
                }
                Ok((record, false)) => {
                    tracing::warn!(
                        %id, hash = %record.hash, to = %quarantine.display(),
                        "set aside the record file of an upload whose bytes never arrived whole \
                         (it was never acknowledged)"
                    );
                    self.records.move_to(*id, &quarantine)?;
                    out.set_aside += 1;
                }
                Err(why) => {
                    tracing::warn!(
                        %id, %why, to = %quarantine.display(),
                        "set aside an unreadable record file that the database does not have \
                         (an upload a crash cut off while its file was written)"
                    );
                    self.records.move_to(*id, &quarantine)?;
                    out.set_aside += 1;
                }
            }
        }
        if !adopted.is_empty() {
            // Their files were placed without waiting for the disk.
            for r in &adopted {
                sync_file(&self.records.path_for(r.id))?;
            }
            fsync_dir(self.records.dir())?;
            self.meta.sled()?.insert(&adopted)?;
            out.adopted = adopted.len();
        }
        for (in_db, file, _) in &survey.differing {
            if untouched.contains(&in_db.id) {
                continue;
            }
            if self.key_taken(file)? {
                // An edit never acknowledged: its key was checked free under its lock.
                tracing::warn!(
                    id = %in_db.id, key = %file.key(),
                    "kept the database's version of a record whose file moves it onto another \
                     record's key, and rewrote the file"
                );
                self.records.write(in_db)?;
                continue;
            }
            if (in_db.hash, in_db.size) == (file.hash, file.size) {
                self.meta.replace(in_db, file)?;
            } else {
                // A keyed upload's replacement cut off after its record file: the bytes the
                // file names were durable before it was written, and the old ones are
                // still there (they go only after the database has the new version).
                self.blobs.make_durable(&file.hash)?;
                if self.meta.replace_content(in_db, file)? == 0 {
                    self.blobs.remove(&in_db.hash)?;
                }
            }
            out.edits_adopted += 1;
        }
        for &id in survey
            .unreadable
            .iter()
            .filter(|id| !untouched.contains(id))
        {
            if let Some(r) = self.meta.get(id)? {
                self.records.write(&r)?;
            }
        }
        self.meta.flush()?;
        for &id in &survey.tombstones {
            self.records.clear_tombstone(id)?;
        }
        Ok(Ok(out))
    }
}

impl Store {
    /// Whether another record holds `r`'s key in its collection.
    fn key_taken(&self, r: &MediaRecord) -> Result<bool, StoreError> {
        Ok(self
            .meta
            .by_key(r.collection.as_deref(), &r.key())?
            .is_some_and(|holder| holder != r.id))
    }
}

fn sync_file(path: &Path) -> Result<(), StoreError> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io("fsync a record file", e))
}

/// Where a record the database holds but `records/` lacks is kept by a rebuild.
pub(crate) fn quarantined_copy(layout: &Layout, id: MediaId) -> PathBuf {
    layout
        .quarantine()
        .join("records")
        .join(format!("{id}.json"))
}

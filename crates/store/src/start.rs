//! Opening and closing a store for a server or a command: the data directory's lock, the
//! start-up check against `records/` (see [`catalogue`](crate::catalogue)) and the rebuild it
//! may call for, and the clean close that seals the catalogue.

use std::path::Path;

use super::catalogue::{Damage, Role, Seal, Settlement};
use super::layout::{DirLock, Layout};
use super::space::SpaceReserve;
use super::{rebuild, Limits, Store, StoreError};

/// What [`Store::start`] found and did.
#[derive(Debug, Default, Clone)]
pub struct Started {
    /// What the start-up check settled of what a crash left in flight.
    pub settlement: Settlement,
    /// Why the database was rebuilt from `records/` at start-up, and what the rebuild did.
    pub rebuilt: Option<(Damage, String)>,
}

impl Store {
    /// Keeps the data directory's lock for as long as the store is open.
    pub(crate) fn holding(mut self, lock: DirLock) -> Result<Self, StoreError> {
        self.generation = std::sync::atomic::AtomicU64::new(self.generation()?.unwrap_or(0));
        self.lock = Some(lock);
        Ok(self)
    }

    /// Opens a data directory for a server or a command: locks it, finishes a rebuild that
    /// was killed, opens the database and checks it against `records/`, settling what a crash
    /// left in flight (see [`catalogue`](crate::catalogue)). A database that lost data, or
    /// that will not open, is rebuilt from `records/` for the server; a command gets
    /// [`StoreError::Damaged`], naming the recovery, and nothing is changed.
    pub fn start(root: &Path, role: Role) -> Result<Store, StoreError> {
        Self::start_with(root, role, Limits::default())
    }

    /// [`start`](Self::start) within these limits.
    pub fn start_with(root: &Path, role: Role, limits: Limits) -> Result<Store, StoreError> {
        let started = Self::start_here(root, role, limits);
        release_freed_memory();
        started.map_err(|e| match e {
            e @ StoreError::NoRoom(_) => e,
            e if e.is_disk_full() => StoreError::NoRoom(format!(
                "the disk holding {} is full ({e}). Nothing is damaged: free some space on it \
                 and start again",
                root.display()
            )),
            e => e,
        })
    }

    fn start_here(root: &Path, role: Role, limits: Limits) -> Result<Store, StoreError> {
        let layout = Layout::new(root);
        layout.prepare()?;
        let lock = layout.lock()?;
        if limits.database.is_some() {
            // Records in PostgreSQL: the data directory is this instance's scratch space, with
            // no records/ to check the database by; PostgreSQL keeps its own commits.
            let mut store = Store::open_with(root, limits)?;
            store.lock = Some(lock);
            return Ok(store);
        }
        let space = SpaceReserve::new(&layout)?;
        space.release_if_short();
        rebuild::finish_interrupted(&layout)?;
        let seal = Seal::read(&layout)?;
        let damage = match Store::open_with(root, limits.clone()) {
            Ok(mut store) => {
                store.space = Some(space);
                match store.reconcile(seal.as_ref(), role) {
                    Ok(Ok(settlement)) => return store.begin(lock, seal, settlement, None),
                    Ok(Err(damage)) => damage,
                    // Neither is damage: the disk fills, or the blob store does not answer
                    // (the check never judges records by blobs it could not see).
                    Err(e) if e.is_disk_full() || matches!(e, StoreError::Unavailable { .. }) => {
                        return Err(e)
                    }
                    // A database that fails while it is read is damaged too.
                    Err(e) => Damage {
                        findings: vec![format!("the database failed while it was checked: {e}")],
                    },
                }
            }
            // Neither is damage: the database opens once space is freed, or the other
            // process stops.
            Err(e) if e.is_disk_full() || matches!(e, StoreError::Locked(_)) => return Err(e),
            Err(e) => Damage {
                findings: vec![e.to_string()],
            },
        };
        if role == Role::Command {
            return Err(StoreError::Damaged(format!(
                "the metadata database disagrees with records/: {damage}. Every record is in \
                 records/: run `shoebox rebuild` to recreate the database from it (the old one \
                 is kept aside)"
            )));
        }
        tracing::error!(
            %damage,
            "the metadata database disagrees with records/, which holds every record: \
             rebuilding it from records/ (the old one is kept aside)"
        );
        let report = rebuild::rebuild_locked(&layout, limits.clone())?;
        let summary = report.summary();
        tracing::warn!("{summary}");
        let mut store = Store::open_with(root, limits)?;
        store.space = Some(SpaceReserve::new(&layout)?);
        let seal = Seal::read(&layout)?;
        match store.reconcile(seal.as_ref(), role)? {
            Ok(settlement) => store.begin(lock, seal, settlement, Some((damage, summary))),
            Err(still) => Err(StoreError::Damaged(format!(
                "the rebuilt metadata database still disagrees with records/: {still}"
            ))),
        }
    }

    /// The last step of [`start`](Self::start): a new generation, in the database first and
    /// then in the seal, which now says a run is open.
    fn begin(
        mut self,
        lock: DirLock,
        seal: Option<Seal>,
        settlement: Settlement,
        rebuilt: Option<(Damage, String)>,
    ) -> Result<Store, StoreError> {
        let generation = self
            .generation()?
            .unwrap_or(0)
            .max(seal.map_or(0, |s| s.generation))
            + 1;
        self.set_generation(generation)?;
        self.meta.flush()?;
        Seal {
            generation,
            clean: false,
            records: 0,
        }
        .write(&self.layout)?;
        self.load_damaged()?;
        self.generation = std::sync::atomic::AtomicU64::new(generation);
        self.unsettled = settlement.unsettled;
        self.lock = Some(lock);
        self.started = Started {
            settlement,
            rebuilt,
        };
        Ok(self)
    }

    /// What the start-up did.
    pub fn started(&self) -> &Started {
        &self.started
    }

    /// Flushes metadata once every request has finished and, for a store opened by
    /// [`start`](Self::start), seals the catalogue as closed cleanly (unless the start-up
    /// left something for the server's next start): a new generation in the database, then
    /// the seal with the record count.
    pub fn close_cleanly(&self) -> Result<(), StoreError> {
        if self.meta.shared().is_some() {
            // Every change committed before it was answered; there is no seal to write.
            return Ok(());
        }
        self.record_sync.drain();
        self.meta.sled()?.settle(self.take_settled().into_iter())?;
        if self.lock.is_none() {
            return self.meta.flush();
        }
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        self.set_generation(generation)?;
        self.flush_retrying()?;
        Seal {
            generation,
            clean: self.unsettled == 0,
            records: self.meta.sled()?.media_count() as u64,
        }
        .write(&self.layout)
    }

    /// The shutdown flush: a full disk gets the space reserve back and a second and third
    /// try, a moment apart.
    fn flush_retrying(&self) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            match self.meta.flush() {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 2 => {
                    tracing::warn!(error = %e, attempt, "the database flush failed; trying again");
                    if let Some(s) = &self.space {
                        s.release();
                    }
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(500 * attempt));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Gives the memory that the start-up check freed back to the system. glibc keeps what a
/// process frees for its next allocations, so the check's sets of ids (about 6 MiB at 100,000
/// records) would otherwise stay resident for the whole run.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only hands free pages of the heap back; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{cut_off, new};
    use super::super::{catalogue, rebuild, ContentHash, NewMedia};
    use super::*;

    fn start(dir: &Path) -> Store {
        Store::start(dir, Role::Server).unwrap()
    }

    /// A blob store that does not answer while the start checks what a crash left in flight
    /// is an outage, not damage: the start fails, a command is not told to rebuild, and
    /// nothing is rebuilt or set aside.
    #[test]
    fn an_unreachable_bucket_at_start_is_an_outage_not_damage() {
        use crate::bucket::{Bucket, BucketConfig};
        let dir = tempfile::tempdir().unwrap();
        let store = start(dir.path());
        let in_flight = cut_off(&store, b"in flight");
        store.close_cleanly().unwrap();
        drop(store);
        let nowhere = Bucket::connect(BucketConfig {
            bucket: "blobs".into(),
            // Port 1 on loopback: nothing listens there.
            endpoint: Some("http://127.0.0.1:1".into()),
            region: "garage".into(),
            access_key_id: "GK1".into(),
            secret_access_key: "secret".into(),
        })
        .unwrap();
        let limits = crate::Limits {
            bucket: Some(std::sync::Arc::new(nowhere)),
            ..crate::Limits::default()
        };
        for role in [Role::Command, Role::Server] {
            let err = Store::start_with(dir.path(), role, limits.clone())
                .err()
                .expect("the start fails");
            assert!(
                matches!(err, StoreError::Unavailable { .. }),
                "{role:?}: {err}"
            );
        }
        let entries: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !entries.iter().any(|n| n.starts_with("meta.damaged")),
            "nothing was rebuilt: {entries:?}"
        );
        let store = start(dir.path());
        assert!(store.started().rebuilt.is_none());
        assert_eq!(store.get(in_flight.id).unwrap(), Some(in_flight));
    }

    #[test]
    fn a_start_keeps_complete_uploads_and_rolls_back_incomplete_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = start(dir.path());
        let intact = cut_off(&store, b"complete bytes");
        let torn = cut_off(&store, b"bytes that never reached the disk");
        let shared = store
            .create(vec![new(&store, b"shared")])
            .unwrap()
            .remove(0);
        let dedup = cut_off(&store, b"shared");
        // What the disk may hold after the power cut: a torn record file, a short blob.
        std::fs::write(store.records.path_for(intact.id), b"{\"schema\":").unwrap();
        let short = store.blob_path(&torn.hash);
        std::fs::write(&short, b"bytes that").unwrap();
        // Clears the marks of the uploads that completed (cleared lazily otherwise), not those
        // of the cut-off ones.
        store.close_cleanly().unwrap();
        drop(store);

        let store = start(dir.path());
        let r = &store.started().settlement;
        assert_eq!((r.kept, r.rolled_back, r.set_aside), (2, 1, 0), "{r:?}");
        assert!(store.started().rebuilt.is_none());
        assert_eq!(store.get(intact.id).unwrap().unwrap(), intact);
        assert_eq!(store.records.read(intact.id).unwrap().unwrap(), intact);
        assert_eq!(store.get(dedup.id).unwrap().unwrap(), dedup);
        assert_eq!(store.refcount(&shared.hash).unwrap(), 2);
        assert!(store.get(torn.id).unwrap().is_none());
        assert!(store.records.read(torn.id).unwrap().is_none());
        assert!(
            catalogue::quarantined_copy(store.layout(), torn.id).is_file(),
            "the record file of the rolled-back upload is kept aside"
        );
        assert!(!short.exists(), "the incomplete blob went with its record");
        assert!(store.meta.sled().unwrap().pending().unwrap().is_empty());
        let report = store.verify().unwrap();
        assert!(!report.is_damaged(), "{}", report.render());
        store.close_cleanly().unwrap();
        drop(store);
        assert!(start(dir.path()).started().settlement.is_empty());
    }

    /// A completed upload's mark is cleared, once its record file is durable, by the next
    /// upload's transaction or at a clean shutdown; one a crash keeps makes the next start
    /// check that record, which it keeps.
    #[test]
    fn pending_marks_are_cleared_lazily_and_a_leftover_one_is_harmless() {
        let dir = tempfile::tempdir().unwrap();
        let store = start(dir.path());
        let first = store.create(vec![new(&store, b"first")]).unwrap().remove(0);
        assert_eq!(
            store.meta.sled().unwrap().pending().unwrap(),
            vec![first.id]
        );
        // The record file is made durable behind the upload; only then may its mark go.
        store.record_sync.drain();
        let second = store
            .create(vec![new(&store, b"second")])
            .unwrap()
            .remove(0);
        assert_eq!(
            store.meta.sled().unwrap().pending().unwrap(),
            vec![second.id]
        );
        store.meta.flush().unwrap();
        drop(store);
        let store = start(dir.path());
        let r = &store.started().settlement;
        assert_eq!((r.kept, r.rolled_back), (1, 0));
        assert_eq!(store.get(second.id).unwrap().unwrap(), second);
        let third = store.create(vec![new(&store, b"third")]).unwrap().remove(0);
        store.close_cleanly().unwrap();
        assert!(store.meta.sled().unwrap().pending().unwrap().is_empty());
        assert!(store.get(third.id).unwrap().is_some());
    }

    /// A record file the database lacks is an upload or a delete a crash cut off, or a loss
    /// of the database's: after a crash, a few are indexed when their bytes are whole and set
    /// aside when not (never acknowledged); after a clean stop, any is damage, and the server
    /// rebuilds the database from `records/`, where it finds them.
    #[test]
    fn record_files_the_database_lacks_are_indexed_never_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = start(dir.path());
        let first = store.create(vec![new(&store, b"bytes")]).unwrap().remove(0);
        let mut stray = first.clone();
        stray.id = store.new_id();
        stray.key = None;
        stray.title = "only in records/".into();
        store.records.write(&stray).unwrap();
        let mut cut = first.clone();
        cut.id = store.new_id();
        cut.key = None;
        cut.hash = ContentHash([7; 32]);
        store.records.write(&cut).unwrap();
        drop(store);

        // A crash: the stray one is indexed, the one without bytes set aside.
        let store = start(dir.path());
        let r = store.started().settlement.clone();
        assert_eq!((r.adopted, r.set_aside), (1, 1), "{r:?}");
        assert_eq!(store.get(stray.id).unwrap().unwrap(), stray);
        assert_eq!(store.refcount(&first.hash).unwrap(), 2);
        assert!(store.records.read(cut.id).unwrap().is_none());
        assert!(catalogue::quarantined_copy(store.layout(), cut.id).is_file());
        store.close_cleanly().unwrap();

        // After a clean stop, a difference is damage: a command refuses, the server rebuilds.
        let mut late = first.clone();
        late.id = store.new_id();
        late.key = None;
        store.records.write(&late).unwrap();
        drop(store);
        let refused = Store::start(dir.path(), Role::Command).err().unwrap();
        assert!(
            matches!(&refused, StoreError::Damaged(m) if m.contains("shoebox rebuild")),
            "{refused}"
        );
        let store = start(dir.path());
        let (damage, summary) = store.started().rebuilt.clone().unwrap();
        assert!(damage.to_string().contains("lacks 1 records"), "{damage}");
        assert!(summary.contains("from 3 record files"), "{summary}");
        for id in [first.id, stray.id, late.id] {
            assert!(store.get(id).unwrap().is_some());
        }
        assert!(!store.verify().unwrap().is_damaged());
    }

    /// A delete renames the record file to a tombstone before the database forgets the
    /// record: a crash in between is finished at the next start, and no rebuild brings the
    /// record back.
    #[test]
    fn a_delete_cut_off_after_its_tombstone_is_finished_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = start(dir.path());
        let kept = store.create(vec![new(&store, b"kept")]).unwrap().remove(0);
        let gone = store.create(vec![new(&store, b"gone")]).unwrap().remove(0);
        // Still marked pending, as a fresh upload is: the next start must not rewrite its
        // record file.
        assert!(store
            .meta
            .sled()
            .unwrap()
            .pending()
            .unwrap()
            .contains(&gone.id));
        assert!(store.records.tombstone(gone.id).unwrap());
        drop(store);
        let store = start(dir.path());
        assert_eq!(store.started().settlement.deletes_finished, 1);
        assert!(store.get(gone.id).unwrap().is_none());
        assert!(!store.blob_path(&gone.hash).exists());
        assert!(store.records.tombstones().unwrap().is_empty());
        assert!(store.records.read(gone.id).unwrap().is_none());
        assert!(!store.verify().unwrap().is_damaged());
        store.close_cleanly().unwrap();
        drop(store);
        let (store, report) = rebuild::rebuild(dir.path()).unwrap();
        assert_eq!(report.records, 1);
        assert!(store.get(gone.id).unwrap().is_none());
        assert!(store.get(kept.id).unwrap().is_some());
    }

    /// The start reads the database's ids from its kind index, the smallest tree that holds
    /// them all; an index that disagrees with the records is damage, after a clean stop and
    /// after a crash alike, and the database is rebuilt with every record.
    #[test]
    fn an_index_of_ids_that_disagrees_with_the_records_is_damage() {
        for clean in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let store = start(dir.path());
            let made = store
                .create(vec![new(&store, b"a"), new(&store, b"b")])
                .unwrap();
            if clean {
                store.close_cleanly().unwrap();
            }
            store.meta.sled().unwrap().drop_kind_entry(&made[0]);
            store.meta.flush().unwrap();
            drop(store);
            let store = start(dir.path());
            let (damage, _) = store.started().rebuilt.clone().expect("rebuilt");
            if !clean {
                assert!(
                    damage
                        .to_string()
                        .contains("holds 2 records and its index of ids 1"),
                    "{damage}"
                );
            }
            for r in &made {
                assert_eq!(store.get(r.id).unwrap().as_ref(), Some(r));
            }
            assert!(!store.verify().unwrap().is_damaged());
        }
    }

    /// More differences than writes can be in flight is damage even after a crash; so is a
    /// record the database has and `records/` lacks, or a database of another generation.
    #[test]
    fn a_database_that_lost_data_is_rebuilt_from_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = start(dir.path());
        let items: Vec<NewMedia> = (0..50)
            .map(|n| new(&store, format!("file {n}").as_bytes()))
            .collect();
        let made = store.create(items).unwrap();
        store.close_cleanly().unwrap();
        drop(store);
        std::fs::remove_dir_all(dir.path().join("meta")).unwrap();
        let store = start(dir.path());
        let (damage, _) = store.started().rebuilt.clone().unwrap();
        assert!(damage.to_string().contains("generation"), "{damage}");
        assert_eq!(store.media_count().unwrap(), 50);
        // Now a record file lost behind the database's back.
        std::fs::remove_file(store.records.path_for(made[0].id)).unwrap();
        drop(store);
        let store = start(dir.path());
        let (damage, summary) = store.started().rebuilt.clone().unwrap();
        assert!(damage.to_string().contains("no record file"), "{damage}");
        assert!(summary.contains("copied to quarantine"), "{summary}");
        assert_eq!(store.media_count().unwrap(), 49);
        assert!(catalogue::quarantined_copy(store.layout(), made[0].id).is_file());
    }
}

//! The MD5s that writers did not compute, for S3's ETags: those of records made before MD5s
//! were kept, read once after the server starts, and those of uploads through the REST API and
//! tus, read back once uploads have been quiet for a moment. S3 writes compute theirs in their
//! own pass. All of it runs on one background thread, only while the S3 API is served, and
//! reads each blob once; until a record has its MD5, its ETag has the form of a multipart one,
//! which S3 clients do not take for an MD5.
//!
//! With the records in PostgreSQL, one instance at a time computes the older records' MD5s
//! (it holds an advisory lock meanwhile); the others try again from time to time, and find
//! nothing left once it is done. Each instance fills in its own new uploads.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use crate::md5::Md5;
use crate::{ContentHash, MediaId, Store, StoreError};

/// How often the backfill says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// How long an instance waits before it tries again for the turn to compute the older
/// records' MD5s, while another instance has it.
const OLDER_RETRY: Duration = Duration::from_secs(300);

/// How long uploads must have been quiet before a new upload's MD5 is read back, so that the
/// reading does not compete with the uploads still arriving.
const QUIET: Duration = Duration::from_secs(2);

/// Records whose MD5 is wanted: new uploads that did not compute one.
#[derive(Debug, Default)]
pub(crate) struct Wanted {
    /// Set once the backfill runs: without it, nothing is queued.
    enabled: AtomicBool,
    ids: Mutex<Vec<MediaId>>,
    added: Condvar,
    /// When an upload last committed.
    last: Mutex<Option<Instant>>,
}

impl Wanted {
    pub(crate) fn add(&self, ids: impl Iterator<Item = MediaId>) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let mut wanted = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        let before = wanted.len();
        wanted.extend(ids);
        if wanted.len() > before {
            self.added.notify_one();
        }
    }

    /// How long to wait before uploads have been quiet for [`QUIET`].
    fn until_quiet(&self) -> Duration {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.map_or(Duration::ZERO, |t| QUIET.saturating_sub(t.elapsed()))
    }

    /// What was added, after waiting up to `wait` for something to be.
    fn take(&self, wait: Duration) -> Vec<MediaId> {
        let wanted = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        let (mut wanted, _) = self
            .added
            .wait_timeout_while(wanted, wait, |w| w.is_empty())
            .unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *wanted)
    }
}

impl Store {
    /// Starts the thread that computes the MD5s writers did not: first those of older records,
    /// read at no more than `rate` bytes a second (the scrub's rate: a large store's first
    /// pass must not crowd out serving), then those of new uploads as they come (the older
    /// ones wait for their turn when another instance has it). It stops with the scrub (at
    /// shutdown); what it had not done yet, the next start does.
    pub fn spawn_md5_backfill(
        self: &Arc<Self>,
        rate: u64,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        self.md5_wanted.enabled.store(true, Ordering::Relaxed);
        let store = self.clone();
        std::thread::Builder::new()
            .name("shoebox-md5".into())
            .spawn(move || {
                let stop = || store.scrub.stopped();
                // When the older records' MD5s are to be computed next; `None` once done.
                let mut older = Some(Instant::now());
                while !stop() {
                    if older.is_some_and(|at| at <= Instant::now()) {
                        older = store.backfill_older(rate, &stop);
                    }
                    let wait = store.md5_wanted.until_quiet();
                    if !wait.is_zero() {
                        std::thread::sleep(wait.min(Duration::from_millis(500)));
                        continue;
                    }
                    for id in store.md5_wanted.take(Duration::from_millis(500)) {
                        if let Err(e) = store.fill_md5(id) {
                            tracing::warn!(error = %e, media = %id, "could not compute an MD5");
                        }
                    }
                }
            })
    }

    /// Computes the MD5s older records lack, when it is this instance's turn; answers when to
    /// try again (`None`: done, or stopped; the next start does what is left).
    fn backfill_older(&self, rate: u64, stop: &impl Fn() -> bool) -> Option<Instant> {
        let _turn = match self.meta.shared().map(|pg| pg.md5_backfill_turn()) {
            None => None,
            Some(Ok(Some(turn))) => Some(turn),
            Some(Ok(None)) => return Some(Instant::now() + OLDER_RETRY),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "could not ask for the MD5 backfill's turn");
                return Some(Instant::now() + OLDER_RETRY);
            }
        };
        match self.backfill_md5(Some(rate), stop) {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "MD5s computed for older records"),
            Err(e) => tracing::warn!(error = %e, "the MD5 backfill stopped"),
        }
        None
    }

    /// Gives one record the MD5 of its blob, if it has none.
    fn fill_md5(&self, id: MediaId) -> Result<(), StoreError> {
        let Some(record) = self.meta.get(id)? else {
            return Ok(());
        };
        if !record.wants_md5() {
            return Ok(());
        }
        let Some(md5) = self.md5_of(&record.hash, record.size, None) else {
            return Ok(());
        };
        match self.learned(id, |r| {
            if r.hash == record.hash && r.wants_md5() {
                r.md5 = Some(md5.clone());
            }
        }) {
            Ok(_) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Gives every record without an MD5 the MD5 of its blob, reading each blob once; returns
    /// how many records it gave one. A blob that is missing or does not hash to its name is
    /// left alone (`verify` and the scrub report it).
    pub fn backfill_md5(
        &self,
        rate: Option<u64>,
        stop: impl Fn() -> bool,
    ) -> Result<usize, StoreError> {
        let mut missing: BTreeMap<(ContentHash, u64), Vec<MediaId>> = BTreeMap::new();
        for r in self.meta.all() {
            let r = r?;
            if r.wants_md5() {
                missing.entry((r.hash, r.size)).or_default().push(r.id);
            }
        }
        let total: usize = missing.values().map(Vec::len).sum();
        if total == 0 {
            return Ok(0);
        }
        tracing::info!(
            records = total,
            blobs = missing.len(),
            "computing the MD5s of records that have none, for S3's ETags"
        );
        let (mut done, mut last) = (0, Instant::now());
        for ((hash, size), ids) in missing {
            if stop() {
                break;
            }
            let Some(md5) = self.md5_of(&hash, size, rate) else {
                continue;
            };
            for id in ids {
                let learned = self.learned(id, |r| {
                    if r.hash == hash && r.wants_md5() {
                        r.md5 = Some(md5.clone());
                    }
                });
                match learned {
                    // Deleted meanwhile.
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                    Ok(_) => done += 1,
                }
            }
            if last.elapsed() >= PROGRESS_EVERY {
                last = Instant::now();
                tracing::info!(done, total, "computing MD5s");
            }
        }
        Ok(done)
    }

    /// The hex MD5 of a whole blob, when it hashes to its name; read at no more than `rate`
    /// bytes a second when one is given (`None` as well when asked to stop meanwhile).
    fn md5_of(&self, hash: &ContentHash, size: u64, rate: Option<u64>) -> Option<String> {
        let mut file = self.blobs.reader(hash, size).ok()?;
        let (mut md5, mut sha) = (Md5::new(), Sha256::new());
        let mut buf = vec![0u8; 1 << 20];
        let (began, mut total) = (Instant::now(), 0u64);
        loop {
            let n = file.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            md5.update(&buf[..n]);
            sha.update(&buf[..n]);
            total += n as u64;
            if let Some(rate) = rate {
                // Never ahead of the rate: sleep until `total` bytes were due.
                let due = Duration::from_secs_f64(total as f64 / rate.max(1) as f64);
                if let Some(ahead) = due.checked_sub(began.elapsed()) {
                    if !self.scrub.sleep(ahead) {
                        return None;
                    }
                }
            }
        }
        let sha: [u8; 32] = sha.finalize().into();
        (ContentHash(sha) == *hash).then(|| hex::encode(md5.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use md5_reference::{Digest, Md5};

    use crate::{testing, Store};

    #[test]
    fn records_without_an_md5_get_the_md5_of_their_bytes_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.create(vec![testing::new(&store, b"older")]).unwrap();
        let b = store.create(vec![testing::new(&store, b"older")]).unwrap();
        let c = store.create(vec![testing::new(&store, b"other")]).unwrap();
        assert_eq!(store.backfill_md5(None, || false).unwrap(), 3);
        for (r, bytes) in [(&a[0], b"older"), (&b[0], b"older"), (&c[0], b"other")] {
            let got = store.get(r.id).unwrap().unwrap().md5.unwrap();
            assert_eq!(got, hex::encode(Md5::digest(bytes)));
            assert_eq!(
                store.record_files().read(r.id).unwrap().unwrap().md5,
                Some(got),
                "the record file has it too"
            );
        }
        assert_eq!(store.backfill_md5(None, || false).unwrap(), 0, "once");
    }

    #[test]
    fn objects_completed_from_parts_are_not_read_for_an_md5() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .md5_wanted
            .enabled
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut item = testing::new(&store, b"from parts");
        item.etag = Some("0123456789abcdef0123456789abcdef-2".into());
        let parts = store.create(vec![item]).unwrap();
        let plain = store.create(vec![testing::new(&store, b"plain")]).unwrap();
        assert_eq!(
            store.md5_wanted.take(std::time::Duration::ZERO),
            vec![plain[0].id],
            "only the plain upload is queued"
        );
        assert_eq!(store.backfill_md5(None, || false).unwrap(), 1);
        let got = store.get(parts[0].id).unwrap().unwrap();
        assert_eq!((got.md5, got.etag.is_some()), (None, true));
        assert!(store.get(plain[0].id).unwrap().unwrap().md5.is_some());
    }

    #[test]
    fn new_uploads_are_queued_only_while_the_backfill_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create(vec![testing::new(&store, b"before")]).unwrap();
        assert!(store.md5_wanted.take(std::time::Duration::ZERO).is_empty());
        store
            .md5_wanted
            .enabled
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let r = store.create(vec![testing::new(&store, b"after")]).unwrap();
        assert_eq!(
            store.md5_wanted.take(std::time::Duration::ZERO),
            vec![r[0].id]
        );
        store.fill_md5(r[0].id).unwrap();
        let got = store.get(r[0].id).unwrap().unwrap().md5.unwrap();
        assert_eq!(got, hex::encode(Md5::digest(b"after")));
    }
}

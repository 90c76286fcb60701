//! The scrub: every blob that a record uses is re-hashed in the background, slowly, so that
//! bytes the disk damaged are found before a reader or a backup meets them (Garage scrubs its
//! blocks the same way). A blob whose bytes no longer hash to its name is moved to
//! `quarantine/blobs/` and reported; from then on its URLs answer `500 blob_damaged` instead
//! of serving the damage with a year of immutable caching, until the operator restores it
//! (`shoebox verify --repair` takes its records aside), or someone uploads the same file again,
//! which puts whole bytes back under the name.
//!
//! A pass reads at most `rate` bytes a second and starts `interval` after the last one began;
//! when it ran last is kept in the database, so a restart does not start a pass over.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::hash::ContentHash;
use super::{BlobStore, Store, StoreError};

/// The `state` key of the last finished pass.
const LAST_PASS: &str = "scrub_last_pass";

/// How often and how fast the scrub runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrubConfig {
    /// Between the starts of two passes.
    pub interval: Duration,
    /// Bytes read a second, at most.
    pub rate: u64,
}

/// One pass, for `/api/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScrubPass {
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339; absent while the pass runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Blobs re-hashed so far.
    pub blobs: u64,
    /// Bytes of the blobs re-hashed so far.
    pub bytes: u64,
    /// Blobs found damaged and quarantined.
    pub damaged: u64,
}

impl ScrubPass {
    /// When the pass started.
    pub fn started(&self) -> Option<time::OffsetDateTime> {
        time::OffsetDateTime::parse(
            &self.started_at,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()
    }
}

/// Blobs known to be damaged, and the scrub's running totals.
#[derive(Default)]
pub(crate) struct Damaged {
    hashes: RwLock<HashSet<ContentHash>>,
    /// Whether `hashes` is empty, read without the lock on every file served.
    any: AtomicBool,
}

impl Damaged {
    pub(crate) fn contains(&self, hash: &ContentHash) -> bool {
        self.any.load(Ordering::Relaxed)
            && self
                .hashes
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(hash)
    }

    pub(crate) fn insert(&self, hash: ContentHash) {
        let mut set = self.hashes.write().unwrap_or_else(|p| p.into_inner());
        set.insert(hash);
        self.any.store(true, Ordering::Relaxed);
    }

    pub(crate) fn remove(&self, hash: &ContentHash) {
        if !self.any.load(Ordering::Relaxed) {
            return;
        }
        let mut set = self.hashes.write().unwrap_or_else(|p| p.into_inner());
        set.remove(hash);
        self.any.store(!set.is_empty(), Ordering::Relaxed);
    }

    pub(crate) fn len(&self) -> usize {
        self.hashes.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The scrub's state, shared with the status page and the metrics.
#[derive(Default)]
pub struct ScrubState {
    /// Blobs re-hashed since the process started, over every pass.
    pub blobs_total: AtomicU64,
    /// Bytes read by the scrub since the process started, passes stopped part-way included.
    pub bytes_total: AtomicU64,
    /// Blobs found damaged and quarantined since the process started.
    pub damaged_total: AtomicU64,
    current: Mutex<Option<ScrubPass>>,
    stop: Mutex<bool>,
    wake: Condvar,
}

impl ScrubState {
    /// The pass running now, if any.
    pub fn current(&self) -> Option<ScrubPass> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Asks the scrub thread to stop, waking it from its wait.
    pub fn stop(&self) {
        *self.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_all();
    }

    pub(crate) fn stopped(&self) -> bool {
        *self.stop.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits up to `d`; answers false when asked to stop.
    pub(crate) fn sleep(&self, d: Duration) -> bool {
        let guard = self.stop.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .wake
            .wait_timeout_while(guard, d, |stop| !*stop)
            .unwrap_or_else(|p| p.into_inner());
        !*guard
    }
}

fn now_text() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Reads a file at most `rate` bytes a second and hashes it; `None` when asked to stop.
fn hash_paced(
    path: &Path,
    rate: u64,
    state: &ScrubState,
) -> std::io::Result<Option<(ContentHash, u64)>> {
    let began = Instant::now();
    super::check::hash_file_with(path, |n, total| {
        state.bytes_total.fetch_add(n, Ordering::Relaxed);
        // Never ahead of the rate: sleep until `total` bytes were due.
        let due = Duration::from_secs_f64(total as f64 / rate.max(1) as f64);
        due.checked_sub(began.elapsed())
            .is_none_or(|ahead| state.sleep(ahead))
    })
}

impl Store {
    /// Whether a blob was found damaged and is no longer served.
    pub fn is_damaged(&self, hash: &ContentHash) -> bool {
        self.damaged.contains(hash)
    }

    /// How many blobs are known to be damaged and are no longer served.
    pub fn damaged_blobs(&self) -> usize {
        self.damaged.len()
    }

    /// The scrub's running state, for the status page and the metrics.
    pub fn scrub_state(&self) -> &ScrubState {
        &self.scrub
    }

    /// The last finished pass, from the database.
    pub fn last_scrub(&self) -> Option<ScrubPass> {
        self.meta
            .sled()
            .ok()?
            .get_state(LAST_PASS)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_str(&v).ok())
    }

    /// Loads the damaged blobs that an earlier run found: quarantined, not back in place, and
    /// still used by a record.
    pub(crate) fn load_damaged(&self) -> Result<(), StoreError> {
        let dir = self.layout.quarantine().join("blobs");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let Some(hash) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<ContentHash>().ok())
            else {
                continue;
            };
            if !self.blobs.exists(&hash)? && self.meta.refcount(&hash)? > 0 {
                self.damaged.insert(hash);
            }
        }
        Ok(())
    }

    /// Re-hashes one blob; a blob whose bytes do not hash to its name, checked again under
    /// its lock and still used by a record, is quarantined. Answers whether it was damaged,
    /// or `None` when asked to stop.
    fn scrub_blob(
        &self,
        disk: &BlobStore,
        hash: &ContentHash,
        rate: u64,
    ) -> Result<Option<bool>, StoreError> {
        let path = disk.path_for(hash);
        let found = match hash_paced(&path, rate, &self.scrub) {
            Ok(Some((found, _))) => found,
            Ok(None) => return Ok(None),
            // Deleted meanwhile: nothing to check.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(false)),
            Err(e) => return Err(StoreError::io("read a blob to scrub it", e)),
        };
        if found == *hash {
            return Ok(Some(false));
        }
        let _guard = self
            .hash_locks
            .lock_all(std::iter::once(&hash.as_bytes()[..]));
        // An upload may have replaced the blob meanwhile, or its last record gone.
        let again = super::check::hash_file(&path).map(|(h, _)| h).ok();
        if again == Some(*hash) || self.meta.refcount(hash)? == 0 {
            return Ok(Some(false));
        }
        // Refused before it moves, so that no request finds it gone without knowing why.
        self.damaged.insert(*hash);
        let dir = self.layout.quarantine().join("blobs");
        let target = dir.join(hash.to_hex());
        let moved = fs::create_dir_all(&dir)
            .and_then(|()| fs::rename(&path, &target))
            .map_err(|e| StoreError::io("quarantine a blob", e));
        if let Err(e) = moved {
            self.damaged.remove(hash);
            return Err(e);
        }
        super::layout::fsync_dir(&dir)?;
        if let Some(parent) = path.parent() {
            super::layout::fsync_dir(parent)?;
        }
        tracing::error!(
            %hash, found = ?again.map(|h| h.to_hex()), to = %target.display(),
            "the scrub found a damaged blob: its bytes no longer hash to its name. It is no \
             longer served; restore it from a backup (or upload the same file again) and run \
             `shoebox verify --repair`"
        );
        Ok(Some(true))
    }

    /// One pass over every blob a record uses; `None` when asked to stop part-way.
    pub fn scrub_pass(&self, rate: u64) -> Result<Option<ScrubPass>, StoreError> {
        let mut pass = ScrubPass {
            started_at: now_text(),
            ..ScrubPass::default()
        };
        // Blobs in a bucket are the bucket's to scrub (Garage checks its own blocks).
        let Some(disk) = self.blobs.disk() else {
            pass.finished_at = Some(now_text());
            return Ok(Some(pass));
        };
        let mut blobs = disk.list_files()?;
        blobs.sort();
        for (hash, path) in blobs {
            if self.scrub.stopped() {
                return Ok(None);
            }
            // Orphans are crash traces for gc, not data.
            if self.meta.refcount(&hash)? == 0 {
                continue;
            }
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            match self.scrub_blob(disk, &hash, rate)? {
                None => return Ok(None),
                Some(damaged) => {
                    pass.blobs += 1;
                    pass.bytes += size;
                    self.scrub.blobs_total.fetch_add(1, Ordering::Relaxed);
                    if damaged {
                        pass.damaged += 1;
                        self.scrub.damaged_total.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            *self.scrub.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(pass.clone());
        }
        pass.finished_at = Some(now_text());
        if let Ok(json) = serde_json::to_string(&pass) {
            self.meta.sled()?.set_state(LAST_PASS, &json)?;
        }
        Ok(Some(pass))
    }

    /// Runs passes on a thread of their own until [`ScrubState::stop`].
    pub fn spawn_scrub(
        self: &Arc<Self>,
        config: ScrubConfig,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let store = self.clone();
        std::thread::Builder::new()
            .name("shoebox-scrub".into())
            .spawn(move || store.run_scrub(config))
    }

    fn run_scrub(&self, config: ScrubConfig) {
        loop {
            // The next pass is due an interval after the last one started.
            let since_last = self
                .last_scrub()
                .and_then(|p| p.started())
                .map(|t| (time::OffsetDateTime::now_utc() - t).unsigned_abs());
            let wait = match since_last {
                Some(elapsed) => config.interval.saturating_sub(elapsed),
                None => config.interval.min(Duration::from_secs(60)),
            };
            if !self.scrub.sleep(wait) {
                return;
            }
            match self.scrub_pass(config.rate) {
                Ok(Some(pass)) => tracing::info!(
                    blobs = pass.blobs,
                    bytes = pass.bytes,
                    damaged = pass.damaged,
                    "scrub pass finished"
                ),
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, "the scrub pass failed; trying again later");
                    self.note_error(&e);
                    if !self
                        .scrub
                        .sleep(config.interval.min(Duration::from_secs(3600)))
                    {
                        return;
                    }
                }
            }
            *self.scrub.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

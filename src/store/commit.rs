//! Concurrency pieces of the write protocol: striped locks and group commit (of sled's
//! flushes and of shared directories' fsyncs).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::parallel::Task;
use super::StoreError;

/// Striped locks keyed by bytes (a content hash or a media id).
///
/// An upload holds its hash's lock from "does the blob exist?" until its reference is committed;
/// a delete holds it from decrementing the count until the blob is unlinked. So a delete can never
/// unlink a blob that a concurrent upload just deduplicated to. Edits and deletes of one record
/// hold its id's lock, so its record file and its sled entry change in the same order.
pub(crate) struct HashLocks {
    stripes: Vec<Mutex<()>>,
}

impl HashLocks {
    pub(crate) fn new(n: usize) -> Self {
        HashLocks {
            stripes: (0..n).map(|_| Mutex::new(())).collect(),
        }
    }

    fn stripe(&self, key: &[u8]) -> usize {
        let mixed = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
        (mixed % self.stripes.len() as u64) as usize
    }

    /// Locks every stripe the keys fall in, in ascending order so two callers cannot deadlock.
    pub(crate) fn lock_all<'a>(
        &'a self,
        keys: impl Iterator<Item = &'a [u8]>,
    ) -> Vec<MutexGuard<'a, ()>> {
        let mut idx: Vec<usize> = keys.map(|k| self.stripe(k)).collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter()
            .map(|i| self.stripes[i].lock().unwrap_or_else(|p| p.into_inner()))
            .collect()
    }
}

/// Group commit for sled flushes: every writer's transaction is flushed before it is
/// acknowledged, but writers that commit while a flush runs share the next one instead of
/// queueing a flush each.
pub(crate) struct GroupCommit {
    committed: AtomicU64,
    state: Mutex<FlushState>,
    done: Condvar,
}

struct FlushState {
    flushed: u64,
    flushing: bool,
}

impl GroupCommit {
    pub(crate) fn new() -> Self {
        GroupCommit {
            committed: AtomicU64::new(0),
            state: Mutex::new(FlushState {
                flushed: 0,
                flushing: false,
            }),
            done: Condvar::new(),
        }
    }

    /// Call after a transaction committed; returns once a flush that started after that commit
    /// has finished.
    pub(crate) fn wait_durable(
        &self,
        flush: impl Fn() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mine = self.committed.fetch_add(1, Ordering::SeqCst) + 1;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if st.flushed >= mine {
                return Ok(());
            }
            if st.flushing {
                st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.flushing = true;
            // Every commit numbered up to `target` happened before this flush starts.
            let target = self.committed.load(Ordering::SeqCst);
            drop(st);
            let result = flush();
            st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.flushing = false;
            if result.is_ok() {
                st.flushed = st.flushed.max(target);
            }
            self.done.notify_all();
            result?;
        }
    }
}

/// A directory whose fsync concurrent writers share: each waits for one that started after its
/// change to the directory, as [`GroupCommit`] does for sled's flushes.
pub(crate) struct SharedDirSync {
    dir: PathBuf,
    commit: GroupCommit,
}

impl SharedDirSync {
    pub(crate) fn new(dir: PathBuf) -> Self {
        SharedDirSync {
            dir,
            commit: GroupCommit::new(),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The wait for a shared fsync, as a task of one step; call it after changing the
    /// directory.
    pub(crate) fn task(self: &Arc<Self>) -> Task {
        let shared = self.clone();
        Box::new(move || {
            shared
                .commit
                .wait_durable(|| super::layout::fsync_dir(&shared.dir))
        })
    }
}

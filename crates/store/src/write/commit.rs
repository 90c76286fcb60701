//! Concurrency pieces of the write protocol: striped locks and group commit (of new records'
//! transactions, of sled's flushes and of shared directories' fsyncs).

use std::collections::VecDeque;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::parallel::Task;
use crate::StoreError;

/// Striped locks keyed by bytes (a content hash or a media id).
///
/// An upload holds its hash's lock from "does the blob exist?" until its reference is committed;
/// a delete holds it from decrementing the count until the blob is unlinked. So a delete can never
/// unlink a blob that a concurrent upload just deduplicated to. Edits and deletes of one record
/// hold its id's lock, so its record file and its sled entry change in the same order.
pub(crate) struct StripedLocks {
    stripes: Vec<Mutex<()>>,
}

impl StripedLocks {
    pub(crate) fn new(n: usize) -> Self {
        StripedLocks {
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
                .wait_durable(|| crate::layout::fsync_dir(&shared.dir))
        })
    }
}

/// Group commit of whole steps: concurrent callers hand over an item each, and the first to
/// find no batch running runs one batch of every item queued by then (its own among them),
/// which answers an outcome for each item. Callers that arrive while a batch runs form the next
/// one, so under load the step runs once for many callers, and alone a caller runs it at once.
pub(crate) struct Batcher<T> {
    state: Mutex<BatchState<T>>,
    done: Condvar,
}

struct BatchState<T> {
    queue: Vec<T>,
    /// Tickets handed out, and tickets taken into batches: the queue holds the rest, in order.
    issued: u64,
    taken: u64,
    running: bool,
    /// Outcomes of finished batches that some of their callers have yet to take.
    outcomes: VecDeque<BatchOutcome>,
}

struct BatchOutcome {
    tickets: Range<u64>,
    unread: usize,
    results: Vec<Option<Result<(), StoreError>>>,
}

impl<T> Batcher<T> {
    pub(crate) fn new() -> Self {
        Batcher {
            state: Mutex::new(BatchState {
                queue: Vec::new(),
                issued: 0,
                taken: 0,
                running: false,
                outcomes: VecDeque::new(),
            }),
            done: Condvar::new(),
        }
    }

    /// Queues `item` and returns its outcome once a batch holding it has run. `run` runs the
    /// batch when this caller is the one to run it, and answers one outcome per item, in order.
    pub(crate) fn submit(
        &self,
        item: T,
        run: impl FnOnce(Vec<T>) -> Vec<Result<(), StoreError>>,
    ) -> Result<(), StoreError> {
        let mut st = self.lock();
        let ticket = st.issued;
        st.issued += 1;
        st.queue.push(item);
        loop {
            if let Some(i) = st.outcomes.iter().position(|o| o.tickets.contains(&ticket)) {
                let outcome = &mut st.outcomes[i];
                let mine = outcome.results[(ticket - outcome.tickets.start) as usize].take();
                outcome.unread -= 1;
                if outcome.unread == 0 {
                    st.outcomes.remove(i);
                }
                return mine.unwrap_or_else(|| Err(lost()));
            }
            if !st.running {
                // This caller's item is still queued (a batch that took it would be running
                // or would have left its outcome), so the batch it runs includes it.
                st.running = true;
                let batch = std::mem::take(&mut st.queue);
                let tickets = st.taken..st.taken + batch.len() as u64;
                st.taken = tickets.end;
                drop(st);
                let len = batch.len();
                // A panic must not leave `running` set, or every later caller would wait.
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(batch)));
                let mut results: Vec<_> = ran.unwrap_or_default().into_iter().map(Some).collect();
                results.resize_with(len, || Some(Err(lost())));
                let mine = results[(ticket - tickets.start) as usize]
                    .take()
                    .unwrap_or_else(|| Err(lost()));
                let mut st = self.lock();
                st.running = false;
                if len > 1 {
                    st.outcomes.push_back(BatchOutcome {
                        tickets,
                        unread: len - 1,
                        results,
                    });
                }
                drop(st);
                self.done.notify_all();
                return mine;
            }
            st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn lock(&self) -> MutexGuard<'_, BatchState<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The outcome of an item its batch answered none for (a bug, or a panic, in the batch's step).
fn lost() -> StoreError {
    StoreError::Corrupt("a batched write answered no outcome for an item".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Callers that arrive while a batch runs share the next one, and each gets the outcome
    /// of its own item, not of its neighbours'.
    #[test]
    fn concurrent_callers_share_batches_and_get_their_own_outcomes() {
        let batcher = Arc::new(Batcher::<u32>::new());
        let batches = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16u32)
            .map(|n| {
                let (batcher, batches) = (batcher.clone(), batches.clone());
                std::thread::spawn(move || {
                    let outcome = batcher.submit(n, |items| {
                        batches.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        items
                            .into_iter()
                            .map(|i| match i % 3 {
                                0 => Err(StoreError::Corrupt(format!("item {i}"))),
                                _ => Ok(()),
                            })
                            .collect()
                    });
                    (n, outcome)
                })
            })
            .collect();
        for t in threads {
            let (n, outcome) = t.join().unwrap();
            match outcome {
                Err(StoreError::Corrupt(m)) => assert_eq!(n % 3, 0, "{m}"),
                Ok(()) => assert_ne!(n % 3, 0),
                Err(e) => panic!("{e}"),
            }
        }
        let ran = batches.load(Ordering::SeqCst);
        assert!(
            ran < 16,
            "sixteen callers, 20 ms per batch: some shared one ({ran} ran)"
        );
    }

    /// A step that panics fails its batch; the next caller runs its own batch.
    #[test]
    fn a_panicking_batch_fails_its_callers_and_does_not_block_the_next() {
        let batcher = Batcher::<u32>::new();
        let failed = batcher.submit(1, |_| panic!("the step failed"));
        assert!(matches!(failed, Err(StoreError::Corrupt(_))), "{failed:?}");
        let ok = batcher.submit(2, |items| items.iter().map(|_| Ok(())).collect());
        assert!(ok.is_ok());
    }

    #[test]
    fn an_io_error_is_duplicated_with_its_kind() {
        let e = StoreError::io(
            "write",
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        assert!(e.duplicate().is_disk_full());
        assert_eq!(e.duplicate().to_string(), e.to_string());
    }
}

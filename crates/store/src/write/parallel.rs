//! Running the fsyncs of one step of the write protocol side by side.
//!
//! Each fsync waits for a journal commit and a flush of the disk's cache, a few milliseconds
//! on a typical disk. fsyncs that are in flight together share those commits and flushes (the
//! kernel batches them), so the fsyncs of one step, which do not depend on each other, are
//! issued at once rather than one after the other. A step is complete only when every one of
//! them has returned successfully.
//!
//! The tasks run on a small pool of threads kept for the purpose: starting a thread per fsync
//! costs more CPU than a small upload's hashing.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use crate::StoreError;

/// One durable operation of a step; it owns what it needs (a file handle, a path).
pub(crate) type Task = Box<dyn FnOnce() -> Result<(), StoreError> + Send + 'static>;

/// Threads in the pool. Tasks never wait for each other, so a busy pool only queues them;
/// this many lets the fsyncs of several concurrent uploads be in flight together.
const THREADS: usize = 16;

struct Job {
    task: Task,
    done: Arc<Step>,
}

/// How many tasks of one step are still running, and the first error among those that ended.
struct Step {
    state: Mutex<(usize, Option<StoreError>)>,
    finished: Condvar,
}

impl Step {
    fn finish(&self, result: Result<(), StoreError>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0 -= 1;
        if let Err(e) = result {
            st.1.get_or_insert(e);
        }
        if st.0 == 0 {
            self.finished.notify_all();
        }
    }
}

/// The pool's queue, or `None` when no thread could be started (then tasks run inline).
fn pool() -> Option<&'static Mutex<Sender<Job>>> {
    static POOL: OnceLock<Option<Mutex<Sender<Job>>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for _ in 0..THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name("shoebox-fsync".into())
                .stack_size(64 * 1024)
                .spawn(move || work(&rx));
            if spawned.is_ok() {
                started += 1;
            }
        }
        (started > 0).then(|| Mutex::new(tx))
    })
    .as_ref()
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job.task))
            .unwrap_or_else(|_| Err(StoreError::Corrupt("an fsync task panicked".into())));
        job.done.finish(result);
    }
}

/// Runs every task on the pool and `here` on this thread at the same time, and returns the
/// first error once all of them have finished.
pub(crate) fn run_all(
    tasks: Vec<Task>,
    here: impl FnOnce() -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let step = Arc::new(Step {
        state: Mutex::new((tasks.len(), None)),
        finished: Condvar::new(),
    });
    match pool() {
        Some(queue) => {
            let queue = queue.lock().unwrap_or_else(|p| p.into_inner());
            for task in tasks {
                let job = Job {
                    task,
                    done: step.clone(),
                };
                if let Err(mpsc::SendError(job)) = queue.send(job) {
                    job.done.finish((job.task)());
                }
            }
        }
        None => {
            for task in tasks {
                step.finish(task());
            }
        }
    }
    let mine = here();
    let mut st = step.state.lock().unwrap_or_else(|p| p.into_inner());
    while st.0 > 0 {
        st = step.finished.wait(st).unwrap_or_else(|p| p.into_inner());
    }
    match (mine, st.1.take()) {
        (Err(e), _) | (Ok(()), Some(e)) => Err(e),
        (Ok(()), None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn runs_every_task_and_reports_a_failure() {
        let ran = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<Task> = (0..5)
            .map(|i| {
                let ran = ran.clone();
                Box::new(move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                    if i == 3 {
                        Err(StoreError::Corrupt("task 3".into()))
                    } else {
                        Ok(())
                    }
                }) as Task
            })
            .collect();
        let here = AtomicUsize::new(0);
        let err = run_all(tasks, || {
            here.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap_err();
        assert_eq!(
            ran.load(Ordering::SeqCst),
            5,
            "a failure does not cut the others short"
        );
        assert_eq!(here.load(Ordering::SeqCst), 1);
        assert_eq!(err.to_string(), "task 3");
        assert!(run_all(Vec::new(), || Ok(())).is_ok());
        let err = run_all(Vec::new(), || Err(StoreError::Corrupt("here".into()))).unwrap_err();
        assert_eq!(err.to_string(), "here");
    }

    #[test]
    fn a_panicking_task_is_an_error_not_a_hang() {
        let tasks: Vec<Task> = vec![Box::new(|| panic!("boom"))];
        let err = run_all(tasks, || Ok(())).unwrap_err();
        assert!(err.to_string().contains("panicked"));
    }
}

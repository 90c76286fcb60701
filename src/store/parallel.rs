//! Running the fsyncs of one step of the write protocol side by side.
//!
//! Each fsync waits for a journal commit and a flush of the disk's cache, a few milliseconds
//! on a typical disk. fsyncs that are in flight together share those commits and flushes (the
//! kernel batches them), so the fsyncs of one step, which do not depend on each other, are
//! issued at once rather than one after the other. A step is complete only when every one of
//! them has returned successfully.

use super::StoreError;

/// One durable operation of a step.
pub(crate) type Task<'a> = Box<dyn FnOnce() -> Result<(), StoreError> + Send + 'a>;

/// Runs every task, the first on this thread and the others on scoped threads, and returns the
/// first error once all of them have finished. A thread that cannot be started runs its task
/// here instead.
pub(crate) fn run_all(tasks: Vec<Task<'_>>) -> Result<(), StoreError> {
    let mut tasks = tasks.into_iter();
    let Some(first) = tasks.next() else {
        return Ok(());
    };
    std::thread::scope(|scope| {
        let mut inline = Vec::new();
        let mut spawned = Vec::new();
        for task in tasks {
            // The task moves into the thread, or comes back when the thread could not start.
            let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(task)));
            let theirs = slot.clone();
            let started = std::thread::Builder::new()
                .name("shoebox-fsync".into())
                .spawn_scoped(scope, move || {
                    let task = theirs.lock().unwrap_or_else(|p| p.into_inner()).take();
                    task.map_or(Ok(()), |t| t())
                });
            match started {
                Ok(handle) => spawned.push(handle),
                Err(_) => inline.push(slot),
            }
        }
        let mut result = first();
        for slot in inline {
            let task = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            let r = task.map_or(Ok(()), |t| t());
            if result.is_ok() {
                result = r;
            }
        }
        for handle in spawned {
            let r = handle
                .join()
                .unwrap_or_else(|_| Err(StoreError::Corrupt("an fsync thread panicked".into())));
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn runs_every_task_and_reports_a_failure() {
        let ran = AtomicUsize::new(0);
        let tasks: Vec<Task> = (0..5)
            .map(|i| {
                let ran = &ran;
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
        let err = run_all(tasks).unwrap_err();
        assert_eq!(
            ran.load(Ordering::SeqCst),
            5,
            "a failure does not cut the others short"
        );
        assert_eq!(err.to_string(), "task 3");
        assert!(run_all(Vec::new()).is_ok());
    }
}

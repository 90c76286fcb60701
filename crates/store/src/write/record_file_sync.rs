//! Record files made durable behind the uploads, many at a time.
//!
//! An upload's `201` rests on its blob (fsynced, with the directories on its path) and on its
//! record in sled (flushed). Its record file, the copy that `shoebox rebuild` reads should sled
//! ever be lost, is written before the `201` and made durable here, shortly after it. Until
//! then the record keeps the pending mark it was inserted with, so a crash in between leaves it
//! to the next start, which checks the blob and rewrites the file from sled (see
//! [`catalogue`](crate::catalogue)). A mark is handed on to be cleared only once the
//! file is durable and the upload's own durable round has succeeded.
//!
//! Taking the record file's fsync off the upload's path saves each upload a file's worth of
//! device round trips; batching saves more:
//! - On ext4, xfs and btrfs under Linux 5.8 or later, a batch is one `syncfs(2)`: one pass
//!   writes every file's data, inode and directory entry, and the disk's cache is flushed once.
//!   Those kernels report writeback errors to `syncfs` (once per open file description), so the
//!   call is made on a descriptor held for the store's lifetime, which sees every error.
//! - Elsewhere (FUSE and network filesystems may not make `syncfs` durable, older kernels do not
//!   report its errors), and for good after any `syncfs` error, each file is fsynced and then
//!   `records/`.
//!
//! A file that cannot be made durable keeps its mark; the error is logged and the next start
//! rewrites the file from sled. A `syncfs` error says only that some write on the filesystem
//! failed since the last call: it may have been a file of a later batch, still being written,
//! and an fsync after the fact may not report a failed inode write again. So every record
//! file written before a `syncfs` error was seen keeps its mark, whichever batch it is in:
//! each file is handed over with the [`epoch`](RecordSync::epoch) (the count of errors seen)
//! read before it was written, and one from an older epoch is never settled.
//!
//! Only ids wait here, never open files, so a slow disk cannot run the process out of file
//! descriptors. An fsync through a descriptor opened later still reports a write error that
//! no one has seen yet, and nothing else syncs record files.

use std::fs::File;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::record::MediaId;
use crate::record_files::RecordFiles;

/// How long the syncing thread lets record files gather before it makes them durable: long
/// enough for a burst of uploads to share one `syncfs`, short enough that a crash leaves the
/// next start only a handful of records to check.
const GATHER: Duration = Duration::from_millis(50);

/// How a batch is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One `syncfs(2)` for the whole batch.
    SyncFs,
    /// An fsync of each file, then of `records/`.
    PerFile,
}

impl Mode {
    /// [`Mode::SyncFs`] where `syncfs` is known to be durable and to report writeback errors.
    fn detect(dir: &File) -> Mode {
        const EXT4: u64 = 0xEF53;
        const XFS: u64 = 0x5846_5342;
        const BTRFS: u64 = 0x9123_683E;
        let Ok(st) = rustix::fs::fstatfs(dir) else {
            return Mode::PerFile;
        };
        #[allow(clippy::unnecessary_cast)] // its type differs between architectures
        let fs_type = st.f_type as u64;
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy();
        if matches!(fs_type, EXT4 | XFS | BTRFS) && kernel_at_least(&release, (5, 8)) {
            Mode::SyncFs
        } else {
            Mode::PerFile
        }
    }
}

/// Whether a kernel release such as `6.1.0-18-amd64` is at least `min` (major, minor).
fn kernel_at_least(release: &str, min: (u32, u32)) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= min,
        _ => false,
    }
}

struct State {
    /// Records whose files are written and whose uploads were acknowledged, waiting for the
    /// next batch, with the epoch read before each file was written.
    queue: Vec<(MediaId, u64)>,
    /// A batch is being made durable (by the thread or by [`RecordSync::drain`]).
    busy: bool,
    /// The thread has been started (or could not be, and batches run inline).
    started: bool,
    closing: bool,
    mode: Mode,
    /// `syncfs` errors seen so far.
    epoch: u64,
    /// Records whose files are durable, whose marks the next transaction clears.
    settled: Vec<MediaId>,
}

struct Inner {
    files: RecordFiles,
    /// `records/`, open for the store's lifetime: `syncfs` reports to a descriptor each error
    /// that happened since it was opened or last reported.
    handle: File,
    state: Mutex<State>,
    /// Wakes the thread when files arrive or the store closes.
    work: Condvar,
    /// Wakes [`RecordSync::drain`] when a batch is done.
    idle: Condvar,
}

/// The record files of acknowledged uploads, on their way to the disk.
pub(crate) struct RecordSync {
    inner: Arc<Inner>,
}

impl RecordSync {
    pub(crate) fn new(files: RecordFiles) -> std::io::Result<RecordSync> {
        let handle = File::open(files.dir())?;
        let mode = Mode::detect(&handle);
        tracing::debug!(?mode, "how new record files are made durable");
        Ok(Self::with_mode(files, handle, mode))
    }

    fn with_mode(files: RecordFiles, handle: File, mode: Mode) -> RecordSync {
        RecordSync {
            inner: Arc::new(Inner {
                files,
                handle,
                state: Mutex::new(State {
                    queue: Vec::new(),
                    busy: false,
                    started: false,
                    closing: false,
                    mode,
                    epoch: 0,
                    settled: Vec::new(),
                }),
                work: Condvar::new(),
                idle: Condvar::new(),
            }),
        }
    }

    /// The epoch to read before writing record files, and to hand over with them.
    pub(crate) fn epoch(&self) -> u64 {
        self.inner.lock().epoch
    }

    /// Hands over the records of uploads whose durable round has succeeded, with the
    /// [`epoch`](Self::epoch) read before their files were written.
    pub(crate) fn add(&self, ids: impl IntoIterator<Item = MediaId>, epoch: u64) {
        let mut st = self.inner.lock();
        let before = st.queue.len();
        st.queue.extend(ids.into_iter().map(|id| (id, epoch)));
        if st.queue.len() == before {
            return;
        }
        if !st.started {
            st.started = true;
            let inner = self.inner.clone();
            let spawned = std::thread::Builder::new()
                .name("shoebox-records".into())
                .stack_size(64 * 1024)
                .spawn(move || inner.run());
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start the record-file thread; syncing inline");
                drop(st);
                self.drain();
                self.inner.lock().started = false;
                return;
            }
        }
        self.inner.work.notify_one();
    }

    /// Makes every record file handed over so far durable before returning.
    pub(crate) fn drain(&self) {
        let mut st = self.inner.lock();
        while st.busy {
            st = self.inner.wait(&self.inner.idle, st);
        }
        let batch = std::mem::take(&mut st.queue);
        st.busy = true;
        drop(st);
        self.inner.sync(batch);
    }

    /// The records whose files are durable, for the next transaction to clear their marks.
    pub(crate) fn take_settled(&self) -> Vec<MediaId> {
        std::mem::take(&mut self.inner.lock().settled)
    }

    /// Gives back marks that a failed transaction did not clear.
    pub(crate) fn return_settled(&self, ids: Vec<MediaId>) {
        self.inner.lock().settled.extend(ids);
    }
}

impl Drop for RecordSync {
    /// The thread makes what is queued durable and stops. The marks it settles are never
    /// cleared in sled, which costs the next start a check of those few records.
    fn drop(&mut self) {
        self.inner.lock().closing = true;
        self.inner.work.notify_one();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, cv: &Condvar, st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        cv.wait(st).unwrap_or_else(|p| p.into_inner())
    }

    fn run(&self) {
        loop {
            let mut st = self.lock();
            while (st.queue.is_empty() || st.busy) && !st.closing {
                st = self.wait(&self.work, st);
            }
            if st.closing {
                while st.busy {
                    st = self.wait(&self.idle, st);
                }
                if st.queue.is_empty() {
                    return;
                }
            } else {
                // Let the files of a burst gather into one batch.
                drop(st);
                std::thread::sleep(GATHER);
                st = self.lock();
                while st.busy {
                    st = self.wait(&self.idle, st);
                }
            }
            let batch = std::mem::take(&mut st.queue);
            st.busy = true;
            drop(st);
            self.sync(batch);
        }
    }

    /// Makes a batch durable, settles what is, and ends the `busy` state the caller set.
    fn sync(&self, batch: Vec<(MediaId, u64)>) {
        let (mode, epoch) = {
            let st = self.lock();
            (st.mode, st.epoch)
        };
        // Files written before the last `syncfs` error keep their marks (see the module docs).
        let batch: Vec<MediaId> = batch
            .into_iter()
            .filter(|&(_, e)| e == epoch)
            .map(|(id, _)| id)
            .collect();
        let settled = if batch.is_empty() {
            Vec::new()
        } else if mode == Mode::SyncFs {
            if self.sync_fs() {
                batch
            } else {
                Vec::new()
            }
        } else {
            self.sync_each(batch)
        };
        let mut st = self.lock();
        st.settled.extend(settled);
        st.busy = false;
        drop(st);
        self.idle.notify_all();
        self.work.notify_one();
    }

    /// One `syncfs`; on an error, starts a new epoch, switches to per-file fsyncs for good and
    /// answers false.
    fn sync_fs(&self) -> bool {
        match crate::timing::fsync(|| rustix::fs::syncfs(&self.handle)) {
            Ok(()) => true,
            Err(e) => {
                self.syncfs_failed(&e.into());
                false
            }
        }
    }

    fn syncfs_failed(&self, e: &std::io::Error) {
        tracing::error!(
            error = %e, dir = %self.files.dir().display(),
            "syncfs reported a write error on the data directory's filesystem; the next start \
             rewrites the record files written so far from the database, and later ones are \
             fsynced one by one"
        );
        let mut st = self.lock();
        st.epoch += 1;
        st.mode = Mode::PerFile;
    }

    /// fsyncs each file and then `records/`; answers the records whose files are durable.
    /// A file that is gone was deleted with its record.
    fn sync_each(&self, batch: Vec<MediaId>) -> Vec<MediaId> {
        let mut durable = Vec::with_capacity(batch.len());
        for id in batch {
            let synced = File::open(self.files.path_for(id))
                .and_then(|file| crate::timing::fsync(|| file.sync_all()));
            match synced {
                Ok(()) => durable.push(id),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => durable.push(id),
                Err(e) => tracing::error!(
                    %id, error = %e,
                    "could not fsync a record file; the next start rewrites it from the database"
                ),
            }
        }
        match crate::layout::fsync_dir(self.files.dir()) {
            Ok(()) => durable,
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "could not fsync records/; the next start rewrites its new files from the \
                     database"
                );
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(files: &RecordFiles, n: u8) -> MediaId {
        let id = MediaId(ulid::Ulid::new());
        std::fs::write(files.path_for(id), [n; 100]).unwrap();
        id
    }

    #[test]
    fn kernel_releases_compare_by_major_and_minor() {
        assert!(kernel_at_least("6.1.0-18-amd64", (5, 8)));
        assert!(kernel_at_least("5.8.0", (5, 8)));
        assert!(kernel_at_least("5.10.0-microsoft-standard", (5, 8)));
        assert!(!kernel_at_least("5.4.0-150-generic", (5, 8)));
        assert!(!kernel_at_least("4.19.0", (5, 8)));
        assert!(!kernel_at_least("weird", (5, 8)));
    }

    #[test]
    fn both_modes_settle_every_file_once_it_is_durable() {
        for mode in [Mode::SyncFs, Mode::PerFile] {
            let dir = tempfile::tempdir().unwrap();
            let files = RecordFiles::new(dir.path().to_owned());
            let sync = RecordSync::with_mode(files.clone(), File::open(dir.path()).unwrap(), mode);
            let mut ids: Vec<_> = (0..5).map(|n| written(&files, n)).collect();
            // A record deleted before its file was synced is settled too (its mark went).
            ids.push(MediaId(ulid::Ulid::new()));
            sync.add(ids.clone(), sync.epoch());
            sync.drain();
            let mut settled = sync.take_settled();
            settled.sort();
            ids.sort();
            assert_eq!(settled, ids, "{mode:?}");
            assert!(sync.take_settled().is_empty());
        }
    }

    /// After a `syncfs` error, files written before it was seen keep their marks, even those
    /// handed over later; files written after it are fsynced one by one and settled.
    #[test]
    fn files_written_before_a_syncfs_error_keep_their_marks() {
        let dir = tempfile::tempdir().unwrap();
        let files = RecordFiles::new(dir.path().to_owned());
        let sync =
            RecordSync::with_mode(files.clone(), File::open(dir.path()).unwrap(), Mode::SyncFs);
        let before_epoch = sync.epoch();
        // Uploads whose durable rounds were still running when the error was seen.
        let in_flight = [written(&files, 1), written(&files, 2)];
        sync.inner
            .syncfs_failed(&std::io::Error::from_raw_os_error(libc::EIO));
        sync.add(in_flight, before_epoch);
        let after_epoch = sync.epoch();
        assert_ne!(after_epoch, before_epoch);
        let after = written(&files, 3);
        sync.add([after], after_epoch);
        sync.drain();
        assert_eq!(sync.take_settled(), vec![after]);
        assert_eq!(sync.inner.lock().mode, Mode::PerFile);
    }

    #[test]
    fn files_handed_over_are_settled_by_the_thread_without_a_drain() {
        let dir = tempfile::tempdir().unwrap();
        let files = RecordFiles::new(dir.path().to_owned());
        let sync = RecordSync::new(files.clone()).unwrap();
        let id = written(&files, 1);
        sync.add([id], sync.epoch());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut settled = Vec::new();
        while settled.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            settled = sync.take_settled();
        }
        assert_eq!(settled, vec![id]);
    }
}

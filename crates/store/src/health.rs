//! The store's own health: the deep probes behind `/api/health`, and the failing state that a
//! write error from the disk or the database sets. While it is set, uploads are refused before
//! their body is read (a client that retries must not fill a failing disk); a passing probe
//! ends it.

use super::{Store, StoreError};

impl Store {
    /// The write error that put the store in the failing state, if it is in it.
    pub fn failing(&self) -> Option<String> {
        if !self.failing_set.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Enters the failing state on a write error from the disk or the database.
    pub fn note_error(&self, e: &StoreError) {
        if !e.is_disk_failure() {
            return;
        }
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        if failing.is_none() {
            tracing::error!(error = %e, "a write failed on the disk: refusing uploads until a health probe passes");
        }
        *failing = Some(e.to_string());
        self.failing_set
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Passes a result through, entering the failing state on a disk failure.
    pub(crate) fn watch<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &r {
            self.note_error(e);
        }
        r
    }

    /// The deep health probes; when both pass, the failing state ends.
    pub fn probe(&self) -> (Result<(), StoreError>, Result<(), StoreError>) {
        let disk = self.probe_disk();
        let meta = self.probe_meta();
        if disk.is_ok() && meta.is_ok() {
            if self
                .failing_set
                .swap(false, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::info!("the health probes pass again: accepting uploads");
            }
            *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = None;
        } else {
            for e in [disk.as_ref().err(), meta.as_ref().err()]
                .into_iter()
                .flatten()
            {
                self.note_error(e);
            }
        }
        (disk, meta)
    }

    /// The disk's deep health check: a probe file written, fsynced, read back and removed in
    /// `tmp/`.
    pub fn probe_disk(&self) -> Result<(), StoreError> {
        use std::io::{Read, Seek, Write};
        let value: [u8; 32] = rand::random();
        let mut file = tempfile::Builder::new()
            .prefix("health-")
            .tempfile_in(self.layout.tmp())
            .map_err(|e| StoreError::io("create the health probe file", e))?;
        file.write_all(&value)
            .and_then(|_| file.as_file().sync_all())
            .map_err(|e| StoreError::io("write and fsync the health probe file", e))?;
        let mut read = Vec::new();
        file.rewind()
            .and_then(|_| file.read_to_end(&mut read))
            .map_err(|e| StoreError::io("read the health probe file", e))?;
        if read != value {
            return Err(StoreError::Corrupt(
                "the health probe file read back different bytes".into(),
            ));
        }
        file.close()
            .map_err(|e| StoreError::io("remove the health probe file", e))
    }

    /// The blob store's deep health check when blobs live in a bucket (`None` on disk): a
    /// probe object written, read back and removed.
    pub fn probe_blob_store(&self) -> Option<Result<(), StoreError>> {
        self.blobs.bucket().map(|b| b.probe())
    }

    /// The database's deep health check: with sled, a probe key written, flushed, read back
    /// and removed; with PostgreSQL, a round trip to a server that takes writes.
    pub fn probe_meta(&self) -> Result<(), StoreError> {
        match self.meta.shared() {
            Some(pg) => pg.probe(),
            None => self.meta.sled()?.probe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write error from the disk holds uploads back until the probes pass again; a full
    /// disk or a missing file is no such error.
    #[test]
    fn a_write_error_sets_the_failing_state_until_a_probe_passes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.failing().is_none());
        store.note_error(&StoreError::io(
            "write a blob",
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        ));
        store.note_error(&StoreError::NotFound);
        assert!(store.failing().is_none());
        store.note_error(&StoreError::io(
            "fsync a blob",
            std::io::Error::from_raw_os_error(libc::EIO),
        ));
        assert!(store.failing().unwrap().contains("fsync a blob"));
        let (disk, meta) = store.probe();
        assert!(disk.is_ok() && meta.is_ok());
        assert!(store.failing().is_none());
    }

    #[test]
    fn probes_pass_on_a_healthy_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.probe_disk().unwrap();
        store.probe_meta().unwrap();
        assert_eq!(std::fs::read_dir(store.layout().tmp()).unwrap().count(), 0);
    }
}

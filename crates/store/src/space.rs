//! Room for the database on a full disk.
//!
//! Uploads stop while free space is below the reserve (see [`disk::default_reserve`]), so
//! Shoebox never fills its own disk. Something else can: a log, another service, a person
//! copying files. Then the database, the record files and every edit and delete would fail
//! for want of a few blocks, and sled, once a write of its fails, refuses every later one until
//! it is reopened. So Shoebox holds some space of its own in `space-reserve`, a file whose
//! blocks are allocated but never written, and gives it back the moment free space runs out:
//! before an edit or a delete, before the shutdown flush, and before the database is opened.
//! It takes the space back once the disk has room again.

use std::fs::{self, File};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::disk;
use super::layout::{fsync_dir, Layout};
use super::StoreError;

/// The space held: enough for thousands of edits and deletes, and at most 1/32 of the disk.
fn size_for(total: u64) -> u64 {
    ((total / 32).min(32 << 20)) & !4095
}

pub(crate) struct SpaceReserve {
    path: PathBuf,
    root: PathBuf,
    size: u64,
    held: AtomicBool,
}

impl SpaceReserve {
    pub(crate) fn new(layout: &Layout) -> Result<SpaceReserve, StoreError> {
        let total = disk::space(layout.root())?.total_bytes;
        let path = layout.space_reserve_file();
        let held = path.exists();
        Ok(SpaceReserve {
            path,
            root: layout.root().to_owned(),
            size: size_for(total),
            held: AtomicBool::new(held),
        })
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    /// Gives the space back when less than the reserve's size is free; answers whether it
    /// did. Cheap when the disk has room: one `statvfs`.
    pub(crate) fn release_if_short(&self) -> bool {
        if !self.held() {
            return false;
        }
        match disk::space(&self.root) {
            Ok(s) if s.free_bytes >= self.size => false,
            _ => self.release(),
        }
    }

    /// Gives the space back now (after a write failed for want of space).
    pub(crate) fn release(&self) -> bool {
        if !self.held.swap(false, Ordering::SeqCst) {
            return false;
        }
        match fs::remove_file(&self.path) {
            Ok(()) => {
                // An unlink's fsync needs no free block.
                let _ = fsync_dir(&self.root);
                tracing::warn!(
                    bytes = self.size,
                    "the disk is full: released space-reserve so that edits, deletes and the \
                     database keep working; free space on the disk"
                );
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => {
                tracing::error!(error = %e, "could not release space-reserve");
                false
            }
        }
    }

    /// Takes the space again when `free` leaves room for it twice over beyond `keep`.
    pub(crate) fn refill(&self, free: u64, keep: u64) {
        if self.held() || self.size == 0 || free < keep.saturating_add(self.size * 2) {
            return;
        }
        match self.allocate() {
            Ok(()) => self.held.store(true, Ordering::SeqCst),
            Err(e) => {
                let _ = fs::remove_file(&self.path);
                tracing::warn!(error = %e, "could not create space-reserve");
            }
        }
    }

    fn allocate(&self) -> std::io::Result<()> {
        let file = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.path)?;
        let allocated =
            rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, self.size);
        if allocated.is_err() {
            // Filesystems without fallocate get written zeros, which hold the space too.
            file.set_len(0)?;
            let zeros = vec![0u8; 1 << 20];
            let mut left = self.size;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                std::io::Write::write_all(&mut &file, &zeros[..n])?;
                left -= n as u64;
            }
        }
        file.sync_all()?;
        fsync_dir(&self.root).map_err(std::io::Error::other)
    }
}

impl super::Store {
    /// The size of the space reserve, and whether it is held now.
    pub fn space_reserve(&self) -> (u64, bool) {
        self.space
            .as_ref()
            .map_or((0, false), |s| (s.size(), s.held()))
    }

    /// Sets the free-space reserve; `None` picks [`disk::default_reserve`] for this disk.
    pub fn with_reserve(mut self, reserve: Option<u64>) -> Result<Self, StoreError> {
        let space = disk::space(self.layout.root())?;
        self.reserve = match reserve {
            Some(r) => r,
            None => disk::default_reserve(space.total_bytes),
        };
        self.partials.set_reserve(self.reserve);
        if let Some(s) = &self.space {
            s.refill(space.free_bytes, self.reserve);
        }
        Ok(self)
    }

    /// Gives back the space reserve when the disk is full, so that the write that follows
    /// (an edit, a delete, a flush) finds room.
    pub(crate) fn make_room(&self) {
        if let Some(s) = &self.space {
            s.release_if_short();
        }
    }

    /// Bytes kept free on the disk: new uploads are refused below it (see
    /// [`with_reserve`](Self::with_reserve)).
    pub fn reserve(&self) -> u64 {
        self.reserve
    }

    /// Refuses new work that would eat into the reserve. `incoming` is what the caller is about
    /// to write, when known.
    pub fn check_space(&self, incoming: u64) -> Result<disk::Space, StoreError> {
        let space = disk::space(self.layout.root())?;
        if let Some(s) = &self.space {
            s.refill(space.free_bytes, self.reserve);
        }
        if space.free_bytes < self.reserve.saturating_add(incoming) {
            return Err(StoreError::NoSpace {
                free: space.free_bytes,
                reserve: self.reserve,
            });
        }
        Ok(space)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_a_32nd_of_a_small_disk_and_32_mib_of_a_large_one() {
        assert_eq!(size_for(256 << 20), 8 << 20);
        assert_eq!(size_for(100 << 30), 32 << 20);
        assert_eq!(size_for(1000) % 4096, 0);
    }

    #[test]
    fn is_taken_when_there_is_room_and_given_back_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        layout.prepare().unwrap();
        let reserve = SpaceReserve::new(&layout).unwrap();
        assert!(!reserve.held());
        reserve.refill(0, 0);
        assert!(!reserve.held(), "no room, no reserve");
        reserve.refill(u64::MAX / 4, 0);
        assert!(reserve.held());
        assert_eq!(
            fs::metadata(layout.space_reserve_file()).unwrap().len(),
            reserve.size()
        );
        assert!(!reserve.release_if_short(), "the disk has room");
        assert!(reserve.release());
        assert!(!layout.space_reserve_file().exists());
        assert!(!reserve.release(), "once");
    }
}

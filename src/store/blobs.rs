//! Content-addressed blob files and the first half of the durable write protocol.
//!
//! A blob is written to `tmp/` while its sha256 is computed in the same pass, fsynced, and then
//! renamed to `blobs/sha256/ab/cd/<hash>`; the directories whose entries changed are fsynced
//! too, because on Linux a file's own fsync does not persist its name.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use super::hash::ContentHash;
use super::layout::fsync_dir;
use super::StoreError;

/// How many leading bytes of each upload are kept for content sniffing and image dimensions.
/// JPEG files can carry an EXIF thumbnail before the frame header, hence more than a page.
pub const HEAD_BYTES: usize = 64 * 1024;

/// Write buffer between the network and the temp file.
const WRITE_BUFFER: usize = 256 * 1024;

/// The blob directory tree.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    pub fn new(root: PathBuf, tmp: PathBuf) -> Self {
        BlobStore { root, tmp }
    }

    /// `blobs/sha256/ab/cd/abcd…`: two levels of fan-out keep directories small.
    pub fn path_for(&self, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join(&hex[0..2]).join(&hex[2..4]).join(hex)
    }

    pub fn exists(&self, hash: &ContentHash) -> bool {
        self.path_for(hash).is_file()
    }

    /// Starts a new upload in `tmp/`. Dropping the writer (or the staged blob it produces)
    /// removes the temp file, so an early return or an aborted client leaves nothing behind.
    pub fn writer(&self) -> Result<BlobWriter, StoreError> {
        let temp = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(&self.tmp)
            .map_err(|e| StoreError::io("create a temp file in tmp/", e))?;
        Ok(BlobWriter {
            guard: None,
            since_check: 0,
            out: BufWriter::with_capacity(WRITE_BUFFER, temp),
            hasher: Sha256::new(),
            size: 0,
            head: Vec::new(),
        })
    }

    /// Moves a staged blob into place, or drops it when the same content is already stored.
    /// Returns true when a new blob file was created. The caller holds the hash's lock.
    pub(crate) fn place(&self, staged: StagedBlob) -> Result<bool, StoreError> {
        let target = self.path_for(&staged.hash);
        if target.is_file() {
            // Deduplication: the bytes are already durable under this name.
            return Ok(false);
        }
        let leaf = target
            .parent()
            .ok_or_else(|| StoreError::Corrupt("blob path has no parent".into()))?;
        let mid = leaf
            .parent()
            .ok_or_else(|| StoreError::Corrupt("blob path has no parent".into()))?;
        let mid_existed = mid.is_dir();
        let leaf_existed = leaf.is_dir();
        fs::create_dir_all(leaf).map_err(|e| StoreError::io("create a blob directory", e))?;
        staged
            .temp
            .persist(&target)
            .map_err(|e| StoreError::io("rename an upload into blobs/", e.error))?;
        // Persist every directory entry that changed: the blob's name, and the fan-out
        // directories if they were new.
        fsync_dir(leaf)?;
        if !leaf_existed {
            fsync_dir(mid)?;
        }
        if !mid_existed {
            fsync_dir(&self.root)?;
        }
        fsync_dir(&self.tmp)?;
        Ok(true)
    }

    /// Unlinks a blob whose last reference is gone. The caller holds the hash's lock and has
    /// already made the metadata change durable, so a crash here leaves an orphan, not damage.
    pub(crate) fn remove(&self, hash: &ContentHash) -> Result<(), StoreError> {
        let path = self.path_for(hash);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io("remove a blob", e)),
        }
        if let Some(dir) = path.parent() {
            fsync_dir(dir)?;
        }
        Ok(())
    }

    /// Every blob file on disk, for verification and garbage collection.
    pub fn list(&self) -> Result<Vec<(ContentHash, PathBuf)>, StoreError> {
        let mut out = Vec::new();
        walk(&self.root, 0, &mut out)?;
        Ok(out)
    }
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<(ContentHash, PathBuf)>) -> Result<(), StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("list blobs/", e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list blobs/", e))?;
        let path = entry.path();
        if depth < 2 {
            if path.is_dir() {
                walk(&path, depth + 1, out)?;
            }
        } else if let Some(hash) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            out.push((hash, path));
        }
    }
    Ok(())
}

/// An upload being written: bytes go to the temp file and the hasher in one pass.
pub struct BlobWriter {
    /// The data directory and the reserve to keep free there.
    guard: Option<(PathBuf, u64)>,
    since_check: u64,
    out: BufWriter<NamedTempFile>,
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
}

/// How often a long upload re-reads the free space.
const SPACE_CHECK_EVERY: u64 = 8 << 20;

impl BlobWriter {
    pub fn with_guard(mut self, dir: PathBuf, reserve: u64) -> Self {
        self.guard = Some((dir, reserve));
        self
    }

    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.since_check += data.len() as u64;
        if self.since_check >= SPACE_CHECK_EVERY {
            self.since_check = 0;
            if let Some((dir, reserve)) = &self.guard {
                let space = super::disk::space(dir)?;
                if space.free_bytes < *reserve {
                    return Err(StoreError::NoSpace {
                        free: space.free_bytes,
                        reserve: *reserve,
                    });
                }
            }
        }
        if self.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..take]);
        }
        self.hasher.update(data);
        self.out
            .write_all(data)
            .map_err(|e| StoreError::io("write an upload to tmp/", e))?;
        self.size += data.len() as u64;
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes and fsyncs the temp file: from here on its bytes survive a crash, though they
    /// are not yet reachable by name.
    pub fn finish(self) -> Result<StagedBlob, StoreError> {
        let temp = self
            .out
            .into_inner()
            .map_err(|e| StoreError::io("flush an upload", e.into_error()))?;
        super::timing::fsync(|| temp.as_file().sync_all())
            .map_err(|e| StoreError::io("fsync an upload", e))?;
        Ok(StagedBlob {
            temp,
            hash: ContentHash(self.hasher.finalize().into()),
            size: self.size,
            head: self.head,
        })
    }
}

/// A fully written, fsynced upload in `tmp/`, waiting to be placed.
pub struct StagedBlob {
    temp: NamedTempFile,
    pub hash: ContentHash,
    pub size: u64,
    /// The first bytes, for sniffing the content type and reading image dimensions.
    pub head: Vec<u8>,
}

impl std::fmt::Debug for StagedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedBlob")
            .field("hash", &self.hash)
            .field("size", &self.size)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let store = BlobStore::new(dir.path().join("blobs"), dir.path().join("tmp"));
        (dir, store)
    }

    #[test]
    fn hashes_while_writing_and_places_by_hash() {
        let (dir, store) = store();
        let mut w = store.writer().unwrap();
        w.write(b"hello ").unwrap();
        w.write(b"world").unwrap();
        let staged = w.finish().unwrap();
        let expected = hex::encode(Sha256::digest(b"hello world"));
        assert_eq!(staged.hash.to_hex(), expected);
        assert_eq!(staged.size, 11);
        let hash = staged.hash;
        assert!(store.place(staged).unwrap());
        let path = store.path_for(&hash);
        assert!(path.ends_with(format!(
            "{}/{}/{}",
            &expected[..2],
            &expected[2..4],
            expected
        )));
        assert_eq!(fs::read(&path).unwrap(), b"hello world");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn a_second_copy_is_dropped_and_an_abandoned_writer_leaves_nothing() {
        let (dir, store) = store();
        for expected_new in [true, false] {
            let mut w = store.writer().unwrap();
            w.write(b"same").unwrap();
            assert_eq!(store.place(w.finish().unwrap()).unwrap(), expected_new);
        }
        let mut w = store.writer().unwrap();
        w.write(b"never finished").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}

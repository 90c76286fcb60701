//! Content-addressed blob files on the local disk: the first [`BlobBackend`](crate::BlobBackend),
//! and the blob half of the write path (see [`write`](crate::write)).
//!
//! A blob is written to `tmp/` while its sha256 is computed in the same pass, renamed to
//! `blobs/sha256/ab/cd/<hash>`, and then fsynced together with the directories on its path
//! (on Linux a file's own fsync does not persist its name). Until those fsyncs return, a crash
//! can leave the name with only part of the bytes behind it: such a blob is never trusted, see
//! [`Store::create`](crate::Store::create). Long uploads start the disk writing while they
//! arrive, so that the final fsync has little left to do.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use super::hash::ContentHash;
use super::layout::fsync_dir;
use super::write::parallel::{self, Task};
use super::write::upload_file::UploadFile;
use super::StoreError;

/// An upload's sha256 and MD5, as it is written.
mod hashing;
pub(crate) use hashing::Hashing;
/// Where the blobs live: files on the data disk, or objects in a bucket.
mod home;
use hashing::Md5Thread;
pub use home::{Blobs, LocalFile};

/// How many leading bytes of each upload are kept for content sniffing and image dimensions.
/// JPEG files can carry an EXIF thumbnail before the frame header, hence more than a page.
pub const HEAD_BYTES: usize = 64 * 1024;

/// How much of a long upload is written before the disk is asked to start writing it back.
/// Without this the kernel keeps it all in dirty pages until the final fsync, which then
/// writes the whole file while the client waits.
const WRITEBACK_STEP: u64 = 4 << 20;

/// The blob directory tree.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    /// Blobs under `root`, staged in `tmp` (on the same filesystem, so that placing one is a
    /// rename).
    pub fn new(root: PathBuf, tmp: PathBuf) -> Self {
        BlobStore { root, tmp }
    }

    /// `blobs/sha256/ab/cd/abcd…`: two levels of fan-out keep directories small.
    pub fn path_for(&self, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join(&hex[0..2]).join(&hex[2..4]).join(hex)
    }

    /// Where uploads are staged.
    pub(crate) fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Whether a file is stored under this address (whole or not).
    pub fn exists(&self, hash: &ContentHash) -> bool {
        self.path_for(hash).is_file()
    }

    /// Whether the blob under `hash` is whole: `size` bytes that hash to its name. Re-hashes
    /// it, so callers ask for a bounded few (what a crash left in flight).
    pub(crate) fn holds_whole(&self, hash: &ContentHash, size: u64) -> bool {
        matches!(
            super::check::hash_file(&self.path_for(hash)),
            Ok((found, n)) if found == *hash && n == size
        )
    }

    /// Starts a new upload in `tmp/`. Dropping the writer (or the staged blob it produces)
    /// removes the temp file, so an early return or an aborted client leaves nothing behind.
    pub fn stage(&self) -> Result<BlobWriter, StoreError> {
        let temp = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(&self.tmp)
            .map_err(|e| StoreError::io("create a temp file in tmp/", e))?;
        Ok(BlobWriter {
            guard: None,
            since_check: 0,
            written_back: 0,
            out: UploadFile::new(temp),
            hasher: Hashing::Here(Sha256::new()),
            md5: None,
            size: 0,
            head: Vec::new(),
        })
    }

    /// Moves a staged blob into place and makes it durable, or drops it when the same content
    /// is already stored. Returns true when a new blob file was created.
    #[cfg(test)]
    pub(crate) fn place_now(&self, staged: StagedBlob) -> Result<bool, StoreError> {
        if self.exists(&staged.hash) {
            return Ok(false);
        }
        self.rename_into_place(staged)?.sync_now()?;
        Ok(true)
    }

    /// Renames an upload to its content address, replacing any file already there (the same
    /// bytes, or what a crash left of them), and returns what must be fsynced before anything
    /// may rely on the blob. The caller holds the hash's lock until those fsyncs return.
    ///
    /// Every directory on the blob's path is listed, not only those this call created: a
    /// concurrent upload may have created the fan-out directory a moment ago and not yet made
    /// its entry durable, and this blob must not depend on that upload's progress.
    pub(crate) fn rename_into_place(&self, staged: StagedBlob) -> Result<Placed, StoreError> {
        let target = self.path_for(&staged.hash);
        let dirs = self.dirs_of(&target)?;
        fs::create_dir_all(&dirs[0]).map_err(|e| StoreError::io("create a blob directory", e))?;
        let file = staged
            .temp
            .persist(&target)
            .map_err(|e| StoreError::io("rename an upload into blobs/", e.error))?;
        Ok(Placed {
            file: Some(file),
            dirs,
        })
    }

    /// A blob that is already in place, to be fsynced (again) with the directories on its
    /// path: cheap when it is durable already, and it spares the caller from relying on that.
    pub(crate) fn in_place(&self, hash: &ContentHash) -> Result<Placed, StoreError> {
        let path = self.path_for(hash);
        let file = fs::File::open(&path).map_err(|e| StoreError::io("open a blob", e))?;
        Ok(Placed {
            file: Some(file),
            dirs: self.dirs_of(&path)?,
        })
    }

    /// fsyncs a blob that is already in place, and the directories on its path.
    pub(crate) fn make_durable(&self, hash: &ContentHash) -> Result<(), StoreError> {
        self.in_place(hash)?.sync_now()
    }

    /// The directories whose entries lead to a blob: `ab/cd`, `ab` and the root.
    fn dirs_of(&self, target: &Path) -> Result<Vec<PathBuf>, StoreError> {
        let leaf = target
            .parent()
            .ok_or_else(|| StoreError::Corrupt("blob path has no parent".into()))?;
        let mid = leaf
            .parent()
            .ok_or_else(|| StoreError::Corrupt("blob path has no parent".into()))?;
        Ok(vec![leaf.to_owned(), mid.to_owned(), self.root.clone()])
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

    /// Every blob file on disk with its path, for verification and garbage collection.
    pub(crate) fn list_files(&self) -> Result<Vec<(ContentHash, PathBuf)>, StoreError> {
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
    /// How many bytes the disk has been asked to write back so far.
    written_back: u64,
    out: UploadFile,
    hasher: Hashing,
    /// The MD5 of the bytes, when the writer asked for it (see [`BlobWriter::with_md5`]).
    md5: Option<Md5Thread>,
    size: u64,
    head: Vec<u8>,
}

/// How often a long upload re-reads the free space.
const SPACE_CHECK_EVERY: u64 = 8 << 20;

impl BlobWriter {
    /// Also computes the MD5 of the bytes (S3's ETag), on a thread of its own; the staged
    /// blob carries it.
    pub fn with_md5(mut self) -> Self {
        self.md5 = Some(Md5Thread::start());
        self
    }

    /// Refuses further bytes once the disk holding `dir` has fewer than `reserve` bytes free.
    pub fn with_guard(mut self, dir: PathBuf, reserve: u64) -> Self {
        self.guard = Some((dir, reserve));
        self
    }

    /// Appends bytes, hashing them on the way.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.write_bytes(Bytes::copy_from_slice(data))
    }

    /// Tells the writer the upload's whole size, known when it arrived in one piece: a small
    /// upload then gets a buffer of its size rather than a full block.
    pub fn expect_size(&mut self, size: u64) {
        self.out.expect_size(size);
    }

    /// Like [`write`](Self::write), for bytes that can be shared with the hashing thread
    /// without a copy.
    pub fn write_bytes(&mut self, data: Bytes) -> Result<(), StoreError> {
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
        let len = data.len() as u64;
        // The hashing thread gets the chunk first, so it hashes while this thread writes
        // (and waits for writeback) rather than after.
        if let Some(md5) = self.md5.as_mut() {
            md5.update(&data)?;
        }
        self.hasher.update(data.clone(), self.size)?;
        self.out
            .write_all(&data)
            .map_err(|e| StoreError::io("write an upload to tmp/", e))?;
        self.size += len;
        if !self.out.is_direct() && self.out.written() - self.written_back >= WRITEBACK_STEP {
            self.start_writeback()?;
        }
        Ok(())
    }

    /// Asks the disk to start writing what has been written so far, without waiting for it,
    /// and waits for the step before that: the upload keeps at most two steps of dirty pages,
    /// and the fsync in [`finish`](Self::finish) (which this does not replace) finds little
    /// left to write. Only for buffered writes: direct writes leave no dirty pages.
    fn start_writeback(&mut self) -> Result<(), StoreError> {
        let end = self.out.written();
        let file = self.out.file();
        writeback(file, self.written_back, end - self.written_back, false)?;
        let previous = self.written_back.saturating_sub(WRITEBACK_STEP);
        writeback(file, previous, self.written_back - previous, true)?;
        self.written_back = end;
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Hands the temp file's bytes to the kernel. They are not yet durable: the fsync comes
    /// after placing (`Placed::durable_tasks`), where the fsyncs of a whole request, and of
    /// the concurrent requests, are issued together; an upload whose content is already stored
    /// needs none.
    pub fn finish(self) -> Result<StagedBlob, StoreError> {
        let temp = self
            .out
            .finish()
            .map_err(|e| StoreError::io("write an upload to tmp/", e))?;
        Ok(StagedBlob {
            temp,
            hash: self.hasher.finish()?,
            md5: self.md5.map(Md5Thread::finish).transpose()?,
            size: self.size,
            head: self.head,
        })
    }
}

/// `sync_file_range` on a part of a file: start writing it back, or with `wait` also wait
/// until it is written. Only a hint for the page cache: it makes nothing durable (no metadata,
/// no cache flush) and never stands in for an fsync.
#[cfg(target_os = "linux")]
pub(crate) fn writeback(
    file: &fs::File,
    offset: u64,
    len: u64,
    wait: bool,
) -> Result<(), StoreError> {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return Ok(());
    }
    let flags = if wait {
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER
    } else {
        libc::SYNC_FILE_RANGE_WRITE
    };
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Ok(());
    };
    // SAFETY: plain system call on a descriptor that `file` keeps open; no memory is shared.
    let ret = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    if ret == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        // Not supported here (some filesystems, some sandboxes): the fsync does it all.
        Some(libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP | libc::ESPIPE) => Ok(()),
        _ => Err(StoreError::io("write an upload to tmp/", err)),
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn writeback(_: &fs::File, _: u64, _: u64, _: bool) -> Result<(), StoreError> {
    Ok(())
}

/// A fsync of a directory, as a task for [`parallel::run_all`].
pub(crate) fn fsync_dir_task(dir: PathBuf) -> Task {
    Box::new(move || fsync_dir(&dir))
}

/// A blob under its content address, not yet durable: what makes it durable, for the write
/// path to run in its round of fsyncs.
pub struct Placed {
    /// The file; `None` for a blob that is durable already (an object in a bucket, whose
    /// PUT returned).
    file: Option<fs::File>,
    /// The directories whose entries lead to it.
    dirs: Vec<PathBuf>,
}

impl Placed {
    /// A blob with nothing left to make durable.
    pub(crate) fn durable() -> Placed {
        Placed {
            file: None,
            dirs: Vec::new(),
        }
    }

    /// The fsyncs that make the blob durable: the file's, returned, and its directories',
    /// added to `dirs` (shared by the blobs of one request). They do not depend on each other
    /// and run side by side.
    pub(crate) fn durable_tasks(self, dirs: &mut BTreeSet<PathBuf>) -> Task {
        dirs.extend(self.dirs);
        let Some(file) = self.file else {
            return Box::new(|| Ok(()));
        };
        Box::new(move || {
            super::timing::fsync(|| file.sync_all())
                .map_err(|e| StoreError::io("fsync an upload", e))
        })
    }

    /// Runs those fsyncs now, for a blob on its own.
    pub(crate) fn sync_now(self) -> Result<(), StoreError> {
        let mut dirs = BTreeSet::new();
        let mut tasks = vec![self.durable_tasks(&mut dirs)];
        tasks.extend(dirs.into_iter().map(fsync_dir_task));
        parallel::run_all(tasks, || Ok(()))
    }
}

/// A fully written upload in `tmp/`, waiting to be placed.
pub struct StagedBlob {
    temp: NamedTempFile,
    /// The sha256 of its bytes: the address it will be placed under.
    pub hash: ContentHash,
    /// The MD5 of its bytes, when the writer asked for it.
    pub md5: Option<[u8; 16]>,
    /// Bytes.
    pub size: u64,
    /// The first bytes, for sniffing the content type and reading image dimensions.
    pub head: Vec<u8>,
}

impl StagedBlob {
    /// A staged blob from a file in `tmp/` whose hash, size and first bytes are known.
    pub(crate) fn new(temp: NamedTempFile, hash: ContentHash, size: u64, head: Vec<u8>) -> Self {
        StagedBlob {
            temp,
            hash,
            md5: None,
            size,
            head,
        }
    }

    /// Where the staged bytes are, for a writer that reads them back before committing (to
    /// keep a picture without its metadata, say).
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// A second staged blob of the same bytes, by a hard link in `tmp` (no copy): for a
    /// writer that may have to commit them again if its first commit is refused.
    pub(crate) fn linked(&self, tmp: &Path) -> Result<StagedBlob, StoreError> {
        let temp = tempfile::Builder::new()
            .prefix("upload-")
            .make_in(tmp, |path| {
                std::fs::hard_link(self.temp.path(), path)?;
                std::fs::File::open(path)
            })
            .map_err(|e| StoreError::io("link a staged upload in tmp/", e))?;
        Ok(StagedBlob {
            temp,
            hash: self.hash,
            md5: self.md5,
            size: self.size,
            head: self.head.clone(),
        })
    }

    /// The staged file itself, for a writer that keeps the bytes elsewhere than the blobs (a
    /// part of a multipart upload).
    pub(crate) fn into_temp(self) -> NamedTempFile {
        self.temp
    }
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
        let mut w = store.stage().unwrap();
        w.write(b"hello ").unwrap();
        w.write(b"world").unwrap();
        let staged = w.finish().unwrap();
        let expected = hex::encode(Sha256::digest(b"hello world"));
        assert_eq!(staged.hash.to_hex(), expected);
        assert_eq!(staged.size, 11);
        let hash = staged.hash;
        assert!(store.place_now(staged).unwrap());
        let path = store.path_for(&hash);
        assert!(path.ends_with(format!(
            "{}/{}/{}",
            &expected[..2],
            &expected[2..4],
            expected
        )));
        assert_eq!(fs::read(&path).unwrap(), b"hello world");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(store.list_files().unwrap().len(), 1);
    }

    #[test]
    fn a_long_upload_hashed_beside_the_writer_gets_the_same_hash() {
        let (_dir, store) = store();
        let data: Vec<u8> = (0..(9u32 << 20) / 4)
            .flat_map(|i| i.to_le_bytes())
            .collect();
        let mut w = store.stage().unwrap();
        for chunk in data.chunks(64 * 1024 + 7) {
            w.write_bytes(Bytes::copy_from_slice(chunk)).unwrap();
        }
        let staged = w.finish().unwrap();
        assert_eq!(staged.hash.to_hex(), hex::encode(Sha256::digest(&data)));
        assert_eq!(staged.size, data.len() as u64);
        assert_eq!(staged.head, data[..HEAD_BYTES]);
        let path = store.path_for(&staged.hash);
        assert!(store.place_now(staged).unwrap());
        assert_eq!(fs::read(path).unwrap(), data);
    }

    #[test]
    fn a_second_copy_is_dropped_and_an_abandoned_writer_leaves_nothing() {
        let (dir, store) = store();
        for expected_new in [true, false] {
            let mut w = store.stage().unwrap();
            w.write(b"same").unwrap();
            assert_eq!(store.place_now(w.finish().unwrap()).unwrap(), expected_new);
        }
        let mut w = store.stage().unwrap();
        w.write(b"never finished").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}

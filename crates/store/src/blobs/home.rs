//! Where a store's blobs live: files under `blobs/` on the data disk (the default), or
//! objects in an S3 bucket (`SHOEBOX_BLOB_STORE`). Uploads are staged and hashed in `tmp/`
//! either way; what differs is where placing one puts it and how it is read back.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use super::{BlobStore, BlobWriter, Placed, StagedBlob};
use crate::bucket::{Bucket, Listed};
use crate::hash::ContentHash;
use crate::StoreError;

/// Where this store's blobs live.
#[derive(Clone)]
pub enum Blobs {
    /// Files under `blobs/` on the data disk.
    Disk(BlobStore),
    /// Objects in a bucket; `scratch` stages uploads in `tmp/` (its blob tree is unused).
    Bucket {
        /// Stages uploads.
        scratch: BlobStore,
        /// Holds the blobs.
        bucket: Arc<Bucket>,
    },
}

impl Blobs {
    /// The local blob tree, when blobs are files here: what the local-only steps (the
    /// start-up's settling of a crash, quarantine, `rebuild`) work on.
    pub fn disk(&self) -> Option<&BlobStore> {
        match self {
            Blobs::Disk(d) => Some(d),
            Blobs::Bucket { .. } => None,
        }
    }

    /// The bucket, when blobs live in one.
    pub fn bucket(&self) -> Option<&Arc<Bucket>> {
        match self {
            Blobs::Disk(_) => None,
            Blobs::Bucket { bucket, .. } => Some(bucket),
        }
    }

    /// Starts a new upload in `tmp/`.
    pub fn stage(&self) -> Result<BlobWriter, StoreError> {
        match self {
            Blobs::Disk(d) => d.stage(),
            Blobs::Bucket { scratch, .. } => scratch.stage(),
        }
    }

    /// Puts a staged blob under its content address. For a bucket, the object is whole in
    /// the bucket when this returns, and the staged file is gone.
    pub(crate) fn place(&self, staged: StagedBlob) -> Result<Placed, StoreError> {
        match self {
            Blobs::Disk(d) => d.rename_into_place(staged),
            Blobs::Bucket { bucket, .. } => {
                bucket.upload(&staged.hash, staged.path(), staged.size)?;
                Ok(Placed::durable())
            }
        }
    }

    /// A stored blob that a new record reuses, to be made durable again with it (a bucket's
    /// objects are durable once written).
    pub(crate) fn reuse(&self, hash: &ContentHash) -> Result<Placed, StoreError> {
        match self {
            Blobs::Disk(d) => d.in_place(hash),
            Blobs::Bucket { .. } => Ok(Placed::durable()),
        }
    }

    /// Makes a blob already in place durable.
    pub(crate) fn make_durable(&self, hash: &ContentHash) -> Result<(), StoreError> {
        match self {
            Blobs::Disk(d) => d.make_durable(hash),
            Blobs::Bucket { .. } => Ok(()),
        }
    }

    /// Whether a blob is stored under this address. A bucket that does not answer is an
    /// error, never a "no": a missing blob is damage, an unreachable one is not.
    pub fn exists(&self, hash: &ContentHash) -> Result<bool, StoreError> {
        match self {
            Blobs::Disk(d) => Ok(d.exists(hash)),
            Blobs::Bucket { bucket, .. } => Ok(bucket.head(hash)?.is_some()),
        }
    }

    /// Whether the blob under `hash` is whole. On disk it is re-hashed (callers ask for a
    /// bounded few); in a bucket, an object only ever appears whole, so its size says it.
    pub(crate) fn holds_whole(&self, hash: &ContentHash, size: u64) -> Result<bool, StoreError> {
        match self {
            Blobs::Disk(d) => Ok(d.holds_whole(hash, size)),
            Blobs::Bucket { bucket, .. } => Ok(bucket.head(hash)? == Some(size)),
        }
    }

    /// Removes a blob whose last record is gone.
    pub(crate) fn remove(&self, hash: &ContentHash) -> Result<(), StoreError> {
        match self {
            Blobs::Disk(d) => d.remove(hash),
            Blobs::Bucket { bucket, .. } => bucket.remove(hash),
        }
    }

    /// Every stored blob, with its size and when it was written.
    pub fn list(&self) -> Result<Vec<Listed>, StoreError> {
        match self {
            Blobs::Disk(d) => Ok(d
                .list_files()?
                .into_iter()
                .filter_map(|(hash, path)| {
                    // A file gone since the listing is not listed.
                    let meta = std::fs::symlink_metadata(path).ok()?;
                    let modified = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_secs() as i64);
                    Some(Listed {
                        hash,
                        size: meta.len(),
                        modified,
                    })
                })
                .collect()),
            Blobs::Bucket { bucket, .. } => bucket.list(),
        }
    }

    /// The whole blob, for a reader on a thread of its own (`verify`, a backup, the MD5
    /// backfill). `size` is the record's: a bucket is read in windows up to it.
    pub fn reader(
        &self,
        hash: &ContentHash,
        size: u64,
    ) -> Result<Box<dyn Read + Send>, StoreError> {
        match self {
            Blobs::Disk(d) => Ok(Box::new(
                std::fs::File::open(d.path_for(hash))
                    .map_err(|e| StoreError::io("open a blob", e))?,
            )),
            Blobs::Bucket { bucket, .. } => Ok(Box::new(bucket.reader(hash, size))),
        }
    }

    /// The blob's file, where blobs are files here.
    pub fn local_path(&self, hash: &ContentHash) -> Option<PathBuf> {
        self.disk().map(|d| d.path_for(hash))
    }

    /// The blob as a file for a tool that reads files (ImageMagick, ffmpeg): its own file
    /// on disk, or a copy from the bucket in `tmp/`, removed when the result is dropped.
    /// Blocks while it copies.
    pub fn local_file(&self, hash: &ContentHash) -> Result<LocalFile, StoreError> {
        let (scratch, bucket) = match self {
            Blobs::Disk(d) => return Ok(LocalFile::Here(d.path_for(hash))),
            Blobs::Bucket { scratch, bucket } => (scratch, bucket),
        };
        let size = bucket.head(hash)?.ok_or(StoreError::NotFound)?;
        let mut copy = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(scratch.tmp_dir())
            .map_err(|e| StoreError::io("create a temp file in tmp/", e))?;
        std::io::copy(&mut bucket.reader(hash, size), copy.as_file_mut())
            .map_err(|e| StoreError::io("copy a blob from the bucket to tmp/", e))?;
        Ok(LocalFile::Copy(copy.into_temp_path()))
    }
}

/// A blob as a local file (see [`Blobs::local_file`]).
pub enum LocalFile {
    /// The blob's own file.
    Here(PathBuf),
    /// A copy in `tmp/`, removed on drop.
    Copy(tempfile::TempPath),
}

impl LocalFile {
    /// Where the bytes are.
    pub fn path(&self) -> &std::path::Path {
        match self {
            LocalFile::Here(p) => p,
            LocalFile::Copy(p) => p,
        }
    }
}

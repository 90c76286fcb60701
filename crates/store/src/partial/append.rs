//! A chunk appended to a resumable upload: written as uploads are (in aligned blocks, directly
//! where the filesystem allows), hashed on the way, checked against the client's digest, and
//! acknowledged by [`Appender::commit`]: the bytes fsynced first, then the offset recorded.

use std::fs::{File, OpenOptions};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{PartialUpload, Partials, Piece, SPACE_CHECK_EVERY, WRITEBACK_STEP};
use crate::blobs::{writeback, Hashing};
use crate::write::upload_file::UploadFile;
use crate::StoreError;

/// A digest a client sent with a chunk (tus `Upload-Checksum`), to check before the chunk is
/// acknowledged.
#[derive(Debug, Clone)]
pub enum ChunkCheck {
    /// SHA-1, which tus requires servers to offer.
    Sha1(Vec<u8>),
    /// SHA-256.
    Sha256(Vec<u8>),
}

enum ChunkDigest {
    Sha1(sha1::Sha1),
    Sha256(Sha256),
}

impl ChunkCheck {
    fn start(self) -> (ChunkDigest, Vec<u8>) {
        match self {
            ChunkCheck::Sha1(want) => (ChunkDigest::Sha1(sha1::Sha1::new()), want),
            ChunkCheck::Sha256(want) => (ChunkDigest::Sha256(Sha256::new()), want),
        }
    }
}

/// Why a chunk was not acknowledged.
#[derive(Debug)]
pub enum AppendError {
    /// The chunk's bytes do not match the digest the client sent; they were discarded.
    ChecksumMismatch,
    /// Writing or syncing failed; the chunk was discarded.
    Store(StoreError),
}

impl From<StoreError> for AppendError {
    fn from(e: StoreError) -> Self {
        AppendError::Store(e)
    }
}

/// A chunk being appended to an upload. Nothing it writes is acknowledged until
/// [`commit`](Self::commit); [`discard`](Self::discard)ed, or dropped, it leaves the upload's
/// acknowledged bytes as they were (bytes past them are trimmed at the next open).
pub struct Appender<'a> {
    partials: &'a Partials,
    /// Written in aligned blocks, directly where the filesystem allows (as uploads are);
    /// `None` once finished.
    out: Option<UploadFile<File>>,
    start: u64,
    /// Where the chunk starts in the file: `start` in the upload's `.part` file, 0 in a
    /// piece of its own.
    file_start: u64,
    written: u64,
    written_back: u64,
    since_check: u64,
    /// The upload's sha256 before this chunk, to put back if the chunk is discarded; `None`
    /// for a shared upload, hashed whole at completion.
    before: Option<Sha256>,
    hashing: Option<Hashing>,
    digest: Option<(ChunkDigest, Vec<u8>)>,
    /// For a shared upload: the piece this chunk becomes.
    piece: Option<Piece>,
}

impl<'a> Appender<'a> {
    /// A chunk from `start`, where `file` is positioned, after bytes that hash to `hasher`.
    pub(super) fn new(
        partials: &'a Partials,
        file: File,
        start: u64,
        hasher: Sha256,
        check: Option<ChunkCheck>,
    ) -> Self {
        Appender {
            partials,
            out: Some(UploadFile::at(file, start)),
            start,
            file_start: start,
            written: 0,
            written_back: 0,
            since_check: 0,
            before: Some(hasher.clone()),
            hashing: Some(Hashing::Here(hasher)),
            digest: check.map(ChunkCheck::start),
            piece: None,
        }
    }

    /// A chunk of a shared upload from `start`, written to a piece of its own: `file`, new.
    pub(super) fn piece(
        partials: &'a Partials,
        file: File,
        start: u64,
        piece: Piece,
        check: Option<ChunkCheck>,
    ) -> Self {
        Appender {
            partials,
            out: Some(UploadFile::at(file, 0)),
            start,
            file_start: 0,
            written: 0,
            written_back: 0,
            since_check: 0,
            before: None,
            hashing: None,
            digest: check.map(ChunkCheck::start),
            piece: Some(piece),
        }
    }

    /// Appends bytes, hashing them on the way and watching the space reserve.
    pub fn write(&mut self, data: Bytes) -> Result<(), StoreError> {
        self.since_check += data.len() as u64;
        if self.since_check >= SPACE_CHECK_EVERY {
            self.since_check = 0;
            let (dir, reserve) = &self.partials.guard;
            let space = crate::disk::space(dir)?;
            if space.free_bytes < *reserve {
                return Err(StoreError::NoSpace {
                    free: space.free_bytes,
                    reserve: *reserve,
                });
            }
        }
        match &mut self.digest {
            Some((ChunkDigest::Sha1(h), _)) => h.update(&data),
            Some((ChunkDigest::Sha256(h), _)) => h.update(&data),
            None => {}
        }
        let len = data.len() as u64;
        // The hashing thread (for a long chunk) gets the bytes first, so that it hashes
        // while this thread writes.
        if let Some(hashing) = &mut self.hashing {
            hashing.update(data.clone(), self.start + self.written)?;
        }
        let out = self.out.as_mut().ok_or_else(finished)?;
        out.write_all(&data)
            .map_err(|e| StoreError::io("write to a partial upload", e))?;
        self.written += len;
        if !out.is_direct() && out.written() - self.written_back >= WRITEBACK_STEP {
            // Start writing back what is written, and wait for the step before: the fsync
            // in `commit` then finds little left to do. (Direct writes leave nothing.)
            let end = self.file_start + out.written();
            let from = self.file_start + self.written_back;
            writeback(out.file(), from, end - from, false)?;
            let previous = from.saturating_sub(WRITEBACK_STEP).max(self.file_start);
            writeback(out.file(), previous, from - previous, true)?;
            self.written_back = out.written();
        }
        Ok(())
    }

    /// Bytes of this chunk written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The offset the upload reaches if this chunk is committed.
    pub fn offset(&self) -> u64 {
        self.start + self.written
    }

    /// Acknowledges the chunk: checks its digest, fsyncs the bytes, then records the new
    /// offset in the sidecar (durably). On any error the chunk is discarded.
    pub fn commit(
        mut self,
        upload: &mut PartialUpload,
        now: OffsetDateTime,
    ) -> Result<(), AppendError> {
        if let Some((digest, want)) = self.digest.take() {
            let got: Vec<u8> = match digest {
                ChunkDigest::Sha1(h) => h.finalize().to_vec(),
                ChunkDigest::Sha256(h) => h.finalize().to_vec(),
            };
            if got != want {
                self.discard(upload)?;
                return Err(AppendError::ChecksumMismatch);
            }
        }
        let offset = self.offset();
        if let Some(piece) = self.piece.take() {
            if let Err(e) = self.commit_piece(upload, piece.clone(), now) {
                self.piece = Some(piece);
                self.discard(upload)?;
                return Err(e.into());
            }
            return Ok(());
        }
        let synced = self.out.take().ok_or_else(finished).and_then(|out| {
            let file = out
                .finish()
                .map_err(|e| StoreError::io("write to a partial upload", e))?;
            crate::timing::fsync(|| file.sync_data())
                .map_err(|e| StoreError::io("fsync a partial upload", e))
        });
        let hasher = self
            .hashing
            .take()
            .ok_or_else(finished)
            .and_then(Hashing::into_state);
        let mut next = self.next(upload, now);
        crate::write::crash_point("tus-chunk-synced", || Ok(()));
        let saved = synced
            .and(hasher)
            .and_then(|h| self.partials.save(&mut next).map(|()| h));
        crate::write::crash_point("tus-offset-saved", || Ok(()));
        match saved {
            Ok(hasher) => {
                *upload = next;
                self.partials.grew(&upload.id, offset);
                self.partials
                    .lock_hashers()
                    .insert(upload.id.clone(), (offset, hasher));
                Ok(())
            }
            Err(e) => {
                self.discard(upload)?;
                Err(e.into())
            }
        }
    }

    /// The upload's state with this chunk acknowledged.
    fn next(&self, upload: &PartialUpload, now: OffsetDateTime) -> PartialUpload {
        let mut next = upload.clone();
        next.offset = self.offset();
        next.updated_at = now;
        if next.is_whole() && next.reserved_id.is_none() {
            // The record it becomes gets this id, noted with the last bytes (see
            // [`completed`](Partials::completed)).
            next.reserved_id = Some(crate::MediaId(ulid::Ulid::new()).to_string());
        }
        next
    }

    /// [`commit`](Self::commit) of a shared upload's chunk: its piece sent to the bucket,
    /// then named in the upload's state (see [`shared`](super::shared)).
    fn commit_piece(
        &mut self,
        upload: &mut PartialUpload,
        mut piece: Piece,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let shared = self.partials.shared.as_ref().ok_or_else(finished)?;
        let out = self.out.take().ok_or_else(finished)?;
        out.finish()
            .map_err(|e| StoreError::io("write to a partial upload", e))?;
        piece.size = self.written;
        let mut next = self.next(upload, now);
        shared.acknowledge(&mut next, piece)?;
        *upload = next;
        Ok(())
    }

    /// Drops the chunk: the file is cut back to the acknowledged offset.
    pub fn discard(self, upload: &PartialUpload) -> Result<(), StoreError> {
        if let Some(shared) = &self.partials.shared {
            // A piece that was never acknowledged: its file goes (and the piece, if sent).
            if let Some(piece) = &self.piece {
                let _ = std::fs::remove_file(shared.local(&upload.id, piece));
            }
            return Ok(());
        }
        // The file may have been finished (a commit that failed): open it again.
        let file = OpenOptions::new()
            .write(true)
            .open(self.partials.part(&upload.id))
            .map_err(|e| StoreError::io("discard a chunk", e))?;
        file.set_len(self.start)
            .map_err(|e| StoreError::io("discard a chunk", e))?;
        if let Some(before) = self.before {
            self.partials
                .lock_hashers()
                .insert(upload.id.clone(), (self.start, before));
        }
        Ok(())
    }
}

fn finished() -> StoreError {
    StoreError::io(
        "write to a partial upload",
        std::io::Error::other("the chunk was already finished"),
    )
}

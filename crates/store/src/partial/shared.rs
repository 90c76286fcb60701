//! Resumable uploads that any instance may continue: with the records in PostgreSQL and the
//! blobs in a bucket, an upload's state (its sidecar) is a row in PostgreSQL and its bytes
//! are pieces in the bucket, one object per chunk, under `uploads/<id>/<start>-<nonce>`.
//!
//! # Why pieces
//!
//! S3 multipart parts must be at least 5 MiB but for the last, and tus chunks may be any
//! size; and a multipart upload in the bucket cannot be read back before it completes. So
//! each acknowledged chunk is an object of its own, whatever its size, and the upload is put
//! together once, at completion: the pieces are read in order into a staged file in `tmp/`
//! (the sha256 and the MD5 of the whole come from that pass), which then goes through the
//! ordinary write path. The instance that received a chunk keeps it in `uploads/pieces/`,
//! and reads that copy rather than the bucket's; an upload sent in one request to one
//! instance is thus read back from the local disk only.
//!
//! # The durable offset
//!
//! A chunk is acknowledged once its piece is in the bucket (the PUT answered, so the whole
//! object is there) and the row names it, with the new offset, in one update that checks the
//! row's version. A crash before the update leaves a piece no row names: `gc` removes it once
//! it is older than its grace period. Two requests appending to one upload at once (on two
//! instances) both send a piece, under different nonces; the second update finds the version
//! changed and fails (`409`), and its piece is removed.
//!
//! # Completion
//!
//! As on one disk: the chunk that makes the upload whole reserves the record's id in the same
//! update, the media record is made under it, and only then is the upload marked finished and
//! its pieces removed. A crash in between finds the record under the reserved id.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::PartialUpload;
use crate::blobs::HEAD_BYTES;
use crate::bucket::{Bucket, ObjectKey};
use crate::md5::Md5;
use crate::pg::PgMeta;
use crate::{ContentHash, StagedBlob, StoreError};

/// The kind of these uploads in `uploads_in_progress`.
const KIND: &str = "tus";

/// Where a piece of an upload is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Piece {
    /// The offset of its first byte in the upload.
    pub start: u64,
    /// Bytes.
    pub size: u64,
    /// Its name under `uploads/<id>/`: the start and a random nonce.
    pub name: String,
}

impl Piece {
    /// A new piece from `start`, under a name no other request uses.
    pub(super) fn new(start: u64) -> Piece {
        let nonce = hex::encode(rand::random::<[u8; 8]>());
        Piece {
            start,
            size: 0,
            name: format!("{start:020}-{nonce}"),
        }
    }
}

/// PostgreSQL for the state, the bucket for the bytes, and this instance's copies.
#[derive(Debug)]
pub(crate) struct Shared {
    pg: Arc<PgMeta>,
    pub(super) bucket: Arc<Bucket>,
    /// `uploads/pieces/`: the pieces this instance received.
    cache: PathBuf,
}

impl Shared {
    pub(crate) fn new(pg: Arc<PgMeta>, bucket: Arc<Bucket>, cache: PathBuf) -> Shared {
        Shared { pg, bucket, cache }
    }

    /// Empties this instance's copies (they are only copies) and makes their folder.
    pub(super) fn recover(&self) -> Result<(), StoreError> {
        match fs::remove_dir_all(&self.cache) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StoreError::io("clear uploads/pieces/", e))
            }
            _ => {}
        }
        fs::create_dir_all(&self.cache).map_err(|e| StoreError::io("create uploads/pieces/", e))
    }

    /// This instance's copy of a piece.
    pub(super) fn local(&self, id: &str, piece: &Piece) -> PathBuf {
        self.cache.join(format!("{id}-{}", piece.name))
    }

    pub(super) fn key(id: &str, piece: &Piece) -> Result<ObjectKey, StoreError> {
        ObjectKey::piece(id, &piece.name)
            .ok_or_else(|| StoreError::Corrupt(format!("upload {id} names an unusable piece")))
    }

    fn decode(text: &str, version: i64) -> Result<PartialUpload, StoreError> {
        let mut upload: PartialUpload = serde_json::from_str(text).map_err(|e| {
            StoreError::Corrupt(format!(
                "an upload's state in PostgreSQL cannot be read: {e}"
            ))
        })?;
        upload.revision = version;
        Ok(upload)
    }

    fn encode(upload: &PartialUpload) -> Result<String, StoreError> {
        serde_json::to_string(upload)
            .map_err(|e| StoreError::io("encode an upload's state", std::io::Error::other(e)))
    }

    /// Adds a new upload; `false` when its owner has `max_open` unfinished ones.
    pub(super) fn create(
        &self,
        upload: &mut PartialUpload,
        max_open: usize,
    ) -> Result<bool, StoreError> {
        let state = Self::encode(upload)?;
        let added = self
            .pg
            .upload_insert(KIND, &upload.id, &upload.owner, &state, max_open)?;
        upload.revision = 1;
        Ok(added)
    }

    pub(super) fn get(&self, id: &str) -> Result<Option<PartialUpload>, StoreError> {
        self.pg
            .upload_get(KIND, id)?
            .map(|row| Self::decode(&row.state, row.version))
            .transpose()
    }

    /// Writes the upload's state if nobody changed it since it was read
    /// ([`StoreError::Changed`] if someone did).
    pub(super) fn save(&self, upload: &mut PartialUpload) -> Result<(), StoreError> {
        let state = Self::encode(upload)?;
        let finished = upload.media_id.is_some();
        match self
            .pg
            .upload_replace(KIND, &upload.id, &state, finished, upload.revision)?
        {
            Some(version) => {
                upload.revision = version;
                Ok(())
            }
            None => Err(StoreError::Changed(format!(
                "upload {} changed on another instance meanwhile; ask where it stands (HEAD) \
                 and resume from there",
                upload.id
            ))),
        }
    }

    /// Sends a received chunk's piece to the bucket, then records it with the upload's new
    /// state (`next`). On a refusal (another instance changed the upload first) the piece is
    /// removed again. On any other failure it stays: the update may have committed with its
    /// answer lost, and a piece no row names is only an orphan for `gc`.
    pub(super) fn acknowledge(
        &self,
        next: &mut PartialUpload,
        piece: Piece,
    ) -> Result<(), StoreError> {
        let local = self.local(&next.id, &piece);
        if piece.size > 0 {
            let key = Self::key(&next.id, &piece)?;
            self.bucket.put_object_file(&key, &local, piece.size)?;
            crate::write::crash_point("tus-piece-sent", || Ok(()));
            next.pieces.push(piece.clone());
        }
        let saved = self.save(next);
        if matches!(saved, Err(StoreError::Changed(_))) || piece.size == 0 {
            self.forget(&next.id, &[piece]);
        }
        saved
    }

    /// Removes pieces from the bucket and from here, as far as it can: what is left is
    /// removed by `gc` (in the bucket) or the next start (here).
    pub(super) fn forget(&self, id: &str, pieces: &[Piece]) {
        for piece in pieces {
            let _ = fs::remove_file(self.local(id, piece));
            if piece.size == 0 {
                continue;
            }
            if let Err(e) = Self::key(id, piece).and_then(|k| self.bucket.delete_object(&k)) {
                tracing::warn!(upload = id, error = %e, "could not remove an upload's piece");
            }
        }
    }

    pub(super) fn remove(&self, id: &str) -> Result<(), StoreError> {
        if let Some((state, _)) = self.pg.upload_remove(KIND, id)? {
            let upload = Self::decode(&state, 0)?;
            self.forget(id, &upload.pieces);
        }
        Ok(())
    }

    pub(super) fn list(&self) -> Result<Vec<PartialUpload>, StoreError> {
        let mut out = Vec::new();
        for row in self.pg.upload_all(KIND)? {
            match Self::decode(&row.state, row.version) {
                Ok(u) => out.push(u),
                Err(e) => tracing::warn!(error = %e, "skipped an upload"),
            }
        }
        Ok(out)
    }

    /// Unfinished uploads on every instance, and their acknowledged bytes.
    pub(super) fn usage(&self) -> Result<(u64, u64), StoreError> {
        self.pg.upload_usage(KIND)
    }

    pub(super) fn in_progress(&self, owner: &str) -> Result<usize, StoreError> {
        self.pg.upload_count(KIND, owner)
    }

    /// Notes the media id (again if another instance completed the upload meanwhile, under
    /// the same reserved id), then removes the pieces.
    pub(super) fn completed(
        &self,
        upload: &mut PartialUpload,
        media_id: &str,
        now: time::OffsetDateTime,
    ) -> Result<(), StoreError> {
        for _ in 0..5 {
            let mut next = upload.clone();
            next.media_id = Some(media_id.to_owned());
            next.updated_at = now;
            match self.save(&mut next) {
                Ok(()) => {
                    self.forget(&next.id, &next.pieces);
                    *upload = next;
                    return Ok(());
                }
                Err(StoreError::Changed(_)) => match self.get(&upload.id)? {
                    Some(now_is) if now_is.media_id.is_some() => {
                        *upload = now_is;
                        return Ok(());
                    }
                    Some(now_is) => *upload = now_is,
                    None => return Ok(()),
                },
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Changed(format!(
            "upload {} keeps changing on other instances",
            upload.id
        )))
    }

    /// Every piece's name under `uploads/`, for `gc`.
    pub(super) fn piece_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .list()?
            .iter()
            .flat_map(|u| u.pieces.iter().map(|p| format!("{}/{}", u.id, p.name)))
            .collect())
    }

    /// Removes this instance's copies of pieces of uploads that are finished or gone (made
    /// whole, or removed, on another instance).
    pub(super) fn prune(&self, live: &[PartialUpload]) -> Result<(), StoreError> {
        let open: std::collections::HashSet<&str> = live
            .iter()
            .filter(|u| u.media_id.is_none())
            .map(|u| u.id.as_str())
            .collect();
        let entries = match fs::read_dir(&self.cache) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io("list uploads/pieces/", e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let upload = name
                .to_str()
                .and_then(|n| n.split_once('-'))
                .map(|(id, _)| id);
            if upload.is_some_and(|id| open.contains(id)) {
                continue;
            }
            // An upload made since the list was read: spare what was written lately.
            let young = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() < 600));
            if !young {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// Copies the first `upto` bytes of the upload's pieces, in order, into `out`: this
    /// instance's copy of each where it has one, else the bucket's. Returns how many it
    /// copied.
    fn copy_pieces(
        &self,
        upload: &PartialUpload,
        out: &mut dyn Write,
        upto: u64,
    ) -> Result<u64, StoreError> {
        let mut at = 0;
        for piece in &upload.pieces {
            if at >= upto {
                break;
            }
            if piece.start != at {
                return Err(StoreError::Corrupt(format!(
                    "upload {} has a gap at byte {at}",
                    upload.id
                )));
            }
            let want = piece.size.min(upto - at);
            let local = File::open(self.local(&upload.id, piece))
                .ok()
                .filter(|f| f.metadata().is_ok_and(|m| m.len() == piece.size));
            let copied = match local {
                Some(file) => std::io::copy(&mut file.take(want), out)
                    .map_err(|e| StoreError::io("read an upload's piece", e))?,
                None => {
                    let key = Self::key(&upload.id, piece)?;
                    if want == piece.size {
                        self.bucket.copy_object_to(&key, out)?.unwrap_or(0)
                    } else {
                        let bytes = self.bucket.read_object_range(&key, 0..want)?;
                        out.write_all(&bytes)
                            .map_err(|e| StoreError::io("copy an upload's piece", e))?;
                        bytes.len() as u64
                    }
                }
            };
            if copied != want {
                return Err(StoreError::Corrupt(format!(
                    "upload {}'s piece at byte {at} holds {copied} of its {want} bytes",
                    upload.id
                )));
            }
            at += want;
        }
        Ok(at)
    }

    /// The first acknowledged bytes (up to [`HEAD_BYTES`]).
    pub(super) fn head(&self, upload: &PartialUpload) -> Result<Vec<u8>, StoreError> {
        let mut head = Vec::new();
        self.copy_pieces(upload, &mut head, upload.offset.min(HEAD_BYTES as u64))?;
        Ok(head)
    }

    /// The whole upload as a staged blob in `tmp`, hashed (sha256 and MD5) as it is put
    /// together.
    pub(super) fn stage(
        &self,
        upload: &PartialUpload,
        tmp: &std::path::Path,
    ) -> Result<StagedBlob, StoreError> {
        let temp = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(tmp)
            .map_err(|e| StoreError::io("stage a finished upload in tmp/", e))?;
        let mut out = Staging {
            file: std::io::BufWriter::with_capacity(
                1 << 20,
                temp.as_file()
                    .try_clone()
                    .map_err(|e| StoreError::io("stage a finished upload in tmp/", e))?,
            ),
            sha256: Sha256::new(),
            md5: Md5::new(),
            head: Vec::with_capacity(HEAD_BYTES.min(upload.offset as usize)),
        };
        let copied = self.copy_pieces(upload, &mut out, upload.offset)?;
        if copied != upload.offset {
            return Err(StoreError::Corrupt(format!(
                "upload {} holds {copied} of its {} acknowledged bytes",
                upload.id, upload.offset
            )));
        }
        out.file
            .flush()
            .map_err(|e| StoreError::io("stage a finished upload in tmp/", e))?;
        let Staging {
            file,
            sha256,
            md5,
            head,
        } = out;
        drop(file);
        let (hash, md5) = (sha256.finalize(), md5.finalize());
        let mut staged = StagedBlob::new(temp, ContentHash(hash.into()), upload.offset, head);
        staged.md5 = Some(md5);
        Ok(staged)
    }
}

/// The staged file of a finished upload, with its digests and first bytes.
struct Staging {
    file: std::io::BufWriter<File>,
    sha256: Sha256,
    md5: Md5,
    head: Vec<u8>,
}

impl Write for Staging {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.sha256.update(&buf[..n]);
        self.md5.update(&buf[..n]);
        let room = HEAD_BYTES.saturating_sub(self.head.len()).min(n);
        self.head.extend_from_slice(&buf[..room]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

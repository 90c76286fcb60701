//! The durable write path: every writer of a new upload (the multipart and raw routes, `import`,
//! and the writers to come) takes the same two calls, and nothing else writes a blob or a new
//! record.
//!
//! 1. **Stage**: [`Store::stage`] opens a [`BlobWriter`] in `tmp/`. The caller feeds it the body
//!    as it arrives; it hashes (sha256) and counts while it writes, holds no more than a block
//!    in memory, and watches the space reserve. [`BlobWriter::finish`] gives a
//!    [`StagedBlob`]: the bytes' hash, size and first bytes. A writer dropped unfinished
//!    removes its file.
//! 2. **Commit**: [`NewMedia::new`] joins a staged blob with its fields and sniffs its type
//!    (once; the caller may check the type against its rules before committing), and
//!    [`Store::create`] commits a batch of them, the files of one multipart request together,
//!    in one round of fsyncs:
//!    - each blob is renamed to its content address, or dropped in favour of a stored copy
//!      that a record already counts, and each record file is written to `records/`;
//!    - the blobs and the directories on their paths are fsynced while, side by side, the
//!      records go into the database with their counts and indexes and a *pending* mark, in
//!      a transaction and a flush shared with concurrent uploads (`commit.rs`);
//!    - only when both have returned does `create` return, and the caller answer `201`. The
//!      record files are made durable right after, many at a time (`record_file_sync.rs`),
//!      and their pending marks are cleared with a later transaction.
//!
//! Edits and deletes (`edit.rs`) change `records/` first and durably, then the database. A
//! keyed upload ([`Store::put`], `put.rs`) makes a record as `create` does, or replaces the
//! one holding its key in the order of an edit, its new bytes durable first.
//!
//! # Why a crash loses no acknowledged upload
//!
//! Until the commit returns, a crash can leave any part of it on disk, and until the pending
//! mark is cleared, the record file may be incomplete. Nothing trusts what may be incomplete:
//! - `tmp/` is emptied at every start, so a staged blob never outlives its process;
//! - a record still marked pending is checked at the next start: one whose blob hashes to its
//!   name is kept and its file rewritten from the database (its `201` may have been sent), any
//!   other is rolled back (its `201` cannot have been: the blob's fsync had not returned);
//! - a record file whose record the database lacks is indexed when its blob is whole, and set
//!   aside in `quarantine/` when not (see [`catalogue`](crate::catalogue));
//! - a stored blob is reused only when a record counts it, and is fsynced again in the round
//!   that reuses it; an uncounted one may be what a crash left, and a new upload of the same
//!   bytes replaces it. The hashes' locks are held from the rename to the flush, so a second
//!   upload of the same bytes waits until the first one's blob is durable.
//!
//! The crash tests (`tests/crash.rs`) kill the server at every step of this, and at random,
//! and check that every acknowledged upload is back whole.

/// Striped locks, the database's group commit, and the fsyncs of a directory many uploads
/// share.
mod commit;
/// [`Store::create`]: a batch of staged uploads committed in one round.
mod create;
/// Edits and deletes, `records/` first.
mod edit;
/// The fsyncs of one round, side by side on a small pool.
pub(crate) mod parallel;
/// [`Store::put`]: a keyed upload that makes or replaces the record holding its key.
mod put;
/// New record files made durable behind the uploads, many at a time.
mod record_file_sync;
/// The write path when the records are in PostgreSQL.
mod shared;
/// An upload's temp file, written in aligned blocks.
pub(crate) mod upload_file;

pub(crate) use commit::{Batcher, GroupCommit, SharedDirSync, StripedLocks};
pub(crate) use create::{claim, crash_point};
pub use put::Put;
pub(crate) use record_file_sync::RecordSync;

use crate::{sniff, BlobWriter, MediaFields, StagedBlob, Store, StoreError};

/// A staged upload on its way to [`Store::create`]: its bytes, its name, the type they were
/// found to be, and the fields the caller gave.
pub struct NewMedia {
    /// The staged bytes; dropping the item removes them.
    pub blob: StagedBlob,
    /// The original name (sanitised); may be empty.
    pub filename: String,
    /// Sniffed from the bytes, then the name's extension, then the type the client declared.
    pub content_type: String,
    /// The fields the caller gave.
    pub fields: MediaFields,
    /// The hash of the bytes as they arrived, when the staged bytes are a stripped copy.
    pub original_hash: Option<crate::ContentHash>,
    /// What was stripped from them (see [`MediaRecord::stripped`](crate::MediaRecord)).
    pub stripped: Option<Vec<String>>,
    /// Set for a video whose poster is to be made after the upload.
    pub poster: Option<crate::record::PosterState>,
    /// The hex MD5 of the staged bytes, when the writer computed it (S3 does, for ETags).
    pub md5: Option<String>,
    /// The ETag of an object S3 completed from parts (see
    /// [`MediaRecord::etag`](crate::MediaRecord)).
    pub etag: Option<String>,
    /// The record's id, when the writer chose it beforehand (from [`Store::new_media_id`]) so
    /// that it can tell, after a crash, whether the record was made.
    pub id: Option<crate::MediaId>,
}

impl NewMedia {
    /// Joins a staged blob with its fields. Its type is decided here, once: from the bytes,
    /// then from the name's extension, and only then from `declared_type`, the client's word.
    pub fn new(
        blob: StagedBlob,
        filename: String,
        declared_type: Option<&str>,
        fields: MediaFields,
    ) -> NewMedia {
        let content_type = sniff::content_type(&blob.head, &filename, declared_type);
        NewMedia {
            blob,
            filename,
            content_type,
            fields,
            original_hash: None,
            md5: None,
            etag: None,
            stripped: None,
            poster: None,
            id: None,
        }
    }
}

impl Store {
    /// Step 1: starts an upload in `tmp/`, watching the space reserve while it is written.
    pub fn stage(&self) -> Result<BlobWriter, StoreError> {
        self.check_space(0)?;
        Ok(self
            .blobs
            .stage()?
            .with_guard(self.layout.root().to_owned(), self.reserve))
    }
}

//! Streaming a request body into a staged blob: the one way every upload form takes its bytes
//! in (see [`receive`]). The network side counts bytes and enforces the limit; a blocking
//! thread, started with the first batch of bytes, writes and hashes them; and what the caller
//! does with the staged blob runs on that same thread, saving a hand-off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::error::ApiError;
use super::intake;
use crate::store::{StagedBlob, Store};

/// After a refusal (too large, disk full), the rest of the body is read and discarded up to
/// this much so the client sees the JSON error instead of a reset connection.
const DRAIN_BYTES: u64 = 64 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Network chunks handed to the writing thread together: each hand-off wakes that thread,
/// and network chunks are small (often 16 KiB), so a 256 KiB upload goes over in one batch
/// rather than sixteen wake-ups.
struct Batch {
    chunks: Vec<Bytes>,
    /// The body ended with this batch.
    last: bool,
}

/// Bytes gathered before a batch is handed over.
const BATCH_BYTES: usize = 256 * 1024;
/// Batches in flight per upload (so at most about 1 MiB waits for the disk).
const BATCHES_QUEUED: usize = 4;

/// What a body's writing thread returns: `None` when the body was abandoned.
type Written<T> = Result<Option<T>, ApiError>;

/// The blocking thread that writes one body, started with the first batch: a body that fits
/// in one batch (most uploads) then costs a single hand-off, and `then` runs on that same
/// thread once the blob is staged, rather than after a second hand-off.
struct Writer<T, F> {
    store: Arc<Store>,
    /// Whether the staged blob also gets the MD5 of its bytes.
    md5: bool,
    /// Until the thread starts; then it is the thread's.
    then: Option<F>,
    started: Option<(mpsc::Sender<Batch>, tokio::task::JoinHandle<Written<T>>)>,
}

impl<T, F> Writer<T, F>
where
    T: Send + 'static,
    F: FnOnce(StagedBlob) -> Result<T, ApiError> + Send + 'static,
{
    /// Hands a batch over; `false` when the thread has stopped (on an error it reports).
    async fn send(&mut self, batch: Batch) -> bool {
        if let Some(then) = self.then.take() {
            // A body that is complete in its first batch has a known size.
            let size = batch
                .last
                .then(|| batch.chunks.iter().map(|c| c.len() as u64).sum());
            let (tx, rx) = mpsc::channel::<Batch>(BATCHES_QUEUED);
            let (store, md5) = (self.store.clone(), self.md5);
            let thread =
                actix_web::rt::task::spawn_blocking(move || write(&store, rx, size, md5, then));
            self.started = Some((tx, thread));
        }
        let Some((tx, _)) = &self.started else {
            return false;
        };
        tx.send(batch).await.is_ok()
    }

    /// Waits for the thread; `None` when it never started.
    async fn finish(self) -> Option<Written<T>> {
        let (tx, thread) = self.started?;
        drop(tx);
        Some(
            thread
                .await
                .unwrap_or_else(|_| Err(ApiError::Internal("the upload writer panicked".into()))),
        )
    }
}

/// The body of a [`Writer`]'s thread.
fn write<T>(
    store: &Store,
    mut rx: mpsc::Receiver<Batch>,
    size: Option<u64>,
    md5: bool,
    then: impl FnOnce(StagedBlob) -> Result<T, ApiError>,
) -> Written<T> {
    let mut w = store.stage()?;
    if md5 {
        w = w.with_md5();
    }
    if let Some(size) = size {
        w.expect_size(size);
    }
    while let Some(batch) = rx.blocking_recv() {
        for bytes in batch.chunks {
            w.write_bytes(bytes)?;
        }
        if batch.last {
            return then(w.finish()?).map(Some);
        }
    }
    // The sender went away without `last`: the upload was abandoned; dropping `w` removes it.
    Ok(None)
}

/// Whether a received body's staged blob also carries the MD5 of its bytes, computed on a
/// thread of its own as they are written (S3 answers with it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Md5 {
    Skip,
    Compute,
}

/// Streams one body into a staged blob and returns what `then` makes of it: the network side
/// counts bytes and enforces the limit, a blocking thread hashes and writes, then runs `then`.
/// An interrupted or refused stream leaves no temp file.
pub(super) async fn receive<S, E, T, F>(
    store: Arc<Store>,
    mut stream: S,
    limit: u64,
    idle: Duration,
    md5: Md5,
    then: F,
) -> Result<T, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + 'static,
    T: Send + 'static,
    F: FnOnce(StagedBlob) -> Result<T, ApiError> + Send + 'static,
{
    let mut writer = Writer {
        store,
        md5: md5 == Md5::Compute,
        then: Some(then),
        started: None,
    };
    let mut received: u64 = 0;
    let streamed: Result<(), ApiError> = async {
        let mut batch = Vec::new();
        let mut batched = 0;
        // A client that stops sending mid-body is cut off by the idle timeout every body has
        // (see `intake`), which ends this stream with an error.
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| intake::body_error(&e, "the upload was interrupted", idle))?;
            received += chunk.len() as u64;
            if received > limit {
                return Err(ApiError::TooLarge { limit });
            }
            // A full batch goes once more bytes follow, so the batch that ends the body is
            // always the one marked `last`.
            if batched >= BATCH_BYTES {
                let chunks = std::mem::take(&mut batch);
                batched = 0;
                if !writer
                    .send(Batch {
                        chunks,
                        last: false,
                    })
                    .await
                {
                    // The writer stopped on an error; it is reported below.
                    return Ok(());
                }
            }
            batched += chunk.len();
            batch.push(chunk);
        }
        writer
            .send(Batch {
                chunks: batch,
                last: true,
            })
            .await;
        Ok(())
    }
    .await;
    let written = writer.finish().await;
    streamed?;
    match written {
        Some(Ok(Some(done))) => Ok(done),
        Some(Err(e)) => Err(e),
        Some(Ok(None)) | None => Err(ApiError::Internal("the upload writer stopped early".into())),
    }
}

/// Reads and discards what is left of a refused body, within bounds.
pub(super) async fn drain<S, E>(mut stream: S)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let start = Instant::now();
    let mut left = DRAIN_BYTES;
    while start.elapsed() < DRAIN_TIME {
        match tokio::time::timeout(DRAIN_TIME, stream.next()).await {
            Ok(Some(Ok(chunk))) if (chunk.len() as u64) <= left => left -= chunk.len() as u64,
            _ => return,
        }
    }
}

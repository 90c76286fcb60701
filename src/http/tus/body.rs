//! A chunk's body, appended to its upload: the network side counts the bytes and watches for
//! a newer request taking the upload over; a blocking thread writes them (see
//! [`Appender`](crate::store::partial::Appender)) and, at the end, acknowledges or discards
//! them.
//!
//! A body cut off part way (the connection dropped, the idle timeout, a newer request for the
//! same upload) keeps what arrived: those bytes are fsynced and acknowledged like a whole
//! chunk, so that the client's next `HEAD` sees them and nothing is sent twice. A chunk sent
//! with a checksum is all or nothing: part of it cannot be checked.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use time::OffsetDateTime;
use tokio::sync::{mpsc, Notify};

use super::super::error::ApiError;
use super::super::intake;
use super::super::AppState;
use crate::store::partial::{AppendError, ChunkCheck, PartialUpload};
use crate::store::Store;

/// Network chunks handed to the writing thread together (as for other uploads).
const BATCH_BYTES: usize = 256 * 1024;
const BATCHES_QUEUED: usize = 4;

enum Msg {
    Data(Vec<Bytes>),
    /// The body ended (or was cut off): acknowledge what arrived, or discard it.
    End {
        keep: bool,
    },
}

/// How a chunk ended.
pub enum Appended {
    /// Acknowledged: the upload as it now stands.
    Whole(PartialUpload),
    /// Cut off part way; what arrived is acknowledged (unless it had a checksum), and the
    /// request is answered with this error (which its client may never read).
    Cut(PartialUpload, ApiError),
}

/// Appends the body to `upload`, at most `limit` bytes of it. `stop` is notified when another
/// request wants the upload: the body then ends as if cut off.
pub async fn append<S, E>(
    state: &AppState,
    upload: PartialUpload,
    check: Option<ChunkCheck>,
    mut body: S,
    limit: u64,
    stop: Arc<Notify>,
) -> Result<Appended, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + 'static,
{
    let store = state.store.clone();
    let idle = state.config.client_timeout;
    let checked = check.is_some();
    let before = upload.clone();
    let (tx, rx) = mpsc::channel::<Msg>(BATCHES_QUEUED);
    let writer = actix_web::rt::task::spawn_blocking(move || write(&store, upload, check, rx));
    let stopped = stop.notified();
    tokio::pin!(stopped);
    let mut batch = Vec::new();
    let mut batched = 0;
    let mut total: u64 = 0;
    // Why the body ended early, if it did.
    let cut: Option<ApiError> = loop {
        let chunk = tokio::select! {
            _ = &mut stopped => break Some(ApiError::Conflict {
                code: "upload_taken_over",
                message: "a newer request for this upload took it over".into(),
            }),
            chunk = body.next() => chunk,
        };
        let chunk = match chunk {
            None => break None,
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => break Some(intake::body_error(&e, "the chunk was cut off", idle)),
        };
        state.metrics.tus_received.inc_by(chunk.len() as u64);
        total += chunk.len() as u64;
        if total > limit {
            // Nothing of a chunk that crosses the limit is kept.
            let _ = tx.send(Msg::End { keep: false }).await;
            drop(tx);
            let _ = writer.await;
            // The limit this upload has: its length, or the size limit.
            let limit = before.length.unwrap_or(state.config.max_upload_bytes);
            return Err(ApiError::TooLarge { limit });
        }
        batched += chunk.len();
        batch.push(chunk);
        if batched >= BATCH_BYTES {
            batched = 0;
            if tx
                .send(Msg::Data(std::mem::take(&mut batch)))
                .await
                .is_err()
            {
                // The writer stopped on an error; it is reported below.
                break None;
            }
        }
    };
    let keep = !(cut.is_some() && checked);
    if !batch.is_empty() && keep {
        let _ = tx.send(Msg::Data(batch)).await;
    }
    let _ = tx.send(Msg::End { keep }).await;
    drop(tx);
    let written = writer
        .await
        .map_err(|_| ApiError::Internal("the upload writer panicked".into()))?;
    match (written, cut) {
        (Ok(Some(upload)), None) => Ok(Appended::Whole(upload)),
        (Ok(Some(upload)), Some(e)) => Ok(Appended::Cut(upload, e)),
        (Ok(None), Some(e)) => Ok(Appended::Cut(before, e)),
        (Ok(None), None) => Err(ApiError::Internal("the upload writer stopped early".into())),
        (Err(e), _) => Err(e),
    }
}

/// The body of the writing thread: the upload with the chunk acknowledged, or `None` when the
/// chunk was discarded.
fn write(
    store: &Store,
    mut upload: PartialUpload,
    check: Option<ChunkCheck>,
    mut rx: mpsc::Receiver<Msg>,
) -> Result<Option<PartialUpload>, ApiError> {
    let partials = store.partials();
    let mut appender = partials.append(&upload, check)?;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Data(chunks) => {
                for chunk in chunks {
                    if let Err(e) = appender.write(chunk) {
                        appender.discard(&upload)?;
                        return Err(e.into());
                    }
                }
            }
            Msg::End { keep: true } => {
                return match appender.commit(&mut upload, OffsetDateTime::now_utc()) {
                    Ok(()) => Ok(Some(upload)),
                    Err(AppendError::ChecksumMismatch) => Err(ApiError::ChecksumMismatch),
                    Err(AppendError::Store(e)) => Err(e.into()),
                };
            }
            Msg::End { keep: false } => break,
        }
    }
    appender.discard(&upload)?;
    Ok(None)
}

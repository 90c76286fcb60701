//! The way between actix-web and the S3 protocol engine (`s3s`, a hyper/tower service on the
//! `http` 1 types): a request's head is copied across, its body is forwarded chunk by chunk
//! through a small channel (actix's payload lives on its worker thread; the engine wants a
//! body it may move), and the answer's body streams back with its length.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use s3s::stream::{ByteStream, DynByteStream, RemainingLength};
use tokio::sync::mpsc;

/// Chunks waiting between the network and the engine: enough to keep both busy, little
/// enough that a slow disk holds the client back rather than filling memory.
const QUEUED_CHUNKS: usize = 8;

type StdError = Box<dyn std::error::Error + Send + Sync>;

/// A request as the engine takes it: the head copied, the body forwarded from `payload`.
pub fn request(req: &HttpRequest, payload: Payload) -> Result<http::Request<s3s::Body>, String> {
    let mut builder = http::Request::builder()
        .method(
            http::Method::from_bytes(req.method().as_str().as_bytes())
                .map_err(|e| format!("method: {e}"))?,
        )
        .uri(req.uri().to_string());
    for (name, value) in req.headers() {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    let length = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let chunked = req
        .headers()
        .contains_key(actix_web::http::header::TRANSFER_ENCODING);
    let body = match (length, chunked) {
        (Some(0), false) | (None, false) => s3s::Body::empty(),
        _ => s3s::Body::from(forward(payload, length)),
    };
    builder.body(body).map_err(|e| format!("request head: {e}"))
}

/// The engine's answer as actix sends it; a body of known length goes out with that length.
pub fn response(res: http::Response<s3s::Body>) -> HttpResponse {
    let (parts, body) = res.into_parts();
    let status = StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = HttpResponse::build(status);
    let mut length = None;
    for (name, value) in &parts.headers {
        if name == http::header::CONTENT_LENGTH {
            length = value.to_str().ok().and_then(|v| v.parse::<u64>().ok());
            continue;
        }
        out.append_header((name.as_str(), value.as_bytes()));
    }
    let hint = http_body::Body::size_hint(&body).exact();
    let body = futures_util::StreamExt::map(body, |chunk| chunk.map_err(std::io::Error::other));
    match (length.or(hint), body) {
        (Some(0), _) => out.finish(),
        (Some(n), body) => out.body(actix_web::body::SizedStream::new(n, body)),
        (None, body) => out.streaming(body),
    }
}

/// Forwards an actix payload into a stream the engine can own: a task on this worker reads
/// the payload and sends its chunks on; dropping the stream stops that task.
fn forward(mut payload: Payload, length: Option<usize>) -> DynByteStream {
    let (tx, rx) = mpsc::channel::<Result<Bytes, StdError>>(QUEUED_CHUNKS);
    actix_web::rt::spawn(async move {
        while let Some(chunk) = payload.next().await {
            let failed = chunk.is_err();
            if tx
                .send(chunk.map_err(|e| Box::new(e) as StdError))
                .await
                .is_err()
                || failed
            {
                break;
            }
        }
    });
    Box::pin(Forwarded {
        rx,
        remaining: length,
    })
}

struct Forwarded {
    rx: mpsc::Receiver<Result<Bytes, StdError>>,
    /// Bytes still to come, when the request said.
    remaining: Option<usize>,
}

impl Stream for Forwarded {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &item {
            let n = chunk.len();
            if let Some(r) = self.remaining.as_mut() {
                *r = r.saturating_sub(n);
            }
        }
        item
    }
}

impl ByteStream for Forwarded {
    fn remaining_length(&self) -> RemainingLength {
        match self.remaining {
            Some(n) => RemainingLength::new_exact(n),
            None => RemainingLength::unknown(),
        }
    }
}

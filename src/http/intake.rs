//! What any request may send, checked before a handler reads a byte of it:
//! - no compressed body: a few kilobytes of gzip can inflate to gigabytes inside the server
//!   before a size limit sees them, so `Content-Encoding` other than `identity` gets `415`;
//! - a body that keeps arriving: a client that sends nothing for the client timeout is cut
//!   off with `408`, whatever the route reads (a JSON body, a multipart field, the gap between
//!   two parts, a file). Without this, stalled requests hold connections for ever.
//!
//! Stalled request heads are handled below HTTP, per connection (see [`super::conn`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, TRANSFER_ENCODING};
use actix_web::middleware::Next;
use actix_web::web;
use actix_web::HttpMessage;
use bytes::Bytes;
use futures_util::Stream;

use super::error::ApiError;
use super::AppState;

/// Refuses compressed bodies and puts an idle timeout on every body.
pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let _handling = super::conn::handling(&req);
    let encoded = req
        .headers()
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty() && v != "identity");
    if let Some(encoding) = encoded {
        let e = ApiError::UnsupportedMediaType(format!(
            "compressed request bodies are not accepted (Content-Encoding: {encoding}); send \
             the body as it is"
        ));
        return Ok(req.error_response(e).map_into_right_body());
    }
    // Most requests (every GET) have no body: they need no timer, and get none.
    let has_body = req.headers().contains_key(TRANSFER_ENCODING)
        || req
            .headers()
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let idle = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.config.client_timeout)
        .filter(|_| has_body);
    if let Some(idle) = idle {
        let body = req.take_payload();
        req.set_payload(with_idle_timeout(body, idle));
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// The body, cut off with `TimedOut` when the client sends nothing for `idle`.
pub fn with_idle_timeout(body: Payload, idle: Duration) -> Payload {
    Payload::from(
        Box::pin(Idle::new(body, idle)) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>
    )
}

/// A body stream that fails with `TimedOut` when no chunk arrives for `idle`.
struct Idle {
    inner: Payload,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Idle {
    fn new(inner: Payload, idle: Duration) -> Self {
        Idle {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl Stream for Idle {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(item) => {
                let deadline = tokio::time::Instant::now() + this.idle;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(item)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the client sent nothing for {} s", this.idle.as_secs()),
                ))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// What an error while reading a body means for the client: `408` when it stopped sending
/// (the idle timeout above, `idle`), `400` when the body broke off or was malformed.
pub fn body_error(e: &(dyn std::error::Error + 'static), what: &str, idle: Duration) -> ApiError {
    let mut cause = Some(e);
    while let Some(err) = cause {
        let timed_out = err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || matches!(
                err.downcast_ref::<PayloadError>(),
                Some(PayloadError::Io(io)) if io.kind() == std::io::ErrorKind::TimedOut
            );
        if timed_out {
            return ApiError::RequestTimeout(idle.as_secs());
        }
        cause = err.source();
    }
    ApiError::bad_request(format!("{what}: {e}"))
}

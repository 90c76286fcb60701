//! What a body's bytes hash to on the way in, and the checks against what the client sent:
//! `Content-MD5`, the `x-amz-checksum-*` headers or trailer (CRC32, CRC32C, CRC64NVME, SHA1,
//! SHA256) and a signed `x-amz-content-sha256`. The checksums are computed on the network side
//! as the bytes pass; sha256 and MD5 by the writer of the staged blob, each on a thread of its
//! own. Everything is checked before the object is committed, so a body that disagrees leaves
//! nothing.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use base64::Engine;
use bytes::Bytes;
use futures_util::Stream;
use s3s::checksum::ChecksumHasher;
use s3s::dto;
use s3s::{s3_error, S3Error, S3ErrorCode};

use super::super::error::ApiError;
use super::objects::api_error;

type StdError = Box<dyn std::error::Error + Send + Sync>;

/// The `x-amz-checksum-*` values a request's input carries (every input that takes a body
/// has the same five fields).
macro_rules! sent_checksums {
    ($input:expr) => {
        s3s::dto::Checksum {
            checksum_crc32: $input.checksum_crc32,
            checksum_crc32c: $input.checksum_crc32c,
            checksum_sha1: $input.checksum_sha1,
            checksum_sha256: $input.checksum_sha256,
            checksum_crc64nvme: $input.checksum_crc64nvme,
            ..Default::default()
        }
    };
}
pub(super) use sent_checksums;

/// The digests a client may send for a body, checked before the object is committed.
#[derive(Default)]
pub(super) struct Expected {
    /// `Content-MD5`, base64.
    md5: Option<String>,
    /// `x-amz-content-sha256` when it is a digest (not `UNSIGNED-PAYLOAD` or a streaming mode).
    sha256_hex: Option<String>,
    /// `x-amz-checksum-*` headers, or the algorithm a trailer will carry.
    checksums: dto::Checksum,
    /// The trailer's checksum header, when the checksum comes after the body.
    trailer: Option<String>,
}

impl Expected {
    pub(super) fn of(
        headers: &http::HeaderMap,
        md5: Option<String>,
        checksums: dto::Checksum,
    ) -> Expected {
        let sha256_hex = headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase);
        let trailer = headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| v.starts_with("x-amz-checksum-"));
        Expected {
            md5,
            sha256_hex,
            checksums,
            trailer,
        }
    }

    /// The hasher for every checksum the client sent or announced.
    fn hasher(&self) -> ChecksumHasher {
        let c = &self.checksums;
        let wants = |present: bool, name: &str| {
            present || self.trailer.as_deref() == Some(&format!("x-amz-checksum-{name}")[..])
        };
        ChecksumHasher {
            crc32: wants(c.checksum_crc32.is_some(), "crc32").then(Default::default),
            crc32c: wants(c.checksum_crc32c.is_some(), "crc32c").then(Default::default),
            sha1: wants(c.checksum_sha1.is_some(), "sha1").then(Default::default),
            sha256: wants(c.checksum_sha256.is_some(), "sha256").then(Default::default),
            crc64nvme: wants(c.checksum_crc64nvme.is_some(), "crc64nvme").then(Default::default),
        }
    }
}

/// What the body's bytes hashed to, on the way through.
pub(super) struct Digests {
    pub(super) checksums: dto::Checksum,
}

/// A body stream that computes the checksums the client asked for as it passes, and leaves
/// them when the body ends (before the writing thread sees its last bytes).
pub(super) struct Digesting<S> {
    inner: S,
    hasher: Option<ChecksumHasher>,
    done: Arc<Mutex<Option<Digests>>>,
}

impl<S> Stream for Digesting<S>
where
    S: Stream<Item = Result<Bytes, StdError>> + Unpin,
{
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(h) = this.hasher.as_mut() {
                    h.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(body_io_error(e)))),
            Poll::Ready(None) => {
                if let Some(h) = this.hasher.take() {
                    *this.done.lock().unwrap_or_else(|p| p.into_inner()) = Some(Digests {
                        checksums: h.finalize(),
                    });
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Where the digests of a body are left once it ends.
pub(super) type Digested = Arc<Mutex<Option<Digests>>>;

/// The body, computing the checksums `expected` names as it passes.
pub(super) fn digesting<S>(body: S, expected: &Expected) -> (Digesting<S>, Digested) {
    let done = Arc::new(Mutex::new(None));
    let stream = Digesting {
        inner: body,
        hasher: Some(expected.hasher()),
        done: done.clone(),
    };
    (stream, done)
}

/// The digests a body left, on the thread that wrote it (the body has ended by then).
pub(super) fn digests(done: &Digested) -> Result<Digests, ApiError> {
    done.lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or_else(|| ApiError::Internal("the body's digests are missing".into()))
}

/// A body error as the upload path reports it: a client that stopped sending keeps its
/// `TimedOut`, so that it is told `RequestTimeout`.
fn body_io_error(e: StdError) -> io::Error {
    if let Some(actix_web::error::PayloadError::Io(io)) =
        e.downcast_ref::<actix_web::error::PayloadError>()
    {
        return io::Error::new(io.kind(), io.to_string());
    }
    io::Error::other(e.to_string())
}

/// A body that is not the one its signed `x-amz-content-sha256` names.
fn sha256_mismatch() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
        "the body does not match its x-amz-content-sha256",
    );
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

/// An error of a streamed body as the S3 error for it.
pub(super) fn body_error(e: ApiError) -> S3Error {
    match &e {
        ApiError::BadRequest(m) if m.contains("SignatureMismatch") => s3_error!(
            SignatureDoesNotMatch,
            "a chunk's signature does not match its bytes"
        ),
        ApiError::BadRequest(m) if m.contains("Sha256Mismatch") => sha256_mismatch(),
        ApiError::BadRequest(m) if m.contains("LengthMismatch") => s3_error!(
            IncompleteBody,
            "the body is not as long as its Content-Length"
        ),
        ApiError::BadRequest(m) if m.contains("AwsChunkedStreamError") => {
            s3_error!(
                IncompleteBody,
                "the aws-chunked body is malformed or cut short"
            )
        }
        ApiError::BadRequest(_) => s3_error!(IncompleteBody, "the body broke off"),
        _ => api_error(e),
    }
}

/// Checks the body's digests against what the client sent.
pub(super) fn verify(
    expected: &Expected,
    got: &Digests,
    md5: Option<&[u8; 16]>,
    sha256: &crate::store::ContentHash,
    trailers: Option<&s3s::TrailingHeaders>,
) -> Result<(), S3Error> {
    if let Some(sent) = &expected.md5 {
        let sent = base64::engine::general_purpose::STANDARD
            .decode(sent.trim())
            .map_err(|_| s3_error!(InvalidDigest, "Content-MD5 is not base64"))?;
        if sent.len() != 16 {
            return Err(s3_error!(InvalidDigest, "Content-MD5 is not an MD5"));
        }
        if Some(&sent[..]) != md5.map(|m| &m[..]) {
            return Err(s3_error!(
                BadDigest,
                "the body does not match its Content-MD5"
            ));
        }
    }
    if let Some(hex) = &expected.sha256_hex {
        if *hex != sha256.to_hex() {
            return Err(sha256_mismatch());
        }
    }
    let mut sent = expected.checksums.clone();
    if let Some(name) = &expected.trailer {
        let value = trailers
            .and_then(|t| {
                t.read(|h| {
                    h.get(name.as_str())
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                })
            })
            .flatten()
            .ok_or_else(|| {
                s3_error!(
                    InvalidRequest,
                    "the trailer announced {name} but did not carry it"
                )
            })?;
        match name.trim_start_matches("x-amz-checksum-") {
            "crc32" => sent.checksum_crc32 = Some(value),
            "crc32c" => sent.checksum_crc32c = Some(value),
            "sha1" => sent.checksum_sha1 = Some(value),
            "sha256" => sent.checksum_sha256 = Some(value),
            "crc64nvme" => sent.checksum_crc64nvme = Some(value),
            _ => {
                return Err(s3_error!(
                    InvalidRequest,
                    "unknown trailing checksum {name}"
                ))
            }
        }
    }
    let c = &got.checksums;
    let pairs = [
        ("CRC32", &sent.checksum_crc32, &c.checksum_crc32),
        ("CRC32C", &sent.checksum_crc32c, &c.checksum_crc32c),
        ("SHA1", &sent.checksum_sha1, &c.checksum_sha1),
        ("SHA256", &sent.checksum_sha256, &c.checksum_sha256),
        ("CRC64NVME", &sent.checksum_crc64nvme, &c.checksum_crc64nvme),
    ];
    for (name, sent, computed) in pairs {
        if let Some(sent) = sent {
            if Some(sent.trim()) != computed.as_deref() {
                return Err(s3_error!(
                    BadDigest,
                    "the body does not match its {name} checksum"
                ));
            }
        }
    }
    Ok(())
}

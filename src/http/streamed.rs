//! Serving a blob that is not a file here (an object in the blob store's bucket): the status,
//! `Content-Range` and length decided here for one range, as actix-files decides them for a
//! file, and the bytes streamed from the bucket.

use actix_files::HttpRange;
use actix_web::body::SizedStream;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{self, ContentDisposition, EntityTag, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::HttpResponse;

use super::blob_body::open_range;
use super::error::ApiError;
use crate::store::{Blobs, ContentHash};

/// The answer to a GET or HEAD of `size` bytes of `hash`, whose preconditions were checked:
/// 200 with the whole blob, 206 with the first range asked for, or 416. `If-Range` with
/// another entity tag (or a date: blobs carry no Last-Modified) asks for the whole blob.
pub fn answer(
    req: &ServiceRequest,
    blobs: &Blobs,
    hash: &ContentHash,
    size: u64,
    etag: &EntityTag,
    disposition: ContentDisposition,
) -> Result<HttpResponse, ApiError> {
    let if_range_holds = req
        .headers()
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.parse::<EntityTag>().is_ok_and(|t| t.strong_eq(etag)));
    let range = req
        .headers()
        .get(header::RANGE)
        // An empty blob has no byte to send: a range on it is ignored (RFC 9110 §14.2).
        .filter(|_| if_range_holds && size > 0)
        .and_then(|v| v.to_str().ok())
        .map(|v| HttpRange::parse(v, size).map(|r| r.first().copied()));
    let (status, start, len) = match range {
        None => (StatusCode::OK, 0, size),
        Some(Ok(Some(r))) => (StatusCode::PARTIAL_CONTENT, r.start, r.length),
        // Unsatisfiable (or malformed, which actix-files answers the same way).
        Some(_) => {
            let mut res = HttpResponse::RangeNotSatisfiable().finish();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(res);
        }
    };
    let mut res = HttpResponse::build(status);
    res.insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CONTENT_DISPOSITION, disposition));
    if status == StatusCode::PARTIAL_CONTENT {
        res.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + len - 1),
        ));
    }
    if req.method() == Method::HEAD {
        return Ok(res.body(SizedStream::new(
            len,
            futures_util::stream::empty::<Result<bytes::Bytes, std::io::Error>>(),
        )));
    }
    let body = open_range(blobs, hash, start, len).map_err(ApiError::Store)?;
    Ok(res.body(SizedStream::new(len, body)))
}

/// How long a redirect's presigned URL stays valid: three times the five minutes a public
/// file's answer, the redirect included, may be cached, so that no cache hands out an
/// expired URL.
const REDIRECT_VALID: std::time::Duration = std::time::Duration::from_secs(900);

/// A `302` to a presigned URL of the bucket for a public blob (`SHOEBOX_BLOB_REDIRECT`), with
/// the type and disposition this server would send: a type not known to be inert still goes
/// out as an attachment, from the bucket's origin, never this one. `None` when blobs are files
/// here, or when presigning failed (the blob is then served through this server).
pub async fn redirect(
    blobs: &Blobs,
    hash: &ContentHash,
    content_type: &HeaderValue,
    disposition: &ContentDisposition,
) -> Option<HttpResponse> {
    let bucket = blobs.bucket()?;
    let url = bucket
        .presigned_get(
            hash,
            REDIRECT_VALID,
            content_type.to_str().unwrap_or("application/octet-stream"),
            &disposition.to_string(),
        )
        .await;
    match url {
        Ok(url) => Some(
            HttpResponse::Found()
                .insert_header((header::LOCATION, url))
                .finish(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not presign a read; serving it through this server");
            None
        }
    }
}

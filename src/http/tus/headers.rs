//! The tus headers: reading what a request says, and saying where an upload stands.

use actix_web::http::header::{HeaderMap, HttpDate};
use actix_web::{HttpRequest, HttpResponseBuilder};
use base64::Engine;

use super::super::error::ApiError;
use super::super::AppState;
use super::{expires_at, CHECKSUMS, CHUNK_TYPE, VERSION};
use crate::store::partial::{ChunkCheck, PartialUpload};

/// The protocol version a request speaks: `Tus-Resumable: 1.0.0` on every request but
/// `OPTIONS` (and `GET`, which is Shoebox's own).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub enum TusResumable {
    #[schema(rename = "1.0.0")]
    V1,
}

pub fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `Tus-Resumable: 1.0.0`, which every request but `OPTIONS` must send.
pub fn check_version(req: &HttpRequest) -> Result<(), ApiError> {
    match text(req.headers(), "tus-resumable") {
        Some(VERSION) => Ok(()),
        _ => Err(ApiError::UnsupportedVersion),
    }
}

pub fn number(req: &HttpRequest, name: &'static str) -> Result<Option<u64>, ApiError> {
    match text(req.headers(), name) {
        None => Ok(None),
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid(name, "a whole number of bytes")),
        Some(_) => Err(ApiError::invalid(name, "a whole number of bytes")),
    }
}

/// `Upload-Checksum: <algorithm> <base64 digest>`.
pub fn checksum(req: &HttpRequest) -> Result<Option<ChunkCheck>, ApiError> {
    let Some(value) = text(req.headers(), "upload-checksum") else {
        return Ok(None);
    };
    let (algorithm, digest) = value.split_once(' ').unwrap_or((value, ""));
    let digest = base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        .map_err(|_| ApiError::invalid("Upload-Checksum", "an algorithm and a base64 digest"))?;
    let (check, len) = match algorithm.to_ascii_lowercase().as_str() {
        "sha1" => (ChunkCheck::Sha1(digest), 20),
        "sha256" => (ChunkCheck::Sha256(digest), 32),
        other => {
            return Err(ApiError::bad_request(format!(
                "unsupported checksum algorithm {other:?}; this server offers {CHECKSUMS}"
            )))
        }
    };
    match &check {
        ChunkCheck::Sha1(d) | ChunkCheck::Sha256(d) if d.len() == len => Ok(Some(check)),
        _ => Err(ApiError::invalid(
            "Upload-Checksum",
            format!("a {algorithm} digest of {len} bytes"),
        )),
    }
}

pub fn is_chunk(req: &HttpRequest) -> bool {
    text(req.headers(), "content-type")
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(CHUNK_TYPE))
}

/// The headers that describe an upload's state.
pub fn describe(res: &mut HttpResponseBuilder, upload: &PartialUpload, state: &AppState) {
    res.insert_header(("Upload-Offset", upload.offset.to_string()));
    match upload.length {
        Some(n) => res.insert_header(("Upload-Length", n.to_string())),
        None => res.insert_header(("Upload-Defer-Length", "1")),
    };
    progress(res, upload, state);
}

/// When an unfinished upload expires, or what a finished one became.
pub fn progress(res: &mut HttpResponseBuilder, upload: &PartialUpload, state: &AppState) {
    match &upload.media_id {
        None => {
            let expires = std::time::SystemTime::from(expires_at(upload, state));
            res.insert_header(("Upload-Expires", HttpDate::from(expires).to_string()))
        }
        Some(id) => res.insert_header(("Shoebox-Media-Id", id.clone())),
    };
}

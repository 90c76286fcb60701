//! `ApiError`: every failure a handler can return, mapped to one status code and a JSON body
//! `{"error": {"code": "...", "message": "..."}}` in a single exhaustive match.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::credentials::CredentialError;
use crate::store::StoreError;

/// Every error response's body.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "no such media"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `bad_request`, `invalid_field` (400); `unauthorized`
    /// (401); `cross_site`, `insufficient_scope`, `invalid_signature`, `expired_signature`
    /// (403); `not_found` (404); `method_not_allowed` (405); `request_timeout` (408);
    /// `key_taken`, `offset_mismatch`, `upload_incomplete`, `upload_taken_over`,
    /// `collection_not_empty` (409); `upload_expired` (410); `unsupported_version` (412);
    /// `payload_too_large` (413);
    /// `unsupported_media_type` (415); `image_too_large`, `undecodable_image` (422);
    /// `upload_locked` (423); `too_many_requests`, `too_many_uploads` (429);
    /// `checksum_mismatch` (460);
    /// `blob_damaged`, `internal` (500); `disk_failing`, `busy` (503);
    /// `insufficient_storage` (507).
    pub code: String,
    /// For people; may change between versions.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{field} must be {expected}")]
    InvalidField { field: String, expected: String },
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, or not needing to be, but refused all the same; `code` says why.
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: &'static str,
    },
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("too many failed attempts from this address; try again in {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    #[error("the client sent nothing for {0} s; the upload was abandoned")]
    RequestTimeout(u64),
    #[error("this route does not accept the {0} method")]
    MethodNotAllowed(String),
    /// The request does not fit the resource's state (a resumable upload's offset, say);
    /// `code` says how.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A resumable upload that expired.
    #[error("this upload expired {0} after its last bytes arrived; start it again")]
    Gone(String),
    /// A tus request of a protocol version this server does not speak.
    #[error("this server speaks tus 1.0.0 (send Tus-Resumable: 1.0.0)")]
    UnsupportedVersion,
    /// A resumable upload's chunk that does not match the checksum sent with it.
    #[error("the chunk does not match its Upload-Checksum; it was discarded, send it again")]
    ChecksumMismatch,
    /// A caller with as many resumable uploads in progress as one may have.
    #[error(
        "{0} resumable uploads are in progress for this token; finish or end some (DELETE) first"
    )]
    TooManyUploads(usize),
    /// A resumable upload another request holds and does not let go of.
    #[error("another request is writing to this upload; try again in a moment")]
    Locked,
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well formed, but the file cannot become what the request asks (an image too large to
    /// make variants of); `code` says why.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("the disk is full; delete media or grow the disk, reads keep working")]
    DiskFull,
    #[error(
        "the server's disk failed a write a moment ago ({0}); uploads are refused until a \
         health check passes, reads keep working"
    )]
    DiskFailing(String),
    /// A blob whose bytes no longer match its name (found by the scrub or `verify`).
    #[error(
        "the stored bytes of blob {0} are damaged and are not served; the operator can restore \
         them from a backup (or upload the same file again) and run `shoebox verify --repair`"
    )]
    BlobDamaged(String),
    /// The process ran out of file descriptors for a moment.
    #[error("the server is too busy to open another file; try again in a moment")]
    Busy,
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Credential(#[from] CredentialError),
}

/// tus's status for a chunk whose checksum does not match (not an IANA status).
fn checksum_mismatch() -> StatusCode {
    StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST)
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError::BadRequest(msg.into())
    }

    pub fn invalid(field: impl Into<String>, expected: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            expected: expected.into(),
        }
    }

    /// How an error is answered, in one exhaustive match: its status, its stable code, and
    /// the message the client sees. Internal causes are logged, never sent.
    pub(super) fn classify(&self) -> (StatusCode, &'static str, String) {
        use StatusCode as S;
        const INTERNAL: &str = "internal error; the server log has details";
        let shown = || self.to_string();
        match self {
            ApiError::BadRequest(_) => (S::BAD_REQUEST, "bad_request", shown()),
            ApiError::InvalidField { .. } => (S::BAD_REQUEST, "invalid_field", shown()),
            ApiError::Unauthorized(_) => (S::UNAUTHORIZED, "unauthorized", shown()),
            ApiError::Forbidden { code, .. } => (S::FORBIDDEN, code, shown()),
            ApiError::NotFound(_) => (S::NOT_FOUND, "not_found", shown()),
            ApiError::TooManyRequests { .. } => {
                (S::TOO_MANY_REQUESTS, "too_many_requests", shown())
            }
            ApiError::RequestTimeout(_) => (S::REQUEST_TIMEOUT, "request_timeout", shown()),
            ApiError::MethodNotAllowed(_) => (S::METHOD_NOT_ALLOWED, "method_not_allowed", shown()),
            ApiError::Conflict { code, .. } => (S::CONFLICT, code, shown()),
            ApiError::Gone(_) => (S::GONE, "upload_expired", shown()),
            ApiError::UnsupportedVersion => {
                (S::PRECONDITION_FAILED, "unsupported_version", shown())
            }
            ApiError::ChecksumMismatch => (checksum_mismatch(), "checksum_mismatch", shown()),
            ApiError::Locked => (S::LOCKED, "upload_locked", shown()),
            ApiError::TooManyUploads(_) => (S::TOO_MANY_REQUESTS, "too_many_uploads", shown()),
            ApiError::TooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "payload_too_large", shown()),
            ApiError::UnsupportedMediaType(_) => {
                (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", shown())
            }
            ApiError::Unprocessable { code, .. } => (S::UNPROCESSABLE_ENTITY, code, shown()),
            ApiError::DiskFull => (S::INSUFFICIENT_STORAGE, "insufficient_storage", shown()),
            ApiError::DiskFailing(_) => (S::SERVICE_UNAVAILABLE, "disk_failing", shown()),
            ApiError::Busy => (S::SERVICE_UNAVAILABLE, "busy", shown()),
            ApiError::BlobDamaged(_) => (S::INTERNAL_SERVER_ERROR, "blob_damaged", shown()),
            ApiError::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal", INTERNAL.into()),
            ApiError::Store(e) => match e {
                StoreError::Invalid { .. } => (S::BAD_REQUEST, "invalid_field", e.to_string()),
                StoreError::NotFound => (S::NOT_FOUND, "not_found", e.to_string()),
                StoreError::KeyTaken { .. } => (S::CONFLICT, "key_taken", e.to_string()),
                StoreError::Changed(_) => (S::CONFLICT, "changed", e.to_string()),
                StoreError::NoSpace { .. } => (
                    S::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    e.to_string(),
                ),
                e if e.is_disk_full() => (
                    S::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    ApiError::DiskFull.to_string(),
                ),
                e if e.is_out_of_descriptors() => {
                    (S::SERVICE_UNAVAILABLE, "busy", ApiError::Busy.to_string())
                }
                StoreError::Unavailable { what, .. } => (
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("{what} is unavailable; try again shortly"),
                ),
                StoreError::Io { .. }
                | StoreError::NoRoom(_)
                | StoreError::Format(_)
                | StoreError::Locked(_)
                | StoreError::Corrupt(_)
                | StoreError::Damaged(_)
                | StoreError::NotHere(_)
                | StoreError::Database(_) => {
                    (S::INTERNAL_SERVER_ERROR, "internal", INTERNAL.into())
                }
            },
            ApiError::Credential(e) => match e {
                CredentialError::Invalid { .. } => (S::BAD_REQUEST, "invalid_field", e.to_string()),
                e if e.is_disk_full() => (
                    S::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    ApiError::DiskFull.to_string(),
                ),
                CredentialError::Unavailable(_) => (
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable; try again shortly".into(),
                ),
                CredentialError::Io { .. } | CredentialError::Damaged(_) => {
                    (S::INTERNAL_SERVER_ERROR, "internal", INTERNAL.into())
                }
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.classify().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code, message) = self.classify();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut res = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"shoebox\""));
        }
        if let ApiError::TooManyRequests { retry_after } = self {
            res.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        if matches!(self, ApiError::Busy | ApiError::Locked)
            || matches!(self, ApiError::Store(e) if e.is_out_of_descriptors())
        {
            res.insert_header((header::RETRY_AFTER, "1"));
        }
        if let ApiError::UnsupportedVersion = self {
            // tus: a 412 names the versions the server speaks.
            res.insert_header(("Tus-Version", "1.0.0"));
        }
        if let ApiError::DiskFailing(_) = self {
            // Refused before its body was read: the connection cannot carry another request.
            res.insert_header((header::RETRY_AFTER, "30"));
            res.force_close();
        }
        res.insert_header((header::CACHE_CONTROL, "no-store"));
        res.json(ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message,
            },
        })
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(_: actix_web::error::BlockingError) -> Self {
        ApiError::Internal("a blocking task was cancelled".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body(e: ApiError) -> (StatusCode, serde_json::Value) {
        let res = e.error_response();
        let status = res.status();
        let bytes = res.into_body().try_into_bytes().unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// Running out of file descriptors is a moment's overload: 503 and a retry, never the
    /// failing-disk state's 500.
    #[test]
    fn out_of_descriptors_is_busy() {
        let e = StoreError::io(
            "open a blob",
            std::io::Error::from_raw_os_error(libc::EMFILE),
        );
        assert!(!e.is_disk_failure());
        let res = ApiError::from(e).error_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }

    #[test]
    fn errors_are_json_with_code_and_message() {
        let (status, v) = body(ApiError::TooLarge { limit: 10 });
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(v["error"]["code"], "payload_too_large");
        assert!(v["error"]["message"].as_str().unwrap().contains("10 bytes"));

        let (status, v) = body(ApiError::Forbidden {
            code: "cross_site",
            message: "refused",
        });
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(v["error"]["code"], "cross_site");

        let (status, v) = body(StoreError::invalid("tags", "short").into());
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["message"], "tags must be short");

        let disk_full = std::io::Error::from_raw_os_error(28);
        let (status, v) = body(StoreError::io("write", disk_full).into());
        assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(v["error"]["code"], "insufficient_storage");

        let (status, v) = body(StoreError::Corrupt("secret path /x".into()).into());
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            !v["error"]["message"].as_str().unwrap().contains("/x"),
            "internal details stay in the log"
        );
    }
}

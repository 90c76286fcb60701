//! `ApiError`: every failure a handler can return, mapped to one status code and a JSON body
//! `{"error": {"code": "...", "message": "..."}}` in a single exhaustive match.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// Every error response's body.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "no such media"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `bad_request`, `invalid_field`, `unauthorized`,
    /// `cross_site`, `not_found`, `method_not_allowed`, `payload_too_large`,
    /// `unsupported_media_type`, `insufficient_storage`, `disk_failing`, `busy`,
    /// `blob_damaged`, `internal`.
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
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    UnsupportedMediaType(String),
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

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden { code, .. } => code,
            ApiError::NotFound(_) => "not_found",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::TooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::DiskFull => "insufficient_storage",
            ApiError::DiskFailing(_) => "disk_failing",
            ApiError::Busy => "busy",
            ApiError::BlobDamaged(_) => "blob_damaged",
            ApiError::Internal(_) => "internal",
            ApiError::Store(e) => match e {
                StoreError::Invalid { .. } => "invalid_field",
                StoreError::NotFound => "not_found",
                StoreError::NoSpace { .. } | StoreError::NoRoom(_) => "insufficient_storage",
                e if e.is_disk_full() => "insufficient_storage",
                e if e.is_out_of_descriptors() => "busy",
                StoreError::Io { .. }
                | StoreError::Format(_)
                | StoreError::Locked(_)
                | StoreError::Corrupt(_)
                | StoreError::Damaged(_)
                | StoreError::Database(_) => "internal",
            },
        }
    }

    /// The message the client sees. Internal causes are logged, not sent.
    fn public_message(&self) -> String {
        match self {
            ApiError::Internal(_) => "internal error; the server log has details".into(),
            ApiError::Store(e) => match e {
                StoreError::Invalid { .. } | StoreError::NotFound => e.to_string(),
                StoreError::NoSpace { .. } => e.to_string(),
                e if e.is_disk_full() => ApiError::DiskFull.to_string(),
                e if e.is_out_of_descriptors() => ApiError::Busy.to_string(),
                _ => "internal error; the server log has details".into(),
            },
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::InvalidField { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::DiskFull => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::DiskFailing(_) | ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BlobDamaged(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Store(e) => match e {
                StoreError::Invalid { .. } => StatusCode::BAD_REQUEST,
                StoreError::NotFound => StatusCode::NOT_FOUND,
                StoreError::NoSpace { .. } | StoreError::NoRoom(_) => {
                    StatusCode::INSUFFICIENT_STORAGE
                }
                e if e.is_disk_full() => StatusCode::INSUFFICIENT_STORAGE,
                e if e.is_out_of_descriptors() => StatusCode::SERVICE_UNAVAILABLE,
                StoreError::Io { .. }
                | StoreError::Format(_)
                | StoreError::Locked(_)
                | StoreError::Corrupt(_)
                | StoreError::Damaged(_)
                | StoreError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
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
        if matches!(self, ApiError::Busy)
            || matches!(self, ApiError::Store(e) if e.is_out_of_descriptors())
        {
            res.insert_header((header::RETRY_AFTER, "1"));
        }
        if let ApiError::DiskFailing(_) = self {
            // Refused before its body was read: the connection cannot carry another request.
            res.insert_header((header::RETRY_AFTER, "30"));
            res.force_close();
        }
        res.insert_header((header::CACHE_CONTROL, "no-store"));
        res.json(ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.public_message(),
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

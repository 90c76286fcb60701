//! Conditional requests for files: `If-Match`, `If-None-Match` and `If-Range` against a
//! strong ETag (RFC 9110 §13.2.2), answered before any byte is read.

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{self, EntityTag, Header, IfMatch, IfNoneMatch, IfRange};
use actix_web::http::StatusCode;

/// Evaluates If-Match / If-None-Match / If-Range against our ETag (RFC 9110 §13.2.2) and
/// removes them, so `NamedFile` only sees a `Range` that still applies.
pub fn preconditions(req: &mut ServiceRequest, etag: &EntityTag) -> Option<StatusCode> {
    // The typed parsers answer an empty list for an absent header, so check presence first.
    if req.headers().contains_key(header::IF_MATCH) {
        if let Ok(IfMatch::Items(items)) = IfMatch::parse(req) {
            if !items.iter().any(|t| t.strong_eq(etag)) {
                return Some(StatusCode::PRECONDITION_FAILED);
            }
        }
    }
    let if_none_match = req
        .headers()
        .contains_key(header::IF_NONE_MATCH)
        .then(|| IfNoneMatch::parse(req));
    match if_none_match.and_then(Result::ok) {
        Some(IfNoneMatch::Any) => return Some(StatusCode::NOT_MODIFIED),
        Some(IfNoneMatch::Items(items)) if items.iter().any(|t| t.weak_eq(etag)) => {
            return Some(StatusCode::NOT_MODIFIED)
        }
        _ => {}
    }
    if req.headers().contains_key(header::IF_RANGE) {
        let still_valid =
            matches!(IfRange::parse(req), Ok(IfRange::EntityTag(t)) if t.strong_eq(etag));
        if !still_valid {
            // The client's copy is stale (or validated by date, which we do not send): full body.
            req.headers_mut().remove(header::RANGE);
        }
    }
    for h in [
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_RANGE,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
    ] {
        req.headers_mut().remove(h);
    }
    None
}

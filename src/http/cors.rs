//! CORS, for the origins in SHOEBOX_CORS_ORIGINS (or any, with `*`):
//! - reads: files (`/m`, `/f`, old import URLs), collection pages and the public listing may be
//!   fetched, with no `Authorization`, so another site's script reads public media and nothing
//!   more;
//! - resumable uploads (`/api/uploads`): an app on its own site may upload straight to Shoebox
//!   with a Bearer token, so preflights admit `Authorization` and the tus headers, and answers
//!   expose the tus headers.
//!
//! Credentials (cookies) are never allowed across origins (no `Access-Control-Allow-Credentials`,
//! and the tus routes refuse a session from another origin), and no other write route gets CORS
//! headers.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use super::AppState;

const EXPOSE: &str =
    "Content-Length, Content-Range, Content-Type, Accept-Ranges, ETag, X-Request-Id";

/// What a tus client sends, and what it must read back.
const TUS_METHODS: &str = "POST, HEAD, PATCH, DELETE, GET, OPTIONS";
const TUS_ALLOW: &str = "Authorization, Content-Type, Tus-Resumable, Upload-Length, \
     Upload-Defer-Length, Upload-Metadata, Upload-Offset, Upload-Checksum, Upload-Concat, \
     X-HTTP-Method-Override, X-Requested-With, X-Request-Id";
const TUS_EXPOSE: &str = "Location, Upload-Offset, Upload-Length, Upload-Metadata, \
     Upload-Expires, Upload-Defer-Length, Upload-Concat, Tus-Version, Tus-Resumable, \
     Tus-Max-Size, Tus-Extension, Tus-Checksum-Algorithm, Shoebox-Media-Id, X-Request-Id";

/// Paths whose GET/HEAD answers may be shared across origins.
fn is_read_path(path: &str) -> bool {
    let api = path.starts_with("/api/");
    let listing =
        path == "/api/media" || (path.starts_with("/api/media/") && path.matches('/').count() == 3);
    (!api && path != "/" && !path.starts_with("/assets/") && path != "/metrics") || listing
}

/// The value for `Access-Control-Allow-Origin`, when this origin may read.
fn allowed(origin: &str, state: &AppState) -> Option<String> {
    let list = &state.config.cors_origins;
    if list.iter().any(|o| o == "*") {
        Some("*".into())
    } else {
        list.iter()
            .find(|o| o.eq_ignore_ascii_case(origin))
            .map(|_| origin.to_owned())
    }
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let tus = super::tus::is_tus_path(req.path());
    let grant = match (&state, &origin) {
        (Some(s), Some(o))
            if !s.config.cors_origins.is_empty() && (tus || is_read_path(req.path())) =>
        {
            allowed(o, s)
        }
        _ => None,
    };
    // A preflight for a read: answer it here. Only GET and HEAD, and only the headers a media
    // player or image loader sends; no Authorization, so no private reads.
    if req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        if let Some(grant) = grant.clone() {
            let wanted = req
                .headers()
                .get(header::ACCESS_CONTROL_REQUEST_METHOD)
                .and_then(|v| v.to_str().ok());
            if tus
                && matches!(
                    wanted,
                    Some("POST" | "HEAD" | "PATCH" | "DELETE" | "GET" | "OPTIONS")
                )
            {
                let res = HttpResponse::NoContent()
                    .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, grant))
                    .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, TUS_METHODS))
                    .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, TUS_ALLOW))
                    .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
                    .insert_header((header::VARY, "Origin"))
                    .finish();
                return Ok(req.into_response(res).map_into_right_body());
            }
            if !tus && matches!(wanted, Some("GET") | Some("HEAD")) {
                let res = HttpResponse::NoContent()
                    .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, grant))
                    .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD"))
                    .insert_header((
                        header::ACCESS_CONTROL_ALLOW_HEADERS,
                        "Range, If-None-Match, If-Range, If-Modified-Since",
                    ))
                    .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
                    .insert_header((header::VARY, "Origin"))
                    .finish();
                return Ok(req.into_response(res).map_into_right_body());
            }
        }
    }
    let is_read = matches!(*req.method(), Method::GET | Method::HEAD);
    let mut res = next.call(req).await?;
    if is_read || tus {
        let h = res.headers_mut();
        if let Some(grant) = grant.and_then(|g| HeaderValue::from_str(&g).ok()) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, grant);
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(if tus { TUS_EXPOSE } else { EXPOSE }),
            );
        }
        if state.is_some_and(|s| !s.config.cors_origins.is_empty()) {
            // Caches must not hand one origin's answer to another.
            h.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    Ok(res.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_are_shared() {
        for p in [
            "/m/abc",
            "/f/0123",
            "/c/stories",
            "/uploads/a.jpg",
            "/api/media",
            "/api/media/01hx",
        ] {
            assert!(is_read_path(p), "{p}");
        }
        for p in [
            "/",
            "/api/session",
            "/api/tokens",
            "/api/status",
            "/api/backup",
            "/api/media/01hx/url",
            "/metrics",
            "/assets/v/app.js",
        ] {
            assert!(!is_read_path(p), "{p}");
        }
    }
}

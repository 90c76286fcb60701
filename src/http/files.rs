//! Byte serving: `/m/{id}` (a record's file, with its filename) and `/f/{hash}` (a blob by its
//! content address). actix-files' `NamedFile` does the streaming and `Range`; conditional
//! requests are answered here against the strong ETag made from the content hash. The image
//! variants a query asks for are served the same way (see `variants`), and small files come
//! from memory (see `file_cache`).

use actix_files::{HttpRange, NamedFile};
use actix_web::body::SizedStream;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, ContentDisposition, DispositionType, EntityTag, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use bytes::Bytes;

use super::auth;
use super::blob_body::BlobBody;
use super::disposition::{disposition, renamed, wants_download};
use super::error::ApiError;
use super::file_cache::FileKey;
use super::media::parse_id;
use super::preconditions::preconditions;
use super::responses::Binary;
use super::responses::{BadRequest, Forbidden, NotFound, ServerError, Unauthorized, Unprocessable};
use super::streamed;
use super::variants;
use super::AppState;
use crate::credentials::signing::{self, Verdict};
use crate::store::sniff::{self, Presentation};
use crate::store::{ContentHash, MediaId, MediaRecord};

/// Content-addressed bytes never change.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A record's URL keeps its bytes, but the record can be deleted or made private.
const PUBLIC_SHORT: &str = "public, max-age=300";
const PRIVATE: &str = "private, no-cache";
/// SVG is shown inline, but runs no script, loads nothing and has no plugins.
const SVG_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox";
/// Everything not known to be inert, and text the browser shows as a page of its own: a
/// unique origin with nothing allowed, should a browser ever render it.
const SANDBOX: &str = "sandbox; default-src 'none'";

/// The `Content-Security-Policy` a file of this type is served with, on every port: raster
/// images, audio, video and PDF need none (and a sandbox breaks PDF viewers).
pub(super) fn security_policy(content_type: &str) -> Option<&'static str> {
    match sniff::presentation(content_type) {
        Presentation::InlineNoScript => Some(SVG_POLICY),
        Presentation::Attachment => Some(SANDBOX),
        Presentation::Inline if content_type.starts_with("text/") => Some(SANDBOX),
        Presentation::Inline if content_type == "application/json" => Some(SANDBOX),
        Presentation::Inline => None,
    }
}

/// The `Content-Type` sent for a stored type: text that has no charset is declared UTF-8.
fn served_type(content_type: &str) -> HeaderValue {
    const UTF8_TEXT: [&str; 6] = [
        "text/plain",
        "text/html",
        "text/css",
        "text/csv",
        "text/tab-separated-values",
        "application/javascript",
    ];
    let value = if UTF8_TEXT.contains(&content_type) {
        format!("{content_type}; charset=utf-8")
    } else {
        content_type.to_owned()
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

fn state_of(req: &ServiceRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))
}

fn error(req: ServiceRequest, e: ApiError) -> ServiceResponse {
    let (req, _) = req.into_parts();
    // `from_err` keeps the error on the response, for the access log.
    ServiceResponse::from_err(e, req)
}

struct FileSpec<'a> {
    hash: ContentHash,
    size: u64,
    content_type: &'a str,
    disposition: ContentDisposition,
    cache: &'static str,
    /// A variant of the blob, served in its place.
    variant: Option<Derived>,
}

/// A file derived from a blob (an image variant): where it is, and its own strong ETag.
struct Derived {
    key: FileKey,
    path: std::path::PathBuf,
    etag: String,
    /// Its format was chosen from `Accept`, so the answer varies with it.
    vary: bool,
}

/// Serves `spec`, or what the query asks for of it (see [`variants`]): a sized variant of an
/// image, or a video's poster frame (`poster=1`), sized or not; under `filename` with the
/// extension of what is sent.
async fn serve_asked(
    req: ServiceRequest,
    state: &AppState,
    mut spec: FileSpec<'_>,
    record: &MediaRecord,
    filename: Option<&str>,
) -> ServiceResponse {
    // Most requests ask for the file itself: nothing to parse.
    if req.query_string().is_empty() {
        return serve(req, state, spec).await;
    }
    let query = variants::query_pairs(req.query_string());
    let base = match variants::poster_asked(&query, record) {
        Ok(true) => variants::Base::Poster,
        Ok(false) => variants::Base::Original,
        Err(e) => return error(req, e),
    };
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let source_type = match base {
        variants::Base::Poster => "image/jpeg",
        variants::Base::Original => spec.content_type,
    };
    let wanted = variants::wanted(&query, accept, source_type, &state.config.variant_widths);
    let kind = if wants_download(&req) {
        DispositionType::Attachment
    } else {
        DispositionType::Inline
    };
    let wanted = match (wanted, base) {
        (Ok(Some(w)), _) => w,
        (Ok(None), variants::Base::Original) => return serve(req, state, spec).await,
        (Ok(None), variants::Base::Poster) => {
            // The poster frame itself.
            let path = match state.variants.poster(&state.store, spec.hash).await {
                Ok(p) => p,
                Err(e) => return error(req, e),
            };
            let name = filename.map(|f| renamed(f, shoebox_pictures::Format::Jpeg));
            spec.disposition = disposition(kind, name.as_deref());
            spec.content_type = "image/jpeg";
            spec.variant = Some(Derived {
                key: (spec.hash, 2),
                path,
                etag: variants::etag(&spec.hash, variants::POSTER),
                vary: false,
            });
            return serve(req, state, spec).await;
        }
        (Err(e), _) => return error(req, e),
    };
    let key = (spec.hash, variants::key(&wanted.spec, base));
    // Kept in memory: made before, so its path is all that is needed.
    let made = if state.files.holds(&key) {
        state
            .variants
            .path(&state.store, spec.hash, wanted.spec, base)
    } else {
        state
            .variants
            .file(&state.store, spec.hash, wanted.spec, base)
            .await
    };
    let path = match made {
        Ok(p) => p,
        Err(e) => return error(req, e),
    };
    let name = filename.map(|f| renamed(f, wanted.spec.format));
    spec.disposition = disposition(kind, name.as_deref());
    spec.content_type = wanted.spec.format.content_type();
    spec.variant = Some(Derived {
        key,
        path,
        etag: variants::variant_etag(&spec.hash, &wanted.spec, base),
        vary: wanted.negotiated,
    });
    serve(req, state, spec).await
}

async fn serve(mut req: ServiceRequest, state: &AppState, s: FileSpec<'_>) -> ServiceResponse {
    if s.variant.is_none() && state.store.is_damaged(&s.hash) {
        return error(req, ApiError::BlobDamaged(s.hash.to_hex()));
    }
    let etag = EntityTag::new_strong(match &s.variant {
        Some(v) => v.etag.clone(),
        None => s.hash.to_hex(),
    });
    let vary = s.variant.as_ref().is_some_and(|v| v.vary);
    let policy = security_policy(s.content_type);
    let set_common = |res: &mut HttpResponse| {
        let h = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&etag.to_string()) {
            h.insert(header::ETAG, v);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(s.cache));
        if vary {
            h.insert(header::VARY, HeaderValue::from_static("Accept"));
        }
        if let Some(policy) = policy {
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(policy),
            );
        }
    };
    if let Some(status) = preconditions(&mut req, &etag) {
        let mut res = HttpResponse::build(status).finish();
        set_common(&mut res);
        let (req, _) = req.into_parts();
        return ServiceResponse::new(req, res);
    }
    // With SHOEBOX_BLOB_REDIRECT, a public blob's read goes to the bucket (variants are
    // files here, and are served here).
    let redirected = if state.config.blob_redirect && s.variant.is_none() && s.cache != PRIVATE {
        streamed::redirect(
            state.store.blobs(),
            &s.hash,
            &served_type(s.content_type),
            &s.disposition,
        )
        .await
    } else {
        None
    };
    if let Some(mut res) = redirected {
        set_common(&mut res);
        let (req, _) = req.into_parts();
        return ServiceResponse::new(req, res);
    }
    if !req.headers().contains_key(header::RANGE) {
        let cached = match &s.variant {
            None => state.files.bytes(&state.store, &s.hash, s.size).await,
            Some(v) => state.files.variant(v.key, &v.path).await,
        };
        if let Some(bytes) = cached {
            let mut res = HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, served_type(s.content_type)))
                .insert_header((header::CONTENT_DISPOSITION, s.disposition.to_string()))
                .insert_header((header::ACCEPT_RANGES, "bytes"))
                .body(bytes);
            set_common(&mut res);
            let (req, _) = req.into_parts();
            return ServiceResponse::new(req, res);
        }
    }
    let Some(path) = s
        .variant
        .as_ref()
        .map(|v| v.path.clone())
        .or_else(|| state.store.blobs().local_path(&s.hash))
    else {
        let answer = streamed::answer(
            &req,
            state.store.blobs(),
            &s.hash,
            s.size,
            &etag,
            s.disposition.clone(),
        );
        return match answer {
            Ok(mut res) => {
                set_common(&mut res);
                res.headers_mut()
                    .insert(header::CONTENT_TYPE, served_type(s.content_type));
                let (req, _) = req.into_parts();
                ServiceResponse::new(req, res)
            }
            Err(e) => error(req, e),
        };
    };
    let file = match NamedFile::open_async(&path).await {
        Ok(f) => f,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
            return error(req, ApiError::Busy);
        }
        Err(e) => {
            // A record whose blob is gone is damage that `verify` reports; say so loudly.
            tracing::error!(hash = %s.hash, error = %e, "blob missing or unreadable");
            return error(
                req,
                ApiError::Internal(format!("blob {} unreadable: {e}", s.hash)),
            );
        }
    };
    let mime = s
        .content_type
        .parse()
        .unwrap_or(mime::APPLICATION_OCTET_STREAM);
    let file = file
        .use_etag(false)
        .use_last_modified(false)
        .set_content_type(mime)
        .set_content_disposition(s.disposition);
    if file.metadata().len() == 0 {
        // actix-files turns a suffix range (`bytes=-N`) on an empty file into a 0-byte range
        // and underflows computing its last byte: a panic (and a dropped connection) in debug
        // builds, a bogus 206 in release. No byte of an empty file can be sent anyway, and a
        // server may ignore Range (RFC 9110 §14.2): answer 200 with the empty body. Found by
        // schemathesis.
        req.headers_mut().remove(header::RANGE);
    }
    // actix-files decides the status and the headers; the bytes come from `BlobBody`, over
    // the range it chose (the first one, by the same parser).
    let size = file.metadata().len();
    let reader = file.file().try_clone();
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| HttpRange::parse(v, size).ok())
        .and_then(|r| r.first().copied());
    let head = req.method() == actix_web::http::Method::HEAD;
    let (req, _) = req.into_parts();
    let res = file.into_response(&req);
    let span = match res.status() {
        StatusCode::OK => Some((0, size)),
        StatusCode::PARTIAL_CONTENT => range.map(|r| (r.start, r.length)),
        _ => None,
    };
    let mut res = match (span, reader) {
        // HEAD sends the length and no byte: nothing to read (actix would read and drop it).
        (Some((_, len)), _) if head => res
            .map_body(|_, _| {
                SizedStream::new(
                    len,
                    futures_util::stream::empty::<Result<Bytes, std::io::Error>>(),
                )
            })
            .map_into_boxed_body(),
        (Some((start, len)), Ok(reader)) => res
            .map_body(|_, _| SizedStream::new(len, BlobBody::new(reader, start, len)))
            .map_into_boxed_body(),
        _ => res,
    };
    set_common(&mut res);
    res.headers_mut()
        .insert(header::CONTENT_TYPE, served_type(s.content_type));
    ServiceResponse::new(req, res)
}

/// Whether a file goes out as a download: on request, and for every type not known to be
/// inert (see [`Presentation`]).
fn as_attachment(req: &ServiceRequest, content_type: &str) -> bool {
    wants_download(req) || sniff::presentation(content_type) == Presentation::Attachment
}

/// How a record's file is served: inline under its own name when its type is known to be
/// inert (or SVG), a download otherwise or with `?download=1`; cached briefly when public.
fn record_spec<'a>(req: &ServiceRequest, record: &'a MediaRecord) -> FileSpec<'a> {
    let attachment = as_attachment(req, &record.content_type);
    let kind = if attachment {
        DispositionType::Attachment
    } else {
        DispositionType::Inline
    };
    FileSpec {
        hash: record.hash,
        size: record.size,
        content_type: &record.content_type,
        disposition: disposition(kind, Some(&record.filename)),
        cache: if record.is_public() {
            PUBLIC_SHORT
        } else {
            PRIVATE
        },
        variant: None,
    }
}

/// Whether a signed URL in the query grants this request; `Err` for one that is present but
/// expired or not genuine, so its holder learns why.
fn signature_grants(req: &ServiceRequest, state: &AppState) -> Result<bool, ApiError> {
    match signing::parse(req.query_string()) {
        None => Ok(false),
        Some(Err(())) => Err(ApiError::Forbidden {
            code: "invalid_signature",
            message: "the signed URL is malformed",
        }),
        // HEAD is GET without a body, so a GET signature covers it.
        Some(Ok(sig)) => match state
            .url_keys
            .verify("GET", req.path(), &sig, auth::unix_now())
        {
            Verdict::Valid => Ok(true),
            Verdict::Expired => Err(ApiError::Forbidden {
                code: "expired_signature",
                message: "the signed URL has expired",
            }),
            Verdict::Invalid => Err(ApiError::Forbidden {
                code: "invalid_signature",
                message: "the signed URL is not valid for this path",
            }),
        },
    }
}

/// A record's file under its original name.
///
/// `?download=1` makes it an attachment. Served with its sniffed `Content-Type`, a strong `ETag` (its
/// sha256), `Range` and conditional requests. Only types known to be inert (raster images,
/// audio, video, PDF, plain text, JSON) are shown inline; SVG is inline under a
/// `Content-Security-Policy` that runs no script; every other type, known or not, is an
/// attachment under a sandboxing `Content-Security-Policy`. Private media need a
/// token that may read them, or a valid signed URL (`exp`, `kid`, `sig` from
/// `GET /api/media/{id}/url`), and are `404` without either.
#[utoipa::path(
    method(get, head),
    path = "/m/{id}",
    operation_id = "media_file",
    tag = "files",
    params(
        ("id" = MediaId, Path, description = "The media id"),
        ("exp" = Option<u64>, Query, description = "Signed URLs: expiry, unix seconds"),
        ("kid" = Option<String>, Query, description = "Signed URLs: the signing key's id"),
        ("sig" = Option<String>, Query, description = "Signed URLs: HMAC-SHA256, hex"),
        ("download" = Option<String>, Query,
         description = "Any value but `0` or `false` serves the file as an attachment"),
        ("w" = Option<u32>, Query, description = "Images: a variant this wide, from SHOEBOX_VARIANT_WIDTHS (never larger than the original)"),
        ("h" = Option<u32>, Query, description = "Images: a variant this high, from the same list"),
        ("fit" = Option<String>, Query, description = "With `w` and `h`: `contain` (default) or `cover` (cropped to the box)"),
        ("format" = Option<String>, Query, description = "With `w` or `h`: `jpeg`, `png` or `webp`; without it, WebP when `Accept` takes it, else the image's own format"),
        ("poster" = Option<String>, Query, description = "Videos: `1` for the poster frame (a JPEG), sized with `w`/`h` like an image; `404` until it is made"),
        ("Range" = Option<String>, Header, nullable = false, description = "e.g. `bytes=0-1023`"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "`304` when the ETag matches"),
        ("If-Range" = Option<String>, Header, nullable = false, description = "Honour `Range` only for this ETag"),
    ),
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The file", content_type = "*/*",
         body = inline(Binary), headers(
            ("ETag" = String, description = "The content hash, quoted: a strong validator"),
            ("Content-Disposition" = String, description = "`inline` or `attachment`, with the filename"),
            ("Cache-Control" = String, description = "`public, max-age=300`, or `private, no-cache` for private media"),
            ("Accept-Ranges" = String, description = "`bytes`"),
         )),
        (status = 206, description = "The requested range", content_type = "*/*",
         body = inline(Binary), headers(("Content-Range" = String))),
        (status = 304, description = "Not modified: the client's copy is current"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 412, description = "`If-Match` names another version"),
        (status = 416, description = "The range lies outside the file",
         headers(("Content-Range" = String, description = "`bytes */<size>`"))),
        (status = 422, response = Unprocessable),
        (status = 500, response = ServerError),
    )
)]
pub async fn media_file(req: ServiceRequest) -> Result<ServiceResponse, actix_web::Error> {
    let state = match state_of(&req) {
        Ok(s) => s,
        Err(e) => return Ok(error(req, e)),
    };
    let id = req.match_info().get("id").unwrap_or_default().to_owned();
    let lookup = parse_id(&id).and_then(|id| {
        let caller = auth::caller(req.request(), &state)?;
        let record = state
            .store
            .get_shared(id)?
            .ok_or(ApiError::NotFound("media"))?;
        if caller.can_read(&record) || signature_grants(&req, &state)? {
            Ok(record)
        } else {
            Err(ApiError::NotFound("media"))
        }
    });
    let record = match lookup {
        Ok(r) => r,
        Err(e) => return Ok(error(req, e)),
    };
    let spec = record_spec(&req, &record);
    Ok(serve_asked(req, &state, spec, &record, Some(&record.filename)).await)
}

/// Anything no route matched: an old URL of imported media (`shoebox import --url-prefix`), or
/// a JSON 404.
pub async fn legacy_or_not_found(req: ServiceRequest) -> Result<ServiceResponse, actix_web::Error> {
    let is_read = matches!(
        *req.method(),
        actix_web::http::Method::GET | actix_web::http::Method::HEAD
    );
    let path = percent_encoding::percent_decode_str(req.path())
        .decode_utf8_lossy()
        .into_owned();
    let found = match (is_read, state_of(&req)) {
        (true, Ok(state)) => match state.store.by_legacy_path(&path) {
            Ok(Some(r)) if r.is_public() => Some((state, r)),
            _ => None,
        },
        _ => None,
    };
    let Some((state, record)) = found else {
        return Ok(error(req, ApiError::NotFound("route")));
    };
    let spec = record_spec(&req, &record);
    Ok(serve_asked(req, &state, spec, &record, Some(&record.filename)).await)
}

/// The bytes by content address.
///
/// Public when any public record uses the blob. The bytes by their sha256, cached forever (`immutable`) when public. A blob that only
/// private media use is `404` without a token.
#[utoipa::path(
    method(get, head),
    path = "/f/{hash}",
    operation_id = "blob_file",
    tag = "files",
    params(
        ("hash" = ContentHash, Path, description = "The sha256 of the bytes, lowercase hex"),
        ("download" = Option<String>, Query,
         description = "Any value but `0` or `false` serves the bytes as an attachment"),
        ("w" = Option<u32>, Query, description = "Images: a variant this wide, from SHOEBOX_VARIANT_WIDTHS (never larger than the original)"),
        ("h" = Option<u32>, Query, description = "Images: a variant this high, from the same list"),
        ("fit" = Option<String>, Query, description = "With `w` and `h`: `contain` (default) or `cover` (cropped to the box)"),
        ("format" = Option<String>, Query, description = "With `w` or `h`: `jpeg`, `png` or `webp`; without it, WebP when `Accept` takes it, else the image's own format"),
        ("poster" = Option<String>, Query, description = "Videos: `1` for the poster frame (a JPEG), sized with `w`/`h` like an image; `404` until it is made"),
        ("Range" = Option<String>, Header, nullable = false, description = "e.g. `bytes=0-1023`"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "`304` when the ETag matches"),
        ("If-Range" = Option<String>, Header, nullable = false, description = "Honour `Range` only for this ETag"),
    ),
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The bytes", content_type = "*/*",
         body = inline(Binary), headers(
            ("ETag" = String, description = "The content hash, quoted"),
            ("Cache-Control" = String, description = "`public, max-age=31536000, immutable`, or `private, no-cache`"),
            ("Accept-Ranges" = String, description = "`bytes`"),
         )),
        (status = 206, description = "The requested range", content_type = "*/*",
         body = inline(Binary), headers(("Content-Range" = String))),
        (status = 304, description = "Not modified: the client's copy is current"),
        (status = 401, response = Unauthorized),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 412, description = "`If-Match` names another version"),
        (status = 416, description = "The range lies outside the file",
         headers(("Content-Range" = String, description = "`bytes */<size>`"))),
        (status = 422, response = Unprocessable),
        (status = 500, response = ServerError),
    )
)]
pub async fn blob_file(req: ServiceRequest) -> Result<ServiceResponse, actix_web::Error> {
    let state = match state_of(&req) {
        Ok(s) => s,
        Err(e) => return Ok(error(req, e)),
    };
    let raw = req.match_info().get("hash").unwrap_or_default().to_owned();
    let Ok(hash) = raw.parse::<ContentHash>() else {
        return Ok(error(req, ApiError::NotFound("blob")));
    };
    let caller = match auth::caller(req.request(), &state) {
        Ok(c) => c,
        Err(e) => return Ok(error(req, e)),
    };
    let representative = match state.store.representative(&hash) {
        Ok(r) => r,
        Err(e) => return Ok(error(req, e.into())),
    };
    let record = match representative {
        Some(r) if r.is_public() || caller.can_see_private() => r,
        // A blob used only by private records does not exist for anonymous callers.
        _ => return Ok(error(req, ApiError::NotFound("blob"))),
    };
    let attachment = as_attachment(&req, &record.content_type);
    let kind = if attachment {
        DispositionType::Attachment
    } else {
        DispositionType::Inline
    };
    let cache = if record.is_public() {
        IMMUTABLE
    } else {
        PRIVATE
    };
    let spec = FileSpec {
        hash,
        size: record.size,
        content_type: &record.content_type,
        disposition: disposition(
            kind,
            attachment
                .then(|| format!("{}.{}", hash, sniff::extension(&record.content_type)))
                .as_deref(),
        ),
        cache,
        variant: None,
    };
    let name = format!("{hash}.{}", sniff::extension(&record.content_type));
    Ok(serve_asked(req, &state, spec, &record, Some(&name)).await)
}

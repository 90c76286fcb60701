//! The tus requests, one handler each.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use time::OffsetDateTime;

use super::super::auth::{self, Caller};
use super::super::error::ApiError;
use super::super::media::MediaView;
use super::super::receive::drain;
use super::super::responses::{
    BadRequest, DiskFailing, Forbidden, InsufficientStorage, NotFound, PayloadTooLarge,
    ServerError, Unauthorized,
};
use super::super::upload::MediaItems;
use super::super::AppState;
use super::body::{append, Appended};
use super::headers::{check_version, checksum, describe, is_chunk, number, progress, text};
use super::{complete, expires_at, metadata, owner_of, CHECKSUMS, CHUNK_TYPE, EXTENSIONS, VERSION};
use crate::store::partial::{ChunkCheck, PartialUpload};
use crate::store::MediaId;

/// A caller who may upload, by token or by a session on Shoebox's own pages.
fn uploader(req: &HttpRequest, state: &AppState) -> Result<(Caller, String), ApiError> {
    let (caller, credential) = auth::authenticate(req, state)?;
    if caller == Caller::Anonymous {
        return Err(ApiError::Unauthorized(
            "this needs a token: Authorization: Bearer <token>, or sign in on the web page",
        ));
    }
    auth::refuse_foreign_session(req, state, &credential)?;
    auth::require(
        &caller,
        caller.can_upload(),
        "this token may not upload (it has the read scope)",
    )?;
    let owner = owner_of(&caller).ok_or(ApiError::Unauthorized("no owner"))?;
    Ok((caller, owner))
}

/// The upload under `id`, if it is this caller's. Another caller's upload is not found, so
/// that its id cannot be confirmed.
async fn find(
    state: &web::Data<AppState>,
    id: &str,
    owner: &str,
) -> Result<PartialUpload, ApiError> {
    let s = state.clone();
    let key = id.to_owned();
    let upload = web::block(move || s.store.partials().get(&key)).await??;
    match upload {
        Some(u) if u.owner == owner => {
            let expired = OffsetDateTime::now_utc() >= expires_at(&u, state);
            if expired && u.media_id.is_none() {
                return Err(ApiError::Gone(humanize(state.config.upload_expiry)));
            }
            Ok(u)
        }
        _ => Err(ApiError::NotFound("upload")),
    }
}

/// Takes hold of the caller's upload (see [`Tus::hold`](super::Tus::hold)) and reads it as it
/// stands once the request that held it let go. Another caller's upload is refused before
/// anything waits, so that no one can interrupt a request on an upload not theirs.
async fn hold(
    state: &web::Data<AppState>,
    id: &str,
    owner: &str,
) -> Result<(super::Held, PartialUpload), ApiError> {
    find(state, id, owner).await?;
    let held = state.tus.hold(id).await?;
    Ok((held, find(state, id, owner).await?))
}

fn humanize(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Makes media of a whole upload that has none yet.
async fn settle(
    state: &web::Data<AppState>,
    upload: PartialUpload,
) -> Result<PartialUpload, ApiError> {
    if upload.is_whole() && upload.media_id.is_none() {
        return complete(state, upload).await.map(|(u, _)| u);
    }
    Ok(upload)
}

/// What this server supports.
///
/// tus's discovery request: the protocol version, the extensions, the size limit and the
/// checksum algorithms. Needs no credentials.
#[utoipa::path(
    options,
    path = "/api/uploads",
    operation_id = "tus_options",
    tag = "uploads",
    responses(
        (status = 204, description = "What this server supports",
         headers(
            ("Tus-Version" = String, description = "`1.0.0`"),
            ("Tus-Extension" = String, description = "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration"),
            ("Tus-Max-Size" = u64, description = "The upload size limit in bytes"),
            ("Tus-Checksum-Algorithm" = String, description = "`sha1,sha256`"),
         )),
    )
)]
pub async fn options(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Tus-Version", VERSION))
        .insert_header(("Tus-Extension", EXTENSIONS))
        .insert_header(("Tus-Max-Size", state.config.max_upload_bytes.to_string()))
        .insert_header(("Tus-Checksum-Algorithm", CHECKSUMS))
        .finish()
}

/// Start a resumable upload (tus).
///
/// `Upload-Length` gives the size (or `Upload-Defer-Length: 1` leaves it for a later
/// `PATCH`), and `Upload-Metadata` the fields, base64-encoded: `filename`, `filetype`,
/// `title`, `description`, `alt`, `tags`, `collection`, `visibility`, `custom` (a JSON
/// object), `custom.KEY` and `keep_metadata` (admin); `name` and `type` stand in for
/// `filename` and `filetype`, and other keys are ignored. A body of type
/// `application/offset+octet-stream` is the first chunk.
#[utoipa::path(
    post,
    path = "/api/uploads",
    operation_id = "tus_create",
    tag = "uploads",
    params(
        ("Tus-Resumable" = super::headers::TusResumable, Header),
        ("Upload-Length" = Option<u64>, Header, description = "The whole upload's size in bytes"),
        ("Upload-Defer-Length" = Option<String>, Header, description = "`1` when the size is not known yet"),
        ("Upload-Metadata" = Option<String>, Header, description = "Comma-separated `key base64(value)` pairs"),
        ("Upload-Checksum" = Option<String>, Header, description = "For a first chunk in the body: `sha1` or `sha256`, a space, and its base64 digest"),
    ),
    request_body(content = inline(super::super::responses::Binary), content_type = "application/offset+octet-stream",
                 description = "Optionally, the first chunk"),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "Created",
         headers(
            ("Location" = String, description = "`/api/uploads/{upload_id}`"),
            ("Upload-Expires" = String, description = "When an unfinished upload is removed"),
            ("Upload-Offset" = u64, description = "When a first chunk was sent"),
         )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 412, description = "Not tus 1.0.0"),
        (status = 413, response = PayloadTooLarge),
        (status = 429, description = "As many uploads are in progress for this caller as one may have (1000)"),
        (status = 500, response = ServerError),
        (status = 503, response = DiskFailing),
        (status = 507, response = InsufficientStorage),
    )
)]
pub async fn create(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (caller, owner) = uploader(&req, &state)?;
    check_version(&req)?;
    if let Some(why) = state.store.failing() {
        return Err(ApiError::DiskFailing(why));
    }
    let limit = state.config.max_upload_bytes;
    let length = number(&req, "upload-length")?;
    let deferred = text(req.headers(), "upload-defer-length");
    match (length, deferred) {
        (Some(_), None) | (None, Some("1")) => {}
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "send Upload-Length or Upload-Defer-Length, not both",
            ))
        }
        (None, _) => {
            return Err(ApiError::bad_request(
                "send Upload-Length (the size in bytes) or Upload-Defer-Length: 1",
            ))
        }
    }
    if length.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let meta = match req.headers().get("upload-metadata") {
        None => String::new(),
        Some(v) => v
            .to_str()
            .map_err(|_| ApiError::invalid("Upload-Metadata", "ASCII"))?
            .to_owned(),
    };
    metadata::parse(&meta, caller.is_admin(), state.config.keep_metadata)?;
    let with_body = is_chunk(&req) && number(&req, "content-length")? != Some(0);
    let check = checksum(&req)?;
    let store = state.store.clone();
    let announced = length.unwrap_or(0);
    let upload = web::block(move || {
        store.check_space(announced)?;
        // Each upload holds two files and a place in every sweep: one caller cannot start
        // them without end.
        let max = super::MAX_IN_PROGRESS;
        store
            .partials()
            .create(&owner, length, &meta, OffsetDateTime::now_utc(), max)?
            .ok_or(ApiError::TooManyUploads(max))
    })
    .await??;
    let location = state.link(&format!("/api/uploads/{}", upload.id));
    let mut res = HttpResponse::Created();
    res.insert_header((header::LOCATION, location));
    let upload = if with_body {
        let held = state.tus.hold(&upload.id).await?;
        match receive(&state, upload.clone(), check, &mut payload, &held).await {
            Ok((upload, _)) => {
                res.insert_header(("Upload-Offset", upload.offset.to_string()));
                upload
            }
            // Refusals end the upload the request started.
            Err(e @ (ApiError::TooLarge { .. } | ApiError::UnsupportedMediaType(_))) => {
                let s = state.clone();
                let id = upload.id.clone();
                web::block(move || s.store.partials().remove(&id)).await??;
                drain(&mut payload).await;
                return Err(e);
            }
            // The upload exists: its client resumes it from the offset `HEAD` reports, which
            // this answer gives too.
            Err(e) => {
                tracing::info!(error = %e, "the first chunk of a new upload did not arrive whole");
                let s = state.clone();
                let id = upload.id.clone();
                let now = web::block(move || s.store.partials().get(&id))
                    .await??
                    .unwrap_or(upload);
                res.insert_header(("Upload-Offset", now.offset.to_string()));
                now
            }
        }
    } else {
        upload
    };
    progress(&mut res, &upload, &state);
    Ok(res.finish())
}

/// Appends a body to an upload the caller holds, and makes media of it once whole; returns
/// the upload as it now stands, and the error that cut the body short, if one did.
async fn receive(
    state: &web::Data<AppState>,
    upload: PartialUpload,
    check: Option<ChunkCheck>,
    payload: &mut web::Payload,
    held: &super::Held,
) -> Result<(PartialUpload, Option<ApiError>), ApiError> {
    let limit = upload
        .length
        .unwrap_or(state.config.max_upload_bytes)
        .saturating_sub(upload.offset);
    let before = upload.offset;
    let appended = append(state, upload, check, payload, limit, held.stop.clone()).await;
    let (upload, cut) = match appended {
        Ok(Appended::Whole(u)) => (u, None),
        Ok(Appended::Cut(u, e)) => (u, Some(e)),
        Err(ApiError::Store(e)) => {
            state.store.note_error(&e);
            return Err(e.into());
        }
        Err(e) => return Err(e),
    };
    if cut.is_none() {
        let (s, u) = (state.clone(), upload.clone());
        web::block(move || super::check_type(&s, &u, before)).await??;
        return Ok((settle(state, upload).await?, None));
    }
    Ok((upload, cut))
}

/// Where an upload stands (tus).
///
/// `Upload-Offset` is the number of bytes received and durable: resume from there.
#[utoipa::path(
    head,
    path = "/api/uploads/{upload_id}",
    operation_id = "tus_head",
    tag = "uploads",
    params(
        ("upload_id" = String, Path, description = "From the `Location` of the `POST`", pattern = "^[0-9a-f]{32}$"),
        ("Tus-Resumable" = super::headers::TusResumable, Header),
    ),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The upload's state",
         headers(
            ("Upload-Offset" = u64, description = "Bytes received and durable"),
            ("Upload-Length" = u64, description = "When known"),
            ("Upload-Metadata" = String, description = "As sent at creation"),
            ("Upload-Expires" = String, description = "Until it is finished"),
            ("Shoebox-Media-Id" = String, description = "Once finished"),
         )),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 410, description = "Expired"),
        (status = 412, description = "Not tus 1.0.0"),
    )
)]
pub async fn head(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, owner) = uploader(&req, &state)?;
    check_version(&req)?;
    let id = path.into_inner();
    // A request still writing to it (its client gone) lets go, and its bytes count.
    let (_held, upload) = hold(&state, &id, &owner).await?;
    let upload = settle(&state, upload).await?;
    let mut res = HttpResponse::Ok();
    describe(&mut res, &upload, &state);
    if !upload.metadata.is_empty() {
        res.insert_header(("Upload-Metadata", upload.metadata.clone()));
    }
    res.insert_header((header::CACHE_CONTROL, "no-store"));
    Ok(res.finish())
}

/// Send a chunk (tus).
///
/// The body (`application/offset+octet-stream`) is appended at `Upload-Offset`, which must be
/// the offset `HEAD` reports. The `204` comes once the bytes are durable; the one that
/// completes the upload comes once the media is stored, with `Shoebox-Media-Id`. A chunk cut
/// off part way keeps what arrived, unless it carried `Upload-Checksum`.
#[utoipa::path(
    patch,
    path = "/api/uploads/{upload_id}",
    operation_id = "tus_patch",
    tag = "uploads",
    params(
        ("upload_id" = String, Path, description = "From the `Location` of the `POST`", pattern = "^[0-9a-f]{32}$"),
        ("Tus-Resumable" = super::headers::TusResumable, Header),
        ("Upload-Offset" = u64, Header, description = "Where this chunk starts"),
        ("Upload-Length" = Option<u64>, Header, description = "The size, if it was deferred"),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha1` or `sha256`, a space, and the chunk's base64 digest"),
    ),
    request_body(content = inline(super::super::responses::Binary), content_type = "application/offset+octet-stream"),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "The chunk is durable",
         headers(
            ("Upload-Offset" = u64, description = "The new offset"),
            ("Upload-Expires" = String, description = "Until it is finished"),
            ("Shoebox-Media-Id" = String, description = "When this chunk completed the upload"),
         )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, description = "`Upload-Offset` is not the upload's offset"),
        (status = 410, description = "Expired"),
        (status = 412, description = "Not tus 1.0.0"),
        (status = 413, response = PayloadTooLarge),
        (status = 415, description = "Not `application/offset+octet-stream`"),
        (status = 460, description = "The chunk does not match `Upload-Checksum`; it was discarded"),
        (status = 500, response = ServerError),
        (status = 503, response = DiskFailing),
        (status = 507, response = InsufficientStorage),
    )
)]
pub async fn patch(
    req: HttpRequest,
    mut payload: web::Payload,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let answer = chunk(&req, &mut payload, &path.into_inner(), &state).await;
    if answer.is_err() {
        // Read what is left (within bounds), so that the client reads the answer.
        drain(&mut payload).await;
    }
    answer
}

async fn chunk(
    req: &HttpRequest,
    payload: &mut web::Payload,
    id: &str,
    state: &web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, owner) = uploader(req, state)?;
    check_version(req)?;
    if !is_chunk(req) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "a chunk is sent as {CHUNK_TYPE}"
        )));
    }
    let offset = number(req, "upload-offset")?
        .ok_or_else(|| ApiError::bad_request("send Upload-Offset: the offset HEAD reports"))?;
    let check = checksum(req)?;
    let length = number(req, "upload-length")?;
    let announced = number(req, "content-length")?;
    if let Some(why) = state.store.failing() {
        return Err(ApiError::DiskFailing(why));
    }
    let (held, mut upload) = hold(state, id, &owner).await?;
    if offset != upload.offset {
        return Err(ApiError::Conflict {
            code: "offset_mismatch",
            message: format!(
                "this upload is at offset {}, not {offset}; ask with HEAD and resume from there",
                upload.offset
            ),
        });
    }
    let limit = state.config.max_upload_bytes;
    match (upload.length, length) {
        (Some(known), Some(sent)) if known != sent => {
            return Err(ApiError::bad_request(format!(
                "this upload's length is {known}, not {sent}"
            )))
        }
        (None, Some(sent)) if sent > limit => return Err(ApiError::TooLarge { limit }),
        (None, Some(sent)) if sent < upload.offset => {
            return Err(ApiError::bad_request(format!(
                "Upload-Length {sent} is less than the bytes already received"
            )))
        }
        (None, Some(sent)) => {
            upload.length = Some(sent);
            let (s, mut u) = (state.clone(), upload.clone());
            upload = web::block(move || s.store.partials().save(&mut u).map(|()| u)).await??;
        }
        _ => {}
    }
    if upload.media_id.is_some() || upload.is_whole() {
        // Nothing more to send: say so again (the client may not have read the last answer).
        let upload = settle(state, upload).await?;
        drain(payload).await;
        let mut res = HttpResponse::NoContent();
        describe(&mut res, &upload, state);
        return Ok(res.finish());
    }
    let room = upload.length.unwrap_or(limit).saturating_sub(upload.offset);
    if announced.is_some_and(|n| n > room) {
        return Err(ApiError::TooLarge {
            limit: upload.length.unwrap_or(limit),
        });
    }
    state.store.check_space(announced.unwrap_or(0))?;
    let (upload, cut) = receive(state, upload, check, payload, &held).await?;
    drop(held);
    if let Some(e) = cut {
        return Err(e);
    }
    let mut res = HttpResponse::NoContent();
    describe(&mut res, &upload, state);
    Ok(res.finish())
}

/// End an upload (tus termination).
///
/// Its bytes are removed. A finished upload's media stays; only the upload is forgotten.
#[utoipa::path(
    delete,
    path = "/api/uploads/{upload_id}",
    operation_id = "tus_delete",
    tag = "uploads",
    params(
        ("upload_id" = String, Path, description = "From the `Location` of the `POST`", pattern = "^[0-9a-f]{32}$"),
        ("Tus-Resumable" = super::headers::TusResumable, Header),
    ),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 412, description = "Not tus 1.0.0"),
    )
)]
pub async fn delete(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, owner) = uploader(&req, &state)?;
    check_version(&req)?;
    let id = path.into_inner();
    match find(&state, &id, &owner).await {
        Ok(_) | Err(ApiError::Gone(_)) => {}
        Err(e) => return Err(e),
    }
    let _held = state.tus.hold(&id).await?;
    let s = state.clone();
    web::block(move || s.store.partials().remove(&id)).await??;
    Ok(HttpResponse::NoContent().finish())
}

/// What a finished upload became.
///
/// `{"items": [record]}`, as `POST /api/media` answers, for as long as the upload is kept
/// (`SHOEBOX_UPLOAD_EXPIRY` after it finished). `409` while bytes are missing.
#[utoipa::path(
    get,
    path = "/api/uploads/{upload_id}",
    operation_id = "tus_finished",
    tag = "uploads",
    params(("upload_id" = String, Path, description = "From the `Location` of the `POST`", pattern = "^[0-9a-f]{32}$")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The record the upload became", body = MediaItems),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, description = "The upload is not finished"),
        (status = 410, description = "Expired"),
    )
)]
pub async fn finished(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, owner) = uploader(&req, &state)?;
    let id = path.into_inner();
    let mut upload = find(&state, &id, &owner).await?;
    if upload.is_whole() && upload.media_id.is_none() {
        let (_held, whole) = hold(&state, &id, &owner).await?;
        upload = settle(&state, whole).await?;
    }
    let Some(media) = upload.media_id.as_deref() else {
        return Err(ApiError::Conflict {
            code: "upload_incomplete",
            message: format!(
                "this upload has {} of {} bytes; send the rest first",
                upload.offset,
                upload
                    .length
                    .map_or_else(|| "its".to_owned(), |n| n.to_string())
            ),
        });
    };
    let media: MediaId = media
        .parse()
        .map_err(|_| ApiError::Internal("an upload names a malformed media id".into()))?;
    let s = state.clone();
    let record = web::block(move || s.store.get(media))
        .await??
        .ok_or(ApiError::NotFound("media (it was deleted)"))?;
    Ok(HttpResponse::build(StatusCode::OK)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(MediaItems {
            items: vec![MediaView::new(&record, &state)],
        }))
}

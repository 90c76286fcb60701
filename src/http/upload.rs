//! `POST /api/media`: multipart (one or more `file` parts plus text fields) or a raw body with
//! `?filename=`. Bodies are streamed to `tmp/` on a blocking thread while they arrive, in
//! batches of 256 KiB: at most about 1 MiB of a body is held in memory, whatever its size.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_multipart::Multipart;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth;
use super::error::ApiError;
use super::intake;
use super::media::MediaView;
use super::receive::{drain, receive, Md5};
use super::responses::Binary;
use super::responses::{
    BadRequest, DiskFailing, Forbidden, InsufficientStorage, PayloadTooLarge, ServerError,
    Unauthorized,
};
use super::AppState;
use crate::store::record::{self, MAX_ALT, MAX_DESCRIPTION, MAX_TITLE};
use crate::store::{MediaFields, MediaRecord, NewMedia, StagedBlob, Store, StoreError, Visibility};

/// Bounds on the non-file parts of a multipart request.
const MAX_TEXT_FIELD: usize = 64 * 1024;
const MAX_TEXT_FIELDS: usize = 64;
const MAX_FILES: usize = 100;

/// The records an upload created, in the order of the files.
#[derive(Serialize, ToSchema)]
#[schema(as = MediaItems)]
pub struct MediaItems<'a> {
    pub(super) items: Vec<MediaView<'a>>,
}

/// A multipart upload, as the OpenAPI document describes it (the handler streams the parts and
/// never builds this). The text fields apply to every file; a unit test below checks that each
/// one is a field the handler accepts.
#[derive(ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// One or more files: repeat the part. `files`, `file[]` and `files[]` work too, as does
    /// any part that has a filename.
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1)]
    file: Vec<Vec<u8>>,
    /// At most 500 characters.
    #[schema(nullable = false)]
    title: Option<String>,
    /// At most 10000 characters.
    #[schema(nullable = false)]
    description: Option<String>,
    /// At most 2000 characters.
    #[schema(nullable = false)]
    alt: Option<String>,
    /// Comma-separated; may be repeated (also as `tags[]`).
    #[schema(nullable = false)]
    tags: Option<String>,
    #[schema(nullable = false)]
    collection: Option<String>,
    #[schema(nullable = false)]
    visibility: Option<Visibility>,
    /// A JSON object of your own keys. Fields named `custom.KEY` add single string keys.
    #[schema(nullable = false)]
    custom: Option<String>,
    /// `true` keeps JPEG, PNG and WebP pictures exactly as they came, location and device
    /// metadata included (admin tokens only); by default that metadata is removed.
    #[schema(nullable = false)]
    keep_metadata: Option<bool>,
}

/// The fields of a raw-body upload, as query parameters. `custom.KEY=value` adds one key.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct UploadQuery {
    /// The file's name (raw bodies only; multipart parts carry their own).
    filename: Option<String>,
    /// At most 500 characters.
    title: Option<String>,
    /// At most 10000 characters.
    description: Option<String>,
    /// At most 2000 characters.
    alt: Option<String>,
    /// Comma-separated.
    tags: Option<String>,
    collection: Option<String>,
    #[param(value_type = Option<Visibility>)]
    visibility: Option<String>,
    /// A JSON object of your own keys.
    custom: Option<String>,
    /// `true` keeps a picture's metadata (admin tokens only).
    keep_metadata: Option<bool>,
}

/// Text fields shared by every file in one request.
#[derive(Default)]
pub(super) struct FieldsBuilder {
    fields: MediaFields,
    tags: Vec<String>,
    custom: Map<String, Value>,
}

impl FieldsBuilder {
    pub(super) fn set(&mut self, name: &str, value: &str) -> Result<(), ApiError> {
        let f = &mut self.fields;
        match name {
            "title" => f.title = record::text_field("title", value, MAX_TITLE)?,
            "description" => {
                f.description = record::text_field("description", value, MAX_DESCRIPTION)?
            }
            "alt" => f.alt = record::text_field("alt", value, MAX_ALT)?,
            "tags" | "tags[]" => self.tags.extend(value.split(',').map(str::to_owned)),
            "collection" => f.collection = record::collection(value)?,
            "visibility" => f.visibility = value.parse::<Visibility>()?,
            "custom" => self.custom.extend(record::custom_str(value)?),
            n if n.starts_with("custom.") && n.len() > "custom.".len() => {
                self.custom.insert(
                    n["custom.".len()..].to_owned(),
                    Value::String(value.to_owned()),
                );
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown field {other:?}; the fields are file, title, description, alt, tags, \
                     collection, visibility, custom and custom.<key>"
                )))
            }
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<MediaFields, ApiError> {
        self.fields.tags = record::tags(self.tags.iter().map(String::as_str))?;
        self.fields.custom = record::custom(Value::Object(self.custom))?;
        Ok(self.fields)
    }
}

pub(super) fn declared_type(value: Option<&str>) -> Option<String> {
    let m: mime::Mime = value?.parse().ok()?;
    (m.essence_str() != "application/octet-stream").then(|| m.essence_str().to_owned())
}

/// Upload one or more files.
///
/// Either a `multipart/form-data` body with one or more `file` parts and text fields, or any
/// other body taken as the file itself, with its fields as query parameters. The bytes are
/// durable (fsynced, and the record flushed) before the `201`. Type and kind are sniffed from
/// the bytes; identical bytes are stored once.
#[utoipa::path(
    post,
    path = "/api/media",
    operation_id = "upload_media",
    tag = "media",
    params(UploadQuery),
    request_body(
        description = "A multipart form, or the raw file",
        content(
            (inline(UploadForm) = "multipart/form-data"),
            (inline(Binary) = "application/octet-stream"),
        ),
    ),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "Stored; the records in the order of the files",
         body = MediaItems,
         headers(("Location" = String, description = "`/api/media/{id}` when one file was sent"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 500, response = ServerError),
        (status = 503, response = DiskFailing),
        (status = 507, response = InsufficientStorage),
    )
)]
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::require_token(&req, &state)?;
    auth::require(
        &caller,
        caller.can_upload(),
        "this token may not upload (it has the read scope)",
    )?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let is_multipart = content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("multipart/form-data"));
    if let Some(why) = state.store.failing() {
        // Before a byte of the body: a client that retries must not fill the disk.
        return Err(ApiError::DiskFailing(why));
    }
    let owner = caller.owner();
    let admin = caller.is_admin();
    let stored = async {
        if is_multipart {
            let (mut items, keep) = multipart(&req, payload, &state, admin).await?;
            for item in &mut items {
                // On a refusal, dropping `items` removes every staged file of this request.
                accept(&state, item, owner.clone())?;
            }
            let store = state.store.clone();
            web::block(move || -> Result<_, ApiError> {
                let items = items
                    .into_iter()
                    .map(|item| strip_metadata(&store, item, keep))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(store.create(items)?)
            })
            .await?
        } else {
            let declared = declared_type(Some(&content_type));
            raw(
                &req,
                payload,
                query.into_inner(),
                state.clone(),
                declared,
                owner,
                admin,
            )
            .await
        }
    }
    .await;
    let records = match stored {
        Ok(records) => records,
        Err(ApiError::Store(e)) => {
            // A write error from the disk (not a full one) refuses the next uploads early.
            state.store.note_error(&e);
            return Err(e.into());
        }
        Err(e) => return Err(e),
    };
    for r in &records {
        super::variants::Variants::learn(&state, r);
    }
    let views: Vec<MediaView> = records.iter().map(|r| MediaView::new(r, &state)).collect();
    let mut res = HttpResponse::Created();
    if let [one] = records.as_slice() {
        res.insert_header((header::LOCATION, format!("/api/media/{}", one.id)));
    }
    Ok(res.json(MediaItems { items: views }))
}

/// Checks a staged file's type against the configured list and sets its owner.
pub(super) fn accept(
    state: &AppState,
    item: &mut NewMedia,
    owner: Option<String>,
) -> Result<(), ApiError> {
    let ct = &item.content_type;
    type_allowed(state, ct, &item.filename)?;
    item.fields.owner = owner;
    if state.variants.posters && crate::store::sniff::kind(ct) == crate::store::Kind::Video {
        // Made after the `201` (see `Variants::learn`).
        item.poster = Some(crate::store::PosterState::Pending);
    }
    Ok(())
}

/// Refuses a file of a type not on the configured list.
pub(super) fn type_allowed(state: &AppState, ct: &str, filename: &str) -> Result<(), ApiError> {
    if state.config.type_allowed(ct) {
        return Ok(());
    }
    Err(ApiError::UnsupportedMediaType(format!(
        "{} is {ct}, which this server does not accept (allowed: {})",
        if filename.is_empty() {
            "the file"
        } else {
            filename
        },
        state.config.allowed_types.join(", ")
    )))
}

/// A raw body: its record is created on the thread that wrote it, as soon as it is staged.
async fn raw(
    req: &HttpRequest,
    mut payload: web::Payload,
    query: Vec<(String, String)>,
    state: web::Data<AppState>,
    declared: Option<String>,
    owner: Option<String>,
    admin: bool,
) -> Result<Vec<MediaRecord>, ApiError> {
    let limit = state.config.max_upload_bytes;
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    if let Err(e) = state.store.check_space(announced.unwrap_or(0)) {
        drain(&mut payload).await;
        return Err(e.into());
    }
    let mut builder = FieldsBuilder::default();
    let mut filename = String::new();
    let mut keep = state.config.keep_metadata;
    for (k, v) in &query {
        if k == "filename" {
            filename = record::filename(v);
        } else if k == "keep_metadata" {
            keep |= keep_asked(v, admin)?;
        } else {
            builder.set(k, v)?;
        }
    }
    let fields = builder.finish()?;
    let store = state.store.clone();
    let idle = state.config.client_timeout;
    let created = receive(store, &mut payload, limit, idle, Md5::Skip, move |blob| {
        let mut item = NewMedia::new(blob, filename, declared.as_deref(), fields);
        // On a refusal, dropping `item` removes the staged file.
        accept(&state, &mut item, owner)?;
        let item = strip_metadata(&state.store, item, keep)?;
        Ok(state.store.create(vec![item])?)
    })
    .await;
    if created.is_err() {
        drain(&mut payload).await;
    }
    created
}

async fn read_text(
    field: &mut actix_multipart::Field,
    name: &str,
    idle: Duration,
) -> Result<String, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|e| intake::body_error(&e, "malformed multipart body", idle))?;
        if buf.len() + chunk.len() > MAX_TEXT_FIELD {
            return Err(ApiError::bad_request(format!(
                "field {name:?} is longer than {MAX_TEXT_FIELD} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf)
        .map_err(|_| ApiError::bad_request(format!("field {name:?} is not UTF-8 text")))
}

/// The request body behind a shared handle: the multipart parser reads through one clone and,
/// after a refusal, `drain` reads what the parser left through another. The parser cannot be
/// drained itself once it has failed (a missing boundary fails before it reads anything), and
/// a body left unread makes the connection close with a reset that hides our JSON error.
#[derive(Clone)]
struct SharedBody(Rc<RefCell<web::Payload>>);

impl Stream for SharedBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_next(cx)
    }
}

/// A multipart body's files, and whether their metadata is to be kept.
async fn multipart(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    admin: bool,
) -> Result<(Vec<NewMedia>, bool), ApiError> {
    let body = SharedBody(Rc::new(RefCell::new(payload)));
    let mut form = Multipart::new(req.headers(), body.clone());
    let result = read_form(&mut form, state, admin).await;
    if result.is_err() {
        // Discard the rest so the client reads our error rather than a reset.
        drop(form);
        drain(body).await;
    }
    result
}

async fn read_form(
    form: &mut Multipart,
    state: &AppState,
    admin: bool,
) -> Result<(Vec<NewMedia>, bool), ApiError> {
    let mut keep = state.config.keep_metadata;
    let limit = state.config.max_upload_bytes;
    let idle = state.config.client_timeout;
    let mut builder = FieldsBuilder::default();
    let mut files: Vec<(StagedBlob, String, Option<String>)> = Vec::new();
    let mut text_fields = 0;
    while let Some(mut field) = form
        .try_next()
        .await
        .map_err(|e| intake::body_error(&e, "malformed multipart body", idle))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let filename = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .map(str::to_owned);
        if matches!(name.as_str(), "file" | "files" | "file[]" | "files[]") || filename.is_some() {
            if files.len() == MAX_FILES {
                return Err(ApiError::bad_request(format!(
                    "at most {MAX_FILES} files per request"
                )));
            }
            let declared = declared_type(field.content_type().map(|m| m.essence_str()));
            let blob = receive(state.store.clone(), &mut field, limit, idle, Md5::Skip, Ok).await?;
            files.push((
                blob,
                record::filename(filename.as_deref().unwrap_or_default()),
                declared,
            ));
        } else {
            text_fields += 1;
            if text_fields > MAX_TEXT_FIELDS {
                return Err(ApiError::bad_request(format!(
                    "at most {MAX_TEXT_FIELDS} text fields"
                )));
            }
            let value = read_text(&mut field, &name, idle).await?;
            if name == "keep_metadata" {
                keep |= keep_asked(&value, admin)?;
            } else {
                builder.set(&name, &value)?;
            }
        }
    }
    if files.is_empty() {
        return Err(ApiError::bad_request(
            "no file in the request: send one or more multipart parts named \"file\"",
        ));
    }
    let fields = builder.finish()?;
    let items = files
        .into_iter()
        .map(|(blob, filename, declared_type)| {
            NewMedia::new(blob, filename, declared_type.as_deref(), fields.clone())
        })
        .collect();
    Ok((items, keep))
}

/// `keep_metadata=true`: a picture kept with its location and device data, which only an
/// admin may ask for.
pub(super) fn keep_asked(value: &str, admin: bool) -> Result<bool, ApiError> {
    let keep = match value.trim() {
        "true" | "1" => true,
        "false" | "0" | "" => false,
        _ => return Err(ApiError::invalid("keep_metadata", "true or false")),
    };
    if keep && !admin {
        return Err(ApiError::Forbidden {
            code: "insufficient_scope",
            message: "only an admin token may keep a picture's metadata (keep_metadata)",
        });
    }
    Ok(keep)
}

/// The most a picture may weigh to have its metadata removed (it is read into memory); a
/// larger one is kept as it came, and its record says it was not stripped.
const STRIP_MAX: u64 = 32 << 20;

/// A JPEG, PNG or WebP is kept without its location and device metadata, unless `keep` (see
/// [`shoebox_pictures::strip`]): the staged bytes are replaced by the stripped ones, and the
/// record remembers the original's hash and what went. Bytes that do not parse as the picture
/// they claim to be are kept as they came.
pub(super) fn strip_metadata(
    store: &Store,
    mut item: NewMedia,
    keep: bool,
) -> Result<NewMedia, ApiError> {
    let picture = shoebox_pictures::strip::strips(&item.content_type);
    if keep || !picture || item.blob.size > STRIP_MAX {
        return Ok(item);
    }
    let data = std::fs::read(item.blob.path())
        .map_err(|e| StoreError::io("read an upload back to strip it", e))?;
    let Some(stripped) = shoebox_pictures::strip::strip(Bytes::from(data), &item.content_type)
    else {
        return Ok(item);
    };
    item.original_hash = Some(item.blob.hash);
    item.stripped = Some(stripped.removed.iter().map(|&w| w.to_owned()).collect());
    if !stripped.removed.is_empty() {
        let mut copy = store.stage()?;
        copy.write(&stripped.bytes)?;
        // The staged original goes with the old blob.
        item.blob = copy.finish()?;
        item.md5 = None;
    }
    Ok(item)
}

#[cfg(test)]
mod tests {
    use utoipa::{IntoParams, PartialSchema};

    use super::*;

    fn sample(field: &str) -> &'static str {
        match field {
            "visibility" => "private",
            "custom" => r#"{"message_id": 42}"#,
            _ => "summer",
        }
    }

    /// The document's upload fields are described by hand-written types (the handler streams
    /// the parts), so check them against the handler: each one is accepted, and the raw-body
    /// query parameters are the form's text fields plus `filename`.
    #[test]
    fn every_documented_upload_field_is_accepted() {
        let form = serde_json::to_value(UploadForm::schema()).unwrap();
        let fields: Vec<String> = form["properties"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "file" && *k != "keep_metadata")
            .cloned()
            .collect();
        assert_eq!(fields.len(), 7, "{fields:?}");
        for field in &fields {
            let mut builder = FieldsBuilder::default();
            assert!(builder.set(field, sample(field)).is_ok(), "{field}");
            assert!(builder.finish().is_ok(), "{field}");
        }
        let mut query: Vec<String> = UploadQuery::into_params(|| None)
            .into_iter()
            .map(|p| p.name)
            .filter(|n| n != "filename" && n != "keep_metadata")
            .collect();
        query.sort();
        let mut fields = fields;
        fields.sort();
        assert_eq!(query, fields);
        assert!(FieldsBuilder::default().set("colour", "red").is_err());
        assert_eq!(keep_asked("true", true).ok(), Some(true));
        assert!(keep_asked("true", false).is_err(), "admins only");
        assert!(keep_asked("perhaps", true).is_err());
    }
}

//! The metadata API: list, read, edit and delete media records.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::{self, Caller};
use super::error::ApiError;
use super::responses::{
    BadRequest, Forbidden, InsufficientStorage, NotFound, PayloadTooLarge, ServerError,
    Unauthorized, UnsupportedMediaType,
};
use super::variants;
use super::AppState;
use crate::store::record::{self, MAX_ALT, MAX_DESCRIPTION, MAX_TITLE};
use crate::store::{Cursor, Kind, ListQuery, MediaId, MediaPatch, MediaRecord, Visibility};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// A record as the API shows it: its fields plus its stable URL and its content address.
#[derive(Serialize, ToSchema)]
#[schema(as = Media)]
pub struct MediaView<'a> {
    #[serde(flatten)]
    record: &'a MediaRecord,
    /// The file's stable address, `/m/{id}`; absolute when SHOEBOX_PUBLIC_URL is set.
    #[schema(examples("/m/01jd8x4w9k6t2m3n4p5q6r7s8t"))]
    url: String,
    /// The bytes by content address, `/f/{hash}`, cached forever.
    #[schema(examples("/f/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"))]
    blob_url: String,
    /// For images the server makes variants of: a small one, `/m/{id}?w=320` (the listed width
    /// nearest 320).
    /// For a video whose poster frame was made: a small one of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(examples("/m/01jd8x4w9k6t2m3n4p5q6r7s8t?w=320"))]
    thumbnail_url: Option<String>,
    /// For a video whose poster frame was made: the frame, `/m/{id}?poster=1` (sized with
    /// `w=` like any image).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(examples("/m/01jd8x4w9k6t2m3n4p5q6r7s8t?poster=1"))]
    poster_url: Option<String>,
    /// For the same images: every listed variant as an HTML `srcset`, up to the first as wide
    /// as the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(examples(
        "/m/01jd8x4w9k6t2m3n4p5q6r7s8t?w=160 160w, /m/01jd8x4w9k6t2m3n4p5q6r7s8t?w=320 320w"
    ))]
    srcset: Option<String>,
}

/// One page of a listing, newest first.
#[derive(Serialize, ToSchema)]
#[schema(as = MediaPage)]
pub struct MediaPage<'a> {
    items: Vec<MediaView<'a>>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

impl<'a> MediaView<'a> {
    pub fn new(record: &'a MediaRecord, state: &AppState) -> Self {
        let url = state.link(&format!("/m/{}", record.id));
        let widths = &state.config.variant_widths;
        let pictured = shoebox_pictures::source_format(&record.content_type).is_some();
        let poster = record.poster == Some(crate::store::PosterState::Ready);
        let small = variants::nearest(widths, 320);
        MediaView {
            thumbnail_url: if pictured {
                Some(format!("{url}?w={small}"))
            } else {
                poster.then(|| format!("{url}?poster=1&w={small}"))
            },
            poster_url: poster.then(|| format!("{url}?poster=1")),
            srcset: pictured.then(|| variants::srcset(&url, widths, record.width)),
            url,
            blob_url: state.link(&format!("/f/{}", record.hash)),
            record,
        }
    }
}

pub fn parse_id(raw: &str) -> Result<MediaId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound("media"))
}

/// Loads a record the caller may see; private media are "not found" to anonymous callers so
/// that their existence does not leak.
pub fn visible(state: &AppState, id: MediaId, caller: &Caller) -> Result<MediaRecord, ApiError> {
    match state.store.get(id)? {
        Some(r) if caller.can_read(&r) => Ok(r),
        _ => Err(ApiError::NotFound("media")),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only media in this collection.
    collection: Option<String>,
    /// Only media with this tag (compared lower-cased).
    tag: Option<String>,
    /// Only media of this kind.
    #[param(value_type = Option<Kind>)]
    kind: Option<String>,
    /// Text found, ignoring case, in the title, description or file name.
    q: Option<String>,
    /// Items per page.
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page, as it was given (opaque).
    cursor: Option<String>,
}

impl ListParams {
    fn into_query(self, caller: &Caller) -> Result<ListQuery, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::invalid(
                "limit",
                format!("between 1 and {MAX_LIMIT}"),
            ));
        }
        let before =
            match self.cursor.as_deref().filter(|c| !c.is_empty()) {
                Some(c) => Some(c.parse::<Cursor>().map_err(|_| {
                    ApiError::invalid("cursor", "a next_cursor from an earlier page")
                })?),
                None => None,
            };
        let kind = match self.kind.as_deref().filter(|k| !k.is_empty()) {
            Some(k) => Some(k.parse::<Kind>()?),
            None => None,
        };
        Ok(ListQuery {
            collection: match self.collection.as_deref() {
                Some(c) => record::collection(c)?,
                None => None,
            },
            tag: match self.tag.as_deref() {
                Some(t) => record::tag(t)?,
                None => None,
            },
            kind,
            q: self
                .q
                .map(|q| q.trim().to_lowercase())
                .filter(|q| !q.is_empty()),
            include_private: caller.can_see_private(),
            owner: caller.owner(),
            limit,
            before,
        })
    }
}

/// List media, newest first.
///
/// Anonymous callers see public media only; a token (or a signed-in session) sees everything.
#[utoipa::path(
    get,
    path = "/api/media",
    operation_id = "list_media",
    tag = "media",
    params(ListParams),
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "One page of media", body = MediaPage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 500, response = ServerError),
    )
)]
pub async fn list(
    req: HttpRequest,
    params: web::Query<ListParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::caller(&req, &state)?;
    let query = params.into_inner().into_query(&caller)?;
    let store = state.store.clone();
    let page = web::block(move || store.list(&query)).await??;
    let items: Vec<MediaView> = page
        .items
        .iter()
        .map(|r| MediaView::new(r, &state))
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .json(MediaPage {
            items,
            next_cursor: page.next.map(|c| c.to_string()),
        }))
}

/// One media record.
///
/// Private media are `404` to anonymous callers, so that their existence does not leak.
#[utoipa::path(
    get,
    path = "/api/media/{id}",
    operation_id = "get_media",
    tag = "media",
    params(("id" = MediaId, Path, description = "The media id")),
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The record", body = MediaView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = ServerError),
    )
)]
pub async fn get(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::caller(&req, &state)?;
    let record = visible(&state, parse_id(&id)?, &caller)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .json(MediaView::new(&record, &state)))
}

/// `null` and absent differ for `collection`: null removes it, absent keeps it.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Tags as a list, or as one comma-separated string.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
enum TagsInput {
    List(Vec<String>),
    Text(String),
}

/// The editable fields; each one present replaces the stored value, absent ones stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Pier at sunset", "tags": ["summer"], "collection": null}))]
pub struct PatchBody {
    /// A new file name (metadata only).
    filename: Option<String>,
    /// At most 500 characters.
    title: Option<String>,
    /// At most 10000 characters.
    description: Option<String>,
    /// At most 2000 characters.
    alt: Option<String>,
    /// Replaces all tags.
    tags: Option<TagsInput>,
    /// `null` or `""` takes the record out of its collection; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    collection: Option<Option<String>>,
    visibility: Option<Visibility>,
    /// Replaces the whole object; `null` empties it.
    #[schema(value_type = Option<Object>)]
    custom: Option<Value>,
}

impl PatchBody {
    fn validate(self) -> Result<MediaPatch, ApiError> {
        let filename = match self.filename {
            Some(f) => {
                let clean = record::filename(&f);
                if clean.is_empty() {
                    return Err(ApiError::invalid("filename", "a non-empty file name"));
                }
                Some(clean)
            }
            None => None,
        };
        Ok(MediaPatch {
            filename,
            title: self
                .title
                .map(|v| record::text_field("title", &v, MAX_TITLE))
                .transpose()?,
            description: self
                .description
                .map(|v| record::text_field("description", &v, MAX_DESCRIPTION))
                .transpose()?,
            alt: self
                .alt
                .map(|v| record::text_field("alt", &v, MAX_ALT))
                .transpose()?,
            tags: match self.tags {
                Some(TagsInput::List(list)) => Some(record::tags(list.iter().map(String::as_str))?),
                Some(TagsInput::Text(text)) => Some(record::tag_list(&text)?),
                None => None,
            },
            collection: match self.collection {
                Some(Some(c)) => Some(record::collection(&c)?),
                Some(None) => Some(None),
                None => None,
            },
            visibility: self.visibility,
            custom: self.custom.map(record::custom).transpose()?,
        })
    }
}

/// Edit a record's editable fields.
#[utoipa::path(
    patch,
    path = "/api/media/{id}",
    operation_id = "edit_media",
    tag = "media",
    params(("id" = MediaId, Path, description = "The media id")),
    request_body = PatchBody,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The edited record", body = MediaView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = ServerError),
        (status = 507, response = InsufficientStorage),
    )
)]
pub async fn patch(
    auth::Authenticated(caller): auth::Authenticated,
    id: web::Path<String>,
    body: web::Json<PatchBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    editable(&state, id, &caller)?;
    let patch = body.into_inner().validate()?;
    let store = state.store.clone();
    let record = web::block(move || store.update(id, &patch)).await??;
    Ok(HttpResponse::Ok().json(MediaView::new(&record, &state)))
}

/// Delete a record; its file goes with its last record.
#[utoipa::path(
    delete,
    path = "/api/media/{id}",
    operation_id = "delete_media",
    tag = "media",
    params(("id" = MediaId, Path, description = "The media id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = ServerError),
    )
)]
pub async fn delete(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::require_token(&req, &state)?;
    let id = parse_id(&id)?;
    editable(&state, id, &caller)?;
    let store = state.store.clone();
    if web::block(move || store.delete(id)).await?? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound("media"))
    }
}

/// Checks that the caller may change this record: 404 when it may not even see it, 403 when it
/// may see but not change it (a read token, or an upload token and someone else's media).
fn editable(state: &AppState, id: MediaId, caller: &Caller) -> Result<MediaRecord, ApiError> {
    let record = visible(state, id, caller)?;
    auth::require(
        caller,
        caller.can_edit(&record),
        "this token may only change media it uploaded",
    )?;
    Ok(record)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UrlParams {
    /// Seconds until the URL stops working: 1 to 604800 (a week); default 3600.
    expires_in: Option<u64>,
}

/// A signed URL and when it stops working.
#[derive(Serialize, ToSchema)]
pub struct SignedUrl {
    /// `/m/{id}?exp=…&kid=…&sig=…`, absolute when SHOEBOX_PUBLIC_URL is set.
    url: String,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// Longest lifetime of a signed URL: a week.
const MAX_EXPIRES_IN: u64 = 7 * 24 * 3600;

/// A signed URL for a file.
///
/// The URL serves the file to anyone holding it until it expires (default one hour), private
/// media included. Needs a token that may read the record.
#[utoipa::path(
    get,
    path = "/api/media/{id}/url",
    operation_id = "sign_media_url",
    tag = "media",
    params(("id" = MediaId, Path, description = "The media id"), UrlParams),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The signed URL", body = SignedUrl),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = ServerError),
    )
)]
pub async fn signed_url(
    req: HttpRequest,
    id: web::Path<String>,
    params: web::Query<UrlParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::require_token(&req, &state)?;
    let record = visible(&state, parse_id(&id)?, &caller)?;
    let expires_in = params.expires_in.unwrap_or(3600);
    if expires_in == 0 || expires_in > MAX_EXPIRES_IN {
        return Err(ApiError::invalid(
            "expires_in",
            format!("between 1 and {MAX_EXPIRES_IN} seconds"),
        ));
    }
    let exp = auth::unix_now() + expires_in;
    let path = format!("/m/{}", record.id);
    let query = state.url_keys.sign("GET", &path, exp);
    let expires_at = time::OffsetDateTime::from_unix_timestamp(exp as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(SignedUrl {
            url: state.link(&format!("{path}?{query}")),
            expires_at,
        }))
}

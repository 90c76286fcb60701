//! The metadata API: list, read, edit and delete media records.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::auth::{self, Caller};
use super::error::ApiError;
use super::AppState;
use crate::store::record::{self, MAX_ALT, MAX_DESCRIPTION, MAX_TITLE};
use crate::store::{Kind, ListQuery, MediaId, MediaPatch, MediaRecord, Visibility};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// A record as the API shows it: its fields plus its stable URL and its content address.
#[derive(Serialize)]
pub struct MediaView<'a> {
    #[serde(flatten)]
    record: &'a MediaRecord,
    url: String,
    blob_url: String,
}

impl<'a> MediaView<'a> {
    pub fn new(record: &'a MediaRecord, state: &AppState) -> Self {
        MediaView {
            url: state.link(&format!("/m/{}", record.id)),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    collection: Option<String>,
    tag: Option<String>,
    kind: Option<String>,
    q: Option<String>,
    limit: Option<usize>,
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
                Some(c) => Some(c.parse::<MediaId>().map_err(|_| {
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
        .json(serde_json::json!({
            "items": items,
            "next_cursor": page.next.map(|id| id.to_string()),
        })))
}

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

#[derive(Deserialize)]
#[serde(untagged)]
enum TagsInput {
    List(Vec<String>),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    filename: Option<String>,
    title: Option<String>,
    description: Option<String>,
    alt: Option<String>,
    tags: Option<TagsInput>,
    #[serde(default, deserialize_with = "present")]
    collection: Option<Option<String>>,
    visibility: Option<Visibility>,
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

pub async fn patch(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Json<PatchBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::require_token(&req, &state)?;
    let id = parse_id(&id)?;
    editable(&state, id, &caller)?;
    let patch = body.into_inner().validate()?;
    let store = state.store.clone();
    let record = web::block(move || store.update(id, &patch)).await??;
    Ok(HttpResponse::Ok().json(MediaView::new(&record, &state)))
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlParams {
    expires_in: Option<u64>,
}

/// Longest lifetime of a signed URL: a week.
const MAX_EXPIRES_IN: u64 = 7 * 24 * 3600;

/// `GET /api/media/{id}/url?expires_in=`: a signed URL that serves the file to anyone holding
/// it until it expires (default one hour).
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
        .json(serde_json::json!({
            "url": state.link(&format!("{path}?{query}")),
            "expires_at": expires_at,
        })))
}

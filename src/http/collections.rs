//! `/api/collections`: the collections and their settings. Anyone may list them; only an
//! admin changes or removes one. (`collection.rs` is the public page of one collection's
//! media.)
//!
//! A collection exists when it has settings (a file under `collections/`) or when media are
//! in it; the settings are what lets a collection exist empty, as an S3 bucket does, and say
//! whether what is put into it through S3 is public by default.

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::auth;
use super::error::{ApiError, ErrorBody};
use super::responses::{
    BadRequest, Forbidden, InsufficientStorage, NotFound, PayloadTooLarge, ServerError,
    Unauthorized, UnsupportedMediaType,
};
use super::AppState;
use crate::store::{record, CollectionInfo, ListQuery, StoreError};

/// A collection: one with settings, or one that media are in.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"name": "stories", "public": true, "created_at": "2026-05-01T09:30:00Z"}))]
pub struct Collection {
    /// As media name it in `collection`.
    name: String,
    /// Whether objects put into it through S3 are public when the upload does not say;
    /// private when false, and false for a collection without settings.
    public: bool,
    /// When its settings were first saved; absent for a collection that only its media make.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    created_at: Option<OffsetDateTime>,
}

impl From<CollectionInfo> for Collection {
    fn from(info: CollectionInfo) -> Self {
        Collection {
            name: info.name,
            public: info.public,
            created_at: Some(info.created_at),
        }
    }
}

/// Every collection the caller may know of, by name.
#[derive(Serialize, ToSchema)]
pub struct CollectionList {
    items: Vec<Collection>,
}

/// A collection's settings.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"public": true}))]
pub struct CollectionSettings {
    /// Whether objects put into it through S3 are public when the upload does not say.
    public: bool,
}

/// The name in the path, by the rules of a record's `collection`.
fn name(raw: &str) -> Result<String, ApiError> {
    record::collection(raw)?.ok_or_else(|| {
        ApiError::invalid(
            "collection",
            format!(
                "a name of 1 to {} characters without '/' or control characters",
                record::MAX_COLLECTION
            ),
        )
    })
}

/// List collections.
///
/// Collections with settings, and those that media the caller may see are in (for anonymous
/// callers, public media), by name.
#[utoipa::path(
    get,
    path = "/api/collections",
    operation_id = "list_collections",
    tag = "collections",
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The collections, by name", body = CollectionList),
        (status = 401, response = Unauthorized),
        (status = 500, response = ServerError),
    )
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth::caller(&req, &state)?;
    let query = ListQuery {
        include_private: caller.can_see_private(),
        owner: caller.owner(),
        ..ListQuery::default()
    };
    let store = state.store.clone();
    let (saved, used) = web::block(move || -> Result<_, StoreError> {
        Ok((
            store.collections().list()?,
            store.collections_in_use(&query)?,
        ))
    })
    .await??;
    let mut items: BTreeMap<String, Collection> = saved
        .into_iter()
        .map(|info| (info.name.clone(), Collection::from(info)))
        .collect();
    for name in used {
        items.entry(name.clone()).or_insert(Collection {
            name,
            public: false,
            created_at: None,
        });
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .json(CollectionList {
            items: items.into_values().collect(),
        }))
}

/// Save a collection's settings.
///
/// Makes the collection when it does not exist, so that it exists before its first media.
#[utoipa::path(
    put,
    path = "/api/collections/{name}",
    operation_id = "save_collection",
    tag = "collections",
    params(("name" = String, Path, description = "The collection's name")),
    request_body = CollectionSettings,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The collection, as saved", body = Collection),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = ServerError),
        (status = 507, response = InsufficientStorage),
    )
)]
pub async fn save(
    _: auth::AdminCaller,
    raw: web::Path<String>,
    body: web::Json<Map<String, Value>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = name(&raw)?;
    // Read as an object first: serde would take `[true]` for the struct's fields in order.
    let CollectionSettings { public } = serde_json::from_value(Value::Object(body.into_inner()))
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let store = state.store.clone();
    let info = web::block(move || store.collections().set_public(&name, public)).await??;
    tracing::info!(collection = %info.name, public, "collection settings saved");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Collection::from(info)))
}

/// Remove a collection's settings.
///
/// Only an empty collection can be removed: one that media are in answers `409`
/// (`collection_not_empty`) and keeps its settings.
#[utoipa::path(
    delete,
    path = "/api/collections/{name}",
    operation_id = "remove_collection",
    tag = "collections",
    params(("name" = String, Path, description = "The collection's name")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "Media are in the collection (`collection_not_empty`): \
                                      move or delete them first", body = ErrorBody),
        (status = 500, response = ServerError),
    )
)]
pub async fn remove(
    _: auth::AdminCaller,
    raw: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = name(&raw)?;
    let store = state.store.clone();
    let asked = name.clone();
    let removed = web::block(move || -> Result<Option<bool>, StoreError> {
        if store.collection_in_use(&asked)? {
            return Ok(None);
        }
        store.collections().remove(&asked).map(Some)
    })
    .await??;
    match removed {
        Some(true) => {
            tracing::info!(collection = %name, "collection removed");
            Ok(HttpResponse::NoContent().finish())
        }
        Some(false) => Err(ApiError::NotFound("collection")),
        None => Err(ApiError::Conflict {
            code: "collection_not_empty",
            message: format!(
                "media are in the collection {name:?}: move them to another collection or \
                 delete them first"
            ),
        }),
    }
}

//! The OpenAPI 3 description of the HTTP surface, served at `GET /api/openapi.json`.
//!
//! It is generated from the code: each handler carries a `#[utoipa::path]` attribute next to its
//! body, and request and response bodies derive `ToSchema` from the very types that are
//! (de)serialized. Tests check that every route `routes()` registers is described here.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::auth::SESSION_COOKIE;
use super::{
    assets, backup, collection, collections, error, files, health, media, observe, session, status,
    tokens, tus, upload,
};

use super::responses;

/// The bearer and cookie security schemes.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token (set with SHOEBOX_ADMIN_TOKEN, or generated and printed \
                         on first start). `/metrics` also takes SHOEBOX_METRICS_TOKEN.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "The web app's session, from `POST /api/session`. Writes that ride on it must \
                 carry an `Origin` naming this host.",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shoebox",
        description = "A single-binary media store: durable uploads, direct serving and a \
                       metadata API.\n\nErrors are JSON, `{\"error\": {\"code\", \"message\"}}`. \
                       Every route answers `405` (`method_not_allowed`) to a method it does not \
                       serve, and any path that no route matches answers `404` unless it is the \
                       old URL of media adopted by `shoebox import --url-prefix`, which serves \
                       that file. Every response carries `X-Request-Id`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    paths(
        media::list,
        upload::create,
        media::get,
        media::patch,
        media::delete,
        media::signed_url,
        tokens::list,
        tokens::create,
        tokens::revoke,
        collections::list,
        collections::save,
        collections::remove,
        files::media_file,
        files::blob_file,
        session::show,
        session::create,
        session::delete,
        health::health,
        status::status,
        backup::backup,
        observe::metrics,
        openapi_json,
        collection::page,
        assets::index,
        assets::asset,
        tus::routes::options,
        tus::routes::create,
        tus::routes::head,
        tus::routes::patch,
        tus::routes::delete,
        tus::routes::finished,
    ),
    components(
        schemas(error::ErrorBody, tus::headers::TusResumable),
        responses(
            responses::BadRequest,
            responses::Unauthorized,
            responses::Forbidden,
            responses::NotFound,
            responses::MethodNotAllowed,
            responses::PayloadTooLarge,
            responses::UnsupportedMediaType,
            responses::Unprocessable,
            responses::InsufficientStorage,
            responses::DiskFailing,
            responses::ServerError,
        )
    ),
    modifiers(&Security),
    tags(
        (name = "media", description = "Upload, list, read, edit and delete media"),
        (name = "files", description = "The bytes, with Range and conditional requests"),
        (name = "session", description = "The web app's sign-in"),
        (name = "tokens", description = "API tokens: create, list, revoke (admin)"),
        (name = "collections", description = "Collections and their settings: list (anyone), \
                                              save and remove (admin)"),
        (name = "uploads", description = "Resumable uploads (tus 1.0.0): create, send chunks, \
                                          resume, end. Every answer carries `Tus-Resumable: 1.0.0`"),
        (name = "operations", description = "Health, status, backup, metrics and this document"),
        (name = "pages", description = "HTML pages and the web app's assets"),
    )
)]
struct ApiDoc;

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        // `method(get, head)` gives both operations the handler's id; ids must be unique.
        for item in doc.paths.paths.values_mut() {
            let get = item.get.as_ref().and_then(|op| op.operation_id.clone());
            if let Some(id) = item.head.as_mut().and_then(|op| op.operation_id.as_mut()) {
                if Some(&*id) == get.as_ref() {
                    id.push_str("_head");
                }
            }
        }
        // Serializing a document of plain maps and strings cannot fail; fall back to an empty
        // object rather than panic on a request path.
        doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
    })
}

/// This document: the OpenAPI 3 description of every route.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json",
         body = Object),
    )
)]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type(mime::APPLICATION_JSON)
        .body(document())
}

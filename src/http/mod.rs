//! The HTTP surface: application state and routes; the server's life cycle is in `server.rs`.

mod assets;
mod auth;
mod backup;
mod blob_body;
mod collection;
mod collections;
mod conn;
mod cors;
mod disposition;
mod error;
mod file_cache;
mod files;
mod health;
mod intake;
mod limits;
mod media;
mod observe;
pub mod openapi;
mod preconditions;
mod receive;
mod responses;
pub mod s3;
mod server;
mod session;
mod status;
/// Blobs served from the blob store's bucket.
mod streamed;
mod tokens;
mod tus;
mod upload;
mod variants;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use actix_web::dev::fn_service;
use actix_web::error::JsonPayloadError;
use actix_web::http::{header, Method};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App, HttpRequest, HttpResponse, Route};

pub use error::ApiError;
pub use server::run;

use crate::config::Config;
use crate::credentials::api_tokens::Tokens;
use crate::credentials::secrets::{SessionKey, TokenHash};
use crate::credentials::signing::UrlKeys;
use crate::credentials::{CredentialError, SecretsDir};
use crate::store::disk::Persistence;
use crate::store::Store;

/// Shared by every worker; read-only apart from the store itself.
pub struct AppState {
    pub store: Arc<Store>,
    pub config: Config,
    pub admin: TokenHash,
    /// Signs the web app's session cookies.
    pub session_key: SessionKey,
    pub started: Instant,
    pub assets: assets::AssetIndex,
    pub persistence: Persistence,
    pub metrics: observe::Metrics,
    /// API tokens (hashes), re-read when the file changes.
    pub tokens: Tokens,
    /// Keys for signed URLs.
    pub url_keys: UrlKeys,
    /// Failed sign-ins per client address.
    pub limiter: limits::Limiter,
    /// Small files kept in memory.
    pub files: file_cache::FileCache,
    /// Image variants being made, and how many at a time.
    pub variants: variants::Variants,
    /// Resumable uploads that requests are working on.
    pub tus: tus::Tus,
}

impl AppState {
    pub fn new(
        store: Arc<Store>,
        config: Config,
        admin: TokenHash,
        persistence: Persistence,
        session_key: SessionKey,
    ) -> Result<Self, CredentialError> {
        let secrets = SecretsDir::of_store(&store, config.data.secret_key.as_deref())?;
        let metrics = observe::Metrics::new();
        if let Some(bucket) = store.blobs().bucket() {
            bucket.observe(metrics.blob_store_observer());
        }
        Ok(AppState {
            tokens: Tokens::open(&secrets)?,
            url_keys: UrlKeys::load_or_create(&secrets)?,
            files: file_cache::FileCache::new(config.file_cache),
            variants: variants::Variants::new(config.variant_jobs),
            store,
            config,
            admin,
            session_key,
            started: Instant::now(),
            assets: assets::AssetIndex::build(),
            persistence,
            metrics,
            limiter: limits::Limiter::default(),
            tus: tus::Tus::default(),
        })
    }

    /// An absolute URL when SHOEBOX_PUBLIC_URL is set, otherwise a root-relative one.
    pub fn link(&self, path: &str) -> String {
        match &self.config.public_url {
            Some(base) => format!("{base}{path}"),
            None => path.to_owned(),
        }
    }
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(req.method().to_string()))
}

fn json_error_handlers(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(|e, req| match e {
                JsonPayloadError::ContentType => ApiError::UnsupportedMediaType(
                    "send a JSON body (Content-Type: application/json)".into(),
                )
                .into(),
                JsonPayloadError::Overflow { limit }
                | JsonPayloadError::OverflowKnownLength { limit, .. } => ApiError::TooLarge {
                    limit: limit as u64,
                }
                .into(),
                e => {
                    let idle = req
                        .app_data::<web::Data<AppState>>()
                        .map_or(std::time::Duration::ZERO, |s| s.config.client_timeout);
                    intake::body_error(&e, "invalid JSON body", idle).into()
                }
            }),
    )
    .app_data(
        web::QueryConfig::default().error_handler(|e, _| {
            ApiError::bad_request(format!("invalid query string: {e}")).into()
        }),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|e, _| ApiError::bad_request(e.to_string()).into()),
    );
}

/// How one method on one path is served: the handler, attached to a route that already has
/// the method's guard.
type Attach = fn(Route) -> Route;

/// Every route, in matching order: `routes()` registers exactly these, `route_table()` lists
/// them, and the OpenAPI document is checked against them, so none can be served undescribed.
/// Entries for one path stay together; each path becomes one resource that answers any other
/// method with `405`.
static ENDPOINTS: &[(Method, &str, Attach)] = &[
    // Files first: they are most of the traffic, and no other pattern overlaps them.
    (Method::GET, "/m/{id}", |r| {
        r.service(fn_service(files::media_file))
    }),
    (Method::HEAD, "/m/{id}", |r| {
        r.service(fn_service(files::media_file))
    }),
    (Method::GET, "/f/{hash}", |r| {
        r.service(fn_service(files::blob_file))
    }),
    (Method::HEAD, "/f/{hash}", |r| {
        r.service(fn_service(files::blob_file))
    }),
    (Method::GET, "/", |r| r.to(assets::index)),
    (Method::HEAD, "/", |r| r.to(assets::index)),
    (Method::GET, "/assets/{version}/{path:.*}", |r| {
        r.to(assets::asset)
    }),
    (Method::HEAD, "/assets/{version}/{path:.*}", |r| {
        r.to(assets::asset)
    }),
    (Method::GET, "/c/{collection}", |r| r.to(collection::page)),
    (Method::HEAD, "/c/{collection}", |r| r.to(collection::page)),
    (Method::GET, "/api/session", |r| r.to(session::show)),
    (Method::POST, "/api/session", |r| r.to(session::create)),
    (Method::DELETE, "/api/session", |r| r.to(session::delete)),
    (Method::GET, "/api/media", |r| r.to(media::list)),
    (Method::POST, "/api/media", |r| r.to(upload::create)),
    (Method::GET, "/api/media/{id}/url", |r| {
        r.to(media::signed_url)
    }),
    (Method::OPTIONS, "/api/uploads", |r| r.to(tus::options)),
    (Method::POST, "/api/uploads", |r| r.to(tus::create)),
    (Method::HEAD, "/api/uploads/{upload_id}", |r| {
        r.to(tus::head)
    }),
    (Method::PATCH, "/api/uploads/{upload_id}", |r| {
        r.to(tus::patch)
    }),
    (Method::DELETE, "/api/uploads/{upload_id}", |r| {
        r.to(tus::delete)
    }),
    (Method::GET, "/api/uploads/{upload_id}", |r| {
        r.to(tus::finished)
    }),
    (Method::GET, "/api/tokens", |r| r.to(tokens::list)),
    (Method::POST, "/api/tokens", |r| r.to(tokens::create)),
    (Method::DELETE, "/api/tokens/{id}", |r| r.to(tokens::revoke)),
    (Method::GET, "/api/collections", |r| r.to(collections::list)),
    (Method::PUT, "/api/collections/{name}", |r| {
        r.to(collections::save)
    }),
    (Method::DELETE, "/api/collections/{name}", |r| {
        r.to(collections::remove)
    }),
    (Method::GET, "/api/media/{id}", |r| r.to(media::get)),
    (Method::PATCH, "/api/media/{id}", |r| r.to(media::patch)),
    (Method::DELETE, "/api/media/{id}", |r| r.to(media::delete)),
    (Method::GET, "/api/backup", |r| r.to(backup::backup)),
    (Method::GET, "/metrics", |r| r.to(observe::metrics)),
    (Method::GET, "/api/status", |r| r.to(status::status)),
    (Method::GET, "/api/health", |r| r.to(health::health)),
    (Method::GET, "/api/openapi.json", |r| {
        r.to(openapi::openapi_json)
    }),
];

/// Every (method, path pattern) the server registers, in actix's pattern syntax
/// (`{path:.*}` is a parameter that may contain slashes).
pub fn route_table() -> &'static [(&'static str, &'static str)] {
    static TABLE: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        ENDPOINTS
            .iter()
            .map(|(method, path, _)| (method.as_str(), *path))
            .collect()
    })
}

/// Every route. Shared by the server and the in-process tests.
/// The application every worker serves, and the in-process tests call: the state, the
/// middleware in its order (outermost last) and the routes.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let s3 = web::Data::new(s3::Front::new(state.clone()));
    App::new()
        .app_data(state)
        .app_data(s3)
        .wrap(actix_web::middleware::from_fn(intake::middleware))
        .wrap(default_headers())
        .wrap(actix_web::middleware::from_fn(tus::headers))
        .wrap(actix_web::middleware::from_fn(cors::middleware))
        .wrap(actix_web::middleware::from_fn(s3::dispatch))
        .wrap(actix_web::middleware::from_fn(observe::middleware))
        .configure(routes)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    json_error_handlers(cfg);
    for group in ENDPOINTS.chunk_by(|a, b| a.1 == b.1) {
        let mut resource = web::resource(group[0].1);
        for (method, _, serve) in group {
            resource = resource.route(serve(web::route().method(method.clone())));
        }
        cfg.service(resource.default_service(web::to(method_not_allowed)));
    }
    cfg.default_service(fn_service(files::legacy_or_not_found));
}

/// Headers on every response.
pub fn default_headers() -> DefaultHeaders {
    DefaultHeaders::new().add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use actix_web::dev::Service;
    use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION};
    use actix_web::test as atest;
    use actix_web::App;
    use clap::Parser;

    use super::*;
    use crate::config::Cli;
    use crate::credentials::secrets::{SessionKey, TokenHash};

    const TOKEN: &str = "in-process-admin-token";
    const PROBED: [Method; 7] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ];

    /// A concrete path for a pattern: every `{name}` or `{name:regex}` filled with a sample.
    fn sample(pattern: &str) -> String {
        let mut out = String::new();
        let mut rest = pattern;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').unwrap() + open;
            let name = rest[open + 1..close].split(':').next().unwrap();
            out.push_str(match name {
                "id" => "01jd8x4w9k6t2m3n4p5q6r7s8t",
                "hash" => "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                "path" => "app.js",
                other => other,
            });
            rest = &rest[close + 1..];
        }
        out + rest
    }

    #[test]
    fn each_path_is_listed_in_one_run_of_the_table() {
        let runs = ENDPOINTS.chunk_by(|a, b| a.1 == b.1).count();
        let paths: BTreeSet<&str> = ENDPOINTS.iter().map(|e| e.1).collect();
        assert_eq!(runs, paths.len(), "a path is split across the table");
        let pairs: BTreeSet<(&str, &str)> = route_table().iter().copied().collect();
        assert_eq!(pairs.len(), ENDPOINTS.len(), "a method is listed twice");
    }

    fn state(dir: &std::path::Path) -> web::Data<AppState> {
        let args = ["shoebox", "--data-dir", dir.to_str().unwrap()];
        let config = Config::from_args(Cli::try_parse_from(args).unwrap().serve).unwrap();
        let store = Arc::new(Store::start(dir, crate::store::catalogue::Role::Server).unwrap());
        web::Data::new(
            AppState::new(
                store,
                config,
                TokenHash::of(TOKEN),
                crate::store::disk::persistence(dir),
                SessionKey::random(),
            )
            .unwrap(),
        )
    }

    #[actix_web::test]
    async fn json_bodies_of_the_wrong_type_or_size_get_415_and_413() {
        let dir = tempfile::tempdir().unwrap();
        let app =
            atest::init_service(App::new().app_data(state(dir.path())).configure(routes)).await;
        let cases = [
            ("text/plain", "{\"token\": \"x\"}".to_owned(), 415),
            (
                "application/json",
                format!("{{\"token\": \"{}\"}}", "x".repeat(70_000)),
                413,
            ),
            ("application/json", "{\"token\": ".to_owned(), 400),
        ];
        for (content_type, body, status) in cases {
            let req = atest::TestRequest::post()
                .uri("/api/session")
                .insert_header((header::CONTENT_TYPE, content_type))
                .set_payload(body)
                .to_request();
            let res = atest::call_service(&app, req).await;
            assert_eq!(res.status().as_u16(), status, "{content_type}");
        }
    }

    /// Walks the real `App`: every (method, path) of the table reaches a resource with exactly
    /// that pattern and is served; every other method on it answers 405.
    #[actix_web::test]
    async fn the_app_serves_exactly_the_route_table() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path());
        let app = atest::init_service(
            App::new()
                .app_data(state)
                .wrap_fn(|req, srv| {
                    let fut = srv.call(req);
                    async move {
                        let mut res = fut.await?;
                        let pattern = res.request().match_pattern().unwrap_or_default();
                        if let Ok(v) = HeaderValue::from_str(&pattern) {
                            res.headers_mut()
                                .insert(HeaderName::from_static("x-pattern"), v);
                        }
                        Ok(res)
                    }
                })
                .configure(routes),
        )
        .await;
        let table: BTreeSet<(&str, &str)> = route_table().iter().copied().collect();
        let paths: BTreeSet<&str> = table.iter().map(|(_, p)| *p).collect();
        for path in paths {
            for method in PROBED {
                let req = atest::TestRequest::default()
                    .method(method.clone())
                    .uri(&sample(path))
                    .insert_header((AUTHORIZATION, format!("Bearer {TOKEN}")))
                    .to_request();
                let res = atest::call_service(&app, req).await;
                let matched = res
                    .headers()
                    .get("x-pattern")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                assert_eq!(matched, path, "{method} {}", sample(path));
                let registered = table.contains(&(method.as_str(), path));
                assert_eq!(
                    res.status() != actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
                    registered,
                    "{method} {path} answered {}",
                    res.status()
                );
            }
        }
        let req = atest::TestRequest::get().uri("/no/such/route").to_request();
        let res = atest::call_service(&app, req).await;
        assert_eq!(res.status(), actix_web::http::StatusCode::NOT_FOUND);
        assert!(res.headers().get("x-pattern").is_none_or(|v| v.is_empty()));
    }
}

/// Fast in-process tests of the handlers; the black-box suite in tests/ stays the judge.
#[cfg(test)]
mod handler_tests;

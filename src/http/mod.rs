//! The HTTP surface: application state, routes and the server's life cycle.

mod assets;
mod auth;
mod backup;
mod collection;
mod cors;
mod error;
mod files;
mod health;
mod limits;
mod media;
mod observe;
mod session;
mod status;
mod tokens;
mod upload;

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{guard, web, App, HttpRequest, HttpResponse, HttpServer};

pub use error::ApiError;

use crate::config::Config;
use crate::secrets::{self, AdminToken, SessionKey, TokenHash};
use crate::signing::UrlKeys;
use crate::store::disk::{self, Persistence};
use crate::store::{Store, StoreError};
use crate::tokens::Tokens;

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
}

impl AppState {
    pub fn new(
        store: Arc<Store>,
        config: Config,
        admin: TokenHash,
        persistence: Persistence,
        session_key: SessionKey,
    ) -> Result<Self, StoreError> {
        Ok(AppState {
            tokens: Tokens::open(store.layout())?,
            url_keys: UrlKeys::load_or_create(store.layout())?,
            store,
            config,
            admin,
            session_key,
            started: Instant::now(),
            assets: assets::AssetIndex::build(),
            persistence,
            metrics: observe::Metrics::new(),
            limiter: limits::Limiter::default(),
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
            .error_handler(|e, _| ApiError::bad_request(format!("invalid JSON body: {e}")).into()),
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

/// Every route. Shared by the server and the in-process tests.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let get_or_head = || guard::Any(guard::Get()).or(guard::Head());
    json_error_handlers(cfg);
    cfg.service(web::resource("/").route(web::route().guard(get_or_head()).to(assets::index)))
        .service(
            web::resource("/assets/{version}/{path:.*}")
                .route(web::route().guard(get_or_head()).to(assets::asset)),
        )
        .service(
            web::resource("/c/{collection}")
                .route(web::route().guard(get_or_head()).to(collection::page))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/session")
                .route(web::get().to(session::show))
                .route(web::post().to(session::create))
                .route(web::delete().to(session::delete))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/media")
                .route(web::get().to(media::list))
                .route(web::post().to(upload::create))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/media/{id}/url")
                .route(web::get().to(media::signed_url))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/tokens")
                .route(web::get().to(tokens::list))
                .route(web::post().to(tokens::create))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/tokens/{id}")
                .route(web::delete().to(tokens::revoke))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/media/{id}")
                .route(web::get().to(media::get))
                .route(web::patch().to(media::patch))
                .route(web::delete().to(media::delete))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/backup")
                .route(web::get().to(backup::backup))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/metrics")
                .route(web::get().to(observe::metrics))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/status")
                .route(web::get().to(status::status))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/health")
                .route(web::get().to(health::health))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/m/{id}")
                .route(
                    web::route()
                        .guard(get_or_head())
                        .service(actix_web::dev::fn_service(files::media_file)),
                )
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/f/{hash}")
                .route(
                    web::route()
                        .guard(get_or_head())
                        .service(actix_web::dev::fn_service(files::blob_file)),
                )
                .default_service(web::to(method_not_allowed)),
        )
        .default_service(actix_web::dev::fn_service(files::legacy_or_not_found));
}

/// Headers on every response.
pub fn default_headers() -> DefaultHeaders {
    DefaultHeaders::new().add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}

/// Opens the store and serves until SIGINT/SIGTERM, then drains requests and flushes.
pub async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let persistence = disk::persistence(&config.data_dir);
    check_persistence(&persistence, &config)?;
    let store = Arc::new(Store::open(&config.data_dir)?.with_reserve(config.disk_reserve)?);
    tracing::info!(data_dir = %config.data_dir.display(), instance = store.instance(), media = store.media_count(), "store opened");
    let admin = secrets::load_or_create_admin_token(store.layout(), config.admin_token.as_deref())?;
    if let AdminToken::Generated(_, token) = &admin {
        announce_generated_token(token, &config);
    }
    let session_key = secrets::load_or_create_session_key(store.layout())?;
    let state = web::Data::new(AppState::new(
        store.clone(),
        config.clone(),
        admin.hash().clone(),
        persistence,
        session_key,
    )?);

    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(default_headers())
            .wrap(actix_web::middleware::from_fn(cors::middleware))
            .wrap(actix_web::middleware::from_fn(observe::middleware))
            .configure(routes)
    })
    // Without TCP_NODELAY every small response waits ~40 ms for Nagle against delayed ACKs.
    .tcp_nodelay(true)
    .shutdown_timeout(config.shutdown_timeout.as_secs());
    if let Some(n) = config.workers {
        server = server.workers(n);
    }
    let server = server.bind(config.listen)?;
    for addr in server.addrs() {
        tracing::info!("shoebox listening on http://{addr}");
    }
    // `run` stops accepting on SIGINT/SIGTERM and gives in-flight requests the shutdown timeout.
    server.run().await?;
    web::block(move || store.flush()).await??;
    tracing::info!("stopped cleanly; metadata flushed");
    Ok(())
}

/// Warns loudly when the data directory would not survive a redeploy; refuses to start then
/// when SHOEBOX_REQUIRE_PERSISTENT_DISK is set.
fn check_persistence(p: &Persistence, config: &Config) -> Result<(), String> {
    if p.persistent {
        tracing::info!(fs = %p.fs_type, mount = %p.mount_point, "{}", p.reason);
        return Ok(());
    }
    let advice =
        "put SHOEBOX_DATA_DIR on a persistent disk (on Render: add a disk to the service and \
                  set SHOEBOX_DATA_DIR to its mount path, e.g. /var/data)";
    if config.require_persistent_disk {
        return Err(format!(
            "refusing to start: {}. Uploads here would vanish. {advice}, or unset \
             SHOEBOX_REQUIRE_PERSISTENT_DISK.",
            p.reason
        ));
    }
    tracing::warn!(
        "NOT PERSISTENT: {}. Uploads may vanish on restart or redeploy; {advice}.",
        p.reason
    );
    Ok(())
}

fn announce_generated_token(token: &str, config: &Config) {
    let port = config.listen.port();
    // Printed, not logged: it is shown once, and log pipelines should never carry it.
    println!(
        "\n  Shoebox generated an admin token. It is shown only this once; only its hash is stored.\n\n      {token}\n\n  Use it as a bearer token, e.g.\n      curl -H \"Authorization: Bearer {token}\" -F file=@photo.jpg http://localhost:{port}/api/media\n  or paste it into the sign-in box of the web page. Lost it? Stop Shoebox and run\n  `shoebox reset-admin-token`, or set SHOEBOX_ADMIN_TOKEN.\n"
    );
}

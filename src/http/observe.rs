//! Observability: one log line per request with a request id (echoed in `X-Request-Id`), and
//! Prometheus metrics at `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::auth;
use super::error::ApiError;
use super::responses::{ServerError, Unauthorized};
use super::AppState;
use crate::credentials::secrets::TokenHash;
use crate::store::{disk, Kind};

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Durations of fsyncs and database flushes, from 50 µs to ~1.6 s, fed by the observer
/// [`Metrics::new`] registers with [`crate::durable`].
static FSYNC_SECONDS: std::sync::LazyLock<Histogram> =
    std::sync::LazyLock::new(|| Histogram::new(exponential_buckets(0.000_05, 2.0, 16)));

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteOnly {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    bytes_in: Family<RouteOnly, Counter>,
    bytes_out: Family<RouteOnly, Counter>,
    uploads: Counter<u64, AtomicU64>,
    dedup_hits: Counter<u64, AtomicU64>,
    variants_generated: Counter<u64, AtomicU64>,
    /// Bytes of resumable-upload chunks received (what arrived, not what was announced).
    pub tus_received: Counter<u64, AtomicU64>,
    partial_uploads: Gauge,
    partial_bytes: Gauge,
    scrub_blobs: Counter<u64, AtomicU64>,
    scrub_bytes: Counter<u64, AtomicU64>,
    scrub_damaged: Counter<u64, AtomicU64>,
    scrub_last_pass: Gauge,
    damaged_blobs: Gauge,
    disk_failing: Gauge,
    blob_count: Gauge,
    blob_bytes: Gauge,
    media_count: Gauge,
    media_bytes: Gauge,
    media_by_kind: Family<KindLabel, Gauge>,
    free_bytes: Gauge,
    meta_bytes: Gauge,
    blob_store_latency: Family<OpLabel, Histogram>,
    blob_store_errors: Family<OpLabel, Counter>,
    database_connections: Family<StateLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// What the blob store's bucket tells of each request.
    pub fn blob_store_observer(&self) -> crate::store::bucket::Observer {
        let (latency, errors) = (
            self.blob_store_latency.clone(),
            self.blob_store_errors.clone(),
        );
        std::sync::Arc::new(move |op, took, ok| {
            let label = OpLabel { op };
            latency.get_or_create(&label).observe(took.as_secs_f64());
            if !ok {
                errors.get_or_create(&label).inc();
            }
        })
    }

    pub fn new() -> Self {
        crate::durable::observe_syncs(|d| FSYNC_SECONDS.observe(d.as_secs_f64()));
        let mut registry = Registry::with_prefix("shoebox");
        let requests = Family::<RouteLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_1, 2.0, 18))
        });
        let bytes_in = Family::<RouteOnly, Counter>::default();
        let bytes_out = Family::<RouteOnly, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        registry.register(
            "http_request_bytes",
            "Request body bytes received (by Content-Length)",
            bytes_in.clone(),
        );
        registry.register(
            "http_response_bytes",
            "Response body bytes sent (sized bodies)",
            bytes_out.clone(),
        );
        let m = Metrics {
            requests,
            latency,
            bytes_in,
            bytes_out,
            uploads: Counter::default(),
            dedup_hits: Counter::default(),
            variants_generated: Counter::default(),
            tus_received: Counter::default(),
            partial_uploads: Gauge::default(),
            partial_bytes: Gauge::default(),
            scrub_blobs: Counter::default(),
            scrub_bytes: Counter::default(),
            scrub_damaged: Counter::default(),
            scrub_last_pass: Gauge::default(),
            damaged_blobs: Gauge::default(),
            disk_failing: Gauge::default(),
            blob_count: Gauge::default(),
            blob_bytes: Gauge::default(),
            media_count: Gauge::default(),
            media_bytes: Gauge::default(),
            media_by_kind: Family::default(),
            free_bytes: Gauge::default(),
            meta_bytes: Gauge::default(),
            blob_store_latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
            }),
            blob_store_errors: Family::default(),
            database_connections: Family::default(),
            registry,
        };
        let mut m = m;
        let r = &mut m.registry;
        r.register("uploads", "Media created since start", m.uploads.clone());
        r.register(
            "blob_store_request_duration_seconds",
            "Requests to the blob store's bucket (SHOEBOX_BLOB_STORE) by operation",
            m.blob_store_latency.clone(),
        );
        r.register(
            "blob_store_errors",
            "Requests to the blob store's bucket that failed, by operation",
            m.blob_store_errors.clone(),
        );
        r.register(
            "dedup_hits",
            "Uploads whose bytes were already stored",
            m.dedup_hits.clone(),
        );
        r.register(
            "variants_generated",
            "Image variants made since start (each is made once, then served from variants/)",
            m.variants_generated.clone(),
        );
        r.register(
            "tus_received_bytes",
            "Bytes of resumable (tus) upload chunks received since start, as they arrived",
            m.tus_received.clone(),
        );
        r.register(
            "partial_uploads",
            "Resumable uploads in progress in uploads/",
            m.partial_uploads.clone(),
        );
        r.register(
            "partial_upload_bytes",
            "Bytes that resumable uploads in progress hold",
            m.partial_bytes.clone(),
        );
        r.register(
            "scrub_blobs",
            "Blobs the scrub re-hashed since start",
            m.scrub_blobs.clone(),
        );
        r.register(
            "scrub_read_bytes",
            "Bytes the scrub read since start",
            m.scrub_bytes.clone(),
        );
        r.register(
            "scrub_damaged",
            "Damaged blobs the scrub found since start",
            m.scrub_damaged.clone(),
        );
        r.register(
            "scrub_last_pass_timestamp_seconds",
            "When the last finished scrub pass started (0: never)",
            m.scrub_last_pass.clone(),
        );
        r.register(
            "damaged_blobs",
            "Blobs found damaged and no longer served",
            m.damaged_blobs.clone(),
        );
        r.register(
            "disk_failing",
            "1 while a write error holds uploads back",
            m.disk_failing.clone(),
        );
        r.register(
            "blobs",
            "Distinct blobs that media records use (orphan blob files are not counted)",
            m.blob_count.clone(),
        );
        r.register(
            "blob_bytes",
            "Bytes of the blobs that media records use, each counted once",
            m.blob_bytes.clone(),
        );
        r.register("media", "Media records", m.media_count.clone());
        r.register(
            "media_bytes",
            "Sizes of the media records added up, as uploaded",
            m.media_bytes.clone(),
        );
        r.register(
            "media_by_kind",
            "Media records of each kind",
            m.media_by_kind.clone(),
        );
        r.register(
            "disk_free_bytes",
            "Free bytes on the data directory's disk",
            m.free_bytes.clone(),
        );
        r.register(
            "sled_bytes",
            "Size of the metadata database on disk",
            m.meta_bytes.clone(),
        );
        r.register(
            "database_connections",
            "Connections to PostgreSQL this process holds, idle or in use (records in PostgreSQL)",
            m.database_connections.clone(),
        );
        r.register(
            "fsync_duration_seconds",
            "Duration of fsyncs and database flushes",
            FSYNC_SECONDS.clone(),
        );
        m
    }

    fn observe(
        &self,
        method: &str,
        route: &str,
        status: u16,
        seconds: f64,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let labels = RouteLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
        let route = RouteOnly {
            route: route.to_owned(),
        };
        self.bytes_in.get_or_create(&route).inc_by(bytes_in);
        self.bytes_out.get_or_create(&route).inc_by(bytes_out);
    }
}

/// A method as a metric label: the methods HTTP defines, and `other` for anything a client
/// makes up, so that no request can add a label value (and memory) of its own choosing. The
/// route label is the matched pattern or `(unmatched)`, and the status is the server's: both
/// bounded too.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// A client's request id when it is short and plain, otherwise a new one.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 8]>()))
}

/// GET or HEAD of a stored file, by its route (or an imported file's old path).
fn is_file_read(method: &Method, route: &str) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
        && matches!(route, "/f/{hash}" | "/m/{id}" | "(unmatched)")
}

/// Logs and measures every request.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let id = request_id(&req);
    let bytes_in = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let mut res = next.call(req).await?;
    let method = res.request().method().clone();
    let route = match res.request().match_pattern() {
        Some(pattern) => pattern,
        None if actix_web::HttpMessage::extensions(res.request())
            .contains::<super::s3::Served>() =>
        {
            super::s3::ROUTE.to_owned()
        }
        None => "(unmatched)".to_owned(),
    };
    let status = res.status().as_u16();
    let bytes_out = match res.response().body().size() {
        BodySize::Sized(n) => n,
        _ => 0,
    };
    let elapsed = start.elapsed();
    // The cause of an error answer goes on the same line as its request id, so a `500` that
    // told the client only "the server log has details" can be found by its X-Request-Id.
    let error = res.response().error().map(ToString::to_string);
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID.clone(), v);
    }
    if let Some(state) = state {
        state.metrics.observe(
            method_label(&method),
            &route,
            status,
            elapsed.as_secs_f64(),
            bytes_in,
            bytes_out,
        );
    }
    // The path is logged, never headers or bodies: tokens travel in headers.
    macro_rules! access {
        ($level:ident) => {
            tracing::$level!(
                target: "shoebox::access",
                request_id = %id,
                method = %method,
                route = %route,
                path = %res.request().path(),
                status,
                bytes_in,
                bytes_out,
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                error = error.as_deref(),
                "request"
            )
        };
    }
    // Files are read far more often than anything else happens; their successful reads are
    // counted in the metrics and logged only at debug level (RUST_LOG=shoebox::access=debug),
    // like a static file server's. Every other request, and every failed read, is logged.
    if is_file_read(&method, &route) && status < 400 {
        access!(debug);
    } else {
        access!(info);
    }
    Ok(res)
}

/// Prometheus metrics.
///
/// The admin token, or SHOEBOX_METRICS_TOKEN, may scrape. OpenMetrics text: requests, latency and bytes by route, uploads,
/// deduplicated uploads, blobs that records use, media (by kind), free disk space, database size and fsync latency.
/// Every figure comes from counters, never from a scan of the store.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The metrics",
         content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8",
         body = String),
        (status = 401, response = Unauthorized),
        (status = 500, response = ServerError),
    )
)]
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let metrics_token = state.config.metrics_token.as_deref().map(TokenHash::of);
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let allowed = match (&metrics_token, &presented) {
        (Some(h), Some(t)) if h.matches(t) => true,
        _ => {
            let caller = auth::require_token(&req, &state)?;
            auth::require(
                &caller,
                caller.is_admin(),
                "this needs an admin or metrics token",
            )?;
            true
        }
    };
    if !allowed {
        return Err(ApiError::Unauthorized(
            "this needs the admin or metrics token",
        ));
    }
    let store = state.store.clone();
    let (stats, space, partial) = web::block(move || {
        let stats = store.stats()?;
        let space = disk::space(store.layout().root())?;
        let partial = store.partials().usage()?;
        Ok::<_, crate::store::StoreError>((stats, space, partial))
    })
    .await??;
    let m = &state.metrics;
    let c = state.store.counters();
    // Counters mirror the store's running totals.
    let sync = |counter: &Counter<u64, AtomicU64>, total: u64| {
        let now = counter.get();
        if total > now {
            counter.inc_by(total - now);
        }
    };
    sync(&m.uploads, c.uploads.load(Ordering::Relaxed));
    sync(&m.dedup_hits, c.dedup_hits.load(Ordering::Relaxed));
    sync(
        &m.variants_generated,
        state.variants.generated.load(Ordering::Relaxed),
    );
    let scrub = state.store.scrub_state();
    sync(&m.scrub_blobs, scrub.blobs_total.load(Ordering::Relaxed));
    sync(&m.scrub_bytes, scrub.bytes_total.load(Ordering::Relaxed));
    sync(
        &m.scrub_damaged,
        scrub.damaged_total.load(Ordering::Relaxed),
    );
    let last_pass = state
        .store
        .last_scrub()
        .and_then(|p| p.started())
        .map_or(0, |t| t.unix_timestamp());
    m.scrub_last_pass.set(last_pass);
    m.damaged_blobs.set(state.store.damaged_blobs() as i64);
    m.disk_failing
        .set(i64::from(state.store.failing().is_some()));
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let t = &stats.totals;
    m.blob_count.set(as_i64(t.blobs));
    m.blob_bytes.set(as_i64(t.blob_bytes));
    m.media_count.set(as_i64(t.media));
    m.media_bytes.set(as_i64(t.media_bytes));
    for kind in Kind::ALL {
        m.media_by_kind
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .set(as_i64(t.kind(kind)));
    }
    m.free_bytes.set(as_i64(space.free_bytes));
    m.partial_uploads.set(as_i64(partial.count));
    m.partial_bytes.set(as_i64(partial.bytes));
    m.meta_bytes.set(as_i64(stats.meta_bytes));
    if let Some(pg) = state.store.database() {
        let (size, idle) = pg.pool_status();
        for (state, n) in [("idle", idle), ("in_use", size.saturating_sub(idle))] {
            m.database_connections
                .get_or_create(&StateLabel { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &m.registry)
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text))
}

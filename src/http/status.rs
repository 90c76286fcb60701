//! `GET /api/status` (admin): storage facts an operator needs at a glance. Every figure is
//! read from counters and a few keys, never from a scan, so the page costs the same with a
//! million records as with ten.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth;
use super::error::ApiError;
use super::responses::{ServerError, Unauthorized};
use super::AppState;
use crate::store::catalogue::Settlement;
use crate::store::disk::{self, Persistence};
use crate::store::scrub::ScrubPass;
use crate::store::{Kind, Totals as StoreTotals};

/// Storage facts.
#[derive(Serialize, ToSchema)]
pub struct Status {
    version: &'static str,
    uptime_seconds: u64,
    /// The data directory, resolved.
    data_dir: String,
    /// The store's instance id, from its `FORMAT` file.
    instance: String,
    /// Whether the data directory would survive a restart or redeploy, and why.
    persistent: Persistence,
    disk: DiskStatus,
    /// Media records, and their sizes added up as uploaded (a file uploaded twice counts
    /// twice).
    media: MediaTotals,
    /// Where the blobs live: `disk` (files under the data directory) or `s3://BUCKET at
    /// ENDPOINT` (`SHOEBOX_BLOB_STORE`).
    blob_store: String,
    /// Where the records live: `sled` (with `records/` under the data directory) or
    /// `postgresql` (`SHOEBOX_DATABASE_URL`).
    metadata: &'static str,
    /// Distinct stored files (blobs) that records use, and their sizes, each counted once.
    /// Blob files that no record uses, which a crash may leave, are not counted: `shoebox
    /// verify` lists them and `shoebox gc` removes them.
    blobs: Totals,
    /// Size of the metadata database on disk.
    meta_bytes: u64,
    /// Resumable uploads in progress under `uploads/` (not yet media), and the bytes they hold.
    partial_uploads: Totals,
    /// When `shoebox verify` last ran, and its outcome.
    #[schema(required = true)]
    last_verify: Option<String>,
    /// When the last backup was taken.
    #[schema(required = true)]
    last_backup: Option<String>,
    /// What this run's start-up found in the data directory.
    start: StartStatus,
    scrub: ScrubStatus,
    /// Whether videos get posters and lengths, and audio lengths: on when ffmpeg and ffprobe
    /// were found at start-up, off otherwise (uploads work either way).
    posters: bool,
    s3: S3Status,
}

/// The S3 API: where it answers, and what it shows.
#[derive(Serialize, ToSchema)]
pub struct S3Status {
    /// Whether the S3 API is served (`SHOEBOX_S3_PORT` or `SHOEBOX_S3_HOST` is set).
    enabled: bool,
    #[schema(required = true)]
    port: Option<u16>,
    #[schema(required = true)]
    host: Option<String>,
    #[schema(required = true)]
    domain: Option<String>,
    /// Collections exposed as buckets (besides `default`, the media without a collection).
    buckets: u64,
    /// Collections whose names are not valid bucket names (spaces, capitals, Unicode), which
    /// S3 does not show; rename them to reach them over S3.
    collections_not_exposed: u64,
    /// Multipart uploads in progress.
    multipart_uploads: u64,
}

/// The background scrub, which re-reads every blob to find damage.
#[derive(Serialize, ToSchema)]
pub struct ScrubStatus {
    enabled: bool,
    #[schema(required = true)]
    interval_seconds: Option<u64>,
    rate_bytes_per_second: u64,
    /// The last finished pass (kept across restarts).
    #[schema(required = true)]
    last_pass: Option<ScrubPass>,
    /// The pass running now, so far.
    #[schema(required = true)]
    running: Option<ScrubPass>,
    /// Blobs found damaged and no longer served (`500 blob_damaged`) until they are restored.
    damaged_blobs: u64,
}

#[derive(Serialize, ToSchema)]
pub struct StartStatus {
    /// What the start-up settled of the writes a crash left in flight, if anything.
    #[schema(required = true)]
    settled: Option<Settlement>,
    /// Set when the database disagreed with `records/` and was rebuilt from it.
    #[schema(required = true)]
    rebuilt: Option<Rebuilt>,
}

#[derive(Serialize, ToSchema)]
pub struct Rebuilt {
    /// How the old database disagreed with `records/`.
    reason: String,
    /// What the rebuild did, and where the old database was kept.
    summary: String,
}

#[derive(Serialize, ToSchema)]
pub struct DiskStatus {
    free_bytes: u64,
    total_bytes: u64,
    /// Free space kept for the database; uploads get `507` below it.
    reserve_bytes: u64,
    /// Space held in `space-reserve` for edits, deletes and the database when something else
    /// fills the disk; given back (`space_reserve_held` false) while the disk is full.
    space_reserve_bytes: u64,
    space_reserve_held: bool,
    /// The write error that holds uploads back until a health probe passes.
    #[schema(required = true)]
    failing: Option<String>,
    accepting_uploads: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Totals {
    count: u64,
    bytes: u64,
}

#[derive(Serialize, ToSchema)]
pub struct MediaTotals {
    count: u64,
    bytes: u64,
    by_kind: KindCounts,
}

/// Media records of each kind.
#[derive(Serialize, ToSchema)]
pub struct KindCounts {
    image: u64,
    video: u64,
    audio: u64,
    document: u64,
    other: u64,
}

impl MediaTotals {
    fn of(t: &StoreTotals) -> Self {
        MediaTotals {
            count: t.media,
            bytes: t.media_bytes,
            by_kind: KindCounts {
                image: t.kind(Kind::Image),
                video: t.kind(Kind::Video),
                audio: t.kind(Kind::Audio),
                document: t.kind(Kind::Document),
                other: t.kind(Kind::Other),
            },
        }
    }
}

/// Storage status (admin).
///
/// Persistence verdict, free space and reserve, counts and sizes, last verify and backup.
#[utoipa::path(
    get,
    path = "/api/status",
    operation_id = "status",
    tag = "operations",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Storage facts", body = Status),
        (status = 401, response = Unauthorized),
        (status = 500, response = ServerError),
    )
)]
pub async fn status(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::require_token(&req, &state)?;
    auth::require(&caller, caller.is_admin(), "this needs an admin token")?;
    let store = state.store.clone();
    let (stats, space, partial, collections, multipart) = web::block(move || {
        let stats = store.stats()?;
        let space = disk::space(store.layout().root())?;
        let partial = store.partials().usage()?;
        let mut collections: std::collections::BTreeSet<String> = store
            .collections()
            .list()?
            .into_iter()
            .map(|c| c.name)
            .collect();
        collections.extend(store.buckets_in_use()?.into_iter().flatten());
        let multipart = store.multipart().list()?.len() as u64;
        Ok::<_, crate::store::StoreError>((stats, space, partial, collections, multipart))
    })
    .await??;
    let exposed = collections
        .iter()
        .filter(|c| super::s3::is_bucket_name(c))
        .count() as u64;
    let data_dir = state
        .config
        .data_dir
        .canonicalize()
        .unwrap_or_else(|_| state.config.data_dir.clone());
    let reserve = state.store.reserve();
    let failing = state.store.failing();
    let started = state.store.started();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Status {
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: state.started.elapsed().as_secs(),
            data_dir: data_dir.display().to_string(),
            instance: state.store.instance().to_owned(),
            persistent: state.persistence.clone(),
            disk: DiskStatus {
                free_bytes: space.free_bytes,
                total_bytes: space.total_bytes,
                reserve_bytes: reserve,
                space_reserve_bytes: state.store.space_reserve().0,
                space_reserve_held: state.store.space_reserve().1,
                accepting_uploads: space.free_bytes >= reserve && failing.is_none(),
                failing,
            },
            media: MediaTotals::of(&stats.totals),
            blob_store: state
                .store
                .blobs()
                .bucket()
                .map_or_else(|| "disk".to_owned(), |b| b.describe()),
            metadata: if state.store.database().is_some() {
                "postgresql"
            } else {
                "sled"
            },
            blobs: Totals {
                count: stats.totals.blobs,
                bytes: stats.totals.blob_bytes,
            },
            meta_bytes: stats.meta_bytes,
            partial_uploads: Totals {
                count: partial.count,
                bytes: partial.bytes,
            },
            posters: state.variants.posters,
            s3: S3Status {
                enabled: super::s3::enabled(&state.config),
                port: state.config.s3_port,
                host: state.config.s3_host.clone(),
                domain: state.config.s3_domain.clone(),
                buckets: exposed,
                collections_not_exposed: collections.len() as u64 - exposed,
                multipart_uploads: multipart,
            },
            last_verify: state.store.last_verify(),
            last_backup: state.store.last_backup(),
            scrub: ScrubStatus {
                // Blobs in a bucket are the bucket's to scrub.
                enabled: state.config.scrub_interval.is_some()
                    && state.store.blobs().disk().is_some(),
                interval_seconds: state.config.scrub_interval.map(|d| d.as_secs()),
                rate_bytes_per_second: state.config.scrub_rate,
                last_pass: state.store.last_scrub(),
                running: state.store.scrub_state().current(),
                damaged_blobs: state.store.damaged_blobs() as u64,
            },
            start: StartStatus {
                settled: (!started.settlement.is_empty()).then(|| started.settlement.clone()),
                rebuilt: started.rebuilt.as_ref().map(|(damage, summary)| Rebuilt {
                    reason: damage.to_string(),
                    summary: summary.clone(),
                }),
            },
        }))
}

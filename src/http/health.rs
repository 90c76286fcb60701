//! `GET /api/health`: a deep check that the data directory and the metadata database accept
//! durable writes right now.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use super::responses::ServerError;
use super::AppState;
use crate::store::StoreError;

/// The health report, with `200` or `503`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `fail` (503) when the disk or the database refuses durable writes; `degraded` when the
    /// disk is past its reserve, so uploads are refused but everything else works.
    status: HealthStatus,
    version: &'static str,
    checks: HealthChecks,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Degraded,
    Fail,
}

#[derive(Serialize, ToSchema)]
pub struct HealthChecks {
    /// A probe file written, fsynced, read back and removed in the data directory.
    data_dir: Check,
    /// A probe key written, flushed and read back in the database.
    metadata: Check,
    /// A probe object written, read back and removed in the blob store's bucket; absent when
    /// blobs are files in the data directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    blob_store: Option<Check>,
    free_space: SpaceCheck,
}

#[derive(Serialize, ToSchema)]
pub struct Check {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Check {
    fn of(r: &Result<(), StoreError>) -> Check {
        Check {
            ok: r.is_ok(),
            error: r.as_ref().err().map(ToString::to_string),
        }
    }
}

/// Whether uploads have room. No byte counts: the health check is public, and exact free
/// space would tell an uploader whether the bytes of a private file are already stored (a
/// duplicate costs no space). The admin's `/api/status` has the figures.
#[derive(Serialize, ToSchema)]
pub struct SpaceCheck {
    /// False when free space is below the reserve.
    ok: bool,
}

/// Deep health check.
///
/// Writes, fsyncs, reads back and removes a probe in the data directory and in the database.
/// Platforms should use it as their health check.
#[utoipa::path(
    get,
    path = "/api/health",
    operation_id = "health",
    tag = "operations",
    responses(
        (status = 200, description = "Healthy (`ok`), or `degraded`: past the disk reserve",
         body = Health),
        (status = 503, description = "The data directory or the database refuses writes",
         body = Health),
        (status = 500, response = ServerError),
    )
)]
pub async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let (disk, meta, bucket, space) = web::block(move || {
        let (disk, meta) = store.probe();
        (disk, meta, store.probe_blob_store(), store.check_space(0))
    })
    .await?;
    let ok = disk.is_ok() && meta.is_ok() && bucket.as_ref().is_none_or(Result::is_ok);
    // Past the reserve the service still reads, edits and deletes: degraded, not down, so a
    // platform health check does not restart it in a loop.
    let space_check = SpaceCheck { ok: space.is_ok() };
    let bucket_err = bucket.as_ref().and_then(|b| b.as_ref().err());
    for err in [disk.as_ref().err(), meta.as_ref().err(), bucket_err]
        .into_iter()
        .flatten()
    {
        tracing::error!(error = %err, "health check failed");
    }
    let body =
        Health {
            status: if !ok {
                HealthStatus::Fail
            } else if space.is_err() {
                HealthStatus::Degraded
            } else {
                HealthStatus::Ok
            },
            version: env!("CARGO_PKG_VERSION"),
            checks: HealthChecks {
                data_dir: Check::of(&disk),
                metadata: match state.store.database() {
                    // As for the blob store: the log has the server's address and the cause.
                    Some(_) => Check {
                        ok: meta.is_ok(),
                        error: meta.as_ref().err().map(|_| {
                            "the database is unavailable (the server's log says why)".into()
                        }),
                    },
                    None => Check::of(&meta),
                },
                // The public check says no more than that: the log has the endpoint and the cause.
                blob_store: bucket.as_ref().map(|r| Check {
                    ok: r.is_ok(),
                    error: r.as_ref().err().map(|_| {
                        "the blob store is unavailable (the server's log says why)".into()
                    }),
                }),
                free_space: space_check,
            },
        };
    let mut res = if ok {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    Ok(res
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body))
}

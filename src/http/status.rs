//! `GET /api/status` (admin): storage facts an operator needs at a glance.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::auth;
use super::error::ApiError;
use super::AppState;
use crate::store::disk;

pub async fn status(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::require_token(&req, &state)?;
    auth::require(&caller, caller.is_admin(), "this needs an admin token")?;
    let store = state.store.clone();
    let (stats, space) = web::block(move || {
        let stats = store.stats()?;
        let space = disk::space(store.layout().root())?;
        Ok::<_, crate::store::StoreError>((stats, space))
    })
    .await??;
    let data_dir = state
        .config
        .data_dir
        .canonicalize()
        .unwrap_or_else(|_| state.config.data_dir.clone());
    let reserve = state.store.reserve();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": state.started.elapsed().as_secs(),
            "data_dir": data_dir.display().to_string(),
            "instance": state.store.instance(),
            "persistent": state.persistence,
            "disk": {
                "free_bytes": space.free_bytes,
                "total_bytes": space.total_bytes,
                "reserve_bytes": reserve,
                "accepting_uploads": space.free_bytes >= reserve,
            },
            "media": { "count": stats.media_count, "bytes": stats.media_bytes },
            "blobs": { "count": stats.blob_count, "bytes": stats.blob_bytes },
            "meta_bytes": stats.meta_bytes,
            "last_verify": state.store.last_verify(),
            "last_backup": state.store.last_backup(),
        })))
}

//! `GET /api/health`: a deep check that the data directory and the metadata database accept
//! durable writes right now.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::error::ApiError;
use super::AppState;

pub async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let (disk, meta, space) =
        web::block(move || (store.probe_disk(), store.probe_meta(), store.check_space(0))).await?;
    let check = |r: &Result<(), crate::store::StoreError>| match r {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    };
    let ok = disk.is_ok() && meta.is_ok();
    // Past the reserve the service still reads, edits and deletes: degraded, not down, so a
    // platform health check does not restart it in a loop.
    let space_check = match &space {
        Ok(s) => {
            json!({ "ok": true, "free_bytes": s.free_bytes, "reserve_bytes": state.store.reserve() })
        }
        Err(e) => {
            json!({ "ok": false, "error": e.to_string(), "reserve_bytes": state.store.reserve() })
        }
    };
    for err in [disk.as_ref().err(), meta.as_ref().err()]
        .into_iter()
        .flatten()
    {
        tracing::error!(error = %err, "health check failed");
    }
    let body = json!({
        "status": if !ok { "fail" } else if space.is_err() { "degraded" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "checks": { "data_dir": check(&disk), "metadata": check(&meta), "free_space": space_check },
    });
    let mut res = if ok {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    Ok(res
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body))
}

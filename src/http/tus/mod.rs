//! Resumable uploads: a tus 1.0.0 server at `/api/uploads` (<https://tus.io/protocols/resumable-upload>)
//! with the extensions creation, creation-with-upload, creation-defer-length, termination,
//! checksum (sha1, sha256) and expiration.
//!
//! An upload is created with `POST`, filled with `PATCH`es at its offset, and asked about
//! with `HEAD`. Its bytes and offset live under `uploads/` (see
//! [`partial`](crate::store::partial)): a `204` to a `PATCH` means its bytes are fsynced and
//! the new offset recorded. When the last byte arrives, the upload goes through the same
//! ingest as `POST /api/media` (type check, metadata stripping, the durable commit), and that
//! `PATCH`'s `204` carries `Shoebox-Media-Id`.
//!
//! One request works on an upload at a time. A newer request for an upload (a client that
//! reconnected while its old request still hangs) takes it over: the older one stops, keeps
//! what it received, and lets go (as tusd does).

mod body;
pub mod headers;
mod metadata;
pub mod routes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web;
use time::OffsetDateTime;
use tokio::sync::{Notify, OwnedMutexGuard};

pub use routes::{create, delete, finished, head, options, patch};

use super::error::ApiError;
use super::AppState;
use crate::store::partial::PartialUpload;
use crate::store::{MediaId, MediaRecord};

/// The protocol version spoken, and the only one accepted.
pub const VERSION: &str = "1.0.0";
pub const EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration";
pub const CHECKSUMS: &str = "sha1,sha256";
/// The media type of a chunk.
pub const CHUNK_TYPE: &str = "application/offset+octet-stream";

/// Unfinished uploads one caller may have at once.
pub const MAX_IN_PROGRESS: usize = 1000;

/// How long a request waits for another one to let go of an upload.
const TAKEOVER_WAIT: Duration = Duration::from_secs(15);

/// `Tus-Resumable` on every answer under `/api/uploads`, errors included; and
/// `X-HTTP-Method-Override` on a `POST` there, which tus servers must honour for clients that
/// cannot send `PATCH` or `DELETE` (it is applied before routing, so the request is then the
/// method it names in every respect, authentication included).
pub async fn headers(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let ours = is_tus_path(req.path());
    if ours && req.method() == Method::POST {
        let wanted = req
            .headers()
            .get("x-http-method-override")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Method::from_bytes(v.trim().to_ascii_uppercase().as_bytes()).ok());
        if let Some(method @ (Method::PATCH | Method::DELETE | Method::HEAD)) = wanted {
            req.head_mut().method = method;
        }
    }
    let mut res = next.call(req).await?;
    if ours {
        res.headers_mut().insert(
            HeaderName::from_static("tus-resumable"),
            HeaderValue::from_static(VERSION),
        );
    }
    Ok(res)
}

/// `/api/uploads` and the uploads under it.
pub fn is_tus_path(path: &str) -> bool {
    path == "/api/uploads" || path.starts_with("/api/uploads/")
}

/// The uploads that requests are working on.
#[derive(Default)]
pub struct Tus {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    lock: Arc<tokio::sync::Mutex<()>>,
    /// Notified to ask the request that holds the lock to let go.
    holder: Mutex<Option<Arc<Notify>>>,
}

/// One request's hold on an upload; `stop` is notified when another request wants it.
pub struct Held {
    _guard: OwnedMutexGuard<()>,
    slot: Arc<Slot>,
    pub stop: Arc<Notify>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut holder = lock(&self.slot.holder);
        if holder.as_ref().is_some_and(|n| Arc::ptr_eq(n, &self.stop)) {
            *holder = None;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Tus {
    /// Takes hold of an upload, asking whoever holds it to let go, and waiting for that.
    pub async fn hold(&self, id: &str) -> Result<Held, ApiError> {
        let slot = lock(&self.slots).entry(id.to_owned()).or_default().clone();
        let deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
        let acquire = slot.lock.clone().lock_owned();
        tokio::pin!(acquire);
        let guard = loop {
            if let Some(holder) = lock(&slot.holder).as_ref() {
                holder.notify_one();
            }
            // Ask again now and then: the holder may have changed meanwhile.
            let step = tokio::time::sleep(Duration::from_millis(250));
            tokio::select! {
                guard = &mut acquire => break guard,
                _ = step => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(ApiError::Locked);
                    }
                }
            }
        };
        let stop = Arc::new(Notify::new());
        *lock(&slot.holder) = Some(stop.clone());
        Ok(Held {
            _guard: guard,
            slot,
            stop,
        })
    }

    /// Whether a request holds this upload now.
    fn busy(&self, id: &str) -> bool {
        lock(&self.slots)
            .get(id)
            .is_some_and(|s| s.lock.try_lock().is_err())
    }

    /// Forgets the slots no request uses.
    fn prune(&self) {
        lock(&self.slots).retain(|_, s| Arc::strong_count(s) > 1 || s.lock.try_lock().is_err());
    }
}

/// When an upload expires (or, finished, is forgotten).
pub fn expires_at(upload: &PartialUpload, state: &AppState) -> OffsetDateTime {
    upload.updated_at + state.config.upload_expiry
}

/// The owner's name for an upload: the caller's role (`admin`, or `token_<id>`), so that the
/// admin token and an admin's session share their uploads.
fn owner_of(caller: &super::auth::Caller) -> Option<String> {
    caller.role()
}

/// The record's owner for an upload's owner: the API token's id, as `POST /api/media` sets it.
fn record_owner(upload_owner: &str) -> Option<String> {
    upload_owner.strip_prefix("token_").map(str::to_owned)
}

/// Turns a whole upload into media, through the same ingest as `POST /api/media`; a blocking
/// call. A type this server does not accept ends the upload.
fn ingest(state: &AppState, upload: &mut PartialUpload) -> Result<MediaRecord, ApiError> {
    let store = &state.store;
    let partials = store.partials();
    // The record's id is chosen, and noted durably, before the record is made: a crash after
    // the record but before the upload says so finds the record here instead of making it
    // twice.
    let id = match upload.reserved_id.as_deref().map(str::parse::<MediaId>) {
        Some(Ok(id)) => id,
        _ => {
            let id = store.new_media_id();
            upload.reserved_id = Some(id.to_string());
            partials.save(upload)?;
            id
        }
    };
    if let Some(record) = store.get(id)? {
        partials.completed(upload, &record.id.to_string(), OffsetDateTime::now_utc())?;
        return Ok(record);
    }
    // Checked at creation; `keep_metadata` was allowed then, or refused.
    let meta = metadata::parse(&upload.metadata, true, state.config.keep_metadata)?;
    let blob = partials.stage(upload)?;
    let mut item =
        crate::store::NewMedia::new(blob, meta.filename, meta.filetype.as_deref(), meta.fields);
    item.id = Some(id);
    if let Err(e) = super::upload::accept(state, &mut item, record_owner(&upload.owner)) {
        partials.remove(&upload.id)?;
        return Err(e);
    }
    let item = super::upload::strip_metadata(store, item, meta.keep)?;
    let record = match store.create(vec![item]) {
        Ok(mut made) => made
            .pop()
            .ok_or_else(|| ApiError::Internal("the commit returned no record".into()))?,
        // With uploads shared by instances, another one may have completed this upload
        // meanwhile, under the same reserved id: its record is this upload's.
        Err(e) => store.get(id)?.ok_or(e)?,
    };
    partials.completed(upload, &record.id.to_string(), OffsetDateTime::now_utc())?;
    Ok(record)
}

/// With an allow-list of types: once an upload's first bytes are in (its first 64 KiB, or all
/// of it), its type is sniffed as it will be at completion, and an upload of a type this
/// server does not accept ends there (`415`), rather than after the client sent every byte.
/// `before` is the offset before the last chunk.
fn check_type(state: &AppState, upload: &PartialUpload, before: u64) -> Result<(), ApiError> {
    if state.config.allowed_types.is_empty() {
        return Ok(());
    }
    let enough = upload
        .length
        .unwrap_or(u64::MAX)
        .min(crate::store::blobs::HEAD_BYTES as u64);
    if before >= enough || upload.offset < enough {
        return Ok(());
    }
    let partials = state.store.partials();
    let meta = metadata::parse(&upload.metadata, true, false)?;
    let head = partials.head(upload)?;
    let found = crate::store::sniff::content_type(&head, &meta.filename, meta.filetype.as_deref());
    let refused = super::upload::type_allowed(state, &found, &meta.filename);
    if refused.is_err() {
        partials.remove(&upload.id)?;
    }
    refused
}

/// Completes a whole upload that has no media yet (its last `PATCH` was interrupted after its
/// bytes were acknowledged), and returns its record.
async fn complete(
    state: &web::Data<AppState>,
    upload: PartialUpload,
) -> Result<(PartialUpload, MediaRecord), ApiError> {
    let s = state.clone();
    let done = web::block(move || {
        let mut upload = upload;
        ingest(&s, &mut upload).map(|r| (upload, r))
    })
    .await?;
    match done {
        Ok((upload, record)) => {
            super::variants::Variants::learn(state, &record);
            Ok((upload, record))
        }
        Err(ApiError::Store(e)) => {
            state.store.note_error(&e);
            Err(e.into())
        }
        Err(e) => Err(e),
    }
}

/// Removes expired uploads now and then, and completes uploads whose last chunk arrived
/// before a stop but whose media was not made.
pub fn spawn_sweeper(state: web::Data<AppState>) {
    let every =
        (state.config.upload_expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(every);
        loop {
            tick.tick().await;
            let s = state.clone();
            let swept = web::block(move || {
                let now = OffsetDateTime::now_utc();
                let gone = s
                    .store
                    .partials()
                    .sweep(now, s.config.upload_expiry, |id| s.tus.busy(id))?;
                // S3 multipart uploads expire as resumable uploads do.
                let parts = s.store.multipart().sweep(s.config.upload_expiry)?;
                if parts > 0 {
                    tracing::info!(uploads = parts, "removed expired S3 multipart uploads");
                }
                let list = s.store.partials().list()?;
                Ok::<_, crate::store::StoreError>((gone, list))
            })
            .await;
            state.tus.prune();
            let list = match swept {
                Ok(Ok((gone, list))) => {
                    if gone.count > 0 {
                        tracing::info!(
                            uploads = gone.count,
                            bytes = gone.bytes,
                            "removed expired resumable uploads"
                        );
                    }
                    list
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not sweep uploads/");
                    continue;
                }
                Err(_) => continue,
            };
            for upload in list {
                if !upload.is_whole() || upload.media_id.is_some() {
                    continue;
                }
                let Ok(_held) = state.tus.hold(&upload.id).await else {
                    continue;
                };
                // Re-read under the hold: a request may have completed it meanwhile.
                let s = state.clone();
                let id = upload.id.clone();
                let Ok(Ok(Some(upload))) = web::block(move || s.store.partials().get(&id)).await
                else {
                    continue;
                };
                if upload.is_whole() && upload.media_id.is_none() {
                    if let Err(e) = complete(&state, upload).await {
                        tracing::warn!(error = %e, "could not complete a resumable upload");
                    }
                }
            }
        }
    });
}

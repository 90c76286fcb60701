//! `GET /api/backup` (admin): the backup archive, streamed while the server keeps working.

use std::io::{self, Write};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::auth;
use super::error::ApiError;
use super::responses::Binary;
use super::responses::{ServerError, Unauthorized};
use super::AppState;

/// A `Write` that hands 256 KiB chunks to the response body. Writing fails once the client has
/// gone, which stops the backup.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// A backup archive (admin).
///
/// A consistent tar of every record and blob with a checksummed manifest, streamed while the
/// server keeps working. If the backup fails part way, the connection is cut, so the archive is
/// truncated and `shoebox restore` refuses it.
#[utoipa::path(
    get,
    path = "/api/backup",
    operation_id = "backup",
    tag = "operations",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The archive", content_type = "application/x-tar",
         body = inline(Binary), headers(
            ("Content-Disposition" = String,
             description = "`attachment; filename=\"shoebox-backup-<unix time>.tar\"`"),
         )),
        (status = 401, response = Unauthorized),
        (status = 500, response = ServerError),
    )
)]
pub async fn backup(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth::require_token(&req, &state)?;
    auth::require(&caller, caller.is_admin(), "this needs an admin token")?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(8);
    let store = state.store.clone();
    actix_web::rt::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        match store.write_backup(&mut out).and_then(|m| {
            out.flush()
                .map_err(|e| crate::store::StoreError::io("send the backup", e))?;
            Ok(m)
        }) {
            Ok(m) => tracing::info!(records = m.records, blobs = m.blobs, "backup sent"),
            Err(e) => {
                tracing::error!(error = %e, "backup failed");
                // Ending the body with an error cuts the connection, so the client sees a
                // truncated archive, which restore refuses.
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
        }
    });
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/x-tar"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"shoebox-backup-{stamp}.tar\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(stream))
}

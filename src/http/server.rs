//! The server's life cycle: open the store, check the disk, announce a generated token, serve
//! on sockets that time out when idle, and stop in order (drain, stop background work, flush).

use std::sync::Arc;

use actix_web::web;

use super::{app, conn, s3, tus, variants, AppState};
use crate::config::Config;
use crate::credentials::secrets::{self, AdminToken};
use crate::credentials::{CredentialError, SecretsDir};
use crate::store::catalogue::Role;
use crate::store::disk::{self, Persistence};
use crate::store::scrub::ScrubConfig;
use crate::store::{Limits, Store};

/// Opens the store and serves until SIGINT/SIGTERM, then drains requests and flushes.
pub async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let mut persistence = disk::persistence(&config.data_dir);
    let set = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
    if set(&config.data.blob_store) && set(&config.data.database_url) {
        // Nothing that must outlive the process is here: the directory is scratch space.
        persistence.persistent = true;
        persistence.reason = "the records are in PostgreSQL and the blobs in a bucket: the \
                              data directory holds only uploads in progress and caches"
            .into();
    }
    check_persistence(&persistence, &config)?;
    let bucket = config.data.bucket()?;
    if let Some(b) = &bucket {
        tracing::info!(blob_store = %b.describe(), "blobs are kept in a bucket");
    }
    let database = config.data.database()?;
    if database.is_some() {
        tracing::info!("records are kept in PostgreSQL");
    }
    let limits = Limits {
        db_cache: config.db_cache,
        bucket,
        database,
    };
    let store = Arc::new(
        Store::start_with(&config.data_dir, Role::Server, limits)?
            .with_reserve(config.disk_reserve)?,
    );
    let settled = &store.started().settlement;
    if !settled.is_empty() {
        tracing::info!(
            "settled the writes a crash interrupted: {}",
            settled.describe()
        );
    }
    tracing::info!(data_dir = %config.data_dir.display(), instance = store.instance(), media = store.media_count().ok(), "store opened");
    let secrets_dir = SecretsDir::of_store(&store, config.data.secret_key.as_deref())?;
    let admin = secrets::load_or_create_admin_token(&secrets_dir, config.admin_token.as_deref())?;
    if let AdminToken::Generated(_, token) = &admin {
        announce_generated_token(token, &config, &secrets_dir)?;
    }
    let session_key = secrets::load_or_create_session_key(&secrets_dir)?;
    let state = web::Data::new(AppState::new(
        store.clone(),
        config.clone(),
        admin.hash().clone(),
        persistence,
        session_key,
    )?);

    // Posters a stop interrupted are made again, in the background.
    variants::Variants::resume(&state);
    // Expired resumable uploads go, and finished ones a stop interrupted become media.
    tus::spawn_sweeper(state.clone());

    let listener = conn::listener(config.listen)?;
    let addr = listener.local_addr()?;
    let mut listeners = vec![("shoebox", listener)];
    if let Some(port) = config.s3_port {
        let s3 = conn::listener(std::net::SocketAddr::new(config.listen.ip(), port))?;
        tracing::info!("S3 API served on http://{}", s3.local_addr()?);
        listeners.push((s3::LISTENER, s3));
    }
    if let Some(host) = &config.s3_host {
        tracing::info!(host = %host, "S3 API answering on the main port for this host");
    }
    let server = serve(listeners, state, &config)?;
    // While a write error holds uploads back, probe the disk every few seconds, so that a
    // passing fault lets them in again without waiting for a health check.
    let watched = store.clone();
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            if watched.failing().is_some() {
                let store = watched.clone();
                let _ = web::block(move || store.probe()).await;
            }
        }
    });
    tracing::info!("shoebox listening on http://{addr}");
    // S3 clients compare MD5s: the records that have none get theirs in the background.
    let md5s = if s3::enabled(&config) {
        Some(store.spawn_md5_backfill(config.scrub_rate)?)
    } else {
        None
    };
    // Blobs in a bucket are the bucket's to scrub (Garage checks its own blocks). The scrub
    // keeps its state in sled.
    let scrub = match config
        .scrub_interval
        .filter(|_| store.blobs().disk().is_some() && store.database().is_none())
    {
        Some(interval) => Some(store.spawn_scrub(ScrubConfig {
            interval,
            rate: config.scrub_rate,
        })?),
        None => None,
    };
    // The server stops accepting on SIGINT/SIGTERM and gives in-flight requests the shutdown
    // timeout.
    server.await?;
    store.scrub_state().stop();
    for thread in [scrub, md5s].into_iter().flatten() {
        let _ = web::block(move || thread.join()).await;
    }
    web::block(move || store.close_cleanly()).await??;
    tracing::info!("stopped cleanly; metadata flushed");
    Ok(())
}

/// HTTP workers per core when the records are in PostgreSQL (see `serve`).
const WORKERS_PER_CORE_SHARED: usize = 4;

/// The HTTP server on `listener`: actix-web's app over HTTP/1.1, on sockets that time out when
/// idle (see [`conn`]), with the connections capped below the descriptor limit. Built from
/// actix's parts rather than `HttpServer`, which has no way to wrap a connection's socket.
fn serve(
    listeners: Vec<(&str, std::net::TcpListener)>,
    state: web::Data<AppState>,
    config: &Config,
) -> std::io::Result<actix_web::dev::Server> {
    use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactoryExt};
    use actix_web::dev::AppConfig;
    use actix_web::rt::net::TcpStream;

    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    // A record lookup in PostgreSQL waits on the network, holding its worker's event loop for
    // the round trip: more workers than cores keep the cores busy meanwhile. (With sled a
    // lookup is a memory read, and one worker per core is the fastest.)
    let shared = config
        .data
        .database_url
        .as_deref()
        .is_some_and(|u| !u.trim().is_empty());
    let workers = config.workers.unwrap_or(if shared {
        cores * WORKERS_PER_CORE_SHARED
    } else {
        cores
    });
    let idle = config.client_timeout;
    let builder = actix_server::Server::build();
    // Tells connections when the server begins to stop, so idle kept-alive ones close at once
    // instead of holding the drain open until their keep-alive runs out.
    let stopping = builder.graceful_shutdown_signal();
    let mut builder = builder
        .workers(workers)
        .max_concurrent_connections(conn::connection_cap(workers))
        .shutdown_timeout(config.shutdown_timeout.as_secs());
    // Every port serves the same app: the S3 port's connections carry a marker from their
    // accept, which `s3::dispatch` reads.
    for (name, listener) in listeners {
        let local = listener.local_addr()?;
        let s3_port = name == s3::LISTENER;
        let state = state.clone();
        let stopping = stopping.clone();
        builder = builder.listen(name, listener, move || {
            let app = app(state.clone())
                .into_factory()
                .map_err(|e| e.error_response());
            let http = actix_http::HttpServiceBuilder::<conn::Watched<TcpStream>, _>::default()
                .keep_alive(actix_http::KeepAlive::Timeout(
                    std::time::Duration::from_secs(5),
                ))
                .client_request_timeout(std::time::Duration::from_secs(5))
                .client_disconnect_timeout(std::time::Duration::from_secs(1))
                .local_addr(local)
                .graceful_shutdown_signal({
                    let stopping = stopping.clone();
                    move || {
                        let stopping = stopping.clone();
                        async move { stopping.notified().await }
                    }
                })
                .on_connect_ext(move |io: &conn::Watched<TcpStream>, ext| {
                    ext.insert(io.activity());
                    if s3_port {
                        ext.insert(s3::OnS3Port);
                    }
                })
                .h1(map_config(app, |_| AppConfig::default()));
            fn_service(move |io: TcpStream| {
                // Without TCP_NODELAY every small response waits ~40 ms for Nagle against
                // delayed ACKs.
                let _ = io.set_nodelay(true);
                let peer = io.peer_addr().ok();
                async move {
                    Ok::<_, actix_http::error::DispatchError>((conn::Watched::new(io, idle), peer))
                }
            })
            .and_then(http)
        })?;
    }
    Ok(builder.run())
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

fn announce_generated_token(
    token: &str,
    config: &Config,
    secrets_dir: &SecretsDir,
) -> Result<(), CredentialError> {
    use std::io::IsTerminal;
    let port = config.listen.port();
    if !std::io::stdout().is_terminal() {
        // Output that is not a terminal is a log stream (Docker, journald, a platform's log)
        // that others read and keep: the token goes to a file only its owner can read.
        let path = secrets::write_generated_token(secrets_dir, token)?;
        println!(
            "\n  Shoebox generated an admin token and wrote it to {} (readable only by this \n  user; only its hash is kept). Read it there, keep it somewhere safe, then delete the\n  file. Lost it? Stop Shoebox and run `shoebox reset-admin-token`, or set\n  SHOEBOX_ADMIN_TOKEN or SHOEBOX_ADMIN_TOKEN_FILE.\n",
            path.display()
        );
        return Ok(());
    }
    // Printed to the terminal, not logged: it is shown once.
    println!(
        "\n  Shoebox generated an admin token. It is shown only this once; only its hash is stored.\n\n      {token}\n\n  Use it as a bearer token, e.g.\n      curl -H \"Authorization: Bearer {token}\" -F file=@photo.jpg http://localhost:{port}/api/media\n  or paste it into the sign-in box of the web page. Lost it? Stop Shoebox and run\n  `shoebox reset-admin-token`, or set SHOEBOX_ADMIN_TOKEN.\n"
    );
    Ok(())
}

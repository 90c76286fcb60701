//! Shoebox on real distributed engines, started on loopback by `shoebox-testkit`:
//! - `blobs`: blobs in a bucket of a 3-node Garage cluster (`SHOEBOX_BLOB_STORE`), with the
//!   records in sled: serving, dedup, deletes, `gc`, `verify`, a node down, the bucket down,
//!   redirects, and a SIGKILL during uploads.
//! - `shared`: records in PostgreSQL too, and two instances serving one store; `credentials`:
//!   what proves a caller shared by them; `derived`: variants and posters kept in the bucket;
//!   `moving`: `shoebox migrate` to the cluster and back; `resumable` and `multipart`: tus
//!   uploads and S3 multipart uploads that any instance continues; `tls`: TLS to PostgreSQL;
//!   `backup`: a backup on one instance while another deletes; `md5s`: the older records'
//!   MD5s computed by one instance of two.
//!
//! `.ci/run` installs Garage (`cargo install garage --locked`) and PostgreSQL; without them the
//! tests fail under `CI=true`.

#[path = "../common/mod.rs"]
mod common;

mod backup;
mod blobs;
mod credentials;
mod derived;
mod md5s;
mod moving;
mod multipart;
mod resumable;
mod shared;
mod tls;
#[path = "../tus/clients.rs"]
mod tus_clients;
#[path = "../tus/protocol.rs"]
mod tus_protocol;

/// An upload of `bytes` as the raw body of `POST /api/media` (streamed, any size), answered
/// `201`: the new record.
fn upload(s: &common::TestServer, name: &str, bytes: &[u8]) -> serde_json::Value {
    let res = s
        .authed(
            reqwest::Method::POST,
            &format!("/api/media?filename={name}"),
        )
        .body(bytes.to_vec())
        .send()
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().unwrap_or_default());
    res.json::<serde_json::Value>().unwrap()["items"][0].clone()
}

/// A backup of `from`, through `GET /api/backup`, restored with `shoebox restore` into a data
/// directory of its own under `dir`, and a server started on it.
fn restored_from_backup(from: &common::TestServer, dir: &std::path::Path) -> common::TestServer {
    let archive = dir.join("backup.tar");
    let mut res = from
        .authed(reqwest::Method::GET, "/api/backup")
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    res.copy_to(&mut std::fs::File::create(&archive).unwrap())
        .unwrap();
    let restored = dir.join("restored");
    let (code, out) = common::run_cli(&["restore", archive.to_str().unwrap()], &restored);
    assert_eq!(code, 0, "{out}");
    common::TestServer::builder().data_dir(&restored).start()
}

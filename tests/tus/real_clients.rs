//! The reference clients against the real binary: a 64 MiB upload stopped at about 40%, the
//! server SIGKILLed and restarted on the same data directory (on a new port), and a new client
//! resuming from the upload's URL finishes it; the stored media is the file, with the metadata
//! sent at creation. Then tus-js-client's other ways to start an upload, on a small file.

use std::path::Path;

use reqwest::Method;
use serde_json::{json, Value};

use crate::clients::{self, JsUpload, PyUpload};
use crate::common::{bytes, sha256_hex, TestServer};
use crate::protocol::{header, part_file, upload_id, Tus, ENDPOINT};

const BIG: usize = 64 << 20;

/// The path of an upload URL (`http://127.0.0.1:PORT/api/uploads/ID` → `/api/uploads/ID`).
fn path_of(url: &str) -> String {
    let start = url
        .find(ENDPOINT)
        .unwrap_or_else(|| panic!("{url} is no upload URL"));
    url[start..].to_owned()
}

/// The metadata every resumed upload is created with, and what the record must show of it.
fn metadata(client: &str) -> Value {
    json!({
        "filename": format!("{client}.bin"),
        "filetype": "application/octet-stream",
        "title": format!("Sixty-four MiB by {client}"),
        "tags": "Big, resumed",
        "custom.client": client,
        "relativePath": "folder/ignored.bin",
    })
}

/// After the kill, before the restart: the disk holds every acknowledged byte of the upload.
fn assert_part_on_disk(data_dir: &Path, id: &str, data: &[u8], acked: u64) {
    let part = std::fs::read(part_file(data_dir, id)).expect("the partial upload's file");
    let acked = acked as usize;
    assert!(
        part.len() >= acked,
        "{} bytes on disk, {acked} acknowledged",
        part.len()
    );
    assert!(
        part[..acked] == data[..acked],
        "the acknowledged bytes on disk are the ones sent"
    );
}

/// The finished upload: HEAD says complete with the media id, `GET /api/uploads/{id}` gives the
/// record with the creation's metadata, and the stored bytes hash to the file's sha256.
fn assert_stored(s: &TestServer, path: &str, media_id: &str, data: &[u8], client: &str) {
    let tus = Tus::new(&s.base, s.token.as_deref());
    let res = tus.head(path);
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "upload-offset"),
        Some(data.len().to_string()),
        "HEAD of a finished upload"
    );
    assert_eq!(header(&res, "shoebox-media-id").as_deref(), Some(media_id));

    let res = s.authed(Method::GET, path).send().unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    let body: Value = res.json().unwrap();
    let record = &body["items"][0];
    let hash = sha256_hex(data);
    assert_eq!(record["id"], media_id, "{body}");
    assert_eq!(record["hash"], hash.as_str());
    assert_eq!(record["size"], data.len());
    assert_eq!(record["filename"], format!("{client}.bin"));
    assert_eq!(record["title"], format!("Sixty-four MiB by {client}"));
    assert_eq!(record["tags"], json!(["big", "resumed"]));
    assert_eq!(record["custom"], json!({"client": client}));
    let stored = s.media_bytes(media_id);
    assert_eq!(stored.len(), data.len());
    assert_eq!(sha256_hex(&stored), hash, "the stored bytes are the file");
    assert!(
        !part_file(&s.data_dir, upload_id(path)).exists(),
        "a finished upload leaves no partial file behind"
    );
}

/// The file to upload, written into `dir`; answers its path and bytes.
fn big_file(dir: &Path, seed: u64) -> (std::path::PathBuf, Vec<u8>) {
    let data = bytes(BIG, seed);
    let file = dir.join("big.bin");
    std::fs::write(&file, &data).unwrap();
    (file, data)
}

#[test]
fn tus_js_client_resumes_a_64_mib_upload_after_the_server_is_sigkilled() {
    if !clients::tus_js_client() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = big_file(dir.path(), 64);
    let mut s = TestServer::start();
    let token = s.token.clone().unwrap();

    // 2 MiB chunks: the 40% mark (25.6 MiB) is reached by the 13th PATCH, whose answer is the
    // moment tus-js-client stops.
    let mut first = JsUpload::new(&file, &token);
    first.endpoint = Some(s.url(ENDPOINT));
    first.chunk_size = 2 << 20;
    first.metadata = metadata("tus-js-client");
    first.stop_at = Some(0.4);
    let r = first.run();
    assert_eq!(r["outcome"], "stopped", "{r}");
    let acked = r["offset"].as_u64().expect("an acknowledged offset");
    assert_eq!(acked, 13 * (2 << 20), "{r}");
    let path = path_of(r["url"].as_str().unwrap());
    let id = upload_id(&path).to_owned();
    let tus = Tus::new(&s.base, Some(&token));
    assert_eq!(
        tus.offset(&path),
        acked,
        "the server holds what it acknowledged"
    );

    let old_pid = s.pid();
    s.kill();
    assert_part_on_disk(&s.data_dir, &id, &data, acked);
    let s = s.restart();
    assert_ne!(s.pid(), old_pid, "a new process");
    let tus = Tus::new(&s.base, Some(&token));
    assert_eq!(
        tus.offset(&path),
        acked,
        "the acknowledged bytes survived the kill"
    );

    // A new Upload with the old upload URL, re-based onto the restarted server's port.
    let mut resume = JsUpload::new(&file, &token);
    resume.upload_url = Some(s.url(&path));
    resume.chunk_size = 8 << 20;
    let r = resume.run();
    assert_eq!(r["outcome"], "success", "{r}");
    let requests = r["requests"].as_array().unwrap();
    assert_eq!(requests[0]["method"], "HEAD", "{r}");
    assert_eq!(
        requests[0]["offset"], acked,
        "the resume asks where to go on"
    );
    assert_eq!(requests[1]["method"], "PATCH");
    assert_eq!(
        requests[1]["sentOffset"],
        acked.to_string(),
        "and goes on there"
    );
    assert!(
        requests
            .iter()
            .all(|q| q["url"].as_str().unwrap().starts_with(&s.base)),
        "every request went to the restarted server: {r}"
    );
    assert!(
        requests.iter().all(|q| q["method"] != "POST"),
        "the upload was resumed, not made again"
    );
    let media_id = r["mediaId"]
        .as_str()
        .expect("the completing PATCH names the media (Shoebox-Media-Id)");
    assert_stored(&s, &path, media_id, &data, "tus-js-client");
}

#[test]
fn tuspy_resumes_a_checksummed_64_mib_upload_after_the_server_is_sigkilled() {
    if !clients::tuspy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = big_file(dir.path(), 65);
    let mut s = TestServer::start();
    let token = s.token.clone().unwrap();

    // tuspy sends `Upload-Checksum: sha1 …` with every PATCH; stop_at is not on a chunk
    // boundary, so the last PATCH before the stop is a short one.
    let stop_at = (BIG as u64) * 2 / 5;
    let mut first = PyUpload::new(&file, &token);
    first.endpoint = Some(s.url(ENDPOINT));
    first.chunk_size = 4 << 20;
    first.metadata = metadata("tuspy");
    first.stop_at = Some(stop_at);
    first.checksum = true;
    let r = first.run();
    assert_eq!(r["outcome"], "stopped", "{r}");
    assert_eq!(r["offset"], stop_at, "{r}");
    let path = path_of(r["url"].as_str().unwrap());
    let id = upload_id(&path).to_owned();

    let old_pid = s.pid();
    s.kill();
    assert_part_on_disk(&s.data_dir, &id, &data, stop_at);
    let s = s.restart();
    assert_ne!(s.pid(), old_pid, "a new process");

    let mut resume = PyUpload::new(&file, &token);
    resume.url = Some(s.url(&path));
    resume.chunk_size = 8 << 20;
    resume.checksum = true;
    let r = resume.run();
    assert_eq!(r["outcome"], "success", "{r}");
    assert_eq!(
        r["start_offset"], stop_at,
        "the new uploader's HEAD found every acknowledged byte"
    );
    assert_eq!(r["status"], 204);
    let media_id = r["media_id"]
        .as_str()
        .expect("the completing PATCH names the media (Shoebox-Media-Id)");
    assert_stored(&s, &path, media_id, &data, "tuspy");
}

/// tus-js-client's other two ways to start: the first chunk in the creation request
/// (creation-with-upload), and a length it only learns at the end (creation-defer-length,
/// where its last PATCH carries `Upload-Length`).
#[test]
fn tus_js_client_uploads_with_data_in_the_creation_and_with_a_deferred_length() {
    if !clients::tus_js_client() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start();
    let token = s.token.clone().unwrap();
    for (n, deferred) in [(0u64, false), (1, true)] {
        let data = bytes(2_500_000 + n as usize, 70 + n);
        let file = dir.path().join(format!("f{n}.bin"));
        std::fs::write(&file, &data).unwrap();
        let mut up = JsUpload::new(&file, &token);
        up.endpoint = Some(s.url(ENDPOINT));
        up.chunk_size = 1 << 20;
        up.metadata = json!({"filename": format!("f{n}.bin")});
        up.defer_length = deferred;
        up.data_during_creation = !deferred;
        let r = up.run();
        assert_eq!(r["outcome"], "success", "{r}");
        let requests = r["requests"].as_array().unwrap();
        assert_eq!(requests[0]["method"], "POST");
        if deferred {
            assert!(requests[0]["offset"].is_null(), "{r}");
            assert_eq!(requests.len(), 4, "three PATCHes after the POST: {r}");
        } else {
            assert_eq!(
                requests[0]["offset"],
                1 << 20,
                "the creation carried the first chunk: {r}"
            );
            assert_eq!(requests.len(), 3, "two PATCHes after the POST: {r}");
        }
        let media_id = r["mediaId"].as_str().expect("Shoebox-Media-Id");
        let record: Value = s
            .authed(Method::GET, &format!("/api/media/{media_id}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(record["hash"], sha256_hex(&data).as_str(), "{record}");
        assert_eq!(record["filename"], format!("f{n}.bin"));
        assert_eq!(sha256_hex(&s.media_bytes(media_id)), sha256_hex(&data));
    }
}

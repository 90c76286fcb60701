//! Black-box tests of what survives: restarts, SIGKILL, refused and aborted uploads, graceful
//! shutdown, the generated admin token and the FORMAT marker.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{bytes, error_code, eventually, sha256_hex, TestServer, TOKEN};
use reqwest::Method;
use serde_json::Value;

fn check_record_and_bytes(s: &TestServer, item: &Value, data: &[u8]) {
    let id = item["id"].as_str().unwrap();
    let got: Value = s
        .authed(Method::GET, &format!("/api/media/{id}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(&got, item);
    let body = s.media_bytes(id);
    assert_eq!(sha256_hex(&body), sha256_hex(data));
}

#[test]
fn a_clean_restart_keeps_records_and_bytes() {
    let mut s = TestServer::start();
    let data = bytes(200_000, 1);
    let item = s.upload("kept.bin", &data, &[("title", "kept"), ("collection", "c")]);
    let status = s.terminate();
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
    let s = s.restart();
    check_record_and_bytes(&s, &item, &data);
    let list: Value = s
        .get("/api/media?collection=c")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list["items"][0]["id"], item["id"]);
}

#[test]
fn sigkill_right_after_a_201_loses_nothing() {
    let mut s = TestServer::start();
    let mut kept = Vec::new();
    for i in 0..5 {
        let data = bytes(10_000 + i * 1000, i as u64);
        kept.push((
            s.upload(&format!("f{i}.bin"), &data, &[("title", &format!("t{i}"))]),
            data,
        ));
    }
    // Edits and deletes are acknowledged durably too.
    let edited_id = kept[0].0["id"].as_str().unwrap().to_owned();
    let res = s
        .authed(Method::PATCH, &format!("/api/media/{edited_id}"))
        .json(&serde_json::json!({"title": "edited"}))
        .send()
        .unwrap();
    kept[0].0 = res.json().unwrap();
    let (gone, _) = kept.pop().unwrap();
    assert_eq!(
        s.authed(
            Method::DELETE,
            &format!("/api/media/{}", gone["id"].as_str().unwrap())
        )
        .send()
        .unwrap()
        .status(),
        204
    );
    s.kill();
    let s = s.restart();
    for (item, data) in &kept {
        check_record_and_bytes(&s, item, data);
    }
    assert_eq!(
        s.get(&format!("/api/media/{}", gone["id"].as_str().unwrap()))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert!(s.tmp_entries().is_empty());
}

#[test]
fn uploads_over_the_limit_get_413_and_leave_nothing() {
    let s = TestServer::builder()
        .arg("--max-upload-bytes")
        .arg("1MiB")
        .start();
    let too_big = bytes(3 << 20, 2);

    // Raw body with a Content-Length: refused up front.
    let res = s
        .authed(Method::POST, "/api/media?filename=big.bin")
        .body(too_big.clone())
        .send()
        .unwrap();
    assert_eq!(error_code(res, 413), "payload_too_large");

    // Raw body, chunked (no length): refused while streaming.
    let reader = std::io::Cursor::new(too_big.clone());
    let res = s
        .authed(Method::POST, "/api/media?filename=big.bin")
        .body(reqwest::blocking::Body::new(reader))
        .send()
        .unwrap();
    assert_eq!(error_code(res, 413), "payload_too_large");

    // Multipart: refused while streaming the part.
    let res = s.upload_raw_response("big.bin", &too_big, &[]);
    assert_eq!(error_code(res, 413), "payload_too_large");

    assert!(
        s.tmp_entries().is_empty(),
        "no temp file survives a refusal"
    );
    assert_eq!(s.blob_count(), 0);

    // Exactly at the limit is fine.
    let item = s.upload("exact.bin", &too_big[..1 << 20], &[]);
    assert_eq!(item["size"], 1 << 20);
}

#[test]
fn an_aborted_upload_leaves_no_temp_file() {
    let s = TestServer::start();
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut conn = TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST /api/media?filename=partial.bin HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 50000000\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&bytes(2 << 20, 4)).unwrap();
    eventually(
        "the upload to appear in tmp/",
        Duration::from_secs(10),
        || !s.tmp_entries().is_empty(),
    );
    drop(conn);
    eventually(
        "tmp/ to be empty after the client went away",
        Duration::from_secs(10),
        || s.tmp_entries().is_empty(),
    );
    assert_eq!(s.blob_count(), 0);
    let list: Value = s
        .authed(Method::GET, "/api/media")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list["items"], serde_json::json!([]));
}

#[test]
fn sigterm_lets_an_upload_in_flight_finish() {
    let mut s = TestServer::start();
    let addr = s.base.trim_start_matches("http://").to_owned();
    let data = bytes(4 << 20, 8);
    let mut conn = TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST /api/media?filename=slow.bin HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        data.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&data[..1 << 20]).unwrap();
    eventually("the upload to start", Duration::from_secs(10), || {
        !s.tmp_entries().is_empty()
    });
    unsafe {
        libc::kill(s.pid() as i32, libc::SIGTERM);
    }
    std::thread::sleep(Duration::from_millis(300));
    conn.write_all(&data[1 << 20..]).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
    let s = s.restart();
    let list: Value = s.get("/api/media").send().unwrap().json().unwrap();
    assert_eq!(list["items"][0]["hash"], sha256_hex(&data).as_str());
}

#[test]
fn concurrent_uploads_are_all_durable() {
    let mut s = TestServer::start();
    let results: Vec<(Value, Vec<u8>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let s = &s;
                scope.spawn(move || {
                    (0..6)
                        .map(|i| {
                            let data = bytes(5_000 + t * 977 + i * 131, (t * 100 + i) as u64);
                            (s.upload("c.bin", &data, &[]), data)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(results.len(), 48);
    s.kill();
    let s = s.restart();
    for (item, data) in &results {
        check_record_and_bytes(&s, item, data);
    }
}

#[test]
fn a_generated_admin_token_is_printed_once_and_stored_hashed() {
    let s = TestServer::builder().no_token().start();
    // The output is not a terminal here but a log stream, which others read: the token is in
    // a file only its owner can read, and the output says where.
    let out = s.output();
    let handed = s.data_dir.join("secrets/admin_token");
    assert!(out.contains(handed.to_str().unwrap()), "{out}");
    assert_eq!(
        std::fs::metadata(&handed).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = std::fs::read_to_string(&handed).unwrap().trim().to_owned();
    assert!(token.starts_with("sbx_") && token.len() == 68, "{token}");
    assert!(!out.contains(&token), "the token is not in the log:\n{out}");
    let file = s.data_dir.join("secrets/admin_token.sha256");
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(!stored.contains(&token[4..]));
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let upload = |s: &TestServer, token: &str| {
        s.client()
            .post(s.url("/api/media?filename=a.txt"))
            .bearer_auth(token)
            .body("x")
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(upload(&s, &token), 201);
    let s = s.restart();
    assert!(
        !s.output().contains(&token),
        "shown only on the first start"
    );
    assert_eq!(upload(&s, &token), 201);
    assert_eq!(upload(&s, TOKEN), 401);
}

/// An orchestrator mounts the admin token as a file rather than passing it in the environment.
#[test]
fn the_admin_token_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-token");
    std::fs::write(&file, "a-mounted-secret-token-0123456789\n").unwrap();
    let s = TestServer::builder()
        .no_token()
        .arg("--admin-token-file")
        .arg(file.to_str().unwrap())
        .start();
    let status = s
        .get("/api/status")
        .bearer_auth("a-mounted-secret-token-0123456789")
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    assert!(!s.data_dir.join("secrets/admin_token").exists());
}

#[test]
fn a_directory_of_another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("FORMAT"),
        "shoebox-data-format 99\ninstance x\n",
    )
    .unwrap();
    let (status, out) = TestServer::builder()
        .data_dir(dir.path())
        .start_expecting_failure();
    assert!(!status.success());
    assert!(
        out.contains("layout version 99") && out.contains("newer Shoebox"),
        "{out}"
    );

    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("important.doc"), "mine").unwrap();
    let (status, out) = TestServer::builder()
        .data_dir(foreign.path())
        .start_expecting_failure();
    assert!(!status.success());
    assert!(out.contains("not a Shoebox data directory"), "{out}");
    assert_eq!(
        common::entries(foreign.path()),
        vec!["important.doc"],
        "nothing was written"
    );
}

#[test]
fn leftover_temp_files_are_removed_at_start() {
    let s = TestServer::start();
    let dir = s.data_dir.clone();
    let mut s = s;
    s.kill();
    std::fs::write(dir.join("tmp/upload-leftover"), b"half an upload").unwrap();
    let s = s.restart();
    assert!(s.tmp_entries().is_empty());
}

//! Who may touch an upload (its creator only; a read token may not create one; no credentials
//! get 401), the size limit at creation and while a deferred length grows, and the expiry of
//! uploads left unfinished.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::common::{bytes, eventually, run_cli, sha256_hex, TestServer};
use crate::protocol::{
    expect, expect_error, expires_in, header, upload_files, upload_id, Tus, ENDPOINT,
};

#[test]
fn an_upload_is_only_its_creators() {
    let s = TestServer::start();
    let admin = Tus::new(&s.base, s.token.as_deref());
    let mine = admin.as_token(&s.api_token("mine", "upload"));
    let other = admin.as_token(&s.api_token("other", "upload"));
    let data = bytes(10_000, 11);
    let path = mine.created(Some(data.len() as u64), &[("filename", "mine.bin")]);
    mine.patched(&path, 0, &data[..4_000]);

    // To anyone else, the upload does not exist: HEAD, PATCH, DELETE and GET all get 404.
    expect(other.head(&path), 404);
    expect_error(other.patch(&path, 4_000, &data[4_000..]), 404);
    expect_error(other.delete(&path), 404);
    expect_error(other.bare(Method::GET, &path).send().unwrap(), 404);
    assert_eq!(
        mine.offset(&path),
        4_000,
        "the other caller changed nothing"
    );

    let res = mine.patched(&path, 4_000, &data[4_000..]);
    let media_id = header(&res, "shoebox-media-id").unwrap();
    assert_eq!(sha256_hex(&s.media_bytes(&media_id)), sha256_hex(&data));
    let res = mine.bare(Method::GET, &path).send().unwrap();
    assert_eq!(res.status(), 200, "the creator reads the finished upload");
    expect_error(other.bare(Method::GET, &path).send().unwrap(), 404);
    expect(other.head(&path), 404);
}

#[test]
fn a_read_token_cannot_create_and_no_credentials_get_401() {
    let s = TestServer::start();
    let admin = Tus::new(&s.base, s.token.as_deref());
    let reader = admin.as_token(&s.api_token("reader", "read"));
    expect_error(reader.create(Some(10), &[]), 403);
    let anonymous = Tus::new(&s.base, None);
    expect_error(anonymous.create(Some(10), &[]), 401);

    let path = admin.created(Some(10), &[]);
    expect(anonymous.head(&path), 401);
    expect_error(anonymous.patch(&path, 0, b"01234"), 401);
    expect_error(anonymous.delete(&path), 401);
    let status = reader.patch(&path, 0, b"01234").status().as_u16();
    assert!(status == 403 || status == 404, "a reader's PATCH: {status}");
    assert_eq!(admin.offset(&path), 0);
    assert_eq!(
        crate::records::partial_count(&s),
        1,
        "only the admin's upload"
    );
}

#[test]
fn an_upload_length_over_the_limit_is_refused_at_creation() {
    let s = TestServer::builder()
        .env("SHOEBOX_MAX_UPLOAD_BYTES", "1MiB")
        .start();
    let t = Tus::new(&s.base, s.token.as_deref());
    let res = t.bare(Method::OPTIONS, ENDPOINT).send().unwrap();
    assert_eq!(header(&res, "tus-max-size").as_deref(), Some("1048576"));
    expect_error(t.create(Some((1 << 20) + 1), &[]), 413);
    expect_error(t.create(Some(u64::MAX), &[]), 413);
    assert_eq!(crate::records::partial_count(&s), 0, "nothing was made");
    // At the limit exactly: fine.
    let path = t.created(Some(1 << 20), &[]);
    let res = t.patched(&path, 0, &bytes(1 << 20, 12));
    assert!(header(&res, "shoebox-media-id").is_some());
}

#[test]
fn a_deferred_upload_crossing_the_limit_is_refused_and_keeps_its_earlier_bytes() {
    let s = TestServer::builder()
        .env("SHOEBOX_MAX_UPLOAD_BYTES", "1MiB")
        .start();
    let t = Tus::new(&s.base, s.token.as_deref());
    let data = bytes(1 << 20, 13);
    let path = t.created(None, &[]);
    t.patched(&path, 0, &data[..600_000]);
    // This PATCH would take the upload past 1 MiB.
    expect_error(t.patch(&path, 600_000, &bytes(600_000, 14)), 413);
    assert_eq!(t.offset(&path), 600_000, "the bytes before it stay");
    // So would a length past the limit.
    let res = t
        .patch_request(&path, 600_000, data[600_000..700_000].to_vec())
        .header("Upload-Length", ((1u64 << 20) + 1).to_string())
        .send()
        .unwrap();
    expect_error(res, 413);
    assert_eq!(t.offset(&path), 600_000);
    // The rest, up to the limit exactly, completes it.
    let res = t
        .patch_request(&path, 600_000, data[600_000..].to_vec())
        .header("Upload-Length", (1u64 << 20).to_string())
        .send()
        .unwrap();
    let res = expect(res, 204);
    let media_id = header(&res, "shoebox-media-id").expect("complete");
    assert_eq!(sha256_hex(&s.media_bytes(&media_id)), sha256_hex(&data));
}

#[test]
fn an_unfinished_upload_expires_and_its_files_are_removed() {
    let s = TestServer::builder()
        .env("SHOEBOX_UPLOAD_EXPIRY", "3s")
        .start();
    let t = Tus::new(&s.base, s.token.as_deref());
    let res = expect(t.create(Some(100_000), &[]), 201);
    let left = expires_in(&res);
    assert!((0..=4).contains(&left), "Upload-Expires {left} s from now");
    let abandoned = crate::protocol::location_path(&res);
    let kept = t.created(Some(100_000), &[]);
    t.patched(&abandoned, 0, &bytes(1_000, 15));
    let id = upload_id(&abandoned).to_owned();
    assert!(!upload_files(&s.data_dir, &id).is_empty());

    // Each PATCH moves the expiry on: an upload written to every half second outlives it.
    let start = Instant::now();
    let mut offset = 0u64;
    while start.elapsed() < Duration::from_millis(5_500) {
        let res = t.patched(&kept, offset, &bytes(1_000, offset));
        offset += 1_000;
        assert!(expires_in(&res) >= 1, "the expiry moved on");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(t.offset(&kept), offset, "the upload in use did not expire");

    // The abandoned one is gone: 410 while expired but not swept, 404 after, and its files go.
    eventually(
        "the abandoned upload expires and its files are removed",
        Duration::from_secs(20),
        || {
            let status = t.head(&abandoned).status().as_u16();
            (status == 404 || status == 410) && upload_files(&s.data_dir, &id).is_empty()
        },
    );
    let res = t.patch(&abandoned, 1_000, &bytes(1_000, 16));
    let status = res.status().as_u16();
    assert!(
        status == 404 || status == 410,
        "PATCH of an expired upload: {status}"
    );
    expect_error(res, status);
    assert_eq!(
        crate::records::partial_count(&s),
        1,
        "only the upload in use"
    );
}

#[test]
fn gc_removes_uploads_left_unfinished_past_the_expiry() {
    let mut s = TestServer::start();
    let t = Tus::new(&s.base, s.token.as_deref());
    let old = t.created(Some(10_000), &[]);
    t.patched(&old, 0, &bytes(2_000, 17));
    std::thread::sleep(Duration::from_secs(4));
    let recent = t.created(Some(10_000), &[]);
    t.patched(&recent, 0, &bytes(3_000, 18));
    assert!(s.terminate().success());

    let (code, out) = run_cli(&["gc", "--upload-expiry", "3s"], &s.data_dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        upload_files(&s.data_dir, upload_id(&old)).is_empty(),
        "gc removed the upload untouched for 4 s: {out}"
    );
    assert!(!upload_files(&s.data_dir, upload_id(&recent)).is_empty());
    let s = s.restart();
    let t = Tus::new(&s.base, s.token.as_deref());
    let status = t.head(&old).status().as_u16();
    assert!(
        status == 404 || status == 410,
        "HEAD of the removed upload: {status}"
    );
    assert_eq!(t.offset(&recent), 3_000, "the recent upload kept its bytes");
}

/// With `SHOEBOX_CORS_ORIGINS`, tus-js-client in a page of an allowed origin can speak tus with
/// a token: the preflights admit the protocol's methods and headers, and the answers expose
/// the protocol's headers, never with credentials. A session cookie sent from another origin
/// is refused.
#[test]
fn an_allowed_origin_may_speak_tus_with_a_token_but_not_with_a_cookie() {
    let origin = "https://app.example";
    let s = TestServer::builder()
        .arg("--cors-origins")
        .arg(origin)
        .start();
    let t = Tus::new(&s.base, s.token.as_deref());
    let path = t.created(Some(10), &[]);
    let lower_list = |res: &reqwest::blocking::Response, name: &str| -> Vec<String> {
        header(res, name)
            .unwrap_or_default()
            .split(',')
            .map(|v| v.trim().to_ascii_lowercase())
            .collect()
    };
    let preflights = [
        (ENDPOINT, "POST", "authorization, tus-resumable, upload-length, upload-defer-length, upload-metadata, content-type"),
        (path.as_str(), "PATCH", "authorization, tus-resumable, upload-offset, upload-length, upload-checksum, content-type"),
        (path.as_str(), "HEAD", "authorization, tus-resumable"),
        (path.as_str(), "DELETE", "authorization, tus-resumable"),
    ];
    for (target, method, headers) in preflights {
        let res = t
            .bare(Method::OPTIONS, target)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", method)
            .header("Access-Control-Request-Headers", headers)
            .send()
            .unwrap();
        let status = res.status().as_u16();
        assert!(
            status == 200 || status == 204,
            "{method} {target} preflight: {status}"
        );
        assert_eq!(
            header(&res, "access-control-allow-origin").as_deref(),
            Some(origin)
        );
        assert!(header(&res, "access-control-allow-credentials").is_none());
        let methods = lower_list(&res, "access-control-allow-methods");
        assert!(
            methods.contains(&method.to_ascii_lowercase()),
            "{method}: {methods:?}"
        );
        let allowed = lower_list(&res, "access-control-allow-headers");
        for h in headers.split(", ") {
            assert!(
                allowed.contains(&h.to_owned()),
                "{h} for {method}: {allowed:?}"
            );
        }
        let res = t
            .bare(Method::OPTIONS, target)
            .header("Origin", "https://evil.example")
            .header("Access-Control-Request-Method", method)
            .send()
            .unwrap();
        assert!(
            header(&res, "access-control-allow-origin").is_none(),
            "evil {method}"
        );
    }

    let res = t
        .request(Method::POST, ENDPOINT)
        .header("Origin", origin)
        .header("Upload-Length", "10")
        .send()
        .unwrap();
    let res = expect(res, 201);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(origin)
    );
    assert!(header(&res, "access-control-allow-credentials").is_none());
    let exposed = lower_list(&res, "access-control-expose-headers");
    for h in [
        "location",
        "upload-offset",
        "upload-length",
        "upload-metadata",
        "upload-expires",
        "upload-defer-length",
        "tus-version",
        "tus-resumable",
        "tus-max-size",
        "tus-extension",
        "tus-checksum-algorithm",
        "shoebox-media-id",
    ] {
        assert!(exposed.contains(&h.to_owned()), "{h} exposed: {exposed:?}");
    }
    let created = crate::protocol::location_path(&res);
    let res = t
        .patch_request(&created, 0, b"0123456789".to_vec())
        .header("Origin", origin)
        .send()
        .unwrap();
    let res = expect(res, 204);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(origin)
    );
    assert!(header(&res, "shoebox-media-id").is_some());

    // The web app's session cookie works on its own origin, and is refused from another.
    let res = s
        .client()
        .post(s.url("/api/session"))
        .json(&json!({ "token": crate::common::TOKEN }))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = header(&res, "set-cookie").expect("a session cookie");
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = |from: &str| {
        s.client()
            .post(s.url(ENDPOINT))
            .header("Cookie", cookie.as_str())
            .header("Origin", from)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", "10")
            .send()
            .unwrap()
    };
    expect_error(with_cookie(origin), 403);
    expect(with_cookie(&s.base), 201);
}

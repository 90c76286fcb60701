//! A battery of hostile requests against the real binary. Every case states the status it must
//! get and proves that nothing leaked and nothing was written.

mod common;

use std::time::Duration;

use common::{bytes, run_cli, TestServer};
use reqwest::blocking::multipart::{Form, Part};
use reqwest::blocking::RequestBuilder;
use reqwest::Method;
use serde_json::{json, Value};

/// What the store holds, to prove a refused request changed nothing.
#[derive(Debug, PartialEq)]
struct Footprint {
    blobs: usize,
    tmp: Vec<String>,
    records: Vec<Value>,
    /// Resumable uploads in progress: each file and its size.
    uploads: Vec<(String, u64)>,
    /// Collection files, with their content.
    collections: Vec<(String, String)>,
}

fn footprint(s: &TestServer) -> Footprint {
    let dir = s.data_dir.join("uploads");
    let mut uploads: Vec<(String, u64)> = common::entries(&dir)
        .into_iter()
        .filter(|name| name.ends_with(".part"))
        .map(|name| {
            let size = std::fs::metadata(dir.join(&name)).map_or(0, |m| m.len());
            (name, size)
        })
        .collect();
    uploads.sort();
    let dir = s.data_dir.join("collections");
    let mut collections: Vec<(String, String)> = common::entries(&dir)
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
            (name, text)
        })
        .collect();
    collections.sort();
    Footprint {
        blobs: s.blob_count(),
        tmp: s.tmp_entries(),
        records: common::all_records(s),
        uploads,
        collections,
    }
}

fn status_and_body(req: RequestBuilder) -> (u16, String) {
    let res = req.send().expect("request");
    let status = res.status().as_u16();
    (status, res.text().unwrap_or_default())
}

/// Runs `cases` (name, request, expected statuses), asserting each leaves the store unchanged
/// and never answers with a secret or a server error.
fn refused(s: &TestServer, cases: Vec<(&str, RequestBuilder, &[u16])>) {
    let before = footprint(s);
    for (name, req, expected) in cases {
        eprintln!("case: {name}");
        let (status, body) = status_and_body(req);
        assert!(
            expected.contains(&status),
            "{name}: got {status}, expected {expected:?}: {body}"
        );
        assert!(
            !body.contains("shoebox-data-format") && !body.contains(common::TOKEN),
            "{name} leaked: {body}"
        );
        // Collection pages answer people, in HTML; everything else answers in JSON.
        if status >= 400 && !body.is_empty() && !body.starts_with("<!doctype html>") {
            let v: Value = serde_json::from_str(&body)
                .unwrap_or_else(|_| panic!("{name}: error is not JSON: {body}"));
            assert!(v["error"]["code"].is_string(), "{name}: {body}");
        }
    }
    assert_eq!(footprint(s), before, "a refused request changed the store");
}

#[test]
fn traversal_malformed_and_oversized_requests_are_refused_and_write_nothing() {
    let s = TestServer::builder()
        .arg("--max-upload-bytes")
        .arg("64KiB")
        .start();
    let item = s.upload("ok.txt", b"fine", &[]);
    let id = item["id"].as_str().unwrap().to_owned();
    let raw = |path: &str| s.client().get(format!("{}{}", s.base, path));
    let post = |ct: &str, body: Vec<u8>| {
        s.authed(Method::POST, "/api/media")
            .header("content-type", ct)
            .body(body)
    };
    let big_form = Form::new().part("file", Part::bytes(bytes(200_000, 1)).file_name("big.bin"));
    refused(
        &s,
        vec![
            ("dot-dot in /f", raw("/f/../../FORMAT"), &[404]),
            ("encoded dot-dot in /f", raw("/f/%2e%2e%2f%2e%2e%2fFORMAT"), &[404]),
            ("encoded dot-dot in /m", raw("/m/..%2f..%2fFORMAT"), &[404]),
            ("dot-dot in assets", raw("/assets/x/../../Cargo.toml"), &[404]),
            ("encoded dot-dot in assets", raw("/assets/x/%2e%2e%2f%2e%2e%2fsecrets%2fsession_key"), &[404]),
            ("secrets by path", raw("/secrets/admin_token.sha256"), &[404]),
            ("collection traversal", raw("/c/..%2f..%2fsecrets"), &[404]),
            ("short hash", raw("/f/abc"), &[404]),
            ("long hash", raw(&format!("/f/{}", "a".repeat(65))), &[404]),
            ("upper-case hash", raw(&format!("/f/{}", "A".repeat(64))), &[404]),
            ("bad id", raw("/api/media/!!!"), &[404]),
            ("id too long", raw(&format!("/api/media/{id}x")), &[404]),
            ("bad id in /m", raw("/m/00000000000000000000000000"), &[404]),
            ("multipart without boundary", post("multipart/form-data", b"--x\r\n".to_vec()), &[400]),
            (
                "multipart with a wrong boundary",
                post("multipart/form-data; boundary=zzz", b"--aaa\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nhi\r\n--aaa--\r\n".to_vec()),
                &[400],
            ),
            (
                "truncated multipart",
                post("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nno end".to_vec()),
                &[400],
            ),
            (
                "garbage part headers",
                post("multipart/form-data; boundary=b", b"--b\r\n\x00\x01\x02\r\n\r\nx\r\n--b--\r\n".to_vec()),
                &[400],
            ),
            ("oversize raw body", s.authed(Method::POST, "/api/media?filename=a.bin").body(bytes(200_000, 2)), &[413]),
            ("oversize multipart", s.authed(Method::POST, "/api/media").multipart(big_form), &[413]),
            (
                "huge JSON",
                s.authed(Method::PATCH, &format!("/api/media/{id}")).header("content-type", "application/json").body(format!(r#"{{"title": "{}"}}"#, "x".repeat(1_000_000))),
                &[400, 413],
            ),
            ("JSON that is not an object", s.authed(Method::PATCH, &format!("/api/media/{id}")).json(&json!([1, 2])), &[400]),
            ("bad Range unit", raw(&format!("/m/{id}")).header("range", "pages=1-2"), &[200, 416]),
            ("backwards Range", raw(&format!("/m/{id}")).header("range", "bytes=5-2"), &[200, 416]),
            ("Range past the end", raw(&format!("/m/{id}")).header("range", "bytes=100-200"), &[416]),
            ("garbage Range", raw(&format!("/m/{id}")).header("range", "bytes=--1,x-"), &[200, 400, 416]),
            ("many Ranges", raw(&format!("/m/{id}")).header("range", format!("bytes={}", (0..500).map(|i| format!("{i}-{i}")).collect::<Vec<_>>().join(","))), &[200, 206, 416]),
            ("too many fields", s.authed(Method::POST, "/api/media").multipart((0..70).fold(Form::new(), |f, i| f.text(format!("custom.k{i}"), "v"))), &[400]),
        ],
    );
    // Names with paths and control characters are kept only as metadata.
    let raw_named = |q: &str| -> Value {
        let res = s
            .authed(Method::POST, &format!("/api/media?filename={q}"))
            .body("named")
            .send()
            .unwrap();
        assert_eq!(res.status(), 201, "{q}");
        res.json::<Value>().unwrap()["items"][0].clone()
    };
    let mut stored_items: Vec<Value> = [
        "../../etc/passwd",
        "..\\..\\boot.ini",
        "/abs/path.txt",
        "CON",
        "...",
    ]
    .iter()
    .map(|name| s.upload(name, b"named", &[]))
    .collect();
    stored_items.push(raw_named("a%07b%0A.txt"));
    stored_items.push(raw_named("%2e%2e%2f%2e%2e%2fsecrets%2fx"));
    for item in &stored_items {
        let name = item["filename"].as_str().unwrap();
        let stored = name;
        assert!(
            !stored.contains('/')
                && !stored.contains('\\')
                && !stored.chars().any(char::is_control),
            "{name:?} → {stored:?}"
        );
    }
    let mut top: Vec<String> = common::entries(&s.data_dir);
    top.sort();
    assert_eq!(
        top,
        [
            "CATALOG",
            "FORMAT",
            "blobs",
            "collections",
            "meta",
            "records",
            "secrets",
            "space-reserve",
            "tmp",
            "uploads",
            "variants"
        ],
        "nothing written outside the layout"
    );
}

/// The collection routes: every caller without the authority, every name that is not a
/// collection name (traversals among them), every body that is not the settings, and a
/// collection that media are in, are refused, and no collection file changes.
#[test]
fn collection_settings_are_refused_to_whom_and_what_they_must_be() {
    let s = TestServer::start();
    s.upload("a.txt", b"a", &[("collection", "stories")]);
    let res = s
        .authed(Method::PUT, "/api/collections/kept")
        .json(&json!({"public": true}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let uploader = s.api_token("uploader", "upload");
    let reader = s.api_token("reader", "read");
    let cookie = {
        let res = s
            .client()
            .post(s.url("/api/session"))
            .json(&json!({"token": common::TOKEN}))
            .send()
            .unwrap();
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    let put = |path: &str| {
        s.authed(Method::PUT, &format!("/api/collections/{path}"))
            .json(&json!({"public": false}))
    };
    let raw_put = |path: &str| {
        s.authed(Method::PUT, path)
            .header("content-type", "application/json")
            .body(r#"{"public": false}"#)
    };
    let as_token = |t: &str, m: Method, path: &str| {
        s.client()
            .request(m, s.url(path))
            .bearer_auth(t)
            .json(&json!({"public": false}))
    };
    refused(
        &s,
        vec![
            (
                "anonymous save",
                s.client()
                    .put(s.url("/api/collections/kept"))
                    .json(&json!({"public": false})),
                &[401],
            ),
            (
                "anonymous remove",
                s.client().delete(s.url("/api/collections/kept")),
                &[401],
            ),
            (
                "uploader save",
                as_token(&uploader, Method::PUT, "/api/collections/kept"),
                &[403],
            ),
            (
                "reader save",
                as_token(&reader, Method::PUT, "/api/collections/new"),
                &[403],
            ),
            (
                "uploader remove",
                as_token(&uploader, Method::DELETE, "/api/collections/kept"),
                &[403],
            ),
            (
                "wrong token",
                as_token("sbx_not-a-real-token", Method::PUT, "/api/collections/kept"),
                &[401],
            ),
            (
                "cross-site save with the cookie",
                s.client()
                    .put(s.url("/api/collections/kept"))
                    .header("cookie", &cookie)
                    .header("origin", "https://evil.example")
                    .json(&json!({"public": false})),
                &[403],
            ),
            (
                "cookie remove without Origin",
                s.client()
                    .delete(s.url("/api/collections/kept"))
                    .header("cookie", &cookie),
                &[403],
            ),
            (
                "encoded traversal",
                put("..%2F..%2Fsecrets%2Fadmin_token"),
                &[400],
            ),
            (
                "encoded traversal to remove",
                s.authed(Method::DELETE, "/api/collections/..%2F..%2FFORMAT"),
                &[400],
            ),
            (
                "traversal",
                raw_put("/api/collections/../../FORMAT"),
                &[404, 405],
            ),
            ("a slash", put("a%2Fb"), &[400]),
            ("a backslash path", put("..%5C..%5CFORMAT%2Fx"), &[400]),
            ("a NUL", put("a%00b"), &[400]),
            ("a newline", put("a%0Ab"), &[400]),
            ("blank", put("%20"), &[400]),
            ("too long", put(&"%C3%A9".repeat(101)), &[400]),
            (
                "huge body",
                s.authed(Method::PUT, "/api/collections/kept")
                    .header("content-type", "application/json")
                    .body(format!(
                        r#"{{"public": true, "x": "{}"}}"#,
                        "x".repeat(1_000_000)
                    )),
                &[400, 413],
            ),
            (
                "JSON that is not an object",
                s.authed(Method::PUT, "/api/collections/kept")
                    .json(&json!([true])),
                &[400],
            ),
            (
                "public as a string",
                s.authed(Method::PUT, "/api/collections/kept")
                    .json(&json!({"public": "false"})),
                &[400],
            ),
            (
                "a form",
                s.authed(Method::PUT, "/api/collections/kept")
                    .form(&[("public", "false")]),
                &[415],
            ),
            (
                "remove one media are in",
                s.authed(Method::DELETE, "/api/collections/stories"),
                &[409],
            ),
            (
                "remove one that does not exist",
                s.authed(Method::DELETE, "/api/collections/nothing"),
                &[404],
            ),
            (
                "another method",
                s.authed(Method::PATCH, "/api/collections/kept")
                    .json(&json!({"public": false})),
                &[405],
            ),
        ],
    );
    let listed: Value = s.get("/api/collections").send().unwrap().json().unwrap();
    assert_eq!(
        listed["items"],
        json!([
            {"name": "kept", "public": true, "created_at": listed["items"][0]["created_at"]},
            {"name": "stories", "public": false}
        ])
    );
}

#[test]
fn scoped_tokens_see_and_change_only_what_they_may() {
    let s = TestServer::start();
    let create = |name: &str, scope: &str| s.api_token(name, scope);
    let uploader = create("uploader", "upload");
    let other_uploader = create("other", "upload");
    let reader = create("reader", "read");
    let as_token =
        |t: &str, m: Method, path: &str| s.client().request(m, s.url(path)).bearer_auth(t);

    let admins = s.upload("admins.txt", b"admin's", &[("visibility", "private")]);
    let admins_id = admins["id"].as_str().unwrap();
    let form = Form::new()
        .part("file", Part::bytes(b"mine".to_vec()).file_name("mine.txt"))
        .text("visibility", "private");
    let res = as_token(&uploader, Method::POST, "/api/media")
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    let mine: Value = res.json::<Value>().unwrap()["items"][0].clone();
    let mine_id = mine["id"].as_str().unwrap();
    assert!(mine["owner"].is_string());

    refused(
        &s,
        vec![
            (
                "upload token edits the admin's media",
                as_token(&uploader, Method::PATCH, &format!("/api/media/{admins_id}"))
                    .json(&json!({"title": "x"})),
                &[404],
            ),
            (
                "other uploader edits mine",
                as_token(
                    &other_uploader,
                    Method::PATCH,
                    &format!("/api/media/{mine_id}"),
                )
                .json(&json!({"title": "x"})),
                &[404],
            ),
            (
                "other uploader deletes mine",
                as_token(
                    &other_uploader,
                    Method::DELETE,
                    &format!("/api/media/{mine_id}"),
                ),
                &[404],
            ),
            (
                "reader edits",
                as_token(&reader, Method::PATCH, &format!("/api/media/{mine_id}"))
                    .json(&json!({"title": "x"})),
                &[403],
            ),
            (
                "reader uploads",
                as_token(&reader, Method::POST, "/api/media?filename=r.txt").body("r"),
                &[403],
            ),
            (
                "uploader lists tokens",
                as_token(&uploader, Method::GET, "/api/tokens"),
                &[403],
            ),
            (
                "uploader makes a token",
                as_token(&uploader, Method::POST, "/api/tokens")
                    .json(&json!({"name": "x", "scope": "admin"})),
                &[403],
            ),
            (
                "uploader reads status",
                as_token(&uploader, Method::GET, "/api/status"),
                &[403],
            ),
            (
                "uploader takes a backup",
                as_token(&uploader, Method::GET, "/api/backup"),
                &[403],
            ),
            (
                "other uploader reads my private file",
                as_token(&other_uploader, Method::GET, &format!("/m/{mine_id}")),
                &[404],
            ),
            (
                "anonymous reads private by id",
                s.get(&format!("/api/media/{admins_id}")),
                &[404],
            ),
            (
                "anonymous reads private by hash",
                s.get(&format!("/f/{}", admins["hash"].as_str().unwrap())),
                &[404],
            ),
            (
                "wrong token",
                s.get("/api/media").bearer_auth("sbx_not-a-real-token"),
                &[401],
            ),
            (
                "empty bearer",
                s.get("/api/media").header("authorization", "Bearer "),
                &[401],
            ),
        ],
    );
    // What they may do.
    let res = as_token(&uploader, Method::PATCH, &format!("/api/media/{mine_id}"))
        .json(&json!({"title": "mine"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let listed: Value = as_token(&uploader, Method::GET, "/api/media")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![mine_id],
        "an uploader lists its own private media, not others'"
    );
    let listed: Value = as_token(&reader, Method::GET, "/api/media")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        2,
        "a reader sees every private record"
    );
    assert_eq!(
        as_token(&reader, Method::GET, &format!("/m/{admins_id}"))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert!(
        s.get("/api/media").send().unwrap().json::<Value>().unwrap()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Revoked and expired tokens stop working.
    let list: Value = s
        .authed(Method::GET, "/api/tokens")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        !list.to_string().contains(&uploader[4..]),
        "listings never show token values"
    );
    let uploader_id = s.token_id("uploader");
    assert_eq!(
        s.authed(Method::DELETE, &format!("/api/tokens/{uploader_id}"))
            .send()
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        as_token(&uploader, Method::GET, "/api/media")
            .send()
            .unwrap()
            .status(),
        401
    );
    let (code, out) = run_cli(
        &[
            "token",
            "create",
            "--name",
            "brief",
            "--scope",
            "read",
            "--expires-in",
            "4s",
        ],
        &s.data_dir,
    );
    assert_eq!(code, 0, "{out}");
    let brief = out.lines().next().unwrap().trim().to_owned();
    // The server re-reads the token file at most once a second. Each try is spaced out so
    // failures do not trip the sign-in throttle.
    let created = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        as_token(&brief, Method::GET, "/api/media")
            .send()
            .unwrap()
            .status(),
        200,
        "a token from the command line works"
    );
    std::thread::sleep(Duration::from_secs(5).saturating_sub(created.elapsed()));
    assert_eq!(
        as_token(&brief, Method::GET, "/api/media")
            .send()
            .unwrap()
            .status(),
        401,
        "expired"
    );
}

#[test]
fn signed_urls_open_private_media_until_they_expire_and_only_there() {
    let s = TestServer::start();
    let a = s.upload("a.bin", &bytes(1000, 1), &[("visibility", "private")]);
    let b = s.upload("b.bin", &bytes(1000, 2), &[("visibility", "private")]);
    let sign = |id: &str, secs: u64| -> String {
        let v: Value = s
            .authed(
                Method::GET,
                &format!("/api/media/{id}/url?expires_in={secs}"),
            )
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["url"].as_str().unwrap().to_owned()
    };
    let a_id = a["id"].as_str().unwrap();
    let b_id = b["id"].as_str().unwrap();
    let url = sign(a_id, 600);
    assert_eq!(
        s.get(&url).send().unwrap().status(),
        200,
        "anyone holding it may fetch"
    );
    assert_eq!(s.client().head(s.url(&url)).send().unwrap().status(), 200);
    let query = url.split_once('?').unwrap().1;
    let flipped = {
        let (head, sig) = query.rsplit_once("sig=").unwrap();
        let mut sig = sig.to_owned();
        let c = if sig.starts_with('0') { "1" } else { "0" };
        sig.replace_range(0..1, c);
        format!("{head}sig={sig}")
    };
    let later = query.replacen("exp=", "exp=9", 1);
    let short = sign(a_id, 1);
    std::thread::sleep(Duration::from_millis(2100));
    refused(
        &s,
        vec![
            (
                "tampered signature",
                s.get(&format!("/m/{a_id}?{flipped}")),
                &[403],
            ),
            (
                "extended expiry",
                s.get(&format!("/m/{a_id}?{later}")),
                &[403],
            ),
            ("another path", s.get(&format!("/m/{b_id}?{query}")), &[403]),
            ("expired", s.get(&short), &[403]),
            ("no signature", s.get(&format!("/m/{a_id}")), &[404]),
            (
                "signature on /f",
                s.get(&format!("/f/{}?{query}", a["hash"].as_str().unwrap())),
                &[404],
            ),
            (
                "too long a lifetime",
                s.authed(
                    Method::GET,
                    &format!("/api/media/{a_id}/url?expires_in=99999999"),
                ),
                &[400],
            ),
            (
                "anonymous signing",
                s.get(&format!("/api/media/{a_id}/url")),
                &[401],
            ),
        ],
    );
    let (status, body) = status_and_body(s.get(&short));
    assert_eq!(status, 403);
    assert!(body.contains("expired_signature"), "{body}");
}

#[test]
fn cors_shares_public_reads_with_allowed_origins_only() {
    let s = TestServer::builder()
        .arg("--cors-origins")
        .arg("https://good.example")
        .start();
    let item = s.upload("a.txt", b"shared", &[]);
    let file = format!("/f/{}", item["hash"].as_str().unwrap());
    let acao = |req: RequestBuilder| {
        req.send()
            .unwrap()
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        acao(s.get(&file).header("origin", "https://good.example")).as_deref(),
        Some("https://good.example")
    );
    assert_eq!(
        acao(s.get("/api/media").header("origin", "https://good.example")).as_deref(),
        Some("https://good.example")
    );
    assert_eq!(
        acao(s.get(&file).header("origin", "https://evil.example")),
        None
    );
    let preflight = s
        .client()
        .request(Method::OPTIONS, s.url(&file))
        .header("origin", "https://good.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "range")
        .send()
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert!(preflight
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    let write_preflight = s
        .client()
        .request(Method::OPTIONS, s.url("/api/media"))
        .header("origin", "https://good.example")
        .header("access-control-request-method", "POST")
        .send()
        .unwrap();
    assert_ne!(write_preflight.status(), 204);
    assert!(write_preflight
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let write = s
        .authed(Method::POST, "/api/media?filename=w.txt")
        .header("origin", "https://good.example")
        .body("w");
    assert_eq!(acao(write), None, "writes never get CORS headers");
    assert_eq!(
        acao(
            s.authed(Method::GET, "/api/tokens")
                .header("origin", "https://good.example")
        ),
        None
    );
}

#[test]
fn cross_site_cookie_writes_and_disallowed_types_are_refused() {
    let s = TestServer::builder()
        .arg("--allowed-types")
        .arg("image/*,text/plain")
        .start();
    let cookie = s.session_cookie(common::TOKEN);
    let html = b"<!DOCTYPE html><html><script>alert(1)</script></html>".to_vec();
    refused(
        &s,
        vec![
            (
                "cross-site form post with the cookie",
                s.client()
                    .post(s.url("/api/media?filename=x.txt"))
                    .header("cookie", &cookie)
                    .header("origin", "https://evil.example")
                    .body("x"),
                &[403],
            ),
            (
                "cookie write without Origin or Sec-Fetch-Site",
                s.client()
                    .post(s.url("/api/media?filename=x.txt"))
                    .header("cookie", &cookie)
                    .body("x"),
                &[403],
            ),
            (
                "HTML when only images and text are allowed",
                s.authed(Method::POST, "/api/media?filename=page.txt")
                    .body(html),
                &[415],
            ),
            (
                "PDF when only images and text are allowed",
                s.authed(Method::POST, "/api/media?filename=a.pdf")
                    .body("%PDF-1.4 x"),
                &[415],
            ),
        ],
    );
    assert_eq!(
        s.authed(Method::POST, "/api/media?filename=x.txt")
            .body("plain")
            .send()
            .unwrap()
            .status(),
        201
    );
}

#[test]
fn repeated_bad_tokens_are_throttled() {
    let s = TestServer::start();
    for _ in 0..10 {
        assert_eq!(
            s.get("/api/media")
                .bearer_auth("sbx_guess-guess-guess")
                .send()
                .unwrap()
                .status(),
            401
        );
    }
    let res = s
        .get("/api/media")
        .bearer_auth("sbx_guess-guess-guess")
        .send()
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(
        res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    let res = s
        .client()
        .post(s.url("/api/session"))
        .json(&json!({"token": "wrong"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 429, "sign-in shares the budget");
    // Anonymous reads still work for everyone.
    assert_eq!(s.get("/api/media").send().unwrap().status(), 200);
    // A valid credential always works, from the very address that was throttled: only the
    // failures are held back, so nobody can lock the owner out.
    assert_eq!(
        s.authed(Method::GET, "/api/status")
            .send()
            .unwrap()
            .status(),
        200
    );
    let res = s
        .client()
        .post(s.url("/api/session"))
        .json(&json!({"token": common::TOKEN}))
        .send()
        .unwrap();
    assert!(res.status().is_success(), "sign-in: {}", res.status());
    let created: Value = s
        .authed(Method::POST, "/api/tokens")
        .json(&json!({"name": "uploader", "scope": "upload"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let res = s
        .client()
        .post(s.url("/api/media?filename=a.txt"))
        .bearer_auth(created["token"].as_str().unwrap())
        .body("still uploading")
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
}

/// Requests that stall or inflate: each is cut off within the client timeout (2 s here), with
/// `408` where an answer can still be given, and the server keeps answering everyone else.
#[test]
fn stalled_and_inflating_requests_are_cut_off() {
    use std::io::Write;
    let s = TestServer::builder()
        .arg("--client-timeout")
        .arg("2s")
        .start();
    let item = s.upload("a.txt", b"kept", &[]);
    let id = item["id"].as_str().unwrap();
    let auth = format!("Authorization: Bearer {}\r\n", common::TOKEN);
    let boundary = "----stall";
    let part = |name: &str| {
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "a JSON body",
            "POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{\"token\": \"abc"
                .to_owned(),
        ),
        (
            "a multipart text field",
            format!(
                "POST /api/media HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: multipart/form-data; \
                 boundary={boundary}\r\nContent-Length: 10000\r\n\r\n{}holiday in",
                part("title")
            ),
        ),
        (
            "the gap between multipart parts",
            format!(
                "POST /api/media HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: multipart/form-data; \
                 boundary={boundary}\r\nContent-Length: 10000\r\n\r\n{}holiday\r\n",
                part("title")
            ),
        ),
        (
            "a raw upload",
            format!(
                "POST /api/media?filename=a.bin HTTP/1.1\r\nHost: x\r\n{auth}\
                 Content-Length: 10000\r\n\r\nthe first bytes"
            ),
        ),
    ];
    for (what, request) in cases {
        let started = std::time::Instant::now();
        let mut conn = s.raw();
        conn.write_all(request.as_bytes()).unwrap();
        let answer = common::read_answer(&mut conn);
        assert!(answer.starts_with("HTTP/1.1 408"), "{what}: {answer}");
        assert!(answer.contains("request_timeout"), "{what}: {answer}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: cut off in {:?}",
            started.elapsed()
        );
    }

    // A head that never ends, on a connection whose first request was answered.
    let mut conn = s.raw();
    conn.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(common::read_answer(&mut conn).starts_with("HTTP/1.1 200"));
    conn.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let started = std::time::Instant::now();
    let rest = common::read_answer(&mut conn);
    assert!(
        !rest.starts_with("HTTP/1.1 200"),
        "the stalled head was never answered: {rest}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the stalled connection was closed, in {:?}",
        started.elapsed()
    );

    // Compressed bodies are refused before they are read, on every route.
    let gzip: &[u8] = &[
        0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    for (method, path) in [
        (Method::POST, "/api/session".to_owned()),
        (Method::PATCH, format!("/api/media/{id}")),
        (Method::POST, "/api/tokens".to_owned()),
        (Method::POST, "/api/media?filename=z.bin".to_owned()),
    ] {
        let res = s
            .authed(method.clone(), &path)
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .body(gzip.to_vec())
            .send()
            .unwrap();
        assert_eq!(
            common::error_code(res, 415),
            "unsupported_media_type",
            "{method} {path}"
        );
    }

    // A write that needs a token is refused before its body is read: the answer comes while
    // the announced body has not been sent.
    for (request, status) in [
        (
            format!(
                "PATCH /api/media/{id} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 60000\r\n\r\n"
            ),
            "401",
        ),
        (
            "POST /api/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 60000\r\n\r\n"
                .to_owned(),
            "401",
        ),
    ] {
        let started = std::time::Instant::now();
        let mut conn = s.raw();
        conn.write_all(request.as_bytes()).unwrap();
        let answer = common::read_answer(&mut conn);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{request}: {answer}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "answered before the body: {:?}",
            started.elapsed()
        );
    }

    // Made-up methods never become metric labels.
    for n in 0..40 {
        let method = Method::from_bytes(format!("MADEUP{n}").as_bytes()).unwrap();
        let _ = s.client().request(method, s.url("/api/health")).send();
    }
    let metrics = s.metrics();
    assert!(!metrics.contains("MADEUP"), "a client chose a label");
    assert!(metrics.contains("method=\"other\""), "{metrics}");

    // And everyone else was served throughout.
    assert_eq!(s.media_bytes(id), b"kept");
}

/// Stalled connections against a process with few file descriptors: each first has a request
/// answered, then stalls the head of its next one (which actix never times out by itself).
/// Connections are capped below the limit and idle ones closed after the client timeout, so
/// the server never runs out of descriptors, and health checks and uploads are answered.
#[test]
fn stalled_connections_cannot_exhaust_descriptors() {
    use std::io::Write;
    let s = TestServer::builder()
        .arg("--client-timeout")
        .arg("2s")
        .nofile(128)
        .start();
    let mut stalled = Vec::new();
    for n in 0..150 {
        let mut conn = s.raw();
        if conn
            .write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
            .is_err()
            || !common::read_answer(&mut conn).starts_with("HTTP/1.1 200")
        {
            continue;
        }
        let _ =
            conn.write_all(format!("GET /api/health HTTP/1.1\r\nHost: x\r\nX-{n}: ").as_bytes());
        stalled.push(conn);
    }
    assert!(
        stalled.len() > 100,
        "the stalls were set up: {}",
        stalled.len()
    );
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let health = client.get(s.url("/api/health")).send().unwrap();
    assert_eq!(health.status(), 200);
    s.upload("after.txt", b"still taking uploads", &[]);
    drop(stalled);
    assert!(
        !s.output().to_lowercase().contains("too many open files"),
        "{}",
        s.output()
    );
}

/// The smaller holes of the attack round, each against the real binary.
#[test]
fn low_severity_leaks_are_closed() {
    let s = TestServer::start();

    // The public health check tells no byte counts: exact free space would show an uploader
    // whether the bytes of a private file are stored already.
    let health = s.get("/api/health").send().unwrap().text().unwrap();
    assert!(!health.contains("_bytes"), "{health}");

    // `rotate-url-key --keep 1` takes effect in the running server, without a restart.
    let private = s.upload("p.bin", &bytes(500, 9), &[("visibility", "private")]);
    let id = private["id"].as_str().unwrap();
    let sign = || -> String {
        let v: Value = s
            .authed(Method::GET, &format!("/api/media/{id}/url?expires_in=600"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["url"].as_str().unwrap().to_owned()
    };
    let old = sign();
    assert_eq!(s.get(&old).send().unwrap().status(), 200);
    let (code, out) = run_cli(&["rotate-url-key", "--keep", "1"], &s.data_dir);
    assert_eq!(code, 0, "{out}");
    common::eventually(
        "the old key is dropped without a restart",
        Duration::from_secs(10),
        || s.get(&old).send().unwrap().status() != 200,
    );
    assert_eq!(s.get(&sign()).send().unwrap().status(), 200);
}

/// A listing page that ends at its scan bound (20,000 index entries) among private records
/// hands an anonymous caller a cursor that names none of them, and still reaches the public
/// record beyond them. The private records are written as record files and indexed by
/// `rebuild`, which is much quicker than 20,000 uploads.
#[test]
fn a_listing_cursor_never_names_a_private_record() {
    let mut s = TestServer::start();
    let public = s.upload("old.txt", b"the public one", &[]);
    let template = s.upload("p.txt", b"private bytes", &[("visibility", "private")]);
    assert!(s.terminate().success());
    let records = s.data_dir.join("records");
    let mut private = std::collections::BTreeSet::new();
    let base = ulid::Ulid::from_string(template["id"].as_str().unwrap()).unwrap();
    let file: Value = serde_json::from_slice(
        &std::fs::read(records.join(format!("{}.json", template["id"].as_str().unwrap()))).unwrap(),
    )
    .unwrap();
    for n in 0..20_100u64 {
        let id = ulid::Ulid::from_parts(base.timestamp_ms() + 1 + n / 4, u128::from(n))
            .to_string()
            .to_ascii_lowercase();
        let mut record = file.clone();
        record["id"] = Value::from(id.clone());
        std::fs::write(
            records.join(format!("{id}.json")),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
        private.insert(id);
    }
    private.insert(template["id"].as_str().unwrap().to_owned());
    let (code, out) = run_cli(&["rebuild"], &s.data_dir);
    assert_eq!(code, 0, "{out}");
    let s = s.restart();

    let mut cursor = String::new();
    let mut listed = Vec::new();
    for _ in 0..10 {
        let page: Value = s
            .get(&format!("/api/media?limit=10&cursor={cursor}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        listed.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => {
                assert!(
                    !private.iter().any(|p| next.contains(p.as_str())),
                    "the cursor {next} names a private record"
                );
                cursor = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(listed, vec![public["id"].as_str().unwrap().to_owned()]);
}

/// The variant parameters (`w`, `h`, `fit`, `format`, `poster`) and an upload's
/// `keep_metadata` take only what the server lists: every other value, repeated or huge, is a
/// clear `4xx` that makes no variant and changes nothing.
#[test]
fn variant_parameters_outside_the_lists_are_refused() {
    let s = TestServer::start();
    let picture = common::png(40, 30, |x, y| [x as u8 * 6, y as u8 * 8, 90]);
    let image = s.upload("p.png", &picture, &[]);
    let text = s.upload("t.txt", b"words", &[]);
    let m = format!("/m/{}", image["id"].as_str().unwrap());
    let f = format!("/f/{}", image["hash"].as_str().unwrap());
    let raw = |path: &str| s.client().get(format!("{}{}", s.base, path));
    let long = "9".repeat(50_000);
    refused(
        &s,
        vec![
            ("unlisted width", raw(&format!("{m}?w=321")), &[400]),
            ("width zero", raw(&format!("{m}?h=0")), &[400]),
            ("negative width", raw(&format!("{f}?w=-320")), &[400]),
            (
                "width past u32",
                raw(&format!("{f}?w=99999999999999999999")),
                &[400],
            ),
            ("width in exponent form", raw(&format!("{m}?w=1e3")), &[400]),
            ("empty width", raw(&format!("{m}?w=")), &[400]),
            (
                "huge width",
                raw(&format!("{m}?w={long}")),
                &[400, 414, 431],
            ),
            (
                "traversal as fit",
                raw(&format!("{m}?w=160&fit=../../FORMAT")),
                &[400],
            ),
            (
                "traversal as format",
                raw(&format!("{m}?w=160&format=../../secrets")),
                &[400],
            ),
            (
                "an unmade format",
                raw(&format!("{m}?w=160&format=svg")),
                &[400],
            ),
            ("format alone", raw(&format!("{m}?format=webp")), &[400]),
            ("fit alone", raw(&format!("{f}?fit=cover")), &[400]),
            (
                "a variant of text",
                raw(&format!("/m/{}?w=160", text["id"].as_str().unwrap())),
                &[400],
            ),
            (
                "a variant of nothing",
                raw(&format!("/f/{}?w=160", "0".repeat(64))),
                &[404],
            ),
            (
                "a poster of a picture",
                raw(&format!("{m}?poster=1")),
                &[400],
            ),
            (
                "a sized poster of text",
                raw(&format!(
                    "/m/{}?poster=1&w=160",
                    text["id"].as_str().unwrap()
                )),
                &[400],
            ),
            (
                "keep_metadata that is no boolean",
                s.authed(
                    Method::POST,
                    "/api/media?filename=k.png&keep_metadata=perhaps",
                )
                .body(picture.clone()),
                &[400],
            ),
        ],
    );
    assert!(
        common::entries(&s.data_dir.join("variants")).is_empty(),
        "a refused request made a variant"
    );
    // Repeated parameters: the first counts, as in every other query.
    let res = raw(&format!("{m}?w=160&w=99999&format=png"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// A tus request with the protocol's version header.
fn tus(s: &TestServer, method: Method, path: &str) -> RequestBuilder {
    s.authed(method, path).header("tus-resumable", "1.0.0")
}

fn chunk(req: RequestBuilder, offset: u64, body: &'static [u8]) -> RequestBuilder {
    req.header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(body)
}

#[test]
fn tus_requests_outside_the_protocol_are_refused_and_change_nothing() {
    let s = TestServer::builder()
        .arg("--max-upload-bytes")
        .arg("64KiB")
        .start();
    let res = tus(&s, Method::POST, "/api/uploads")
        .header("upload-length", "20")
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    let at = res.headers()["location"].to_str().unwrap().to_owned();
    let res = chunk(tus(&s, Method::PATCH, &at), 0, b"0123456789")
        .send()
        .unwrap();
    assert_eq!(res.status(), 204);
    let other = s.api_token("other", "upload");
    let reader = s.api_token("reader", "read");
    let as_other = |m: Method, path: &str| {
        s.client()
            .request(m, s.url(path))
            .bearer_auth(&other)
            .header("tus-resumable", "1.0.0")
    };
    let post = || tus(&s, Method::POST, "/api/uploads");
    let huge = format!("filename {}", "A".repeat(70_000));
    refused(
        &s,
        vec![
            (
                "no version",
                s.authed(Method::POST, "/api/uploads")
                    .header("upload-length", "5"),
                &[412],
            ),
            (
                "an old version",
                s.authed(Method::POST, "/api/uploads")
                    .header("tus-resumable", "0.2.2")
                    .header("upload-length", "5"),
                &[412],
            ),
            ("no length", post(), &[400]),
            (
                "both lengths",
                post()
                    .header("upload-length", "5")
                    .header("upload-defer-length", "1"),
                &[400],
            ),
            (
                "a deferral that is not 1",
                post().header("upload-defer-length", "yes"),
                &[400],
            ),
            (
                "a negative length",
                post().header("upload-length", "-5"),
                &[400],
            ),
            (
                "a length in exponent form",
                post().header("upload-length", "1e3"),
                &[400],
            ),
            (
                "a length past u64",
                post().header("upload-length", "99999999999999999999999"),
                &[400],
            ),
            (
                "a length over the limit",
                post().header("upload-length", "65537"),
                &[413],
            ),
            (
                "metadata that is not base64",
                post()
                    .header("upload-length", "5")
                    .header("upload-metadata", "filename ***"),
                &[400],
            ),
            (
                "metadata of bad UTF-8",
                post()
                    .header("upload-length", "5")
                    .header("upload-metadata", "title /w=="),
                &[400],
            ),
            (
                "a bad visibility",
                post()
                    .header("upload-length", "5")
                    .header("upload-metadata", "visibility c2VjcmV0"),
                &[400],
            ),
            (
                "custom that is no object",
                post()
                    .header("upload-length", "5")
                    .header("upload-metadata", "custom WzFd"),
                &[400],
            ),
            (
                "keep_metadata from no admin",
                as_other(Method::POST, "/api/uploads")
                    .header("upload-length", "5")
                    .header("upload-metadata", "keep_metadata dHJ1ZQ=="),
                &[403],
            ),
            (
                "metadata past its bound",
                post()
                    .header("upload-length", "5")
                    .header("upload-metadata", huge.as_str()),
                &[400, 431],
            ),
            (
                "a read token creates",
                s.client()
                    .post(s.url("/api/uploads"))
                    .bearer_auth(&reader)
                    .header("tus-resumable", "1.0.0")
                    .header("upload-length", "5"),
                &[403],
            ),
            (
                "nobody creates",
                s.client()
                    .post(s.url("/api/uploads"))
                    .header("tus-resumable", "1.0.0")
                    .header("upload-length", "5"),
                &[401],
            ),
            (
                "a wrong offset",
                chunk(tus(&s, Method::PATCH, &at), 3, b"abc"),
                &[409],
            ),
            (
                "an offset that is no number",
                tus(&s, Method::PATCH, &at)
                    .header("upload-offset", "ten")
                    .header("content-type", "application/offset+octet-stream")
                    .body("abc"),
                &[400],
            ),
            (
                "no offset",
                tus(&s, Method::PATCH, &at)
                    .header("content-type", "application/offset+octet-stream")
                    .body("abc"),
                &[400],
            ),
            (
                "a chunk of another type",
                tus(&s, Method::PATCH, &at)
                    .header("upload-offset", "10")
                    .header("content-type", "application/json")
                    .body("{}"),
                &[415],
            ),
            (
                "a chunk past the length",
                chunk(tus(&s, Method::PATCH, &at), 10, b"0123456789ABC"),
                &[413],
            ),
            (
                "a length that changes",
                chunk(tus(&s, Method::PATCH, &at), 10, b"ab").header("upload-length", "30"),
                &[400],
            ),
            (
                "an unknown checksum",
                chunk(tus(&s, Method::PATCH, &at), 10, b"ab")
                    .header("upload-checksum", "md5 AAAAAAAAAAAAAAAAAAAAAA=="),
                &[400],
            ),
            (
                "a checksum of the wrong size",
                chunk(tus(&s, Method::PATCH, &at), 10, b"ab")
                    .header("upload-checksum", "sha1 AAAA"),
                &[400],
            ),
            (
                "a checksum that does not match",
                chunk(tus(&s, Method::PATCH, &at), 10, b"ab")
                    .header("upload-checksum", "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                &[460],
            ),
            (
                "another token's HEAD",
                as_other(Method::HEAD, &at),
                &[403, 404],
            ),
            (
                "another token's PATCH",
                chunk(as_other(Method::PATCH, &at), 10, b"ab"),
                &[403, 404],
            ),
            (
                "another token's DELETE",
                as_other(Method::DELETE, &at),
                &[403, 404],
            ),
            (
                "another token's GET",
                as_other(Method::GET, &at),
                &[403, 404],
            ),
            (
                "an unknown upload",
                tus(
                    &s,
                    Method::HEAD,
                    &format!("/api/uploads/{}", "0".repeat(32)),
                ),
                &[404],
            ),
            (
                "traversal as an upload",
                tus(&s, Method::DELETE, "/api/uploads/..%2F..%2FFORMAT"),
                &[404],
            ),
            (
                "a sidecar as an upload",
                tus(&s, Method::DELETE, &format!("{at}.json")),
                &[404],
            ),
            (
                "an unfinished upload's record",
                s.authed(Method::GET, &at),
                &[409],
            ),
            (
                "PUT to an upload",
                tus(&s, Method::PUT, &at).body("x"),
                &[405],
            ),
        ],
    );
    // The upload is where it was.
    let res = tus(&s, Method::HEAD, &at).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["upload-offset"], "10");
    assert_eq!(res.headers()["tus-resumable"], "1.0.0");
}

#[test]
fn cors_admits_tus_uploads_from_allowed_origins_with_a_bearer_token_only() {
    let s = TestServer::builder()
        .arg("--cors-origins")
        .arg("https://app.example")
        .start();
    let preflight = |origin: &str, method: &str| {
        s.client()
            .request(Method::OPTIONS, s.url("/api/uploads"))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "authorization,tus-resumable,upload-length,upload-metadata",
            )
            .send()
            .unwrap()
    };
    let res = preflight("https://app.example", "POST");
    assert_eq!(res.status(), 204);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in [
        "authorization",
        "tus-resumable",
        "upload-offset",
        "upload-checksum",
    ] {
        assert!(allowed.contains(name), "{name} in {allowed}");
    }
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PATCH"));
    assert!(h.get("access-control-allow-credentials").is_none());
    let res = preflight("https://evil.example", "POST");
    assert!(res.headers().get("access-control-allow-origin").is_none());

    // A Bearer upload from the app's page: its answers expose what tus-js-client reads.
    let res = tus(&s, Method::POST, "/api/uploads")
        .header("origin", "https://app.example")
        .header("upload-length", "3")
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in [
        "location",
        "upload-offset",
        "tus-resumable",
        "shoebox-media-id",
    ] {
        assert!(exposed.contains(name), "{name} in {exposed}");
    }
    let at = res.headers()["location"].to_str().unwrap().to_owned();

    // The web app's session does not ride along from another site, not even for a HEAD.
    let res = s
        .client()
        .post(s.url("/api/session"))
        .json(&json!({"token": common::TOKEN}))
        .send()
        .unwrap();
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let with_cookie = |m: Method, path: &str, origin: &str| {
        s.client()
            .request(m, s.url(path))
            .header("cookie", &cookie)
            .header("origin", origin)
            .header("tus-resumable", "1.0.0")
    };
    refused(
        &s,
        vec![
            (
                "a cookie HEAD from the app's site",
                with_cookie(Method::HEAD, &at, "https://app.example"),
                &[403],
            ),
            (
                "a cookie create from the app's site",
                with_cookie(Method::POST, "/api/uploads", "https://app.example")
                    .header("upload-length", "3"),
                &[403],
            ),
            (
                "a cookie PATCH from another site",
                chunk(
                    with_cookie(Method::PATCH, &at, "https://evil.example"),
                    0,
                    b"abc",
                ),
                &[403],
            ),
        ],
    );
    // From Shoebox's own page the session works, and an upload the admin token started is
    // the admin's session's too.
    let res = chunk(with_cookie(Method::PATCH, &at, &s.base), 0, b"abc")
        .send()
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(res.headers().contains_key("shoebox-media-id"));
}

#[test]
fn a_resumable_upload_of_a_refused_type_ends_once_its_first_bytes_are_in() {
    let s = TestServer::builder()
        .arg("--allowed-types")
        .arg("image/*")
        .start();
    let create = |length: usize, name: &str| {
        let res = tus(&s, Method::POST, "/api/uploads")
            .header("upload-length", length.to_string())
            .header(
                "upload-metadata",
                format!("filename {}", base64_of(name.as_bytes())),
            )
            .send()
            .unwrap();
        assert_eq!(res.status(), 201);
        res.headers()["location"].to_str().unwrap().to_owned()
    };
    let at = create(300_000, "notes.txt");
    let text = "plain words, not a picture\n".repeat(4000);
    let res = tus(&s, Method::PATCH, &at)
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(text.as_bytes()[..100_000].to_vec())
        .send()
        .unwrap();
    assert_eq!(res.status(), 415, "refused before the rest is sent");
    assert_eq!(tus(&s, Method::HEAD, &at).send().unwrap().status(), 404);
    assert!(common::entries(&s.data_dir.join("uploads")).is_empty());
    // A picture goes through.
    let picture = common::png(20, 10, |x, _| [x as u8 * 10, 0, 0]);
    let at = create(picture.len(), "dot.png");
    let res = tus(&s, Method::PATCH, &at)
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(picture)
        .send()
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(res.headers().contains_key("shoebox-media-id"));
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn a_token_may_have_a_thousand_resumable_uploads_in_progress_and_no_more() {
    let s = TestServer::start();
    let token = s.api_token("eager", "upload");
    let start = |t: &str| {
        s.client()
            .post(s.url("/api/uploads"))
            .bearer_auth(t)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "10")
            .send()
            .unwrap()
    };
    let mut first = None;
    for _ in 0..1000 {
        let res = start(&token);
        assert_eq!(res.status(), 201);
        first.get_or_insert(res.headers()["location"].to_str().unwrap().to_owned());
    }
    let res = start(&token);
    assert_eq!(res.status(), 429);
    assert_eq!(common::error_code(res, 429), "too_many_uploads");
    // Others are not held back, and ending one makes room.
    assert_eq!(start(common::TOKEN).status(), 201);
    let res = s
        .client()
        .delete(s.url(first.as_deref().unwrap()))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .send()
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(start(&token).status(), 201);
}

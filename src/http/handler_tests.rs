//! Fast in-process tests of the REST handlers through `actix_web::test`: the app is built as
//! `run` builds it (the same state, middleware and routes) and called without a socket or a
//! process. The black-box suite in `tests/` stays the reference for what the behaviour is.

use std::sync::Arc;

use actix_http::Request;
use actix_service::boxed::{self, BoxService};
use actix_service::ServiceExt;
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderMap};
use actix_web::test::{self as atest, TestRequest};
use actix_web::web;
use bytes::Bytes;
use clap::Parser;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::AppState;
use crate::config::{Cli, Config};
use crate::credentials::secrets::{SessionKey, TokenHash};
use crate::store::catalogue::Role;
use crate::store::{disk, Store};

const TOKEN: &str = "handler-tests-admin-token";
const BOUNDARY: &str = "handler-tests-boundary";

/// An answer, read to its end.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The stable code of a JSON error answer, once its status is checked.
    fn error(&self, status: u16) -> String {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let v = self.json();
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        v["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// The app `run` serves, over a fresh data directory of its own.
struct Harness {
    app: BoxService<Request, ServiceResponse, actix_web::Error>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let args = ["shoebox", "--data-dir", path.to_str().unwrap()];
        let config = Config::from_args(Cli::try_parse_from(args).unwrap().serve).unwrap();
        let store = Arc::new(Store::start(path, Role::Server).unwrap());
        let persistence = disk::persistence(path);
        let state = AppState::new(
            store,
            config,
            TokenHash::of(TOKEN),
            persistence,
            SessionKey::random(),
        )
        .unwrap();
        let app = atest::init_service(super::app(web::Data::new(state))).await;
        Harness {
            app: boxed::service(app.map(ServiceResponse::map_into_boxed_body)),
            _dir: dir,
        }
    }

    async fn send(&self, req: TestRequest) -> Reply {
        let res = atest::call_service(&self.app, req.to_request()).await;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = atest::read_body(res).await;
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A raw-body upload with the admin token; the record it made.
    async fn upload(&self, query: &str, body: impl Into<Bytes>) -> Value {
        let req = TestRequest::post().uri(&format!("/api/media{query}"));
        let res = self.send(bearer(req, TOKEN).set_payload(body)).await;
        assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
        res.json()["items"][0].clone()
    }

    /// A new API token of this scope, made by the admin: (id, value).
    async fn token(&self, scope: &str) -> (String, String) {
        let req = TestRequest::post()
            .uri("/api/tokens")
            .set_json(json!({"name": format!("a {scope} token"), "scope": scope}));
        let res = self.send(bearer(req, TOKEN)).await;
        assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
        assert_eq!(res.header("cache-control"), "no-store");
        let v = res.json();
        assert_eq!(v["scope"], scope);
        let field = |k: &str| v[k].as_str().unwrap().to_owned();
        (field("id"), field("token"))
    }
}

fn bearer(req: TestRequest, token: &str) -> TestRequest {
    req.insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
}

fn get(uri: &str) -> TestRequest {
    TestRequest::get().uri(uri)
}

fn get_with(uri: &str, name: header::HeaderName, value: &str) -> TestRequest {
    get(uri).insert_header((name, value))
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The start of a PNG of this size: enough for sniffing and dimensions.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&[8, 6, 0, 0, 0]);
    v.extend((0..500u32).map(|i| (i * 31 % 251) as u8));
    v
}

/// A multipart body of (field name, file name, content) parts.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        let filename = filename
            .map(|f| format!("; filename=\"{f}\""))
            .unwrap_or_default();
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// A raw upload sniffs its type and size, answers 201 with a Location; the record reads back
/// as it was created, PATCH edits and validates it, DELETE removes it once.
#[actix_web::test]
async fn raw_upload_reads_back_edits_and_deletes() {
    let h = Harness::new().await;
    let data = png(640, 480);
    let req = bearer(TestRequest::post(), TOKEN)
        .uri("/api/media?filename=photo.bin&title=Pier&tags=Summer,beach")
        .insert_header((header::CONTENT_TYPE, "application/octet-stream"))
        .set_payload(data.clone());
    let res = h.send(req).await;
    assert_eq!(res.status, 201);
    let item = res.json()["items"][0].clone();
    let id = item["id"].as_str().unwrap().to_owned();
    let path = format!("/api/media/{id}");
    assert_eq!(res.header("location"), path);
    assert_eq!(item["content_type"], "image/png", "sniffed, not declared");
    assert_eq!(item["kind"], "image");
    assert_eq!(item["size"], data.len());
    assert_eq!(
        (item["width"].as_u64(), item["height"].as_u64()),
        (Some(640), Some(480))
    );
    assert_eq!(item["hash"], sha256_hex(&data));
    assert_eq!(item["filename"], "photo.bin");
    assert_eq!(item["title"], "Pier");
    assert_eq!(item["tags"], json!(["summer", "beach"]));
    assert_eq!(item["url"], format!("/m/{id}"));

    let got = h.send(get(&path)).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("cache-control"), "no-cache");
    assert_eq!(got.json(), item);

    let patch = |body: Value| bearer(TestRequest::patch().uri(&path), TOKEN).set_json(body);
    let res = h
        .send(patch(json!({"title": " New title ", "tags": "One, two"})))
        .await;
    assert_eq!(res.status, 200);
    let edited = res.json();
    assert_eq!(edited["title"], "New title");
    assert_eq!(edited["tags"], json!(["one", "two"]), "a comma list");
    assert_eq!(edited["filename"], "photo.bin", "absent fields stay");

    for (body, code) in [
        (json!({"title": "x".repeat(501)}), "invalid_field"),
        (json!({"filename": "../"}), "invalid_field"),
        (json!({"visibility": "hidden"}), "bad_request"),
        (json!({"hash": "00"}), "bad_request"),
    ] {
        assert_eq!(h.send(patch(body.clone())).await.error(400), code, "{body}");
    }
    assert_eq!(h.send(get(&path)).await.json()["title"], "New title");

    let delete = || bearer(TestRequest::delete().uri(&path), TOKEN);
    let res = h.send(delete()).await;
    assert_eq!(res.status, 204);
    assert!(res.body.is_empty());
    assert_eq!(h.send(get(&path)).await.error(404), "not_found");
    assert_eq!(h.send(delete()).await.error(404), "not_found");
}

/// One multipart request stores several files, in order, sharing the text fields wherever
/// they come; with more than one file there is no Location.
#[actix_web::test]
async fn multipart_stores_several_files_sharing_the_fields() {
    let h = Harness::new().await;
    let body = multipart(&[
        ("collection", None, b"gallery"),
        ("file", Some("a.txt"), b"first"),
        ("file", Some("b.txt"), b"second"),
        ("title", None, b"fields may follow the files"),
    ]);
    let req = bearer(TestRequest::post(), TOKEN)
        .uri("/api/media")
        .insert_header((
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        ))
        .set_payload(body);
    let res = h.send(req).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    assert!(res.headers.get(header::LOCATION).is_none());
    let v = res.json();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for (item, (name, content)) in items.iter().zip([("a.txt", "first"), ("b.txt", "second")]) {
        assert_eq!(item["filename"], name);
        assert_eq!(item["size"], content.len());
        assert_eq!(item["content_type"], "text/plain");
        assert_eq!(item["collection"], "gallery");
        assert_eq!(item["title"], "fields may follow the files");
    }
}

/// Writes need a credential (401 with a Bearer challenge); a wrong token is refused even on
/// reads; scoped tokens get 403 `insufficient_scope` beyond their scope.
#[actix_web::test]
async fn credentials_and_scopes_are_enforced() {
    let h = Harness::new().await;
    let upload = || {
        TestRequest::post()
            .uri("/api/media?filename=r.txt")
            .set_payload("r")
    };
    let res = h.send(upload()).await;
    assert_eq!(res.error(401), "unauthorized");
    assert_eq!(res.header("www-authenticate"), "Bearer realm=\"shoebox\"");
    let res = h.send(bearer(get("/api/media"), "not-a-token")).await;
    assert_eq!(res.error(401), "unauthorized");
    assert_eq!(h.send(get("/api/tokens")).await.error(401), "unauthorized");

    let (_, reader) = h.token("read").await;
    let (uploader_id, uploader) = h.token("upload").await;
    let tokens = || get("/api/tokens");
    let new_token = || {
        TestRequest::post()
            .uri("/api/tokens")
            .set_json(json!({"name": "x", "scope": "admin"}))
    };
    for (what, req) in [
        ("reader uploads", bearer(upload(), &reader)),
        ("reader makes a token", bearer(new_token(), &reader)),
        ("reader lists tokens", bearer(tokens(), &reader)),
        ("uploader lists tokens", bearer(tokens(), &uploader)),
        ("uploader makes a token", bearer(new_token(), &uploader)),
    ] {
        assert_eq!(h.send(req).await.error(403), "insufficient_scope", "{what}");
    }

    // What they may do: the uploader uploads (and owns what it uploads), the reader reads.
    let res = h.send(bearer(upload(), &uploader)).await;
    assert_eq!(res.status, 201);
    let item = res.json()["items"][0].clone();
    assert_eq!(item["owner"], uploader_id.as_str());
    let res = h.send(bearer(get("/api/media"), &reader)).await;
    assert_eq!(res.json()["items"][0]["id"], item["id"]);
    let res = h.send(bearer(tokens(), TOKEN)).await;
    assert_eq!(res.status, 200);
    let tokens = res.json();
    assert_eq!(tokens["items"].as_array().unwrap().len(), 2);
    assert!(
        !tokens.to_string().contains(&reader),
        "values are not listed"
    );
}

/// `/f/{hash}` serves the bytes with a strong ETag and immutable caching, answers
/// If-None-Match with 304 and Range with 206 or 416.
#[actix_web::test]
async fn blobs_have_strong_etags_and_ranges() {
    let h = Harness::new().await;
    let data: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    let item = h.upload("?filename=data.bin", data.clone()).await;
    let hash = item["hash"].as_str().unwrap();
    let path = format!("/f/{hash}");
    let etag = format!("\"{hash}\"");

    let res = h.send(get(&path)).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("etag"), etag);
    assert_eq!(
        res.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(res.header("accept-ranges"), "bytes");
    assert_eq!(res.header("x-content-type-options"), "nosniff");
    assert_eq!(res.body.as_ref(), data.as_slice());

    let res = h.send(get_with(&path, header::IF_NONE_MATCH, &etag)).await;
    assert_eq!(res.status, 304);
    assert_eq!(res.header("etag"), etag);
    assert!(res.body.is_empty());
    let res = h
        .send(get_with(&path, header::IF_NONE_MATCH, "\"x\""))
        .await;
    assert_eq!(res.status, 200);

    let res = h.send(get_with(&path, header::RANGE, "bytes=0-3")).await;
    assert_eq!(res.status, 206);
    assert_eq!(res.header("content-range"), "bytes 0-3/4096");
    assert_eq!(res.body.as_ref(), &data[..4]);
    let res = h.send(get_with(&path, header::RANGE, "bytes=5000-")).await;
    assert_eq!(res.status, 416);
    assert_eq!(res.header("content-range"), "bytes */4096");

    for bad in [
        format!("/f/{}", hash.to_uppercase()),
        format!("/f/{}", "0".repeat(64)),
    ] {
        assert_eq!(h.send(get(&bad)).await.error(404), "not_found", "{bad}");
    }
}

/// `?limit=` pages walk every record newest first, the last page has no cursor; a bad cursor,
/// limit or parameter is a 400.
#[actix_web::test]
async fn listing_pages_through_records_newest_first() {
    let h = Harness::new().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let item = h.upload("?filename=n.txt", format!("note {i}")).await;
        ids.push(item["id"].as_str().unwrap().to_owned());
    }
    ids.reverse();
    // An empty cursor is the first page.
    let (mut seen, mut cursor, mut pages) = (Vec::new(), String::new(), 0);
    while pages < 10 {
        let res = h
            .send(get(&format!("/api/media?limit=2&cursor={cursor}")))
            .await;
        assert_eq!(res.status, 200);
        let page = res.json();
        let items = page["items"].as_array().unwrap();
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);

    for (query, code) in [
        ("?cursor=garbage", "invalid_field"),
        ("?limit=0", "invalid_field"),
        ("?limit=501", "invalid_field"),
        ("?sort=asc", "bad_request"),
    ] {
        let res = h.send(get(&format!("/api/media{query}"))).await;
        assert_eq!(res.error(400), code, "{query}");
    }
}

/// Private media do not exist for anonymous callers (404 at every address); a token that may
/// read them, or a signed URL, gets the bytes, cached privately.
#[actix_web::test]
async fn private_media_need_a_token_or_a_signed_url() {
    let h = Harness::new().await;
    let item = h
        .upload("?filename=secret.txt&visibility=private", "hidden words")
        .await;
    let id = item["id"].as_str().unwrap();
    let file = format!("/m/{id}");
    let paths = [
        file.clone(),
        format!("/api/media/{id}"),
        format!("/f/{}", item["hash"].as_str().unwrap()),
    ];
    let (_, reader) = h.token("read").await;
    for path in &paths {
        assert_eq!(h.send(get(path)).await.error(404), "not_found", "{path}");
        for token in [TOKEN, &reader] {
            assert_eq!(h.send(bearer(get(path), token)).await.status, 200, "{path}");
        }
    }
    let res = h.send(bearer(get(&file), TOKEN)).await;
    assert_eq!(res.body.as_ref(), b"hidden words");
    assert_eq!(res.header("cache-control"), "private, no-cache");
    assert_eq!(h.send(get("/api/media")).await.json()["items"], json!([]));

    let url = format!("/api/media/{id}/url");
    let res = h.send(bearer(get(&url), TOKEN)).await;
    assert_eq!(res.status, 200);
    let signed = res.json()["url"].as_str().unwrap().to_owned();
    assert!(signed.starts_with(&format!("{file}?")), "{signed}");
    let res = h.send(get(&signed)).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body.as_ref(), b"hidden words");
    let last = if signed.ends_with('0') { "1" } else { "0" };
    let forged = format!("{}{last}", &signed[..signed.len() - 1]);
    assert_eq!(h.send(get(&forged)).await.error(403), "invalid_signature");
}

/// A type not known to be inert (HTML, whatever its name says) is a download under the
/// sandbox policy; a raster image is shown inline with none.
#[actix_web::test]
async fn markup_is_a_sandboxed_attachment_and_images_are_inline() {
    let h = Harness::new().await;
    let html = "<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>";
    let item = h.upload("?filename=innocent.jpg", html).await;
    assert_eq!(item["content_type"], "text/html");
    for path in [
        format!("/m/{}", item["id"].as_str().unwrap()),
        format!("/f/{}", item["hash"].as_str().unwrap()),
    ] {
        let res = h.send(get(&path)).await;
        assert_eq!(res.status, 200, "{path}");
        assert!(
            res.header("content-disposition").starts_with("attachment"),
            "{path}"
        );
        assert_eq!(
            res.header("content-security-policy"),
            "sandbox; default-src 'none'"
        );
        assert_eq!(res.header("content-type"), "text/html; charset=utf-8");
        assert_eq!(res.header("x-content-type-options"), "nosniff");
    }

    let image = h.upload("?filename=pic.png", png(2, 2)).await;
    let res = h
        .send(get(&format!("/m/{}", image["id"].as_str().unwrap())))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-disposition"),
        "inline; filename=\"pic.png\""
    );
    assert_eq!(res.header("content-type"), "image/png");
    assert!(res.headers.get(header::CONTENT_SECURITY_POLICY).is_none());
    assert_eq!(res.header("cache-control"), "public, max-age=300");
}

/// The middleware `run` adds is in place: compressed bodies get 415 before a handler reads
/// them, and every answer carries `nosniff` and a request id.
#[actix_web::test]
async fn the_servers_middleware_is_in_place() {
    let h = Harness::new().await;
    let req = bearer(TestRequest::post(), TOKEN)
        .uri("/api/media?filename=a.txt")
        .insert_header((header::CONTENT_ENCODING, "gzip"))
        .set_payload("not really gzip");
    let res = h.send(req).await;
    assert_eq!(res.error(415), "unsupported_media_type");
    for res in [res, h.send(get("/no/such/route")).await] {
        assert_eq!(res.header("x-content-type-options"), "nosniff");
        assert!(!res.header("x-request-id").is_empty());
    }
    let listed = h.send(bearer(get("/api/media"), TOKEN)).await.json();
    assert_eq!(listed["items"], json!([]), "nothing was stored");
}

//! Black-box tests of byte serving: Range, HEAD, conditional requests, caching and
//! Content-Disposition, against the real binary.

mod common;

use common::{bytes, sha256_hex, TestServer};
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::Method;

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[test]
fn content_addressed_urls_are_immutable_with_a_strong_etag() {
    let s = TestServer::start();
    let data = bytes(100_000, 3);
    let item = s.upload("data.bin", &data, &[]);
    let hash = item["hash"].as_str().unwrap();
    let res = s.get(&format!("/f/{hash}")).send().unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(header(&h, "etag"), format!("\"{hash}\""));
    assert_eq!(
        header(&h, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    assert_eq!(header(&h, "accept-ranges"), "bytes");
    assert_eq!(header(&h, "content-length"), data.len().to_string());
    assert_eq!(res.bytes().unwrap().as_ref(), data.as_slice());

    for bad in [
        "/f/abc",
        "/f/../../etc/passwd",
        &format!("/f/{}", hash.to_uppercase()),
        &format!("/f/{}", "0".repeat(64)),
    ] {
        assert_eq!(s.get(bad).send().unwrap().status(), 404, "{bad}");
    }
}

#[test]
fn range_requests_get_206_or_416() {
    let s = TestServer::start();
    let data = bytes(10_000, 5);
    let item = s.upload("data.bin", &data, &[]);
    for path in [
        format!("/m/{}", item["id"].as_str().unwrap()),
        format!("/f/{}", item["hash"].as_str().unwrap()),
    ] {
        let res = s
            .get(&path)
            .header("range", "bytes=100-199")
            .send()
            .unwrap();
        assert_eq!(res.status(), 206, "{path}");
        assert_eq!(
            header(res.headers(), "content-range"),
            "bytes 100-199/10000"
        );
        assert_eq!(header(res.headers(), "content-length"), "100");
        assert_eq!(res.bytes().unwrap().as_ref(), &data[100..200]);

        let res = s.get(&path).header("range", "bytes=-10").send().unwrap();
        assert_eq!(res.status(), 206);
        assert_eq!(res.bytes().unwrap().as_ref(), &data[9_990..]);

        let res = s.get(&path).header("range", "bytes=20000-").send().unwrap();
        assert_eq!(res.status(), 416, "{path}");
        assert_eq!(header(res.headers(), "content-range"), "bytes */10000");
    }
}

/// Found by schemathesis: `Range: bytes=-1` on an empty file crashed the request (an underflow
/// in actix-files) and the client got a dropped connection.
#[test]
fn a_range_on_an_empty_file_gets_the_whole_empty_file() {
    let s = TestServer::start();
    let res = s
        .authed(Method::POST, "/api/media?filename=empty.txt")
        .body(Vec::new())
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    let item: serde_json::Value = res.json().unwrap();
    let item = &item["items"][0];
    assert_eq!(item["size"], 0);
    for path in [
        format!("/m/{}", item["id"].as_str().unwrap()),
        format!("/f/{}", item["hash"].as_str().unwrap()),
    ] {
        for range in ["bytes=-1", "bytes=-500", "bytes=0-", "bytes=0-0"] {
            for method in [Method::GET, Method::HEAD] {
                let res = s
                    .client()
                    .request(method.clone(), s.url(&path))
                    .header("range", range)
                    .send()
                    .unwrap_or_else(|e| panic!("{method} {path} {range}: {e}"));
                assert_eq!(res.status(), 200, "{method} {path} {range}");
                assert_eq!(header(res.headers(), "content-length"), "0");
                assert!(res.bytes().unwrap().is_empty());
            }
        }
    }
}

#[test]
fn head_and_conditional_requests() {
    let s = TestServer::start();
    let data = bytes(4096, 9);
    let item = s.upload("data.bin", &data, &[]);
    let hash = item["hash"].as_str().unwrap();
    let etag = format!("\"{hash}\"");
    let path = format!("/m/{}", item["id"].as_str().unwrap());

    let res = s.client().head(s.url(&path)).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(res.headers(), "content-length"), "4096");
    assert_eq!(header(res.headers(), "etag"), etag);
    assert!(res.bytes().unwrap().is_empty());

    let res = s.get(&path).header("if-none-match", &etag).send().unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(header(res.headers(), "etag"), etag);
    assert!(res.bytes().unwrap().is_empty());
    let res = s
        .get(&path)
        .header("if-none-match", format!("\"other\", W/{etag}"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 304, "weak comparison for If-None-Match");
    assert_eq!(
        s.get(&path)
            .header("if-none-match", "\"other\"")
            .send()
            .unwrap()
            .status(),
        200
    );

    assert_eq!(
        s.get(&path)
            .header("if-match", "\"other\"")
            .send()
            .unwrap()
            .status(),
        412
    );
    assert_eq!(
        s.get(&path)
            .header("if-match", &etag)
            .send()
            .unwrap()
            .status(),
        200
    );

    // If-Range: a matching validator keeps the range, a stale one gets the whole file.
    let res = s
        .get(&path)
        .header("range", "bytes=0-9")
        .header("if-range", &etag)
        .send()
        .unwrap();
    assert_eq!(res.status(), 206);
    let res = s
        .get(&path)
        .header("range", "bytes=0-9")
        .header("if-range", "\"stale\"")
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().unwrap().len(), 4096);
    let res = s
        .get(&path)
        .header("range", "bytes=0-9")
        .header("if-range", "Wed, 21 Oct 2015 07:28:00 GMT")
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[test]
fn media_urls_carry_the_original_filename() {
    let s = TestServer::start();
    let item = s.upload("Été à Paris.jpg", &bytes(100, 1), &[]);
    let id = item["id"].as_str().unwrap();
    let res = s.get(&format!("/m/{id}")).send().unwrap();
    let cd = header(res.headers(), "content-disposition").to_owned();
    assert!(cd.starts_with("inline"), "{cd}");
    assert!(
        cd.contains("filename*=UTF-8''%C3%89t%C3%A9%20%C3%A0%20Paris.jpg"),
        "{cd}"
    );
    assert!(cd.contains("filename=\"_t_ _ Paris.jpg\""), "{cd}");
    assert_eq!(
        header(res.headers(), "cache-control"),
        "public, max-age=300"
    );
    let res = s.get(&format!("/m/{id}?download=1")).send().unwrap();
    assert!(header(res.headers(), "content-disposition").starts_with("attachment"));
}

#[test]
fn uploaded_markup_never_runs_on_our_origin() {
    let s = TestServer::start();
    let html = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>";
    // The extension lies; sniffing finds HTML anyway.
    let item = s.upload("innocent.jpg", html, &[]);
    assert_eq!(item["content_type"], "text/html");
    let res = s
        .get(&format!("/m/{}", item["id"].as_str().unwrap()))
        .send()
        .unwrap();
    assert!(header(res.headers(), "content-disposition").starts_with("attachment"));
    assert!(header(res.headers(), "content-security-policy").contains("sandbox"));
    assert_eq!(header(res.headers(), "x-content-type-options"), "nosniff");

    let svg = br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    let item = s.upload("logo.svg", svg, &[]);
    assert_eq!(item["content_type"], "image/svg+xml");
    for path in [
        format!("/m/{}", item["id"].as_str().unwrap()),
        format!("/f/{}", item["hash"].as_str().unwrap()),
    ] {
        let res = s.get(&path).send().unwrap();
        assert_eq!(
            header(res.headers(), CONTENT_TYPE.as_str()),
            "image/svg+xml"
        );
        let csp = header(res.headers(), "content-security-policy");
        assert!(
            csp.contains("sandbox") && csp.contains("default-src 'none'"),
            "{path}: {csp}"
        );
    }
}

#[test]
fn large_files_stream_back_intact() {
    let s = TestServer::start();
    let data = bytes(24 << 20, 11);
    let res = s
        .authed(Method::POST, "/api/media?filename=big.bin")
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    let item: serde_json::Value = res.json().unwrap();
    let id = item["items"][0]["id"].as_str().unwrap().to_owned();
    let body = s.get(&format!("/m/{id}")).send().unwrap().bytes().unwrap();
    assert_eq!(body.len(), data.len());
    assert_eq!(sha256_hex(&body), sha256_hex(&data));
}

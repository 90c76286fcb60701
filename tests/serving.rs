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

    // HEAD answers with the length and reads none of the file: the server's read count
    // (/proc/PID/io `rchar`, every byte its read calls returned) barely moves.
    let rchar = || {
        let io = std::fs::read_to_string(format!("/proc/{}/io", s.pid())).unwrap();
        io.lines()
            .find_map(|l| l.strip_prefix("rchar: "))
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let before = rchar();
    for _ in 0..4 {
        let res = s.client().head(s.url(&format!("/m/{id}"))).send().unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            header(res.headers(), "content-length"),
            data.len().to_string()
        );
        assert!(res.bytes().unwrap().is_empty());
    }
    let read = rchar() - before;
    assert!(read < 1 << 20, "four HEADs read {read} bytes");
}

/// The headers that describe a response, without the per-request ones.
fn described(h: &HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = h
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "date" | "x-request-id"))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    out.sort();
    out
}

/// Small files are sent from memory after their first read; the answer is the same, header
/// for header, as from a server that streams every file from disk.
#[test]
fn files_from_memory_answer_like_files_from_disk() {
    let cached = TestServer::start();
    let streamed = TestServer::builder().arg("--file-cache").arg("0").start();
    let files: [(&str, Vec<u8>); 4] = [
        ("notes.txt", b"plain words\n".repeat(100)),
        (
            "logo.svg",
            br#"<svg xmlns="http://www.w3.org/2000/svg"></svg>"#.to_vec(),
        ),
        ("data.bin", bytes(200_000, 4)),
        ("big.bin", bytes(300_000, 5)),
    ];
    for (name, data) in &files {
        let a = cached.upload(name, data, &[]);
        let b = streamed.upload(name, data, &[]);
        for (which, path_a, path_b) in [
            (
                "blob",
                format!("/f/{}", a["hash"].as_str().unwrap()),
                format!("/f/{}", b["hash"].as_str().unwrap()),
            ),
            (
                "media",
                format!("/m/{}", a["id"].as_str().unwrap()),
                format!("/m/{}", b["id"].as_str().unwrap()),
            ),
        ] {
            let expected = streamed.get(&path_b).send().unwrap();
            let expected_headers = described(expected.headers());
            assert_eq!(expected.bytes().unwrap().as_ref(), data.as_slice());
            // The first read fills the cache, the second is served from it.
            for round in 0..2 {
                let res = cached.get(&path_a).send().unwrap();
                assert_eq!(res.status(), 200);
                let mut got = described(res.headers());
                if which == "media" {
                    // The two servers gave the record different ids; nothing else differs.
                    got.retain(|(k, _)| k != "content-disposition");
                }
                let mut want = expected_headers.clone();
                if which == "media" {
                    want.retain(|(k, _)| k != "content-disposition");
                }
                assert_eq!(got, want, "{name} {which} round {round}");
                assert_eq!(res.bytes().unwrap().as_ref(), data.as_slice(), "{name}");
                let head = cached.client().head(cached.url(&path_a)).send().unwrap();
                assert_eq!(
                    header(head.headers(), "content-length"),
                    data.len().to_string()
                );
                assert!(head.bytes().unwrap().is_empty());
            }
        }
    }
}

/// A cached file follows its record at once: made private it is gone for anonymous readers,
/// made public again it is back, deleted it is gone.
#[test]
fn cached_files_follow_their_records_visibility_at_once() {
    let s = TestServer::start();
    let data = bytes(4096, 11);
    let item = s.upload("small.bin", &data, &[]);
    let id = item["id"].as_str().unwrap();
    let blob = format!("/f/{}", item["hash"].as_str().unwrap());
    let media = format!("/m/{id}");
    let anonymous = reqwest::blocking::Client::new();
    let status = |path: &str| anonymous.get(s.url(path)).send().unwrap().status().as_u16();
    for _ in 0..3 {
        assert_eq!(status(&blob), 200);
        assert_eq!(status(&media), 200);
    }
    let patch = |visibility: &str| {
        let res = s
            .authed(Method::PATCH, &format!("/api/media/{id}"))
            .json(&serde_json::json!({ "visibility": visibility }))
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
    };
    patch("private");
    assert_eq!(status(&blob), 404);
    assert_eq!(status(&media), 404);
    let res = s.authed(Method::GET, &blob).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(res.headers(), "cache-control"), "private, no-cache");
    assert_eq!(res.bytes().unwrap().as_ref(), data.as_slice());
    patch("public");
    assert_eq!(status(&blob), 200);
    assert_eq!(status(&media), 200);
    let res = s
        .authed(Method::DELETE, &format!("/api/media/{id}"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(status(&blob), 404);
    assert_eq!(status(&media), 404);
}

/// A client's declared type, with no extension and bytes that sniff as nothing: only the types
/// known to be inert are shown inline on Shoebox's origin; every other one, known or not, is a
/// download under a sandboxing policy, at `/m/{id}` and at `/f/{hash}` alike. The declared type
/// is stored cleaned (lower case, no parameters, or `application/octet-stream`).
#[test]
fn declared_types_are_shown_inline_only_when_known_to_be_inert() {
    let s = TestServer::start();
    // (declared, stored, inline)
    let cases = [
        ("text/xsl", "text/xsl", false),
        ("text/vtt", "text/vtt", false),
        (
            "multipart/x-mixed-replace; boundary=b",
            "multipart/x-mixed-replace",
            false,
        ),
        ("text/x-never-heard-of", "text/x-never-heard-of", false),
        ("application/xhtml+xml", "application/xhtml+xml", false),
        ("text/html", "text/html", false),
        ("application/javascript", "application/javascript", false),
        (
            "application/x-shockwave-flash",
            "application/x-shockwave-flash",
            false,
        ),
        ("TEXT/Plain; charset=latin1", "text/plain", true),
        ("application/json", "application/json", true),
        ("image/png", "image/png", true),
        ("video/mp4", "video/mp4", true),
        ("application/pdf", "application/pdf", true),
        // Not a type at all: the bytes decide, and they are text.
        ("not a type", "text/plain", true),
    ];
    for (n, (declared, stored, inline)) in cases.into_iter().enumerate() {
        // Bytes no sniffer recognises, different for each case.
        let body = format!("<x n=\"{n}\" xmlns=\"http://www.w3.org/1999/xhtml\"><img src=\"x\" onerror=\"alert(1)\"/></x>");
        let res = s
            .authed(Method::POST, "/api/media?filename=holiday-photos")
            .header(CONTENT_TYPE, declared)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(res.status(), 201, "{declared}");
        let item: serde_json::Value = res.json::<serde_json::Value>().unwrap()["items"][0].clone();
        assert_eq!(item["content_type"], stored, "{declared}");
        for path in [
            format!("/m/{}", item["id"].as_str().unwrap()),
            format!("/f/{}", item["hash"].as_str().unwrap()),
        ] {
            let res = s.get(&path).send().unwrap();
            assert_eq!(res.status(), 200, "{declared} {path}");
            let h = res.headers();
            assert_eq!(header(h, "x-content-type-options"), "nosniff");
            assert!(
                header(h, CONTENT_TYPE.as_str()).starts_with(stored),
                "{declared} {path}: {}",
                header(h, CONTENT_TYPE.as_str())
            );
            let disposition = header(h, "content-disposition");
            let csp = header(h, "content-security-policy");
            if inline {
                assert!(
                    disposition.starts_with("inline"),
                    "{declared} {path}: {disposition}"
                );
            } else {
                assert!(
                    disposition.starts_with("attachment"),
                    "{declared} {path}: {disposition}"
                );
                assert!(
                    csp.contains("sandbox") && csp.contains("default-src 'none'"),
                    "{declared} {path}: {csp}"
                );
            }
        }
    }
}

//! What an upload's metadata becomes in its record (unknown keys ignored, `name` and `type`
//! standing in for `filename` and `filetype`, invalid values refused at creation), what
//! `GET /api/uploads/{id}` answers before and after completion, and how `/api/status` and
//! `/metrics` count partial uploads.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{bytes, TestServer};
use crate::protocol::{expect, expect_error, header, Tus, ENDPOINT};

/// `partial_uploads.count` of `/api/status`.
pub fn partial_count(s: &TestServer) -> u64 {
    let status = s.status();
    status["partial_uploads"]["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("/api/status has partial_uploads.count: {status}"))
}

/// Creates an upload with `pairs`, sends `data` in one PATCH; answers the record
/// `GET /api/uploads/{id}` gives.
fn finished_record(t: &Tus, pairs: &[(&str, &str)], data: &[u8]) -> Value {
    let path = t.created(Some(data.len() as u64), pairs);
    t.patched(&path, 0, data);
    let res = t.bare(Method::GET, &path).send().unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    let body: Value = res.json().unwrap();
    let items = body["items"].as_array().expect("{\"items\": [...]}");
    assert_eq!(items.len(), 1, "{body}");
    items[0].clone()
}

#[test]
fn metadata_becomes_the_record_with_unknown_keys_ignored_and_fallbacks_used() {
    let s = TestServer::start();
    let t = Tus::new(&s.base, s.token.as_deref());
    let record = finished_record(
        &t,
        &[
            ("name", "notes"),
            ("type", "application/json"),
            ("relativePath", "a/b/notes"),
            ("lastModified", ""),
            ("title", "Notes"),
            ("description", "What was said"),
            ("alt", "A JSON file"),
            ("tags", "One, two ,one"),
            ("collection", "stories"),
            ("visibility", "private"),
            ("custom", r#"{"n": 1}"#),
            ("custom.source", "tus"),
        ],
        br#"{"said": "hello"}"#,
    );
    assert_eq!(record["filename"], "notes", "`name` stands in for filename");
    assert_eq!(
        record["content_type"], "application/json",
        "`type` stands in for filetype"
    );
    assert_eq!(record["title"], "Notes");
    assert_eq!(record["description"], "What was said");
    assert_eq!(record["alt"], "A JSON file");
    assert_eq!(record["tags"], json!(["one", "two"]));
    assert_eq!(record["collection"], "stories");
    assert_eq!(record["visibility"], "private");
    assert_eq!(record["custom"], json!({"n": 1, "source": "tus"}));
    assert!(
        !record.to_string().contains("relativePath") && !record.to_string().contains("a/b/"),
        "unknown keys are ignored: {record}"
    );
    let id = record["id"].as_str().unwrap();
    let media: Value = s
        .authed(Method::GET, &format!("/api/media/{id}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        media, record,
        "GET /api/uploads/{{id}} gives the media record"
    );

    // `filename` and `filetype` win over their stand-ins.
    let record = finished_record(
        &t,
        &[
            ("filename", "real-data"),
            ("name", "stand-in.txt"),
            ("filetype", "application/json"),
            ("type", "text/csv"),
        ],
        b"[1, 2, 3]",
    );
    assert_eq!(record["filename"], "real-data");
    assert_eq!(record["content_type"], "application/json");
    assert_eq!(record["visibility"], "public", "the default");
}

#[test]
fn invalid_metadata_is_refused_at_creation() {
    let s = TestServer::start();
    let t = Tus::new(&s.base, s.token.as_deref());
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "a visibility that is none",
            vec![("visibility", "secret".into())],
        ),
        ("custom that is no object", vec![("custom", "[1]".into())]),
        ("custom that is no JSON", vec![("custom", "{oops".into())]),
        (
            "a collection with a slash",
            vec![("collection", "a/b".into())],
        ),
        ("a tag too long", vec![("tags", "t".repeat(65))]),
    ];
    for (what, pairs) in cases {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let code = expect_error(t.create(Some(10), &pairs), 400);
        assert!(!code.is_empty(), "{what}");
    }
    for raw in [
        "title not*base64!",
        "filename YS50eHQ=,filename YS50eHQ=",
        "title=VGl0bGU=",
    ] {
        let res = t
            .request(Method::POST, ENDPOINT)
            .header("Upload-Length", "10")
            .header("Upload-Metadata", raw)
            .send()
            .unwrap();
        let status = res.status().as_u16();
        if raw.contains("not*base64") {
            assert_eq!(status, 400, "{raw:?}");
        }
        // A repeated key or a pair without its space is malformed too, but a server may
        // read it leniently; it must never fail on it.
        assert!(status == 400 || status == 201, "{raw:?}: {status}");
        expect(res, status);
    }
    assert!(
        partial_count(&s) <= 2,
        "only the lenient readings made uploads"
    );
}

#[test]
fn get_upload_answers_409_until_complete_then_the_record() {
    let s = TestServer::start();
    let t = Tus::new(&s.base, s.token.as_deref());
    let data = bytes(3_000, 21);
    let path = t.created(Some(3_000), &[("filename", "g.bin"), ("title", "G")]);
    let get = || t.bare(Method::GET, &path).send().unwrap();
    let res = get();
    assert_eq!(res.status(), 409);
    let v: Value = res.json().unwrap();
    assert_eq!(v["error"]["code"], "upload_incomplete", "{v}");
    t.patched(&path, 0, &data[..1_000]);
    assert_eq!(get().status(), 409);
    let res = t.patched(&path, 1_000, &data[1_000..]);
    let media_id = header(&res, "shoebox-media-id").unwrap();
    let res = get();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().unwrap();
    assert_eq!(v["items"][0]["id"], media_id.as_str(), "{v}");
    assert_eq!(v["items"][0]["title"], "G");
    assert_eq!(v["items"][0]["size"], 3_000);
    // An id that never was: 404.
    let res = t
        .bare(Method::GET, "/api/uploads/0123456789abcdef0123456789abcdef")
        .send()
        .unwrap();
    assert_eq!(res.status(), 404);
}

fn metrics(s: &TestServer) -> HashMap<String, f64> {
    let text = s.metrics();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn status_and_metrics_count_partial_uploads() {
    let s = TestServer::start();
    let t = Tus::new(&s.base, s.token.as_deref());
    let before = metrics(&s);
    let received_before = before
        .get("shoebox_tus_received_bytes_total")
        .copied()
        .unwrap_or(0.0);
    let a = t.created(Some(10_000), &[]);
    let b = t.created(None, &[]);
    t.patched(&a, 0, &bytes(1_000, 22));
    t.patched(&b, 0, &bytes(2_500, 23));
    let status = s.status();
    assert_eq!(
        status["partial_uploads"],
        json!({"count": 2, "bytes": 3_500}),
        "{status}"
    );
    let m = metrics(&s);
    assert_eq!(m.get("shoebox_partial_uploads"), Some(&2.0), "{m:?}");
    assert_eq!(
        m.get("shoebox_partial_upload_bytes"),
        Some(&3_500.0),
        "{m:?}"
    );
    let received = m
        .get("shoebox_tus_received_bytes_total")
        .copied()
        .expect("shoebox_tus_received_bytes_total");
    assert_eq!(received - received_before, 3_500.0, "{m:?}");

    t.patched(&a, 1_000, &bytes(9_000, 24));
    expect(t.delete(&b), 204);
    let status = s.status();
    assert_eq!(
        status["partial_uploads"],
        json!({"count": 0, "bytes": 0}),
        "{status}"
    );
    let m = metrics(&s);
    assert_eq!(m.get("shoebox_partial_uploads"), Some(&0.0));
    assert_eq!(m.get("shoebox_partial_upload_bytes"), Some(&0.0));
}

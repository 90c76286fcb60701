//! What the S3 side serves, and to whom: anonymous reads of public objects only, and the
//! inert-type rule whatever type a request asks the answer to declare.

use crate::boto::{boto, boto3, passed, server};
use crate::common;

#[test]
fn anonymous_reads_see_public_objects_and_active_types_are_sandboxed_attachments() {
    if !boto3() {
        return;
    }
    let s = server();
    let key = s.s3_key("site", "upload");
    let res = s
        .authed(reqwest::Method::PUT, "/api/collections/site")
        .json(&serde_json::json!({"public": true}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let dir = tempfile::tempdir().unwrap();
    let png = common::png(8, 8, |_, _| [1, 2, 3]);
    let html = b"<!doctype html><script>alert(document.cookie)</script>".to_vec();
    for (bucket, name, bytes) in [
        ("site", "pic.png", &png),
        ("site", "page.html", &html),
        ("default", "secret.png", &png),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        let v = boto(
            "put-file",
            &s.s3_url(),
            &key,
            &[
                "--bucket",
                bucket,
                "--file",
                file.to_str().unwrap(),
                "--object-key",
                name,
            ],
        );
        passed(&v);
    }
    let get = |path: &str| {
        s.client()
            .get(format!("{}{path}", s.s3_url()))
            .send()
            .unwrap()
    };

    // A public picture is shown inline, with nothing to sandbox.
    let res = get("/site/pic.png");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert!(res.headers().get("content-disposition").is_none());
    assert_eq!(res.bytes().unwrap().as_ref(), png.as_slice());

    // Markup is an attachment under the sandbox, and so is a picture asked to pass for it.
    for path in [
        "/site/page.html",
        "/site/pic.png?response-content-type=text/html",
    ] {
        let res = get(path);
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        assert!(
            h["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment"),
            "{path}: {h:?}"
        );
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("sandbox"),
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
    }

    // A private object, an unsigned listing and an unsigned write are refused.
    for res in [
        get("/default/secret.png"),
        get("/site"),
        s.client()
            .put(format!("{}/site/new.txt", s.s3_url()))
            .body("anonymous")
            .send()
            .unwrap(),
    ] {
        assert_eq!(res.status(), 403);
        assert!(res.text().unwrap().contains("<Code>AccessDenied</Code>"));
    }
    assert_eq!(common::all_records(&s).len(), 3);

    // A collection whose name is no bucket name is not shown over S3; the status counts it.
    s.upload("x.txt", b"x", &[("collection", "Summer Photos")]);
    let status = s.status();
    assert_eq!(status["s3"]["enabled"], true, "{status}");
    assert_eq!(status["s3"]["buckets"], 1, "{status}");
    assert_eq!(status["s3"]["collections_not_exposed"], 1, "{status}");
}

//! Where the S3 API answers: its own port, and the main port for requests naming
//! `SHOEBOX_S3_HOST` (one Render service has one port; a second custom domain reaches S3).

use crate::boto::{boto, boto3, passed};
use crate::common::TestServer;

#[test]
fn the_main_port_serves_s3_for_its_host_and_the_app_for_others() {
    let s = TestServer::builder()
        .env("SHOEBOX_S3_HOST", "s3.shoebox.test")
        .start();
    // Without the host, the main port is the app.
    let app = s.get("/").send().unwrap();
    assert_eq!(app.status(), 200);
    assert!(app.text().unwrap().contains("<html"));
    // With it, an unsigned request gets S3's answer, in S3's XML.
    let res = s.get("/").header("Host", "s3.shoebox.test").send().unwrap();
    assert_eq!(res.status(), 403);
    let body = res.text().unwrap();
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    if !boto3() {
        return;
    }
    let key = s.s3_key("app", "admin");
    let v = boto(
        "objects",
        &s.url(""),
        &key,
        &["--bucket", "routed", "--host", "s3.shoebox.test"],
    );
    passed(&v);
}

#[test]
fn s3_settings_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for envs in [
        vec![("SHOEBOX_S3_HOST", "https://s3.example.com")],
        vec![("SHOEBOX_S3_DOMAIN", "s3.example.com")],
        vec![
            ("SHOEBOX_S3_HOST", "Media.Example.com"),
            ("SHOEBOX_PUBLIC_URL", "https://media.example.com:443/"),
        ],
    ] {
        let mut b = TestServer::builder().data_dir(&dir.path().join("data"));
        for (k, v) in &envs {
            b = b.env(k, v);
        }
        let (status, out) = b.start_expecting_failure();
        assert!(!status.success(), "{envs:?} was accepted");
        assert!(out.contains(envs[0].0), "{out}");
    }
}

#[test]
fn virtual_hosted_requests_name_the_bucket_in_the_host() {
    if !boto3() {
        return;
    }
    let s = TestServer::builder()
        .arg("--s3-port")
        .arg("0")
        .env("SHOEBOX_S3_DOMAIN", "s3.shoebox.test")
        .start();
    let key = s.s3_key("app", "admin");
    let res = s
        .authed(reqwest::Method::PUT, "/api/collections/photos")
        .json(&serde_json::json!({"public": false}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let v = boto(
        "virtual",
        &s.s3_url(),
        &key,
        &["--host", "photos.s3.shoebox.test"],
    );
    passed(&v);
    let records = crate::common::all_records(&s);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["collection"], "photos");
    assert_eq!(records[0]["key"], "vhost/object.bin");
}

//! Credentials shared by two instances through PostgreSQL.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::common::{self, TestServer};
use crate::shared::Cluster;

/// What proves who a caller is, made on one instance, works on the other: API tokens (and
/// their revocation), S3 credentials, a web session, a signed URL, and an admin token that the
/// first instance generated. In the database they are sealed.
#[test]
fn credentials_made_on_one_instance_work_on_the_other() {
    use common::clients::{boto, boto3, passed};
    if !boto3() {
        return;
    }
    let Some(cluster) = Cluster::start() else {
        return;
    };
    // No admin token configured: the first instance makes one, the second finds it.
    let mut a = cluster.builder(0).no_token().start();
    let admin = std::fs::read_to_string(a.data_dir.join("secrets/admin_token"))
        .expect("the generated admin token, written for the operator")
        .trim()
        .to_owned();
    a.token = Some(admin.clone());
    let mut b = cluster
        .builder(1)
        .no_token()
        .arg("--s3-port")
        .arg("0")
        .start();
    assert!(
        !b.data_dir.join("secrets/admin_token").exists(),
        "the second instance made no token of its own"
    );
    b.token = Some(admin);
    assert_eq!(
        b.authed(Method::GET, "/api/status")
            .send()
            .unwrap()
            .status(),
        200
    );

    // An upload token made on A uploads through B at once; revoked on B, A refuses it
    // within a second (each instance checks the shared tokens for changes once a second).
    let token = a.api_token("uploader", "upload");
    let upload_with = |s: &TestServer, body: &'static str| {
        s.client()
            .post(s.url("/api/media?filename=t.txt"))
            .bearer_auth(&token)
            .body(body)
            .send()
            .unwrap()
    };
    let res = upload_with(&b, "by a token made on A");
    assert_eq!(res.status(), 201, "{}", res.text().unwrap_or_default());
    let item: Value = res.json().unwrap();
    let id = item["items"][0]["id"].as_str().unwrap().to_owned();
    let token_id = b.token_id("uploader");
    let res = b
        .authed(Method::DELETE, &format!("/api/tokens/{token_id}"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 204);
    common::eventually("A sees the revocation", Duration::from_secs(5), || {
        upload_with(&a, "after the revocation").status() == 401
    });

    // A session signed in on A is good on B.
    let cookie = a.session_cookie(a.token.as_deref().unwrap());
    let res = b
        .client()
        .get(b.url("/api/status"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "the session works on B");

    // A private file's signed URL from A opens on B.
    let res = a
        .authed(Method::PATCH, &format!("/api/media/{id}"))
        .json(&serde_json::json!({"visibility": "private"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(b.get(&format!("/m/{id}")).send().unwrap().status(), 404);
    let signed: Value = a
        .authed(Method::GET, &format!("/api/media/{id}/url?expires_in=600"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let url = signed["url"].as_str().unwrap();
    let path = &url[url.find("/m/").unwrap()..];
    let res = b.get(path).send().unwrap();
    assert_eq!(res.status(), 200, "{path}");
    assert_eq!(res.text().unwrap(), "by a token made on A");

    // S3 credentials made on A sign boto3's requests to B.
    let (key_id, secret) = a.s3_key("app", "admin");
    passed(&boto(
        "objects",
        &b.s3_url(),
        &(key_id.clone(), secret.clone()),
        &["--bucket", "photos"],
    ));
    let dump = cluster.postgres.psql(
        "shoebox",
        "SELECT name, encode(value, 'escape') FROM shared_values",
    );
    for name in [
        "tokens.json",
        "s3_keys.json",
        "session_key",
        "url_keys.json",
    ] {
        assert!(dump.contains(name), "{name} is shared: {dump}");
    }
    assert!(
        !dump.contains(&secret) && !dump.contains("uploader") && !dump.contains(&key_id),
        "the shared credentials are sealed: {dump}"
    );

    // An instance without the key, or with another one, is refused at start.
    let flags = cluster.flags(0);
    let without: Vec<&str> = flags
        .iter()
        .map(String::as_str)
        .take_while(|f| *f != "--secret-key")
        .collect();
    let scratch = tempfile::tempdir().unwrap();
    let start = |dir: &str, extra: &[&str]| {
        let mut builder = TestServer::builder().data_dir(&scratch.path().join(dir));
        for f in without.iter().chain(extra) {
            builder = builder.arg(f);
        }
        builder.start_expecting_failure()
    };
    let (status, out) = start("no-key", &[]);
    assert!(!status.success());
    assert!(out.contains("SHOEBOX_SECRET_KEY"), "{out}");
    let (status, out) = start(
        "other-key",
        &[
            "--secret-key",
            "another-key-of-more-than-32-characters-000000",
        ],
    );
    assert!(!status.success());
    assert!(
        out.contains("does not open with this SHOEBOX_SECRET_KEY"),
        "{out}"
    );
}

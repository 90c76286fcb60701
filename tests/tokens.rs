//! Black-box tests of API tokens made with S3 credentials, against the real binary: shown once,
//! listed by their access key id, made from the command line too, ended by revoking, and their
//! secret kept out of listings, logs and backups.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{error_code, eventually, run_cli, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

fn listed(s: &TestServer) -> Value {
    let res = s.authed(Method::GET, "/api/tokens").send().unwrap();
    assert_eq!(res.status(), 200);
    res.json().unwrap()
}

fn by_id<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not listed: {list}"))
}

fn key_file(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("secrets/s3_keys.json")).unwrap_or_default()
}

fn assert_key_shape(access_key_id: &str, secret: &str) {
    assert!(
        access_key_id.len() == 20
            && access_key_id.starts_with("SBX")
            && access_key_id
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
        "{access_key_id}"
    );
    assert_eq!(secret.len(), 40, "{secret}");
    assert!(secret
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/'));
}

#[test]
fn s3_credentials_are_shown_once_listed_by_id_kept_out_of_backups_and_end_with_their_token() {
    let s = TestServer::start();
    let res = s
        .authed(Method::POST, "/api/tokens")
        .json(&json!({"name": "rclone", "scope": "upload", "s3": true}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let made: Value = res.json().unwrap();
    let id = made["id"].as_str().unwrap().to_owned();
    let token = made["token"].as_str().unwrap().to_owned();
    let access_key_id = made["access_key_id"].as_str().unwrap().to_owned();
    let secret = made["secret_access_key"].as_str().unwrap().to_owned();
    assert!(token.starts_with("sbx_"));
    assert_key_shape(&access_key_id, &secret);
    assert_eq!(made["scope"], "upload");
    let bearer = |t: &str| {
        s.client()
            .get(s.url("/api/media"))
            .bearer_auth(t)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(bearer(&token), 200, "an S3 token is a bearer token too");

    // Without "s3", a token as before.
    let plain: Value = s
        .authed(Method::POST, "/api/tokens")
        .json(&json!({"name": "blog", "scope": "read", "s3": false}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(plain.get("access_key_id").is_none() && plain.get("secret_access_key").is_none());

    // Listed with its access key id, never with its secret.
    let list = listed(&s);
    assert_eq!(by_id(&list, &id)["access_key_id"], access_key_id.as_str());
    let text = list.to_string();
    assert!(!text.contains(&secret) && !text.contains("secret_access_key"));
    assert!(!text.contains(&token[4..]));
    let keys = s.data_dir.join("secrets/s3_keys.json");
    assert!(key_file(&s.data_dir).contains(&secret));
    let mode = std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let tokens_json = std::fs::read_to_string(s.data_dir.join("secrets/tokens.json")).unwrap();
    assert!(!tokens_json.contains(&secret));

    // Only admins make them, and "s3" is a boolean.
    let uploader = s.api_token("uploader", "upload");
    let reader = s.api_token("reader", "read");
    let new_s3 = || {
        s.client()
            .post(s.url("/api/tokens"))
            .json(&json!({"name": "mine", "scope": "upload", "s3": true}))
    };
    assert_eq!(error_code(new_s3().send().unwrap(), 401), "unauthorized");
    for who in [&uploader, &reader, &token] {
        let res = new_s3().bearer_auth(who).send().unwrap();
        assert_eq!(error_code(res, 403), "insufficient_scope");
    }
    for bad in [json!("yes"), json!(1), json!(null)] {
        let res = s
            .authed(Method::POST, "/api/tokens")
            .json(&json!({"name": "x", "scope": "upload", "s3": bad}))
            .send()
            .unwrap();
        assert_eq!(res.status(), 400, "\"s3\": {bad}");
    }
    assert_eq!(listed(&s)["items"].as_array().unwrap().len(), 4);

    // A backup holds media only: nothing of secrets/.
    s.upload("a.txt", b"something to back up", &[]);
    let res = s.authed(Method::GET, "/api/backup").send().unwrap();
    assert_eq!(res.status(), 200);
    let archive = res.bytes().unwrap();
    let mut tar = tar::Archive::new(&archive[..]);
    for entry in tar.entries().unwrap() {
        let path = entry.unwrap().path().unwrap().display().to_string();
        assert!(
            !path.contains("secrets") && !path.contains("s3_keys") && !path.contains("tokens"),
            "{path} in a backup"
        );
    }
    let holds = |needle: &str| {
        archive
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    assert!(!holds(&secret), "the secret in a backup");

    // Revoking ends the token and removes the secret.
    let res = s
        .authed(Method::DELETE, &format!("/api/tokens/{id}"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(by_id(&listed(&s), &id)["revoked_at"].is_string());
    assert!(!key_file(&s.data_dir).contains(&secret));
    assert!(!key_file(&s.data_dir).contains(&access_key_id));
    assert_eq!(bearer(&token), 401);

    assert!(!s.output().contains(&secret), "the secret in the log");
}

#[test]
fn the_command_line_makes_s3_credentials_that_a_running_server_lists_and_revokes() {
    let s = TestServer::start();
    let (code, out) = run_cli(
        &[
            "token",
            "create",
            "--name",
            "nightly sync",
            "--scope",
            "read",
            "--expires-in",
            "30d",
            "--s3",
        ],
        &s.data_dir,
    );
    assert_eq!(code, 0, "{out}");
    let mut lines = out.lines();
    let token = lines.next().unwrap().trim().to_owned();
    let access_key_id = lines
        .next()
        .and_then(|l| l.strip_prefix("AWS_ACCESS_KEY_ID="))
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    let secret = lines
        .next()
        .and_then(|l| l.strip_prefix("AWS_SECRET_ACCESS_KEY="))
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    assert!(token.starts_with("sbx_"), "{out}");
    assert_key_shape(&access_key_id, &secret);
    assert!(out.contains("shown only once"), "{out}");
    assert!(key_file(&s.data_dir).contains(&secret));

    // The server re-reads the files within a second.
    let mut id = String::new();
    eventually("the server to list the key", Duration::from_secs(5), || {
        let list = listed(&s);
        let found = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["access_key_id"] == access_key_id.as_str())
            .map(|t| t["id"].as_str().unwrap().to_owned());
        id = found.unwrap_or_default();
        !id.is_empty()
    });
    assert!(!listed(&s).to_string().contains(&secret));
    let res = s
        .client()
        .get(s.url("/api/media"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);

    // Without --s3, no key.
    let (code, out) = run_cli(
        &["token", "create", "--name", "plain", "--scope", "read"],
        &s.data_dir,
    );
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("AWS_"), "{out}");

    let (code, out) = run_cli(&["token", "revoke", &id], &s.data_dir);
    assert_eq!(code, 0, "{out}");
    assert!(!key_file(&s.data_dir).contains(&secret));
    eventually(
        "the server to see the revoke",
        Duration::from_secs(5),
        || by_id(&listed(&s), &id)["revoked_at"].is_string(),
    );
}

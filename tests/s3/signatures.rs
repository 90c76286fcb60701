//! What a key may not do: a wrong secret, a revoked key, a read-only key writing, and
//! presigned URLs tampered with or past their expiry. Nothing is stored by any of them.

use crate::boto::{boto, boto3, passed, server};
use crate::common::{self, all_records};

#[test]
fn wrong_secrets_revoked_and_read_only_keys_store_nothing() {
    if !boto3() {
        return;
    }
    let s = server();
    let key = s.s3_key("app", "upload");
    let url = s.s3_url();

    let v = boto(
        "refused",
        &url,
        &key,
        &["--wrong-secret", "not-the-secret-at-all-0000000000000000"],
    );
    passed(&v);
    assert_eq!(v["code"], "SignatureDoesNotMatch");

    let reader = s.s3_key("reader", "read");
    let v = boto("refused", &url, &reader, &["--wrong-secret", &reader.1]);
    passed(&v);
    assert_eq!(v["code"], "AccessDenied", "a read key cannot put");

    // Revoking the token revokes its key.
    let tokens: serde_json::Value = s
        .authed(reqwest::Method::GET, "/api/tokens")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["access_key_id"] == key.0.as_str())
        .expect("the key's token is listed with its access key id")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = s
        .authed(reqwest::Method::DELETE, &format!("/api/tokens/{id}"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 204);
    let v = boto("refused", &url, &key, &["--wrong-secret", &key.1]);
    passed(&v);
    assert_eq!(v["code"], "InvalidAccessKeyId");

    assert!(all_records(&s).is_empty(), "nothing was stored");
    assert_eq!(s.blob_count(), 0);
    assert!(s.tmp_entries().is_empty());
    let listed = s
        .get("/api/tokens")
        .bearer_auth(common::TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!listed.contains(&reader.1), "secrets are never listed");
}

#[test]
fn presigned_urls_work_in_both_forms_and_refuse_tampering_and_expiry() {
    if !boto3() {
        return;
    }
    let s = server();
    let key = s.s3_key("app", "upload");
    let v = boto("presign", &s.s3_url(), &key, &[]);
    passed(&v);
    assert_eq!(
        v["default"], "v2",
        "boto3 presigns with SigV2 for a custom endpoint"
    );
    assert_eq!(v["s3v4"], "v4");
    assert_eq!(all_records(&s).len(), 2, "the two presigned PUTs");
}

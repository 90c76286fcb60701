//! boto3 against the S3 port: each scenario of `tests/clients/s3-boto.py` asserts as it goes,
//! and these tests check what the store holds afterwards.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::clients::run;
use crate::common::TestServer;

/// Whether Python with boto3 is here; says why not when it is not.
pub fn boto3() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        crate::common::unavailable(
            "boto3 is not installed (python3 -m pip install boto3; .ci/run does it)",
        );
    }
    found
}

/// A server with the S3 API on a port of its own.
pub fn server() -> TestServer {
    TestServer::builder().arg("--s3-port").arg("0").start()
}

/// One run of `s3-boto.py`: `scenario` against `endpoint` with a key, plus `extra` arguments.
pub fn boto(scenario: &str, endpoint: &str, key: &(String, String), extra: &[&str]) -> Value {
    let mut cmd = Command::new("python3");
    cmd.arg("s3-boto.py")
        .arg(scenario)
        .args(["--endpoint", endpoint])
        .args(["--key", &key.0])
        .args(["--secret", &key.1])
        .args(extra)
        // A CA bundle of the developer's machine has no place in a plain-http test.
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    run(cmd, Duration::from_secs(240))
}

/// Asserts a scenario passed, showing its trace when it did not.
pub fn passed(v: &Value) {
    assert_eq!(
        v["ok"],
        true,
        "{}\n{}",
        v["error"],
        v["trace"].as_str().unwrap_or("")
    );
}

#[test]
fn boto3_puts_reads_copies_lists_and_deletes() {
    if !boto3() {
        return;
    }
    let s = server();
    let key = s.s3_key("app", "admin");
    let v = boto("objects", &s.s3_url(), &key, &["--bucket", "photos"]);
    passed(&v);
    // The same again with the checksums current SDKs send on their own.
    let v = boto(
        "objects",
        &s.s3_url(),
        &key,
        &["--bucket", "photos-2", "--checksums", "when_supported"],
    );
    passed(&v);
    // Everything was deleted: no record and, after the deletes, no blob is left.
    assert!(crate::common::all_records(&s).is_empty());
    assert_eq!(s.blob_count(), 0, "deleted objects' blobs go with them");
}

#[test]
fn boto3_pages_through_1500_keys_with_prefixes_and_delimiters() {
    if !boto3() {
        return;
    }
    let s = server();
    let key = s.s3_key("lister", "admin");
    let v = boto(
        "listing",
        &s.s3_url(),
        &key,
        &["--bucket", "many", "--count", "1500"],
    );
    passed(&v);
    assert_eq!(v["keys"], 1500);
    assert!(v["pages"].as_u64().unwrap() >= 6, "{v}");
}

#[test]
fn boto3_streamed_and_checksummed_bodies_are_stored_exactly() {
    if !boto3() {
        return;
    }
    let s = server();
    let key = s.s3_key("app", "upload");
    let dir = tempfile::tempdir().unwrap();
    let bytes = crate::common::bytes(3 * 1024 * 1024 + 17, 7);
    let file = dir.path().join("clip.bin");
    std::fs::write(&file, &bytes).unwrap();
    let path = file.to_str().unwrap();
    for (n, extra) in [
        vec![],
        vec!["--checksums", "when_supported"],
        vec!["--checksums", "when_supported", "--stream"],
    ]
    .into_iter()
    .enumerate()
    {
        let object = format!("clips/{n}.bin");
        let mut args = vec!["--file", path, "--object-key", &object];
        args.extend(extra);
        let v = boto("put-file", &s.s3_url(), &key, &args);
        passed(&v);
        assert_eq!(v["sha256"], crate::common::sha256_hex(&bytes), "{args:?}");
    }
    let records = crate::common::all_records(&s);
    assert_eq!(records.len(), 3);
    for r in &records {
        assert_eq!(r["hash"], crate::common::sha256_hex(&bytes));
    }
    assert_eq!(s.blob_count(), 1, "one blob for the three objects");
}

#[test]
fn boto3_multipart_uploads_complete_list_and_abort() {
    if !boto3() {
        return;
    }
    let s = server();
    let key = s.s3_key("app", "upload");
    let dir = tempfile::tempdir().unwrap();
    // Past boto3's 8 MiB threshold, with a last part that is not a whole one.
    let bytes = crate::common::bytes(40 * 1024 * 1024 + 5, 11);
    let file = dir.path().join("video.bin");
    std::fs::write(&file, &bytes).unwrap();
    let v = boto(
        "multipart",
        &s.s3_url(),
        &key,
        &[
            "--file",
            file.to_str().unwrap(),
            "--checksums",
            "when_supported",
        ],
    );
    passed(&v);
    assert_eq!(v["sha256"], crate::common::sha256_hex(&bytes));
    let records = crate::common::all_records(&s);
    let video = records
        .iter()
        .find(|r| r["key"] == "big/video.bin")
        .expect("the uploaded file is media");
    assert_eq!(video["hash"], crate::common::sha256_hex(&bytes));
    assert_eq!(records.len(), 2, "the video and the object made by hand");
    let left = crate::common::entries(&s.data_dir.join("uploads/multipart"));
    assert!(
        left.is_empty(),
        "completed and aborted uploads leave nothing: {left:?}"
    );
    assert!(s.tmp_entries().is_empty());
}

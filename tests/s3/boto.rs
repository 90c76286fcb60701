//! boto3 against the S3 port: each scenario of `tests/clients/s3-boto.py` asserts as it goes,
//! and these tests check what the store holds afterwards.

use crate::common::TestServer;

/// A server with the S3 API on a port of its own.
pub fn server() -> TestServer {
    TestServer::builder().arg("--s3-port").arg("0").start()
}

pub use crate::common::clients::{boto, boto3, passed};

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

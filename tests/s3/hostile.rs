//! The S3 side in the hostile battery: signed requests that are wrong by mistake or on
//! purpose get the S3 error SDKs branch on, and leave nothing behind.

use crate::boto::{boto, boto3, passed};
use crate::common::{self, all_records, TestServer};

#[test]
fn malformed_and_oversized_s3_requests_are_refused_and_leave_nothing() {
    if !boto3() {
        return;
    }
    let s = TestServer::builder()
        .arg("--s3-port")
        .arg("0")
        .arg("--max-upload-bytes")
        .arg("1MiB")
        .start();
    let key = s.s3_key("hostile", "upload");
    let v = boto("hostile", &s.s3_url(), &key, &["--bucket", "battery"]);
    passed(&v);
    assert!(all_records(&s).is_empty());
    assert!(s.tmp_entries().is_empty(), "{:?}", s.tmp_entries());
    assert!(common::entries(&s.data_dir.join("uploads/multipart")).is_empty());
    assert_eq!(s.blob_count(), 0);
    // The server is still whole.
    assert_eq!(s.get("/api/health").send().unwrap().status(), 200);
}

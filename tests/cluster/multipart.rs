//! S3 on two instances: boto3 sends a multipart upload's parts to one instance and completes
//! the upload on the other; a crash between a part's PUT to the bucket and its row leaves a
//! piece that `gc` removes; puts of one new key on both instances at once both succeed, and
//! one record holds the key.

use std::path::Path;

use md5::Digest as _;
use shoebox::store::bucket::UPLOADS;

use crate::common;
use crate::common::clients::{boto, boto3, passed};
use crate::shared::Cluster;

fn file(dir: &Path, data: &[u8]) -> String {
    let path = dir.join("parts.bin");
    std::fs::write(&path, data).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn parts_sent_to_one_instance_complete_on_the_other() {
    if !boto3() {
        return;
    }
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let a = cluster.s3_instance(0);
    let b = cluster.s3_instance(1);
    let key = a.s3_key("parts", "admin");
    let dir = tempfile::tempdir().unwrap();
    let data = common::bytes((12 << 20) + 4321, 31);
    let path = file(dir.path(), &data);
    let args = [
        "--bucket",
        "default",
        "--object-key",
        "both/parts.bin",
        "--file",
        &path,
    ];

    let began = boto("parts", &a.s3_url(), &key, &args);
    passed(&began);
    assert_eq!(
        cluster.objects(UPLOADS).len(),
        3,
        "three parts in the bucket"
    );
    let etags = began["etags"].to_string();
    let upload_id = began["upload_id"].as_str().unwrap();
    let finish: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--upload-id", upload_id, "--etags", &etags])
        .collect();
    let done = boto("parts", &b.s3_url(), &key, &finish);
    passed(&done);
    assert_eq!(done["sha256"], common::sha256_hex(&data));
    assert_eq!(
        cluster.objects(UPLOADS),
        Vec::<String>::new(),
        "the parts went"
    );

    // boto3's managed transfer sends parts side by side; by hand, out of order; an abort.
    passed(&boto("multipart", &b.s3_url(), &key, &["--file", &path]));
    assert_eq!(cluster.objects(UPLOADS), Vec::<String>::new());
    let (code, out) = cluster.cli(&["verify"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_crash_between_part_and_row_leaves_only_what_gc_removes() {
    if !boto3() {
        return;
    }
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let b = cluster.s3_instance(1);
    let a = cluster
        .builder(0)
        .arg("--s3-port")
        .arg("0")
        .env("SHOEBOX_CRASH_AT", "s3-part-sent")
        .start();
    let key = b.s3_key("parts", "admin");
    let dir = tempfile::tempdir().unwrap();
    let data = common::bytes(6 << 20, 32);
    let path = file(dir.path(), &data);
    let args = [
        "--bucket",
        "default",
        "--object-key",
        "cut.bin",
        "--file",
        &path,
    ];
    let cut = boto("parts", &a.s3_url(), &key, &args);
    assert_eq!(
        cut["ok"], false,
        "the first part was never acknowledged: {cut}"
    );
    assert_eq!(cluster.objects(UPLOADS).len(), 1, "the part the crash left");

    // The upload itself is there, with no part; the same upload is done again on B.
    passed(&boto("parts", &b.s3_url(), &key, &args));
    let (code, out) = cluster.cli(&["gc", "--grace", "0s"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 orphan upload pieces"), "{out}");
    // B's upload is still in progress (its parts are named), so only the orphan went.
    assert_eq!(cluster.objects(UPLOADS).len(), 2, "B's two parts stay");
}

#[test]
fn puts_of_one_new_key_on_both_instances_both_succeed() {
    if !boto3() {
        return;
    }
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let a = cluster.s3_instance(0);
    let b = cluster.s3_instance(1);
    let key = a.s3_key("race", "admin");
    const KEYS: usize = 40;
    let count = KEYS.to_string();
    let runs: Vec<serde_json::Value> = std::thread::scope(|scope| {
        let sent: Vec<_> = [("a", &a), ("b", &b)]
            .into_iter()
            .map(|(name, s)| {
                let (url, key, count) = (s.s3_url(), &key, &count);
                scope.spawn(move || {
                    let args = ["--count", count.as_str(), "--object-key", name];
                    boto("race", &url, key, &args)
                })
            })
            .collect();
        sent.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for run in &runs {
        passed(run);
    }
    let listed = boto("keys", &b.s3_url(), &key, &[]);
    passed(&listed);
    let objects = listed["objects"].as_array().unwrap();
    assert_eq!(objects.len(), KEYS, "one object per key: {listed}");
    for (i, o) in objects.iter().enumerate() {
        assert_eq!(o["key"], format!("race/{i:03}"));
        let either = ["a", "b"].map(|w| hex::encode(md5::Md5::digest(format!("{w} {i}"))));
        assert!(
            either.contains(&o["etag"].as_str().unwrap().to_owned()),
            "one writer's bytes, whole: {o}"
        );
    }
    let (code, out) = cluster.cli(&["verify"]);
    assert_eq!(code, 0, "{out}");
    let status = a.status();
    assert_eq!(status["media"]["count"], KEYS, "{status}");
}

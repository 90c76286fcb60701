//! The MD5s (S3's ETags) that older records lack, computed by one instance of several.

use std::time::Duration;

use md5::Digest as _;
use reqwest::Method;
use serde_json::Value;

use crate::common::{self, TestServer};
use crate::shared::Cluster;
use crate::upload;

fn record(s: &TestServer, id: &str) -> Value {
    s.authed(Method::GET, &format!("/api/media/{id}"))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// Records made while S3 was off have no MD5. When two instances then start with S3 on, one
/// of them reads the blobs for the MD5s while the other waits for its turn (it would find
/// nothing left), and every record gets the MD5 of its bytes.
#[test]
fn one_instance_of_two_computes_the_older_records_md5s() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let mut a = cluster.instance(0);
    let mut made = Vec::new();
    for i in 0..20u32 {
        let body: Vec<u8> = (0..256 * 1024u32)
            .map(|j| ((i * 31 + j * 7) % 251) as u8)
            .collect();
        let item = upload(&a, &format!("older-{i}.bin"), &body);
        assert!(item.get("md5").is_none(), "S3 is off: {item}");
        made.push((item["id"].as_str().unwrap().to_owned(), body));
    }
    a.terminate();
    // 5 MiB read at 1 MiB a second: the second instance starts while the first reads.
    let start = |node| {
        cluster
            .builder(node)
            .arg("--s3-port")
            .arg("0")
            .env("SHOEBOX_SCRUB_RATE", "1MiB")
            .start()
    };
    let a = start(0);
    let b = start(1);
    common::eventually("every older record's MD5", Duration::from_secs(90), || {
        made.iter()
            .all(|(id, _)| record(&b, id).get("md5").is_some())
    });
    for (id, body) in &made {
        assert_eq!(
            record(&a, id)["md5"],
            hex::encode(md5::Md5::digest(body)),
            "{id}"
        );
    }
    let computing = [&a, &b]
        .iter()
        .filter(|s| {
            s.output()
                .contains("computing the MD5s of records that have none")
        })
        .count();
    assert_eq!(
        computing,
        1,
        "one instance reads the blobs\nA:\n{}\nB:\n{}",
        a.output(),
        b.output()
    );
}

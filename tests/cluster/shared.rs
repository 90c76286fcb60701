//! Records in PostgreSQL, blobs in a 3-node Garage: two instances serve one store.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use shoebox::store::bucket::{Bucket, BucketConfig};
use shoebox_testkit::{Garage, Postgres};

use crate::common::{self, run_cli, TestServer};
use crate::upload;

/// Seals the credentials the instances share.
const SECRET_KEY: &str = "a-test-key-of-more-than-32-characters-0123456789";

/// Garage for the blobs and PostgreSQL for the records, both on loopback.
pub(crate) struct Cluster {
    pub(crate) garage: Garage,
    pub(crate) postgres: Postgres,
    url: String,
}

impl Cluster {
    pub(crate) fn start() -> Option<Cluster> {
        let garage = Garage::start(3, "blobs")?;
        let postgres = Postgres::start()?;
        let url = postgres.database("shoebox");
        Some(Cluster {
            garage,
            postgres,
            url,
        })
    }

    /// The flags that share this cluster, through Garage node `node`.
    pub(crate) fn flags(&self, node: usize) -> Vec<String> {
        vec![
            "--blob-store".into(),
            format!(
                "s3://blobs?endpoint={}&region={}",
                self.garage.endpoint(node),
                self.garage.region()
            ),
            "--blob-store-access-key-id".into(),
            self.garage.key().id.clone(),
            "--blob-store-secret-access-key".into(),
            self.garage.key().secret.clone(),
            "--database-url".into(),
            self.url.clone(),
            "--secret-key".into(),
            SECRET_KEY.into(),
        ]
    }

    /// An instance with a scratch directory of its own, through Garage node `node`.
    pub(crate) fn instance(&self, node: usize) -> TestServer {
        self.builder(node).start()
    }

    pub(crate) fn builder(&self, node: usize) -> common::Builder {
        let mut b = TestServer::builder();
        for a in self.flags(node) {
            b = b.arg(&a);
        }
        b
    }

    /// An instance that also serves S3 on a port of its own.
    pub(crate) fn s3_instance(&self, node: usize) -> TestServer {
        self.builder(node).arg("--s3-port").arg("0").start()
    }

    /// The names under `prefix` (`variants`, `uploads`) in the cluster's bucket, through
    /// Shoebox's own bucket client.
    pub(crate) fn objects(&self, prefix: &'static str) -> Vec<String> {
        let bucket = Bucket::connect(BucketConfig {
            bucket: "blobs".into(),
            endpoint: Some(self.garage.endpoint(0)),
            region: self.garage.region().into(),
            access_key_id: self.garage.key().id.clone(),
            secret_access_key: self.garage.key().secret.clone(),
        })
        .unwrap();
        let listed = bucket.list_objects(prefix).unwrap();
        listed.into_iter().map(|o| o.name).collect()
    }

    /// A command with the cluster's settings, beside the running instances: a scratch
    /// directory of its own is all it needs.
    pub(crate) fn cli(&self, args: &[&str]) -> (i32, String) {
        let scratch = tempfile::tempdir().unwrap();
        let flags = self.flags(0);
        let all: Vec<&str> = args
            .iter()
            .copied()
            .chain(flags.iter().map(String::as_str))
            .collect();
        run_cli(&all, scratch.path())
    }
}

fn count(s: &TestServer) -> u64 {
    s.status()["media"]["count"].as_u64().unwrap()
}

/// What one instance writes, the other reads, edits and deletes; both see one catalogue.
#[test]
fn two_instances_serve_one_store() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let a = cluster.instance(0);
    let b = cluster.instance(1);
    assert_eq!(a.status()["metadata"], "postgresql");
    for s in [&a, &b] {
        let health = s.get("/api/health").send().unwrap();
        assert_eq!(health.status(), 200);
        let v: Value = health.json().unwrap();
        assert_eq!(v["checks"]["metadata"]["ok"], true, "{v}");
        assert_eq!(v["checks"]["blob_store"]["ok"], true, "{v}");
    }

    let bytes = common::bytes(700_000, 7);
    let item = upload(&a, "shared.bin", &bytes);
    let id = item["id"].as_str().unwrap();
    assert_eq!(s_count_pair(&a, &b), (1, 1));

    // Listed, served whole, by range and conditionally, by the other instance.
    let listed: Value = b
        .authed(Method::GET, "/api/media")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["items"][0]["id"], id);
    assert_eq!(b.media_bytes(id), bytes);
    let res = b
        .get(&format!("/m/{id}"))
        .header("Range", "bytes=100-199")
        .send()
        .unwrap();
    assert_eq!(res.status(), 206);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(&res.bytes().unwrap()[..], &bytes[100..200]);
    let res = a
        .get(&format!("/m/{id}"))
        .header("If-None-Match", &etag)
        .send()
        .unwrap();
    assert_eq!(res.status(), 304, "the ETag is the same on both");

    // An edit on B is what A shows.
    let res = b
        .authed(Method::PATCH, &format!("/api/media/{id}"))
        .json(&serde_json::json!({"title": "edited on B"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().unwrap_or_default());
    let got: Value = a
        .authed(Method::GET, &format!("/api/media/{id}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(got["title"], "edited on B");

    // Edits of one record on both instances at once: each is made whole, none refused.
    std::thread::scope(|scope| {
        for (n, s) in [&a, &b].into_iter().enumerate() {
            scope.spawn(move || {
                for round in 0..15 {
                    let res = s
                        .authed(Method::PATCH, &format!("/api/media/{id}"))
                        .json(&serde_json::json!({"description": format!("{n}-{round}")}))
                        .send()
                        .unwrap();
                    assert_eq!(res.status(), 200, "{}", res.text().unwrap_or_default());
                }
            });
        }
    });
    let got: Value = b
        .authed(Method::GET, &format!("/api/media/{id}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        ["0-14", "1-14"].contains(&got["description"].as_str().unwrap()),
        "{got}"
    );
    assert_eq!(got["title"], "edited on B");

    // A collection made public on A, empty, is one on B within a second; removed on B, gone
    // on A within a second.
    let res = a
        .authed(Method::PUT, "/api/collections/Summer%202026")
        .json(&serde_json::json!({"public": true}))
        .send()
        .unwrap();
    assert!(
        res.status().is_success(),
        "{}",
        res.text().unwrap_or_default()
    );
    let collections = |s: &TestServer| -> Vec<Value> {
        let listed: Value = s
            .authed(Method::GET, "/api/collections")
            .send()
            .unwrap()
            .json()
            .unwrap();
        listed["items"].as_array().unwrap().clone()
    };
    common::eventually("B lists the collection", Duration::from_secs(5), || {
        collections(&b)
            .iter()
            .any(|c| c["name"] == "Summer 2026" && c["public"] == true)
    });
    let res = b
        .authed(Method::DELETE, "/api/collections/Summer%202026")
        .send()
        .unwrap();
    assert!(
        res.status().is_success(),
        "{}",
        res.text().unwrap_or_default()
    );
    common::eventually("A forgets the collection", Duration::from_secs(5), || {
        !collections(&a).iter().any(|c| c["name"] == "Summer 2026")
    });

    // The same bytes through B are deduplicated against A's blob.
    let again = upload(&b, "again.bin", &bytes);
    assert_eq!(again["hash"], item["hash"]);

    // A backup through A carries B's records and the bucket's bytes; it restores into a
    // data directory of its own (sled and files), which serves them.
    let dir = tempfile::tempdir().unwrap();
    let r = crate::restored_from_backup(&a, dir.path());
    assert_eq!(r.media_bytes(id), bytes);
    assert_eq!(count(&r), 2);
    drop(r);

    // Deleted on B: gone on A within a second, and the blob goes with the last record.
    b.delete_media(id);
    // (A served it a moment ago, and may for up to a second: see pg/recent.rs.)
    common::eventually(
        "A forgets the deleted record",
        Duration::from_secs(5),
        || a.get(&format!("/m/{id}")).send().unwrap().status() == 404,
    );
    b.delete_media(again["id"].as_str().unwrap());
    assert_eq!(s_count_pair(&a, &b), (0, 0));
    let (code, out) = cluster.cli(&["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("checked 0 records and 0 blobs"), "{out}");
    let metrics = a.metrics();
    assert!(
        metrics.contains("shoebox_database_connections{state=\"idle\"}"),
        "{metrics}"
    );
}

fn s_count_pair(a: &TestServer, b: &TestServer) -> (u64, u64) {
    (count(a), count(b))
}

/// Uploads and deletes of the same bytes on both instances at once leave the counts right
/// and never a record without its blob.
#[test]
fn the_same_bytes_on_both_instances_keep_their_counts() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let a = cluster.instance(0);
    let b = cluster.instance(1);
    let bytes = common::bytes(64 << 10, 3);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    std::thread::scope(|scope| {
        for (n, s) in [&a, &b, &a, &b].into_iter().enumerate() {
            let bytes = &bytes;
            scope.spawn(move || {
                for round in 0..25 {
                    if std::time::Instant::now() > deadline {
                        break;
                    }
                    let item = upload(s, &format!("same-{n}-{round}.bin"), bytes);
                    let id = item["id"].as_str().unwrap();
                    // Whichever instance deletes it, the bytes stay for the others.
                    assert_eq!(s.media_bytes(id), *bytes);
                    if round % 3 != 2 {
                        s.delete_media(id);
                    }
                }
            });
        }
    });
    let left = count(&a);
    assert!(left > 0, "every fourth thread's third upload stays");
    let listed = common::all_records(&b);
    assert_eq!(listed.len() as u64, left);
    for r in &listed {
        assert_eq!(a.media_bytes(r["id"].as_str().unwrap()), bytes);
    }
    let refs = cluster.postgres.psql("shoebox", "SELECT refs FROM blobs");
    assert_eq!(refs, left.to_string(), "one blob, counted once per record");
    let (code, out) = cluster.cli(&["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("result: ok"), "{out}");
}

/// PostgreSQL stopped: uploads answer 503 and leave no record, the health check fails, and
/// service comes back by itself when the database does.
#[test]
fn a_stopped_database_is_an_outage_that_ends_by_itself() {
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let a = cluster.instance(0);
    let before = upload(&a, "before.bin", &common::bytes(20_000, 1));
    let id = before["id"].as_str().unwrap().to_owned();
    cluster.postgres.kill();

    let bytes = common::bytes(30_000, 2);
    let res = a
        .authed(Method::POST, "/api/media?filename=during.bin")
        .body(bytes.clone())
        .send()
        .unwrap();
    assert_eq!(res.status(), 503, "{}", res.text().unwrap_or_default());
    assert_eq!(
        common::error_code(a.get(&format!("/m/{id}")).send().unwrap(), 503),
        "unavailable"
    );
    let health = a.get("/api/health").send().unwrap();
    assert_eq!(health.status(), 503);
    let v: Value = health.json().unwrap();
    assert_eq!(v["checks"]["metadata"]["ok"], false, "{v}");
    assert!(
        !v.to_string().contains("127.0.0.1"),
        "the public check names no address: {v}"
    );

    cluster.postgres.restart();
    common::eventually(
        "the database answers again",
        Duration::from_secs(30),
        || a.get("/api/health").send().unwrap().status() == 200,
    );
    assert_eq!(a.media_bytes(&id), common::bytes(20_000, 1));
    let during = upload(&a, "during.bin", &bytes);
    assert_eq!(during["hash"], common::sha256_hex(&bytes));
    // Nothing from the refused upload: the two records are the ones acknowledged, and the
    // refused upload's blob, if it reached the bucket, is the retried one's.
    assert_eq!(count(&a), 2);
    let (code, out) = cluster.cli(&["verify"]);
    assert_eq!(code, 0, "{out}");
}

/// An instance SIGKILLed during uploads, again and again: every acknowledged upload is whole
/// after each restart, `verify` passes, and `gc` takes what the crashes left once it is older
/// than its grace period.
#[test]
fn a_sigkilled_instance_loses_no_acknowledged_upload() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let flags = cluster.flags(0);
    common::crash::crash_rounds(|| cluster.instance(0), &flags, 4, 3, 12 << 20);
    let (code, out) = cluster.cli(&["gc", "--grace", "0s"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = cluster.cli(&["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("orphan blob"), "gc took every orphan:\n{out}");
}

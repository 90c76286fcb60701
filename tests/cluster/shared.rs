//! Records in PostgreSQL, blobs in a 3-node Garage: two instances serve one store.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use shoebox_testkit::{Garage, Postgres};

use crate::common::{self, run_cli, TestServer};

/// Seals the credentials the instances share.
const SECRET_KEY: &str = "a-test-key-of-more-than-32-characters-0123456789";

/// Garage for the blobs and PostgreSQL for the records, both on loopback.
struct Cluster {
    garage: Garage,
    postgres: Postgres,
    url: String,
}

impl Cluster {
    fn start() -> Option<Cluster> {
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
    fn flags(&self, node: usize) -> Vec<String> {
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
    fn instance(&self, node: usize) -> TestServer {
        self.builder(node).start()
    }

    fn builder(&self, node: usize) -> common::Builder {
        let mut b = TestServer::builder();
        for a in self.flags(node) {
            b = b.arg(&a);
        }
        b
    }

    /// A command with the cluster's settings, beside the running instances: a scratch
    /// directory of its own is all it needs.
    fn cli(&self, args: &[&str]) -> (i32, String) {
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

fn upload(s: &TestServer, name: &str, bytes: &[u8]) -> Value {
    let res = s
        .authed(Method::POST, &format!("/api/media?filename={name}"))
        .body(bytes.to_vec())
        .send()
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().unwrap_or_default());
    res.json::<Value>().unwrap()["items"][0].clone()
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
    common::eventually("B lists the collection", Duration::from_secs(5), || {
        let on_b: Value = b
            .authed(Method::GET, "/api/collections")
            .send()
            .unwrap()
            .json()
            .unwrap();
        on_b["items"]
            .as_array()
            .unwrap()
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
        let on_a: Value = a
            .authed(Method::GET, "/api/collections")
            .send()
            .unwrap()
            .json()
            .unwrap();
        !on_a.to_string().contains("Summer 2026")
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
    let metrics = a
        .authed(Method::GET, "/metrics")
        .send()
        .unwrap()
        .text()
        .unwrap();
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
    let listed: Value = b
        .authed(Method::GET, "/api/tokens")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token_id = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "uploader")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
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

/// A store on one disk moves to the cluster with `shoebox migrate --to-blob-store
/// --to-database`, and back with `--to-blob-store disk --to-database sled`: 1,000 media with
/// custom fields, tags, a collection's setting and pictures with variants keep every record
/// identical and every byte, the API tokens come along, a second run copies nothing, and each
/// side serves everything, variants included.
#[test]
fn a_store_moves_to_the_cluster_and_back() {
    use reqwest::blocking::multipart::{Form, Part};
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let mut s = TestServer::start();
    let mut bytes_of = std::collections::BTreeMap::new();
    // 1,000 media in 20 requests of 50 files, each request with its own custom fields; the
    // first request's files are pictures, in a collection.
    for batch in 0..20u64 {
        let mut form = Form::new()
            .text(
                "custom",
                format!(r#"{{"batch": {batch}, "source": "migration"}}"#),
            )
            .text("tags", format!("b{batch},moved"));
        if batch == 0 {
            form = form.text("collection", "trip");
        }
        let mut sent = Vec::new();
        for i in 0..50u64 {
            let n = batch * 50 + i;
            let data = if batch == 0 {
                common::png(200 + i as u32, 150, move |x, y| {
                    [(x * 7 + n as u32) as u8, y as u8, 99]
                })
            } else {
                common::bytes(100 + 13 * n as usize, 5000 + n)
            };
            let name = if batch == 0 {
                format!("p{n}.png")
            } else {
                format!("m{n}.bin")
            };
            form = form.part("file", Part::bytes(data.clone()).file_name(name));
            sent.push(data);
        }
        let items = s.upload_form(form);
        assert_eq!(
            items.len(),
            50,
            "batch {batch}: {:?}\n{}",
            items
                .iter()
                .map(|i| i["filename"].clone())
                .collect::<Vec<_>>(),
            s.output()
        );
        for (item, data) in items.into_iter().zip(sent) {
            let id = item["id"].as_str().unwrap().to_owned();
            if let Some(was) = bytes_of.insert(id.clone(), data) {
                panic!(
                    "two uploads answered with media {id} ({} and {} bytes): {item}\n{}",
                    was.len(),
                    bytes_of[&id].len(),
                    s.output()
                );
            }
        }
    }
    // A duplicate, and a large blob (a multipart upload to the bucket).
    let first = bytes_of.values().nth(70).unwrap().clone();
    bytes_of.insert(
        upload(&s, "dup.bin", &first)["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        first,
    );
    let large = common::bytes(20 << 20, 9);
    let large_id = upload(&s, "large.bin", &large)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    bytes_of.insert(large_id.clone(), large);
    let res = s
        .authed(Method::PUT, "/api/collections/trip")
        .json(&serde_json::json!({"public": true}))
        .send()
        .unwrap();
    assert!(res.status().is_success());
    let pictures: Vec<String> = bytes_of
        .iter()
        .filter(|(_, d)| d.starts_with(b"\x89PNG"))
        .map(|(id, _)| id.clone())
        .take(5)
        .collect();
    let variant = |t: &TestServer, id: &str| {
        let res = t.get(&format!("/m/{id}?w=160&format=png")).send().unwrap();
        assert_eq!(res.status(), 200, "a variant of {id}");
        res.bytes().unwrap().to_vec()
    };
    let variants: Vec<Vec<u8>> = pictures.iter().map(|id| variant(&s, id)).collect();
    let records = common::all_records(&s);
    if records.len() != 1002 {
        let listed: std::collections::BTreeSet<&str> =
            records.iter().map(|r| r["id"].as_str().unwrap()).collect();
        let missing: Vec<&String> = bytes_of
            .keys()
            .filter(|k| !listed.contains(k.as_str()))
            .collect();
        let status = s.status();
        let detail: Vec<String> = missing
            .iter()
            .map(|id| {
                s.authed(Method::GET, &format!("/api/media/{id}"))
                    .send()
                    .unwrap()
                    .text()
                    .unwrap()
            })
            .collect();
        panic!(
            "listed {} of {} uploaded; status {}; missing {missing:?}: {detail:?}\n{}",
            records.len(),
            bytes_of.len(),
            status["media"],
            s.output()
                .lines()
                .filter(|l| missing.iter().any(|m| l.contains(m.as_str()))
                    || l.contains("WARN")
                    || l.contains("ERROR"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let token = s.api_token("app", "read");
    assert!(s.terminate().success());

    // There: the cluster's settings name the destination, the data directory the source.
    let flags = cluster.flags(0);
    let to: Vec<String> = flags
        .chunks(2)
        .flat_map(|pair| match pair[0].as_str() {
            "--blob-store" => vec!["--to-blob-store".into(), pair[1].clone()],
            "--blob-store-access-key-id" => {
                vec!["--to-blob-store-access-key-id".into(), pair[1].clone()]
            }
            "--blob-store-secret-access-key" => {
                vec!["--to-blob-store-secret-access-key".into(), pair[1].clone()]
            }
            "--database-url" => vec!["--to-database".into(), pair[1].clone()],
            _ => pair.to_vec(),
        })
        .collect();
    let mut args = vec!["migrate"];
    args.extend(to.iter().map(String::as_str));
    let (code, out) = run_cli(&args, &s.data_dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("1002 records in PostgreSQL, verified (1002 copied now"),
        "{out}"
    );
    let (code, again) = run_cli(&args, &s.data_dir);
    assert_eq!(code, 0, "{again}");
    assert!(
        again.contains("(0 copied now, 1002 were there already)"),
        "{again}"
    );

    let c = cluster.instance(1);
    assert_eq!(common::all_records(&c), records, "every record as it was");
    for (id, data) in bytes_of.iter().step_by(40) {
        assert_eq!(&c.media_bytes(id), data);
    }
    assert_eq!(c.media_bytes(&large_id).len(), 20 << 20);
    for (id, v) in pictures.iter().zip(&variants) {
        assert_eq!(
            &variant(&c, id),
            v,
            "the same variant, made from the bucket"
        );
    }
    let res = c
        .client()
        .get(c.url(&format!("/api/media/{large_id}")))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "the API token came along");
    let collections: Value = c
        .authed(Method::GET, "/api/collections")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        collections.to_string().contains("\"public\":true"),
        "{collections}"
    );
    drop(c);

    // And back, into a data directory of its own.
    let back = tempfile::tempdir().unwrap();
    let mut args = vec![
        "migrate",
        "--to-blob-store",
        "disk",
        "--to-database",
        "sled",
    ];
    args.extend(flags.iter().map(String::as_str));
    let (code, out) = run_cli(&args, back.path());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("1002 records in sled and records/, verified"),
        "{out}"
    );
    let (code, out) = run_cli(&["verify"], back.path());
    assert_eq!(code, 0, "{out}");
    let d = TestServer::builder().data_dir(back.path()).start();
    assert_eq!(common::all_records(&d), records, "every record as it was");
    assert_eq!(
        d.blob_count(),
        1001,
        "every blob is a file again, one for two records"
    );
    for (id, data) in bytes_of.iter().step_by(40) {
        assert_eq!(&d.media_bytes(id), data);
    }
    for (id, v) in pictures.iter().zip(&variants) {
        assert_eq!(&variant(&d, id), v);
    }
    let res = d
        .client()
        .get(d.url(&format!("/api/media/{large_id}")))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "the API token came back");
}

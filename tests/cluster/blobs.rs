//! Blobs in a Garage bucket, records in sled: one instance.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use shoebox_testkit::Garage;

use crate::common::{self, run_cli, sha256_hex, TestServer};
use crate::upload;

/// A 3-node Garage (replication 3, quorum 2) with a bucket for the blobs.
fn garage() -> Option<Garage> {
    Garage::start(3, "blobs")
}

/// The flags that put the blobs in `garage`'s bucket, through node 0.
fn blob_store(garage: &Garage) -> Vec<String> {
    vec![
        "--blob-store".into(),
        format!(
            "s3://blobs?endpoint={}&region={}",
            garage.endpoint(0),
            garage.region()
        ),
        "--blob-store-access-key-id".into(),
        garage.key().id.clone(),
        "--blob-store-secret-access-key".into(),
        garage.key().secret.clone(),
    ]
}

fn server(garage: &Garage, extra: &[&str]) -> TestServer {
    let mut b = TestServer::builder();
    for a in blob_store(garage)
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
    {
        b = b.arg(a);
    }
    b.start()
}

/// A command on the server's data directory, with the same blob store.
fn cli(garage: &Garage, s: &TestServer, args: &[&str]) -> (i32, String) {
    let store = blob_store(garage);
    let all: Vec<&str> = args
        .iter()
        .copied()
        .chain(store.iter().map(String::as_str))
        .collect();
    run_cli(&all, &s.data_dir)
}

#[test]
fn blobs_live_in_the_bucket_and_are_served_deduplicated_and_deleted() {
    let Some(garage) = garage() else { return };
    let s = server(&garage, &[]);
    assert_eq!(
        s.status()["blob_store"],
        format!("s3://blobs at {}", garage.endpoint(0))
    );
    // One PUT, and a multipart upload (above 8 MiB), and the first again.
    let small = common::bytes(300_000, 1);
    let large = common::bytes(20 << 20, 2);
    let a = upload(&s, "a.bin", &small);
    let b = upload(&s, "b.bin", &large);
    let again = upload(&s, "again.bin", &small);
    assert_eq!(a["hash"], again["hash"]);
    assert_eq!(s.blob_count(), 0, "no blob is a file in the data directory");
    assert!(
        s.tmp_entries().is_empty(),
        "staged uploads are gone: {:?}",
        s.tmp_entries()
    );
    let status = s.status();
    assert_eq!(status["blobs"]["count"], 2);
    assert_eq!(status["blobs"]["bytes"], (small.len() + large.len()) as u64);

    // Served whole, in ranges, conditionally, and by HEAD.
    let id = b["id"].as_str().unwrap();
    assert_eq!(sha256_hex(&s.media_bytes(id)), sha256_hex(&large));
    let res = s
        .authed(Method::GET, &format!("/m/{id}"))
        .header("Range", "bytes=1000-1099999")
        .send()
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes 1000-1099999/{}", large.len()).as_str()
    );
    assert!(res.bytes().unwrap() == large[1000..1_100_000]);
    let res = s
        .authed(Method::GET, &format!("/f/{}", b["hash"].as_str().unwrap()))
        .header("Range", "bytes=-10")
        .send()
        .unwrap();
    assert_eq!(res.status(), 206);
    assert!(res.bytes().unwrap() == large[large.len() - 10..]);
    let res = s
        .authed(Method::GET, &format!("/m/{id}"))
        .header("Range", format!("bytes={}-", large.len()))
        .send()
        .unwrap();
    assert_eq!(res.status(), 416);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes */{}", large.len()).as_str()
    );
    let etag = s
        .authed(Method::HEAD, &format!("/m/{id}"))
        .send()
        .unwrap()
        .headers()["etag"]
        .clone();
    let res = s
        .authed(Method::GET, &format!("/m/{id}"))
        .header("If-None-Match", etag)
        .send()
        .unwrap();
    assert_eq!(res.status(), 304);

    // The bucket's requests are in /metrics.
    let metrics = s.metrics();
    assert!(
        metrics.contains("shoebox_blob_store_request_duration_seconds_count{op=\"put\"} 2"),
        "{metrics}"
    );

    // A blob goes with its last record.
    s.delete_media(a["id"].as_str().unwrap());
    assert_eq!(
        sha256_hex(&s.media_bytes(again["id"].as_str().unwrap())),
        sha256_hex(&small)
    );
    s.delete_media(again["id"].as_str().unwrap());
    assert_eq!(s.status()["blobs"]["count"], 1);
    let mut s = s;
    s.terminate();
    let (code, out) = cli(&garage, &s, &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("1 blobs"),
        "verify lists what the bucket holds:\n{out}"
    );
}

#[test]
fn gc_removes_what_no_record_uses_after_its_grace_and_verify_reads_the_bucket() {
    let Some(garage) = garage() else { return };
    let mut s = server(&garage, &[]);
    let kept = upload(&s, "kept.bin", &common::bytes(50_000, 3));
    // A crash between the object's PUT and the record's commit leaves an orphan: an upload
    // killed at that point, by the crash point the write path has there.
    s.kill();
    let mut crashing = TestServer::builder().data_dir(&s.data_dir);
    for a in blob_store(&garage) {
        crashing = crashing.arg(&a);
    }
    let crashing = crashing
        .env("SHOEBOX_CRASH_AT", "upload-after-blobs")
        .start();
    let res = crashing
        .authed(Method::POST, "/api/media?filename=lost.bin")
        .body(common::bytes(40_000, 4))
        .send();
    assert!(res.is_err() || !res.unwrap().status().is_success());
    drop(crashing);
    s = s.restart();
    s.terminate();
    let (code, out) = cli(&garage, &s, &["verify"]);
    assert_eq!(code, 0, "an orphan is no damage:\n{out}");
    assert!(out.contains("orphan"), "{out}");
    // Young orphans stay (an upload on its way to its commit); old ones go.
    let (code, out) = cli(&garage, &s, &["gc", "--grace", "1h"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("removed 0 orphan blobs"), "{out}");
    let (code, out) = cli(&garage, &s, &["gc", "--grace", "0s"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("removed 1 orphan blobs"), "{out}");
    let s = s.restart();
    assert_eq!(s.status()["blobs"]["count"], 1);
    assert_eq!(
        s.media_bytes(kept["id"].as_str().unwrap()),
        common::bytes(50_000, 3)
    );
}

#[test]
fn a_garage_node_down_stops_nothing_and_a_bucket_down_answers_503() {
    let Some(mut garage) = garage() else { return };
    let s = server(&garage, &[]);
    let before = upload(&s, "before.bin", &common::bytes(70_000, 5));
    // One node of three down: quorum 2 still writes and reads.
    garage.kill(2);
    let during = upload(&s, "during.bin", &common::bytes(18 << 20, 6));
    assert_eq!(
        s.media_bytes(before["id"].as_str().unwrap()),
        common::bytes(70_000, 5)
    );
    garage.restart(2);
    // The node the server talks to down: the bucket does not answer. Uploads and reads are
    // refused with 503, health says so, and nothing is half-written.
    garage.kill(0);
    let res = s
        .authed(Method::POST, "/api/media?filename=refused.bin")
        .body(common::bytes(10_000, 7))
        .send()
        .unwrap();
    assert_eq!(common::error_code(res, 503), "unavailable");
    let health = s.get("/api/health").send().unwrap();
    assert_eq!(health.status(), 503);
    let health: Value = health.json().unwrap();
    assert_eq!(health["checks"]["blob_store"]["ok"], false);
    assert!(
        !health.to_string().contains("127.0.0.1"),
        "the public check names no endpoint: {health}"
    );
    let res = s
        .authed(
            Method::GET,
            &format!("/m/{}", during["id"].as_str().unwrap()),
        )
        .send()
        .unwrap();
    assert!(
        res.status() == 503 || res.bytes().is_err(),
        "a read without the bucket fails"
    );
    assert_eq!(
        s.status()["media"]["count"],
        2,
        "the refused upload left no record"
    );
    // Back by itself once the bucket answers again.
    garage.restart(0);
    common::eventually("health passes again", Duration::from_secs(30), || {
        s.get("/api/health").send().is_ok_and(|r| r.status() == 200)
    });
    upload(&s, "after.bin", &common::bytes(10_000, 7));
    assert_eq!(
        sha256_hex(&s.media_bytes(during["id"].as_str().unwrap())),
        sha256_hex(&common::bytes(18 << 20, 6))
    );
}

#[test]
fn public_reads_redirect_to_a_presigned_url_with_the_served_type() {
    let Some(garage) = garage() else { return };
    let s = server(&garage, &["--blob-redirect"]);
    let page = b"<html><script>alert(1)</script></html>".to_vec();
    let html = upload(&s, "page.html", &page);
    let private = s
        .authed(Method::POST, "/api/media?filename=p.bin&visibility=private")
        .body(common::bytes(1000, 8))
        .send()
        .unwrap();
    assert_eq!(private.status(), 201);
    let private: Value = private.json::<Value>().unwrap()["items"][0].clone();
    let no_follow = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_follow
        .get(s.url(&format!("/m/{}", html["id"].as_str().unwrap())))
        .send()
        .unwrap();
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&garage.endpoint(0)), "{location}");
    // The bucket answers with the type and disposition Shoebox would send: HTML, which is
    // not inert, as an attachment.
    let got = no_follow.get(&location).send().unwrap();
    assert_eq!(got.status(), 200);
    assert!(
        got.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"),
        "{:?}",
        got.headers()
    );
    assert_eq!(got.bytes().unwrap(), page);
    // Private files are served here, never redirected.
    let res = no_follow
        .get(s.url(&format!("/m/{}", private["id"].as_str().unwrap())))
        .bearer_auth(common::TOKEN)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// The crash test of `tests/crash.rs` with the blobs in the bucket: concurrent uploads (some
/// above 8 MiB, so multipart) and deletes, SIGKILLed at random moments. Every `201` is
/// there with its bytes after each restart, every acknowledged delete stays done, and at the
/// end `verify` (reading every object) and a `rebuild` from `records/` find a sound store.
#[test]
fn a_sigkill_during_uploads_to_the_bucket_loses_no_acknowledged_upload() {
    let Some(garage) = garage() else { return };
    let flags = blob_store(&garage);
    common::crash::crash_rounds(|| server(&garage, &[]), &flags, 4, 3, 24 << 20);
}

/// A store moves its blobs from its data directory to a bucket and back with
/// `shoebox migrate`: every record keeps its bytes, a second run copies nothing, and the
/// server started with the new setting serves everything.
#[test]
fn migrate_moves_the_blobs_to_the_bucket_and_back() {
    let Some(garage) = garage() else { return };
    let mut s = TestServer::start();
    let mut made = Vec::new();
    for i in 0..40u64 {
        let size = if i == 0 {
            17 << 20
        } else {
            1000 + 997 * i as usize
        };
        let data = common::bytes(size, 100 + i);
        made.push((
            upload(&s, &format!("f{i}.bin"), &data)["id"]
                .as_str()
                .unwrap()
                .to_owned(),
            sha256_hex(&data),
        ));
    }
    // A duplicate: one blob for two records.
    let dup = common::bytes(1000 + 997, 101);
    made.push((
        upload(&s, "dup.bin", &dup)["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        sha256_hex(&dup),
    ));
    let blobs_on_disk = s.blob_count();
    assert_eq!(blobs_on_disk, 40);
    s.terminate();
    let to = blob_store(&garage);
    let (url, key, secret) = (&to[1], &to[3], &to[5]);
    let data_dir = s.data_dir.clone();
    let migrate = |flags: &[&str]| {
        let mut args = vec!["migrate"];
        args.extend_from_slice(flags);
        run_cli(&args, &data_dir)
    };
    let to_bucket = [
        "--to-blob-store",
        url,
        "--to-blob-store-access-key-id",
        key,
        "--to-blob-store-secret-access-key",
        secret,
    ];
    let (code, out) = migrate(&to_bucket);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("40 blobs at the destination, verified (40 copied now"),
        "{out}"
    );
    let (code, out) = migrate(&to_bucket);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("(0 copied now, 0 bytes; 40 were there already)"),
        "a rerun copies nothing:\n{out}"
    );
    // Served from the bucket: the files under blobs/ are moved away to show it.
    let aside = s.data_dir.with_file_name("blobs-aside");
    std::fs::rename(s.data_dir.join("blobs"), &aside).unwrap();
    let mut b = TestServer::builder().data_dir(&s.data_dir);
    for a in &to {
        b = b.arg(a);
    }
    let mut in_bucket = b.start();
    for (id, hash) in &made {
        assert_eq!(&sha256_hex(&in_bucket.media_bytes(id)), hash);
    }
    in_bucket.terminate();
    // And back to the data directory.
    let mut back: Vec<&str> = vec!["--to-blob-store", "disk"];
    back.extend(to.iter().map(String::as_str));
    let (code, out) = migrate(&back);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("40 copied now"), "{out}");
    let s = s.restart();
    for (id, hash) in &made {
        assert_eq!(&sha256_hex(&s.media_bytes(id)), hash);
    }
    assert_eq!(s.blob_count(), 40);
    // Where the blobs already are is refused.
    let mut s = s;
    s.terminate();
    let (code, out) = migrate(&["--to-blob-store", "disk"]);
    assert_ne!(code, 0);
    assert!(out.contains("already are"), "{out}");
}

/// Blob store settings that cannot work are refused at start, naming the setting and never
/// the secret; so is a migration to nowhere. Nothing is written to the bucket.
#[test]
fn blob_store_settings_that_cannot_work_are_refused() {
    let Some(garage) = garage() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let good = format!(
        "s3://blobs?endpoint={}&region={}",
        garage.endpoint(0),
        garage.region()
    );
    let key = garage.key().id.clone();
    let refused: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![("SHOEBOX_BLOB_STORE", "blobs".into())], "s3://"),
        (
            vec![("SHOEBOX_BLOB_STORE", "s3://a/b".into())],
            "one bucket",
        ),
        (
            vec![("SHOEBOX_BLOB_STORE", "s3://blobs?endpoint=ftp://x".into())],
            "endpoint",
        ),
        (vec![("SHOEBOX_BLOB_STORE", good.clone())], "needs a key"),
        (
            vec![("SHOEBOX_BLOB_REDIRECT", "1".into())],
            "SHOEBOX_BLOB_STORE",
        ),
        (
            vec![
                ("SHOEBOX_BLOB_STORE", good.clone()),
                ("SHOEBOX_BLOB_STORE_ACCESS_KEY_ID", key.clone()),
                (
                    "SHOEBOX_BLOB_STORE_SECRET_ACCESS_KEY",
                    "not-the-secret-0123456789".into(),
                ),
            ],
            "SHOEBOX_BLOB_STORE (s3://blobs at",
        ),
        (
            vec![
                (
                    "SHOEBOX_BLOB_STORE",
                    good.replace("s3://blobs", "s3://no-such-bucket"),
                ),
                ("SHOEBOX_BLOB_STORE_ACCESS_KEY_ID", key.clone()),
                (
                    "SHOEBOX_BLOB_STORE_SECRET_ACCESS_KEY",
                    garage.key().secret.clone(),
                ),
            ],
            "no-such-bucket",
        ),
    ];
    for (envs, want) in refused {
        let mut b = TestServer::builder().data_dir(&data);
        for (k, v) in &envs {
            b = b.env(k, v);
        }
        let (status, out) = b.start_expecting_failure();
        assert!(!status.success(), "{envs:?} was accepted");
        assert!(out.contains(want), "{envs:?}: {out}");
        assert!(
            !out.contains("not-the-secret"),
            "the secret is never shown: {out}"
        );
    }
    let (code, out) = run_cli(&["migrate", "--to-blob-store", "ftp://x"], &data);
    assert_ne!(code, 0);
    assert!(out.contains("--to-blob-store"), "{out}");
}

/// Shoebox's own S3 API over a store whose blobs are in a Garage bucket: boto3's objects
/// scenario (puts, ranged gets, heads, copies, listings, deletes) and a 40 MiB multipart
/// upload, whose bytes then read back whole through the REST API.
#[test]
fn the_s3_api_works_on_blobs_in_a_bucket() {
    use common::clients::{boto, boto3, passed};
    if !boto3() {
        return;
    }
    let Some(garage) = garage() else { return };
    let s = server(&garage, &["--s3-port", "0"]);
    let key = s.s3_key("app", "admin");
    passed(&boto("objects", &s.s3_url(), &key, &["--bucket", "photos"]));
    assert!(common::all_records(&s).is_empty());
    assert_eq!(s.status()["blobs"]["count"], 0, "deleted objects' blobs go");
    let dir = tempfile::tempdir().unwrap();
    let bytes = common::bytes(40 * 1024 * 1024 + 5, 12);
    let file = dir.path().join("video.bin");
    std::fs::write(&file, &bytes).unwrap();
    let v = boto(
        "multipart",
        &s.s3_url(),
        &key,
        &["--file", file.to_str().unwrap()],
    );
    passed(&v);
    let want = sha256_hex(&bytes);
    let records = common::all_records(&s);
    let video = records
        .iter()
        .find(|r| r["hash"] == want.as_str())
        .expect("the multipart upload is a record");
    assert_eq!(
        sha256_hex(&s.media_bytes(video["id"].as_str().unwrap())),
        want
    );
    assert_eq!(s.blob_count(), 0, "no blob is a file in the data directory");
}

/// A resumable (tus) upload into a store whose blobs are in a bucket: its chunks wait on the
/// data disk across a restart, and the last one makes media whose bytes are in the bucket.
#[test]
fn a_resumable_upload_ends_in_the_bucket() {
    let Some(garage) = garage() else { return };
    let s = server(&garage, &[]);
    let data = common::bytes(12 << 20, 13);
    let tus = |s: &TestServer, method: Method, path: &str| {
        s.authed(method, path).header("Tus-Resumable", "1.0.0")
    };
    let res = tus(&s, Method::POST, "/api/uploads")
        .header("Upload-Length", data.len().to_string())
        .header("Upload-Metadata", "filename dmlkZW8uYmlu")
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let path = location.trim_start_matches(&s.base).to_owned();
    let half = data.len() / 2;
    let patch = |s: &TestServer, from: usize, to: usize| {
        tus(s, Method::PATCH, &path)
            .header("Upload-Offset", from.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .body(data[from..to].to_vec())
            .send()
            .unwrap()
    };
    assert_eq!(patch(&s, 0, half).status(), 204);
    let s = s.restart();
    let res = patch(&s, half, data.len());
    assert_eq!(res.status(), 204);
    let id = res.headers()["shoebox-media-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(sha256_hex(&s.media_bytes(&id)), sha256_hex(&data));
    assert_eq!(s.blob_count(), 0, "no blob is a file in the data directory");
    assert_eq!(s.status()["blobs"]["count"], 1);
}

/// A sized variant of a picture whose bytes are in the bucket: made from a copy in `tmp/`,
/// which goes once the variant is made.
#[test]
fn variants_are_made_from_blobs_in_the_bucket() {
    let Some(garage) = garage() else { return };
    let s = server(&garage, &[]);
    let picture = common::png(640, 480, |x, y| [(x % 256) as u8, (y % 256) as u8, 90]);
    let item = upload(&s, "p.png", &picture);
    let id = item["id"].as_str().unwrap();
    let res = s.get(&format!("/m/{id}?w=160&format=png")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    let png = res.bytes().unwrap();
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(width, 160, "a PNG 160 pixels wide");
    assert!(
        s.tmp_entries().is_empty(),
        "the copy in tmp/ is gone: {:?}",
        s.tmp_entries()
    );
    assert_eq!(s.blob_count(), 0);
}

/// A backup of a store whose blobs are in the bucket carries the bytes, read from the
/// bucket; it restores into a data directory of its own, blobs and all, which verifies.
#[test]
fn a_backup_reads_the_bucket_and_restores_to_a_disk_store() {
    let Some(garage) = garage() else { return };
    let s = server(&garage, &[]);
    let mut made = Vec::new();
    for (i, size) in [(0u64, 9 << 20), (1, 70_000), (2, 0)] {
        let data = common::bytes(size, 200 + i);
        made.push((upload(&s, &format!("b{i}.bin"), &data), sha256_hex(&data)));
    }
    let dir = tempfile::tempdir().unwrap();
    let r = crate::restored_from_backup(&s, dir.path());
    assert_eq!(r.blob_count(), 3, "the restored blobs are files of its own");
    for (item, hash) in &made {
        assert_eq!(
            &sha256_hex(&r.media_bytes(item["id"].as_str().unwrap())),
            hash
        );
    }
}

//! Black-box tests of the operator commands: verify (and --repair), gc and rebuild.

mod common;

use std::time::Duration;

use common::{all_records, bytes, run_cli, sha256_hex, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

#[test]
fn verify_finds_a_flipped_byte_a_missing_blob_and_an_orphan_and_repair_fixes_them() {
    let mut s = TestServer::start();
    let flipped = s.upload("flipped.bin", &bytes(5000, 1), &[("title", "will rot")]);
    let missing = s.upload("missing.bin", &bytes(6000, 2), &[]);
    let healthy = s.upload("healthy.bin", &bytes(7000, 3), &[("collection", "keep")]);
    assert!(s.terminate().success());
    let dir = s.data_dir.clone();

    let (code, out) = run_cli(&["verify"], &dir);
    assert_eq!(code, 0, "a fresh store verifies clean:\n{out}");
    assert!(out.contains("result: ok"), "{out}");

    // Damage: one flipped byte, one deleted blob, one orphan blob.
    let flipped_hash = flipped["hash"].as_str().unwrap();
    let path = s.blob_path(flipped_hash);
    let mut data = std::fs::read(&path).unwrap();
    data[100] ^= 0x01;
    std::fs::write(&path, &data).unwrap();
    let missing_hash = missing["hash"].as_str().unwrap();
    std::fs::remove_file(s.blob_path(missing_hash)).unwrap();
    let orphan = bytes(3000, 4);
    let orphan_hash = sha256_hex(&orphan);
    let orphan_path = s.blob_path(&orphan_hash);
    std::fs::create_dir_all(orphan_path.parent().unwrap()).unwrap();
    std::fs::write(&orphan_path, &orphan).unwrap();

    let (code, out) = run_cli(&["verify"], &dir);
    assert_eq!(code, 1, "damage fails verify:\n{out}");
    assert!(
        out.contains(&format!("DAMAGE corrupt blob {flipped_hash}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("DAMAGE missing blob {missing_hash}")),
        "{out}"
    );
    assert!(
        out.contains(missing["id"].as_str().unwrap()),
        "names the record:\n{out}"
    );
    assert!(out.contains(&format!("orphan blob {orphan_hash}")), "{out}");

    let (code, out) = run_cli(&["verify", "--repair"], &dir);
    assert_eq!(code, 0, "repair leaves a clean store:\n{out}");
    assert!(out.contains("after repair: checked 1 records"), "{out}");
    // Nothing deleted silently: the bytes and records are in quarantine/ and named.
    assert!(dir.join("quarantine/blobs").join(flipped_hash).is_file());
    for item in [&flipped, &missing] {
        let id = item["id"].as_str().unwrap();
        assert!(out.contains(&format!("moved media {id}")), "{out}");
        let kept: Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("quarantine/records/{id}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(kept["hash"], item["hash"]);
    }

    let (code, out) = run_cli(&["verify"], &dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("orphan blob"),
        "orphans are reported but are not damage:\n{out}"
    );
    let (code, out) = run_cli(&["gc", "--grace", "0s"], &dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("removed 1 orphan blobs"), "{out}");
    assert!(!orphan_path.exists());
    let (code, out) = run_cli(&["verify"], &dir);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("orphan"), "{out}");

    let s = s.restart();
    let ids: Vec<Value> = all_records(&s).iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids, vec![healthy["id"].clone()]);
    let status: Value = s
        .authed(Method::GET, "/api/status")
        .send()
        .unwrap()
        .json()
        .unwrap_or(json!({}));
    if let Some(last) = status["last_verify"].as_str() {
        assert!(last.ends_with(" ok"), "{last}");
    }
}

#[test]
fn gc_spares_young_orphans() {
    let mut s = TestServer::start();
    s.upload("a.bin", b"used", &[]);
    assert!(s.terminate().success());
    let orphan = b"fresh orphan";
    let path = s.blob_path(&sha256_hex(orphan));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, orphan).unwrap();
    let (code, out) = run_cli(&["gc", "--grace", "1h"], &s.data_dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("removed 0 orphan blobs") && out.contains("left 1 orphans"),
        "{out}"
    );
    assert!(path.exists());
}

#[test]
fn gc_removes_resumable_uploads_past_their_expiry_and_keeps_younger_ones() {
    let mut s = TestServer::start();
    let start = |length: &str| {
        let res = s
            .authed(Method::POST, "/api/uploads")
            .header("tus-resumable", "1.0.0")
            .header("upload-length", length)
            .send()
            .unwrap();
        assert_eq!(res.status(), 201);
        let at = res.headers()["location"].to_str().unwrap().to_owned();
        at.rsplit('/').next().unwrap().to_owned()
    };
    let old = start("10");
    std::thread::sleep(Duration::from_millis(2100));
    let young = start("20");
    assert!(s.terminate().success());
    let uploads = s.data_dir.join("uploads");
    let (code, out) = run_cli(&["gc", "--upload-expiry", "2s"], &s.data_dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("removed 1 expired resumable uploads"), "{out}");
    let left = common::entries(&uploads);
    assert!(!left.iter().any(|n| n.starts_with(&old)), "{left:?}");
    assert!(left.contains(&format!("{young}.part")), "{left:?}");
    assert!(left.contains(&format!("{young}.json")), "{left:?}");
}

#[test]
fn rebuild_recreates_every_record_index_and_count_from_the_record_files() {
    let mut s = TestServer::start();
    let shared = bytes(4000, 10);
    s.upload(
        "one.png",
        &shared,
        &[
            ("title", "One"),
            ("tags", "a,b"),
            ("collection", "stories"),
            ("custom", r#"{"n": 1}"#),
        ],
    );
    s.upload(
        "two.bin",
        &shared,
        &[
            ("visibility", "private"),
            ("collection", "stories"),
            ("description", "twin"),
        ],
    );
    let edited = s.upload("three.txt", b"three", &[("alt", "x")]);
    let gone = s.upload("four.txt", b"four", &[]);
    let id = edited["id"].as_str().unwrap();
    let res = s
        .authed(Method::PATCH, &format!("/api/media/{id}"))
        .json(&json!({"title": "edited", "tags": ["z"]}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    s.delete_media(gone["id"].as_str().unwrap());
    let before = all_records(&s);
    assert_eq!(before.len(), 3);
    assert!(s.terminate().success());

    // Lose the whole database.
    std::fs::remove_dir_all(s.data_dir.join("meta")).unwrap();
    let (code, out) = run_cli(&["rebuild"], &s.data_dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("from 3 record files"), "{out}");
    assert!(out.contains("result: ok"), "{out}");

    let s = s.restart();
    assert_eq!(
        all_records(&s),
        before,
        "every record with every field, in the same order"
    );
    let stories: Value = s
        .authed(Method::GET, "/api/media?collection=stories")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stories["items"].as_array().unwrap().len(), 2);
    let public: Value = s
        .get("/api/media?collection=stories")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        public["items"].as_array().unwrap().len(),
        1,
        "visibility survives"
    );
    let tagged: Value = s.get("/api/media?tag=z").send().unwrap().json().unwrap();
    assert_eq!(tagged["items"][0]["id"], edited["id"]);
    // The shared blob's count came back as 2: deleting one record keeps the blob.
    let first = before.iter().find(|r| r["filename"] == "one.png").unwrap();
    let res = s
        .authed(
            Method::DELETE,
            &format!("/api/media/{}", first["id"].as_str().unwrap()),
        )
        .send()
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(s.blob_path(&sha256_hex(&shared)).is_file());
}

/// A database replaced with garbage: the commands refuse it and name `shoebox rebuild`,
/// moving nothing; the server rebuilds it from `records/` by itself and says so.
#[test]
fn a_damaged_database_is_reported_with_the_way_out_and_rebuilt_by_the_server() {
    let mut s = TestServer::start();
    let kept = s.upload("a.bin", b"precious", &[]);
    assert!(s.terminate().success());
    // Replace the database with garbage.
    let meta = s.data_dir.join("meta");
    std::fs::remove_dir_all(&meta).unwrap();
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(
        meta.join("conf"),
        b"\xff\xfe garbage that is not a sled config",
    )
    .unwrap();
    std::fs::write(meta.join("db"), bytes(100_000, 5)).unwrap();
    for command in [&["verify"][..], &["gc", "--grace", "0s"]] {
        let (code, out) = run_cli(command, &s.data_dir);
        assert_eq!(code, 1, "{command:?}: {out}");
        assert!(out.contains("shoebox rebuild"), "{command:?}: {out}");
    }
    let archive = s.data_dir.with_file_name("backup.tar");
    let (code, out) = run_cli(
        &["backup", "--output", archive.to_str().unwrap()],
        &s.data_dir,
    );
    assert_eq!(
        code, 2,
        "a backup of a damaged database would be incomplete: {out}"
    );
    assert!(out.contains("shoebox rebuild"), "{out}");
    assert!(!archive.exists());
    assert!(s.blob_path(kept["hash"].as_str().unwrap()).is_file());

    let s = s.restart();
    assert!(
        s.output().contains("rebuilding it from records/"),
        "{}",
        s.output()
    );
    let records = all_records(&s);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["id"], kept["id"]);
    let aside: Vec<String> = common::entries(&s.data_dir)
        .into_iter()
        .filter(|n| n.starts_with("meta.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged database is kept aside");
}

#[test]
fn commands_refuse_while_the_server_runs() {
    let s = TestServer::start();
    let (code, out) = run_cli(&["verify"], &s.data_dir);
    assert_eq!(code, 2);
    assert!(out.contains("in use by another"), "{out}");
}

/// The background scrub re-hashes blobs: one whose bytes the disk changed is found within the
/// scrub's interval, quarantined, and answered with `500 blob_damaged` instead of being served
/// with a year of immutable caching. Uploading the same file again puts whole bytes back.
#[test]
fn the_scrub_quarantines_a_damaged_blob_and_stops_serving_it() {
    let s = TestServer::builder()
        .arg("--scrub-interval")
        .arg("1s")
        .start();
    let original = bytes(300_000, 41);
    let damaged = s.upload("damaged.bin", &original, &[]);
    let intact = s.upload("intact.bin", &bytes(5_000, 42), &[]);
    let hash = damaged["hash"].as_str().unwrap().to_owned();
    let mut flipped = original.clone();
    flipped[150_000] ^= 0x01;
    std::fs::write(s.blob_path(&hash), &flipped).unwrap();

    common::eventually(
        "the scrub finds the flipped byte",
        Duration::from_secs(30),
        || {
            s.authed(Method::GET, &format!("/f/{hash}"))
                .send()
                .unwrap()
                .status()
                == 500
        },
    );
    for path in [
        format!("/f/{hash}"),
        format!("/m/{}", damaged["id"].as_str().unwrap()),
    ] {
        let res = s.authed(Method::GET, &path).send().unwrap();
        assert_eq!(common::error_code(res, 500), "blob_damaged", "{path}");
    }
    assert_eq!(
        s.media_bytes(intact["id"].as_str().unwrap()),
        bytes(5_000, 42)
    );
    // The blob is refused from the moment it is found; its move to quarantine, made durable,
    // and the count follow.
    let counted = || {
        s.metrics()
            .lines()
            .any(|l| l.starts_with("shoebox_scrub_damaged_total 1"))
    };
    common::eventually(
        "the damaged blob is quarantined and counted",
        Duration::from_secs(30),
        counted,
    );
    assert!(!s.blob_path(&hash).exists());
    assert_eq!(
        std::fs::read(s.data_dir.join("quarantine/blobs").join(&hash)).unwrap(),
        flipped
    );
    let status: Value = s.status();
    assert_eq!(status["scrub"]["damaged_blobs"], 1, "{status}");
    assert_eq!(status["scrub"]["enabled"], true);
    common::eventually(
        "a pass finishes and is shown",
        Duration::from_secs(30),
        || {
            let status: Value = s.status();
            status["scrub"]["last_pass"]["finished_at"].is_string()
        },
    );

    // The same file uploaded again puts whole bytes under the name.
    s.upload("again.bin", &original, &[]);
    let res = s.authed(Method::GET, &format!("/f/{hash}")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().unwrap().to_vec(), original);
}

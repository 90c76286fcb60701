//! The counts on the status page and in the metrics come from counters that the database keeps
//! in the transactions that change the records, not from a scan: through uploads, duplicates,
//! edits, deletes, crashes and restarts they must say what the records say.

mod common;

use std::collections::BTreeMap;

use common::{all_records, bytes, run_cli, sha256_hex, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

const KINDS: [&str; 5] = ["image", "video", "audio", "document", "other"];

/// The totals as the records, listed through the API, imply them.
fn truth(s: &TestServer) -> Value {
    let records = all_records(s);
    let mut blobs: BTreeMap<String, u64> = BTreeMap::new();
    let mut kinds: BTreeMap<&str, u64> = KINDS.iter().map(|k| (*k, 0)).collect();
    let mut bytes = 0;
    for r in &records {
        let size = r["size"].as_u64().unwrap();
        bytes += size;
        blobs.insert(r["hash"].as_str().unwrap().to_owned(), size);
        *kinds.get_mut(r["kind"].as_str().unwrap()).unwrap() += 1;
    }
    json!({
        "media": {"count": records.len(), "bytes": bytes, "by_kind": kinds},
        "blobs": {"count": blobs.len(), "bytes": blobs.values().sum::<u64>()},
    })
}

/// The totals as `/api/status` says them, checked against `/metrics`.
fn counted(s: &TestServer) -> Value {
    let v = s.status();
    let text = s.metrics();
    let metric = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in the metrics:\n{text}"))
    };
    assert_eq!(metric("shoebox_media"), v["media"]["count"]);
    assert_eq!(metric("shoebox_media_bytes"), v["media"]["bytes"]);
    assert_eq!(metric("shoebox_blobs"), v["blobs"]["count"]);
    assert_eq!(metric("shoebox_blob_bytes"), v["blobs"]["bytes"]);
    for kind in KINDS {
        let name = format!("shoebox_media_by_kind{{kind=\"{kind}\"}}");
        assert_eq!(metric(&name), v["media"]["by_kind"][kind], "{kind}");
    }
    json!({"media": v["media"], "blobs": v["blobs"]})
}

fn assert_counts(s: &TestServer, when: &str) -> Value {
    let truth = truth(s);
    assert_eq!(counted(s), truth, "{when}");
    truth
}

#[test]
fn status_and_metrics_count_what_the_records_hold_across_writes_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut s = TestServer::builder().data_dir(&data_dir).start();
    let zero = assert_counts(&s, "an empty store");
    assert_eq!(zero["media"]["count"], 0);

    let photo = bytes(3000, 1);
    let a = s.upload("a.png", &photo, &[]);
    s.upload("b.mp4", &bytes(5000, 2), &[]);
    s.upload("c.mp3", &bytes(700, 3), &[]);
    s.upload("d.pdf", &bytes(900, 4), &[]);
    let e = s.upload("e.bin", &bytes(100, 5), &[]);
    let copy = s.upload("copy.png", &photo, &[]);
    assert_eq!(a["hash"], copy["hash"], "deduplicated");
    let v = assert_counts(&s, "after uploads and a duplicate");
    assert_eq!(v["media"]["count"], 6);
    assert_eq!(v["blobs"]["count"], 5, "the duplicate is stored once");
    for kind in KINDS {
        assert!(v["media"]["by_kind"][kind].as_u64().unwrap() >= 1, "{v}");
    }

    // A blob file that no record uses is not counted: verify lists it, gc removes it.
    let orphan = bytes(400, 99);
    let path = s.blob_path(&sha256_hex(&orphan));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &orphan).unwrap();
    assert_counts(&s, "with an orphan blob file");

    let del = |s: &TestServer, id: &Value| {
        let res = s
            .authed(
                Method::DELETE,
                &format!("/api/media/{}", id.as_str().unwrap()),
            )
            .send()
            .unwrap();
        assert_eq!(res.status(), 204);
    };
    del(&s, &a["id"]);
    let v = assert_counts(&s, "after deleting one user of a shared blob");
    assert_eq!(v["blobs"]["count"], 5);
    del(&s, &e["id"]);
    let res = s
        .authed(
            Method::PATCH,
            &format!("/api/media/{}", copy["id"].as_str().unwrap()),
        )
        .json(&json!({"title": "edited", "tags": ["x"]}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let v = assert_counts(&s, "after deleting a blob's last user and an edit");
    assert_eq!(v["blobs"]["count"], 4);

    s.terminate();
    let mut s = s.restart();
    assert_counts(&s, "after a clean restart");

    s.upload("f.png", &bytes(1234, 6), &[]);
    s.upload("g.png", &photo, &[]);
    s.kill();
    let s = s.restart();
    assert_counts(&s, "after a SIGKILL");

    // An upload cut off after its record reached the database, whose bytes the next start
    // finds incomplete: rolled back, and the counts with it.
    drop(s);
    let mut crashed = TestServer::builder()
        .data_dir(&data_dir)
        .env("SHOEBOX_CRASH_AT", "upload-after-metadata")
        .start();
    let cut = bytes(2000, 7);
    let res = crashed
        .authed(Method::POST, "/api/media?filename=cut.png")
        .body(cut.clone())
        .send();
    assert!(res.is_err(), "never acknowledged: {res:?}");
    crashed.kill();
    let blob = crashed.blob_path(&sha256_hex(&cut));
    std::fs::write(&blob, &cut[..100]).unwrap();
    let mut s = crashed.restart();
    assert!(s.output().contains("rolled back"), "{}", s.output());
    let v = assert_counts(&s, "after a start rolled an upload back");
    assert_eq!(v["media"]["count"], 6);

    // The counters agree with a full scan too.
    s.terminate();
    let (code, out) = run_cli(&["verify"], &data_dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("orphan blob"), "{out}");
}

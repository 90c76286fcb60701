//! `records/` is the truth and the database an index over it: damage to the database, a
//! rebuild killed part-way and a disk that something else filled never cost a record or a
//! blob. Each case runs the real binary on a real data directory.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::mount::Mount;
use common::{all_records, bytes, run_cli, sha256_hex, TestServer};
use reqwest::blocking::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

/// What a record must still say: its hash, and the title and custom field of its edit.
type Expected = BTreeMap<String, (String, String)>;

/// `n` uploads in requests of ten, each then edited (a title and a custom field), and a clean
/// stop.
fn seed(data_dir: &Path, n: usize, seed: u64) -> Expected {
    let mut s = TestServer::builder().data_dir(data_dir).start();
    let mut expected = Expected::new();
    for batch in 0..n.div_ceil(10) {
        let mut form = Form::new();
        for i in batch * 10..((batch + 1) * 10).min(n) {
            let data = bytes(2000 + i * 7, seed * 100_000 + i as u64);
            form = form.part("file", Part::bytes(data).file_name(format!("f{i}.bin")));
        }
        for item in s.upload_form(form) {
            let id = item["id"].as_str().unwrap().to_owned();
            let title = format!("edited {id}");
            let res = s
                .authed(Method::PATCH, &format!("/api/media/{id}"))
                .json(&json!({"title": title, "custom": {"ref": format!("ext-{id}")}}))
                .send()
                .unwrap();
            assert_eq!(res.status(), 200);
            expected.insert(id, (item["hash"].as_str().unwrap().to_owned(), title));
        }
    }
    assert!(s.terminate().success());
    expected
}

/// Every expected record is listed with its edit, and its bytes hash to its name.
fn assert_complete(s: &TestServer, expected: &Expected, case: &str) {
    let listed: BTreeMap<String, Value> = all_records(s)
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r))
        .collect();
    assert_eq!(
        listed.len(),
        expected.len(),
        "{case}: every record is listed\n{}",
        s.output()
    );
    for (id, (hash, title)) in expected {
        let r = &listed[id];
        assert_eq!(r["hash"].as_str(), Some(hash.as_str()), "{case}: {id}");
        assert_eq!(r["title"].as_str(), Some(title.as_str()), "{case}: {id}");
        assert_eq!(
            r["custom"]["ref"].as_str(),
            Some(format!("ext-{id}").as_str()),
            "{case}: {id}"
        );
        assert_eq!(
            &sha256_hex(&s.media_bytes(id)),
            hash,
            "{case}: bytes of {id}"
        );
    }
}

fn record_files(data_dir: &Path) -> usize {
    common::entries(&data_dir.join("records"))
        .iter()
        .filter(|n| n.ends_with(".json"))
        .count()
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Offsets of the database file's non-zero bytes, so that a flip lands on data.
fn data_offsets(db: &[u8]) -> Vec<usize> {
    db.iter()
        .enumerate()
        .filter(|(_, b)| **b != 0)
        .map(|(i, _)| i)
        .collect()
}

/// The damage a fault round inflicted on `meta/db`, each on its own copy of the store.
fn damage(case: &str, data_dir: &Path) {
    let db_path = data_dir.join("meta/db");
    let mut db = std::fs::read(&db_path).unwrap();
    let offsets = data_offsets(&db);
    let pick = |k: usize| offsets[(offsets.len() / 17 * (k + 3) + k * 7919) % offsets.len()];
    match case {
        "one flipped byte" => db[pick(0)] ^= 0x55,
        "16 flipped bytes" => {
            for k in 0..16 {
                db[pick(k)] ^= 0xff;
            }
        }
        "64 KiB zeroed" => {
            let start = pick(1).min(db.len().saturating_sub(64 << 10));
            db[start..start + (64 << 10)].fill(0);
        }
        "cut in half" => db.truncate(db.len() / 2),
        "meta/ deleted" => {
            std::fs::remove_dir_all(data_dir.join("meta")).unwrap();
            return;
        }
        other => panic!("unknown case {other}"),
    }
    std::fs::write(&db_path, db).unwrap();
}

#[test]
fn a_damaged_database_costs_no_record_and_no_blob() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let expected = seed(&base, 100, 1);
    assert_eq!(common::blob_files(&base), 100);
    for (n, case) in [
        "one flipped byte",
        "16 flipped bytes",
        "64 KiB zeroed",
        "cut in half",
        "meta/ deleted",
    ]
    .into_iter()
    .enumerate()
    {
        let data_dir = dir.path().join(format!("case{n}"));
        copy_dir(&base, &data_dir);
        damage(case, &data_dir);

        // A check before any start reports what it finds and moves nothing.
        let (code, out) = run_cli(&["verify"], &data_dir);
        eprintln!("{case}: verify exits {code}");
        assert!(
            code == 0 || (code == 1 && out.contains("shoebox rebuild")),
            "{case}: verify reports damage with the way out ({code}):\n{out}"
        );
        if matches!(case, "cut in half" | "meta/ deleted") {
            assert_eq!(
                code, 1,
                "{case}: a database that lost everything is damaged:\n{out}"
            );
        }
        let (code, out) = run_cli(&["gc", "--grace", "0s"], &data_dir);
        assert!(code == 0 || code == 1, "{case}: gc ({code}):\n{out}");
        assert_eq!(record_files(&data_dir), 100, "{case}: no record file moved");
        assert!(!data_dir.join("quarantine/records").exists(), "{case}");
        assert_eq!(
            common::blob_files(&data_dir),
            100,
            "{case}: gc kept every blob"
        );

        // The server starts with every record, rebuilding the database when it must.
        let mut s = TestServer::builder().data_dir(&data_dir).start();
        assert_complete(&s, &expected, case);
        let status: Value = s.status();
        if case == "meta/ deleted" {
            assert!(
                status["start"]["rebuilt"]["reason"].is_string(),
                "{case}: {status}"
            );
        }
        assert!(s.terminate().success());
        let (code, out) = run_cli(&["verify"], &data_dir);
        assert_eq!(code, 0, "{case}: the store verifies:\n{out}");
        let (code, out) = run_cli(&["gc", "--grace", "0s"], &data_dir);
        assert_eq!(code, 0, "{case}: gc runs:\n{out}");
        assert!(out.contains("removed 0 orphan blobs"), "{case}: {out}");
        assert_eq!(common::blob_files(&data_dir), 100, "{case}");
        let s = TestServer::builder().data_dir(&data_dir).start();
        assert_complete(&s, &expected, case);
    }
}

/// A rebuild builds beside the database in use and swaps it in only when complete: killed at
/// any moment, the next start (or a second rebuild) finds every record.
#[test]
fn a_rebuild_killed_at_any_moment_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let mut s = TestServer::builder().data_dir(&base).start();
    let mut hashes = BTreeMap::new();
    for batch in 0..30u64 {
        let mut form = Form::new();
        for i in 0..100u64 {
            let data = bytes(300, batch * 1000 + i);
            form = form.part(
                "file",
                Part::bytes(data).file_name(format!("{batch}-{i}.bin")),
            );
        }
        for item in s.upload_form(form) {
            hashes.insert(
                item["id"].as_str().unwrap().to_owned(),
                item["hash"].as_str().unwrap().to_owned(),
            );
        }
    }
    assert!(s.terminate().success());
    let total = hashes.len();

    // How long a whole rebuild takes here, to kill the others across it.
    let timing = dir.path().join("timing");
    copy_dir(&base, &timing);
    let started = Instant::now();
    let (code, out) = run_cli(&["rebuild"], &timing);
    assert_eq!(code, 0, "{out}");
    let whole = started.elapsed();
    eprintln!("a rebuild of {total} records takes {whole:?}");

    for k in 1..=7u32 {
        let data_dir = dir.path().join(format!("kill{k}"));
        copy_dir(&base, &data_dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_shoebox"))
            .env_clear()
            .args(["rebuild", "--data-dir"])
            .arg(&data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole * k / 8);
        let _ = child.kill();
        let _ = child.wait();
        if k % 2 == 0 {
            let (code, out) = run_cli(&["rebuild"], &data_dir);
            assert_eq!(code, 0, "kill {k}: a second rebuild:\n{out}");
        }
        let s = TestServer::builder().data_dir(&data_dir).start();
        let listed: BTreeMap<String, String> = all_records(&s)
            .into_iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_owned(),
                    r["hash"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            listed.len(),
            total,
            "kill {k} of 7 at {:?}: every record",
            whole * k / 8
        );
        assert!(listed == hashes, "kill {k}: every record as it was");
        assert!(
            !data_dir.join("meta.building").exists() && !data_dir.join("meta.new").exists(),
            "kill {k}: the leftovers are settled"
        );
    }
}

fn patch_title(s: &TestServer, id: &str, title: &str) -> u16 {
    s.authed(Method::PATCH, &format!("/api/media/{id}"))
        .json(&json!({"title": title}))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// A disk that something else fills to the last block: edits and deletes keep working on the
/// space Shoebox held back, the shutdown is clean, a start on the full disk works, and once
/// the outside file is gone every record is there.
#[test]
fn a_disk_filled_by_something_else_breaks_nothing() {
    let Some(m) = Mount::ext4(160) else { return };
    let data_dir = m.path().join("data");
    let mut s = TestServer::builder()
        .data_dir(&data_dir)
        .arg("--disk-reserve")
        .arg("8MiB")
        .start();
    let mut kept = BTreeMap::new();
    for i in 0..20u64 {
        let data = bytes(100_000, 500 + i);
        let item = s.upload(&format!("f{i}.bin"), &data, &[]);
        kept.insert(item["id"].as_str().unwrap().to_owned(), sha256_hex(&data));
    }
    let status: Value = s.status();
    assert_eq!(status["disk"]["space_reserve_held"], true, "{status}");

    let filler = m.fill();
    let ids: Vec<String> = kept.keys().cloned().collect();
    let mut edited = BTreeMap::new();
    for id in &ids[..10] {
        let code = patch_title(&s, id, "edited while full");
        assert!(code == 200 || code == 507, "edit while full: {code}");
        if code == 200 {
            edited.insert(id.clone(), "edited while full");
        }
    }
    for id in &ids[10..15] {
        let code = s
            .authed(Method::DELETE, &format!("/api/media/{id}"))
            .send()
            .unwrap()
            .status()
            .as_u16();
        assert!(code == 204 || code == 507, "delete while full: {code}");
        if code == 204 {
            kept.remove(id);
        }
    }
    assert!(
        edited.len() >= 5,
        "the held space keeps edits working: {} of 10\n{}",
        edited.len(),
        s.output()
    );
    let res = s.upload_raw_response("late.bin", &bytes(50_000, 9), &[]);
    assert_eq!(res.status(), 507);
    assert!(s.terminate().success(), "a clean stop on a full disk");

    // A start on the still-full disk opens the database as it is.
    let s = TestServer::builder().data_dir(&data_dir).start();
    assert_eq!(all_records(&s).len(), kept.len(), "{}", s.output());
    drop(s);

    std::fs::remove_file(&filler).unwrap();
    let _ = std::fs::remove_file(filler.with_extension("more"));
    let mut s = TestServer::builder().data_dir(&data_dir).start();
    let listed = all_records(&s);
    assert_eq!(listed.len(), kept.len(), "{}", s.output());
    for r in &listed {
        let id = r["id"].as_str().unwrap();
        assert_eq!(r["hash"].as_str(), Some(kept[id].as_str()));
        if let Some(title) = edited.get(id) {
            assert_eq!(r["title"].as_str(), Some(*title));
        }
        assert_eq!(sha256_hex(&s.media_bytes(id)), kept[id]);
    }
    s.upload("after.bin", b"space again", &[]);
    assert!(s.terminate().success());
    let (code, out) = run_cli(&["verify"], &data_dir);
    assert_eq!(code, 0, "{out}");
}

/// A write error (here, the filesystem turning read-only as ext4 does on an I/O error) puts
/// the server in a failing state: health fails, and an upload is refused before its body is
/// read, so a client that retries cannot fill a failing disk. Reads keep working.
#[test]
fn a_failing_disk_refuses_uploads_before_their_body() {
    use std::io::Write;
    let Some(m) = Mount::ext4_with(64, "errors=remount-ro") else {
        return;
    };
    let data_dir = m.path().join("data");
    let s = TestServer::builder().data_dir(&data_dir).start();
    let kept = s.upload("kept.bin", b"written before the fault", &[]);
    let trigger: PathBuf = format!("/sys/fs/ext4/{}/trigger_fs_error", m.device_name()).into();
    if std::fs::write(&trigger, "shoebox test\n").is_err() {
        common::unavailable("this kernel cannot inject an ext4 error");
        return;
    }
    let res = s.upload_raw_response("after.bin", b"refused", &[]);
    assert!(res.status().is_server_error(), "{}", res.status());
    let health = s.get("/api/health").send().unwrap();
    assert_eq!(health.status(), 503);

    // 100 MiB announced, 64 KiB sent: the answer comes without the rest.
    let mut conn = s.raw();
    write!(
        conn,
        "POST /api/media?filename=big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        common::TOKEN,
        100u64 << 20
    )
    .unwrap();
    conn.write_all(&vec![7u8; 64 << 10]).unwrap();
    let answer = common::read_answer(&mut conn);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("disk_failing"), "{answer}");

    let id = kept["id"].as_str().unwrap();
    assert_eq!(s.media_bytes(id), b"written before the fault");
}

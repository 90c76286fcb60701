//! Black-box tests of backup, restore and import.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{all_records, bytes, run_cli, sha256_hex, TestServer, TOKEN};
use reqwest::Method;
use serde_json::Value;

fn fetch_backup(s: &TestServer, path: &std::path::Path) {
    let mut res = s.authed(Method::GET, "/api/backup").send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-tar");
    let mut file = std::fs::File::create(path).unwrap();
    res.copy_to(&mut file).unwrap();
}

fn by_id(records: Vec<Value>) -> BTreeMap<String, Value> {
    records
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r))
        .collect()
}

#[test]
fn a_backup_taken_during_uploads_restores_to_an_identical_store() {
    let s = TestServer::start();
    for i in 0..12 {
        let fields = [
            ("title", format!("t{i}")),
            ("tags", "a,b".into()),
            ("collection", "c".into()),
            ("custom", format!(r#"{{"n": {i}}}"#)),
        ];
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.upload(
            &format!("f{i}.bin"),
            &bytes(1000 + i * 50_000, i as u64),
            &fields,
        );
    }
    s.upload(
        "private.bin",
        &bytes(3000, 77),
        &[("visibility", "private")],
    );
    let before = by_id(all_records(&s));
    assert_eq!(s.get("/api/backup").send().unwrap().status(), 401);
    // A resumable upload in progress is not media yet: backups leave it out.
    let res = s
        .authed(Method::POST, "/api/uploads")
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "100000")
        .send()
        .unwrap();
    let partial = res.headers()["location"].to_str().unwrap().to_owned();
    let res = s
        .authed(Method::PATCH, &partial)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(bytes(60_000, 5))
        .send()
        .unwrap();
    assert_eq!(res.status(), 204);

    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("backup.tar");
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // Uploads and deletes keep landing while the backup streams (bounded).
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && n < 500 {
                let item = s.upload("during.bin", &bytes(20_000, 1000 + n), &[]);
                if n.is_multiple_of(3) {
                    let id = item["id"].as_str().unwrap();
                    s.authed(Method::DELETE, &format!("/api/media/{id}"))
                        .send()
                        .unwrap();
                }
                n += 1;
            }
        });
        fetch_backup(&s, &archive);
        stop.store(true, Ordering::SeqCst);
    });

    let restored_dir = dir.path().join("restored");
    let (code, out) = run_cli(&["restore", archive.to_str().unwrap()], &restored_dir);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_cli(&["verify"], &restored_dir);
    assert_eq!(code, 0, "{out}");

    assert!(
        common::entries(&restored_dir.join("uploads")).is_empty(),
        "no partial upload in the restore"
    );
    let r = TestServer::builder().data_dir(&restored_dir).start();
    let after = by_id(all_records(&r));
    for (id, record) in &before {
        let restored = after
            .get(id)
            .unwrap_or_else(|| panic!("{id} missing from the restore"));
        let mut a = record.clone();
        let mut b = restored.clone();
        for v in [&mut a, &mut b] {
            v.as_object_mut().unwrap().remove("url");
        }
        assert_eq!(a, b, "every field identical");
        let body = r.media_bytes(id);
        assert_eq!(
            sha256_hex(&body),
            record["hash"].as_str().unwrap(),
            "every byte identical"
        );
    }
    // Uploads that raced the backup are wholly in (bytes and all) or wholly out.
    for (id, record) in &after {
        let body = r.media_bytes(id);
        assert_eq!(sha256_hex(&body), record["hash"].as_str().unwrap());
    }
    let status: Value = s.status();
    assert!(status["last_backup"].as_str().is_some());
}

#[test]
fn restore_refuses_a_store_a_truncated_archive_and_a_flipped_byte() {
    let mut s = TestServer::start();
    s.upload("a.bin", &bytes(200_000, 1), &[("title", "a")]);
    s.upload("b.bin", &bytes(300_000, 2), &[]);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("backup.tar");
    fetch_backup(&s, &archive);
    let good = std::fs::read(&archive).unwrap();

    // Into a directory that holds a store.
    assert!(s.terminate().success());
    let (code, out) = run_cli(&["restore", archive.to_str().unwrap()], &s.data_dir);
    assert_ne!(code, 0);
    assert!(out.contains("not empty"), "{out}");

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("without its manifest", good[..good.len() - 4096].to_vec()),
        ("flipped byte", {
            let mut v = good.clone();
            // Inside the first blob's data (after the FORMAT and first record entries).
            let at = good.len() / 3;
            v[at] ^= 0x40;
            v
        }),
    ];
    for (what, data) in cases {
        let bad = dir.path().join(format!("{what}.tar"));
        std::fs::write(&bad, &data).unwrap();
        let target = dir
            .path()
            .join(format!("target-{}", what.replace(' ', "-")));
        let (code, out) = run_cli(&["restore", bad.to_str().unwrap()], &target);
        assert_ne!(code, 0, "{what} must be refused:\n{out}");
        assert!(
            out.contains("not a valid Shoebox backup") || out.contains("does not"),
            "{what}: {out}"
        );
        assert!(
            common::entries(&target).is_empty(),
            "{what}: nothing left behind: {:?}",
            common::entries(&target)
        );
    }

    // The good archive restores, into a fresh disk with lost+found.
    let target = dir.path().join("good");
    std::fs::create_dir_all(target.join("lost+found")).unwrap();
    let (code, out) = run_cli(&["restore", archive.to_str().unwrap()], &target);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("restored 2 records and 2 blobs"), "{out}");
}

#[test]
fn the_command_line_backup_reads_a_stopped_store_or_fetches_from_a_running_one() {
    let mut s = TestServer::start();
    s.upload("a.bin", &bytes(5000, 1), &[]);
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("cli.tar");

    let (code, out) = run_cli(
        &["backup", "--output", out_file.to_str().unwrap()],
        &s.data_dir,
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("--url"),
        "says what to do while the server runs: {out}"
    );

    let fetched = dir.path().join("fetched.tar");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shoebox"))
        .env_clear()
        .env("SHOEBOX_ADMIN_TOKEN", TOKEN)
        .args([
            "backup",
            "--url",
            &s.base,
            "--output",
            fetched.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 records, 1 blobs"));

    assert!(s.terminate().success());
    let (code, out) = run_cli(
        &["backup", "--output", out_file.to_str().unwrap()],
        &s.data_dir,
    );
    assert_eq!(code, 0, "{out}");
    for archive in [&out_file, &fetched] {
        let target = dir.path().join(format!(
            "r-{}",
            archive.file_name().unwrap().to_string_lossy()
        ));
        let (code, out) = run_cli(&["restore", archive.to_str().unwrap()], &target);
        assert_eq!(code, 0, "{out}");
    }
}

#[test]
fn import_adopts_a_folder_serves_old_urls_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = dir.path().join("uploads");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("cat.jpg", bytes(3000, 1)),
        ("2023/summer trip/beach day.png", bytes(4000, 2)),
        ("2023/été/crème brûlée.txt", b"d\xc3\xa9licieux".to_vec()),
        ("a/b/c/d/e/f/deep file (1).pdf", b"%PDF-1.4 tiny".to_vec()),
        ("copies/cat again.jpg", bytes(3000, 1)),
    ];
    for (path, data) in &files {
        let p = uploads.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
    }
    let outside = dir.path().join("secret.txt");
    std::fs::write(&outside, b"must not be imported").unwrap();
    std::os::unix::fs::symlink(&outside, uploads.join("escape.txt")).unwrap();
    // A hard link names the outside file's very bytes from inside the folder.
    std::fs::hard_link(&outside, uploads.join("linked.txt")).unwrap();

    let data_dir = dir.path().join("data");
    let map = dir.path().join("map.csv");
    let run = || {
        run_cli(
            &[
                "import",
                uploads.to_str().unwrap(),
                "--collection",
                "legacy",
                "--url-prefix",
                "/uploads",
                "--map",
                map.to_str().unwrap(),
            ],
            &data_dir,
        )
    };
    let (code, out) = run();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("imported 5, already there 0, skipped 2"),
        "{out}"
    );
    assert!(
        out.contains("escape.txt") && out.contains("leaves the imported folder"),
        "{out}"
    );
    assert!(
        out.contains("linked.txt") && out.contains("other hard links"),
        "{out}"
    );
    let mapping = std::fs::read_to_string(&map).unwrap();
    for (path, _) in &files {
        assert!(
            mapping.contains(path),
            "the mapping names {path}:\n{mapping}"
        );
    }
    assert!(!mapping.contains("must not be imported"));

    let (code, out) = run();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("imported 0, already there 5"),
        "re-running adds nothing: {out}"
    );
    assert!(
        !out.contains("settled the writes a crash interrupted"),
        "the first import closed the store cleanly, its record files durable: {out}"
    );

    let s = TestServer::builder().data_dir(&data_dir).start();
    let listed: Value = s
        .get("/api/media?collection=legacy&limit=100")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 5);
    for (path, data) in &files {
        let encoded: String = path
            .split('/')
            .map(|seg| {
                seg.replace(' ', "%20")
                    .replace('(', "%28")
                    .replace(')', "%29")
            })
            .collect::<Vec<_>>()
            .join("/");
        for url in [format!("/uploads/{path}"), format!("/uploads/{encoded}")] {
            let res = s.get(&url).send().unwrap();
            assert_eq!(res.status(), 200, "{url}");
            assert_eq!(res.bytes().unwrap().as_ref(), data.as_slice(), "{url}");
        }
    }
    assert_eq!(s.get("/uploads/escape.txt").send().unwrap().status(), 404);
    assert_eq!(s.get("/uploads/nothing.jpg").send().unwrap().status(), 404);
    // The mapping's new URLs work too.
    let mut reader = csv_rows(&mapping);
    let row = reader.find(|r| r[0] == "cat.jpg").unwrap();
    assert_eq!(row[1], "/uploads/cat.jpg");
    let res = s.get(&row[2]).send().unwrap();
    assert_eq!(res.status(), 200);
}

fn csv_rows(text: &str) -> impl Iterator<Item = Vec<String>> + '_ {
    csv::Reader::from_reader(text.as_bytes())
        .into_records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect::<Vec<_>>())
        .collect::<Vec<_>>()
        .into_iter()
}

/// A restore killed at any moment can be run again into the same directory: it clears what
/// the killed one left, or finds the store it had already finished.
#[test]
fn a_killed_restore_can_be_run_again() {
    let s = TestServer::start();
    let mut form = reqwest::blocking::multipart::Form::new();
    for i in 0..100u64 {
        form = form.part(
            "file",
            reqwest::blocking::multipart::Part::bytes(bytes(40_000, 300 + i))
                .file_name(format!("f{i}.bin")),
        );
    }
    let uploaded = s.upload_form(form);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("backup.tar");
    fetch_backup(&s, &archive);
    drop(s);

    let timing = dir.path().join("timing");
    let started = Instant::now();
    let (code, out) = run_cli(&["restore", archive.to_str().unwrap()], &timing);
    assert_eq!(code, 0, "{out}");
    let whole = started.elapsed();

    for k in 1..=6u32 {
        let target = dir.path().join(format!("kill{k}"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shoebox"))
            .env_clear()
            .args(["restore", "--data-dir"])
            .arg(&target)
            .arg(&archive)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole * k / 7);
        let _ = child.kill();
        let _ = child.wait();
        let (code, out) = run_cli(&["restore", archive.to_str().unwrap()], &target);
        assert!(
            code == 0 || (out.contains("not empty") && target.join("FORMAT").is_file()),
            "kill {k}: a second restore clears the first, or finds it complete:\n{out}"
        );
        let s = TestServer::builder().data_dir(&target).start();
        assert_eq!(all_records(&s).len(), uploaded.len(), "kill {k}");
    }
}

/// An archive is outside input: a record whose type was crafted in it is stored cleaned, as a
/// client's declared type is, and served by the same rules.
#[test]
fn a_restored_record_cannot_smuggle_a_content_type() {
    use sha2::Digest;
    let mut s = TestServer::start();
    let item = s.upload("notes.txt", b"plain words", &[]);
    let id = item["id"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("backup.tar");
    fetch_backup(&s, &archive);
    assert!(s.terminate().success());

    // Rewrite the record's type, and the manifest's sum for it.
    let crafted_type = "TEXT/HTML; charset=\"><script>alert(1)</script>";
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    let mut input = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    for entry in input.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        entries.push((path, data));
    }
    let record_path = format!("shoebox-backup/records/{id}.json");
    let mut record: Value =
        serde_json::from_slice(&entries.iter().find(|(p, _)| *p == record_path).unwrap().1)
            .unwrap();
    record["content_type"] = Value::from(crafted_type);
    let record_bytes = serde_json::to_vec_pretty(&record).unwrap();
    let sum = hex::encode(sha2::Sha256::digest(&record_bytes));
    for (path, data) in entries.iter_mut() {
        if *path == record_path {
            *data = record_bytes.clone();
        } else if path.ends_with("MANIFEST.json") {
            let mut manifest: Value = serde_json::from_slice(data).unwrap();
            for f in manifest["files"].as_array_mut().unwrap() {
                if f["path"] == record_path.as_str() {
                    f["sha256"] = Value::from(sum.clone());
                    f["size"] = Value::from(record_bytes.len());
                }
            }
            *data = serde_json::to_vec_pretty(&manifest).unwrap();
        }
    }
    let crafted = dir.path().join("crafted.tar");
    let mut out = tar::Builder::new(std::fs::File::create(&crafted).unwrap());
    for (path, data) in &entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        out.append_data(&mut h, path, data.as_slice()).unwrap();
    }
    out.into_inner().unwrap();

    let target = dir.path().join("restored");
    let (code, out) = run_cli(&["restore", crafted.to_str().unwrap()], &target);
    assert_eq!(code, 0, "{out}");
    let s = TestServer::builder().data_dir(&target).start();
    let restored: Value = s
        .authed(Method::GET, &format!("/api/media/{id}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(restored["content_type"], "text/html", "{restored}");
    let res = s.authed(Method::GET, &format!("/m/{id}")).send().unwrap();
    let h = res.headers();
    assert!(!h["content-type"].to_str().unwrap().contains("script"));
    assert!(h["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
}

/// A small archive cannot make a restore hold or write much more than it carries: a sparse
/// entry that would expand to 256 MiB is refused as it is met, and nothing is left behind.
#[test]
fn a_restore_refuses_an_entry_that_would_expand() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("sparse.tar");
    let mut out = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    let format = br#"{"format": "shoebox-backup", "version": 1, "created_at": "2026-01-01T00:00:00Z", "instance": "x"}"#;
    let mut h = tar::Header::new_gnu();
    h.set_size(format.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    out.append_data(&mut h, "shoebox-backup/FORMAT.json", &format[..])
        .unwrap();
    // A record entry of 10 bytes of data that claims 256 MiB once its holes are filled.
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_size(10);
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.set_real_size(256 << 20);
        gnu.sparse[0].set_offset((256 << 20) - 10);
        gnu.sparse[0].set_length(10);
    }
    h.set_mode(0o644);
    h.set_path("shoebox-backup/records/01jd8x4w9k6t2m3n4p5q6r7s8t.json")
        .unwrap();
    h.set_cksum();
    out.append(&h, &b"0123456789"[..]).unwrap();
    out.into_inner().unwrap();
    assert!(std::fs::metadata(&archive).unwrap().len() < 16 << 10);

    let target = dir.path().join("restored");
    let started = Instant::now();
    let (code, out) = run_cli(&["restore", archive.to_str().unwrap()], &target);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("not a plain file"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(common::entries(&target).is_empty(), "nothing left behind");
}

/// Collections with settings, empty ones too, come back from a backup as they were, file for
/// file.
#[test]
fn a_backup_and_restore_keep_the_collections() {
    let mut s = TestServer::start();
    s.upload("a.bin", &bytes(1000, 1), &[("collection", "stories")]);
    for (name, public) in [
        ("Empty%20One", true),
        ("stories", true),
        ("%E6%97%A5%E6%9C%AC", false),
    ] {
        let res = s
            .authed(Method::PUT, &format!("/api/collections/{name}"))
            .json(&serde_json::json!({ "public": public }))
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let before: Value = s.get("/api/collections").send().unwrap().json().unwrap();
    assert_eq!(before["items"].as_array().unwrap().len(), 3);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("backup.tar");
    fetch_backup(&s, &archive);
    assert!(s.terminate().success());

    let target = dir.path().join("restored");
    let (code, out) = run_cli(&["restore", archive.to_str().unwrap()], &target);
    assert_eq!(code, 0, "{out}");
    let files = |dir: &std::path::Path| {
        let mut names = common::entries(&dir.join("collections"));
        names.sort();
        names
    };
    assert_eq!(files(&target), files(&s.data_dir));
    assert_eq!(files(&target).len(), 3);
    let restored = TestServer::builder().data_dir(&target).start();
    let after: Value = restored
        .get("/api/collections")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(after, before);
}

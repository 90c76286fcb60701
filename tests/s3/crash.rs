//! Crash safety of S3 writes: boto3 puts objects one after another (every fourth in parts)
//! while the server is SIGKILLed at a random moment; after the restart every object whose `200` boto3 saw is
//! there, whole, and `verify` is clean. A put that replaces an object, killed between its
//! steps, leaves one whole version.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::boto::{boto, boto3, passed, server};
use crate::common::{self, all_records, run_cli, TestServer};

/// The objects S3 put, by key: (hash, size).
fn objects(s: &TestServer) -> std::collections::HashMap<String, Value> {
    all_records(s)
        .into_iter()
        .map(|r| (r["key"].as_str().unwrap().to_owned(), r))
        .collect()
}

#[test]
fn every_acknowledged_s3_put_survives_a_sigkill() {
    if !boto3() {
        return;
    }
    let (rounds, mut rng) = common::crash_plan("S3 crash test", 3);
    let mut s = server();
    let key = s.s3_key("writer", "upload");
    let mut acked: Vec<(String, String)> = Vec::new();
    for round in 0..rounds {
        let mut child = Command::new("python3")
            .current_dir(common::clients::dir())
            .arg("s3-boto.py")
            .arg("writer")
            .args(["--endpoint", &s.s3_url()])
            .args(["--key", &key.0, "--secret", &key.1])
            .args(["--count", "5000", "--multipart-every", "4"])
            .env_remove("AWS_CA_BUNDLE")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run the boto3 writer");
        let stdout = child.stdout.take().unwrap();
        let (first, first_rx) = std::sync::mpsc::channel();
        let lines = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
                .filter_map(|v| {
                    let _ = first.send(());
                    Some((
                        v["acked"].as_str()?.to_owned(),
                        v["sha256"].as_str()?.to_owned(),
                    ))
                })
                .collect::<Vec<_>>()
        });
        // The kill comes at a random moment of the writing, counted from its first
        // acknowledged put: Python and boto3 take a while to start on a busy machine.
        let _ = first_rx.recv_timeout(Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(rng.range(100, 2000)));
        s.kill();
        // The writer fails on its next request and stops; bounded all the same.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        let new = lines.join().unwrap();
        assert!(
            !new.is_empty() || round > 0,
            "the writer put nothing before the kill"
        );
        // Each round writes the same keys again: the latest acknowledged bytes count.
        for (k, h) in new {
            acked.retain(|(key, _)| *key != k);
            acked.push((k, h));
        }
        s = s.restart();
        let found = objects(&s);
        for (k, h) in &acked {
            let r = found
                .get(k)
                .unwrap_or_else(|| panic!("round {round}: acknowledged {k} is gone"));
            assert_eq!(
                r["hash"],
                h.as_str(),
                "round {round}: {k} is not what was put"
            );
            let id = r["id"].as_str().unwrap();
            assert_eq!(common::sha256_hex(&s.media_bytes(id)), *h, "{k}: bytes");
        }
        s.kill();
        let (code, out) = run_cli(&["verify"], &s.data_dir);
        assert_eq!(code, 0, "round {round}: verify after the crash:\n{out}");
        s = s.restart();
    }
}

#[test]
fn a_replacing_put_killed_between_its_steps_leaves_one_whole_version() {
    if !boto3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let old = common::bytes(70_000, 1);
    let new = common::bytes(90_000, 2);
    let (old_file, new_file) = (dir.path().join("old.bin"), dir.path().join("new.bin"));
    std::fs::write(&old_file, &old).unwrap();
    std::fs::write(&new_file, &new).unwrap();
    for point in ["put-replaced-record-file", "put-replaced-metadata"] {
        let data = dir.path().join(point);
        let s = TestServer::builder()
            .data_dir(&data)
            .arg("--s3-port")
            .arg("0")
            .start();
        let key = s.s3_key("app", "upload");
        let put = |s: &TestServer, file: &std::path::Path| {
            boto(
                "put-file",
                &s.s3_url(),
                &key,
                &["--file", file.to_str().unwrap(), "--object-key", "doc.bin"],
            )
        };
        passed(&put(&s, &old_file));
        let id = objects(&s)["doc.bin"]["id"].as_str().unwrap().to_owned();
        drop(s);
        let s = TestServer::builder()
            .data_dir(&data)
            .arg("--s3-port")
            .arg("0")
            .env("SHOEBOX_CRASH_AT", point)
            .start();
        let v = put(&s, &new_file);
        assert_ne!(
            v["ok"], true,
            "{point}: the put was acknowledged though the server died"
        );
        drop(s);
        let s = TestServer::builder()
            .data_dir(&data)
            .arg("--s3-port")
            .arg("0")
            .start();
        let found = objects(&s);
        let r = &found["doc.bin"];
        assert_eq!(r["id"], id.as_str(), "{point}: the object keeps its id");
        let bytes = s.media_bytes(&id);
        assert!(bytes == old || bytes == new, "{point}: a torn object");
        assert_eq!(r["hash"], common::sha256_hex(&bytes), "{point}");
        drop(s);
        let (code, out) = run_cli(&["verify"], &data);
        assert_eq!(code, 0, "{point}: verify:\n{out}");
        // And it can be replaced again.
        let s = TestServer::builder()
            .data_dir(&data)
            .arg("--s3-port")
            .arg("0")
            .start();
        passed(&put(&s, &new_file));
        assert_eq!(s.media_bytes(&id), new);
    }
}

#[test]
fn acknowledged_parts_survive_a_sigkill_and_complete_after_the_restart() {
    if !boto3() {
        return;
    }
    let mut s = server();
    let key = s.s3_key("parts", "upload");
    let dir = tempfile::tempdir().unwrap();
    let bytes = common::bytes(12 * 1024 * 1024 + 9, 77);
    let file = dir.path().join("parts.bin");
    std::fs::write(&file, &bytes).unwrap();
    let args = [
        "--file",
        file.to_str().unwrap(),
        "--object-key",
        "parts.bin",
    ];
    let v = boto("parts", &s.s3_url(), &key, &args);
    passed(&v);
    // Every part was acknowledged; the server dies before the completion.
    s.kill();
    let s = s.restart();
    let etags = v["etags"].to_string();
    let mut more = args.to_vec();
    more.extend([
        "--upload-id",
        v["upload_id"].as_str().unwrap(),
        "--etags",
        &etags,
    ]);
    let done = boto("parts", &s.s3_url(), &key, &more);
    passed(&done);
    assert_eq!(done["sha256"], common::sha256_hex(&bytes));
    assert!(common::entries(&s.data_dir.join("uploads/multipart")).is_empty());
}

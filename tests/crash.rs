//! The crash test: concurrent uploaders (and deleters) against the real binary, SIGKILLed at
//! random moments, restarted each time. Every acknowledged upload must come back with its exact
//! bytes (for a photo, the stripped bytes its `201` named), every acknowledged delete must stay deleted, nothing half-written may be visible, and
//! `tmp/` must be empty after each start. `SHOEBOX_CRASH_ROUNDS` sets the number of kills (a
//! longer soak), and `SHOEBOX_CRASH_SEED` the seed a failed run printed; the default keeps CI
//! well under two minutes. The load and its checks are in `common/crash.rs`, which the
//! cluster tests run with the blobs in a bucket.

mod common;

use std::collections::BTreeSet;

use common::crash::crash_rounds;
use common::{all_records, bytes, run_cli, sha256_hex, TestServer};
use reqwest::Method;
use serde_json::Value;

#[test]
fn sigkill_under_concurrent_load_never_loses_an_acknowledged_upload() {
    crash_rounds(TestServer::start, &[], 8, 4, 4 << 20);
}

/// Many small uploads at once spend most of their time in the durable tail, where the fsyncs
/// of one step run side by side and those of concurrent uploads share journal commits: a kill
/// lands between those steps for several uploads at a time. Each one is either acknowledged
/// and whole, or absent; and the record files never point at a blob that is not there (the
/// final `verify`, which also checks every record has its file).
#[test]
fn sigkill_amid_many_small_concurrent_uploads_keeps_every_acknowledged_one() {
    crash_rounds(TestServer::start, &[], 6, 12, 64 << 10);
}

/// Starts a server that aborts its next upload once the database holds the record (flushed),
/// while its files' fsyncs may still be running (the caller cuts the files as a power cut
/// could have left them); uploads `data` to it and returns the id the record got (read from
/// `records/`, since the client never hears back).
fn upload_cut_off_after_the_database(data_dir: &std::path::Path, data: &[u8]) -> String {
    let before = common::entries(&data_dir.join("records"));
    let mut s = TestServer::builder()
        .data_dir(data_dir)
        .env("SHOEBOX_CRASH_AT", "upload-after-metadata")
        .start();
    let res = s
        .authed(Method::POST, "/api/media?filename=cut.bin")
        .body(data.to_vec())
        .send();
    assert!(res.is_err(), "the upload is never acknowledged: {res:?}");
    s.kill();
    let after = common::entries(&data_dir.join("records"));
    let new: Vec<_> = after.iter().filter(|n| !before.contains(n)).collect();
    assert_eq!(new.len(), 1, "one new record file: {new:?}");
    new[0].trim_end_matches(".json").to_owned()
}

/// A power cut can leave an upload's record in the database while its files never reached
/// the disk, or only part of them did. Each case is staged with the real binary (aborted at
/// that step) and the files cut as the disk may have kept them; the next start must keep the
/// upload whose bytes are complete, roll back the one whose bytes are not, and leave a store
/// that verifies. A blob a crash left behind is never reused for new uploads of its bytes.
#[test]
fn a_crash_between_the_database_and_the_disk_is_settled_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut s = TestServer::builder().data_dir(&data_dir).start();
    let before = bytes(100_000, 1);
    let acked = s.upload("before.bin", &before, &[]);
    s.terminate();

    // Complete bytes, torn record file.
    let whole = bytes(300_000, 2);
    let whole_id = upload_cut_off_after_the_database(&data_dir, &whole);
    std::fs::write(data_dir.join(format!("records/{whole_id}.json")), b"{\"sch").unwrap();
    // Only part of the bytes reached the disk.
    let partial = bytes(300_000, 3);
    let partial_id = upload_cut_off_after_the_database(&data_dir, &partial);
    let blob_path = |data: &[u8]| common::blob_path(&data_dir, &sha256_hex(data));
    let partial_blob = blob_path(&partial);
    std::fs::write(&partial_blob, &partial[..4096]).unwrap();
    // A blob of an upload that never reached the database, cut short too.
    let later = bytes(50_000, 4);
    let later_blob = blob_path(&later);
    std::fs::create_dir_all(later_blob.parent().unwrap()).unwrap();
    std::fs::write(&later_blob, &later[..100]).unwrap();

    let s = TestServer::builder().data_dir(&data_dir).start();
    assert!(
        s.output()
            .contains("settled the writes a crash interrupted"),
        "{}",
        s.output()
    );
    let ids: BTreeSet<String> = all_records(&s)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = [acked["id"].as_str().unwrap(), &whole_id]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        ids, expected,
        "the complete upload stays, the partial one is rolled back"
    );
    assert!(!ids.contains(&partial_id));
    for (id, data) in [
        (acked["id"].as_str().unwrap(), &before),
        (&whole_id, &whole),
    ] {
        let body = s.media_bytes(id);
        assert_eq!(sha256_hex(&body), sha256_hex(data), "bytes of {id}");
    }
    assert!(
        !partial_blob.exists(),
        "the partial blob went with its record"
    );
    // The same bytes uploaded again are stored whole, not matched to what the crash left.
    let again = s.upload("again.bin", &partial, &[]);
    let fresh = s.upload("later.bin", &later, &[]);
    for item in [&again, &fresh] {
        let id = item["id"].as_str().unwrap();
        let body = s.media_bytes(id);
        assert_eq!(sha256_hex(&body), item["hash"].as_str().unwrap());
    }
    drop(s);
    let (code, out) = run_cli(&["verify"], &data_dir);
    assert_eq!(code, 0, "the settled store verifies:\n{out}");
    let record: Value = serde_json::from_slice(
        &std::fs::read(data_dir.join(format!("records/{whole_id}.json"))).unwrap(),
    )
    .expect("the torn record file was rewritten");
    assert_eq!(record["hash"].as_str(), Some(sha256_hex(&whole).as_str()));
}

/// A rebuild after a crash (the database lost, so start-up could not settle anything) sets
/// aside the record file of an upload whose bytes never reached the disk whole, and keeps the
/// rest: the rebuilt store verifies.
#[test]
fn a_rebuild_sets_aside_record_files_whose_blob_a_crash_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut s = TestServer::builder().data_dir(&data_dir).start();
    let kept = s.upload("kept.bin", &bytes(40_000, 5), &[]);
    s.terminate();
    let cut = bytes(300_000, 6);
    let cut_id = upload_cut_off_after_the_database(&data_dir, &cut);
    let blob = common::blob_path(&data_dir, &sha256_hex(&cut));
    std::fs::write(&blob, &cut[..8192]).unwrap();
    std::fs::remove_dir_all(data_dir.join("meta")).unwrap();

    let (code, out) = run_cli(&["rebuild"], &data_dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("from 1 record files"), "{out}");
    assert!(out.contains("set aside record file"), "{out}");
    assert!(data_dir
        .join(format!("quarantine/records/{cut_id}.json"))
        .is_file());
    let s = TestServer::builder().data_dir(&data_dir).start();
    let ids: Vec<Value> = all_records(&s).iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids, vec![kept["id"].clone()]);
}

/// An upload is acknowledged once its blob and its record in the database are durable; its
/// record file, the copy `rebuild` reads, reaches the disk shortly after, many at a time. A
/// power cut in between can lose that file, or leave it empty or torn. Staged with the real
/// binary: three files uploaded in one request and acknowledged, the server SIGKILLed at once
/// (their records are still marked pending), the record files cut as the disk may have kept
/// them. The next start must rewrite each from the database; the store then verifies, and a
/// rebuild from the record files alone finds all three.
#[test]
fn record_files_a_crash_lost_after_the_acknowledgement_are_rewritten_at_the_next_start() {
    use reqwest::blocking::multipart::{Form, Part};
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut s = TestServer::builder().data_dir(&data_dir).start();
    let files: Vec<Vec<u8>> = (0..3)
        .map(|n| bytes(20_000 + n * 1000, 20 + n as u64))
        .collect();
    let mut form = Form::new();
    for (n, data) in files.iter().enumerate() {
        form = form.part(
            "file",
            Part::bytes(data.clone()).file_name(format!("f{n}.bin")),
        );
    }
    let items = s.upload_form(form);
    s.kill();

    let ids: Vec<String> = items
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let record_file = |id: &str| data_dir.join(format!("records/{id}.json"));
    std::fs::remove_file(record_file(&ids[0])).unwrap();
    std::fs::write(record_file(&ids[1]), b"").unwrap();
    let whole = std::fs::read(record_file(&ids[2])).unwrap();
    std::fs::write(record_file(&ids[2]), &whole[..whole.len() / 2]).unwrap();

    let mut s = TestServer::builder().data_dir(&data_dir).start();
    assert!(
        s.output()
            .contains("settled the writes a crash interrupted"),
        "{}",
        s.output()
    );
    for (item, data) in items.iter().zip(&files) {
        let id = item["id"].as_str().unwrap();
        assert_eq!(
            sha256_hex(&s.media_bytes(id)),
            sha256_hex(data),
            "bytes of {id}"
        );
        let file: Value = serde_json::from_slice(&std::fs::read(record_file(id)).unwrap())
            .expect("the record file was rewritten whole");
        for field in ["id", "hash", "size", "filename", "created_at"] {
            assert_eq!(file[field], item[field], "{field} of {id}");
        }
    }
    s.terminate();
    let (code, out) = run_cli(&["verify"], &data_dir);
    assert_eq!(code, 0, "the settled store verifies:\n{out}");

    std::fs::remove_dir_all(data_dir.join("meta")).unwrap();
    let (code, out) = run_cli(&["rebuild"], &data_dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("from 3 record files"), "{out}");
    let s = TestServer::builder().data_dir(&data_dir).start();
    let mut rebuilt: Vec<String> = all_records(&s)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    rebuilt.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(rebuilt, expected);
}

/// A resumable upload stopped at each step of a chunk and of its completion: what the next
/// start shows is what was acknowledged, the client resumes from there, and the finished
/// upload becomes one record, never two.
#[test]
fn a_resumable_upload_stopped_at_each_step_resumes_and_becomes_one_record() {
    for (point, acknowledged) in [
        // The chunk's bytes are on disk, the offset not yet recorded: they are dropped.
        ("tus-chunk-synced", false),
        // The offset is recorded, the 204 not sent: the bytes count.
        ("tus-offset-saved", true),
        // The record is made, the upload does not say so yet: the record is found again.
        ("tus-media-created", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let data = bytes(300_000, 11);
        let head = &data[..100_000];
        let s = TestServer::builder().data_dir(&data_dir).start();
        let tus = |s: &TestServer, m: Method, path: &str| {
            s.authed(m, path).header("tus-resumable", "1.0.0")
        };
        let res = tus(&s, Method::POST, "/api/uploads")
            .header("upload-length", data.len().to_string())
            .header("upload-metadata", "filename Y3V0LmJpbg==")
            .send()
            .unwrap();
        let at = res.headers()["location"].to_str().unwrap().to_owned();
        let patch = |s: &TestServer, offset: usize, body: &[u8]| {
            tus(s, Method::PATCH, &at)
                .header("upload-offset", offset.to_string())
                .header("content-type", "application/offset+octet-stream")
                .body(body.to_vec())
                .send()
        };
        assert_eq!(patch(&s, 0, head).unwrap().status(), 204);
        drop(s);
        let mut s = TestServer::builder()
            .data_dir(&data_dir)
            .env("SHOEBOX_CRASH_AT", point)
            .start();
        assert!(
            patch(&s, head.len(), &data[head.len()..]).is_err(),
            "{point}: the last chunk is never acknowledged"
        );
        s.kill();
        let s = TestServer::builder().data_dir(&data_dir).start();
        let res = tus(&s, Method::HEAD, &at).send().unwrap();
        assert_eq!(res.status(), 200, "{point}");
        let offset: usize = res.headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let media = if acknowledged {
            assert_eq!(offset, data.len(), "{point}");
            res.headers()["shoebox-media-id"]
                .to_str()
                .unwrap()
                .to_owned()
        } else {
            assert_eq!(offset, head.len(), "{point}: only what got its 204");
            let res = patch(&s, offset, &data[offset..]).unwrap();
            assert_eq!(res.status(), 204, "{point}");
            res.headers()["shoebox-media-id"]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert!(s.media_bytes(&media) == data, "{point}");
        let records = common::all_records(&s);
        assert_eq!(records.len(), 1, "{point}: one record, {records:?}");
        assert_eq!(records[0]["filename"], "cut.bin");
        assert!(
            common::entries(&data_dir.join("uploads"))
                .iter()
                .all(|n| n.ends_with(".json")),
            "{point}: the finished upload's bytes went into the blob"
        );
        drop(s);
        let (code, out) = common::run_cli(&["verify"], &data_dir);
        assert_eq!(code, 0, "{point}: {out}");
    }
}

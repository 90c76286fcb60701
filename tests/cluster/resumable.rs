//! Resumable uploads (tus) that any instance continues: their state in PostgreSQL, their bytes
//! as pieces in the bucket. The reference clients start an upload on one instance and finish
//! it on the other; two instances appending at one offset at once keep one chunk; an instance
//! that dies between sending a piece and acknowledging it loses nothing acknowledged, and
//! `gc` removes the piece it left.

use std::path::Path;

use reqwest::Method;
use shoebox::store::bucket::UPLOADS;

use crate::common::{self, sha256_hex, TestServer};
use crate::shared::Cluster;
use crate::tus_clients::{self, JsUpload, PyUpload};
use crate::tus_protocol::{header, Tus, ENDPOINT};

fn tus(s: &TestServer) -> Tus {
    Tus::new(&s.base, s.token.as_deref())
}

/// The path of an upload URL on whichever instance made it.
fn path_of(url: &str) -> String {
    url[url.find(ENDPOINT).expect("an upload URL")..].to_owned()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

/// tuspy sends the first 10 MiB to A; tus-js-client, given the upload's URL on B, asks B
/// where it stands and sends the rest there, in chunks of another size. The media is the
/// file, on both instances, and no piece is left in the bucket.
#[test]
fn an_upload_begun_on_one_instance_is_finished_on_the_other() {
    if !(tus_clients::tuspy() && tus_clients::tus_js_client()) {
        return;
    }
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let a = cluster.instance(0);
    let b = cluster.instance(1);
    let token = a.token.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = common::bytes(23 << 20, 21u64);
    let file = write(dir.path(), "both.bin", &data);

    let mut first = PyUpload::new(&file, &token);
    first.endpoint = Some(a.url(ENDPOINT));
    first.chunk_size = 4 << 20;
    first.stop_at = Some(10 << 20);
    first.metadata = serde_json::json!({"filename": "both.bin", "title": "Two instances"});
    let began = first.run();
    assert_eq!(began["outcome"], "stopped", "{began}");
    let url = began["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&a.base), "{url}");
    let path = path_of(&url);
    assert_eq!(
        tus(&b).offset(&path),
        10 << 20,
        "B sees what A acknowledged"
    );
    let waiting = b.status()["partial_uploads"].clone();
    assert_eq!(
        (waiting["count"].as_u64(), waiting["bytes"].as_u64()),
        (Some(1), Some(10 << 20)),
        "B counts A's upload: {waiting}"
    );
    assert_eq!(
        cluster.objects(UPLOADS).len(),
        3,
        "one piece per chunk (4 + 4 + 2 MiB)"
    );

    let mut rest = JsUpload::new(&file, &token);
    rest.upload_url = Some(b.url(&path));
    rest.chunk_size = 3 << 20;
    let done = rest.run();
    assert_eq!(done["outcome"], "success", "{done}");
    let id = done["mediaId"].as_str().expect("the media id").to_owned();

    for s in [&a, &b] {
        let got = s.media_bytes(&id);
        assert_eq!(got.len(), data.len());
        assert_eq!(sha256_hex(&got), sha256_hex(&data));
    }
    let record: serde_json::Value = a
        .authed(Method::GET, &format!("/api/media/{id}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(record["title"], "Two instances", "{record}");
    assert_eq!(record["hash"], sha256_hex(&data), "{record}");
    let finished = tus(&a).request(Method::GET, &path).send().unwrap();
    assert_eq!(finished.status(), 200, "A knows what the upload became");
    assert_eq!(
        cluster.objects(UPLOADS),
        Vec::<String>::new(),
        "the pieces went"
    );
    let status = b.status();
    assert_eq!(status["partial_uploads"]["count"], 0, "{status}");
}

/// Two PATCHes at one offset, one on each instance, at once: one is acknowledged, the other
/// refused, and the upload holds exactly the acknowledged chunk's bytes.
#[test]
fn two_instances_appending_at_one_offset_keep_one_chunk() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let a = cluster.instance(0);
    let b = cluster.instance(1);
    let (ta, tb) = (tus(&a), tus(&b));
    for round in 0..3u64 {
        let whole = 3 << 20;
        let path = ta.created(Some(whole), &[("filename", "race.bin")]);
        let ours = [
            common::bytes(1 << 20, 100 + round),
            common::bytes(1 << 20, 200 + round),
        ];
        let answers: Vec<_> = std::thread::scope(|scope| {
            let sent: Vec<_> = [(&ta, &ours[0]), (&tb, &ours[1])]
                .into_iter()
                .map(|(t, body)| scope.spawn(|| t.patch(&path, 0, body).status().as_u16()))
                .collect();
            sent.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won: Vec<usize> = (0..2).filter(|&i| answers[i] == 204).collect();
        assert_eq!(won.len(), 1, "exactly one is acknowledged: {answers:?}");
        let lost = answers[1 - won[0]];
        assert_eq!(lost, 409, "the other is refused: {answers:?}");
        assert_eq!(tb.offset(&path), 1 << 20);
        let rest = common::bytes(2 << 20, 50 + round);
        let res = ta.patched(&path, 1 << 20, &rest);
        let id = header(&res, "shoebox-media-id").expect("the media id");
        let mut expected = ours[won[0]].clone();
        expected.extend_from_slice(&rest);
        assert_eq!(sha256_hex(&b.media_bytes(&id)), sha256_hex(&expected));
    }
    assert_eq!(
        cluster.objects(UPLOADS),
        Vec::<String>::new(),
        "no refused piece stays"
    );
}

/// An instance dies after its piece reached the bucket but before the upload named it: the
/// chunk was never acknowledged, the other instance resumes from the acknowledged offset, and
/// `gc` removes the piece the crash left.
#[test]
fn a_crash_between_piece_and_acknowledgement_loses_nothing_acknowledged() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let b = cluster.instance(1);
    let a = cluster
        .builder(0)
        .env("SHOEBOX_CRASH_AT", "tus-piece-sent")
        .start();
    let data = common::bytes(5 << 20, 77);
    let path = tus(&b).created(Some(data.len() as u64), &[("filename", "crash.bin")]);
    tus(&b).patched(&path, 0, &data[..2 << 20]);

    // A sends the piece, then aborts before the upload names it.
    let cut = tus(&a)
        .patch_request(&path, 2 << 20, data[2 << 20..4 << 20].to_vec())
        .send();
    assert!(
        cut.as_ref().map_or(true, |r| r.status().is_server_error()),
        "the PATCH was never acknowledged: {:?}",
        cut.map(|r| r.status())
    );
    assert_eq!(
        tus(&b).offset(&path),
        2 << 20,
        "only the acknowledged bytes count"
    );
    assert_eq!(
        cluster.objects(UPLOADS).len(),
        2,
        "the acknowledged piece and the orphan"
    );

    let res = tus(&b).patched(&path, 2 << 20, &data[2 << 20..]);
    let id = header(&res, "shoebox-media-id").expect("the media id");
    assert_eq!(sha256_hex(&b.media_bytes(&id)), sha256_hex(&data));
    let orphans = cluster.objects(UPLOADS);
    assert_eq!(orphans.len(), 1, "the crash's piece: {orphans:?}");
    let (code, out) = cluster.cli(&["gc", "--grace", "1h"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        cluster.objects(UPLOADS).len(),
        1,
        "young pieces wait for their grace period"
    );
    let (code, out) = cluster.cli(&["gc", "--grace", "0s"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 orphan upload pieces"), "{out}");
    assert_eq!(cluster.objects(UPLOADS), Vec::<String>::new());
}

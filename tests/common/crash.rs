//! The crash test's load, shared by the test binaries that SIGKILL a server under it
//! (`tests/crash.rs` on the data disk, `tests/cluster` with blobs in a bucket): concurrent
//! uploaders and deleters, a ledger of what was acknowledged, and the checks after each
//! restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::Value;

use super::{all_records, bytes, run_cli, sha256_hex, Rng, TestServer};

#[derive(Default)]
struct Ledger {
    /// id → (sha256, size) of every upload that got a 201.
    acked: BTreeMap<String, (String, u64)>,
    /// ids whose delete got a 204.
    deleted: BTreeSet<String>,
    /// ids whose delete was sent; without a 204 it may or may not have happened.
    delete_sent: BTreeSet<String>,
}

/// A JPEG made by ImageMagick and tagged with a GPS position by exiftool, which every upload
/// of it loses before it is stored (see `tests/stripping.rs`); `None`, after saying so, when
/// those tools are not here.
fn tagged_photo() -> Option<Vec<u8>> {
    use super::tools::{self, Tool};
    if !tools::present(&[Tool::ImageMagick, Tool::Exiftool]) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.jpg");
    let target = path.to_str().unwrap();
    tools::run(
        "convert",
        &["-size", "64x48", "gradient:olive-plum", target],
    );
    tools::run(
        "exiftool",
        &[
            "-overwrite_original",
            "-GPSLatitude=51.5",
            "-GPSLatitudeRef=N",
            target,
        ],
    );
    std::fs::read(&path).ok()
}

/// `photo` with an application segment of random bytes after its start marker: a JPEG of its
/// own, whose stored (stripped) bytes differ from every other's.
fn distinct(photo: &[u8], noise: &[u8]) -> Vec<u8> {
    let mut out = photo[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE3]);
    out.extend_from_slice(&(noise.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(noise);
    out.extend_from_slice(&photo[2..]);
    out
}

fn uploader(
    base: &str,
    token: &str,
    seed: u64,
    max_size: usize,
    photo: Option<&[u8]>,
    ledger: &Mutex<Ledger>,
    stop: Instant,
) {
    let client = Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut rng = Rng(seed | 1);
    // Bounded: the server is killed long before either limit.
    for n in 0..10_000 {
        if Instant::now() > stop {
            return;
        }
        if n % 5 == 4 {
            let victim = {
                let l = ledger.lock().unwrap();
                let k = (rng.next() % 8) as usize;
                l.acked
                    .keys()
                    .rev()
                    .filter(|id| !l.deleted.contains(*id))
                    .nth(k)
                    .cloned()
            };
            if let Some(id) = victim {
                ledger.lock().unwrap().delete_sent.insert(id.clone());
                match client
                    .delete(format!("{base}/api/media/{id}"))
                    .bearer_auth(token)
                    .send()
                {
                    Ok(r) if r.status() == 204 => {
                        ledger.lock().unwrap().deleted.insert(id);
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
                continue;
            }
        }
        // Every third upload a photo, which is stripped of its GPS position between its staging
        // and its commit: the stored bytes are not the ones sent.
        let is_photo = photo.is_some() && n % 3 == 1;
        let (data, name) = match photo {
            Some(photo) if is_photo => {
                (distinct(photo, &bytes(64, rng.next())), format!("p{n}.jpg"))
            }
            _ => (bytes(rng.size(max_size), rng.next()), format!("f{n}.bin")),
        };
        let res = client
            .post(format!("{base}/api/media?filename={name}"))
            .bearer_auth(token)
            .body(data.clone())
            .send();
        match res {
            Ok(r) if r.status() == 201 => {
                let v: Value = match r.json() {
                    Ok(v) => v,
                    Err(_) => return, // killed while the body was in flight: not acknowledged
                };
                let item = &v["items"][0];
                let id = item["id"].as_str().unwrap().to_owned();
                assert_eq!(item["stripped"].is_array(), is_photo, "{item}");
                let stored = if is_photo {
                    assert_eq!(item["original_hash"].as_str().unwrap(), sha256_hex(&data));
                    assert!(item["stripped"].to_string().contains("gps"), "{item}");
                    item["hash"].as_str().unwrap().to_owned()
                } else {
                    assert_eq!(item["hash"].as_str().unwrap(), sha256_hex(&data));
                    sha256_hex(&data)
                };
                let size = item["size"].as_u64().unwrap();
                ledger.lock().unwrap().acked.insert(id, (stored, size));
            }
            Ok(r) => panic!("unexpected status {}", r.status()),
            Err(_) => return, // the server died
        }
    }
}

/// After a restart: every acknowledged upload is there (its bytes re-read and re-hashed when
/// `full`, or when it is new since the last check), every acknowledged delete stayed deleted,
/// and every visible record has whole bytes.
fn check(s: &TestServer, ledger: &Ledger, seen: &mut BTreeSet<String>, full: bool) {
    assert!(s.tmp_entries().is_empty(), "tmp/ is emptied at start-up");
    for (id, (hash, size)) in &ledger.acked {
        if ledger.deleted.contains(id) {
            let res = s
                .authed(Method::GET, &format!("/api/media/{id}"))
                .send()
                .unwrap();
            assert_eq!(
                res.status(),
                404,
                "an acknowledged delete of {id} came back"
            );
            continue;
        }
        let res = s
            .authed(Method::GET, &format!("/api/media/{id}"))
            .send()
            .unwrap();
        if ledger.delete_sent.contains(id) && res.status() == 404 {
            continue; // a delete that ran but whose answer the kill swallowed
        }
        assert_eq!(res.status(), 200, "acknowledged upload {id} is gone");
        let record: Value = res.json().unwrap();
        assert_eq!(record["hash"].as_str(), Some(hash.as_str()));
        assert_eq!(record["size"].as_u64(), Some(*size));
        if full || seen.insert(id.clone()) {
            let body = s.media_bytes(id);
            assert_eq!(&sha256_hex(&body), hash, "bytes of {id} changed");
        }
    }
    // Nothing half-written: every visible record's blob is whole (its length here, its hash by
    // `verify` at the end).
    for r in all_records(s) {
        let hash = r["hash"].as_str().unwrap();
        let res = s
            .client()
            .head(s.url(&format!("/f/{hash}")))
            .bearer_auth(s.token.clone().unwrap())
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
        let len: u64 = res.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            len,
            r["size"].as_u64().unwrap(),
            "blob of {} is not whole",
            r["id"]
        );
    }
}

/// Kills the server `rounds` times (`SHOEBOX_CRASH_ROUNDS` overrides) while `uploaders`
/// clients upload files of up to `max_size` bytes (and delete some), checking after each
/// restart and verifying the store at the end.
pub fn crash_rounds(
    start: impl FnOnce() -> TestServer,
    cli_flags: &[String],
    default_rounds: usize,
    uploaders: u64,
    max_size: usize,
) {
    // SHOEBOX_CRASH_SEED replays a failed run: the kill times and the uploads follow from it.
    let (rounds, mut rng) = super::crash_plan("crash test", default_rounds);
    let photo = tagged_photo();
    let ledger = Mutex::new(Ledger::default());
    let mut seen = BTreeSet::new();
    let mut s = start();
    for round in 0..rounds {
        let base = s.base.clone();
        let token = s.token.clone().unwrap();
        let kill_after = Duration::from_millis(rng.range(150, 1500));
        std::thread::scope(|scope| {
            for t in 0..uploaders {
                let (base, token, ledger) = (&base, &token, &ledger);
                let photo = photo.as_deref();
                let seed = rng.next() ^ t;
                scope.spawn(move || {
                    uploader(
                        base,
                        token,
                        seed,
                        max_size,
                        photo,
                        ledger,
                        Instant::now() + Duration::from_secs(30),
                    )
                });
            }
            std::thread::sleep(kill_after);
            s.kill();
        });
        s = s.restart();
        // A crash is no damage: the start settles what was in flight, and sets aside at most
        // the uploads in flight (each client has one at a time), never more.
        let status: Value = s.status();
        assert!(
            status["start"]["rebuilt"].is_null(),
            "round {round}: a crash made the start rebuild: {}",
            status["start"]
        );
        let settled = &status["start"]["settled"];
        let aside = settled["set_aside"].as_u64().unwrap_or(0)
            + settled["rolled_back"].as_u64().unwrap_or(0);
        assert!(
            aside <= uploaders,
            "round {round}: {aside} uploads set aside, more than the {uploaders} in flight"
        );
        let l = ledger.lock().unwrap();
        eprintln!(
            "round {round}: {} acknowledged uploads, {} deletes so far",
            l.acked.len(),
            l.deleted.len()
        );
        check(&s, &l, &mut seen, round + 1 == rounds);
    }
    assert!(
        !ledger.lock().unwrap().acked.is_empty(),
        "the load actually ran"
    );
    assert!(s.terminate().success());
    let cli = |command: &str| {
        let mut args = vec![command];
        args.extend(cli_flags.iter().map(String::as_str));
        run_cli(&args, &s.data_dir)
    };
    let (code, out) = cli("verify");
    assert_eq!(
        code, 0,
        "after all the crashes the store verifies (orphans allowed):\n{out}"
    );
    if cli_flags.iter().any(|f| f == "--database-url") {
        // Records in PostgreSQL: its commits are the truth, with no records/ to rebuild from.
        return;
    }
    // The record files alone describe a sound store: rebuilt from them, sled holds no record
    // whose blob is missing.
    let (code, out) = cli("rebuild");
    assert_eq!(code, 0, "rebuild after the crashes:\n{out}");
    let (code, out) = cli("verify");
    assert_eq!(code, 0, "the rebuilt store verifies:\n{out}");
}

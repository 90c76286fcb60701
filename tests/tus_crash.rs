//! The tus crash test: concurrent clients send uploads of 1–12 MiB by plain tus requests, in
//! chunks of varying sizes (some with `Upload-Checksum`), while the server is SIGKILLed at
//! random moments and restarted on the same data directory. After each restart, before any
//! client goes on: every upload whose creation got a 201 is still there, its offset is at least
//! every offset a PATCH acknowledged with a 204, and `DATA/uploads/<id>.part` holds exactly the
//! bytes sent up to that offset (or the upload is complete, as media whose bytes hash right).
//! Then the clients HEAD and resume. At the end every upload completes, its media hashes right,
//! and the store verifies. `SHOEBOX_CRASH_ROUNDS` sets the number of kills and
//! `SHOEBOX_CRASH_SEED` replays a run (the sizes, chunks and kill times follow from it).

mod common;
#[path = "tus/protocol.rs"]
mod protocol;

use std::time::{Duration, Instant};

use common::{bytes, run_cli, sha256_hex, Rng, TestServer};
use protocol::{checksum, header, location_path, part_file, upload_id, Tus};
use reqwest::blocking::Response;
use reqwest::Method;

const CLIENTS: usize = 4;
const UPLOADS_PER_CLIENT: usize = 4;

/// One upload and what the server acknowledged of it.
struct Upload {
    data: Vec<u8>,
    hash: String,
    /// `/api/uploads/{id}`, once a creation got its 201.
    path: Option<String>,
    /// The highest offset a PATCH answered with a 204.
    acked: u64,
    /// Set when the completing PATCH (or a HEAD after a restart) named the stored media.
    media_id: Option<String>,
}

/// A client's uploads, done one after the other, and its own randomness.
struct Client {
    uploads: Vec<Upload>,
    rng: Rng,
    /// Creations sent whose answer the kill swallowed: each may have left an upload behind.
    lost_creations: u64,
}

impl Client {
    fn new(seed: u64) -> Client {
        let mut rng = Rng(seed | 1);
        let uploads = (0..UPLOADS_PER_CLIENT)
            .map(|_| {
                let data = bytes(rng.range(1 << 20, 12 << 20) as usize, rng.next());
                let hash = sha256_hex(&data);
                Upload {
                    data,
                    hash,
                    path: None,
                    acked: 0,
                    media_id: None,
                }
            })
            .collect();
        Client {
            uploads,
            rng,
            lost_creations: 0,
        }
    }

    fn done(&self) -> bool {
        self.uploads.iter().all(|u| u.media_id.is_some())
    }
}

/// The media id a complete upload's response names; panics when it names none.
fn media_id(res: &Response, what: &str) -> String {
    header(res, "shoebox-media-id")
        .unwrap_or_else(|| panic!("{what}: a complete upload names its media (Shoebox-Media-Id)"))
}

/// Works through the client's uploads until they are all done, the server dies (a request
/// fails), or `stop`. Panics on any answer the protocol does not allow.
fn work(tus: &Tus, client: &mut Client, stop: Instant) {
    // Bounded: each pass sends one request, and a kill or the deadline ends the loop first.
    for _ in 0..100_000 {
        if Instant::now() > stop {
            return;
        }
        let Some(n) = client.uploads.iter().position(|u| u.media_id.is_none()) else {
            return;
        };
        let chunk_size = client.rng.range(64 << 10, 2 << 20) as usize;
        let algorithm = ["", "sha1", "sha256"][(client.rng.next() % 3) as usize];
        let upload = &mut client.uploads[n];
        let len = upload.data.len() as u64;
        let Some(path) = upload.path.clone() else {
            match tus
                .request(Method::POST, "/api/uploads")
                .header("Upload-Length", len.to_string())
                .header(
                    "Upload-Metadata",
                    protocol::encode_metadata(&[("filename", "crash.bin")]),
                )
                .send()
            {
                Ok(res) if res.status() == 201 => upload.path = Some(location_path(&res)),
                Ok(res) => panic!("creation: {}", protocol::describe(res)),
                Err(_) => {
                    client.lost_creations += 1;
                    return;
                }
            }
            continue;
        };
        // Where the server is: a resume starts with a HEAD, as every tus client's does.
        let res = match tus.request(Method::HEAD, &path).send() {
            Ok(res) => res,
            Err(_) => return,
        };
        assert_eq!(res.status(), 200, "HEAD {path}");
        let offset: u64 = header(&res, "upload-offset")
            .and_then(|v| v.parse().ok())
            .expect("HEAD answers Upload-Offset");
        assert!(
            offset >= upload.acked,
            "{path}: HEAD offset {offset} is behind the acknowledged {}",
            upload.acked
        );
        if offset == len {
            upload.media_id = Some(media_id(&res, &format!("HEAD {path}")));
            continue;
        }
        let end = (offset + chunk_size as u64).min(len);
        let chunk = upload.data[offset as usize..end as usize].to_vec();
        let mut req = tus.patch_request(&path, offset, chunk.clone());
        if !algorithm.is_empty() {
            req = req.header("Upload-Checksum", checksum(algorithm, &chunk));
        }
        let res = match req.send() {
            Ok(res) => res,
            Err(_) => return,
        };
        match res.status().as_u16() {
            204 => {
                let answered: u64 = header(&res, "upload-offset")
                    .and_then(|v| v.parse().ok())
                    .expect("a 204 answers Upload-Offset");
                assert_eq!(
                    answered, end,
                    "{path}: the PATCH at {offset} answered {answered}"
                );
                upload.acked = end;
                if end == len {
                    upload.media_id = Some(media_id(&res, &format!("PATCH {path}")));
                }
            }
            // Someone else's view of the offset (a PATCH cut by the last kill that the
            // restarted server settled differently): ask again.
            409 | 423 => std::thread::sleep(Duration::from_millis(20)),
            _ => panic!("PATCH {path} at {offset}: {}", protocol::describe(res)),
        }
    }
}

/// After a restart, before any client goes on: every acknowledged upload is still there with at
/// least its acknowledged bytes, and those bytes on disk are the ones sent; a complete one is
/// media that hashes right (its bytes re-read when `full`).
fn check(s: &TestServer, clients: &mut [Client], round: usize, full: bool) {
    let tus = Tus::new(&s.base, s.token.as_deref());
    for upload in clients.iter_mut().flat_map(|c| c.uploads.iter_mut()) {
        let Some(path) = upload.path.clone() else {
            continue;
        };
        if upload.media_id.is_none() {
            let res = tus.head(&path);
            assert_eq!(
                res.status(),
                200,
                "round {round}: {path}, created and acknowledged, is gone"
            );
            let offset: u64 = header(&res, "upload-offset").unwrap().parse().unwrap();
            assert!(
                offset >= upload.acked,
                "round {round}: {path} is at {offset}, behind the acknowledged {}",
                upload.acked
            );
            if offset == upload.data.len() as u64 {
                upload.media_id = Some(media_id(&res, &format!("round {round}: HEAD {path}")));
            } else {
                let part = std::fs::read(part_file(&s.data_dir, upload_id(&path)))
                    .unwrap_or_else(|e| panic!("round {round}: the .part file of {path}: {e}"));
                let offset = offset as usize;
                assert!(
                    part.len() >= offset,
                    "round {round}: {path} claims {offset} bytes, {} on disk",
                    part.len()
                );
                assert!(
                    part[..offset] == upload.data[..offset],
                    "round {round}: the bytes of {path} on disk are not the ones sent"
                );
                continue;
            }
        }
        let id = upload.media_id.clone().unwrap();
        let res = s
            .authed(Method::GET, &format!("/api/media/{id}"))
            .send()
            .unwrap();
        assert_eq!(res.status(), 200, "round {round}: media {id} of {path}");
        let record: serde_json::Value = res.json().unwrap();
        assert_eq!(
            record["hash"],
            upload.hash.as_str(),
            "round {round}: {path}"
        );
        assert_eq!(record["size"], upload.data.len());
        if full {
            assert_eq!(
                sha256_hex(&s.media_bytes(&id)),
                upload.hash,
                "round {round}: the stored bytes of {path}"
            );
        }
    }
}

#[test]
fn sigkill_during_concurrent_tus_uploads_never_loses_an_acknowledged_byte() {
    // SHOEBOX_CRASH_SEED replays a failed run: the uploads, chunks and kill times follow from it.
    let (rounds, mut rng) = common::crash_plan("tus crash test", 5);
    let mut clients: Vec<Client> = (0..CLIENTS).map(|_| Client::new(rng.next())).collect();
    let mut s = TestServer::start();
    for round in 0..rounds {
        let tus = Tus::new(&s.base, s.token.as_deref());
        let kill_after = Duration::from_millis(rng.range(200, 2500));
        std::thread::scope(|scope| {
            for client in clients.iter_mut() {
                let tus = tus.clone();
                scope.spawn(move || work(&tus, client, Instant::now() + Duration::from_secs(60)));
            }
            std::thread::sleep(kill_after);
            s.kill();
        });
        s = s.restart();
        check(&s, &mut clients, round, false);
        let (acked, done): (u64, usize) = clients
            .iter()
            .flat_map(|c| &c.uploads)
            .fold((0, 0), |(a, d), u| {
                (a + u.acked, d + usize::from(u.media_id.is_some()))
            });
        eprintln!(
            "round {round}: killed after {kill_after:?}; {acked} bytes acknowledged, {done} uploads complete"
        );
    }

    // The last stretch, with no kill: every client resumes and finishes.
    let tus = Tus::new(&s.base, s.token.as_deref());
    std::thread::scope(|scope| {
        for client in clients.iter_mut() {
            let tus = tus.clone();
            scope.spawn(move || work(&tus, client, Instant::now() + Duration::from_secs(240)));
        }
    });
    assert!(clients.iter().all(Client::done), "every upload completed");
    check(&s, &mut clients, rounds, true);
    let lost: u64 = clients.iter().map(|c| c.lost_creations).sum();
    let status = s.status();
    let left = status["partial_uploads"]["count"].as_u64().unwrap_or(0);
    assert!(
        left <= lost,
        "{left} partial uploads left, but only {lost} creations lost their answer: {status}"
    );
    assert!(s.terminate().success());
    let (code, out) = run_cli(&["verify"], &s.data_dir);
    assert_eq!(code, 0, "after all the kills the store verifies:\n{out}");
}

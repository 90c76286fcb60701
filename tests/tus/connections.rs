//! Requests cut off or racing, sent by hand over a raw connection: a PATCH whose client hangs
//! up mid-body keeps what arrived (unless its checksum could not be checked), and two PATCHes
//! at the same offset never mix their bytes.

use std::io::Write;
use std::time::Duration;

use crate::common::{bytes, eventually, sha256_hex, TestServer};
use crate::protocol::{checksum, header, upload_id, Tus, OFFSET_STREAM};

fn tus(s: &TestServer) -> Tus {
    Tus::new(&s.base, s.token.as_deref())
}

/// Sends a PATCH by hand that announces `announced` bytes, sends `sent` of them and hangs up.
fn cut_off_patch(s: &TestServer, path: &str, data: &[u8], announced: usize, extra: &str) {
    let mut conn = s.raw();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Tus-Resumable: 1.0.0\r\nContent-Type: {OFFSET_STREAM}\r\nUpload-Offset: 0\r\n\
         Content-Length: {announced}\r\n{extra}\r\n",
        s.token.as_deref().unwrap()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(data).unwrap();
    conn.flush().unwrap();
    // Let the server read what was sent before the connection goes.
    std::thread::sleep(Duration::from_millis(300));
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

#[test]
fn a_patch_cut_off_mid_body_keeps_what_arrived() {
    let s = TestServer::start();
    let t = tus(&s);
    let data = bytes(200_000, 8);
    let path = t.created(Some(data.len() as u64), &[]);
    cut_off_patch(&s, &path, &data[..120_000], data.len(), "");
    // The server notices the hang-up, keeps the bytes that came and records the offset.
    eventually(
        "the offset of the cut PATCH",
        Duration::from_secs(15),
        || {
            let res = t.head(&path);
            res.status() == 200 && header(&res, "upload-offset").as_deref() == Some("120000")
        },
    );
    let res = t.patched(&path, 120_000, &data[120_000..]);
    let media_id = header(&res, "shoebox-media-id").unwrap();
    assert_eq!(sha256_hex(&s.media_bytes(&media_id)), sha256_hex(&data));
}

#[test]
fn a_checksummed_patch_cut_off_mid_body_keeps_nothing() {
    let s = TestServer::start();
    let t = tus(&s);
    let data = bytes(200_000, 9);
    let path = t.created(Some(data.len() as u64), &[]);
    let sum = format!("Upload-Checksum: {}\r\n", checksum("sha1", &data));
    cut_off_patch(&s, &path, &data[..120_000], data.len(), &sum);
    // Once the server is done with the cut request, the upload takes a PATCH at 0 again.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let answer = loop {
        let res = t.patch(&path, 0, &data[..50_000]);
        match res.status().as_u16() {
            204 => break res,
            409 | 423 if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => panic!(
                "a PATCH at 0 after the cut one got {other}; HEAD says offset {:?}: \
                 bytes of a chunk whose checksum could not be checked were kept",
                header(&t.head(&path), "upload-offset")
            ),
        }
    };
    assert_eq!(
        header(&answer, "upload-offset").as_deref(),
        Some("50000"),
        "nothing of the unverifiable chunk was kept"
    );
}

/// Two clients PATCH the same upload at the same offset at once (the first one slowly). However
/// the server settles it (one wins with a 204; or the newer request takes the upload over, the
/// older one stopping where it was), at most one gets a 204, the other is refused, and the bytes
/// the upload holds are one client's alone, from which that client can finish it.
#[test]
fn two_patches_at_the_same_offset_never_mix_their_bytes() {
    use std::io::Read;
    let s = TestServer::start();
    let t = tus(&s);
    let chunk = 3 << 20;
    let path = t.created(Some(2 * chunk as u64), &[]);
    let slow = bytes(2 * chunk, 30);
    let fast = bytes(2 * chunk, 31);
    let mut conn = s.raw();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Tus-Resumable: 1.0.0\r\nContent-Type: {OFFSET_STREAM}\r\nUpload-Offset: 0\r\n\
         Content-Length: {chunk}\r\nConnection: close\r\n\r\n",
        s.token.as_deref().unwrap()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&slow[..chunk / 2]).unwrap();
    conn.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (fast_status, slow_answer) = std::thread::scope(|scope| {
        let other = scope.spawn(|| t.patch(&path, 0, &fast[..chunk]).status().as_u16());
        std::thread::sleep(Duration::from_millis(700));
        // The server may have stopped reading the slow request; what is left may not go.
        let _ = conn.write_all(&slow[chunk / 2..chunk]);
        let _ = conn.flush();
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer);
        (
            other.join().unwrap(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    });
    let slow_status: u16 = slow_answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("the slow PATCH got no answer: {slow_answer:?}"));
    let statuses = [slow_status, fast_status];
    assert!(
        statuses.iter().filter(|&&c| c == 204).count() <= 1,
        "at most one PATCH wins: slow {slow_status}, fast {fast_status}"
    );
    for status in statuses.iter().filter(|&&c| c != 204) {
        assert!(
            [400, 409, 423].contains(status),
            "a refused PATCH: slow {slow_status}, fast {fast_status}"
        );
    }
    let offset = t.offset(&path) as usize;
    if statuses.contains(&204) {
        assert_eq!(offset, chunk, "the winner's offset");
    }
    let part = std::fs::read(crate::protocol::part_file(&s.data_dir, upload_id(&path))).unwrap();
    assert!(part.len() >= offset);
    let owner = [&slow, &fast]
        .into_iter()
        .find(|data| part[..offset] == data[..offset])
        .unwrap_or_else(|| {
            panic!("the {offset} bytes held mix both clients' (slow {slow_status}, fast {fast_status})")
        });
    if slow_status == 204 {
        assert!(owner == &slow, "the winner's bytes");
    }
    if fast_status == 204 {
        assert!(owner == &fast, "the winner's bytes");
    }
    let res = t.patched(&path, offset as u64, &owner[offset..]);
    let media_id = header(&res, "shoebox-media-id").unwrap();
    assert_eq!(sha256_hex(&s.media_bytes(&media_id)), sha256_hex(owner));
}

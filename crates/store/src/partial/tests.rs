//! The partial uploads' own tests: chunks, trimming, checksums, sweeping, the cap.

use bytes::Bytes;

use super::*;

fn partials() -> (tempfile::TempDir, Partials) {
    let dir = tempfile::tempdir().unwrap();
    let uploads = dir.path().join("uploads");
    let tmp = dir.path().join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let p = Partials::new(uploads, tmp, dir.path().to_owned(), 0);
    p.recover().unwrap();
    (dir, p)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn sha(data: &[u8]) -> ContentHash {
    ContentHash(Sha256::digest(data).into())
}

fn send(p: &Partials, u: &mut PartialUpload, data: &[u8]) {
    let mut a = p.append(u, None).unwrap();
    for c in data.chunks(100_000) {
        a.write(Bytes::copy_from_slice(c)).unwrap();
    }
    a.commit(u, now()).unwrap();
}

#[test]
fn chunks_add_up_to_a_staged_blob_with_the_right_hash() {
    let (_d, p) = partials();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut u = p
        .create("admin", Some(data.len() as u64), "", now(), 10)
        .unwrap()
        .unwrap();
    assert!(valid_id(&u.id));
    send(&p, &mut u, &data[..1_000_000]);
    // A restart forgets the hasher: it is rebuilt from the bytes on disk.
    p.lock_hashers().clear();
    send(&p, &mut u, &data[1_000_000..2_500_000]);
    send(&p, &mut u, &data[2_500_000..]);
    assert!(u.is_whole());
    assert_eq!(p.get(&u.id).unwrap().unwrap(), u);
    let staged = p.stage(&u).unwrap();
    assert_eq!(staged.hash, sha(&data));
    assert_eq!(staged.size, data.len() as u64);
    assert_eq!(staged.head, data[..HEAD_BYTES]);
    assert!(fs::read(staged.path()).unwrap() == data);
    p.completed(&mut u, "01media", now()).unwrap();
    assert!(!p.part(&u.id).exists());
    assert!(staged.path().exists(), "the staged link keeps the bytes");
    assert_eq!(p.usage().unwrap(), PartialUsage::default());
}

#[test]
fn an_unacknowledged_tail_is_cut_and_a_bad_checksum_discards_the_chunk() {
    let (_d, p) = partials();
    let mut u = p
        .create("admin", None, "filename YS5qcGc=", now(), 10)
        .unwrap()
        .unwrap();
    send(&p, &mut u, b"hello ");
    // Bytes written but never committed (a crash): gone at the next open.
    {
        let mut a = p.append(&u, None).unwrap();
        a.write(Bytes::from_static(b"torn")).unwrap();
    }
    p.recover().unwrap();
    assert_eq!(fs::read(p.part(&u.id)).unwrap(), b"hello ");
    let wrong = ChunkCheck::Sha1(vec![0; 20]);
    let mut a = p.append(&u, Some(wrong)).unwrap();
    a.write(Bytes::from_static(b"world")).unwrap();
    assert!(matches!(
        a.commit(&mut u, now()),
        Err(AppendError::ChecksumMismatch)
    ));
    assert_eq!(u.offset, 6);
    let right = ChunkCheck::Sha256(Sha256::digest(b"world").to_vec());
    let mut a = p.append(&u, Some(right)).unwrap();
    a.write(Bytes::from_static(b"world")).unwrap();
    a.commit(&mut u, now()).unwrap();
    u.length = Some(11);
    p.save(&mut u).unwrap();
    assert_eq!(p.stage(&u).unwrap().hash, sha(b"hello world"));
    assert_eq!(
        p.usage().unwrap(),
        PartialUsage {
            count: 1,
            bytes: 11
        }
    );
}

#[test]
fn leftovers_go_at_start_and_expired_uploads_at_the_sweep() {
    let (_d, p) = partials();
    let u = p.create("admin", Some(10), "", now(), 10).unwrap().unwrap();
    let busy = p.create("admin", Some(10), "", now(), 10).unwrap().unwrap();
    fs::write(p.dir.join("0123456789abcdef0123456789abcdef.part"), b"x").unwrap();
    fs::write(p.dir.join(".tmp-123"), b"x").unwrap();
    assert_eq!(p.recover().unwrap(), 2);
    let mut names: Vec<_> = fs::read_dir(&p.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    let later = now() + std::time::Duration::from_secs(60);
    let gone = p
        .sweep(later, std::time::Duration::from_secs(30), |id| {
            id == busy.id
        })
        .unwrap();
    assert_eq!(gone.count, 1);
    assert!(p.get(&u.id).unwrap().is_none());
    assert!(!p.part(&u.id).exists());
    assert!(p.get(&busy.id).unwrap().is_some());
    assert!(p.get("../../etc/passwd").unwrap().is_none());
}

#[test]
fn an_owner_may_have_so_many_unfinished_uploads_at_once() {
    let (_d, p) = partials();
    let a = p.create("token_a", Some(3), "", now(), 2).unwrap().unwrap();
    let _b = p.create("token_a", Some(3), "", now(), 2).unwrap().unwrap();
    assert!(p
        .create("token_a", Some(3), "", now(), 2)
        .unwrap()
        .is_none());
    assert!(p.create("admin", Some(3), "", now(), 2).unwrap().is_some());
    // Ending one, or finishing one, makes room; so does a restart's count.
    p.remove(&a.id).unwrap();
    let mut c = p.create("token_a", Some(3), "", now(), 2).unwrap().unwrap();
    send(&p, &mut c, b"abc");
    p.completed(&mut c, "01media", now()).unwrap();
    assert_eq!(p.in_progress("token_a").unwrap(), 1);
    p.recover().unwrap();
    assert_eq!(p.in_progress("token_a").unwrap(), 1);
    assert_eq!(p.in_progress("admin").unwrap(), 1);
}

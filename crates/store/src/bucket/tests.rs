//! The bucket client against a real Garage on loopback.

use std::io::{Read, Write};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use shoebox_testkit::Garage;

use super::*;

fn garage(nodes: usize) -> Option<(Garage, Arc<Bucket>)> {
    let garage = Garage::start(nodes, "blobs")?;
    let config = BucketConfig {
        bucket: "blobs".into(),
        endpoint: Some(garage.endpoint(0)),
        region: garage.region().into(),
        access_key_id: garage.key().id.clone(),
        secret_access_key: garage.key().secret.clone(),
    };
    let bucket = Arc::new(Bucket::connect(config).unwrap());
    bucket.check().unwrap();
    Some((garage, bucket))
}

fn staged(dir: &tempfile::TempDir, data: &[u8]) -> (ContentHash, std::path::PathBuf) {
    let path = dir.path().join(hex::encode(&Sha256::digest(data)[..8]));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(data)
        .unwrap();
    (of(data), path)
}

fn of(data: &[u8]) -> ContentHash {
    ContentHash::from_slice(&Sha256::digest(data)).unwrap()
}

#[test]
fn blobs_go_to_their_address_whole_and_come_back_in_ranges() {
    let Some((_garage, bucket)) = garage(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // One PUT, and a multipart upload of two full parts and a short one.
    let small = b"hello, bucket".to_vec();
    let large: Vec<u8> = (0..(2 * PART_SIZE + 12345) as u32)
        .map(|i| (i % 251) as u8)
        .collect();
    for data in [&small, &large] {
        let (hash, path) = staged(&dir, data);
        assert_eq!(bucket.head(&hash).unwrap(), None);
        bucket.upload(&hash, &path, data.len() as u64).unwrap();
        assert_eq!(bucket.head(&hash).unwrap(), Some(data.len() as u64));
        let mut back = Vec::new();
        bucket
            .reader(&hash, data.len() as u64)
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == *data, "the bytes read back differ");
        let end = data.len() as u64;
        assert_eq!(
            bucket.read_range(&hash, 3..end - 1).unwrap(),
            data[3..data.len() - 1]
        );
    }
    let listed = bucket.list().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .any(|l| l.size == large.len() as u64 && l.hash == of(&large)));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(listed.iter().all(|l| (now - l.modified).abs() < 600));
    // Served as a stream of chunks.
    let hash = of(&large);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let got = rt.block_on(async {
        let mut rx = bucket.stream_range(&hash, 100..(PART_SIZE as u64 + 100));
        let mut got = Vec::new();
        while let Some(chunk) = rx.recv().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        got
    });
    assert!(
        got == large[100..PART_SIZE + 100],
        "the streamed range differs"
    );
    bucket.remove(&hash).unwrap();
    bucket.remove(&hash).unwrap();
    assert_eq!(bucket.head(&hash).unwrap(), None);
    assert_eq!(bucket.list().unwrap().len(), 1);
}

#[test]
fn a_bucket_that_does_not_answer_is_unavailable_not_missing() {
    let Some((mut garage, bucket)) = garage(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (hash, path) = staged(&dir, b"kept");
    bucket.upload(&hash, &path, 4).unwrap();
    garage.kill(0);
    let err = bucket.head(&hash).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    assert!(matches!(
        bucket.upload(&hash, &path, 4),
        Err(StoreError::Unavailable { .. })
    ));
    garage.restart(0);
    assert_eq!(bucket.head(&hash).unwrap(), Some(4));
}

//! Operations beside busy instances. A backup on one instance while another deletes: the
//! deleting instance leaves the blobs that the backup may still need (the backup's lease in
//! PostgreSQL), the archive restores whole, and `gc` removes the blobs afterwards. `verify`
//! while another instance deletes: no false alarm.

use std::io::Read;

use reqwest::Method;

use crate::common::{self, run_cli, TestServer};
use crate::shared::Cluster;
use crate::upload;

#[test]
fn deletes_on_one_instance_wait_for_a_backup_on_another() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let a = cluster.instance(0);
    let b = cluster.instance(1);
    const MEDIA: u64 = 40;
    let ids: Vec<String> = (0..MEDIA)
        .map(|i| {
            let bytes = common::bytes(1 << 20, 900 + i);
            upload(&a, &format!("kept-{i}.bin"), &bytes)["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();

    // The backup has begun (its first bytes are here) when B deletes everything.
    let mut res = a.authed(Method::GET, "/api/backup").send().unwrap();
    assert_eq!(res.status(), 200);
    let mut archive = vec![0u8; 2 << 20];
    res.read_exact(&mut archive).unwrap();
    for id in &ids {
        let gone = b
            .authed(Method::DELETE, &format!("/api/media/{id}"))
            .send()
            .unwrap();
        assert_eq!(gone.status(), 204);
    }
    res.read_to_end(&mut archive).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.tar");
    std::fs::write(&file, &archive).unwrap();
    let restored = dir.path().join("restored");
    let (code, out) = run_cli(&["restore", file.to_str().unwrap()], &restored);
    assert_eq!(code, 0, "the archive restores whole: {out}");
    let s = TestServer::builder().data_dir(&restored).start();
    assert_eq!(s.status()["media"]["count"], MEDIA);
    assert_eq!(
        s.media_bytes(&ids[MEDIA as usize - 1]),
        common::bytes(1 << 20, 900 + MEDIA - 1)
    );

    // The blobs the deletes left are orphans now, for gc.
    let (code, out) = cluster.cli(&["gc", "--grace", "0s"]);
    assert_eq!(code, 0, "{out}");
    let removed: u64 = out
        .split("removed ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(removed > 0, "{out}");
    let (code, out) = cluster.cli(&["verify"]);
    assert_eq!(code, 0, "{out}");
}

/// `verify` beside instances that delete meanwhile: a record deleted after `verify` read it
/// took its blob along, which is no damage; `verify` reports none.
#[test]
fn verify_beside_deleting_instances_reports_no_damage() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let a = cluster.instance(0);
    let b = cluster.instance(1);
    let ids: Vec<String> = (0..100u64)
        .map(|i| {
            upload(
                &a,
                &format!("short-lived-{i}.bin"),
                &common::bytes(2000, 5000 + i),
            )["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let deleting = std::sync::atomic::AtomicBool::new(true);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for id in &ids {
                let res = b
                    .authed(Method::DELETE, &format!("/api/media/{id}"))
                    .send()
                    .unwrap();
                assert_eq!(res.status(), 204);
            }
            deleting.store(false, std::sync::atomic::Ordering::SeqCst);
        });
        let mut runs = 0;
        while deleting.load(std::sync::atomic::Ordering::SeqCst) && runs < 5 {
            let (code, out) = cluster.cli(&["verify"]);
            assert_eq!(code, 0, "verify run {runs} found damage: {out}");
            runs += 1;
        }
    });
}

//! Derived files in the bucket: a variant or a poster frame made on one instance is fetched,
//! not made again, by the other; `gc` removes them with their blob.

use std::time::Duration;

use reqwest::Method;
use shoebox::store::bucket::VARIANTS;

use crate::common::tools::{self, Tool};
use crate::common::{self, TestServer};
use crate::shared::Cluster;
use crate::upload;

/// How many variants and posters this instance has made since its start.
fn generated(s: &TestServer) -> u64 {
    let metrics = s.metrics();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("shoebox_variants_generated_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no variant count in {metrics}"))
}

fn body(s: &TestServer, path: &str) -> Vec<u8> {
    let res = s.get(path).send().unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.bytes().unwrap().to_vec()
}

#[test]
fn derived_files_made_on_one_instance_serve_the_other() {
    if !tools::present(&[Tool::Ffmpeg]) {
        return;
    }
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let a = cluster.instance(0);
    let b = cluster.instance(1);

    let png = common::png(400, 300, |x, y| [x as u8, y as u8, 90]);
    let id = upload(&a, "wide.png", &png)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/m/{id}?w=160&format=png");
    let made = body(&a, &path);
    assert_eq!(generated(&a), 1);
    assert_eq!(body(&b, &path), made, "the same bytes on both");
    assert_eq!(
        generated(&b),
        0,
        "B fetched A's variant rather than make it"
    );

    // A poster frame is made once, by the instance that took the video; the other serves it.
    let dir = tempfile::tempdir().unwrap();
    let clip_path = dir.path().join("clip.mp4");
    tools::run(
        "ffmpeg",
        &[
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-t",
            "1",
            "-pix_fmt",
            "yuv420p",
            clip_path.to_str().unwrap(),
        ],
    );
    let clip = std::fs::read(&clip_path).unwrap();
    let video = upload(&a, "clip.mp4", &clip)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    common::eventually("the poster", Duration::from_secs(60), || {
        let r: serde_json::Value = b
            .authed(Method::GET, &format!("/api/media/{video}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        r["poster"] == "ready"
    });
    let poster = body(&b, &format!("/m/{video}?poster=1"));
    assert_eq!(&poster[..3], b"\xff\xd8\xff", "a JPEG");
    assert_eq!(tools::size_of(dir.path(), &poster), (320, 240));
    let small = body(&b, &format!("/m/{video}?poster=1&w=160&format=jpeg"));
    assert_eq!(tools::size_of(dir.path(), &small), (160, 120));
    assert_eq!(body(&a, &format!("/m/{video}?poster=1")), poster);

    let kept = cluster.objects(VARIANTS);
    assert_eq!(
        kept.len(),
        3,
        "a variant, a poster and its variant: {kept:?}"
    );
    assert!(kept.iter().any(|k| k.ends_with("/poster.jpg")), "{kept:?}");

    // Deleted, their derived files go from the bucket with the blob at the next `gc`.
    for media in [&id, &video] {
        let res = b
            .authed(Method::DELETE, &format!("/api/media/{media}"))
            .send()
            .unwrap();
        assert_eq!(res.status(), 204);
    }
    let (code, out) = cluster.cli(&["gc", "--grace", "0s"]);
    assert_eq!(code, 0, "{out}");
    let left = cluster.objects(VARIANTS);
    assert!(left.is_empty(), "left in the bucket: {left:?}");
}

//! Black-box tests of image variants (`?w=`, `?h=`, `?fit=`, `?format=`) against the real
//! binary, with pictures made by the real tools: ImageMagick's `convert` makes them, exiftool
//! tags them, and ImageMagick's `identify` measures what the server sent back.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::tools::{self, Tool};
use common::{error_code, png_chunk, run_cli, TestServer};
use reqwest::Method;

const WIDTHS: [u32; 5] = [160, 320, 640, 1280, 1920];

/// Whether ImageMagick and exiftool are here.
fn tools_present() -> bool {
    tools::present(&[Tool::ImageMagick, Tool::Exiftool])
}

/// A `width`×`height` JPEG made by ImageMagick: a gradient with a mark in one corner, so that
/// a turned picture is a different picture.
fn photo(dir: &Path, name: &str, width: u32, height: u32) -> PathBuf {
    let path = dir.join(name);
    let size = format!("{width}x{height}");
    tools::run(
        "convert",
        &[
            "-size",
            &size,
            "gradient:orange-navy",
            "-fill",
            "white",
            "-draw",
            "rectangle 0,0 400,300",
            "-quality",
            "90",
            path.to_str().unwrap(),
        ],
    );
    path
}

fn upload_file(s: &TestServer, path: &Path, fields: &[(&str, &str)]) -> serde_json::Value {
    let name = path.file_name().unwrap().to_str().unwrap();
    s.upload(name, &std::fs::read(path).unwrap(), fields)
}

fn variant_files(data_dir: &Path, hash: &str) -> Vec<String> {
    common::entries(
        &data_dir
            .join("variants")
            .join(hash)
            .join(shoebox_pictures::PIPELINE),
    )
}

/// A 4000×3000 photo tagged `Orientation=6` (turned a quarter) is 3000×4000 upright, and so is
/// every variant: `w=320` is 320×427, and each allowed width has the height that goes with it.
#[test]
fn every_width_of_a_turned_photo_comes_out_upright() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = photo(dir.path(), "turned.jpg", 4000, 3000);
    tools::run(
        "exiftool",
        &[
            "-n",
            "-Orientation=6",
            "-overwrite_original",
            source.to_str().unwrap(),
        ],
    );
    let s = TestServer::start();
    let item = upload_file(&s, &source, &[]);
    assert_eq!(
        (item["width"].as_u64(), item["height"].as_u64()),
        (Some(3000), Some(4000)),
        "as shown"
    );
    let id = item["id"].as_str().unwrap();
    for w in WIDTHS {
        let res = s.get(&format!("/m/{id}?w={w}&format=jpeg")).send().unwrap();
        assert_eq!(res.status(), 200, "w={w}");
        assert_eq!(res.headers()["content-type"], "image/jpeg");
        let expected = (w, (f64::from(w) * 4.0 / 3.0).round() as u32);
        assert_eq!(
            tools::size_of(dir.path(), &res.bytes().unwrap()),
            expected,
            "w={w}"
        );
    }
    // A box, contained and covered.
    let res = s
        .get(&format!("/m/{id}?w=320&h=320&format=png"))
        .send()
        .unwrap();
    assert_eq!(
        tools::size_of(dir.path(), &res.bytes().unwrap()),
        (240, 320)
    );
    let res = s
        .get(&format!("/m/{id}?w=320&h=160&fit=cover&format=webp"))
        .send()
        .unwrap();
    assert_eq!(res.headers()["content-type"], "image/webp");
    assert_eq!(
        tools::size_of(dir.path(), &res.bytes().unwrap()),
        (320, 160)
    );
    // Never larger than the source.
    let small = photo(dir.path(), "small.jpg", 300, 200);
    let item = upload_file(&s, &small, &[]);
    let res = s
        .get(&format!("/f/{}?w=1920", item["hash"].as_str().unwrap()))
        .send()
        .unwrap();
    assert_eq!(
        tools::size_of(dir.path(), &res.bytes().unwrap()),
        (300, 200)
    );
}

/// A PNG whose header claims 20,000×20,000 pixels over a body of a few bytes: every decoder
/// that trusts the header allocates gigabytes.
fn png_bomb() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&20_000u32.to_be_bytes());
    header.extend_from_slice(&20_000u32.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &header);
    // A zlib stream of one empty stored block: valid, and nowhere near the pixels promised.
    png_chunk(
        &mut png,
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01,
        ],
    );
    png_chunk(&mut png, b"IEND", &[]);
    png
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// An unlisted width is a 400 naming the allowed ones; a decompression bomb is a 422 after a
/// bounded amount of work, with the server's memory where it was, and its original still
/// served; a file that is no image is a 400.
#[test]
fn unlisted_sizes_and_bombs_are_refused() {
    let s = TestServer::start();
    let bomb = png_bomb();
    let item = s.upload("bomb.png", &bomb, &[]);
    let id = item["id"].as_str().unwrap();
    let res = s.get(&format!("/m/{id}?w=321")).send().unwrap();
    let body = res.text().unwrap();
    assert!(body.contains("160, 320, 640, 1280, 1920"), "{body}");
    assert_eq!(
        error_code(s.get(&format!("/m/{id}?h=0")).send().unwrap(), 400),
        "invalid_field"
    );
    assert_eq!(
        error_code(s.get(&format!("/m/{id}?format=webp")).send().unwrap(), 400),
        "bad_request"
    );

    let before = peak_rss_kib(s.pid());
    let started = Instant::now();
    let res = s.get(&format!("/m/{id}?w=320")).send().unwrap();
    assert_eq!(error_code(res, 422), "image_too_large");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refused after {:?}",
        started.elapsed()
    );
    let after = peak_rss_kib(s.pid());
    assert!(
        after < before + 64 * 1024,
        "the bomb grew the server from {before} KiB to {after} KiB"
    );
    let res = s.get(&format!("/m/{id}")).send().unwrap();
    assert_eq!(res.status(), 200, "the original is still served");
    assert_eq!(res.bytes().unwrap().as_ref(), bomb.as_slice());

    let text = s.upload("notes.txt", b"no picture here", &[]);
    let res = s
        .get(&format!("/m/{}?w=320", text["id"].as_str().unwrap()))
        .send()
        .unwrap();
    assert_eq!(error_code(res, 400), "bad_request");
}

/// A variant has a strong ETag of its own, answers `304` and `Range` like a blob, is cached
/// for good at its content address, and is WebP for a browser that takes it, with
/// `Vary: Accept`.
#[test]
fn variants_are_cached_like_blobs_and_negotiated() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start();
    let item = upload_file(&s, &photo(dir.path(), "p.jpg", 1600, 1200), &[]);
    let hash = item["hash"].as_str().unwrap();
    let path = format!("/f/{hash}?w=640");

    let res = s
        .get(&path)
        .header("accept", "image/avif,image/webp,*/*")
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "image/webp");
    assert_eq!(h["vary"], "Accept");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    let etag = h["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with(&format!("\"{hash}-")), "{etag}");
    let webp = res.bytes().unwrap();
    assert_eq!(tools::size_of(dir.path(), &webp), (640, 480));

    let res = s.get(&path).header("accept", "image/jpeg").send().unwrap();
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_ne!(res.headers()["etag"].to_str().unwrap(), etag);

    let res = s
        .get(&path)
        .header("accept", "image/webp")
        .header("if-none-match", &etag)
        .send()
        .unwrap();
    assert_eq!(res.status(), 304);
    let res = s
        .get(&path)
        .header("accept", "image/webp")
        .header("range", "bytes=0-99")
        .send()
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().unwrap().as_ref(), &webp[..100]);

    // Named explicitly: no negotiation, so no Vary.
    let res = s.get(&format!("{path}&format=png")).send().unwrap();
    assert_eq!(res.headers()["content-type"], "image/png");
    assert!(res.headers().get("vary").is_none());
    // As a download, under the original's name with the variant's extension.
    let res = s
        .get(&format!(
            "/m/{}?w=160&format=webp&download=1",
            item["id"].as_str().unwrap()
        ))
        .send()
        .unwrap();
    let disposition = res.headers()["content-disposition"].to_str().unwrap();
    assert_eq!(disposition, "attachment; filename=\"p.webp\"");
}

/// Fifty requests at once for a variant nobody asked for before make it once: one file under
/// `variants/`, one generation in the metrics, the same bytes for all fifty.
#[test]
fn fifty_concurrent_requests_make_one_variant() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start();
    let item = upload_file(&s, &photo(dir.path(), "big.jpg", 4000, 3000), &[]);
    let hash = item["hash"].as_str().unwrap().to_owned();
    let url = s.url(&format!("/f/{hash}?w=1280&format=jpeg"));
    let bodies: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                let client = s.client().clone();
                let url = url.clone();
                scope.spawn(move || {
                    let res = client.get(&url).send().unwrap();
                    assert_eq!(res.status(), 200);
                    res.bytes().unwrap().to_vec()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one variant, fifty copies"
    );
    assert_eq!(variant_files(&s.data_dir, &hash).len(), 1);
    let metrics = s.metrics();
    let made: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("shoebox_variants_generated_total "))
        .collect();
    assert_eq!(made, ["shoebox_variants_generated_total 1"], "{metrics}");
}

/// A private image's variants follow the original: `404` without authority, `200` with a
/// token or a signed URL of `/m/{id}` (a signature covers the path, so `w=` rides along);
/// `/f/` takes no signature.
#[test]
fn private_variants_need_authority() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start();
    let item = upload_file(
        &s,
        &photo(dir.path(), "secret.jpg", 800, 600),
        &[("visibility", "private")],
    );
    let id = item["id"].as_str().unwrap();
    let hash = item["hash"].as_str().unwrap();
    for path in [format!("/m/{id}?w=320"), format!("/f/{hash}?w=320")] {
        assert_eq!(s.get(&path).send().unwrap().status(), 404, "{path}");
        assert_eq!(
            s.authed(Method::GET, &path).send().unwrap().status(),
            200,
            "{path}"
        );
    }
    let signed: serde_json::Value = s
        .authed(Method::GET, &format!("/api/media/{id}/url"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let url = signed["url"].as_str().unwrap();
    let res = s.get(&format!("{url}&w=320")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "private, no-cache");
    assert_eq!(
        tools::size_of(dir.path(), &res.bytes().unwrap()),
        (320, 240)
    );
}

/// `gc` removes the variants of a deleted image, and those an older pipeline made of an image
/// still in use.
#[test]
fn gc_removes_variants_nobody_needs() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start();
    let gone = upload_file(&s, &photo(dir.path(), "gone.jpg", 800, 600), &[]);
    let kept = upload_file(&s, &photo(dir.path(), "kept.jpg", 600, 800), &[]);
    for item in [&gone, &kept] {
        let path = format!("/m/{}?w=160", item["id"].as_str().unwrap());
        assert_eq!(s.get(&path).send().unwrap().status(), 200);
    }
    let kept_hash = kept["hash"].as_str().unwrap();
    let old = s.data_dir.join("variants").join(kept_hash).join("p0");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("w160-h0-contain.jpeg"), b"an older pipeline's").unwrap();
    s.delete_media(gone["id"].as_str().unwrap());
    let data_dir = s.data_dir.clone();
    let mut s = s;
    s.terminate();
    let (code, out) = run_cli(&["gc", "--grace", "0s"], &data_dir);
    assert_eq!(code, 0, "{out}");
    let variants = data_dir.join("variants");
    assert!(
        !variants.join(gone["hash"].as_str().unwrap()).exists(),
        "{out}"
    );
    assert!(!old.exists(), "{out}");
    assert_eq!(variant_files(&data_dir, kept_hash).len(), 1, "{out}");
}

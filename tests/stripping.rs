//! Black-box tests of metadata stripping: pictures made by ImageMagick and tagged by exiftool
//! (GPS, a camera serial, XMP, IPTC, an orientation, an ICC profile) are stored without what
//! locates or identifies them, with their pixels untouched, as exiftool and ImageMagick see it.

mod common;

use std::path::{Path, PathBuf};

use common::tools::{self, run, Tool};
use common::{sha256_hex, TestServer};
use reqwest::Method;
use serde_json::Value;

/// Whether ImageMagick and exiftool are here.
fn tools_present() -> bool {
    tools::present(&[Tool::ImageMagick, Tool::Exiftool])
}

/// A minimal ICC profile (a v2 display profile header with no tags), for exiftool to embed.
fn icc_profile(dir: &Path) -> PathBuf {
    let mut p = vec![0u8; 132];
    p[0..4].copy_from_slice(&132u32.to_be_bytes());
    p[8..12].copy_from_slice(&[2, 0x10, 0, 0]);
    p[12..16].copy_from_slice(b"mntr");
    p[16..20].copy_from_slice(b"RGB ");
    p[20..24].copy_from_slice(b"XYZ ");
    p[36..40].copy_from_slice(b"acsp");
    p[68..80].copy_from_slice(&[0, 0, 0xF6, 0xD6, 0, 1, 0, 0, 0, 0, 0xD3, 0x2D]);
    let path = dir.join("display.icc");
    std::fs::write(&path, p).unwrap();
    path
}

/// A picture made by ImageMagick, then tagged by exiftool with everything a phone writes.
fn tagged(dir: &Path, name: &str, size: &str) -> PathBuf {
    let path = dir.join(name);
    let target = path.to_str().unwrap();
    run("convert", &["-size", size, "gradient:teal-khaki", target]);
    let icc = icc_profile(dir);
    let mut args = vec![
        "-n",
        "-overwrite_original",
        "-GPSLatitude=48.8583",
        "-GPSLatitudeRef=N",
        "-GPSLongitude=2.2945",
        "-GPSLongitudeRef=E",
        "-SerialNumber=CAM-SERIAL-4242",
        "-Model=Pocket Camera",
        "-XMP-dc:Creator=Someone Private",
        "-Orientation=6",
    ];
    let icc_arg = format!("-ICC_Profile<={}", icc.display());
    if name.ends_with(".jpg") {
        args.extend(["-IPTC:Keywords=secret-place", icc_arg.as_str()]);
    }
    args.push(target);
    run("exiftool", &args);
    path
}

/// exiftool's view of a file, every tag with its group (`GROUP:Tag`).
fn tags(dir: &Path, bytes: &[u8], name: &str) -> serde_json::Map<String, Value> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let out = run("exiftool", &["-j", "-G", "-n", path.to_str().unwrap()]);
    let mut all: Vec<Value> = serde_json::from_str(&out).unwrap();
    all.remove(0).as_object().unwrap().clone()
}

/// ImageMagick's signature of the decoded pixels.
fn pixels(dir: &Path, bytes: &[u8], name: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    run("identify", &["-format", "%#", path.to_str().unwrap()])
}

fn assert_clean(t: &serde_json::Map<String, Value>, what: &str) {
    for (key, value) in t {
        let leak = key.contains("GPS")
            || key.ends_with(":SerialNumber")
            || key.ends_with(":Model")
            || key.starts_with("XMP")
            || key.starts_with("IPTC");
        assert!(!leak, "{what} still carries {key} = {value}");
    }
}

/// A JPEG tagged with GPS, a serial, XMP, IPTC, an orientation and an ICC profile is stored
/// without the first four and with the last two, its pixels exactly the original's; its
/// record says what went and keeps the original's hash; a second upload of the same
/// original finds the stored copy; its variants carry nothing either, but the colour profile.
#[test]
fn a_phone_photo_is_kept_without_its_location_and_device() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read(tagged(dir.path(), "phone.jpg", "1200x900")).unwrap();
    let before = tags(dir.path(), &original, "original.jpg");
    assert!(
        before.keys().any(|k| k.contains("GPSLatitude")),
        "{before:?}"
    );

    let s = TestServer::start();
    let item = s.upload("phone.jpg", &original, &[]);
    assert_eq!(item["original_hash"], sha256_hex(&original));
    assert_ne!(item["hash"], item["original_hash"]);
    let stripped: Vec<&str> = item["stripped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for word in ["gps", "exif", "xmp", "iptc"] {
        assert!(stripped.contains(&word), "{word} in {stripped:?}");
    }
    assert_eq!(
        (item["width"].as_u64(), item["height"].as_u64()),
        (Some(900), Some(1200))
    );

    let stored = s.media_bytes(item["id"].as_str().unwrap());
    assert_eq!(sha256_hex(&stored), item["hash"].as_str().unwrap());
    let after = tags(dir.path(), &stored, "stored.jpg");
    assert_clean(&after, "the stored file");
    assert_eq!(after["EXIF:Orientation"], 6, "{after:?}");
    let profiles = |bytes: &[u8], name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        run(
            "identify",
            &["-format", "%[profiles]", path.to_str().unwrap()],
        )
    };
    assert!(
        profiles(&original, "o.jpg").contains("icc"),
        "the original has one"
    );
    assert!(
        profiles(&stored, "s.jpg").contains("icc"),
        "the ICC profile stays"
    );
    assert_eq!(
        pixels(dir.path(), &stored, "stored-p.jpg"),
        pixels(dir.path(), &original, "original-p.jpg"),
        "the stored pixels are the original's"
    );

    let again = s.upload("phone-again.jpg", &original, &[]);
    assert_eq!(
        again["hash"], item["hash"],
        "the same original, the same stored copy"
    );
    assert_eq!(s.blob_count(), 1);

    let id = item["id"].as_str().unwrap();
    let variant = s
        .get(&format!("/m/{id}?w=320&format=jpeg"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_clean(&tags(dir.path(), &variant, "variant.jpg"), "a variant");
    assert!(
        profiles(&variant, "v.jpg").contains("icc"),
        "a variant keeps the colour profile"
    );
    let webp = s
        .get(&format!("/m/{id}?w=160&format=webp"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert!(profiles(&webp, "v.webp").contains("icc"), "in every format");
}

/// A PNG with text and EXIF chunks and a WebP with EXIF and XMP lose them too, pixels intact.
#[test]
fn png_and_webp_lose_their_text_exif_and_xmp() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("notes.png");
    run(
        "convert",
        &[
            "-size",
            "64x48",
            "gradient:navy-gold",
            "-set",
            "comment",
            "taken at home",
            png.to_str().unwrap(),
        ],
    );
    run(
        "exiftool",
        &[
            "-overwrite_original",
            "-GPSLatitude=10",
            "-GPSLatitudeRef=N",
            png.to_str().unwrap(),
        ],
    );
    let webp = tagged(dir.path(), "photo.webp", "80x60");
    let s = TestServer::start();
    for (path, words) in [(png, &["gps", "text"][..]), (webp, &["gps", "xmp"][..])] {
        let original = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        let before = tags(dir.path(), &original, &format!("before-{name}"));
        assert!(
            before.keys().any(|k| k.contains("GPS")),
            "{name}: {before:?}"
        );
        let item = s.upload(name, &original, &[]);
        let stripped = item["stripped"].to_string();
        for word in words {
            assert!(stripped.contains(word), "{name}: {word} in {stripped}");
        }
        let stored = s.media_bytes(item["id"].as_str().unwrap());
        let after = tags(dir.path(), &stored, &format!("after-{name}"));
        assert_clean(&after, name);
        assert!(!after.contains_key("PNG:Comment"), "{name}: {after:?}");
        assert_eq!(
            pixels(dir.path(), &stored, &format!("p-after-{name}")),
            pixels(dir.path(), &original, &format!("p-before-{name}")),
            "{name}: the pixels are untouched"
        );
    }
}

/// `keep_metadata=true` (admin tokens only) and `SHOEBOX_KEEP_METADATA` store the bytes as
/// they came; a file that only claims to be a picture is stored as it came, not refused.
#[test]
fn metadata_is_kept_on_request_and_for_what_is_no_picture() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read(tagged(dir.path(), "kept.jpg", "320x240")).unwrap();
    let s = TestServer::start();
    let item = s.upload("kept.jpg", &original, &[("keep_metadata", "true")]);
    assert_eq!(item["hash"], sha256_hex(&original));
    assert!(item.get("stripped").is_none(), "{item}");

    let made: Value = s
        .authed(Method::POST, "/api/tokens")
        .json(&serde_json::json!({"name": "uploader", "scope": "upload"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = made["token"].as_str().unwrap();
    let res = s
        .client()
        .post(s.url("/api/media?filename=kept.jpg&keep_metadata=true"))
        .bearer_auth(token)
        .body(original.clone())
        .send()
        .unwrap();
    assert_eq!(common::error_code(res, 403), "insufficient_scope");

    let fake = b"\xFF\xD8 this only claims to be a JPEG".to_vec();
    let item = s.upload("fake.jpg", &fake, &[]);
    assert_eq!(item["hash"], sha256_hex(&fake), "stored as it came");
    assert!(item.get("stripped").is_none(), "{item}");

    let keeping = TestServer::builder()
        .env("SHOEBOX_KEEP_METADATA", "1")
        .start();
    let item = keeping.upload("kept.jpg", &original, &[]);
    assert_eq!(item["hash"], sha256_hex(&original));
}

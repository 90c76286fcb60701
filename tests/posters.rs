//! Black-box tests of video posters and lengths, with a clip and a tone made by the real
//! ffmpeg, and posters measured by ImageMagick.

mod common;

use std::path::Path;
use std::time::Duration;

use common::tools::{self, Tool};
use common::TestServer;
use serde_json::Value;

/// Whether ffmpeg, ffprobe and ImageMagick are here.
fn tools_present() -> bool {
    tools::present(&[Tool::Ffmpeg, Tool::ImageMagick])
}

/// A file made by ffmpeg from one of its test sources.
fn made(dir: &Path, name: &str, args: &[&str]) -> Vec<u8> {
    let path = dir.join(name);
    let mut all = vec!["-nostdin", "-v", "error", "-y"];
    all.extend_from_slice(args);
    all.push(path.to_str().unwrap());
    tools::run("ffmpeg", &all);
    std::fs::read(path).unwrap()
}

/// A `size` test-pattern clip of `seconds`, H.264 in MP4.
fn clip(dir: &Path, size: &str, seconds: &str) -> Vec<u8> {
    let source = format!("testsrc=size={size}:rate=25");
    made(
        dir,
        &format!("clip-{size}.mp4"),
        &[
            "-f", "lavfi", "-i", &source, "-t", seconds, "-pix_fmt", "yuv420p",
        ],
    )
}

fn record(s: &TestServer, id: &str) -> Value {
    s.authed(reqwest::Method::GET, &format!("/api/media/{id}"))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// An MP4 gets its poster, its length and its size after the upload; the poster is served,
/// sized like any image; audio gets its length.
#[test]
fn videos_get_a_poster_a_length_and_a_size() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clip = clip(dir.path(), "640x360", "2");
    let tone = made(
        dir.path(),
        "tone.wav",
        &["-f", "lavfi", "-i", "sine=frequency=440:duration=1.5"],
    );
    let s = TestServer::start();
    assert_eq!(s.status()["posters"], true);
    let item = s.upload("clip.mp4", &clip, &[]);
    assert_eq!(item["kind"], "video");
    assert_eq!(item["poster"], "pending", "made after the 201: {item}");
    let id = item["id"].as_str().unwrap().to_owned();
    common::eventually("the poster", Duration::from_secs(60), || {
        record(&s, &id)["poster"] != "pending"
    });
    let r = record(&s, &id);
    assert_eq!(r["poster"], "ready", "{r}");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360))
    );
    let duration = r["duration"].as_f64().unwrap();
    assert!((duration - 2.0).abs() < 0.1, "{duration}");
    assert_eq!(r["poster_url"], format!("/m/{id}?poster=1"));

    let res = s.get(&format!("/m/{id}?poster=1")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(
        tools::size_of(dir.path(), &res.bytes().unwrap()),
        (640, 360)
    );
    let res = s
        .get(&format!("/m/{id}?poster=1&w=320&format=jpeg"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        tools::size_of(dir.path(), &res.bytes().unwrap()),
        (320, 180)
    );
    assert_eq!(r["thumbnail_url"], format!("/m/{id}?poster=1&w=320"));

    let audio = s.upload("tone.wav", &tone, &[]);
    let audio_id = audio["id"].as_str().unwrap().to_owned();
    common::eventually("the tone's length", Duration::from_secs(60), || {
        record(&s, &audio_id)["duration"].is_number()
    });
    let length = record(&s, &audio_id)["duration"].as_f64().unwrap();
    assert!((length - 1.5).abs() < 0.1, "{length}");
    let res = s.get(&format!("/m/{audio_id}?poster=1")).send().unwrap();
    assert_eq!(common::error_code(res, 400), "bad_request");
}

/// The files named `name` under `dir`, at any depth.
fn files_named(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_named(&path, name));
        } else if entry.file_name() == name {
            found.push(path);
        }
    }
    found
}

/// A poster frame is a copy of what its video gives: when its file is gone (`variants/`
/// cleared, a disk restored without it), the next request makes it again, for the poster
/// itself and for a sized one, instead of a `ready` poster that answers `404`.
#[test]
fn a_poster_whose_file_is_gone_is_made_again() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clip = clip(dir.path(), "320x240", "1");
    let s = TestServer::start();
    let id = s.upload("clip.mp4", &clip, &[])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    common::eventually("the poster", Duration::from_secs(60), || {
        record(&s, &id)["poster"] == "ready"
    });
    let variants = s.data_dir.join("variants");
    let posters = files_named(&variants, "poster.jpg");
    assert_eq!(posters.len(), 1, "{posters:?}");
    std::fs::remove_file(&posters[0]).unwrap();

    let res = s.get(&format!("/m/{id}?poster=1")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(
        tools::size_of(dir.path(), &res.bytes().unwrap()),
        (320, 240)
    );
    assert!(posters[0].is_file(), "made again where it was");

    std::fs::remove_file(&posters[0]).unwrap();
    let res = s
        .get(&format!("/m/{id}?poster=1&w=160&format=jpeg"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        tools::size_of(dir.path(), &res.bytes().unwrap()),
        (160, 120)
    );
    assert!(posters[0].is_file());
    assert_eq!(record(&s, &id)["poster"], "ready");
}

/// Without ffmpeg on PATH a video upload succeeds all the same, with no poster, and the status
/// page says posters are off.
#[test]
fn without_ffmpeg_videos_are_stored_without_posters() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clip = clip(dir.path(), "320x240", "1");
    let s = TestServer::builder().env("PATH", "/nonexistent").start();
    assert_eq!(s.status()["posters"], false);
    let item = s.upload("clip.mp4", &clip, &[]);
    assert_eq!(item["kind"], "video");
    assert!(item.get("poster").is_none(), "{item}");
    let id = item["id"].as_str().unwrap();
    assert_eq!(s.media_bytes(id), clip);
    let res = s.get(&format!("/m/{id}?poster=1")).send().unwrap();
    assert_eq!(common::error_code(res, 404), "not_found");
}

/// A poster a SIGKILL interrupted is made at the next start: the record said `pending`, and
/// the restarted server finds it through the kind index.
#[test]
fn a_poster_a_crash_interrupted_is_made_after_the_restart() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clip = clip(dir.path(), "320x240", "1");
    // An ffmpeg that answers `-version` at once and takes its time with any real work.
    let slow = dir.path().join("slow-tools");
    std::fs::create_dir(&slow).unwrap();
    for (name, real) in [
        ("ffmpeg", "/usr/bin/ffmpeg"),
        ("ffprobe", "/usr/bin/ffprobe"),
    ] {
        let script = format!(
            "#!/bin/sh\ncase \"$1\" in -version) exec {real} -version;; esac\n/bin/sleep 20\nexec {real} \"$@\"\n"
        );
        let path = slow.join(name);
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let s = TestServer::builder()
        .env("PATH", slow.to_str().unwrap())
        .start();
    let item = s.upload("clip.mp4", &clip, &[]);
    assert_eq!(item["poster"], "pending");
    let id = item["id"].as_str().unwrap().to_owned();
    // A SIGKILL while the poster is being made; the restart has the real tools.
    let s = s.restart();
    common::eventually(
        "the poster after the restart",
        Duration::from_secs(60),
        || record(&s, &id)["poster"] == "ready",
    );
    assert_eq!(
        s.get(&format!("/m/{id}?poster=1")).send().unwrap().status(),
        200
    );
}

/// A playlist uploaded as a video names a video elsewhere on the server's machine: ffmpeg is
/// kept to reading the stored file itself as a media container, so the other file is never
/// read (no length learned, no poster of it made).
#[test]
fn a_playlist_posing_as_a_video_reads_nothing_else() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    made(
        dir.path(),
        "elsewhere.ts",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=25",
            "-t",
            "1",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "mpegts",
        ],
    );
    let playlist = format!(
        "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1,\nfile://{}\n#EXT-X-ENDLIST\n",
        dir.path().join("elsewhere.ts").display()
    );
    let s = TestServer::start();
    let item = s.upload("holiday.mp4", playlist.as_bytes(), &[]);
    assert_eq!(item["poster"], "pending", "{item}");
    let id = item["id"].as_str().unwrap().to_owned();
    common::eventually("the poster's fate", Duration::from_secs(60), || {
        record(&s, &id)["poster"] != "pending"
    });
    let r = record(&s, &id);
    assert_eq!(r["poster"], "failed", "{r}");
    assert!(r.get("duration").is_none(), "{r}");
    let res = s.get(&format!("/m/{id}?poster=1")).send().unwrap();
    assert_eq!(common::error_code(res, 404), "not_found");
}

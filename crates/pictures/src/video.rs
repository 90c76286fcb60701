//! Videos and audio, through ffprobe and ffmpeg run as subprocesses: a video's length, size and
//! poster frame, an audio file's length. They run only when both programs are on `PATH`, each
//! under a time limit, with arguments that no client shapes: the input is a stored blob, named
//! by its hash, read only from disk and only as a media container, and the output a file of the
//! server's own.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::PictureError;

/// How long one ffprobe or ffmpeg run may take before it is killed.
pub const TIME_LIMIT: Duration = Duration::from_secs(60);

/// What ffmpeg may do with a stored file: read it from disk, as one of the containers uploads
/// come in. Without these a playlist uploaded as a video (HLS, concat) would make ffmpeg open
/// the files or URLs it names.
const INPUT_LIMITS: [&str; 4] = [
    "-protocol_whitelist",
    "file",
    "-format_whitelist",
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpeg,mpegts,ogg,wav,mp3,flac,aac,flv",
];

/// Whether ffmpeg and ffprobe are installed, so that posters and lengths can be made.
pub fn available() -> bool {
    ["ffmpeg", "ffprobe"].iter().all(|program| {
        Command::new(program)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// What ffprobe read of a file.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Probe {
    /// Seconds.
    pub duration: Option<f64>,
    /// The first video stream's width as shown (after a phone's rotation).
    pub width: Option<u32>,
    /// Its height as shown.
    pub height: Option<u32>,
}

/// Runs a command, killing it past `limit`; its output, or why it failed.
fn run(mut command: Command, limit: Duration) -> Result<Output, PictureError> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let start = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(PictureError::Encode(format!(
                "{:?} ran past {} s and was stopped",
                command.get_program(),
                limit.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(PictureError::Undecodable(
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .chars()
                .take(300)
                .collect(),
        ));
    }
    Ok(out)
}

/// The length of a video or audio file, and a video's size as shown.
pub fn probe(path: &Path) -> Result<Probe, PictureError> {
    let mut command = Command::new("ffprobe");
    command.args(INPUT_LIMITS);
    command.args([
        "-v",
        "error",
        "-show_entries",
        "format=duration:stream=codec_type,width,height:stream_side_data=rotation",
        "-of",
        "json",
    ]);
    command.arg(path);
    let out = run(command, TIME_LIMIT)?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| PictureError::Undecodable(format!("ffprobe's answer: {e}")))?;
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d >= 0.0);
    let video = v["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == "video"));
    let size = |key: &str| {
        video
            .and_then(|s| s[key].as_u64())
            .and_then(|n| u32::try_from(n).ok())
    };
    let turned = video
        .and_then(|s| s["side_data_list"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|d| d["rotation"].as_i64())
        .any(|r| r.rem_euclid(180) == 90);
    let (width, height) = if turned {
        (size("height"), size("width"))
    } else {
        (size("width"), size("height"))
    };
    Ok(Probe {
        duration,
        width,
        height,
    })
}

/// A poster frame of a video, as a JPEG at most 1920 pixels wide: the frame one second in,
/// or the first frame of a shorter video.
pub fn poster(path: &Path, scratch: &Path) -> Result<Vec<u8>, PictureError> {
    let out = scratch.join("poster.jpg");
    for start in ["1", "0"] {
        let mut command = Command::new("ffmpeg");
        command.args(["-nostdin", "-v", "error", "-y", "-ss", start]);
        command.args(INPUT_LIMITS);
        command.arg("-i");
        command.arg(path);
        command.args([
            "-frames:v",
            "1",
            "-vf",
            "scale=min(1920\\,iw):-2",
            "-q:v",
            "3",
            "-f",
            "image2",
        ]);
        command.arg(&out);
        run(command, TIME_LIMIT)?;
        match std::fs::read(&out) {
            Ok(bytes) if !bytes.is_empty() => return Ok(bytes),
            _ => continue,
        }
    }
    Err(PictureError::Undecodable(
        "ffmpeg found no frame to make a poster of".into(),
    ))
}

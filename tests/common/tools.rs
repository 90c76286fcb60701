//! The outside tools the picture and video tests make and measure their files with:
//! ImageMagick, exiftool and ffmpeg, from Debian's packages (`.ci/run` installs them).

use std::path::Path;
use std::process::Command;

/// A tool a test needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// `convert` and `identify`, the real ones (the machine image's `convert` is a stand-in
    /// until ImageMagick is installed).
    ImageMagick,
    /// `exiftool`.
    Exiftool,
    /// `ffmpeg` and `ffprobe`.
    Ffmpeg,
}

fn found(tool: Tool) -> bool {
    let runs = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    match tool {
        Tool::ImageMagick => Command::new("identify")
            .arg("-version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("ImageMagick")),
        Tool::Exiftool => runs("exiftool", "-ver"),
        Tool::Ffmpeg => runs("ffmpeg", "-version") && runs("ffprobe", "-version"),
    }
}

/// Whether every one of `tools` is installed; when one is not, says so through
/// [`unavailable`](super::unavailable), which fails the test under `CI=true`.
pub fn present(tools: &[Tool]) -> bool {
    let missing: Vec<Tool> = tools.iter().copied().filter(|&t| !found(t)).collect();
    if !missing.is_empty() {
        super::unavailable(&format!(
            "{missing:?} needed (apt-get install imagemagick libimage-exiftool-perl ffmpeg)"
        ));
    }
    missing.is_empty()
}

/// Runs a tool and answers what it printed; panics when it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The pixel size of an encoded image, by ImageMagick's `identify`.
pub fn size_of(dir: &Path, bytes: &[u8]) -> (u32, u32) {
    let path = dir.join(format!("measured-{}", super::sha256_hex(bytes)));
    std::fs::write(&path, bytes).unwrap();
    let out = run("identify", &["-format", "%w %h", path.to_str().unwrap()]);
    let mut it = out.split_whitespace().map(|n| n.parse::<u32>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

//! Durable file writes: one recipe for every part of Shoebox that writes a whole file (the
//! store's small files, the credentials under `secrets/`, the commands' archives and maps).
//! Write a temp file beside the target, fsync it, rename it over the target, fsync the
//! directory. Readers see the old file or the new one, never a mix, and a power cut keeps one
//! of them: on Linux a file's own fsync does not persist its name, so the directory's fsync is
//! part of the recipe, not an option.
//!
//! fsyncs are the cost at the heart of every upload; their durations go to whoever registered
//! an observer ([`observe_syncs`](crate::durable::observe_syncs)), the server's metrics, so
//! that this leaf depends on no part.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static OBSERVER: OnceLock<fn(Duration)> = OnceLock::new();

/// Registers what hears how long each fsync (or database flush) took; the first one stays.
pub fn observe_syncs(observer: fn(Duration)) {
    let _ = OBSERVER.set(observer);
}

/// Runs an fsync (or a flush) and reports how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    if let Some(observe) = OBSERVER.get() {
        observe(start.elapsed());
    }
    out
}

/// fsyncs a directory, so that a rename or an unlink inside it survives a power cut.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    timed(|| File::open(dir).and_then(|d| d.sync_all()))
}

/// Sets a file's permission bits.
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Writes `bytes` to `target` in `dir` by the recipe above, with permission bits `mode`.
pub fn write_atomically(dir: &Path, target: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_with(dir, target, mode, |file| file.write_all(bytes))
}

/// The recipe for a file written as a stream (an archive): `fill` writes it; on an error
/// nothing is left but the old file, if any.
pub fn write_with<E: From<io::Error>>(
    dir: &Path,
    target: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> Result<(), E>,
) -> Result<(), E> {
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    set_mode(tmp.path(), mode)?;
    fill(tmp.as_file_mut())?;
    timed(|| tmp.as_file().sync_all())?;
    tmp.persist(target).map_err(|e| e.error)?;
    fsync_dir(dir)?;
    Ok(())
}

/// The directory a file's temp file goes in: its own, so that the rename stays on one disk.
pub fn dir_of(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        write_atomically(dir.path(), &target, b"first", 0o600).unwrap();
        let failed: Result<(), io::Error> = write_with(dir.path(), &target, 0o600, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("the stream broke"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"first");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file is left");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(dir_of(Path::new("map.csv")), PathBuf::from("."));
    }
}

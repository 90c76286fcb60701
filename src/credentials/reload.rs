//! A small file under `secrets/` that a command may replace while the server runs (`shoebox
//! token …`, `shoebox rotate-url-key`): parsed once, and parsed again when it has changed,
//! which is checked at most once a second. Every save is a new file renamed into place, so its
//! inode changes even when two saves share a coarse modification time.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use super::CredentialError;

type FileVersion = (u64, Option<SystemTime>, u64);

fn version_of(path: &Path) -> Option<FileVersion> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).ok()?;
    Some((m.ino(), m.modified().ok(), m.len()))
}

/// Turns the file's bytes (`None` when it does not exist) into its value.
pub type Parse<T> = fn(&Path, Option<&[u8]>) -> Result<T, CredentialError>;

pub struct Reloading<T> {
    path: PathBuf,
    parse: Parse<T>,
    current: RwLock<(Option<FileVersion>, Arc<T>)>,
    last_check: Mutex<Instant>,
}

impl<T> Reloading<T> {
    pub fn open(path: PathBuf, parse: Parse<T>) -> Result<Self, CredentialError> {
        let (version, value) = read(&path, parse)?;
        Ok(Reloading {
            path,
            parse,
            current: RwLock::new((version, Arc::new(value))),
            last_check: Mutex::new(Instant::now()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value now, re-read first when the file changed since it was last read.
    pub fn get(&self) -> Arc<T> {
        self.refresh();
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// Re-reads the file now (after this process saved it).
    pub fn reload(&self) -> Result<(), CredentialError> {
        let (version, value) = read(&self.path, self.parse)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (version, Arc::new(value));
        Ok(())
    }

    fn refresh(&self) {
        let mut last = self.last_check.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() < Duration::from_secs(1) {
            return;
        }
        *last = Instant::now();
        let cached = self.current.read().unwrap_or_else(|p| p.into_inner()).0;
        if version_of(&self.path) != cached {
            if let Err(e) = self.reload() {
                tracing::error!(
                    file = %self.path.display(), error = %e,
                    "could not reload a changed file; keeping what was read before"
                );
            }
        }
    }
}

/// The version is taken before reading: a change in between is then seen next time.
fn read<T>(path: &Path, parse: Parse<T>) -> Result<(Option<FileVersion>, T), CredentialError> {
    let version = version_of(path);
    match fs::read(path) {
        Ok(bytes) => Ok((version, parse(path, Some(&bytes))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((None, parse(path, None)?)),
        Err(e) => Err(CredentialError::io("read a file under secrets/", e)),
    }
}

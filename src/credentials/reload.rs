//! A small credential that a command or another instance may replace while the server runs
//! (`shoebox token …`, `shoebox rotate-url-key`, a token made on another instance): parsed
//! once, and parsed again when it has changed, which is checked at most once a second. Every
//! save of a file is a new file renamed into place, so its inode changes even when two saves
//! share a coarse modification time; every save of a shared value raises its version.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::{CredentialError, SecretsDir, Version};

/// Turns the credential's bytes (`None` when there is none) into its value.
pub type Parse<T> = fn(&Path, Option<&[u8]>) -> Result<T, CredentialError>;

pub struct Reloading<T> {
    secrets: SecretsDir,
    path: PathBuf,
    parse: Parse<T>,
    current: RwLock<(Option<Version>, Arc<T>)>,
    last_check: Mutex<Instant>,
}

impl<T> Reloading<T> {
    pub fn open(
        secrets: &SecretsDir,
        name: &str,
        parse: Parse<T>,
    ) -> Result<Self, CredentialError> {
        let path = secrets.file(name);
        let (version, value) = read(secrets, &path, parse)?;
        Ok(Reloading {
            secrets: secrets.clone(),
            path,
            parse,
            current: RwLock::new((version, Arc::new(value))),
            last_check: Mutex::new(Instant::now()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value now, re-read first when it changed since it was last read.
    pub fn get(&self) -> Arc<T> {
        self.refresh();
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// Re-reads it now (after this process saved it).
    pub fn reload(&self) -> Result<(), CredentialError> {
        self.fresh().map(drop)
    }

    /// Re-reads it now, and answers it with what it was read at: the copy a change is made
    /// from (see [`SecretsDir::replace`]).
    pub fn fresh(&self) -> Result<(Option<Version>, Arc<T>), CredentialError> {
        let (version, value) = read(&self.secrets, &self.path, self.parse)?;
        let value = Arc::new(value);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (version, value.clone());
        Ok((version, value))
    }

    /// Looks for a change now rather than within the second, unless it looked in the last
    /// tenth of one; answers whether the value changed. For a lookup that missed: a token made
    /// on another instance a moment ago works here at once, and a stream of unknown tokens
    /// costs at most ten checks a second.
    pub fn recheck(&self) -> bool {
        let before = self.current.read().unwrap_or_else(|p| p.into_inner()).0;
        self.refresh_after(Duration::from_millis(100));
        before != self.current.read().unwrap_or_else(|p| p.into_inner()).0
    }

    fn refresh(&self) {
        self.refresh_after(Duration::from_secs(1));
    }

    fn refresh_after(&self, interval: Duration) {
        let mut last = self.last_check.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() < interval {
            return;
        }
        *last = Instant::now();
        let cached = self.current.read().unwrap_or_else(|p| p.into_inner()).0;
        match self.secrets.version(&self.path) {
            Ok(now) if now == cached => {}
            Ok(_) => {
                if let Err(e) = self.reload() {
                    tracing::error!(
                        file = %self.path.display(), error = %e,
                        "could not reload a changed credential; keeping what was read before"
                    );
                }
            }
            // The database does not answer: what was read before stands until it does.
            Err(e) => tracing::warn!(
                file = %self.path.display(), error = %e,
                "could not check a credential for changes; keeping what was read before"
            ),
        }
    }
}

fn read<T>(
    secrets: &SecretsDir,
    path: &Path,
    parse: Parse<T>,
) -> Result<(Option<Version>, T), CredentialError> {
    match secrets.read(path)? {
        Some((version, bytes)) => Ok((Some(version), parse(path, Some(&bytes))?)),
        None => Ok((None, parse(path, None)?)),
    }
}

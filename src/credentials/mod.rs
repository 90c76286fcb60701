//! Credentials: what proves who a caller is, each kept in a file of its own under `secrets/`
//! (mode 0600), never in the store's database; or, when the records are in PostgreSQL, as
//! values there that every instance shares, sealed under a key from the environment
//! ([`shared`]):
//! - the admin token, of which only a sha256 is kept, and the session key that signs the web
//!   app's cookies ([`secrets`]);
//! - named, scoped API tokens, kept as hashes ([`api_tokens`]);
//! - the secret access keys of tokens made with S3 credentials, kept whole since SigV4 needs
//!   them ([`s3_keys`]);
//! - the keys that sign expiring URLs ([`signing`]).
//!
//! The store knows nothing of them and they know nothing of the store: they share only the
//! durable-write recipe ([`crate::durable`]), and a command that replaces one of these files
//! while the server runs is seen within a second ([`reload`]).

use std::path::{Path, PathBuf};

/// Named, scoped API tokens kept as hashes.
pub mod api_tokens;
/// Small files under `secrets/` that the server re-reads when a command replaces them.
pub mod reload;
/// The secret access keys of S3 credentials.
pub mod s3_keys;
/// The admin token (kept as a hash) and the session key, with constant-time checks.
pub mod secrets;
/// Credentials shared by the instances in PostgreSQL, sealed under `SHOEBOX_SECRET_KEY`.
mod shared;
/// Signed, expiring URLs for private media, and the keys that sign them.
pub mod signing;

/// A credential file could not be read, written or accepted.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Reading or writing a file under `secrets/` failed.
    #[error("could not {what}: {source}")]
    Io {
        /// What was being done, as a phrase after "could not".
        what: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file under `secrets/` is damaged; the message says which and how to mend it.
    #[error("{0}")]
    Damaged(String),
    /// The database that holds the shared credentials did not answer; try again.
    #[error("{0}")]
    Unavailable(String),
    /// A value the caller gave was refused, such as a token's name.
    #[error("{field} must be {expected}")]
    Invalid {
        /// The field's name.
        field: &'static str,
        /// What it must be, as a phrase after "must be".
        expected: &'static str,
    },
}

impl CredentialError {
    pub(crate) fn io(what: &'static str, source: std::io::Error) -> Self {
        CredentialError::Io { what, source }
    }

    /// Whether the disk holding `secrets/` is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, CredentialError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
    }
}

/// Where the credentials are kept: files under a data directory's `secrets/`, or, when the
/// records are in PostgreSQL, values there that every instance shares (see [`shared`]).
#[derive(Debug, Clone)]
pub struct SecretsDir {
    dir: PathBuf,
    shared: Option<std::sync::Arc<shared::SharedSecrets>>,
}

/// What a credential was read at: a file's identity, or a shared value's version. A change
/// saved from a copy read at an older version is refused (see [`SecretsDir::replace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The file's inode, modification time and length.
    File(u64, Option<std::time::SystemTime>, u64),
    /// The shared value's version.
    Shared(i64),
}

impl SecretsDir {
    /// The folder at `dir`, which the data directory's preparation has made (mode 0700).
    pub fn new(dir: PathBuf) -> Self {
        SecretsDir { dir, shared: None }
    }

    /// Credentials shared in PostgreSQL, sealed under `key` (`SHOEBOX_SECRET_KEY`); `dir` keeps
    /// only what is this instance's own (a generated admin token for its operator to read).
    pub fn shared(
        dir: PathBuf,
        pg: std::sync::Arc<crate::store::PgMeta>,
        key: &str,
    ) -> Result<Self, CredentialError> {
        Ok(SecretsDir {
            dir,
            shared: Some(std::sync::Arc::new(shared::SharedSecrets::new(pg, key)?)),
        })
    }

    /// The credentials of a store: shared when its records are in PostgreSQL (which then
    /// needs `key`), else the files under its `secrets/`.
    pub fn of_store(
        store: &crate::store::Store,
        key: Option<&str>,
    ) -> Result<Self, CredentialError> {
        let dir = store.layout().secrets();
        match (store.database(), key) {
            (None, _) => Ok(Self::new(dir)),
            (Some(pg), Some(key)) => Self::shared(dir, pg.clone(), key),
            (Some(_), None) => Err(CredentialError::Invalid {
                field: "SHOEBOX_SECRET_KEY",
                expected: "set with SHOEBOX_DATABASE_URL: it seals the credentials the \
                           instances share",
            }),
        }
    }

    /// The path of one credential file; its file name names the shared value.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A credential and what it was read at; `None` when there is none.
    pub fn read(&self, path: &Path) -> Result<Option<(Version, Vec<u8>)>, CredentialError> {
        if let Some(shared) = &self.shared {
            return shared.read(name_of(path)?);
        }
        // The version is taken before reading: a change in between is then seen next time.
        let Some(version) = file_version(path) else {
            return Ok(None);
        };
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some((version, bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CredentialError::io("read a file under secrets/", e)),
        }
    }

    /// What a credential is at now, cheaply: to tell whether a copy is current.
    pub fn version(&self, path: &Path) -> Result<Option<Version>, CredentialError> {
        match &self.shared {
            Some(shared) => shared.version(name_of(path)?),
            None => Ok(file_version(path)),
        }
    }

    /// Writes a credential, whatever it was: by the durable recipe (mode 0600), or as the
    /// shared value.
    pub(crate) fn write(&self, target: &Path, bytes: &[u8]) -> Result<(), CredentialError> {
        if let Some(shared) = &self.shared {
            return shared.write(name_of(target)?, bytes);
        }
        self.write_here(target, bytes)
    }

    /// Writes a credential made from the copy read at `read` (`None`: there was none) unless
    /// it changed since; answers whether it was written. Shared values are changed by several
    /// instances, so a `false` means: read again and redo the change. A file is written
    /// whatever happened (its writers in this process hold a lock).
    pub(crate) fn replace(
        &self,
        target: &Path,
        read: Option<Version>,
        bytes: &[u8],
    ) -> Result<bool, CredentialError> {
        match &self.shared {
            Some(shared) => shared.replace(name_of(target)?, read, bytes),
            None => self.write_here(target, bytes).map(|()| true),
        }
    }

    /// Writes a file under this instance's own `secrets/`, shared setup or not.
    pub(crate) fn write_here(&self, target: &Path, bytes: &[u8]) -> Result<(), CredentialError> {
        crate::durable::write_atomically(&self.dir, target, bytes, 0o600)
            .map_err(|e| CredentialError::io("write a file under secrets/", e))
    }
}

/// Every credential, by its file's name.
pub const ALL: [&str; 5] = [
    "admin_token.sha256",
    "session_key",
    "tokens.json",
    "s3_keys.json",
    "url_keys.json",
];

/// Copies every credential `from` has to `to` (files to shared values, or back), replacing
/// what `to` had; answers the names copied.
pub fn copy_all(from: &SecretsDir, to: &SecretsDir) -> Result<Vec<&'static str>, CredentialError> {
    let mut copied = Vec::new();
    for name in ALL {
        if let Some((_, bytes)) = from.read(&from.file(name))? {
            to.write(&to.file(name), &bytes)?;
            copied.push(name);
        }
    }
    Ok(copied)
}

fn name_of(path: &Path) -> Result<&str, CredentialError> {
    path.file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CredentialError::Damaged(format!("{} names no credential", path.display())))
}

fn file_version(path: &Path) -> Option<Version> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Version::File(m.ino(), m.modified().ok(), m.len()))
}

#[cfg(test)]
pub(crate) fn temp_secrets() -> (tempfile::TempDir, SecretsDir) {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    (dir, SecretsDir::new(secrets))
}

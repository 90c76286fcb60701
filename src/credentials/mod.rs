//! Credentials: what proves who a caller is, each kept in a file of its own under `secrets/`
//! (mode 0600), never in the store's database:
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

/// The `secrets/` folder of a data directory.
#[derive(Debug, Clone)]
pub struct SecretsDir(PathBuf);

impl SecretsDir {
    /// The folder at `dir`, which the data directory's preparation has made (mode 0700).
    pub fn new(dir: PathBuf) -> Self {
        SecretsDir(dir)
    }

    /// The path of one credential file.
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes a credential file by the durable recipe, mode 0600: every credential file is
    /// written here.
    pub(crate) fn write(&self, target: &Path, bytes: &[u8]) -> Result<(), CredentialError> {
        crate::durable::write_atomically(&self.0, target, bytes, 0o600)
            .map_err(|e| CredentialError::io("write a file under secrets/", e))
    }
}

#[cfg(test)]
pub(crate) fn temp_secrets() -> (tempfile::TempDir, SecretsDir) {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    (dir, SecretsDir::new(secrets))
}

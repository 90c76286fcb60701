//! Credentials that every instance shares, when the records are in PostgreSQL: each credential
//! file becomes a value of the database's `shared_values`, sealed here before it leaves the
//! process. A database dump, a backup of it or a replica shows no token hash, S3 secret,
//! session key or URL-signing key without `SHOEBOX_SECRET_KEY`, which only the instances'
//! environment holds.
//!
//! Sealing is XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`): a random 24-byte nonce per
//! value, and the value's name as associated data, so a sealed value moved under another name
//! does not open. The key is SHA-256 of `SHOEBOX_SECRET_KEY` (at least 32 characters, meant to
//! be random: Render's `generateValue` makes one).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use super::{CredentialError, Version};
use crate::store::{PgMeta, StoreError};

/// The first byte of every sealed value: the format, should it ever change.
const SEALED_V1: u8 = 1;
const NONCE: usize = 24;
/// The shortest `SHOEBOX_SECRET_KEY` taken.
const MIN_KEY_CHARS: usize = 32;

pub(super) struct SharedSecrets {
    pg: std::sync::Arc<PgMeta>,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SharedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecrets(in PostgreSQL, sealed)")
    }
}

fn from_store(e: StoreError) -> CredentialError {
    match e {
        StoreError::Unavailable { .. } => CredentialError::Unavailable(e.to_string()),
        e => CredentialError::Damaged(format!("the shared credentials: {e}")),
    }
}

impl SharedSecrets {
    pub(super) fn new(pg: std::sync::Arc<PgMeta>, key: &str) -> Result<Self, CredentialError> {
        if key.chars().count() < MIN_KEY_CHARS {
            return Err(CredentialError::Invalid {
                field: "SHOEBOX_SECRET_KEY",
                expected: "at least 32 characters, random (e.g. openssl rand -base64 32)",
            });
        }
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let cipher = XChaCha20Poly1305::new(&digest.into());
        Ok(SharedSecrets { pg, cipher })
    }

    fn seal(&self, name: &str, bytes: &[u8]) -> Result<Vec<u8>, CredentialError> {
        let nonce: [u8; NONCE] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: bytes,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| CredentialError::Damaged(format!("could not seal {name}")))?;
        let mut out = Vec::with_capacity(1 + NONCE + sealed.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, CredentialError> {
        let refused = || {
            CredentialError::Damaged(format!(
                "the shared credential {name} does not open with this SHOEBOX_SECRET_KEY: every \
                 instance needs the same key"
            ))
        };
        let (&format, rest) = sealed.split_first().ok_or_else(refused)?;
        if format != SEALED_V1 || rest.len() < NONCE {
            return Err(refused());
        }
        let (nonce, body) = rest.split_at(NONCE);
        let nonce: [u8; NONCE] = nonce.try_into().map_err(|_| refused())?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| refused())
    }

    pub(super) fn read(&self, name: &str) -> Result<Option<(Version, Vec<u8>)>, CredentialError> {
        match self.pg.value(name).map_err(from_store)? {
            Some((version, sealed)) => {
                Ok(Some((Version::Shared(version), self.open(name, &sealed)?)))
            }
            None => Ok(None),
        }
    }

    pub(super) fn version(&self, name: &str) -> Result<Option<Version>, CredentialError> {
        Ok(self
            .pg
            .value_version(name)
            .map_err(from_store)?
            .map(Version::Shared))
    }

    /// Stores `bytes` whatever the value was: read, then replaced at that version, again until
    /// no other instance came in between.
    pub(super) fn write(&self, name: &str, bytes: &[u8]) -> Result<(), CredentialError> {
        for _ in 0..10 {
            let current = self.version(name)?;
            if self.replace(name, current, bytes)? {
                return Ok(());
            }
        }
        Err(CredentialError::Unavailable(format!(
            "{name} kept changing on other instances; try again"
        )))
    }

    pub(super) fn replace(
        &self,
        name: &str,
        read: Option<Version>,
        bytes: &[u8],
    ) -> Result<bool, CredentialError> {
        let read = match read {
            None => None,
            Some(Version::Shared(v)) => Some(v),
            // A file's version: not one of ours, so the value changed.
            Some(Version::File(..)) => return Ok(false),
        };
        let sealed = self.seal(name, bytes)?;
        self.pg.put_value(name, &sealed, read).map_err(from_store)
    }
}

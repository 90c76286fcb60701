//! S3 secret access keys. SigV4 signs each request with the secret itself, so unlike a token's
//! value the server must keep it whole: in `secrets/s3_keys.json` (mode 0600, written
//! atomically), never in the store's database, never in a log or a backup. The file maps an
//! access key id to its secret; the API token that names the id says who it is and whether it
//! still works ([`Tokens::s3_secret`](super::api_tokens::Tokens::s3_secret)). Like
//! `tokens.json`, the server re-reads it when a command replaces it.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::reload::Reloading;
use super::CredentialError;
use super::SecretsDir;

const FILE: &str = "s3_keys.json";

/// Access key ids start with this (as AWS's start with `AKIA`), so one is recognisable.
pub const ACCESS_KEY_PREFIX: &str = "SBX";
const ACCESS_KEY_LEN: usize = 20;
const ACCESS_KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_LEN: usize = 40;
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A new pair of S3 credentials; the secret is shown to its owner once. Its `Debug` leaves the
/// secret out.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Key {
    /// `SBX` and 17 uppercase letters or digits; public, listed with its token.
    pub access_key_id: String,
    /// 40 characters of `[A-Za-z0-9+/]` (240 random bits).
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Key")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"…")
            .finish()
    }
}

fn random_from(alphabet: &[u8], len: usize) -> String {
    // thread_rng is a cryptographically secure generator, as rand::random (tokens) is.
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

impl S3Key {
    /// A new random pair.
    pub fn generate() -> S3Key {
        S3Key {
            access_key_id: format!(
                "{ACCESS_KEY_PREFIX}{}",
                random_from(
                    ACCESS_KEY_ALPHABET,
                    ACCESS_KEY_LEN - ACCESS_KEY_PREFIX.len()
                )
            ),
            secret_access_key: random_from(SECRET_ALPHABET, SECRET_LEN),
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
struct KeyFile {
    /// Access key id → secret access key.
    keys: BTreeMap<String, String>,
}

fn parse(
    path: &std::path::Path,
    bytes: Option<&[u8]>,
) -> Result<BTreeMap<String, String>, CredentialError> {
    let Some(bytes) = bytes else {
        return Ok(BTreeMap::new());
    };
    // serde_json's error names a line and column, never the text it read: no secret leaks.
    let file: KeyFile = serde_json::from_slice(bytes)
        .map_err(|e| CredentialError::Damaged(format!("{} does not parse: {e}", path.display())))?;
    Ok(file.keys)
}

/// The secrets of every S3 key, held in memory and re-read when the file changes.
pub(crate) struct S3Keys {
    file: Reloading<BTreeMap<String, String>>,
    secrets: SecretsDir,
}

impl std::fmt::Debug for S3Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.file.get().keys().cloned().collect();
        f.debug_struct("S3Keys")
            .field("access_key_ids", &ids)
            .finish()
    }
}

impl S3Keys {
    pub(crate) fn open(secrets: &SecretsDir) -> Result<S3Keys, CredentialError> {
        Ok(S3Keys {
            file: Reloading::open(secrets, FILE, parse)?,
            secrets: secrets.clone(),
        })
    }

    /// The secret of this access key, from memory (the file is looked at once a second).
    pub(crate) fn secret(&self, access_key_id: &str) -> Option<String> {
        self.file.get().get(access_key_id).cloned()
    }

    /// Looks for a change now (see [`Reloading::recheck`]).
    pub(crate) fn recheck(&self) -> bool {
        self.file.recheck()
    }

    /// Re-reads the file now, as the server does within a second of a change.
    #[cfg(test)]
    pub(crate) fn reload(&self) -> Result<(), CredentialError> {
        self.file.reload()
    }

    /// Rewrites the file with `change` applied to the keys as the file holds them now, unless
    /// it changed nothing (returns false).
    /// Shared by several instances, the keys may change between the read and the write: the
    /// change is then made again on the new keys.
    fn change(
        &self,
        change: impl Fn(&mut BTreeMap<String, String>) -> bool,
    ) -> Result<(), CredentialError> {
        for _ in 0..10 {
            let (read, current) = self.file.fresh()?;
            let mut keys = current.as_ref().clone();
            if !change(&mut keys) {
                return Ok(());
            }
            let bytes = serde_json::to_vec_pretty(&KeyFile { keys }).map_err(|e| {
                CredentialError::Damaged(format!("could not encode the S3 keys: {e}"))
            })?;
            if self.secrets.replace(self.file.path(), read, &bytes)? {
                return self.file.reload();
            }
        }
        Err(CredentialError::Unavailable(
            "the S3 keys kept changing on other instances; try again".into(),
        ))
    }

    /// Stores a key's secret (durably, before a token may name it).
    pub(crate) fn add(&self, key: &S3Key) -> Result<(), CredentialError> {
        self.change(|keys| {
            keys.insert(key.access_key_id.clone(), key.secret_access_key.clone());
            true
        })
    }

    /// Forgets these keys' secrets; the file is rewritten only when one of them is there.
    pub(crate) fn remove(&self, access_key_ids: &[String]) -> Result<(), CredentialError> {
        self.change(|keys| {
            let before = keys.len();
            keys.retain(|id, _| !access_key_ids.contains(id));
            keys.len() != before
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let a = S3Key::generate();
        let b = S3Key::generate();
        assert_ne!(a, b);
        for k in [&a, &b] {
            assert_eq!(k.access_key_id.len(), 20);
            assert!(k.access_key_id.starts_with("SBX"));
            assert!(k
                .access_key_id
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
            assert_eq!(k.secret_access_key.len(), 40);
            assert!(k
                .secret_access_key
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/'));
        }
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let (_dir, secrets) = super::super::temp_secrets();
        let keys = S3Keys::open(&secrets).unwrap();
        let key = S3Key::generate();
        keys.add(&key).unwrap();
        for shown in [format!("{key:?}"), format!("{keys:?}")] {
            assert!(shown.contains(&key.access_key_id), "{shown}");
            assert!(!shown.contains(&key.secret_access_key), "{shown}");
        }
    }

    #[test]
    fn secrets_are_kept_in_a_private_file_that_another_process_reads() {
        let (_dir, secrets) = super::super::temp_secrets();
        let keys = S3Keys::open(&secrets).unwrap();
        assert_eq!(keys.secret("SBXNOSUCHKEY00000000"), None);
        let (a, b) = (S3Key::generate(), S3Key::generate());
        keys.add(&a).unwrap();
        keys.add(&b).unwrap();
        let path = secrets.file(FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            keys.secret(&a.access_key_id),
            Some(a.secret_access_key.clone())
        );

        let other = S3Keys::open(&secrets).unwrap();
        assert_eq!(other.secret(&b.access_key_id), Some(b.secret_access_key));
        let gone = std::slice::from_ref(&a.access_key_id);
        other.remove(gone).unwrap();
        let inode = || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        let written = inode();
        other.remove(gone).unwrap();
        assert_eq!(inode(), written, "nothing to remove, nothing written");
        assert!(!std::fs::read_to_string(&path)
            .unwrap()
            .contains(&a.secret_access_key));
        // The first one sees the removal at its next look at the file.
        keys.reload().unwrap();
        assert_eq!(keys.secret(&a.access_key_id), None);
    }
}

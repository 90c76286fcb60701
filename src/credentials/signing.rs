//! Signed, expiring URLs: `…?exp=<unix seconds>&kid=<key id>&sig=<hex>` where `sig` is
//! HMAC-SHA256 over the method, the path, the expiry and the key id. Keys live in
//! `secrets/url_keys.json` (mode 0600); the newest signs, every listed key verifies, so a
//! rotation (`shoebox rotate-url-key`) does not break URLs already handed out until old keys are
//! dropped.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::reload::Reloading;
use super::CredentialError;
use super::{SecretsDir, Version};

#[derive(Clone, Serialize, Deserialize)]
struct UrlKey {
    kid: String,
    /// 32 bytes, hex.
    key: String,
    created_at: String,
}

#[derive(Default, Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<UrlKey>,
}

/// A key id and its bytes.
type Key = (String, [u8; 32]);

/// The keys that sign and verify URLs, re-read when `shoebox rotate-url-key` replaces the
/// file, so a rotation (and `--keep`) takes effect within a second, without a restart.
pub struct UrlKeys {
    keys: Keys,
}

enum Keys {
    File(Reloading<Vec<Key>>),
    Fixed(Vec<Key>),
}

impl std::fmt::Debug for UrlKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<String> = self.keys().iter().map(|k| k.0.clone()).collect();
        f.debug_struct("UrlKeys").field("kids", &kids).finish()
    }
}

/// A signature parsed from a query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub exp: u64,
    pub kid: String,
    pub sig: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Expired,
    Invalid,
}

fn key_file(secrets: &SecretsDir) -> std::path::PathBuf {
    secrets.file("url_keys.json")
}

/// The keys as they are now, and what they were read at.
fn read(secrets: &SecretsDir) -> Result<(Option<Version>, KeyFile), CredentialError> {
    match secrets.read(&key_file(secrets))? {
        Some((version, b)) => Ok((
            Some(version),
            serde_json::from_slice(&b).map_err(|e| {
                CredentialError::Damaged(format!("url_keys.json does not parse: {e}"))
            })?,
        )),
        None => Ok((None, KeyFile::default())),
    }
}

fn new_key() -> UrlKey {
    UrlKey {
        kid: hex::encode(rand::random::<[u8; 4]>()),
        key: hex::encode(rand::random::<[u8; 32]>()),
        created_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    }
}

/// Applies `change` to the keys as they are now and saves them, unless it answers false;
/// again on the new keys when another instance changed them in between.
fn change(
    secrets: &SecretsDir,
    change: impl Fn(&mut KeyFile) -> bool,
) -> Result<(), CredentialError> {
    for _ in 0..10 {
        let (read_at, mut file) = read(secrets)?;
        if !change(&mut file) {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| CredentialError::Damaged(format!("could not encode the URL keys: {e}")))?;
        if secrets.replace(&key_file(secrets), read_at, &bytes)? {
            return Ok(());
        }
    }
    Err(CredentialError::Unavailable(
        "the URL-signing keys kept changing on other instances; try again".into(),
    ))
}

/// Adds a new signing key; with `keep` > 0, only the newest `keep` keys stay valid.
/// Returns the new key id.
pub fn rotate(secrets: &SecretsDir, keep: Option<usize>) -> Result<String, CredentialError> {
    let key = new_key();
    let kid = key.kid.clone();
    change(secrets, |file| {
        file.keys.push(key.clone());
        if let Some(keep) = keep.filter(|k| *k > 0) {
            let drop = file.keys.len().saturating_sub(keep);
            file.keys.drain(..drop);
        }
        true
    })?;
    Ok(kid)
}

/// The keys in the file, in order, decoded.
fn parse_keys(_: &std::path::Path, bytes: Option<&[u8]>) -> Result<Vec<Key>, CredentialError> {
    let file: KeyFile = match bytes {
        Some(b) => serde_json::from_slice(b)
            .map_err(|e| CredentialError::Damaged(format!("url_keys.json does not parse: {e}")))?,
        None => KeyFile::default(),
    };
    file.keys
        .into_iter()
        .map(|k| {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(&k.key, &mut bytes).map_err(|_| {
                CredentialError::Damaged(format!("URL key {} is not 32 hex bytes", k.kid))
            })?;
            Ok((k.kid, bytes))
        })
        .collect()
}

impl UrlKeys {
    /// Loads the keys, making the first one on first start.
    pub fn load_or_create(secrets: &SecretsDir) -> Result<UrlKeys, CredentialError> {
        // Instances starting together make one first key between them.
        let first = new_key();
        change(secrets, |file| {
            let empty = file.keys.is_empty();
            if empty {
                file.keys.push(first.clone());
            }
            empty
        })?;
        Ok(UrlKeys {
            keys: Keys::File(Reloading::open(secrets, "url_keys.json", parse_keys)?),
        })
    }

    pub fn from_keys(keys: Vec<(String, [u8; 32])>) -> UrlKeys {
        UrlKeys {
            keys: Keys::Fixed(keys),
        }
    }

    fn keys(&self) -> std::sync::Arc<Vec<Key>> {
        match &self.keys {
            Keys::File(f) => f.get(),
            Keys::Fixed(k) => std::sync::Arc::new(k.clone()),
        }
    }

    fn mac(key: &[u8; 32], method: &str, path: &str, exp: u64, kid: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(format!("{method}\n{path}\n{exp}\n{kid}").as_bytes());
        mac
    }

    /// The query string that makes `method path` valid until `exp`.
    pub fn sign(&self, method: &str, path: &str, exp: u64) -> String {
        let keys = self.keys();
        let Some((kid, key)) = keys.last() else {
            return String::new();
        };
        let sig = Self::mac(key, method, path, exp, kid)
            .finalize()
            .into_bytes();
        format!("exp={exp}&kid={kid}&sig={}", hex::encode(sig))
    }

    /// Checks a signature for `method path` at time `now`, in constant time.
    pub fn verify(&self, method: &str, path: &str, s: &Signature, now: u64) -> Verdict {
        let keys = self.keys();
        let Some((_, key)) = keys.iter().find(|(kid, _)| *kid == s.kid) else {
            return Verdict::Invalid;
        };
        if Self::mac(key, method, path, s.exp, &s.kid)
            .verify_slice(&s.sig)
            .is_err()
        {
            return Verdict::Invalid;
        }
        if s.exp <= now {
            Verdict::Expired
        } else {
            Verdict::Valid
        }
    }
}

/// Finds `exp`, `kid` and `sig` in a query string. `None` when none of them is there;
/// `Some(Err)` when they are there but malformed or repeated.
pub fn parse(query: &str) -> Option<Result<Signature, ()>> {
    let (mut exp, mut kid, mut sig) = (None, None, None);
    let mut seen = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match k {
            "exp" => &mut exp,
            "kid" => &mut kid,
            "sig" => &mut sig,
            _ => continue,
        };
        seen = true;
        if slot.replace(v).is_some() {
            return Some(Err(()));
        }
    }
    if !seen {
        return None;
    }
    let parsed = (|| {
        let exp = exp?;
        if exp.is_empty() || exp.len() > 20 || !exp.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let kid = kid?;
        if kid.is_empty() || kid.len() > 32 || !kid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let sig = sig?;
        if sig.len() != 64 {
            return None;
        }
        Some(Signature {
            exp: exp.parse().ok()?,
            kid: kid.to_owned(),
            sig: hex::decode(sig).ok()?,
        })
    })();
    Some(parsed.ok_or(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> UrlKeys {
        UrlKeys::from_keys(vec![("old1".into(), [1; 32]), ("new2".into(), [2; 32])])
    }

    #[test]
    fn signed_urls_verify_until_they_expire_and_only_for_their_path() {
        let k = keys();
        let q = k.sign("GET", "/m/abc", 1000);
        assert!(q.contains("kid=new2"), "the newest key signs");
        let s = parse(&format!("download=1&{q}")).unwrap().unwrap();
        assert_eq!(k.verify("GET", "/m/abc", &s, 999), Verdict::Valid);
        assert_eq!(k.verify("GET", "/m/abc", &s, 1000), Verdict::Expired);
        assert_eq!(k.verify("GET", "/m/other", &s, 10), Verdict::Invalid);
        assert_eq!(k.verify("DELETE", "/m/abc", &s, 10), Verdict::Invalid);
        let only_new = UrlKeys::from_keys(vec![("new2".into(), [2; 32])]);
        assert_eq!(only_new.verify("GET", "/m/abc", &s, 10), Verdict::Valid);
        let rotated_out = UrlKeys::from_keys(vec![("new3".into(), [3; 32])]);
        assert_eq!(
            rotated_out.verify("GET", "/m/abc", &s, 10),
            Verdict::Invalid
        );
    }

    #[test]
    fn malformed_signatures_are_told_apart_from_absent_ones() {
        assert_eq!(parse("download=1"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("exp=1&kid=a"), Some(Err(())));
        assert_eq!(
            parse(&format!("exp=1&exp=2&kid=a&sig={}", "0".repeat(64))),
            Some(Err(()))
        );
        assert_eq!(
            parse(&format!("exp=-1&kid=a&sig={}", "0".repeat(64))),
            Some(Err(()))
        );
        assert_eq!(
            parse(&format!("exp=1&kid=a/b&sig={}", "0".repeat(64))),
            Some(Err(()))
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(q in ".{0,200}") {
            let _ = parse(&q);
        }

        #[test]
        fn any_change_to_a_signed_url_breaks_it(exp in 1u64..u64::MAX / 2, path in "/m/[a-z0-9]{1,26}", flip in 0usize..64) {
            let k = keys();
            let q = k.sign("GET", &path, exp);
            let s = parse(&q).unwrap().unwrap();
            prop_assert_eq!(k.verify("GET", &path, &s, 0), Verdict::Valid);
            let mut bad = s.clone();
            bad.sig[flip / 2] ^= 1 << (flip % 8);
            prop_assert_eq!(k.verify("GET", &path, &bad, 0), Verdict::Invalid);
            let later = Signature { exp: exp + 1, ..s.clone() };
            prop_assert_eq!(k.verify("GET", &path, &later, 0), Verdict::Invalid);
        }
    }
}

//! API tokens: named, scoped, optionally expiring credentials that an admin creates, lists and
//! revokes. Only a sha256 of each token is kept, in `secrets/tokens.json` (mode 0600, written
//! atomically); a new token is shown once. The server re-reads the file when it changes, so
//! tokens made or revoked with the command line take effect within a second.
//!
//! A token may also carry S3 credentials: an access key id, listed with it, and a secret access
//! key kept whole in [`s3_keys`](super::s3_keys), since SigV4 needs it on the server. The token
//! says who the key is and whether it still works; revoking the token ends both.

use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::reload::Reloading;
use super::s3_keys::{S3Key, S3Keys};
use super::CredentialError;
use super::SecretsDir;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Create media, and edit or delete only the media it created.
    Upload,
    /// Read private media (list, fetch, sign URLs).
    Read,
    /// Everything, as the admin token.
    Admin,
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "upload" => Ok(Scope::Upload),
            "read" => Ok(Scope::Read),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope {other:?}: use upload, read or admin"
            )),
        }
    }
}

/// An API token as listed; `token` (the value) appears only in the creation response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ApiToken {
    /// Public identifier (16 hex digits); also the owner of the media the token creates.
    pub id: String,
    pub name: String,
    pub scope: Scope,
    /// sha256 of the token, hex.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    #[schema(ignore)]
    pub hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub revoked_at: Option<OffsetDateTime>,
    /// The S3 access key id of a token made with S3 credentials (not a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
}

impl ApiToken {
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }

    /// The token without its hash, for listings.
    pub fn public(&self) -> ApiToken {
        ApiToken {
            hash: String::new(),
            ..self.clone()
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
struct TokenFile {
    tokens: Vec<ApiToken>,
}

pub struct Tokens {
    file: Reloading<Vec<ApiToken>>,
    s3_keys: S3Keys,
    secrets: SecretsDir,
    /// Held while a change reads, edits and writes the files, so that two requests creating
    /// tokens at once both keep theirs.
    changing: Mutex<()>,
}

const MAX_NAME: usize = 100;

fn parse(path: &std::path::Path, bytes: Option<&[u8]>) -> Result<Vec<ApiToken>, CredentialError> {
    let Some(bytes) = bytes else {
        return Ok(Vec::new());
    };
    let file: TokenFile = serde_json::from_slice(bytes)
        .map_err(|e| CredentialError::Damaged(format!("{} does not parse: {e}", path.display())))?;
    Ok(file.tokens)
}

impl Tokens {
    pub fn open(secrets: &SecretsDir) -> Result<Tokens, CredentialError> {
        Ok(Tokens {
            file: Reloading::open(secrets, "tokens.json", parse)?,
            s3_keys: S3Keys::open(secrets)?,
            secrets: secrets.clone(),
            changing: Mutex::new(()),
        })
    }

    /// Applies `change` to the tokens as they are now and saves them, unless it answers
    /// `None` (nothing to change). Shared by several instances, the tokens may change between
    /// the read and the save: the change is then made again on the new tokens.
    fn modify<R>(
        &self,
        change: impl Fn(&mut Vec<ApiToken>) -> Option<R>,
    ) -> Result<Option<R>, CredentialError> {
        let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..10 {
            let (read, current) = self.file.fresh()?;
            let mut tokens = current.as_ref().clone();
            let Some(answer) = change(&mut tokens) else {
                return Ok(None);
            };
            let bytes = serde_json::to_vec_pretty(&TokenFile { tokens }).map_err(|e| {
                CredentialError::Damaged(format!("could not encode the tokens: {e}"))
            })?;
            if self.secrets.replace(self.file.path(), read, &bytes)? {
                self.file.reload()?;
                return Ok(Some(answer));
            }
        }
        Err(CredentialError::Unavailable(
            "the tokens kept changing on other instances; try again".into(),
        ))
    }

    /// Creates a token and returns it with its plain value, which is never stored, and with
    /// `s3` its S3 credentials too. The secret access key is stored before the token that names
    /// it, so a token never names a key without its secret.
    pub fn create(
        &self,
        name: &str,
        scope: Scope,
        expires_at: Option<OffsetDateTime>,
        s3: bool,
    ) -> Result<(ApiToken, String, Option<S3Key>), CredentialError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control)
        {
            return Err(CredentialError::Invalid {
                field: "name",
                expected: "a name of 1 to 100 characters",
            });
        }
        // A new access key id (20 characters from a large alphabet) that no token holds.
        let taken = self.file.fresh()?.1;
        let s3 = s3.then(|| loop {
            let key = S3Key::generate();
            if !taken
                .iter()
                .any(|t| t.access_key_id.as_ref() == Some(&key.access_key_id))
            {
                break key;
            }
        });
        if let Some(key) = &s3 {
            self.s3_keys.add(key)?;
        }
        let plain = crate::credentials::secrets::generate_token();
        let token = ApiToken {
            id: hex::encode(rand::random::<[u8; 8]>()),
            name: name.to_owned(),
            scope,
            hash: hex::encode(Sha256::digest(plain.as_bytes())),
            created_at: crate::store::record::now(),
            expires_at,
            revoked_at: None,
            access_key_id: s3.as_ref().map(|k| k.access_key_id.clone()),
        };
        let saved = self.modify(|all| {
            all.push(token.clone());
            Some(())
        });
        if let Err(e) = saved {
            // No token names the key: its secret would only lie there unused.
            if let Some(key) = &s3 {
                let _ = self
                    .s3_keys
                    .remove(std::slice::from_ref(&key.access_key_id));
            }
            return Err(e);
        }
        Ok((token, plain, s3))
    }

    pub fn list(&self) -> Vec<ApiToken> {
        self.file.get().iter().map(ApiToken::public).collect()
    }

    /// Revokes a token; false when there is no such (unrevoked) token. Its S3 secret, if it has
    /// one, is removed after the token is marked revoked, with any that an earlier revoke left
    /// (a crash or a full disk between the two writes): a revoked token's secret is never used,
    /// only kept longer than it should be.
    pub fn revoke(&self, id: &str) -> Result<bool, CredentialError> {
        let now = crate::store::record::now();
        let revoked = self.modify(|all| {
            let t = all
                .iter_mut()
                .find(|t| t.id == id && t.revoked_at.is_none())?;
            t.revoked_at = Some(now);
            let revoked: Vec<String> = all
                .iter()
                .filter(|t| t.revoked_at.is_some())
                .filter_map(|t| t.access_key_id.clone())
                .collect();
            Some(revoked)
        })?;
        let Some(revoked) = revoked else {
            return Ok(false);
        };
        if let Err(e) = self.s3_keys.remove(&revoked) {
            tracing::error!(
                error = %e,
                "a revoked token's S3 secret could not be removed; the next revoke removes it"
            );
        }
        Ok(true)
    }

    /// The active token with this value, compared in constant time. A value not found is
    /// looked for again in tokens changed since (made on another instance a moment ago).
    pub fn verify(&self, presented: &str) -> Option<ApiToken> {
        self.verify_now(presented)
            .or_else(|| self.file.recheck().then(|| self.verify_now(presented))?)
    }

    fn verify_now(&self, presented: &str) -> Option<ApiToken> {
        let digest = Sha256::digest(presented.as_bytes());
        let now = OffsetDateTime::now_utc();
        let tokens = self.file.get();
        let mut found = None;
        // Every token is compared, so the time taken does not say which one matched.
        for t in tokens.iter() {
            let mut stored = [0u8; 32];
            if hex::decode_to_slice(&t.hash, &mut stored).is_ok()
                && bool::from(stored.ct_eq(digest.as_slice()))
            {
                found = Some(t.clone());
            }
        }
        found.filter(|t| t.is_active(now))
    }

    /// The active token with this S3 access key id, and the key's secret: what an S3 request's
    /// signature is checked with. From memory; the files are looked at once a second.
    pub fn s3_secret(&self, access_key_id: &str) -> Option<(ApiToken, String)> {
        self.s3_secret_now(access_key_id).or_else(|| {
            let changed = self.file.recheck() | self.s3_keys.recheck();
            changed.then(|| self.s3_secret_now(access_key_id))?
        })
    }

    fn s3_secret_now(&self, access_key_id: &str) -> Option<(ApiToken, String)> {
        let now = OffsetDateTime::now_utc();
        let token = self
            .file
            .get()
            .iter()
            .find(|t| t.access_key_id.as_deref() == Some(access_key_id) && t.is_active(now))
            .cloned()?;
        let secret = self.s3_keys.secret(access_key_id)?;
        Some((token, secret))
    }

    /// The active token with this id (for session cookies naming it).
    pub fn by_id(&self, id: &str) -> Option<ApiToken> {
        let now = OffsetDateTime::now_utc();
        self.file
            .get()
            .iter()
            .find(|t| t.id == id && t.is_active(now))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_can_expire_and_be_revoked() {
        let (_dir, secrets) = super::super::temp_secrets();
        let tokens = Tokens::open(&secrets).unwrap();
        let (t, plain, s3) = tokens
            .create("ci uploader", Scope::Upload, None, false)
            .unwrap();
        assert!(s3.is_none() && t.access_key_id.is_none());
        let file = std::fs::read_to_string(secrets.file("tokens.json")).unwrap();
        assert!(!file.contains(&plain[4..]), "only the hash is stored");
        assert_eq!(tokens.verify(&plain).map(|v| v.id), Some(t.id.clone()));
        assert!(tokens.verify("sbx_wrong").is_none());
        assert!(tokens.list()[0].hash.is_empty(), "listings carry no hashes");

        let past = OffsetDateTime::now_utc() - time::Duration::hours(1);
        let (_, expired, _) = tokens
            .create("old", Scope::Read, Some(past), false)
            .unwrap();
        assert!(tokens.verify(&expired).is_none());

        assert!(tokens.revoke(&t.id).unwrap());
        assert!(!tokens.revoke(&t.id).unwrap());
        assert!(tokens.verify(&plain).is_none());
        assert!(tokens.create("", Scope::Read, None, false).is_err());
        // Another process (the command line) sees the same file.
        let again = Tokens::open(&secrets).unwrap();
        assert_eq!(again.list().len(), 2);
    }

    /// Re-reads both files now, as the server does within a second of a change.
    fn reread(tokens: &Tokens) {
        tokens.file.reload().unwrap();
        tokens.s3_keys.reload().unwrap();
    }

    #[test]
    fn s3_tokens_carry_a_key_whose_secret_is_found_while_the_token_is_active() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, secrets) = super::super::temp_secrets();
        let tokens = Tokens::open(&secrets).unwrap();
        let (t, plain, key) = tokens
            .create("backup tool", Scope::Upload, None, true)
            .unwrap();
        let key = key.expect("S3 credentials");
        assert_eq!(t.access_key_id.as_ref(), Some(&key.access_key_id));
        assert_eq!(
            tokens.verify(&plain).map(|v| v.id),
            Some(t.id.clone()),
            "an S3 token is a bearer token too"
        );
        let (found, secret) = tokens.s3_secret(&key.access_key_id).unwrap();
        assert_eq!(
            (found.id.as_str(), found.scope),
            (t.id.as_str(), Scope::Upload)
        );
        assert_eq!(secret, key.secret_access_key);
        assert!(tokens.s3_secret("SBXNOSUCHKEY00000000").is_none());

        // The id is listed, the secret only in its own private file.
        let listed = serde_json::to_string(&tokens.list()).unwrap();
        assert!(listed.contains(&key.access_key_id));
        assert!(!listed.contains(&key.secret_access_key));
        let token_file = std::fs::read_to_string(secrets.file("tokens.json")).unwrap();
        assert!(!token_file.contains(&key.secret_access_key));
        let key_file = secrets.file("s3_keys.json");
        assert!(std::fs::read_to_string(&key_file)
            .unwrap()
            .contains(&key.secret_access_key));
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        for shown in [format!("{t:?}"), format!("{key:?}")] {
            assert!(!shown.contains(&key.secret_access_key), "{shown}");
        }

        // Another process (the command line) sees the key, and its revoking is seen here.
        let cli = Tokens::open(&secrets).unwrap();
        assert_eq!(
            cli.s3_secret(&key.access_key_id).map(|(_, s)| s),
            Some(key.secret_access_key.clone())
        );
        let (other, _, other_key) = cli.create("rclone", Scope::Read, None, true).unwrap();
        let other_key = other_key.unwrap();
        assert_ne!(other_key.access_key_id, key.access_key_id);
        reread(&tokens);
        assert_eq!(
            tokens
                .s3_secret(&other_key.access_key_id)
                .map(|(t, _)| t.id),
            Some(other.id.clone())
        );

        // Revoking ends the key and removes its secret; the other key stays.
        assert!(cli.revoke(&t.id).unwrap());
        reread(&tokens);
        assert!(tokens.s3_secret(&key.access_key_id).is_none());
        assert!(tokens.verify(&plain).is_none());
        let key_file = std::fs::read_to_string(&key_file).unwrap();
        assert!(!key_file.contains(&key.secret_access_key));
        assert!(key_file.contains(&other_key.secret_access_key));
        assert!(tokens.s3_secret(&other_key.access_key_id).is_some());

        // A secret that a revoke left behind (a crash between its two writes) goes with the
        // next revoke.
        tokens.s3_keys.add(&key).unwrap();
        assert!(tokens.s3_secret(&key.access_key_id).is_none(), "revoked");
        assert!(tokens.revoke(&other.id).unwrap());
        let key_file = std::fs::read_to_string(secrets.file("s3_keys.json")).unwrap();
        assert!(!key_file.contains(&key.secret_access_key));
        assert!(!key_file.contains(&other_key.secret_access_key));
    }

    #[test]
    fn an_expired_s3_token_finds_no_secret() {
        let (_dir, secrets) = super::super::temp_secrets();
        let tokens = Tokens::open(&secrets).unwrap();
        let soon = OffsetDateTime::now_utc() + time::Duration::milliseconds(300);
        let (_, _, key) = tokens
            .create("brief", Scope::Upload, Some(soon), true)
            .unwrap();
        let key = key.unwrap();
        assert!(tokens.s3_secret(&key.access_key_id).is_some());
        // Checked when asked, not when the file was read.
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert!(tokens.s3_secret(&key.access_key_id).is_none());
        let past = OffsetDateTime::now_utc() - time::Duration::hours(1);
        let (_, _, old) = tokens
            .create("old", Scope::Upload, Some(past), true)
            .unwrap();
        assert!(tokens.s3_secret(&old.unwrap().access_key_id).is_none());
    }
}

//! API tokens: named, scoped, optionally expiring credentials that an admin creates, lists and
//! revokes. Only a sha256 of each token is kept, in `secrets/tokens.json` (mode 0600, written
//! atomically); a new token is shown once. The server re-reads the file when it changes, so
//! tokens made or revoked with the command line take effect within a second.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::reload::Reloading;
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
    secrets: SecretsDir,
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
            file: Reloading::open(secrets.file("tokens.json"), parse)?,
            secrets: secrets.clone(),
        })
    }

    /// The tokens as the file holds them now, for a change to be saved.
    fn read_file(&self) -> Result<Vec<ApiToken>, CredentialError> {
        self.file.reload()?;
        Ok(self.file.get().as_ref().clone())
    }

    fn save(&self, tokens: Vec<ApiToken>) -> Result<(), CredentialError> {
        let bytes = serde_json::to_vec_pretty(&TokenFile { tokens })
            .map_err(|e| CredentialError::Damaged(format!("could not encode the tokens: {e}")))?;
        self.secrets.write(self.file.path(), &bytes)?;
        self.file.reload()
    }

    /// Creates a token and returns it with its plain value, which is never stored.
    pub fn create(
        &self,
        name: &str,
        scope: Scope,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<(ApiToken, String), CredentialError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control)
        {
            return Err(CredentialError::Invalid {
                field: "name",
                expected: "a name of 1 to 100 characters",
            });
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
        };
        let mut all = self.read_file()?;
        all.push(token.clone());
        self.save(all)?;
        Ok((token, plain))
    }

    pub fn list(&self) -> Vec<ApiToken> {
        self.file.get().iter().map(ApiToken::public).collect()
    }

    /// Revokes a token; false when there is no such (unrevoked) token.
    pub fn revoke(&self, id: &str) -> Result<bool, CredentialError> {
        let mut all = self.read_file()?;
        let Some(t) = all
            .iter_mut()
            .find(|t| t.id == id && t.revoked_at.is_none())
        else {
            return Ok(false);
        };
        t.revoked_at = Some(crate::store::record::now());
        self.save(all)?;
        Ok(true)
    }

    /// The active token with this value, compared in constant time.
    pub fn verify(&self, presented: &str) -> Option<ApiToken> {
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
        let (t, plain) = tokens.create("ci uploader", Scope::Upload, None).unwrap();
        let file = std::fs::read_to_string(secrets.file("tokens.json")).unwrap();
        assert!(!file.contains(&plain[4..]), "only the hash is stored");
        assert_eq!(tokens.verify(&plain).map(|v| v.id), Some(t.id.clone()));
        assert!(tokens.verify("sbx_wrong").is_none());
        assert!(tokens.list()[0].hash.is_empty(), "listings carry no hashes");

        let past = OffsetDateTime::now_utc() - time::Duration::hours(1);
        let (_, expired) = tokens.create("old", Scope::Read, Some(past)).unwrap();
        assert!(tokens.verify(&expired).is_none());

        assert!(tokens.revoke(&t.id).unwrap());
        assert!(!tokens.revoke(&t.id).unwrap());
        assert!(tokens.verify(&plain).is_none());
        assert!(tokens.create("", Scope::Read, None).is_err());
        // Another process (the command line) sees the same file.
        let again = Tokens::open(&secrets).unwrap();
        assert_eq!(again.list().len(), 2);
    }
}

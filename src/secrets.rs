//! The admin token. Only a sha256 of it is stored (`secrets/admin_token.sha256`, mode 0600);
//! presented tokens are hashed and compared in constant time.

use std::fs;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::layout::{write_atomically, Layout};
use crate::store::StoreError;

const ADMIN_TOKEN_FILE: &str = "admin_token.sha256";

/// A token's hash, compared in constant time.
#[derive(Clone)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    pub fn matches(&self, presented: &str) -> bool {
        let presented = TokenHash::of(presented);
        self.0.ct_eq(&presented.0).into()
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(…)")
    }
}

/// A new random token: 256 bits, hex, with a prefix that makes it recognisable in a leak scan.
pub fn generate_token() -> String {
    format!("sbx_{}", hex::encode(rand::random::<[u8; 32]>()))
}

fn token_file(layout: &Layout) -> PathBuf {
    layout.secrets().join(ADMIN_TOKEN_FILE)
}

/// How the admin token was obtained at start-up.
pub enum AdminToken {
    /// From SHOEBOX_ADMIN_TOKEN / --admin-token.
    Configured(TokenHash),
    /// Generated on an earlier start; its hash was on disk.
    Stored(TokenHash),
    /// Generated now; the plain token must be shown to the operator once.
    Generated(TokenHash, String),
}

impl AdminToken {
    pub fn hash(&self) -> &TokenHash {
        match self {
            AdminToken::Configured(h) | AdminToken::Stored(h) | AdminToken::Generated(h, _) => h,
        }
    }
}

/// Uses the configured token, or the stored hash of a generated one, or generates one.
pub fn load_or_create_admin_token(
    layout: &Layout,
    configured: Option<&str>,
) -> Result<AdminToken, StoreError> {
    if let Some(token) = configured {
        return Ok(AdminToken::Configured(TokenHash::of(token)));
    }
    match fs::read_to_string(token_file(layout)) {
        Ok(text) => {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| {
                StoreError::Format(format!(
                    "{} is damaged; run `shoebox reset-admin-token` to make a new token",
                    token_file(layout).display()
                ))
            })?;
            Ok(AdminToken::Stored(TokenHash(bytes)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => reset_admin_token(layout),
        Err(e) => Err(StoreError::io("read the stored admin token", e)),
    }
}

/// Generates a new admin token and stores its hash, replacing any earlier one.
pub fn reset_admin_token(layout: &Layout) -> Result<AdminToken, StoreError> {
    let token = generate_token();
    let hash = TokenHash::of(&token);
    write_atomically(
        &layout.secrets(),
        &token_file(layout),
        hex::encode(hash.0).as_bytes(),
        0o600,
    )?;
    Ok(AdminToken::Generated(hash, token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_token_is_stored_hashed_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        layout.prepare().unwrap();
        let AdminToken::Generated(_, token) = load_or_create_admin_token(&layout, None).unwrap()
        else {
            panic!("first start generates a token");
        };
        let stored = fs::read_to_string(token_file(&layout)).unwrap();
        assert!(
            !stored.contains(&token[4..]),
            "the plain token is never written"
        );
        let mode = fs::metadata(token_file(&layout))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_create_admin_token(&layout, None).unwrap();
        assert!(matches!(again, AdminToken::Stored(_)));
        assert!(again.hash().matches(&token));
        assert!(!again.hash().matches("sbx_wrong"));
    }

    #[test]
    fn configured_token_wins() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        layout.prepare().unwrap();
        let t = load_or_create_admin_token(&layout, Some("a-configured-token")).unwrap();
        assert!(matches!(t, AdminToken::Configured(_)));
        assert!(t.hash().matches("a-configured-token"));
        assert!(!token_file(&layout).exists());
    }
}

//! Secrets under `secrets/` (mode 0600). The admin token: only a sha256 of it is stored
//! (`admin_token.sha256`); presented tokens are hashed and compared in constant time. The session
//! key (`session_key`): 32 random bytes that sign the web app's session cookies, so sessions need
//! no server-side table and survive restarts.

use std::path::PathBuf;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::CredentialError;
use super::SecretsDir;

const ADMIN_TOKEN_FILE: &str = "admin_token.sha256";
const SESSION_KEY_FILE: &str = "session_key";
/// Bumped if the cookie's signed text ever changes shape, so old cookies fail cleanly.
const SESSION_FORMAT: &str = "s1";

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

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
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

fn token_file(secrets: &SecretsDir) -> PathBuf {
    secrets.file(ADMIN_TOKEN_FILE)
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
    secrets: &SecretsDir,
    configured: Option<&str>,
) -> Result<AdminToken, CredentialError> {
    if let Some(token) = configured {
        return Ok(AdminToken::Configured(TokenHash::of(token)));
    }
    if let Some(stored) = stored_admin_token(secrets)? {
        return Ok(stored);
    }
    // The first start: a new token, unless another instance starting beside this one stored
    // its own first (then that one is the token, and its instance shows it).
    let token = generate_token();
    let hash = TokenHash::of(&token);
    if secrets.replace(&token_file(secrets), None, hex::encode(hash.0).as_bytes())? {
        return Ok(AdminToken::Generated(hash, token));
    }
    stored_admin_token(secrets)?.ok_or_else(|| {
        CredentialError::Damaged("the admin token vanished as it was made; start again".into())
    })
}

fn stored_admin_token(secrets: &SecretsDir) -> Result<Option<AdminToken>, CredentialError> {
    let Some((_, text)) = secrets.read(&token_file(secrets))? else {
        return Ok(None);
    };
    let mut bytes = [0u8; 32];
    let text = String::from_utf8_lossy(&text);
    hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| {
        CredentialError::Damaged(format!(
            "{} is damaged; run `shoebox reset-admin-token` to make a new token",
            token_file(secrets).display()
        ))
    })?;
    Ok(Some(AdminToken::Stored(TokenHash(bytes))))
}

/// Generates a new admin token and stores its hash, replacing any earlier one.
pub fn reset_admin_token(secrets: &SecretsDir) -> Result<AdminToken, CredentialError> {
    let token = generate_token();
    let hash = TokenHash::of(&token);
    secrets.write(&token_file(secrets), hex::encode(hash.0).as_bytes())?;
    Ok(AdminToken::Generated(hash, token))
}

/// Where a generated admin token is written for its operator when the server's output is not a
/// terminal (a log stream: Docker, journald, a platform's log).
pub fn generated_token_file(secrets: &SecretsDir) -> PathBuf {
    secrets.file("admin_token")
}

/// Writes a generated admin token for its operator to read once (mode 0600).
pub fn write_generated_token(
    secrets: &SecretsDir,
    token: &str,
) -> Result<PathBuf, CredentialError> {
    let path = generated_token_file(secrets);
    // This instance's own file, never shared: its operator reads it on this machine.
    secrets.write_here(&path, format!("{token}\n").as_bytes())?;
    Ok(path)
}

fn session_key_file(secrets: &SecretsDir) -> PathBuf {
    secrets.file(SESSION_KEY_FILE)
}

/// Signs and checks session cookies: `s1.<role>.<expires unix seconds>.<hex HMAC-SHA256>`.
///
/// The MAC also covers the hash of the token that signed in (`binding`), so replacing the admin
/// token signs every browser out without a session table.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

impl SessionKey {
    pub fn random() -> Self {
        SessionKey(rand::random())
    }

    fn mac(&self, role: &str, expires: u64, binding: &[u8]) -> Hmac<Sha256> {
        // new_from_slice accepts keys of any length for HMAC; 32 bytes always fits.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(format!("{SESSION_FORMAT}.{role}.{expires}.").as_bytes());
        mac.update(binding);
        mac
    }

    /// A cookie value for `role` that is valid until `expires` (unix seconds).
    pub fn sign(&self, role: &str, expires: u64, binding: &[u8]) -> String {
        let tag = self.mac(role, expires, binding).finalize().into_bytes();
        format!("{SESSION_FORMAT}.{role}.{expires}.{}", hex::encode(tag))
    }

    /// The role and expiry of a genuine, unexpired cookie value; `None` for anything else.
    /// The tag is compared in constant time.
    pub fn verify(&self, value: &str, now: u64, binding: &[u8]) -> Option<(String, u64)> {
        let mut parts = value.split('.');
        let (format, role, expires, tag) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || format != SESSION_FORMAT {
            return None;
        }
        if role.is_empty()
            || !role
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return None;
        }
        let expires: u64 = expires.parse().ok()?;
        let tag = hex::decode(tag).ok()?;
        self.mac(role, expires, binding).verify_slice(&tag).ok()?;
        (expires > now).then(|| (role.to_owned(), expires))
    }
}

/// Loads the session key, generating and storing one on first start.
pub fn load_or_create_session_key(secrets: &SecretsDir) -> Result<SessionKey, CredentialError> {
    let path = session_key_file(secrets);
    for _ in 0..10 {
        let read = match secrets.read(&path)? {
            Some((version, text)) => {
                let mut bytes = [0u8; 32];
                let text = String::from_utf8_lossy(&text);
                match hex::decode_to_slice(text.trim(), &mut bytes) {
                    Ok(()) => return Ok(SessionKey(bytes)),
                    // A damaged key costs only the current sessions: replace it.
                    Err(_) => tracing::warn!(
                        "{} is damaged; making a new one (browsers must sign in again)",
                        path.display()
                    ),
                }
                Some(version)
            }
            None => None,
        };
        // Instances starting together keep the one key that was stored first.
        let key = SessionKey::random();
        if secrets.replace(&path, read, hex::encode(key.0).as_bytes())? {
            return Ok(key);
        }
    }
    Err(CredentialError::Unavailable(
        "the session key kept changing on other instances; try again".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_token_is_stored_hashed_with_mode_0600_and_reused() {
        let (_dir, secrets) = super::super::temp_secrets();
        let AdminToken::Generated(_, token) = load_or_create_admin_token(&secrets, None).unwrap()
        else {
            panic!("first start generates a token");
        };
        let stored = fs::read_to_string(token_file(&secrets)).unwrap();
        assert!(
            !stored.contains(&token[4..]),
            "the plain token is never written"
        );
        let mode = fs::metadata(token_file(&secrets))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_create_admin_token(&secrets, None).unwrap();
        assert!(matches!(again, AdminToken::Stored(_)));
        assert!(again.hash().matches(&token));
        assert!(!again.hash().matches("sbx_wrong"));
    }

    #[test]
    fn configured_token_wins() {
        let (_dir, secrets) = super::super::temp_secrets();
        let t = load_or_create_admin_token(&secrets, Some("a-configured-token")).unwrap();
        assert!(matches!(t, AdminToken::Configured(_)));
        assert!(t.hash().matches("a-configured-token"));
        assert!(!token_file(&secrets).exists());
    }

    #[test]
    fn session_key_is_generated_once_with_mode_0600() {
        let (_dir, secrets) = super::super::temp_secrets();
        let key = load_or_create_session_key(&secrets).unwrap();
        let mode = fs::metadata(session_key_file(&secrets))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_create_session_key(&secrets).unwrap();
        assert_eq!(key.0, again.0, "the key survives a restart");
    }

    #[test]
    fn session_cookies_verify_only_when_genuine_and_fresh() {
        let key = SessionKey::random();
        let binding = TokenHash::of("the-admin-token").0;
        let cookie = key.sign("admin", 1_000, &binding);
        assert_eq!(
            key.verify(&cookie, 999, &binding),
            Some(("admin".to_owned(), 1_000))
        );
        assert_eq!(key.verify(&cookie, 1_000, &binding), None, "expired");
        let other_token = TokenHash::of("a-new-admin-token").0;
        assert_eq!(
            key.verify(&cookie, 999, &other_token),
            None,
            "a new admin token signs everyone out"
        );
        assert_eq!(
            SessionKey::random().verify(&cookie, 999, &binding),
            None,
            "another key"
        );
        let forged_expiry = cookie.replace(".1000.", ".9999.");
        assert_eq!(key.verify(&forged_expiry, 999, &binding), None);
        let forged_role = cookie.replace("admin", "root");
        assert_eq!(key.verify(&forged_role, 999, &binding), None);
        for junk in [
            "",
            "s1",
            "s1.admin.1000",
            "s1.admin.x.00",
            "s2.admin.1000.00",
        ] {
            assert_eq!(key.verify(junk, 0, &binding), None, "{junk:?}");
        }
        assert_eq!(key.verify(&format!("{cookie}.extra"), 999, &binding), None);
    }
}

//! Who is calling: `Authorization: Bearer <token>` checked against the admin token's hash, or
//! the web app's signed session cookie.
//!
//! A browser sends the cookie on its own, so a write that rides on the cookie must prove it
//! comes from our own pages: its `Origin` (or, without one, `Sec-Fetch-Site: same-origin`) has
//! to name this host. `SameSite=Strict` already keeps the cookie off cross-site requests in
//! current browsers; the origin check is the second lock. Bearer requests carry their
//! credential explicitly and are not affected.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::dev::Payload;
use actix_web::http::header::{HeaderMap, AUTHORIZATION, COOKIE, ORIGIN};
use actix_web::http::Method;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::{ready, Ready};

use super::error::ApiError;
use super::AppState;
use crate::credentials::api_tokens::Scope;
use crate::store::MediaRecord;

/// The web app's session cookie.
pub const SESSION_COOKIE: &str = "shoebox_session";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    /// The admin token.
    Admin,
    /// An API token.
    Token {
        id: String,
        scope: Scope,
    },
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Caller::Admin
                | Caller::Token {
                    scope: Scope::Admin,
                    ..
                }
        )
    }

    /// May read every private record (admin and read tokens).
    pub fn can_see_private(&self) -> bool {
        self.is_admin()
            || matches!(
                self,
                Caller::Token {
                    scope: Scope::Read,
                    ..
                }
            )
    }

    pub fn can_upload(&self) -> bool {
        self.is_admin()
            || matches!(
                self,
                Caller::Token {
                    scope: Scope::Upload,
                    ..
                }
            )
    }

    /// The owner recorded on media this caller uploads, and whose private media it may see.
    pub fn owner(&self) -> Option<String> {
        match self {
            Caller::Token { id, .. } => Some(id.clone()),
            _ => None,
        }
    }

    fn owns(&self, r: &MediaRecord) -> bool {
        self.owner().is_some() && r.owner == self.owner()
    }

    pub fn can_read(&self, r: &MediaRecord) -> bool {
        r.is_public() || self.can_see_private() || self.owns(r)
    }

    /// Admins edit everything; upload tokens only what they uploaded.
    pub fn can_edit(&self, r: &MediaRecord) -> bool {
        self.is_admin()
            || (matches!(
                self,
                Caller::Token {
                    scope: Scope::Upload,
                    ..
                }
            ) && self.owns(r))
    }

    /// The role named in session cookies and `GET /api/session`.
    pub fn role(&self) -> Option<String> {
        match self {
            Caller::Anonymous => None,
            Caller::Admin => Some("admin".into()),
            Caller::Token { id, .. } => Some(format!("token_{id}")),
        }
    }

    pub fn scope_name(&self) -> Option<&'static str> {
        match self {
            Caller::Anonymous => None,
            Caller::Admin
            | Caller::Token {
                scope: Scope::Admin,
                ..
            } => Some("admin"),
            Caller::Token {
                scope: Scope::Upload,
                ..
            } => Some("upload"),
            Caller::Token {
                scope: Scope::Read, ..
            } => Some("read"),
        }
    }

    /// The caller a session cookie's role names, with the bytes its signature is bound to:
    /// the admin token's hash, or the API token's, so replacing or revoking the token ends the
    /// session.
    fn from_role(role: &str, state: &AppState) -> Option<(Caller, Vec<u8>)> {
        if role == "admin" {
            return Some((Caller::Admin, state.admin.as_bytes().to_vec()));
        }
        let t = state.tokens.by_id(role.strip_prefix("token_")?)?;
        Some((
            Caller::Token {
                id: t.id,
                scope: t.scope,
            },
            t.hash.into_bytes(),
        ))
    }
}

/// What a session for this caller is bound to (see `Caller::from_role`).
pub fn session_binding(caller: &Caller, state: &AppState) -> Option<Vec<u8>> {
    let role = caller.role()?;
    Caller::from_role(&role, state).map(|(_, b)| b)
}

/// Refuses a caller without the needed authority: 401 for nobody, 403 for too little.
pub fn require(caller: &Caller, allowed: bool, what: &'static str) -> Result<(), ApiError> {
    match (caller, allowed) {
        (_, true) => Ok(()),
        (Caller::Anonymous, false) => Err(ApiError::Unauthorized(
            "this needs a token: Authorization: Bearer <token>, or sign in on the web page",
        )),
        (_, false) => Err(ApiError::Forbidden {
            code: "insufficient_scope",
            message: what,
        }),
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    None,
    Bearer,
    /// A session cookie valid until this unix time.
    Session {
        expires: u64,
    },
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The bearer token in the request, if any. The scheme is case-insensitive (RFC 9110).
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not valid text"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::Unauthorized(
            "use an Authorization: Bearer <token> header",
        )),
    }
}

/// Checks a presented token; the same check for bearer headers and for signing in. A valid
/// token always works: only failures are throttled, counted per client address and per token
/// prefix, and too many of them are answered `429` (see [`limits`](super::limits)). Were the
/// throttle checked first, anyone sharing an address with the owner (everyone, behind a proxy
/// that is not trusted) could lock the owner out with ten bad guesses.
pub fn check_token(token: &str, req: &HttpRequest, state: &AppState) -> Result<Caller, ApiError> {
    if state.admin.matches(token) {
        return Ok(Caller::Admin);
    }
    if let Some(t) = state.tokens.verify(token) {
        return Ok(Caller::Token {
            id: t.id,
            scope: t.scope,
        });
    }
    let client = state.limiter.client(req, &state.config.trusted_proxies);
    state.limiter.check(client, token)?;
    state.limiter.failed(client, token);
    Err(ApiError::Unauthorized(
        "the token is not valid (wrong, expired or revoked)",
    ))
}

/// The value of our cookie among the request's `Cookie` headers.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
}

/// The caller named by a genuine, unexpired session cookie. Anything else counts as no cookie:
/// a stale cookie must not break reading public media.
fn session(headers: &HeaderMap, state: &AppState) -> Option<(Caller, u64)> {
    let value = session_cookie(headers)?;
    let role = value.split('.').nth(1)?;
    let (caller, binding) = Caller::from_role(role, state)?;
    let (_, expires) = state.session_key.verify(value, unix_now(), &binding)?;
    Some((caller, expires))
}

fn cross_site() -> ApiError {
    ApiError::Forbidden {
        code: "cross_site",
        message: "this request did not come from Shoebox's own pages (Origin does not match the \
                  host); API clients should send Authorization: Bearer <token>",
    }
}

/// `scheme://host[:port]` of a URL, without path.
fn origin_of(url: &str) -> &str {
    match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            &url[..i + 3 + rest.find('/').unwrap_or(rest.len())]
        }
        None => url,
    }
}

/// True when `Origin` (or `Sec-Fetch-Site`) says the request comes from a page of this site:
/// the request's own host, or the configured public URL.
fn same_origin(req: &HttpRequest, state: &AppState) -> bool {
    let headers = req.headers();
    let Some(origin) = headers.get(ORIGIN) else {
        return headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"same-origin");
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if let Some(public) = &state.config.public_url {
        if origin.eq_ignore_ascii_case(origin_of(public)) {
            return true;
        }
    }
    // The scheme is not compared: behind a TLS-terminating proxy the request arrives as http
    // while the page's origin is https.
    match origin.split_once("://") {
        Some((_, authority)) if !authority.is_empty() && !authority.contains('/') => {
            authority.eq_ignore_ascii_case(req.connection_info().host())
        }
        _ => false,
    }
}

/// Refuses a cookie-authenticated request whose `Origin` names another site, whatever its
/// method: for routes whose reads must not be shared with another site's scripts either.
pub fn refuse_foreign_session(
    req: &HttpRequest,
    state: &AppState,
    credential: &Credential,
) -> Result<(), ApiError> {
    let foreign = req.headers().contains_key(ORIGIN) && !same_origin(req, state);
    if matches!(credential, Credential::Session { .. }) && foreign {
        return Err(cross_site());
    }
    Ok(())
}

/// Refuses a request whose `Origin` names another site.
pub fn require_same_origin(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    if same_origin(req, state) {
        Ok(())
    } else {
        Err(cross_site())
    }
}

/// Identifies the caller and how. A token that is present but wrong is an error even on routes
/// that anonymous callers may use: silently downgrading would hide the client's mistake.
pub fn authenticate(req: &HttpRequest, state: &AppState) -> Result<(Caller, Credential), ApiError> {
    if let Some(token) = bearer(req.headers())? {
        return check_token(token, req, state).map(|c| (c, Credential::Bearer));
    }
    let Some((caller, expires)) = session(req.headers(), state) else {
        return Ok((Caller::Anonymous, Credential::None));
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        require_same_origin(req, state)?;
    }
    Ok((caller, Credential::Session { expires }))
}

/// Identifies the caller: bearer token, session cookie, or nobody.
pub fn caller(req: &HttpRequest, state: &AppState) -> Result<Caller, ApiError> {
    authenticate(req, state).map(|(c, _)| c)
}

/// A caller with a token or a session, as an extractor. Listed before a body extractor, it
/// refuses an anonymous request before a byte of the body is read (extractors run in order,
/// and an error stops the rest).
pub struct Authenticated(pub Caller);

/// An admin caller, as an extractor, for the same reason.
pub struct AdminCaller;

fn with_state<T>(
    req: &HttpRequest,
    f: impl FnOnce(&AppState) -> Result<T, ApiError>,
) -> Ready<Result<T, ApiError>> {
    ready(match req.app_data::<actix_web::web::Data<AppState>>() {
        Some(state) => f(state),
        None => Err(ApiError::Internal(
            "the application state is missing".into(),
        )),
    })
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        with_state(req, |state| require_token(req, state).map(Authenticated))
    }
}

impl FromRequest for AdminCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        with_state(req, |state| {
            let caller = require_token(req, state)?;
            require(&caller, caller.is_admin(), "this needs an admin token")?;
            Ok(AdminCaller)
        })
    }
}

/// Requires a valid token or session (every write does).
pub fn require_token(req: &HttpRequest, state: &AppState) -> Result<Caller, ApiError> {
    match caller(req, state)? {
        Caller::Anonymous => Err(ApiError::Unauthorized(
            "this needs a token: Authorization: Bearer <token>, or sign in on the web page",
        )),
        c => Ok(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_of_drops_the_path() {
        assert_eq!(
            origin_of("https://media.example.com/shoebox"),
            "https://media.example.com"
        );
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            "a=1; shoebox_session=s1.admin.5.ab; b=2".parse().unwrap(),
        );
        assert_eq!(session_cookie(&headers), Some("s1.admin.5.ab"));
        let mut other = HeaderMap::new();
        other.append(COOKIE, "xshoebox_session=1".parse().unwrap());
        assert_eq!(session_cookie(&other), None);
    }
}

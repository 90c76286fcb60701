//! Who is calling: `Authorization: Bearer <token>` checked against the admin token's hash, or
//! the web app's signed session cookie.
//!
//! A browser sends the cookie on its own, so a write that rides on the cookie must prove it
//! comes from our own pages: its `Origin` (or, without one, `Sec-Fetch-Site: same-origin`) has
//! to name this host. `SameSite=Strict` already keeps the cookie off cross-site requests in
//! current browsers; the origin check is the second lock. Bearer requests carry their
//! credential explicitly and are not affected.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{HeaderMap, AUTHORIZATION, COOKIE, ORIGIN};
use actix_web::http::Method;
use actix_web::HttpRequest;

use super::error::ApiError;
use super::AppState;

/// The web app's session cookie.
pub const SESSION_COOKIE: &str = "shoebox_session";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    Admin,
}

impl Caller {
    pub fn can_see_private(self) -> bool {
        self == Caller::Admin
    }

    /// The role named in session cookies and `GET /api/session`.
    pub fn role(self) -> Option<&'static str> {
        match self {
            Caller::Anonymous => None,
            Caller::Admin => Some("admin"),
        }
    }

    fn from_role(role: &str) -> Option<Caller> {
        match role {
            "admin" => Some(Caller::Admin),
            _ => None,
        }
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

/// Checks a presented token; the same check for bearer headers and for signing in.
pub fn check_token(token: &str, state: &AppState) -> Result<Caller, ApiError> {
    if state.admin.matches(token) {
        Ok(Caller::Admin)
    } else {
        Err(ApiError::Unauthorized("the token is not valid"))
    }
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
    let (role, expires) = state
        .session_key
        .verify(value, unix_now(), state.admin.as_bytes())?;
    Some((Caller::from_role(&role)?, expires))
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
        return check_token(token, state).map(|c| (c, Credential::Bearer));
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

//! Who is calling: `Authorization: Bearer <token>` checked against the admin token's hash.

use actix_web::http::header::{HeaderMap, AUTHORIZATION};

use super::error::ApiError;
use super::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    Admin,
}

impl Caller {
    pub fn can_see_private(self) -> bool {
        self == Caller::Admin
    }
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

/// Identifies the caller. A token that is present but wrong is an error even on routes that
/// anonymous callers may use: silently downgrading would hide the client's mistake.
pub fn caller(headers: &HeaderMap, state: &AppState) -> Result<Caller, ApiError> {
    match bearer(headers)? {
        None => Ok(Caller::Anonymous),
        Some(token) if state.admin.matches(token) => Ok(Caller::Admin),
        Some(_) => Err(ApiError::Unauthorized("the token is not valid")),
    }
}

/// Requires a valid token (every write does).
pub fn require_token(headers: &HeaderMap, state: &AppState) -> Result<Caller, ApiError> {
    match caller(headers, state)? {
        Caller::Anonymous => Err(ApiError::Unauthorized(
            "this needs a token: Authorization: Bearer <token>",
        )),
        c => Ok(c),
    }
}

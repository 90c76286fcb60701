//! `/api/session`: the web app signs in with a token and gets an HttpOnly, SameSite=Strict
//! cookie, so the token never sits in page storage where a script could read it.
//!
//! The cookie is stateless: an HMAC over its role and expiry (see `secrets::SessionKey`), so
//! sessions need no table, survive restarts, and end when the admin token is replaced.

use actix_web::http::header::{self, ORIGIN};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::auth::{self, Caller, Credential, SESSION_COOKIE};
use super::error::ApiError;
use super::responses::{
    BadRequest, Forbidden, PayloadTooLarge, Unauthorized, UnsupportedMediaType,
};
use super::AppState;

/// How long a sign-in lasts.
pub const SESSION_SECONDS: u64 = 7 * 24 * 60 * 60;

/// Signing in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The admin token.
    token: String,
}

/// Who is signed in, and how.
#[derive(Serialize, ToSchema)]
pub struct SessionInfo {
    /// `admin`, or `token_<id>` for an API token.
    #[schema(required = true)]
    role: Option<String>,
    /// `admin`, `upload` or `read`.
    #[schema(required = true)]
    scope: Option<&'static str>,
    via: Via,
    /// When a cookie session ends (RFC 3339); `null` for bearer tokens.
    #[schema(format = DateTime, required = true)]
    expires_at: Option<String>,
    /// The largest file the server accepts, for the upload form.
    max_upload_bytes: u64,
}

/// How the caller authenticated.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Cookie,
    Bearer,
    None,
}

/// `Secure` when the browser reached us over https, directly or through a proxy that says so,
/// or when the public URL is https. Plain-http development on localhost keeps working.
fn secure(req: &HttpRequest, state: &AppState) -> bool {
    req.connection_info().scheme() == "https"
        || state
            .config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
}

fn set_cookie(req: &HttpRequest, state: &AppState, value: &str, max_age: u64) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure(req, state) { "; Secure" } else { "" }
    )
}

fn rfc3339(unix: u64) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp(i64::try_from(unix).ok()?).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

fn describe(caller: Caller, credential: Credential, state: &AppState) -> SessionInfo {
    let (via, expires_at) = match credential {
        Credential::Session { expires } => (Via::Cookie, rfc3339(expires)),
        Credential::Bearer => (Via::Bearer, None),
        Credential::None => (Via::None, None),
    };
    SessionInfo {
        role: caller.role(),
        scope: caller.scope_name(),
        via,
        expires_at,
        max_upload_bytes: state.config.max_upload_bytes,
    }
}

/// Sign the web app in.
///
/// With `{"token": "…"}`: 200 with the session and its cookie, or 401. Answers with an `HttpOnly`, `SameSite=Strict` session cookie valid for
/// 7 days (`Secure` over https). A request carrying an `Origin` must name this host.
#[utoipa::path(
    post,
    path = "/api/session",
    operation_id = "sign_in",
    tag = "session",
    request_body = SignIn,
    responses(
        (status = 200, description = "Signed in", body = SessionInfo,
         headers(("Set-Cookie" = String, description = "`shoebox_session=…; Path=/; Max-Age=604800; HttpOnly; SameSite=Strict`"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
    )
)]
pub async fn create(
    req: HttpRequest,
    body: web::Json<SignIn>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // Another site must not be able to sign a browser into an account of its choosing.
    if req.headers().contains_key(ORIGIN) {
        auth::require_same_origin(&req, &state)?;
    }
    let caller = auth::check_token(body.token.trim(), &req, &state)?;
    let (Some(role), Some(binding)) = (caller.role(), auth::session_binding(&caller, &state))
    else {
        return Err(ApiError::Unauthorized("the token is not valid"));
    };
    let expires = auth::unix_now() + SESSION_SECONDS;
    let value = state.session_key.sign(&role, expires, &binding);
    Ok(HttpResponse::Ok()
        .insert_header((
            header::SET_COOKIE,
            set_cookie(&req, &state, &value, SESSION_SECONDS),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(describe(caller, Credential::Session { expires }, &state)))
}

/// Who is signed in.
///
/// The caller of a session cookie or a bearer token.
#[utoipa::path(
    get,
    path = "/api/session",
    operation_id = "show_session",
    tag = "session",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The caller", body = SessionInfo),
        (status = 401, response = Unauthorized),
    )
)]
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match auth::authenticate(&req, &state)? {
        (Caller::Anonymous, _) => Err(ApiError::Unauthorized("not signed in")),
        (caller, credential) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(describe(caller, credential, &state))),
    }
}

/// Sign out.
///
/// Expires the session cookie. Always 204; signing out needs no proof, and a forged sign-out
/// costs the victim only a sign-in.
#[utoipa::path(
    delete,
    path = "/api/session",
    operation_id = "sign_out",
    tag = "session",
    responses(
        (status = 204, description = "Signed out",
         headers(("Set-Cookie" = String, description = "The cookie, expired"))),
    )
)]
pub async fn delete(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::SET_COOKIE, set_cookie(&req, &state, "", 0)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use actix_web::http::StatusCode;
    use actix_web::{test, App};

    use crate::config::{Cli, Config};
    use crate::credentials::secrets::{SessionKey, TokenHash};
    use crate::store::Store;

    use super::*;
    use serde_json::json;

    const TOKEN: &str = "in-process-admin-token";

    fn state(dir: &std::path::Path, public_url: Option<&str>) -> web::Data<AppState> {
        use clap::Parser;
        let mut args = vec!["shoebox", "--data-dir"];
        args.push(dir.to_str().unwrap());
        if let Some(u) = public_url {
            args.extend(["--public-url", u]);
        }
        let config = Config::from_args(Cli::try_parse_from(args).unwrap().serve).unwrap();
        let store = Arc::new(Store::start(dir, crate::store::catalogue::Role::Server).unwrap());
        web::Data::new(
            AppState::new(
                store,
                config,
                TokenHash::of(TOKEN),
                crate::store::disk::persistence(dir),
                SessionKey::random(),
            )
            .unwrap(),
        )
    }

    fn cookie_of(res: &actix_web::dev::ServiceResponse) -> String {
        res.headers()
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    #[actix_web::test]
    async fn sign_in_sets_a_strict_http_only_cookie_that_authenticates() {
        let dir = tempfile::tempdir().unwrap();
        let app = test::init_service(
            App::new()
                .app_data(state(dir.path(), None))
                .configure(crate::http::routes),
        )
        .await;
        let req = test::TestRequest::post()
            .uri("/api/session")
            .set_json(json!({ "token": TOKEN }))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::OK);
        let set = cookie_of(&res);
        assert!(set.starts_with("shoebox_session=s1.admin."), "{set}");
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=604800"] {
            assert!(set.contains(flag), "{flag} in {set}");
        }
        assert!(!set.contains("Secure"), "plain http keeps working: {set}");
        assert!(
            !set.contains(TOKEN),
            "the token itself is never in the cookie"
        );
        let pair = set.split(';').next().unwrap().to_owned();

        let req = test::TestRequest::get()
            .uri("/api/session")
            .insert_header((header::COOKIE, pair.clone()))
            .to_request();
        let body: serde_json::Value = test::call_and_read_body_json(&app, req).await;
        assert_eq!(body["role"], "admin");
        assert_eq!(body["via"], "cookie");

        let req = test::TestRequest::get().uri("/api/session").to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

        let req = test::TestRequest::delete()
            .uri("/api/session")
            .insert_header((header::COOKIE, pair))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert!(cookie_of(&res).contains("Max-Age=0"));
    }

    #[actix_web::test]
    async fn cookie_is_secure_behind_https() {
        let dir = tempfile::tempdir().unwrap();
        let app = test::init_service(
            App::new()
                .app_data(state(dir.path(), Some("https://media.example.com")))
                .configure(crate::http::routes),
        )
        .await;
        let req = test::TestRequest::post()
            .uri("/api/session")
            .insert_header((header::ORIGIN, "https://media.example.com"))
            .set_json(json!({ "token": TOKEN }))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(cookie_of(&res).ends_with("; Secure"));
    }
}

//! `/api/tokens` (admin): create, list and revoke API tokens. A new token's value, and the
//! secret access key of its S3 credentials, are in the creation response only.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth;
use super::error::ApiError;
use super::responses::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, ServerError, Unauthorized,
    UnsupportedMediaType,
};
use super::AppState;
use crate::credentials::api_tokens::{ApiToken, Scope};

/// Every token.
#[derive(serde::Serialize, ToSchema)]
pub struct TokenList {
    items: Vec<ApiToken>,
}

const MAX_EXPIRY_DAYS: u64 = 3650;

fn admin(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let caller = auth::require_token(req, state)?;
    auth::require(
        &caller,
        caller.is_admin(),
        "managing tokens needs an admin token",
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    scope: Scope,
    /// Days until the token stops working; absent for no expiry.
    expires_in_days: Option<u64>,
    /// Also make S3 credentials (an access key id and a secret access key) that act as this
    /// token on the S3 endpoint.
    #[serde(default)]
    #[schema(default = false)]
    s3: bool,
}

/// A new token as created: the listed fields, and the values shown only this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    listed: ApiToken,
    /// The token's value, for `Authorization: Bearer …`.
    token: String,
    /// With `"s3": true`: the secret access key that goes with `access_key_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_access_key: Option<String>,
}

/// Create an API token.
///
/// The response carries the token's value in `token`, and with `"s3": true` the secret access
/// key in `secret_access_key`: the only time either is shown. An S3 token works as a bearer
/// token too.
#[utoipa::path(
    post,
    path = "/api/tokens",
    operation_id = "create_token",
    tag = "tokens",
    request_body = NewToken,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "The new token, with its value (and S3 credentials when asked for)", body = CreatedToken),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = ServerError),
    )
)]
pub async fn create(
    _: auth::AdminCaller,
    body: web::Json<NewToken>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let expires_at = match body.expires_in_days {
        Some(0) => return Err(ApiError::invalid("expires_in_days", "at least 1")),
        Some(d) if d > MAX_EXPIRY_DAYS => {
            return Err(ApiError::invalid(
                "expires_in_days",
                format!("at most {MAX_EXPIRY_DAYS}"),
            ))
        }
        Some(d) => Some(time::OffsetDateTime::now_utc() + time::Duration::days(d as i64)),
        None => None,
    };
    let (token, plain, s3) = state
        .tokens
        .create(&body.name, body.scope, expires_at, body.s3)?;
    tracing::info!(
        id = %token.id, name = %token.name, scope = ?token.scope,
        access_key_id = token.access_key_id.as_deref().unwrap_or("none"),
        "API token created"
    );
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(CreatedToken {
            listed: token.public(),
            token: plain,
            secret_access_key: s3.map(|k| k.secret_access_key),
        }))
}

/// List API tokens (never their values).
#[utoipa::path(
    get,
    path = "/api/tokens",
    operation_id = "list_tokens",
    tag = "tokens",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Every token, revoked and expired ones included", body = TokenList),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
    )
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    admin(&req, &state)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(TokenList {
            items: state.tokens.list(),
        }))
}

/// Revoke an API token.
#[utoipa::path(
    delete,
    path = "/api/tokens/{id}",
    operation_id = "revoke_token",
    tag = "tokens",
    params(("id" = String, Path, description = "The token's id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = ServerError),
    )
)]
pub async fn revoke(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admin(&req, &state)?;
    if state.tokens.revoke(&id)? {
        tracing::info!(id = %id, "API token revoked");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound("token"))
    }
}

//! `/api/tokens` (admin): create, list and revoke API tokens. A new token's value is in the
//! creation response only.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
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
}

/// Create an API token.
///
/// The response carries the token's value in `token`, the only time it is shown.
#[utoipa::path(
    post,
    path = "/api/tokens",
    operation_id = "create_token",
    tag = "tokens",
    request_body = NewToken,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "The new token, with its value", body = ApiToken),
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
    let (token, plain, _) = state
        .tokens
        .create(&body.name, body.scope, expires_at, false)?;
    tracing::info!(id = %token.id, name = %token.name, scope = ?token.scope, "API token created");
    let mut view =
        serde_json::to_value(token.public()).map_err(|e| ApiError::Internal(e.to_string()))?;
    view["token"] = json!(plain);
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(view))
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

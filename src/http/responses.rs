//! The shapes of shared responses, for the OpenAPI description: error responses that many
//! operations share (each `{"error": {"code", "message"}}`), and raw bytes for file bodies.
//! A leaf of `http/`: handlers name these in their `#[utoipa::path]` attributes, and the
//! description in `openapi.rs` lists them, without the two importing each other.
// These types only describe responses; `ApiError` builds the real ones.
#![allow(dead_code)]

use utoipa::ToResponse;

use crate::http::error::ErrorBody;

/// The request is malformed: a bad query string, JSON body, multipart body or field value.
#[derive(ToResponse)]
#[response(
    description = "The request is malformed or a field is invalid (`bad_request`, `invalid_field`)",
    example = json!({"error": {"code": "invalid_field", "message": "limit must be between 1 and 500"}})
)]
pub struct BadRequest(ErrorBody);

#[derive(ToResponse)]
#[response(
    description = "No valid credential: the route needs a token, or the one presented is wrong \
                   (`unauthorized`)",
    headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"shoebox\"`")),
    example = json!({"error": {"code": "unauthorized", "message": "the token is not valid"}})
)]
pub struct Unauthorized(ErrorBody);

#[derive(ToResponse)]
#[response(
    description = "A write riding on the session cookie did not come from Shoebox's own pages \
                   (`cross_site`); send `Authorization: Bearer` instead",
    example = json!({"error": {"code": "cross_site", "message": "this request did not come from Shoebox's own pages"}})
)]
pub struct Forbidden(ErrorBody);

#[derive(ToResponse)]
#[response(
    description = "Nothing here, or nothing this caller may see (`not_found`)",
    example = json!({"error": {"code": "not_found", "message": "no such media"}})
)]
pub struct NotFound(ErrorBody);

/// A variant of an image that cannot be made, while the original is still served.
#[derive(ToResponse)]
#[response(
    description = "The image is too large to make variants of (`image_too_large`) or does not \
                   decode (`undecodable_image`); the original is still served",
    example = json!({"error": {"code": "image_too_large", "message": "the image is 20000×20000 pixels, more than this server makes variants of (250 megapixels); the original is still served"}})
)]
pub struct Unprocessable(ErrorBody);

/// Every route answers `405` for a method it does not serve.
#[derive(ToResponse)]
#[response(
    description = "The route exists but not with this method (`method_not_allowed`)",
    example = json!({"error": {"code": "method_not_allowed", "message": "this route does not accept the PUT method"}})
)]
pub struct MethodNotAllowed(ErrorBody);

#[derive(ToResponse)]
#[response(
    description = "The body is larger than allowed (`payload_too_large`)",
    example = json!({"error": {"code": "payload_too_large", "message": "the file is larger than the limit of 1073741824 bytes"}})
)]
pub struct PayloadTooLarge(ErrorBody);

#[derive(ToResponse)]
#[response(
    description = "The body is not of a type this route reads (`unsupported_media_type`)",
    example = json!({"error": {"code": "unsupported_media_type", "message": "send a JSON body (Content-Type: application/json)"}})
)]
pub struct UnsupportedMediaType(ErrorBody);

#[derive(ToResponse)]
#[response(
    description = "The disk is past its reserve (`insufficient_storage`): uploads are refused \
                   while reads, edits and deletes keep working",
    example = json!({"error": {"code": "insufficient_storage", "message": "the disk is full; delete media or grow the disk, reads keep working"}})
)]
pub struct InsufficientStorage(ErrorBody);

#[derive(ToResponse)]
#[response(
    description = "The disk failed a write a moment ago (`disk_failing`): uploads are refused \
                   before their body is read until a health check passes",
    headers(("Retry-After" = String, description = "Seconds to wait: `30`")),
    example = json!({"error": {"code": "disk_failing", "message": "the server's disk failed a write a moment ago (could not fsync a blob: Input/output error (os error 5)); uploads are refused until a health check passes, reads keep working"}})
)]
pub struct DiskFailing(ErrorBody);

#[derive(ToResponse)]
#[response(
    description = "Damage or an I/O failure on the server (`internal`; `blob_damaged` for a \
                   file whose stored bytes no longer match their hash); the server log has \
                   the cause under the response's `X-Request-Id`",
    example = json!({"error": {"code": "internal", "message": "internal error; the server log has details"}})
)]
pub struct ServerError(ErrorBody);

/// Raw bytes, for file bodies.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(#[allow(dead_code)] Vec<u8>);

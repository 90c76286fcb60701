//! The web app: files in `static/` are compiled into the binary and served under
//! `/assets/<version>/…` with immutable caching; the version is a digest of their contents, so
//! a new build gets new URLs and browsers never mix old and new files.

use std::borrow::Cow;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::responses::Binary;
use super::responses::NotFound;
use super::AppState;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Static;

/// The admin page runs only our own scripts and styles, cannot be framed, and sends no referrer
/// off-site.
const PAGE_CSP: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
                        script-src 'self'; style-src 'self'; connect-src 'self'; object-src 'none'; \
                        base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Public collection pages: the same policy, except that any site may frame them. They are made
/// to be embedded, hold nothing but public media, and change nothing, so there is nothing to
/// clickjack; the session cookie is SameSite=Strict and so absent inside a cross-site frame.
const EMBED_CSP: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
                         script-src 'self'; style-src 'self'; connect-src 'self'; object-src 'none'; \
                         base-uri 'none'; form-action 'self'; frame-ancestors *";

pub struct AssetIndex {
    version: String,
    index_html: String,
}

impl AssetIndex {
    /// Where this build's assets live: `/assets/<version>`.
    pub fn prefix(&self) -> String {
        format!("/assets/{}", self.version)
    }

    pub fn build() -> Self {
        let mut digest = Sha256::new();
        let mut names: Vec<Cow<'static, str>> = Static::iter().collect();
        names.sort();
        for name in &names {
            if let Some(file) = Static::get(name) {
                digest.update(name.as_bytes());
                digest.update(file.metadata.sha256_hash());
            }
        }
        let version = hex::encode(&digest.finalize()[..6]);
        let index_html = Static::get("index.html")
            .map(|f| String::from_utf8_lossy(&f.data).into_owned())
            .unwrap_or_default()
            .replace("{{ASSETS}}", &format!("/assets/{version}"));
        AssetIndex {
            version,
            index_html,
        }
    }
}

fn page_headers(res: &mut actix_web::HttpResponseBuilder) {
    res.insert_header((header::CONTENT_SECURITY_POLICY, PAGE_CSP))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "same-origin"));
}

/// Headers for the public, embeddable collection pages.
pub fn embed_page_headers(res: &mut actix_web::HttpResponseBuilder) {
    res.insert_header((header::CONTENT_SECURITY_POLICY, EMBED_CSP))
        .insert_header((header::REFERRER_POLICY, "same-origin"));
}

/// The web app.
///
/// Sign in, upload, browse and edit media, see the storage status. Under a strict
/// `Content-Security-Policy`; it cannot be framed.
#[utoipa::path(
    method(get, head),
    path = "/",
    operation_id = "web_app",
    tag = "pages",
    responses(
        (status = 200, description = "The page", content_type = "text/html; charset=utf-8",
         body = String),
    )
)]
pub async fn index(state: web::Data<AppState>) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    page_headers(&mut res);
    res.insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type("text/html; charset=utf-8")
        .body(state.assets.index_html.clone())
}

/// A file of the web app.
///
/// Scripts, styles and icons embedded in the binary. Under this build's version they are cached
/// forever; under any other version they are served uncached.
#[utoipa::path(
    method(get, head),
    path = "/assets/{version}/{path}",
    operation_id = "web_asset",
    tag = "pages",
    params(
        ("version" = String, Path, description = "The build's asset version (in the page's links)"),
        ("path" = String, Path, description = "The file, e.g. `app.js`"),
    ),
    responses(
        (status = 200, description = "The file", content_type = "*/*", body = inline(Binary)),
        (status = 404, response = NotFound),
    )
)]
pub async fn asset(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let version = req.match_info().get("version").unwrap_or_default();
    let path = req.match_info().get("path").unwrap_or_default();
    if path == "index.html" {
        return Err(ApiError::NotFound("asset"));
    }
    let file = Static::get(path).ok_or(ApiError::NotFound("asset"))?;
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let mut res = HttpResponse::Ok();
    page_headers(&mut res);
    // An old page asking for an old version during a deploy gets today's file, uncached.
    let cache = if version == state.assets.version {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    res.insert_header((header::CACHE_CONTROL, cache))
        .insert_header((
            header::ETAG,
            format!("\"{}\"", hex::encode(file.metadata.sha256_hash())),
        ))
        .content_type(
            mime.essence_str().to_owned()
                + if mime.type_() == mime::TEXT || mime.subtype() == mime::JAVASCRIPT {
                    "; charset=utf-8"
                } else {
                    ""
                },
        );
    Ok(res.body(file.data.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embed_policy_differs_from_the_page_policy_only_in_framing() {
        assert_eq!(
            EMBED_CSP.split_whitespace().collect::<Vec<_>>().join(" "),
            PAGE_CSP
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .replace("frame-ancestors 'none'", "frame-ancestors *")
        );
    }

    #[test]
    fn index_links_to_versioned_assets() {
        let assets = AssetIndex::build();
        assert!(assets
            .index_html
            .contains(&format!("{}/app.js", assets.prefix())));
        assert!(!assets.index_html.contains("{{ASSETS}}"));
    }
}

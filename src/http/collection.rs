//! `GET /c/{collection}`: the public media of one collection as a small server-rendered gallery
//! page that sites can link to or frame. Sites that render their own keep using the JSON
//! listing, `GET /api/media?collection=…`.
//!
//! Everything user-supplied is HTML-escaped, and the page has no inline script or style, so it
//! works under the same strict Content-Security-Policy as the web app.

use std::fmt::Write;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::assets;
use super::error::ApiError;
use super::responses::{BadRequest, ServerError};
use super::variants;
use super::AppState;
use crate::store::record;
use crate::store::{Cursor, Kind, ListQuery, MediaRecord, PosterState};

/// Items per page; the "More" link continues from the last one.
const PAGE_SIZE: usize = 24;
const EMPTY_FIRST_PAGE: &str = "Nothing has been published in this collection yet.";

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// From the page's "More" link.
    cursor: Option<String>,
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment or query value (everything but RFC 3986 unreserved bytes).
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn date(record: &MediaRecord) -> (String, String) {
    let d = record.created_at.date();
    let iso = format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
    let month = d.month().to_string();
    let text = format!("{} {} {}", d.day(), &month[..3.min(month.len())], d.year());
    (iso, text)
}

/// The preview that fits the kind: picture, player, or a download card.
fn preview(out: &mut String, r: &MediaRecord, widths: &[u32]) {
    let url = format!("/m/{}", r.id);
    let alt = if r.alt.is_empty() { &r.title } else { &r.alt };
    let _ = match r.kind {
        Kind::Image => {
            let size = match (r.width, r.height) {
                (Some(w), Some(h)) => format!(" width=\"{w}\" height=\"{h}\""),
                _ => String::new(),
            };
            // Sized variants where the server makes them, so that a phone fetches a small one.
            let sources = match shoebox_pictures::source_format(&r.content_type) {
                Some(_) => format!(
                    "{url}?w={}\" srcset=\"{}\" sizes=\"(max-width: 34rem) 100vw, 22rem",
                    variants::nearest(widths, 320),
                    variants::srcset(&url, widths, r.width)
                ),
                None => url.clone(),
            };
            write!(
                out,
                "<a class=\"media\" href=\"{url}\"><img src=\"{sources}\" alt=\"{}\"{size} \
                 loading=\"lazy\" decoding=\"async\"></a>",
                escape(alt)
            )
        }
        Kind::Video => {
            let poster = match r.poster {
                Some(PosterState::Ready) => format!(
                    " poster=\"{url}?poster=1&amp;w={}\"",
                    variants::nearest(widths, 640)
                ),
                _ => String::new(),
            };
            write!(
                out,
                "<video class=\"media\" src=\"{url}\"{poster} controls preload=\"metadata\" \
                 playsinline><a href=\"{url}\">Download the video</a></video>"
            )
        }
        Kind::Audio => write!(
            out,
            "<div class=\"media audio\"><span class=\"glyph\" aria-hidden=\"true\">♪</span>\
             <audio src=\"{url}\" controls preload=\"metadata\"><a href=\"{url}\">Download the \
             audio</a></audio></div>"
        ),
        Kind::Document | Kind::Other => {
            let ext = r
                .filename
                .rsplit_once('.')
                .map(|(_, e)| e)
                .filter(|e| !e.is_empty() && e.len() <= 5)
                .unwrap_or("file")
                .to_uppercase();
            write!(
                out,
                "<a class=\"media document\" href=\"{url}?download=1\" download>\
                 <span class=\"doc-icon\" aria-hidden=\"true\">{}</span>\
                 <span class=\"doc-action\">Download {} · {}</span></a>",
                escape(&ext),
                escape(if r.filename.is_empty() {
                    "file"
                } else {
                    &r.filename
                }),
                human_size(r.size)
            )
        }
    };
}

fn figure(out: &mut String, r: &MediaRecord, widths: &[u32]) {
    let _ = write!(out, "<li><figure class=\"kind-{}\">", r.kind.as_str());
    preview(out, r, widths);
    let heading = if r.title.is_empty() {
        &r.filename
    } else {
        &r.title
    };
    let (iso, text) = date(r);
    let _ = write!(out, "<figcaption><strong>{}</strong>", escape(heading));
    if !r.description.is_empty() {
        let _ = write!(
            out,
            "<span class=\"description\">{}</span>",
            escape(&r.description)
        );
    }
    let _ = write!(
        out,
        "<time datetime=\"{iso}\">{text}</time></figcaption></figure></li>"
    );
}

/// The whole page. `next` is the cursor of the following page, if there is one.
pub fn render(
    assets_prefix: &str,
    collection: &str,
    items: &[MediaRecord],
    next: Option<Cursor>,
    continued: bool,
    widths: &[u32],
) -> String {
    let name = escape(collection);
    let path = format!("/c/{}", url_encode(collection));
    let mut out = String::with_capacity(4096 + items.len() * 512);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{name}</title>\n\
         <link rel=\"stylesheet\" href=\"{assets_prefix}/collection.css\">\n\
         <link rel=\"icon\" href=\"{assets_prefix}/icon.svg\" type=\"image/svg+xml\">\n\
         <link rel=\"alternate\" type=\"application/json\" href=\"/api/media?collection={}\">\n\
         </head>\n<body>\n<main>\n<header><h1>{name}</h1></header>\n",
        url_encode(collection)
    );
    if items.is_empty() {
        let message = if continued {
            "There is nothing more in this collection."
        } else {
            EMPTY_FIRST_PAGE
        };
        let _ = writeln!(out, "<p class=\"empty\">{message}</p>");
    } else {
        out.push_str("<ul class=\"gallery\">");
        for r in items {
            figure(&mut out, r, widths);
        }
        out.push_str("</ul>\n");
    }
    if next.is_some() || continued {
        out.push_str("<nav class=\"pager\" aria-label=\"Pages\">");
        if continued {
            let _ = write!(out, "<a href=\"{path}\">Newest</a>");
        }
        if let Some(cursor) = next {
            let _ = write!(
                out,
                "<a rel=\"next\" href=\"{path}?cursor={cursor}\">More</a>"
            );
        }
        out.push_str("</nav>\n");
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

fn html(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    assets::embed_page_headers(&mut res);
    res.insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// A collection's public media as an HTML page.
///
/// A plain, script-free gallery that a site can link to or frame; `200` also when the
/// collection has nothing public yet (an empty state, so a site can link to a collection before
/// its first upload). `GET /api/media?collection=` is the same as JSON.
#[utoipa::path(
    method(get, head),
    path = "/c/{collection}",
    operation_id = "collection_page",
    tag = "pages",
    params(
        ("collection" = String, Path, description = "The collection's name"),
        PageParams,
    ),
    responses(
        (status = 200, description = "The page", content_type = "text/html; charset=utf-8",
         body = String),
        (status = 400, response = BadRequest),
        (status = 404, description = "Not a possible collection name: an HTML page saying so",
         content_type = "text/html; charset=utf-8", body = String),
        (status = 500, response = ServerError),
    )
)]
pub async fn page(
    collection: web::Path<String>,
    params: web::Query<PageParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let prefix = state.assets.prefix();
    let Ok(Some(name)) = record::collection(&collection) else {
        let body = render(&prefix, "Not found", &[], None, false, &[])
            .replace(EMPTY_FIRST_PAGE, "There is no collection with that name.");
        return Ok(html(actix_web::http::StatusCode::NOT_FOUND, body));
    };
    let before = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(
            c.parse::<Cursor>()
                .map_err(|_| ApiError::invalid("cursor", "a link from an earlier page"))?,
        ),
        None => None,
    };
    let query = ListQuery {
        collection: Some(name.clone()),
        include_private: false,
        limit: PAGE_SIZE,
        before,
        ..ListQuery::default()
    };
    let store = state.store.clone();
    let listing = web::block(move || store.list(&query)).await??;
    let body = render(
        &prefix,
        &name,
        &listing.items,
        listing.next,
        before.is_some(),
        &state.config.variant_widths,
    );
    Ok(html(actix_web::http::StatusCode::OK, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
    }

    #[test]
    fn encodes_collection_names_for_urls() {
        assert_eq!(url_encode("summer 2026"), "summer%202026");
        assert_eq!(url_encode("a&b=c?"), "a%26b%3Dc%3F");
        assert_eq!(url_encode("été"), "%C3%A9t%C3%A9");
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(999), "999 bytes");
        assert_eq!(human_size(1_500), "1.5 KB");
        assert_eq!(human_size(2_300_000), "2.3 MB");
    }

    #[test]
    fn empty_collection_has_an_empty_state_and_no_inline_code() {
        let page = render("/assets/v1", "<stories>", &[], None, false, &[]);
        assert!(page.contains("<title>&lt;stories&gt;</title>"));
        assert!(page.contains("Nothing has been published"));
        assert!(!page.contains("<script"));
        assert!(!page.contains("style="));
    }
}

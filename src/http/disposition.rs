//! How a file goes out: inline or as a download, under which name (`Content-Disposition`).

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{
    Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue,
};
use actix_web::web;

/// Whether the query asks for a download: `download` with any value but `0` or `false`.
pub fn wants_download(req: &ServiceRequest) -> bool {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| {
            q.iter()
                .any(|(k, v)| k == "download" && v != "0" && v != "false")
        })
        .unwrap_or(false)
}

/// `Content-Disposition` with the original name: a plain ASCII `filename` for old clients and
/// an RFC 5987 `filename*` when the name is not ASCII (RFC 6266).
pub fn disposition(kind: DispositionType, filename: Option<&str>) -> ContentDisposition {
    let mut parameters = Vec::new();
    if let Some(name) = filename.filter(|n| !n.is_empty()) {
        let ascii: String = name
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        parameters.push(DispositionParam::Filename(ascii));
        if !name.is_ascii() {
            parameters.push(DispositionParam::FilenameExt(ExtendedValue {
                charset: Charset::Ext("UTF-8".into()),
                language_tag: None,
                value: name.as_bytes().to_vec(),
            }));
        }
    }
    ContentDisposition {
        disposition: kind,
        parameters,
    }
}

/// `name` with the extension of a variant's format: `photo.jpg` as `photo.webp`.
pub fn renamed(name: &str, format: shoebox_pictures::Format) -> String {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    format!("{stem}.{}", format.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_names_get_an_rfc5987_parameter() {
        let d = disposition(DispositionType::Attachment, Some("été \"2024\".jpg")).to_string();
        assert!(d.starts_with("attachment"), "{d}");
        assert!(d.contains("filename*=UTF-8''%C3%A9t%C3%A9"), "{d}");
        assert!(d.contains(r#"filename="_t_ \"2024\".jpg""#), "{d}");
        let plain = disposition(DispositionType::Inline, Some("photo.jpg")).to_string();
        assert_eq!(plain, "inline; filename=\"photo.jpg\"");
    }
}

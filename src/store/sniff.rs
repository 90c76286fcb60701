//! Content types: sniffed from the first bytes, falling back to the file name's extension.

use super::record::Kind;

/// Sniffed types so generic that a file name's extension says more (an SVG sniffs as XML, a
/// CSV as plain text, an EPUB or DOCX may sniff as a ZIP archive).
const GENERIC: &[&str] = &[
    "application/zip",
    "application/xml",
    "text/xml",
    "text/plain",
    "application/x-ole-storage",
];

/// Decides the content type of an upload: sniffed from its first bytes; when that says nothing
/// (or only something generic), the file name's extension, then the type the client declared.
pub fn content_type(head: &[u8], filename: &str, declared: Option<&str>) -> String {
    let by_extension = mime_guess::from_path(filename)
        .first_raw()
        .filter(|e| *e != "application/octet-stream");
    let hint = by_extension.or(declared);
    match (infer::get(head).map(|t| t.mime_type()), hint) {
        (Some(s), Some(h)) if GENERIC.contains(&s) => h.to_owned(),
        (Some(s), _) => s.to_owned(),
        // A hint that claims a binary media type for bytes that did not sniff as one is
        // believed; every response carries nosniff, so a browser will not second-guess it.
        (None, Some(h)) => h.to_owned(),
        (None, None) if looks_like_text(head) => "text/plain".to_owned(),
        (None, None) => "application/octet-stream".to_owned(),
    }
}

/// A file name extension for a content type, for uploads that came without a name.
pub fn extension(content_type: &str) -> &'static str {
    match content_type {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "video/mp4" => "mp4",
        "audio/mpeg" => "mp3",
        "text/plain" => "txt",
        "application/pdf" => "pdf",
        other => mime_guess::get_mime_extensions_str(other)
            .and_then(|exts| exts.first().copied())
            .unwrap_or("bin"),
    }
}

fn looks_like_text(head: &[u8]) -> bool {
    if head.is_empty() {
        return false;
    }
    // A multi-byte character may be cut at the end of the sniffed prefix.
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    valid && !head.contains(&0)
}

/// The broad kind of a content type.
pub fn kind(content_type: &str) -> Kind {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let (top, sub) = essence.split_once('/').unwrap_or((essence, ""));
    match top {
        "image" => Kind::Image,
        "video" => Kind::Video,
        "audio" => Kind::Audio,
        "text" => Kind::Document,
        "application" if is_document(sub) => Kind::Document,
        _ => Kind::Other,
    }
}

fn is_document(sub: &str) -> bool {
    matches!(
        sub,
        "pdf" | "msword" | "rtf" | "epub+zip" | "json" | "vnd.ms-excel" | "vnd.ms-powerpoint"
    ) || sub.starts_with("vnd.openxmlformats-officedocument")
        || sub.starts_with("vnd.oasis.opendocument")
}

/// Types that a browser would execute or render as an active document. Shoebox serves these
/// under a sandboxing Content-Security-Policy so uploaded markup never runs on its origin.
pub fn is_active(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "text/html"
            | "application/xhtml+xml"
            | "image/svg+xml"
            | "text/xml"
            | "application/xml"
            | "text/javascript"
            | "application/javascript"
            | "application/ecmascript"
            | "text/ecmascript"
    ) || essence.ends_with("+xml")
}

/// Width and height of an image, when its header is among the sniffed bytes.
pub fn dimensions(head: &[u8]) -> Option<(u32, u32)> {
    let size = imagesize::blob_size(head).ok()?;
    Some((
        u32::try_from(size.width).ok()?,
        u32::try_from(size.height).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_1X1: &[u8] = &[
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0,
        0, 3, 0, 0, 0, 2, 8, 6, 0, 0, 0,
    ];

    #[test]
    fn sniffing_wins_over_a_lying_extension() {
        assert_eq!(content_type(PNG_1X1, "holiday.txt", None), "image/png");
        assert_eq!(
            content_type(b"<!DOCTYPE html><html><script>", "cat.jpg", None),
            "text/html"
        );
    }

    #[test]
    fn extension_refines_generic_sniffs() {
        let svg = b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"></svg>";
        assert_eq!(content_type(svg, "logo.svg", None), "image/svg+xml");
        assert_eq!(content_type(b"a,b\n1,2\n", "table.csv", None), "text/csv");
        assert_eq!(content_type(b"just words", "notes", None), "text/plain");
        assert_eq!(
            content_type(&[0, 1, 2, 3], "blob", None),
            "application/octet-stream"
        );
        assert_eq!(
            content_type(&[0, 1, 2, 3], "blob", Some("video/webm")),
            "video/webm"
        );
        assert_eq!(extension("image/jpeg"), "jpg");
    }

    #[test]
    fn kinds_and_dimensions() {
        assert_eq!(kind("image/png"), Kind::Image);
        assert_eq!(kind("video/mp4"), Kind::Video);
        assert_eq!(kind("audio/mpeg"), Kind::Audio);
        assert_eq!(kind("application/pdf"), Kind::Document);
        assert_eq!(kind("text/plain; charset=utf-8"), Kind::Document);
        assert_eq!(kind("application/zip"), Kind::Other);
        assert_eq!(dimensions(PNG_1X1), Some((3, 2)));
        assert!(is_active("image/svg+xml") && is_active("text/html") && !is_active("image/png"));
    }
}

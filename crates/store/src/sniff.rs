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
    let declared = declared.map(normalise);
    let hint = by_extension.map(str::to_owned).or(declared);
    match (infer::get(head).map(|t| t.mime_type()), hint) {
        (Some(s), Some(h)) if GENERIC.contains(&s) => h,
        (Some(s), _) => s.to_owned(),
        // A hint that claims a type for bytes that did not sniff as anything is believed:
        // every response carries nosniff, and only the types on the inert list are shown on
        // Shoebox's origin; any other is a sandboxed download (see [`presentation`]).
        (None, Some(h)) => h,
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
    let essence = essence(content_type);
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

/// How a stored type may be shown on Shoebox's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presentation {
    /// Known to be inert: raster images, audio, video, PDF, plain text and JSON, inline.
    Inline,
    /// SVG: inline, under a Content-Security-Policy that runs no script.
    InlineNoScript,
    /// Everything else, including every type nobody has heard of: a download, under a
    /// sandboxing Content-Security-Policy, never rendered on the origin.
    Attachment,
}

/// Types a browser shows without running anything of the file's on the page's origin. An
/// allowlist: a type that is not here, however harmless it sounds, is downloaded.
const INERT: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/bmp",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "image/tiff",
    "image/heic",
    "image/heif",
    "image/jxl",
    "audio/mpeg",
    "audio/mp4",
    "audio/aac",
    "audio/ogg",
    "audio/opus",
    "audio/wav",
    "audio/x-wav",
    "audio/webm",
    "audio/flac",
    "audio/x-flac",
    "audio/x-m4a",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
    "video/x-matroska",
    "video/mpeg",
    "video/3gpp",
    "application/pdf",
    "text/plain",
    "application/json",
];

/// The type without its parameters (case as given).
fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or_default().trim()
}

/// How a stored type is served (see [`Presentation`]). Runs on every file request, so it
/// compares in place rather than building a lower-cased copy.
pub fn presentation(content_type: &str) -> Presentation {
    let essence = essence(content_type);
    if INERT.iter().any(|t| t.eq_ignore_ascii_case(essence)) {
        Presentation::Inline
    } else if essence.eq_ignore_ascii_case("image/svg+xml") {
        Presentation::InlineNoScript
    } else {
        Presentation::Attachment
    }
}

/// A content type as it may be stored: `type/subtype` in lower case, made of the characters
/// RFC 9110 allows in a token, without parameters; anything else becomes
/// `application/octet-stream`. Applied to every type that comes from outside (a client's
/// declaration, a restored archive), so a stored type is always a clean header value.
pub fn normalise(content_type: &str) -> String {
    let essence = essence(content_type).to_ascii_lowercase();
    let token = |t: &str| {
        !t.is_empty()
            && t.len() <= 127
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match essence.split_once('/') {
        Some((top, sub)) if token(top) && token(sub) => essence,
        _ => "application/octet-stream".to_owned(),
    }
}

/// Width and height of an image as it is shown, when its header is among the sniffed bytes:
/// the header's size, turned a quarter when the EXIF orientation says so (a phone photo held
/// upright is stored on its side).
pub fn dimensions(head: &[u8]) -> Option<(u32, u32)> {
    let size = imagesize::blob_size(head).ok()?;
    let (w, h) = (
        u32::try_from(size.width).ok()?,
        u32::try_from(size.height).ok()?,
    );
    Some(if turned(head) { (h, w) } else { (w, h) })
}

/// Whether an image's EXIF orientation (5 to 8) turns it a quarter.
fn turned(head: &[u8]) -> bool {
    let Ok(exif) = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(head)) else {
        return false;
    };
    exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .is_some_and(|o| (5..=8).contains(&o))
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
        assert_eq!(presentation("image/svg+xml"), Presentation::InlineNoScript);
        assert_eq!(presentation("text/html"), Presentation::Attachment);
        assert_eq!(presentation("Image/PNG"), Presentation::Inline);
    }

    /// The attack round's types, declared with no extension and no sniffable bytes: only the
    /// inert ones are shown inline; everything else, known or not, is downloaded.
    #[test]
    fn declared_types_are_normalised_and_only_inert_ones_shown_inline() {
        let xml = b"<?xml version=\"1.0\"?><x:script xmlns:x=\"http://www.w3.org/1999/xhtml\">";
        for (declared, stored, shown) in [
            ("text/xsl", "text/xsl", Presentation::Attachment),
            (
                "TEXT/VTT; charset=utf-8",
                "text/vtt",
                Presentation::Attachment,
            ),
            (
                "multipart/x-mixed-replace; boundary=x",
                "multipart/x-mixed-replace",
                Presentation::Attachment,
            ),
            (
                "text/x-unheard-of",
                "text/x-unheard-of",
                Presentation::Attachment,
            ),
            (
                "application/xhtml+xml",
                "application/xhtml+xml",
                Presentation::Attachment,
            ),
            ("text/html", "text/html", Presentation::Attachment),
            (
                "image/svg+xml",
                "image/svg+xml",
                Presentation::InlineNoScript,
            ),
            ("image/png", "image/png", Presentation::Inline),
            ("text/plain", "text/plain", Presentation::Inline),
            ("application/json", "application/json", Presentation::Inline),
            (
                "a/b\r\nSet-Cookie: x=1",
                "application/octet-stream",
                Presentation::Attachment,
            ),
            (
                "nonsense",
                "application/octet-stream",
                Presentation::Attachment,
            ),
            ("", "application/octet-stream", Presentation::Attachment),
        ] {
            let ct = content_type(xml, "holiday-photos", Some(declared));
            assert_eq!(ct, stored, "{declared:?}");
            assert_eq!(presentation(&ct), shown, "{declared:?}");
        }
    }
}

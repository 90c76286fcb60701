//! `Upload-Metadata`: the fields of a resumable upload, in tus's encoding (comma-separated
//! pairs of a key and a base64 value). The keys are the multipart form's fields, plus
//! `filename` and `filetype`; `name` and `type`, which Uppy and tus-js-client send, stand in
//! for those two when they are missing. Other keys (`relativePath`, ...) are ignored: clients
//! add their own, and refusing them would refuse the clients.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use super::super::error::ApiError;
use super::super::upload::{declared_type, keep_asked, FieldsBuilder};
use crate::store::record;
use crate::store::MediaFields;

/// At most this many bytes of `Upload-Metadata` (the form's own bounds, in one header).
pub const MAX_METADATA: usize = 64 * 1024;

/// Standard base64, with or without padding (clients differ).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What `Upload-Metadata` says about the file to be.
#[derive(Debug)]
pub struct UploadMeta {
    pub filename: String,
    /// The client's word for the type, used only when neither the bytes nor the name tell.
    pub filetype: Option<String>,
    pub fields: MediaFields,
    /// `keep_metadata`: the picture is kept with its location and device data.
    pub keep: bool,
}

/// Decodes the pairs, checking the encoding only.
fn pairs(header: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for pair in header.split(',') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (key, value) = match pair.split_once(' ') {
            Some((k, v)) => (k, v.trim()),
            None => (pair, ""),
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::invalid(
                "Upload-Metadata",
                "comma-separated pairs of a key and a base64 value",
            ));
        }
        let bytes = BASE64.decode(value).map_err(|_| {
            ApiError::invalid(
                "Upload-Metadata",
                format!("base64 values (the value of {key:?} is not base64)"),
            )
        })?;
        let value = String::from_utf8(bytes).map_err(|_| {
            ApiError::invalid(
                "Upload-Metadata",
                format!("UTF-8 values (the value of {key:?} is not)"),
            )
        })?;
        if out.iter().any(|(k, _)| k == key) {
            return Err(ApiError::bad_request(format!(
                "Upload-Metadata names {key:?} twice"
            )));
        }
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

/// Reads and checks `Upload-Metadata` as a multipart upload's fields are checked: an invalid
/// value is refused, an unknown key ignored. `admin` says whether `keep_metadata` may be asked.
pub fn parse(header: &str, admin: bool, keep_default: bool) -> Result<UploadMeta, ApiError> {
    if header.len() > MAX_METADATA {
        return Err(ApiError::bad_request(format!(
            "Upload-Metadata is longer than {MAX_METADATA} bytes"
        )));
    }
    let pairs = pairs(header)?;
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let filename = get("filename").or_else(|| get("name")).unwrap_or_default();
    let filetype = get("filetype").or_else(|| get("type"));
    let mut builder = FieldsBuilder::default();
    let mut keep = keep_default;
    for (key, value) in &pairs {
        match key.as_str() {
            "title" | "description" | "alt" | "tags" | "collection" | "visibility" | "custom" => {
                builder.set(key, value)?
            }
            k if k.starts_with("custom.") => builder.set(k, value)?,
            "keep_metadata" => keep |= keep_asked(value, admin)?,
            _ => {}
        }
    }
    Ok(UploadMeta {
        filename: record::filename(filename),
        filetype: declared_type(filetype),
        fields: builder.finish()?,
        keep,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(pairs: &[(&str, &str)]) -> String {
        pairs
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k} {}",
                    base64::engine::general_purpose::STANDARD.encode(v)
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn reads_the_form_fields_and_ignores_other_keys() {
        let header = encode(&[
            ("filename", "trip.mp4"),
            ("filetype", "video/mp4"),
            ("title", "Trip"),
            ("tags", "sea, summer"),
            ("visibility", "private"),
            ("custom", r#"{"message_id": 7}"#),
            ("custom.source", "phone"),
            ("relativePath", "null"),
        ]) + ",is_confidential";
        let m = parse(&header, false, false).unwrap();
        assert_eq!(m.filename, "trip.mp4");
        assert_eq!(m.filetype.as_deref(), Some("video/mp4"));
        assert_eq!(m.fields.title, "Trip");
        assert_eq!(m.fields.tags, ["sea", "summer"]);
        assert_eq!(m.fields.custom["message_id"], 7);
        assert_eq!(m.fields.custom["source"], "phone");
        assert!(!m.keep);
    }

    #[test]
    fn name_and_type_stand_in_for_filename_and_filetype() {
        let m = parse(
            &encode(&[("name", "a.png"), ("type", "image/png")]),
            false,
            false,
        )
        .unwrap();
        assert_eq!(m.filename, "a.png");
        assert_eq!(m.filetype.as_deref(), Some("image/png"));
        let both = encode(&[("name", "b.png"), ("filename", "a.png")]);
        assert_eq!(parse(&both, false, false).unwrap().filename, "a.png");
        // Unpadded base64 is read too.
        assert_eq!(
            parse("filename YS5qcGc", false, false).unwrap().filename,
            "a.jpg"
        );
        assert_eq!(parse("", false, false).unwrap().filename, "");
    }

    #[test]
    fn refuses_what_a_form_would_refuse() {
        for bad in [
            encode(&[("visibility", "secret")]),
            encode(&[("custom", "[1, 2]")]),
            encode(&[("keep_metadata", "true")]),
            encode(&[("title", &"x".repeat(600))]),
            "filename !!!".to_owned(),
            "filename YQ==,filename Yg==".to_owned(),
            "fil\u{e9}name YQ==".to_owned(),
        ] {
            assert!(parse(&bad, false, false).is_err(), "{bad}");
        }
        assert!(
            parse(&encode(&[("keep_metadata", "true")]), true, false)
                .unwrap()
                .keep
        );
    }
}

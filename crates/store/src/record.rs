//! The media record and the rules for its editable fields.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::hash::ContentHash;
use super::StoreError;

/// Version of the record's JSON shape, stored in every record so that it can evolve.
pub const RECORD_SCHEMA: u32 = 1;

/// Longest title, in characters.
pub const MAX_TITLE: usize = 500;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 10_000;
/// Longest alt text, in characters.
pub const MAX_ALT: usize = 2_000;
/// Most tags on one record.
pub const MAX_TAGS: usize = 64;
/// Longest tag, in characters.
pub const MAX_TAG: usize = 64;
/// Longest collection name, in characters.
pub const MAX_COLLECTION: usize = 100;
/// Longest original file name kept, in UTF-8 bytes; a longer one is cut short.
pub const MAX_FILENAME: usize = 255;
/// Largest `custom` object, in bytes of compact JSON.
pub const MAX_CUSTOM_BYTES: usize = 16 * 1024;
/// Longest object key, in UTF-8 bytes (S3's limit).
pub const MAX_KEY: usize = 1024;

/// A media id: a ULID, so ids are short, URL-safe and sort by creation time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct MediaId(pub ulid::Ulid);

impl MediaId {
    /// Big-endian bytes: sled orders keys bytewise, so these sort by time.
    pub fn to_key(self) -> [u8; 16] {
        self.0 .0.to_be_bytes()
    }

    /// The id whose [`to_key`](Self::to_key) these bytes are; `None` unless there are 16.
    pub fn from_key(bytes: &[u8]) -> Option<Self> {
        <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| MediaId(ulid::Ulid(u128::from_be_bytes(b))))
    }
}

impl fmt::Display for MediaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Lower case reads better in URLs; parsing accepts either case.
        f.write_str(&self.0.to_string().to_ascii_lowercase())
    }
}

/// Error for a string that is not a 26-character ULID.
#[derive(Debug, thiserror::Error)]
#[error("a media id is a 26-character ULID")]
pub struct InvalidId;

impl FromStr for MediaId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 26 {
            return Err(InvalidId);
        }
        ulid::Ulid::from_string(s)
            .map(MediaId)
            .map_err(|_| InvalidId)
    }
}

/// Described for the OpenAPI document (see `http::openapi`): a ULID string.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for MediaId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some(
                "A media id: a 26-character ULID (Crockford base 32), lower case; sorts by \
                 creation time.",
            ))
            .pattern(Some("^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$"))
            .examples(["01jd8x4w9k6t2m3n4p5q6r7s8t"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for MediaId {}

impl Serialize for MediaId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MediaId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a file is, broadly; derived from its content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `image/*`.
    Image,
    /// `video/*`.
    Video,
    /// `audio/*`.
    Audio,
    /// `text/*`, PDF, JSON, office documents and EPUB.
    Document,
    /// Anything else.
    Other,
}

impl Kind {
    /// Every kind, in a fixed order (that of [`Totals::kinds`](crate::Totals::kinds)).
    pub const ALL: [Kind; 5] = [
        Kind::Image,
        Kind::Video,
        Kind::Audio,
        Kind::Document,
        Kind::Other,
    ];

    /// The name in JSON and in query strings: `image`, `video`, `audio`, `document`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Video => "video",
            Kind::Audio => "audio",
            Kind::Document => "document",
            Kind::Other => "other",
        }
    }
}

impl FromStr for Kind {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                StoreError::invalid("kind", "one of image, video, audio, document, other")
            })
    }
}

/// Where a video's poster frame stands (see `MediaRecord::poster`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PosterState {
    /// Being made, after the upload was acknowledged.
    Pending,
    /// Made, and served at `/m/{id}?poster=1`.
    Ready,
    /// ffmpeg could not make one; the video itself is stored and served all the same.
    Failed,
}

/// Who may see a record: anyone, or only callers with a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone may see it, without a token.
    #[default]
    Public,
    /// Only callers with a token that may see it.
    Private,
}

impl FromStr for Visibility {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "public" => Ok(Visibility::Public),
            "private" => Ok(Visibility::Private),
            _ => Err(StoreError::invalid(
                "visibility",
                "\"public\" or \"private\"",
            )),
        }
    }
}

/// One stored media item.
///
/// Its derived `ToSchema` is the record's shape in the OpenAPI document; the store itself never
/// uses it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MediaRecord {
    /// Version of the record's JSON shape.
    pub schema: u32,
    /// Assigned at upload; its time is the upload's, or an imported file's own.
    pub id: MediaId,
    /// The sha256 of the bytes, naming their blob; records of identical files share it.
    pub hash: ContentHash,
    /// Bytes.
    pub size: u64,
    /// Sniffed from the bytes, not trusted from the name.
    pub content_type: String,
    /// Derived from `content_type`.
    pub kind: Kind,
    /// The original file name (metadata only); may be empty.
    pub filename: String,
    /// A short caption; may be empty.
    pub title: String,
    /// Longer free text; may be empty.
    pub description: String,
    /// Text alternative for readers who cannot see the media; may be empty.
    pub alt: String,
    /// Lower-cased, without duplicates.
    pub tags: Vec<String>,
    /// Always present; `null` outside any collection.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub collection: Option<String>,
    /// Its object key, unique within its collection (the S3 API's bucket; records outside
    /// any collection form the bucket `default`): the one given at upload, else
    /// `{id}/{filename}` as they were at upload; it never changes. Absent in records written
    /// before keys were kept, whose key is that derived one (see [`MediaRecord::key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Who may see it.
    pub visibility: Visibility,
    /// The caller's own keys.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub custom: Map<String, Value>,
    /// The file's old URL path (or path inside the imported folder), for media adopted by
    /// `shoebox import`; the server answers that path with this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_path: Option<String>,
    /// The id of the API token that uploaded it; none for the admin token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// For a picture kept without its metadata: the sha256 of the bytes as they arrived
    /// (`hash` is the address of the bytes kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_hash: Option<ContentHash>,
    /// The hex MD5 of the bytes, which S3 clients compare with an object's ETag. Absent for
    /// media stored before Shoebox kept MD5s, and for uploads that did not compute one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// The ETag S3 gave an object completed from parts (the MD5 of the parts' MD5s, a hyphen
    /// and the number of parts), which clients keep; absent for anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// For a picture kept without its metadata: what was removed (`gps`, `exif`, `xmp`,
    /// `iptc`, `comment`, `text`, `secondary-images`; empty when it had none). Absent when the
    /// bytes were kept as they came: not a picture this knows, kept on request, or imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripped: Option<Vec<String>>,
    /// Pixels, for an image whose header gave its size, as shown (after its orientation);
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Pixels, for an image whose header gave its size; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Seconds, for audio and video whose length ffprobe could read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// For a video, when the server makes posters (ffmpeg is installed): whether its poster
    /// frame is pending, ready or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poster: Option<PosterState>,
    /// When it was uploaded, or an imported file's modification time; RFC 3339 in JSON.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was uploaded or last edited; RFC 3339 in JSON.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl MediaRecord {
    /// Whether its ETag waits for an MD5 of its bytes: a record with neither an MD5 nor the
    /// ETag of an object completed from parts (which is made of the parts' MD5s).
    pub fn wants_md5(&self) -> bool {
        self.md5.is_none() && self.etag.is_none()
    }

    /// Whether anyone may see it, without a token.
    pub fn is_public(&self) -> bool {
        self.visibility == Visibility::Public
    }

    /// Its object key: the stored one, or for a record written before keys were kept,
    /// `{id}/{filename}`, the key it would have been given.
    pub fn key(&self) -> Cow<'_, str> {
        match &self.key {
            Some(key) => Cow::Borrowed(key),
            None => Cow::Owned(derived_key(self.id, &self.filename)),
        }
    }
}

/// The key of a record given none: `{id}/{filename}`, unique by its id.
pub(crate) fn derived_key(id: MediaId, filename: &str) -> String {
    format!("{id}/{filename}")
}

/// The caller-supplied fields of a new upload, already validated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MediaFields {
    /// A short caption; may be empty.
    pub title: String,
    /// Longer free text; may be empty.
    pub description: String,
    /// Text alternative; may be empty.
    pub alt: String,
    /// As [`tags`] leaves them: lower-cased, without duplicates.
    pub tags: Vec<String>,
    /// `None` outside any collection.
    pub collection: Option<String>,
    /// Who may see it.
    pub visibility: Visibility,
    /// The caller's own keys.
    pub custom: Map<String, Value>,
    /// For imports: the old path, and the file's own time instead of now.
    pub legacy_path: Option<String>,
    /// The record's creation time, which its id sorts by too; `None` for now.
    pub created_at: Option<OffsetDateTime>,
    /// The uploading token's id, when it is not the admin.
    pub owner: Option<String>,
    /// The object key, as [`object_key`] checks it; `None` gives the record `{id}/{filename}`.
    pub key: Option<String>,
}

/// A change to the editable fields; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MediaPatch {
    /// Replaces the original file name (metadata only).
    pub filename: Option<String>,
    /// Replaces the title.
    pub title: Option<String>,
    /// Replaces the description.
    pub description: Option<String>,
    /// Replaces the alt text.
    pub alt: Option<String>,
    /// Replaces every tag.
    pub tags: Option<Vec<String>>,
    /// `Some(None)` removes the record from its collection.
    pub collection: Option<Option<String>>,
    /// Replaces the visibility.
    pub visibility: Option<Visibility>,
    /// Replaces the whole custom object; keys are not merged.
    pub custom: Option<Map<String, Value>>,
}

impl MediaPatch {
    /// Sets the fields that are `Some` on `record`, as given: validating them and setting
    /// `updated_at` are the caller's. A record written before keys were kept has its derived
    /// key stored first, so that a new filename does not move it.
    pub fn apply(&self, record: &mut MediaRecord) {
        if record.key.is_none() {
            record.key = Some(record.key().into_owned());
        }
        let set = |dst: &mut String, src: &Option<String>| {
            if let Some(v) = src {
                dst.clone_from(v);
            }
        };
        set(&mut record.filename, &self.filename);
        set(&mut record.title, &self.title);
        set(&mut record.description, &self.description);
        set(&mut record.alt, &self.alt);
        if let Some(tags) = &self.tags {
            record.tags.clone_from(tags);
        }
        if let Some(c) = &self.collection {
            record.collection.clone_from(c);
        }
        if let Some(v) = self.visibility {
            record.visibility = v;
        }
        if let Some(c) = &self.custom {
            record.custom.clone_from(c);
        }
    }
}

fn has_control(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
}

/// A free-text field: trimmed, bounded, without control characters other than line breaks.
pub fn text_field(field: &'static str, value: &str, max: usize) -> Result<String, StoreError> {
    let value = value.trim();
    if value.chars().count() > max {
        return Err(StoreError::invalid(
            field,
            &format!("at most {max} characters"),
        ));
    }
    if has_control(value) {
        return Err(StoreError::invalid(
            field,
            "text without control characters",
        ));
    }
    Ok(value.to_owned())
}

/// A tag: trimmed, inner whitespace collapsed, lower-cased so that "Summer" and "summer" are
/// one tag.
pub fn tag(value: &str) -> Result<Option<String>, StoreError> {
    let cleaned = value
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    if cleaned.is_empty() {
        return Ok(None);
    }
    if cleaned.chars().count() > MAX_TAG
        || cleaned.chars().any(char::is_control)
        || cleaned.contains(',')
    {
        return Err(StoreError::invalid(
            "tags",
            &format!("tags of at most {MAX_TAG} characters, without commas or control characters"),
        ));
    }
    Ok(Some(cleaned))
}

/// Tags from a list; empty entries are dropped, duplicates removed, order kept.
pub fn tags<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if let Some(t) = tag(v)? {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    if out.len() > MAX_TAGS {
        return Err(StoreError::invalid(
            "tags",
            &format!("at most {MAX_TAGS} tags"),
        ));
    }
    Ok(out)
}

/// Tags from the comma-separated form used by form fields and query strings.
pub fn tag_list(value: &str) -> Result<Vec<String>, StoreError> {
    tags(value.split(','))
}

/// An object key: 1 to [`MAX_KEY`] bytes of UTF-8 without control characters (NUL among
/// them), taken as given: no trimming, since `a ` and `a` are two keys.
pub fn object_key(value: &str) -> Result<String, StoreError> {
    if value.is_empty() || value.len() > MAX_KEY || value.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            "key",
            &format!("1 to {MAX_KEY} bytes of UTF-8 without control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// A collection name; empty means "no collection".
pub fn collection(value: &str) -> Result<Option<String>, StoreError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.chars().count() > MAX_COLLECTION
        || value.chars().any(char::is_control)
        || value.contains('/')
    {
        return Err(StoreError::invalid(
            "collection",
            &format!(
                "a name of at most {MAX_COLLECTION} characters without '/' or control characters"
            ),
        ));
    }
    Ok(Some(value.to_owned()))
}

/// The caller's own keys: a JSON object of bounded size.
pub fn custom(value: Value) -> Result<Map<String, Value>, StoreError> {
    match value {
        Value::Object(map) => {
            if serde_json::to_vec(&map)
                .map(|v| v.len())
                .unwrap_or(usize::MAX)
                > MAX_CUSTOM_BYTES
            {
                return Err(StoreError::invalid(
                    "custom",
                    &format!("a JSON object of at most {MAX_CUSTOM_BYTES} bytes"),
                ));
            }
            Ok(map)
        }
        Value::Null => Ok(Map::new()),
        _ => Err(StoreError::invalid("custom", "a JSON object")),
    }
}

/// The caller's own keys from JSON text, checked as [`custom`] checks them; blank text is an
/// empty object.
pub fn custom_str(value: &str) -> Result<Map<String, Value>, StoreError> {
    if value.trim().is_empty() {
        return Ok(Map::new());
    }
    let parsed: Value =
        serde_json::from_str(value).map_err(|_| StoreError::invalid("custom", "a JSON object"))?;
    custom(parsed)
}

/// The original file name, kept only as metadata: the last path component, without control
/// characters, bounded in length. It never names anything on disk.
pub fn filename(value: &str) -> String {
    let last = value.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim().trim_matches('.').trim();
    let mut out = String::new();
    for c in cleaned.chars() {
        if out.len() + c.len_utf8() > MAX_FILENAME {
            break;
        }
        out.push(c);
    }
    out
}

/// The time now, in UTC, to the millisecond: the precision records store.
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    // Millisecond precision keeps the JSON short and round-trips exactly.
    now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(now)
}

#[cfg(test)]
mod tests;

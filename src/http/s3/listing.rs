//! Listing a bucket's objects: `ListObjectsV2`, `ListObjects` (v1) and `ListObjectVersions`
//! (every object is its only version, `null`), in byte order of their keys, with prefixes,
//! delimiters (common prefixes), pages and `encoding-type=url`.
//!
//! The store seeks through its key index; a common prefix is stepped over in one seek rather
//! than read key by key. A caller sees what it may read (an upload key: public objects and its
//! own), and one request examines a bounded number of keys before it returns what it has and a
//! marker to continue.

use actix_web::web;
use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::{self, Timestamp};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::super::auth::Caller;
use super::super::AppState;
use super::buckets;
use super::keys;
use super::objects::{etag, store_error};
use crate::store::MediaRecord;

/// Keys one page may hold, as in S3.
const MAX_KEYS: usize = 1000;
/// Keys one request reads from the index before it stops with a marker.
const MAX_EXAMINED: usize = 20_000;
/// Keys read from the index at a time.
const BATCH: usize = 256;

/// Where a page ends: after this key, or after every key under this common prefix.
#[derive(Debug, Clone, PartialEq)]
enum Marker {
    Key(String),
    Prefix(String),
}

impl Marker {
    /// The key the next read starts after. Every key under a prefix sorts before the prefix
    /// followed by the last Unicode scalar value (bar keys that hold that very character
    /// there, which are not listed).
    fn after(&self) -> String {
        match self {
            Marker::Key(k) => k.clone(),
            Marker::Prefix(p) => format!("{p}\u{10FFFF}"),
        }
    }

    fn token(&self) -> String {
        let text = match self {
            Marker::Key(k) => format!("k{k}"),
            Marker::Prefix(p) => format!("p{p}"),
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    fn from_token(token: &str) -> S3Result<Marker> {
        let bad = || s3_error!(InvalidArgument, "the continuation token is not one of ours");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        match text.split_at_checked(1) {
            Some(("k", k)) => Ok(Marker::Key(k.to_owned())),
            Some(("p", p)) => Ok(Marker::Prefix(p.to_owned())),
            _ => Err(bad()),
        }
    }

    fn text(&self) -> &str {
        match self {
            Marker::Key(t) | Marker::Prefix(t) => t,
        }
    }
}

/// One page of a listing.
#[derive(Default)]
struct Page {
    objects: Vec<MediaRecord>,
    prefixes: Vec<String>,
    truncated: bool,
    /// The last key or common prefix on the page.
    last: Option<Marker>,
}

struct Query<'a> {
    bucket: &'a str,
    prefix: &'a str,
    delimiter: Option<&'a str>,
    after: Option<Marker>,
    max: usize,
}

fn page(state: &AppState, caller: &Caller, q: &Query<'_>) -> S3Result<Page> {
    if !buckets::exists(state, q.bucket)? {
        return Err(s3_error!(NoSuchBucket));
    }
    let collection = buckets::collection_of(q.bucket);
    let mut out = Page::default();
    let mut cursor = q.after.as_ref().map(Marker::after);
    let mut examined = 0;
    'reads: loop {
        let batch = state
            .store
            .list_keys(collection, q.prefix, cursor.as_deref(), BATCH)
            .map_err(store_error)?;
        let full = batch.len() == BATCH;
        if batch.is_empty() {
            break;
        }
        for r in batch {
            examined += 1;
            let key = r.key().into_owned();
            let readable = caller.can_read(&r);
            let rolled = q.delimiter.filter(|d| !d.is_empty()).and_then(|d| {
                key[q.prefix.len()..]
                    .find(d)
                    .map(|i| key[..q.prefix.len() + i + d.len()].to_owned())
            });
            cursor = Some(key.clone());
            if readable {
                if out.objects.len() + out.prefixes.len() == q.max {
                    out.truncated = true;
                    break 'reads;
                }
                match rolled {
                    Some(prefix) => {
                        out.prefixes.push(prefix.clone());
                        let marker = Marker::Prefix(prefix);
                        cursor = Some(marker.after());
                        out.last = Some(marker);
                        // Every other key under the prefix is stepped over in one seek.
                        continue 'reads;
                    }
                    None => {
                        out.last = Some(Marker::Key(key));
                        out.objects.push(r);
                    }
                }
            }
            if examined >= MAX_EXAMINED {
                // Enough for one request: the next one goes on from here.
                out.truncated = true;
                if !readable {
                    out.last = cursor.clone().map(Marker::Key);
                }
                break 'reads;
            }
        }
        if !full {
            break;
        }
    }
    Ok(out)
}

fn max_keys(asked: Option<i32>) -> S3Result<usize> {
    match asked {
        None => Ok(MAX_KEYS),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys cannot be negative")),
        Some(n) => Ok(usize::try_from(n).unwrap_or(MAX_KEYS).min(MAX_KEYS)),
    }
}

/// What `encoding-type=url` encodes: everything but unreserved characters and `/`.
const KEY_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Text as the listing returns it: URL-encoded when the client asked.
struct Encoder(bool);

impl Encoder {
    fn of(encoding: Option<&dto::EncodingType>) -> S3Result<Encoder> {
        match encoding.map(|e| e.as_str()) {
            None => Ok(Encoder(false)),
            Some(dto::EncodingType::URL) => Ok(Encoder(true)),
            Some(other) => Err(s3_error!(InvalidArgument, "unknown encoding-type {other}")),
        }
    }

    fn text(&self, s: &str) -> String {
        if self.0 {
            utf8_percent_encode(s, KEY_ESCAPES).to_string()
        } else {
            s.to_owned()
        }
    }

    fn encoding(&self) -> Option<dto::EncodingType> {
        self.0
            .then(|| dto::EncodingType::from_static(dto::EncodingType::URL))
    }
}

fn object(r: &MediaRecord, enc: &Encoder, owner: Option<&dto::Owner>) -> dto::Object {
    dto::Object {
        key: Some(enc.text(&r.key())),
        e_tag: Some(etag(r)),
        size: i64::try_from(r.size).ok(),
        last_modified: Some(Timestamp::from(r.updated_at)),
        storage_class: Some(dto::ObjectStorageClass::from_static(
            dto::ObjectStorageClass::STANDARD,
        )),
        owner: owner.cloned(),
        ..Default::default()
    }
}

fn prefixes(list: &[String], enc: &Encoder) -> Option<Vec<dto::CommonPrefix>> {
    (!list.is_empty()).then(|| {
        list.iter()
            .map(|p| dto::CommonPrefix {
                prefix: Some(enc.text(p)),
            })
            .collect()
    })
}

pub(super) async fn list_v2(
    state: &web::Data<AppState>,
    req: S3Request<dto::ListObjectsV2Input>,
) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
    let caller = keys::caller(state, req.credentials.as_ref())?;
    let input = req.input;
    let enc = Encoder::of(input.encoding_type.as_ref())?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let after = match (&input.continuation_token, &input.start_after) {
        (Some(t), _) => Some(Marker::from_token(t)?),
        (None, Some(s)) if !s.is_empty() => Some(Marker::Key(s.clone())),
        _ => None,
    };
    let max = max_keys(input.max_keys)?;
    let q = Query {
        bucket: &input.bucket,
        prefix: &prefix,
        delimiter: input.delimiter.as_deref(),
        after,
        max,
    };
    let p = page(state, &caller, &q)?;
    let owner = input
        .fetch_owner
        .unwrap_or(false)
        .then(|| buckets::owner(&caller));
    let contents: Vec<_> = p
        .objects
        .iter()
        .map(|r| object(r, &enc, owner.as_ref()))
        .collect();
    Ok(S3Response::new(dto::ListObjectsV2Output {
        key_count: i32::try_from(contents.len() + p.prefixes.len()).ok(),
        contents: Some(contents),
        common_prefixes: prefixes(&p.prefixes, &enc),
        is_truncated: Some(p.truncated),
        next_continuation_token: p
            .truncated
            .then(|| p.last.as_ref().map(Marker::token))
            .flatten(),
        continuation_token: input.continuation_token,
        start_after: input.start_after.map(|s| enc.text(&s)),
        prefix: Some(enc.text(&prefix)),
        delimiter: input.delimiter.map(|d| enc.text(&d)),
        max_keys: i32::try_from(max).ok(),
        name: Some(input.bucket),
        encoding_type: enc.encoding(),
        ..Default::default()
    }))
}

/// A v1 marker: a key, or, when it ends with the delimiter under the prefix, a common prefix
/// returned before, whose keys are not listed again.
fn v1_marker(marker: &str, prefix: &str, delimiter: Option<&str>) -> Marker {
    match delimiter {
        Some(d) if !d.is_empty() && marker.starts_with(prefix) && marker.ends_with(d) => {
            Marker::Prefix(marker.to_owned())
        }
        _ => Marker::Key(marker.to_owned()),
    }
}

/// A page of a listing that continues after a marker (v1, and versions).
fn v1_page(
    state: &AppState,
    caller: &Caller,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    marker: Option<&str>,
    asked: Option<i32>,
) -> S3Result<(Page, usize)> {
    let max = max_keys(asked)?;
    let q = Query {
        bucket,
        prefix,
        delimiter,
        after: marker
            .filter(|m| !m.is_empty())
            .map(|m| v1_marker(m, prefix, delimiter)),
        max,
    };
    Ok((page(state, caller, &q)?, max))
}

pub(super) async fn list_v1(
    state: &web::Data<AppState>,
    req: S3Request<dto::ListObjectsInput>,
) -> S3Result<S3Response<dto::ListObjectsOutput>> {
    let caller = keys::caller(state, req.credentials.as_ref())?;
    let input = req.input;
    let enc = Encoder::of(input.encoding_type.as_ref())?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let (p, max) = v1_page(
        state,
        &caller,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref(),
        input.marker.as_deref(),
        input.max_keys,
    )?;
    let owner = buckets::owner(&caller);
    Ok(S3Response::new(dto::ListObjectsOutput {
        contents: Some(
            p.objects
                .iter()
                .map(|r| object(r, &enc, Some(&owner)))
                .collect(),
        ),
        common_prefixes: prefixes(&p.prefixes, &enc),
        is_truncated: Some(p.truncated),
        next_marker: p
            .truncated
            .then(|| p.last.as_ref().map(|m| enc.text(m.text())))
            .flatten(),
        marker: input.marker.map(|m| enc.text(&m)),
        prefix: Some(enc.text(&prefix)),
        delimiter: input.delimiter.map(|d| enc.text(&d)),
        max_keys: i32::try_from(max).ok(),
        name: Some(input.bucket),
        encoding_type: enc.encoding(),
        ..Default::default()
    }))
}

pub(super) async fn list_versions(
    state: &web::Data<AppState>,
    req: S3Request<dto::ListObjectVersionsInput>,
) -> S3Result<S3Response<dto::ListObjectVersionsOutput>> {
    let caller = keys::caller(state, req.credentials.as_ref())?;
    let input = req.input;
    let enc = Encoder::of(input.encoding_type.as_ref())?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let (p, max) = v1_page(
        state,
        &caller,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref(),
        input.key_marker.as_deref(),
        input.max_keys,
    )?;
    let owner = buckets::owner(&caller);
    let versions = p
        .objects
        .iter()
        .map(|r| dto::ObjectVersion {
            key: Some(enc.text(&r.key())),
            version_id: Some("null".into()),
            is_latest: Some(true),
            e_tag: Some(etag(r)),
            size: i64::try_from(r.size).ok(),
            last_modified: Some(Timestamp::from(r.updated_at)),
            owner: Some(owner.clone()),
            storage_class: Some(dto::ObjectVersionStorageClass::from_static(
                dto::ObjectVersionStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(dto::ListObjectVersionsOutput {
        versions: Some(versions),
        common_prefixes: prefixes(&p.prefixes, &enc),
        is_truncated: Some(p.truncated),
        next_key_marker: p
            .truncated
            .then(|| p.last.as_ref().map(|m| enc.text(m.text())))
            .flatten(),
        next_version_id_marker: p.truncated.then(|| "null".to_owned()),
        key_marker: input.key_marker.map(|m| enc.text(&m)),
        version_id_marker: input.version_id_marker,
        prefix: Some(enc.text(&prefix)),
        delimiter: input.delimiter.map(|d| enc.text(&d)),
        max_keys: i32::try_from(max).ok(),
        name: Some(input.bucket),
        encoding_type: enc.encoding(),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_foreign_ones_are_refused() {
        for m in [
            Marker::Key("photos/2024/a b.jpg".into()),
            Marker::Prefix("photos/".into()),
            Marker::Key(String::new()),
        ] {
            assert_eq!(Marker::from_token(&m.token()).unwrap(), m);
        }
        assert!(Marker::from_token("not base64!").is_err());
        assert!(Marker::from_token("eA").is_err(), "an unknown kind");
    }

    #[test]
    fn a_prefix_marker_sorts_after_every_key_under_it() {
        let after = Marker::Prefix("a/".into()).after();
        for key in ["a/", "a/b", "a/\u{FFFF}zzz", "a/~"] {
            assert!(key < after.as_str(), "{key}");
        }
        assert!("a0" > after.as_str());
    }

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved_characters() {
        let enc = Encoder(true);
        assert_eq!(enc.text("a b/c+d_é.txt"), "a%20b/c%2Bd_%C3%A9.txt");
        assert_eq!(Encoder(false).text("a b"), "a b");
    }
}

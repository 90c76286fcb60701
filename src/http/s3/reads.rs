//! Reading objects: `GetObject` and `HeadObject`, with their conditions (`If-Match`,
//! `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`) and ranges, from the blob file
//! with the same reader as `/f/`.

use actix_web::web;
use s3s::dto::{self, ETagCondition, StreamingBlob, Timestamp};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::super::auth::Caller;
use super::super::blob_body::open_range;
use super::super::error::ApiError;
use super::super::AppState;
use super::keys::{self, denied};
use super::objects::{api_error, etag, find, metadata_of, store_error};
use crate::store::MediaRecord;

/// The answer to a conditional read: `None` to go on, or the error that ends it.
pub(super) fn preconditions(
    r: &MediaRecord,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let tag = etag(r);
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == tag.value(),
    };
    // HTTP dates have whole seconds.
    let modified = r.updated_at.unix_timestamp();
    let secs = |t: &Timestamp| time::OffsetDateTime::from(t.clone()).unix_timestamp();
    if let Some(c) = if_match {
        if !matches(c) {
            return Err(s3_error!(PreconditionFailed));
        }
    } else if let Some(t) = if_unmodified_since {
        if modified > secs(t) {
            return Err(s3_error!(PreconditionFailed));
        }
    }
    if let Some(c) = if_none_match {
        if matches(c) {
            return Err(s3_error!(NotModified));
        }
    } else if let Some(t) = if_modified_since {
        if modified <= secs(t) {
            return Err(s3_error!(NotModified));
        }
    }
    Ok(())
}

/// The object a read names, if the caller may read it.
pub(super) fn readable(
    state: &AppState,
    caller: &Caller,
    bucket: &str,
    key: &str,
) -> S3Result<MediaRecord> {
    let r = find(state, bucket, key)?;
    if !caller.can_read(&r) {
        return Err(denied("this object is private"));
    }
    if state.store.is_damaged(&r.hash) {
        return Err(api_error(ApiError::BlobDamaged(r.hash.to_hex())));
    }
    Ok(r)
}

/// A range as the bytes it covers.
fn span(range: Option<&dto::Range>, size: u64) -> S3Result<Option<(u64, u64)>> {
    match range {
        None => Ok(None),
        Some(r) => match r.check(size) {
            Ok(span) => Ok(Some((span.start, span.end - span.start))),
            Err(_) => Err(s3_error!(InvalidRange)),
        },
    }
}

/// What a GET or HEAD asks for.
struct Read<'a> {
    bucket: &'a str,
    key: &'a str,
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
    range: Option<&'a dto::Range>,
}

/// The object a GET or HEAD reads, once the caller may and its conditions hold, and the bytes
/// its range covers.
fn read(
    state: &AppState,
    credentials: Option<&s3s::auth::Credentials>,
    q: Read<'_>,
) -> S3Result<(MediaRecord, Option<(u64, u64)>)> {
    let caller = keys::caller(state, credentials)?;
    let r = readable(state, &caller, q.bucket, q.key)?;
    preconditions(
        &r,
        q.if_match,
        q.if_none_match,
        q.if_modified_since,
        q.if_unmodified_since,
    )?;
    let span = span(q.range, r.size)?;
    Ok((r, span))
}

fn content_type(r: &MediaRecord) -> Option<String> {
    Some(r.content_type.clone())
}

pub(super) async fn get(
    state: &web::Data<AppState>,
    req: S3Request<dto::GetObjectInput>,
) -> S3Result<S3Response<dto::GetObjectOutput>> {
    let input = req.input;
    let (r, span) = read(
        state,
        req.credentials.as_ref(),
        Read {
            bucket: &input.bucket,
            key: &input.key,
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
            range: input.range.as_ref(),
        },
    )?;
    let (start, len) = span.unwrap_or((0, r.size));
    let body = open_range(state.store.blobs(), &r.hash, start, len).map_err(store_error)?;
    let body = StreamingBlob::wrap(body);
    let output = dto::GetObjectOutput {
        body: Some(body),
        accept_ranges: Some("bytes".into()),
        content_length: i64::try_from(len).ok(),
        content_range: span.map(|(s, l)| format!("bytes {s}-{}/{}", s + l - 1, r.size)),
        content_type: content_type(&r),
        e_tag: Some(etag(&r)),
        last_modified: Some(Timestamp::from(r.updated_at)),
        metadata: metadata_of(&r),
        cache_control: Some(
            if r.is_public() {
                "public, max-age=300"
            } else {
                "private, no-cache"
            }
            .into(),
        ),
        ..Default::default()
    };
    let mut res = S3Response::new(output);
    if span.is_some() {
        res.status = Some(http::StatusCode::PARTIAL_CONTENT);
    }
    Ok(res)
}

pub(super) async fn head(
    state: &web::Data<AppState>,
    req: S3Request<dto::HeadObjectInput>,
) -> S3Result<S3Response<dto::HeadObjectOutput>> {
    let input = req.input;
    let (r, span) = read(
        state,
        req.credentials.as_ref(),
        Read {
            bucket: &input.bucket,
            key: &input.key,
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
            range: input.range.as_ref(),
        },
    )?;
    let len = span.map_or(r.size, |(_, l)| l);
    let mut res = S3Response::new(dto::HeadObjectOutput {
        accept_ranges: Some("bytes".into()),
        content_length: i64::try_from(len).ok(),
        content_range: span.map(|(s, l)| format!("bytes {s}-{}/{}", s + l - 1, r.size)),
        content_type: content_type(&r),
        e_tag: Some(etag(&r)),
        last_modified: Some(Timestamp::from(r.updated_at)),
        metadata: metadata_of(&r),
        ..Default::default()
    });
    if span.is_some() {
        res.status = Some(http::StatusCode::PARTIAL_CONTENT);
    }
    Ok(res)
}

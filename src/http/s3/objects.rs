//! Objects: media records found by their bucket (collection) and key. A put goes through the
//! same durable write path as `POST /api/media`, and its `200` means what a `201` there means;
//! a put to an existing key replaces the object and keeps the record's id, so `/m/{id}` URLs
//! keep working.
//!
//! S3 stores bytes as they were sent: an object put here keeps its pictures' metadata (an S3
//! client compares what it reads back with what it wrote, by size, MD5 and checksums).

use std::pin::Pin;

use actix_web::web;
use bytes::Bytes;
use futures_util::Stream;
use s3s::dto::{self, ETag, Timestamp};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use serde_json::{Map, Value};

use super::super::auth::Caller;
use super::super::blob_body::open_range;
use super::super::error::ApiError;
use super::super::{receive, upload, AppState};
use super::buckets;
use super::digests::{body_error, digesting, digests, sent_checksums, verify, Expected};
use super::keys::{self, denied};
use super::reads::{preconditions, readable};
use crate::store::record::{self, MediaFields};
use crate::store::{MediaRecord, NewMedia, Visibility};

type StdError = Box<dyn std::error::Error + Send + Sync>;

/// An object's ETag: the hex MD5 of its bytes, which S3 clients compare with their own. A
/// record uploaded before Shoebox kept MD5s has none yet; its ETag then has the form of a
/// multipart one, which clients do not take for an MD5.
pub(super) fn etag(r: &MediaRecord) -> ETag {
    if let Some(parts) = &r.etag {
        return ETag::Strong(parts.clone());
    }
    match &r.md5 {
        Some(md5) => ETag::Strong(md5.clone()),
        None => ETag::Strong(format!("{}-1", &r.hash.to_hex()[..32])),
    }
}

/// The record under a bucket's key, or the S3 error that says why there is none.
pub(super) fn find(state: &AppState, bucket: &str, key: &str) -> S3Result<MediaRecord> {
    let collection = buckets::collection_of(bucket);
    match state.store.by_key(collection, key).map_err(store_error)? {
        Some(r) => Ok(r),
        None if !buckets::exists(state, bucket)? => Err(s3_error!(NoSuchBucket)),
        None => Err(s3_error!(NoSuchKey)),
    }
}

/// An error of the store or the API as the S3 error SDKs branch on.
pub(super) fn api_error(e: ApiError) -> S3Error {
    let (status, code, message) = e.classify();
    let s3_code = match &e {
        ApiError::TooLarge { .. } => S3ErrorCode::EntityTooLarge,
        ApiError::RequestTimeout(_) => S3ErrorCode::RequestTimeout,
        ApiError::NotFound(_) => S3ErrorCode::NoSuchKey,
        ApiError::UnsupportedMediaType(_) => S3ErrorCode::InvalidArgument,
        ApiError::Conflict { .. } => S3ErrorCode::OperationAborted,
        _ if status.as_u16() == 507 => S3ErrorCode::Custom("InsufficientStorage".into()),
        _ if status.as_u16() == 503 => S3ErrorCode::ServiceUnavailable,
        _ if status.is_client_error() => S3ErrorCode::InvalidRequest,
        _ => S3ErrorCode::InternalError,
    };
    let mut err = S3Error::with_message(s3_code, message);
    if let Ok(s) = http::StatusCode::from_u16(status.as_u16()) {
        if code != "internal" {
            err.set_status_code(s);
        }
    }
    err
}

pub(super) fn store_error(e: crate::store::StoreError) -> S3Error {
    api_error(ApiError::Store(e))
}

/// `x-amz-meta-*` headers as a record's `custom` fields.
pub(super) fn custom_of(metadata: Option<dto::Metadata>) -> S3Result<Map<String, Value>> {
    let Some(m) = metadata else {
        return Ok(Map::new());
    };
    let map: Map<String, Value> = m
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v)))
        .collect();
    record::custom(Value::Object(map)).map_err(|e| s3_error!(InvalidArgument, "{e}"))
}

/// A record's string `custom` fields as `x-amz-meta-*` headers.
pub(super) fn metadata_of(r: &MediaRecord) -> Option<dto::Metadata> {
    let m: dto::Metadata = r
        .custom
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
        .filter(|(k, v)| {
            http::HeaderName::from_bytes(format!("x-amz-meta-{k}").as_bytes()).is_ok()
                && http::HeaderValue::from_str(v).is_ok()
        })
        .collect();
    (!m.is_empty()).then_some(m)
}

/// The last segment of a key, as the record's file name.
fn filename_of(key: &str) -> String {
    record::filename(key.rsplit('/').next().unwrap_or(key))
}

/// What a write asks for, besides its body.
pub(super) struct Write {
    pub(super) bucket: String,
    pub(super) key: String,
    pub(super) declared_type: Option<String>,
    pub(super) custom: Map<String, Value>,
    /// What a canned ACL asked for; else an object keeps its visibility, and a new one gets
    /// its bucket's default.
    pub(super) visibility: Option<Visibility>,
    pub(super) expected: Expected,
    pub(super) trailers: Option<s3s::TrailingHeaders>,
    /// The ETag of an object completed from parts.
    pub(super) etag: Option<String>,
}

/// A written object: its record and its body's digests.
pub(super) struct Written {
    pub(super) record: MediaRecord,
    pub(super) checksums: dto::Checksum,
}

/// The visibility a canned ACL asks for; only an admin key may make an object public.
pub(super) fn acl_visibility(caller: &Caller, acl: Option<&str>) -> S3Result<Option<Visibility>> {
    match acl {
        Some("public-read") | Some("public-read-write") => {
            if !caller.is_admin() {
                return Err(denied("only an admin key may make an object public"));
            }
            Ok(Some(Visibility::Public))
        }
        Some("private") => Ok(Some(Visibility::Private)),
        _ => Ok(None),
    }
}

/// Checks that the caller may write under a bucket's key: a key it may upload to, in a bucket
/// that exists, and an object it may replace. Answers the object there now.
pub(super) fn writable(
    state: &AppState,
    caller: &Caller,
    bucket: &str,
    key: &str,
) -> S3Result<Option<MediaRecord>> {
    if !caller.can_upload() {
        return Err(denied("this key may not write objects"));
    }
    record::object_key(key).map_err(|e| {
        if key.len() > record::MAX_KEY {
            s3_error!(KeyTooLongError, "{e}")
        } else {
            s3_error!(InvalidArgument, "{e}")
        }
    })?;
    if !buckets::exists(state, bucket)? {
        return Err(s3_error!(NoSuchBucket));
    }
    let existing = state
        .store
        .by_key(buckets::collection_of(bucket), key)
        .map_err(store_error)?;
    if let Some(r) = &existing {
        if !caller.can_edit(r) {
            return Err(denied("this key may replace only the objects it put"));
        }
    }
    Ok(existing)
}

/// Streams a body into the store under a bucket's key, creating or replacing the object.
pub(super) async fn write<S>(
    state: &web::Data<AppState>,
    caller: &Caller,
    w: Write,
    body: S,
) -> S3Result<Written>
where
    S: Stream<Item = Result<Bytes, StdError>> + Unpin,
{
    let existing = writable(state, caller, &w.bucket, &w.key)?;
    let visibility = w
        .visibility
        .or(existing.as_ref().map(|r| r.visibility))
        .unwrap_or_else(|| buckets::default_visibility(state, &w.bucket));
    let key = w.key;
    let fields = MediaFields {
        collection: buckets::collection_of(&w.bucket).map(str::to_owned),
        visibility,
        custom: w.custom,
        key: Some(key.clone()),
        ..MediaFields::default()
    };
    let (stream, done) = digesting(body, &w.expected);
    let owner = caller.owner();
    let filename = filename_of(&key);
    let declared = w.declared_type;
    let expected = w.expected;
    let trailers = w.trailers;
    let etag_of_parts = w.etag;
    let s = state.clone();
    let result = receive::receive(
        state.store.clone(),
        stream,
        state.config.max_upload_bytes,
        state.config.client_timeout,
        // An object completed from parts has their ETag; the MD5 of its whole would serve
        // nothing (S3 shows none), so completing one reads the parts only for the sha256.
        if etag_of_parts.is_some() {
            receive::Md5::Skip
        } else {
            receive::Md5::Compute
        },
        move |blob| {
            let digests = digests(&done)?;
            let md5 = blob.md5;
            if etag_of_parts.is_none() && md5.is_none() {
                return Err(ApiError::Internal("the upload's MD5 is missing".into()));
            }
            if let Err(e) = verify(
                &expected,
                &digests,
                md5.as_ref(),
                &blob.hash,
                trailers.as_ref(),
            ) {
                return Ok(Err(e));
            }
            let mut item = NewMedia::new(blob, filename, declared.as_deref(), fields);
            item.md5 = md5.map(hex::encode);
            item.etag = etag_of_parts;
            upload::accept(&s, &mut item, owner)?;
            let put = s.store.put(item)?;
            Ok(Ok(Written {
                record: put.record,
                checksums: digests.checksums,
            }))
        },
    )
    .await;
    match result {
        Ok(Ok(w)) => Ok(w),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(body_error(e)),
    }
}

pub(super) async fn put(
    state: &web::Data<AppState>,
    req: S3Request<dto::PutObjectInput>,
) -> S3Result<S3Response<dto::PutObjectOutput>> {
    let caller = keys::caller(state, req.credentials.as_ref())?;
    let input = req.input;
    let checksums = sent_checksums!(input);
    if let Some(cond) = &input.if_none_match {
        if cond.is_any() {
            let collection = buckets::collection_of(&input.bucket);
            if state
                .store
                .by_key(collection, &input.key)
                .map_err(store_error)?
                .is_some()
            {
                return Err(s3_error!(PreconditionFailed, "the object exists"));
            }
        }
    }
    let w = Write {
        bucket: input.bucket,
        key: input.key,
        declared_type: input.content_type,
        custom: custom_of(input.metadata)?,
        visibility: acl_visibility(&caller, input.acl.as_ref().map(|a| a.as_str()))?,
        expected: Expected::of(&req.headers, input.content_md5, checksums),
        trailers: req.trailing_headers,
        etag: None,
    };
    let body: Pin<Box<dyn Stream<Item = Result<Bytes, StdError>> + Send + Sync>> = match input.body
    {
        Some(b) => Box::pin(b),
        None => Box::pin(futures_util::stream::empty()),
    };
    let written = write(state, &caller, w, body).await?;
    let c = written.checksums;
    Ok(S3Response::new(dto::PutObjectOutput {
        e_tag: Some(etag(&written.record)),
        checksum_crc32: c.checksum_crc32,
        checksum_crc32c: c.checksum_crc32c,
        checksum_sha1: c.checksum_sha1,
        checksum_sha256: c.checksum_sha256,
        checksum_crc64nvme: c.checksum_crc64nvme,
        size: i64::try_from(written.record.size).ok(),
        ..Default::default()
    }))
}

/// Deletes one object; an absent key is no error (S3 deletes are idempotent).
async fn delete_key(
    state: &web::Data<AppState>,
    caller: &Caller,
    bucket: &str,
    key: &str,
) -> S3Result<()> {
    if !caller.can_upload() {
        return Err(denied("this key may not delete objects"));
    }
    let r = match find(state, bucket, key) {
        Ok(r) => r,
        Err(e) if *e.code() == S3ErrorCode::NoSuchKey => return Ok(()),
        Err(e) => return Err(e),
    };
    if !caller.can_edit(&r) {
        return Err(denied("this key may delete only the objects it put"));
    }
    let store = state.store.clone();
    web::block(move || store.delete(r.id))
        .await
        .map_err(|e| api_error(e.into()))?
        .map_err(store_error)?;
    Ok(())
}

pub(super) async fn delete(
    state: &web::Data<AppState>,
    req: S3Request<dto::DeleteObjectInput>,
) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
    let caller = keys::caller(state, req.credentials.as_ref())?;
    delete_key(state, &caller, &req.input.bucket, &req.input.key).await?;
    Ok(S3Response::with_status(
        dto::DeleteObjectOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

/// Keys one `DeleteObjects` request may name, as in S3.
const MAX_DELETE_KEYS: usize = 1000;

pub(super) async fn delete_many(
    state: &web::Data<AppState>,
    req: S3Request<dto::DeleteObjectsInput>,
) -> S3Result<S3Response<dto::DeleteObjectsOutput>> {
    let caller = keys::caller(state, req.credentials.as_ref())?;
    let input = req.input;
    if input.delete.objects.len() > MAX_DELETE_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "at most {MAX_DELETE_KEYS} keys per request"
        ));
    }
    if !buckets::exists(state, &input.bucket)? {
        return Err(s3_error!(NoSuchBucket));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let (mut deleted, mut errors) = (Vec::new(), Vec::new());
    for object in input.delete.objects {
        match delete_key(state, &caller, &input.bucket, &object.key).await {
            Ok(()) if quiet => {}
            Ok(()) => deleted.push(dto::DeletedObject {
                key: Some(object.key),
                ..Default::default()
            }),
            Err(e) => errors.push(dto::Error {
                code: Some(e.code().as_str().to_owned()),
                key: Some(object.key),
                message: e.message().map(str::to_owned),
                version_id: None,
            }),
        }
    }
    Ok(S3Response::new(dto::DeleteObjectsOutput {
        deleted: (!deleted.is_empty()).then_some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

pub(super) async fn copy(
    state: &web::Data<AppState>,
    req: S3Request<dto::CopyObjectInput>,
) -> S3Result<S3Response<dto::CopyObjectOutput>> {
    let caller = keys::caller(state, req.credentials.as_ref())?;
    let input = req.input;
    let dto::CopySource::Bucket { bucket, key, .. } = &input.copy_source else {
        return Err(s3_error!(NotImplemented, "copies from access points"));
    };
    let source = readable(state, &caller, bucket, key)?;
    preconditions(
        &source,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    )
    .map_err(|e| match e.code() {
        S3ErrorCode::NotModified => s3_error!(PreconditionFailed),
        _ => e,
    })?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == "REPLACE");
    let (declared, custom) = if replace {
        (input.content_type, custom_of(input.metadata)?)
    } else {
        (Some(source.content_type.clone()), source.custom.clone())
    };
    // Content-addressed bytes are read back and committed like any upload: the blob is
    // shared (deduplicated), and the copy is durable as any put is.
    let source_body =
        open_range(state.store.blobs(), &source.hash, 0, source.size).map_err(store_error)?;
    let body =
        futures_util::StreamExt::map(source_body, |c| c.map_err(|e| Box::new(e) as StdError));
    let w = Write {
        bucket: input.bucket,
        key: input.key,
        declared_type: declared,
        custom,
        visibility: acl_visibility(&caller, input.acl.as_ref().map(|a| a.as_str()))?,
        expected: Expected::default(),
        trailers: None,
        etag: None,
    };
    let written = write(state, &caller, w, Box::pin(body)).await?;
    Ok(S3Response::new(dto::CopyObjectOutput {
        copy_object_result: Some(dto::CopyObjectResult {
            e_tag: Some(etag(&written.record)),
            last_modified: Some(Timestamp::from(written.record.updated_at)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

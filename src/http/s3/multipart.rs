//! Multipart uploads: parts are staged on the data disk (`uploads/multipart/`, see the store's
//! `multipart` module), each acknowledged once durable; completing an upload reads the parts
//! back once, in order, through the ordinary write path (sha256 and MD5 of the whole come from
//! that pass: parts arrive in any order), and its `200` means what a `PutObject`'s does.
//!
//! The object's ETag is S3's: the MD5 of the parts' MD5s, a hyphen and the number of parts.

use std::fs::File;

use actix_web::web;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use s3s::dto::{self, ETag, Timestamp};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::super::auth::Caller;
use super::super::blob_body::BlobBody;
use super::super::error::ApiError;
use super::super::{receive, AppState};
use super::buckets;
use super::digests::{self, Expected};
use super::keys::{self, denied};
use super::objects::{self, store_error, Write};
use crate::store::multipart::{MultipartUpload, Part, MAX_PART_NUMBER};

type StdError = Box<dyn std::error::Error + Send + Sync>;

/// The smallest part but the last, as in S3.
const MIN_PART: u64 = 5 * 1024 * 1024;
/// Parts and uploads one listing page holds at most.
const MAX_LISTED: usize = 1000;

/// The upload a request names, if the caller started it (or is an admin) and it is for this
/// bucket and key.
fn upload_of(
    state: &AppState,
    caller: &Caller,
    bucket: &str,
    key: &str,
    id: &str,
) -> S3Result<MultipartUpload> {
    let upload = state
        .store
        .multipart()
        .get(id)
        .map_err(store_error)?
        .filter(|u| u.collection.as_deref() == buckets::collection_of(bucket) && u.key == key)
        .ok_or_else(|| s3_error!(NoSuchUpload))?;
    if !caller.is_admin() && (upload.owner.is_none() || upload.owner != caller.owner()) {
        return Err(s3_error!(NoSuchUpload));
    }
    Ok(upload)
}

pub(super) async fn create(
    state: &web::Data<AppState>,
    req: S3Request<dto::CreateMultipartUploadInput>,
) -> S3Result<S3Response<dto::CreateMultipartUploadOutput>> {
    let caller = keys::caller(state, req.credentials.as_ref())?;
    let input = req.input;
    objects::writable(state, &caller, &input.bucket, &input.key)?;
    let visibility = objects::acl_visibility(&caller, input.acl.as_ref().map(|a| a.as_str()))?;
    let custom = objects::custom_of(input.metadata)?;
    let upload = state
        .store
        .multipart()
        .create(
            buckets::collection_of(&input.bucket).map(str::to_owned),
            input.key.clone(),
            caller.owner(),
            input.content_type,
            custom,
            visibility,
        )
        .map_err(store_error)?;
    Ok(S3Response::new(dto::CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload.id),
        checksum_algorithm: input.checksum_algorithm,
        ..Default::default()
    }))
}

pub(super) async fn upload_part(
    state: &web::Data<AppState>,
    req: S3Request<dto::UploadPartInput>,
) -> S3Result<S3Response<dto::UploadPartOutput>> {
    let caller = keys::caller(state, req.credentials.as_ref())?;
    let input = req.input;
    let number = u32::try_from(input.part_number)
        .ok()
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "part numbers go from 1 to {MAX_PART_NUMBER}"
            )
        })?;
    let upload = upload_of(state, &caller, &input.bucket, &input.key, &input.upload_id)?;
    let checksums = digests::sent_checksums!(input);
    let expected = Expected::of(&req.headers, input.content_md5, checksums);
    let body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, StdError>> + Send + Sync>> =
        match input.body {
            Some(b) => Box::pin(b),
            None => Box::pin(futures_util::stream::empty()),
        };
    let (stream, done) = digests::digesting(body, &expected);
    let trailers = req.trailing_headers;
    let s = state.clone();
    let result = receive::receive(
        state.store.clone(),
        stream,
        state.config.max_upload_bytes,
        state.config.client_timeout,
        receive::Md5::Compute,
        move |blob| {
            let digests = digests::digests(&done)?;
            let md5 = blob
                .md5
                .ok_or_else(|| ApiError::Internal("the part's MD5 is missing".into()))?;
            if let Err(e) = digests::verify(
                &expected,
                &digests,
                Some(&md5),
                &blob.hash,
                trailers.as_ref(),
            ) {
                return Ok(Err(e));
            }
            let part = s
                .store
                .multipart()
                .add_part(&upload, number, blob, hex::encode(md5))
                .map_err(|e| match e {
                    crate::store::StoreError::NotFound => ApiError::NotFound("upload"),
                    e => ApiError::Store(e),
                })?;
            Ok(Ok((part, digests.checksums)))
        },
    )
    .await;
    let (part, c) = match result {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return Err(e),
        Err(ApiError::NotFound(_)) => return Err(s3_error!(NoSuchUpload)),
        Err(e) => return Err(digests::body_error(e)),
    };
    Ok(S3Response::new(dto::UploadPartOutput {
        e_tag: Some(ETag::Strong(part.md5)),
        checksum_crc32: c.checksum_crc32,
        checksum_crc32c: c.checksum_crc32c,
        checksum_sha1: c.checksum_sha1,
        checksum_sha256: c.checksum_sha256,
        checksum_crc64nvme: c.checksum_crc64nvme,
        ..Default::default()
    }))
}

/// The parts a completion names, checked against those received: in ascending order, each
/// with its ETag, every one but the last at least 5 MiB.
fn chosen(received: Vec<Part>, asked: &[dto::CompletedPart]) -> S3Result<Vec<Part>> {
    if asked.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "a completion names at least one part"
        ));
    }
    let mut out: Vec<Part> = Vec::with_capacity(asked.len());
    for a in asked {
        let number = a
            .part_number
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| s3_error!(InvalidPart, "a part without its number"))?;
        if out.last().is_some_and(|p| p.number >= number) {
            return Err(s3_error!(InvalidPartOrder));
        }
        let part = received
            .iter()
            .find(|p| p.number == number)
            .ok_or_else(|| s3_error!(InvalidPart, "part {number} was not uploaded"))?;
        if let Some(tag) = &a.e_tag {
            if tag.value().trim_matches('"') != part.md5 {
                return Err(s3_error!(
                    InvalidPart,
                    "part {number}'s ETag does not match"
                ));
            }
        }
        out.push(part.clone());
    }
    if out[..out.len() - 1].iter().any(|p| p.size < MIN_PART) {
        return Err(s3_error!(
            EntityTooSmall,
            "every part but the last is at least 5 MiB"
        ));
    }
    Ok(out)
}

/// The multipart ETag: the MD5 of the parts' MD5s, then the number of parts.
fn parts_etag(parts: &[Part]) -> String {
    let mut md5 = shoebox_store::md5::Md5::new();
    for p in parts {
        let mut raw = [0u8; 16];
        if hex::decode_to_slice(&p.md5, &mut raw).is_ok() {
            md5.update(&raw);
        }
    }
    format!("{}-{}", hex::encode(md5.finalize()), parts.len())
}

pub(super) async fn complete(
    state: &web::Data<AppState>,
    req: S3Request<dto::CompleteMultipartUploadInput>,
) -> S3Result<S3Response<dto::CompleteMultipartUploadOutput>> {
    let caller = keys::caller(state, req.credentials.as_ref())?;
    let input = req.input;
    let upload = upload_of(state, &caller, &input.bucket, &input.key, &input.upload_id)?;
    let multipart = state.store.multipart();
    let received = multipart.parts(&upload.id).map_err(store_error)?;
    let asked = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default();
    let parts = chosen(received, &asked)?;
    let (s, id, chosen_parts) = (state.clone(), upload.id.clone(), parts.clone());
    // Blocking: shared uploads fetch the parts other instances received.
    let files = web::block(move || {
        chosen_parts
            .iter()
            .map(|p| s.store.multipart().part_file(&id, p).map(|f| (f, p.size)))
            .collect::<Result<Vec<(File, u64)>, _>>()
    })
    .await
    .map_err(|e| {
        store_error(crate::store::StoreError::io(
            "open a part",
            std::io::Error::other(e),
        ))
    })?
    .map_err(store_error)?;
    let body = futures_util::stream::iter(files)
        .flat_map(|(file, size)| BlobBody::new(file, 0, size))
        .map(|chunk| chunk.map_err(|e| Box::new(e) as StdError));
    let etag = parts_etag(&parts);
    let w = Write {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        declared_type: upload.declared_type.clone(),
        custom: upload.custom.clone(),
        visibility: upload.visibility,
        expected: Expected::default(),
        trailers: None,
        etag: Some(etag.clone()),
    };
    objects::write(state, &caller, w, Box::pin(body)).await?;
    // The object is durable: the parts can go. A crash before this leaves them for a retry
    // of the completion, or the expiry.
    if let Err(e) = multipart.remove(&upload.id) {
        tracing::warn!(upload = %upload.id, error = %e, "could not remove a completed upload's parts; the expiry will");
    }
    Ok(S3Response::new(dto::CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        e_tag: Some(ETag::Strong(etag)),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        ..Default::default()
    }))
}

pub(super) async fn abort(
    state: &web::Data<AppState>,
    req: S3Request<dto::AbortMultipartUploadInput>,
) -> S3Result<S3Response<dto::AbortMultipartUploadOutput>> {
    let caller = keys::caller(state, req.credentials.as_ref())?;
    let input = req.input;
    let upload = upload_of(state, &caller, &input.bucket, &input.key, &input.upload_id)?;
    state
        .store
        .multipart()
        .remove(&upload.id)
        .map_err(store_error)?;
    Ok(S3Response::with_status(
        dto::AbortMultipartUploadOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn list_parts(
    state: &web::Data<AppState>,
    req: S3Request<dto::ListPartsInput>,
) -> S3Result<S3Response<dto::ListPartsOutput>> {
    let caller = keys::caller(state, req.credentials.as_ref())?;
    let input = req.input;
    let upload = upload_of(state, &caller, &input.bucket, &input.key, &input.upload_id)?;
    let max = input.max_parts.map_or(MAX_LISTED, |n| {
        usize::try_from(n).unwrap_or(0).min(MAX_LISTED)
    });
    let after = input
        .part_number_marker
        .map_or(0, |m| u32::try_from(m).unwrap_or(0));
    let mut parts: Vec<Part> = state
        .store
        .multipart()
        .parts(&upload.id)
        .map_err(store_error)?
        .into_iter()
        .filter(|p| p.number > after)
        .collect();
    let truncated = parts.len() > max;
    parts.truncate(max);
    let next = truncated
        .then(|| parts.last().and_then(|p| i32::try_from(p.number).ok()))
        .flatten();
    Ok(S3Response::new(dto::ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload.id),
        max_parts: i32::try_from(max).ok(),
        part_number_marker: input.part_number_marker,
        is_truncated: Some(truncated),
        next_part_number_marker: next,
        owner: Some(buckets::owner(&caller)),
        parts: Some(
            parts
                .into_iter()
                .map(|p| dto::Part {
                    part_number: i32::try_from(p.number).ok(),
                    e_tag: Some(ETag::Strong(p.md5)),
                    size: i64::try_from(p.size).ok(),
                    last_modified: Some(Timestamp::from(p.last_modified)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

pub(super) async fn list_uploads(
    state: &web::Data<AppState>,
    req: S3Request<dto::ListMultipartUploadsInput>,
) -> S3Result<S3Response<dto::ListMultipartUploadsOutput>> {
    let caller = keys::caller(state, req.credentials.as_ref())?;
    let input = req.input;
    if !buckets::exists(state, &input.bucket)? {
        return Err(s3_error!(NoSuchBucket));
    }
    if !caller.can_upload() && !caller.can_see_private() {
        return Err(denied("this key may not list uploads"));
    }
    let collection = buckets::collection_of(&input.bucket);
    let prefix = input.prefix.clone().unwrap_or_default();
    let max = input.max_uploads.map_or(MAX_LISTED, |n| {
        usize::try_from(n).unwrap_or(0).min(MAX_LISTED)
    });
    let mut uploads: Vec<MultipartUpload> = state
        .store
        .multipart()
        .list()
        .map_err(store_error)?
        .into_iter()
        .filter(|u| u.collection.as_deref() == collection && u.key.starts_with(&prefix))
        .filter(|u| caller.is_admin() || caller.can_see_private() || u.owner == caller.owner())
        .collect();
    uploads.sort_by(|a, b| (&a.key, a.created_at, &a.id).cmp(&(&b.key, b.created_at, &b.id)));
    if let Some(marker) = input.key_marker.as_deref().filter(|m| !m.is_empty()) {
        let id_marker = input.upload_id_marker.as_deref().unwrap_or("");
        uploads.retain(|u| {
            u.key.as_str() > marker
                || (u.key == marker && !id_marker.is_empty() && u.id.as_str() > id_marker)
        });
    }
    let truncated = uploads.len() > max;
    uploads.truncate(max);
    let last = uploads.last().map(|u| (u.key.clone(), u.id.clone()));
    let owner = buckets::owner(&caller);
    Ok(S3Response::new(dto::ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        max_uploads: i32::try_from(max).ok(),
        is_truncated: Some(truncated),
        next_key_marker: truncated
            .then(|| last.as_ref().map(|l| l.0.clone()))
            .flatten(),
        next_upload_id_marker: truncated.then(|| last.map(|l| l.1)).flatten(),
        uploads: Some(
            uploads
                .into_iter()
                .map(|u| dto::MultipartUpload {
                    key: Some(u.key),
                    upload_id: Some(u.id),
                    initiated: Some(Timestamp::from(u.created_at)),
                    owner: Some(owner.clone()),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

//! Buckets are collections. A collection exists when it has a record file of its own
//! (`collections/`, made by `CreateBucket` or its settings) or media in it; media without a
//! collection form the bucket `default`, which always exists. Collections whose names are not
//! valid bucket names (spaces, capitals, Unicode) are not exposed over S3.

use actix_web::web;
use s3s::dto::{self, Timestamp};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::super::AppState;
use super::keys::{self, denied};
use super::objects::store_error;
use crate::store::Visibility;

/// The bucket of the media without a collection.
pub(super) const DEFAULT: &str = "default";

/// The collection a bucket names: `default` is the media without one.
pub(super) fn collection_of(bucket: &str) -> Option<&str> {
    (bucket != DEFAULT).then_some(bucket)
}

/// Whether a collection's name can be a bucket's: 3 to 63 lower-case letters, digits, dots and
/// hyphens, beginning and ending with a letter or digit, not shaped like an IP address, and
/// not `default`, which names the media without a collection.
pub fn is_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && name != DEFAULT
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err()
}

/// Whether a bucket exists.
pub(super) fn exists(state: &AppState, bucket: &str) -> S3Result<bool> {
    let Some(collection) = collection_of(bucket) else {
        return Ok(true);
    };
    if !is_bucket_name(collection) {
        return Ok(false);
    }
    if state
        .store
        .collections()
        .get(collection)
        .map_err(store_error)?
        .is_some()
    {
        return Ok(true);
    }
    Ok(!state
        .store
        .collection_is_empty(Some(collection))
        .map_err(store_error)?)
}

/// The visibility of a new object put into a bucket: public when its collection is.
pub(super) fn default_visibility(state: &AppState, bucket: &str) -> Visibility {
    let public = collection_of(bucket)
        .and_then(|c| state.store.collections().get(c).ok().flatten())
        .is_some_and(|c| c.public);
    if public {
        Visibility::Public
    } else {
        Visibility::Private
    }
}

fn must_exist(state: &AppState, bucket: &str) -> S3Result<()> {
    if exists(state, bucket)? {
        Ok(())
    } else {
        Err(s3_error!(NoSuchBucket))
    }
}

pub(super) async fn list(
    state: &web::Data<AppState>,
    req: S3Request<dto::ListBucketsInput>,
) -> S3Result<S3Response<dto::ListBucketsOutput>> {
    let caller = keys::caller(state, req.credentials.as_ref())?;
    let store = &state.store;
    let mut names: std::collections::BTreeMap<String, Option<Timestamp>> = Default::default();
    names.insert(DEFAULT.to_owned(), None);
    for c in store.collections().list().map_err(store_error)? {
        if is_bucket_name(&c.name) {
            names.insert(c.name, Some(Timestamp::from(c.created_at)));
        }
    }
    for c in store
        .buckets_in_use()
        .map_err(store_error)?
        .into_iter()
        .flatten()
    {
        if is_bucket_name(&c) {
            names.entry(c).or_insert(None);
        }
    }
    let epoch = Timestamp::from(time::OffsetDateTime::UNIX_EPOCH);
    let buckets = names
        .into_iter()
        .map(|(name, created)| dto::Bucket {
            name: Some(name),
            creation_date: Some(created.unwrap_or_else(|| epoch.clone())),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(dto::ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(owner(&caller)),
        ..Default::default()
    }))
}

/// The owner S3 listings name: the key's token.
pub(super) fn owner(caller: &super::super::auth::Caller) -> dto::Owner {
    let id = caller.owner().unwrap_or_else(|| "admin".to_owned());
    dto::Owner {
        display_name: Some(id.clone()),
        id: Some(id),
    }
}

pub(super) async fn create(
    state: &web::Data<AppState>,
    req: S3Request<dto::CreateBucketInput>,
) -> S3Result<S3Response<dto::CreateBucketOutput>> {
    let caller = keys::caller(state, req.credentials.as_ref())?;
    if !caller.can_upload() {
        return Err(denied("this key may not create buckets"));
    }
    let input = req.input;
    let public = match input.acl.as_ref().map(|a| a.as_str()) {
        Some("public-read") | Some("public-read-write") => {
            if !caller.is_admin() {
                return Err(denied("only an admin key may make a bucket public"));
            }
            true
        }
        _ => false,
    };
    if exists(state, &input.bucket)? {
        return Err(s3_error!(BucketAlreadyOwnedByYou));
    }
    if !is_bucket_name(&input.bucket) {
        return Err(s3_error!(InvalidBucketName));
    }
    let collections = state.store.collections();
    if public {
        collections.set_public(&input.bucket, true)
    } else {
        collections.create(&input.bucket).map(|(c, _)| c)
    }
    .map_err(store_error)?;
    tracing::info!(bucket = %input.bucket, public, "bucket created");
    Ok(S3Response::new(dto::CreateBucketOutput {
        location: Some(format!("/{}", input.bucket)),
    }))
}

pub(super) async fn head(
    state: &web::Data<AppState>,
    req: S3Request<dto::HeadBucketInput>,
) -> S3Result<S3Response<dto::HeadBucketOutput>> {
    keys::caller(state, req.credentials.as_ref())?;
    must_exist(state, &req.input.bucket)?;
    Ok(S3Response::new(dto::HeadBucketOutput {
        bucket_region: Some(super::REGION.into()),
        ..Default::default()
    }))
}

pub(super) async fn delete(
    state: &web::Data<AppState>,
    req: S3Request<dto::DeleteBucketInput>,
) -> S3Result<S3Response<dto::DeleteBucketOutput>> {
    let caller = keys::caller(state, req.credentials.as_ref())?;
    if !caller.is_admin() {
        return Err(denied("only an admin key may delete buckets"));
    }
    let bucket = req.input.bucket;
    must_exist(state, &bucket)?;
    let collection = collection_of(&bucket);
    if !state
        .store
        .collection_is_empty(collection)
        .map_err(store_error)?
    {
        return Err(s3_error!(BucketNotEmpty));
    }
    if let Some(c) = collection {
        state.store.collections().remove(c).map_err(store_error)?;
        tracing::info!(bucket = %bucket, "bucket deleted");
    }
    Ok(S3Response::with_status(
        dto::DeleteBucketOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn location(
    state: &web::Data<AppState>,
    req: S3Request<dto::GetBucketLocationInput>,
) -> S3Result<S3Response<dto::GetBucketLocationOutput>> {
    keys::caller(state, req.credentials.as_ref())?;
    must_exist(state, &req.input.bucket)?;
    // No constraint: us-east-1, the region every client accepts.
    Ok(S3Response::new(dto::GetBucketLocationOutput::default()))
}

//! The S3 endpoint: apps written against S3 move to Shoebox by changing their endpoint.
//! Buckets are collections (records without one form the bucket `default`), objects are
//! media records found by their `key`, and every write goes through the same durable write
//! path as `POST /api/media`.
//!
//! The protocol itself (SigV4 and SigV2 signatures, presigned URLs, the `aws-chunked` body
//! encodings with their chunk and trailer signatures, the XML of every operation and of the
//! errors) is the `s3s` crate's, a hyper/tower service; this module is Shoebox's side of it:
//! - [`bridge`] carries requests from actix-web to the engine and answers back;
//! - [`keys`] finds a request's secret (an API token made with `"s3": true`) and its caller;
//! - [`buckets`], [`listing`], [`objects`], [`reads`] and [`multipart`] are the operations, on
//!   the store;
//! - [`digests`] checks a body against the digests its client sent.
//!
//! It answers on `SHOEBOX_S3_PORT` (path-style, and virtual-hosted style under
//! `SHOEBOX_S3_DOMAIN`), and on the main port for requests whose `Host` is `SHOEBOX_S3_HOST`,
//! through [`dispatch`], which runs before every other middleware but the access log, so the
//! S3 side has its own rules for bodies (`aws-chunked` is a `Content-Encoding`) and CORS.

mod bridge;
mod buckets;
mod digests;
mod keys;
mod listing;
mod multipart;
mod objects;
mod reads;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use s3s::dto;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Request, S3Response, S3Result};

use super::{intake, AppState};
use crate::config::Config;

pub use buckets::is_bucket_name;

/// The region Shoebox reports and signs for; clients may sign for any region.
pub const REGION: &str = "us-east-1";

/// The name of the S3 port's listener.
pub const LISTENER: &str = "s3";

/// Marks the connections that came in on the S3 port.
#[derive(Clone, Copy)]
pub struct OnS3Port;

/// The S3 engine for one worker, and where it answers.
pub struct Front {
    service: S3Service,
    host: Option<String>,
    domain: Option<String>,
}

impl Front {
    /// The endpoint as configured, or none when no S3 setting is given.
    pub fn new(state: web::Data<AppState>) -> Option<Front> {
        let config = &state.config;
        if !enabled(config) {
            return None;
        }
        let domain = config.s3_domain.clone();
        let mut builder = S3ServiceBuilder::new(Gateway {
            state: state.clone(),
        });
        builder.set_auth(keys::Keys::new(state.clone()));
        builder.set_access(keys::Access);
        builder.set_host(keys::Hosts {
            domain: domain.clone(),
        });
        Some(Front {
            service: builder.build(),
            host: config.s3_host.clone(),
            domain,
        })
    }

    /// Whether a request is for the S3 endpoint: it came in on the S3 port, or names the S3
    /// host (or a bucket under the S3 domain) on the main one.
    fn handles(&self, req: &ServiceRequest) -> bool {
        if req.conn_data::<OnS3Port>().is_some() {
            return true;
        }
        let Some(host) = request_host(req) else {
            return false;
        };
        self.host.as_deref().is_some_and(|h| h == host)
            || self.domain.as_deref().is_some_and(|d| {
                host.strip_suffix(d)
                    .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1)
            })
    }
}

/// Whether any S3 setting is given.
pub fn enabled(config: &Config) -> bool {
    config.s3_port.is_some() || config.s3_host.is_some()
}

/// The request's host name, lower-cased, without its port.
fn request_host(req: &ServiceRequest) -> Option<String> {
    let host = req.headers().get(header::HOST)?.to_str().ok()?;
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    Some(name.to_ascii_lowercase())
}

/// Hands S3 requests to the engine; everything else goes on to the web app and the API.
pub async fn dispatch(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    let front = req
        .app_data::<web::Data<Option<Front>>>()
        .filter(|f| f.as_ref().as_ref().is_some_and(|f| f.handles(&req)))
        .cloned();
    let Some(front) = front else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let _handling = super::conn::handling(&req);
    let idle = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.config.client_timeout);
    let (http, payload) = req.into_parts();
    // For the access log and the metrics, which have no route pattern to name it by.
    actix_web::HttpMessage::extensions_mut(&http).insert(Served);
    let payload = match idle {
        Some(idle) => intake::with_idle_timeout(payload, idle),
        None => payload,
    };
    let res = match front.as_ref() {
        Some(front) => serve(&front.service, &http, payload).await,
        None => HttpResponse::NotFound().finish(),
    };
    Ok(ServiceResponse::new(http, res).map_into_right_body())
}

/// Marks a request the S3 API answered.
#[derive(Clone, Copy)]
pub struct Served;

/// The route S3 requests are counted under.
pub const ROUTE: &str = "(S3)";

async fn serve(
    service: &S3Service,
    http: &actix_web::HttpRequest,
    payload: Payload,
) -> HttpResponse {
    let request = match bridge::request(http, payload) {
        Ok(r) => r,
        Err(e) => return HttpResponse::BadRequest().body(e),
    };
    let mut res = match service.call(request).await {
        Ok(res) => bridge::response(res),
        Err(e) => {
            tracing::error!(error = ?e, "the S3 engine failed a request");
            HttpResponse::InternalServerError().finish()
        }
    };
    confine(&mut res);
    res
}

/// The inert-type rule, on the S3 side as everywhere: whatever type a response declares, the
/// stored one or a `response-content-type` override, a type not known to be inert goes out as
/// an attachment under the sandbox policy, and no type is sniffed.
fn confine(res: &mut HttpResponse) {
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return;
    };
    if ct.starts_with("application/xml") {
        // The protocol's own answers (listings, errors).
        return;
    }
    if let Some(policy) = super::files::security_policy(&ct) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(policy),
        );
    }
    if crate::store::sniff::presentation(&ct) == crate::store::sniff::Presentation::Attachment {
        let disposition = headers
            .get(header::CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok())
            .map(|v| match v.split_once(';') {
                Some((_, params)) => format!("attachment;{params}"),
                None => "attachment".to_owned(),
            })
            .unwrap_or_else(|| "attachment".to_owned());
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, v);
        }
    }
}

/// Shoebox's side of the protocol: the operations, on the store.
struct Gateway {
    state: web::Data<AppState>,
}

#[async_trait::async_trait]
impl s3s::S3 for Gateway {
    async fn list_buckets(
        &self,
        req: S3Request<dto::ListBucketsInput>,
    ) -> S3Result<S3Response<dto::ListBucketsOutput>> {
        buckets::list(&self.state, req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<dto::CreateBucketInput>,
    ) -> S3Result<S3Response<dto::CreateBucketOutput>> {
        buckets::create(&self.state, req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<dto::HeadBucketInput>,
    ) -> S3Result<S3Response<dto::HeadBucketOutput>> {
        buckets::head(&self.state, req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<dto::DeleteBucketInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOutput>> {
        buckets::delete(&self.state, req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<dto::GetBucketLocationInput>,
    ) -> S3Result<S3Response<dto::GetBucketLocationOutput>> {
        buckets::location(&self.state, req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<dto::ListObjectsV2Input>,
    ) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
        listing::list_v2(&self.state, req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<dto::ListObjectsInput>,
    ) -> S3Result<S3Response<dto::ListObjectsOutput>> {
        listing::list_v1(&self.state, req).await
    }

    async fn list_object_versions(
        &self,
        req: S3Request<dto::ListObjectVersionsInput>,
    ) -> S3Result<S3Response<dto::ListObjectVersionsOutput>> {
        listing::list_versions(&self.state, req).await
    }

    async fn put_object(
        &self,
        req: S3Request<dto::PutObjectInput>,
    ) -> S3Result<S3Response<dto::PutObjectOutput>> {
        objects::put(&self.state, req).await
    }

    async fn get_object(
        &self,
        req: S3Request<dto::GetObjectInput>,
    ) -> S3Result<S3Response<dto::GetObjectOutput>> {
        reads::get(&self.state, req).await
    }

    async fn head_object(
        &self,
        req: S3Request<dto::HeadObjectInput>,
    ) -> S3Result<S3Response<dto::HeadObjectOutput>> {
        reads::head(&self.state, req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<dto::DeleteObjectInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
        objects::delete(&self.state, req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<dto::DeleteObjectsInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectsOutput>> {
        objects::delete_many(&self.state, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<dto::CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CreateMultipartUploadOutput>> {
        multipart::create(&self.state, req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<dto::UploadPartInput>,
    ) -> S3Result<S3Response<dto::UploadPartOutput>> {
        multipart::upload_part(&self.state, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<dto::CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CompleteMultipartUploadOutput>> {
        multipart::complete(&self.state, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<dto::AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::AbortMultipartUploadOutput>> {
        multipart::abort(&self.state, req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<dto::ListPartsInput>,
    ) -> S3Result<S3Response<dto::ListPartsOutput>> {
        multipart::list_parts(&self.state, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<dto::ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<dto::ListMultipartUploadsOutput>> {
        multipart::list_uploads(&self.state, req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<dto::CopyObjectInput>,
    ) -> S3Result<S3Response<dto::CopyObjectOutput>> {
        objects::copy(&self.state, req).await
    }
}

#[cfg(test)]
mod tests;

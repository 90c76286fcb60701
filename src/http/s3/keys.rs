//! Who an S3 request is from: its access key names an API token made with `"s3": true`,
//! whose secret signs the request; the token's scope and expiry hold for the key, and
//! revoking the token revokes the key. Requests without a signature are anonymous: they may
//! read public objects, nothing else.

use actix_web::web;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{Credentials, S3Auth, SecretKey};
use s3s::host::{S3Host, VirtualHost};
use s3s::{s3_error, S3Result};

use super::super::auth::Caller;
use super::super::AppState;

/// Finds the secret that signed a request.
pub(super) struct Keys {
    state: web::Data<AppState>,
}

impl Keys {
    pub(super) fn new(state: web::Data<AppState>) -> Keys {
        Keys { state }
    }
}

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.state.tokens.s3_secret(access_key) {
            Some((_, secret)) => Ok(SecretKey::from(secret)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "no active S3 key has this access key id"
            )),
        }
    }
}

/// The caller behind a request's credentials, checked again at each operation (a token
/// revoked or expired since the signature was checked stops here).
pub(super) fn caller(state: &AppState, credentials: Option<&Credentials>) -> S3Result<Caller> {
    let Some(c) = credentials else {
        return Ok(Caller::Anonymous);
    };
    match state.tokens.s3_secret(&c.access_key) {
        Some((token, _)) => Ok(Caller::Token {
            id: token.id,
            scope: token.scope,
        }),
        None => Err(s3_error!(
            InvalidAccessKeyId,
            "no active S3 key has this access key id"
        )),
    }
}

/// Anonymous requests may only read objects (each operation then checks that the object is
/// public); signed ones go on to the operation, which checks the caller's scope.
pub(super) struct Access;

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_some() {
            return Ok(());
        }
        match cx.s3_op().name() {
            "GetObject" | "HeadObject" => Ok(()),
            _ => Err(s3_error!(AccessDenied, "this request needs a signature")),
        }
    }
}

/// Path-style addressing always; virtual-hosted style (`bucket.DOMAIN`) under
/// `SHOEBOX_S3_DOMAIN` when it is set.
pub(super) struct Hosts {
    pub(super) domain: Option<String>,
}

impl S3Host for Hosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        if let Some(domain) = self.domain.as_deref() {
            if let Some(bucket) = name
                .strip_suffix(domain)
                .and_then(|rest| rest.strip_suffix('.'))
                .filter(|b| !b.is_empty())
            {
                return Ok(VirtualHost::new(domain).with_bucket(bucket.to_ascii_lowercase()));
            }
        }
        Ok(VirtualHost::new(name))
    }
}

/// A request refused for the caller's scope.
pub(super) fn denied(what: &'static str) -> s3s::S3Error {
    s3_error!(AccessDenied, "{what}")
}

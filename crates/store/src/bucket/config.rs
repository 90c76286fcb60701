//! `SHOEBOX_BLOB_STORE=s3://BUCKET?endpoint=URL&region=R`, and the key that goes with it.

/// Where the blob bucket is and the key that reaches it.
#[derive(Clone, PartialEq, Eq)]
pub struct BucketConfig {
    /// The bucket's name.
    pub bucket: String,
    /// The S3 endpoint (`http://127.0.0.1:3900`, `https://s3.example.com`); `None` for AWS
    /// itself, addressed by region.
    pub endpoint: Option<String>,
    /// The region the requests are signed for.
    pub region: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key: never logged, never shown (see the `Debug` below).
    pub secret_access_key: String,
}

impl std::fmt::Debug for BucketConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketConfig")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl BucketConfig {
    /// Parses `s3://BUCKET?endpoint=URL&region=R`; the key comes separately. The message of
    /// an error says what the value must be.
    pub fn parse(url: &str, access_key_id: &str, secret_access_key: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or("must start with s3:// (s3://BUCKET?endpoint=URL&region=REGION)")?;
        let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
        let bucket = bucket.trim_end_matches('/');
        if bucket.is_empty() || bucket.contains('/') {
            return Err("must name one bucket: s3://BUCKET?endpoint=URL&region=REGION".into());
        }
        let (mut endpoint, mut region) = (None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)?;
            match name {
                "endpoint" => {
                    if !(value.starts_with("http://") || value.starts_with("https://")) {
                        return Err(format!(
                            "endpoint must be an http:// or https:// URL, not {value:?}"
                        ));
                    }
                    endpoint = Some(value.trim_end_matches('/').to_owned());
                }
                "region" if !value.is_empty() => region = Some(value),
                other => {
                    return Err(format!(
                        "has an unknown parameter {other:?} (known: endpoint, region)"
                    ))
                }
            }
        }
        if access_key_id.is_empty() || secret_access_key.is_empty() {
            return Err("needs a key: set SHOEBOX_BLOB_STORE_ACCESS_KEY_ID and \
                        SHOEBOX_BLOB_STORE_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and \
                        AWS_SECRET_ACCESS_KEY)"
                .into());
        }
        Ok(BucketConfig {
            bucket: bucket.to_owned(),
            endpoint,
            region: region.unwrap_or_else(|| "us-east-1".into()),
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
        })
    }

    /// `s3://BUCKET at ENDPOINT`, for logs and status: no key.
    pub fn describe(&self) -> String {
        match &self.endpoint {
            Some(e) => format!("s3://{} at {e}", self.bucket),
            None => format!("s3://{} in {}", self.bucket, self.region),
        }
    }
}

/// `%XX` escapes, for an endpoint given inside the query string.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("has a bad %-escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("is not UTF-8 once decoded: {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_bucket_endpoint_and_region() {
        let c = BucketConfig::parse(
            "s3://media?endpoint=http%3A%2F%2F127.0.0.1%3A3900&region=garage",
            "GK1",
            "s",
        )
        .unwrap();
        assert_eq!(c.bucket, "media");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(c.region, "garage");
        let c =
            BucketConfig::parse("s3://media?endpoint=https://s3.example.com/", "k", "s").unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("https://s3.example.com"));
        assert_eq!(c.region, "us-east-1");
        assert!(
            !format!("{c:?}").contains("\"s\""),
            "the secret is never shown"
        );
    }

    #[test]
    fn refuses_what_is_not_a_bucket_url() {
        for (url, want) in [
            ("media", "s3://"),
            ("s3://", "one bucket"),
            ("s3://a/b", "one bucket"),
            ("s3://a?endpoint=ftp://x", "http://"),
            ("s3://a?colour=blue", "unknown parameter"),
            ("s3://a?endpoint=%zz", "%-escape"),
        ] {
            let err = BucketConfig::parse(url, "k", "s").unwrap_err();
            assert!(err.contains(want), "{url}: {err}");
        }
        assert!(BucketConfig::parse("s3://a", "", "")
            .unwrap_err()
            .contains("needs a key"));
    }
}

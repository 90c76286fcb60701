//! Plain tus 1.0.0 requests with reqwest, for tests that must send what a client library
//! would not (a wrong offset, a corrupted chunk) or must see every status as it is; and the
//! small encoders they need (tus metadata's base64, the SHA-1 of `Upload-Checksum`).
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::Method;
use sha2::{Digest, Sha256};

pub const TUS_VERSION: &str = "1.0.0";
pub const OFFSET_STREAM: &str = "application/offset+octet-stream";
pub const ENDPOINT: &str = "/api/uploads";

/// A tus client of one server, as one caller (a bearer token, or none).
#[derive(Clone)]
pub struct Tus {
    client: Client,
    pub base: String,
    pub token: Option<String>,
}

impl Tus {
    pub fn new(base: &str, token: Option<&str>) -> Tus {
        let client = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("a client");
        Tus {
            client,
            base: base.to_owned(),
            token: token.map(str::to_owned),
        }
    }

    /// The same server as another caller.
    pub fn as_token(&self, token: &str) -> Tus {
        Tus {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with no tus header at all (but the caller's credentials).
    pub fn bare(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.client.request(method, self.url(path));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// A request with `Tus-Resumable: 1.0.0` and the caller's credentials.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.bare(method, path).header("Tus-Resumable", TUS_VERSION)
    }

    /// `POST /api/uploads` with `Upload-Length` (or `Upload-Defer-Length: 1` for `None`) and
    /// the metadata pairs, no body.
    pub fn create(&self, length: Option<u64>, metadata: &[(&str, &str)]) -> Response {
        let mut req = self.request(Method::POST, ENDPOINT);
        req = match length {
            Some(n) => req.header("Upload-Length", n.to_string()),
            None => req.header("Upload-Defer-Length", "1"),
        };
        if !metadata.is_empty() {
            req = req.header("Upload-Metadata", encode_metadata(metadata));
        }
        req.send().expect("POST /api/uploads")
    }

    /// Creates an upload, asserting 201; answers its path (`/api/uploads/{id}`).
    pub fn created(&self, length: Option<u64>, metadata: &[(&str, &str)]) -> String {
        let res = self.create(length, metadata);
        let status = res.status();
        assert_eq!(status, 201, "creation refused: {}", describe(res));
        location_path(&res)
    }

    pub fn head(&self, path: &str) -> Response {
        self.request(Method::HEAD, path).send().expect("HEAD")
    }

    /// HEAD, asserting 200; answers `Upload-Offset`.
    pub fn offset(&self, path: &str) -> u64 {
        let res = self.head(path);
        assert_eq!(res.status(), 200, "HEAD {path}");
        header(&res, "upload-offset")
            .and_then(|v| v.parse().ok())
            .expect("HEAD answers Upload-Offset")
    }

    /// A PATCH of `body` at `offset`, ready for more headers.
    pub fn patch_request(&self, path: &str, offset: u64, body: Vec<u8>) -> RequestBuilder {
        self.request(Method::PATCH, path)
            .header("Content-Type", OFFSET_STREAM)
            .header("Upload-Offset", offset.to_string())
            .body(body)
    }

    pub fn patch(&self, path: &str, offset: u64, body: &[u8]) -> Response {
        self.patch_request(path, offset, body.to_vec())
            .send()
            .expect("PATCH")
    }

    /// PATCHes `body` at `offset`, asserting 204 and the new offset; answers the response.
    pub fn patched(&self, path: &str, offset: u64, body: &[u8]) -> Response {
        let res = self.patch(path, offset, body);
        assert_eq!(res.status(), 204, "PATCH at {offset}: {}", describe(res));
        assert_eq!(
            header(&res, "upload-offset").as_deref(),
            Some((offset + body.len() as u64).to_string().as_str()),
            "the PATCH answers the new offset"
        );
        res
    }

    pub fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path).send().expect("DELETE")
    }

    /// Creates an upload of `data` and sends it in chunks of `chunk` bytes; answers the
    /// upload's path and the media id the completing PATCH named.
    pub fn upload_all(
        &self,
        data: &[u8],
        chunk: usize,
        metadata: &[(&str, &str)],
    ) -> (String, String) {
        let path = self.created(Some(data.len() as u64), metadata);
        let mut offset = 0;
        let mut media_id = None;
        for piece in data.chunks(chunk.max(1)) {
            let res = self.patched(&path, offset, piece);
            offset += piece.len() as u64;
            media_id = header(&res, "shoebox-media-id");
        }
        let media_id = media_id.expect("the completing PATCH names the media id");
        (path, media_id)
    }
}

/// A response header as text.
pub fn header(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Asserts `status` and the `Tus-Resumable: 1.0.0` every answer of a tus server carries,
/// errors too; answers the response.
#[track_caller]
pub fn expect(res: Response, status: u16) -> Response {
    let got = res.status().as_u16();
    let tus = header(&res, "tus-resumable");
    if got != status {
        panic!("expected {status}, got {}", describe(res));
    }
    assert_eq!(
        tus.as_deref(),
        Some(TUS_VERSION),
        "Tus-Resumable on a {status}"
    );
    res
}

/// Asserts an error `status` with `Tus-Resumable` and a JSON error body; answers its code.
#[track_caller]
pub fn expect_error(res: Response, status: u16) -> String {
    let res = expect(res, status);
    let body = res.text().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|_| panic!("a {status} has a JSON body: {body:?}"));
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "a {status} says why: {v}"
    );
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

/// Seconds from now to the `Upload-Expires` a response carries (an RFC 7231 date such as
/// `Wed, 21 Oct 2015 07:28:00 GMT`); panics when it has none or another format.
#[track_caller]
pub fn expires_in(res: &Response) -> i64 {
    let text = header(res, "upload-expires").expect("Upload-Expires");
    let format = time::format_description::parse_borrowed::<1>(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
    )
    .expect("a format");
    let at = time::PrimitiveDateTime::parse(&text, &format)
        .unwrap_or_else(|e| panic!("Upload-Expires {text:?} is no RFC 7231 date: {e}"))
        .assume_utc();
    (at - time::OffsetDateTime::now_utc()).whole_seconds()
}

/// The path of the upload a creation's `Location` names, whether relative or absolute.
pub fn location_path(res: &Response) -> String {
    let location = header(res, "location").expect("Location");
    match location.find("://") {
        Some(scheme) => {
            let rest = &location[scheme + 3..];
            rest[rest.find('/').unwrap_or(rest.len())..].to_owned()
        }
        None => location,
    }
}

/// The upload id at the end of an upload's path or URL.
pub fn upload_id(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Status, headers and body of a response, for an assertion's message.
pub fn describe(res: Response) -> String {
    let status = res.status();
    let headers = format!("{:?}", res.headers());
    let body = res.text().unwrap_or_default();
    format!("{status} {headers} {body}")
}

/// `Upload-Metadata`: `key base64(value)` pairs joined by commas.
pub fn encode_metadata(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                (*k).to_owned()
            } else {
                format!("{k} {}", base64(v.as_bytes()))
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Standard base64 with padding (RFC 4648 §4), as tus metadata and checksums use.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// SHA-1, for `Upload-Checksum: sha1 …`, the algorithm tus clients send.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    <sha1::Sha1 as Digest>::digest(data).into()
}

/// An `Upload-Checksum` value for `chunk`: `sha1` or `sha256`, then the base64 digest.
pub fn checksum(algorithm: &str, chunk: &[u8]) -> String {
    let digest = match algorithm {
        "sha1" => sha1(chunk).to_vec(),
        "sha256" => Sha256::digest(chunk).to_vec(),
        other => panic!("no digest for {other}"),
    };
    format!("{algorithm} {}", base64(&digest))
}

/// The files `DATA/uploads/` holds for one upload (`<id>.part`, `<id>.json`, ...).
pub fn upload_files(data_dir: &Path, id: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir.join("uploads"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(id))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The bytes of an unfinished upload on disk: `DATA/uploads/<id>.part`.
pub fn part_file(data_dir: &Path, id: &str) -> std::path::PathBuf {
    data_dir.join("uploads").join(format!("{id}.part"))
}

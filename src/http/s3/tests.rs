//! The S3 side fuzzed in-process with proptest, through the app `run` serves (the bridge, the
//! engine's signature checks and `aws-chunked` decoder, and Shoebox's operations):
//! - arbitrary and almost-right signatures, in headers and in query strings, are refused with
//!   a 4xx and store nothing;
//! - correctly signed puts of arbitrary keys, in arbitrary chunk framings, store exactly their
//!   bytes, and read back;
//! - the same chunked bodies, corrupted at random, are never a 5xx, a panic or wrong bytes.

use std::sync::Arc;

use actix_http::Request;
use actix_service::boxed::{self, BoxService};
use actix_service::ServiceExt;
use actix_web::dev::ServiceResponse;
use actix_web::test::{self as atest, TestRequest};
use actix_web::web;
use bytes::Bytes;
use clap::Parser;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::super::AppState;
use crate::config::{Cli, Config};
use crate::credentials::api_tokens::Scope;
use crate::credentials::secrets::{SessionKey, TokenHash};
use crate::store::catalogue::Role;
use crate::store::{disk, Store};

const HOST: &str = "s3.shoebox.test";

struct Harness {
    app: BoxService<Request, ServiceResponse, actix_web::Error>,
    store: Arc<Store>,
    key: String,
    secret: String,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let args = [
            "shoebox",
            "--data-dir",
            path.to_str().unwrap(),
            "--s3-host",
            HOST,
        ];
        let config = Config::from_args(Cli::try_parse_from(args).unwrap().serve).unwrap();
        let store = Arc::new(Store::start(path, Role::Server).unwrap());
        let state = AppState::new(
            store.clone(),
            config,
            TokenHash::of("s3-fuzz-admin-token"),
            disk::persistence(path),
            SessionKey::random(),
        )
        .unwrap();
        let (_, _, s3) = state
            .tokens
            .create("fuzz", Scope::Upload, None, true)
            .unwrap();
        let s3 = s3.unwrap();
        let app = atest::init_service(super::super::app(web::Data::new(state))).await;
        Harness {
            app: boxed::service(app.map(ServiceResponse::map_into_boxed_body)),
            store,
            key: s3.access_key_id,
            secret: s3.secret_access_key.clone(),
            _dir: dir,
        }
    }

    async fn send(&self, req: TestRequest) -> (u16, Bytes) {
        let res = atest::call_service(&self.app, req.to_request()).await;
        let status = res.status().as_u16();
        (status, atest::read_body(res).await)
    }

    fn records(&self) -> usize {
        self.store.all_records().count()
    }
}

/// A key's path, each segment percent-encoded as S3 clients do (`/` kept).
fn encode_path(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// What signs the chunks of a signed `aws-chunked` body: the request's own signature (the
/// seed), the signing key, the time and the scope.
struct Seed {
    signature: String,
    key: Vec<u8>,
    date: String,
    scope: String,
}

/// Signs a request with SigV4 in the `Authorization` header, as the AWS SDKs do: `headers`
/// are the ones signed besides `host`.
fn sign(
    h: &Harness,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    payload: &str,
) -> TestRequest {
    sign_seeded(h, method, path, headers, payload).0
}

fn sign_seeded(
    h: &Harness,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    payload: &str,
) -> (TestRequest, Seed) {
    let t = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let date = date.as_str();
    let day = &date[..8];
    let mut signed: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    signed.push(("host".into(), HOST.into()));
    signed.push(("x-amz-content-sha256".into(), payload.into()));
    signed.push(("x-amz-date".into(), date.into()));
    signed.sort();
    let names: Vec<&str> = signed.iter().map(|(k, _)| k.as_str()).collect();
    let canonical = format!(
        "{method}\n{path}\n\n{}\n{}\n{payload}",
        signed
            .iter()
            .map(|(k, v)| format!("{k}:{v}\n"))
            .collect::<String>(),
        names.join(";")
    );
    let scope = format!("{day}/us-east-1/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut k = hmac(format!("AWS4{}", h.secret).as_bytes(), day);
    for part in ["us-east-1", "s3", "aws4_request"] {
        k = hmac(&k, part);
    }
    let signature = hex::encode(hmac(&k, &to_sign));
    let mut req = TestRequest::default()
        .method(method.parse().unwrap())
        .uri(path)
        .insert_header(("host", HOST))
        .insert_header(("x-amz-content-sha256", payload))
        .insert_header(("x-amz-date", date))
        .insert_header((
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
                h.key,
                names.join(";")
            ),
        ));
    for (k, v) in headers {
        req = req.insert_header((*k, v.as_str()));
    }
    let seed = Seed {
        signature,
        key: k,
        date: date.to_owned(),
        scope,
    };
    (req, seed)
}

/// `body` as signed `aws-chunked` (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`): each chunk signed
/// over the one before, the first over the request's signature, and an empty one to end.
fn signed_chunks(seed: &Seed, body: &[u8], size: usize) -> Vec<u8> {
    let empty = hex::encode(Sha256::digest(b""));
    let mut prev = seed.signature.clone();
    let mut out = Vec::new();
    for chunk in body.chunks(size.max(1)).chain(std::iter::once(&[][..])) {
        let to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{prev}\n{empty}\n{}",
            seed.date,
            seed.scope,
            hex::encode(Sha256::digest(chunk))
        );
        let signature = hex::encode(hmac(&seed.key, &to_sign));
        out.extend_from_slice(
            format!("{:x};chunk-signature={signature}\r\n", chunk.len()).as_bytes(),
        );
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
        prev = signature;
    }
    out
}

/// `body` framed as `aws-chunked` in chunks of the given sizes, with a CRC32 trailer.
fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    let mut crc = s3s::checksum::ChecksumHasher {
        crc32: Some(Default::default()),
        ..Default::default()
    };
    crc.update(body);
    let sum = crc.finalize().checksum_crc32.unwrap();
    out.extend_from_slice(format!("0\r\nx-amz-checksum-crc32:{sum}\r\n\r\n").as_bytes());
    out
}

/// The chunks of `data` (a signed framing) with the signatures of `signatures` (another
/// framing of the same sizes).
fn splice_signatures(signatures: &[u8], data: &[u8]) -> Vec<u8> {
    const TAG: &[u8] = b";chunk-signature=";
    let sigs: Vec<&[u8]> = signatures
        .windows(TAG.len())
        .enumerate()
        .filter(|(_, w)| *w == TAG)
        .map(|(i, _)| &signatures[i + TAG.len()..i + TAG.len() + 64])
        .collect();
    let mut out = data.to_vec();
    let mut n = 0;
    let mut i = 0;
    while i + TAG.len() <= out.len() {
        if &out[i..i + TAG.len()] == TAG && n < sigs.len() {
            out[i + TAG.len()..i + TAG.len() + 64].copy_from_slice(sigs[n]);
            n += 1;
            i += TAG.len() + 64;
        } else {
            i += 1;
        }
    }
    out
}

/// A signed streaming put of a chunked body.
fn chunked_put(h: &Harness, key: &str, decoded: usize, body: Vec<u8>) -> TestRequest {
    sign(
        h,
        "PUT",
        &format!("/default/{}", encode_path(key)),
        &[
            ("content-encoding", "aws-chunked".into()),
            ("x-amz-decoded-content-length", decoded.to_string()),
            ("x-amz-trailer", "x-amz-checksum-crc32".into()),
        ],
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )
    .set_payload(body)
}

/// Keys as apps make them: nested names, spaces, punctuation and non-ASCII text.
fn keys() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ._~+=!,;:@()'$&é漢-]{1,12}(/[a-zA-Z0-9 ._~+=é-]{1,12}){0,3}"
        .prop_filter("no empty, dot or dot-dot segments", |k| {
            k.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
        })
}

fn runtime() -> actix_web::rt::SystemRunner {
    actix_web::rt::System::new()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn signed_chunks_are_checked_one_by_one(
        body in proptest::collection::vec(any::<u8>(), 1..5000),
        size in 1usize..2000,
        tamper in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let sys = runtime();
        sys.block_on(async {
            let h = Harness::new().await;
            let (req, seed) = sign_seeded(
                &h,
                "PUT",
                "/default/signed.bin",
                &[
                    ("content-encoding", "aws-chunked".into()),
                    ("x-amz-decoded-content-length", body.len().to_string()),
                ],
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            );
            let framed = signed_chunks(&seed, &body, size);
            // A byte of the object changed after signing: the changed bytes go with the
            // original chunks' signatures, one of which no longer holds.
            let sent = match tamper {
                Some(at) => {
                    let mut changed = body.clone();
                    changed[at.index(body.len())] ^= 0x20;
                    splice_signatures(&framed, &signed_chunks(&seed, &changed, size))
                }
                None => framed,
            };
            let (status, reply) = h.send(req.set_payload(sent)).await;
            let stored = h.store.by_key(None, "signed.bin").unwrap();
            if tamper.is_some() {
                prop_assert_eq!(status, 403, "{}", String::from_utf8_lossy(&reply));
                prop_assert!(String::from_utf8_lossy(&reply).contains("SignatureDoesNotMatch"));
                prop_assert!(stored.is_none());
            } else {
                prop_assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
                prop_assert_eq!(stored.unwrap().hash.to_hex(), hex::encode(Sha256::digest(&body)));
            }
            Ok(())
        })?;
    }

    #[test]
    fn signed_chunked_puts_of_any_key_store_exactly_their_bytes(
        key in keys(),
        body in proptest::collection::vec(any::<u8>(), 0..6000),
        sizes in proptest::collection::vec(1usize..3000, 1..5),
    ) {
        let sys = runtime();
        sys.block_on(async {
            let h = Harness::new().await;
            let (status, reply) = h.send(chunked_put(&h, &key, body.len(), chunked(&body, &sizes))).await;
            prop_assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
            let record = h.store.by_key(None, &key).unwrap().expect("the object");
            prop_assert_eq!(record.hash.to_hex(), hex::encode(Sha256::digest(&body)));
            let get = sign(&h, "GET", &format!("/default/{}", encode_path(&key)), &[], &hex::encode(Sha256::digest(b"")));
            let (status, bytes) = h.send(get).await;
            prop_assert_eq!(status, 200);
            prop_assert_eq!(bytes.as_ref(), body.as_slice());
            Ok(())
        })?;
    }

    #[test]
    fn corrupted_chunked_bodies_are_refused_or_whole_never_a_panic_or_a_5xx(
        body in proptest::collection::vec(any::<u8>(), 1..3000),
        sizes in proptest::collection::vec(1usize..1000, 1..4),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let sys = runtime();
        sys.block_on(async {
            let h = Harness::new().await;
            let mut framed = chunked(&body, &sizes);
            for (at, value) in &flips {
                let i = at.index(framed.len());
                framed[i] = *value;
            }
            if let Some(cut) = cut {
                framed.truncate(cut.index(framed.len()));
            }
            let (status, reply) = h.send(chunked_put(&h, "fuzzed.bin", body.len(), framed)).await;
            prop_assert!(status < 500, "{status}: {}", String::from_utf8_lossy(&reply));
            match h.store.by_key(None, "fuzzed.bin").unwrap() {
                Some(r) => {
                    prop_assert_eq!(status, 200);
                    prop_assert_eq!(r.hash.to_hex(), hex::encode(Sha256::digest(&body)), "stored bytes differ from the ones sent");
                }
                None => prop_assert!(status >= 400, "{status} without an object"),
            }
            Ok(())
        })?;
    }

    #[test]
    fn arbitrary_signatures_are_refused_and_store_nothing(
        auth in "(AWS4-HMAC-SHA256 |AWS |)[ -~]{0,200}",
        credential in "[A-Z0-9]{0,24}(/[0-9a-z-]{0,12}){0,6}",
        signed in "[a-z;-]{0,40}",
        signature in "[0-9a-f]{0,70}",
        expires in "[0-9-]{0,12}",
        date in "[0-9TZ]{0,20}",
        presigned in any::<bool>(),
        v2 in any::<bool>(),
        method in prop::sample::select(vec!["GET", "PUT", "POST", "DELETE", "HEAD"]),
        path in prop::sample::select(vec!["/", "/default", "/default/a.bin", "/photos/x/y?uploads", "/default/a.bin?uploadId=00&partNumber=1"]),
    ) {
        let sys = runtime();
        sys.block_on(async {
            let h = Harness::new().await;
            let q = |s: &str| encode_path(s).replace('/', "%2F");
            let uri = if !presigned {
                path.to_owned()
            } else if v2 {
                let sep = if path.contains('?') { '&' } else { '?' };
                format!("{path}{sep}AWSAccessKeyId={}&Expires={}&Signature={}", q(&h.key), q(&expires), q(&signature))
            } else {
                let sep = if path.contains('?') { '&' } else { '?' };
                format!(
                    "{path}{sep}X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date={}&X-Amz-Expires={}&X-Amz-SignedHeaders={}&X-Amz-Signature={}",
                    q(&format!("{}/{credential}", h.key)), q(&date), q(&expires), q(&signed), q(&signature)
                )
            };
            let mut req = TestRequest::default()
                .method(method.parse().unwrap())
                .uri(&uri)
                .insert_header(("host", HOST))
                .set_payload("not to be stored");
            if !presigned {
                let header = format!("{auth} Credential={}/{credential}, SignedHeaders={signed}, Signature={signature}", h.key);
                if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&header) {
                    req = req.insert_header(("authorization", v)).insert_header(("x-amz-date", date.as_str()));
                }
            }
            let (status, reply) = h.send(req).await;
            prop_assert!((400..500).contains(&status), "{status}: {}", String::from_utf8_lossy(&reply));
            prop_assert_eq!(h.records(), 0);
            prop_assert_eq!(h.store.multipart().list().unwrap().len(), 0);
            Ok(())
        })?;
    }
}

//! Each answer of the protocol, with plain requests: what OPTIONS, POST and HEAD say, and the
//! refusals (409, 460, 400, 412, 415, 404/410), each of which changes nothing. Every response
//! is checked for `Tus-Resumable` by [`expect`].

use std::time::Duration;

use reqwest::Method;

use crate::common::{bytes, eventually, sha256_hex, TestServer};
use crate::protocol::{
    checksum, encode_metadata, expect, expect_error, expires_in, header, location_path,
    upload_files, upload_id, Tus, ENDPOINT, OFFSET_STREAM, TUS_VERSION,
};

fn tus(s: &TestServer) -> Tus {
    Tus::new(&s.base, s.token.as_deref())
}

#[test]
fn options_advertises_the_protocol_without_credentials() {
    let s = TestServer::builder()
        .env("SHOEBOX_MAX_UPLOAD_BYTES", "5MiB")
        .start();
    let res = Tus::new(&s.base, None)
        .bare(Method::OPTIONS, ENDPOINT)
        .send()
        .unwrap();
    // tus 1.0.0: 204 No Content or 200 OK.
    let status = res.status().as_u16();
    assert!(status == 204 || status == 200, "OPTIONS answered {status}");
    assert_eq!(header(&res, "tus-resumable").as_deref(), Some(TUS_VERSION));
    let list = |name: &str| -> Vec<String> {
        header(&res, name)
            .unwrap_or_else(|| panic!("{name} on OPTIONS"))
            .split(',')
            .map(|v| v.trim().to_owned())
            .collect()
    };
    assert!(list("tus-version").contains(&TUS_VERSION.to_owned()));
    let extensions = list("tus-extension");
    for ext in [
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "checksum",
        "expiration",
    ] {
        assert!(
            extensions.contains(&ext.to_owned()),
            "{ext} in {extensions:?}"
        );
    }
    let algorithms = list("tus-checksum-algorithm");
    for alg in ["sha1", "sha256"] {
        assert!(
            algorithms.contains(&alg.to_owned()),
            "{alg} in {algorithms:?}"
        );
    }
    assert_eq!(header(&res, "tus-max-size"), Some((5u64 << 20).to_string()));
}

#[test]
fn creation_answers_where_the_upload_lives_and_head_tells_its_state() {
    let s = TestServer::start();
    let t = tus(&s);
    let pairs = [("filename", "a.txt"), ("title", "Ä title, with a comma")];
    let res = expect(t.create(Some(10), &pairs), 201);
    let location = header(&res, "location").unwrap();
    let id = location
        .strip_prefix("/api/uploads/")
        .unwrap_or_else(|| panic!("Location {location:?} is /api/uploads/{{id}}"));
    assert!(
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "the id is 32 lowercase hex digits: {id:?}"
    );
    // The default expiry is a day after the last write.
    let expires = expires_in(&res);
    assert!(
        (86_000..=86_500).contains(&expires),
        "expires in {expires} s"
    );
    assert!(
        header(&res, "upload-offset").is_none(),
        "no body, no offset"
    );

    let res = expect(t.head(&location), 200);
    assert_eq!(header(&res, "upload-offset").as_deref(), Some("0"));
    assert_eq!(header(&res, "upload-length").as_deref(), Some("10"));
    assert_eq!(header(&res, "upload-defer-length"), None);
    assert_eq!(
        header(&res, "upload-metadata"),
        Some(encode_metadata(&pairs)),
        "the metadata as sent"
    );
    assert!(
        header(&res, "cache-control").is_some_and(|v| v.contains("no-store")),
        "HEAD must not be cached"
    );
    assert!(expires_in(&res) > 86_000);
    assert!(header(&res, "shoebox-media-id").is_none(), "not complete");

    // The PATCH answers its new offset and a new expiry.
    let res = expect(t.patch(&location, 0, b"01234"), 204);
    assert_eq!(header(&res, "upload-offset").as_deref(), Some("5"));
    assert!(expires_in(&res) > 86_000);
    assert!(header(&res, "shoebox-media-id").is_none());
    let res = expect(t.patch(&location, 5, b"56789"), 204);
    let media_id = header(&res, "shoebox-media-id").expect("the completing PATCH names the media");
    let res = expect(t.head(&location), 200);
    assert_eq!(header(&res, "upload-offset").as_deref(), Some("10"));
    assert_eq!(header(&res, "shoebox-media-id"), Some(media_id.clone()));
    assert!(header(&res, "cache-control").is_some_and(|v| v.contains("no-store")));
    assert_eq!(s.media_bytes(&media_id), b"0123456789");
}

#[test]
fn a_patch_at_the_wrong_offset_gets_409_and_changes_nothing() {
    let s = TestServer::start();
    let t = tus(&s);
    let path = t.created(Some(20), &[]);
    t.patched(&path, 0, b"first");
    for offset in [0, 4, 6, 20] {
        let code = expect_error(t.patch(&path, offset, b"again"), 409);
        assert!(!code.is_empty(), "a code for the 409 at {offset}");
    }
    assert_eq!(t.offset(&path), 5);
    // A missing or unreadable Upload-Offset is no offset at all.
    let res = t
        .request(Method::PATCH, &path)
        .header("Content-Type", OFFSET_STREAM)
        .body("x")
        .send()
        .unwrap();
    let status = res.status().as_u16();
    assert!(status == 400 || status == 409, "no Upload-Offset: {status}");
    expect(res, status);
    assert_eq!(t.offset(&path), 5);
}

#[test]
fn a_chunk_whose_checksum_does_not_match_gets_460_and_is_discarded() {
    let s = TestServer::start();
    let t = tus(&s);
    let data = bytes(30_000, 3);
    let path = t.created(Some(data.len() as u64), &[]);
    let chunk = &data[..10_000];
    let mut corrupted = chunk.to_vec();
    corrupted[5_000] ^= 0x40;
    for alg in ["sha1", "sha256"] {
        let res = t
            .patch_request(&path, 0, corrupted.clone())
            .header("Upload-Checksum", checksum(alg, chunk))
            .send()
            .unwrap();
        expect_error(res, 460);
        assert_eq!(
            t.offset(&path),
            0,
            "the corrupted {alg} chunk was discarded"
        );
    }
    // The same chunk, whole: accepted with either algorithm.
    let res = t
        .patch_request(&path, 0, chunk.to_vec())
        .header("Upload-Checksum", checksum("sha1", chunk))
        .send()
        .unwrap();
    assert_eq!(
        header(&expect(res, 204), "upload-offset").as_deref(),
        Some("10000")
    );
    let res = t
        .patch_request(&path, 10_000, data[10_000..20_000].to_vec())
        .header("Upload-Checksum", checksum("sha256", &data[10_000..20_000]))
        .send()
        .unwrap();
    assert_eq!(
        header(&expect(res, 204), "upload-offset").as_deref(),
        Some("20000")
    );

    // An algorithm the server does not offer, or a checksum header that is no checksum: 400.
    for value in [
        format!("md5 {}", crate::protocol::base64(&[0u8; 16])),
        "crc32 AAAAAA==".to_owned(),
        "sha1".to_owned(),
        "sha256 not*base64!".to_owned(),
    ] {
        let res = t
            .patch_request(&path, 20_000, data[20_000..].to_vec())
            .header("Upload-Checksum", value.as_str())
            .send()
            .unwrap();
        expect_error(res, 400);
        assert_eq!(t.offset(&path), 20_000, "{value:?} changed nothing");
    }
    let res = t.patched(&path, 20_000, &data[20_000..]);
    let media_id = header(&res, "shoebox-media-id").unwrap();
    assert_eq!(sha256_hex(&s.media_bytes(&media_id)), sha256_hex(&data));
}

#[test]
fn requests_without_tus_resumable_get_412_with_the_supported_version() {
    let s = TestServer::start();
    let t = tus(&s);
    let path = t.created(Some(10), &[]);
    let cases = [
        (
            "POST",
            t.bare(Method::POST, ENDPOINT).header("Upload-Length", "10"),
        ),
        ("HEAD", t.bare(Method::HEAD, &path)),
        (
            "PATCH",
            t.bare(Method::PATCH, &path)
                .header("Content-Type", OFFSET_STREAM)
                .header("Upload-Offset", "0")
                .body("01234"),
        ),
        ("DELETE", t.bare(Method::DELETE, &path)),
        (
            "POST 0.2.2",
            t.bare(Method::POST, ENDPOINT)
                .header("Tus-Resumable", "0.2.2")
                .header("Upload-Length", "10"),
        ),
        (
            "PATCH 2.0.0",
            t.bare(Method::PATCH, &path)
                .header("Tus-Resumable", "2.0.0")
                .header("Content-Type", OFFSET_STREAM)
                .header("Upload-Offset", "0")
                .body("01234"),
        ),
    ];
    for (what, req) in cases {
        let res = expect(req.send().unwrap(), 412);
        assert!(
            header(&res, "tus-version").is_some_and(|v| v.contains(TUS_VERSION)),
            "{what}: a 412 says which version the server speaks"
        );
    }
    assert_eq!(t.offset(&path), 0, "nothing was written");
    assert_eq!(crate::records::partial_count(&s), 1, "nothing was made");
}

#[test]
fn a_patch_of_another_content_type_gets_415() {
    let s = TestServer::start();
    let t = tus(&s);
    let path = t.created(Some(10), &[]);
    for content_type in [Some("application/octet-stream"), Some("text/plain"), None] {
        let mut req = t
            .request(Method::PATCH, &path)
            .header("Upload-Offset", "0")
            .body("01234");
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        expect_error(req.send().unwrap(), 415);
    }
    assert_eq!(t.offset(&path), 0);
}

#[test]
fn a_terminated_upload_is_gone_for_head_patch_and_delete() {
    let s = TestServer::start();
    let t = tus(&s);
    let path = t.created(Some(10_000), &[("filename", "gone.bin")]);
    t.patched(&path, 0, &bytes(4_000, 4));
    let id = upload_id(&path).to_owned();
    assert!(
        !upload_files(&s.data_dir, &id).is_empty(),
        "the partial upload is on disk"
    );
    expect(t.delete(&path), 204);
    // tus 1.0.0: 404 Not Found or 410 Gone, for every later request.
    let gone = |status: u16| status == 404 || status == 410;
    let res = t.head(&path);
    let status = res.status().as_u16();
    assert!(gone(status), "HEAD after DELETE: {status}");
    expect(res, status);
    let res = t.patch(&path, 4_000, &bytes(6_000, 5));
    let status = res.status().as_u16();
    assert!(gone(status), "PATCH after DELETE: {status}");
    expect_error(res, status);
    let res = t.delete(&path);
    let status = res.status().as_u16();
    assert!(gone(status), "DELETE again: {status}");
    expect(res, status);
    eventually(
        "the terminated upload's files go",
        Duration::from_secs(10),
        || upload_files(&s.data_dir, &id).is_empty(),
    );
    assert_eq!(s.blob_count(), 0, "nothing was stored");
}

#[test]
fn creation_with_upload_takes_the_first_bytes_in_the_post() {
    let s = TestServer::start();
    let t = tus(&s);
    let data = bytes(50_000, 6);
    let create = |body: &[u8]| {
        t.request(Method::POST, ENDPOINT)
            .header("Upload-Length", data.len().to_string())
            .header("Upload-Metadata", encode_metadata(&[("filename", "c.bin")]))
            .header("Content-Type", OFFSET_STREAM)
            .body(body.to_vec())
            .send()
            .unwrap()
    };
    let res = expect(create(&data[..20_000]), 201);
    assert_eq!(header(&res, "upload-offset").as_deref(), Some("20000"));
    let path = location_path(&res);
    assert_eq!(t.offset(&path), 20_000);
    let res = t.patched(&path, 20_000, &data[20_000..]);
    let first = header(&res, "shoebox-media-id").expect("media id");
    assert_eq!(s.media_bytes(&first), data);

    // The whole file in the creation request: complete at once.
    let res = expect(create(&data), 201);
    assert_eq!(header(&res, "upload-offset"), Some(data.len().to_string()));
    let path = location_path(&res);
    let res = expect(t.head(&path), 200);
    assert_eq!(header(&res, "upload-offset"), Some(data.len().to_string()));
    let second = header(&res, "shoebox-media-id").expect("complete after the POST");
    assert_eq!(sha256_hex(&s.media_bytes(&second)), sha256_hex(&data));

    // A first chunk with a checksum is checked too: a wrong one creates the upload with
    // nothing in it, a right one keeps the bytes.
    let with_checksum = |sum: String| {
        t.request(Method::POST, ENDPOINT)
            .header("Upload-Length", data.len().to_string())
            .header("Content-Type", OFFSET_STREAM)
            .header("Upload-Checksum", sum)
            .body(data[..10_000].to_vec())
            .send()
            .unwrap()
    };
    let res = expect(with_checksum(checksum("sha1", b"other bytes")), 201);
    assert_eq!(header(&res, "upload-offset").as_deref(), Some("0"));
    assert_eq!(t.offset(&location_path(&res)), 0);
    let res = expect(with_checksum(checksum("sha256", &data[..10_000])), 201);
    assert_eq!(header(&res, "upload-offset").as_deref(), Some("10000"));
}

#[test]
fn a_deferred_length_is_fixed_by_a_later_patch() {
    let s = TestServer::start();
    let t = tus(&s);
    let data = bytes(15_000, 7);
    let path = t.created(None, &[("filename", "later.bin")]);
    let res = expect(t.head(&path), 200);
    assert_eq!(header(&res, "upload-defer-length").as_deref(), Some("1"));
    assert_eq!(header(&res, "upload-length"), None);
    t.patched(&path, 0, &data[..5_000]);
    let res = expect(t.head(&path), 200);
    assert_eq!(header(&res, "upload-defer-length").as_deref(), Some("1"));
    assert_eq!(header(&res, "upload-offset").as_deref(), Some("5000"));

    let res = t
        .patch_request(&path, 5_000, data[5_000..10_000].to_vec())
        .header("Upload-Length", "15000")
        .send()
        .unwrap();
    assert_eq!(
        header(&expect(res, 204), "upload-offset").as_deref(),
        Some("10000")
    );
    let res = expect(t.head(&path), 200);
    assert_eq!(header(&res, "upload-length").as_deref(), Some("15000"));
    assert_eq!(
        header(&res, "upload-defer-length"),
        None,
        "the length is known now"
    );
    assert!(header(&res, "shoebox-media-id").is_none());

    // The length, once known, cannot change.
    let res = t
        .patch_request(&path, 10_000, data[10_000..].to_vec())
        .header("Upload-Length", "20000")
        .send()
        .unwrap();
    let status = res.status().as_u16();
    assert!(
        (400..500).contains(&status),
        "a second, different length: {status}"
    );
    expect(res, status);
    assert_eq!(t.offset(&path), 10_000);

    let res = t.patched(&path, 10_000, &data[10_000..]);
    let media_id = header(&res, "shoebox-media-id").expect("complete");
    assert_eq!(s.media_bytes(&media_id), data);
}

#[test]
fn a_creation_without_a_usable_length_is_refused() {
    let s = TestServer::start();
    let t = tus(&s);
    let cases: [(&str, &[(&str, &str)]); 5] = [
        ("no length at all", &[]),
        ("a negative length", &[("Upload-Length", "-1")]),
        ("a length that is no number", &[("Upload-Length", "ten")]),
        (
            "a length past u64",
            &[("Upload-Length", "18446744073709551616")],
        ),
        (
            "Upload-Defer-Length other than 1",
            &[("Upload-Defer-Length", "2")],
        ),
    ];
    for (what, headers) in cases {
        let mut req = t.request(Method::POST, ENDPOINT);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().unwrap();
        let status = res.status().as_u16();
        // A length past u64 is also too large for any limit.
        let allowed: &[u16] = if what.contains("past u64") {
            &[400, 413]
        } else {
            &[400]
        };
        assert!(allowed.contains(&status), "{what}: {status}");
        expect_error(res, status);
    }
    assert_eq!(crate::records::partial_count(&s), 0, "nothing was made");
}

#[test]
fn an_empty_upload_is_complete_at_creation() {
    let s = TestServer::start();
    let t = tus(&s);
    let path = t.created(Some(0), &[("filename", "empty.txt")]);
    let res = expect(t.head(&path), 200);
    assert_eq!(header(&res, "upload-offset").as_deref(), Some("0"));
    assert_eq!(header(&res, "upload-length").as_deref(), Some("0"));
    let media_id = header(&res, "shoebox-media-id").expect("an empty upload is complete at once");
    assert!(s.media_bytes(&media_id).is_empty());
}

#[test]
fn a_patch_past_the_upload_length_is_refused_whole() {
    let s = TestServer::start();
    let t = tus(&s);
    let path = t.created(Some(10), &[]);
    t.patched(&path, 0, b"0123");
    let res = t.patch(&path, 4, b"456789-and-more");
    let status = res.status().as_u16();
    assert!(
        status == 400 || status == 413,
        "a PATCH past the length: {status}"
    );
    expect_error(res, status);
    let res = expect(t.head(&path), 200);
    assert_eq!(
        header(&res, "upload-offset").as_deref(),
        Some("4"),
        "nothing of it was kept"
    );
    assert!(
        header(&res, "shoebox-media-id").is_none(),
        "and nothing was stored"
    );
    assert_eq!(s.blob_count(), 0);
    let res = t.patched(&path, 4, b"456789");
    let media_id = header(&res, "shoebox-media-id").unwrap();
    assert_eq!(s.media_bytes(&media_id), b"0123456789");
}

#[test]
fn a_post_with_x_http_method_override_is_the_method_it_names() {
    let s = TestServer::start();
    let t = tus(&s);
    let data = bytes(3_000, 8);
    let path = t.created(Some(data.len() as u64), &[("filename", "o.bin")]);
    let res = t
        .request(Method::POST, &path)
        .header("X-HTTP-Method-Override", "PATCH")
        .header("Upload-Offset", "0")
        .header("Content-Type", OFFSET_STREAM)
        .body(data[..1_000].to_vec())
        .send()
        .unwrap();
    let res = expect(res, 204);
    assert_eq!(header(&res, "upload-offset").as_deref(), Some("1000"));
    assert_eq!(t.offset(&path), 1_000);
    let res = t
        .request(Method::POST, &path)
        .header("X-HTTP-Method-Override", "delete")
        .send()
        .unwrap();
    expect(res, 204);
    expect(t.head(&path), 404);
    // Only a POST is overridden, and only to a tus method.
    let other = t.created(Some(10), &[]);
    let res = t
        .request(Method::POST, &other)
        .header("X-HTTP-Method-Override", "PUT")
        .send()
        .unwrap();
    expect(res, 405);
    expect(t.head(&other), 200);
}

//! One store, two doors: objects put through S3 are media in the REST API and the gallery, and
//! media uploaded through the REST API are objects in S3 listings.

use serde_json::Value;

use crate::boto::{boto, boto3, passed, server};
use crate::common::{self, all_records};

#[test]
fn an_s3_put_is_media_and_a_rest_upload_is_an_object() {
    if !boto3() {
        return;
    }
    let s = server();
    let key = s.s3_key("app", "upload");
    let dir = tempfile::tempdir().unwrap();
    let png = common::png(40, 30, |x, y| [x as u8, y as u8, 9]);
    let file = dir.path().join("cat.png");
    std::fs::write(&file, &png).unwrap();
    let v = boto(
        "put-file",
        &s.s3_url(),
        &key,
        &[
            "--file",
            file.to_str().unwrap(),
            "--object-key",
            "pets/2024/cat.png",
        ],
    );
    passed(&v);

    // In the REST API: the key's last segment is the file name, the bucket `default` is no
    // collection, and an object put through S3 is private.
    let records = all_records(&s);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["filename"], "cat.png");
    assert_eq!(r["key"], "pets/2024/cat.png");
    assert_eq!(r["collection"], Value::Null);
    assert_eq!(r["visibility"], "private");
    assert_eq!(r["content_type"], "image/png");
    assert_eq!(r["width"], 40);
    let id = r["id"].as_str().unwrap();
    assert_eq!(s.media_bytes(id), png, "S3 stores the bytes as sent");
    assert_eq!(
        s.get(&format!("/m/{id}")).send().unwrap().status(),
        404,
        "private to the public"
    );

    // A REST upload is an object under `{id}/{filename}`.
    let up = s.upload("notes.txt", b"plain words", &[("visibility", "private")]);
    let rest_id = up["id"].as_str().unwrap().to_owned();
    let v = boto("keys", &s.s3_url(), &key, &["--bucket", "default"]);
    passed(&v);
    let keys: Vec<&str> = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    // The upload key sees its own objects and public ones: the admin's private upload is not
    // listed for it.
    assert_eq!(keys, vec!["pets/2024/cat.png"], "{v}");
    let admin = s.s3_key("admin", "admin");
    let v = boto("keys", &s.s3_url(), &admin, &["--bucket", "default"]);
    passed(&v);
    let mut keys: Vec<String> = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    let mut want = vec![format!("{rest_id}/notes.txt"), "pets/2024/cat.png".into()];
    want.sort();
    assert_eq!(keys, want);

    // The REST upload computed no MD5; it gets one behind it, and its ETag becomes that.
    let want_etag = {
        use md5::Digest;
        hex::encode(md5::Md5::digest(b"plain words"))
    };
    common::eventually(
        "the REST upload's ETag becomes its MD5",
        std::time::Duration::from_secs(30),
        || {
            let v = boto("keys", &s.s3_url(), &admin, &["--bucket", "default"]);
            v["objects"].as_array().unwrap().iter().any(|o| {
                o["key"] == format!("{rest_id}/notes.txt") && o["etag"] == want_etag.as_str()
            })
        },
    );
}

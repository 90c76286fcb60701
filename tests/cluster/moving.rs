//! `shoebox migrate` from one disk to the cluster and back.

use reqwest::Method;
use serde_json::Value;

use crate::common::{self, clients, run_cli, TestServer};
use crate::shared::Cluster;
use crate::tus_protocol::{upload_files, upload_id, Tus};
use crate::upload;

/// `shoebox migrate`'s options that send a store to the cluster (through Garage node 0).
fn migrate_to(cluster: &Cluster) -> Vec<String> {
    cluster
        .flags(0)
        .chunks(2)
        .flat_map(|pair| match pair[0].as_str() {
            "--blob-store" => vec!["--to-blob-store".into(), pair[1].clone()],
            "--blob-store-access-key-id" => {
                vec!["--to-blob-store-access-key-id".into(), pair[1].clone()]
            }
            "--blob-store-secret-access-key" => {
                vec!["--to-blob-store-secret-access-key".into(), pair[1].clone()]
            }
            "--database-url" => vec!["--to-database".into(), pair[1].clone()],
            _ => pair.to_vec(),
        })
        .collect()
}

/// Uploads in progress when a store moves to the cluster stay behind on its disk, where no
/// instance continues them: the first start on the cluster says so, and they go when they
/// expire, as they would have, instead of staying for ever.
#[test]
fn uploads_in_progress_left_by_a_move_are_said_and_expire() {
    if !clients::boto3() {
        return;
    }
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let mut s = TestServer::builder().arg("--s3-port").arg("0").start();
    let tus = Tus::new(&s.base, s.token.as_deref());
    let path = tus.created(Some(1000), &[]);
    tus.patched(&path, 0, &[7u8; 500]);
    let id = upload_id(&path).to_owned();
    let key = s.s3_key("parts", "admin");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("parts.bin");
    std::fs::write(&file, common::bytes(6 << 20, 5)).unwrap();
    let args = [
        "--bucket",
        "default",
        "--object-key",
        "left.bin",
        "--file",
        file.to_str().unwrap(),
    ];
    clients::passed(&clients::boto("parts", &s.s3_url(), &key, &args));
    upload(&s, "kept.bin", b"a record to move");
    assert!(s.terminate().success());
    let multipart = s.data_dir.join("uploads/multipart");
    assert_eq!(common::entries(&multipart).len(), 1, "one multipart upload");
    assert!(!upload_files(&s.data_dir, &id).is_empty());

    let mut args = vec!["migrate".to_owned()];
    args.extend(migrate_to(&cluster));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out) = run_cli(&args, &s.data_dir);
    assert_eq!(code, 0, "{out}");
    let c = cluster
        .builder(0)
        .data_dir(&s.data_dir)
        .arg("--upload-expiry")
        .arg("3s")
        .start();
    let said = c.output();
    let warning = said
        .lines()
        .find(|l| l.contains("uploads begun before uploads were shared"))
        .unwrap_or_else(|| panic!("no warning of the uploads left:\n{said}"));
    assert!(
        warning.contains("resumable=1") && warning.contains("multipart=1"),
        "{warning}"
    );
    common::eventually(
        "the uploads left behind expire",
        std::time::Duration::from_secs(60),
        || upload_files(&s.data_dir, &id).is_empty() && common::entries(&multipart).is_empty(),
    );
}

/// A store on one disk moves to the cluster with `shoebox migrate --to-blob-store
/// --to-database`, and back with `--to-blob-store disk --to-database sled`: 1,000 media with
/// custom fields, tags, a collection's setting and pictures with variants keep every record
/// identical and every byte, the API tokens come along, a second run copies nothing, and each
/// side serves everything, variants included.
#[test]
fn a_store_moves_to_the_cluster_and_back() {
    use reqwest::blocking::multipart::{Form, Part};
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let mut s = TestServer::start();
    let mut bytes_of = std::collections::BTreeMap::new();
    // 1,000 media in 20 requests of 50 files, each request with its own custom fields; the
    // first request's files are pictures, in a collection.
    for batch in 0..20u64 {
        let mut form = Form::new()
            .text(
                "custom",
                format!(r#"{{"batch": {batch}, "source": "migration"}}"#),
            )
            .text("tags", format!("b{batch},moved"));
        if batch == 0 {
            form = form.text("collection", "trip");
        }
        let mut sent = Vec::new();
        for i in 0..50u64 {
            let n = batch * 50 + i;
            let data = if batch == 0 {
                common::png(200 + i as u32, 150, move |x, y| {
                    [(x * 7 + n as u32) as u8, y as u8, 99]
                })
            } else {
                common::bytes(100 + 13 * n as usize, 5000 + n)
            };
            let name = if batch == 0 {
                format!("p{n}.png")
            } else {
                format!("m{n}.bin")
            };
            form = form.part("file", Part::bytes(data.clone()).file_name(name));
            sent.push(data);
        }
        let items = s.upload_form(form);
        assert_eq!(
            items.len(),
            50,
            "batch {batch}: {:?}\n{}",
            items
                .iter()
                .map(|i| i["filename"].clone())
                .collect::<Vec<_>>(),
            s.output()
        );
        for (item, data) in items.into_iter().zip(sent) {
            let id = item["id"].as_str().unwrap().to_owned();
            if let Some(was) = bytes_of.insert(id.clone(), data) {
                panic!(
                    "two uploads answered with media {id} ({} and {} bytes): {item}\n{}",
                    was.len(),
                    bytes_of[&id].len(),
                    s.output()
                );
            }
        }
    }
    // A duplicate, and a large blob (a multipart upload to the bucket).
    let first = bytes_of.values().nth(70).unwrap().clone();
    bytes_of.insert(
        upload(&s, "dup.bin", &first)["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        first,
    );
    let large = common::bytes(20 << 20, 9);
    let large_id = upload(&s, "large.bin", &large)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    bytes_of.insert(large_id.clone(), large);
    let res = s
        .authed(Method::PUT, "/api/collections/trip")
        .json(&serde_json::json!({"public": true}))
        .send()
        .unwrap();
    assert!(res.status().is_success());
    let pictures: Vec<String> = bytes_of
        .iter()
        .filter(|(_, d)| d.starts_with(b"\x89PNG"))
        .map(|(id, _)| id.clone())
        .take(5)
        .collect();
    let variant = |t: &TestServer, id: &str| {
        let res = t.get(&format!("/m/{id}?w=160&format=png")).send().unwrap();
        assert_eq!(res.status(), 200, "a variant of {id}");
        res.bytes().unwrap().to_vec()
    };
    let variants: Vec<Vec<u8>> = pictures.iter().map(|id| variant(&s, id)).collect();
    let records = common::all_records(&s);
    if records.len() != 1002 {
        let listed: std::collections::BTreeSet<&str> =
            records.iter().map(|r| r["id"].as_str().unwrap()).collect();
        let missing: Vec<&String> = bytes_of
            .keys()
            .filter(|k| !listed.contains(k.as_str()))
            .collect();
        let status = s.status();
        let detail: Vec<String> = missing
            .iter()
            .map(|id| {
                s.authed(Method::GET, &format!("/api/media/{id}"))
                    .send()
                    .unwrap()
                    .text()
                    .unwrap()
            })
            .collect();
        panic!(
            "listed {} of {} uploaded; status {}; missing {missing:?}: {detail:?}\n{}",
            records.len(),
            bytes_of.len(),
            status["media"],
            s.output()
                .lines()
                .filter(|l| missing.iter().any(|m| l.contains(m.as_str()))
                    || l.contains("WARN")
                    || l.contains("ERROR"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let token = s.api_token("app", "read");
    assert!(s.terminate().success());

    // There: the cluster's settings name the destination, the data directory the source.
    let flags = cluster.flags(0);
    let to = migrate_to(&cluster);
    let mut args = vec!["migrate"];
    args.extend(to.iter().map(String::as_str));
    let (code, out) = run_cli(&args, &s.data_dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("1002 records in PostgreSQL, verified (1002 copied now"),
        "{out}"
    );
    let (code, again) = run_cli(&args, &s.data_dir);
    assert_eq!(code, 0, "{again}");
    assert!(
        again.contains("(0 copied now, 1002 were there already)"),
        "{again}"
    );

    let c = cluster.instance(1);
    assert_eq!(common::all_records(&c), records, "every record as it was");
    for (id, data) in bytes_of.iter().step_by(40) {
        assert_eq!(&c.media_bytes(id), data);
    }
    assert_eq!(c.media_bytes(&large_id).len(), 20 << 20);
    for (id, v) in pictures.iter().zip(&variants) {
        assert_eq!(
            &variant(&c, id),
            v,
            "the same variant, made from the bucket"
        );
    }
    let res = c
        .client()
        .get(c.url(&format!("/api/media/{large_id}")))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "the API token came along");
    let collections: Value = c
        .authed(Method::GET, "/api/collections")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        collections.to_string().contains("\"public\":true"),
        "{collections}"
    );
    drop(c);

    // And back, into a data directory of its own.
    let back = tempfile::tempdir().unwrap();
    let mut args = vec![
        "migrate",
        "--to-blob-store",
        "disk",
        "--to-database",
        "sled",
    ];
    args.extend(flags.iter().map(String::as_str));
    let (code, out) = run_cli(&args, back.path());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("1002 records in sled and records/, verified"),
        "{out}"
    );
    let (code, out) = run_cli(&["verify"], back.path());
    assert_eq!(code, 0, "{out}");
    let d = TestServer::builder().data_dir(back.path()).start();
    assert_eq!(common::all_records(&d), records, "every record as it was");
    assert_eq!(
        d.blob_count(),
        1001,
        "every blob is a file again, one for two records"
    );
    for (id, data) in bytes_of.iter().step_by(40) {
        assert_eq!(&d.media_bytes(id), data);
    }
    for (id, v) in pictures.iter().zip(&variants) {
        assert_eq!(&variant(&d, id), v);
    }
    let res = d
        .client()
        .get(d.url(&format!("/api/media/{large_id}")))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "the API token came back");
}

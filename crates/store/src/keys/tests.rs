//! Object keys: given or derived at upload, unique in a collection, found and listed by
//! seeking, checked by `verify`, rebuilt by `rebuild`, and indexed when an older store opens.

use crate::catalogue::Role;
use crate::testing::{keyed, new};
use crate::{rebuild, MediaPatch, Store, StoreError};

fn keys(records: &[crate::MediaRecord]) -> Vec<String> {
    records.iter().map(|r| r.key().into_owned()).collect()
}

#[test]
fn an_upload_keeps_its_key_or_gets_its_id_and_filename() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let made = store
        .create(vec![
            new(&store, b"plain"),
            keyed(&store, b"keyed", Some("stories"), "2024/cover.jpg"),
        ])
        .unwrap();
    let (plain, with_key) = (&made[0], &made[1]);
    assert_eq!(plain.key, Some(format!("{}/a.txt", plain.id)));
    assert_eq!(with_key.key.as_deref(), Some("2024/cover.jpg"));
    assert_eq!(
        store.by_key(None, &plain.key()).unwrap().as_ref(),
        Some(plain)
    );
    assert_eq!(
        store
            .by_key(Some("stories"), "2024/cover.jpg")
            .unwrap()
            .as_ref(),
        Some(with_key)
    );
    assert!(store.by_key(None, "2024/cover.jpg").unwrap().is_none());
    assert_eq!(
        store.records.read(with_key.id).unwrap().as_ref(),
        Some(with_key)
    );

    // A record written before keys were kept has the key it would have been given.
    let mut old = plain.clone();
    old.key = None;
    assert_eq!(old.key(), format!("{}/a.txt", plain.id));

    let refused = store
        .create(vec![keyed(&store, b"x", None, "a\u{0}b")])
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::Invalid { field: "key", .. }),
        "{refused}"
    );
    assert!(!store.verify().unwrap().is_damaged());
}

#[test]
fn a_key_is_one_records_in_its_collection() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let first = store
        .create(vec![keyed(&store, b"first", Some("c"), "k")])
        .unwrap()
        .remove(0);
    let taken = store
        .create(vec![keyed(&store, b"second", Some("c"), "k")])
        .unwrap_err();
    let StoreError::KeyTaken { collection, key } = &taken else {
        panic!("{taken}")
    };
    assert_eq!((collection.as_deref(), key.as_str()), (Some("c"), "k"));
    assert!(taken.to_string().contains("\"k\""), "{taken}");
    // Two of one batch: the whole batch is refused, before anything is written.
    let twice = store
        .create(vec![
            keyed(&store, b"one", Some("d"), "same"),
            keyed(&store, b"two", Some("d"), "same"),
        ])
        .unwrap_err();
    assert!(matches!(twice, StoreError::KeyTaken { .. }), "{twice}");
    assert_eq!(store.media_count().unwrap(), 1);
    assert_eq!(store.records.ids().unwrap(), vec![first.id]);
    assert_eq!(crate::testing::blob_hashes(&store), vec![first.hash]);
    // The same key elsewhere is another object.
    store
        .create(vec![
            keyed(&store, b"second", Some("d"), "k"),
            keyed(&store, b"third", None, "k"),
        ])
        .unwrap();
    assert_eq!(store.by_key(Some("c"), "k").unwrap().unwrap().id, first.id);
    assert!(!store.verify().unwrap().is_damaged());
}

/// A record's key moves with it to another collection, unless another record holds it there.
#[test]
fn a_move_onto_a_taken_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = store
        .create(vec![keyed(&store, b"a", Some("x"), "k")])
        .unwrap()
        .remove(0);
    let b = store
        .create(vec![keyed(&store, b"b", Some("y"), "k")])
        .unwrap()
        .remove(0);
    let into_x = MediaPatch {
        collection: Some(Some("x".into())),
        title: Some("moved".into()),
        ..MediaPatch::default()
    };
    let refused = store.update(b.id, &into_x).unwrap_err();
    assert!(matches!(refused, StoreError::KeyTaken { .. }), "{refused}");
    assert_eq!(store.get(b.id).unwrap().as_ref(), Some(&b));
    assert_eq!(store.records.read(b.id).unwrap().as_ref(), Some(&b));
    assert_eq!(store.by_key(Some("x"), "k").unwrap().unwrap().id, a.id);

    let into_z = MediaPatch {
        collection: Some(Some("z".into())),
        ..MediaPatch::default()
    };
    store.update(b.id, &into_z).unwrap();
    assert_eq!(store.by_key(Some("z"), "k").unwrap().unwrap().id, b.id);
    assert!(store.by_key(Some("y"), "k").unwrap().is_none());

    assert!(!store.verify().unwrap().is_damaged());
}

#[test]
fn keys_are_listed_in_byte_order_from_any_point() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let names = ["b", "a/c/e", "é", "a", "a0", "Z", "a/c/d", "a/b"];
    let items = names
        .iter()
        .enumerate()
        .map(|(n, k)| keyed(&store, format!("{n}").as_bytes(), Some("c"), k))
        .collect();
    store.create(items).unwrap();
    // Neighbours that must not show: the same keys elsewhere.
    store
        .create(vec![
            keyed(&store, b"other", None, "a/b"),
            keyed(&store, b"other", Some("c2"), "a/b"),
            keyed(&store, b"other", Some("b"), "a/b"),
        ])
        .unwrap();
    let c = Some("c");
    let all = store.list_keys(c, "", None, 100).unwrap();
    assert_eq!(all.len(), names.len());
    // Byte order: "Z" (0x5a) before "a", "/" (0x2f) before "0", "é" (0xc3 0xa9) last.
    assert_eq!(
        keys(&all),
        ["Z", "a", "a/b", "a/c/d", "a/c/e", "a0", "b", "é"]
    );
    assert_eq!(
        keys(&store.list_keys(c, "a/", None, 100).unwrap()),
        ["a/b", "a/c/d", "a/c/e"]
    );
    assert_eq!(
        keys(&store.list_keys(c, "a/", Some("a/b"), 100).unwrap()),
        ["a/c/d", "a/c/e"]
    );
    assert_eq!(
        keys(&store.list_keys(c, "a/", None, 2).unwrap()),
        ["a/b", "a/c/d"]
    );
    assert_eq!(
        keys(&store.list_keys(c, "a", Some("a/c/d"), 2).unwrap()),
        ["a/c/e", "a0"]
    );
    // An `after` before the prefix starts at the prefix; one past it finds nothing.
    assert_eq!(
        keys(&store.list_keys(c, "b", Some("a"), 10).unwrap()),
        ["b"]
    );
    assert!(store.list_keys(c, "a/", Some("a0"), 10).unwrap().is_empty());
    assert!(store.list_keys(c, "", Some("é"), 10).unwrap().is_empty());
    assert!(store.list_keys(c, "", None, 0).unwrap().is_empty());
    // Past a rolled-up common prefix, in one seek.
    assert_eq!(
        keys(&store.list_keys_past(c, "", "a/", 100).unwrap()),
        ["a0", "b", "é"]
    );
    assert_eq!(
        keys(&store.list_keys_past(c, "a/", "a/c/", 100).unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(
        keys(&store.list_keys_past(c, "a", "a/c/", 100).unwrap()),
        ["a0"]
    );
    assert_eq!(
        keys(&store.list_keys_past(c, "a/c", "Z", 100).unwrap()),
        ["a/c/d", "a/c/e"],
        "a point before the prefix starts at the prefix"
    );
    assert_eq!(keys(&store.list_keys(None, "", None, 10).unwrap()), ["a/b"]);
    assert!(store
        .list_keys(Some("none"), "", None, 10)
        .unwrap()
        .is_empty());
}

#[test]
fn the_collections_in_use_are_found_by_seeking() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(store.buckets_in_use().unwrap().is_empty());
    assert!(store.collection_is_empty(None).unwrap());
    let made = store
        .create(vec![
            keyed(&store, b"1", Some("d"), "k"),
            keyed(&store, b"2", Some("c"), "k"),
            keyed(&store, b"3", Some("c"), "l"),
            keyed(&store, b"4", Some("c d"), "k"),
            new(&store, b"5"),
        ])
        .unwrap();
    assert_eq!(
        store.buckets_in_use().unwrap(),
        [None, Some("c".into()), Some("c d".into()), Some("d".into())]
    );
    assert!(!store.collection_is_empty(Some("c")).unwrap());
    assert!(!store.collection_is_empty(None).unwrap());
    assert!(store.collection_is_empty(Some("e")).unwrap());
    store.delete(made[1].id).unwrap();
    store.delete(made[2].id).unwrap();
    store.delete(made[4].id).unwrap();
    assert!(store.collection_is_empty(Some("c")).unwrap());
    assert!(store.collection_is_empty(None).unwrap());
    assert_eq!(
        store.buckets_in_use().unwrap(),
        [Some("c d".into()), Some("d".into())]
    );
}

/// A store from before keys were kept: its records have none stored and its database no key
/// index. Its first start indexes every record under `{id}/{filename}`, and it verifies clean.
#[test]
fn an_older_store_gains_the_key_index_when_it_opens() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::start(dir.path(), Role::Server).unwrap();
    let made = store
        .create(vec![new(&store, b"one"), {
            let mut item = new(&store, b"two");
            item.fields.collection = Some("c".into());
            item
        }])
        .unwrap();
    store.meta.sled().unwrap().forget_keys();
    for r in &made {
        let mut older = r.clone();
        older.key = None;
        store.records.write(&older).unwrap();
    }
    assert!(store.by_key(None, &made[0].key()).unwrap().is_none());
    store.close_cleanly().unwrap();
    drop(store);

    let store = Store::start(dir.path(), Role::Server).unwrap();
    assert!(store.started().rebuilt.is_none());
    for r in &made {
        let found = store
            .by_key(r.collection.as_deref(), &format!("{}/a.txt", r.id))
            .unwrap()
            .unwrap();
        assert_eq!((found.id, found.key.as_deref()), (r.id, None));
    }
    let report = store.verify().unwrap();
    assert!(!report.is_damaged(), "{}", report.render());
    // Renamed, an older record keeps the key it had: it is stored before the name changes.
    let derived = made[0].key().into_owned();
    let renamed = store
        .update(
            made[0].id,
            &MediaPatch {
                filename: Some("b.txt".into()),
                ..MediaPatch::default()
            },
        )
        .unwrap();
    assert_eq!(renamed.key.as_deref(), Some(derived.as_str()));
    assert_eq!(
        store.by_key(None, &derived).unwrap().unwrap().id,
        made[0].id
    );
    assert!(!store.verify().unwrap().is_damaged());
    // A new upload cannot take an older record's derived key.
    let taken = store
        .create(vec![keyed(&store, b"x", None, &made[0].key())])
        .unwrap_err();
    assert!(matches!(taken, StoreError::KeyTaken { .. }), "{taken}");
}

#[test]
fn verify_reports_a_wrong_key_index_and_rebuild_restores_it() {
    let dir = tempfile::tempdir().unwrap();
    let made = {
        let store = Store::open(dir.path()).unwrap();
        let made = store
            .create(vec![
                keyed(&store, b"a", Some("c"), "a"),
                keyed(&store, b"b", Some("c"), "b"),
            ])
            .unwrap();
        store
            .meta
            .sled()
            .unwrap()
            .set_key_entry(Some("c"), "a", None);
        store
            .meta
            .sled()
            .unwrap()
            .set_key_entry(Some("c"), "stray", Some(made[1].id));
        store.meta.flush().unwrap();
        let report = store.verify().unwrap();
        assert!(report.is_damaged());
        assert_eq!(report.derived.len(), 2, "{:?}", report.derived);
        assert!(report
            .derived
            .iter()
            .any(|l| l.starts_with("idx_key: missing entry ")));
        assert!(report
            .derived
            .iter()
            .any(|l| l.starts_with("idx_key: stray entry ")));
        store.close_cleanly().unwrap();
        made
    };
    let (store, report) = rebuild::rebuild(dir.path()).unwrap();
    assert_eq!(report.records, 2);
    assert!(!store.verify().unwrap().is_damaged());
    assert_eq!(
        store.by_key(Some("c"), "a").unwrap().unwrap().id,
        made[0].id
    );
    assert!(store.by_key(Some("c"), "stray").unwrap().is_none());
}

/// Two record files holding one key (which the write path never lets happen): a rebuild keeps
/// the older one's and sets the other aside, so the index stays one record per key.
#[test]
fn a_rebuild_sets_aside_a_record_file_whose_key_an_older_record_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (older, younger) = {
        let store = Store::open(dir.path()).unwrap();
        let older = store
            .create(vec![keyed(&store, b"a", Some("c"), "k")])
            .unwrap()
            .remove(0);
        let mut younger = store
            .create(vec![keyed(&store, b"b", Some("c"), "l")])
            .unwrap()
            .remove(0);
        younger.key = Some("k".into());
        store.records.write(&younger).unwrap();
        store.close_cleanly().unwrap();
        (older, younger)
    };
    let (store, report) = rebuild::rebuild(dir.path()).unwrap();
    assert_eq!(report.records, 1);
    assert_eq!(report.key_clashes.len(), 1, "{}", report.summary());
    assert!(report.summary().contains("whose key an older record holds"));
    assert_eq!(store.by_key(Some("c"), "k").unwrap().unwrap().id, older.id);
    assert!(crate::catalogue::quarantined_copy(store.layout(), younger.id).is_file());
    assert!(!store.verify().unwrap().is_damaged());
}

//! Keyed uploads: made, then replaced in place; the blobs they leave; racing puts of one key;
//! and a replacement that a crash cut off after its record file.

use std::sync::Arc;

use crate::catalogue::Role;
use crate::testing::{keyed, new};
use crate::write::parallel;
use crate::{Store, StoreError, Totals};

/// The counters, the indexes, the record files and the blobs agree with each other.
fn assert_sound(store: &Store) {
    let report = store.verify().unwrap();
    assert!(!report.is_damaged(), "{}", report.render());
    assert!(report.orphan_blobs.is_empty(), "{}", report.render());
    let records: Vec<_> = store.all_records().map(Result::unwrap).collect();
    assert_eq!(store.stats().unwrap().totals, Totals::of(&records));
}

#[test]
fn a_put_makes_the_record_then_replaces_it_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let first = store
        .put(keyed(
            &store,
            b"first version",
            Some("site"),
            "img/logo.png",
        ))
        .unwrap();
    assert_eq!(first.replaced, None);
    let made = first.record;
    assert_eq!(made.key.as_deref(), Some("img/logo.png"));
    assert_eq!(made.collection.as_deref(), Some("site"));
    assert_eq!(
        store
            .counters()
            .uploads
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert_sound(&store);

    let mut item = keyed(
        &store,
        b"second, longer version",
        Some("site"),
        "img/logo.png",
    );
    item.filename = "logo-2.txt".into();
    item.fields.title = "Logo".into();
    let second = store.put(item).unwrap();
    assert_eq!(second.replaced, Some(made.hash));
    let now = second.record;
    assert_eq!((now.id, now.created_at), (made.id, made.created_at));
    assert_ne!(now.hash, made.hash);
    assert_eq!(now.size, 22);
    assert_eq!(
        (now.filename.as_str(), now.title.as_str()),
        ("logo-2.txt", "Logo")
    );
    assert_eq!(now.key.as_deref(), Some("img/logo.png"));
    assert!(now.updated_at >= made.updated_at);
    assert_eq!(store.get(made.id).unwrap().as_ref(), Some(&now));
    assert_eq!(store.records.read(made.id).unwrap().as_ref(), Some(&now));
    assert_eq!(
        store.by_key(Some("site"), "img/logo.png").unwrap().as_ref(),
        Some(&now)
    );
    assert_eq!(store.media_count().unwrap(), 1);
    // The old bytes went with their last record.
    assert_eq!(store.refcount(&made.hash).unwrap(), 0);
    assert!(!store.blob_path(&made.hash).exists());
    assert_eq!(crate::testing::blob_hashes(&store), vec![now.hash]);
    assert_sound(&store);

    // The same bytes again: a new version of the record, the blob as it was.
    let third = store
        .put(keyed(
            &store,
            b"second, longer version",
            Some("site"),
            "img/logo.png",
        ))
        .unwrap();
    assert_eq!(third.replaced, Some(now.hash));
    assert_eq!(third.record.title, "", "the fields are the new upload's");
    assert_eq!(store.refcount(&now.hash).unwrap(), 1);
    assert!(store.blob_path(&now.hash).is_file());
    assert_sound(&store);

    // The same key in another collection is another object.
    let elsewhere = store
        .put(keyed(&store, b"first version", None, "img/logo.png"))
        .unwrap();
    assert_eq!(elsewhere.replaced, None);
    assert_ne!(elsewhere.record.id, made.id);
    assert_sound(&store);
}

#[test]
fn a_replaced_blob_that_another_record_uses_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let other = store
        .create(vec![new(&store, b"shared")])
        .unwrap()
        .remove(0);
    let put = store
        .put(keyed(&store, b"shared", None, "k"))
        .unwrap()
        .record;
    assert_eq!(store.refcount(&other.hash).unwrap(), 2);
    let replaced = store.put(keyed(&store, b"its own", None, "k")).unwrap();
    assert_eq!(replaced.replaced, Some(other.hash));
    assert_eq!(replaced.record.id, put.id);
    assert_eq!(store.refcount(&other.hash).unwrap(), 1);
    assert!(store.blob_path(&other.hash).is_file());
    assert_eq!(store.stats().unwrap().totals.blobs, 2);
    assert_sound(&store);

    // A put onto bytes another record counts reuses them.
    store.put(keyed(&store, b"shared", None, "k")).unwrap();
    assert_eq!(store.refcount(&other.hash).unwrap(), 2);
    assert!(!store.blob_path(&replaced.record.hash).exists());
    assert_sound(&store);
}

#[test]
fn a_put_needs_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let refused = store.put(new(&store, b"no key")).unwrap_err();
    assert!(
        matches!(refused, StoreError::Invalid { field: "key", .. }),
        "{refused}"
    );
    let refused = store.put(keyed(&store, b"bad", None, "")).unwrap_err();
    assert!(matches!(refused, StoreError::Invalid { field: "key", .. }));
    assert_eq!(store.media_count().unwrap(), 0);
    assert!(store.blobs().list().unwrap().is_empty());
}

/// Racing puts of a key that no record holds yet make one record, which the others replace
/// in turn; only the last one's bytes are left.
#[test]
fn racing_puts_of_one_new_key_make_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            std::thread::spawn(move || {
                let bytes = format!("version {n}");
                store
                    .put(keyed(&store, bytes.as_bytes(), Some("race"), "one/key"))
                    .unwrap()
            })
        })
        .collect();
    let puts: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(puts.iter().filter(|p| p.replaced.is_none()).count(), 1);
    let id = puts[0].record.id;
    assert!(puts.iter().all(|p| p.record.id == id));
    assert_eq!(store.media_count().unwrap(), 1);
    let last = store.by_key(Some("race"), "one/key").unwrap().unwrap();
    assert_eq!(crate::testing::blob_hashes(&store), vec![last.hash]);
    assert_sound(&store);
}

/// A crash after a replacement's record file was written and before the database had the new
/// version: the file names the new bytes, durable already, and the database the old record,
/// whose bytes are still there. The next start takes the new version whole, counts and all.
#[test]
fn a_replacement_cut_off_after_its_record_file_is_finished_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::start(dir.path(), Role::Server).unwrap();
    let old = store
        .put(keyed(&store, b"old bytes", None, "k"))
        .unwrap()
        .record;
    let shared = store.create(vec![new(&store, b"kept")]).unwrap().remove(0);
    // Steps 1 and 2 of a replacement by bytes another record uses, and by new bytes.
    let mut cut = Vec::new();
    for (bytes, key) in [(&b"kept"[..], "k"), (b"new bytes", "l")] {
        let target = if key == "k" {
            old.clone()
        } else {
            store
                .put(keyed(&store, b"l's old bytes", None, key))
                .unwrap()
                .record
        };
        let staged = crate::testing::staged(&store, bytes);
        let mut new = target.clone();
        new.hash = staged.hash;
        new.size = staged.size;
        let tasks = store.place_blobs(vec![staged]).unwrap();
        parallel::run_all(tasks, || Ok(())).unwrap();
        store.records.write(&new).unwrap();
        cut.push((target, new));
    }
    store.meta.flush().unwrap();
    drop(store);

    let store = Store::start(dir.path(), Role::Server).unwrap();
    assert!(store.started().rebuilt.is_none(), "{:?}", store.started());
    assert_eq!(store.started().settlement.edits_adopted, 2);
    for (before, after) in &cut {
        assert_eq!(store.get(before.id).unwrap().as_ref(), Some(after));
        assert_eq!(store.refcount(&before.hash).unwrap(), 0);
        assert!(!store.blob_path(&before.hash).exists());
    }
    assert_eq!(store.refcount(&shared.hash).unwrap(), 2);
    assert_sound(&store);
}

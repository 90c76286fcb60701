//! Helpers for the store's unit tests.

use super::*;

pub(crate) fn staged(store: &Store, bytes: &[u8]) -> StagedBlob {
    let mut w = store.blobs().stage().unwrap();
    w.write(bytes).unwrap();
    w.finish().unwrap()
}

pub(crate) fn new(store: &Store, bytes: &[u8]) -> NewMedia {
    NewMedia::new(
        staged(store, bytes),
        "a.txt".into(),
        None,
        MediaFields::default(),
    )
}

/// An upload of `bytes` named `a.txt` under `key` in `collection`.
pub(crate) fn keyed(store: &Store, bytes: &[u8], collection: Option<&str>, key: &str) -> NewMedia {
    let mut item = new(store, bytes);
    item.fields.collection = collection.map(str::to_owned);
    item.fields.key = Some(key.to_owned());
    item
}

/// The state a crash can leave mid-[`create`](Store::create): blob and record file under
/// their names, the record in sled and marked pending, nothing fsynced.
pub(crate) fn cut_off(store: &Store, bytes: &[u8]) -> MediaRecord {
    let item = new(store, bytes);
    let template = store
        .create(vec![new(store, b"template")])
        .unwrap()
        .remove(0);
    let id = store.new_id();
    let record = MediaRecord {
        id,
        hash: item.blob.hash,
        size: item.blob.size,
        key: Some(record::derived_key(id, &template.filename)),
        ..template
    };
    drop(
        store
            .place(vec![item.blob], std::slice::from_ref(&record))
            .unwrap(),
    );
    store.meta.insert_pending(&[&record], &[]).unwrap();
    store.meta.flush().unwrap();
    record
}

/// The addresses of the stored blobs, in the order the store lists them.
pub(crate) fn blob_hashes(store: &Store) -> Vec<ContentHash> {
    store
        .blobs()
        .list()
        .unwrap()
        .into_iter()
        .map(|l| l.hash)
        .collect()
}

//! The metadata store's own tests: counts, indexes, totals and listings against what the
//! records imply.

use super::*;
use crate::record::{now, Kind, Visibility, RECORD_SCHEMA};
use crate::{ListPage, ListQuery};

fn record(
    n: u64,
    hash: u8,
    collection: Option<&str>,
    tags: &[&str],
    visibility: Visibility,
) -> MediaRecord {
    MediaRecord {
        schema: RECORD_SCHEMA,
        id: MediaId(ulid::Ulid::from_parts(1_000 + n, n as u128)),
        hash: ContentHash([hash; 32]),
        size: 10,
        content_type: "image/png".into(),
        kind: Kind::Image,
        filename: format!("f{n}.png"),
        title: format!("title {n}"),
        description: String::new(),
        alt: String::new(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        collection: collection.map(str::to_owned),
        key: None,
        visibility,
        custom: Default::default(),
        legacy_path: None,
        owner: None,
        original_hash: None,
        md5: None,
        etag: None,
        stripped: None,
        duration: None,
        poster: None,
        width: None,
        height: None,
        created_at: now(),
        updated_at: now(),
    }
}

fn open() -> (tempfile::TempDir, MetaStore) {
    let dir = tempfile::tempdir().unwrap();
    let meta = MetaStore::open(&dir.path().join("meta"), 8 << 20).unwrap();
    (dir, meta)
}

/// The counters agree with a scan of the records, and `verify` finds nothing.
fn assert_totals(meta: &MetaStore) -> Totals {
    let records: Vec<MediaRecord> = meta.all().map(Result::unwrap).collect();
    let totals = meta.totals().unwrap();
    assert_eq!(totals, Totals::of(&records));
    assert_eq!(
        meta.derived_problems(&records).unwrap(),
        Vec::<String>::new()
    );
    totals
}

#[test]
fn totals_follow_inserts_dedup_edits_and_deletes() {
    let (_d, meta) = open();
    assert_eq!(assert_totals(&meta), Totals::default());
    let a = record(1, 7, None, &[], Visibility::Public);
    let mut b = record(2, 7, None, &[], Visibility::Private);
    b.size = a.size;
    let mut c = record(3, 8, Some("x"), &["t"], Visibility::Public);
    c.size = 25;
    c.kind = Kind::Video;
    // One transaction with a duplicate of its own first blob.
    meta.insert(&[a.clone(), b.clone()]).unwrap();
    let t = assert_totals(&meta);
    assert_eq!(
        (t.media, t.media_bytes, t.blobs, t.blob_bytes),
        (2, 20, 1, 10)
    );
    meta.insert_pending(&[&c], &[]).unwrap();
    let t = assert_totals(&meta);
    assert_eq!(
        (t.media, t.media_bytes, t.blobs, t.blob_bytes),
        (3, 45, 2, 35)
    );
    assert_eq!((t.kind(Kind::Image), t.kind(Kind::Video)), (2, 1));

    let mut edited = c.clone();
    edited.title = "new".into();
    edited.tags = vec![];
    meta.replace(&c, &edited).unwrap();
    assert_eq!(assert_totals(&meta), t, "an edit changes no total");
    let mut other_bytes = edited.clone();
    other_bytes.hash = ContentHash([9; 32]);
    assert!(
        meta.replace(&edited, &other_bytes).is_err(),
        "an edit cannot change the bytes that the counts go by"
    );
    let mut retyped = edited.clone();
    retyped.kind = Kind::Audio;
    meta.replace(&edited, &retyped).unwrap();
    let t = assert_totals(&meta);
    assert_eq!((t.kind(Kind::Video), t.kind(Kind::Audio)), (0, 1));

    // The first user of a shared blob goes: the blob stays.
    meta.delete(a.id).unwrap();
    let t = assert_totals(&meta);
    assert_eq!(
        (t.media, t.media_bytes, t.blobs, t.blob_bytes),
        (2, 35, 2, 35)
    );
    meta.delete(b.id).unwrap();
    meta.delete(retyped.id).unwrap();
    assert!(meta.delete(b.id).unwrap().is_none());
    assert_eq!(assert_totals(&meta), Totals::default());
    assert!(meta.counters.is_empty(), "zeros are no entries");
    assert!(
        meta.insert(&[a.clone(), a]).is_err(),
        "an aborted batch changes no total"
    );
    assert_eq!(assert_totals(&meta), Totals::default());
}

#[test]
fn totals_survive_reopening_and_a_database_without_them_is_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta");
    let records: Vec<MediaRecord> = (0..5)
        .map(|n| record(n, (n % 3) as u8, None, &[], Visibility::Public))
        .collect();
    let expected = Totals::of(&records);
    {
        let meta = MetaStore::open(&path, 8 << 20).unwrap();
        meta.insert(&records).unwrap();
        meta.flush().unwrap();
    }
    {
        let meta = MetaStore::open(&path, 8 << 20).unwrap();
        assert_eq!(meta.totals().unwrap(), expected);
        // As a Shoebox from before the counters left its database.
        meta.counters.clear().unwrap();
        meta.flush().unwrap();
    }
    let meta = MetaStore::open(&path, 8 << 20).unwrap();
    assert_eq!(meta.totals().unwrap(), expected);
    assert_totals(&meta);
}

#[test]
fn wrong_totals_are_found_and_rederived() {
    let (_d, meta) = open();
    let records = vec![
        record(1, 1, None, &[], Visibility::Public),
        record(2, 2, None, &[], Visibility::Public),
    ];
    meta.insert(&records).unwrap();
    meta.set_counter("blobs", 7);
    meta.set_counter("kind:video", 1);
    let problems = meta.derived_problems(&records).unwrap();
    assert_eq!(
        problems,
        vec![
            "counters: wrong value for blobs".to_owned(),
            "counters: stray entry kind:video".to_owned(),
        ]
    );
    meta.rederive(&records).unwrap();
    assert_eq!(assert_totals(&meta).blobs, 2);
}

fn ids(page: &ListPage) -> Vec<u64> {
    page.items
        .iter()
        .map(|r| r.id.0.timestamp_ms() - 1_000)
        .collect()
}

#[test]
fn counts_follow_inserts_and_deletes() {
    let (_d, meta) = open();
    let a = record(1, 7, None, &[], Visibility::Public);
    let b = record(2, 7, None, &[], Visibility::Private);
    meta.insert(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(meta.refcount(&a.hash).unwrap(), 2);
    assert_eq!(
        meta.representative(&a.hash).unwrap(),
        Some(a.id),
        "the public user is preferred"
    );
    assert_eq!(meta.delete(a.id).unwrap().map(|(_, n)| n), Some(1));
    assert_eq!(meta.representative(&a.hash).unwrap(), Some(b.id));
    assert_eq!(meta.delete(b.id).unwrap().map(|(_, n)| n), Some(0));
    assert_eq!(meta.refcount(&a.hash).unwrap(), 0);
    assert_eq!(meta.representative(&a.hash).unwrap(), None);
    assert!(meta.delete(b.id).unwrap().is_none());
    assert!(
        meta.insert(&[a.clone(), a]).is_err(),
        "a duplicate id aborts the whole batch"
    );
    assert_eq!(meta.media_count(), 0);
}

#[test]
fn lists_newest_first_through_indexes_with_cursors() {
    let (_d, meta) = open();
    for n in 0..10 {
        let coll = if n % 2 == 0 {
            Some("stories")
        } else {
            Some("other")
        };
        let vis = if n == 4 {
            Visibility::Private
        } else {
            Visibility::Public
        };
        meta.insert(&[record(n, n as u8, coll, &["t"], vis)])
            .unwrap();
    }
    let mut q = ListQuery {
        collection: Some("stories".into()),
        limit: 2,
        ..ListQuery::default()
    };
    let first = meta.list(&q).unwrap();
    assert_eq!(ids(&first), vec![8, 6]);
    q.before = first.next;
    let second = meta.list(&q).unwrap();
    assert_eq!(
        ids(&second),
        vec![2, 0],
        "private media are skipped without authority"
    );
    assert!(second.next.is_none(), "the last page says so");

    let all = meta
        .list(&ListQuery {
            include_private: true,
            limit: 100,
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(ids(&all), (0..10).rev().collect::<Vec<_>>());
    assert!(all.next.is_none());
}

#[test]
fn damaged_counts_and_indexes_are_found_and_rederived() {
    let (_d, meta) = open();
    let records = vec![
        record(1, 1, Some("a"), &["x"], Visibility::Public),
        record(2, 1, None, &[], Visibility::Private),
    ];
    meta.insert(&records).unwrap();
    assert!(meta.derived_problems(&records).unwrap().is_empty());
    meta.refs
        .insert(records[0].hash.as_bytes(), &5u64.to_be_bytes())
        .unwrap();
    meta.by_collection
        .remove(text_key("a", Some(records[0].id)))
        .unwrap();
    meta.by_tag
        .insert(text_key("ghost", Some(records[1].id)), &[])
        .unwrap();
    let problems = meta.derived_problems(&records).unwrap();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems
        .iter()
        .any(|p| p.starts_with("blob_refs: wrong value")));
    assert!(problems
        .iter()
        .any(|p| p.starts_with("idx_collection: missing")));
    assert!(problems.iter().any(|p| p.starts_with("idx_tag: stray")));
    meta.rederive(&records).unwrap();
    assert!(meta.derived_problems(&records).unwrap().is_empty());
    assert_eq!(meta.refcount(&records[0].hash).unwrap(), 2);
}

#[test]
fn updates_move_index_entries() {
    let (_d, meta) = open();
    let r = record(1, 1, Some("a"), &["x"], Visibility::Public);
    meta.insert(std::slice::from_ref(&r)).unwrap();
    let mut changed = r.clone();
    changed.collection = Some("b".into());
    changed.tags = vec!["y".into()];
    changed.visibility = Visibility::Private;
    meta.replace(&r, &changed).unwrap();
    assert!(
        meta.replace(&r, &changed).is_err(),
        "a stale edit is refused"
    );
    let q = |c: &str| ListQuery {
        collection: Some(c.into()),
        include_private: true,
        limit: 10,
        ..ListQuery::default()
    };
    assert!(meta.list(&q("a")).unwrap().items.is_empty());
    assert_eq!(meta.list(&q("b")).unwrap().items.len(), 1);
    let by_tag = ListQuery {
        tag: Some("x".into()),
        include_private: true,
        limit: 10,
        ..ListQuery::default()
    };
    assert!(meta.list(&by_tag).unwrap().items.is_empty());
    let private = meta
        .get(meta.representative(&r.hash).unwrap().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(private.visibility, Visibility::Private);
    let mut ghost = r.clone();
    ghost.id = MediaId(ulid::Ulid::nil());
    assert!(matches!(
        meta.replace(&ghost, &ghost),
        Err(StoreError::NotFound)
    ));
}

/// A page that ends at its scan bound among records its caller may not see continues
/// from a point in time, never from one of those records' ids; every visible record is
/// listed once, whatever the bound, including among records of one millisecond.
#[test]
fn a_cursor_never_names_a_record_its_caller_cannot_see() {
    let (_d, meta) = open();
    let mut all = Vec::new();
    for n in 0..24u64 {
        // Three records a millisecond, so pages also end inside a millisecond.
        let mut r = record(n, n as u8, Some("c"), &[], Visibility::Private);
        r.id = MediaId(ulid::Ulid::from_parts(1_000 + n / 3, u128::from(n) * 7919));
        if n % 5 == 0 {
            r.visibility = Visibility::Public;
        }
        all.push(r);
    }
    meta.insert(&all).unwrap();
    let private: Vec<String> = all
        .iter()
        .filter(|r| !r.is_public())
        .map(|r| r.id.to_string())
        .collect();
    let mut expected: Vec<MediaId> = all.iter().filter(|r| r.is_public()).map(|r| r.id).collect();
    expected.sort_by(|a, b| b.cmp(a));
    for by_collection in [false, true] {
        for max_scan in 1..6 {
            let mut q = ListQuery {
                collection: by_collection.then(|| "c".to_owned()),
                limit: 2,
                ..ListQuery::default()
            };
            let mut seen = Vec::new();
            for _ in 0..100 {
                let page = meta.list_scanning(&q, max_scan).unwrap();
                seen.extend(page.items.iter().map(|r| r.id));
                let Some(next) = page.next else { break };
                let text = next.to_string();
                assert!(
                    !private.iter().any(|p| text.contains(p.as_str())),
                    "{text} names a private record"
                );
                q.before = Some(text.parse().unwrap());
            }
            assert_eq!(
                seen, expected,
                "bound {max_scan}, by collection {by_collection}"
            );
        }
    }
}

/// Each collection is one seek for a caller who sees everything; for others, its records up
/// to the first they see, within the bound, past which the rest are left out, never guessed.
#[test]
fn collections_in_use_seek_past_each_collection_and_read_within_the_bound() {
    let (_dir, meta) = open();
    let mut all = Vec::new();
    // "a": 5 private then a public (the newest); "b": private only; "c": public.
    for n in 0..6 {
        let vis = if n == 5 {
            Visibility::Public
        } else {
            Visibility::Private
        };
        all.push(record(n, 1, Some("a"), &[], vis));
    }
    for n in 6..10 {
        all.push(record(n, 1, Some("b"), &[], Visibility::Private));
    }
    all.push(record(10, 1, Some("c"), &[], Visibility::Public));
    all.push(record(11, 1, None, &[], Visibility::Public));
    meta.insert(&all).unwrap();

    let every = ListQuery {
        include_private: true,
        ..ListQuery::default()
    };
    // A bound of 0 reads no record: a caller who sees everything needs none.
    assert_eq!(
        meta.collections_scanning(&every, 0).unwrap(),
        ["a", "b", "c"]
    );
    let tagged = ListQuery {
        include_private: true,
        tag: Some("t".into()),
        ..ListQuery::default()
    };
    assert!(meta.collections_in_use(&tagged).unwrap().is_empty());

    let anonymous = ListQuery::default();
    assert_eq!(meta.collections_in_use(&anonymous).unwrap(), ["a", "c"]);
    // "a" costs one read (its newest record is public), "b" four, "c" one.
    assert_eq!(
        meta.collections_scanning(&anonymous, 6).unwrap(),
        ["a", "c"]
    );
    assert_eq!(meta.collections_scanning(&anonymous, 5).unwrap(), ["a"]);
    assert!(meta.collections_scanning(&anonymous, 0).unwrap().is_empty());
    let only_b = ListQuery {
        collection: Some("b".into()),
        include_private: true,
        ..ListQuery::default()
    };
    assert_eq!(meta.collections_in_use(&only_b).unwrap(), ["b"]);
    let only_none = ListQuery {
        collection: Some("bb".into()),
        include_private: true,
        ..ListQuery::default()
    };
    assert!(meta.collections_in_use(&only_none).unwrap().is_empty());
}

//! Pages that stop at their scan bound. sled's listing is written down here as a model (its
//! walk, step by step, over records in memory); the model is checked against sled, and
//! PostgreSQL against the model at small bounds, page after page, cursors included.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{fresh, record};
use crate::meta::MetaStore;
use crate::pg::list::MAX_SCAN;
use crate::record::{Kind, MediaId, MediaRecord, Visibility};
use crate::{Cursor, ListQuery};

/// sled's `list_scanning`, over records in memory.
fn model(
    records: &[MediaRecord],
    q: &ListQuery,
    max_scan: usize,
) -> (Vec<MediaId>, Option<Cursor>) {
    let mut walk: Vec<&MediaRecord> = records
        .iter()
        .filter(|r| match (&q.collection, &q.tag, q.kind) {
            (Some(c), _, _) => r.collection.as_ref() == Some(c),
            (None, Some(t), _) => r.tags.contains(t),
            (None, None, Some(k)) => r.kind == k,
            (None, None, None) => true,
        })
        .collect();
    walk.sort_by_key(|r| r.id);
    let after_ms = |ms: u64| MediaId(ulid::Ulid::from_parts(ms + 1, 0));
    let (end, carried, carried_ms) = match q.before {
        Some(Cursor::After(id)) => (Some(id), 0, 0),
        Some(Cursor::At { ms, skip }) => (Some(after_ms(ms)), skip, ms),
        None => (None, 0, 0),
    };
    let resume = |id: MediaId| {
        let ms = id.0.timestamp_ms();
        let passed = walk
            .iter()
            .filter(|r| r.id >= id && r.id < after_ms(ms))
            .count();
        Cursor::At {
            ms,
            skip: passed as u32,
        }
    };
    let mut items = Vec::new();
    let (mut to_skip, mut scanned) = (carried, 0);
    let mut last: Option<(MediaId, bool)> = None;
    for r in walk.iter().rev().filter(|r| end.is_none_or(|e| r.id < e)) {
        if to_skip > 0 && r.id.0.timestamp_ms() == carried_ms {
            to_skip -= 1;
            continue;
        }
        if items.len() == q.limit {
            return (items, last.map(|(id, _)| Cursor::After(id)));
        }
        if scanned == max_scan {
            let next = match last {
                Some((id, true)) => Some(Cursor::After(id)),
                Some((id, false)) => Some(resume(id)),
                None => None,
            };
            return (items, next);
        }
        scanned += 1;
        let seen = q.matches(r);
        if seen {
            items.push(r.id);
        }
        last = Some((r.id, seen));
    }
    (items, None)
}

fn pick<T: Clone>(rng: &mut StdRng, from: &[T]) -> T {
    from[rng.gen_range(0..from.len())].clone()
}

fn random_records(rng: &mut StdRng) -> Vec<MediaRecord> {
    (0..50u128)
        .map(|n| {
            let mut r = record(rng.gen_range(1..16), n, (n % 4) as u8);
            r.collection = pick(rng, &[None, Some("a".to_owned()), Some("b".to_owned())]);
            r.tags = pick(
                rng,
                &[
                    vec![],
                    vec!["x".to_owned()],
                    vec!["x".to_owned(), "y".to_owned()],
                ],
            );
            r.kind = pick(rng, &[Kind::Image, Kind::Video]);
            r.visibility = pick(rng, &[Visibility::Public, Visibility::Private]);
            r.owner = pick(rng, &[None, Some("o".to_owned())]);
            r.title = pick(rng, &["Red".to_owned(), "blue".to_owned()]);
            r
        })
        .collect()
}

fn random_query(rng: &mut StdRng) -> ListQuery {
    ListQuery {
        collection: pick(
            rng,
            &[None, None, Some("a".to_owned()), Some("b".to_owned())],
        ),
        tag: pick(
            rng,
            &[None, None, Some("x".to_owned()), Some("y".to_owned())],
        ),
        kind: pick(rng, &[None, None, Some(Kind::Image)]),
        q: pick(rng, &[None, None, Some("re".to_owned())]),
        include_private: rng.gen_bool(0.3),
        owner: pick(rng, &[None, Some("o".to_owned())]),
        limit: rng.gen_range(0..5),
        before: None,
    }
}

#[test]
fn pages_stop_at_their_bound_as_sleds_do() {
    let Some(pg) = fresh(2) else { return };
    let dir = tempfile::tempdir().unwrap();
    let sled = MetaStore::open(&dir.path().join("meta"), 8 << 20).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let records = random_records(&mut rng);
    sled.insert(&records).unwrap();
    pg.insert(&records.iter().collect::<Vec<_>>()).unwrap();
    let mut pages = 0;
    for round in 0..100 {
        let mut q = random_query(&mut rng);
        let max_scan = rng.gen_range(0..8);
        let mut whole = q.clone();
        for page in 0..100 {
            let (ids, next) = model(&records, &q, max_scan);
            let got = pg.list_scanning(&q, max_scan).unwrap();
            let got_ids: Vec<MediaId> = got.items.iter().map(|r| r.id).collect();
            assert_eq!(
                (&got_ids, got.next),
                (&ids, next),
                "round {round} page {page} {q:?}"
            );
            pages += 1;
            // The model at sled's own bound is sled.
            let (ids, next) = model(&records, &whole, MAX_SCAN);
            let sleds = sled.list(&whole).unwrap();
            let sled_ids: Vec<MediaId> = sleds.items.iter().map(|r| r.id).collect();
            assert_eq!((sled_ids, sleds.next), (ids, next), "sled, round {round}");
            whole.before = sleds.next;
            match got.next {
                Some(next) => q.before = Some(next),
                None => break,
            }
        }
    }
    eprintln!("{pages} pages compared");
}

/// Each collection is one seek for a caller who sees everything; for others, its records up
/// to the first they see, within the bound (the sled test of the same name, on PostgreSQL).
#[test]
fn collections_in_use_read_within_the_bound_as_sleds_do() {
    let Some(pg) = fresh(1) else { return };
    let mut all = Vec::new();
    // "a": 5 private then a public (the newest); "b": private only; "c": public.
    for n in 0..12u64 {
        let mut r = record(1_000 + n, u128::from(n), 1);
        r.collection = match n {
            0..=5 => Some("a".into()),
            6..=9 => Some("b".into()),
            10 => Some("c".into()),
            _ => None,
        };
        if matches!(n, 0..=4 | 6..=9) {
            r.visibility = Visibility::Private;
        }
        all.push(r);
    }
    pg.insert(&all.iter().collect::<Vec<_>>()).unwrap();
    let every = ListQuery {
        include_private: true,
        ..ListQuery::default()
    };
    assert_eq!(pg.collections_scanning(&every, 0).unwrap(), ["a", "b", "c"]);
    let tagged = ListQuery {
        include_private: true,
        tag: Some("t".into()),
        ..ListQuery::default()
    };
    assert!(pg.collections_in_use(&tagged).unwrap().is_empty());
    let anonymous = ListQuery::default();
    assert_eq!(pg.collections_in_use(&anonymous).unwrap(), ["a", "c"]);
    // "a" costs one read (its newest record is public), "b" four, "c" one.
    assert_eq!(pg.collections_scanning(&anonymous, 6).unwrap(), ["a", "c"]);
    assert_eq!(pg.collections_scanning(&anonymous, 5).unwrap(), ["a"]);
    assert!(pg.collections_scanning(&anonymous, 0).unwrap().is_empty());
    let only_b = ListQuery {
        collection: Some("b".into()),
        include_private: true,
        ..ListQuery::default()
    };
    assert_eq!(pg.collections_in_use(&only_b).unwrap(), ["b"]);
    let only_none = ListQuery {
        collection: Some("bb".into()),
        include_private: true,
        ..ListQuery::default()
    };
    assert!(pg.collections_in_use(&only_none).unwrap().is_empty());
}

//! The same scenario against sled and PostgreSQL, every answer written down: both
//! transcripts must be equal, line by line.

use std::fmt::Debug;

use super::{fresh, record};
use crate::backend::MetaBackend;
use crate::meta::MetaStore;
use crate::record::{Kind, MediaId, MediaRecord, Visibility};
use crate::{ContentHash, Cursor, KeysFrom, ListQuery};

#[derive(Default)]
struct Transcript(Vec<String>);

impl Transcript {
    fn note(&mut self, what: impl AsRef<str>, answer: impl Debug) {
        self.0.push(format!("{}: {answer:?}", what.as_ref()));
    }
}

fn keyed(mut r: MediaRecord, collection: Option<&str>, key: Option<&str>) -> MediaRecord {
    r.collection = collection.map(str::to_owned);
    r.key = key.map(str::to_owned);
    r
}

/// Records of every kind, collection, visibility and owner; keys whose byte order differs
/// from a locale's; two blobs shared; ids that share a millisecond.
fn fixtures() -> Vec<MediaRecord> {
    let mut p1 = keyed(record(1_000, 1, 1), Some("photos"), Some("a/b/1"));
    p1.tags = vec!["sun".into(), "beach".into()];
    p1.title = "Sunset One".into();
    p1.description = "Warm\nevening".into();
    p1.filename = "IMG_1.JPG".into();
    let mut p2 = keyed(record(1_000, 2, 1), Some("photos"), Some("a/b/2"));
    p2.tags = vec!["sun".into()];
    p2.visibility = Visibility::Private;
    p2.owner = Some("alice".into());
    let mut p3 = keyed(record(1_001, 3, 2), Some("photos"), Some("a/c"));
    p3.kind = Kind::Video;
    p3.visibility = Visibility::Private;
    p3.owner = Some("bob".into());
    let mut p4 = keyed(record(1_002, 4, 3), Some("photos"), Some("A"));
    p4.tags = vec!["beach".into()];
    let mut p5 = keyed(record(1_002, 9, 4), Some("photos"), Some("é"));
    p5.kind = Kind::Audio;
    let mut p6 = keyed(record(1_003, 6, 4), Some("photos"), Some("😀"));
    p6.kind = Kind::Audio;
    p6.visibility = Visibility::Private;
    let mut d1 = keyed(record(1_004, 7, 5), Some("docs"), Some("a/b/1"));
    d1.kind = Kind::Document;
    let mut d2 = keyed(record(1_005, 8, 6), Some("docs"), Some("ß"));
    d2.kind = Kind::Document;
    d2.visibility = Visibility::Private;
    d2.owner = Some("alice".into());
    let mut n1 = record(1_006, 10, 7);
    n1.legacy_path = Some("/old/a.png".into());
    n1.tags = vec!["sun".into()];
    let mut n2 = keyed(record(1_006, 11, 7), None, Some("Z"));
    n2.legacy_path = Some("/old/b.png".into());
    n2.visibility = Visibility::Private;
    let mut n3 = record(1_007, 12, 8);
    n3.kind = Kind::Other;
    // 0.30000000000000004: a float whose shortest form is long, through JSONB.
    n3.duration = Some(0.1 + 0.2);
    let o1 = keyed(record(1_008, 13, 2), Some("other"), Some("b"));
    vec![p1, p2, p3, p4, p5, p6, d1, d2, n1, n2, n3, o1]
}

fn queries() -> Vec<(String, ListQuery)> {
    let filters: Vec<(&str, ListQuery)> = vec![
        ("all", ListQuery::default()),
        (
            "photos",
            ListQuery {
                collection: Some("photos".into()),
                ..Default::default()
            },
        ),
        (
            "docs",
            ListQuery {
                collection: Some("docs".into()),
                ..Default::default()
            },
        ),
        (
            "no such",
            ListQuery {
                collection: Some("nope".into()),
                ..Default::default()
            },
        ),
        (
            "nul collection",
            ListQuery {
                collection: Some("a\0".into()),
                ..Default::default()
            },
        ),
        (
            "sun",
            ListQuery {
                tag: Some("sun".into()),
                ..Default::default()
            },
        ),
        (
            "nul tag",
            ListQuery {
                tag: Some("\0".into()),
                ..Default::default()
            },
        ),
        (
            "video",
            ListQuery {
                kind: Some(Kind::Video),
                ..Default::default()
            },
        ),
        (
            "audio",
            ListQuery {
                kind: Some(Kind::Audio),
                ..Default::default()
            },
        ),
        (
            "q title",
            ListQuery {
                q: Some("title 1".into()),
                ..Default::default()
            },
        ),
        (
            "q across",
            ListQuery {
                q: Some("warm\nevening".into()),
                ..Default::default()
            },
        ),
        (
            "q spanning",
            ListQuery {
                q: Some("one\nwarm".into()),
                ..Default::default()
            },
        ),
        (
            "q name",
            ListQuery {
                q: Some(".jpg".into()),
                ..Default::default()
            },
        ),
        (
            "q empty",
            ListQuery {
                q: Some(String::new()),
                ..Default::default()
            },
        ),
        (
            "q nul",
            ListQuery {
                q: Some("x\0".into()),
                ..Default::default()
            },
        ),
        (
            "sun audio",
            ListQuery {
                tag: Some("sun".into()),
                kind: Some(Kind::Image),
                ..Default::default()
            },
        ),
        (
            "photos beach",
            ListQuery {
                collection: Some("photos".into()),
                tag: Some("beach".into()),
                ..Default::default()
            },
        ),
        (
            "photos q",
            ListQuery {
                collection: Some("photos".into()),
                q: Some("title".into()),
                ..Default::default()
            },
        ),
    ];
    let mut out = Vec::new();
    for (name, filter) in filters {
        for (who, include_private, owner) in [
            ("anyone", false, None),
            ("alice", false, Some("alice")),
            ("nul owner", false, Some("al\0")),
            ("admin", true, None),
        ] {
            for limit in [0, 1, 3, 100] {
                let q = ListQuery {
                    include_private,
                    owner: owner.map(str::to_owned),
                    limit,
                    ..filter.clone()
                };
                out.push((format!("{name} / {who} / {limit}"), q));
            }
        }
    }
    out
}

/// Every read, written down.
fn observe(meta: &dyn MetaBackend, t: &mut Transcript, phase: &str) {
    t.note(format!("{phase} totals"), meta.totals());
    let all: Vec<_> = meta.all().map(|r| r.map(|r| r.id)).collect();
    t.note(format!("{phase} all"), all);
    for r in fixtures() {
        t.note(format!("{phase} get {}", r.id), meta.get(r.id));
        t.note(format!("{phase} shared {}", r.id), meta.get_shared(r.id));
    }
    t.note(format!("{phase} collections"), meta.collections());
    for c in [None, Some("photos"), Some("docs"), Some("nope"), Some("\0")] {
        t.note(format!("{phase} empty {c:?}"), meta.collection_is_empty(c));
    }
    for h in 0..10u8 {
        let hash = ContentHash([h; 32]);
        t.note(format!("{phase} refcount {h}"), meta.refcount(&hash));
        t.note(
            format!("{phase} representative {h}"),
            meta.representative(&hash),
        );
    }
    for p in ["/old/a.png", "/old/b.png", "/old/c.png", "\0"] {
        t.note(format!("{phase} legacy {p:?}"), meta.by_legacy_path(p));
    }
    for bucket in [None, Some("photos"), Some("docs"), Some("nope"), Some("\0")] {
        for key in ["a/b/1", "A", "é", "Z", "b", "", "a\0"] {
            t.note(
                format!("{phase} by_key {bucket:?} {key:?}"),
                meta.by_key(bucket, key),
            );
        }
        for prefix in ["", "a", "a/", "a/b/", "é", "\u{10FFFF}", "\0"] {
            for from in [
                KeysFrom::Start,
                KeysFrom::After("a/b"),
                KeysFrom::After("0"),
                KeysFrom::After("a/b/1"),
                KeysFrom::After("a\0x"),
                KeysFrom::Past("a/"),
                KeysFrom::Past("a/b/"),
                KeysFrom::Past(""),
                KeysFrom::Past("Z"),
                KeysFrom::Past("a\0"),
            ] {
                for limit in [0, 2, 100] {
                    t.note(
                        format!("{phase} keys {bucket:?} {prefix:?} {from:?} {limit}"),
                        meta.keys(bucket, prefix, from, limit),
                    );
                }
            }
        }
    }
    for (name, q) in queries() {
        t.note(
            format!("{phase} in use {name}"),
            meta.collections_in_use(&q),
        );
        let mut q = q;
        for page in 0..20 {
            let answer = meta.list(&q);
            let next = answer.as_ref().ok().and_then(|p| p.next);
            t.note(format!("{phase} list {name} page {page}"), answer);
            let Some(next) = next else { break };
            q.before = Some(next);
        }
    }
    // Cursors at points in time, as a page that stopped at its bound gives them.
    for (ms, skip) in [(1_000, 0), (1_000, 1), (1_002, 1), (1_006, 2), (1_009, 0)] {
        let q = ListQuery {
            include_private: true,
            limit: 2,
            before: Some(Cursor::At { ms, skip }),
            ..Default::default()
        };
        t.note(format!("{phase} list at {ms}.{skip}"), meta.list(&q));
    }
}

fn scenario(meta: &dyn MetaBackend) -> Vec<String> {
    let mut t = Transcript::default();
    let records = fixtures();
    let (batch, rest) = records.split_at(4);
    t.note(
        "insert batch",
        meta.insert_pending(&batch.iter().collect::<Vec<_>>(), &[]),
    );
    for r in rest {
        t.note(
            format!("insert {}", r.id),
            meta.insert_pending(&[r], &[r.id]),
        );
    }
    observe(meta, &mut t, "inserted");

    // Refusals that change nothing.
    let taken = keyed(record(2_000, 1, 9), Some("photos"), Some("a/b/1"));
    t.note("insert a taken key", meta.insert_pending(&[&taken], &[]));
    let fine = record(2_001, 1, 9);
    t.note(
        "insert a known id",
        meta.insert_pending(&[&fine, &records[0]], &[]),
    );
    t.note("refused totals", meta.totals());
    t.note("refused get", meta.get(fine.id));

    // Edits.
    let [p1, _, p3, p4, _, p6, _, _, n1, _, n3, _] = &records[..] else {
        unreachable!()
    };
    let mut moved = p4.clone();
    moved.title = "Moved".into();
    moved.tags = vec!["new".into()];
    moved.collection = Some("docs".into());
    moved.visibility = Visibility::Private;
    t.note("edit", meta.replace(p4, &moved));
    t.note("stale edit", meta.replace(p4, &moved));
    let mut rehashed = moved.clone();
    rehashed.hash = ContentHash([9; 32]);
    t.note("edit of the bytes", meta.replace(&moved, &rehashed));
    let ghost = record(3_000, 1, 1);
    t.note("edit of nothing", meta.replace(&ghost, &ghost));
    let mut clash = p1.clone();
    clash.collection = Some("docs".into());
    t.note("edit onto a taken key", meta.replace(p1, &clash));
    let mut renamed = n1.clone();
    renamed.filename = "renamed.png".into();
    t.note("edit of a derived key", meta.replace(n1, &renamed));
    observe(meta, &mut t, "edited");

    // New bytes.
    let mut p3b = p3.clone();
    p3b.hash = ContentHash([9; 32]);
    p3b.size = 109;
    t.note("replace content", meta.replace_content(p3, &p3b));
    t.note("stale replace content", meta.replace_content(p3, &p3b));
    let mut n3b = n3.clone();
    n3b.title = "same bytes".into();
    t.note(
        "replace with the same bytes",
        meta.replace_content(n3, &n3b),
    );
    let mut p6b = p6.clone();
    p6b.hash = p1.hash;
    p6b.size = p1.size;
    t.note("replace with shared bytes", meta.replace_content(p6, &p6b));
    t.note("replace nothing", meta.replace_content(&ghost, &ghost));
    let mut other_id = p3b.clone();
    other_id.id = MediaId(ulid::Ulid::from_parts(5, 5));
    t.note(
        "replace with another id",
        meta.replace_content(&p3b, &other_id),
    );
    observe(meta, &mut t, "replaced");

    // Deletes.
    for r in &records {
        t.note(format!("delete {}", r.id), meta.delete(r.id));
        t.note(format!("deleted totals {}", r.id), meta.totals());
    }
    t.note("delete again", meta.delete(records[0].id));
    observe(meta, &mut t, "deleted");
    t.0
}

#[test]
fn postgres_answers_as_sled_does() {
    let Some(pg) = fresh(4) else { return };
    let dir = tempfile::tempdir().unwrap();
    let sled = MetaStore::open(&dir.path().join("meta"), 8 << 20).unwrap();
    let expected = scenario(&sled);
    let actual = scenario(&pg);
    assert!(expected.len() > 1_000, "{} answers", expected.len());
    for (e, a) in expected.iter().zip(&actual) {
        assert_eq!(a, e, "PostgreSQL (left) differs from sled (right)");
    }
    assert_eq!(actual.len(), expected.len());
    // The one-query form of the representative names the same record.
    for h in 0..10u8 {
        let hash = ContentHash([h; 32]);
        let two_steps = pg
            .representative(&hash)
            .unwrap()
            .and_then(|id| pg.get(id).unwrap());
        assert_eq!(pg.representative_record(&hash).unwrap(), two_steps, "{h}");
    }
}

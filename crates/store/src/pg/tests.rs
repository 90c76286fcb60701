//! PostgreSQL's own tests, against a real server from the test kit (`shoebox_testkit`): its
//! schema, its errors, its counts under concurrent writers, and its recovery after the server
//! goes away. That it answers as sled does is in `tests/conformance.rs`; that its pages stop at
//! their bound as sled's do, in `tests/paging.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use shoebox_testkit::Postgres;

use super::*;
use crate::record::{Kind, Visibility, RECORD_SCHEMA};

mod conformance;
mod paging;

/// The server this module's tests share, started by the first that asks: `None` until then,
/// `Some(None)` when PostgreSQL is missing. A static is never dropped, so it is stopped, and
/// its directory removed, at exit.
static SHARED: Mutex<Option<Option<Postgres>>> = Mutex::new(None);

/// The shared server, started if it is not yet; a test that panicked while holding it has
/// not broken it.
fn shared() -> MutexGuard<'static, Option<Option<Postgres>>> {
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if shared.is_none() {
        let server = Postgres::start();
        if server.is_some() {
            extern "C" fn stop_shared() {
                drop(SHARED.lock().unwrap_or_else(PoisonError::into_inner).take());
            }
            // SAFETY: registers a plain function with no arguments to run at exit.
            unsafe { libc::atexit(stop_shared) };
        }
        *shared = Some(server);
    }
    shared
}

/// A new, empty database on the shared server: its name and its URL; `None` when PostgreSQL
/// is missing.
fn database() -> Option<(String, String)> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let shared = shared();
    let server = shared.as_ref().and_then(Option::as_ref)?;
    let name = format!("t{}", N.fetch_add(1, Ordering::Relaxed));
    let url = server.database(&name);
    Some((name, url))
}

/// The first column of the first row of a query in database `db` of the shared server, as a
/// number.
fn number(db: &str, sql: &str) -> i64 {
    let answer = psql(db, sql);
    let first = answer.lines().next().and_then(|row| row.split('|').next());
    first
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{sql:?} answered {answer:?}, not a number"))
}

/// Runs SQL in database `db` of the shared server; what psql printed.
fn psql(db: &str, sql: &str) -> String {
    let shared = shared();
    let server = shared.as_ref().and_then(Option::as_ref);
    server.expect("the shared server runs").psql(db, sql)
}

/// A public image outside any collection, with id time `ms`, of the blob `hash`; its size
/// follows from its hash, as a blob's does, and its times from its id.
pub(super) fn record(ms: u64, n: u128, hash: u8) -> MediaRecord {
    let at = time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms as i64);
    MediaRecord {
        schema: RECORD_SCHEMA,
        id: MediaId(ulid::Ulid::from_parts(ms, n)),
        hash: ContentHash([hash; 32]),
        size: 100 + u64::from(hash),
        content_type: "image/png".into(),
        kind: Kind::Image,
        filename: format!("f{n}.png"),
        title: format!("Title {n}"),
        description: String::new(),
        alt: String::new(),
        tags: Vec::new(),
        collection: None,
        key: None,
        visibility: Visibility::Public,
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
        created_at: at,
        updated_at: at,
    }
}

/// A fresh database on the shared server, connected; `None` when PostgreSQL is missing.
pub(super) fn fresh(pool: usize) -> Option<PgMeta> {
    let (_, url) = database()?;
    Some(PgMeta::connect(&url, pool).expect("connect"))
}

#[test]
fn instances_starting_together_apply_the_schema_once() {
    let Some((db, url)) = database() else {
        return;
    };
    let start = Arc::new(Barrier::new(2));
    let connecting: Vec<_> = (0..2)
        .map(|_| {
            let (url, start) = (url.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                PgMeta::connect(&url, 2).map(drop)
            })
        })
        .collect();
    for c in connecting {
        c.join().unwrap().unwrap();
    }
    let latest = i64::from(schema::latest());
    let sql = "SELECT count(*) FROM shoebox_schema_migrations";
    assert_eq!(number(&db, sql), latest);
    // Once more, with the schema in place: nothing to do.
    PgMeta::connect(&url, 1).unwrap();
    assert_eq!(number(&db, sql), latest);

    // A database a newer Shoebox has migrated is refused, not written to.
    psql(
        &db,
        "INSERT INTO shoebox_schema_migrations (version) VALUES (999)",
    );
    match PgMeta::connect(&url, 1) {
        Err(StoreError::Format(m)) => assert!(m.contains("999"), "{m}"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}

/// The calls block their caller but never `block_on` its thread: they work from inside an
/// async runtime (an actix worker's), and so does dropping the `PgMeta`.
#[test]
fn calls_work_from_inside_an_async_runtime() {
    let Some(pg) = fresh(1) else { return };
    let outer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    outer.block_on(async move {
        pg.insert(&[&record(1, 1, 1)]).unwrap();
        assert_eq!(pg.totals().unwrap().media, 1);
        drop(pg);
    });
}

#[test]
fn a_taken_key_is_refused_and_changes_nothing() {
    let Some(pg) = fresh(2) else { return };
    let mut a = record(1, 1, 1);
    a.collection = Some("c".into());
    a.key = Some("k".into());
    pg.insert(&[&a]).unwrap();
    let mut b = record(2, 2, 2);
    b.collection = Some("c".into());
    b.key = Some("k".into());
    let c = record(3, 3, 3);
    match pg.insert(&[&c, &b]) {
        Err(StoreError::KeyTaken { collection, key }) => {
            assert_eq!((collection.as_deref(), key.as_str()), (Some("c"), "k"));
        }
        other => panic!("expected KeyTaken, got {other:?}"),
    }
    assert_eq!(pg.totals().unwrap().media, 1, "the whole batch rolled back");
    assert_eq!(pg.refcount(&c.hash).unwrap(), 0);
    // The same key outside the collection is another bucket's.
    b.collection = None;
    pg.insert(&[&b]).unwrap();
    assert_eq!(pg.by_key(None, "k").unwrap(), Some(b.id));
}

/// PostgreSQL's text holds no NUL: where sled would store one, in `custom`, the record is
/// refused as invalid rather than failing as the database's fault.
#[test]
fn a_nul_in_custom_is_refused_as_invalid() {
    let Some(pg) = fresh(1) else { return };
    let mut r = record(1, 1, 1);
    r.custom.insert("a".into(), "x\0y".into());
    assert!(matches!(
        pg.insert(&[&r]),
        Err(StoreError::Invalid {
            field: "custom",
            ..
        })
    ));
    assert_eq!(pg.totals().unwrap(), Totals::default());
}

/// Threads inserting and deleting records of three shared blobs through one pool: every
/// count ends equal to the records left, and the totals to what they imply.
#[test]
fn counts_stay_right_under_concurrent_writers() {
    let Some(pg) = fresh(8) else { return };
    let pg = Arc::new(pg);
    const THREADS: u128 = 8;
    const OPS: u128 = 200;
    let started = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let pg = pg.clone();
            std::thread::spawn(move || {
                let mut live: Vec<MediaRecord> = Vec::new();
                for op in 0..OPS {
                    let n = t * OPS + op;
                    let roll = rand::random::<u8>() % 10;
                    if roll < 4 && !live.is_empty() {
                        let gone = live.swap_remove(rand::random::<usize>() % live.len());
                        let (record, _) = pg.delete(gone.id).unwrap().unwrap();
                        assert_eq!(record, gone);
                    } else if roll < 6 {
                        // Two blobs at once, in either order.
                        let a = record(1_000 + n as u64, n, (n % 3) as u8);
                        let b = record(1_000 + n as u64, n + 1_000_000, ((n + 1) % 3) as u8);
                        pg.insert(&[&a, &b]).unwrap();
                        live.extend([a, b]);
                    } else {
                        let r = record(1_000 + n as u64, n, (n % 3) as u8);
                        pg.insert(&[&r]).unwrap();
                        live.push(r);
                    }
                }
                live
            })
        })
        .collect();
    let live: Vec<MediaRecord> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    eprintln!(
        "{} operations by {THREADS} threads in {:?}",
        THREADS * OPS,
        started.elapsed()
    );
    for hash in 0..3u8 {
        let hash = ContentHash([hash; 32]);
        let users = live.iter().filter(|r| r.hash == hash).count() as u64;
        assert_eq!(pg.refcount(&hash).unwrap(), users);
    }
    assert_eq!(pg.totals().unwrap(), Totals::of(&live));
    assert_eq!(pg.all().count(), live.len());
}

/// The server is killed: calls fail at once as unavailable; it comes back: the same
/// `PgMeta` works again, its pool having replaced its broken connections.
#[test]
fn calls_fail_fast_while_the_server_is_down_and_recover_after() {
    let Some(mut server) = Postgres::start() else {
        return;
    };
    let url = server.database("shoebox");
    let pg = PgMeta::connect(&url, 4).unwrap();
    let r = record(1, 1, 1);
    pg.insert(&[&r]).unwrap();
    assert_eq!(pg.pool_status().0, 1);

    server.kill();
    for attempt in 0..3 {
        let started = Instant::now();
        match pg.get(r.id) {
            Err(e @ StoreError::Unavailable { .. }) => {
                assert!(
                    e.to_string().starts_with("the database is unavailable: "),
                    "{e}"
                );
            }
            other => panic!("attempt {attempt}: expected Unavailable, got {other:?}"),
        }
        assert!(started.elapsed() < CONNECT_TIMEOUT + Duration::from_secs(1));
    }
    assert!(matches!(
        pg.insert(&[&record(2, 2, 2)]),
        Err(StoreError::Unavailable { .. })
    ));

    server.restart();
    assert_eq!(pg.get(r.id).unwrap(), Some(r.clone()));
    pg.insert(&[&record(3, 3, 3)]).unwrap();
    assert_eq!(pg.totals().unwrap().media, 2);
}

/// What the totals' aggregates cost with 10,000 records (measured, and bounded loosely).
#[test]
fn totals_by_aggregate_stay_fast_at_ten_thousand_records() {
    let Some(pg) = fresh(2) else { return };
    let records: Vec<MediaRecord> = (0..10_000u64)
        .map(|n| {
            let mut r = record(1_000 + n, u128::from(n), (n % 97) as u8);
            r.kind = Kind::ALL[(n % 5) as usize];
            r
        })
        .collect();
    let started = Instant::now();
    for batch in records.chunks(1_000) {
        pg.insert(&batch.iter().collect::<Vec<_>>()).unwrap();
    }
    let inserting = started.elapsed();
    assert_eq!(pg.totals().unwrap(), Totals::of(&records));
    let started = Instant::now();
    for _ in 0..20 {
        pg.totals().unwrap();
    }
    let each = started.elapsed() / 20;
    // A page reads as far as it lists, not up to its bound.
    let q = ListQuery {
        limit: 50,
        ..ListQuery::default()
    };
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(pg.list(&q).unwrap().items.len(), 50);
    }
    let page = started.elapsed() / 20;
    eprintln!(
        "10,000 records inserted in {inserting:?}; totals in {each:?}, a page of 50 in \
         {page:?}"
    );
    assert!(each < Duration::from_millis(200), "totals took {each:?}");
}

#[test]
fn keys_successors_skip_surrogates_and_stop_at_the_last_character() {
    use super::read::successor;
    assert_eq!(successor("a/").as_deref(), Some("a0"));
    assert_eq!(successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
    assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
    assert_eq!(successor("\u{10FFFF}"), None);
    assert_eq!(successor(""), None);
}

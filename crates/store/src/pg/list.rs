//! Listing pages of records, newest first, with the answers sled's scan gives: the same
//! items, and the same cursor, including where a page stops at its bound.
//!
//! sled walks the most selective index the query names (collection, else tag, else kind,
//! else every record) newest first, examines at most [`MAX_SCAN`] entries, and keeps those
//! the caller may see ([`ListQuery::matches`]). Here a statement walks the same rows (with a
//! `LIMIT` of that bound, the filters evaluated in SQL, a record sent only when the caller
//! sees it) and sled's loop takes them in Rust, a chunk at a time through a portal: the
//! server reads as far as the page goes, one more row than it holds when the caller sees
//! every record, and the page and its cursor are sled's, step for step.

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::fault::Fault;
use super::row::{id_bytes, id_of, optional_record, signed, text, unsigned};
use super::PgMeta;
use crate::record::MediaId;
use crate::{Cursor, ListPage, ListQuery, StoreError};

/// How many records one page, or one question about collections, may examine: as sled's
/// listing does (`MAX_SCAN` in `meta.rs`), so that both backends page alike.
pub(super) const MAX_SCAN: usize = 20_000;

type Param = Box<dyn ToSql + Send + Sync>;

/// A statement's text with its parameters, numbered as they are bound.
#[derive(Default)]
struct Sql {
    params: Vec<Param>,
}

impl Sql {
    /// `value` as the next parameter; answers its placeholder, `$n`.
    fn bind(&mut self, value: impl ToSql + Send + Sync + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The condition that [`ListQuery::matches`] is, in SQL, never NULL.
fn matches(q: &ListQuery, sql: &mut Sql) -> String {
    // A NUL in a filter's text: no record holds one, so none passes (as with sled).
    let impossible = q.tag.as_deref().is_some_and(|t| text(t).is_none())
        || q.q.as_deref().is_some_and(|t| text(t).is_none());
    if impossible {
        return "false".into();
    }
    let mut parts = vec![format!(
        "({}::bool OR public OR owner = {}::text)",
        sql.bind(q.include_private),
        sql.bind(q.owner.as_deref().and_then(text).map(str::to_owned)),
    )];
    if let Some(c) = &q.collection {
        parts.push(format!("collection = {}::text", sql.bind(c.clone())));
    }
    if let Some(t) = &q.tag {
        parts.push(format!("tags @> ARRAY[{}::text]", sql.bind(t.clone())));
    }
    if let Some(k) = q.kind {
        parts.push(format!("kind = {}::text", sql.bind(k.as_str())));
    }
    if let Some(s) = &q.q {
        // `strpos`, not `LIKE`: a plain substring, with no character that means more.
        parts.push(format!(
            "EXISTS (SELECT 1 FROM unnest(search) AS f WHERE strpos(f, {}::text) > 0)",
            sql.bind(s.clone())
        ));
    }
    format!("coalesce({}, false)", parts.join(" AND "))
}

/// The rows of the index that the walk follows, as a condition on `media`; `None` when it
/// can hold none (a collection or tag whose name holds a NUL).
fn walked(q: &ListQuery, sql: &mut Sql) -> Option<String> {
    Some(if let Some(c) = &q.collection {
        format!("collection = {}::text", sql.bind(text(c)?.to_owned()))
    } else if let Some(t) = &q.tag {
        format!("tags @> ARRAY[{}::text]", sql.bind(text(t)?.to_owned()))
    } else if let Some(k) = q.kind {
        format!("kind = {}::text", sql.bind(k.as_str()))
    } else {
        "true".into()
    })
}

/// The first id of a millisecond, as the key sled seeks to.
fn ms_start(ms: u64) -> Vec<u8> {
    id_bytes(MediaId(ulid::Ulid::from_parts(ms, 0)))
}

/// The cursor that continues a walk after `id` without naming it: its millisecond, and how
/// many records of that millisecond the walk has passed (those not older than `id`).
async fn resume_at(tx: &Transaction<'_>, q: &ListQuery, id: MediaId) -> Result<Cursor, Fault> {
    let ms = id.0.timestamp_ms();
    let mut sql = Sql::default();
    let walk = walked(q, &mut sql).unwrap_or_else(|| "false".into());
    let text = format!(
        "SELECT count(*) FROM media WHERE {walk} AND id >= {} AND id < {}",
        sql.bind(id_bytes(id)),
        sql.bind(ms_start(ms + 1)),
    );
    let stmt = tx.prepare_cached(&text).await?;
    let passed: i64 = tx.query_one(&stmt, &sql.params()).await?.get(0);
    Ok(Cursor::At {
        ms,
        skip: u32::try_from(passed).unwrap_or(u32::MAX),
    })
}

/// Rows fetched at a time while a page walks: at first one more than the page holds, which
/// settles a page whose records the caller all sees in one round trip.
fn first_fetch(limit: usize) -> i32 {
    i32::try_from(limit.saturating_add(1))
        .unwrap_or(i32::MAX)
        .min(MAX_FETCH)
}

const MAX_FETCH: i32 = 1_000;

/// The walk of one page, row by row, as sled's loop takes its index entries: the rows come
/// from a portal, a chunk at a time, so that the server reads no further than the page does.
async fn walk_page(
    tx: &Transaction<'_>,
    q: &ListQuery,
    max_scan: usize,
) -> Result<(ListPage, Option<MediaId>), Fault> {
    let (end, (carried_ms, mut to_skip)) = match q.before {
        Some(Cursor::After(id)) => (Some(id_bytes(id)), (0, 0)),
        Some(Cursor::At { ms, skip }) => (Some(ms_start(ms + 1)), (ms, skip)),
        None => (None, (0, 0)),
    };
    let mut items = Vec::new();
    let page = |items, next| (ListPage { items, next }, None);
    let mut sql = Sql::default();
    let Some(walk) = walked(q, &mut sql) else {
        return Ok(page(items, None));
    };
    let seen = matches(q, &mut sql);
    let below = match end {
        Some(end) => format!("AND id < {}", sql.bind(end)),
        None => String::new(),
    };
    // The entries skipped, those examined, and the one that ends the page.
    let cap = signed(max_scan)
        .saturating_add(i64::from(to_skip))
        .saturating_add(1);
    let text = format!(
        "SELECT id, seen, CASE WHEN seen THEN record END AS record FROM ( \
           SELECT id, record, {seen} AS seen FROM media WHERE {walk} {below} \
           ORDER BY id DESC LIMIT {}) AS walk \
         ORDER BY id DESC",
        sql.bind(cap)
    );
    let stmt = tx.prepare_cached(&text).await?;
    let portal = tx.bind(&stmt, &sql.params()).await?;
    let mut scanned = 0;
    // The last record examined, and whether the caller sees it.
    let mut last: Option<(MediaId, bool)> = None;
    let mut fetch = first_fetch(q.limit);
    loop {
        let rows = tx.query_portal(&portal, fetch).await?;
        for row in &rows {
            let id = id_of(row.get(0))?;
            if to_skip > 0 && id.0.timestamp_ms() == carried_ms {
                to_skip -= 1;
                continue;
            }
            if items.len() == q.limit {
                // The last record examined is the last one listed: its caller saw it.
                return Ok(page(items, last.map(|(id, _)| Cursor::After(id))));
            }
            if scanned == max_scan {
                return Ok(match last {
                    Some((id, true)) => page(items, Some(Cursor::After(id))),
                    // Continued from a point in time, counted once the walk is over.
                    Some((id, false)) => (ListPage { items, next: None }, Some(id)),
                    None => page(items, None),
                });
            }
            scanned += 1;
            let seen: bool = row.get(1);
            if let Some(record) = optional_record(row, "record")? {
                items.push(record);
            }
            last = Some((id, seen));
        }
        if rows.len() < usize::try_from(fetch).unwrap_or(0) {
            return Ok(page(items, None));
        }
        fetch = fetch.saturating_mul(4).min(MAX_FETCH);
    }
}

impl PgMeta {
    /// One page of records, newest first.
    pub fn list(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        self.list_scanning(q, MAX_SCAN)
    }

    /// [`list`](Self::list), examining at most `max_scan` records.
    pub(super) fn list_scanning(
        &self,
        q: &ListQuery,
        max_scan: usize,
    ) -> Result<ListPage, StoreError> {
        let q = q.clone();
        self.read(move |mut client| async move {
            if q.limit == 0 {
                // sled stops at the first entry with its page full, before naming any.
                return Ok(ListPage {
                    items: Vec::new(),
                    next: None,
                });
            }
            // A portal lives in a transaction; this one only reads.
            let tx = client.build_transaction().read_only(true).start().await?;
            let (mut page, resume) = walk_page(&tx, &q, max_scan).await?;
            if let Some(id) = resume {
                page.next = Some(resume_at(&tx, &q, id).await?);
            }
            tx.commit().await?;
            Ok(page)
        })
    }

    /// The distinct collections of the records `q` matches, by name (see
    /// [`Store::collections_in_use`](crate::Store::collections_in_use)).
    pub fn collections_in_use(&self, q: &ListQuery) -> Result<Vec<String>, StoreError> {
        self.collections_scanning(q, MAX_SCAN)
    }

    /// [`collections_in_use`](Self::collections_in_use), examining at most `max_scan`
    /// records: the collections in byte order of their names, one seek each, and for a
    /// caller who may not see everything, each one's records newest first up to the first
    /// the caller sees; past the bound the rest are left out, never guessed.
    pub(super) fn collections_scanning(
        &self,
        q: &ListQuery,
        max_scan: usize,
    ) -> Result<Vec<String>, StoreError> {
        let q = q.clone();
        self.read(move |client| async move {
            // A record's own fields cannot change the answer: that it is there says enough.
            let every = q.include_private && q.tag.is_none() && q.kind.is_none() && q.q.is_none();
            let mut found = Vec::new();
            let mut scanned = 0usize;
            let mut previous: Option<String> = None;
            loop {
                let name: Option<String> = match (&q.collection, &previous) {
                    (Some(_), Some(_)) => None,
                    (Some(c), None) => match text(c) {
                        Some(c) => {
                            let stmt = client
                                .prepare_cached(
                                    "SELECT collection FROM media WHERE collection = $1 LIMIT 1",
                                )
                                .await?;
                            client.query_opt(&stmt, &[&c]).await?.map(|r| r.get(0))
                        }
                        None => None,
                    },
                    (None, previous) => {
                        let stmt = client
                            .prepare_cached(
                                "SELECT collection FROM media \
                                 WHERE collection > coalesce($1, '') ORDER BY collection LIMIT 1",
                            )
                            .await?;
                        client
                            .query_opt(&stmt, &[previous])
                            .await?
                            .map(|r| r.get(0))
                    }
                };
                let Some(name) = name else { break };
                let mut seen = every;
                if !every {
                    if scanned == max_scan {
                        break;
                    }
                    let remaining = signed(max_scan - scanned);
                    // The newest record the caller sees, among those the bound lets it read:
                    // the walk stops there.
                    let mut sql = Sql::default();
                    let matching = matches(&q, &mut sql);
                    let text = format!(
                        "SELECT id FROM ( \
                           SELECT id, {matching} AS seen FROM media WHERE collection = {} \
                           ORDER BY id DESC LIMIT {}) AS walk \
                         WHERE seen ORDER BY id DESC LIMIT 1",
                        sql.bind(name.clone()),
                        sql.bind(remaining),
                    );
                    let stmt = client.prepare_cached(&text).await?;
                    let first = client.query_opt(&stmt, &sql.params()).await?;
                    // How many records the walk read: up to that one, else all it might.
                    let (bound, upto) = match &first {
                        Some(row) => ("AND id >= $2", Some(row.get::<_, Vec<u8>>(0))),
                        None => ("", None),
                    };
                    let text = format!(
                        "SELECT count(*) FROM (SELECT 1 FROM media WHERE collection = $1 \
                         {bound} ORDER BY id DESC LIMIT {}) AS walked",
                        if upto.is_some() { "$3" } else { "$2" }
                    );
                    let stmt = client.prepare_cached(&text).await?;
                    let walked: i64 = match &upto {
                        Some(id) => client.query_one(&stmt, &[&name, id, &remaining]).await?,
                        None => client.query_one(&stmt, &[&name, &remaining]).await?,
                    }
                    .get(0);
                    scanned += usize::try_from(unsigned(walked)).unwrap_or(0);
                    seen = first.is_some();
                }
                if seen {
                    found.push(name.clone());
                }
                previous = Some(name);
            }
            Ok::<_, Fault>(found)
        })
    }
}

//! Reads: a record, a blob's users, object keys in byte order from any point, the buckets in
//! use, the totals, and every record in pages.

use std::collections::VecDeque;
use std::future::Future;

use deadpool_postgres::Object;

use super::fault::Fault;
use super::row::{
    decode, hash_bytes, id_bytes, id_of, record_of, signed, text, unsigned, JsonbText,
};
use super::PgMeta;
use crate::record::{Kind, MediaId, MediaRecord};
use crate::{ContentHash, KeysFrom, StoreError, Totals};

/// Records fetched at a time by [`PgMeta::all`].
const PAGE: i64 = 500;

impl PgMeta {
    /// Runs `f` with a pooled connection on the client's runtime.
    pub(super) fn read<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Fault>> + Send,
    {
        let pool = self.pool.clone();
        self.run(async move { f(pool.get().await?).await })
    }

    /// A record by id.
    pub fn get(&self, id: MediaId) -> Result<Option<MediaRecord>, StoreError> {
        self.read(move |client| async move {
            let stmt = client
                .prepare_cached("SELECT record FROM media WHERE id = $1")
                .await?;
            let row = client.query_opt(&stmt, &[&id_bytes(id)]).await?;
            Ok(row.map(|r| record_of(&r, "record")).transpose()?)
        })
    }

    /// A record that uses this blob, preferring a public one, else the first in id order (as
    /// sled's hash index finds them).
    pub fn representative(&self, hash: &ContentHash) -> Result<Option<MediaId>, StoreError> {
        let hash = hash_bytes(hash);
        self.read(move |client| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT id FROM media WHERE hash = $1 ORDER BY public DESC, id LIMIT 1",
                )
                .await?;
            let row = client.query_opt(&stmt, &[&hash]).await?;
            Ok(row.map(|r| id_of(r.get(0))).transpose()?)
        })
    }

    /// The record [`representative`](Self::representative) names, in the same query, or as
    /// read in the last second (see `recent.rs`).
    pub fn representative_shared(
        &self,
        hash: &ContentHash,
    ) -> Result<Option<std::sync::Arc<MediaRecord>>, StoreError> {
        if let Some(r) = self.recent.by_blob(hash) {
            return Ok(Some(r));
        }
        let record = self.representative_record(hash)?.map(std::sync::Arc::new);
        if let Some(r) = &record {
            self.recent.keep(r, true);
        }
        Ok(record)
    }

    /// The record [`representative`](Self::representative) names, in the same query.
    pub fn representative_record(
        &self,
        hash: &ContentHash,
    ) -> Result<Option<MediaRecord>, StoreError> {
        let hash = hash_bytes(hash);
        self.read(move |client| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT record FROM media WHERE hash = $1 ORDER BY public DESC, id LIMIT 1",
                )
                .await?;
            let row = client.query_opt(&stmt, &[&hash]).await?;
            Ok(row.map(|r| record_of(&r, "record")).transpose()?)
        })
    }

    /// The media adopted from an old path. Should two records name one path, the newest
    /// answers (sled's index keeps the last written).
    pub fn by_legacy_path(&self, path: &str) -> Result<Option<MediaId>, StoreError> {
        let Some(path) = text(path).map(str::to_owned) else {
            return Ok(None);
        };
        self.read(move |client| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT id FROM media WHERE legacy_path = $1 ORDER BY id DESC LIMIT 1",
                )
                .await?;
            let row = client.query_opt(&stmt, &[&path]).await?;
            Ok(row.map(|r| id_of(r.get(0))).transpose()?)
        })
    }

    /// The record holding `key` in `collection` (`None`: outside any collection).
    pub fn by_key(
        &self,
        collection: Option<&str>,
        key: &str,
    ) -> Result<Option<MediaId>, StoreError> {
        let (Some(bucket), Some(key)) = (text(collection.unwrap_or("")), text(key)) else {
            return Ok(None);
        };
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.read(move |client| async move {
            let stmt = client
                .prepare_cached("SELECT id FROM media WHERE bucket = $1 AND key = $2")
                .await?;
            let row = client.query_opt(&stmt, &[&bucket, &key]).await?;
            Ok(row.map(|r| id_of(r.get(0))).transpose()?)
        })
    }

    /// Up to `limit` keys of `collection` that start with `prefix`, with their records' ids,
    /// in the keys' byte order, from `from`: one seek in the `(bucket, key)` index, whose
    /// "C" collation orders keys by their bytes.
    pub fn keys(
        &self,
        collection: Option<&str>,
        prefix: &str,
        from: KeysFrom<'_>,
        limit: usize,
    ) -> Result<Vec<(String, MediaId)>, StoreError> {
        let bounds = KeyBounds::of(collection, prefix, from);
        let Some(KeyBounds {
            bucket,
            low,
            inclusive,
            high,
        }) = bounds
        else {
            return Ok(Vec::new());
        };
        self.read(move |client| async move {
            let sql = format!(
                "SELECT key, id FROM media WHERE bucket = $1 AND key {} $2 {} \
                 ORDER BY key LIMIT $3",
                if inclusive { ">=" } else { ">" },
                if high.is_some() { "AND key < $4" } else { "" },
            );
            let stmt = client.prepare_cached(&sql).await?;
            let limit = signed(limit);
            let rows = match &high {
                Some(high) => client.query(&stmt, &[&bucket, &low, &limit, high]).await?,
                None => client.query(&stmt, &[&bucket, &low, &limit]).await?,
            };
            rows.iter()
                .map(|r| Ok((r.get(0), id_of(r.get(1))?)))
                .collect::<Result<_, StoreError>>()
                .map_err(Fault::from)
        })
    }

    /// The collections that hold records, in byte order of their names, `None` (records
    /// outside any collection) first: one seek per bucket in the `(bucket, key)` index.
    pub fn collections(&self) -> Result<Vec<Option<String>>, StoreError> {
        self.read(move |client| async move {
            let stmt = client
                .prepare_cached(
                    "WITH RECURSIVE b (bucket) AS ( \
                       (SELECT bucket FROM media ORDER BY bucket LIMIT 1) \
                       UNION ALL \
                       SELECT (SELECT m.bucket FROM media m WHERE m.bucket > b.bucket \
                               ORDER BY m.bucket LIMIT 1) \
                       FROM b WHERE b.bucket IS NOT NULL) \
                     SELECT bucket FROM b WHERE bucket IS NOT NULL",
                )
                .await?;
            let rows = client.query(&stmt, &[]).await?;
            Ok(rows
                .iter()
                .map(|r| Some(r.get::<_, String>(0)).filter(|name| !name.is_empty()))
                .collect())
        })
    }

    /// Whether no record is in `collection` (`None`: outside any collection).
    pub fn collection_is_empty(&self, collection: Option<&str>) -> Result<bool, StoreError> {
        let Some(bucket) = text(collection.unwrap_or("")).map(str::to_owned) else {
            return Ok(true);
        };
        self.read(move |client| async move {
            let stmt = client
                .prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM media WHERE bucket = $1)")
                .await?;
            Ok(client.query_one(&stmt, &[&bucket]).await?.get(0))
        })
    }

    /// What the store holds, counted by aggregates in one statement (one snapshot). With
    /// 10,000 records this takes a few milliseconds (see the tests); counters kept by every
    /// write would make the writes of every instance wait on one row instead.
    pub fn totals(&self) -> Result<Totals, StoreError> {
        self.read(move |client| async move {
            let kinds: String = Kind::ALL
                .iter()
                .map(|k| format!(", count(*) FILTER (WHERE kind = '{}')", k.as_str()))
                .collect();
            let sql = format!(
                "SELECT count(*), coalesce(sum(size), 0)::bigint{kinds}, \
                   (SELECT count(*) FROM blobs), \
                   (SELECT coalesce(sum(size), 0)::bigint FROM blobs) \
                 FROM media"
            );
            let stmt = client.prepare_cached(&sql).await?;
            let row = client.query_one(&stmt, &[]).await?;
            let n = |i: usize| unsigned(row.get(i));
            Ok(Totals {
                media: n(0),
                media_bytes: n(1),
                blobs: n(7),
                blob_bytes: n(8),
                kinds: [n(2), n(3), n(4), n(5), n(6)],
            })
        })
    }

    /// Every record, in id order, fetched a page at a time.
    pub fn all(&self) -> impl Iterator<Item = Result<MediaRecord, StoreError>> + '_ {
        AllRecords {
            meta: self,
            after: None,
            page: VecDeque::new(),
            done: false,
        }
    }

    /// The blobs whose count disagrees with the records that use them, one line each, read
    /// in one statement (one snapshot, however busy the other instances are).
    pub fn count_problems(&self) -> Result<Vec<String>, StoreError> {
        self.read(move |client| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT coalesce(m.hash, b.hash), coalesce(m.n, 0), coalesce(b.refs, 0) \
                     FROM (SELECT hash, count(*) AS n FROM media GROUP BY hash) m \
                     FULL JOIN blobs b ON b.hash = m.hash \
                     WHERE m.n IS DISTINCT FROM b.refs",
                )
                .await?;
            let rows = client.query(&stmt, &[]).await?;
            Ok(rows
                .iter()
                .map(|row| {
                    let hash: Vec<u8> = row.get(0);
                    let used: i64 = row.get(1);
                    let counted: i64 = row.get(2);
                    format!(
                        "blob {} is used by {used} records but counted {counted} times",
                        hex::encode(hash)
                    )
                })
                .collect())
        })
    }

    /// The records among `ids` that exist, in no particular order.
    pub fn get_many(&self, ids: &[MediaId]) -> Result<Vec<MediaRecord>, StoreError> {
        let keys: Vec<Vec<u8>> = ids.iter().map(|id| id_bytes(*id)).collect();
        self.read(move |client| async move {
            let stmt = client
                .prepare_cached("SELECT record FROM media WHERE id = ANY($1)")
                .await?;
            let rows = client.query(&stmt, &[&keys]).await?;
            Ok(rows
                .iter()
                .map(|r| record_of(r, "record"))
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// The health check: a round trip to a server that accepts writes (not a standby in
    /// recovery). A server that does not answer is [`StoreError::Unavailable`].
    pub fn probe(&self) -> Result<(), StoreError> {
        let writable = self.read(move |client| async move {
            let stmt = client
                .prepare_cached("SELECT NOT pg_is_in_recovery()")
                .await?;
            Ok(client.query_one(&stmt, &[]).await?.get::<_, bool>(0))
        })?;
        if writable {
            Ok(())
        } else {
            Err(StoreError::Unavailable {
                what: super::WHAT,
                reason: "the server is a standby in recovery, which takes no writes".into(),
            })
        }
    }

    /// Bytes the database takes on disk, all tables and indexes; 0 when it cannot be asked.
    pub fn size_on_disk(&self) -> u64 {
        self.read(move |client| async move {
            let stmt = client
                .prepare_cached("SELECT pg_database_size(current_database())")
                .await?;
            Ok(unsigned(client.query_one(&stmt, &[]).await?.get(0)))
        })
        .unwrap_or(0)
    }
}

/// Where a listing of keys starts and ends, as bounds on the `key` column.
struct KeyBounds {
    bucket: String,
    low: String,
    inclusive: bool,
    /// The first text past every key with the prefix; `None` when no text is.
    high: Option<String>,
}

impl KeyBounds {
    /// `None` when no key can be listed.
    fn of(collection: Option<&str>, prefix: &str, from: KeysFrom<'_>) -> Option<KeyBounds> {
        let bucket = text(collection.unwrap_or(""))?.to_owned();
        // No key holds a NUL, so no key starts with a prefix that does.
        let prefix = text(prefix)?;
        let (low, inclusive) = match from {
            KeysFrom::Start => (prefix.to_owned(), true),
            // Text with a NUL sorts just after its part before it: `a\0…` > `a`, and < `a\u{1}`.
            KeysFrom::After(key) => (before_nul(key).to_owned(), false),
            KeysFrom::Past(common) if common.contains('\0') => {
                (before_nul(common).to_owned(), false)
            }
            // Past every key that starts with `common`: sled seeks to `common` ‖ 0xff.
            KeysFrom::Past(common) => (successor(common)?, true),
        };
        // A start before the prefix's first key starts at that key instead.
        let (low, inclusive) = if low.as_str() < prefix {
            (prefix.to_owned(), true)
        } else {
            (low, inclusive)
        };
        Some(KeyBounds {
            bucket,
            low,
            inclusive,
            high: successor(prefix),
        })
    }
}

fn before_nul(s: &str) -> &str {
    s.split('\0').next().unwrap_or_default()
}

/// The first text, in byte order, after every text that starts with `s`: `s` with its last
/// character that can grow grown by one (and what follows dropped). `None` when every
/// character is the last there is, or `s` is empty: then every text starts with it, or is
/// before it.
pub(super) fn successor(s: &str) -> Option<String> {
    let mut chars: Vec<char> = s.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// [`PgMeta::all`]'s pages.
struct AllRecords<'a> {
    meta: &'a PgMeta,
    /// The last id fetched.
    after: Option<MediaId>,
    /// Fetched, still undecoded: a record that does not parse is one error among the rest.
    page: VecDeque<Vec<u8>>,
    done: bool,
}

impl AllRecords<'_> {
    fn fetch(&mut self) -> Result<(), StoreError> {
        let after = self.after.map_or_else(Vec::new, id_bytes);
        let rows = self.meta.read(move |client| async move {
            let stmt = client
                .prepare_cached("SELECT id, record FROM media WHERE id > $1 ORDER BY id LIMIT $2")
                .await?;
            let rows = client.query(&stmt, &[&after, &PAGE]).await?;
            rows.iter()
                .map(|r| {
                    let json: JsonbText<'_> = r.try_get(1).map_err(|e| {
                        StoreError::Corrupt(format!("a media record does not read: {e}"))
                    })?;
                    Ok((id_of(r.get(0))?, json.0.to_vec()))
                })
                .collect::<Result<Vec<_>, StoreError>>()
                .map_err(Fault::from)
        })?;
        self.done = rows.len() < usize::try_from(PAGE).unwrap_or(usize::MAX);
        if let Some((id, _)) = rows.last() {
            self.after = Some(*id);
        }
        self.page.extend(rows.into_iter().map(|(_, json)| json));
        Ok(())
    }
}

impl Iterator for AllRecords<'_> {
    type Item = Result<MediaRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() && !self.done {
            if let Err(e) = self.fetch() {
                // Told once: a caller that goes on would only be told again.
                self.done = true;
                return Some(Err(e));
            }
        }
        self.page.pop_front().map(|json| decode(&json))
    }
}

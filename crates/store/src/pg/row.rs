//! A record as a `media` row: the columns its indexes and filters read, derived from it in
//! one place, and its JSON as JSONB, written and read as the same bytes sled keeps.

use std::error::Error;

use bytes::BufMut;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

use crate::record::{MediaId, MediaRecord};
use crate::{ContentHash, StoreError};

/// A record's row: `media`'s columns in the order of [`Columns::params`] (id, hash, size,
/// kind, collection, bucket, key, legacy_path, public, owner, tags, search, record).
pub(super) struct Columns {
    pub(super) media_id: MediaId,
    id: Vec<u8>,
    pub(super) hash: Vec<u8>,
    pub(super) size: i64,
    kind: &'static str,
    pub(super) collection: Option<String>,
    /// The key's bucket: the collection, or empty outside any (see `bucket_prefix`).
    bucket: String,
    /// The record's key, the stored one or the one derived for a record from before keys
    /// were kept, as sled indexes it: every record has one.
    pub(super) key: String,
    legacy_path: Option<String>,
    public: bool,
    owner: Option<String>,
    tags: Vec<String>,
    /// Title, description and file name, lower-cased as [`ListQuery::matches`]
    /// (crate::ListQuery::matches) compares them: by Rust, not by the server's `lower()`,
    /// whose rules follow its locale.
    search: Vec<String>,
    record: Jsonb,
}

impl Columns {
    pub(super) fn of(r: &MediaRecord) -> Result<Columns, StoreError> {
        Ok(Columns {
            media_id: r.id,
            id: id_bytes(r.id),
            hash: r.hash.as_bytes().to_vec(),
            size: i64::try_from(r.size).map_err(|_| {
                StoreError::Corrupt(format!("media {} has an impossible size", r.id))
            })?,
            kind: r.kind.as_str(),
            collection: r.collection.clone(),
            bucket: r.collection.clone().unwrap_or_default(),
            key: r.key().into_owned(),
            legacy_path: r.legacy_path.clone(),
            public: r.is_public(),
            owner: r.owner.clone(),
            tags: r.tags.clone(),
            search: [&r.title, &r.description, &r.filename]
                .iter()
                .map(|f| f.to_lowercase())
                .collect(),
            record: Jsonb(encode(r)?),
        })
    }

    /// The values for `$1`..`$13`, in the columns' order.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.id,
            &self.hash,
            &self.size,
            &self.kind,
            &self.collection,
            &self.bucket,
            &self.key,
            &self.legacy_path,
            &self.public,
            &self.owner,
            &self.tags,
            &self.search,
            &self.record,
        ]
    }
}

pub(super) fn id_bytes(id: MediaId) -> Vec<u8> {
    id.to_key().to_vec()
}

pub(super) fn id_of(bytes: &[u8]) -> Result<MediaId, StoreError> {
    MediaId::from_key(bytes).ok_or_else(|| StoreError::Corrupt("a media id is malformed".into()))
}

pub(super) fn hash_bytes(hash: &ContentHash) -> Vec<u8> {
    hash.as_bytes().to_vec()
}

/// A count or size read back; the schema keeps them at zero or more.
pub(super) fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A limit or count for a statement.
pub(super) fn signed(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Text to compare with the columns, or `None` when it holds a NUL: PostgreSQL's text cannot,
/// so no stored value can equal or contain it (sled's answer too: nothing matches).
pub(super) fn text(s: &str) -> Option<&str> {
    (!s.contains('\0')).then_some(s)
}

fn encode(record: &MediaRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record)
        .map_err(|e| StoreError::Corrupt(format!("a media record does not serialise: {e}")))
}

pub(super) fn decode(bytes: &[u8]) -> Result<MediaRecord, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("a media record does not parse: {e}")))
}

/// JSONB's binary form: a version byte, then the JSON text.
const JSONB_VERSION: u8 = 1;

/// A record's JSON, sent as JSONB.
#[derive(Debug)]
pub(super) struct Jsonb(Vec<u8>);

impl ToSql for Jsonb {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_u8(JSONB_VERSION);
        out.put_slice(&self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    to_sql_checked!();
}

/// A record's JSON as the server sends it, decoded by [`decode`] so that a record that does
/// not parse is the same [`StoreError::Corrupt`] as with sled.
pub(super) struct JsonbText<'a>(pub(super) &'a [u8]);

impl<'a> FromSql<'a> for JsonbText<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        match raw.split_first() {
            Some((&JSONB_VERSION, json)) => Ok(JsonbText(json)),
            _ => Err("an unknown JSONB version".into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }
}

/// The record in a row's `record` column.
pub(super) fn record_of(
    row: &tokio_postgres::Row,
    column: &str,
) -> Result<MediaRecord, StoreError> {
    optional_record(row, column)?
        .ok_or_else(|| StoreError::Corrupt("a media record is missing from its row".into()))
}

/// The record in a row's `record` column, which may be NULL.
pub(super) fn optional_record(
    row: &tokio_postgres::Row,
    column: &str,
) -> Result<Option<MediaRecord>, StoreError> {
    let json: Option<JsonbText<'_>> = row
        .try_get(column)
        .map_err(|e| StoreError::Corrupt(format!("a media record does not read: {e}")))?;
    json.map(|j| decode(j.0)).transpose()
}

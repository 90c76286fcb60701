//! What the records imply for the database's derived trees, written once: the key layouts of
//! the indexes, and the store's totals. [`meta`](super::meta) keeps them in step inside its
//! transactions; `verify` and `rebuild` compare them with [`expected`], which derives them
//! from the records alone. Plain bytes and numbers: no engine is named here.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashSet};

use super::hash::ContentHash;
use super::record::{Kind, MediaId, MediaRecord, Visibility};

/// The key-value pairs of one derived tree.
pub(crate) type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

fn kind_byte(kind: Kind) -> u8 {
    match kind {
        Kind::Image => 1,
        Kind::Video => 2,
        Kind::Audio => 3,
        Kind::Document => 4,
        Kind::Other => 5,
    }
}

/// `idx_collection` and `idx_tag`: the text ‖ 0x00 ‖ id (a prefix without the id).
pub(crate) fn text_key(prefix: &str, id: Option<MediaId>) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 17);
    key.extend_from_slice(prefix.as_bytes());
    key.push(0);
    if let Some(id) = id {
        key.extend_from_slice(&id.to_key());
    }
    key
}

/// `idx_key`'s prefix for one bucket: the collection's name (empty outside any) ‖ 0x00. A
/// collection's name holds no control character, so no bucket's prefix is another's.
pub(crate) fn bucket_prefix(collection: Option<&str>) -> Vec<u8> {
    text_key(collection.unwrap_or(""), None)
}

/// `idx_key`: the bucket's prefix ‖ the object key. Its value is the record's id.
pub(crate) fn bucket_key(collection: Option<&str>, key: &str) -> Vec<u8> {
    let mut out = bucket_prefix(collection);
    out.extend_from_slice(key.as_bytes());
    out
}

/// `idx_hash`: hash ‖ id.
pub(crate) fn hash_key(hash: &ContentHash, id: MediaId) -> Vec<u8> {
    let mut key = Vec::with_capacity(48);
    key.extend_from_slice(hash.as_bytes());
    key.extend_from_slice(&id.to_key());
    key
}

/// `idx_kind`: kind ‖ id (a prefix without the id).
pub(crate) fn kind_key(kind: Kind, id: Option<MediaId>) -> Vec<u8> {
    let mut key = vec![kind_byte(kind)];
    if let Some(id) = id {
        key.extend_from_slice(&id.to_key());
    }
    key
}

/// `idx_hash`'s value: whether the record is public.
pub(crate) fn visibility_byte(v: Visibility) -> &'static [u8] {
    match v {
        Visibility::Public => &[1],
        Visibility::Private => &[0],
    }
}

/// What the store holds, as counted by the `counters` tree: every write changes it in the
/// transaction that changes the records, so reading it costs a few keys, not a scan.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Records.
    pub media: u64,
    /// The records' sizes added up, as uploaded: a file uploaded twice counts twice.
    pub media_bytes: u64,
    /// Distinct blobs that records use (a reference count above zero). Blob files that no
    /// record uses (orphans a crash left, which `verify` lists and `gc` removes) are not
    /// counted: only a scan of the disk could find them.
    pub blobs: u64,
    /// Those blobs' sizes added up: the bytes stored, each blob once.
    pub blob_bytes: u64,
    /// Records of each kind, in the order of [`Kind::ALL`].
    pub kinds: [u64; 5],
}

/// Each total's key in the `counters` tree, in the order of [`Totals::values`].
const KEYS: [&str; 9] = [
    "media",
    "media_bytes",
    "blobs",
    "blob_bytes",
    "kind:image",
    "kind:video",
    "kind:audio",
    "kind:document",
    "kind:other",
];

fn kind_slot(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

impl Totals {
    /// The totals of these records, by a scan: what the counters must say.
    pub fn of<R: Borrow<MediaRecord>>(records: impl IntoIterator<Item = R>) -> Totals {
        let mut t = Totals::default();
        let mut seen: HashSet<ContentHash> = HashSet::new();
        for r in records {
            let r = r.borrow();
            t.media += 1;
            t.media_bytes += r.size;
            t.kinds[kind_slot(r.kind)] += 1;
            if seen.insert(r.hash) {
                t.blobs += 1;
                t.blob_bytes += r.size;
            }
        }
        t
    }

    /// Records of this kind.
    pub fn kind(&self, kind: Kind) -> u64 {
        self.kinds[kind_slot(kind)]
    }

    fn values(&self) -> [u64; 9] {
        let k = self.kinds;
        [
            self.media,
            self.media_bytes,
            self.blobs,
            self.blob_bytes,
            k[0],
            k[1],
            k[2],
            k[3],
            k[4],
        ]
    }

    /// Reads the totals back from the `counters` tree's entries; an unknown key is ignored.
    pub(crate) fn from_entries<'a>(entries: impl IntoIterator<Item = (&'a [u8], u64)>) -> Totals {
        let mut v = [0u64; 9];
        for (key, value) in entries {
            if let Some(i) = KEYS.iter().position(|k| k.as_bytes() == key) {
                v[i] = value;
            }
        }
        Totals {
            media: v[0],
            media_bytes: v[1],
            blobs: v[2],
            blob_bytes: v[3],
            kinds: [v[4], v[5], v[6], v[7], v[8]],
        }
    }

    /// The `counters` tree's entries for these totals: a zero is no entry.
    pub(crate) fn entries(&self) -> Entries {
        KEYS.iter()
            .zip(self.values())
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| (k.as_bytes().to_vec(), v.to_be_bytes().to_vec()))
            .collect()
    }
}

/// How one transaction changes the totals.
#[derive(Debug, Default)]
pub(crate) struct Delta([i128; 9]);

impl Delta {
    pub(crate) fn add_record(&mut self, r: &MediaRecord) {
        self.record(r, 1);
    }

    pub(crate) fn remove_record(&mut self, r: &MediaRecord) {
        self.record(r, -1);
    }

    /// A blob whose reference count went from 0 to 1.
    pub(crate) fn add_blob(&mut self, size: u64) {
        self.0[2] += 1;
        self.0[3] += i128::from(size);
    }

    /// A blob whose reference count went from 1 to 0.
    pub(crate) fn remove_blob(&mut self, size: u64) {
        self.0[2] -= 1;
        self.0[3] -= i128::from(size);
    }

    fn record(&mut self, r: &MediaRecord, sign: i128) {
        self.0[0] += sign;
        self.0[1] += sign * i128::from(r.size);
        self.0[4 + kind_slot(r.kind)] += sign;
    }

    /// The keys this changes and by how much.
    pub(crate) fn changes(&self) -> impl Iterator<Item = (&'static [u8], i128)> + '_ {
        KEYS.iter()
            .zip(self.0)
            .filter(|(_, d)| *d != 0)
            .map(|(k, d)| (k.as_bytes(), d))
    }
}

/// A counter after a change. It cannot go below zero or past `u64::MAX`; one that would was
/// wrong already, and `verify` reports it.
pub(crate) fn changed(value: u64, change: i128) -> u64 {
    u64::try_from((i128::from(value) + change).max(0)).unwrap_or(u64::MAX)
}

/// The secondary indexes, in the order [`index_entries`] names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Index {
    Hash,
    Collection,
    Tag,
    Kind,
    Legacy,
    /// Unique: one record per key in a bucket (see [`bucket_key`]).
    Key,
}

/// Every index entry of one record, `(index, key, value)`: the one statement of the key
/// layout, which adding, removing and verifying all read, so that they cannot drift apart.
pub(crate) fn index_entries(r: &MediaRecord) -> Vec<(Index, Vec<u8>, Vec<u8>)> {
    let mut out = vec![(
        Index::Hash,
        hash_key(&r.hash, r.id),
        visibility_byte(r.visibility).to_vec(),
    )];
    if let Some(c) = &r.collection {
        out.push((Index::Collection, text_key(c, Some(r.id)), Vec::new()));
    }
    for t in &r.tags {
        out.push((Index::Tag, text_key(t, Some(r.id)), Vec::new()));
    }
    out.push((Index::Kind, kind_key(r.kind, Some(r.id)), Vec::new()));
    if let Some(p) = &r.legacy_path {
        out.push((Index::Legacy, p.as_bytes().to_vec(), r.id.to_key().to_vec()));
    }
    out.push((
        Index::Key,
        bucket_key(r.collection.as_deref(), &r.key()),
        r.id.to_key().to_vec(),
    ));
    out
}

/// Every derived tree's entries as these records imply them, by tree name: the reference
/// counts, the indexes and the totals.
pub(crate) fn expected(records: &[MediaRecord]) -> [(&'static str, Entries); 8] {
    let mut refs: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let (mut h, mut c, mut t, mut k, mut l, mut o) = (
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
    );
    for r in records {
        *refs.entry(r.hash.as_bytes().to_vec()).or_default() += 1;
        for (index, key, value) in index_entries(r) {
            let tree = match index {
                Index::Hash => &mut h,
                Index::Collection => &mut c,
                Index::Tag => &mut t,
                Index::Kind => &mut k,
                Index::Legacy => &mut l,
                Index::Key => &mut o,
            };
            tree.insert(key, value);
        }
    }
    let refs = refs
        .into_iter()
        .map(|(k, v)| (k, v.to_be_bytes().to_vec()))
        .collect();
    [
        ("blob_refs", refs),
        ("idx_hash", h),
        ("idx_collection", c),
        ("idx_tag", t),
        ("idx_kind", k),
        ("idx_legacy", l),
        ("idx_key", o),
        ("counters", Totals::of(records).entries()),
    ]
}

/// How a derived tree differs from what the records imply, one line per entry, as `verify`
/// reports it.
pub(crate) fn differences(tree: &str, expected: &Entries, actual: &Entries) -> Vec<String> {
    // The counters' names are text; other keys are bytes.
    let show = |key: &[u8]| match std::str::from_utf8(key) {
        Ok(name) if tree == "counters" => name.to_owned(),
        _ => hex::encode(key),
    };
    let mut out = Vec::new();
    for (k, v) in expected {
        match actual.get(k) {
            None => out.push(format!("{tree}: missing entry {}", show(k))),
            Some(a) if a != v => out.push(format!("{tree}: wrong value for {}", show(k))),
            _ => {}
        }
    }
    for k in actual.keys().filter(|k| !expected.contains_key(*k)) {
        out.push(format!("{tree}: stray entry {}", show(k)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{now, RECORD_SCHEMA};

    fn r(size: u64, kind: Kind, hash: u8) -> MediaRecord {
        MediaRecord {
            schema: RECORD_SCHEMA,
            id: MediaId(ulid::Ulid::new()),
            hash: ContentHash([hash; 32]),
            size,
            content_type: "application/octet-stream".into(),
            kind,
            filename: "f".into(),
            title: String::new(),
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
            created_at: now(),
            updated_at: now(),
        }
    }

    #[test]
    fn a_delta_is_what_a_scan_would_change() {
        let (a, b, c) = (
            r(10, Kind::Image, 1),
            r(10, Kind::Image, 1),
            r(7, Kind::Video, 2),
        );
        let before = Totals::of(std::slice::from_ref(&a));
        let mut d = Delta::default();
        d.add_record(&b);
        d.add_record(&c);
        d.add_blob(c.size);
        let mut values = before.values();
        for (key, change) in d.changes() {
            let i = KEYS.iter().position(|k| k.as_bytes() == key).unwrap();
            values[i] = changed(values[i], change);
        }
        let after = Totals::of(&[a, b, c]);
        assert_eq!(values, after.values());
        assert_eq!(
            (
                after.media,
                after.media_bytes,
                after.blobs,
                after.blob_bytes
            ),
            (3, 27, 2, 17)
        );
        assert_eq!((after.kind(Kind::Image), after.kind(Kind::Video)), (2, 1));
        let entries = after.entries();
        assert!(
            !entries.contains_key(&b"kind:audio"[..]),
            "a zero is no entry"
        );
        let back = Totals::from_entries(entries.iter().map(|(k, v)| {
            (
                k.as_slice(),
                u64::from_be_bytes(v.as_slice().try_into().unwrap()),
            )
        }));
        assert_eq!(back, after);
        assert_eq!(changed(1, -3), 0, "a wrong counter stops at zero");
    }
}

//! Listings: the filters of a page of records, and the cursor that says where the next page
//! starts.

use std::fmt;
use std::str::FromStr;

use super::record::{Kind, MediaId, MediaRecord};

/// Filters for a listing, newest first; `before` is where it starts.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Only records in this collection.
    pub collection: Option<String>,
    /// Only records with this tag, as [`record::tag`](crate::record::tag) normalises it.
    pub tag: Option<String>,
    /// Only records of this kind.
    pub kind: Option<Kind>,
    /// Case-insensitive text searched in title, description and filename; lower-cased.
    pub q: Option<String>,
    /// Private records are listed too, whoever owns them.
    pub include_private: bool,
    /// Private media owned by this token are visible too.
    pub owner: Option<String>,
    /// The most records a page holds.
    pub limit: usize,
    /// Where the page starts; `None` for the newest record.
    pub before: Option<Cursor>,
}

impl ListQuery {
    /// Whether the caller may see `r` and it passes every filter (`limit` and `before`
    /// aside).
    pub fn matches(&self, r: &MediaRecord) -> bool {
        (self.include_private || r.is_public() || (self.owner.is_some() && r.owner == self.owner))
            && self
                .collection
                .as_ref()
                .is_none_or(|c| r.collection.as_ref() == Some(c))
            && self.tag.as_ref().is_none_or(|t| r.tags.contains(t))
            && self.kind.is_none_or(|k| r.kind == k)
            && self.q.as_ref().is_none_or(|q| {
                [&r.title, &r.description, &r.filename]
                    .iter()
                    .any(|f| f.to_lowercase().contains(q.as_str()))
            })
    }
}

/// Where a listing by object key starts (see [`Store::list_keys`](crate::Store::list_keys)).
/// Keys sort by their UTF-8 bytes, which is the order of their code points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeysFrom<'a> {
    /// At the first key.
    Start,
    /// At the first key after this one: where a listing that ended on it continues.
    After(&'a str),
    /// At the first key after every key that starts with this text: past a common prefix
    /// that a listing with a delimiter rolled up, in one seek.
    Past(&'a str),
}

/// One page of a listing.
#[derive(Debug)]
pub struct ListPage {
    /// The records the caller may see, newest first: fewer than the limit at the end of the
    /// listing, or when the scan stopped at its bound.
    pub items: Vec<MediaRecord>,
    /// Where the next page starts, or `None` when this was the last.
    pub next: Option<Cursor>,
}

/// Where a listing continues. Usually after the last record of the page, which its caller saw.
/// A page can also end at its scan bound among records the caller may not see (private ones,
/// or ones a filter skips): it then continues at a point in time, the millisecond of the last
/// record scanned, after skipping the records of that millisecond already scanned. So a cursor
/// never names a record its caller cannot see; ids are time-sortable, and a millisecond names
/// none of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// Records older than this one.
    After(MediaId),
    /// Records of this millisecond or older, but for the first `skip` of this millisecond.
    At {
        /// Milliseconds since the Unix epoch, as in a ULID.
        ms: u64,
        /// Records of that millisecond that an earlier page scanned already.
        skip: u32,
    },
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cursor::After(id) => write!(f, "{id}"),
            // A ULID starts with a digit from 0 to 7: a `t` cannot be taken for one.
            Cursor::At { ms, skip } => write!(f, "t{ms}.{skip}"),
        }
    }
}

/// Error for a string that is not a cursor from an earlier page.
#[derive(Debug, thiserror::Error)]
#[error("a cursor is a next_cursor from an earlier page")]
pub struct InvalidCursor;

impl FromStr for Cursor {
    type Err = InvalidCursor;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix('t') {
            let (ms, skip) = rest.split_once('.').ok_or(InvalidCursor)?;
            let ms = ms.parse::<u64>().map_err(|_| InvalidCursor)?;
            // A ULID's time is 48 bits.
            if ms >= 1 << 48 {
                return Err(InvalidCursor);
            }
            Ok(Cursor::At {
                ms,
                skip: skip.parse().map_err(|_| InvalidCursor)?,
            })
        } else {
            s.parse().map(Cursor::After).map_err(|_| InvalidCursor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_never_panic() {
        let id: MediaId = "01jd8x4w9k6t2m3n4p5q6r7s8t".parse().unwrap();
        for c in [
            Cursor::After(id),
            Cursor::At {
                ms: 1_733_424_000_000,
                skip: 7,
            },
        ] {
            assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        }
        for bad in [
            "",
            "t",
            "t12",
            "t12.",
            "t.3",
            "t99999999999999999.1",
            "t1.-1",
            "zzz",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?}");
        }
    }
}

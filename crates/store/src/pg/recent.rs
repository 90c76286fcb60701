//! Public records this instance served in the last second, by id and by blob: the hot read
//! paths (`/m/{id}`, `/f/{hash}`) look one up on every request, and a round trip to
//! PostgreSQL each time would cost more than sending a small file.
//!
//! What this allows: a record made private, edited or deleted on another instance may still be
//! served as it was, by this one, for up to [`FRESH`], as a revoked token may be accepted for
//! up to a second. (A blob's `/f/{hash}` response says `immutable` to every cache anyway.)
//! This instance's own changes forget what they touch at once, and private records are never
//! kept: a record that becomes public is served at once everywhere.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

use crate::{ContentHash, MediaId, MediaRecord};

/// How long a record is served from memory.
pub(super) const FRESH: Duration = Duration::from_secs(1);

/// Records kept, by id and by blob together.
const CAPACITY: usize = 4096;

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Id(MediaId),
    Blob(ContentHash),
}

pub(super) struct Recent {
    entries: Cache<Key, (Instant, Arc<MediaRecord>)>,
}

impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recent({} records)", self.entries.len())
    }
}

impl Recent {
    pub(super) fn new() -> Self {
        Recent {
            entries: Cache::new(CAPACITY),
        }
    }

    fn fresh(&self, key: &Key) -> Option<Arc<MediaRecord>> {
        let (at, record) = self.entries.get(key)?;
        (at.elapsed() < FRESH).then_some(record)
    }

    pub(super) fn by_id(&self, id: MediaId) -> Option<Arc<MediaRecord>> {
        self.fresh(&Key::Id(id))
    }

    pub(super) fn by_blob(&self, hash: &ContentHash) -> Option<Arc<MediaRecord>> {
        self.fresh(&Key::Blob(*hash))
    }

    /// Keeps a record just read, by id, and by blob when it is its blob's representative.
    pub(super) fn keep(&self, record: &Arc<MediaRecord>, representative: bool) {
        if !record.is_public() {
            return;
        }
        let now = Instant::now();
        self.entries
            .insert(Key::Id(record.id), (now, record.clone()));
        if representative {
            self.entries
                .insert(Key::Blob(record.hash), (now, record.clone()));
        }
    }

    /// Forgets what a change on this instance touched.
    pub(super) fn forget(&self, ids: &[MediaId], hashes: &[ContentHash]) {
        for id in ids {
            self.entries.remove(&Key::Id(*id));
        }
        for hash in hashes {
            self.entries.remove(&Key::Blob(*hash));
        }
    }
}

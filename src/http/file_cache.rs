//! Small files kept in memory, ready to send: blobs and image variants, by content address.
//! Content-addressed bytes never change, so a cached copy is always right, and sending it
//! skips the open, stat and read of every request. Who may read them is decided on every
//! request, before the cache is asked.

use actix_web::web;
use bytes::Bytes;
use quick_cache::sync::Cache;

use crate::store::{ContentHash, Store};

/// Files up to this size are kept in memory once served.
const MAX_CACHED_FILE: u64 = 256 * 1024;

/// What the cache holds: a blob (`0`), or one of its variants (a digest of the variant's
/// parameters, see `variants::key`).
pub type FileKey = (ContentHash, u64);

/// Small files by content hash, bounded by total bytes.
pub struct FileCache {
    entries: Option<Cache<FileKey, Bytes, ByLength>>,
    max_file: u64,
}

#[derive(Clone)]
struct ByLength;

impl quick_cache::Weighter<FileKey, Bytes> for ByLength {
    fn weight(&self, _: &FileKey, bytes: &Bytes) -> u64 {
        // Empty files still take an entry.
        bytes.len().max(1) as u64
    }
}

impl FileCache {
    /// A cache holding at most `budget` bytes; 0 turns it off.
    pub fn new(budget: u64) -> Self {
        let max_file = MAX_CACHED_FILE.min(budget / 4);
        let entries = (budget > 0 && max_file > 0).then(|| {
            let items = usize::try_from(budget / 8192).unwrap_or(usize::MAX).max(16);
            Cache::with_weighter(items, budget, ByLength)
        });
        FileCache { entries, max_file }
    }

    /// The bytes of a blob of this size, from memory or read now; `None` when the blob is too
    /// large to keep, or unreadable (the streaming path then reports why).
    pub async fn bytes(&self, store: &Store, hash: &ContentHash, size: u64) -> Option<Bytes> {
        let entries = self.entries.as_ref().filter(|_| size <= self.max_file)?;
        if let Some(b) = entries.get(&(*hash, 0)) {
            return Some(b);
        }
        let bytes = match store.blobs().local_path(hash) {
            Some(path) => Bytes::from(web::block(move || std::fs::read(path)).await.ok()?.ok()?),
            // From the bucket, once: a small file served again costs no request to it.
            None if size == 0 => Bytes::new(),
            None => {
                let (bucket, hash) = (store.blobs().bucket()?.clone(), *hash);
                web::block(move || bucket.read_range(&hash, 0..size))
                    .await
                    .ok()?
                    .ok()?
            }
        };
        // A blob whose length disagrees with its record is damage for `verify`, not for a cache.
        if bytes.len() as u64 != size {
            return None;
        }
        entries.insert((*hash, 0), bytes.clone());
        Some(bytes)
    }

    /// Whether a variant's bytes are in memory.
    pub fn holds(&self, key: &FileKey) -> bool {
        self.entries.as_ref().is_some_and(|e| e.contains_key(key))
    }

    /// The bytes of a variant, from memory or read now when the file is small enough to keep.
    pub async fn variant(&self, key: FileKey, path: &std::path::Path) -> Option<Bytes> {
        let entries = self.entries.as_ref()?;
        if let Some(b) = entries.get(&key) {
            return Some(b);
        }
        let path = path.to_owned();
        let max = self.max_file;
        let read = web::block(move || {
            let file = std::fs::File::open(path)?;
            if file.metadata()?.len() > max {
                return Ok(None);
            }
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut &file, &mut bytes)?;
            Ok::<_, std::io::Error>(Some(bytes))
        })
        .await
        .ok()?
        .ok()??;
        let bytes = Bytes::from(read);
        entries.insert(key, bytes.clone());
        Some(bytes)
    }
}

//! Decoded records kept in memory for the hot read paths: serving `/f/{hash}` and `/m/{id}`
//! looks up a record on every request, and decoding its JSON from sled each time costs more
//! than sending a small file.
//!
//! The cache never answers with something older than sled: every write to the metadata
//! forgets the keys it touched after its transaction, and a reader that loaded a value while a
//! write was under way drops it again (the generation check), so a stale value cannot be put
//! back after its write forgot it.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::sync::Cache;

/// A bounded map whose readers fill it and whose writers invalidate it.
pub struct ReadCache<K, V> {
    entries: Cache<K, V>,
    generation: AtomicU64,
}

impl<K: Eq + Hash + Clone, V: Clone> ReadCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        ReadCache {
            entries: Cache::new(capacity.max(1)),
            generation: AtomicU64::new(0),
        }
    }

    /// The cached value, or `load`'s, which is kept when no write forgot anything meanwhile.
    /// `load` answering `None` (nothing stored) is not cached.
    pub fn get_or_load<E>(
        &self,
        key: &K,
        load: impl FnOnce() -> Result<Option<V>, E>,
    ) -> Result<Option<V>, E> {
        if let Some(v) = self.entries.get(key) {
            return Ok(Some(v));
        }
        let before = self.generation.load(Ordering::SeqCst);
        let loaded = load()?;
        if let Some(v) = &loaded {
            self.entries.insert(key.clone(), v.clone());
            // A write that ran during `load` may have forgotten this key before it was
            // inserted: then the loaded value may be the old one.
            if self.generation.load(Ordering::SeqCst) != before {
                self.entries.remove(key);
            }
        }
        Ok(loaded)
    }

    /// Forgets keys whose stored value changed. Call after the change is visible in the store.
    pub fn forget<'a>(&self, keys: impl IntoIterator<Item = &'a K>)
    where
        K: 'a,
    {
        self.generation.fetch_add(1, Ordering::SeqCst);
        for k in keys {
            self.entries.remove(k);
        }
    }

    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_once_and_reloads_after_a_forget() {
        let cache = ReadCache::<u32, String>::new(8);
        let mut loads = 0;
        for _ in 0..3 {
            let v = cache
                .get_or_load(&1, || {
                    loads += 1;
                    Ok::<_, ()>(Some(format!("v{loads}")))
                })
                .unwrap();
            assert_eq!(v.as_deref(), Some("v1"));
        }
        assert_eq!(loads, 1);
        cache.forget([&1]);
        let v = cache.get_or_load(&1, || Ok::<_, ()>(Some("v2".into())));
        assert_eq!(v.unwrap().as_deref(), Some("v2"));
        // Absent values are looked up every time.
        assert_eq!(cache.get_or_load(&2, || Ok::<_, ()>(None)).unwrap(), None);
        let v = cache.get_or_load(&2, || Ok::<_, ()>(Some("now".into())));
        assert_eq!(v.unwrap().as_deref(), Some("now"));
    }

    #[test]
    fn a_value_loaded_across_a_write_is_not_kept() {
        let cache = ReadCache::<u32, &str>::new(8);
        // The write lands (and forgets the key) while the reader holds the old value.
        let v = cache.get_or_load(&7, || {
            cache.forget([&7]);
            Ok::<_, ()>(Some("old"))
        });
        assert_eq!(v.unwrap(), Some("old"));
        let v = cache.get_or_load(&7, || Ok::<_, ()>(Some("new")));
        assert_eq!(v.unwrap(), Some("new"));
        cache.clear();
        let v = cache.get_or_load(&7, || Ok::<_, ()>(Some("after clear")));
        assert_eq!(v.unwrap(), Some("after clear"));
    }
}

//! Derived files under `variants/`: sized variants of images (and, later, video posters),
//! each under `variants/<source hash>/<generation>/<name>`. The generation is the version of
//! the pipeline that made the file, and the name says every parameter, so a derived file never
//! changes once written. They are a cache: `verify` and `backup` leave them out, `gc` removes
//! those of a blob no record uses and those of older generations, and a deleted one is made
//! again when asked for.
//!
//! With the blobs in a bucket, each derived file is also kept there, under the same name
//! (see [`ObjectKey::variant`]): the local folder is then only this instance's copy, and a
//! file made on one instance is fetched, not made again, by the others. A video's poster
//! frame, made once by the instance that received the video, is found by all.

use std::path::PathBuf;

use super::bucket::ObjectKey;
use super::{ContentHash, Store, StoreError};

/// Whether a generation or a name is one the store accepts: a single path segment of
/// lowercase letters, digits, `-` and `.`, not starting with a dot.
fn is_plain(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= 100
        && !segment.starts_with('.')
        && segment
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

impl Store {
    /// Where the derived file `name` of the blob `source`, made by `generation`, lives;
    /// `None` for a generation or a name that is not a plain path segment.
    pub fn variant_path(
        &self,
        source: &ContentHash,
        generation: &str,
        name: &str,
    ) -> Option<PathBuf> {
        (is_plain(generation) && is_plain(name)).then(|| {
            self.layout
                .variants()
                .join(source.to_hex())
                .join(generation)
                .join(name)
        })
    }

    /// Keeps a derived file, written by the durable recipe: one that a crash left torn would
    /// otherwise be served under its strong ETag for good. With the blobs in a bucket it goes
    /// there too, before this returns, if the bucket takes it: a derived file is a cache, so
    /// a failure there is logged, and the file is served from here all the same. Returns
    /// where it lives here.
    pub fn put_variant(
        &self,
        source: &ContentHash,
        generation: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<PathBuf, StoreError> {
        let path = self.keep_variant(source, generation, name, bytes)?;
        if let Some(bucket) = self.blobs.bucket() {
            let key = ObjectKey::variant(source, generation, name)
                .ok_or_else(|| StoreError::invalid("variant name", "a plain path segment"))?;
            if let Err(e) = bucket.put_object(&key, bytes.to_vec()) {
                tracing::warn!(source = %source, name, error = %e, "could not keep a derived file in the bucket; it is made again where needed");
            }
        }
        Ok(path)
    }

    /// Writes a derived file to the local folder only.
    fn keep_variant(
        &self,
        source: &ContentHash,
        generation: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<PathBuf, StoreError> {
        let path = self
            .variant_path(source, generation, name)
            .ok_or_else(|| StoreError::invalid("variant name", "a plain path segment"))?;
        let dir = path
            .parent()
            .ok_or_else(|| StoreError::Corrupt("a variant path has no folder".into()))?;
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create a variant folder", e))?;
        super::layout::write_atomically(dir, &path, bytes, 0o600)?;
        Ok(path)
    }

    /// The local file of a derived file made before: here already, or fetched from the
    /// bucket (and kept here) when another instance made it. `None` when it was never made
    /// (or was removed): the caller makes it.
    pub fn find_variant(
        &self,
        source: &ContentHash,
        generation: &str,
        name: &str,
    ) -> Result<Option<PathBuf>, StoreError> {
        let path = self
            .variant_path(source, generation, name)
            .ok_or_else(|| StoreError::invalid("variant name", "a plain path segment"))?;
        if path.is_file() {
            return Ok(Some(path));
        }
        let (Some(bucket), Some(key)) = (
            self.blobs.bucket(),
            ObjectKey::variant(source, generation, name),
        ) else {
            return Ok(None);
        };
        match bucket.get_object(&key) {
            Ok(Some(bytes)) => self
                .keep_variant(source, generation, name, &bytes)
                .map(Some),
            Ok(None) => Ok(None),
            // A cache that cannot be read is one that misses: the caller makes the file.
            Err(e) => {
                tracing::warn!(source = %source, name, error = %e, "could not read a derived file from the bucket");
                Ok(None)
            }
        }
    }

    /// With the blobs in a bucket: removes the bucket's derived files of blobs no record uses
    /// (older than `grace` seconds) and of generations other than `current`. Returns how
    /// many went.
    pub(crate) fn remove_bucket_variants(
        &self,
        current: &str,
        grace: i64,
        now: i64,
    ) -> Result<usize, StoreError> {
        let Some(bucket) = self.blobs.bucket() else {
            return Ok(0);
        };
        let mut removed = 0;
        for object in bucket.list_objects(super::bucket::VARIANTS)? {
            let mut parts = object.name.splitn(3, '/');
            let (Some(hash), Some(generation), Some(name)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(hash) = hash.parse::<ContentHash>() else {
                continue;
            };
            let stale = if generation != current {
                true
            } else {
                now.saturating_sub(object.modified) >= grace && self.meta.refcount(&hash)? == 0
            };
            if let (true, Some(key)) = (stale, ObjectKey::variant(&hash, generation, name)) {
                bucket.delete_object(&key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let hash = ContentHash::from_slice(&[7; 32]).unwrap();
        assert!(store
            .variant_path(&hash, "p1", "w320-h0-contain.webp")
            .is_some());
        for bad in ["../x", "a/b", "", ".hidden", "W320.webp", "a\0b"] {
            assert!(store.variant_path(&hash, "p1", bad).is_none(), "{bad:?}");
            assert!(
                store.variant_path(&hash, bad, "a.webp").is_none(),
                "{bad:?}"
            );
        }
        let path = store.put_variant(&hash, "p1", "a.webp", b"bytes").unwrap();
        assert!(path.starts_with(store.layout().variants()));
        assert_eq!(std::fs::read(&path).unwrap(), b"bytes");
    }
}

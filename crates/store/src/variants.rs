//! Derived files under `variants/`: sized variants of images (and, later, video posters),
//! each under `variants/<source hash>/<generation>/<name>`. The generation is the version of
//! the pipeline that made the file, and the name says every parameter, so a derived file never
//! changes once written. They are a cache: `verify` and `backup` leave them out, `gc` removes
//! those of a blob no record uses and those of older generations, and a deleted one is made
//! again when asked for.

use std::path::PathBuf;

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
    /// otherwise be served under its strong ETag for good. Returns where it lives.
    pub fn put_variant(
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

//! Content addresses: the sha256 of a blob's bytes, written as 64 lowercase hex digits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A sha256 digest naming a blob.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// The digest's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash whose digest these bytes are; `None` unless there are 32.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(ContentHash)
    }

    /// 64 lowercase hex digits: the blob's name on disk and in URLs.
    pub fn to_hex(&self) -> String {
        // A table lookup per byte: this runs several times for every file served.
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).unwrap_or_default();
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

/// Error for a string that is not 64 lowercase hex digits.
#[derive(Debug, thiserror::Error)]
#[error("a content hash is 64 lowercase hex digits")]
pub struct InvalidHash;

impl FromStr for ContentHash {
    type Err = InvalidHash;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only the canonical spelling is accepted, so one blob has exactly one URL.
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(InvalidHash);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| InvalidHash)?;
        Ok(ContentHash(out))
    }
}

/// Described for the OpenAPI document (see `http::openapi`): 64 lowercase hex digits.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ContentHash {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some(
                "The sha256 of a blob's bytes as 64 lowercase hex digits.",
            ))
            .pattern(Some("^[0-9a-f]{64}$"))
            .examples(["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ContentHash {}

impl Serialize for ContentHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_canonical_hex() {
        let hex = "ab".repeat(32);
        assert_eq!(
            hex.parse::<ContentHash>().map(|h| h.to_hex()).ok(),
            Some(hex.clone())
        );
        assert!("AB".repeat(32).parse::<ContentHash>().is_err());
        assert!("ab".repeat(31).parse::<ContentHash>().is_err());
        assert!(format!("{}zz", "ab".repeat(31))
            .parse::<ContentHash>()
            .is_err());
        assert!("../etc/passwd".parse::<ContentHash>().is_err());
    }
}

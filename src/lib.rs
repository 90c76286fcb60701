//! Shoebox: a single-binary media store.
//!
//! The crate is layered: `http` (actix-web handlers) sits over `store` (blobs on disk and
//! metadata in sled), which knows nothing about HTTP.
#![warn(clippy::unwrap_used, clippy::expect_used)]

/// Named, scoped API tokens kept as hashes.
pub mod api_tokens;
/// Command line and validated runtime configuration.
pub mod config;
/// Durable whole-file writes (temp file, fsync, rename, fsync the directory), for every part.
pub mod durable;
/// HTTP surface: routes, handlers, error mapping, embedded web assets.
pub mod http;
/// Who the process works as: handing the data directory from root to an unprivileged user,
/// dropping root, and checking that the store is the user's.
pub mod privileges;
/// Small files under `secrets/` that the server re-reads when a command replaces them.
pub mod reload;
/// Admin token generation, hashing and constant-time checks.
pub mod secrets;
/// Signed, expiring URLs for private media.
pub mod signing;
/// The data directory: content-addressed blobs, sled metadata, the durable write protocol.
pub mod store;

//! Shoebox: a single-binary media store.
//!
//! The crate is layered: `http` (actix-web handlers) sits over `store` (blobs on disk and
//! metadata in sled), which knows nothing about HTTP.
#![warn(clippy::unwrap_used, clippy::expect_used)]

/// Named, scoped API tokens kept as hashes.
pub mod api_tokens;
/// Command line and validated runtime configuration.
pub mod config;
/// Durable whole-file writes (temp file, fsync, rename, fsync the directory), for every part:
/// the store crate's leaf module.
pub use shoebox_store::durable;
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
/// The data directory: content-addressed blobs, sled metadata, the durable write protocol. A
/// crate of its own (`crates/store`), so that the compiler keeps HTTP out of it.
pub use shoebox_store as store;

//! Shoebox: a single-binary media store.
//!
//! The crate is layered: `http` (actix-web handlers) sits over `store` (blobs on disk and
//! metadata in sled), which knows nothing about HTTP.
#![warn(clippy::unwrap_used, clippy::expect_used)]

/// Command line and validated runtime configuration.
pub mod config;
/// What proves who a caller is: the admin token, the session key, API tokens (S3 credentials
/// among them) and URL-signing keys, under `secrets/`.
pub mod credentials;
/// Durable whole-file writes (temp file, fsync, rename, fsync the directory), for every part:
/// the store crate's leaf module.
pub use shoebox_store::durable;
/// HTTP surface: routes, handlers, error mapping, embedded web assets.
pub mod http;
/// Who the process works as: handing the data directory from root to an unprivileged user,
/// dropping root, and checking that the store is the user's.
pub mod privileges;
/// The data directory: content-addressed blobs, sled metadata, the durable write protocol. A
/// crate of its own (`crates/store`), so that the compiler keeps HTTP out of it.
pub use shoebox_store as store;

//! Shoebox on real distributed engines, started on loopback by `shoebox-testkit`:
//! - `blobs`: blobs in a bucket of a 3-node Garage cluster (`SHOEBOX_BLOB_STORE`), with the
//!   records in sled: serving, dedup, deletes, `gc`, `verify`, a node down, the bucket down,
//!   redirects, and a SIGKILL during uploads.
//! - `shared`: records in PostgreSQL too, and two instances serving one store.
//!
//! `.ci/run` installs Garage (`cargo install garage --locked`) and PostgreSQL; without them the
//! tests fail under `CI=true`.

#[path = "../common/mod.rs"]
mod common;

mod blobs;
mod shared;

//! Shoebox on real distributed engines, started on loopback by `shoebox-testkit`:
//! - `blobs`: blobs in a bucket of a 3-node Garage cluster (`SHOEBOX_BLOB_STORE`), with the
//!   records in sled: serving, dedup, deletes, `gc`, `verify`, a node down, the bucket down,
//!   redirects, and a SIGKILL during uploads.
//!
//! `.ci/run` installs Garage (`cargo install garage --locked`); without it the tests fail
//! under `CI=true`.

#[path = "../common/mod.rs"]
mod common;

mod blobs;

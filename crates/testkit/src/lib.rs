//! Real engines on loopback for Shoebox's tests: a PostgreSQL server and a Garage S3 cluster,
//! each in a temporary directory of its own, listening on 127.0.0.1 only, and crashed and
//! restarted on demand. When an engine is not installed, `start` returns `None` after
//! [`unavailable`], so a test skips on a developer's machine and fails under `CI=true`.
//!
//! - `postgres` — [`Postgres`]: initdb, postgres, psql, kill and restart.
//! - `garage` — [`Garage`]: a cluster of N nodes with a bucket and a key.
//! - `process` — process groups, logs, deadlines and ports that both share.

mod garage;
mod postgres;
mod process;

pub use garage::{Garage, GarageKey};
pub use postgres::Postgres;

/// Reports that a test cannot run because `what` is missing: under `CI=true` this panics with
/// "{what}; CI=true needs it", elsewhere it prints "SKIPPED: {what}" to stderr and the test
/// goes on to return early.
pub fn unavailable(what: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what}; CI=true needs it");
    }
    eprintln!("SKIPPED: {what}");
}

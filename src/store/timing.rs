//! Durations of the store's fsyncs and flushes, the cost at the heart of every upload, kept
//! process-wide for `/metrics`.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// From 50 µs to ~1.6 s.
pub static FSYNC_SECONDS: LazyLock<Histogram> =
    LazyLock::new(|| Histogram::new(exponential_buckets(0.000_05, 2.0, 16)));

/// Runs an fsync (or a flush) and records how long it took.
pub fn fsync<T>(f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    FSYNC_SECONDS.observe(start.elapsed().as_secs_f64());
    out
}

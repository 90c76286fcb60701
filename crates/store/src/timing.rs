//! The store's fsyncs and flushes, timed: the cost at the heart of every upload. Durations go
//! to the observer the server registers for its metrics (see [`crate::durable::timed`]), so
//! the store depends on no metrics library.

/// Runs an fsync (or a flush) and reports how long it took.
pub fn fsync<T>(f: impl FnOnce() -> T) -> T {
    crate::durable::timed(f)
}

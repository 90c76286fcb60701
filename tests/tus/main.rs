//! Black-box tests of the tus 1.0.0 server at `/api/uploads` (https://tus.io/protocols/resumable-upload),
//! against the real binary:
//! - `real_clients`: tus-js-client and tuspy upload 64 MiB, stop at about 40%, the server is
//!   SIGKILLed and restarted, and a new client resumes from the acknowledged offset;
//! - `statuses`: each status of the protocol, with plain requests;
//! - `connections`: PATCHes cut off mid-body, and two racing for one upload;
//! - `access`: who may touch an upload, the size limit, expiry;
//! - `records`: what an upload's metadata becomes, `GET /api/uploads/{id}`, status and metrics.
//!
//! The clients run from `tests/clients/` (`npm ci --prefix tests/clients`, `pip install tuspy`:
//! `.ci/run` installs both). The crash test of the protocol is `tests/tus_crash.rs`.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod clients;
mod connections;
mod protocol;
mod real_clients;
mod records;
mod statuses;

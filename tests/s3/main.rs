//! Black-box tests of the S3 API, against the real binary and with real S3 clients:
//! - `boto`: boto3 (PyPI) runs each scenario of `tests/clients/s3-boto.py`;
//! - `crossing`: what S3 puts shows in the REST API and the gallery, and the other way;
//! - `signatures`: wrong secrets, revoked and read-only keys, presigned URLs;
//! - `routing`: the S3 port, and the main port for `SHOEBOX_S3_HOST`.
//!
//! `.ci/run` installs the clients (`pip install boto3 awscli`, `npm ci --prefix tests/clients`,
//! Debian's `rclone`, `s3cmd` and `stunnel4`); without them the tests fail under `CI=true`.

#[path = "../common/mod.rs"]
mod common;

mod boto;
mod crash;
mod crossing;
mod hostile;
mod routing;
mod serving;
mod signatures;
mod tools;

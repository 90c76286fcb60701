//! The real tus clients, run as subprocesses: tus-js-client under Node (the script
//! `tests/clients/tus-upload.mjs`, with the packages `npm ci --prefix tests/clients` installs)
//! and tuspy under Python (`tests/clients/tuspy-upload.py`, `pip install tuspy`). Each prints
//! one JSON object; a missing client is [`unavailable`](crate::common::unavailable).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub use crate::common::clients::dir;
use crate::common::clients::run;

use serde_json::Value;

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether Node and the installed tus-js-client are here; says why not when they are not.
pub fn tus_js_client() -> bool {
    let installed = dir()
        .join("node_modules/tus-js-client/package.json")
        .is_file();
    if runs("node", &["--version"]) && installed {
        return true;
    }
    crate::common::unavailable(
        "tus-js-client is not installed (needs node, then npm ci --prefix tests/clients; .ci/run does it)",
    );
    false
}

/// Whether Python with tuspy is here; says why not when it is not.
pub fn tuspy() -> bool {
    if runs("python3", &["-c", "import tusclient.client"]) {
        return true;
    }
    crate::common::unavailable(
        "tuspy is not installed (python3 -m pip install tuspy; .ci/run does it)",
    );
    false
}

/// What a tus-js-client run is to do.
pub struct JsUpload<'a> {
    pub file: &'a Path,
    pub token: &'a str,
    /// Creates a new upload here (`endpoint`), or resumes this one (`uploadUrl`).
    pub endpoint: Option<String>,
    pub upload_url: Option<String>,
    pub chunk_size: usize,
    pub metadata: Value,
    /// Aborts once this fraction of the file is acknowledged.
    pub stop_at: Option<f64>,
    pub defer_length: bool,
    pub data_during_creation: bool,
}

impl<'a> JsUpload<'a> {
    pub fn new(file: &'a Path, token: &'a str) -> Self {
        JsUpload {
            file,
            token,
            endpoint: None,
            upload_url: None,
            chunk_size: 1 << 20,
            metadata: Value::Object(Default::default()),
            stop_at: None,
            defer_length: false,
            data_during_creation: false,
        }
    }

    /// Runs `tus-upload.mjs`; answers its result (`outcome`, `url`, `offset`, `mediaId`,
    /// `requests` ...).
    pub fn run(&self) -> Value {
        let mut cmd = script(
            ["node", "tus-upload.mjs"],
            self.file,
            self.token,
            self.chunk_size,
            &self.metadata,
            self.endpoint.as_deref(),
        );
        if let Some(u) = &self.upload_url {
            cmd.args(["--upload-url", u]);
        }
        if let Some(f) = self.stop_at {
            cmd.args(["--stop-at", &f.to_string()]);
        }
        if self.defer_length {
            cmd.arg("--defer-length");
        }
        if self.data_during_creation {
            cmd.arg("--data-during-creation");
        }
        run(cmd, Duration::from_secs(180))
    }
}

/// A client script's command, with the arguments every script takes.
fn script(
    [program, file_name]: [&str; 2],
    file: &Path,
    token: &str,
    chunk_size: usize,
    metadata: &Value,
    endpoint: Option<&str>,
) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg(file_name)
        .arg("--file")
        .arg(file)
        .args(["--token", token])
        .args(["--chunk-size", &chunk_size.to_string()])
        .args(["--metadata", &metadata.to_string()]);
    if let Some(e) = endpoint {
        cmd.args(["--endpoint", e]);
    }
    cmd
}

/// What a tuspy run is to do.
pub struct PyUpload<'a> {
    pub file: &'a Path,
    pub token: &'a str,
    pub endpoint: Option<String>,
    pub url: Option<String>,
    pub chunk_size: usize,
    pub metadata: Value,
    /// Sends bytes up to this offset, then stops.
    pub stop_at: Option<u64>,
    pub checksum: bool,
}

impl<'a> PyUpload<'a> {
    pub fn new(file: &'a Path, token: &'a str) -> Self {
        PyUpload {
            file,
            token,
            endpoint: None,
            url: None,
            chunk_size: 1 << 20,
            metadata: Value::Object(Default::default()),
            stop_at: None,
            checksum: false,
        }
    }

    /// Runs `tuspy-upload.py`; answers its result (`outcome`, `url`, `offset`,
    /// `start_offset`, `media_id` ...).
    pub fn run(&self) -> Value {
        let mut cmd = script(
            ["python3", "tuspy-upload.py"],
            self.file,
            self.token,
            self.chunk_size,
            &self.metadata,
            self.endpoint.as_deref(),
        );
        if let Some(u) = &self.url {
            cmd.args(["--url", u]);
        }
        if let Some(n) = self.stop_at {
            cmd.args(["--stop-at", &n.to_string()]);
        }
        if self.checksum {
            cmd.arg("--checksum");
        }
        run(cmd, Duration::from_secs(180))
    }
}

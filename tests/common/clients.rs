//! The real client programs the black-box tests drive (tus and S3 clients under Node and
//! Python), run as subprocesses from `tests/clients/`, each printing one JSON object.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `tests/clients/`, where the scripts and their `node_modules` live.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Runs one client command from `tests/clients/`, killed after `limit`; answers the JSON it
/// printed. Panics when it printed none.
pub fn run(mut cmd: Command, limit: Duration) -> Value {
    cmd.current_dir(dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    // Read both pipes on their own threads, so a chatty client never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the client") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} ran past {limit:?}:\n{}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    let line = out.lines().rev().find(|l| l.starts_with('{'));
    match line.and_then(|l| serde_json::from_str::<Value>(l).ok()) {
        Some(v) => v,
        None => panic!("{what} printed no result ({status}):\n{out}\n{err}"),
    }
}

/// Whether Python with boto3 is here; says why not when it is not.
pub fn boto3() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        super::unavailable(
            "boto3 is not installed (python3 -m pip install boto3; .ci/run does it)",
        );
    }
    found
}

/// One run of `s3-boto.py`: `scenario` against `endpoint` with a key, plus `extra` arguments.
pub fn boto(scenario: &str, endpoint: &str, key: &(String, String), extra: &[&str]) -> Value {
    let mut cmd = Command::new("python3");
    cmd.arg("s3-boto.py")
        .arg(scenario)
        .args(["--endpoint", endpoint])
        .args(["--key", &key.0])
        .args(["--secret", &key.1])
        .args(extra)
        // A CA bundle of the developer's machine has no place in a plain-http test.
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    run(cmd, Duration::from_secs(240))
}

/// Asserts a scenario passed, showing its trace when it did not.
pub fn passed(v: &Value) {
    assert_eq!(
        v["ok"],
        true,
        "{}\n{}",
        v["error"],
        v["trace"].as_str().unwrap_or("")
    );
}

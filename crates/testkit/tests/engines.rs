//! The kit against the real engines: PostgreSQL keeps a committed row across a SIGKILL, and a
//! 3-node Garage serves objects put through one node from another, with a node down too.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use shoebox_testkit::{unavailable, Garage, Postgres};

#[test]
fn postgres_keeps_a_committed_row_across_a_kill_and_a_restart() {
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    let url = pg.database("a");
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{}/a", pg.port())
    );
    assert_eq!(pg.database("a"), url, "a second call finds the database");
    assert_eq!(psql(&url, "SHOW listen_addresses"), "127.0.0.1");
    assert_eq!(psql(&url, "SHOW fsync"), "on");
    assert_eq!(psql(&url, "SELECT current_database()"), "a");
    assert_eq!(pg.psql("a", "SELECT current_database(), 1 + 1"), "a|2");

    psql(
        &url,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')",
    );
    pg.kill();
    let down = psql_command(&url, "SELECT 1")
        .output()
        .expect("running psql");
    assert!(
        !down.status.success(),
        "the server still answers after kill()"
    );

    pg.restart();
    assert_eq!(psql(&url, "SELECT v FROM t"), "kept");
    assert_eq!(
        pg.database("b"),
        format!("postgres://postgres@127.0.0.1:{}/b", pg.port())
    );
}

/// A backend busy in a query notices its postmaster's death only when it next waits, and it
/// leads a session of its own, outside the postmaster's process group: `kill` still leaves
/// nothing running, so the restart finds its shared memory free.
#[test]
fn postgres_restarts_after_a_kill_that_interrupted_a_busy_query() {
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    let url = pg.database("busy");
    let endless = "SELECT count(*) FROM generate_series(1, 1000000000000)";
    let mut busy = psql_command(&url, endless)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("running psql");
    let running = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '{endless}'"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while pg.psql("busy", &running) != "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "the query never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    pg.kill();
    pg.restart();
    assert_eq!(pg.psql("busy", "SELECT 1"), "1");
    let _ = busy.kill();
    let _ = busy.wait();
}

#[test]
fn garage_serves_through_every_node_and_with_one_node_down() {
    let Some(mut garage) = Garage::start(3, "shoebox-kit") else {
        return;
    };
    if !Command::new("python3")
        .args(["-c", "import boto3"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        unavailable("python3 with boto3 (pip install boto3)");
        return;
    }
    assert_eq!(garage.region(), "garage");

    s3_put(&garage, 0, "shoebox-kit", "first", b"put through node 0");
    assert_eq!(
        s3_get(&garage, 2, "shoebox-kit", "first"),
        b"put through node 0"
    );

    // Quorum 2 of 3: writes and reads go on without node 1.
    garage.kill(1);
    assert!(
        !answers(&garage.endpoint(1)),
        "node 1's S3 port still answers after kill(1)"
    );
    s3_put(&garage, 0, "shoebox-kit", "second", b"put with node 1 down");
    assert_eq!(
        s3_get(&garage, 2, "shoebox-kit", "second"),
        b"put with node 1 down"
    );

    garage.restart(1);
    assert_eq!(
        s3_get(&garage, 1, "shoebox-kit", "second"),
        b"put with node 1 down"
    );
    assert_eq!(
        s3_get(&garage, 1, "shoebox-kit", "first"),
        b"put through node 0"
    );

    garage.create_bucket("shoebox-kit-other");
    s3_put(&garage, 1, "shoebox-kit-other", "third", b"another bucket");
    assert_eq!(
        s3_get(&garage, 0, "shoebox-kit-other", "third"),
        b"another bucket"
    );
}

/// psql's unaligned output for `sql` on `url`, trimmed; panics when psql fails.
fn psql(url: &str, sql: &str) -> String {
    let out = psql_command(url, sql).output().expect("running psql");
    assert!(out.status.success(), "psql {sql:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn psql_command(url: &str, sql: &str) -> Command {
    let mut cmd = Command::new(psql_program());
    cmd.args([
        "-X",
        "-w",
        "-v",
        "ON_ERROR_STOP=1",
        "-tA",
        "-d",
        url,
        "-c",
        sql,
    ]);
    cmd
}

/// psql on PATH, or in the newest /usr/lib/postgresql/*/bin.
fn psql_program() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("psql"))
            .find(|p| p.is_file())
    });
    on_path
        .or_else(|| {
            let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join("bin/psql"))
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            found.pop()
        })
        .expect("psql, since Postgres::start found PostgreSQL's programs")
}

/// boto3, with Garage's key and region and path-style addressing, and no retries: a request
/// that needs one is a failure here.
const S3: &str = r#"
import os, sys, boto3
from botocore.config import Config
op, endpoint, bucket, key = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=os.environ["S3_REGION"],
                  aws_access_key_id=os.environ["S3_KEY_ID"],
                  aws_secret_access_key=os.environ["S3_SECRET"],
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
if op == "put":
    s3.put_object(Bucket=bucket, Key=key, Body=sys.stdin.buffer.read())
else:
    sys.stdout.buffer.write(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
"#;

fn s3(garage: &Garage, op: &str, node: usize, bucket: &str, key: &str, body: &[u8]) -> Vec<u8> {
    let mut child = Command::new("python3")
        .args(["-c", S3, op, &garage.endpoint(node), bucket, key])
        .env("S3_REGION", garage.region())
        .env("S3_KEY_ID", &garage.key().id)
        .env("S3_SECRET", &garage.key().secret)
        // No profile or config file of the machine's may change what boto3 does.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running python3");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(body).expect("writing to python3");
    drop(stdin);
    let out = child.wait_with_output().expect("running python3");
    assert!(
        out.status.success(),
        "S3 {op} {bucket}/{key} through node {node}: {}",
        describe(&out)
    );
    out.stdout
}

fn s3_put(garage: &Garage, node: usize, bucket: &str, key: &str, body: &[u8]) {
    s3(garage, "put", node, bucket, key, body);
}

fn s3_get(garage: &Garage, node: usize, bucket: &str, key: &str) -> Vec<u8> {
    s3(garage, "get", node, bucket, key, b"")
}

fn answers(endpoint: &str) -> bool {
    let addr: SocketAddr = endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("an endpoint of the form http://127.0.0.1:PORT");
    assert!(addr.ip().is_loopback(), "{endpoint} is not on loopback");
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

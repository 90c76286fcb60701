//! Black-box tests of what operators watch: metrics, request ids, JSON logs and the `health`
//! subcommand.

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::{bytes, error_code, TestServer};
use serde_json::Value;

/// Parses Prometheus/OpenMetrics text into `name{labels}` → value.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("malformed metrics line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("malformed value in {line:?}"));
        out.insert(key.to_owned(), value);
    }
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics text ends with # EOF"
    );
    out
}

fn sum(metrics: &HashMap<String, f64>, prefix: &str, needle: &str) -> f64 {
    metrics
        .iter()
        .filter(|(k, _)| k.starts_with(prefix) && k.contains(needle))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn metrics_move_with_traffic() {
    let s = TestServer::builder()
        .arg("--metrics-token")
        .arg("scrape-only-token-123")
        .start();
    assert_eq!(
        error_code(s.get("/metrics").send().unwrap(), 401),
        "unauthorized"
    );
    let scrape = |token: &str| {
        parse_metrics(
            &s.get("/metrics")
                .bearer_auth(token)
                .send()
                .unwrap()
                .text()
                .unwrap(),
        )
    };
    let before = scrape(common::TOKEN);

    let data = bytes(10_000, 1);
    let item = s.upload("a.bin", &data, &[]);
    s.upload("again.bin", &data, &[]);
    let hash = item["hash"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(s.get(&format!("/f/{hash}")).send().unwrap().status(), 200);
    }
    assert_eq!(s.get("/nope").send().unwrap().status(), 404);

    let after = scrape("scrape-only-token-123");
    let gets = sum(
        &after,
        "shoebox_http_requests_total",
        r#"route="/f/{hash}",status="200""#,
    );
    assert_eq!(gets, 3.0, "{after:?}");
    assert!(sum(&after, "shoebox_http_requests_total", r#"status="404""#) >= 1.0);
    assert!(
        sum(
            &after,
            "shoebox_http_request_duration_seconds_count",
            r#"route="/f/{hash}""#
        ) >= 3.0
    );
    assert!(
        sum(
            &after,
            "shoebox_http_response_bytes_total",
            r#"route="/f/{hash}""#
        ) >= 30_000.0
    );
    assert!(
        sum(
            &after,
            "shoebox_http_request_bytes_total",
            r#"route="/api/media""#
        ) >= 20_000.0
    );
    assert_eq!(
        after["shoebox_uploads_total"]
            - before.get("shoebox_uploads_total").copied().unwrap_or(0.0),
        2.0
    );
    assert_eq!(after["shoebox_dedup_hits_total"], 1.0);
    assert_eq!(after["shoebox_blobs"], 1.0);
    assert_eq!(after["shoebox_blob_bytes"], 10_000.0);
    assert!(after["shoebox_disk_free_bytes"] > 0.0);
    assert!(after["shoebox_sled_bytes"] > 0.0);
    assert!(
        after["shoebox_fsync_duration_seconds_count"]
            > before
                .get("shoebox_fsync_duration_seconds_count")
                .copied()
                .unwrap_or(0.0)
    );
}

#[test]
fn request_ids_are_echoed_or_made() {
    let s = TestServer::start();
    let res = s
        .get("/api/health")
        .header("x-request-id", "abc-123")
        .send()
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let res = s
        .get("/api/media")
        .header("x-request-id", "bad id with spaces")
        .send()
        .unwrap();
    let made = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 16);
    // The response can arrive before the reader thread has collected the log line.
    common::eventually(
        "the log line carries the id",
        std::time::Duration::from_secs(5),
        || s.output().contains(&made),
    );
}

#[test]
fn json_logs_are_one_object_per_line_without_secrets() {
    let s = TestServer::builder()
        .arg("--log-format")
        .arg("json")
        .start();
    s.upload("a.txt", b"hello", &[]);
    s.get("/api/media")
        .header("x-request-id", "find-me")
        .send()
        .unwrap();
    common::eventually("the access line", std::time::Duration::from_secs(5), || {
        s.output().contains("find-me")
    });
    let out = s.output();
    let mut access = None;
    for line in out.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["request_id"] == "find-me" {
            access = Some(v);
        }
    }
    let access = access.expect("an access line");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["route"], "/api/media");
    assert_eq!(access["status"], 200);
    assert!(access["latency_ms"].as_f64().is_some() && access["bytes_out"].as_u64().is_some());
    assert!(
        !out.contains(common::TOKEN),
        "the token never reaches the log"
    );
}

/// A 500 tells the client only that the log has details; the access line with the request's
/// id carries them.
#[test]
fn an_error_answer_is_logged_with_its_cause_on_its_request_line() {
    let s = TestServer::builder()
        .arg("--log-format")
        .arg("json")
        .start();
    let item = s.upload("a.txt", b"soon gone", &[]);
    std::fs::remove_file(s.blob_path(item["hash"].as_str().unwrap())).unwrap();
    let res = s
        .get(&format!("/m/{}", item["id"].as_str().unwrap()))
        .header("x-request-id", "find-the-cause")
        .send()
        .unwrap();
    assert_eq!(res.status(), 500);
    assert!(
        !res.text().unwrap().contains("unreadable"),
        "details stay in the log"
    );
    common::eventually("the access line", std::time::Duration::from_secs(5), || {
        s.output().contains("find-the-cause")
    });
    let out = s.output();
    let line: Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["request_id"] == "find-the-cause")
        .expect("the access line");
    assert_eq!(line["status"], 500);
    assert!(
        line["error"]
            .as_str()
            .is_some_and(|e| e.contains("unreadable")),
        "{line}"
    );
    let ok: Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["status"] == 201)
        .expect("the upload's access line");
    assert!(ok.get("error").is_none(), "{ok}");
}

#[test]
fn the_health_subcommand_exits_0_for_a_live_server_and_1_for_a_dead_one() {
    let mut s = TestServer::start();
    let run = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_shoebox"))
            .env_clear()
            .args(["health", "--url", url, "--timeout", "3s"])
            .output()
            .unwrap()
    };
    let out = run(&s.base);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("200 ok"));
    let base = s.base.clone();
    s.kill();
    let out = run(&base);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // PORT picks the default URL, as in the container's HEALTHCHECK.
    let out = Command::new(env!("CARGO_BIN_EXE_shoebox"))
        .env_clear()
        .env("PORT", base.rsplit(':').next().unwrap())
        .args(["health", "--timeout", "2s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1"));
}

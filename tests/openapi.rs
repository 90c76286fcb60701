//! The OpenAPI document at `/api/openapi.json`, fetched from the real binary: structurally valid
//! OpenAPI 3, describing exactly the routes the server registers (`shoebox::http::route_table`,
//! the list `routes()` registers from), and honest enough that schemathesis, fuzzing every
//! operation from it, finds no server error.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestServer, TOKEN};
use serde_json::Value;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document(server: &TestServer) -> Value {
    let res = server.get("/api/openapi.json").send().expect("fetch");
    assert_eq!(res.status(), 200);
    assert!(res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json")));
    res.json().expect("the document is JSON")
}

/// An actix pattern in OpenAPI's spelling: `{path:.*}` becomes `{path}`.
fn openapi_path(pattern: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    let mut skipping = false;
    for c in pattern.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push(c);
            }
            '}' if in_param => {
                in_param = false;
                skipping = false;
                out.push(c);
            }
            ':' if in_param => skipping = true,
            _ if skipping => {}
            _ => out.push(c),
        }
    }
    out
}

/// The parameter names of a path template.
fn template_params(path: &str) -> BTreeSet<String> {
    path.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

/// Resolves a local reference (`#/components/...`), with JSON Pointer escapes.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

/// Every `$ref` anywhere in `v`, with where it was found.
fn refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "$ref" {
                    out.push((at.to_owned(), child.as_str().unwrap_or_default().to_owned()));
                } else {
                    refs(child, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                refs(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Follows a `$ref` if `v` is one.
fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, r).unwrap_or(v),
        None => v,
    }
}

#[test]
fn the_document_is_valid_openapi_3_and_describes_every_route() {
    let server = TestServer::start();
    let doc = document(&server);

    // The top level.
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "OpenAPI 3, not {version}");
    assert!(doc["info"]["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let paths = doc["paths"].as_object().expect("paths");
    let components = doc["components"].as_object().expect("components");
    for section in ["schemas", "responses", "securitySchemes"] {
        assert!(components[section].is_object(), "components.{section}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["cookie"]["in"],
        "cookie"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["cookie"]["name"],
        "shoebox_session"
    );

    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, "#", &mut all);
    assert!(all.len() > 20, "the document uses references");
    for (at, reference) in &all {
        assert!(
            resolve(&doc, reference).is_some(),
            "{reference} (at {at}) does not resolve"
        );
    }

    // Every operation: a unique id, known tags and security schemes, valid status codes, and
    // exactly the path parameters its template names.
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let mut ids = BTreeSet::new();
    let mut described = BTreeSet::new();
    for (path, item) in paths {
        assert!(path.starts_with('/'), "{path}");
        let item = item.as_object().expect("path item");
        for (method, op) in item {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            described.insert((method.clone(), path.clone()));
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            for tag in op["tags"].as_array().into_iter().flatten() {
                assert!(tags.contains(tag.as_str().unwrap_or_default()), "{tag}");
            }
            for requirement in op["security"].as_array().into_iter().flatten() {
                for scheme in requirement.as_object().expect("requirement").keys() {
                    assert!(
                        components["securitySchemes"].get(scheme).is_some(),
                        "{scheme}"
                    );
                }
            }
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path} has no responses");
            for (status, response) in responses {
                let code: u16 = status.parse().expect("a numeric status");
                assert!((100..600).contains(&code), "{status}");
                let response = deref(&doc, response);
                assert!(
                    response["description"].is_string(),
                    "{method} {path} {status} has no description"
                );
                // JSON errors use the error body; only the health check answers its 503
                // with its own report.
                let json = &response["content"]["application/json"]["schema"];
                if code >= 400 && !json.is_null() {
                    let is_error = deref(&doc, json)["properties"]["error"]["$ref"]
                        == "#/components/schemas/ErrorDetail";
                    let is_health =
                        path == "/api/health" && json["$ref"] == "#/components/schemas/Health";
                    assert!(is_error || is_health, "{method} {path} {status}: {json}");
                }
            }
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| deref(&doc, p))
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(p["required"], true, "path parameters are required");
                    p["name"].as_str().unwrap_or_default().to_owned()
                })
                .collect();
            assert_eq!(declared, template_params(path), "{method} {path}");
        }
    }

    // The routes the server registers are exactly the operations described.
    let registered: BTreeSet<(String, String)> = shoebox::http::route_table()
        .iter()
        .map(|(method, pattern)| (method.to_ascii_lowercase(), openapi_path(pattern)))
        .collect();
    assert!(registered.len() >= 20, "{registered:?}");
    let undescribed: Vec<_> = registered.difference(&described).collect();
    let unregistered: Vec<_> = described.difference(&registered).collect();
    assert!(
        undescribed.is_empty(),
        "served but not described: {undescribed:?}"
    );
    assert!(
        unregistered.is_empty(),
        "described but not served: {unregistered:?}"
    );

    // The upload accepts both body forms, and binary routes say what they send.
    let upload = &doc["paths"]["/api/media"]["post"]["requestBody"]["content"];
    assert_eq!(
        upload["multipart/form-data"]["schema"]["properties"]["file"]["items"]["format"],
        "binary"
    );
    assert_eq!(
        upload["application/octet-stream"]["schema"]["format"],
        "binary"
    );
    assert!(
        doc["paths"]["/api/backup"]["get"]["responses"]["200"]["content"]
            .get("application/x-tar")
            .is_some()
    );
    assert!(
        doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
            .as_object()
            .is_some_and(|c| c
                .keys()
                .any(|k| k.starts_with("application/openmetrics-text")))
    );
}

#[test]
fn answers_are_the_ones_the_document_lists() {
    let server = TestServer::start();
    let doc = document(&server);
    let documented = |method: &str, path: &str, status: u16| {
        doc["paths"][path][method]["responses"]
            .get(status.to_string())
            .is_some()
    };
    let item = server.upload("a.txt", b"hello", &[("visibility", "private")]);
    server.upload("b.txt", b"in a collection", &[("collection", "stories")]);
    let id = item["id"].as_str().expect("id");
    // The record as served has every field the schema requires.
    let record = &doc["components"]["schemas"]["MediaRecord"];
    for field in record["required"].as_array().expect("required") {
        let field = field.as_str().unwrap_or_default();
        assert!(item.get(field).is_some(), "{field} missing from {item}");
    }
    for field in ["url", "blob_url"] {
        assert!(item[field].is_string(), "{field}");
    }

    let id_path = format!("/api/media/{id}");
    let cases: Vec<(&str, &str, reqwest::blocking::RequestBuilder)> = vec![
        ("get", "/api/media", server.get("/api/media?limit=0")),
        ("get", "/api/media", server.get("/api/media")),
        ("get", "/api/media/{id}", server.get(&id_path)),
        (
            "get",
            "/api/media/{id}",
            server.get(&id_path).bearer_auth("wrong-token-0123456789"),
        ),
        (
            "patch",
            "/api/media/{id}",
            server
                .authed(reqwest::Method::PATCH, &id_path)
                .header("content-type", "text/plain")
                .body("title=x"),
        ),
        (
            "patch",
            "/api/media/{id}",
            server
                .authed(reqwest::Method::PATCH, &id_path)
                .header("content-type", "application/json")
                .body(format!("{{\"title\": \"{}\"}}", "x".repeat(70_000))),
        ),
        (
            "delete",
            "/api/media/{id}",
            server.client().delete(server.url(&id_path)),
        ),
        ("get", "/api/status", server.get("/api/status")),
        ("get", "/metrics", server.get("/metrics")),
        ("get", "/api/backup", server.get("/api/backup")),
        ("get", "/api/session", server.get("/api/session")),
        (
            "post",
            "/api/session",
            server.client().post(server.url("/api/session")),
        ),
        ("get", "/m/{id}", server.get(&format!("/m/{id}"))),
        (
            "get",
            "/f/{hash}",
            server
                .authed(
                    reqwest::Method::GET,
                    &format!("/f/{}", item["hash"].as_str().unwrap_or_default()),
                )
                .header("range", "bytes=100-200"),
        ),
        ("get", "/c/{collection}", server.get("/c/a%2Fb")),
        ("get", "/api/collections", server.get("/api/collections")),
        (
            "put",
            "/api/collections/{name}",
            server
                .authed(reqwest::Method::PUT, "/api/collections/a%2Fb")
                .json(&serde_json::json!({"public": true})),
        ),
        (
            "put",
            "/api/collections/{name}",
            server
                .client()
                .put(server.url("/api/collections/x"))
                .json(&serde_json::json!({"public": true})),
        ),
        (
            "put",
            "/api/collections/{name}",
            server
                .authed(reqwest::Method::PUT, "/api/collections/x")
                .body("public=true"),
        ),
        (
            "put",
            "/api/collections/{name}",
            server
                .authed(reqwest::Method::PUT, "/api/collections/x")
                .json(&serde_json::json!({"public": true})),
        ),
        (
            "delete",
            "/api/collections/{name}",
            server.authed(reqwest::Method::DELETE, "/api/collections/none"),
        ),
        (
            "delete",
            "/api/collections/{name}",
            server.authed(reqwest::Method::DELETE, "/api/collections/x"),
        ),
        (
            "delete",
            "/api/collections/{name}",
            server.authed(reqwest::Method::DELETE, "/api/collections/stories"),
        ),
        ("get", "/api/health", server.get("/api/health")),
    ];
    for (method, path, request) in cases {
        let res = request.send().expect("request");
        let status = res.status().as_u16();
        assert!(
            documented(method, path, status),
            "{method} {path} answered {status}, which the document does not list"
        );
        if status >= 400 && path.starts_with("/api/") {
            let body: Value = res.json().expect("errors are JSON");
            assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string());
        }
    }
}

/// The schemathesis command line: `st`, `schemathesis`, or the module.
fn schemathesis() -> Option<Vec<String>> {
    let candidates: [&[&str]; 3] = [
        &["st"],
        &["schemathesis"],
        &["python3", "-m", "schemathesis.cli"],
    ];
    candidates.iter().find_map(|argv| {
        let ok = Command::new(argv[0])
            .args(&argv[1..])
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| argv.iter().map(|s| s.to_string()).collect())
    })
}

/// Fuzzes every operation from the document with the admin token (examples, coverage, fuzzing
/// and stateful phases) and fails on any 5xx, and on any request the server drops. Bounded:
/// `--max-examples 20` per operation, 10 s per request, 150 s in all (about 15 s here).
#[test]
fn schemathesis_finds_no_server_errors() {
    let Some(argv) = schemathesis() else {
        common::unavailable(
            "schemathesis is not installed (pip install schemathesis; .ci/run installs it)",
        );
        return;
    };
    let server = TestServer::start();
    // Hypothesis keeps state in the working directory: give it a temporary one.
    let work = tempfile::tempdir().expect("temp dir");
    // A tus chunk (`application/offset+octet-stream`) is bytes, sent as octet-stream bodies are.
    std::fs::write(
        work.path().join("shoebox_hooks.py"),
        "import schemathesis\n\
         schemathesis.serializer.alias('application/offset+octet-stream', \
         'application/octet-stream')\n",
    )
    .expect("write the hooks");
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .arg("run")
        .arg(server.url("/api/openapi.json"))
        .args(["--checks", "not_a_server_error"])
        .args(["--max-examples", "20"])
        .args(["--request-timeout", "10"])
        .args(["--generation-database", "none"])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .arg("--no-color")
        .current_dir(work.path())
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "shoebox_hooks")
        .env("PYTHONPATH", work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start schemathesis");
    let output = {
        // Read both pipes on threads so a chatty run cannot block on a full pipe.
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        let deadline = Instant::now() + Duration::from_secs(150);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let text = out.join().unwrap_or_default() + &err.join().unwrap_or_default();
        (status, text)
    };
    let (status, text) = output;
    let Some(status) = status else {
        panic!("schemathesis ran past 150 s:\n{text}");
    };
    if !status.success() {
        // CI shows the end of a failure's output: the server's errors first, schemathesis's
        // report (what failed, and the curl line that reproduces it) last.
        let log = server.output();
        let errors: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("status=5") || l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        panic!(
            "--- server errors ---\n{}\n--- schemathesis found problems (exit {status}) ---\n{text}",
            errors.join("\n")
        );
    }
    assert!(
        text.contains("passed"),
        "schemathesis ran no test cases:\n{text}"
    );
}

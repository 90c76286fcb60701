//! Browser tests: the web app in headless Chromium against the real binary.
//!
//! Screenshots land in target/tmp/browser/.

#[path = "../common/mod.rs"]
mod common;
mod driver;
mod fixtures;

mod attack;
mod collections;
mod gallery;
mod pictures;
mod resumable;
mod sign_in;
mod tokens;
mod uploads;

use common::TestServer;
use driver::Browser;
use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::Locator;
use serde_json::{json, Value};

/// What `GET /api/status` answers, for rendering the panel where the route does not exist yet.
const STATUS_SAMPLE: &str = r#"{"version": "0.1.0", "uptime_seconds": 93784,
  "data_dir": "/var/data",
  "persistent": {"persistent": false, "reason": "/var/data is on the container's root filesystem (overlay), not a mounted disk", "fs_type": "overlay"},
  "disk": {"free_bytes": 7300000000, "total_bytes": 10000000000, "reserve_bytes": 100000000},
  "media": {"count": 42, "bytes": 96000000}, "blobs": {"count": 40, "bytes": 91000000},
  "meta_bytes": 1200000}"#;

/// Fills the sign-in form.
async fn sign_in(b: &Browser, base: &str, token: &str) {
    b.client().goto(&format!("{base}/")).await.expect("open");
    let input = b.visible("#token").await;
    input.send_keys(token).await.expect("type token");
    click(b, "#sign-in-button").await;
}

fn assert_no_page_errors(errors: &[String]) {
    assert!(
        errors.is_empty(),
        "the page logged errors:\n{}",
        errors.join("\n")
    );
}

/// Example media so the gallery shows every kind of preview.
fn seed(s: &TestServer) {
    type Item<'a> = (&'a str, Vec<u8>, &'a [(&'a str, &'a str)]);
    let items: [Item; 6] = [
        (
            "menu.pdf",
            fixtures::pdf(),
            &[("title", "Summer menu"), ("collection", "cafe")],
        ),
        (
            "birdsong.wav",
            fixtures::wav(),
            &[("title", "Morning birdsong"), ("collection", "stories")],
        ),
        (
            "night.png",
            fixtures::landscape(2),
            &[
                ("title", "Night over the ridge"),
                ("collection", "stories"),
                ("alt", "Stars above dark hills"),
            ],
        ),
        (
            "desert.png",
            fixtures::landscape(3),
            &[("title", "Dunes"), ("visibility", "private")],
        ),
        (
            "coast.png",
            fixtures::landscape(4),
            &[
                ("title", "The cove"),
                ("tags", "sea, summer"),
                ("collection", "stories"),
            ],
        ),
        (
            "dusk.png",
            fixtures::landscape(0),
            &[("title", "Dusk on the hill"), ("collection", "stories")],
        ),
    ];
    for (name, bytes, fields) in items {
        s.upload(name, &bytes, fields);
    }
}

/// Creates an API token through the API with the admin token; returns its id and value.
fn api_token(s: &TestServer, name: &str, scope: &str, days: Option<u64>) -> (String, String) {
    let mut body = json!({ "name": name, "scope": scope });
    if let Some(d) = days {
        body["expires_in_days"] = json!(d);
    }
    let res = s
        .authed(reqwest::Method::POST, "/api/tokens")
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    let t: Value = res.json().unwrap();
    (
        t["id"].as_str().unwrap().to_owned(),
        t["token"].as_str().unwrap().to_owned(),
    )
}

async fn click(b: &Browser, css: &str) {
    b.visible(css).await.click().await.expect("click");
}

/// Sends keys to an element (visible or not: a file input is usually hidden).
async fn type_into(b: &Browser, css: &str, keys: &str) {
    let e = b.client().find(Locator::Css(css)).await.expect(css);
    e.send_keys(keys).await.expect("send keys");
}

/// Moves the pointer to the page's corner, so no hover state shows in a screenshot.
async fn park_pointer(b: &Browser) {
    let park = MouseActions::new("mouse".into()).then(PointerAction::MoveTo {
        duration: None,
        x: 1.0,
        y: 1.0,
    });
    b.client()
        .perform_actions(park)
        .await
        .expect("move the pointer");
}

/// Lets colour transitions finish after a colour-scheme change, before a screenshot.
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
}

//! Browser tests: the web app in headless Chromium against the real binary.
//!
//! Screenshots land in target/tmp/browser/.

#[path = "../common/mod.rs"]
mod common;
mod driver;
mod fixtures;

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
    b.client()
        .find(Locator::Css("#sign-in-button"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
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

#[test]
fn web_app_signs_in_uploads_edits_across_a_restart_and_deletes() {
    let Some(b) = Browser::start("web_app_signs_in_uploads_edits_across_a_restart_and_deletes")
    else {
        return;
    };
    let s = TestServer::start();
    seed(&s);
    let token = s.token.clone().unwrap_or_default();
    let harbour = b.dir.path().join("harbour.png");
    let meadow = b.dir.path().join("meadow.png");
    std::fs::write(&harbour, fixtures::landscape(5)).unwrap();
    std::fs::write(&meadow, fixtures::landscape(1)).unwrap();
    let mut errors = Vec::new();

    let (harbour_id, meadow_id) = b.block(async {
        sign_in(&b, &s.base, &token).await;
        b.visible("#app").await;
        b.text_contains("#role", "Admin").await;

        // Upload two files through the page's own file input.
        b.client()
            .find(Locator::Css(".tabs a[data-view=upload]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.visible("#dropzone").await;
        b.client()
            .find(Locator::Css("#shared-collection"))
            .await
            .unwrap()
            .send_keys("trips")
            .await
            .unwrap();
        let input = b.client().find(Locator::Css("#file-input")).await.unwrap();
        input
            .send_keys(&format!("{}\n{}", harbour.display(), meadow.display()))
            .await
            .expect("choose two files");
        b.wait_js(
            "two queued files",
            "return document.querySelectorAll('.upload-item[data-state=ready]').length === 2",
            vec![],
        )
        .await;
        b.text_contains("#start-upload", "Upload 2 files").await;
        b.screenshot("upload-queued").await;
        b.client()
            .find(Locator::Css("#start-upload"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.wait_js(
            "both uploads to finish",
            "const items = [...document.querySelectorAll('.upload-item')]; \
             return items.length === 2 && items.every(i => i.dataset.state === 'done' \
               && i.querySelector('progress').value === 100 \
               && i.querySelector('.item-result input').value.includes('/m/'));",
            vec![],
        )
        .await;
        b.text_contains("#queue-summary", "2 done").await;
        b.screenshot("upload-done").await;
        b.client().set_window_size(390, 844).await.unwrap();
        b.screenshot("upload-phone").await;
        b.client().set_window_size(1280, 900).await.unwrap();
        let links = b
            .eval(
                "return [...document.querySelectorAll('.item-result input')].map(i => \
                 i.value.split('/m/')[1])",
            )
            .await;
        errors.extend(b.page_errors().await);
        let ids: Vec<String> = serde_json::from_value(links).unwrap();
        (ids[0].clone(), ids[1].clone())
    });

    b.block(async {
        // After a reload both are in the gallery, newest first, with the seeded media.
        b.client().refresh().await.unwrap();
        b.visible("#app").await;
        b.client().goto(&format!("{}/#gallery", s.base)).await.unwrap();
        b.visible("#grid").await;
        for id in [&harbour_id, &meadow_id] {
            b.visible(&format!(".card[data-id='{id}']")).await;
        }
        b.wait_js(
            "eight cards",
            "return document.querySelectorAll('#grid .card').length === 8",
            vec![],
        )
        .await;
        b.wait_js(
            "the pictures to load",
            "return [...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)",
            vec![],
        )
        .await;
        let first = b
            .eval("return document.querySelector('#grid .card').dataset.id")
            .await;
        assert!(
            first == json!(meadow_id) || first == json!(harbour_id),
            "newest first: {first}"
        );
        b.screenshot("gallery").await;

        b.client().set_window_size(390, 844).await.unwrap();
        b.screenshot("gallery-phone").await;
        b.client().set_window_size(1280, 900).await.unwrap();
        b.color_scheme("dark").await;
        b.screenshot("gallery-dark").await;
        b.color_scheme("light").await;

        // The status panel degrades gracefully where /api/status is missing or failing.
        b.client()
            .find(Locator::Css(".tabs a[data-view=status]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.visible("#status-body .notice, #status-body .stat").await;
        b.screenshot("status").await;
        // The panel and the banner render the documented /api/status shape.
        b.eval(&format!(
            "const real = window.fetch; const sample = {STATUS_SAMPLE}; \
             window.fetch = (url, init) => String(url).endsWith('/api/status') \
               ? Promise.resolve(new Response(JSON.stringify(sample), \
                   {{ status: 200, headers: {{ 'content-type': 'application/json' }} }})) \
               : real(url, init); \
             document.querySelector('#status-refresh').click(); return true;"
        ))
        .await;
        b.visible("#disk-banner").await;
        b.text_contains("#disk-banner", "not on a persistent disk").await;
        b.text_contains("#status-body", "/var/data").await;
        b.text_contains("#status-body", "42").await;
        b.screenshot("status-sample").await;

        // Edit a title in the details dialog.
        b.client().goto(&format!("{}/#gallery", s.base)).await.unwrap();
        let title = format!(".card[data-id='{harbour_id}'] .card-title");
        b.visible(&title).await.click().await.unwrap();
        b.visible("#details[open] #details-title").await;
        b.screenshot("details").await;
        let field = b.client().find(Locator::Css("#details-title")).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys("Harbour at dawn").await.unwrap();
        b.client()
            .find(Locator::Css("#details-save"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.wait_js(
            "the dialog to close",
            "return !document.querySelector('#details').open",
            vec![],
        )
        .await;
        b.text_contains(&title, "Harbour at dawn").await;
        errors.extend(b.page_errors().await);
    });

    // A restart (on a new port) keeps the edit, and the browser stays signed in.
    let s = s.restart();
    b.block(async {
        b.client().goto(&format!("{}/#gallery", s.base)).await.unwrap();
        b.visible("#app").await;
        let title = format!(".card[data-id='{harbour_id}'] .card-title");
        b.visible(&title).await;
        b.text_contains(&title, "Harbour at dawn").await;

        // Delete the other one, with confirmation.
        let card = format!(".card[data-id='{meadow_id}'] .card-title");
        b.visible(&card).await.click().await.unwrap();
        b.visible("#details[open] #details-delete")
            .await
            .click()
            .await
            .unwrap();
        b.visible("#confirm-yes").await;
        b.text_contains("#confirm-text", "cannot be undone").await;
        b.screenshot("delete-confirm").await;
        b.client()
            .find(Locator::Css("#confirm-yes"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.wait_js(
            "the card to go",
            "return !document.querySelector(arguments[0])",
            vec![json!(format!(".card[data-id='{meadow_id}']"))],
        )
        .await;
        b.client().refresh().await.unwrap();
        b.visible(&format!(".card[data-id='{harbour_id}']")).await;
        let gone: Value = b
            .eval(&format!(
                "return !document.querySelector(\".card[data-id='{meadow_id}']\")"
            ))
            .await;
        assert_eq!(gone, json!(true));

        // The public page of a collection works under its strict policy.
        b.client().goto(&format!("{}/c/stories", s.base)).await.unwrap();
        b.visible("figure img").await;
        b.wait_js(
            "the collection's pictures to load",
            "return [...document.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0)",
            vec![],
        )
        .await;
        b.screenshot("collection").await;
        b.client().goto(&format!("{}/#upload", s.base)).await.unwrap();
        b.visible("#dropzone").await;

        // Signing out shows the sign-in form again.
        b.client()
            .find(Locator::Css("#sign-out"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.visible("#token").await;
        errors.extend(b.page_errors().await);
    });

    let res = s.get(&format!("/api/media/{meadow_id}")).send().unwrap();
    assert_eq!(res.status(), 404, "deleted on the server too");
    let kept: Value = s
        .get(&format!("/api/media/{harbour_id}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(kept["title"], "Harbour at dawn");
    assert_eq!(kept["collection"], "trips");
    assert_no_page_errors(&errors);
}

#[test]
fn a_wrong_token_is_refused_with_a_visible_message() {
    let Some(b) = Browser::start("a_wrong_token_is_refused_with_a_visible_message") else {
        return;
    };
    let s = TestServer::start();
    let errors = b.block(async {
        sign_in(&b, &s.base, "this-is-not-the-token").await;
        let message = b.visible("#sign-in-error").await;
        b.text_contains("#sign-in-error", "not valid").await;
        assert!(message.text().await.unwrap().contains("not valid"));
        let app_hidden = b.eval("return document.querySelector('#app').hidden").await;
        assert_eq!(app_hidden, json!(true));
        b.screenshot("sign-in-refused").await;
        b.page_errors().await
    });
    assert_no_page_errors(&errors);
}

#[test]
fn the_error_check_sees_script_errors() {
    let Some(b) = Browser::start("the_error_check_sees_script_errors") else {
        return;
    };
    let s = TestServer::start();
    let errors = b.block(async {
        b.client().goto(&format!("{}/", s.base)).await.unwrap();
        b.visible("#token").await;
        assert!(b.page_errors().await.is_empty(), "a clean start");
        b.eval("setTimeout(() => { throw new Error('uncaught-in-test'); }); console.error('logged-in-test'); return true;")
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        b.page_errors().await
    });
    let all = errors.join("\n");
    assert!(all.contains("uncaught-in-test"), "{all}");
    assert!(all.contains("logged-in-test"), "{all}");
}

#[test]
fn gallery_pages_as_you_scroll_filters_and_works_from_the_keyboard() {
    let Some(b) = Browser::start("gallery_pages_as_you_scroll_filters_and_works_from_the_keyboard")
    else {
        return;
    };
    let s = TestServer::start();
    let tile = fixtures::png(32, 24, |x, y| [(x * 8) as u8, (y * 10) as u8, 160]);
    let mut form = reqwest::blocking::multipart::Form::new().text("collection", "tiles");
    for i in 0..40 {
        form = form.part(
            "file",
            reqwest::blocking::multipart::Part::bytes(
                tile.iter().map(|b| b ^ (i as u8 & 1)).collect::<Vec<u8>>(),
            )
            .file_name(format!("tile-{i:02}.png")),
        );
    }
    let res = s
        .authed(reqwest::Method::POST, "/api/media")
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    s.upload("birdsong.wav", &fixtures::wav(), &[("title", "Birdsong")]);
    let token = s.token.clone().unwrap_or_default();

    let errors = b.block(async {
        sign_in(&b, &s.base, &token).await;
        b.visible("#app").await;
        b.wait_js(
            "the first page",
            "return document.querySelectorAll('#grid .card').length === 30",
            vec![],
        )
        .await;
        b.eval("window.scrollTo(0, document.body.scrollHeight); return true;")
            .await;
        b.wait_js(
            "the rest as the page scrolls",
            "return document.querySelectorAll('#grid .card').length === 41",
            vec![],
        )
        .await;

        // Filters: kind, then text search.
        let kind = b.client().find(Locator::Css("#filter-kind")).await.unwrap();
        kind.select_by_value("audio").await.unwrap();
        let chosen = b
            .eval("return document.querySelector('#filter-kind').value")
            .await;
        assert_eq!(chosen, json!("audio"));
        b.wait_js(
            "only the audio",
            "const cards = document.querySelectorAll('#grid .card'); \
             return cards.length === 1 && cards[0].classList.contains('kind-audio');",
            vec![],
        )
        .await;
        kind.select_by_value("").await.unwrap();
        b.client()
            .find(Locator::Css("#filter-q"))
            .await
            .unwrap()
            .send_keys("tile-07")
            .await
            .unwrap();
        b.wait_js(
            "the search result",
            "const cards = document.querySelectorAll('#grid .card'); \
             return cards.length === 1 && cards[0].textContent.includes('tile-07.png');",
            vec![],
        )
        .await;

        // Keyboard: Enter on a card's title opens its details, Escape closes them and puts
        // the focus back.
        let title = b.visible("#grid .card .card-title").await;
        title.send_keys("\u{E007}").await.unwrap();
        b.wait_js(
            "the dialog to open",
            "return document.querySelector('#details').open && \
             document.activeElement.id === 'details-title'",
            vec![],
        )
        .await;
        b.client()
            .find(Locator::Css("#details-title"))
            .await
            .unwrap()
            .send_keys("\u{E00C}")
            .await
            .unwrap();
        b.wait_js(
            "the dialog to close with focus back on the card",
            "return !document.querySelector('#details').open && \
             document.activeElement.classList.contains('card-title')",
            vec![],
        )
        .await;
        b.page_errors().await
    });
    assert_no_page_errors(&errors);
}

#[test]
fn upload_errors_are_explained_per_file() {
    let Some(b) = Browser::start("upload_errors_are_explained_per_file") else {
        return;
    };
    let mut s = TestServer::builder()
        .arg("--max-upload-bytes")
        .arg("64KB")
        .start();
    let token = s.token.clone().unwrap_or_default();
    let big = b.dir.path().join("too-big.png");
    let small = b.dir.path().join("small.png");
    let late = b.dir.path().join("late.png");
    std::fs::write(&big, fixtures::landscape(1)).unwrap();
    let tile = fixtures::png(40, 30, |x, y| [200, (x * 6) as u8, (y * 8) as u8]);
    std::fs::write(&small, &tile).unwrap();
    std::fs::write(&late, &tile).unwrap();

    let mut errors = b.block(async {
        sign_in(&b, &s.base, &token).await;
        b.visible("#app").await;
        b.client()
            .goto(&format!("{}/#upload", s.base))
            .await
            .unwrap();
        b.text_contains("#upload-limit", "64 KB").await;
        let input = b.client().find(Locator::Css("#file-input")).await.unwrap();
        input
            .send_keys(&format!("{}\n{}", big.display(), small.display()))
            .await
            .unwrap();
        // Too large is known before sending, and says what the limit is.
        b.text_contains(
            ".upload-item[data-state=error] .item-status",
            "Too large: this server accepts files up to 64 KB",
        )
        .await;
        // A file's own fields: open its details and give it a title.
        b.visible(".upload-item[data-state=ready] [aria-controls]")
            .await
            .click()
            .await
            .unwrap();
        b.visible(".upload-item[data-state=ready] input[name=title]")
            .await
            .send_keys("Own title")
            .await
            .unwrap();
        b.screenshot("upload-errors").await;
        b.client()
            .find(Locator::Css("#start-upload"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.visible(".upload-item[data-state=done]").await;
        b.page_errors().await
    });
    let listed: Value = s
        .authed(reqwest::Method::GET, "/api/media")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["title"], "Own title");

    // The server goes away: the next upload reports a lost connection.
    s.kill();
    errors.extend(b.block(async {
        let input = b.client().find(Locator::Css("#file-input")).await.unwrap();
        input.send_keys(&late.display().to_string()).await.unwrap();
        b.visible("#start-upload").await.click().await.unwrap();
        b.text_contains(
            ".upload-item[data-state=error]:last-child .item-status",
            "network connection was lost",
        )
        .await;
        b.visible(".upload-item[data-state=error]:last-child .item-actions button")
            .await;
        b.text_contains(
            ".upload-item[data-state=error]:last-child .item-actions",
            "Retry",
        )
        .await;
        b.page_errors().await
    }));
    assert_no_page_errors(&errors);
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

/// Whether any request of this page went to an admin-only route.
const ADMIN_ROUTES_CALLED: &str = "return performance.getEntriesByType('resource') \
     .some(e => /\\/api\\/(status|tokens)/.test(e.name))";

#[test]
fn admins_manage_tokens_and_token_sessions_see_only_what_their_scope_allows() {
    let Some(b) =
        Browser::start("admins_manage_tokens_and_token_sessions_see_only_what_their_scope_allows")
    else {
        return;
    };
    let s = TestServer::start();
    let admin = s.token.clone().unwrap_or_default();
    // The admin's media: others may see it, not change it.
    let night = s.upload(
        "night.png",
        &fixtures::landscape(2),
        &[("title", "Night over the ridge")],
    );
    s.upload(
        "desert.png",
        &fixtures::landscape(3),
        &[("title", "Dunes"), ("visibility", "private")],
    );
    let (laptop, _) = api_token(&s, "Old laptop", "upload", None);
    let (_, reader) = api_token(&s, "Analytics reader", "read", Some(365));
    // One that has run out, made with the command line as an operator would.
    let (code, out) = common::run_cli(
        &[
            "token",
            "create",
            "--name",
            "Import script",
            "--scope",
            "upload",
            "--expires-in",
            "1s",
        ],
        &s.data_dir,
    );
    assert_eq!(code, 0, "{out}");
    // Past its expiry, and past the server's once-a-second look at the token file.
    std::thread::sleep(std::time::Duration::from_millis(1500));

    let (created, mut errors) = b.block(async {
        sign_in(&b, &s.base, &admin).await;
        b.visible("#app").await;
        b.text_contains("#role", "Admin").await;
        b.visible(".tabs a[data-view=status]").await;
        click(&b, ".tabs a[data-view=tokens]").await;
        b.visible(&format!(".token-row[data-id='{laptop}'][data-state=active]"))
            .await;
        b.visible(".token-row[data-state=expired]").await;
        b.text_contains("#tokens-list", "Analytics reader").await;
        b.text_contains("#tokens-count", "3 tokens · 2 active").await;

        // Create an upload token from the keyboard: Enter in the last field submits.
        b.visible("#token-name")
            .await
            .send_keys("Phone uploader")
            .await
            .unwrap();
        b.client()
            .find(Locator::Css("#token-scope"))
            .await
            .unwrap()
            .select_by_value("upload")
            .await
            .unwrap();
        b.client()
            .find(Locator::Css("#token-expiry"))
            .await
            .unwrap()
            .send_keys("30\u{E007}")
            .await
            .unwrap();
        b.visible("#token-reveal #new-token-value").await;
        b.text_contains("#token-reveal", "you will not see this token again")
            .await;
        b.text_contains("#token-reveal-heading", "Phone uploader").await;
        let value = b
            .eval("return document.querySelector('#new-token-value').value")
            .await;
        let value = value.as_str().unwrap_or_default().to_owned();
        assert!(
            value.starts_with("sbx_") && value.len() == 68,
            "the token is shown: {value:?}"
        );
        let focused = b.eval("return document.activeElement.id").await;
        assert_eq!(focused, json!("new-token-value"), "focus on the new token");
        click(&b, "#new-token-copy button").await;
        b.wait_js(
            "the copy button to answer",
            "const t = document.querySelector('#new-token-copy button').textContent; \
             return t.includes('Copied') || t.includes('Ctrl+C');",
            vec![],
        )
        .await;
        b.wait_js(
            "the new token in the list",
            "return [...document.querySelectorAll('.token-row[data-state=active]')] \
             .some(r => r.textContent.includes('Phone uploader') && r.textContent.includes('Upload'))",
            vec![],
        )
        .await;
        b.screenshot("tokens-created").await;
        b.color_scheme("dark").await;
        settle().await;
        b.screenshot("tokens-created-dark").await;
        b.color_scheme("light").await;

        // Revoking asks first; keeping it changes nothing.
        let revoke = format!(".token-row[data-id='{laptop}'] .token-actions button");
        click(&b, &revoke).await;
        b.visible("#revoke-dialog[open] #revoke-yes").await;
        b.text_contains("#revoke-text", "Old laptop").await;
        b.text_contains("#revoke-text", "cannot be undone").await;
        let focused = b.eval("return document.activeElement.id").await;
        assert_eq!(focused, json!("revoke-cancel"), "the safe choice has focus");
        b.screenshot("tokens-revoke-confirm").await;
        click(&b, "#revoke-cancel").await;
        b.wait_js(
            "the dialog to close with the token still active",
            "return !document.querySelector('#revoke-dialog').open && \
             !!document.querySelector(arguments[0])",
            vec![json!(format!(
                ".token-row[data-id='{laptop}'][data-state=active]"
            ))],
        )
        .await;
        click(&b, &revoke).await;
        click(&b, "#revoke-dialog[open] #revoke-yes").await;
        let row = format!(".token-row[data-id='{laptop}'][data-state=revoked]");
        b.visible(&row).await;
        b.text_contains(&row, "Revoked").await;
        b.text_contains("#tokens-count", "4 tokens · 2 active").await;
        let gone = b
            .eval(&format!(
                "return !document.querySelector(\".token-row[data-id='{laptop}'] .token-actions button\")"
            ))
            .await;
        assert_eq!(gone, json!(true), "a revoked token has no revoke button");

        // Done with the value: it leaves the page.
        click(&b, "#token-reveal-done").await;
        b.wait_js(
            "the value to be gone",
            "return document.querySelector('#token-reveal').hidden && \
             document.querySelector('#new-token-value').value === ''",
            vec![],
        )
        .await;
        b.eval("document.activeElement.blur(); window.scrollTo(0, 0); return true;")
            .await;
        park_pointer(&b).await;
        b.screenshot("tokens").await;
        b.client().set_window_size(390, 844).await.unwrap();
        b.screenshot("tokens-phone").await;
        b.client().set_window_size(1280, 900).await.unwrap();
        b.color_scheme("dark").await;
        settle().await;
        b.screenshot("tokens-dark").await;
        b.color_scheme("light").await;
        (value, b.page_errors().await)
    });

    let listed: Value = s
        .authed(reqwest::Method::GET, "/api/tokens")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let items = listed["items"].as_array().unwrap();
    let by_name = |n: &str| items.iter().find(|t| t["name"] == n).unwrap().clone();
    assert!(by_name("Old laptop")["revoked_at"].is_string());
    assert!(by_name("Analytics reader")["revoked_at"].is_null());
    let phone = by_name("Phone uploader");
    assert_eq!(phone["scope"], "upload");
    assert!(phone["expires_at"].is_string() && phone["revoked_at"].is_null());
    let phone_id = phone["id"].as_str().unwrap().to_owned();

    // A fresh browser signs in with the new upload token.
    drop(b);
    let Some(b) = Browser::start("upload token session") else {
        return;
    };
    let photo = b.dir.path().join("harbour.png");
    std::fs::write(&photo, fixtures::landscape(5)).unwrap();
    let (mine, more) = b.block(async {
        sign_in(&b, &s.base, &created).await;
        b.visible("#app").await;
        b.text_contains("#role", "Uploader").await;
        let tabs = b
            .eval(
                "return [...document.querySelectorAll('.tabs a')] \
                 .filter(a => a.getClientRects().length > 0).map(a => a.dataset.view)",
            )
            .await;
        assert_eq!(tabs, json!(["upload", "gallery"]), "no tokens or status tab");
        // A link to the tokens view lands on the gallery.
        b.client().goto(&format!("{}/#tokens", s.base)).await.unwrap();
        b.visible("#view-gallery").await;
        b.wait_js(
            "the address to say gallery",
            "return location.hash === '#gallery' && document.querySelector('#view-tokens').hidden",
            vec![],
        )
        .await;

        // Uploading works.
        click(&b, ".tabs a[data-view=upload]").await;
        b.client()
            .find(Locator::Css("#file-input"))
            .await
            .unwrap()
            .send_keys(&photo.display().to_string())
            .await
            .unwrap();
        click(&b, "#start-upload").await;
        b.wait_js(
            "the upload to finish",
            "const i = document.querySelector('.upload-item'); \
             return !!i && i.dataset.state === 'done' && \
             i.querySelector('.item-result input').value.includes('/m/');",
            vec![],
        )
        .await;
        let link = b
            .eval("return document.querySelector('.item-result input').value.split('/m/')[1]")
            .await;
        let mine = link.as_str().unwrap().to_owned();

        // In the gallery its own upload can be changed, the admin's cannot.
        click(&b, ".tabs a[data-view=gallery]").await;
        let own = format!(".card[data-id='{mine}']");
        let theirs = format!(".card[data-id='{}']", night["id"].as_str().unwrap());
        b.visible(&own).await;
        b.visible(&theirs).await;
        let edits = b
            .eval(&format!(
                "return [!!document.querySelector(\"{own} .card-edit\"), \
                 !!document.querySelector(\"{theirs} .card-edit\")]"
            ))
            .await;
        assert_eq!(edits, json!([true, false]));
        click(&b, &format!("{theirs} .card-title")).await;
        b.visible("#details[open] #details-readonly").await;
        b.text_contains("#details-readonly", "Uploaded by someone else")
            .await;
        let locked = b
            .eval(
                "return [document.querySelector('#details-save').disabled, \
                 document.querySelector('#details-delete').disabled, \
                 document.querySelector('#details-title').readOnly, \
                 [...document.querySelectorAll('#details [name=visibility]')].every(r => r.disabled)]",
            )
            .await;
        assert_eq!(locked, json!([true, true, true, true]));
        b.screenshot("uploader-details-readonly").await;
        b.client()
            .find(Locator::Css("#details-link"))
            .await
            .unwrap()
            .send_keys("\u{E00C}")
            .await
            .unwrap();
        b.wait_js(
            "the dialog to close",
            "return !document.querySelector('#details').open",
            vec![],
        )
        .await;
        click(&b, &format!("{own} .card-title")).await;
        b.visible("#details[open] #details-title").await;
        let open = b
            .eval(
                "return [document.querySelector('#details-readonly').hidden, \
                 document.querySelector('#details-save').disabled, \
                 document.querySelector('#details-delete').disabled]",
            )
            .await;
        assert_eq!(open, json!([true, false, false]));
        let field = b.client().find(Locator::Css("#details-title")).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys("Harbour from my phone").await.unwrap();
        click(&b, "#details-save").await;
        b.text_contains(&format!("{own} .card-title"), "Harbour from my phone")
            .await;
        b.screenshot("uploader-gallery").await;
        let called = b.eval(ADMIN_ROUTES_CALLED).await;
        assert_eq!(called, json!(false), "no admin-only request");
        (mine, b.page_errors().await)
    });
    errors.extend(more);
    let record: Value = s
        .authed(reqwest::Method::GET, &format!("/api/media/{mine}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(record["owner"], json!(phone_id), "owned by the token");
    assert_eq!(record["title"], "Harbour from my phone");

    // A read token: no upload, no tokens, no status; everything read-only.
    errors.extend(b.block(async {
        click(&b, "#sign-out").await;
        b.visible("#token").await;
        sign_in(&b, &s.base, &reader).await;
        b.visible("#app").await;
        b.text_contains("#role", "Reader").await;
        let tabs = b
            .eval(
                "return [...document.querySelectorAll('.tabs a')] \
                 .filter(a => a.getClientRects().length > 0).map(a => a.dataset.view)",
            )
            .await;
        assert_eq!(tabs, json!(["gallery"]));
        b.client()
            .goto(&format!("{}/#upload", s.base))
            .await
            .unwrap();
        b.visible("#view-gallery").await;
        b.wait_js(
            "the upload view to stay hidden",
            "return location.hash === '#gallery' && document.querySelector('#view-upload').hidden",
            vec![],
        )
        .await;
        // Private media are there to read, not to change.
        b.wait_js(
            "all three pictures, the private one too",
            "return document.querySelectorAll('#grid .card').length === 3 && \
             document.querySelectorAll('#grid .card-edit').length === 0",
            vec![],
        )
        .await;
        click(&b, "#grid .card .card-title").await;
        b.visible("#details[open] #details-readonly").await;
        b.text_contains("#details-readonly", "read media but not change")
            .await;
        let called = b.eval(ADMIN_ROUTES_CALLED).await;
        assert_eq!(called, json!(false), "no admin-only request");
        b.page_errors().await
    }));
    assert_no_page_errors(&errors);
}

/// The attack round's stored-script hole: an upload token stores an XML document whose image
/// has a script handler, declared `text/xsl` and named without an extension. A signed-in admin
/// who opens its links (`/m/{id}` and `/f/{hash}`) must run none of it: its script would make
/// an admin token with the session cookie. The files are downloads under a sandbox instead.
#[test]
fn an_uploaded_document_runs_no_script_for_a_signed_in_admin() {
    let Some(b) = Browser::start("an_uploaded_document_runs_no_script_for_a_signed_in_admin")
    else {
        return;
    };
    let s = TestServer::start();
    let (_, uploader) = api_token(&s, "uploader", "upload", None);
    let attack = r#"<?xml version="1.0"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>holiday</title></head><body>
<img src="nowhere" onerror="document.title = 'RAN'; fetch('/api/tokens', {method: 'POST',
  credentials: 'include', headers: {'Content-Type': 'application/json'},
  body: JSON.stringify({name: 'planted', scope: 'admin'})})"/>
<script>document.title = 'RAN';</script>
</body></html>"#;
    let res = s
        .client()
        .post(s.url("/api/media?filename=holiday-photos&visibility=public"))
        .bearer_auth(&uploader)
        .header("Content-Type", "text/xsl")
        .body(attack)
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    let item: Value = res.json::<Value>().unwrap()["items"][0].clone();
    let tokens = |s: &TestServer| -> Vec<String> {
        let list: Value = s
            .authed(reqwest::Method::GET, "/api/tokens")
            .send()
            .unwrap()
            .json()
            .unwrap();
        list["items"]
            .as_array()
            .or(list.as_array())
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let before = tokens(&s);
    let titles = b.block(async {
        sign_in(&b, &s.base, common::TOKEN).await;
        b.visible("#app").await;
        let mut titles = Vec::new();
        for path in [
            format!("/m/{}", item["id"].as_str().unwrap()),
            format!("/f/{}", item["hash"].as_str().unwrap()),
        ] {
            let _ = b.client().goto(&format!("{}{path}", s.base)).await;
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            titles.push(b.client().title().await.unwrap_or_default());
        }
        titles
    });
    assert!(
        titles.iter().all(|t| t != "RAN"),
        "a script of the upload ran: {titles:?}"
    );
    let after = tokens(&s);
    assert_eq!(before, after, "no token was made");
    assert!(!after.iter().any(|n| n == "planted"));
}

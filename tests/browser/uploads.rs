//! Uploading, editing and deleting through the web app, and per-file upload errors.

use super::*;

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
        click(&b, ".tabs a[data-view=upload]").await;
        b.visible("#dropzone").await;
        type_into(&b, "#shared-collection", "trips").await;
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
        click(&b, "#start-upload").await;
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
        click(&b, ".tabs a[data-view=status]").await;
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
        click(&b, "#details-save").await;
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
        click(&b, "#confirm-yes").await;
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
        click(&b, "#sign-out").await;
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
        click(&b, "#start-upload").await;
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

//! Managing tokens, and what a token's session may see.

use super::*;

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

    let ((created, key_id, secret), mut errors) = b.block(async {
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
        type_into(&b, "#token-expiry", "30\u{E007}").await;
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
        let s3_shown = b.eval("return !document.querySelector('#new-s3').hidden").await;
        assert_eq!(s3_shown, json!(false), "no S3 credentials unless asked for");
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

        // With S3 credentials: the access key id and its secret are shown beside the token, once.
        b.visible("#token-name")
            .await
            .send_keys("Backup sync")
            .await
            .unwrap();
        click(&b, "#token-s3").await;
        click(&b, "#token-create").await;
        b.visible("#token-reveal #new-s3 #new-secret-key").await;
        b.text_contains("#token-reveal-heading", "Backup sync").await;
        b.text_contains("#token-reveal", "or its secret access key again")
            .await;
        let shown = b
            .eval(
                "return ['#new-token-value', '#new-access-key-id', '#new-secret-key'] \
                 .map(s => document.querySelector(s).value)",
            )
            .await;
        let shown: Vec<String> = serde_json::from_value(shown).unwrap();
        let [s3_token, key_id, secret] = <[String; 3]>::try_from(shown).unwrap();
        assert!(s3_token.starts_with("sbx_"), "{s3_token:?}");
        assert!(
            key_id.len() == 20 && key_id.starts_with("SBX"),
            "the access key id is shown: {key_id:?}"
        );
        assert_eq!(secret.len(), 40, "the secret is shown: {secret:?}");
        click(&b, "#new-secret-key-copy button").await;
        b.wait_js(
            "the secret's copy button to answer",
            "const t = document.querySelector('#new-secret-key-copy button').textContent; \
             return t.includes('Copied') || t.includes('Ctrl+C');",
            vec![],
        )
        .await;
        b.wait_js(
            "the new token in the list with its access key id, and the box unticked",
            "return !document.querySelector('#token-s3').checked && \
             [...document.querySelectorAll('.token-row[data-state=active]')] \
             .some(r => r.textContent.includes('Backup sync') && r.textContent.includes(arguments[0]))",
            vec![json!(key_id)],
        )
        .await;
        b.text_contains("#tokens-count", "5 tokens · 3 active").await;
        b.screenshot("tokens-created-s3").await;
        click(&b, "#token-reveal-done").await;
        b.wait_js(
            "the key and secret to be gone",
            "return document.querySelector('#new-s3').hidden && \
             document.querySelector('#new-secret-key').value === '' && \
             document.querySelector('#new-access-key-id').value === ''",
            vec![],
        )
        .await;
        let in_page = b
            .eval(&format!(
                "return document.documentElement.outerHTML.includes('{secret}')"
            ))
            .await;
        assert_eq!(in_page, json!(false), "no trace of the secret in the page");

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
        ((value, key_id, secret), b.page_errors().await)
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
    assert!(phone.get("access_key_id").is_none());
    let sync = by_name("Backup sync");
    assert_eq!(sync["access_key_id"], json!(key_id));
    assert!(!listed.to_string().contains(&secret), "never listed");
    let stored = std::fs::read_to_string(s.data_dir.join("secrets/s3_keys.json")).unwrap();
    assert!(stored.contains(&secret), "the secret shown is the one kept");

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
        type_into(&b, "#file-input", &photo.display().to_string()).await;
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
        type_into(&b, "#details-link", "\u{E00C}").await;
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

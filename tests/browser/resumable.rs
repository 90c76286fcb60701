//! Big files go through tus: an upload carries on after the network drops out, and after a
//! reload the page offers to resume what was left unfinished. Neither starts over, which the
//! server's count of received tus bytes proves.

use std::time::Duration;

use super::*;
use crate::common::{bytes, sha256_hex};
use driver::Network;

/// 40 MB: five 8 MiB tus chunks, the last one short.
const SIZE: usize = 40_000_000;

/// A second, smaller file that still goes through tus (above 8 MiB).
const OTHER_SIZE: usize = 24_000_000;

/// How long a whole upload may take on a busy two-core machine.
const LONG: Duration = Duration::from_secs(120);

/// The bytes the server has taken in through tus, from `/metrics`.
fn tus_received(s: &TestServer) -> u64 {
    let text = s
        .authed(reqwest::Method::GET, "/metrics")
        .send()
        .expect("GET /metrics")
        .text()
        .expect("metrics text");
    let values: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("shoebox_tus_received_bytes_total"))
        .filter(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        .filter_map(|rest| rest.rsplit_once(' ')?.1.parse().ok())
        .collect();
    assert!(
        !values.is_empty(),
        "/metrics has no shoebox_tus_received_bytes_total:\n{text}"
    );
    values.iter().sum::<f64>() as u64
}

/// The server's offset of an upload, asked with the admin token (its owner, as the admin
/// session is); `None` when the server no longer has it.
fn tus_offset(s: &TestServer, upload_url: &str) -> Option<u64> {
    let res = s
        .client()
        .head(upload_url)
        .bearer_auth(s.token.clone().unwrap_or_default())
        .header("Tus-Resumable", "1.0.0")
        .send()
        .expect("HEAD the upload");
    if res.status() == 404 {
        return None;
    }
    assert_eq!(res.status(), 200, "HEAD {upload_url}");
    let offset = res.headers()["upload-offset"].to_str().unwrap();
    Some(offset.parse().expect("a numeric Upload-Offset"))
}

/// The uploads tus-js-client remembers in this browser: `{filename: uploadUrl}`.
async fn remembered(b: &Browser) -> Value {
    b.eval(
        "const out = {}; \
         for (const k of Object.keys(localStorage).filter(k => k.startsWith('tus::'))) { \
           const u = JSON.parse(localStorage.getItem(k)); out[u.metadata.filename] = u.uploadUrl; } \
         return out;",
    )
    .await
}

/// Waits until the row of `name` in the queue is done, and returns its media id.
async fn finished(b: &Browser, name: &str) -> String {
    let row = "[...document.querySelectorAll('.upload-item')]\
               .find(i => i.querySelector('.item-name').textContent === arguments[0])";
    b.wait_js_for(
        &format!("the upload of {name} to finish"),
        &format!(
            "const i = {row}; return !!i && i.dataset.state === 'done' \
             && i.querySelector('progress').value === 100 \
             && i.querySelector('.item-result input').value.includes('/m/');"
        ),
        vec![json!(name)],
        LONG,
    )
    .await;
    let link = b
        .client()
        .execute(
            &format!("return {row}.querySelector('.item-result input').value"),
            vec![json!(name)],
        )
        .await
        .expect("the link");
    let link = link.as_str().expect("a link").to_owned();
    link.rsplit_once("/m/").expect("a /m/ link").1.to_owned()
}

/// A script expression: the progress bar of the row named `arguments[0]`, in percent.
const PROGRESS: &str = "(() => { const i = [...document.querySelectorAll('.upload-item')]\
    .find(i => i.querySelector('.item-name').textContent === arguments[0]); \
    return i ? i.querySelector('progress').value : -1; })()";

/// The stored file is the file: same bytes, and the fields it was sent with.
fn assert_stored(s: &TestServer, id: &str, data: &[u8], name: &str, title: &str) {
    let record: Value = s
        .authed(reqwest::Method::GET, &format!("/api/media/{id}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(record["filename"], name, "{record}");
    assert_eq!(record["title"], title, "{record}");
    assert_eq!(record["collection"], "trips", "{record}");
    assert_eq!(record["size"], json!(data.len()), "{record}");
    let sha = sha256_hex(data);
    assert_eq!(record["hash"], json!(sha), "{record}");
    assert_eq!(sha256_hex(&s.media_bytes(id)), sha, "the stored bytes");
}

async fn open_upload_view(b: &Browser, s: &TestServer, token: &str) {
    sign_in(b, &s.base, token).await;
    b.visible("#app").await;
    b.client()
        .goto(&format!("{}/#upload", s.base))
        .await
        .unwrap();
    b.visible("#dropzone").await;
}

async fn gallery_shows(b: &Browser, s: &TestServer, id: &str) {
    b.client()
        .goto(&format!("{}/#gallery", s.base))
        .await
        .unwrap();
    b.visible(&format!(".card[data-id='{id}']")).await;
}

#[test]
fn a_big_upload_carries_on_after_the_network_drops_out() {
    let Some(b) = Browser::start("a_big_upload_carries_on_after_the_network_drops_out") else {
        return;
    };
    let s = TestServer::start();
    let token = s.token.clone().unwrap_or_default();
    let data = bytes(SIZE, 40);
    let name = "harbour-timelapse.bin";
    let path = b.dir.path().join(name);
    std::fs::write(&path, &data).unwrap();

    let (id, errors) = b.block(async {
        open_upload_view(&b, &s, &token).await;
        type_into(&b, "#shared-title", "Harbour timelapse").await;
        type_into(&b, "#shared-collection", "trips").await;
        // Slow enough (about ten seconds for the file) that the network can drop mid-way.
        b.network(Network::SlowUpload(3_000_000)).await;
        type_into(&b, "#file-input", &path.display().to_string()).await;
        b.text_contains("#start-upload", "Upload 1 file").await;
        click(&b, "#start-upload").await;
        b.wait_js_for(
            "some bytes to be sent",
            &format!("return {PROGRESS} >= 10"),
            vec![json!(name)],
            LONG,
        )
        .await;

        b.network(Network::Offline).await;
        let cut_at = b
            .client()
            .execute(&format!("return {PROGRESS}"), vec![json!(name)])
            .await
            .unwrap();
        assert!(cut_at.as_f64().unwrap() < 70.0, "cut at {cut_at}%");
        // The next request fails; the page says so and keeps retrying rather than giving up.
        b.text_contains(".upload-item .item-status", "Connection lost")
            .await;
        b.screenshot("resumable-offline").await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        let state = b
            .eval("return document.querySelector('.upload-item').dataset.state")
            .await;
        assert_eq!(state, json!("uploading"), "still trying while offline");

        b.network(Network::Normal).await;
        let id = finished(&b, name).await;
        b.text_contains("#queue-summary", "1 done").await;
        b.screenshot("resumable-done").await;
        gallery_shows(&b, &s, &id).await;
        let left = remembered(&b).await;
        assert_eq!(left, json!({}), "a finished upload is forgotten");
        (id, b.page_errors().await)
    });

    let received = tus_received(&s);
    assert!(
        received >= SIZE as u64,
        "the file went through tus: {received} bytes"
    );
    assert!(
        (received as f64) < 1.3 * SIZE as f64,
        "resumed, not started over: {received} bytes received for {SIZE}"
    );
    assert_stored(&s, &id, &data, name, "Harbour timelapse");
    assert_no_page_errors(&errors);
}

#[test]
fn after_a_reload_the_page_offers_to_resume_or_discard_unfinished_uploads() {
    let Some(b) =
        Browser::start("after_a_reload_the_page_offers_to_resume_or_discard_unfinished_uploads")
    else {
        return;
    };
    let s = TestServer::start();
    let token = s.token.clone().unwrap_or_default();
    let data = bytes(SIZE, 41);
    let other = bytes(OTHER_SIZE, 42);
    let (name, other_name) = ("ferry-crossing.bin", "lighthouse.bin");
    let path = b.dir.path().join(name);
    let other_path = b.dir.path().join(other_name);
    std::fs::write(&path, &data).unwrap();
    std::fs::write(&other_path, &other).unwrap();

    // The blocking HTTP client cannot run inside the browser's runtime: checks with it go
    // between the browser's steps.
    let (urls, mut errors) = b.block(async {
        open_upload_view(&b, &s, &token).await;
        type_into(&b, "#shared-title", "Ferry crossing").await;
        type_into(&b, "#shared-collection", "trips").await;
        b.network(Network::SlowUpload(3_000_000)).await;
        type_into(
            &b,
            "#file-input",
            &format!("{}\n{}", path.display(), other_path.display()),
        )
        .await;
        b.text_contains("#start-upload", "Upload 2 files").await;
        click(&b, "#start-upload").await;
        // Both are under way: created on the server, remembered here, a fifth of one sent.
        b.wait_js_for(
            "both uploads to be under way",
            &format!(
                "return {PROGRESS} >= 20 && Object.keys(localStorage)\
                 .filter(k => k.startsWith('tus::')).length === 2"
            ),
            vec![json!(name)],
            LONG,
        )
        .await;

        b.client().refresh().await.unwrap();
        b.network(Network::Normal).await;
        b.visible("#app").await;
        b.visible("#resume-notice").await;
        b.wait_js(
            "two unfinished uploads",
            "return document.querySelectorAll('#resume-list .resume-item').length === 2",
            vec![],
        )
        .await;
        for n in [name, other_name] {
            b.text_contains("#resume-list", n).await;
        }
        b.text_contains("#resume-list", "% done").await;
        b.screenshot("resumable-notice").await;
        let urls = remembered(&b).await;
        (urls, b.page_errors().await)
    });
    let url = |n: &str| urls[n].as_str().expect("an upload URL").to_owned();
    let offset = tus_offset(&s, &url(name)).expect("the partial upload is kept");
    assert!(
        offset > 2 * 1024 * 1024,
        "the server kept the bytes sent before the reload: {offset}"
    );
    assert!(tus_offset(&s, &url(other_name)).is_some());

    // Discarding one deletes it on the server.
    b.block(async {
        let discard = format!(
            "[...document.querySelectorAll('#resume-list .resume-item')]\
             .find(r => r.textContent.includes('{other_name}')).querySelectorAll('button')[1].click(); \
             return true;"
        );
        b.eval(&discard).await;
        b.wait_js(
            "one unfinished upload",
            "return document.querySelectorAll('#resume-list .resume-item').length === 1",
            vec![],
        )
        .await;
        b.text_contains("#resume-list", name).await;
    });
    assert_eq!(
        tus_offset(&s, &url(other_name)),
        None,
        "the discarded upload is gone"
    );

    // Choosing the same file again carries on where it stopped, without a click on Upload.
    let before = tus_received(&s);
    let id = b.block(async {
        type_into(&b, "#file-input", &path.display().to_string()).await;
        let id = finished(&b, name).await;
        b.wait_js(
            "the notice to go",
            "return document.querySelector('#resume-notice').hidden",
            vec![],
        )
        .await;
        b.screenshot("resumable-resumed").await;
        gallery_shows(&b, &s, &id).await;
        assert_eq!(remembered(&b).await, json!({}), "nothing left to resume");
        errors.extend(b.page_errors().await);
        id
    });
    let resumed = tus_received(&s) - before;
    assert!(
        resumed <= SIZE as u64 - offset + 2 * 1024 * 1024,
        "resumed from {offset}, not started over: {resumed} bytes sent after the reload"
    );
    // The fields it was created with, though the form was empty after the reload.
    assert_stored(&s, &id, &data, name, "Ferry crossing");
    assert_no_page_errors(&errors);
}

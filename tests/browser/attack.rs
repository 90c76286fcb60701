//! Attacks on a signed-in admin through uploaded files.

use super::*;

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

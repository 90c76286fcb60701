//! The collections in the status view: the admin sees them and sets which are public by
//! default for S3 uploads, and adds an empty one.

use super::*;

#[test]
fn admins_see_collections_and_set_their_default_for_s3_uploads() {
    let Some(b) = Browser::start("admins_see_collections_and_set_their_default_for_s3_uploads")
    else {
        return;
    };
    let s = TestServer::start();
    s.upload(
        "night.png",
        &fixtures::landscape(2),
        &[("title", "Night over the ridge"), ("collection", "stories")],
    );
    let res = s
        .authed(reqwest::Method::PUT, "/api/collections/Archive")
        .json(&json!({"public": true}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let admin = s.token.clone().unwrap_or_default();

    let errors = b.block(async {
        sign_in(&b, &s.base, &admin).await;
        b.visible("#app").await;
        click(&b, ".tabs a[data-view=status]").await;
        let row = |name: &str| format!("#collections-list .collection-row[data-name='{name}']");
        b.visible(&row("stories")).await;
        b.text_contains(&row("stories"), "Made by its media").await;
        b.text_contains(&row("Archive"), "Added").await;
        let checked = |name: &str| {
            format!(
                "return document.querySelector(\"{} input\").checked",
                row(name)
            )
        };
        assert_eq!(b.eval(&checked("Archive")).await, json!(true));
        assert_eq!(b.eval(&checked("stories")).await, json!(false));

        // Turn it on; the setting is saved at once.
        click(&b, &format!("{} input", row("stories"))).await;
        b.text_contains("#toast", "now public by default").await;
        assert_eq!(b.eval(&checked("stories")).await, json!(true));

        // An empty collection, from the keyboard.
        type_into(&b, "#collection-name", "Été 2026\u{E007}").await;
        b.visible(&row("Été 2026")).await;
        assert_eq!(b.eval(&checked("Été 2026")).await, json!(false));
        let names = b
            .eval(
                "return [...document.querySelectorAll('#collections-list .collection-row')] \
                 .map(r => r.dataset.name)",
            )
            .await;
        assert_eq!(names, json!(["Archive", "stories", "Été 2026"]));
        park_pointer(&b).await;
        b.screenshot("collections").await;
        b.page_errors().await
    });
    assert_no_page_errors(&errors);

    let listed: Value = s.get("/api/collections").send().unwrap().json().unwrap();
    let settings: Vec<(&str, bool)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["public"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        settings,
        [("Archive", true), ("stories", true), ("Été 2026", false)]
    );
}

//! Signing in, and the check that sees script errors on the page.

use super::*;

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

//! The gallery: paging as you scroll, filters, the keyboard.

use super::*;

#[test]
fn gallery_pages_as_you_scroll_filters_and_works_from_the_keyboard() {
    let Some(b) = Browser::start("gallery_pages_as_you_scroll_filters_and_works_from_the_keyboard")
    else {
        return;
    };
    let s = TestServer::start();
    let mut form = reqwest::blocking::multipart::Form::new().text("collection", "tiles");
    for i in 0..40u8 {
        // Forty real pictures, each its own blob.
        let tile = fixtures::png(32, 24, |x, y| [(x * 8) as u8, (y * 10) as u8, 100 + i]);
        form = form.part(
            "file",
            reqwest::blocking::multipart::Part::bytes(tile).file_name(format!("tile-{i:02}.png")),
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
        type_into(&b, "#filter-q", "tile-07").await;
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
        type_into(&b, "#details-title", "\u{E00C}").await;
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

//! Pictures as people see them: the gallery and a collection page fetch sized variants, never
//! the originals.

use super::*;
use std::time::Duration;

/// A 2400×1800 JPEG made by ImageMagick (about a megabyte): `None` when ImageMagick is not here.
fn large_photo(dir: &std::path::Path) -> Option<Vec<u8>> {
    use common::tools::{self, Tool};
    if !tools::present(&[Tool::ImageMagick]) {
        return None;
    }
    let path = dir.join("large.jpg");
    let target = path.to_str().unwrap();
    tools::run(
        "convert",
        &[
            "-size",
            "2400x1800",
            "plasma:fractal",
            "-quality",
            "95",
            target,
        ],
    );
    Some(std::fs::read(path).unwrap())
}

/// What the page fetched for its pictures (not its own icons): bytes over the wire, and the
/// URLs.
const IMAGE_TRAFFIC: &str = "
    const images = performance.getEntriesByType('resource')
        .filter((e) => e.initiatorType === 'img' && !e.name.includes('/assets/'));
    return {
        bytes: images.reduce((sum, e) => sum + Math.max(e.transferSize, e.encodedBodySize), 0),
        urls: images.map((e) => e.name),
    };";

/// Scrolls to the end until every picture on the page has loaded.
const ALL_LOADED: &str = "
    window.scrollTo(0, document.body.scrollHeight);
    const images = [...document.querySelectorAll('img')];
    return images.length >= arguments[0]
        && images.every((i) => i.complete && i.naturalWidth > 0);";

/// Thirty photos of about a megabyte each: the gallery shows all of them, and the first page of
/// `/c/{collection}` 24, for less than 3 MB each, every picture a variant.
#[test]
fn thirty_large_photos_cost_the_pages_less_than_three_megabytes() {
    let Some(b) = Browser::start("thirty_large_photos_cost_the_pages_less_than_three_megabytes")
    else {
        return;
    };
    let Some(photo) = large_photo(b.dir.path()) else {
        return;
    };
    let s = TestServer::start();
    let mut originals = 0;
    for i in 0..30u8 {
        // Bytes after the end of the image: another blob, the same picture.
        let mut bytes = photo.clone();
        bytes.extend_from_slice(&[i; 16]);
        originals += bytes.len();
        s.upload(
            &format!("trip-{i:02}.jpg"),
            &bytes,
            &[("collection", "trip")],
        );
    }
    assert!(
        originals > 20 << 20,
        "the originals are large: {originals} bytes"
    );
    let token = s.token.clone().unwrap_or_default();
    let check = |page: &str, traffic: Value, shown: usize| {
        let bytes = traffic["bytes"].as_f64().unwrap();
        let urls = traffic["urls"].as_array().unwrap();
        assert!(urls.len() >= shown, "{page}: {urls:?}");
        for url in urls {
            let url = url.as_str().unwrap();
            assert!(url.contains("?w="), "{page} fetched an original: {url}");
        }
        assert!(
            bytes < 3.0 * 1024.0 * 1024.0,
            "{page} fetched {bytes} bytes of pictures"
        );
    };
    let (gallery, collection) = b.block(async {
        sign_in(&b, &s.base, &token).await;
        // Thirty variants made from 2.7 MB photos, two at a time on two cores shared with the
        // other browser tests' servers and Chromiums: up to three minutes. Only a bound on the
        // wait; what is asserted is bytes and URLs.
        b.wait_js_for(
            "every tile's picture",
            ALL_LOADED,
            vec![json!(30)],
            Duration::from_secs(180),
        )
        .await;
        let gallery = b.eval(IMAGE_TRAFFIC).await;
        b.screenshot("thirty_photos_gallery").await;
        b.client()
            .goto(&format!("{}/c/trip", s.base))
            .await
            .unwrap();
        // A collection page shows 24 at a time.
        b.wait_js("every picture of the page", ALL_LOADED, vec![json!(24)])
            .await;
        let collection = b.eval(IMAGE_TRAFFIC).await;
        b.screenshot("thirty_photos_collection").await;
        assert_no_page_errors(&b.page_errors().await);
        (gallery, collection)
    });
    check("the gallery", gallery, 30);
    check("the collection page", collection, 24);
}

//! Black-box tests of what the web app relies on: session cookies, the cross-site guard on
//! cookie-authenticated writes, and the public collection page.

mod common;

use common::{bytes, error_code, TestServer, TOKEN};
use reqwest::blocking::{multipart, Response};
use reqwest::header::{HeaderMap, COOKIE, ORIGIN, SET_COOKIE};
use reqwest::Method;
use serde_json::{json, Value};

fn png(seed: u64) -> Vec<u8> {
    let mut v = vec![
        0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R', 0, 0,
        1, 0, 0, 0, 0, 200, 8, 6, 0, 0, 0,
    ];
    v.extend(bytes(500, seed));
    v
}

fn wav() -> Vec<u8> {
    let samples = 800u32;
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + samples).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes()); // PCM
    v.extend_from_slice(&1u16.to_le_bytes()); // mono
    v.extend_from_slice(&8000u32.to_le_bytes());
    v.extend_from_slice(&8000u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&8u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&samples.to_le_bytes());
    v.extend(bytes(samples as usize, 9));
    v
}

/// Signs in and returns the `name=value` pair to send back as a Cookie header.
fn sign_in(s: &TestServer) -> String {
    let res = s
        .client()
        .post(s.url("/api/session"))
        .json(&json!({ "token": TOKEN }))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    set_cookie(res.headers())
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn set_cookie(headers: &HeaderMap) -> String {
    headers
        .get(SET_COOKIE)
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap()
        .to_owned()
}

/// A request carrying the session cookie and, optionally, an Origin.
fn with_cookie(
    s: &TestServer,
    cookie: &str,
    method: Method,
    path: &str,
    origin: Option<&str>,
) -> reqwest::blocking::RequestBuilder {
    let mut req = s
        .client()
        .request(method, s.url(path))
        .header(COOKIE, cookie);
    if let Some(o) = origin {
        req = req.header(ORIGIN, o);
    }
    req
}

fn retitle(req: reqwest::blocking::RequestBuilder, title: &str) -> Response {
    req.json(&json!({ "title": title })).send().unwrap()
}

#[test]
fn signing_in_sets_an_http_only_strict_cookie_that_authenticates() {
    let s = TestServer::start();
    let res = s
        .client()
        .post(s.url("/api/session"))
        .json(&json!({ "token": TOKEN }))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let set = set_cookie(res.headers());
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set.contains(flag), "{flag} missing in {set}");
    }
    assert!(!set.contains("Secure"), "plain http on loopback: {set}");
    assert!(!set.contains(TOKEN));
    let body: Value = res.json().unwrap();
    assert_eq!(body["role"], "admin");
    assert!(body["expires_at"].as_str().is_some());
    assert!(body["max_upload_bytes"].as_u64().is_some());

    let cookie = set.split(';').next().unwrap();
    let me: Value = with_cookie(&s, cookie, Method::GET, "/api/session", None)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(me["role"], "admin");
    assert_eq!(me["via"], "cookie");
    let anonymous = s.get("/api/session").send().unwrap();
    assert_eq!(error_code(anonymous, 401), "unauthorized");

    // The key lives in secrets/, readable by the owner only.
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(s.data_dir.join("secrets/session_key")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_wrong_token_is_refused_with_a_json_401_and_no_cookie() {
    let s = TestServer::start();
    let res = s
        .client()
        .post(s.url("/api/session"))
        .json(&json!({ "token": "not-the-token-at-all" }))
        .send()
        .unwrap();
    assert!(res.headers().get(SET_COOKIE).is_none());
    assert_eq!(error_code(res, 401), "unauthorized");
}

#[test]
fn forged_or_signed_out_cookies_do_not_authenticate() {
    let s = TestServer::start();
    let cookie = sign_in(&s);
    let last = if cookie.ends_with('0') { "1" } else { "0" };
    let tampered = format!("{}{last}", &cookie[..cookie.len() - 1]);
    let res = with_cookie(&s, &tampered, Method::GET, "/api/session", None)
        .send()
        .unwrap();
    assert_eq!(res.status(), 401);

    let res = with_cookie(&s, &cookie, Method::DELETE, "/api/session", None)
        .send()
        .unwrap();
    assert_eq!(res.status(), 204);
    let cleared = set_cookie(res.headers());
    assert!(cleared.starts_with("shoebox_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[test]
fn cookie_writes_from_another_site_are_refused() {
    let s = TestServer::start();
    let id = s.upload("a.png", &png(1), &[])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cookie = sign_in(&s);
    let path = format!("/api/media/{id}");
    let evil = Some("http://evil.example");

    let res = retitle(with_cookie(&s, &cookie, Method::PATCH, &path, evil), "x");
    assert_eq!(error_code(res, 403), "cross_site");
    // No Origin and no Sec-Fetch-Site: nothing proves the request came from our page.
    let res = retitle(with_cookie(&s, &cookie, Method::PATCH, &path, None), "x");
    assert_eq!(error_code(res, 403), "cross_site");
    let res = retitle(
        with_cookie(&s, &cookie, Method::PATCH, &path, None).header("sec-fetch-site", "cross-site"),
        "x",
    );
    assert_eq!(error_code(res, 403), "cross_site");
    let res = retitle(
        with_cookie(&s, &cookie, Method::PATCH, &path, Some("null")),
        "x",
    );
    assert_eq!(error_code(res, 403), "cross_site");
    let res = with_cookie(&s, &cookie, Method::DELETE, &path, evil)
        .send()
        .unwrap();
    assert_eq!(error_code(res, 403), "cross_site");
    let form = multipart::Form::new().part(
        "file",
        multipart::Part::bytes(png(2)).file_name("b.png".to_owned()),
    );
    let res = with_cookie(&s, &cookie, Method::POST, "/api/media", evil)
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(error_code(res, 403), "cross_site");
    // Nor can another site sign a browser in.
    let res = s
        .client()
        .post(s.url("/api/session"))
        .header(ORIGIN, "http://evil.example")
        .json(&json!({ "token": TOKEN }))
        .send()
        .unwrap();
    assert_eq!(error_code(res, 403), "cross_site");

    let item: Value = s.get(&path).send().unwrap().json().unwrap();
    assert_eq!(item["title"], "", "nothing changed");
    let list: Value = s.get("/api/media").send().unwrap().json().unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "nothing added");
}

#[test]
fn cookie_writes_from_our_own_page_are_allowed() {
    let s = TestServer::start();
    let cookie = sign_in(&s);
    let origin = Some(s.base.as_str());
    let form = multipart::Form::new()
        .part(
            "file",
            multipart::Part::bytes(png(3)).file_name("c.png".to_owned()),
        )
        .text("visibility", "private");
    let res = with_cookie(&s, &cookie, Method::POST, "/api/media", origin)
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    let item: Value = res.json().unwrap();
    let id = item["items"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/media/{id}");

    let res = retitle(
        with_cookie(&s, &cookie, Method::PATCH, &path, origin),
        "Ours",
    );
    assert_eq!(res.status(), 200);
    let res = retitle(
        with_cookie(&s, &cookie, Method::PATCH, &path, None)
            .header("sec-fetch-site", "same-origin"),
        "Ours again",
    );
    assert_eq!(res.status(), 200);

    // The cookie also lets the page show private media, in listings and as files.
    let list: Value = with_cookie(&s, &cookie, Method::GET, "/api/media", None)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list["items"][0]["title"], "Ours again");
    let file = with_cookie(&s, &cookie, Method::GET, &format!("/m/{id}"), None)
        .send()
        .unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(s.get(&format!("/m/{id}")).send().unwrap().status(), 404);

    let res = with_cookie(&s, &cookie, Method::DELETE, &path, origin)
        .send()
        .unwrap();
    assert_eq!(res.status(), 204);
}

#[test]
fn bearer_requests_are_not_affected_by_origin() {
    let s = TestServer::start();
    let id = s.upload("d.png", &png(4), &[])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = s
        .authed(Method::PATCH, &format!("/api/media/{id}"))
        .header(ORIGIN, "http://elsewhere.example")
        .json(&json!({ "title": "From a script" }))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[test]
fn sessions_survive_a_restart() {
    let s = TestServer::start();
    let cookie = sign_in(&s);
    let s = s.restart();
    let res = with_cookie(&s, &cookie, Method::GET, "/api/session", None)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[test]
fn collection_page_shows_public_media_escaped_under_a_strict_policy() {
    let s = TestServer::start();
    s.upload(
        "pier.png",
        &png(5),
        &[
            ("collection", "stories"),
            ("title", "<script>alert('title')</script>"),
            ("alt", "\" onerror=\"alert(1)"),
            ("description", "Fish & chips <b>by the sea</b>"),
        ],
    );
    s.upload("song.wav", &wav(), &[("collection", "stories")]);
    s.upload(
        "menu.pdf",
        b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n",
        &[("collection", "stories"), ("title", "Menu")],
    );
    s.upload(
        "hidden.png",
        &png(6),
        &[
            ("collection", "stories"),
            ("title", "secret-draft"),
            ("visibility", "private"),
        ],
    );
    s.upload(
        "other.png",
        &png(7),
        &[("collection", "elsewhere"), ("title", "other-collection")],
    );

    let res = s.get("/c/stories").send().unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self'"));
    assert!(!csp.contains("unsafe-inline"));
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = res.text().unwrap();

    assert!(html.contains("&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;"));
    assert!(!html.contains("<script"), "no script at all on the page");
    assert!(!html.contains("style="), "no inline style");
    assert!(html.contains("alt=\"&quot; onerror=&quot;alert(1)\""));
    assert!(html.contains("Fish &amp; chips &lt;b&gt;by the sea&lt;/b&gt;"));
    assert!(html.contains("loading=\"lazy\""));
    assert!(html.contains("<audio src=\"/m/"));
    assert!(html.contains("?download=1\" download"));
    assert!(html.contains("<figcaption>"));
    assert!(!html.contains("secret-draft"), "private media stay private");
    assert!(!html.contains("other-collection"));
    // Newest first: the document was uploaded after the picture.
    assert!(html.find("Menu").unwrap() < html.find("Fish").unwrap());

    // The stylesheet it names is served.
    let css = html
        .split("href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    assert!(css.ends_with("/collection.css"), "{css}");
    assert_eq!(s.get(css).send().unwrap().status(), 200);

    // Sites that render their own keep the JSON listing.
    let list: Value = s
        .get("/api/media?collection=stories")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
}

#[test]
fn collection_page_has_an_empty_state_and_pages() {
    let s = TestServer::start();
    let res = s.get("/c/nothing%20yet").send().unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().unwrap();
    assert!(html.contains("<h1>nothing yet</h1>"), "{html}");
    assert!(html.contains("Nothing has been published"));

    let mut form = multipart::Form::new().text("collection", "many");
    for i in 0..26u64 {
        form = form.part(
            "file",
            multipart::Part::bytes(png(100 + i)).file_name(format!("p{i}.png")),
        );
    }
    assert_eq!(s.upload_form(form).len(), 26);
    let first = s.get("/c/many").send().unwrap().text().unwrap();
    assert_eq!(first.matches("<figure").count(), 24);
    let next = first
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a More link");
    let second = s.get(next).send().unwrap().text().unwrap();
    assert_eq!(second.matches("<figure").count(), 2);
    assert!(!second.contains("rel=\"next\""));
    assert!(second.contains(">Newest</a>"));
}

#[test]
fn an_impossible_collection_name_is_a_404_page() {
    let s = TestServer::start();
    let long = "x".repeat(101);
    let res = s.get(&format!("/c/{long}")).send().unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(res.text().unwrap().contains("no collection with that name"));
}

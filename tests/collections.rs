//! Black-box tests of collections as things of their own: `/api/collections` against the real
//! binary, and their files through a restart and `shoebox rebuild`.

mod common;

use common::{error_code, run_cli, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

fn listed(res: reqwest::blocking::Response) -> Vec<Value> {
    assert_eq!(res.status(), 200);
    res.json::<Value>().unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn names(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["name"].as_str().unwrap()).collect()
}

fn save(s: &TestServer, path_name: &str, public: bool) -> Value {
    let res = s
        .authed(Method::PUT, &format!("/api/collections/{path_name}"))
        .json(&json!({ "public": public }))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "PUT {path_name}");
    res.json().unwrap()
}

#[test]
fn collections_are_listed_to_anyone_and_saved_and_removed_by_an_admin() {
    let s = TestServer::start();
    assert!(listed(s.get("/api/collections").send().unwrap()).is_empty());
    s.upload("a.txt", b"a", &[("collection", "stories")]);
    s.upload(
        "b.txt",
        b"b",
        &[("collection", "secret"), ("visibility", "private")],
    );

    // Collections that media are in, as far as the caller may see the media.
    let anonymous = listed(s.get("/api/collections").send().unwrap());
    assert_eq!(anonymous, [json!({"name": "stories", "public": false})]);
    let admin = listed(s.authed(Method::GET, "/api/collections").send().unwrap());
    assert_eq!(names(&admin), ["secret", "stories"]);
    let reader = s.api_token("reader", "read");
    let as_reader = listed(
        s.get("/api/collections")
            .bearer_auth(&reader)
            .send()
            .unwrap(),
    );
    assert_eq!(names(&as_reader), ["secret", "stories"]);

    // Saving makes a collection of its own, empty or not.
    let summer = save(&s, "Summer%202026", true);
    assert_eq!(summer["name"], "Summer 2026");
    assert_eq!(summer["public"], true);
    let created = summer["created_at"].as_str().unwrap().to_owned();
    assert!(created.ends_with('Z'), "{created}");
    let stories = save(&s, "stories", true);
    assert_eq!(stories["public"], true);
    let unicode = save(&s, "%E6%97%A5%E6%9C%AC%20%C3%A9t%C3%A9", false);
    assert_eq!(unicode["name"], "日本 été");
    assert_eq!(
        save(&s, "Summer%202026", false)["created_at"],
        created.as_str(),
        "a second save changes the settings, not the collection"
    );
    let anonymous = listed(s.get("/api/collections").send().unwrap());
    assert_eq!(names(&anonymous), ["Summer 2026", "stories", "日本 été"]);
    assert_eq!(anonymous[1]["public"], true);
    assert!(
        s.data_dir
            .join("collections")
            .join("%53ummer%202026.json")
            .is_file(),
        "{:?}",
        common::entries(&s.data_dir.join("collections"))
    );

    // Who may change them, and which names.
    let uploader = s.api_token("uploader", "upload");
    let put = |path: &str| s.client().put(s.url(&format!("/api/collections/{path}")));
    let delete = |path: &str| {
        s.client()
            .delete(s.url(&format!("/api/collections/{path}")))
    };
    let body = json!({"public": true});
    let cases: Vec<(&str, reqwest::blocking::RequestBuilder, u16, &str)> = vec![
        ("anonymous save", put("x").json(&body), 401, "unauthorized"),
        (
            "uploader save",
            put("x").bearer_auth(&uploader).json(&body),
            403,
            "insufficient_scope",
        ),
        (
            "reader save",
            put("x").bearer_auth(&reader).json(&body),
            403,
            "insufficient_scope",
        ),
        ("anonymous remove", delete("stories"), 401, "unauthorized"),
        (
            "uploader remove",
            delete("stories").bearer_auth(&uploader),
            403,
            "insufficient_scope",
        ),
        (
            "a name with a slash",
            s.authed(Method::PUT, "/api/collections/a%2Fb").json(&body),
            400,
            "invalid_field",
        ),
        (
            "a blank name",
            s.authed(Method::PUT, "/api/collections/%20%20").json(&body),
            400,
            "invalid_field",
        ),
        (
            "a control character",
            s.authed(Method::PUT, "/api/collections/a%09b").json(&body),
            400,
            "invalid_field",
        ),
        (
            "a name too long",
            s.authed(
                Method::PUT,
                &format!("/api/collections/{}", "x".repeat(101)),
            )
            .json(&body),
            400,
            "invalid_field",
        ),
        (
            "public as text",
            s.authed(Method::PUT, "/api/collections/x")
                .json(&json!({"public": "yes"})),
            400,
            "bad_request",
        ),
        (
            "an unknown setting",
            s.authed(Method::PUT, "/api/collections/x")
                .json(&json!({"public": true, "color": "red"})),
            400,
            "bad_request",
        ),
        (
            "no setting",
            s.authed(Method::PUT, "/api/collections/x").json(&json!({})),
            400,
            "bad_request",
        ),
        (
            "not JSON",
            s.authed(Method::PUT, "/api/collections/x")
                .body("public=true"),
            415,
            "unsupported_media_type",
        ),
        (
            "remove a bad name",
            s.authed(Method::DELETE, "/api/collections/a%2Fb"),
            400,
            "invalid_field",
        ),
        (
            "remove a collection media are in",
            s.authed(Method::DELETE, "/api/collections/stories"),
            409,
            "collection_not_empty",
        ),
        (
            "remove one that only media make",
            s.authed(Method::DELETE, "/api/collections/secret"),
            409,
            "collection_not_empty",
        ),
        (
            "remove one that does not exist",
            s.authed(Method::DELETE, "/api/collections/nothing"),
            404,
            "not_found",
        ),
        (
            "another method",
            s.authed(Method::POST, "/api/collections/x").json(&body),
            405,
            "method_not_allowed",
        ),
    ];
    for (what, req, status, code) in cases {
        let res = req.send().unwrap();
        assert_eq!(res.status(), status, "{what}");
        assert_eq!(error_code(res, status), code, "{what}");
    }
    assert!(
        !names(&listed(
            s.authed(Method::GET, "/api/collections").send().unwrap()
        ))
        .contains(&"x"),
        "no refused save made a collection"
    );
    let res = s
        .authed(Method::DELETE, "/api/collections/stories")
        .send()
        .unwrap();
    let message = res.json::<Value>().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("\"stories\""), "{message}");
    assert_eq!(
        s.authed(Method::GET, "/api/collections")
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap()["items"][2]["public"],
        true,
        "a refused remove keeps the settings"
    );

    // An empty collection goes.
    let gone = s
        .authed(Method::DELETE, "/api/collections/Summer%202026")
        .send()
        .unwrap();
    assert_eq!(gone.status(), 204);
    let again = s
        .authed(Method::DELETE, "/api/collections/Summer%202026")
        .send()
        .unwrap();
    assert_eq!(error_code(again, 404), "not_found");
    assert_eq!(
        names(&listed(s.get("/api/collections").send().unwrap())),
        ["stories", "日本 été"]
    );
    // A wrong token is an error even where anonymous callers are welcome.
    let res = s
        .get("/api/collections")
        .bearer_auth("sbx_not-a-real-token")
        .send()
        .unwrap();
    assert_eq!(error_code(res, 401), "unauthorized");
}

/// The files are not an index: a restart reads them, and `shoebox rebuild`, which recreates
/// the database from `records/`, leaves them as they are.
#[test]
fn a_collection_survives_a_restart_and_a_rebuild() {
    let mut s = TestServer::start();
    let empty = save(&s, "Empty%20One", true);
    s.upload("a.txt", b"a", &[("collection", "used")]);
    let used = save(&s, "used", false);
    let before = listed(s.get("/api/collections").send().unwrap());
    assert_eq!(before, [empty, used]);

    assert!(s.terminate().success());
    let mut s = s.restart();
    assert_eq!(listed(s.get("/api/collections").send().unwrap()), before);

    assert!(s.terminate().success());
    std::fs::remove_dir_all(s.data_dir.join("meta")).unwrap();
    let (code, out) = run_cli(&["rebuild"], &s.data_dir);
    assert_eq!(code, 0, "{out}");
    let s = s.restart();
    assert_eq!(listed(s.get("/api/collections").send().unwrap()), before);
    let res = s
        .authed(Method::DELETE, "/api/collections/used")
        .send()
        .unwrap();
    assert_eq!(
        error_code(res, 409),
        "collection_not_empty",
        "the rebuilt index knows the collection's media"
    );
}

//! The record's own tests: ids, and the rules for its fields.

use super::*;

#[test]
fn ids_round_trip_and_sort_by_time() {
    let a = MediaId(ulid::Ulid::from_parts(1_000, 5));
    let b = MediaId(ulid::Ulid::from_parts(2_000, 1));
    assert!(a.to_key() < b.to_key());
    assert_eq!(MediaId::from_key(&a.to_key()), Some(a));
    assert_eq!(a.to_string().parse::<MediaId>().ok(), Some(a));
    assert_eq!(
        a.to_string().to_uppercase().parse::<MediaId>().ok(),
        Some(a)
    );
    assert!("not-an-id".parse::<MediaId>().is_err());
}

#[test]
fn tags_are_normalised() {
    assert_eq!(
        tag_list(" Summer ,beach,, summer,Road   Trip").unwrap(),
        vec!["summer", "beach", "road trip"]
    );
    assert!(tag_list(&"x".repeat(MAX_TAG + 1)).is_err());
    let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
    assert!(tag_list(&many.join(",")).is_err());
}

#[test]
fn filenames_lose_paths_and_control_characters() {
    assert_eq!(filename("../../etc/passwd"), "passwd");
    assert_eq!(filename("C:\\Users\\me\\photo.jpg"), "photo.jpg");
    assert_eq!(filename("a\u{0}b\nc.png"), "abc.png");
    assert_eq!(filename(".."), "");
    assert_eq!(filename("été 2024.jpg"), "été 2024.jpg");
    assert!(filename(&"é".repeat(300)).len() <= MAX_FILENAME);
}

proptest::proptest! {
    #[test]
    fn cursors_never_panic_and_round_trip(s in ".{0,40}", n in proptest::prelude::any::<u128>()) {
        let _ = s.parse::<MediaId>();
        let id = MediaId(ulid::Ulid(n));
        proptest::prop_assert_eq!(id.to_string().parse::<MediaId>().ok(), Some(id));
    }

    #[test]
    fn tag_lists_never_panic_and_keep_their_invariants(s in "\\PC{0,300}") {
        if let Ok(tags) = tag_list(&s) {
            proptest::prop_assert!(tags.len() <= MAX_TAGS);
            for t in &tags {
                proptest::prop_assert!(!t.is_empty() && t.chars().count() <= MAX_TAG);
                proptest::prop_assert!(!t.contains(',') && !t.chars().any(char::is_control));
                proptest::prop_assert_eq!(t.trim(), t.as_str());
                proptest::prop_assert_eq!(t.to_lowercase(), t.clone());
            }
            let mut unique = tags.clone();
            unique.dedup();
            proptest::prop_assert_eq!(unique.len(), tags.len());
            // Normalising is idempotent.
            proptest::prop_assert_eq!(tag_list(&tags.join(",")).ok(), Some(tags.clone()));
        }
    }

    #[test]
    fn filenames_never_carry_a_path(s in "\\PC{0,300}") {
        let f = filename(&s);
        proptest::prop_assert!(!f.contains('/') && !f.contains('\\') && !f.chars().any(char::is_control));
        proptest::prop_assert!(f.len() <= MAX_FILENAME);
        proptest::prop_assert!(f != "." && f != "..");
    }
}

#[test]
fn fields_are_validated() {
    assert!(collection("a/b").is_err());
    assert_eq!(collection("  ").unwrap(), None);
    assert_eq!(collection(" stories ").unwrap().as_deref(), Some("stories"));
    assert!(custom_str("[1,2]").is_err());
    assert!(custom_str("{\"message_id\": 42}").is_ok());
    assert!(text_field("title", &"x".repeat(MAX_TITLE + 1), MAX_TITLE).is_err());
    assert!(text_field("title", "bell\u{7}", MAX_TITLE).is_err());
    assert!("secret".parse::<Visibility>().is_err());
}

#[test]
fn object_keys_are_bounded_utf8_without_control_characters() {
    assert_eq!(
        object_key(" photos/été 1.jpg").unwrap(),
        " photos/été 1.jpg"
    );
    assert!(object_key("").is_err());
    assert!(object_key("a\u{0}b").is_err());
    assert!(object_key("a\nb").is_err());
    assert!(object_key("a\u{7f}").is_err());
    assert!(object_key(&"k".repeat(MAX_KEY)).is_ok());
    assert!(
        object_key(&"é".repeat(MAX_KEY / 2 + 1)).is_err(),
        "bytes, not characters"
    );
}

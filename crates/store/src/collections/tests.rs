//! The collections' own tests: their files, their names, and the collections in use.

use super::*;
use crate::record::{MediaFields, Visibility};
use crate::testing::staged;
use crate::NewMedia;

fn files(store: &Store) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(store.layout().collections())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn upload(store: &Store, collection: &str, visibility: Visibility, owner: Option<&str>) {
    let fields = MediaFields {
        collection: Some(collection.to_owned()),
        visibility,
        owner: owner.map(str::to_owned),
        ..MediaFields::default()
    };
    let item = NewMedia::new(staged(store, b"bytes"), "a.txt".into(), None, fields);
    store.create(vec![item]).unwrap();
}

#[test]
fn a_collection_is_made_listed_changed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let c = store.collections();
    assert!(c.list().unwrap().is_empty());
    assert_eq!(c.get("stories").unwrap(), None);

    let (made, created) = c.create("stories").unwrap();
    assert!(created);
    assert_eq!((made.name.as_str(), made.public), ("stories", false));
    let (again, created) = c.create(" stories ").unwrap();
    assert!(!created, "making it again changes nothing");
    assert_eq!(again, made);

    let public = c.set_public("stories", true).unwrap();
    assert!(public.public);
    assert_eq!(public.created_at, made.created_at);
    let fresh = c.set_public("Archive", true).unwrap();
    assert!(
        fresh.public,
        "setting makes the file of a collection without one"
    );
    let names: Vec<String> = c.list().unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["Archive", "stories"], "by name");
    assert_eq!(c.get("stories").unwrap(), Some(public));
    assert_eq!(files(&store), ["%41rchive.json", "stories.json"]);

    assert!(c.remove("stories").unwrap());
    assert!(!c.remove("stories").unwrap());
    assert_eq!(c.get("stories").unwrap(), None);
    assert_eq!(files(&store), ["%41rchive.json"]);

    for bad in ["", "   ", "a/b", "tab\there", &"x".repeat(101)] {
        assert!(
            matches!(c.create(bad), Err(StoreError::Invalid { .. })),
            "{bad:?}"
        );
        assert!(matches!(c.get(bad), Err(StoreError::Invalid { .. })));
    }
}

#[test]
fn files_survive_reopening_and_hold_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "Summer 2026",
        "été à Paris",
        "日本の写真",
        "back\\slash",
        ".hidden",
        "%41rchive",
        "+plus",
        "🙂",
    ];
    let made: Vec<CollectionInfo> = {
        let store = Store::open(dir.path()).unwrap();
        names
            .iter()
            .map(|n| store.collections().set_public(n, true).unwrap())
            .collect()
    };
    let store = Store::open(dir.path()).unwrap();
    for info in &made {
        assert_eq!(
            store.collections().get(&info.name).unwrap().as_ref(),
            Some(info)
        );
        let path = store.collections().path_for(&info.name);
        assert_eq!(path.parent().unwrap(), dir.path().join("collections"));
        let text = fs::read_to_string(&path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["schema"], COLLECTION_SCHEMA);
        assert_eq!(json["name"], info.name.as_str());
        assert_eq!(json["public"], true);
        assert!(json["created_at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(store.collections().list().unwrap().len(), names.len());
}

#[test]
fn file_names_are_safe_and_reversible() {
    for name in [
        "stories",
        "Summer 2026",
        "a/b/../c",
        "..",
        ".",
        "été",
        "日本の写真",
        "%2F",
        "MiXeD",
        "mixed",
    ] {
        let file = file_name(name);
        assert!(!file.contains('/') && !file.starts_with('.'), "{file}");
        assert!(file.len() <= MAX_FILE_NAME);
        assert!(file.is_ascii());
        assert_eq!(name_of(&file).as_deref(), Some(name), "{file}");
    }
    // No two names' files differ only by case: a filesystem that folds case keeps them apart.
    assert_ne!(
        file_name("MiXeD").to_lowercase(),
        file_name("mixed").to_lowercase()
    );
    assert_eq!(file_name("a b"), "a%20b.json");
    // A long name in another script is hashed; its file holds it.
    let long = "写".repeat(100);
    let file = file_name(&long);
    assert!(file.starts_with('+') && file.len() == 1 + 64 + 5, "{file}");
    assert_eq!(name_of(&file), None);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.collections().create(&long).unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.collections().get(&long).unwrap().is_some());
    // File names that the encoding does not make are not names.
    for odd in [
        "A.json", "%2f.json", "%4.json", "x.txt", "a%20b", "%FF.json",
    ] {
        assert_eq!(name_of(odd), None, "{odd}");
    }
}

/// A write that a crash cut off leaves a temp file (its rename never happened); damage or a
/// stray file leaves something that does not parse or is named for another collection. None
/// of them is a collection, and none stops the others from loading.
#[test]
fn a_torn_temp_file_and_stray_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.collections().set_public("kept", true).unwrap();
    }
    let collections = dir.path().join("collections");
    let torn = collections.join(".tmp-a1b2c3");
    fs::write(&torn, b"{\"schema\": 1, \"name\": \"torn\", \"pub").unwrap();
    fs::write(collections.join("garbage.json"), b"{\"schema\":").unwrap();
    let misnamed = fs::read(collections.join("kept.json")).unwrap();
    fs::write(collections.join("other.json"), misnamed).unwrap();
    fs::write(collections.join("notes.txt"), b"mine").unwrap();

    let store = Store::open(dir.path()).unwrap();
    let names: Vec<String> = store
        .collections()
        .list()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["kept"]);
    assert!(!torn.exists(), "the temp file is cleared");
    assert!(
        collections.join("garbage.json").exists(),
        "a damaged file is left for a person to look at"
    );
    // Removing a collection whose file did not load still removes the file.
    assert!(store.collections().remove("garbage").unwrap());
}

#[test]
fn concurrent_creates_of_one_name_make_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let made = std::thread::scope(|s| {
        let runs: Vec<_> = (0..8)
            .map(|_| s.spawn(|| store.collections().create("race").unwrap()))
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(made.iter().filter(|(_, created)| *created).count(), 1);
    assert!(made.windows(2).all(|w| w[0].0 == w[1].0));
    assert_eq!(files(&store), ["race.json"]);
}

#[test]
fn collections_in_use_are_those_the_caller_may_see() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    upload(&store, "public", Visibility::Public, None);
    upload(&store, "public", Visibility::Private, None);
    upload(&store, "private", Visibility::Private, None);
    upload(&store, "theirs", Visibility::Private, Some("t1"));
    upload(&store, "pub", Visibility::Private, None);
    upload(&store, "publico", Visibility::Public, None);
    store.collections().create("empty").unwrap();

    let all = ListQuery {
        include_private: true,
        ..ListQuery::default()
    };
    assert_eq!(
        store.collections_in_use(&all).unwrap(),
        ["private", "pub", "public", "publico", "theirs"],
        "records only: a file alone is not a use"
    );
    let anonymous = ListQuery::default();
    assert_eq!(
        store.collections_in_use(&anonymous).unwrap(),
        ["public", "publico"]
    );
    let owner = ListQuery {
        owner: Some("t1".into()),
        ..ListQuery::default()
    };
    assert_eq!(
        store.collections_in_use(&owner).unwrap(),
        ["public", "publico", "theirs"]
    );
    assert!(store.collection_in_use("private").unwrap());
    assert!(store.collection_in_use("pub").unwrap());
    assert!(!store.collection_in_use("pu").unwrap());
    assert!(!store.collection_in_use("empty").unwrap());
    assert!(store.collection_in_use("a/b").is_err());
}

/// A store from before collections had files: the folder is made when it opens, and the
/// collections its records use need no file.
#[test]
fn an_older_store_gets_the_folder_and_no_files() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        upload(&store, "stories", Visibility::Public, None);
    }
    fs::remove_dir(dir.path().join("collections")).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(files(&store).is_empty());
    assert!(store.collections().list().unwrap().is_empty());
    assert_eq!(
        store.collections_in_use(&ListQuery::default()).unwrap(),
        ["stories"]
    );
}

/// Backups carry the collection files and restores put them back; an archive without any is
/// still version 1, which older builds read. A rebuild of the database leaves them alone.
#[test]
fn backups_restores_and_rebuilds_keep_collections() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut plain = Vec::new();
    assert_eq!(store.write_backup(&mut plain).unwrap().version, 1);
    upload(&store, "stories", Visibility::Public, None);
    let made = [
        store.collections().set_public("Été 2026", true).unwrap(),
        store.collections().create("empty").unwrap().0,
        store.collections().create(&"写".repeat(100)).unwrap().0,
    ];
    let mut archive = Vec::new();
    let manifest = store.write_backup(&mut archive).unwrap();
    assert_eq!((manifest.version, manifest.collections), (2, 3));
    drop(store);

    let target = tempfile::tempdir().unwrap();
    let report = crate::archive::restore(archive.as_slice(), target.path()).unwrap();
    assert_eq!((report.collections, report.records), (3, 1));
    let restored = Store::open(target.path()).unwrap();
    let mut expected = made.to_vec();
    expected.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(restored.collections().list().unwrap(), expected);
    drop(restored);

    let (rebuilt, _) = crate::rebuild::rebuild(target.path()).unwrap();
    assert_eq!(rebuilt.collections().list().unwrap(), expected);
    assert_eq!(
        rebuilt.collections_in_use(&ListQuery::default()).unwrap(),
        ["stories"]
    );
}

/// An archive is outside input: a collection file whose name is not a collection name, or
/// that sits under another name's file, is refused with the rest of the archive.
#[test]
fn a_restore_refuses_a_crafted_collection_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.collections().create("kept").unwrap();
    let mut archive = Vec::new();
    store.write_backup(&mut archive).unwrap();
    let good = String::from_utf8_lossy(&archive).into_owned();
    assert!(good.contains("shoebox-backup/collections/kept.json"));
    // Same lengths, so that the tar stays well formed and only the content is wrong.
    for (from, to, why) in [
        (
            "\"name\": \"kept\"",
            "\"name\": \"k/pt\"",
            "which is not a collection name",
        ),
        (
            "\"name\": \"kept\"",
            "\"name\": \"kepT\"",
            "whose file is kep%54.json",
        ),
    ] {
        let crafted = good.replace(from, to).into_bytes();
        assert_eq!(crafted.len(), archive.len());
        let target = tempfile::tempdir().unwrap();
        let err = crate::archive::restore(crafted.as_slice(), target.path()).unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("not a valid Shoebox backup") && err.contains(why),
            "{to}: {err}"
        );
        assert!(fs::read_dir(target.path()).unwrap().next().is_none());
    }
}

//! Black-box tests of who owns the store and who may read it: started as root with
//! `--run-as`, Shoebox hands a root-owned disk to that user and serves as them; started as a
//! user that does not own the store, it refuses with the `chown` that fixes it; and every file
//! it writes is private to its user. The ownership tests need root (and the first a loop
//! ext4): without it they fail under `CI=true` and are skipped with a message elsewhere.

mod common;

use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::mount::Mount;
use common::{bytes, run_cli, unavailable, TestServer};
use reqwest::Method;
use serde_json::json;

const RUN_AS: &str = "10001:10001";

fn is_root() -> bool {
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    unavailable("changing users and file owners needs root");
    false
}

/// Every entry under `dir` (not `dir` itself), without following links; `lost+found` at the
/// top and what is in it are left out.
fn walk(dir: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if d == dir && path.file_name().is_some_and(|n| n == "lost+found") {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                todo.push(path.clone());
            }
            out.push((path, meta));
        }
    }
    out
}

/// The numbers on a `/proc/<pid>/status` line such as `Uid:` (real, effective, saved, fs).
fn proc_status(pid: u32, field: &str) -> Vec<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// A store made by a root command: `verify` on a new directory creates it.
fn root_store(parent: &Path) -> PathBuf {
    let data = parent.join("data");
    let (code, out) = run_cli(&["verify"], &data);
    assert_eq!(code, 0, "{out}");
    data
}

fn chown_all(dir: &Path, uid: u32) {
    lchown(dir, Some(uid), Some(uid)).unwrap();
    for (path, _) in walk(dir) {
        lchown(&path, Some(uid), Some(uid)).unwrap();
    }
}

#[test]
fn a_root_owned_disk_is_handed_to_the_run_as_user_who_serves_and_owns_every_file() {
    let Some(disk) = Mount::ext4(64) else { return };
    // A fresh disk, as a host mounts it: its root directory and lost+found are root's.
    let root_meta = std::fs::metadata(disk.path()).unwrap();
    assert_eq!((root_meta.uid(), root_meta.gid()), (0, 0));
    assert!(disk.path().join("lost+found").is_dir());

    let mut s = TestServer::builder()
        .data_dir(disk.path())
        .arg("--run-as")
        .arg(RUN_AS)
        .start();
    let pid = s.pid();
    for field in ["Uid:", "Gid:"] {
        assert_eq!(
            proc_status(pid, field),
            ["10001"; 4],
            "{field} real, effective, saved, fs"
        );
    }
    assert_eq!(
        proc_status(pid, "Groups:"),
        ["10001"],
        "no supplementary group of root's"
    );
    // setuid(0) could succeed only with a saved uid of 0 or a capability: neither is left.
    for caps in ["CapPrm:", "CapEff:"] {
        assert_eq!(proc_status(pid, caps), ["0000000000000000"], "{caps}");
    }
    assert!(
        s.output().contains("running as uid 10001 gid 10001"),
        "{}",
        s.output()
    );

    let a = s.upload("a.jpg", &bytes(70_000, 1), &[("title", "first")]);
    s.upload("b.bin", &bytes(3_000, 2), &[]);
    let res = s
        .authed(
            Method::PATCH,
            &format!("/api/media/{}", a["id"].as_str().unwrap()),
        )
        .json(&json!({"title": "edited"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(s.terminate().success(), "{}", s.output());

    let owned = |when: &str| {
        let entries = walk(disk.path());
        assert!(
            entries.iter().any(|(p, _)| p.ends_with("FORMAT")),
            "a store"
        );
        for (path, meta) in entries {
            assert_eq!(
                (meta.uid(), meta.gid()),
                (10001, 10001),
                "{when}: {} belongs to the user Shoebox serves as",
                path.display()
            );
        }
        let top = std::fs::metadata(disk.path()).unwrap();
        assert_eq!(
            (top.uid(), top.gid()),
            (10001, 10001),
            "{when}: the disk's root"
        );
    };
    owned("after uploads, an edit and a stop");
    let lost = std::fs::metadata(disk.path().join("lost+found")).unwrap();
    assert_eq!(lost.uid(), 0, "lost+found stays root's");

    // The next start (a redeploy) finds the store already the user's and serves it as is.
    let s = s.restart();
    assert_eq!(proc_status(s.pid(), "Uid:"), ["10001"; 4]);
    assert_eq!(s.media_bytes(a["id"].as_str().unwrap()), bytes(70_000, 1));
    s.upload("c.bin", &bytes(5_000, 3), &[]);
    owned("after a restart and another upload");
}

#[test]
fn root_does_not_take_over_a_store_that_another_user_owns() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = root_store(dir.path());
    chown_all(&data, 10002);

    let (status, out) = TestServer::builder()
        .data_dir(&data)
        .arg("--run-as")
        .arg(RUN_AS)
        .start_expecting_failure();
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains(&format!(
            "the data directory {} is owned by uid 10002",
            data.display()
        )),
        "names the owner: {out}"
    );
    assert!(
        out.contains(&format!("chown -R 10001:10001 {}", data.display())),
        "names the fix: {out}"
    );
    assert!(
        walk(&data).iter().all(|(_, m)| m.uid() == 10002),
        "nothing changed hands"
    );
}

#[test]
fn root_does_not_take_over_a_directory_that_holds_something_else() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("notes.txt"), "not media").unwrap();
    let (status, out) = TestServer::builder()
        .data_dir(&data)
        .arg("--run-as")
        .arg(RUN_AS)
        .start_expecting_failure();
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains("\"notes.txt\", which is not Shoebox's"),
        "{out}"
    );
    assert_eq!(std::fs::metadata(data.join("notes.txt")).unwrap().uid(), 0);
    assert_eq!(std::fs::metadata(&data).unwrap().uid(), 0);
}

/// `shoebox serve` started as uid 10001 (as an image with `USER 10001` would start it).
fn serve_as_10001(data: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shoebox"))
        .env_clear()
        .args(["serve", "--bind", "127.0.0.1", "--port", "0", "--data-dir"])
        .arg(data)
        .uid(10001)
        .gid(10001)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn a_user_that_does_not_own_the_store_is_told_the_owner_and_the_chown() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The user must be able to reach the store, as on a mounted disk.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = root_store(dir.path());

    let (code, out) = serve_as_10001(&data);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(&format!(
            "the data directory {} is owned by uid 0",
            data.display()
        )),
        "names the owner: {out}"
    );
    assert!(
        out.contains(&format!("chown -R 10001:10001 {}", data.display())),
        "names the fix: {out}"
    );
    assert!(!out.contains("Operation not permitted"), "{out}");

    // What a command run as root left in a store the user owns is named too.
    chown_all(&data, 10001);
    lchown(data.join("meta"), Some(0), Some(0)).unwrap();
    let (code, out) = serve_as_10001(&data);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(&format!(
            "{} in the data directory is owned by uid 0",
            data.join("meta").display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("chown -R 10001:10001 {}", data.display())),
        "{out}"
    );
}

#[test]
fn every_file_the_server_writes_is_private_to_its_user() {
    let mut s = TestServer::start();
    let a = s.upload("a.jpg", &bytes(70_000, 1), &[("tags", "x,y")]);
    s.upload("b.bin", &bytes(300_000, 2), &[("visibility", "private")]);
    let res = s
        .authed(
            Method::PATCH,
            &format!("/api/media/{}", a["id"].as_str().unwrap()),
        )
        .json(&json!({"title": "edited"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = s
        .authed(Method::POST, "/api/tokens")
        .json(&json!({"name": "uploader", "scope": "upload"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);

    let data = s.data_dir.clone();
    let private = |when: &str| {
        let data = &data;
        let top = std::fs::metadata(data).unwrap().permissions().mode() & 0o7777;
        assert_eq!(top, 0o700, "{when}: the data directory");
        let entries = walk(data);
        for dir in ["records", "meta", "blobs", "secrets"] {
            assert!(
                entries
                    .iter()
                    .any(|(p, m)| m.is_file() && p.starts_with(data.join(dir))),
                "{when}: files under {dir}/"
            );
        }
        for (path, meta) in entries {
            let mode = meta.permissions().mode() & 0o7777;
            let want = if meta.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode, want, "{when}: {} is {mode:o}", path.display());
        }
    };
    private("while serving");
    assert!(s.terminate().success());
    private("after a clean stop");
}

//! Who the process works as. A disk may be mounted owned by root while Shoebox should own its
//! files as an unprivileged user, so, as the official PostgreSQL image does, Shoebox may start
//! as root with a [`RunAs`] user: it hands the data directory to that user (only an empty
//! directory or a store, and only what root owns in it), then drops to the user for good
//! before it opens anything else. Whoever it then runs as, it checks that it owns the store,
//! and says how to fix it when it does not, instead of failing on its first write.

use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::{self, Gid, Uid};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::config::RunAs;
use crate::store::Layout;

/// Top-level directories whose contents the ownership check does not walk: a file per record
/// or blob, too many to stat at every start. (`lost+found` is root's on a fresh disk, and
/// not checked at all.)
const NOT_WALKED: &[&str] = &["blobs", "records", "quarantine", "variants"];

/// Makes everything the process creates private to its user: sled creates its files and
/// directories with the default modes, and so do a few writers of ours. Called first in main.
pub fn private_umask() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
}

/// Settles who the process works as, before anything opens `data_dir`. As root with `run_as`:
/// hand the directory over (see [`adopt`]) and drop to that user. As root without: carry on
/// as today, with a warning. Then, unless still root, refuse a store the user does not own.
pub fn enter(data_dir: &Path, run_as: Option<RunAs>) -> Result<(), String> {
    let started_as = unistd::geteuid();
    match run_as {
        None if started_as.is_root() => {
            tracing::warn!(
                "running as root; set SHOEBOX_RUN_AS=UID:GID (or --run-as) to hand the data \
                 directory to an unprivileged user and run as that user"
            );
            return Ok(());
        }
        Some(to) if started_as.is_root() => {
            let changed = adopt(data_dir, to)?;
            drop_to(to)?;
            if changed > 0 {
                tracing::info!(
                    "gave {changed} entries of the data directory {} that root owned to uid {}",
                    data_dir.display(),
                    to.uid
                );
            }
            tracing::info!(
                uid = to.uid,
                gid = to.gid,
                "running as uid {} gid {} (started as root)",
                to.uid,
                to.gid
            );
        }
        Some(to) if to.uid != started_as.as_raw() => tracing::warn!(
            "SHOEBOX_RUN_AS asks for uid {}, but Shoebox was started as uid {started_as}, which \
             cannot switch users; running as uid {started_as}",
            to.uid
        ),
        _ => {}
    }
    if unistd::geteuid().is_root() {
        return Ok(());
    }
    check_owner(
        data_dir,
        unistd::geteuid().as_raw(),
        unistd::getegid().as_raw(),
    )
}

/// As root: makes `dir` belong to `to` when it is absent, empty (a fresh disk's `lost+found`
/// aside) or a Shoebox store whose directory root owns. A directory that is already theirs is
/// left as it is; one that another user owns, or that holds anything but a store, is refused,
/// never taken over. Returns how many entries changed owner.
fn adopt(dir: &Path, to: RunAs) -> Result<usize, String> {
    let meta = match fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // One level only: parents made here would be root's, and private under our
            // umask, so the user could not pass through them.
            fs::create_dir(dir).map_err(|e| {
                format!(
                    "could not create the data directory {}: {e} (its parent must exist)",
                    dir.display()
                )
            })?;
            fs::metadata(dir).map_err(|e| format!("could not read {}: {e}", dir.display()))?
        }
        Err(e) => return Err(format!("could not read {}: {e}", dir.display())),
    };
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    match meta.uid() {
        0 => {}
        owner if owner == to.uid => return Ok(0),
        owner => {
            return Err(format!(
                "the data directory {} is owned by uid {owner}, neither root nor uid {} \
                 (SHOEBOX_RUN_AS), so Shoebox will not take it over; if it is this service's \
                 store, give it to uid {}: chown -R {}:{} {}",
                dir.display(),
                to.uid,
                to.uid,
                to.uid,
                to.gid,
                dir.display()
            ))
        }
    }
    let foreign = Layout::new(dir)
        .foreign_entry()
        .map_err(|e| e.to_string())?;
    if let Some(name) = foreign {
        return Err(format!(
            "the data directory {} is root's and holds {name:?}, which is not Shoebox's; \
             Shoebox hands a directory to uid {} only when it is empty or a Shoebox store. \
             Point SHOEBOX_DATA_DIR at an empty directory or a store",
            dir.display(),
            to.uid
        ));
    }
    chown_tree(dir, to).map_err(|e| {
        format!(
            "could not give the data directory {} to uid {}: {e}",
            dir.display(),
            to.uid
        )
    })
}

/// Gives `to` the directory and everything in it that root owns, without following a
/// symlink: each directory is opened relative to its parent with `O_NOFOLLOW`, and each entry
/// is changed with `AT_SYMLINK_NOFOLLOW`, so a link inside can lead neither the walk nor a
/// chown outside. A top-level `lost+found` stays root's, as fsck expects; files of other
/// users are left alone (the check after the drop names them). Returns the entries changed.
fn chown_tree(dir: &Path, to: RunAs) -> io::Result<usize> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(dir, flags, Mode::empty())?;
    let mut changed = 0;
    if rustix::fs::fstat(&fd)?.st_uid == 0 {
        rustix::fs::fchown(&fd, Some(ids(to).0), Some(ids(to).1))?;
        changed += 1;
    }
    Ok(changed + chown_entries(fd.as_fd(), to, true)?)
}

fn chown_entries(dir: BorrowedFd<'_>, to: RunAs, top: bool) -> io::Result<usize> {
    let (uid, gid) = ids(to);
    let mut changed = 0;
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if matches!(name.to_bytes(), b"." | b"..") || (top && name.to_bytes() == b"lost+found") {
            continue;
        }
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if st.st_uid == 0 {
            rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
            changed += 1;
        }
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let sub = rustix::fs::openat(dir, name, flags, Mode::empty())?;
            changed += chown_entries(sub.as_fd(), to, false)?;
        }
    }
    Ok(changed)
}

fn ids(to: RunAs) -> (rustix::fs::Uid, rustix::fs::Gid) {
    (
        rustix::fs::Uid::from_raw(to.uid),
        rustix::fs::Gid::from_raw(to.gid),
    )
}

/// Drops root for good: supplementary groups down to `to`'s own, then the group, then the
/// user, real, effective and saved alike (the kernel clears root's capabilities with them).
/// Done before any thread starts, so every thread runs as `to`.
fn drop_to(to: RunAs) -> Result<(), String> {
    let (uid, gid) = (Uid::from_raw(to.uid), Gid::from_raw(to.gid));
    unistd::setgroups(&[gid])
        .and_then(|()| unistd::setresgid(gid, gid, gid))
        .and_then(|()| unistd::setresuid(uid, uid, uid))
        .map_err(|e| format!("could not switch to uid {} gid {}: {e}", to.uid, to.gid))?;
    // Proof rather than trust: with every id dropped, asking for root back must fail.
    let ids = unistd::getresuid().map_err(|e| format!("could not read the user ids: {e}"))?;
    if unistd::setuid(Uid::from_raw(0)).is_ok() || [ids.real, ids.effective, ids.saved] != [uid; 3]
    {
        return Err(format!(
            "after switching to uid {}, the process could still become root; refusing to run",
            to.uid
        ));
    }
    Ok(())
}

/// A process that is not root must own its data directory, or its first write fails with a
/// bare "permission denied" (PostgreSQL refuses such a start the same way). Checked: the
/// directory, its top-level entries, and everything below them but the contents of the
/// per-record and per-blob directories ([`NOT_WALKED`]): that covers what a command run as
/// another user (the database after a rebuild, secrets after a token change) leaves behind.
fn check_owner(dir: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let meta = match fs::metadata(dir) {
        Ok(meta) => meta,
        // Created when the store opens, as today.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(format!(
                "cannot reach the data directory {} as uid {uid}: {e}; it, and every \
                 directory above it, must be open to that user",
                dir.display()
            ))
        }
    };
    let found = if meta.uid() != uid {
        Some((dir.to_owned(), meta.uid()))
    } else {
        foreign_owned(dir, uid, true)
            .map_err(|e| format!("could not check {}: {e}", dir.display()))?
    };
    let Some((path, owner)) = found else {
        return Ok(());
    };
    let what = if path == dir {
        format!(
            "the data directory {} is owned by uid {owner}",
            dir.display()
        )
    } else {
        format!(
            "{} in the data directory is owned by uid {owner}",
            path.display()
        )
    };
    Err(format!(
        "{what}, but Shoebox runs as uid {uid} and must own its files. If this is Shoebox's \
         store or an empty disk, give it to this user: chown -R {uid}:{gid} {} (or start \
         Shoebox as root with SHOEBOX_RUN_AS={uid}:{gid}, which does that for an empty disk \
         or a store that root owns)",
        dir.display()
    ))
}

/// The first entry under `dir` (see [`check_owner`]) that `uid` does not own, with its owner.
fn foreign_owned(dir: &Path, uid: u32, top: bool) -> io::Result<Option<(PathBuf, u32)>> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if top && name == "lost+found" {
            continue;
        }
        let path = entry.path();
        let meta = fs::symlink_metadata(&path)?;
        if meta.uid() != uid {
            return Ok(Some((path, meta.uid())));
        }
        if meta.is_dir() && !(top && NOT_WALKED.iter().any(|n| name == *n)) {
            if let Some(found) = foreign_owned(&path, uid, false)? {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{chown, lchown, symlink};

    const TO: RunAs = RunAs {
        uid: 10001,
        gid: 10001,
    };

    /// Changing owners needs root: without it these tests fail under `CI=true` and say they
    /// skip otherwise.
    fn root() -> bool {
        if unistd::geteuid().is_root() {
            return true;
        }
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "changing file owners needs root; CI=true needs it"
        );
        eprintln!("skipped: changing file owners needs root");
        false
    }

    fn owner(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().uid()
    }

    #[test]
    fn a_store_of_another_user_is_refused_with_the_chown_that_fixes_it() {
        let dir = tempfile::tempdir().unwrap();
        Layout::new(dir.path()).prepare().unwrap();
        let me = unistd::geteuid().as_raw();
        assert_eq!(foreign_owned(dir.path(), me, true).unwrap(), None);
        check_owner(dir.path(), me, 4242).unwrap();
        let err = check_owner(dir.path(), me + 1, 4242).unwrap_err();
        assert!(
            err.contains(&format!(
                "the data directory {} is owned by uid {me}",
                dir.path().display()
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "chown -R {}:4242 {}",
                me + 1,
                dir.path().display()
            )),
            "{err}"
        );
        assert!(check_owner(&dir.path().join("absent"), me + 1, 4242).is_ok());
    }

    #[test]
    fn what_another_user_left_in_the_database_is_found() {
        if !root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        Layout::new(dir.path()).prepare().unwrap();
        fs::create_dir_all(dir.path().join("meta/blobs")).unwrap();
        fs::write(dir.path().join("meta/blobs/1"), b"x").unwrap();
        chown_tree(dir.path(), TO).unwrap();
        assert_eq!(foreign_owned(dir.path(), TO.uid, true).unwrap(), None);
        chown(dir.path().join("meta/blobs/1"), Some(0), Some(0)).unwrap();
        let found = foreign_owned(dir.path(), TO.uid, true).unwrap();
        assert_eq!(found, Some((dir.path().join("meta/blobs/1"), 0)));
        let err = check_owner(dir.path(), TO.uid, TO.gid).unwrap_err();
        assert!(
            err.contains("meta/blobs/1 in the data directory is owned by uid 0"),
            "{err}"
        );
    }

    #[test]
    fn a_root_owned_store_is_handed_over_without_following_links() {
        if !root() {
            return;
        }
        let outside = tempfile::NamedTempFile::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root_dir = dir.path().join("data");
        fs::create_dir(&root_dir).unwrap();
        fs::create_dir(root_dir.join("lost+found")).unwrap();
        Layout::new(&root_dir).prepare().unwrap();
        fs::write(root_dir.join("records/a.json"), b"{}").unwrap();
        symlink(outside.path(), root_dir.join("records/link")).unwrap();
        symlink(dir.path(), root_dir.join("tmp/dirlink")).unwrap();
        fs::write(root_dir.join("records/theirs.json"), b"{}").unwrap();
        chown(
            root_dir.join("records/theirs.json"),
            Some(10002),
            Some(10002),
        )
        .unwrap();

        let changed = adopt(&root_dir, TO).unwrap();
        assert!(changed >= 8, "{changed}");
        for p in [
            "",
            "FORMAT",
            "records",
            "records/a.json",
            "meta",
            "secrets",
            "tmp",
        ] {
            assert_eq!(owner(&root_dir.join(p)), TO.uid, "{p}");
        }
        assert_eq!(
            owner(&root_dir.join("records/link")),
            TO.uid,
            "the link itself"
        );
        assert_eq!(owner(outside.path()), 0, "never what a link points to");
        assert_eq!(owner(dir.path()), 0, "never a directory a link points to");
        assert_eq!(owner(&root_dir.join("lost+found")), 0);
        assert_eq!(owner(&root_dir.join("records/theirs.json")), 10002);
        assert_eq!(adopt(&root_dir, TO).unwrap(), 0, "once is enough");

        // The file another user left is what the check after the drop names.
        assert_eq!(
            foreign_owned(&root_dir, TO.uid, true).unwrap(),
            None,
            "records/ is not walked at every start"
        );
        lchown(root_dir.join("records"), Some(10002), None).unwrap();
        assert_eq!(
            foreign_owned(&root_dir, TO.uid, true).unwrap(),
            Some((root_dir.join("records"), 10002))
        );
    }

    #[test]
    fn root_hands_over_only_an_empty_directory_or_a_store_of_its_own() {
        if !root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh");
        assert_eq!(adopt(&fresh, TO).unwrap(), 1, "created and given");
        assert_eq!(owner(&fresh), TO.uid);

        let foreign = dir.path().join("foreign");
        fs::create_dir(&foreign).unwrap();
        fs::write(foreign.join("passwd"), b"root:x:0:0").unwrap();
        let err = adopt(&foreign, TO).unwrap_err();
        assert!(
            err.contains("\"passwd\"") && err.contains("not Shoebox's"),
            "{err}"
        );
        assert_eq!(owner(&foreign.join("passwd")), 0);

        let theirs = dir.path().join("theirs");
        Layout::new(&theirs).prepare().unwrap();
        chown(&theirs, Some(10002), Some(10002)).unwrap();
        let err = adopt(&theirs, TO).unwrap_err();
        assert!(err.contains("owned by uid 10002"), "{err}");
        assert!(
            err.contains(&format!("chown -R 10001:10001 {}", theirs.display())),
            "{err}"
        );
        assert_eq!(owner(&theirs.join("FORMAT")), 0, "nothing changed");
    }
}

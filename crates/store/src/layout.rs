//! The data directory: its sub-directories, the `FORMAT` marker and the fsync helpers that the
//! durable write protocol relies on.

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use super::StoreError;

/// The mode of every file Shoebox writes in the data directory: records and metadata are as
/// private as the blobs and secrets (the process's umask covers what sled creates).
pub const FILE_MODE: u32 = 0o600;

/// The layout version this build writes and understands.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_MAGIC: &str = "shoebox-data-format";

/// Entries a data directory may hold before `FORMAT` exists: our own sub-directories (left by a
/// first start that crashed before writing `FORMAT`) and the `lost+found` of a fresh ext4 disk.
const KNOWN_ENTRIES: &[&str] = &[
    "FORMAT",
    "blobs",
    "tmp",
    "meta",
    "records",
    "quarantine",
    "variants",
    "uploads",
    "collections",
    "secrets",
    "CATALOG",
    "meta.building",
    "meta.new",
    "space-reserve",
    "lost+found",
];

/// What a restore moves into a data directory (besides `FORMAT`, which goes last).
pub(crate) const RESTORED_ENTRIES: &[&str] = &[
    "blobs",
    "tmp",
    "meta",
    "records",
    "quarantine",
    "variants",
    "uploads",
    "collections",
    "secrets",
    "CATALOG",
];

/// How long [`Layout::lock`] waits for a lock held elsewhere to go.
pub const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// The data directory's lock (see [`Layout::lock`]).
#[derive(Debug)]
pub struct DirLock(#[allow(dead_code)] File);

/// Paths inside one data directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The paths of the data directory at `root`; nothing is read or created (see
    /// [`prepare`](Self::prepare)).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    /// The data directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `FORMAT`: the layout version and the instance id.
    pub fn format_file(&self) -> PathBuf {
        self.root.join("FORMAT")
    }
    /// `blobs/sha256/`: the blob files, named by the sha256 of their bytes.
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }
    /// `tmp/`: uploads in flight; emptied at start-up.
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    /// `meta/`: the sled database, an index over `records/`.
    pub fn meta(&self) -> PathBuf {
        self.root.join("meta")
    }
    /// `records/`: one JSON file per record, the truth.
    pub fn records(&self) -> PathBuf {
        self.root.join("records")
    }
    /// `quarantine/`: what was set aside (damaged blobs, record files), never deleted.
    pub fn quarantine(&self) -> PathBuf {
        self.root.join("quarantine")
    }
    /// `variants/`: files derived from blobs; a cache, safe to delete.
    pub fn variants(&self) -> PathBuf {
        self.root.join("variants")
    }
    /// Resumable uploads in progress (see [`partial`](crate::partial)); never in backups.
    pub fn uploads(&self) -> PathBuf {
        self.root.join("uploads")
    }
    /// `collections/`: a file per collection that has one, with its settings (see
    /// [`collections`](crate::collections)); in backups, and never rebuilt.
    pub fn collections(&self) -> PathBuf {
        self.root.join("collections")
    }

    /// `secrets/`: the hashes of the tokens, and the session and URL-signing keys.
    pub fn secrets(&self) -> PathBuf {
        self.root.join("secrets")
    }
    /// The catalogue seal: evidence outside the database of its state (see
    /// [`catalogue`](super::catalogue)).
    pub fn catalog_file(&self) -> PathBuf {
        self.root.join("CATALOG")
    }
    /// Where a rebuild writes the new database until it is complete (see
    /// [`rebuild`](super::rebuild)).
    pub fn meta_building(&self) -> PathBuf {
        self.root.join("meta.building")
    }
    /// Where a rebuild's new database, once complete, waits to be swapped in for `meta/`.
    pub fn meta_new(&self) -> PathBuf {
        self.root.join("meta.new")
    }
    /// Space held back for the database when something else fills the disk.
    pub fn space_reserve_file(&self) -> PathBuf {
        self.root.join("space-reserve")
    }

    /// Locks the data directory for this process: one server or command at a time. The lock
    /// is on `FORMAT` and goes when the returned value is dropped (or the process ends).
    ///
    /// A lock held elsewhere is tried again for up to [`LOCK_PATIENCE`] before the directory
    /// is called in use: a server killed while it started a program (ffmpeg, for a poster)
    /// leaves the lock to the child for the moment until that child runs the program, because
    /// a child holds a copy of every open file until then. A supervisor that restarts the
    /// server at once would otherwise be refused.
    pub fn lock(&self) -> Result<DirLock, StoreError> {
        let file = File::open(self.format_file()).map_err(|e| StoreError::io("open FORMAT", e))?;
        let began = std::time::Instant::now();
        loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(DirLock(file)),
                Err(rustix::io::Errno::WOULDBLOCK) if began.elapsed() < LOCK_PATIENCE => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    return Err(StoreError::Locked(format!(
                        "the data directory {} is in use by another Shoebox process (a running \
                         server?); stop it first",
                        self.root.display()
                    )))
                }
                Err(e) => return Err(StoreError::io("lock the data directory", e.into())),
            }
        }
    }

    /// Creates the directory tree (or checks an existing one) and returns the instance id.
    ///
    /// An empty or absent directory is initialised; a directory with a `FORMAT` of this version is
    /// opened; anything else (a newer version, a foreign file, a non-empty unrelated directory) is
    /// refused so that Shoebox never scribbles over data it does not understand.
    pub fn prepare(&self) -> Result<String, StoreError> {
        fs::create_dir_all(&self.root)
            .map_err(|e| StoreError::io("create the data directory", e))?;
        let instance = match fs::read_to_string(self.format_file()) {
            Ok(text) => parse_format(&text, &self.format_file())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.refuse_foreign_directory()?;
                self.write_format()?
            }
            Err(e) => return Err(StoreError::io("read FORMAT", e)),
        };
        for dir in [
            self.blobs(),
            self.tmp(),
            self.meta(),
            self.records(),
            self.variants(),
            self.uploads(),
            self.collections(),
            self.secrets(),
        ] {
            fs::create_dir_all(&dir)
                .map_err(|e| StoreError::io("create a data sub-directory", e))?;
        }
        // Private to the user Shoebox runs as, whatever modes the files inside have (a store
        // written before record files were 0600, for one).
        set_mode(&self.root, 0o700)?;
        set_mode(&self.secrets(), 0o700)?;
        Ok(instance)
    }

    fn refuse_foreign_directory(&self) -> Result<(), StoreError> {
        match self.unknown_entry()? {
            None => Ok(()),
            Some(name) => Err(StoreError::Format(format!(
                "{} is not empty and has no FORMAT file, so it is not a Shoebox data directory \
                 (found {:?}); point SHOEBOX_DATA_DIR at an empty directory or an existing store",
                self.root.display(),
                name
            ))),
        }
    }

    /// The first entry that a data directory without `FORMAT` should not hold, if any.
    fn unknown_entry(&self) -> Result<Option<OsString>, StoreError> {
        let entries =
            fs::read_dir(&self.root).map_err(|e| StoreError::io("list the data directory", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list the data directory", e))?;
            let name = entry.file_name();
            if !KNOWN_ENTRIES.iter().any(|k| name == *k) {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Whether the directory is Shoebox's to take: `None` when it holds a store (a `FORMAT`
    /// of ours, any version) or only what a fresh disk or a first start leaves, else the
    /// first entry that belongs to something else. Decides whether root may hand the
    /// directory to the user Shoebox runs as.
    pub fn foreign_entry(&self) -> Result<Option<OsString>, StoreError> {
        match fs::read(self.format_file()) {
            Ok(text) if text.starts_with(FORMAT_MAGIC.as_bytes()) => Ok(None),
            Ok(_) => Ok(Some("FORMAT".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.unknown_entry(),
            Err(e) => Err(StoreError::io("read FORMAT", e)),
        }
    }

    fn write_format(&self) -> Result<String, StoreError> {
        let instance = hex::encode(rand::random::<[u8; 16]>());
        let created = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let text =
            format!("{FORMAT_MAGIC} {FORMAT_VERSION}\ninstance {instance}\ncreated {created}\n");
        write_atomically(&self.root, &self.format_file(), text.as_bytes(), FILE_MODE)?;
        Ok(instance)
    }

    /// Removes everything in `tmp/`: uploads that were in flight when the process stopped.
    /// None of them was acknowledged, so none of them is data.
    pub fn clear_tmp(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        let entries = fs::read_dir(self.tmp()).map_err(|e| StoreError::io("list tmp/", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list tmp/", e))?;
            let path = entry.path();
            let result = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            result.map_err(|e| StoreError::io("clear tmp/", e))?;
            removed += 1;
        }
        if removed > 0 {
            fsync_dir(&self.tmp())?;
        }
        Ok(removed)
    }
}

fn parse_format(text: &str, path: &Path) -> Result<String, StoreError> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let version = first
        .strip_prefix(FORMAT_MAGIC)
        .map(str::trim)
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| {
            StoreError::Format(format!(
                "{} does not look like a Shoebox FORMAT file (first line {first:?})",
                path.display()
            ))
        })?;
    if version != FORMAT_VERSION {
        return Err(StoreError::Format(format!(
            "this data directory has layout version {version}, but this Shoebox understands only \
             version {FORMAT_VERSION}; {}",
            if version > FORMAT_VERSION {
                "it was written by a newer Shoebox: upgrade the binary, do not downgrade a store"
            } else {
                "run a Shoebox release that can migrate it"
            }
        )));
    }
    let instance = lines
        .find_map(|l| l.strip_prefix("instance "))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    Ok(instance)
}

/// fsyncs a directory so that a rename or unlink inside it survives a power loss (see
/// [`crate::durable`]).
pub fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    crate::durable::fsync_dir(dir).map_err(|e| StoreError::io("fsync a directory", e))
}

/// Writes a small file so that readers see either the old or the new content, never a mix
/// (see [`crate::durable`]).
pub fn write_atomically(
    dir: &Path,
    target: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(), StoreError> {
    crate::durable::write_atomically(dir, target, bytes, mode)
        .map_err(|e| StoreError::io("write a file durably", e))
}

/// Sets the permission bits of a file or directory (see [`FILE_MODE`]).
pub fn set_mode(path: &Path, mode: u32) -> Result<(), StoreError> {
    crate::durable::set_mode(path, mode).map_err(|e| StoreError::io("set file permissions", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock held elsewhere is waited for a moment (a killed server's child may hold it until
    /// it runs its program), and refused once it is held past that.
    #[test]
    fn a_lock_held_elsewhere_is_waited_for_a_moment() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("data"));
        layout.prepare().unwrap();
        let held = layout.lock().unwrap();
        let began = std::time::Instant::now();
        assert!(matches!(layout.lock(), Err(StoreError::Locked(_))));
        assert!(
            began.elapsed() >= LOCK_PATIENCE,
            "refused only after the wait"
        );
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(held);
        });
        layout.lock().expect("taken once the holder lets go");
        release.join().unwrap();
    }

    #[test]
    fn initialises_an_empty_directory_and_reopens_it() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("data"));
        let first = layout.prepare().unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(
            layout.prepare().unwrap(),
            first,
            "the instance id is stable"
        );
        assert!(layout.blobs().is_dir() && layout.tmp().is_dir() && layout.meta().is_dir());
    }

    #[test]
    fn refuses_a_newer_format() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("FORMAT"),
            "shoebox-data-format 2\ninstance x\n",
        )
        .unwrap();
        let err = Layout::new(dir.path()).prepare().unwrap_err().to_string();
        assert!(err.contains("newer Shoebox"), "{err}");
    }

    #[test]
    fn refuses_a_foreign_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let err = Layout::new(dir.path()).prepare().unwrap_err().to_string();
        assert!(err.contains("not a Shoebox data directory"), "{err}");
        fs::write(dir.path().join("FORMAT"), "something else\n").unwrap();
        let err = Layout::new(dir.path()).prepare().unwrap_err().to_string();
        assert!(err.contains("does not look like"), "{err}");
    }

    #[test]
    fn the_data_directory_and_format_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        Layout::new(&root).prepare().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("FORMAT")), 0o600);
    }

    #[test]
    fn tells_a_store_or_a_fresh_disk_from_something_else() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        assert_eq!(layout.foreign_entry().unwrap(), None, "empty");
        fs::create_dir(dir.path().join("lost+found")).unwrap();
        assert_eq!(layout.foreign_entry().unwrap(), None, "a fresh ext4");
        layout.prepare().unwrap();
        fs::write(dir.path().join("notes.txt"), "a store may hold odd files").unwrap();
        assert_eq!(layout.foreign_entry().unwrap(), None, "a store");

        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join("FORMAT"), "somebody else's\n").unwrap();
        assert_eq!(
            Layout::new(other.path()).foreign_entry().unwrap(),
            Some("FORMAT".into())
        );
        fs::remove_file(other.path().join("FORMAT")).unwrap();
        fs::create_dir(other.path().join("etc")).unwrap();
        assert_eq!(
            Layout::new(other.path()).foreign_entry().unwrap(),
            Some("etc".into())
        );
    }

    #[test]
    fn accepts_lost_and_found() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("lost+found")).unwrap();
        Layout::new(dir.path()).prepare().unwrap();
    }
}

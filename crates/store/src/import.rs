//! `shoebox import DIR`: adopt an existing uploads folder. Every file becomes media (through the
//! same durable write protocol as an upload), keeps its old path so old URLs keep working (the
//! path is its object key too), and is listed in a mapping of old path to new URL. Re-running
//! adds nothing twice.

use std::fs;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use super::record::{self, MediaFields, MediaRecord};
use super::{NewMedia, Store, StoreError};

/// How `shoebox import` files what it adopts.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The collection every imported file joins (checked as a collection name); `None` for
    /// none.
    pub collection: Option<String>,
    /// URL path prefix the old files were served under, e.g. `/uploads`.
    pub url_prefix: Option<String>,
}

/// What became of one file found under the imported folder.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportOutcome {
    /// Adopted now, as this new record.
    Imported(MediaRecord),
    /// Imported by an earlier run.
    AlreadyThere(MediaRecord),
    /// Left alone; the reason, as a phrase (not a regular file, a link that may lead outside
    /// the folder, unreadable).
    Skipped(String),
}

/// One file found under the imported folder, and what became of it.
#[derive(Debug, Clone)]
pub struct ImportItem {
    /// The path relative to the imported folder, with `/` separators.
    pub path: String,
    /// What became of it.
    pub outcome: ImportOutcome,
}

/// A file found under the imported folder: where it was found, and the path to open (a
/// symlink's target inside the folder), or why it is skipped.
type Found = (PathBuf, Result<PathBuf, String>);

/// Every regular file under `dir`, depth first, sorted. Symlinks are followed only when they
/// resolve inside `dir`; those leaving it are reported, never read. What is finally opened is
/// checked again, on the open file (see [`open_inside`]).
fn walk(root: &Path, dir: &Path, out: &mut Vec<Found>) {
    let mut entries: Vec<_> = match fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(Result::ok).collect(),
        Err(e) => {
            out.push((dir.to_owned(), Err(format!("unreadable folder: {e}"))));
            return;
        }
    };
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            out.push((path, Err("unreadable".into())));
            continue;
        };
        if meta.file_type().is_symlink() {
            match fs::canonicalize(&path) {
                Ok(target) if target.starts_with(root) && target.is_file() => {
                    out.push((path, Ok(target)))
                }
                Ok(target) if target.starts_with(root) => {
                    out.push((path, Err("a symlink to a folder (not followed)".into())))
                }
                Ok(_) => out.push((
                    path,
                    Err("a symlink that leaves the imported folder (not followed)".into()),
                )),
                Err(_) => out.push((path, Err("a dangling symlink".into()))),
            }
        } else if meta.is_dir() {
            walk(root, &path, out);
        } else if meta.is_file() {
            out.push((path.clone(), Ok(path)));
        } else {
            out.push((path, Err("not a regular file".into())));
        }
    }
}

/// Opens a file to import and checks the open file itself, not its path (a path checked and
/// then opened can be swapped in between): not a symlink (`O_NOFOLLOW`), a regular file, truly
/// inside the folder (where the kernel says the open file is), and without other hard links,
/// whose other names may be anywhere on the disk, outside the folder.
fn open_inside(root: &Path, path: &Path) -> Result<fs::File, StoreError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    use std::os::unix::io::AsRawFd;
    let skip = |why: &str| {
        StoreError::io(
            "import a file",
            std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_owned()),
        )
    };
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| StoreError::io("open a file to import", e))?;
    let meta = file
        .metadata()
        .map_err(|e| StoreError::io("stat a file to import", e))?;
    if !meta.is_file() {
        return Err(skip("not a regular file"));
    }
    if meta.nlink() > 1 {
        return Err(skip(
            "it has other hard links, which may be outside the imported folder; copy it into \
             the folder to import it",
        ));
    }
    let real = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|e| StoreError::io("find where a file to import is", e))?;
    if !real.starts_with(root) {
        return Err(skip("it is outside the imported folder"));
    }
    Ok(file)
}

impl Store {
    /// Adopts every regular file under `dir` as media, in path order, and reports on each. A
    /// file an earlier run imported (the same old path) is not imported twice; one that cannot
    /// be read safely is skipped with its reason. Fails only on what stops the whole import,
    /// such as a full disk or a failing database. Shows progress on stderr when it is a
    /// terminal.
    pub fn import(&self, dir: &Path, opts: &ImportOptions) -> Result<Vec<ImportItem>, StoreError> {
        let root =
            fs::canonicalize(dir).map_err(|e| StoreError::io("open the folder to import", e))?;
        let collection = match &opts.collection {
            Some(c) => record::collection(c)?,
            None => None,
        };
        let prefix = opts
            .url_prefix
            .as_deref()
            .map(|p| format!("/{}", p.trim_matches('/')));
        let mut files = Vec::new();
        walk(&root, &root, &mut files);
        let progress = std::io::stderr().is_terminal();
        let total = files.len();
        let mut items = Vec::new();
        for (n, (path, readable)) in files.into_iter().enumerate() {
            let rel = path
                .strip_prefix(&root)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_else(|_| path.display().to_string());
            let outcome = match readable {
                Err(why) => ImportOutcome::Skipped(why),
                Ok(open_path) => {
                    let legacy = match &prefix {
                        Some(p) if p != "/" => format!("{p}/{rel}"),
                        Some(_) => format!("/{rel}"),
                        None => rel.clone(),
                    };
                    match self.by_legacy_path(&legacy)? {
                        Some(existing) => ImportOutcome::AlreadyThere(existing),
                        None => match open_inside(&root, &open_path).and_then(|file| {
                            self.import_file(file, &path, legacy, collection.clone())
                        }) {
                            Ok(r) => ImportOutcome::Imported(r),
                            Err(e @ StoreError::Io { .. }) if !e.is_disk_full() => {
                                ImportOutcome::Skipped(e.to_string())
                            }
                            Err(e) => return Err(e),
                        },
                    }
                }
            };
            items.push(ImportItem { path: rel, outcome });
            if progress && (n % 50 == 0 || n + 1 == total) {
                eprint!("\rimporting: {}/{total}", n + 1);
                if n + 1 == total {
                    eprintln!();
                }
            }
        }
        Ok(items)
    }

    fn import_file(
        &self,
        mut file: fs::File,
        path: &Path,
        legacy: String,
        collection: Option<String>,
    ) -> Result<MediaRecord, StoreError> {
        let mtime = file.metadata().and_then(|m| m.modified()).ok();
        let mut writer = self.stage()?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| StoreError::io("read a file to import", e))?;
            if n == 0 {
                break;
            }
            writer.write(&buf[..n])?;
        }
        let blob = writer.finish()?;
        let filename = record::filename(
            &path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        // The old path is the object key too, unless it is not one or another record holds
        // it; then the record gets `{id}/{filename}`.
        let key = record::object_key(&legacy).ok().filter(|key| {
            self.by_key(collection.as_deref(), key)
                .is_ok_and(|holder| holder.is_none())
        });
        let fields = MediaFields {
            collection,
            key,
            legacy_path: Some(legacy),
            created_at: mtime.map(|t| {
                time::OffsetDateTime::from(t)
                    .replace_nanosecond(0)
                    .unwrap_or(time::OffsetDateTime::from(t))
            }),
            ..MediaFields::default()
        };
        let mut created = self.create(vec![NewMedia::new(blob, filename, None, fields)])?;
        created
            .pop()
            .ok_or_else(|| StoreError::Corrupt("an import created nothing".into()))
    }
}

//! `shoebox import DIR`: adopt an existing uploads folder. Every file becomes media (through the
//! same durable write protocol as an upload), keeps its old path so old URLs keep working, and
//! is listed in a mapping of old path to new URL. Re-running adds nothing twice.

use std::fs;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use super::record::{self, MediaFields, MediaRecord};
use super::{NewMedia, Store, StoreError};

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub collection: Option<String>,
    /// URL path prefix the old files were served under, e.g. `/uploads`.
    pub url_prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Imported(MediaRecord),
    /// Imported by an earlier run.
    AlreadyThere(MediaRecord),
    Skipped(String),
}

#[derive(Debug, Clone)]
pub struct ImportItem {
    /// The path relative to the imported folder, with `/` separators.
    pub path: String,
    pub outcome: Outcome,
}

/// Every regular file under `dir`, depth first, sorted. Symlinks are followed only when they
/// resolve inside `dir`; those leaving it are reported, never read.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Result<(), String>)>) {
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
                    out.push((path, Ok(())))
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
            out.push((path, Ok(())));
        } else {
            out.push((path, Err("not a regular file".into())));
        }
    }
}

impl Store {
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
                Err(why) => Outcome::Skipped(why),
                Ok(()) => {
                    let legacy = match &prefix {
                        Some(p) if p != "/" => format!("{p}/{rel}"),
                        Some(_) => format!("/{rel}"),
                        None => rel.clone(),
                    };
                    match self.by_legacy_path(&legacy)? {
                        Some(existing) => Outcome::AlreadyThere(existing),
                        None => match self.import_file(&path, legacy, collection.clone()) {
                            Ok(r) => Outcome::Imported(r),
                            Err(e @ StoreError::Io { .. }) if !e.is_disk_full() => {
                                Outcome::Skipped(e.to_string())
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
        path: &Path,
        legacy: String,
        collection: Option<String>,
    ) -> Result<MediaRecord, StoreError> {
        let mut file =
            fs::File::open(path).map_err(|e| StoreError::io("read a file to import", e))?;
        let mtime = file.metadata().and_then(|m| m.modified()).ok();
        let mut writer = self.writer()?;
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
        let fields = MediaFields {
            collection,
            legacy_path: Some(legacy),
            created_at: mtime.map(|t| {
                time::OffsetDateTime::from(t)
                    .replace_nanosecond(0)
                    .unwrap_or(time::OffsetDateTime::from(t))
            }),
            ..MediaFields::default()
        };
        let mut created = self.create(vec![NewMedia {
            blob,
            filename,
            declared_type: None,
            fields,
        }])?;
        created
            .pop()
            .ok_or_else(|| StoreError::Corrupt("an import created nothing".into()))
    }
}

//! An upload's files in `uploads/` on this disk: the `.part` file of its bytes and the sidecar
//! of its state, read back, trimmed to the acknowledged offset and rehashed after a restart.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{valid_id, Open, PartialUpload, Partials, MULTIPART, PIECES, SIDECAR_VERSION};
use crate::durable;
use crate::layout::FILE_MODE;
use crate::StoreError;

impl Partials {
    /// At start: truncates every `.part` file to its acknowledged offset, and removes what a
    /// crash left without a sidecar (a creation cut short, a sidecar's temp file). Returns how
    /// many uploads are in progress.
    pub(crate) fn recover(&self) -> Result<usize, StoreError> {
        fs::create_dir_all(&self.dir).map_err(|e| StoreError::io("create uploads/", e))?;
        self.lock_open().clear();
        let mut kept = 0;
        for entry in fs::read_dir(&self.dir).map_err(|e| StoreError::io("list uploads/", e))? {
            let entry = entry.map_err(|e| StoreError::io("list uploads/", e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = entry.path();
            match name.split_once('.') {
                Some((id, "json")) if valid_id(id) => match self.read(id)? {
                    Some(upload) => {
                        if upload.media_id.is_none() {
                            self.trim(&upload)?;
                            self.lock_open().insert(
                                upload.id,
                                Open {
                                    owner: upload.owner,
                                    offset: upload.offset,
                                },
                            );
                            kept += 1;
                        }
                    }
                    None => remove_file(&path)?,
                },
                Some((id, "part")) if valid_id(id) && self.sidecar(id).exists() => {}
                // S3 multipart uploads keep their own house (see `multipart`), and so do the
                // copies of shared uploads' pieces.
                None if name == MULTIPART || name == PIECES => {}
                _ => {
                    tracing::info!(file = %name, "removed a leftover from uploads/");
                    if path.is_dir() {
                        fs::remove_dir_all(&path)
                    } else {
                        fs::remove_file(&path)
                    }
                    .map_err(|e| StoreError::io("remove a leftover from uploads/", e))?;
                }
            }
        }
        Ok(kept)
    }

    /// Cuts bytes past the acknowledged offset: what a crash or an interrupted chunk left.
    pub(super) fn trim(&self, upload: &PartialUpload) -> Result<(), StoreError> {
        if self.shared.is_some() {
            return Ok(());
        }
        let path = self.part(&upload.id);
        let file = match OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Its creation was cut short after the sidecar: nothing was acknowledged. (A
                // whole upload without its bytes became media before a stop; completing it
                // again finds the record by its reserved id.)
                if upload.offset == 0 {
                    create_part(&path)?;
                }
                return Ok(());
            }
            Err(e) => return Err(StoreError::io("open a partial upload", e)),
        };
        let len = file
            .metadata()
            .map_err(|e| StoreError::io("read a partial upload's size", e))?
            .len();
        if len > upload.offset {
            file.set_len(upload.offset)
                .and_then(|_| file.sync_all())
                .map_err(|e| StoreError::io("trim a partial upload", e))?;
        }
        Ok(())
    }

    pub(super) fn read(&self, id: &str) -> Result<Option<PartialUpload>, StoreError> {
        let text = match fs::read(self.sidecar(id)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("read an upload's sidecar", e)),
        };
        match serde_json::from_slice::<PartialUpload>(&text) {
            Ok(u) if u.id == id && u.version == SIDECAR_VERSION => Ok(Some(u)),
            // A sidecar is replaced whole (rename), so a damaged one is the disk's doing.
            _ => Err(StoreError::Corrupt(format!(
                "the sidecar of upload {id} in uploads/ cannot be read"
            ))),
        }
    }

    /// The sha256 of the first `upload.offset` bytes: kept from the last chunk, or read back.
    pub(super) fn hasher_at(&self, upload: &PartialUpload) -> Result<Sha256, StoreError> {
        let kept = self.lock_hashers().remove(&upload.id);
        if let Some((offset, hasher)) = kept {
            if offset == upload.offset {
                return Ok(hasher);
            }
        }
        let file =
            File::open(self.part(&upload.id)).map_err(|e| StoreError::io("read an upload", e))?;
        let mut hasher = Sha256::new();
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file.take(upload.offset));
        let copied = std::io::copy(&mut reader, &mut hasher)
            .map_err(|e| StoreError::io("read an upload back to hash it", e))?;
        if copied != upload.offset {
            return Err(StoreError::Corrupt(format!(
                "upload {} holds {copied} of its {} acknowledged bytes",
                upload.id, upload.offset
            )));
        }
        Ok(hasher)
    }
}

pub(super) fn create_part(path: &Path) -> Result<File, StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| StoreError::io("create a partial upload", e))?;
    durable::set_mode(path, FILE_MODE).map_err(|e| StoreError::io("create a partial upload", e))?;
    Ok(file)
}

pub(super) fn remove_file(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StoreError::io("remove a file from uploads/", e))
        }
        _ => Ok(()),
    }
}

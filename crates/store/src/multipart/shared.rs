//! S3 multipart uploads that any instance may continue, when the records are in PostgreSQL
//! and the blobs in a bucket: the upload is a row of `uploads_in_progress` (kind `s3`), each
//! part a row of `upload_parts` and an object in the bucket, `uploads/<id>/<number>-<nonce>`.
//! Clients send parts in parallel and a proxy spreads them over the instances, so each part
//! has a row of its own: parts never contend for one row.
//!
//! A part is acknowledged once its object is in the bucket (the PUT answered) and its row
//! names it. A crash in between leaves an object no row names, which `gc` removes after its
//! grace period; so does a part replaced by a part of the same number sent at the same time
//! on another instance. The instance that received a part keeps a copy in `uploads/pieces/`,
//! and completing the upload there reads that copy rather than the bucket's.

use std::fs::{self, File};
use std::path::PathBuf;
use std::sync::Arc;

use super::{MultipartUpload, Part};
use crate::bucket::{Bucket, ObjectKey};
use crate::pg::PgMeta;
use crate::{StagedBlob, StoreError};

/// The kind of these uploads in `uploads_in_progress`.
const KIND: &str = "s3";

pub(crate) struct SharedParts {
    pg: Arc<PgMeta>,
    bucket: Arc<Bucket>,
    /// `uploads/pieces/`: this instance's copies.
    cache: PathBuf,
    /// `tmp/`, where a part read from the bucket is kept while the upload completes.
    tmp: PathBuf,
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::io("encode an upload's state", std::io::Error::other(e)))
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::Corrupt(format!(
            "a multipart upload's state in PostgreSQL cannot be read: {e}"
        ))
    })
}

impl SharedParts {
    pub(crate) fn new(
        pg: Arc<PgMeta>,
        bucket: Arc<Bucket>,
        cache: PathBuf,
        tmp: PathBuf,
    ) -> SharedParts {
        SharedParts {
            pg,
            bucket,
            cache,
            tmp,
        }
    }

    fn key(id: &str, part: &Part) -> Result<ObjectKey, StoreError> {
        ObjectKey::piece(id, &part.file)
            .ok_or_else(|| StoreError::Corrupt(format!("upload {id} names an unusable part")))
    }

    fn local(&self, id: &str, part: &Part) -> PathBuf {
        self.cache.join(format!("{id}-{}", part.file))
    }

    pub(super) fn create(&self, upload: &MultipartUpload) -> Result<(), StoreError> {
        let owner = upload.owner.clone().unwrap_or_default();
        let added =
            self.pg
                .upload_insert(KIND, &upload.id, &owner, &encode(upload)?, usize::MAX)?;
        if added {
            Ok(())
        } else {
            Err(StoreError::Changed(
                "a multipart upload's id was taken".into(),
            ))
        }
    }

    pub(super) fn get(&self, id: &str) -> Result<Option<MultipartUpload>, StoreError> {
        self.pg
            .upload_get(KIND, id)?
            .map(|row| decode(&row.state))
            .transpose()
    }

    pub(super) fn list(&self) -> Result<Vec<MultipartUpload>, StoreError> {
        let mut out = Vec::new();
        for row in self.pg.upload_all(KIND)? {
            match decode(&row.state) {
                Ok(u) => out.push(u),
                Err(e) => tracing::warn!(error = %e, "skipped a multipart upload"),
            }
        }
        Ok(out)
    }

    pub(super) fn add_part(
        &self,
        upload: &MultipartUpload,
        number: u32,
        blob: StagedBlob,
        md5: String,
    ) -> Result<Part, StoreError> {
        let part = Part {
            number,
            size: blob.size,
            md5,
            file: format!("{number:05}-{}", hex::encode(rand::random::<[u8; 6]>())),
            last_modified: crate::record::now(),
        };
        let key = Self::key(&upload.id, &part)?;
        let temp = blob.into_temp();
        self.bucket.put_object_file(&key, temp.path(), part.size)?;
        crate::write::crash_point("s3-part-sent", || Ok(()));
        // A failure leaves the object: the row may have committed with its answer lost, and
        // an object no row names is only an orphan for `gc`.
        let old = match self
            .pg
            .upload_part_put(&upload.id, number, &encode(&part)?)?
        {
            Some(old) => old,
            None => {
                // The upload is gone: nothing can name this part.
                let _ = self.bucket.delete_object(&key);
                return Err(StoreError::NotFound);
            }
        };
        // This instance's copy, for a completion here.
        if temp.persist(self.local(&upload.id, &part)).is_err() {
            tracing::debug!(upload = %upload.id, "kept no local copy of a part");
        }
        if let Some(old) = old.as_deref().map(decode::<Part>).transpose()? {
            self.forget(&upload.id, &[old]);
        }
        Ok(part)
    }

    pub(super) fn parts(&self, id: &str) -> Result<Vec<Part>, StoreError> {
        self.pg
            .upload_parts(id)?
            .iter()
            .map(|s| decode(s))
            .collect()
    }

    /// A part's bytes: this instance's copy, or the bucket's, fetched into `tmp/` (the
    /// file is unlinked already and goes when closed). A blocking call.
    pub(super) fn part_file(&self, id: &str, part: &Part) -> Result<File, StoreError> {
        if let Ok(file) = File::open(self.local(id, part)) {
            if file.metadata().is_ok_and(|m| m.len() == part.size) {
                return Ok(file);
            }
        }
        let mut file = tempfile::tempfile_in(&self.tmp)
            .map_err(|e| StoreError::io("fetch a part into tmp/", e))?;
        let copied = self
            .bucket
            .copy_object_to(&Self::key(id, part)?, &mut file)?;
        if copied != Some(part.size) {
            return Err(StoreError::Corrupt(format!(
                "part {} of upload {id} is not in the bucket whole",
                part.number
            )));
        }
        std::io::Seek::rewind(&mut file).map_err(|e| StoreError::io("read a part", e))?;
        Ok(file)
    }

    fn forget(&self, id: &str, parts: &[Part]) {
        for part in parts {
            let _ = fs::remove_file(self.local(id, part));
            if let Err(e) = Self::key(id, part).and_then(|k| self.bucket.delete_object(&k)) {
                tracing::warn!(upload = id, error = %e, "could not remove a part");
            }
        }
    }

    pub(super) fn remove(&self, id: &str) -> Result<bool, StoreError> {
        let Some((_, parts)) = self.pg.upload_remove(KIND, id)? else {
            return Ok(false);
        };
        let parts = parts
            .iter()
            .map(|s| decode(s))
            .collect::<Result<Vec<Part>, _>>()?;
        self.forget(id, &parts);
        Ok(true)
    }

    /// Every part's name under `uploads/`, for `gc`.
    pub(super) fn piece_names(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for (id, state) in self.pg.upload_all_parts()? {
            let part: Part = decode(&state)?;
            out.push(format!("{id}/{}", part.file));
        }
        Ok(out)
    }
}

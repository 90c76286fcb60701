//! `shoebox migrate --to-blob-store`: copies every blob a record uses to another blob store
//! (a bucket, or the data directory's own `blobs/`), verifying each copy by reading it back
//! and hashing it. It only adds: the source keeps its blobs, so an interrupted run is run
//! again (blobs already whole at the destination are verified, not sent again), and the
//! store switches over when the server is started with the new setting.

/// Records and collections to PostgreSQL, or back to files.
mod records;
pub use records::RecordsReport;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::blobs::Blobs;
use crate::bucket::Bucket;
use crate::check::hash_read_with;
use crate::hash::ContentHash;
use crate::{Store, StoreError};

/// What a migration did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// Distinct blobs the records use.
    pub blobs: usize,
    /// Of them, copied by this run.
    pub copied: usize,
    /// Of them, already whole at the destination.
    pub present: usize,
    /// Bytes copied by this run.
    pub bytes_copied: u64,
    /// Bytes read back from the destination and hashed.
    pub bytes_verified: u64,
}

impl Store {
    /// Where this data directory's blobs would live with `bucket` (under `blobs/` with
    /// `None`): a destination for [`copy_blobs_to`](Self::copy_blobs_to).
    pub fn blobs_with(&self, bucket: Option<Arc<Bucket>>) -> Blobs {
        crate::blobs_for(
            &self.layout,
            &crate::Limits {
                bucket,
                ..crate::Limits::default()
            },
        )
    }

    /// Copies every blob a record uses to `dest` and verifies each copy there; `progress` is
    /// told after each blob (done, total). Fails on the first blob that cannot be read whole
    /// from here or does not hash to its name at the destination, naming it.
    pub fn copy_blobs_to(
        &self,
        dest: &Blobs,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<MigrateReport, StoreError> {
        let mut wanted: BTreeMap<ContentHash, u64> = BTreeMap::new();
        for r in self.meta.all() {
            let r = r?;
            wanted.insert(r.hash, r.size);
        }
        let mut report = MigrateReport {
            blobs: wanted.len(),
            ..MigrateReport::default()
        };
        let began = Instant::now();
        for (i, (hash, size)) in wanted.iter().enumerate() {
            if dest.holds_whole(hash, *size)? {
                report.present += 1;
            } else {
                self.copy_one(dest, hash, *size)?;
                report.copied += 1;
                report.bytes_copied += size;
            }
            let found = hash_read_with(dest.reader(hash, *size)?, |_, _| true)
                .map_err(|e| StoreError::io("read a blob back from the destination", e))?;
            if found != Some((*hash, *size)) {
                return Err(StoreError::Corrupt(format!(
                    "blob {hash} does not read back whole from the destination: nothing is \
                     switched over; run the migration again"
                )));
            }
            report.bytes_verified += size;
            progress(i + 1, wanted.len());
        }
        tracing::info!(
            blobs = report.blobs,
            copied = report.copied,
            seconds = began.elapsed().as_secs(),
            "blobs copied and verified"
        );
        Ok(report)
    }

    /// Copies one blob: straight from its file to a bucket, or staged at the destination
    /// (hashed on the way, so a damaged source is refused) and placed durably.
    fn copy_one(&self, dest: &Blobs, hash: &ContentHash, size: u64) -> Result<(), StoreError> {
        if let (Some(path), Some(bucket)) = (self.blobs.local_path(hash), dest.bucket()) {
            let found = crate::check::hash_file(&path)
                .map_err(|e| StoreError::io("read a blob to copy it", e))?;
            if found != (*hash, size) {
                return Err(damaged(hash));
            }
            return bucket.upload(hash, &path, size);
        }
        let mut writer = dest.stage()?;
        let mut reader = self.blobs.reader(hash, size)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut reader, &mut buf)
                .map_err(|e| StoreError::io("read a blob to copy it", e))?;
            if n == 0 {
                break;
            }
            writer.write(&buf[..n])?;
        }
        let staged = writer.finish()?;
        if (staged.hash, staged.size) != (*hash, size) {
            return Err(damaged(hash));
        }
        dest.place(staged)?.sync_now()
    }
}

fn damaged(hash: &ContentHash) -> StoreError {
    StoreError::Corrupt(format!(
        "blob {hash} does not hash to its name here: run `shoebox verify` before migrating"
    ))
}

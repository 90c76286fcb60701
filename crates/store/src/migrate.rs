//! `shoebox migrate --to-blob-store`: copies every blob a record uses to another blob store
//! (a bucket, or the data directory's own `blobs/`), verifying each copy by reading it back
//! and hashing it. It only adds: the source keeps its blobs, so an interrupted run is run
//! again (blobs already whole at the destination are verified, not sent again), and the
//! store switches over when the server is started with the new setting.

/// Records and collections to PostgreSQL, or back to files.
mod records;
pub use records::RecordsReport;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::blobs::Blobs;
use crate::bucket::Bucket;
use crate::check::hash_read_with;
use crate::hash::ContentHash;
use crate::{Store, StoreError};

/// Blobs copied at a time.
const COPIES_IN_FLIGHT: usize = 8;

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
        progress: impl FnMut(usize, usize) + Send,
    ) -> Result<MigrateReport, StoreError> {
        let mut wanted: BTreeMap<ContentHash, u64> = BTreeMap::new();
        for r in self.meta.all() {
            let r = r?;
            wanted.insert(r.hash, r.size);
        }
        let report = MigrateReport {
            blobs: wanted.len(),
            ..MigrateReport::default()
        };
        let began = Instant::now();
        // Several at a time: each is a round trip or two to a bucket, mostly waiting.
        let wanted: Vec<(ContentHash, u64)> = wanted.into_iter().collect();
        let next = AtomicUsize::new(0);
        let shared = Mutex::new((report, 0usize, None::<StoreError>, progress));
        std::thread::scope(|scope| {
            for _ in 0..COPIES_IN_FLIGHT.min(wanted.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((hash, size)) = wanted.get(i) else {
                        return;
                    };
                    let outcome = self.copy_and_verify(dest, hash, *size);
                    let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
                    match outcome {
                        Ok(copied) => {
                            if copied {
                                st.0.copied += 1;
                                st.0.bytes_copied += size;
                            } else {
                                st.0.present += 1;
                            }
                            st.0.bytes_verified += size;
                            st.1 += 1;
                            let done = st.1;
                            (st.3)(done, wanted.len());
                        }
                        Err(e) => {
                            // The others stop at their next blob.
                            st.2.get_or_insert(e);
                            next.store(wanted.len(), Ordering::Relaxed);
                            return;
                        }
                    }
                });
            }
        });
        let (report, _, failed, _) = shared.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = failed {
            return Err(e);
        }
        tracing::info!(
            blobs = report.blobs,
            copied = report.copied,
            seconds = began.elapsed().as_secs(),
            "blobs copied and verified"
        );
        Ok(report)
    }

    /// Copies one blob unless it is whole at `dest` already, then reads it back there and
    /// checks its hash; answers whether it was copied.
    fn copy_and_verify(
        &self,
        dest: &Blobs,
        hash: &ContentHash,
        size: u64,
    ) -> Result<bool, StoreError> {
        let copied = if dest.holds_whole(hash, size)? {
            false
        } else {
            self.copy_one(dest, hash, size)?;
            true
        };
        let found = hash_read_with(dest.reader(hash, size)?, |_, _| true)
            .map_err(|e| StoreError::io("read a blob back from the destination", e))?;
        if found != Some((*hash, size)) {
            return Err(StoreError::Corrupt(format!(
                "blob {hash} does not read back whole from the destination: nothing is \
                 switched over; run the migration again"
            )));
        }
        Ok(copied)
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

//! `shoebox migrate --to-database`: copies every record and every collection of a store to
//! PostgreSQL, or from PostgreSQL to a data directory's `records/` and `collections/` (which
//! `rebuild` then indexes in sled). Like the blobs' copy, it only adds: the source keeps its
//! records, a record already at the destination is compared rather than written again, and a
//! run cut off is simply run again. Any record at the destination that differs from the
//! source's, or that the source lacks, stops it: the destination must be empty or an earlier
//! run's.

use std::collections::HashMap;
use std::path::Path;

use crate::collections::Collections;
use crate::record_files::RecordFiles;
use crate::{Layout, MediaId, MediaRecord, PgMeta, Store, StoreError, Totals};

/// Records looked up and written at a time.
const BATCH: usize = 500;

/// What a move of the records did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordsReport {
    /// Records in the store.
    pub records: usize,
    /// Of them, written by this run.
    pub copied: usize,
    /// Of them, at the destination already and equal.
    pub present: usize,
    /// Collections with settings, copied or there already.
    pub collections: usize,
    /// The totals both sides agree on.
    pub totals: Totals,
}

fn differs(id: MediaId) -> StoreError {
    StoreError::Corrupt(format!(
        "media {id} is at the destination already, and differs: the destination must be \
         empty or an earlier migration's"
    ))
}

impl Store {
    /// Every record, in batches of [`BATCH`], each batch to `each`; `progress` is told the
    /// records done so far.
    fn in_batches(
        &self,
        mut each: impl FnMut(&[MediaRecord]) -> Result<(), StoreError>,
        mut progress: impl FnMut(usize),
    ) -> Result<usize, StoreError> {
        let mut batch = Vec::with_capacity(BATCH);
        let mut done = 0;
        for r in self.meta.all() {
            batch.push(r?);
            if batch.len() == BATCH {
                each(&batch)?;
                done += batch.len();
                progress(done);
                batch.clear();
            }
        }
        if !batch.is_empty() {
            each(&batch)?;
            done += batch.len();
            progress(done);
        }
        Ok(done)
    }

    /// Copies every record and collection to the PostgreSQL database `dest`, then checks that
    /// it holds exactly these records: the same totals, and counts that agree with them.
    pub fn copy_records_to_database(
        &self,
        dest: &std::sync::Arc<PgMeta>,
        progress: impl FnMut(usize),
    ) -> Result<RecordsReport, StoreError> {
        let mut report = RecordsReport::default();
        report.records = self.in_batches(
            |batch| {
                let ids: Vec<MediaId> = batch.iter().map(|r| r.id).collect();
                let there: HashMap<MediaId, MediaRecord> = dest
                    .get_many(&ids)?
                    .into_iter()
                    .map(|r| (r.id, r))
                    .collect();
                let mut new = Vec::new();
                for r in batch {
                    match there.get(&r.id) {
                        Some(found) if found == r => report.present += 1,
                        Some(_) => return Err(differs(r.id)),
                        None => new.push(r),
                    }
                }
                if !new.is_empty() {
                    dest.insert(&new)?;
                    report.copied += new.len();
                }
                Ok(())
            },
            progress,
        )?;
        let collections = Collections::open_shared(self.layout.collections(), dest.clone())?;
        for c in self.collections.list()? {
            collections.set_public(&c.name, c.public)?;
            report.collections += 1;
        }
        report.totals = self.same_totals(&dest.totals()?)?;
        let problems = dest.count_problems()?;
        if !problems.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "the destination's counts disagree with its records: {}",
                problems.join("; ")
            )));
        }
        Ok(report)
    }

    /// Writes every record and collection as files of the data directory at `root`, under
    /// `records/` and `collections/`, for `rebuild` to index in sled there.
    pub fn copy_records_to_files(
        &self,
        root: &Path,
        progress: impl FnMut(usize),
    ) -> Result<RecordsReport, StoreError> {
        let layout = Layout::new(root);
        layout.prepare()?;
        let files = RecordFiles::new(layout.records());
        let mut report = RecordsReport::default();
        report.records = self.in_batches(
            |batch| {
                for r in batch {
                    match files.read(r.id)? {
                        Some(found) if found == *r => report.present += 1,
                        Some(_) => return Err(differs(r.id)),
                        None => {
                            files.write(r)?;
                            report.copied += 1;
                        }
                    }
                }
                Ok(())
            },
            progress,
        )?;
        let extra = files.ids()?.len().saturating_sub(report.records);
        if extra > 0 {
            return Err(StoreError::Corrupt(format!(
                "{extra} record files at the destination are not this store's: the \
                 destination must be empty or an earlier migration's"
            )));
        }
        let collections = Collections::open(layout.collections())?;
        for c in self.collections.list()? {
            collections.set_public(&c.name, c.public)?;
            report.collections += 1;
        }
        report.totals = self.index().totals()?;
        Ok(report)
    }

    /// This store's totals, when `there` has the same; an error naming both otherwise.
    pub fn same_totals(&self, there: &Totals) -> Result<Totals, StoreError> {
        let here = self.index().totals()?;
        if here != *there {
            return Err(StoreError::Corrupt(format!(
                "the destination holds other records than this store: {} records of {} bytes \
                 there, {} of {} here: the destination must be empty or an earlier migration's",
                there.media, there.media_bytes, here.media, here.media_bytes
            )));
        }
        Ok(here)
    }
}

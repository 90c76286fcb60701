//! A new upload's records: steps 2 to 5 of the protocol (see the [module above](super)), for
//! a batch of staged uploads in one round of fsyncs, and the rollback when the round fails.

use super::parallel;
use crate::derived::bucket_key;
use crate::record::{self, Kind};
use crate::{blobs, sniff, MediaId, MediaRecord, NewMedia, StagedBlob, Store, StoreError};

/// What a record's key locks and claims: its bucket and key, as the key index has them.
pub(crate) fn claim(r: &MediaRecord) -> Vec<u8> {
    bucket_key(r.collection.as_deref(), &r.key())
}

/// Fault injection for the crash tests, which cannot otherwise stop the process between two
/// exact steps: with `SHOEBOX_CRASH_AT=<point>` set, the process runs `before` and aborts when
/// it reaches that point. Only in builds with the `crash-points` feature, which the server's
/// tests turn on through their dev-dependency: a release build has no such hook.
#[cfg(feature = "crash-points")]
pub(crate) fn crash_point(point: &str, before: impl FnOnce() -> Result<(), StoreError>) {
    static AT: std::sync::LazyLock<Option<String>> =
        std::sync::LazyLock::new(|| std::env::var("SHOEBOX_CRASH_AT").ok());
    if AT.as_deref() == Some(point) {
        let _ = before();
        eprintln!("SHOEBOX_CRASH_AT={point}: aborting");
        std::process::abort();
    }
}

#[cfg(not(feature = "crash-points"))]
pub(crate) fn crash_point(_: &str, _: impl FnOnce() -> Result<(), StoreError>) {}

impl Store {
    /// Steps 2–5 of the write protocol for a batch of staged uploads, in one round of fsyncs:
    ///
    /// 1. rename each new blob to its content address and write each record file under its
    ///    name, without waiting for the disk;
    /// 2. fsync the blobs and the directories on their paths while, side by side, the records
    ///    are inserted, their counts bumped and the records marked pending in one transaction,
    ///    and sled is flushed (concurrent uploads share that transaction and flush, see
    ///    `commit_records`, and the fsyncs of the blob root);
    /// 3. hand the record files over to be made durable in the background, many at a time
    ///    (see `record_file_sync.rs`), and return. The upload rests on its blob and its record in
    ///    sled; the record file is `rebuild`'s copy. Once it is durable, the record's pending
    ///    mark is cleared with the next upload's transaction.
    ///
    /// Until step 2 returns, a crash can leave any part of this on disk, and until the mark is
    /// cleared, the record file. That is safe because nothing trusts a blob or a record file
    /// that may be incomplete:
    /// - the next start checks every record still marked pending: one whose blob hashes to its
    ///   name is made durable, its file rewritten from sled, and kept (its upload may have
    ///   been acknowledged), any other is rolled back (its upload cannot have been);
    /// - a record file whose record sled does not have is indexed at the next start when its
    ///   blob is whole, and set aside when not (see [`catalogue`](crate::catalogue));
    /// - an existing blob is reused only when a record counts it (and is fsynced in this round
    ///   too); an uncounted one may be what a crash left of an upload, and a new upload of the
    ///   same bytes replaces it.
    ///
    /// The hashes' locks are held throughout, so a second upload of the same bytes waits until
    /// the first one's blob is durable before it reuses it.
    ///
    /// Each record gets its key: the one given (see [`record::object_key`]), else
    /// `{id}/{filename}`. One that another record holds in its collection fails the call with
    /// [`StoreError::KeyTaken`] before anything is written; the keys' locks are held from
    /// that check to the flush, so two uploads of one key never both make a record.
    pub fn create(&self, items: Vec<NewMedia>) -> Result<Vec<MediaRecord>, StoreError> {
        let created = self.watch(self.create_records(items))?;
        // An upload that computed no MD5 gets one behind it, while S3 is served.
        self.md5_wanted
            .add(created.iter().filter(|r| r.wants_md5()).map(|r| r.id));
        Ok(created)
    }

    fn create_records(&self, items: Vec<NewMedia>) -> Result<Vec<MediaRecord>, StoreError> {
        let now = record::now();
        let mut records = Vec::with_capacity(items.len());
        let mut staged = Vec::with_capacity(items.len());
        for item in items {
            let (record, blob) = self.new_record(item, now)?;
            records.push(record);
            staged.push(blob);
        }
        // Before the locks, as in every writer, so that none waits holding one.
        let _permit = self.in_flight.enter(records.len());
        let claims: Vec<Vec<u8>> = records.iter().map(claim).collect();
        let _keys = self.key_locks.lock_all(claims.iter().map(Vec::as_slice));
        self.check_keys_free(&records)?;
        self.commit_new(records, staged)
    }

    /// A new upload's record, as [`create`](Self::create) makes it: its type, kind and
    /// picture size from the bytes, its fields, its key (the one given, else
    /// `{id}/{filename}`), a new id and the time `now`.
    pub(crate) fn new_record(
        &self,
        item: NewMedia,
        now: time::OffsetDateTime,
    ) -> Result<(MediaRecord, StagedBlob), StoreError> {
        let content_type = item.content_type;
        let kind = sniff::kind(&content_type);
        let filename = if item.filename.is_empty() {
            format!("upload.{}", sniff::extension(&content_type))
        } else {
            item.filename
        };
        let dims = if kind == Kind::Image {
            sniff::dimensions(&item.blob.head)
        } else {
            None
        };
        let f = item.fields;
        let (id, created_at) = match f.created_at {
            // Ids sort by time; an imported file keeps its place in history.
            Some(t) => {
                let ms = u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                (MediaId(ulid::Ulid::from_parts(ms, rand::random())), t)
            }
            None => (item.id.unwrap_or_else(|| self.new_id()), now),
        };
        let key = match f.key {
            Some(key) => record::object_key(&key)?,
            None => record::derived_key(id, &filename),
        };
        let record = MediaRecord {
            schema: record::RECORD_SCHEMA,
            id,
            hash: item.blob.hash,
            size: item.blob.size,
            content_type,
            kind,
            filename,
            title: f.title,
            description: f.description,
            alt: f.alt,
            tags: f.tags,
            collection: f.collection,
            key: Some(key),
            visibility: f.visibility,
            custom: f.custom,
            legacy_path: f.legacy_path,
            owner: f.owner,
            original_hash: item.original_hash,
            md5: item.md5,
            etag: item.etag,
            stripped: item.stripped,
            duration: None,
            poster: item.poster,
            width: dims.map(|d| d.0),
            height: dims.map(|d| d.1),
            created_at,
            updated_at: now,
        };
        Ok((record, item.blob))
    }

    /// Refuses new records whose key another record holds, or another of them. The caller
    /// holds the keys' locks, so the answer stands until it lets go of them.
    fn check_keys_free(&self, records: &[MediaRecord]) -> Result<(), StoreError> {
        let mut seen = std::collections::HashSet::new();
        for r in records {
            let key = r.key();
            let held = self.meta.by_key(r.collection.as_deref(), &key)?;
            if held.is_some_and(|id| id != r.id) || !seen.insert(claim(r)) {
                return Err(StoreError::KeyTaken {
                    collection: r.collection.clone(),
                    key: key.into_owned(),
                });
            }
        }
        Ok(())
    }

    /// The protocol's steps for new records (see [`create`](Self::create)). The caller holds
    /// an in-flight permit for them and their keys' locks, and has checked their keys are
    /// free.
    pub(crate) fn commit_new(
        &self,
        records: Vec<MediaRecord>,
        staged: Vec<StagedBlob>,
    ) -> Result<Vec<MediaRecord>, StoreError> {
        if let Some(pg) = self.meta.shared() {
            return self.commit_shared(pg, records, staged);
        }
        {
            let _guards = self
                .hash_locks
                .lock_all(records.iter().map(|r| &r.hash.as_bytes()[..]));
            let epoch = self.record_sync.epoch();
            let tasks = match self.place(staged, &records) {
                Ok(placed) => placed,
                Err(e) => {
                    // sled never had these records: their files must not outlive the request
                    // (the blobs are orphans, never reused).
                    self.remove_record_files(&records);
                    return Err(e);
                }
            };
            let durable = parallel::run_all(tasks, || self.commit_records(&records));
            if let Err(e) = durable {
                self.roll_back(&records);
                return Err(e);
            }
            // The marks go once the files are durable, with the next upload's transaction (or
            // at shutdown): one sled write fewer for each upload. A crash before then leaves
            // them to the next start's check.
            self.record_sync.add(records.iter().map(|r| r.id), epoch);
        }
        self.counters
            .uploads
            .fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(records)
    }

    /// Inserts new records, bumps their counts and marks them pending, then flushes sled; the
    /// records of uploads that reach this point together share one transaction and one flush.
    /// An error leaves the records of this call either absent or in sled and pending, for
    /// [`roll_back`](Self::roll_back).
    fn commit_records(&self, records: &[MediaRecord]) -> Result<(), StoreError> {
        self.inserts.submit(records.to_vec(), |batch| {
            let settled = self.take_settled();
            let all: Vec<&MediaRecord> = batch.iter().flatten().collect();
            let inserted = match self.meta.insert_pending(&all, &settled) {
                Ok(()) => batch.iter().map(|_| Ok(())).collect(),
                Err(e) => {
                    self.return_settled(settled);
                    if batch.len() == 1 {
                        return vec![Err(e)];
                    }
                    // One upload's failure (a duplicate id) must not fail the others.
                    batch
                        .iter()
                        .map(|r| self.meta.insert_pending(&r.iter().collect::<Vec<_>>(), &[]))
                        .collect::<Vec<_>>()
                }
            };
            crash_point("upload-after-metadata", || self.meta.flush());
            match self.commit.wait_durable(|| self.meta.flush()) {
                Ok(()) => inserted,
                Err(e) => inserted
                    .into_iter()
                    .map(|r| r.and_then(|()| Err(e.duplicate())))
                    .collect(),
            }
        })
    }

    pub(crate) fn take_settled(&self) -> Vec<MediaId> {
        self.record_sync.take_settled()
    }

    fn return_settled(&self, ids: Vec<MediaId>) {
        self.record_sync.return_settled(ids)
    }

    /// Step 1 of [`create`](Self::create): puts the blobs and record files under their names
    /// and returns the fsyncs that make the blobs durable (the record files are made durable
    /// after them). The caller holds the hashes' locks.
    pub(crate) fn place(
        &self,
        staged: Vec<StagedBlob>,
        records: &[MediaRecord],
    ) -> Result<Vec<parallel::Task>, StoreError> {
        let tasks = self.place_blobs(staged)?;
        // The blobs are under their names (in a bucket, whole and durable), no record yet.
        crash_point("upload-after-blobs", || Ok(()));
        for record in records {
            self.records.place(record)?;
        }
        Ok(tasks)
    }

    /// The blobs' part of [`place`](Self::place): each goes under its content address, or
    /// gives way to a stored copy that a record counts; returns the fsyncs that make them
    /// durable. The caller holds the hashes' locks.
    pub(crate) fn place_blobs(
        &self,
        staged: Vec<StagedBlob>,
    ) -> Result<Vec<parallel::Task>, StoreError> {
        let mut tasks = Vec::new();
        let mut placed = std::collections::HashSet::new();
        let mut dirs = std::collections::BTreeSet::new();
        for blob in staged {
            let counted = placed.contains(&blob.hash)
                || (self.meta.refcount(&blob.hash)? > 0 && self.blobs.exists(&blob.hash)?);
            if counted {
                // Deduplication: the temp file goes. The stored copy was durable when the
                // upload that counted it was acknowledged; it is fsynced with this round all
                // the same (a no-op write, a cache flush), so this upload's `201` never rests
                // on another upload's outcome, such as one whose failure could not be undone.
                if !placed.contains(&blob.hash) {
                    tasks.push(self.blobs.reuse(&blob.hash)?.durable_tasks(&mut dirs));
                }
                self.counters
                    .dedup_hits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                continue;
            }
            placed.insert(blob.hash);
            let (hash, size) = (blob.hash, blob.size);
            let new = self.blobs.place(blob)?;
            // Whole bytes under the name again: a blob the scrub found damaged is healed.
            self.damaged.remove(&hash);
            self.counters
                .bytes_stored
                .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
            tasks.push(new.durable_tasks(&mut dirs));
        }
        if dirs.remove(self.root_sync.dir()) {
            tasks.push(self.root_sync.task());
        }
        tasks.extend(dirs.into_iter().map(blobs::fsync_dir_task));
        Ok(tasks)
    }

    /// Undoes the records of a [`create`](Self::create) whose files could not be made
    /// durable: the client is told it failed, so the records go. Best effort: what it cannot
    /// undo stays marked pending, and the next start settles it.
    fn roll_back(&self, records: &[MediaRecord]) {
        for r in records {
            match self.meta.delete(r.id) {
                Ok(_) => self.remove_record_files(std::slice::from_ref(r)),
                Err(e) => {
                    tracing::warn!(id = %r.id, error = %e, "could not roll back a failed upload")
                }
            }
        }
    }

    fn remove_record_files(&self, records: &[MediaRecord]) {
        for r in records {
            if let Err(e) = self.records.remove(r.id) {
                tracing::warn!(id = %r.id, error = %e, "could not remove the record file of a failed upload");
            }
        }
    }
}

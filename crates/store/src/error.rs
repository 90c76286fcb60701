//! [`StoreError`]: everything that can go wrong below the HTTP layer, and the questions
//! callers ask of it (a full disk, a failing disk, no descriptors left).

/// Everything that can go wrong below the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A value the caller supplied was refused; the message names the field and what it must be.
    #[error("{field} must be {expected}")]
    Invalid {
        /// The name of the field refused, as the API spells it.
        field: &'static str,
        /// What the field must be, as a phrase: "at most 500 characters".
        expected: String,
    },
    /// No record has the id asked for.
    #[error("no such media")]
    NotFound,
    /// Another record holds this object key in this collection; nothing was changed. (The
    /// HTTP layer answers `409 Conflict`.)
    #[error("another media record has the key {key:?} {}", in_collection(.collection))]
    KeyTaken {
        /// The collection (the S3 API's bucket); `None` outside any.
        collection: Option<String>,
        /// The object key.
        key: String,
    },
    /// An I/O operation failed; the message says what was being done and why it failed.
    #[error("could not {action}: {source}")]
    Io {
        /// What was being done, as a phrase: "read a record file".
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Free space is below the reserve: new uploads are refused until space is freed.
    #[error(
        "the disk is nearly full ({} MiB free, {} MiB kept in reserve): new uploads are refused \
         until space is freed; reads, edits and deletes keep working",
        free >> 20, reserve >> 20
    )]
    NoSpace {
        /// Bytes free on the disk.
        free: u64,
        /// Bytes kept free, below which uploads stop.
        reserve: u64,
    },
    /// A file or directory is not one this Shoebox can use (a data directory of another layout
    /// version or of something else, a backup, a configuration file); the message says why.
    #[error("{0}")]
    Format(String),
    /// Another process holds the data directory or its database.
    #[error("{0}")]
    Locked(String),
    /// Data does not parse or breaks a rule the store keeps (or an internal step went wrong);
    /// the message says what.
    #[error("{0}")]
    Corrupt(String),
    /// The database failed other than by I/O or corruption, or would not open.
    #[error("{0}")]
    Database(String),
    /// The database disagrees with `records/` beyond what a crash explains.
    #[error("{0}")]
    Damaged(String),
    /// A record changed elsewhere (on another instance) between its read and an edit's
    /// write; nothing was changed, and the edit may be made again on the new version.
    #[error("{0}")]
    Changed(String),
    /// A step this setup does not have: one that needs sled and `records/`, on a store whose
    /// records are in PostgreSQL. The message says which.
    #[error("{0}")]
    NotHere(String),
    /// Not enough free space for a maintenance step; nothing was changed.
    #[error("{0}")]
    NoRoom(String),
    /// A backend the store needs (the blob store's bucket, the database server) did not
    /// answer or refused; nothing was committed. The HTTP layer answers `503`, so clients
    /// retry.
    #[error("{what} is unavailable: {reason}")]
    Unavailable {
        /// The backend, as a phrase: "the blob store".
        what: &'static str,
        /// What failed and why.
        reason: String,
    },
}

fn in_collection(collection: &Option<String>) -> String {
    match collection {
        Some(c) => format!("in the collection {c:?}"),
        None => "outside any collection".to_owned(),
    }
}

impl StoreError {
    /// An [`Io`](Self::Io) error; `action` completes "could not …".
    pub fn io(action: &'static str, source: std::io::Error) -> Self {
        StoreError::Io { action, source }
    }

    /// An [`Invalid`](Self::Invalid) error; `expected` completes "`field` must be …".
    pub fn invalid(field: &'static str, expected: &str) -> Self {
        StoreError::Invalid {
            field,
            expected: expected.to_owned(),
        }
    }

    /// An equal error for a second caller: the one of a step that several callers shared.
    pub(crate) fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Invalid { field, expected } => StoreError::Invalid {
                field,
                expected: expected.clone(),
            },
            StoreError::NotFound => StoreError::NotFound,
            StoreError::KeyTaken { collection, key } => StoreError::KeyTaken {
                collection: collection.clone(),
                key: key.clone(),
            },
            StoreError::Io { action, source } => StoreError::Io {
                action,
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            StoreError::NoSpace { free, reserve } => StoreError::NoSpace {
                free: *free,
                reserve: *reserve,
            },
            StoreError::Format(m) => StoreError::Format(m.clone()),
            StoreError::NotHere(m) => StoreError::NotHere(m.clone()),
            StoreError::Changed(m) => StoreError::Changed(m.clone()),
            StoreError::Locked(m) => StoreError::Locked(m.clone()),
            StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
            StoreError::Database(m) => StoreError::Database(m.clone()),
            StoreError::Damaged(m) => StoreError::Damaged(m.clone()),
            StoreError::NoRoom(m) => StoreError::NoRoom(m.clone()),
            StoreError::Unavailable { what, reason } => StoreError::Unavailable {
                what,
                reason: reason.clone(),
            },
        }
    }

    /// True for an error that says the disk or the database is failing: an I/O error other
    /// than a full disk or a missing file, or a database error.
    pub fn is_disk_failure(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => {
                !self.is_disk_full()
                    && !self.is_out_of_descriptors()
                    && source.kind() != std::io::ErrorKind::NotFound
            }
            StoreError::Database(_) => true,
            _ => false,
        }
    }

    /// True when the process (EMFILE) or the system (ENFILE) has no file descriptor left: a
    /// passing overload, not a failing disk.
    pub fn is_out_of_descriptors(&self) -> bool {
        matches!(self, StoreError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)))
    }

    /// True when the disk is full (ENOSPC or EDQUOT) or past the reserve.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::NoSpace { .. } | StoreError::NoRoom(_) => true,
            // Kinds rather than errno alone: tempfile wraps its write errors with the path.
            StoreError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }
}

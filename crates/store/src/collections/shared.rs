//! Collections when the records are in PostgreSQL: one shared value, `collections`, holds
//! every collection's name and settings, so that a collection made or made public on one
//! instance is one on all. Each instance keeps a copy, checks the value's version at most
//! once a second, and at once (at most ten times a second) when asked for a collection its
//! copy lacks. A change is made from the value as it is and saved only if no other instance
//! changed it in between, else made again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{CollectionInfo, COLLECTION_SCHEMA};
use crate::{record, PgMeta, StoreError};

/// The shared value's name.
const VALUE: &str = "collections";

/// How many times a change is made again when other instances keep changing the value.
const ATTEMPTS: usize = 10;

#[derive(Serialize, Deserialize)]
struct Entry {
    schema: u32,
    name: String,
    public: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

pub(super) type Known = BTreeMap<String, CollectionInfo>;

pub(super) struct Shared {
    pg: Arc<PgMeta>,
    /// The version the copy was read at, and when the version was last asked for.
    seen: Mutex<(Option<i64>, Instant)>,
}

impl Shared {
    /// The collections as they are now.
    pub(super) fn open(pg: Arc<PgMeta>) -> Result<(Shared, Known), StoreError> {
        let shared = Shared {
            pg,
            seen: Mutex::new((None, Instant::now())),
        };
        let (version, known) = shared.load()?;
        shared.seen_at(version);
        Ok((shared, known))
    }

    fn seen_at(&self, version: Option<i64>) {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = (version, Instant::now());
    }

    fn load(&self) -> Result<(Option<i64>, Known), StoreError> {
        let Some((version, bytes)) = self.pg.value(VALUE)? else {
            return Ok((None, Known::new()));
        };
        let entries: Vec<Entry> = serde_json::from_slice(&bytes).map_err(|e| {
            StoreError::Corrupt(format!("the shared collections do not parse: {e}"))
        })?;
        let mut known = Known::new();
        for e in entries {
            match record::collection(&e.name) {
                Ok(Some(name)) if name == e.name => {
                    known.insert(
                        name.clone(),
                        CollectionInfo {
                            name,
                            public: e.public,
                            created_at: e.created_at,
                        },
                    );
                }
                _ => {
                    tracing::warn!(name = %e.name, "ignoring a shared collection whose name is not one")
                }
            }
        }
        Ok((Some(version), known))
    }

    /// The collections again, when their version changed since the copy was read and the
    /// version was last asked for more than `interval` ago. A database that does not answer
    /// leaves the copy as it is.
    pub(super) fn refreshed(&self, interval: Duration) -> Option<Known> {
        let seen = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.1.elapsed() < interval {
                return None;
            }
            seen.1 = Instant::now();
            seen.0
        };
        match self.pg.value_version(VALUE) {
            Ok(now) if now == seen => None,
            Ok(_) => match self.load() {
                Ok((version, known)) => {
                    self.seen_at(version);
                    Some(known)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the shared collections; keeping the copy");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "could not check the shared collections; keeping the copy");
                None
            }
        }
    }

    /// Applies `change` to the collections as they are now and saves them, if it says it
    /// changed them; answers the collections after it and what it answered.
    pub(super) fn change<R>(
        &self,
        change: impl Fn(&mut Known) -> (R, bool),
    ) -> Result<(Known, R), StoreError> {
        for _ in 0..ATTEMPTS {
            let (version, mut known) = self.load()?;
            let (answer, changed) = change(&mut known);
            if !changed {
                self.seen_at(version);
                return Ok((known, answer));
            }
            let entries: Vec<Entry> = known
                .values()
                .map(|c| Entry {
                    schema: COLLECTION_SCHEMA,
                    name: c.name.clone(),
                    public: c.public,
                    created_at: c.created_at,
                })
                .collect();
            let bytes = serde_json::to_vec(&entries).map_err(|e| {
                StoreError::Corrupt(format!("the collections do not serialise: {e}"))
            })?;
            if self.pg.put_value(VALUE, &bytes, version)? {
                // The copy is the value at its new version: one more than read, or 1 when new.
                self.seen_at(version.map(|v| v + 1).or(Some(1)));
                return Ok((known, answer));
            }
        }
        Err(StoreError::Unavailable {
            what: "the database",
            reason: "the collections kept changing on other instances; try again".into(),
        })
    }
}

//! The seal, `CATALOG`: what the last run left outside the database (its generation, whether
//! it closed cleanly, how many records it closed with), so that the next start can tell a
//! crash from a database that lost data.

use std::fs;

use crate::layout::{write_atomically, Layout, FILE_MODE};
use crate::StoreError;

const SEAL_MAGIC: &str = "shoebox-catalog 1";

/// What the last run left in `CATALOG`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seal {
    /// The database's generation, which the database holds too: a database at another one
    /// (other than the next) was replaced, recreated or lost writes.
    pub generation: u64,
    /// Closed cleanly: every write settled, the database flushed.
    pub clean: bool,
    /// Records at the clean close.
    pub records: u64,
}

impl Seal {
    /// Reads `CATALOG`; `None` when it is absent or not a seal this Shoebox understands (the
    /// next start then compares every record file with the database, as after a crash).
    pub fn read(layout: &Layout) -> Result<Option<Seal>, StoreError> {
        let text = match fs::read_to_string(layout.catalog_file()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("read CATALOG", e)),
        };
        let mut lines = text.lines();
        if lines.next() != Some(SEAL_MAGIC) {
            // Without its evidence the next start compares every record file with the
            // database, as after a crash: a check more, never a record less.
            tracing::warn!(
                file = %layout.catalog_file().display(),
                "CATALOG is not a seal this Shoebox understands; checking every record file"
            );
            return Ok(None);
        }
        let (mut generation, mut clean, mut records) = (None, false, 0);
        for line in lines {
            match line.split_once(' ') {
                Some(("generation", v)) => generation = v.trim().parse().ok(),
                Some(("state", v)) => clean = v.trim() == "clean",
                Some(("records", v)) => records = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
        let Some(generation) = generation else {
            tracing::warn!("CATALOG has no generation; checking every record file");
            return Ok(None);
        };
        Ok(Some(Seal {
            generation,
            clean,
            records,
        }))
    }

    /// Replaces `CATALOG` with this seal, atomically and durably.
    pub fn write(&self, layout: &Layout) -> Result<(), StoreError> {
        let text = format!(
            "{SEAL_MAGIC}\ngeneration {}\nstate {}\nrecords {}\n",
            self.generation,
            if self.clean { "clean" } else { "open" },
            self.records
        );
        write_atomically(
            layout.root(),
            &layout.catalog_file(),
            text.as_bytes(),
            FILE_MODE,
        )
    }
}

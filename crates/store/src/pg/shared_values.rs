//! Named values that every instance shares (the server keeps its credentials here when the
//! records are in PostgreSQL), each with a version that every change raises: a reader can
//! tell whether its copy is current with one small query, and a change made from a copy
//! that is no longer current is refused rather than lost.

use super::PgMeta;
use crate::StoreError;

impl PgMeta {
    /// A value and its version; `None` when no value has this name.
    pub fn value(&self, name: &str) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let name = name.to_owned();
        self.read(move |client| async move {
            let stmt = client
                .prepare_cached("SELECT version, value FROM shared_values WHERE name = $1")
                .await?;
            let row = client.query_opt(&stmt, &[&name]).await?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
    }

    /// A value's version; `None` when no value has this name.
    pub fn value_version(&self, name: &str) -> Result<Option<i64>, StoreError> {
        let name = name.to_owned();
        self.read(move |client| async move {
            let stmt = client
                .prepare_cached("SELECT version FROM shared_values WHERE name = $1")
                .await?;
            Ok(client.query_opt(&stmt, &[&name]).await?.map(|r| r.get(0)))
        })
    }

    /// Stores a value if it is still at version `read` (`None`: if there is none yet), as one
    /// statement; answers whether it was stored. `false` means another instance changed it
    /// first: read it again and redo the change.
    pub fn put_value(
        &self,
        name: &str,
        value: &[u8],
        read: Option<i64>,
    ) -> Result<bool, StoreError> {
        let (name, value) = (name.to_owned(), value.to_vec());
        self.read(move |client| async move {
            let changed = match read {
                None => {
                    let stmt = client
                        .prepare_cached(
                            "INSERT INTO shared_values (name, value, version) VALUES ($1, $2, 1) \
                             ON CONFLICT (name) DO NOTHING",
                        )
                        .await?;
                    client.execute(&stmt, &[&name, &value]).await?
                }
                Some(version) => {
                    let stmt = client
                        .prepare_cached(
                            "UPDATE shared_values SET value = $2, version = version + 1 \
                             WHERE name = $1 AND version = $3",
                        )
                        .await?;
                    client.execute(&stmt, &[&name, &value, &version]).await?
                }
            };
            Ok(changed == 1)
        })
    }
}

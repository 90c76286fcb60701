//! What goes wrong talking to PostgreSQL, and which [`StoreError`] each failure becomes: an
//! unreachable server or a dropped connection is [`StoreError::Unavailable`] (a 503 that a
//! client may retry); a statement the server refuses is a database error.

use std::error::Error as _;

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use super::WHAT;
use crate::StoreError;

/// A failure inside a call, before it is told to the caller.
#[derive(Debug)]
pub(super) enum Fault {
    Pg(tokio_postgres::Error),
    Pool(PoolError),
    /// Already decided (a key taken, a record gone, a record that does not parse).
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Fault {
    fn from(e: tokio_postgres::Error) -> Self {
        Fault::Pg(e)
    }
}

impl From<PoolError> for Fault {
    fn from(e: PoolError) -> Self {
        Fault::Pool(e)
    }
}

impl From<StoreError> for Fault {
    fn from(e: StoreError) -> Self {
        Fault::Store(e)
    }
}

/// The SQLSTATE class of errors about the connection itself.
const CONNECTION_EXCEPTION: &str = "08";

impl Fault {
    /// Whether running the transaction again may succeed: the server chose it as a
    /// deadlock's victim, or as a serialisation failure.
    pub(super) fn is_retryable(&self) -> bool {
        matches!(self.code(), Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::T_R_SERIALIZATION_FAILURE)
    }

    /// The server's name for the constraint a statement broke, if it broke one.
    pub(super) fn constraint(&self) -> Option<&str> {
        match self {
            Fault::Pg(e) => e.as_db_error().and_then(|d| d.constraint()),
            _ => None,
        }
    }

    fn code(&self) -> Option<&SqlState> {
        match self {
            Fault::Pg(e) => e.code(),
            _ => None,
        }
    }

    pub(super) fn into_store(self) -> StoreError {
        match self {
            Fault::Store(e) => e,
            Fault::Pool(e) => pool_error(e),
            Fault::Pg(e) => pg_error(e),
        }
    }
}

fn unavailable(reason: String) -> StoreError {
    StoreError::Unavailable { what: WHAT, reason }
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => pg_error(e),
        // No connection could be made, recycled or freed in time.
        PoolError::Timeout(_) => unavailable(e.to_string()),
        PoolError::Closed | PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => {
            StoreError::Database(format!("the database pool: {e}"))
        }
    }
}

fn pg_error(e: tokio_postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        // No answer from the server: the connection failed, closed or timed out.
        let reason = with_causes(&e);
        if e.is_closed() || source_is_io(&e) {
            return unavailable(reason);
        }
        return StoreError::Database(format!("the database client: {reason}"));
    };
    let code = db.code();
    if code.code().starts_with(CONNECTION_EXCEPTION)
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .contains(code)
    {
        return unavailable(db.message().to_owned());
    }
    // Text PostgreSQL cannot hold: a NUL character, which only `custom` can carry past the
    // fields' own checks (JSONB refuses `\u0000` in a string).
    if *code == SqlState::UNTRANSLATABLE_CHARACTER || *code == SqlState::CHARACTER_NOT_IN_REPERTOIRE
    {
        return StoreError::invalid("custom", "a JSON object without NUL characters (\\u0000)");
    }
    StoreError::Database(format!(
        "the database answered with an error ({}): {}",
        code.code(),
        db.message()
    ))
}

/// The error's text with the causes its text leaves out (a TLS handshake's says nothing of
/// the certificate it refused).
fn with_causes(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let cause = s.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
        source = s.source();
    }
    text
}

fn source_is_io(e: &tokio_postgres::Error) -> bool {
    let mut source = e.source();
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

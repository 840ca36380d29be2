//! Errors of the PostgreSQL store, and which of them are worth retrying.

use pulsecheck_core::outbox::OutboxError;
use pulsecheck_core::storage::StorageError;

/// A store operation failed. Every message names the database (URL without password).
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("store URL {url:?} is not a valid PostgreSQL URL ({detail}); expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")]
    BadUrl { url: String, detail: String },
    #[error("cannot connect to PostgreSQL at {location}: {source}{hint}")]
    Connect {
        location: String,
        hint: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate the PostgreSQL database at {location}: {source}")]
    Migrate {
        location: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("PostgreSQL at {location}: {context}: {source}")]
    Query {
        location: String,
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("PostgreSQL at {location}: {context}: {detail}")]
    Corrupt {
        location: String,
        context: &'static str,
        detail: String,
    },
}

impl PgError {
    /// Whether retrying later may succeed: the server is unreachable, restarting or
    /// shutting down, the pool timed out, or the transaction lost a serialization or
    /// deadlock race. Bad URLs, authentication failures, constraint violations and bad
    /// data fail the same way again.
    pub fn is_transient(&self) -> bool {
        match self {
            PgError::Connect { source, .. } | PgError::Query { source, .. } => is_transient(source),
            PgError::Migrate { source, .. } => match source {
                sqlx::migrate::MigrateError::Execute(e) => is_transient(e),
                _ => false,
            },
            PgError::BadUrl { .. } | PgError::Corrupt { .. } => false,
        }
    }
}

pub(crate) fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| transient_sqlstate(&code)),
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        _ => false,
    }
}

/// SQLSTATEs of a server that is going away or coming back, or of a lost race.
fn transient_sqlstate(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources (too many connections, disk full)
        || matches!(
            code,
            "57P01" // admin_shutdown
            | "57P02" // crash_shutdown
            | "57P03" // cannot_connect_now (starting up)
            | "40001" // serialization_failure
            | "40P01" // deadlock_detected
            | "55P03" // lock_not_available
            | "57014" // query_canceled (statement timeout)
        )
}

/// What to fix when a connection is refused for a reason a retry does not cure.
pub(crate) fn connect_hint(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("28P01") | Some("28000") => {
                " (check the user and password in the store URL, and pg_hba.conf on the server)"
            }
            Some("3D000") => " (create the database first: createdb NAME, or fix its name in the store URL)",
            _ => "",
        },
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => {
            " (is the server running and listening on that host and port?)"
        }
        sqlx::Error::Configuration(_) => " (fix the store URL)",
        _ => "",
    }
}

impl From<PgError> for StorageError {
    fn from(error: PgError) -> StorageError {
        StorageError {
            transient: error.is_transient(),
            message: error.to_string(),
        }
    }
}

impl From<PgError> for OutboxError {
    fn from(error: PgError) -> OutboxError {
        OutboxError(error.to_string())
    }
}

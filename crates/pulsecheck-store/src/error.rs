use std::path::PathBuf;

/// A store operation failed. Every message names the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the directory for database {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database {path} does not exist (start `pulsecheck serve` first, or check --db)")]
    NotFound { path: PathBuf },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate database {path}: {source}")]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("database {path}: {context}: {source}")]
    Query {
        path: PathBuf,
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("database {path}: {context}: {detail}")]
    Corrupt {
        path: PathBuf,
        context: &'static str,
        detail: String,
    },
    #[error("database {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Whether retrying the same operation later may succeed (a busy or locked database,
    /// an I/O error, a full disk, a pool timeout). Constraint violations and bad data are
    /// not transient: the same write fails the same way again.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Query { source, .. } | StoreError::Open { source, .. } => is_transient(source),
            StoreError::Io { .. } | StoreError::CreateDir { .. } => true,
            StoreError::NotFound { .. } | StoreError::Migrate { .. } | StoreError::Corrupt { .. } => false,
        }
    }
}

fn is_transient(error: &sqlx::Error) -> bool {
    use sqlx::error::ErrorKind;
    match error {
        sqlx::Error::Database(db) => matches!(db.kind(), ErrorKind::Other),
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        _ => false,
    }
}

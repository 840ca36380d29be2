use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::StoreError;

/// `PRAGMA auto_vacuum` value of INCREMENTAL.
/// How much of the database file connections map (SQLite's `mmap_size`); file pages,
/// shared with the OS cache, so it costs address space rather than memory.
const MMAP_SIZE: u64 = 1 << 30;
const AUTO_VACUUM_INCREMENTAL: i64 = 2;
/// Bytes the write-ahead log is truncated to after a checkpoint.
const JOURNAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How to open a [`Store`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Create the file (and its parent directories) when it does not exist.
    pub create_if_missing: bool,
    /// How long a statement waits for another connection's write lock before failing
    /// with "database is locked" (the writer then retries the batch).
    pub busy_timeout: Duration,
    /// Connections for reads (status, history, the outbox's `due`). Writes use one
    /// connection of their own so that they queue in-process instead of spinning on
    /// SQLite's busy handler.
    pub read_connections: u32,
    /// Size budget in bytes (`store.max_size`); 0 for none. When the database's live
    /// pages exceed it, compaction prunes the oldest raw results first (never the
    /// outbox); see [`Store::enforce_size_budget`].
    pub max_size: u64,
}

impl StoreOptions {
    /// 2 GiB: a few hundred checks never get near it (a run takes under 50 bytes), and
    /// at 10,000 checks every 6 s it holds hours of raw results plus months of
    /// aggregates while staying well under 5 GB with the write-ahead log.
    pub const DEFAULT_MAX_SIZE: u64 = 2 * 1024 * 1024 * 1024;
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            create_if_missing: true,
            busy_timeout: Duration::from_secs(5),
            read_connections: 4,
            max_size: StoreOptions::DEFAULT_MAX_SIZE,
        }
    }
}

/// A handle on the database. Cheap to clone; all clones share the connection pools.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) path: PathBuf,
    /// One connection: every write transaction (`BEGIN IMMEDIATE`) goes through it.
    pub(crate) write: SqlitePool,
    pub(crate) read: SqlitePool,
    /// [`StoreOptions::max_size`]; a reload may change it.
    pub(crate) max_size: AtomicU64,
    /// Check numbers already looked up, so that a result costs no extra query.
    pub(crate) check_ids: std::sync::Mutex<CheckIds>,
}

/// `check_ids` rows by name. Rows are never deleted, so a committed number is good for
/// ever; numbers assigned by the transaction in progress stay `pending` until it commits
/// (a rolled-back transaction's numbers may be given to other names).
#[derive(Debug, Default)]
pub(crate) struct CheckIds {
    pub(crate) committed: std::collections::HashMap<String, i64>,
    pub(crate) pending: std::collections::HashMap<String, i64>,
}

impl Store {
    /// Opens (creating when missing) the database at `path` with default options, and
    /// brings its schema up to date.
    pub async fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with(path, StoreOptions::default()).await
    }

    /// Opens an existing database; fails with [`StoreError::NotFound`] when there is none
    /// (for read-only commands such as `pulsecheck status`).
    pub async fn open_existing(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let options = StoreOptions {
            create_if_missing: false,
            ..StoreOptions::default()
        };
        Store::open_with(path, options).await
    }

    pub async fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        match tokio::fs::try_exists(&path).await {
            Ok(true) => {}
            Ok(false) if !options.create_if_missing => return Err(StoreError::NotFound { path }),
            Ok(false) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|source| StoreError::CreateDir {
                            path: path.clone(),
                            source,
                        })?;
                }
            }
            Err(source) => return Err(StoreError::Io { path, source }),
        }

        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(options.create_if_missing)
            // Before the first table exists, so a new file can give pages back; an
            // older file is converted once below.
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            .journal_mode(SqliteJournalMode::Wal)
            // A large deletion must not leave a write-ahead log of its size behind.
            .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string())
            // Reads map the file instead of copying each page out of the OS cache into
            // every connection's own cache: the status page reads many pages per request.
            .pragma("mmap_size", MMAP_SIZE.to_string())
            // The outbox must survive power loss: FULL syncs the WAL on every commit.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true);

        let open_error = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(connect.clone())
            .await
            .map_err(open_error)?;
        MIGRATOR.run(&write).await.map_err(|source| StoreError::Migrate {
            path: path.clone(),
            source,
        })?;
        let auto_vacuum: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
            .fetch_one(&write)
            .await
            .map_err(|source| StoreError::Query {
                path: path.clone(),
                context: "read auto_vacuum",
                source,
            })?;
        if auto_vacuum != AUTO_VACUUM_INCREMENTAL {
            // A file created before schema 2: VACUUM applies the auto_vacuum setting
            // (once; it rewrites the file, which the compact results keep small).
            tracing::info!(path = %path.display(), "rewriting the database once to enable incremental vacuum");
            sqlx::query("VACUUM")
                .execute(&write)
                .await
                .map_err(|source| StoreError::Query {
                    path: path.clone(),
                    context: "vacuum to enable incremental vacuum",
                    source,
                })?;
        }
        let read = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .min_connections(0)
            .connect_with(connect)
            .await
            .map_err(open_error)?;

        Ok(Store {
            inner: Arc::new(Inner {
                path,
                write,
                read,
                max_size: AtomicU64::new(options.max_size),
                check_ids: std::sync::Mutex::default(),
            }),
        })
    }

    /// Changes the size budget (`store.max_size` after a reload); 0 for none. The next
    /// compaction applies it.
    pub fn set_max_size(&self, bytes: u64) {
        self.inner.max_size.store(bytes, Ordering::Relaxed);
    }

    pub fn max_size(&self) -> u64 {
        self.inner.max_size.load(Ordering::Relaxed)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Closes every connection (after checkpointing the WAL as SQLite does when the last
    /// connection closes). Further calls on any clone fail.
    pub async fn close(&self) {
        self.inner.read.close().await;
        self.inner.write.close().await;
    }

    /// `PRAGMA integrity_check`: true when SQLite reports the file as sound.
    pub async fn integrity_check(&self) -> Result<bool, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.inner.read)
            .await
            .map_err(self.query_error("integrity check"))?;
        Ok(rows.len() == 1 && rows[0] == "ok")
    }

    /// Bytes on disk: the database file plus its write-ahead log.
    pub async fn size_bytes(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for suffix in ["", "-wal"] {
            let mut name = self.inner.path.clone().into_os_string();
            name.push(suffix);
            match tokio::fs::metadata(&name).await {
                Ok(meta) => total += meta.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::Io {
                        path: PathBuf::from(name),
                        source,
                    })
                }
            }
        }
        Ok(total)
    }

    /// Starts a write transaction. `BEGIN IMMEDIATE` takes the write lock up front: a
    /// deferred transaction that reads first and then writes can fail with SQLITE_BUSY
    /// without the busy timeout ever applying.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.inner
            .write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.query_error("begin write transaction"))
    }

    pub(crate) fn query_error(&self, context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| StoreError::Query {
            path: self.inner.path.clone(),
            context,
            source,
        }
    }

    pub(crate) fn corrupt(&self, context: &'static str, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.inner.path.clone(),
            context,
            detail: detail.into(),
        }
    }
}

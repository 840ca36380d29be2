//! Opening a [`PgStore`]: the pool, the migrations, and the options.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::{connect_hint, PgError};

/// The embedded schema migrations. sqlx's own lock is a session advisory lock, which a
/// pooler in transaction mode (PgBouncer) hands to whichever server connection comes
/// next; [`migrate`] takes a transaction-scoped lock instead.
static MIGRATOR: sqlx::migrate::Migrator = {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.locking = false;
    migrator
};

/// The key of the transaction-scoped advisory lock that serialises nodes migrating at
/// once ("pulsecheck" in ASCII, 8 bytes).
const MIGRATION_LOCK: i64 = 0x7075_6c73_6563_6865;

/// Brings the schema up to date in one transaction that holds a transaction-scoped lock:
/// nodes starting together migrate one after the other, a failed migration leaves
/// nothing behind, and the lock ends with the transaction, so no session outlives it
/// (each migration runs in a savepoint of this transaction).
async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    MIGRATOR.run(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// "Now" by the database's clock, in unix milliseconds: every expiry of a member, a
/// lease or a claim is computed and compared with it, never with a node's clock.
pub(crate) const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// How to open a [`PgStore`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// This node's id: outbox claims are taken and settled in its name.
    pub node: String,
    /// How long a claimed notification stays with this node before another node may
    /// take it over (this node died or hangs). Longer than one delivery with its timeout.
    pub claim_ttl: Duration,
    pub max_connections: u32,
    /// How long a query waits for a free connection (or a new one) before failing with
    /// a transient error.
    pub acquire_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            node: "node-1".into(),
            claim_ttl: Duration::from_secs(120),
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// A handle on one PostgreSQL database. Cheap to clone; clones share the pool.
#[derive(Clone, Debug)]
pub struct PgStore {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) pool: PgPool,
    /// How the pool connects, for connections kept outside it (the LISTEN of rechecks).
    pub(crate) connect: PgConnectOptions,
    pub(crate) location: String,
    pub(crate) node: String,
    pub(crate) claim_ttl: Duration,
    pub(crate) fenced_runs: AtomicU64,
    /// Committed `check_ids` rows by name. Rows are never deleted, so a committed
    /// number is good for ever.
    pub(crate) check_ids: Mutex<HashMap<String, i64>>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and brings the
    /// schema up to date. Several nodes may start at once: sqlx takes a lock around the
    /// migrations. A server that is not reachable yet is a transient error.
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore, PgError> {
        let location = redact(url)?;
        let connect = PgConnectOptions::from_str(url).map_err(|e| PgError::BadUrl {
            url: location.clone(),
            detail: e.to_string(),
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .min_connections(0)
            .acquire_timeout(options.acquire_timeout)
            // A connection that died with a server restart is replaced, not handed out.
            .test_before_acquire(true)
            .connect_with(connect.clone())
            .await
            .map_err(|source| PgError::Connect {
                location: location.clone(),
                hint: connect_hint(&source),
                source,
            })?;
        migrate(&pool).await.map_err(|source| PgError::Migrate {
            location: location.clone(),
            source,
        })?;
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                connect,
                location,
                node: options.node,
                claim_ttl: options.claim_ttl,
                fenced_runs: AtomicU64::new(0),
                check_ids: Mutex::default(),
            }),
        })
    }

    /// The database URL without its password.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// This node's id (claims are taken in its name).
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Runs dropped so far because their fence was no longer current.
    pub fn fenced_runs(&self) -> u64 {
        self.inner.fenced_runs.load(Ordering::Relaxed)
    }

    /// The pool, for tests and tools that read the database directly.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Closes every connection. Further calls on any clone fail.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    pub(crate) fn query_error(&self, context: &'static str) -> impl FnOnce(sqlx::Error) -> PgError + '_ {
        move |source| PgError::Query {
            location: self.inner.location.clone(),
            context,
            source,
        }
    }

    pub(crate) fn corrupt(&self, context: &'static str, detail: impl Into<String>) -> PgError {
        PgError::Corrupt {
            location: self.inner.location.clone(),
            context,
            detail: detail.into(),
        }
    }

    pub(crate) fn claim_ttl_ms(&self) -> i64 {
        i64::try_from(self.inner.claim_ttl.as_millis()).unwrap_or(i64::MAX)
    }
}

/// `url` without its password, for logs and errors.
fn redact(url: &str) -> Result<String, PgError> {
    let mut parsed = url::Url::parse(url).map_err(|e| PgError::BadUrl {
        url: "(not shown: it may hold a password)".into(),
        detail: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(PgError::BadUrl {
            url: format!("{}://…", parsed.scheme()),
            detail: "the scheme must be postgres:// or postgresql://".into(),
        });
    }
    if parsed.password().is_some() {
        // Cannot fail: a URL with a password has a host.
        let _ = parsed.set_password(Some("***"));
    }
    Ok(parsed.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_the_password() {
        assert_eq!(
            super::redact("postgres://u:secret@127.0.0.1:5432/db").unwrap(),
            "postgres://u:***@127.0.0.1:5432/db"
        );
        assert_eq!(
            super::redact("postgresql://127.0.0.1/db").unwrap(),
            "postgresql://127.0.0.1/db"
        );
        assert!(super::redact("mysql://x/y").is_err());
        assert!(super::redact("not a url").is_err());
    }
}

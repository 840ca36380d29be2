//! Opening: migrations under concurrent starts, the location, and error kinds.

use pulsecheck_core::storage::StorageError;
use pulsecheck_postgres::{PgError, PgStore};

use crate::common::{database, options, store};

#[tokio::test]
async fn two_nodes_migrate_one_database_at_once() {
    let Some(url) = database().await else { return };
    let (a, b) = tokio::join!(
        PgStore::connect(&url, options("a")),
        PgStore::connect(&url, options("b"))
    );
    let (a, b) = (a.expect("node a connects"), b.expect("node b connects"));
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name IN ('results', 'leases', 'members')",
    )
    .fetch_one(a.pool())
    .await
    .unwrap();
    assert_eq!(tables, 3);
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(b.pool())
        .await
        .unwrap();
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|f| {
            f.as_ref()
                .is_ok_and(|f| f.path().extension().is_some_and(|e| e == "sql"))
        })
        .count();
    assert_eq!(
        applied,
        i64::try_from(migrations).unwrap(),
        "each migration is applied once"
    );
    // A third start finds the schema current.
    store(&url, "c").await;
    // The migration lock ended with its transaction: no session keeps an advisory lock
    // (a pooler in transaction mode would hand a session lock to another client).
    let advisory: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_locks
         WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(a.pool())
    .await
    .unwrap();
    assert_eq!(advisory, 0);
}

#[tokio::test]
async fn location_hides_the_password_and_errors_say_what_to_fix() {
    let Some(url) = database().await else { return };
    let with_password = url.replacen("postgres@", "postgres:hunter2@", 1);
    let s = store(&with_password, "a").await;
    assert!(!s.location().contains("hunter2"), "{}", s.location());
    assert!(s.location().contains("127.0.0.1"), "{}", s.location());

    let bad = PgStore::connect("mysql://x/y", options("a")).await.unwrap_err();
    assert!(matches!(bad, PgError::BadUrl { .. }), "{bad}");
    assert!(!StorageError::from(bad).transient);

    // A database that does not exist: permanent, and the message says to create it.
    let missing = url.rsplit_once('/').unwrap().0.to_owned() + "/no_such_database";
    let error = PgStore::connect(&missing, options("a")).await.unwrap_err();
    assert!(error.to_string().contains("create the database"), "{error}");
    assert!(!error.is_transient(), "{error}");

    // An unknown user: permanent, and the message says what to check.
    let stranger = url.replacen("postgres@", "nobody@", 1);
    let error = PgStore::connect(&stranger, options("a")).await.unwrap_err();
    assert!(error.to_string().contains("check the user and password"), "{error}");
    assert!(!error.is_transient(), "{error}");

    // Nothing listens on port 1: refused, transient (the writer retries for ever).
    let mut refused = options("a");
    refused.acquire_timeout = std::time::Duration::from_secs(2);
    let error = PgStore::connect("postgres://postgres@127.0.0.1:1/db", refused)
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
}

//! Opening: migrations under concurrent starts, the location, and error kinds.

use pulsecheck_core::storage::StorageError;
use pulsecheck_postgres::{PgError, PgStore};

use pulsecheck_core::storage::history::ResultPage;
use pulsecheck_core::{Outcome, Reason};
use pulsecheck_postgres::testing::migrate_up_to;

use crate::common::{database, options, result_event, store, ts};

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

/// A database that schema 2 filled (wide results, btree time index) migrates to the
/// compact layout of 0004 with every value intact, and the store then writes to it.
#[tokio::test]
async fn results_of_schema_2_migrate_to_the_compact_layout() {
    let Some(url) = database().await else { return };
    migrate_up_to(&url, 2).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("INSERT INTO check_ids (id, name) VALUES (7, 'api'), (8, 'db')")
        .execute(&pool)
        .await
        .unwrap();
    // Out of time order, every nullable column both set and NULL. kind 1 | 7 << 6: down
    // over HTTP for a status; 8: up over TCP. Phases: dns 1,500 µs and ttfb 300 µs.
    sqlx::query(
        "INSERT INTO results (check_id, started_at, kind, http_status, duration_us, queue_us, phases, ip,
                              http_version, http_version_text, redirects, cert_days_left, error, location)
         VALUES (7, $1, 449, 503, 12500, 250, '\\x09dc0bac02'::bytea, '\\x0a000001'::bytea,
                 NULL, 'HTTP/0.8', 2, 30, 'status 503', 'eu'),
                (8, $2, 8, NULL, 900, 0, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL),
                (7, $2, 0, 200, 3000, 10, NULL, NULL, 11, NULL, 0, -5, NULL, NULL)",
    )
    .bind(ts(60).as_millisecond())
    .bind(ts(0).as_millisecond())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let s = store(&url, "a").await;
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_name = 'results' AND column_name IN ('check_id', 'kind', 'http_status', 'redirects')
         ORDER BY column_name",
    )
    .fetch_all(s.pool())
    .await
    .unwrap();
    let expected = [
        ("check_id", "integer"),
        ("http_status", "smallint"),
        ("kind", "smallint"),
        ("redirects", "smallint"),
    ];
    assert_eq!(columns, expected.map(|(c, t)| (c.to_owned(), t.to_owned())).to_vec());
    let time_index: String = sqlx::query_scalar("SELECT indexdef FROM pg_indexes WHERE indexname = 'results_by_time'")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert!(time_index.contains("USING brin"), "{time_index}");

    let page = ResultPage {
        before: None,
        limit: 10,
    };
    let api = s.result_page("api", page).await.unwrap();
    assert_eq!(api.len(), 2);
    let down = &api[0];
    assert_eq!(
        (down.started_at, down.outcome, down.reason),
        (ts(60), Outcome::Down, Some(Reason::Status))
    );
    assert_eq!((down.probe.as_str(), down.http_status), ("http", Some(503)));
    assert_eq!((down.duration_ms, down.queue_ms), (12.5, 0.25));
    assert_eq!(
        (down.dns_ms, down.ttfb_ms, down.connect_ms),
        (Some(1.5), Some(0.3), None)
    );
    assert_eq!(down.ip.as_deref(), Some("10.0.0.1"));
    assert_eq!(down.http_version.as_deref(), Some("HTTP/0.8"));
    assert_eq!((down.redirects, down.cert_days_left), (2, Some(30)));
    assert_eq!(down.error.as_deref(), Some("status 503"));
    let up = &api[1];
    assert_eq!(
        (up.outcome, up.http_version.as_deref(), up.cert_days_left),
        (Outcome::Up, Some("HTTP/1.1"), Some(-5))
    );
    let db = s.result_page("db", page).await.unwrap();
    assert_eq!((db.len(), db[0].probe.as_str(), db[0].ip.clone()), (1, "tcp", None));
    let located: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM results WHERE location = 'eu'")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(located, 1);

    // The migrated table takes new results, and a retried batch is stored once.
    let event = [result_event("db", Outcome::Up, ts(120), 30)];
    s.write(&event, ts(120)).await.unwrap();
    s.write(&event, ts(120)).await.unwrap();
    assert_eq!(s.result_page("db", page).await.unwrap().len(), 2);
}

/// A check numbered beyond what `results.check_id` (INTEGER) holds: the write fails and
/// says so, rather than filing the result under a wrapped number.
#[tokio::test]
async fn a_check_number_beyond_integer_is_an_error_not_a_wrap() {
    let Some(url) = database().await else { return };
    let s = store(&url, "a").await;
    sqlx::query("INSERT INTO check_ids (id, name) VALUES (2147483648, 'huge')")
        .execute(s.pool())
        .await
        .unwrap();
    let error = s
        .write(&[result_event("huge", Outcome::Up, ts(0), 10)], ts(0))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("beyond the 2147483647"), "{error}");
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM results")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(stored, 0);
    // check_ids stops numbering where results.check_id ends.
    let max: i64 = sqlx::query_scalar("SELECT seqmax FROM pg_sequence WHERE seqrelid = 'check_ids_id_seq'::regclass")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(max, i64::from(i32::MAX));
}

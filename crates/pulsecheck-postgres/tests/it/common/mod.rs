//! Fixtures shared by the tests: databases on the shared test server, stores on them.
#![allow(dead_code)]

use std::time::Duration;

use pulsecheck_postgres::testing::{shared_database, SKIPPED};
use pulsecheck_postgres::{PgOptions, PgStore};

/// A fresh database's URL, or `None` (after printing why) when PostgreSQL is missing.
pub async fn database() -> Option<String> {
    match shared_database().await {
        Ok(Some(url)) => Some(url),
        Ok(None) => {
            eprintln!("{SKIPPED}");
            None
        }
        Err(e) => panic!("test PostgreSQL: {e}"),
    }
}

pub fn options(node: &str) -> PgOptions {
    PgOptions {
        node: node.into(),
        claim_ttl: Duration::from_secs(60),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(30),
    }
}

pub async fn store(url: &str, node: &str) -> PgStore {
    PgStore::connect(url, options(node))
        .await
        .expect("connect to the test database")
}

/// Waits until `condition` holds, up to a generous deadline for a loaded machine.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! Bytes on disk per stored result (issue 10's database growth per hour): 200,000
//! realistic results written through the real write path, then the results table with
//! its indexes measured. A measurement, so ignored by default:
//!
//! `cargo test -p pulsecheck-postgres --test it size -- --ignored --nocapture`

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use pulsecheck_core::state::State;
use pulsecheck_core::storage::{RunRecord, Storage, WriteEvent};
use pulsecheck_core::{Outcome, ProbeKind, Reason};

use crate::common::*;

const CHECKS: usize = 2_000;
const ROUNDS: usize = 100;
const BATCH: usize = 1_000;
/// What a result may cost, indexes included: 164 B with schema 2, 134 B with 0004.
const BUDGET_BYTES: f64 = 140.0;

/// Run `round` of check `i`: mostly up HTTP with every phase; one check in twenty down
/// (a timeout or a 503), a few over TCP; durations vary so that the phases' varints do.
fn run(i: usize, round: usize) -> WriteEvent {
    let name = format!("check-{i:05}");
    // Checks spread over the 6 s interval, as the scheduler spreads them.
    let at = ts(round as i64 * 6) + jiff::SignedDuration::from_micros((i as i64 * 3_000) % 6_000_000);
    let down = (i + round).is_multiple_of(20);
    let outcome = if down { Outcome::Down } else { Outcome::Up };
    let spread = ((i * 7 + round * 13) % 400) as u64;
    let mut r = result(&name, outcome, at, 20 + spread);
    r.queue_ms = Duration::from_micros(50 + spread);
    r.ip = Some(IpAddr::V4(Ipv4Addr::new(10, 0, (i / 256) as u8, (i % 256) as u8)));
    if i.is_multiple_of(10) {
        r.probe = ProbeKind::Tcp;
        r.timings.dns_ms = None;
        r.timings.ttfb_ms = None;
        r.http_status = None;
    } else {
        r.timings.tls_ms = Some(Duration::from_micros(3_000 + spread * 10));
        r.timings.transfer_ms = Some(Duration::from_micros(200 + spread));
        r.http_version = Some("HTTP/1.1".into());
        if down && round.is_multiple_of(2) {
            r.reason = Some(Reason::Status);
            r.error = Some("status 503, expected 200".into());
            r.http_status = Some(503);
        }
    }
    let state = if down { State::Down } else { State::Up };
    WriteEvent::Run(Box::new(RunRecord {
        check: name,
        fence: None,
        quorum: None,
        result: r,
        state: pulsecheck_core::state::CheckState {
            state,
            since: Some(ts(0)),
            streak: Vec::new(),
        },
        transition: None,
        notifications: Vec::new(),
    }))
}

#[tokio::test]
#[ignore = "a measurement that writes 200,000 results; run it with --ignored"]
async fn bytes_per_result_on_disk() {
    let Some(url) = database().await else { return };
    let s = store(&url, "a").await;
    for round in 0..ROUNDS {
        let events: Vec<WriteEvent> = (0..CHECKS).map(|i| run(i, round)).collect();
        for batch in events.chunks(BATCH) {
            Storage::write(&s, batch, ts(round as i64 * 6)).await.unwrap();
        }
    }
    let n = (CHECKS * ROUNDS) as i64;
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM results")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(stored, n);
    // Settled as autovacuum leaves a table: the free-space and visibility maps exist.
    sqlx::query("VACUUM ANALYZE results").execute(s.pool()).await.unwrap();
    let (total, heap, indexes): (i64, i64, i64) = sqlx::query_as(
        "SELECT pg_total_relation_size('results'), pg_relation_size('results'), pg_indexes_size('results')",
    )
    .fetch_one(s.pool())
    .await
    .unwrap();
    let per = |bytes: i64| bytes as f64 / n as f64;
    eprintln!(
        "postgres results: {n} results: {:.1} B each on disk ({:.1} B table, {:.1} B indexes)",
        per(total),
        per(heap),
        per(indexes)
    );
    assert!(per(total) <= BUDGET_BYTES, "{:.1} B per result", per(total));
}

/// How long `0004_compact_results.sql` takes to rewrite a results table of schema 2: one
/// million rows (1,000 checks, 1,000 runs each, with phases and an address), migrated
/// by opening the store. A measurement, so ignored by default:
///
/// `cargo test -p pulsecheck-postgres --test it size -- --ignored --nocapture`
#[tokio::test]
#[ignore = "a measurement that migrates 1,000,000 results; run it with --ignored"]
async fn migrating_a_million_results_of_schema_2() {
    let Some(url) = database().await else { return };
    pulsecheck_postgres::testing::migrate_up_to(&url, 2).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("INSERT INTO check_ids (id, name) SELECT i, 'c' || i FROM generate_series(1, 1000) i")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO results (check_id, started_at, kind, http_status, duration_us, queue_us, phases, ip,
                              http_version, redirects)
         SELECT c, t * 6000 + c, 0, 200, 20000 + c, 100, '\\x0bdc0bd00fac02'::bytea, '\\x0a000001'::bytea, 11, 0
         FROM generate_series(0, 999) t CROSS JOIN generate_series(1, 1000) c",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let started = std::time::Instant::now();
    let s = store(&url, "a").await;
    let elapsed = started.elapsed();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM results")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(stored, 1_000_000);
    eprintln!(
        "postgres 0004 migration: 1,000,000 results rewritten in {:.1} s",
        elapsed.as_secs_f64()
    );
}

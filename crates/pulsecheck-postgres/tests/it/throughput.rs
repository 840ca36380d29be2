//! Bulk writes: 10,000 checks written in batches of 1,000 fenced runs, as the batched
//! writer does on a node of a two-node cluster. Prints the rate (no timing assertion:
//! the machine may be loaded); asserts that every run is stored once.

use std::time::{Duration, Instant};

use pulsecheck_core::cluster::{Coordinator, Fence};
use pulsecheck_core::storage::{Storage, WriteEvent};
use pulsecheck_core::Outcome;

use crate::common::*;

const CHECKS: usize = 10_000;
const ROUNDS: i64 = 3;
const BATCH: usize = 1_000;

/// `ROUNDS` rounds of fenced runs of `names` (leased by `node`) in batches of `BATCH`.
async fn write_rounds(s: &pulsecheck_postgres::PgStore, node: &str, names: &[String]) {
    let keys: Vec<String> = names.iter().map(|n| format!("check:{n}")).collect();
    let leases = s.acquire(node, &keys, Duration::from_secs(600)).await.unwrap();
    assert_eq!(leases.len(), names.len());
    for round in 0..ROUNDS {
        let events: Vec<WriteEvent> = names
            .iter()
            .zip(&leases)
            .map(|(name, lease)| {
                let mut event = result_event(name, Outcome::Up, ts(round * 6), 25);
                if let WriteEvent::Run(run) = &mut event {
                    run.fence = Some(Fence {
                        key: lease.key.clone(),
                        node: node.into(),
                        epoch: lease.epoch,
                    });
                }
                event
            })
            .collect();
        for batch in events.chunks(BATCH) {
            Storage::write(s, batch, ts(round * 6)).await.unwrap();
        }
    }
}

#[tokio::test]
async fn two_nodes_write_ten_thousand_checks_at_once() {
    let Some(url) = database().await else { return };
    let (a, b) = (store(&url, "a").await, store(&url, "b").await);
    let names: Vec<String> = (0..CHECKS).map(|i| format!("check-{i:05}")).collect();
    let (half_a, half_b) = names.split_at(CHECKS / 2);
    let started = Instant::now();
    tokio::join!(write_rounds(&a, "a", half_a), write_rounds(&b, "b", half_b));
    let elapsed = started.elapsed();
    let runs = CHECKS as i64 * ROUNDS;
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM results")
        .fetch_one(a.pool())
        .await
        .unwrap();
    assert_eq!(stored, runs);
    assert_eq!(a.fenced_runs() + b.fenced_runs(), 0);
    eprintln!(
        "postgres bulk write, two nodes at once: {runs} fenced runs: {:.2} s, {:.0} runs/s",
        elapsed.as_secs_f64(),
        runs as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::test]
async fn ten_thousand_checks_write_in_bulk_with_fences() {
    let Some(url) = database().await else { return };
    let s = store(&url, "a").await;
    let names: Vec<String> = (0..CHECKS).map(|i| format!("check-{i:05}")).collect();
    let started = Instant::now();
    write_rounds(&s, "a", &names).await;
    let elapsed = started.elapsed();
    let runs = CHECKS as i64 * ROUNDS;
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM results")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(stored, runs);
    assert_eq!(s.fenced_runs(), 0);
    assert_eq!(s.load_states().await.unwrap().len(), CHECKS);
    eprintln!(
        "postgres bulk write: {runs} fenced runs in batches of {BATCH}: {:.2} s, {:.0} runs/s",
        elapsed.as_secs_f64(),
        runs as f64 / elapsed.as_secs_f64()
    );
}

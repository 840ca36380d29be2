//! Every read and claim reaches its rows through an index or a primary key, never a
//! scan of a table that grows with history (results, aggregates, transitions,
//! incidents, the outbox).

use crate::common::*;

const GROWING: [&str; 7] = [
    "results",
    "hourly",
    "daily",
    "transitions",
    "incidents",
    "notifications",
    "incident_updates",
];

#[tokio::test]
async fn reads_and_claims_use_indexes() {
    let Some(url) = database().await else { return };
    let s = store(&url, "a").await;
    let plans = s.query_plans().await.unwrap();
    assert!(plans.len() > 20);
    for (name, plan) in &plans {
        for table in GROWING {
            assert!(
                !plan.contains(&format!("Seq Scan on {table} ")) && !plan.ends_with(&format!("Seq Scan on {table}")),
                "{name} scans {table}:\n{plan}"
            );
        }
    }
    if std::env::var_os("PRINT_PLANS").is_some() {
        for (name, plan) in &plans {
            eprintln!("== {name}\n{plan}");
        }
    }
}

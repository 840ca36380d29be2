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

/// With a realistic table (many checks, time-ordered rows, statistics), aggregation
/// reaches an hour's results through the BRIN time index or one primary-key seek per
/// check, never through a pass over the whole primary key on its second column.
#[tokio::test]
async fn aggregation_reads_an_hour_through_an_index_on_time() {
    let Some(url) = database().await else { return };
    let s = store(&url, "a").await;
    // 100 checks every 6 s for 2 hours, in time order as the writer inserts them.
    sqlx::query("INSERT INTO check_ids (id, name) SELECT i, 'c' || i FROM generate_series(1, 100) i")
        .execute(s.pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO results (check_id, started_at, kind, duration_us, queue_us)
         SELECT c, t * 6000 + c, 0, 20000, 100
         FROM generate_series(0, 1199) t CROSS JOIN generate_series(1, 100) c
         ORDER BY t, c",
    )
    .execute(s.pool())
    .await
    .unwrap();
    sqlx::query("ANALYZE results").execute(s.pool()).await.unwrap();
    let plans = s.query_plans().await.unwrap();
    for name in ["next hour to aggregate", "aggregate an hour", "phases of an hour"] {
        let (_, plan) = plans.iter().find(|(n, _)| n == name).unwrap();
        let lines: Vec<&str> = plan.lines().collect();
        let mut reaches_results = false;
        for (i, line) in lines.iter().enumerate() {
            if line.contains("on results_by_time") {
                reaches_results = true;
            } else if line.contains("using results_pkey") || line.contains("on results_pkey") {
                let condition = lines.get(i + 1).copied().unwrap_or_default();
                assert!(condition.contains("check_id = "), "{name} passes over the key:\n{plan}");
                reaches_results = true;
            }
        }
        assert!(reaches_results, "{name}:\n{plan}");
    }
}

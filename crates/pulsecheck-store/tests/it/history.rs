//! The read side through core's `History` trait, against a real SQLite file: results
//! page by page, down spans page by page, uptime from raw rows and aggregates.

use pulsecheck_core::state::State;
use pulsecheck_core::storage::history::{History, ResultPage, SpanPage, Uptime};
use pulsecheck_core::{Outcome, Reason};
use pulsecheck_store::{Retention, Store};

use crate::common::*;

/// Every page of `check`'s results, following the cursor until a short page.
async fn all_pages(store: &dyn History, check: &str, limit: usize) -> Vec<Vec<jiff::Timestamp>> {
    let mut pages = Vec::new();
    let mut before = None;
    for _ in 0..100 {
        let page = store.recent_results(check, ResultPage { before, limit }).await.unwrap();
        before = page.last().map(|r| r.started_at);
        let done = page.len() < limit;
        pages.push(page.iter().map(|r| r.started_at).collect());
        if done {
            return pages;
        }
    }
    panic!("paging did not end");
}

#[tokio::test]
async fn results_come_newest_first_in_pages_that_cover_each_result_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut events = vec![register(&["api", "db"])];
    for i in 0..25 {
        let outcome = if i % 5 == 0 { Outcome::Down } else { Outcome::Up };
        events.push(result_event("api", outcome, ts(i * 60), 10 + i as u64));
        events.push(result_event("db", Outcome::Up, ts(i * 60 + 1), 3));
    }
    store.write(&events, ts(2_000)).await.unwrap();

    let pages = all_pages(&store, "api", 10).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    let all: Vec<_> = pages.concat();
    let expected: Vec<_> = (0..25).rev().map(|i| ts(i * 60)).collect();
    assert_eq!(all, expected, "newest first, no gap, no repeat, no other check");

    let newest = store
        .recent_results("api", ResultPage { before: None, limit: 1 })
        .await
        .unwrap();
    assert_eq!(newest[0].outcome, Outcome::Up);
    assert_eq!(
        (newest[0].duration_ms, newest[0].dns_ms, newest[0].connect_ms),
        (34.0, Some(1.5), Some(2.0))
    );
    let down = store
        .recent_results(
            "api",
            ResultPage {
                before: Some(ts(20 * 60 + 1)),
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(down[0].started_at, ts(20 * 60));
    assert_eq!(down[0].reason, Some(Reason::Timeout));
    assert_eq!(down[0].error.as_deref(), Some("no answer within 5 s"));
    assert!(store
        .recent_results(
            "nope",
            ResultPage {
                before: None,
                limit: 10
            }
        )
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn down_spans_come_newest_first_with_their_cause_by_check_or_for_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .write(
            &[
                register(&["api", "db"]),
                transition("api", State::Up, State::Down, ts(100), &[]),
                transition("db", State::Up, State::Down, ts(150), &[]),
                transition("api", State::Down, State::Up, ts(160), &[]),
                transition("api", State::Up, State::Down, ts(400), &[]),
            ],
            ts(400),
        )
        .await
        .unwrap();

    let page = SpanPage {
        check: Some("api".into()),
        before_id: None,
        limit: 10,
    };
    let api = store.down_spans(&page).await.unwrap();
    assert_eq!(api.len(), 2);
    assert_eq!(
        (api[0].started_at, api[0].ended_at),
        (ts(400), None),
        "the open one first"
    );
    assert_eq!((api[1].started_at, api[1].ended_at), (ts(100), Some(ts(160))));
    assert_eq!(
        api[1].reason,
        Some(Reason::Timeout),
        "the cause of the transition that opened it"
    );
    assert_eq!(api[1].duration(ts(1_000)), std::time::Duration::from_secs(60));
    assert_eq!(
        api[0].duration(ts(1_000)),
        std::time::Duration::from_secs(600),
        "open: until now"
    );

    // All checks, two at a time, following the cursor.
    let mut seen = Vec::new();
    let mut before_id = None;
    for _ in 0..10 {
        let page = SpanPage {
            check: None,
            before_id,
            limit: 2,
        };
        let spans = store.down_spans(&page).await.unwrap();
        before_id = spans.last().map(|s| s.id);
        seen.extend(spans.iter().map(|s| (s.check.clone(), s.started_at)));
        if spans.len() < 2 {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            ("api".to_owned(), ts(400)),
            ("db".to_owned(), ts(150)),
            ("api".to_owned(), ts(100))
        ]
    );
}

#[tokio::test]
async fn uptime_adds_raw_results_hourly_and_daily_aggregates_without_counting_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut events = vec![register(&["api"])];
    // Two days ago, 2 hours: 12 runs, 2 down. Today, hours 0 to 5: 36 runs, 3 down,
    // and 2 cancelled that never count.
    for i in 0..12 {
        let outcome = if i < 2 { Outcome::Down } else { Outcome::Up };
        events.push(result_event("api", outcome, ts(-2 * 86_400 + i * 600), 10));
    }
    for i in 0..36 {
        let outcome = if i % 12 == 3 { Outcome::Down } else { Outcome::Up };
        events.push(result_event("api", outcome, ts(i * 600), 10));
    }
    events.push(result_event("api", Outcome::Cancelled, ts(301), 1));
    events.push(result_event("api", Outcome::Cancelled, ts(5 * 3600 + 301), 1));
    let now = ts(6 * 3600 + 11 * 60);
    store.write(&events, now).await.unwrap();

    let all = Uptime { runs: 48, up: 43 };
    let today = Uptime { runs: 36, up: 33 };
    assert_eq!(
        store.uptime("api", ts(-3 * 86_400), now).await.unwrap(),
        all,
        "raw only"
    );

    // Aggregate hours 0 to 5 and drop the raw up results older than an hour.
    let retention = Retention {
        raw_days: 1,
        raw_up_hours: 1,
        hourly_days: 90,
        daily_days: 400,
    };
    store.compact_with(now, &retention).await.unwrap();
    assert!(
        store.result_count(Some("api")).await.unwrap() < 20,
        "raw results were pruned"
    );
    assert_eq!(
        store.uptime("api", ts(-3 * 86_400), now).await.unwrap(),
        all,
        "hourly + raw"
    );
    assert_eq!(store.uptime("api", ts(0), now).await.unwrap(), today);
    assert_eq!(
        store.uptime("api", ts(3 * 3600), now).await.unwrap(),
        Uptime { runs: 18, up: 17 }
    );
    assert_eq!(all.percent().map(|p| (p * 100.0).round() / 100.0), Some(89.58));

    // Newer raw results after the watermark count once.
    store
        .write(&[result_event("api", Outcome::Down, ts(6 * 3600 + 60), 10)], now)
        .await
        .unwrap();
    assert_eq!(
        store.uptime("api", ts(0), now).await.unwrap(),
        Uptime { runs: 37, up: 33 }
    );

    // Once the old hours are gone, the daily row stands in for their whole day.
    side_sql(
        &dir.path().join("state/pulsecheck.db"),
        &format!("DELETE FROM hourly WHERE hour < {}", ts(0).as_millisecond()),
    )
    .await;
    assert_eq!(
        store.uptime("api", ts(-3 * 86_400), now).await.unwrap(),
        Uptime { runs: 49, up: 43 }
    );
    assert_eq!(store.uptime("nope", ts(0), now).await.unwrap(), Uptime::default());
    assert_eq!(Uptime::default().percent(), None);
}

/// The history reads walk an index or a primary key, never a whole table: the API runs
/// them against 10,000 checks.
#[tokio::test]
async fn history_queries_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store: Store = open(&dir).await;
    store.write(&[register(&["api"])], ts(0)).await.unwrap();
    let plans = store.history_query_plans().await.unwrap();
    assert!(!plans.is_empty());
    for (query, plan) in plans {
        // Stored tables and their aliases in the queries; a one-row CTE may be scanned.
        const TABLES: [&str; 11] = [
            "results",
            "hourly",
            "daily",
            "incidents",
            "transitions",
            "check_ids",
            "checks",
            "r",
            "c",
            "i",
            "t",
        ];
        for line in plan.lines() {
            let scanned = line
                .trim()
                .strip_prefix("SCAN ")
                .and_then(|rest| rest.split_whitespace().next());
            let full_scan = scanned.is_some_and(|table| TABLES.contains(&table)) && !line.contains("USING");
            assert!(!full_scan, "{query}: full scan in\n{plan}");
        }
    }
}

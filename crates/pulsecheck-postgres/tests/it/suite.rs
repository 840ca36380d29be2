//! The behavioural suite: each scenario is written once, generic over the backend, and
//! runs against the SQLite store (a temporary file) and the PostgreSQL store (a fresh
//! database on the test server). Assertions are ported from pulsecheck-store's tests.

use pulsecheck_core::outbox::{AlertKind, DeliveryState, Notification, Outbox};
use pulsecheck_core::state::State;
use pulsecheck_core::storage::console::{ApiCheck, CheckFilter, CheckPage, IncidentStatus, OutboxPage, Silence};
use pulsecheck_core::storage::history::{ResultPage, SpanPage, Uptime};
use pulsecheck_core::storage::{CheckMeta, Console, History, Housekeeping, Origin, Retention, Storage, WriteEvent};
use pulsecheck_core::{Outcome, Reason};

use crate::common::*;

/// What both stores implement.
pub trait Backend: Storage + Outbox + History + Console + Housekeeping {}
impl<T: Storage + Outbox + History + Console + Housekeeping> Backend for T {}

/// Runs `$scenario` against both backends, as `$scenario::sqlite` and `$scenario::postgres`.
macro_rules! both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let store = pulsecheck_store::Store::open(dir.path().join("pulsecheck.db")).await.unwrap();
                super::$scenario(&store).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(url) = crate::common::database().await else { return };
                let store = crate::common::store(&url, "a").await;
                super::$scenario(&store).await;
            }
        }
    )*};
}

both_backends!(
    a_run_with_a_transition_writes_everything_it_caused,
    due_returns_one_head_per_check_and_channel_in_order,
    retry_at_blocks_its_own_queue_but_not_the_others,
    retry_channel_now_makes_one_channels_backlog_due,
    dead_letters_stay_visible_and_unblock_the_next,
    duplicate_idempotency_keys_are_ignored_and_empty_keys_are_filled,
    load_states_round_trips,
    register_checks_updates_metadata_and_retires_the_rest,
    results_and_down_spans_come_in_pages,
    uptime_counts_raw_results_and_aggregates_across_the_watermark,
    compaction_aggregates_complete_hours_then_deletes_old_rows,
    check_pages_summaries_and_group_counts,
    incidents_carry_updates_and_an_acknowledgement,
    outbox_pages_and_redelivery,
    api_checks_are_put_replaced_and_deleted,
    silences_are_in_force_until_they_end,
    latency_and_daily_bars_before_and_after_compaction,
);

fn keys(notifications: &[Notification]) -> Vec<String> {
    notifications.iter().map(|n| n.event.idempotency_key.clone()).collect()
}

async fn outbox_rows<S: Backend>(
    store: &S,
    state: Option<DeliveryState>,
) -> Vec<pulsecheck_core::storage::console::NotificationRecord> {
    let mut rows = store
        .outbox_page(&OutboxPage {
            check: None,
            state,
            before_id: None,
            limit: 1_000,
        })
        .await
        .unwrap();
    rows.reverse();
    rows
}

/// api: down (hook, slack, pager) then resolved (hook, slack); db: down (hook).
async fn outbox_fixture<S: Backend>(store: &S) {
    store
        .write(
            &[
                register(&["api", "db"]),
                transition("api", State::Up, State::Down, ts(10), &["hook", "slack", "pager"]),
                transition("db", State::Up, State::Down, ts(20), &["hook"]),
                transition("api", State::Down, State::Up, ts(30), &["hook", "slack"]),
            ],
            ts(30),
        )
        .await
        .unwrap();
}

async fn a_run_with_a_transition_writes_everything_it_caused<S: Backend>(store: &S) {
    store
        .write(
            &[
                register(&["api"]),
                result_event("api", Outcome::Up, ts(5), 20),
                transition("api", State::Up, State::Down, ts(10), &["hook", "slack"]),
            ],
            ts(10),
        )
        .await
        .unwrap();
    let states = store.load_states().await.unwrap();
    assert_eq!(states["api"].state, State::Down);
    assert_eq!(states["api"].since, Some(ts(10)));

    let results = store
        .recent_results(
            "api",
            ResultPage {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        results.iter().map(|r| r.started_at).collect::<Vec<_>>(),
        [ts(10), ts(5)]
    );
    assert_eq!(results[0].outcome, Outcome::Down);
    assert_eq!(results[0].reason, Some(Reason::Timeout));
    assert_eq!(results[1].http_status, Some(200));
    assert_eq!((results[1].duration_ms, results[1].queue_ms), (20.0, 0.25));
    assert_eq!((results[1].dns_ms, results[1].ttfb_ms), (Some(1.5), Some(10.0)));

    let rows = outbox_rows(store, None).await;
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|r| r.transition_id.is_some() && r.transition_id == rows[0].transition_id));
    assert!(rows
        .iter()
        .all(|r| r.state == DeliveryState::Pending && r.attempts == 0));
    assert_eq!(rows[0].created_at, ts(10));
    assert_eq!(rows[0].idempotency_key, "api:down:10:hook");

    let summary = store.check_summary("api").await.unwrap().unwrap();
    assert_eq!(summary.state, State::Down);
    assert_eq!(summary.last_result_at, Some(ts(10)));
    assert_eq!(summary.last_outcome, Some(Outcome::Down));
    assert_eq!(summary.last_reason, Some(Reason::Timeout));
    assert_eq!(summary.pending_notifications, 2);
    let incidents = store
        .down_spans(&SpanPage {
            check: Some("api".into()),
            before_id: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(summary.open_incident, Some(incidents[0].id));
    assert_eq!((incidents[0].started_at, incidents[0].ended_at), (ts(10), None));
    assert_eq!(incidents[0].reason, Some(Reason::Timeout));

    // Back up: the incident closes.
    store
        .write(&[transition("api", State::Down, State::Up, ts(40), &["hook"])], ts(40))
        .await
        .unwrap();
    let summary = store.check_summary("api").await.unwrap().unwrap();
    assert_eq!((summary.state, summary.open_incident), (State::Up, None));
    let spans = store
        .down_spans(&SpanPage {
            check: None,
            before_id: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(spans[0].ended_at, Some(ts(40)));
    assert_eq!(store.outbox_counts().await.unwrap(), (3, 0));
}

async fn due_returns_one_head_per_check_and_channel_in_order<S: Backend>(store: &S) {
    outbox_fixture(store).await;
    let due = store.due(ts(30), 100).await.unwrap();
    assert_eq!(
        keys(&due),
        [
            "api:down:10:hook",
            "api:down:10:slack",
            "api:down:10:pager",
            "db:down:20:hook"
        ]
    );
    assert_eq!(due[0].channel, "hook");
    assert_eq!(due[0].event.kind, AlertKind::Down);
    assert_eq!(store.due(ts(30), 2).await.unwrap().len(), 2, "limit applies");
    assert!(
        store.due(ts(29), 100).await.unwrap().is_empty(),
        "not due before they were created"
    );

    store.delivered(due[0].id, 1, ts(31)).await.unwrap();
    store.delivered(due[1].id, 1, ts(31)).await.unwrap();
    let due = store.due(ts(31), 100).await.unwrap();
    assert_eq!(
        keys(&due),
        [
            "api:down:10:pager",
            "db:down:20:hook",
            "api:up:30:hook",
            "api:up:30:slack"
        ]
    );
    let delivered = outbox_rows(store, Some(DeliveryState::Delivered)).await;
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[0].delivered_at, Some(ts(31)));
    assert_eq!(delivered[0].attempts, 1);
}

async fn retry_at_blocks_its_own_queue_but_not_the_others<S: Backend>(store: &S) {
    outbox_fixture(store).await;
    let head = store.due(ts(30), 1).await.unwrap().remove(0);
    assert_eq!(head.event.idempotency_key, "api:down:10:hook");
    store
        .retry_at(head.id, 1, ts(90), "503 Service Unavailable".into())
        .await
        .unwrap();
    let due = store.due(ts(60), 100).await.unwrap();
    assert_eq!(
        keys(&due),
        ["api:down:10:slack", "api:down:10:pager", "db:down:20:hook"]
    );
    assert_eq!(store.next_due().await.unwrap(), Some(ts(30)));
    for n in &due {
        store.delivered(n.id, 1, ts(60)).await.unwrap();
    }
    let due = store.due(ts(60), 100).await.unwrap();
    assert_eq!(keys(&due), ["api:up:30:slack"]);
    store.delivered(due[0].id, 1, ts(60)).await.unwrap();
    assert!(store.due(ts(60), 100).await.unwrap().is_empty());
    assert_eq!(store.next_due().await.unwrap(), Some(ts(90)), "the blocked head's time");

    let due = store.due(ts(90), 100).await.unwrap();
    assert_eq!(keys(&due), ["api:down:10:hook"]);
    assert_eq!((due[0].attempts, due[0].next_attempt_at), (1, ts(90)));
    let rows = outbox_rows(store, Some(DeliveryState::Pending)).await;
    assert_eq!(rows[0].last_error.as_deref(), Some("503 Service Unavailable"));
}

async fn retry_channel_now_makes_one_channels_backlog_due<S: Backend>(store: &S) {
    outbox_fixture(store).await;
    for n in store.due(ts(30), 100).await.unwrap() {
        store.retry_at(n.id, 1, ts(3600), "HTTP 503".into()).await.unwrap();
    }
    assert!(store.due(ts(60), 100).await.unwrap().is_empty());
    assert_eq!(store.retry_channel_now("hook", ts(60)).await.unwrap(), 2);
    let due = store.due(ts(60), 100).await.unwrap();
    assert_eq!(keys(&due), ["api:down:10:hook", "db:down:20:hook"]);
    assert!(due.iter().all(|n| n.attempts == 1), "attempt counts are kept");
    store.delivered(due[0].id, 2, ts(61)).await.unwrap();
    assert_eq!(
        keys(&store.due(ts(61), 100).await.unwrap()),
        ["db:down:20:hook", "api:up:30:hook"],
        "api's resolved notice comes after its down notice"
    );
    let waiting: Vec<String> = outbox_rows(store, Some(DeliveryState::Pending))
        .await
        .into_iter()
        .filter(|r| r.next_attempt_at == ts(3600))
        .map(|r| r.idempotency_key)
        .collect();
    assert_eq!(waiting, ["api:down:10:slack", "api:down:10:pager"]);
    assert_eq!(store.retry_channel_now("hook", ts(62)).await.unwrap(), 0);
}

async fn dead_letters_stay_visible_and_unblock_the_next<S: Backend>(store: &S) {
    outbox_fixture(store).await;
    let head = store.due(ts(30), 1).await.unwrap().remove(0);
    store.dead(head.id, 3, "410 Gone".into()).await.unwrap();
    let due = keys(&store.due(ts(30), 100).await.unwrap());
    assert!(due.contains(&"api:up:30:hook".to_owned()));
    assert!(!due.contains(&"api:down:10:hook".to_owned()));
    let dead = outbox_rows(store, Some(DeliveryState::Dead)).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].idempotency_key, "api:down:10:hook");
    assert_eq!((dead[0].attempts, dead[0].last_error.as_deref()), (3, Some("410 Gone")));
    let api = store.check_summary("api").await.unwrap().unwrap();
    assert_eq!((api.dead_notifications, api.pending_notifications), (1, 4));
    assert_eq!(store.outbox_counts().await.unwrap(), (5, 1));
    // Settling a row that does not exist is an error, not a silent no-op.
    assert!(store.delivered(9_999, 1, ts(40)).await.is_err());
}

async fn duplicate_idempotency_keys_are_ignored_and_empty_keys_are_filled<S: Backend>(store: &S) {
    let reminder = WriteEvent::Notify {
        notifications: vec![(
            "hook".into(),
            alert("api", "api:reminder:1", AlertKind::Reminder, ts(5)),
        )],
    };
    store.write(&[reminder.clone(), reminder.clone()], ts(5)).await.unwrap();
    store.write(&[reminder], ts(6)).await.unwrap();
    // The same transition written twice (a retried batch that had in fact committed).
    let down = transition("api", State::Up, State::Down, ts(10), &["hook"]);
    store.write(std::slice::from_ref(&down), ts(10)).await.unwrap();
    store.write(&[down], ts(11)).await.unwrap();
    let test_message = WriteEvent::Notify {
        notifications: vec![("slack".into(), alert("notify-test", "", AlertKind::Test, ts(12)))],
    };
    store.write(&[test_message], ts(12)).await.unwrap();

    let rows = outbox_rows(store, None).await;
    let keys: Vec<&str> = rows.iter().map(|r| r.idempotency_key.as_str()).collect();
    let derived = format!("notify-test:test:{}:slack", ts(12).as_millisecond());
    assert_eq!(keys, ["api:reminder:1", "api:down:10:hook", derived.as_str()]);
    assert_eq!(
        rows[2].event.idempotency_key, derived,
        "the payload carries the key too"
    );
    assert_eq!(rows[0].created_at, ts(5), "the first write wins");
}

async fn load_states_round_trips<S: Backend>(store: &S) {
    let events = vec![
        result_event("api", Outcome::Up, ts(1), 40),
        result_event("db", Outcome::Down, ts(2), 5_000),
        transition("db", State::Up, State::Down, ts(3), &[]),
        result_event("cache", Outcome::Up, ts(4), 3),
    ];
    store.write(&events, ts(5)).await.unwrap();
    let states = store.load_states().await.unwrap();
    assert_eq!(states.len(), 3);
    let (WriteEvent::Run(api), WriteEvent::Run(db)) = (&events[0], &events[2]) else {
        unreachable!()
    };
    assert_eq!(states["db"], db.state);
    assert_eq!(states["api"], api.state);
    assert_eq!(states["cache"].since, Some(ts(0)));
    let some = store
        .load_states_of(&["db".to_owned(), "nope".to_owned()])
        .await
        .unwrap();
    assert_eq!(some.len(), 1);
    assert_eq!(some["db"], db.state);
}

async fn register_checks_updates_metadata_and_retires_the_rest<S: Backend>(store: &S) {
    store.write(&[register(&["a", "b", "c"])], ts(0)).await.unwrap();
    let reload = WriteEvent::RegisterChecks {
        checks: vec![CheckMeta {
            name: "b".into(),
            group: None,
            target: "tcp://b.example:22".into(),
            origin: Default::default(),
        }],
        retire_others: true,
    };
    store.write(&[reload], ts(1)).await.unwrap();
    let page = store
        .check_page(&CheckPage {
            filter: CheckFilter {
                include_retired: true,
                ..Default::default()
            },
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    let active: Vec<(&str, bool)> = page.iter().map(|s| (s.name.as_str(), s.active)).collect();
    assert_eq!(active, [("a", false), ("b", true), ("c", false)]);
    assert_eq!(page[1].target, "tcp://b.example:22");
    assert_eq!(page[1].group, None);
    assert_eq!(page[1].state, State::Unknown);
}

async fn results_and_down_spans_come_in_pages<S: Backend>(store: &S) {
    let mut events = vec![register(&["api", "db"])];
    for i in 0..25 {
        let outcome = if i % 5 == 0 { Outcome::Down } else { Outcome::Up };
        events.push(result_event("api", outcome, ts(i * 60), 10 + i as u64));
        events.push(result_event("db", Outcome::Up, ts(i * 60 + 1), 3));
    }
    store.write(&events, ts(2_000)).await.unwrap();
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .recent_results("api", ResultPage { before, limit: 10 })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|r| r.started_at);
        pages.push(page.iter().map(|r| r.started_at).collect::<Vec<_>>());
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    let expected: Vec<_> = (0..25).rev().map(|i| ts(i * 60)).collect();
    assert_eq!(
        pages.concat(),
        expected,
        "newest first, no gap, no repeat, no other check"
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
    assert_eq!(down[0].error.as_deref(), Some("no answer within 5 s"));

    // Down spans: 3 checks, 2 spans each (the second of c still open).
    let mut events = Vec::new();
    for (i, check) in ["a", "b", "c"].iter().enumerate() {
        let t = i as i64 * 1_000;
        events.push(transition(check, State::Up, State::Down, ts(t + 100), &[]));
        events.push(transition(check, State::Down, State::Up, ts(t + 200), &[]));
        events.push(transition(check, State::Up, State::Down, ts(t + 300), &[]));
        if *check != "c" {
            events.push(transition(check, State::Down, State::Up, ts(t + 400), &[]));
        }
    }
    store.write(&events, ts(5_000)).await.unwrap();
    let mut ids = Vec::new();
    let mut before_id = None;
    loop {
        let page = store
            .down_spans(&SpanPage {
                check: None,
                before_id,
                limit: 4,
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        before_id = page.last().map(|s| s.id);
        ids.extend(page.iter().map(|s| s.id));
    }
    assert_eq!(ids.len(), 6);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first, each once: {ids:?}");
    let of_c = store
        .down_spans(&SpanPage {
            check: Some("c".into()),
            before_id: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(
        of_c.iter().map(|s| s.started_at).collect::<Vec<_>>(),
        [ts(2_300), ts(2_100)]
    );
    assert_eq!(of_c[0].ended_at, None);
    assert_eq!(of_c[1].ended_at, Some(ts(2_200)));
}

async fn uptime_counts_raw_results_and_aggregates_across_the_watermark<S: Backend>(store: &S) {
    let mut events = vec![register(&["api"])];
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

    let retention = Retention {
        raw_days: 1,
        raw_up_hours: 1,
        hourly_days: 90,
        daily_days: 400,
    };
    let report = store.compact(now, &retention).await.unwrap();
    assert!(report.results_deleted > 30, "{report:?}");
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
    // A newer raw result after the watermark counts once.
    store
        .write(&[result_event("api", Outcome::Down, ts(6 * 3600 + 60), 10)], now)
        .await
        .unwrap();
    assert_eq!(
        store.uptime("api", ts(0), now).await.unwrap(),
        Uptime { runs: 37, up: 33 }
    );
    let windows = [(ts(0), now), (ts(3 * 3600), now)];
    let batch = store
        .uptimes(&["nope".to_owned(), "api".to_owned()], &windows)
        .await
        .unwrap();
    assert_eq!(batch[0], [Uptime::default(), Uptime::default()]);
    assert_eq!(batch[1], [Uptime { runs: 37, up: 33 }, Uptime { runs: 19, up: 17 }]);
    assert_eq!(store.uptime("nope", ts(0), now).await.unwrap(), Uptime::default());
}

async fn compaction_aggregates_complete_hours_then_deletes_old_rows<S: Backend>(store: &S) {
    let mut events = vec![register(&["api", "db"])];
    for i in 0..100 {
        events.push(result_event("api", Outcome::Up, ts(i * 30), 100 - i as u64));
    }
    for i in 0..10 {
        events.push(result_event("api", Outcome::Down, ts(i * 60 + 5), 5_000));
    }
    for i in 0..5 {
        events.push(result_event("api", Outcome::Cancelled, ts(i * 60 + 7), 1));
    }
    events.push(result_event("db", Outcome::Down, ts(2 * 3600 + 1), 5_000));
    let now = ts(3 * 86_400 + 1_800);
    events.push(result_event("api", Outcome::Up, ts(3 * 86_400 + 60), 42));
    store.write(&events, now).await.unwrap();

    let retention = Retention::new(1, 30);
    let report = store.compact(now, &retention).await.unwrap();
    assert_eq!(
        (report.hours_aggregated, report.hourly_rows_written),
        (2, 2),
        "{report:?}"
    );
    assert_eq!(report.results_deleted, 116);
    let left = store
        .recent_results(
            "api",
            ResultPage {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(left.len(), 1, "the recent raw result stays");
    // The hour's aggregate: percentiles and mean over the 100 up results.
    let p = store
        .latency_percentiles("api", ts(0), ts(3600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (p.runs, p.p50_ms, p.p95_ms, p.p99_ms, p.mean_ms),
        (100, 50.0, 95.0, 99.0, 50.5)
    );
    assert_eq!(
        store.uptime("api", ts(0), ts(3600)).await.unwrap(),
        Uptime { runs: 110, up: 100 }
    );
    assert_eq!(
        store.uptime("db", ts(0), ts(86_400)).await.unwrap(),
        Uptime { runs: 1, up: 0 }
    );
    // Idempotent.
    assert_eq!(store.compact(now, &retention).await.unwrap(), Default::default());
    // A month later the hourly rows go too.
    let report = store.compact(ts(32 * 86_400), &retention).await.unwrap();
    assert_eq!(
        (report.hours_aggregated, report.results_deleted, report.hourly_deleted),
        (1, 1, 2)
    );
}

fn meta(name: &str, group: Option<&str>, origin: Origin) -> CheckMeta {
    CheckMeta {
        name: name.to_owned(),
        group: group.map(str::to_owned),
        target: format!("https://{name}.example"),
        origin,
    }
}

async fn check_pages_summaries_and_group_counts<S: Backend>(store: &S) {
    let all = ["api", "auth", "billing", "cache", "db", "edge", "old"];
    let group = |n: &str| match n {
        "api" | "auth" | "old" => Some("web"),
        "edge" => None,
        _ => Some("backend"),
    };
    let origin = |n: &str| {
        if ["auth", "db"].contains(&n) {
            Origin::Api
        } else {
            Origin::File
        }
    };
    store
        .write(
            &[WriteEvent::RegisterChecks {
                checks: all.iter().map(|n| meta(n, group(n), origin(n))).collect(),
                retire_others: false,
            }],
            ts(0),
        )
        .await
        .unwrap();
    store
        .write(
            &[
                WriteEvent::RegisterChecks {
                    checks: all[..6].iter().map(|n| meta(n, group(n), origin(n))).collect(),
                    retire_others: true,
                },
                result_event("api", Outcome::Up, ts(5), 10),
                result_event("billing", Outcome::Up, ts(5), 10),
                transition("cache", State::Up, State::Down, ts(10), &["hook"]),
                transition("db", State::Up, State::Down, ts(20), &["hook", "slack"]),
            ],
            ts(20),
        )
        .await
        .unwrap();
    let pages = |filter: CheckFilter, limit: usize| async move {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .check_page(&CheckPage {
                    filter: filter.clone(),
                    after: after.clone(),
                    limit,
                })
                .await
                .unwrap();
            if page.is_empty() {
                return out;
            }
            after = page.last().map(|s| s.name.clone());
            out.push(page.into_iter().map(|s| s.name).collect::<Vec<_>>());
        }
    };
    assert_eq!(
        pages(CheckFilter::default(), 2).await,
        [vec!["api", "auth"], vec!["billing", "cache"], vec!["db", "edge"]]
    );
    let retired = CheckFilter {
        include_retired: true,
        ..Default::default()
    };
    assert_eq!(pages(retired, 4).await.concat().len(), 7);
    let backend = CheckFilter {
        group: Some("backend".into()),
        ..Default::default()
    };
    assert_eq!(pages(backend, 1).await.concat(), ["billing", "cache", "db"]);
    let down = CheckFilter {
        state: Some(State::Down),
        ..Default::default()
    };
    assert_eq!(pages(down, 1).await.concat(), ["cache", "db"]);
    let api_checks = CheckFilter {
        origin: Some(Origin::Api),
        ..Default::default()
    };
    assert_eq!(pages(api_checks, 5).await.concat(), ["auth", "db"]);

    let db = store.check_summary("db").await.unwrap().unwrap();
    assert_eq!(
        (db.state, db.since, db.origin),
        (State::Down, Some(ts(20)), Origin::Api)
    );
    assert!(db.open_incident.is_some());
    assert_eq!(db.pending_notifications, 2);
    assert_eq!(db.last_error.as_deref(), Some("no answer within 5 s"));
    let old = store.check_summary("old").await.unwrap().unwrap();
    assert!(!old.active);
    assert_eq!(store.check_summary("nope").await.unwrap(), None);

    let counts = store.group_counts().await.unwrap();
    let flat: Vec<(Option<&str>, u64, u64, u64)> = counts
        .iter()
        .map(|c| (c.group.as_deref(), c.up, c.down, c.unknown))
        .collect();
    assert_eq!(
        flat,
        [(None, 0, 0, 1), (Some("backend"), 1, 2, 0), (Some("web"), 1, 0, 1)],
        "active checks only, no group first"
    );
}

async fn incidents_carry_updates_and_an_acknowledgement<S: Backend>(store: &S) {
    store
        .write(
            &[
                register(&["api", "db"]),
                transition("api", State::Up, State::Down, ts(10), &[]),
                transition("db", State::Up, State::Down, ts(20), &[]),
                transition("api", State::Down, State::Up, ts(30), &[]),
            ],
            ts(30),
        )
        .await
        .unwrap();
    let page = SpanPage {
        check: None,
        before_id: None,
        limit: 10,
    };
    let incidents = store.incident_page(&page).await.unwrap();
    assert_eq!(incidents.len(), 2);
    let (db, api) = (incidents[0].span.id, incidents[1].span.id);
    assert_eq!(incidents[0].span.check, "db");
    let first = store
        .add_incident_update(db, IncidentStatus::Investigating, "looking", ts(40))
        .await
        .unwrap()
        .unwrap();
    store
        .add_incident_update(api, IncidentStatus::Resolved, "fixed", ts(41))
        .await
        .unwrap()
        .unwrap();
    let second = store
        .add_incident_update(db, IncidentStatus::Identified, "disk full", ts(50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.incident, first.status, first.at),
        (db, IncidentStatus::Investigating, ts(40))
    );
    assert_eq!(
        store
            .add_incident_update(9_999, IncidentStatus::Monitoring, "x", ts(1))
            .await
            .unwrap(),
        None
    );
    let acked = store.acknowledge_incident(db, ts(45)).await.unwrap().unwrap();
    assert_eq!(acked.acknowledged_at, Some(ts(45)));
    assert_eq!(acked.updates, [first, second]);
    let again = store.acknowledge_incident(db, ts(99)).await.unwrap().unwrap();
    assert_eq!(again.acknowledged_at, Some(ts(45)), "the first acknowledgement stays");
    assert_eq!(store.acknowledge_incident(9_999, ts(1)).await.unwrap(), None);
    let incidents = store.incident_page(&page).await.unwrap();
    assert_eq!(incidents[0], again);
    assert_eq!(incidents[1].updates[0].message, "fixed");
    assert_eq!(incidents[1].span.ended_at, Some(ts(30)));
    assert_eq!(store.incident(api).await.unwrap().unwrap(), incidents[1]);
    assert_eq!(store.incident(9_999).await.unwrap(), None);
}

async fn outbox_pages_and_redelivery<S: Backend>(store: &S) {
    store
        .write(
            &[
                register(&["api", "db"]),
                transition("api", State::Up, State::Down, ts(10), &["hook", "slack"]),
                transition("db", State::Up, State::Down, ts(20), &["hook"]),
                transition("api", State::Down, State::Up, ts(30), &["hook"]),
            ],
            ts(30),
        )
        .await
        .unwrap();
    let page = |check: Option<&str>, state, before_id, limit| OutboxPage {
        check: check.map(str::to_owned),
        state,
        before_id,
        limit,
    };
    let first = store.outbox_page(&page(None, None, None, 2)).await.unwrap();
    assert_eq!(
        first.iter().map(|r| r.idempotency_key.as_str()).collect::<Vec<_>>(),
        ["api:up:30:hook", "db:down:20:hook"]
    );
    let rest = store
        .outbox_page(&page(None, None, Some(first[1].id), 10))
        .await
        .unwrap();
    assert_eq!(rest.len(), 2);
    let of_db = store.outbox_page(&page(Some("db"), None, None, 10)).await.unwrap();
    assert_eq!(of_db.len(), 1);

    let head = store.due(ts(30), 1).await.unwrap().remove(0);
    store.dead(head.id, 5, "410 Gone".into()).await.unwrap();
    let dead = store
        .outbox_page(&page(None, Some(DeliveryState::Dead), None, 10))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    let back = store.redeliver(head.id, ts(60)).await.unwrap().unwrap();
    assert_eq!(
        (back.state, back.attempts, back.next_attempt_at),
        (DeliveryState::Pending, 0, ts(60))
    );
    assert_eq!(back.last_error.as_deref(), Some("410 Gone"), "kept for the record");
    let due = store.due(ts(60), 10).await.unwrap();
    assert_eq!(due[0].id, head.id, "first in its queue again");
    store.delivered(head.id, 1, ts(61)).await.unwrap();
    let delivered = store.redeliver(head.id, ts(70)).await.unwrap().unwrap();
    assert_eq!(
        delivered.state,
        DeliveryState::Delivered,
        "a delivered row is left alone"
    );
    assert_eq!(store.redeliver(9_999, ts(70)).await.unwrap(), None);
}

async fn api_checks_are_put_replaced_and_deleted<S: Backend>(store: &S) {
    let check = |name: &str, target: &str, at: i64| ApiCheck {
        name: name.to_owned(),
        definition: serde_json::json!({ "name": name, "target": target, "interval": "30s" }),
        created_at: ts(at),
        updated_at: ts(at),
    };
    store
        .put_api_check(&check("web", "https://a.example", 0))
        .await
        .unwrap();
    store
        .put_api_check(&check("auth", "https://b.example", 1))
        .await
        .unwrap();
    store
        .put_api_check(&check("web", "https://c.example", 5))
        .await
        .unwrap();
    let stored = store.api_checks().await.unwrap();
    assert_eq!(
        stored.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["auth", "web"]
    );
    assert_eq!(stored[1].definition["target"], "https://c.example");
    assert_eq!(
        (stored[1].created_at, stored[1].updated_at),
        (ts(0), ts(5)),
        "a replacement keeps created_at"
    );
    store
        .write(
            &[
                WriteEvent::RegisterChecks {
                    checks: vec![meta("web", None, Origin::Api)],
                    retire_others: false,
                },
                result_event("web", Outcome::Up, ts(10), 5),
            ],
            ts(10),
        )
        .await
        .unwrap();
    assert!(store.delete_api_check("web").await.unwrap());
    assert!(!store.delete_api_check("web").await.unwrap());
    let web = store.check_summary("web").await.unwrap().unwrap();
    assert!(!web.active);
    assert_eq!(web.origin, Origin::Api);
    assert_eq!(
        store
            .recent_results(
                "web",
                ResultPage {
                    before: None,
                    limit: 10
                }
            )
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store.api_checks().await.unwrap(),
        [check("auth", "https://b.example", 1)]
    );
}

async fn silences_are_in_force_until_they_end<S: Backend>(store: &S) {
    let silence = |check: &str, until: i64| Silence {
        check: check.to_owned(),
        until: ts(until),
        reason: Some(format!("{check} maintenance")),
    };
    store.set_silence(&silence("db", 3_600)).await.unwrap();
    store.set_silence(&silence("api", 600)).await.unwrap();
    assert_eq!(
        store.silences(ts(0)).await.unwrap(),
        [silence("api", 600), silence("db", 3_600)]
    );
    assert_eq!(store.silences(ts(600)).await.unwrap(), [silence("db", 3_600)]);
    store.set_silence(&silence("db", -1)).await.unwrap();
    store.set_silence(&silence("api", 7_200)).await.unwrap();
    assert_eq!(store.silences(ts(0)).await.unwrap(), [silence("api", 7_200)]);
}

async fn latency_and_daily_bars_before_and_after_compaction<S: Backend>(store: &S) {
    let mut events = vec![register(&["api"])];
    // Day -1: 24 runs (one an hour), 4 down; today hours 0-1: 12 runs, 1 down.
    for h in 0..24 {
        let outcome = if h < 4 { Outcome::Down } else { Outcome::Up };
        events.push(result_event("api", outcome, ts(-86_400 + h * 3600 + 60), 20));
    }
    for i in 0..12 {
        let outcome = if i == 0 { Outcome::Down } else { Outcome::Up };
        events.push(result_event("api", outcome, ts(i * 600), 40));
    }
    let now = ts(2 * 3600 + 15 * 60);
    store.write(&events, now).await.unwrap();
    daily_and_latency_of_api(store, now).await;
    let report = store.compact(now, &Retention::default()).await.unwrap();
    assert_eq!(report.hours_aggregated, 26, "{report:?}");
    daily_and_latency_of_api(store, now).await;
}

/// Asserts the daily bars and the latency series of `latency_and_daily_bars_...`'s data.
async fn daily_and_latency_of_api<S: Backend>(store: &S, now: jiff::Timestamp) {
    let days = store.daily_uptime("api", ts(-2 * 86_400), now).await.unwrap();
    let flat: Vec<(jiff::Timestamp, u64, u64)> = days.iter().map(|d| (d.day, d.runs, d.up)).collect();
    assert_eq!(flat, [(ts(-86_400), 24, 20), (ts(0), 12, 11)]);
    let series = store.latency_series("api", ts(0), now).await.unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!((series[0].hour, series[0].runs, series[0].up), (ts(0), 6, 5));
    assert_eq!(series[0].mean_ms, Some(40.0));
    assert_eq!(series[0].dns_ms, Some(1.5));
    assert_eq!(series[0].ttfb_ms, Some(20.0));
}

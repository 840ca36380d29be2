//! The store as [`Console`]: the check list, uptimes, daily bars, latency, incidents with
//! updates, the outbox, API checks and silences, against a real SQLite file.

use std::time::Duration;

use pulsecheck_core::outbox::{AlertKind, DeliveryState, Outbox};
use pulsecheck_core::state::State;
use pulsecheck_core::storage::console::{
    ApiCheck, CheckFilter, CheckPage, Console, GroupCounts, IncidentStatus, Origin, OutboxPage, Silence,
};
use pulsecheck_core::storage::history::{History, SpanPage, Uptime};
use pulsecheck_core::Outcome;
use pulsecheck_store::{CheckMeta, DailyAggregate, HourlyAggregate, Retention, Store, WriteEvent};

use crate::common::*;

fn meta(name: &str, group: Option<&str>, origin: Origin) -> CheckMeta {
    CheckMeta {
        name: name.to_owned(),
        group: group.map(str::to_owned),
        target: format!("https://{name}.example"),
        origin,
    }
}

/// Every page of `filter`, `limit` at a time, as names.
async fn all_pages(store: &Store, filter: CheckFilter, limit: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
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
            return pages;
        }
        assert!(page.len() <= limit);
        after = page.last().map(|c| c.name.clone());
        pages.push(page.into_iter().map(|c| c.name).collect());
    }
}

/// Seven checks in two groups (and one without), two from the API, one retired, two
/// down (one with a dead notification and a silence).
async fn checks_fixture(store: &Store) {
    let checks = vec![
        meta("api", Some("web"), Origin::File),
        meta("auth", Some("web"), Origin::Api),
        meta("billing", Some("backend"), Origin::File),
        meta("cache", Some("backend"), Origin::File),
        meta("db", Some("backend"), Origin::Api),
        meta("edge", None, Origin::File),
        meta("old", Some("web"), Origin::File),
    ];
    store
        .write(
            &[WriteEvent::RegisterChecks {
                checks,
                retire_others: false,
            }],
            ts(0),
        )
        .await
        .unwrap();
    // "old" leaves the config: every other check is registered again.
    let keep: Vec<CheckMeta> = ["api", "auth", "billing", "cache", "db", "edge"]
        .iter()
        .map(|n| {
            let origin = if ["auth", "db"].contains(n) {
                Origin::Api
            } else {
                Origin::File
            };
            let group = match *n {
                "api" | "auth" => Some("web"),
                "edge" => None,
                _ => Some("backend"),
            };
            meta(n, group, origin)
        })
        .collect();
    store
        .write(
            &[
                WriteEvent::RegisterChecks {
                    checks: keep,
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
}

#[tokio::test]
async fn check_pages_follow_names_with_filters_and_show_each_checks_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    checks_fixture(&store).await;

    assert_eq!(
        all_pages(&store, CheckFilter::default(), 2).await,
        [vec!["api", "auth"], vec!["billing", "cache"], vec!["db", "edge"]]
    );
    let retired_too = CheckFilter {
        include_retired: true,
        ..Default::default()
    };
    assert_eq!(all_pages(&store, retired_too, 4).await.concat().len(), 7);
    let backend = CheckFilter {
        group: Some("backend".into()),
        ..Default::default()
    };
    assert_eq!(all_pages(&store, backend, 1).await.concat(), ["billing", "cache", "db"]);
    let down = CheckFilter {
        state: Some(State::Down),
        ..Default::default()
    };
    assert_eq!(all_pages(&store, down, 1).await.concat(), ["cache", "db"]);
    let api_down = CheckFilter {
        state: Some(State::Down),
        origin: Some(Origin::Api),
        ..Default::default()
    };
    assert_eq!(all_pages(&store, api_down, 5).await.concat(), ["db"]);
    let files = CheckFilter {
        origin: Some(Origin::File),
        ..Default::default()
    };
    assert_eq!(
        all_pages(&store, files, 10).await.concat(),
        ["api", "billing", "cache", "edge"]
    );
    let none = CheckPage {
        limit: 0,
        ..Default::default()
    };
    assert!(store.check_page(&none).await.unwrap().is_empty());

    // The db check's notifications: one delivered, one dead; a silence in force.
    let due = store.due(ts(30), 100).await.unwrap();
    let db_rows: Vec<_> = due.iter().filter(|n| n.event.check == "db").collect();
    assert_eq!(db_rows.len(), 2);
    store.dead(db_rows[0].id, 3, "410 Gone".into()).await.unwrap();
    let later = jiff::Timestamp::now() + Duration::from_secs(3600);
    store
        .set_silence(&Silence {
            check: "db".into(),
            until: later,
            reason: Some("maintenance".into()),
        })
        .await
        .unwrap();

    let db = store.check_summary("db").await.unwrap().unwrap();
    assert_eq!((db.state, db.origin, db.active), (State::Down, Origin::Api, true));
    assert_eq!(db.group.as_deref(), Some("backend"));
    assert_eq!(db.since, Some(ts(20)));
    assert_eq!(db.last_outcome, Some(Outcome::Down));
    assert_eq!(db.last_reason, Some(pulsecheck_core::Reason::Timeout));
    let incident = store
        .down_spans(&SpanPage {
            check: Some("db".into()),
            before_id: None,
            limit: 1,
        })
        .await
        .unwrap()
        .remove(0);
    assert_eq!(db.open_incident, Some(incident.id));
    assert_eq!(
        db.silenced_until.map(|t| t.as_millisecond()),
        Some(later.as_millisecond())
    );
    assert_eq!((db.pending_notifications, db.dead_notifications), (1, 1));

    let api = store.check_summary("api").await.unwrap().unwrap();
    assert_eq!(
        (api.state, api.origin, api.open_incident),
        (State::Up, Origin::File, None)
    );
    assert_eq!((api.silenced_until, api.last_duration_ms), (None, Some(10.0)));
    let old = store.check_summary("old").await.unwrap().unwrap();
    assert!(!old.active);
    assert_eq!(old.state, State::Unknown);
    assert_eq!(store.check_summary("nope").await.unwrap(), None);
}

#[tokio::test]
async fn group_counts_count_active_checks_by_state_with_no_group_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    checks_fixture(&store).await;
    assert_eq!(
        store.group_counts().await.unwrap(),
        [
            GroupCounts {
                group: None,
                up: 0,
                down: 0,
                unknown: 1
            },
            GroupCounts {
                group: Some("backend".into()),
                up: 1,
                down: 2,
                unknown: 0
            },
            // "old" is retired and not counted.
            GroupCounts {
                group: Some("web".into()),
                up: 1,
                down: 0,
                unknown: 1
            },
        ]
    );
}

/// Three checks with runs every 10 minutes over three days (api has cancelled runs
/// too, idle none); returns "now".
async fn write_history(store: &Store) -> jiff::Timestamp {
    let mut events = vec![register(&["api", "db", "idle"])];
    for i in 0..(3 * 24 * 6) {
        let at = ts(-2 * 86_400 + i * 600);
        let api = if i % 7 == 3 { Outcome::Down } else { Outcome::Up };
        let db = if i % 3 == 0 { Outcome::Down } else { Outcome::Up };
        events.push(result_event("api", api, at, 10 + (i as u64 % 5)));
        events.push(result_event("db", db, at, 20));
        if i % 50 == 0 {
            events.push(result_event(
                "api",
                Outcome::Cancelled,
                ts(-2 * 86_400 + i * 600 + 1),
                1,
            ));
        }
    }
    let now = ts(86_400 - 60);
    store.write(&events, now).await.unwrap();
    now
}

/// Aggregates every complete hour and keeps raw up results for two hours only.
async fn compact(store: &Store, now: jiff::Timestamp) {
    let retention = Retention {
        raw_days: 1,
        raw_up_hours: 2,
        hourly_days: 90,
        daily_days: 400,
    };
    store.compact_with(now, &retention).await.unwrap();
}

async fn history_fixture(store: &Store) -> jiff::Timestamp {
    let now = write_history(store).await;
    compact(store, now).await;
    now
}

#[tokio::test]
async fn uptimes_are_exact_to_the_hour_from_raw_hourly_and_daily_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let now = write_history(&store).await;
    let hour = |h: i64| ts(h * 3_600);
    // Windows that start on an hour (aggregates are exact to the hour) and end on one
    // or after the aggregated hours: within a day, across days, whole days, all.
    let windows: Vec<(jiff::Timestamp, jiff::Timestamp)> = vec![
        (hour(-48), now),
        (hour(-100), now),
        (hour(-47), hour(-30)),
        (hour(-30), hour(-26)),
        (hour(-24), hour(0)),
        (hour(-45), hour(3)),
        (hour(-3), now),
        (hour(22), now),
        (hour(-2_160), now),
        // The hours deleted below, as seen from windows 0, 2 and 5.
        (hour(-48), hour(-36)),
        (hour(-47), hour(-36)),
        (hour(-45), hour(-36)),
    ];
    let checks: Vec<String> = ["db", "nope", "api", "idle", "api"].map(str::to_owned).to_vec();
    // Before compaction every run is raw: the truth.
    let truth = store.uptimes(&checks, &windows).await.unwrap();
    assert_eq!(truth.len(), checks.len());
    assert_eq!(truth[1], vec![Uptime::default(); windows.len()], "unknown check");
    assert_eq!(truth[3], vec![Uptime::default(); windows.len()], "a check without runs");
    assert_eq!(truth[2], truth[4], "the same check twice");
    assert_eq!(truth[2][0].runs, 3 * 24 * 6, "every run, cancelled ones left out");
    assert!(truth[0][0].up < truth[0][0].runs);

    let path = dir.path().join("state/pulsecheck.db");
    compact(&store, now).await;
    assert!(
        store.result_count(Some("api")).await.unwrap() < 200,
        "raw up results were pruned"
    );
    let compacted = store.uptimes(&checks, &windows).await.unwrap();
    assert_eq!(compacted, truth, "hourly and daily rows");
    // Without the hourly rows of the oldest day and a half, whole days come from the
    // daily rows and the rest of the cut day from its hours.
    side_sql(
        &path,
        &format!("DELETE FROM hourly WHERE hour < {}", hour(-36).as_millisecond()),
    )
    .await;
    let cut = store.uptimes(&checks, &windows).await.unwrap();
    let minus = |a: Uptime, b: Uptime| Uptime {
        runs: a.runs - b.runs,
        up: a.up - b.up,
    };
    for check in [0, 2] {
        let (t, c) = (&truth[check], &cut[check]);
        for w in [3, 4, 6, 7] {
            assert_eq!(c[w], t[w], "check {check}, window {w}: untouched hours");
        }
        for w in [0, 1, 8, 9] {
            assert_eq!(c[w], minus(t[w], t[9]), "check {check}, window {w}");
        }
        assert_eq!(c[2], minus(t[2], t[10]), "check {check}, window 2");
        assert_eq!(c[5], minus(t[5], t[11]), "check {check}, window 5");
        assert!(c[0].runs < t[0].runs);
    }

    // The single-check History read is the same query.
    for (name, row) in checks.iter().zip(&cut) {
        for ((since, until), cell) in windows.iter().zip(row) {
            assert_eq!(store.uptime(name, *since, *until).await.unwrap(), *cell);
        }
    }
    assert!(store.uptimes(&[], &windows).await.unwrap().is_empty());
    assert_eq!(
        store.uptimes(&checks, &[]).await.unwrap(),
        vec![Vec::<Uptime>::new(); 5]
    );
}

#[tokio::test]
async fn daily_bars_add_up_to_the_uptime_of_whole_days() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let now = history_fixture(&store).await;
    let since = ts(-10 * 86_400);
    let days = store.daily_uptime("api", since, now).await.unwrap();
    assert_eq!(
        days.iter().map(|d| d.day).collect::<Vec<_>>(),
        [ts(-2 * 86_400), ts(-86_400), ts(0)]
    );
    for day in &days {
        let uptime = store
            .uptime("api", day.day, (day.day + Duration::from_secs(86_400)).min(now))
            .await
            .unwrap();
        assert_eq!((day.runs, day.up), (uptime.runs, uptime.up), "{}", day.day);
        assert!(day.runs >= 140, "{day:?}");
    }
    let total = store.uptime("api", since, now).await.unwrap();
    assert_eq!(days.iter().map(|d| d.runs).sum::<u64>(), total.runs);
    // A batch answers in the order asked, with nothing for an unknown check.
    let names = ["nope".to_owned(), "api".to_owned(), "api".to_owned()];
    assert_eq!(
        store.daily_uptimes(&names, since, now).await.unwrap(),
        [Vec::new(), days.clone(), days.clone()]
    );

    // Once the hours are gone, the daily rows give the same bars.
    side_sql(
        &dir.path().join("state/pulsecheck.db"),
        &format!("DELETE FROM hourly WHERE hour < {}", ts(0).as_millisecond()),
    )
    .await;
    assert_eq!(store.daily_uptime("api", since, now).await.unwrap(), days);
    assert!(store.daily_uptime("nope", since, now).await.unwrap().is_empty());
    assert!(store
        .daily_uptime("api", ts(-20 * 86_400), ts(-10 * 86_400))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn latency_series_has_phase_means_before_and_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    // Hour 0: six up runs of 10..15 ms (ttfb half of it) and one down; hour 1: three up.
    let mut events = vec![register(&["api"])];
    for i in 0..6 {
        events.push(result_event("api", Outcome::Up, ts(i * 600), 10 + i as u64));
    }
    events.push(result_event("api", Outcome::Down, ts(3_599), 5_000));
    for i in 0..3 {
        events.push(result_event("api", Outcome::Up, ts(3_600 + i * 600), 20));
    }
    store.write(&events, ts(7_200)).await.unwrap();

    let before = store.latency_series("api", ts(-3_600), ts(7_200)).await.unwrap();
    let after_compaction = |store: Store| async move {
        store.compact(ts(2 * 3_600 + 11 * 60), 7, 90).await.unwrap();
        store.latency_series("api", ts(-3_600), ts(7_200)).await.unwrap()
    };
    for (label, series) in [("raw", before), ("hourly", after_compaction(store.clone()).await)] {
        assert_eq!(series.len(), 2, "{label}: {series:?}");
        let (h0, h1) = (&series[0], &series[1]);
        assert_eq!((h0.hour, h0.runs, h0.up), (ts(0), 7, 6), "{label}");
        assert_eq!(h0.mean_ms, Some(12.5), "{label}");
        assert_eq!(h0.dns_ms, Some(1.5), "{label}");
        assert_eq!(h0.connect_ms, Some(2.0), "{label}");
        assert_eq!(h0.ttfb_ms, Some(6.0), "{label}: ttfb of 5, 5, 6, 6, 7, 7 ms");
        assert_eq!((h0.tls_ms, h0.transfer_ms), (None, None), "{label}");
        assert_eq!(
            (h1.hour, h1.runs, h1.up, h1.mean_ms),
            (ts(3_600), 3, 3, Some(20.0)),
            "{label}"
        );
        assert_eq!(h1.ttfb_ms, Some(10.0), "{label}");
    }
    // The hourly rows hold the means; a newer raw hour is summed from raw results.
    let hourly = store.hourly("api").await.unwrap();
    assert_eq!(hourly[0].ttfb_ms, Some(6.0));
    store
        .write(&[result_event("api", Outcome::Up, ts(2 * 3_600 + 60), 30)], ts(7_300))
        .await
        .unwrap();
    let series = store.latency_series("api", ts(0), ts(3 * 3_600)).await.unwrap();
    assert_eq!(series.len(), 3);
    assert_eq!(
        (series[2].hour, series[2].mean_ms, series[2].ttfb_ms),
        (ts(7_200), Some(30.0), Some(15.0))
    );
    assert!(store.latency_series("nope", ts(0), ts(7_200)).await.unwrap().is_empty());
}

#[tokio::test]
async fn percentiles_are_exact_over_raw_results_and_weighted_over_pruned_hours() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    // Hour 0: 100 up runs of 1..=100 ms. Hour 5: 10 up runs of 200 ms.
    let mut events = vec![register(&["api"])];
    for i in 0..100 {
        events.push(result_event("api", Outcome::Up, ts(i * 30), 1 + i as u64));
    }
    events.push(result_event("api", Outcome::Down, ts(3_010), 9_000));
    for i in 0..10 {
        events.push(result_event("api", Outcome::Up, ts(5 * 3_600 + i * 60), 200));
    }
    let now = ts(6 * 3_600);
    store.write(&events, now).await.unwrap();

    let exact = store.latency_percentiles("api", ts(0), now).await.unwrap().unwrap();
    assert_eq!(exact.runs, 110);
    assert_eq!((exact.p50_ms, exact.p95_ms, exact.p99_ms), (55.0, 200.0, 200.0));
    let first_hour = store
        .latency_percentiles("api", ts(0), ts(3_600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first_hour.p50_ms, first_hour.p95_ms, first_hour.p99_ms),
        (50.0, 95.0, 99.0)
    );
    assert_eq!(first_hour.mean_ms, 50.5);

    // Aggregated but still raw: the same exact figures.
    store.compact(now + Duration::from_secs(3_600), 7, 90).await.unwrap();
    assert_eq!(
        store.latency_percentiles("api", ts(0), now).await.unwrap().unwrap(),
        exact
    );

    // Hour 0's up results pruned: its hourly percentiles, weighted by its up runs.
    side_sql(
        &dir.path().join("state/pulsecheck.db"),
        &format!(
            "DELETE FROM results WHERE started_at < {} AND kind & 3 = 0",
            ts(3_600).as_millisecond()
        ),
    )
    .await;
    let mixed = store.latency_percentiles("api", ts(0), now).await.unwrap().unwrap();
    assert_eq!(mixed.runs, 110);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(close(mixed.p50_ms, (100.0 * 50.0 + 10.0 * 200.0) / 110.0), "{mixed:?}");
    assert!(close(mixed.p99_ms, (100.0 * 99.0 + 10.0 * 200.0) / 110.0), "{mixed:?}");
    assert!(close(mixed.mean_ms, exact.mean_ms), "{mixed:?} {exact:?}");
    assert_eq!(
        store
            .latency_percentiles("api", ts(3_600), ts(4 * 3_600))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.latency_percentiles("nope", ts(0), now).await.unwrap(), None);
}

#[tokio::test]
async fn incidents_carry_updates_and_an_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
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
    assert!(incidents
        .iter()
        .all(|i| i.updates.is_empty() && i.acknowledged_at.is_none()));

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
    assert_eq!(acked.updates, [first.clone(), second.clone()]);
    // A second acknowledgement keeps the first time.
    let again = store.acknowledge_incident(db, ts(99)).await.unwrap().unwrap();
    assert_eq!(again.acknowledged_at, Some(ts(45)));
    assert_eq!(store.acknowledge_incident(9_999, ts(1)).await.unwrap(), None);

    let incidents = store.incident_page(&page).await.unwrap();
    assert_eq!(incidents[0], again);
    assert_eq!(incidents[1].updates.len(), 1);
    assert_eq!(incidents[1].updates[0].message, "fixed");
    assert_eq!(incidents[1].span.ended_at, Some(ts(30)));
    assert_eq!(store.incident(api).await.unwrap().unwrap(), incidents[1]);
    assert_eq!(store.incident(9_999).await.unwrap(), None);
    let of_api = store
        .incident_page(&SpanPage {
            check: Some("api".into()),
            before_id: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(of_api, [incidents[1].clone()]);
}

#[tokio::test]
async fn outbox_pages_come_newest_first_and_a_dead_row_can_be_redelivered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
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
    let mut ids = Vec::new();
    let mut before_id = None;
    loop {
        let page = store
            .outbox_page(&OutboxPage {
                before_id,
                limit: 3,
                ..Default::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before_id = Some(last.id);
        ids.extend(page.iter().map(|n| n.id));
    }
    assert_eq!(ids.len(), 4);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    // api's first hook alert dies; the next one in its queue is delivered.
    let head = store.due(ts(30), 10).await.unwrap();
    let api_hook = head
        .iter()
        .find(|n| n.event.check == "api" && n.channel == "hook")
        .unwrap()
        .id;
    store.dead(api_hook, 5, "410 Gone".into()).await.unwrap();
    let next = store
        .due(ts(30), 10)
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.event.check == "api" && n.channel == "hook")
        .unwrap();
    assert_eq!(next.event.kind, AlertKind::Resolved);
    store.delivered(next.id, 1, ts(31)).await.unwrap();

    let dead = store
        .outbox_page(&OutboxPage {
            check: Some("api".into()),
            state: Some(DeliveryState::Dead),
            before_id: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(dead.iter().map(|n| n.id).collect::<Vec<_>>(), [api_hook]);
    assert_eq!(dead[0].attempts, 5);

    let redelivered = store.redeliver(api_hook, ts(60)).await.unwrap().unwrap();
    assert_eq!(redelivered.state, DeliveryState::Pending);
    assert_eq!((redelivered.attempts, redelivered.next_attempt_at), (0, ts(60)));
    assert_eq!(
        redelivered.last_error.as_deref(),
        Some("410 Gone"),
        "kept for the record"
    );
    let due = store.due(ts(60), 10).await.unwrap();
    assert!(due.iter().any(|n| n.id == api_hook), "back in its queue");
    assert!(store.due(ts(59), 10).await.unwrap().iter().all(|n| n.id != api_hook));

    // A delivered row stays delivered; an unknown id is None.
    let delivered = store.redeliver(next.id, ts(60)).await.unwrap().unwrap();
    assert_eq!((delivered.state, delivered.attempts), (DeliveryState::Delivered, 1));
    assert_eq!(store.redeliver(9_999, ts(60)).await.unwrap(), None);
    let pending_db = store
        .outbox_page(&OutboxPage {
            check: Some("db".into()),
            state: Some(DeliveryState::Pending),
            before_id: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(pending_db.len(), 1);
    assert_eq!(pending_db[0].channel, "hook");
}

#[tokio::test]
async fn api_checks_are_put_replaced_deleted_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
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

    // Registered by the monitor as an API check, then deleted: retired, history kept.
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
    assert_eq!(store.results("web", 10).await.unwrap().len(), 1);

    store.close().await;
    let store = open(&dir).await;
    let stored = store.api_checks().await.unwrap();
    assert_eq!(stored, [check("auth", "https://b.example", 1)]);
}

#[tokio::test]
async fn silences_are_in_force_until_they_end_and_can_be_lifted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
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
    // Lifted by an end in the past, extended by a later one.
    store.set_silence(&silence("db", -1)).await.unwrap();
    store.set_silence(&silence("api", 7_200)).await.unwrap();
    assert_eq!(store.silences(ts(0)).await.unwrap(), [silence("api", 7_200)]);
}

#[tokio::test]
async fn a_version_2_database_migrates_to_version_3() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    for file in ["0001_initial.sql", "0002_compact_results.sql"] {
        std::fs::copy(
            format!("{}/migrations/{file}", env!("CARGO_MANIFEST_DIR")),
            migrations.join(file),
        )
        .unwrap();
    }
    {
        use sqlx::Connection;
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::migrate::Migrator::new(migrations.as_path())
            .await
            .unwrap()
            .run(&mut conn)
            .await
            .unwrap();
        sqlx::query(&format!(
            "INSERT INTO checks (name, check_group, target, state, since, updated_at)
                 VALUES ('api', 'web', 'https://api.example', 'down', {t0}, 0);
             INSERT INTO check_ids (name) VALUES ('api');
             INSERT INTO hourly (check_id, hour, count, up_count, mean_us, p50_us, p95_us, p99_us)
                 VALUES (1, {h0}, 10, 9, 12500, 12000, 20000, 21000);
             INSERT INTO daily (check_id, day, count, up_count, mean_us) VALUES (1, {t0}, 10, 9, 12500);
             INSERT INTO store_meta (key, value) VALUES ('hourly_aggregated_through', {h1});
             INSERT INTO transitions (check_name, from_state, to_state, at, cause)
                 VALUES ('api', 'up', 'down', {t0}, '[]');
             INSERT INTO incidents (check_name, started_at, opened_by) VALUES ('api', {t0}, 1);",
            t0 = ts(0).as_millisecond(),
            h0 = ts(0).as_millisecond(),
            h1 = ts(3_600).as_millisecond(),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }

    let store = Store::open(&path).await.unwrap();
    let api = store.check_summary("api").await.unwrap().unwrap();
    assert_eq!((api.origin, api.state, api.active), (Origin::File, State::Down, true));
    assert_eq!(api.open_incident, Some(1));
    let series = store.latency_series("api", ts(0), ts(3_600)).await.unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!((series[0].runs, series[0].up, series[0].mean_ms), (10, 9, Some(12.5)));
    assert_eq!(
        series[0].dns_ms, None,
        "hours aggregated before version 3 have no phases"
    );
    assert_eq!(
        store.uptimes(&["api".to_owned()], &[(ts(0), ts(3_600))]).await.unwrap(),
        [[Uptime { runs: 10, up: 9 }]]
    );
    let incident = store.incident(1).await.unwrap().unwrap();
    assert_eq!((incident.acknowledged_at, incident.updates.len()), (None, 0));
    assert!(store.api_checks().await.unwrap().is_empty());
    assert!(store.silences(ts(0)).await.unwrap().is_empty());
    assert!(store.integrity_check().await.unwrap());
}

fn hour_rows(check: &str, hours: i64, end: jiff::Timestamp) -> Vec<HourlyAggregate> {
    (0..hours)
        .map(|h| HourlyAggregate {
            check: check.to_owned(),
            hour: end - Duration::from_secs(3_600 * (hours - h) as u64),
            count: 600,
            up_count: 600 - (h % 3) as u64,
            mean_ms: Some(42.0),
            p50_ms: Some(40.0),
            p95_ms: Some(80.0),
            p99_ms: Some(120.0),
            dns_ms: Some(1.0),
            connect_ms: Some(2.0),
            tls_ms: Some(3.0),
            ttfb_ms: Some(30.0),
            transfer_ms: Some(0.5),
        })
        .collect()
}

#[tokio::test]
async fn imported_aggregates_count_as_aggregated() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let end = ts(30 * 86_400);
    store.insert_hourly(&hour_rows("api", 48, end)).await.unwrap();
    store
        .insert_daily(&[DailyAggregate {
            check: "api".into(),
            day: ts(0),
            count: 100,
            up_count: 90,
            mean_ms: Some(50.0),
        }])
        .await
        .unwrap();
    let day = Duration::from_secs(86_400);
    let up: u64 = (0..24).map(|h| 600 - (h % 3)).sum();
    assert_eq!(
        store.uptime("api", end - day, end).await.unwrap(),
        Uptime { runs: 24 * 600, up },
        "the last 24 of 48 hours"
    );
    assert_eq!(
        store.uptime("api", ts(0), end).await.unwrap().runs,
        48 * 600 + 100,
        "the daily row of a day before the oldest hour counts"
    );
    let series = store.latency_series("api", end - day, end).await.unwrap();
    assert_eq!(series.len(), 24);
    assert_eq!((series[0].dns_ms, series[0].transfer_ms), (Some(1.0), Some(0.5)));
    // Re-importing replaces instead of adding.
    store.insert_hourly(&hour_rows("api", 48, end)).await.unwrap();
    assert_eq!(store.uptime("api", end - day, end).await.unwrap().runs, 24 * 600);
    store.insert_hourly(&[]).await.unwrap();
}

/// The console reads walk an index or a key: none scans results, the aggregates,
/// incidents, their updates or the outbox.
#[tokio::test]
async fn console_queries_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.write(&[register(&["api"])], ts(0)).await.unwrap();
    let plans = store.console_query_plans().await.unwrap();
    assert!(plans.len() > 10);
    const TABLES: [&str; 14] = [
        "results",
        "hourly",
        "daily",
        "incidents",
        "incident_updates",
        "transitions",
        "r",
        "h",
        "d",
        "oh",
        "i",
        "t",
        "s",
        "k",
    ];
    for (query, plan) in plans {
        for line in plan.lines() {
            let scanned = line
                .trim()
                .strip_prefix("SCAN ")
                .and_then(|rest| rest.split_whitespace().next());
            let full_scan = scanned.is_some_and(|table| TABLES.contains(&table)) && !line.contains("USING");
            assert!(!full_scan, "{query}: full scan in\n{plan}");
            // The outbox is only ever walked through its key or an index.
            assert!(
                !line.contains("SCAN notifications") || line.contains("USING"),
                "{query}: outbox scan in\n{plan}"
            );
        }
    }
}

/// 10,000 checks with 30 days of hourly aggregates: seeding and the uptimes of a page of
/// 100 checks over 24 h, 7 d, 30 d and 90 d. Prints the figures; run with `cargo test
/// -p pulsecheck-store --test it --release -- --ignored --nocapture uptimes_bench` (or,
/// reusing the debug build, with `--config 'profile.dev.package.pulsecheck-store.opt-level=3'
/// --config 'profile.dev.package.libsqlite3-sys.opt-level=3'` instead of `--release`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: seeds 7.2 million hourly rows"]
async fn uptimes_bench_10000_checks_30_days() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let end = ts(90 * 86_400);
    let started = std::time::Instant::now();
    let names: Vec<String> = (0..10_000).map(|i| format!("check-{i:05}")).collect();
    for chunk in names.chunks(100) {
        let rows: Vec<HourlyAggregate> = chunk.iter().flat_map(|n| hour_rows(n, 30 * 24, end)).collect();
        store.insert_hourly(&rows).await.unwrap();
    }
    let seeded = started.elapsed();
    let windows: Vec<_> = [1, 7, 30, 90]
        .iter()
        .map(|d| (end - Duration::from_secs(86_400 * d), end))
        .collect();
    let page: Vec<String> = names[5_000..5_100].to_vec();
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let uptimes = store.uptimes(&page, &windows).await.unwrap();
        times.push(started.elapsed());
        assert_eq!(uptimes[0][2].runs, 30 * 24 * 600);
    }
    times.sort();
    println!(
        "seeded 10,000 checks x 720 hours in {:.1} s; uptimes of 100 checks x 4 windows: median {:.1} ms, max {:.1} ms",
        seeded.as_secs_f64(),
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0
    );
}

/// Uptime reads whole days from daily rows, so compaction never drops a day's row
/// before its hours, whatever the configured tiers.
#[tokio::test]
async fn daily_rows_stay_as_long_as_their_hours() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let now = write_history(&store).await;
    let windows = [(ts(-2 * 86_400), now)];
    let checks = ["api".to_owned()];
    let truth = store.uptimes(&checks, &windows).await.unwrap();
    let retention = Retention {
        raw_days: 1,
        raw_up_hours: 1,
        hourly_days: 30,
        daily_days: 1,
    };
    let later = now + Duration::from_secs(5 * 86_400);
    let report = store.compact_with(later, &retention).await.unwrap();
    assert_eq!((report.hourly_deleted, report.daily_deleted), (0, 0));
    assert_eq!(store.daily("api").await.unwrap().len(), 3);
    assert_eq!(store.uptimes(&checks, &windows).await.unwrap(), truth);
    // Once the hours go, the days may go too.
    let much_later = now + Duration::from_secs(40 * 86_400);
    let report = store.compact_with(much_later, &retention).await.unwrap();
    assert!(report.hourly_deleted > 0 && report.daily_deleted > 0, "{report:?}");
}

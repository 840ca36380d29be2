//! The store on a real SQLite file: atomic transitions, outbox ordering, state,
//! status, incidents and compaction.

use crate::common::*;
use pulsecheck_core::outbox::{AlertKind, DeliveryState, Outbox};
use pulsecheck_core::state::State;
use pulsecheck_core::Outcome;
use pulsecheck_store::{NotificationFilter, Retention, RunRecord, Store, StoreError, StoreOptions, WriteEvent};

fn pending_keys(notifications: &[pulsecheck_core::outbox::Notification]) -> Vec<String> {
    notifications.iter().map(|n| n.event.idempotency_key.clone()).collect()
}

#[tokio::test]
async fn a_transition_and_its_notifications_commit_together_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    side_sql(
        store.path(),
        "CREATE TRIGGER fail_boom BEFORE INSERT ON notifications WHEN NEW.channel = 'boom'
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    )
    .await;

    let event = transition("api", State::Up, State::Down, ts(10), &["hook", "slack", "boom"]);
    let error = store.write(std::slice::from_ref(&event), ts(10)).await.unwrap_err();
    assert!(error.to_string().contains("pulsecheck.db"), "{error}");
    assert!(store.transitions(None, 10).await.unwrap().is_empty());
    assert!(store
        .notifications(&NotificationFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert!(
        store.load_states().await.unwrap().is_empty(),
        "the state upsert rolled back too"
    );
    assert!(store.incidents(None).await.unwrap().is_empty());

    side_sql(store.path(), "DROP TRIGGER fail_boom").await;
    store.write(&[event], ts(10)).await.unwrap();
    let transitions = store.transitions(None, 10).await.unwrap();
    assert_eq!(transitions.len(), 1);
    let rows = store.notifications(&NotificationFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.transition_id == Some(transitions[0].id)));
    assert!(rows
        .iter()
        .all(|r| r.state == DeliveryState::Pending && r.attempts == 0));
    assert_eq!(rows[0].created_at, ts(10));
    assert_eq!(store.load_states().await.unwrap()["api"].state, State::Down);
    assert!(store.integrity_check().await.unwrap());
}

/// api: down (hook, slack, pager) then resolved (hook, slack); db: down (hook).
async fn outbox_fixture(store: &Store) {
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

#[tokio::test]
async fn due_returns_one_head_per_check_and_channel_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    outbox_fixture(&store).await;

    let due = store.due(ts(30), 100).await.unwrap();
    assert_eq!(
        pending_keys(&due),
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
        pending_keys(&due),
        [
            "api:down:10:pager",
            "db:down:20:hook",
            "api:up:30:hook",
            "api:up:30:slack"
        ]
    );
    let delivered = store
        .notifications(&NotificationFilter {
            state: Some(DeliveryState::Delivered),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[0].delivered_at, Some(ts(31)));
    assert_eq!(delivered[0].attempts, 1);
}

#[tokio::test]
async fn retry_at_blocks_its_own_queue_but_not_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    outbox_fixture(&store).await;

    let head = store.due(ts(30), 1).await.unwrap().remove(0);
    assert_eq!(head.event.idempotency_key, "api:down:10:hook");
    store
        .retry_at(head.id, 1, ts(90), "503 Service Unavailable".into())
        .await
        .unwrap();

    // The resolved notice for api/hook must wait behind the down notice.
    let due = store.due(ts(60), 100).await.unwrap();
    assert_eq!(
        pending_keys(&due),
        ["api:down:10:slack", "api:down:10:pager", "db:down:20:hook"]
    );
    assert_eq!(store.next_due().await.unwrap(), Some(ts(30)));
    for n in &due {
        store.delivered(n.id, 1, ts(60)).await.unwrap();
    }
    let due = store.due(ts(60), 100).await.unwrap();
    assert_eq!(pending_keys(&due), ["api:up:30:slack"]);
    store.delivered(due[0].id, 1, ts(60)).await.unwrap();
    // What is left is api/hook: the retried head (90) and the resolved notice behind it
    // (30). next_due answers with the head's time, so a worker sleeping until then does
    // not spin on a notification that is blocked.
    assert!(store.due(ts(60), 100).await.unwrap().is_empty());
    assert_eq!(store.next_due().await.unwrap(), Some(ts(90)));

    let due = store.due(ts(90), 100).await.unwrap();
    assert_eq!(pending_keys(&due), ["api:down:10:hook"]);
    assert_eq!(due[0].attempts, 1);
    assert_eq!(due[0].next_attempt_at, ts(90));
    let row = &store
        .notifications(&NotificationFilter {
            check: Some("api".into()),
            channel: Some("hook".into()),
            ..Default::default()
        })
        .await
        .unwrap()[0];
    assert_eq!(row.last_error.as_deref(), Some("503 Service Unavailable"));
}

#[tokio::test]
async fn retry_channel_now_makes_one_channels_backlog_due_and_keeps_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    outbox_fixture(&store).await;
    // Every head failed once and waits an hour.
    for n in store.due(ts(30), 100).await.unwrap() {
        store.retry_at(n.id, 1, ts(3600), "HTTP 503".into()).await.unwrap();
    }
    assert!(store.due(ts(60), 100).await.unwrap().is_empty());

    // hook's two heads waited; the resolved notice behind api's head was due already.
    assert_eq!(store.retry_channel_now("hook", ts(60)).await.unwrap(), 2);
    let due = store.due(ts(60), 100).await.unwrap();
    assert_eq!(pending_keys(&due), ["api:down:10:hook", "db:down:20:hook"]);
    assert!(due.iter().all(|n| n.attempts == 1), "attempt counts are kept");
    store.delivered(due[0].id, 2, ts(61)).await.unwrap();
    assert_eq!(
        pending_keys(&store.due(ts(61), 100).await.unwrap()),
        ["db:down:20:hook", "api:up:30:hook"],
        "api's resolved notice comes after its down notice"
    );
    // The other channels keep their retry time.
    let others = store
        .notifications(&NotificationFilter {
            state: Some(DeliveryState::Pending),
            ..Default::default()
        })
        .await
        .unwrap();
    let waiting: Vec<&str> = others
        .iter()
        .filter(|r| r.next_attempt_at == ts(3600))
        .map(|r| r.idempotency_key.as_str())
        .collect();
    assert_eq!(waiting, ["api:down:10:slack", "api:down:10:pager"]);
    assert_eq!(store.retry_channel_now("hook", ts(62)).await.unwrap(), 0);
}

#[tokio::test]
async fn dead_letters_stay_visible_and_unblock_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    outbox_fixture(&store).await;

    let head = store.due(ts(30), 1).await.unwrap().remove(0);
    store.dead(head.id, 3, "410 Gone".into()).await.unwrap();
    let due = store.due(ts(30), 100).await.unwrap();
    assert!(pending_keys(&due).contains(&"api:up:30:hook".to_owned()));
    assert!(!pending_keys(&due).contains(&"api:down:10:hook".to_owned()));

    let dead = store
        .notifications(&NotificationFilter {
            state: Some(DeliveryState::Dead),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].idempotency_key, "api:down:10:hook");
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].last_error.as_deref(), Some("410 Gone"));
    assert_eq!(dead[0].event.check, "api");

    let status = status(&store).await;
    let api = status.iter().find(|s| s.name == "api").unwrap();
    assert_eq!(api.dead_notifications, 1);
    assert_eq!(api.pending_notifications, 4);

    // Updating a row that does not exist is an error, not a silent no-op.
    assert!(store.delivered(9_999, 1, ts(40)).await.is_err());
}

#[tokio::test]
async fn duplicate_idempotency_keys_are_ignored_and_empty_keys_are_filled() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
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
    // No key: the store derives one.
    let test_message = WriteEvent::Notify {
        notifications: vec![("slack".into(), alert("notify-test", "", AlertKind::Test, ts(12)))],
    };
    store.write(&[test_message], ts(12)).await.unwrap();

    let rows = store.notifications(&NotificationFilter::default()).await.unwrap();
    let keys: Vec<&str> = rows.iter().map(|r| r.idempotency_key.as_str()).collect();
    let derived = format!("notify-test:test:{}:slack", ts(12).as_millisecond());
    assert_eq!(keys, ["api:reminder:1", "api:down:10:hook", derived.as_str()]);
    assert_eq!(
        rows[2].event.idempotency_key, derived,
        "the payload carries the key too"
    );
    assert_eq!(rows[0].created_at, ts(5), "the first write wins");
}

#[tokio::test]
async fn load_states_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let events = vec![
        result_event("api", Outcome::Up, ts(1), 40),
        result_event("db", Outcome::Down, ts(2), 5_000),
        transition("db", State::Up, State::Down, ts(3), &[]),
        result_event("cache", Outcome::Up, ts(4), 3),
    ];
    store.write(&events, ts(5)).await.unwrap();

    let states = store.load_states().await.unwrap();
    assert_eq!(states.len(), 3);
    let WriteEvent::Run(db) = &events[2] else {
        unreachable!()
    };
    assert_eq!(states["db"], db.state);
    let WriteEvent::Run(api) = &events[0] else {
        unreachable!()
    };
    assert_eq!(states["api"], api.state);
    assert_eq!(states["api"].streak.len(), 1);
    assert_eq!(states["cache"].since, Some(ts(0)));
}

#[tokio::test]
async fn incidents_open_on_down_and_close_on_up_and_status_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .write(
            &[
                register(&["api", "db"]),
                transition("api", State::Up, State::Down, ts(100), &["hook"]),
                result_event("db", Outcome::Up, ts(101), 7),
            ],
            ts(101),
        )
        .await
        .unwrap();

    let incidents = store.incidents(Some("api")).await.unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].started_at, ts(100));
    assert_eq!(incidents[0].ended_at, None);

    let status = status(&store).await;
    assert_eq!(
        status.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["api", "db"]
    );
    let api = &status[0];
    assert_eq!(api.group.as_deref(), Some("web"));
    assert_eq!(api.target, "https://api.example");
    assert!(api.active);
    assert_eq!(api.state, State::Down);
    assert_eq!(api.since, Some(ts(100)));
    assert_eq!(api.last_outcome, Some(Outcome::Down));
    assert_eq!(api.last_reason, Some(pulsecheck_core::Reason::Timeout));
    assert_eq!(api.last_error.as_deref(), Some("no answer within 5 s"));
    assert_eq!(api.last_duration_ms, Some(12.0), "the run that caused the transition");
    assert_eq!(api.last_result_at, Some(ts(100)));
    assert_eq!(api.open_incident, Some(incidents[0].id));
    assert_eq!(api.pending_notifications, 1);
    assert_eq!(status[1].open_incident, None);
    assert_eq!(status[1].last_outcome, Some(Outcome::Up));

    store
        .write(
            &[transition("api", State::Down, State::Up, ts(160), &["hook"])],
            ts(160),
        )
        .await
        .unwrap();
    let incidents = store.incidents(None).await.unwrap();
    let transitions = store.transitions(Some("api"), 10).await.unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].ended_at, Some(ts(160)));
    assert_eq!(incidents[0].opened_by, transitions[0].id);
    assert_eq!(incidents[0].closed_by, Some(transitions[1].id));
    assert_eq!(crate::common::status(&store).await[0].open_incident, None);

    let history = store.results("api", 10).await.unwrap();
    assert_eq!(
        history.len(),
        2,
        "the run that opened the incident and the one that closed it"
    );
    let down = history.iter().find(|r| r.started_at == ts(100)).unwrap();
    assert_eq!(down.http_status, None);
    assert_eq!(down.dns_ms, Some(1.5));
    assert_eq!(down.queue_ms, 0.25);
}

#[tokio::test]
async fn register_checks_updates_metadata_and_retires_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.write(&[register(&["a", "b", "c"])], ts(0)).await.unwrap();
    let reload = WriteEvent::RegisterChecks {
        checks: vec![pulsecheck_store::CheckMeta {
            name: "b".into(),
            group: None,
            target: "tcp://b.example:22".into(),
            origin: Default::default(),
        }],
        retire_others: true,
    };
    store.write(&[reload], ts(1)).await.unwrap();
    let status = status(&store).await;
    let active: Vec<(&str, bool)> = status.iter().map(|s| (s.name.as_str(), s.active)).collect();
    assert_eq!(active, [("a", false), ("b", true), ("c", false)]);
    assert_eq!(status[1].target, "tcp://b.example:22");
    assert_eq!(status[1].group, None);
    assert_eq!(status[1].state, State::Unknown);
}

#[tokio::test]
async fn compaction_aggregates_complete_hours_then_deletes_old_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut events = vec![register(&["api", "db"])];
    // Hour 0: api has 100 up results of 1..=100 ms, 10 down and 5 cancelled ones.
    for i in 0..100 {
        events.push(result_event("api", Outcome::Up, ts(i * 30), 100 - i as u64));
    }
    for i in 0..10 {
        events.push(result_event("api", Outcome::Down, ts(i * 60 + 5), 5_000));
    }
    for i in 0..5 {
        events.push(result_event("api", Outcome::Cancelled, ts(i * 60 + 7), 1));
    }
    // Hour 2: db, only down.
    events.push(result_event("db", Outcome::Down, ts(2 * 3600 + 1), 5_000));
    // Day 3, the current hour: raw rows that must stay.
    let now = ts(3 * 86_400 + 1_800);
    events.push(result_event("api", Outcome::Up, ts(3 * 86_400 + 60), 42));
    store.write(&events, now).await.unwrap();
    assert_eq!(store.result_count(None).await.unwrap(), 117);

    let report = store.compact(now, 1, 30).await.unwrap();
    assert_eq!(
        report.hours_aggregated,
        2,
        "{report:?} {:?}",
        store.hourly("api").await.unwrap()
    );
    assert_eq!(report.hourly_rows_written, 2);
    assert_eq!(report.results_deleted, 116);
    assert_eq!(
        store.result_count(None).await.unwrap(),
        1,
        "the recent raw result stays"
    );

    let api = store.hourly("api").await.unwrap();
    assert_eq!(api.len(), 1);
    assert_eq!(api[0].hour, ts(0));
    assert_eq!((api[0].count, api[0].up_count), (110, 100));
    assert_eq!(
        (api[0].p50_ms, api[0].p95_ms, api[0].p99_ms),
        (Some(50.0), Some(95.0), Some(99.0))
    );
    assert_eq!(api[0].mean_ms, Some(50.5));
    let db = store.hourly("db").await.unwrap();
    assert_eq!(db[0].hour, ts(2 * 3600));
    assert_eq!((db[0].count, db[0].up_count, db[0].p50_ms), (1, 0, None));

    // Idempotent: nothing left to do, nothing changes.
    let again = store.compact(now, 1, 30).await.unwrap();
    assert_eq!(again, Default::default());
    assert_eq!(store.hourly("api").await.unwrap(), api);

    // A month later the hourly rows go too; the recent raw row is now old and aggregated
    // first, then deleted.
    let later = ts(32 * 86_400);
    let report = store.compact(later, 1, 30).await.unwrap();
    assert_eq!(report.hours_aggregated, 1);
    assert_eq!(report.results_deleted, 1);
    assert_eq!(report.hourly_deleted, 2);
    let api = store.hourly("api").await.unwrap();
    assert_eq!(api.len(), 1);
    assert_eq!(api[0].hour, ts(3 * 86_400));
    assert!(store.integrity_check().await.unwrap());
}

#[tokio::test]
async fn compaction_never_deletes_results_it_has_not_aggregated() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    // A result 5 minutes before "now": its hour is not complete (plus grace), so even a
    // retention that would drop it keeps it until it is aggregated.
    let now = ts(10 * 86_400 + 300);
    store
        .write(&[result_event("api", Outcome::Up, ts(10 * 86_400), 10)], now)
        .await
        .unwrap();
    let report = store.compact(ts(12 * 86_400 + 5), 1, 30).await.unwrap();
    assert_eq!(report.hours_aggregated, 1);
    assert_eq!(report.results_deleted, 1);
    let store2 = open(&dir).await;
    assert_eq!(store2.hourly("api").await.unwrap()[0].count, 1);
}

#[tokio::test]
async fn open_creates_parent_directories_and_open_existing_names_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/pulsecheck.db");
    let store = Store::open(&path).await.unwrap();
    assert!(path.exists());
    assert!(store.size_bytes().await.unwrap() > 0);
    assert!(store.integrity_check().await.unwrap());

    let missing = dir.path().join("nowhere/pulsecheck.db");
    let error = Store::open_existing(&missing).await.unwrap_err();
    assert!(matches!(error, StoreError::NotFound { .. }));
    assert!(error.to_string().contains("nowhere/pulsecheck.db"), "{error}");
    assert!(!missing.exists());
}

/// Bytes the database file takes once its write-ahead log is checkpointed into it.
async fn file_bytes(path: &std::path::Path) -> u64 {
    side_sql(path, "PRAGMA wal_checkpoint(TRUNCATE)").await;
    let wal = std::fs::metadata(format!("{}-wal", path.display())).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "checkpointed");
    std::fs::metadata(path).unwrap().len()
}

/// A result as the serve scenario writes it: HTTP on loopback, an IP, a version, four
/// phases, a duration of a few milliseconds that varies from run to run.
fn serve_like_result(check: &str, at: jiff::Timestamp, n: u64) -> WriteEvent {
    let micros = 900 + (n * 7_919) % 4_000;
    let mut r = result(check, Outcome::Up, at, 0);
    r.duration_ms = std::time::Duration::from_micros(micros);
    r.queue_ms = std::time::Duration::from_micros(n % 40);
    r.timings.dns_ms = None;
    r.timings.connect_ms = Some(std::time::Duration::from_micros(micros / 5));
    r.timings.ttfb_ms = Some(std::time::Duration::from_micros(micros / 2));
    r.timings.transfer_ms = Some(std::time::Duration::from_micros(micros / 10));
    r.ip = Some(std::net::IpAddr::from([127, 0, 0, 1 + (n % 100) as u8]));
    r.http_version = Some("HTTP/1.1".into());
    WriteEvent::Run(Box::new(RunRecord {
        check: check.to_owned(),
        fence: None,
        quorum: None,
        result: r,
        state: state(State::Up, Some(ts(0)), vec![cause(Outcome::Up, at)]),
        transition: None,
        notifications: Vec::new(),
    }))
}

#[tokio::test]
async fn a_stored_run_takes_at_most_50_bytes_on_disk_indexes_included() {
    const CHECKS: usize = 500;
    const ROUNDS: i64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("size.db");
    let names: Vec<String> = (0..CHECKS).map(|i| format!("c{i}")).collect();
    let store = Store::open(&path).await.unwrap();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    store.write(&[register(&refs)], ts(0)).await.unwrap();
    // One run of every check per round so that the file has its metadata and state.
    let round = |r: i64| -> Vec<WriteEvent> {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let at = ts(r * 6)
                    .checked_add(jiff::SignedDuration::from_micros(i as i64 * 11_003))
                    .unwrap();
                serve_like_result(name, at, (r as u64) * CHECKS as u64 + i as u64)
            })
            .collect()
    };
    store.write(&round(0), ts(6)).await.unwrap();
    store.close().await;
    let before = file_bytes(&path).await;

    let store = Store::open(&path).await.unwrap();
    for r in 1..=ROUNDS {
        store.write(&round(r), ts(r * 6 + 6)).await.unwrap();
    }
    store.close().await;
    let after = file_bytes(&path).await;
    let runs = (ROUNDS as u64) * CHECKS as u64;
    let per_run = (after - before) as f64 / runs as f64;
    eprintln!("{runs} runs: {before} -> {after} bytes, {per_run:.1} bytes per run");
    assert!(per_run <= 50.0, "{per_run:.1} bytes per run");
}

#[tokio::test]
async fn up_results_stay_raw_for_the_up_window_and_down_and_transition_causes_for_raw_days() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut events = vec![register(&["api"])];
    // Hour 0: up results every minute, one down result, and the up result at minute 30
    // that ended the down state (the cause of a down -> up transition).
    for i in 0..60 {
        let outcome = if i == 20 { Outcome::Down } else { Outcome::Up };
        events.push(if i == 30 {
            transition("api", State::Down, State::Up, ts(i * 60), &["hook"])
        } else {
            result_event("api", outcome, ts(i * 60), 10 + i as u64)
        });
    }
    store.write(&events, ts(3_600)).await.unwrap();
    let retention = Retention {
        raw_days: 7,
        raw_up_hours: 48,
        hourly_days: 90,
        daily_days: 400,
    };

    // 47 hours on: everything is aggregated and still raw.
    let report = store.compact_with(ts(47 * 3_600), &retention).await.unwrap();
    assert_eq!((report.hours_aggregated, report.results_deleted), (1, 0), "{report:?}");
    assert_eq!(store.result_count(Some("api")).await.unwrap(), 60);

    // 49 hours on: only the down result and the transition's cause stay raw.
    let report = store.compact_with(ts(49 * 3_600), &retention).await.unwrap();
    assert_eq!(report.results_deleted, 58, "{report:?}");
    let kept = store.results("api", 10).await.unwrap();
    let kept: Vec<(i64, Outcome)> = kept
        .iter()
        .map(|r| (r.started_at.as_second() - ts(0).as_second(), r.outcome))
        .collect();
    assert_eq!(kept, [(30 * 60, Outcome::Up), (20 * 60, Outcome::Down)]);

    // 8 days on: no raw results; the hour and its day stay in the aggregates.
    let report = store.compact_with(ts(8 * 86_400), &retention).await.unwrap();
    assert_eq!(report.results_deleted, 2, "{report:?}");
    assert_eq!(store.result_count(None).await.unwrap(), 0);
    let hourly = store.hourly("api").await.unwrap();
    assert_eq!((hourly.len(), hourly[0].count, hourly[0].up_count), (1, 60, 59));
    let daily = store.daily("api").await.unwrap();
    assert_eq!(daily.len(), 1);
    assert_eq!((daily[0].day, daily[0].count, daily[0].up_count), (ts(0), 60, 59));
    assert_eq!(daily[0].mean_ms, hourly[0].mean_ms);
    // Transitions, incidents and the outbox are not raw results.
    assert_eq!(store.transitions(Some("api"), 10).await.unwrap().len(), 1);
    assert_eq!(
        store.notifications(&NotificationFilter::default()).await.unwrap().len(),
        1
    );

    // Past the daily retention, only the checks row and the history of changes stay.
    let report = store.compact_with(ts(401 * 86_400), &retention).await.unwrap();
    assert_eq!((report.hourly_deleted, report.daily_deleted), (1, 1), "{report:?}");
    assert!(store.daily("api").await.unwrap().is_empty());
}

#[tokio::test]
async fn the_size_budget_prunes_the_oldest_raw_results_and_never_the_outbox() {
    const CHECKS: usize = 100;
    const MAX_SIZE: u64 = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.db");
    let options = StoreOptions {
        max_size: MAX_SIZE,
        ..StoreOptions::default()
    };
    let store = Store::open_with(&path, options).await.unwrap();
    let names: Vec<String> = (0..CHECKS).map(|i| format!("c{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    store.write(&[register(&refs)], ts(0)).await.unwrap();
    // Pending notifications: the outbox must survive any budget.
    let outbox: Vec<WriteEvent> = names
        .iter()
        .take(20)
        .map(|name| transition(name, State::Up, State::Down, ts(1), &["hook", "slack"]))
        .collect();
    store.write(&outbox, ts(1)).await.unwrap();
    // Ten hours of a run per check every 30 s: about 1.6 MB of results.
    for round in 0..1_200i64 {
        let events: Vec<WriteEvent> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let at = ts(round * 30 + 2)
                    .checked_add(jiff::SignedDuration::from_millis(i as i64))
                    .unwrap();
                serve_like_result(name, at, (round as u64) * CHECKS as u64 + i as u64)
            })
            .collect();
        store.write(&events, ts(round * 30 + 3)).await.unwrap();
    }
    let written = store.result_count(None).await.unwrap();
    assert_eq!(written, 120_020, "20 runs with transitions, then 1,200 rounds of 100");
    assert!(store.used_bytes().await.unwrap() > MAX_SIZE);

    // Retention alone would keep all of it (the up window is 48 hours).
    let report = store.compact_with(ts(11 * 3_600), &Retention::default()).await.unwrap();
    assert_eq!(report.results_deleted, 0, "{report:?}");
    assert!(report.results_pruned_for_size > 0, "{report:?}");
    let used = store.used_bytes().await.unwrap();
    assert!(used <= MAX_SIZE, "{used} bytes used");
    store.close().await;
    side_sql(&path, "PRAGMA wal_checkpoint(TRUNCATE)").await;
    let file = std::fs::metadata(&path).unwrap().len();
    assert!(file <= MAX_SIZE, "free pages beyond the budget go back: {file} bytes");

    let store = Store::open_with(&path, StoreOptions::default()).await.unwrap();
    let left = store.result_count(None).await.unwrap();
    assert_eq!(written - left, report.results_pruned_for_size);
    // Oldest first: what is left is the newest results of every check.
    for name in [&names[0], &names[CHECKS - 1]] {
        let newest = store.results(name, usize::MAX).await.unwrap();
        assert_eq!(newest[0].started_at.as_second(), ts(1_199 * 30 + 2).as_second());
        // The run that caused a transition (the first 20 checks, at 1 s) is kept.
        let oldest = newest.iter().rfind(|r| r.started_at != ts(1)).unwrap().started_at;
        assert!(oldest > ts(3_600), "{name}: {oldest}");
    }
    assert_eq!(
        store
            .results(&names[0], usize::MAX)
            .await
            .unwrap()
            .last()
            .unwrap()
            .started_at,
        ts(1)
    );
    // Every hour that had results is still in the aggregates.
    assert_eq!(store.hourly(&names[0]).await.unwrap().len(), 10);
    let outbox = store.notifications(&NotificationFilter::default()).await.unwrap();
    assert_eq!(outbox.len(), 40);
    assert!(outbox.iter().all(|n| n.state == DeliveryState::Pending));
    assert_eq!(store.transitions(None, 100).await.unwrap().len(), 20);
    assert_eq!(store.incidents(None).await.unwrap().len(), 20);
    assert!(store.integrity_check().await.unwrap());
}

#[tokio::test]
async fn a_version_1_database_is_converted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    // Schema 1 exactly as an older release created it, with a few rows.
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/0001_initial.sql"),
        migrations.join("0001_initial.sql"),
    )
    .unwrap();
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
        sqlx::query(
            "INSERT INTO checks (name, target, updated_at) VALUES ('api', 'https://api.example', 0);
             INSERT INTO results (check_name, started_at, outcome, reason, error, probe, http_status,
                                  duration_ms, queue_ms, dns_ms, connect_ms, tls_ms, ttfb_ms, transfer_ms,
                                  rtt_ms, ip, http_version, redirects, cert_days_left)
             VALUES ('api', 1767225600000, 'up', NULL, NULL, 'http', 200, 12.345, 0.25, 1.5, 2.0,
                     NULL, 6.0, NULL, NULL, '10.0.0.1', 'HTTP/1.1', 1, 30),
                    ('api', 1767225660000, 'down', 'timeout', 'no answer within 5 s', 'http', NULL,
                     5000.0, 0.0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'HTTP/?', 0, NULL);
             INSERT INTO hourly (check_name, hour, count, up_count, mean_ms, p50_ms, p95_ms, p99_ms)
             VALUES ('api', 1767222000000, 10, 9, 12.5, 12.0, 20.0, 21.0);",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }

    let store = Store::open(&path).await.unwrap();
    let results = store.results("api", 10).await.unwrap();
    assert_eq!(results.len(), 2);
    let (down, up) = (&results[0], &results[1]);
    assert_eq!(up.started_at, ts(0));
    assert_eq!((up.outcome, up.reason, up.http_status), (Outcome::Up, None, Some(200)));
    assert_eq!((up.duration_ms, up.queue_ms), (12.345, 0.25));
    assert_eq!((up.dns_ms, up.connect_ms, up.tls_ms), (Some(1.5), Some(2.0), None));
    assert_eq!((up.ttfb_ms, up.transfer_ms, up.rtt_ms), (Some(6.0), None, None));
    assert_eq!(up.ip.as_deref(), Some("10.0.0.1"));
    assert_eq!(up.http_version.as_deref(), Some("HTTP/1.1"));
    assert_eq!(
        (up.redirects, up.cert_days_left, up.probe.as_str()),
        (1, Some(30), "http")
    );
    assert_eq!(down.started_at, ts(60));
    assert_eq!(
        (down.outcome, down.reason),
        (Outcome::Down, Some(pulsecheck_core::Reason::Timeout))
    );
    assert_eq!(down.error.as_deref(), Some("no answer within 5 s"));
    assert_eq!(down.http_version.as_deref(), Some("HTTP/?"));
    assert_eq!((down.dns_ms, down.ip.as_deref()), (None, None));
    let hourly = store.hourly("api").await.unwrap();
    assert_eq!(
        (hourly[0].count, hourly[0].up_count, hourly[0].p99_ms),
        (10, 9, Some(21.0))
    );
    assert_eq!(store.daily("api").await.unwrap()[0].count, 10);
    // New results go next to the converted ones, and the file was rewritten for
    // incremental vacuum.
    store
        .write(&[result_event("api", Outcome::Up, ts(120), 7)], ts(120))
        .await
        .unwrap();
    assert_eq!(store.result_count(Some("api")).await.unwrap(), 3);
    let auto_vacuum: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
        .fetch_one(
            &mut <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(auto_vacuum, 2);
    assert!(store.integrity_check().await.unwrap());
}

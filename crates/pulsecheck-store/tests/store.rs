//! The store on a real SQLite file: atomic transitions, outbox ordering, state,
//! status, incidents and compaction.

mod common;

use common::*;
use pulsecheck_core::outbox::{AlertKind, DeliveryState, Outbox};
use pulsecheck_core::state::State;
use pulsecheck_core::Outcome;
use pulsecheck_store::{NotificationFilter, Store, StoreError, WriteEvent};

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

    let status = store.status().await.unwrap();
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
    let WriteEvent::Transition { state: db_state, .. } = &events[2] else {
        unreachable!()
    };
    assert_eq!(&states["db"], db_state);
    let WriteEvent::Result { state: api_state, .. } = &events[0] else {
        unreachable!()
    };
    assert_eq!(&states["api"], api_state);
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
                result_event("api", Outcome::Down, ts(100), 5_000),
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

    let status = store.status().await.unwrap();
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
    assert_eq!(api.last_duration_ms, Some(5_000.0));
    assert_eq!(api.last_result_at, Some(ts(100)));
    assert_eq!(api.open_incident_since, Some(ts(100)));
    assert_eq!(api.pending_notifications, 1);
    assert_eq!(status[1].open_incident_since, None);
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
    assert_eq!(store.status().await.unwrap()[0].open_incident_since, None);

    let history = store.results("api", 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].http_status, None);
    assert_eq!(history[0].dns_ms, Some(1.5));
    assert_eq!(history[0].queue_ms, 0.25);
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
        }],
        retire_others: true,
    };
    store.write(&[reload], ts(1)).await.unwrap();
    let status = store.status().await.unwrap();
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
    WriteEvent::Result {
        check: check.to_owned(),
        result: r,
        state: state(State::Up, Some(ts(0)), vec![cause(Outcome::Up, at)]),
    }
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

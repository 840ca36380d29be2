//! The batched writer on a real SQLite file: batching, wake-ups, retries, isolation of
//! an event that cannot be written, and shutdown that commits everything accepted.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;
use pulsecheck_core::clock::Clock;
use pulsecheck_core::outbox::{AlertKind, Outbox};
use pulsecheck_core::state::State;
use pulsecheck_core::Outcome;
use pulsecheck_store::{spawn_writer, NotificationFilter, Store, WriteEvent, WriterConfig, WriterHandle};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_util::task::TaskTracker;

const DEADLINE: Duration = Duration::from_secs(10);

fn config() -> WriterConfig {
    WriterConfig {
        clock: Clock::starting_at(ts(0)),
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        ..WriterConfig::default()
    }
}

async fn close(writer: &WriterHandle) {
    timeout(DEADLINE, writer.close_and_wait())
        .await
        .expect("the writer closes within the deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_commits_results_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let tasks = TaskTracker::new();
    let writer = spawn_writer(store.clone(), &tasks, config());
    writer.send(register(&["api"])).await;
    for i in 0..2_500 {
        writer.send(result_event("api", Outcome::Up, ts(i), 10)).await;
    }
    timeout(DEADLINE, writer.flush()).await.unwrap();
    assert_eq!(store.result_count(Some("api")).await.unwrap(), 2_500);

    let stats = writer.stats();
    assert_eq!(stats.events, 2_501);
    assert!(stats.batches >= 3, "at most 1,000 events per batch: {stats:?}");
    assert!(stats.batches < 2_501, "events were batched: {stats:?}");
    assert!(stats.max_batch_size <= 1_000 && stats.max_batch_size > 1, "{stats:?}");
    assert!(
        stats.max_batch_ms > 0.0 && stats.p99_batch_ms >= stats.p50_batch_ms,
        "{stats:?}"
    );
    assert_eq!((stats.failed_attempts, stats.rejected, stats.poisoned), (0, 0, 0));
    assert_eq!(*writer.commits().borrow(), stats.batches);
    close(&writer).await;
    tasks.close();
    timeout(DEADLINE, tasks.wait()).await.unwrap();
    assert!(writer.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_with_notifications_wakes_the_delivery_workers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let tasks = TaskTracker::new();
    let writer = spawn_writer(store.clone(), &tasks, config());
    let committed = writer.committed();
    let woken = committed.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();

    writer
        .send(transition(
            "api",
            State::Up,
            State::Down,
            ts(5),
            &["hook", "slack", "pager"],
        ))
        .await;
    timeout(DEADLINE, woken).await.expect("woken after the commit");
    // The wake-up comes after the commit: the rows are there, stamped by the writer's clock.
    let due = store.due(ts(60), 10).await.unwrap();
    assert_eq!(due.len(), 3);
    assert!(due[0].created_at >= ts(0) && due[0].created_at < ts(60));
    // A worker that was busy during the commit still finds a stored permit.
    timeout(DEADLINE, committed.notified()).await.unwrap();
    close(&writer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_mid_stream_commits_everything_sent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let tasks = TaskTracker::new();
    // A small channel so that producers wait on backpressure while the writer works.
    let writer = spawn_writer(
        store.clone(),
        &tasks,
        WriterConfig {
            capacity: 64,
            max_batch: 100,
            ..config()
        },
    );
    let mut producers = JoinSet::new();
    for p in 0..3 {
        let writer = writer.clone();
        producers.spawn(async move {
            let check = format!("check-{p}");
            for i in 0..2_000 {
                let event = if i == 1_000 {
                    transition(&check, State::Unknown, State::Up, ts(i), &["hook"])
                } else {
                    result_event(&check, Outcome::Up, ts(i), 10)
                };
                writer.send(event).await;
            }
            // The clone drops here, mid-way through the writer's backlog.
        });
    }
    drop(writer);
    while let Some(joined) = producers.join_next().await {
        joined.unwrap();
    }
    tasks.close();
    timeout(DEADLINE, tasks.wait())
        .await
        .expect("the writer exits once every handle is gone");

    assert_eq!(store.result_count(None).await.unwrap(), 6_000);
    assert_eq!(
        store.notifications(&NotificationFilter::default()).await.unwrap().len(),
        3
    );
    for p in 0..3 {
        let newest = store.results(&format!("check-{p}"), 1).await.unwrap();
        assert_eq!(newest[0].started_at, ts(1_999));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_while_a_producer_sends_commits_exactly_what_was_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let tasks = TaskTracker::new();
    let writer = spawn_writer(
        store.clone(),
        &tasks,
        WriterConfig {
            capacity: 256,
            ..config()
        },
    );
    let producer = {
        let writer = writer.clone();
        tasks.spawn(async move {
            for i in 0..20_000 {
                writer.send(result_event("api", Outcome::Up, ts(i), 10)).await;
            }
        })
    };
    // Let some batches through, then close in the middle of the stream.
    let mut commits = writer.commits();
    timeout(DEADLINE, commits.wait_for(|n| *n >= 3)).await.unwrap().unwrap();
    close(&writer).await;
    timeout(DEADLINE, producer).await.unwrap().unwrap();

    let stats = writer.stats();
    let stored = store.result_count(None).await.unwrap();
    assert_eq!(stored, stats.events, "{stats:?}");
    assert_eq!(stats.events + stats.rejected, 20_000, "{stats:?}");
    // What was committed is a prefix of what was sent: nothing accepted was skipped.
    let rows = store.results("api", 20_000).await.unwrap();
    let seconds: HashSet<i64> = rows
        .iter()
        .map(|r| r.started_at.as_second() - ts(0).as_second())
        .collect();
    assert_eq!(seconds, (0..stored as i64).collect::<HashSet<_>>());
    writer.send(result_event("api", Outcome::Up, ts(99_999), 1)).await;
    assert_eq!(writer.stats().rejected, stats.rejected + 1, "refused after close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_is_retried_until_it_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    side_sql(
        store.path(),
        "CREATE TRIGGER fail_results BEFORE INSERT ON results
         BEGIN SELECT RAISE(ABORT, 'disk on fire'); END",
    )
    .await;
    let tasks = TaskTracker::new();
    let writer = spawn_writer(store.clone(), &tasks, config());
    for i in 0..50 {
        writer.send(result_event("api", Outcome::Up, ts(i), 10)).await;
    }
    writer
        .send(transition("api", State::Unknown, State::Up, ts(50), &["hook"]))
        .await;
    let failing = async {
        while writer.stats().failed_attempts < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    timeout(DEADLINE, failing).await.unwrap();
    assert_eq!(store.result_count(None).await.unwrap(), 0);
    assert!(store.transitions(None, 10).await.unwrap().is_empty());

    side_sql(store.path(), "DROP TRIGGER fail_results").await;
    timeout(DEADLINE, writer.flush()).await.unwrap();
    assert_eq!(
        store.result_count(None).await.unwrap(),
        51,
        "50 runs and the one that caused the transition"
    );
    assert_eq!(store.transitions(None, 10).await.unwrap().len(), 1);
    let stats = writer.stats();
    assert_eq!((stats.events, stats.poisoned), (51, 0), "{stats:?}");
    close(&writer).await;
}

/// A run's result, the check's new state, the transition and its notification are one
/// write. A failure after the result is written (here: inserting the notification, the
/// last statement of the run) rolls all of it back, so a crash at that moment restarts
/// the daemon with the check's old state and it derives the transition again; once the
/// fault clears everything is there, the alert included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_between_a_result_and_its_alert_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.write(&[register(&["api"])], ts(0)).await.unwrap();
    side_sql(
        store.path(),
        "CREATE TRIGGER fail_notifications BEFORE INSERT ON notifications
         BEGIN SELECT RAISE(ABORT, 'crash between the result and its alert'); END",
    )
    .await;
    let tasks = TaskTracker::new();
    let writer = spawn_writer(store.clone(), &tasks, config());
    writer.send(result_event("api", Outcome::Up, ts(1), 10)).await;
    writer
        .send(transition("api", State::Up, State::Down, ts(2), &["hook"]))
        .await;
    let failing = async {
        while writer.stats().failed_attempts < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    timeout(DEADLINE, failing).await.unwrap();
    // What a restart at this moment would find: none of the run that failed.
    assert_eq!(store.result_count(None).await.unwrap(), 0);
    assert!(store.transitions(None, 10).await.unwrap().is_empty());
    assert!(store.incidents(None).await.unwrap().is_empty());
    let states = store.load_states().await.unwrap();
    assert_ne!(states.get("api").map(|s| s.state), Some(State::Down), "{states:?}");
    assert!(store
        .notifications(&NotificationFilter::default())
        .await
        .unwrap()
        .is_empty());

    side_sql(store.path(), "DROP TRIGGER fail_notifications").await;
    timeout(DEADLINE, writer.flush()).await.unwrap();
    assert_eq!(store.result_count(None).await.unwrap(), 2);
    assert_eq!(store.load_states().await.unwrap()["api"].state, State::Down);
    let transitions = store.transitions(None, 10).await.unwrap();
    assert_eq!(transitions.len(), 1);
    assert_eq!(store.incidents(Some("api")).await.unwrap().len(), 1);
    let alerts = store.notifications(&NotificationFilter::default()).await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].channel, "hook");
    let stats = writer.stats();
    assert_eq!(stats.poisoned, 0, "{stats:?}");
    close(&writer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_can_never_be_written_is_isolated_and_the_rest_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    // Stands in for a bug: a constraint that one event violates on every attempt.
    side_sql(
        store.path(),
        "CREATE TABLE seen (second INTEGER NOT NULL UNIQUE);
         CREATE TRIGGER one_per_second BEFORE INSERT ON results
         BEGIN INSERT INTO seen (second) VALUES (NEW.started_at / 1000); END",
    )
    .await;
    let tasks = TaskTracker::new();
    let writer = spawn_writer(
        store.clone(),
        &tasks,
        WriterConfig {
            isolate_after: 2,
            max_delay: Duration::from_millis(200),
            ..config()
        },
    );
    for i in [0, 1, 2, 1, 3] {
        writer.send(result_event("api", Outcome::Up, ts(i), 10)).await;
    }
    timeout(DEADLINE, writer.flush()).await.unwrap();
    let stats = writer.stats();
    assert_eq!((stats.events, stats.poisoned), (4, 1), "{stats:?}");
    assert_eq!(store.result_count(None).await.unwrap(), 4);
    close(&writer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_after_the_writer_closes_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/pulsecheck.db");
    let store = Store::open(&path).await.unwrap();
    let tasks = TaskTracker::new();
    let writer = spawn_writer(store.clone(), &tasks, config());
    writer.send(register(&["api", "db"])).await;
    for i in 0..100 {
        writer.send(result_event("api", Outcome::Up, ts(i), 10)).await;
        writer.send(result_event("db", Outcome::Down, ts(i), 5_000)).await;
    }
    writer
        .send(transition("db", State::Unknown, State::Down, ts(1), &["hook", "slack"]))
        .await;
    writer
        .send(WriteEvent::Notify {
            notifications: vec![("hook".into(), alert("db", "db:reminder:1", AlertKind::Reminder, ts(99)))],
        })
        .await;
    close(&writer).await;
    let states = store.load_states().await.unwrap();
    let status = status(&store).await;
    store.close().await;

    let reopened = Store::open_existing(&path).await.unwrap();
    assert!(reopened.integrity_check().await.unwrap());
    assert_eq!(reopened.load_states().await.unwrap(), states);
    assert_eq!(crate::common::status(&reopened).await, status);
    assert_eq!(
        reopened.result_count(None).await.unwrap(),
        201,
        "200 runs and the one with the transition"
    );
    assert_eq!(reopened.incidents(Some("db")).await.unwrap().len(), 1);
    let notifications = reopened.notifications(&NotificationFilter::default()).await.unwrap();
    assert_eq!(notifications.len(), 3);
    assert_eq!(
        reopened.due(ts(3_600), 10).await.unwrap().len(),
        2,
        "db/hook, db/slack heads"
    );
    assert!(reopened.size_bytes().await.unwrap() > 0);
}

//! PostgreSQL only: leases and fencing, membership, outbox claims between nodes, and a
//! server restart under a store.

use std::time::Duration;

use pulsecheck_core::cluster::{Coordinator, Fence, Member};
use pulsecheck_core::outbox::{AlertKind, DeliveryState, Outbox};
use pulsecheck_core::state::State;
use pulsecheck_core::storage::console::OutboxPage;
use pulsecheck_core::storage::history::ResultPage;
use pulsecheck_core::storage::{Console, History, Storage, StorageError, WriteEvent};
use pulsecheck_core::Outcome;
use pulsecheck_postgres::testing::{TestPostgres, SKIPPED};
use pulsecheck_postgres::{PgOptions, PgStore};

use crate::common::*;

const LONG: Duration = Duration::from_secs(60);

/// Whether the lease `key` has expired by the database's clock.
async fn lease_expired(store: &PgStore, key: &str) -> bool {
    sqlx::query_scalar(
        "SELECT expires_at <= (extract(epoch from clock_timestamp()) * 1000)::bigint FROM leases WHERE key = $1",
    )
    .bind(key)
    .fetch_one(store.pool())
    .await
    .unwrap()
}

/// A run of `check` at `at` (up, no transition) written under `fence`.
fn fenced_run(check: &str, at: i64, fence: Option<Fence>) -> WriteEvent {
    let mut event = result_event(check, Outcome::Up, ts(at), 10);
    if let WriteEvent::Run(run) = &mut event {
        run.fence = fence;
    }
    event
}

/// A transition of `check` with one notification on `hook`, written under `fence`.
fn fenced_transition(check: &str, at: i64, fence: Option<Fence>) -> WriteEvent {
    let mut event = transition(check, State::Up, State::Down, ts(at), &["hook"]);
    if let WriteEvent::Run(run) = &mut event {
        run.fence = fence;
    }
    event
}

fn fence(node: &str, epoch: i64) -> Option<Fence> {
    Some(Fence {
        key: "check:api".into(),
        node: node.into(),
        epoch,
    })
}

async fn result_times(store: &PgStore, check: &str) -> Vec<jiff::Timestamp> {
    store
        .recent_results(
            check,
            ResultPage {
                before: None,
                limit: 100,
            },
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.started_at)
        .collect()
}

#[tokio::test]
async fn membership_and_leases_follow_the_database_clock_and_epochs_grow() {
    let Some(url) = database().await else { return };
    let (a, b) = (store(&url, "a").await, store(&url, "b").await);
    let member = |node: &str, location: Option<&str>| Member {
        node: node.into(),
        location: location.map(str::to_owned),
    };
    assert_eq!(
        a.heartbeat(&member("a", Some("eu")), LONG).await.unwrap(),
        [member("a", Some("eu"))]
    );
    let live = b.heartbeat(&member("b", None), LONG).await.unwrap();
    assert_eq!(live, [member("a", Some("eu")), member("b", None)]);

    let keys = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let held = a.acquire("a", &keys(&["k1", "k2"]), LONG).await.unwrap();
    assert_eq!(
        held.iter().map(|l| (l.key.as_str(), l.epoch)).collect::<Vec<_>>(),
        [("k1", 1), ("k2", 1)]
    );
    assert!(held[0].expires_at > jiff::Timestamp::now() + Duration::from_secs(30));
    // b gets only the free key; a renewing keeps its epochs.
    let got = b.acquire("b", &keys(&["k1", "k2", "k3"]), LONG).await.unwrap();
    assert_eq!(
        got.iter().map(|l| (l.key.as_str(), l.epoch)).collect::<Vec<_>>(),
        [("k3", 1)]
    );
    let renewed = a.acquire("a", &keys(&["k2", "k1", "k1"]), LONG).await.unwrap();
    assert_eq!(
        renewed.iter().map(|l| (l.key.as_str(), l.epoch)).collect::<Vec<_>>(),
        [("k1", 1), ("k2", 1)]
    );

    // Released: b takes it at once, with a new epoch.
    a.release("a", &keys(&["k1", "k3"])).await.unwrap();
    let got = b.acquire("b", &keys(&["k1", "k3"]), LONG).await.unwrap();
    assert_eq!(
        got.iter().map(|l| (l.key.as_str(), l.epoch)).collect::<Vec<_>>(),
        [("k1", 2), ("k3", 1)],
        "k3 was b's: a's release left it alone"
    );

    // Leaving releases everything and drops the member.
    a.leave("a").await.unwrap();
    assert_eq!(
        b.heartbeat(&member("b", None), LONG).await.unwrap(),
        [member("b", None)]
    );
    let got = b.acquire("b", &keys(&["k2"]), LONG).await.unwrap();
    assert_eq!(got[0].epoch, 2);

    // A lease that lapsed is a new tenure even for the same node: its epoch grows.
    let short = Duration::from_millis(300);
    assert_eq!(b.acquire("b", &keys(&["k4"]), short).await.unwrap()[0].epoch, 1);
    eventually("k4 to expire", || lease_expired(&b, "k4")).await;
    assert_eq!(b.acquire("b", &keys(&["k4"]), LONG).await.unwrap()[0].epoch, 2);

    // A member that stops heartbeating drops out.
    a.heartbeat(&member("a", Some("eu")), short).await.unwrap();
    eventually("a's membership to lapse", || async {
        b.heartbeat(&member("b", None), LONG).await.unwrap() == [member("b", None)]
    })
    .await;
}

#[tokio::test]
async fn a_run_whose_fence_is_not_current_is_dropped_whole() {
    let Some(url) = database().await else { return };
    let (a, b) = (store(&url, "a").await, store(&url, "b").await);
    a.write(&[register(&["api", "db"])], ts(0)).await.unwrap();
    let key = vec!["check:api".to_owned()];
    let lease = a.acquire("a", &key, Duration::from_millis(800)).await.unwrap();
    assert_eq!(lease[0].epoch, 1);
    a.write(&[fenced_run("api", 1, fence("a", 1))], ts(1)).await.unwrap();
    assert_eq!(result_times(&a, "api").await, [ts(1)]);
    assert_eq!(a.fenced_runs(), 0);

    // Expired but not taken over: still not a's to write.
    eventually("a's lease to expire", || lease_expired(&a, "check:api")).await;
    a.write(&[fenced_transition("api", 2, fence("a", 1))], ts(2))
        .await
        .unwrap();
    assert_eq!(a.fenced_runs(), 1);

    // b takes over: epoch 2. a's stale run is dropped with its transition and
    // notification; the rest of the batch (an unfenced run, b's run) commits.
    assert_eq!(b.acquire("b", &key, LONG).await.unwrap()[0].epoch, 2);
    a.write(
        &[
            fenced_transition("api", 3, fence("a", 1)),
            fenced_run("db", 3, None),
            fenced_run("api", 4, fence("b", 2)),
        ],
        ts(4),
    )
    .await
    .unwrap();
    assert_eq!(a.fenced_runs(), 2);
    assert_eq!(result_times(&a, "api").await, [ts(4), ts(1)]);
    assert_eq!(result_times(&a, "db").await, [ts(3)]);
    let outbox = a
        .outbox_page(&OutboxPage {
            check: None,
            state: None,
            before_id: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(outbox.is_empty(), "no notification from a dropped run: {outbox:?}");
    assert_eq!(
        a.load_states().await.unwrap()["api"].state,
        State::Up,
        "no state from a dropped run"
    );
    let transitions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM transitions")
        .fetch_one(a.pool())
        .await
        .unwrap();
    assert_eq!(transitions, 0);
    // The right epoch but the wrong node, or the right node but an old epoch: dropped.
    b.write(
        &[fenced_run("api", 5, fence("a", 2)), fenced_run("api", 6, fence("b", 1))],
        ts(6),
    )
    .await
    .unwrap();
    assert_eq!(b.fenced_runs(), 2);
    b.write(&[fenced_transition("api", 7, fence("b", 2))], ts(7))
        .await
        .unwrap();
    assert_eq!(result_times(&b, "api").await, [ts(7), ts(4), ts(1)]);
    assert_eq!(b.load_states().await.unwrap()["api"].state, State::Down);
}

/// Backends of this database waiting for a lock, whose query starts with `prefix`.
async fn waiting_on_lock(store: &PgStore, prefix: &str) -> bool {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock' AND ltrim(query) LIKE $1 || '%'",
    )
    .bind(prefix)
    .fetch_one(store.pool())
    .await
    .unwrap();
    n > 0
}

#[tokio::test]
async fn a_takeover_waits_for_a_write_in_flight_under_the_old_lease() {
    let Some(url) = database().await else { return };
    let (a, b) = (store(&url, "a").await, store(&url, "b").await);
    a.write(&[register(&["api"])], ts(0)).await.unwrap();
    let key = vec!["check:api".to_owned()];
    a.acquire("a", &key, Duration::from_secs(2)).await.unwrap();

    // Another transaction holds the check's row, so a's write stops after it checked
    // (and locked) its fence.
    let mut blocker = a.pool().begin().await.unwrap();
    sqlx::query("SELECT 1 FROM checks WHERE name = 'api' FOR UPDATE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let mut writer = tokio::task::JoinSet::new();
    {
        let a = a.clone();
        writer.spawn(async move { a.write(&[fenced_run("api", 1, fence("a", 1))], ts(1)).await });
    }
    eventually("a's write to wait for the check row", || {
        waiting_on_lock(&a, "INSERT INTO checks")
    })
    .await;
    // The lease expires while the write is in flight; b's takeover must wait for it.
    eventually("a's lease to expire", || lease_expired(&a, "check:api")).await;
    let mut takeover = tokio::task::JoinSet::new();
    {
        let b = b.clone();
        let key = key.clone();
        takeover.spawn(async move { b.acquire("b", &key, LONG).await });
    }
    eventually("b's takeover to wait for a's write", || {
        waiting_on_lock(&b, "INSERT INTO leases")
    })
    .await;
    assert!(takeover.try_join_next().is_none());
    blocker.commit().await.unwrap();

    writer.join_next().await.unwrap().unwrap().unwrap();
    let lease = takeover.join_next().await.unwrap().unwrap().unwrap();
    assert_eq!(lease[0].epoch, 2);
    assert_eq!(a.fenced_runs(), 0, "the write checked its fence before the takeover");
    assert_eq!(result_times(&a, "api").await, [ts(1)]);
    // From now on a's writes are dropped.
    a.write(&[fenced_run("api", 2, fence("a", 1))], ts(2)).await.unwrap();
    assert_eq!(a.fenced_runs(), 1);
}

async fn claimer(url: &str, node: &str, claim_ttl: Duration) -> PgStore {
    PgStore::connect(
        url,
        PgOptions {
            claim_ttl,
            ..options(node)
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn two_nodes_claiming_at_once_never_get_the_same_row() {
    let Some(url) = database().await else { return };
    let (a, b) = (claimer(&url, "a", LONG).await, claimer(&url, "b", LONG).await);
    let checks: Vec<String> = (0..60).map(|i| format!("c{i:02}")).collect();
    let mut events = Vec::new();
    for (i, check) in checks.iter().enumerate() {
        events.push(transition(
            check,
            State::Up,
            State::Down,
            ts(i as i64),
            &["hook", "slack"],
        ));
    }
    a.write(&events, ts(100)).await.unwrap();

    let mut got: [Vec<i64>; 2] = [Vec::new(), Vec::new()];
    for _round in 0..100 {
        let (da, db) = tokio::join!(a.due(ts(100), 7), b.due(ts(100), 7));
        let (da, db) = (da.unwrap(), db.unwrap());
        if da.is_empty() && db.is_empty() {
            break;
        }
        for (node, (store, due)) in [(&a, da), (&b, db)].into_iter().enumerate() {
            for n in due {
                got[node].push(n.id);
                store.delivered(n.id, 1, ts(101)).await.unwrap();
            }
        }
    }
    let mut all: Vec<i64> = got.concat();
    let total = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), total, "a row was claimed twice");
    assert_eq!(total, 120, "every row delivered once");
    assert!(
        !got[0].is_empty() && !got[1].is_empty(),
        "both nodes took a share: {} {}",
        got[0].len(),
        got[1].len()
    );
    assert_eq!(a.outbox_counts().await.unwrap(), (0, 0));
}

#[tokio::test]
async fn a_dead_nodes_claim_is_taken_over_and_its_late_settle_ignored() {
    let Some(url) = database().await else { return };
    let ttl = Duration::from_millis(700);
    let (a, b) = (claimer(&url, "a", ttl).await, claimer(&url, "b", ttl).await);
    a.write(
        &[WriteEvent::Notify {
            notifications: vec![("hook".into(), alert("api", "api:down:1:hook", AlertKind::Down, ts(1)))],
        }],
        ts(1),
    )
    .await
    .unwrap();
    let claimed = a.due(ts(1), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // a "dies" here: it never settles. b sees nothing until the claim lapses, and
    // next_due tells it when to look again.
    assert!(b.due(ts(1), 10).await.unwrap().is_empty());
    let next = b.next_due().await.unwrap().unwrap();
    assert!(next > ts(1), "{next}");
    let deadline = tokio::time::Instant::now() + LONG;
    let taken = loop {
        let due = b.due(ts(1), 10).await.unwrap();
        if !due.is_empty() {
            break due;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b never took a's lapsed claim over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(taken[0].id, claimed[0].id);
    assert_eq!(
        taken[0].event.idempotency_key, claimed[0].event.idempotency_key,
        "the same key on every node"
    );
    b.delivered(taken[0].id, 1, ts(2)).await.unwrap();

    // a wakes up and settles late: nothing changes.
    a.retry_at(claimed[0].id, 1, ts(60), "timeout".into()).await.unwrap();
    a.dead(claimed[0].id, 1, "gone".into()).await.unwrap();
    let row = a
        .outbox_page(&OutboxPage {
            check: None,
            state: None,
            before_id: None,
            limit: 1,
        })
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (row.state, row.delivered_at, row.last_error),
        (DeliveryState::Delivered, Some(ts(2)), None)
    );
    assert!(a.due(ts(100), 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_transition_and_its_notifications_commit_together_or_not_at_all() {
    let Some(url) = database().await else { return };
    let s = store(&url, "a").await;
    sqlx::raw_sql(
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.channel = 'boom' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER boom BEFORE INSERT ON notifications FOR EACH ROW EXECUTE FUNCTION boom();",
    )
    .execute(s.pool())
    .await
    .unwrap();
    let event = transition("api", State::Up, State::Down, ts(10), &["hook", "boom"]);
    let error = Storage::write(&s, std::slice::from_ref(&event), ts(10))
        .await
        .unwrap_err();
    assert!(
        error.message.contains("injected failure") && !error.transient,
        "{error:?}"
    );
    assert!(s.load_states().await.unwrap().is_empty(), "the state rolled back too");
    assert!(result_times(&s, "api").await.is_empty());
    sqlx::raw_sql("DROP TRIGGER boom ON notifications")
        .execute(s.pool())
        .await
        .unwrap();
    s.write(&[event], ts(10)).await.unwrap();
    assert_eq!(s.outbox_counts().await.unwrap(), (2, 0));
}

// Multi-threaded: pg_ctl runs in block_in_place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_after_the_server_restarts_and_the_outage_is_transient() {
    let server = match TestPostgres::start() {
        Ok(Some(server)) => server,
        Ok(None) => return eprintln!("{SKIPPED}"),
        Err(e) => panic!("test PostgreSQL: {e}"),
    };
    let url = server.create_database("restart").await.unwrap();
    let s = PgStore::connect(
        &url,
        PgOptions {
            acquire_timeout: Duration::from_secs(3),
            ..options("a")
        },
    )
    .await
    .unwrap();
    s.write(&[fenced_run("api", 1, None)], ts(1)).await.unwrap();
    let first_pid = server.pid();

    tokio::task::block_in_place(|| server.stop()).unwrap();
    let error: StorageError = Storage::write(&s, &[fenced_run("api", 2, None)], ts(2))
        .await
        .unwrap_err();
    assert!(error.transient, "the writer retries this for ever: {error:?}");
    assert!(s.outbox().next_due().await.is_err());
    tokio::task::block_in_place(|| server.start_again()).unwrap();
    eventually("a write after the server is back", || async {
        Storage::write(&s, &[fenced_run("api", 2, None)], ts(2)).await.is_ok()
    })
    .await;

    tokio::task::block_in_place(|| server.restart()).unwrap();
    assert_ne!(server.pid(), first_pid);
    eventually("a write after a restart", || async {
        Storage::write(&s, &[fenced_run("api", 3, None)], ts(3)).await.is_ok()
    })
    .await;
    assert_eq!(
        result_times(&s, "api").await,
        [ts(3), ts(2), ts(1)],
        "nothing lost, nothing twice"
    );
}

#[tokio::test]
async fn two_compactions_at_once_count_each_hour_once() {
    let Some(url) = database().await else { return };
    let (a, b) = (store(&url, "a").await, store(&url, "b").await);
    let mut events = vec![register(&["api"])];
    // Ten hours of one run every ten minutes, one of them down each hour.
    for i in 0..60 {
        let outcome = if i % 6 == 0 { Outcome::Down } else { Outcome::Up };
        events.push(result_event("api", outcome, ts(i * 600), 10));
    }
    a.write(&events, ts(36_000)).await.unwrap();
    let now = ts(86_400 + 3_600);
    let retention = pulsecheck_core::storage::Retention::default();
    let (ra, rb) = tokio::join!(
        pulsecheck_core::storage::Housekeeping::compact(&a, now, &retention),
        pulsecheck_core::storage::Housekeeping::compact(&b, now, &retention)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.hours_aggregated + rb.hours_aggregated, 10, "{ra:?} {rb:?}");
    let daily: (i64, i64) = sqlx::query_as("SELECT count, up_count FROM daily")
        .fetch_one(a.pool())
        .await
        .unwrap();
    assert_eq!(daily, (60, 50), "each hour added to its day once");
    assert_eq!(
        a.uptime("api", ts(0), now).await.unwrap(),
        pulsecheck_core::storage::history::Uptime { runs: 60, up: 50 }
    );
}

#[tokio::test]
async fn a_batch_retried_after_its_commit_stores_its_run_once() {
    let Some(url) = database().await else { return };
    let s = store(&url, "a").await;
    // Keys left empty: the store derives them from the transition's id.
    let mut event = transition("api", State::Up, State::Down, ts(10), &["hook", "slack"]);
    if let WriteEvent::Run(run) = &mut event {
        for (_, alert) in &mut run.notifications {
            alert.idempotency_key.clear();
        }
    }
    let batch = [fenced_run("api", 5, None), event];
    s.write(&batch, ts(10)).await.unwrap();
    s.write(&batch, ts(11)).await.unwrap();
    assert_eq!(result_times(&s, "api").await, [ts(10), ts(5)], "each result once");
    let transitions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM transitions")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(transitions, 1);
    assert_eq!(s.outbox_counts().await.unwrap(), (2, 0), "one notification per channel");
    // A different result in a taken millisecond still moves on to the next one.
    s.write(&[result_event("api", Outcome::Down, ts(5), 999)], ts(12))
        .await
        .unwrap();
    let times = result_times(&s, "api").await;
    assert_eq!(times.len(), 3);
    assert_eq!(times[1], ts(5) + Duration::from_millis(1));
}

// Multi-threaded: pg_ctl runs in block_in_place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_writer_rides_out_a_server_outage_without_losing_or_repeating_a_run() {
    let server = match TestPostgres::start() {
        Ok(Some(server)) => server,
        Ok(None) => return eprintln!("{SKIPPED}"),
        Err(e) => panic!("test PostgreSQL: {e}"),
    };
    let url = server.create_database("writer").await.unwrap();
    let s = PgStore::connect(
        &url,
        PgOptions {
            acquire_timeout: Duration::from_secs(2),
            ..options("a")
        },
    )
    .await
    .unwrap();
    let tasks = tokio_util::task::TaskTracker::new();
    let config = pulsecheck_core::writer::WriterConfig {
        retry_max: Duration::from_millis(500),
        ..Default::default()
    };
    let writer = pulsecheck_core::writer::spawn_writer(std::sync::Arc::new(s.clone()), &tasks, config);
    for i in 0..100 {
        writer.send(fenced_run(&format!("c{}", i % 10), i, None)).await;
    }
    writer.flush().await;

    tokio::task::block_in_place(|| server.stop()).unwrap();
    for i in 100..200 {
        writer.send(fenced_run(&format!("c{}", i % 10), i, None)).await;
    }
    eventually("the writer to fail against the stopped server", || async {
        writer.stats().failed_attempts > 0
    })
    .await;
    tokio::task::block_in_place(|| server.start_again()).unwrap();
    tokio::time::timeout(LONG, writer.flush())
        .await
        .expect("the writer catches up");

    let stats = writer.stats();
    assert_eq!((stats.events, stats.poisoned), (200, 0), "{stats:?}");
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM results")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(stored, 200, "nothing lost, nothing twice");
    writer.close_and_wait().await;
    tasks.close();
    tasks.wait().await;
}

//! Location quorum on PostgreSQL: the tally in the write transaction, one check-level
//! transition and one notification per channel whichever node's write tips it (also
//! when two nodes write at once), and second-opinion requests between nodes.

use std::sync::Arc;

use pulsecheck_core::outbox::AlertKind;
use pulsecheck_core::quorum::{Located, Quorum};
use pulsecheck_core::state::{State, Transition};
use pulsecheck_core::storage::{Console, Storage, WriteEvent};
use pulsecheck_core::Outcome;
use pulsecheck_postgres::PgStore;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::common::*;

const CHANNELS: [&str; 2] = ["ops", "pager"];

fn quorum() -> Quorum {
    Quorum {
        locations: vec!["eu".into(), "us".into(), "ap".into()],
        min_down: 2,
    }
}

/// A run of `check` at `location` at `at` seconds whose location state is `to`; with
/// `from`, the location changed from it, carrying the would-be check-level alerts the
/// monitor attaches (keys left to the store, as the monitor does).
fn located(check: &str, location: &str, from: Option<State>, to: State, at: i64) -> WriteEvent {
    let outcome = if to == State::Down { Outcome::Down } else { Outcome::Up };
    let at = ts(at);
    let streak = vec![cause(outcome, at)];
    let mut event = result_event(check, outcome, at, 10);
    if let WriteEvent::Run(run) = &mut event {
        run.state = state(to, Some(at), streak.clone());
        run.quorum = Some(Located {
            location: location.into(),
            quorum: quorum(),
            reminder: None,
        });
        if let Some(from) = from {
            run.transition = Some(Transition {
                from,
                to,
                at,
                cause: streak,
            });
            let kind = match (from, to) {
                (_, State::Down) => Some(AlertKind::Down),
                (State::Down, State::Up) => Some(AlertKind::Resolved),
                _ => None,
            };
            if let Some(kind) = kind {
                run.notifications = CHANNELS
                    .iter()
                    .map(|c| (c.to_string(), alert(check, "", kind, at)))
                    .collect();
            }
        }
    }
    event
}

async fn write(store: &PgStore, event: WriteEvent) {
    Storage::write(store, &[event], ts(0)).await.expect("write");
}

async fn check_state(store: &PgStore, check: &str) -> String {
    sqlx::query_scalar("SELECT state FROM checks WHERE name = $1")
        .bind(check)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

async fn transitions(store: &PgStore, check: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT from_state, to_state FROM transitions WHERE check_name = $1 ORDER BY id")
        .bind(check)
        .fetch_all(store.pool())
        .await
        .unwrap()
}

/// `(channel, kind, from, to)` of every notification of `check`, oldest first.
async fn notifications(store: &PgStore, check: &str) -> Vec<(String, String, String, String)> {
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT channel, kind, event FROM notifications WHERE check_name = $1 ORDER BY id")
            .bind(check)
            .fetch_all(store.pool())
            .await
            .unwrap();
    rows.into_iter()
        .map(|(channel, kind, event)| {
            let event: serde_json::Value = serde_json::from_str(&event).unwrap();
            (
                channel,
                kind,
                event["from"].as_str().unwrap().to_owned(),
                event["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[tokio::test]
async fn one_location_down_is_no_quorum_two_are_and_the_alert_is_written_once() {
    let Some(url) = database().await else { return };
    let eu = store(&url, "eu-1").await;
    let us = Arc::new(store(&url, "us-1").await);
    let ap = Arc::new(store(&url, "ap-1").await);
    Storage::write(&eu, &[register(&["api"])], ts(0)).await.unwrap();

    // Every location starts up: the first up location takes the check up, quietly.
    write(&eu, located("api", "eu", Some(State::Unknown), State::Up, 10)).await;
    write(&us, located("api", "us", Some(State::Unknown), State::Up, 11)).await;
    write(&ap, located("api", "ap", Some(State::Unknown), State::Up, 12)).await;
    assert_eq!(check_state(&eu, "api").await, "up");
    assert_eq!(transitions(&eu, "api").await, pairs(&[("unknown", "up")]));

    // eu sees a failure: no quorum, no alert, and the others are asked for a second
    // opinion, which another node sees and takes once.
    write(&eu, located("api", "eu", None, State::Up, 20)).await;
    assert!(
        us.pending_rechecks().await.unwrap().is_empty(),
        "an up result asks nothing"
    );
    let mut failure = located("api", "eu", None, State::Up, 30);
    if let WriteEvent::Run(run) = &mut failure {
        run.result = result("api", Outcome::Down, ts(30), 10);
    }
    write(&eu, failure).await;
    assert_eq!(
        us.pending_rechecks().await.unwrap(),
        pairs(&[("api", "ap"), ("api", "us")]),
        "a first failure asks the other locations"
    );
    write(&eu, located("api", "eu", Some(State::Up), State::Down, 40)).await;
    assert_eq!(
        us.pending_rechecks().await.unwrap().len(),
        2,
        "one pending request per location"
    );
    assert_eq!(
        check_state(&eu, "api").await,
        "up",
        "one location of three is no quorum"
    );
    assert!(notifications(&eu, "api").await.is_empty());
    let taken = us.take_rechecks("us", &["api".into()]).await.unwrap();
    assert_eq!(
        taken
            .iter()
            .map(|r| (r.check.as_str(), r.requested_at))
            .collect::<Vec<_>>(),
        [("api", ts(0))],
        "stamped with the failing write's time"
    );
    assert!(
        us.take_rechecks("us", &["api".into()]).await.unwrap().is_empty(),
        "served once"
    );
    assert_eq!(ap.pending_rechecks().await.unwrap(), pairs(&[("api", "ap")]));

    // us and ap go down at once, from two nodes: one of them tips the tally.
    let barrier = Arc::new(Barrier::new(2));
    let mut racers = JoinSet::new();
    for (store, location) in [(us.clone(), "us"), (ap.clone(), "ap")] {
        let barrier = barrier.clone();
        racers.spawn(async move {
            barrier.wait().await;
            write(&store, located("api", location, Some(State::Up), State::Down, 50)).await;
        });
    }
    racers.join_all().await;
    assert_eq!(check_state(&eu, "api").await, "down");
    assert_eq!(
        transitions(&eu, "api").await,
        pairs(&[("unknown", "up"), ("up", "down")])
    );
    let down: Vec<_> = CHANNELS
        .iter()
        .map(|c| (c.to_string(), "down".to_owned(), "up".to_owned(), "down".to_owned()))
        .collect();
    assert_eq!(
        notifications(&eu, "api").await,
        down,
        "one alert per channel, about the check"
    );

    // The page's view: each location's state; eu disagrees with nobody now.
    let views = Console::location_views(&eu, "api").await.unwrap();
    let shown: Vec<(&str, State, bool)> = views
        .iter()
        .map(|v| (v.location.as_str(), v.state, v.disagrees))
        .collect();
    assert_eq!(
        shown,
        [
            ("ap", State::Down, false),
            ("eu", State::Down, false),
            ("us", State::Down, false)
        ]
    );
    assert_eq!(views[0].last_error.as_deref(), Some("no answer within 5 s"));

    // Back up below the quorum: us up leaves two down (still down); ap up resolves once.
    write(&us, located("api", "us", Some(State::Down), State::Up, 60)).await;
    assert_eq!(check_state(&eu, "api").await, "down", "eu and ap still agree");
    assert_eq!(notifications(&eu, "api").await.len(), 2);
    let views = Console::location_views(&eu, "api").await.unwrap();
    assert!(
        views.iter().find(|v| v.location == "us").unwrap().disagrees,
        "us is up, the check down"
    );
    write(&ap, located("api", "ap", Some(State::Down), State::Up, 70)).await;
    assert_eq!(check_state(&eu, "api").await, "up");
    assert_eq!(
        transitions(&eu, "api").await,
        pairs(&[("unknown", "up"), ("up", "down"), ("down", "up")])
    );
    let resolved: Vec<_> = notifications(&eu, "api").await.into_iter().skip(2).collect();
    let expected: Vec<_> = CHANNELS
        .iter()
        .map(|c| (c.to_string(), "resolved".to_owned(), "down".to_owned(), "up".to_owned()))
        .collect();
    assert_eq!(resolved, expected);

    // Results carry their location; a taken-over location resumes from its own state.
    let located_results: i64 = sqlx::query_scalar("SELECT count(*) FROM results WHERE location = 'eu'")
        .fetch_one(eu.pool())
        .await
        .unwrap();
    assert_eq!(located_results, 4);
    let states = Storage::load_states_of(&*us, &["api@eu".into(), "api@us".into(), "api".into()])
        .await
        .unwrap();
    assert_eq!(states["api@eu"].state, State::Down);
    assert_eq!(states["api@us"].state, State::Up);
    assert_eq!(states["api"].state, State::Up);
}

/// Many checks, each with two locations tipping it from two nodes at the same moment:
/// every check ends down with exactly one transition and one alert per channel.
#[tokio::test]
async fn racing_locations_never_alert_twice() {
    let Some(url) = database().await else { return };
    let us = Arc::new(store(&url, "us-1").await);
    let ap = Arc::new(store(&url, "ap-1").await);
    let names: Vec<String> = (0..20).map(|i| format!("race-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    Storage::write(&*us, &[register(&refs)], ts(0)).await.unwrap();
    for name in &names {
        write(&us, located(name, "eu", Some(State::Unknown), State::Up, 1)).await;
    }
    let barrier = Arc::new(Barrier::new(2));
    let mut batches = JoinSet::new();
    for (store, location) in [(us.clone(), "us"), (ap.clone(), "ap")] {
        let (barrier, names) = (barrier.clone(), names.clone());
        batches.spawn(async move {
            let events: Vec<WriteEvent> = names
                .iter()
                .map(|n| located(n, location, Some(State::Up), State::Down, 5))
                .collect();
            barrier.wait().await;
            Storage::write(&*store, &events, ts(5)).await.expect("write");
        });
    }
    batches.join_all().await;
    for name in &names {
        assert_eq!(check_state(&us, name).await, "down", "{name}");
        assert_eq!(
            transitions(&us, name).await,
            pairs(&[("unknown", "up"), ("up", "down")]),
            "{name}"
        );
        assert_eq!(notifications(&us, name).await.len(), CHANNELS.len(), "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// Check-level alerts through the real monitor: one node per location, each judging its
// location with the monitor's own policy code (silences, acknowledgements, reminders)
// and writing to the shared store, which decides the check-level state and alerts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pulsecheck_core::clock::Clock;
use pulsecheck_core::cluster::Member;
use pulsecheck_core::monitor::{Monitor, MonitoredCheck, Policy};
use pulsecheck_core::ownership::Owned;
use pulsecheck_core::scheduler::Run;
use pulsecheck_core::state::Thresholds;
use pulsecheck_core::storage::{MemoryStorage, RunRecord};
use pulsecheck_core::writer::{spawn_writer, WriterConfig};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

const MINUTE: Duration = Duration::from_secs(60);

fn quorum_check(min_down: usize, reminder: Option<Duration>) -> MonitoredCheck {
    MonitoredCheck {
        name: "api".into(),
        group: Some("web".into()),
        target: "https://api.example".into(),
        // One result decides a location, so every run below is a judgement.
        thresholds: Thresholds { failure: 1, success: 1 },
        channels: CHANNELS.iter().map(|c| c.to_string()).collect(),
        reminder,
        quorum: Some(Quorum { min_down, ..quorum() }),
    }
}

/// A node at one location: its own store connection and monitor, holding `api@location`.
struct LocationNode {
    store: Arc<PgStore>,
    monitor: Monitor,
}

impl LocationNode {
    async fn start(url: &str, location: &str, policy: watch::Receiver<Arc<Policy>>) -> LocationNode {
        let node = format!("{location}-1");
        let owned = Owned {
            node: node.clone(),
            members: vec![Member {
                node: node.clone(),
                location: Some(location.into()),
            }],
            leases: HashMap::from([(format!("api@{location}"), 1)]),
            adopted: HashMap::new(),
        };
        let (_, ownership) = watch::channel(Arc::new(owned));
        // The monitor's writer is not used: the test writes each record itself, to race
        // the nodes' transactions at chosen moments.
        let unused = spawn_writer(
            Arc::new(MemoryStorage::default()),
            &TaskTracker::new(),
            WriterConfig::default(),
        );
        let monitor = Monitor::new(policy, HashMap::new(), unused, Clock::new()).with_ownership(ownership);
        LocationNode {
            store: Arc::new(store(url, &node).await),
            monitor,
        }
    }

    /// The monitor's record of one run at `at` seconds. Fencing is the cluster tests'
    /// subject; these nodes hold no lease rows, so the fence is dropped.
    fn judge(&mut self, outcome: Outcome, at: i64) -> RunRecord {
        let mut result = result("api", outcome, ts(at), 10);
        result.target = "https://api.example".into();
        let run = Run {
            check: "api".into(),
            result,
            lag: Duration::ZERO,
            skipped: 0,
        };
        let mut record = self.monitor.handle(run).expect("api@location is held here");
        record.fence = None;
        record
    }

    async fn run(&mut self, outcome: Outcome, at: i64) {
        let record = self.judge(outcome, at);
        Storage::write(&*self.store, &[WriteEvent::Run(Box::new(record))], ts(at))
            .await
            .expect("write");
    }
}

/// Runs `a` and `b` on two nodes, judged first, then written at the same moment so that
/// their transactions contend for the check's row.
async fn race(a: (&mut LocationNode, Outcome, i64), b: (&mut LocationNode, Outcome, i64)) {
    let barrier = Arc::new(Barrier::new(2));
    let mut writes = JoinSet::new();
    for (node, outcome, at) in [a, b] {
        let record = node.judge(outcome, at);
        let (store, barrier) = (node.store.clone(), barrier.clone());
        writes.spawn(async move {
            barrier.wait().await;
            Storage::write(&*store, &[WriteEvent::Run(Box::new(record))], ts(at))
                .await
                .expect("write");
        });
    }
    writes.join_all().await;
}

/// `(kind, at in seconds)` of `check`'s notifications on channel `ops`, oldest first.
async fn alerts(store: &PgStore, check: &str) -> Vec<(String, i64)> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, event FROM notifications WHERE check_name = $1 AND channel = 'ops' ORDER BY id")
            .bind(check)
            .fetch_all(store.pool())
            .await
            .unwrap();
    rows.into_iter()
        .map(|(kind, event)| {
            let event: pulsecheck_core::outbox::AlertEvent = serde_json::from_str(&event).unwrap();
            (kind, event.at.as_second() - ts(0).as_second())
        })
        .collect()
}

async fn notification_count(store: &PgStore, check: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM notifications WHERE check_name = $1")
        .bind(check)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

fn kinds_of(alerts: &[(String, i64)], kind: &str) -> Vec<i64> {
    alerts.iter().filter(|(k, _)| k == kind).map(|(_, at)| *at).collect()
}

/// Three nodes start up, then us and ap take the check down together.
async fn down_at_60(url: &str, policy: &watch::Sender<Arc<Policy>>) -> [LocationNode; 3] {
    let mut eu = LocationNode::start(url, "eu", policy.subscribe()).await;
    let mut us = LocationNode::start(url, "us", policy.subscribe()).await;
    let mut ap = LocationNode::start(url, "ap", policy.subscribe()).await;
    Storage::write(&*eu.store, &[register(&["api"])], ts(0)).await.unwrap();
    eu.run(Outcome::Up, 1).await;
    us.run(Outcome::Up, 2).await;
    ap.run(Outcome::Up, 3).await;
    race((&mut us, Outcome::Down, 60), (&mut ap, Outcome::Down, 60)).await;
    assert_eq!(check_state(&eu.store, "api").await, "down");
    [eu, us, ap]
}

/// A check that stays down reminds once per interval, cluster-wide: us and ap write
/// (racing, both due) and eu writes too, every 30 s for half an hour, and exactly one
/// reminder per channel goes out every 5 minutes. A node that replaces another resumes
/// the count from the store: no burst, no gap.
#[tokio::test]
async fn a_quorum_check_down_reminds_once_per_interval_across_racing_nodes() {
    let Some(url) = database().await else { return };
    let (policy, _) = watch::channel(Arc::new(Policy::new(
        vec![quorum_check(2, Some(5 * MINUTE))],
        Vec::new(),
    )));
    let [mut eu, mut us, mut ap] = down_at_60(&url, &policy).await;
    assert_eq!(alerts(&eu.store, "api").await, [("down".to_owned(), 60)]);

    // Rounds at 90 s, 120 s, ...: us at the round, ap 7 s and eu 13 s later, so that each
    // would send its own reminder if the store did not decide them.
    for round in 0..60 {
        let at = 90 + 30 * round;
        race((&mut us, Outcome::Down, at), (&mut ap, Outcome::Down, at + 7)).await;
        eu.run(Outcome::Up, at + 13).await;
        if round == 30 {
            // us fails over to a fresh node (new monitor, new connection).
            us = LocationNode::start(&url, "us", policy.subscribe()).await;
        }
    }
    let sent = alerts(&eu.store, "api").await;
    let reminders = kinds_of(&sent, "reminder");
    assert_eq!(reminders.len(), 6, "one per 5 minutes from 60 s to 1873 s: {sent:?}");
    let mut last = 60;
    for at in &reminders {
        let gap = at - last;
        assert!(
            (300..300 + 30).contains(&gap),
            "reminders {reminders:?} after the down alert at 60"
        );
        last = *at;
    }
    assert_eq!(
        notification_count(&eu.store, "api").await,
        i64::try_from(CHANNELS.len() * 7).unwrap(),
        "the down alert and six reminders, once per channel"
    );
    assert_eq!(check_state(&eu.store, "api").await, "down");
}

/// A silence holds the down alert and the reminders back (the overdue reminder goes out
/// when it ends), an acknowledgement of the span stops its reminders, and a new down
/// span alerts and reminds again: the monitor's rules, applied by the store.
#[tokio::test]
async fn a_quorum_check_reminds_neither_while_silenced_nor_once_acknowledged() {
    let Some(url) = database().await else { return };
    let silenced = || {
        Policy::new(vec![quorum_check(2, Some(5 * MINUTE))], Vec::new())
            .with_silences(HashMap::from([("api".to_owned(), ts(600))]))
    };
    let (policy, _) = watch::channel(Arc::new(silenced()));
    let [mut eu, mut us, mut ap] = down_at_60(&url, &policy).await;
    for at in (90..600).step_by(30) {
        race((&mut us, Outcome::Down, at), (&mut ap, Outcome::Down, at + 7)).await;
        eu.run(Outcome::Up, at + 13).await;
    }
    assert!(alerts(&eu.store, "api").await.is_empty(), "silenced until 600 s");
    race((&mut us, Outcome::Down, 600), (&mut ap, Outcome::Down, 607)).await;
    let overdue = alerts(&eu.store, "api").await;
    assert_eq!(kinds_of(&overdue, "reminder").len(), 1, "{overdue:?}");
    assert!(overdue[0].1 == 600 || overdue[0].1 == 607, "{overdue:?}");

    // The operator acknowledges the span (the check-level one, started at 60 s).
    let since: i64 = sqlx::query_scalar("SELECT since FROM checks WHERE name = 'api'")
        .fetch_one(eu.store.pool())
        .await
        .unwrap();
    assert_eq!(since, ts(60).as_millisecond());
    policy.send_replace(Arc::new(
        silenced().with_acknowledged(HashMap::from([("api".to_owned(), ts(60))])),
    ));
    for at in (630..2400).step_by(30) {
        race((&mut us, Outcome::Down, at), (&mut ap, Outcome::Down, at + 7)).await;
    }
    assert_eq!(
        alerts(&eu.store, "api").await.len(),
        1,
        "acknowledged: no more reminders"
    );

    // Recovery, then a new span: the old acknowledgement does not cover it.
    race((&mut us, Outcome::Up, 2400), (&mut ap, Outcome::Up, 2400)).await;
    race((&mut us, Outcome::Down, 2430), (&mut ap, Outcome::Down, 2430)).await;
    for at in (2460..2800).step_by(30) {
        race((&mut us, Outcome::Down, at), (&mut ap, Outcome::Down, at + 7)).await;
    }
    let sent = alerts(&eu.store, "api").await;
    assert_eq!(
        sent[1..3],
        [("resolved".to_owned(), 2400), ("down".to_owned(), 2430)],
        "{sent:?}"
    );
    // Five minutes after the down alert, from whichever of us and ap won that race.
    assert_eq!(kinds_of(&sent[3..], "reminder").len(), 1, "{sent:?}");
    assert!([2730, 2737].contains(&sent[3].1), "{sent:?}");

    // Acknowledged through one node's API: in the store, not in these nodes' policies.
    // The store's open incident counts as well: no more reminders for this span.
    let incident: i64 = sqlx::query_scalar("SELECT id FROM incidents WHERE check_name = 'api' AND ended_at IS NULL")
        .fetch_one(eu.store.pool())
        .await
        .unwrap();
    Console::acknowledge_incident(&*eu.store, incident, ts(2800))
        .await
        .unwrap()
        .expect("the open incident");
    for at in (2820..3600).step_by(30) {
        race((&mut us, Outcome::Down, at), (&mut ap, Outcome::Down, at + 7)).await;
    }
    assert_eq!(
        alerts(&eu.store, "api").await.len(),
        sent.len(),
        "acknowledged in the store"
    );
}

/// A reload that changes `min_down` so that the standing tally crosses it flips the
/// check on the next write, with the same transition and alerts as any flip, once,
/// although two nodes write at that moment; and back when it is changed back.
#[tokio::test]
async fn a_reload_that_moves_min_down_across_the_tally_alerts_once() {
    let Some(url) = database().await else { return };
    let (policy, _) = watch::channel(Arc::new(Policy::new(vec![quorum_check(3, None)], Vec::new())));
    let mut eu = LocationNode::start(&url, "eu", policy.subscribe()).await;
    let mut us = LocationNode::start(&url, "us", policy.subscribe()).await;
    let mut ap = LocationNode::start(&url, "ap", policy.subscribe()).await;
    Storage::write(&*eu.store, &[register(&["api"])], ts(0)).await.unwrap();
    eu.run(Outcome::Up, 1).await;
    us.run(Outcome::Up, 2).await;
    ap.run(Outcome::Up, 3).await;
    race((&mut eu, Outcome::Down, 60), (&mut us, Outcome::Down, 60)).await;
    ap.run(Outcome::Up, 61).await;
    assert_eq!(check_state(&eu.store, "api").await, "up", "two of three, min_down 3");
    assert!(alerts(&eu.store, "api").await.is_empty());

    // Reload: min_down 2. Nothing changes at any location; the next writes (eu still
    // down, ap up, racing) re-tally under the new quorum.
    policy.send_replace(Arc::new(Policy::new(vec![quorum_check(2, None)], Vec::new())));
    race((&mut eu, Outcome::Down, 90), (&mut ap, Outcome::Up, 90)).await;
    assert_eq!(check_state(&eu.store, "api").await, "down");
    us.run(Outcome::Down, 91).await;
    assert_eq!(
        transitions(&eu.store, "api").await,
        pairs(&[("unknown", "up"), ("up", "down")])
    );
    assert_eq!(
        notifications(&eu.store, "api").await,
        CHANNELS
            .iter()
            .map(|c| (c.to_string(), "down".to_owned(), "up".to_owned(), "down".to_owned()))
            .collect::<Vec<_>>(),
        "one down alert per channel, about the check"
    );
    let incidents: i64 =
        sqlx::query_scalar("SELECT count(*) FROM incidents WHERE check_name = 'api' AND ended_at IS NULL")
            .fetch_one(eu.store.pool())
            .await
            .unwrap();
    assert_eq!(incidents, 1);

    // Reload back to min_down 3: the next writes resolve it, once.
    policy.send_replace(Arc::new(Policy::new(vec![quorum_check(3, None)], Vec::new())));
    race((&mut eu, Outcome::Down, 120), (&mut ap, Outcome::Up, 120)).await;
    us.run(Outcome::Down, 121).await;
    assert_eq!(check_state(&eu.store, "api").await, "up");
    let kinds: Vec<String> = alerts(&eu.store, "api").await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["down", "resolved"]);
}

/// A first failure announces its second-opinion requests on commit: a node listening
/// for its location hears it at once and takes the request; a request still pending is
/// not announced again; a listener whose connection is killed reconnects and keeps
/// hearing.
/// Prints the latency from the failing write's start to the listener's wake-up.
#[tokio::test]
async fn second_opinion_requests_wake_the_other_locations_at_once() {
    let Some(url) = database().await else { return };
    let eu = store(&url, "eu-1").await;
    let us = store(&url, "us-1").await;
    Storage::write(&eu, &[register(&["api"])], ts(0)).await.unwrap();
    for location in ["eu", "us", "ap"] {
        write(&eu, located("api", location, Some(State::Unknown), State::Up, 1)).await;
    }
    let mut listener = us.listen_rechecks("us").await.expect("listen");
    let mut latencies = Vec::new();
    for round in 0..20_i64 {
        if round == 10 {
            // The listener's connection dies (a proxy or the server closed it): the next
            // wait reconnects and reports it, so the node looks for missed requests.
            let killed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()) AS t",
            )
            .fetch_one(eu.pool())
            .await
            .unwrap();
            assert!(killed >= 1, "the listener's backend");
            tokio::time::timeout(Duration::from_secs(60), listener.next())
                .await
                .expect("reconnects")
                .expect("reconnected");
        }
        let at = 10 + round * 10;
        let mut failure = located("api", "eu", None, State::Up, at);
        if let WriteEvent::Run(run) = &mut failure {
            run.result = result("api", Outcome::Down, ts(at), 10);
        }
        let started = Instant::now();
        write(&eu, failure).await;
        tokio::time::timeout(Duration::from_secs(60), listener.next())
            .await
            .expect("announced")
            .expect("heard");
        latencies.push(started.elapsed());
        let taken = us.take_rechecks("us", &["api".into()]).await.unwrap();
        assert_eq!(taken.len(), 1, "round {round}");
        // ap's request stays; the next failure finds it pending and announces only us's.
        write(&eu, located("api", "eu", None, State::Up, at + 5)).await;
    }
    assert_eq!(us.pending_rechecks().await.unwrap(), pairs(&[("api", "ap")]));
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "second opinion: failing write start → other location woken: min {:.1} ms, median {:.1} ms, max {:.1} ms over {} rounds",
        ms(latencies[0]),
        ms(latencies[latencies.len() / 2]),
        ms(latencies[latencies.len() - 1]),
        latencies.len()
    );
}

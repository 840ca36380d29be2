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

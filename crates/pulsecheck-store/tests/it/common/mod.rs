//! Fixtures shared by the store tests: fixed timestamps, results, transitions, alerts,
//! and a side connection for injecting failures.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use pulsecheck_core::outbox::{AlertEvent, AlertKind, CauseResult};
use pulsecheck_core::state::{CheckState, State, Transition};
use pulsecheck_core::{CheckResult, Outcome, ProbeKind, Reason};
use pulsecheck_store::{CheckMeta, RunRecord, Store, WriteEvent};
use sqlx::Connection;

/// 2026-01-01T00:00:00Z plus `seconds`.
pub fn ts(seconds: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_767_225_600 + seconds).unwrap()
}

pub fn result(check: &str, outcome: Outcome, at: jiff::Timestamp, duration_ms: u64) -> CheckResult {
    let mut r = CheckResult::new(&format!("https://{check}.example"), None, ProbeKind::Http, outcome);
    r.started_at = at;
    r.duration_ms = Duration::from_millis(duration_ms);
    r.queue_ms = Duration::from_micros(250);
    r.timings.dns_ms = Some(Duration::from_micros(1_500));
    r.timings.connect_ms = Some(Duration::from_millis(2));
    r.timings.ttfb_ms = Some(Duration::from_millis(duration_ms / 2));
    if outcome == Outcome::Down {
        r.reason = Some(Reason::Timeout);
        r.error = Some("no answer within 5 s".into());
    } else {
        r.http_status = Some(200);
    }
    r
}

pub fn cause(outcome: Outcome, at: jiff::Timestamp) -> CauseResult {
    CauseResult {
        at,
        outcome,
        reason: (outcome == Outcome::Down).then_some(Reason::Timeout),
        error: None,
        duration_ms: 12.5,
    }
}

pub fn state(state: State, since: Option<jiff::Timestamp>, streak: Vec<CauseResult>) -> CheckState {
    CheckState { state, since, streak }
}

pub fn alert(check: &str, key: &str, kind: AlertKind, at: jiff::Timestamp) -> AlertEvent {
    let (from, to) = match kind {
        AlertKind::Resolved => ("down", "up"),
        _ => ("up", "down"),
    };
    AlertEvent {
        idempotency_key: key.to_owned(),
        kind,
        check: check.to_owned(),
        group: Some("web".into()),
        target: format!("https://{check}.example"),
        from: from.into(),
        to: to.into(),
        at,
        reason: (kind != AlertKind::Resolved).then_some(Reason::Timeout),
        error: None,
        cause: vec![cause(Outcome::Down, at)],
    }
}

/// A run of `check` at `at` that caused a transition, with one notification per
/// channel, keyed `{check}:{to}:{seconds}:{channel}`.
pub fn transition(check: &str, from: State, to: State, at: jiff::Timestamp, channels: &[&str]) -> WriteEvent {
    let outcome = if to == State::Down { Outcome::Down } else { Outcome::Up };
    let kind = if to == State::Down {
        AlertKind::Down
    } else {
        AlertKind::Resolved
    };
    let streak = vec![cause(outcome, at)];
    WriteEvent::Run(Box::new(RunRecord {
        check: check.to_owned(),
        fence: None,
        quorum: None,
        result: result(check, outcome, at, 12),
        transition: Some(Transition {
            from,
            to,
            at,
            cause: streak.clone(),
        }),
        state: state(to, Some(at), streak),
        notifications: channels
            .iter()
            .map(|channel| {
                let key = format!("{check}:{to}:{}:{channel}", at.as_second() - ts(0).as_second());
                (channel.to_string(), alert(check, &key, kind, at))
            })
            .collect(),
    }))
}

pub fn result_event(check: &str, outcome: Outcome, at: jiff::Timestamp, duration_ms: u64) -> WriteEvent {
    let s = if outcome == Outcome::Up { State::Up } else { State::Down };
    WriteEvent::Run(Box::new(RunRecord {
        check: check.to_owned(),
        fence: None,
        quorum: None,
        result: result(check, outcome, at, duration_ms),
        state: state(s, Some(ts(0)), vec![cause(outcome, at)]),
        transition: None,
        notifications: Vec::new(),
    }))
}

pub fn register(names: &[&str]) -> WriteEvent {
    WriteEvent::RegisterChecks {
        checks: names
            .iter()
            .map(|name| CheckMeta {
                name: name.to_string(),
                group: Some("web".into()),
                target: format!("https://{name}.example"),
                origin: Default::default(),
            })
            .collect(),
        retire_others: false,
    }
}

pub async fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path().join("state/pulsecheck.db")).await.unwrap()
}

/// Runs raw SQL on a connection of its own, as an operator (or a fault) would.
pub async fn side_sql(path: &Path, sql: &str) {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(5));
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::query(sql).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

/// Every check the store knows, retired ones included, ordered by name, as `pulsecheck
/// status` and the API read them.
pub async fn status(store: &Store) -> Vec<pulsecheck_core::storage::console::CheckSummary> {
    use pulsecheck_core::storage::console::{CheckPage, Console};
    store
        .check_page(&CheckPage::including_retired(None, 10_000))
        .await
        .unwrap()
}

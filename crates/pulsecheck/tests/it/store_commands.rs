//! `status`, `history` and `incidents`: the real binary reading a real SQLite file (and a
//! real PostgreSQL database) that the store wrote, with results stamped relative to now.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use pulsecheck_core::outbox::CauseResult;
use pulsecheck_core::state::{CheckState, State, Transition};
use pulsecheck_core::{CheckResult, Outcome, ProbeKind, Reason};
use pulsecheck_store::{CheckMeta, RunRecord, Store, WriteEvent};
use serde_json::Value;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_pulsecheck");

fn ago(seconds: i64) -> jiff::Timestamp {
    jiff::Timestamp::now() - jiff::SignedDuration::from_secs(seconds)
}

/// A run of `check` at `at`; `to` makes it the run that moved the check to that state.
fn run(check: &str, outcome: Outcome, at: jiff::Timestamp, to: Option<State>) -> WriteEvent {
    let mut result = CheckResult::new(&format!("https://{check}.test/health"), None, ProbeKind::Http, outcome);
    result.started_at = at;
    result.duration_ms = Duration::from_millis(42);
    result.timings.dns_ms = Some(Duration::from_micros(1_500));
    result.timings.connect_ms = Some(Duration::from_millis(3));
    if outcome == Outcome::Down {
        result.reason = Some(Reason::Timeout);
        result.error = Some("no response within 5 s (in the ttfb phase)".into());
    } else {
        result.http_status = Some(200);
        result.timings.ttfb_ms = Some(Duration::from_millis(30));
    }
    let cause = CauseResult {
        at,
        outcome,
        reason: result.reason,
        error: result.error.clone(),
        duration_ms: 42.0,
    };
    let state = if outcome == Outcome::Down {
        State::Down
    } else {
        State::Up
    };
    WriteEvent::Run(Box::new(RunRecord {
        check: check.into(),
        fence: None,
        quorum: None,
        result,
        state: CheckState {
            state,
            since: Some(at),
            streak: vec![cause.clone()],
        },
        transition: to.map(|to| Transition {
            from: if to == State::Down { State::Up } else { State::Down },
            to,
            at,
            cause: vec![cause],
        }),
        notifications: Vec::new(),
    }))
}

fn register(names: &[&str]) -> WriteEvent {
    WriteEvent::RegisterChecks {
        checks: names
            .iter()
            .map(|name| CheckMeta {
                name: name.to_string(),
                group: None,
                target: format!("https://{name}.test/health"),
                origin: Default::default(),
            })
            .collect(),
        retire_others: true,
    }
}

async fn database(path: &Path, events: Vec<WriteEvent>) {
    let store = Store::open(path).await.unwrap();
    store.write(&events, jiff::Timestamp::now()).await.unwrap();
    store.close().await;
}

async fn pulsecheck(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("TZ", "UTC")
        .env_remove("PULSECHECK_DB")
        .env("NO_COLOR", "1");
    for (name, value) in env {
        command.env(name, value);
    }
    command.kill_on_drop(true).output().await.unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn db_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn status_shows_when_checks_ran_and_run_next_and_flags_stale_results() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.db");
    // api runs every 60 s, db every 30 s; db is down. Both ran seconds ago.
    database(
        &fresh,
        vec![
            register(&["api", "db"]),
            run("api", Outcome::Up, ago(65), Some(State::Up)),
            run("api", Outcome::Up, ago(5), None),
            run("db", Outcome::Down, ago(40), Some(State::Down)),
            run("db", Outcome::Down, ago(10), None),
        ],
    )
    .await;
    let output = pulsecheck(&["status", "--db", &db_arg(&fresh)], &[]).await;
    let (out, err) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a check is down, every result fresh\n{out}{err}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("CHECK") && lines[0].contains("LAST RUN") && lines[0].contains("NEXT RUN"));
    assert!(lines[1].starts_with("db "), "down first: {out}");
    assert!(lines[2].starts_with("api "), "{out}");
    assert!(lines[2].contains(" s ago") && lines[2].contains("in "), "{out}");
    assert!(lines[1].contains(" UTC"), "times carry their zone: {out}");
    assert!(!out.contains("STALE") && err.is_empty(), "{out}{err}");

    // A check that stopped running ten minutes ago, next to one that runs.
    let stuck = dir.path().join("stuck.db");
    database(
        &stuck,
        vec![
            register(&["api", "old"]),
            run("api", Outcome::Up, ago(65), Some(State::Up)),
            run("api", Outcome::Up, ago(5), None),
            run("old", Outcome::Up, ago(660), Some(State::Up)),
            run("old", Outcome::Up, ago(600), None),
        ],
    )
    .await;
    let output = pulsecheck(&["status", "--db", &db_arg(&stuck)], &[]).await;
    let (out, err) = text(&output);
    assert_eq!(output.status.code(), Some(4), "{out}{err}");
    let old = out.lines().find(|l| l.starts_with("old ")).unwrap();
    assert!(old.contains("min ago STALE") && old.contains("overdue"), "{out}");
    assert!(err.contains("no result for more than two intervals: old"), "{err}");
    let json = pulsecheck(&["status", "--db", &db_arg(&stuck), "--format", "json"], &[]).await;
    assert_eq!(json.status.code(), Some(4));
    let rows: Vec<Value> = text(&json)
        .0
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let old = rows.iter().find(|r| r["name"] == "old").unwrap();
    assert_eq!(
        (old["stale"].clone(), old["interval_s"].clone()),
        (Value::Bool(true), Value::from(60.0))
    );
    assert!(old["next_run_at"].is_string());

    // Nothing ran for an hour: the daemon is not running, and status says so.
    let stopped = dir.path().join("stopped.db");
    database(
        &stopped,
        vec![
            register(&["api", "db"]),
            run("api", Outcome::Up, ago(3_700), Some(State::Up)),
            run("api", Outcome::Up, ago(3_640), None),
            run("db", Outcome::Down, ago(3_630), Some(State::Down)),
            run("db", Outcome::Down, ago(3_600), None),
        ],
    )
    .await;
    let output = pulsecheck(&["status", "--db", &db_arg(&stopped)], &[]).await;
    let (out, err) = text(&output);
    assert_eq!(output.status.code(), Some(4), "stale beats down\n{out}{err}");
    assert!(
        err.contains("`pulsecheck serve` is not running on this database"),
        "{err}"
    );
    assert!(err.contains("1 h 0 min ago") && err.contains(" UTC"), "{err}");
}

/// `status`, `history` and `incidents` without flags find the database where `serve`
/// puts it without flags, and all honour PULSECHECK_DB as `serve` does.
#[tokio::test]
async fn without_flags_the_store_commands_find_the_database_serve_uses() {
    let dir = tempfile::tempdir().unwrap();
    let state_home = dir.path().join("state");
    let default = pulsecheck::serve::database_path(None, None, None);
    let expected = {
        // What `serve` resolves with XDG_STATE_HOME pointing into the test's directory.
        let relative = default.iter().rev().take(2).collect::<Vec<_>>();
        state_home.join(relative[1]).join(relative[0])
    };
    database(
        &expected,
        vec![register(&["api"]), run("api", Outcome::Up, ago(5), Some(State::Up))],
    )
    .await;
    for args in [&["status"][..], &["history", "api"], &["incidents"]] {
        let output = pulsecheck(args, &[("XDG_STATE_HOME", &state_home)]).await;
        let (out, err) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {out}{err}");
        assert!(out.contains("api") || out.contains("no incidents"), "{args:?}: {out}");
    }
    let elsewhere: PathBuf = dir.path().join("elsewhere.db");
    database(
        &elsewhere,
        vec![register(&["db"]), run("db", Outcome::Up, ago(5), Some(State::Up))],
    )
    .await;
    let output = pulsecheck(&["status"], &[("PULSECHECK_DB", &elsewhere)]).await;
    assert!(text(&output).0.contains("db "), "{:?}", text(&output));

    let output = pulsecheck(&["status"], &[("XDG_STATE_HOME", &dir.path().join("none"))]).await;
    let (_, err) = text(&output);
    assert_eq!(output.status.code(), Some(2));
    assert!(err.contains("no database at") && err.contains("PULSECHECK_DB"), "{err}");
}

#[tokio::test]
async fn history_pages_through_results_with_reasons_phases_and_uptime() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let mut events = vec![register(&["api", "db"])];
    // 8 runs a minute apart, the oldest two down: 75 % up.
    for i in 0..8 {
        let outcome = if i < 2 { Outcome::Down } else { Outcome::Up };
        let to = match i {
            0 => Some(State::Down),
            2 => Some(State::Up),
            _ => None,
        };
        events.push(run("api", outcome, ago(600 - i * 60), to));
    }
    database(&db, events).await;
    let output = pulsecheck(&["history", "api", "--db", &db_arg(&db), "--limit", "5"], &[]).await;
    let (out, err) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "api (https://api.test/health): uptime 24h 75.00 % · 7d 75.00 % · 30d 75.00 %"
    );
    assert!(lines[1].starts_with("STARTED") && lines[1].contains("CONNECT") && lines[1].contains("TTFB"));
    assert_eq!(lines.len(), 2 + 5 + 1, "{out}");
    assert!(
        lines[2].contains("up") && lines[2].contains("1.5") && lines[2].contains("30.0"),
        "{out}"
    );
    let older = lines[7]
        .strip_prefix("older: pulsecheck history api --limit 5 --before ")
        .unwrap();
    let output = pulsecheck(
        &[
            "history",
            "api",
            "--db",
            &db_arg(&db),
            "--limit",
            "5",
            "--before",
            older,
        ],
        &[],
    )
    .await;
    let (out, _) = text(&output);
    let rows: Vec<&str> = out.lines().skip(2).collect();
    assert_eq!(rows.len(), 3, "the rest, and no further page: {out}");
    assert!(
        rows[2].contains("down timeout") && rows[2].contains("no response within 5 s"),
        "{out}"
    );

    let output = pulsecheck(&["history", "api", "--db", &db_arg(&db), "--format", "json"], &[]).await;
    let report: Value = serde_json::from_str(&text(&output).0).unwrap();
    assert_eq!(report["results"].as_array().unwrap().len(), 8);
    assert_eq!(report["results"][7]["reason"], "timeout");
    assert_eq!(report["results"][0]["connect_ms"], 3.0);
    assert_eq!(report["uptime"][0]["window"], "24h");
    assert_eq!(
        (report["uptime"][2]["runs"].clone(), report["uptime"][2]["up"].clone()),
        (Value::from(8), Value::from(6))
    );
    assert!(report["next_before"].is_null());

    let output = pulsecheck(&["history", "apii", "--db", &db_arg(&db)], &[]).await;
    let (_, err) = text(&output);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        err.contains("no check named 'apii'") && err.contains("it has api, db"),
        "{err}"
    );
    let output = pulsecheck(&["history", "api", "--db", &db_arg(&db), "--before", "yesterday"], &[]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).1.contains("RFC 3339"), "{:?}", text(&output));
}

#[tokio::test]
async fn incidents_list_down_spans_with_duration_cause_and_uptime() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    database(
        &db,
        vec![
            register(&["api", "db"]),
            run("api", Outcome::Down, ago(7_200), Some(State::Down)),
            run("api", Outcome::Up, ago(7_200 - 150), Some(State::Up)),
            run("db", Outcome::Down, ago(1_000), Some(State::Down)),
            run("api", Outcome::Down, ago(600), Some(State::Down)),
        ],
    )
    .await;
    let output = pulsecheck(&["incidents", "--db", &db_arg(&db)], &[]).await;
    let (out, err) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("api: uptime 24h 33.33 %"), "{out}");
    assert!(lines[1].starts_with("db: uptime 24h 0.00 %"), "{out}");
    assert!(lines[2].starts_with("CHECK") && lines[2].contains("DURATION") && lines[2].contains("CAUSE"));
    assert!(
        lines[3].starts_with("api ") && lines[3].contains("ongoing"),
        "newest first: {out}"
    );
    assert!(lines[3].contains("timeout: no response within 5 s"), "{out}");
    assert!(lines[4].starts_with("db ") && lines[4].contains("ongoing"), "{out}");
    assert!(
        lines[5].starts_with("api ") && lines[5].contains("2 min 30 s"),
        "closed: {out}"
    );

    let output = pulsecheck(
        &[
            "incidents",
            "api",
            "--db",
            &db_arg(&db),
            "--format",
            "json",
            "--limit",
            "1",
        ],
        &[],
    )
    .await;
    let report: Value = serde_json::from_str(&text(&output).0).unwrap();
    let incidents = report["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["ongoing"], true);
    assert_eq!(incidents[0]["reason"], "timeout");
    let before = report["next_before_id"].as_i64().unwrap().to_string();
    let output = pulsecheck(
        &[
            "incidents",
            "api",
            "--db",
            &db_arg(&db),
            "--format",
            "json",
            "--before-id",
            &before,
        ],
        &[],
    )
    .await;
    let report: Value = serde_json::from_str(&text(&output).0).unwrap();
    assert_eq!(report["incidents"][0]["duration_s"], 150.0);
    assert_eq!(report["incidents"][0]["ongoing"], false);
    assert!(report["uptime"]["api"].is_array());
}

/// The README's serve quick start and the example config name the same database.
#[test]
fn the_quick_start_and_the_example_config_agree_on_the_database() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let exported = readme
        .lines()
        .find_map(|line| line.strip_prefix("export PULSECHECK_DB="))
        .expect("the quick start exports PULSECHECK_DB");
    let path = exported.split_whitespace().next().unwrap();
    for example in ["examples/pulsecheck.yaml", "examples/pulsecheck.toml"] {
        let text = std::fs::read_to_string(root.join(example)).unwrap();
        assert!(
            text.contains(&format!("${{PULSECHECK_DB:-{path}}}")),
            "{example}: store.path should default to {path}, as the README's commands use"
        );
    }
}

/// The ongoing spans' `duration_s` grows with the time of the read; everything else in
/// a report is the store's.
fn without_durations(mut report: Value) -> Value {
    if let Some(incidents) = report["incidents"].as_array_mut() {
        for incident in incidents {
            incident["duration_s"] = Value::Null;
        }
    }
    report
}

/// The same history written to an SQLite file and to PostgreSQL (started by the test):
/// `status`, `history` and `incidents` print the same JSON from both, whether the
/// PostgreSQL URL comes from `--store`, `PULSECHECK_STORE` or the config's `store.url`.
/// Skipped without PostgreSQL unless `CI` is set.
#[tokio::test]
async fn the_store_commands_read_postgresql_as_they_read_sqlite() {
    let Some(url) = crate::cluster::database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut events = vec![register(&["api", "db", "web"])];
    for i in 0..6 {
        let outcome = if i % 3 == 0 { Outcome::Down } else { Outcome::Up };
        let to = match i % 3 {
            0 => Some(State::Down),
            1 => Some(State::Up),
            _ => None,
        };
        events.push(run("api", outcome, ago(3_600 - i * 60), to));
    }
    events.push(run("db", Outcome::Down, ago(900), Some(State::Down)));
    events.push(run("db", Outcome::Down, ago(30), None));
    events.push(run("web", Outcome::Up, ago(20), Some(State::Up)));
    let db = dir.path().join("p.db");
    database(&db, events.clone()).await;
    let store = pulsecheck_postgres::PgStore::connect(&url, Default::default())
        .await
        .unwrap();
    store.write(&events, jiff::Timestamp::now()).await.unwrap();
    store.close().await;

    let config = dir.path().join("pg.yaml");
    std::fs::write(
        &config,
        "store:\n  url: ${PULSECHECK_TEST_STORE_URL}\nchecks:\n  - name: api\n    target: https://api.test/health\n    \
         interval: 60s\n  - name: db\n    target: https://db.test/health\n    interval: 30s\n  - name: web\n    \
         target: https://web.test/health\n    interval: 30s\n",
    )
    .unwrap();
    let url_path = PathBuf::from(&url);
    for command in [
        &["status", "--format", "json"][..],
        &["history", "api", "--format", "json"],
        &["incidents", "--format", "json"],
        &["incidents", "db", "--format", "json"],
    ] {
        let parse = |output: &Output| -> Vec<Value> {
            let (out, err) = text(output);
            assert!(
                matches!(output.status.code(), Some(0 | 1 | 4)),
                "{command:?}: exit {:?}\n{out}{err}",
                output.status.code()
            );
            let stream = serde_json::Deserializer::from_str(&out).into_iter::<Value>();
            stream.map(|v| without_durations(v.unwrap())).collect()
        };
        let from_sqlite = parse(&pulsecheck(&[command, &["--db", &db_arg(&db)]].concat(), &[]).await);
        assert!(!from_sqlite.is_empty(), "{command:?}");
        let by_flag = parse(&pulsecheck(&[command, &["--store", &url]].concat(), &[]).await);
        assert_eq!(by_flag, from_sqlite, "{command:?} with --store");
        let by_env = parse(&pulsecheck(command, &[("PULSECHECK_STORE", &url_path)]).await);
        assert_eq!(by_env, from_sqlite, "{command:?} with PULSECHECK_STORE");
        let config_arg = ["--config", config.to_str().unwrap()];
        let by_config = parse(
            &pulsecheck(
                &[command, &config_arg[..]].concat(),
                &[("PULSECHECK_TEST_STORE_URL", &url_path)],
            )
            .await,
        );
        // The config's intervals replace the estimated ones; the rest is the same.
        assert_eq!(by_config.len(), from_sqlite.len(), "{command:?} with store.url");
        if command[0] != "status" {
            assert_eq!(by_config, from_sqlite, "{command:?} with store.url");
        }
    }

    // A check the database does not have: the same clear error, naming the database
    // without its password.
    let output = pulsecheck(&["history", "apii", "--store", &url], &[]).await;
    let (_, err) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no check named 'apii'") && err.contains("it has api, db, web"),
        "{err}"
    );
    assert!(err.contains("postgres"), "{err}");

    // A server that is not there: exit 3 and a message that names it.
    let output = pulsecheck(&["status", "--store", "postgres://nobody@127.0.0.1:9/none"], &[]).await;
    let (_, err) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
}

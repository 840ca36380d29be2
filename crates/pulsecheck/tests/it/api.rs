//! The REST API of a real `pulsecheck serve` against the simulator: a check created
//! with a write token (from the environment) runs, runs on demand, survives a restart
//! still owned by the API, and the file's checks stay the file's.

use std::path::Path;
use std::time::Duration;

use pulsecheck_sim::SimConfig;
use serde_json::{json, Value};

use crate::daemon::{eventually, listening, Daemon};

const TOKEN: &str = "api-test-token-0123456789";

/// The API's base URL, from the daemon's log.
async fn api_base(log: &Path) -> String {
    format!("http://{}/api/v1", listening(log).await)
}

async fn call(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut request = client.request(method, url).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn results(api: &str, check: &str) -> Vec<Value> {
    let (status, page) = call(
        reqwest::Method::GET,
        &format!("{api}/checks/{check}/results?limit=1000"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn an_api_check_runs_runs_now_and_survives_a_restart() {
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let http = sim.info.http[0];
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pulsecheck.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  listen: 127.0.0.1:0\n  tokens: [\"${{PULSECHECK_API_TEST_TOKEN}}\"]\n  allow: [\"{http}\"]\n\
             checks:\n  - name: file-web\n    target: http://{http}/ok\n    interval: 1s\n    timeout: 500ms\n"
        ),
    )
    .unwrap();
    let db = dir.path().join("p.db");
    let first_log = dir.path().join("first.log");
    let daemon = Daemon::start(&config, &db, &first_log, &[("PULSECHECK_API_TEST_TOKEN", TOKEN)]);
    let api = api_base(&first_log).await;

    let (status, created) = call(
        reqwest::Method::POST,
        &format!("{api}/checks"),
        Some(json!({"name": "api-web", "target": format!("http://{http}/ok"), "interval": "1s", "timeout": "500ms"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["origin"], "api");
    eventually(Duration::from_secs(30), "a scheduled run of the API check", || async {
        (!results(&api, "api-web").await.is_empty()).then_some(())
    })
    .await;

    let (status, run) = call(reqwest::Method::POST, &format!("{api}/checks/api-web/run"), None).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["result"]["outcome"], "up");
    // Stores keep milliseconds.
    let ran_at = run["result"]["started_at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    eventually(Duration::from_secs(30), "the run on demand recorded", || async {
        results(&api, "api-web")
            .await
            .iter()
            .any(|r| r["id"].as_i64() == Some(ran_at))
            .then_some(())
    })
    .await;

    let (status, conflict) = call(
        reqwest::Method::PUT,
        &format!("{api}/checks/file-web"),
        Some(json!({"target": format!("http://{http}/ok")})),
    )
    .await;
    assert_eq!(status, 409, "{conflict}");
    assert!(conflict["error"]["message"]
        .as_str()
        .unwrap()
        .contains("pulsecheck.yaml"));
    daemon.stop(&first_log).await;
    let before_restart = {
        let store = pulsecheck_store::Store::open_existing(&db).await.unwrap();
        let page = pulsecheck_core::storage::history::ResultPage {
            before: None,
            limit: 10_000,
        };
        let count = pulsecheck_core::storage::History::recent_results(&store, "api-web", page)
            .await
            .unwrap()
            .len();
        store.close().await;
        count
    };
    assert!(before_restart >= 2, "a scheduled run and the run on demand");
    let second_log = dir.path().join("second.log");
    let daemon = Daemon::start(&config, &db, &second_log, &[("PULSECHECK_API_TEST_TOKEN", TOKEN)]);
    let api = api_base(&second_log).await;
    let (status, check) = call(reqwest::Method::GET, &format!("{api}/checks/api-web"), None).await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["origin"], "api");
    assert_eq!(check["running"], true);
    assert_eq!(check["definition"]["interval"], "1s");
    let (_, listed) = call(reqwest::Method::GET, &format!("{api}/checks?origin=api"), None).await;
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["api-web"]);
    eventually(
        Duration::from_secs(30),
        "the API check running again after the restart",
        || async { (results(&api, "api-web").await.len() > before_restart).then_some(()) },
    )
    .await;
    daemon.stop(&second_log).await;
    sim.shutdown().await;
}

/// Notifications of `check` in the outbox, as `(kind, created_at)`.
async fn notifications(api: &str, check: &str) -> Vec<(String, jiff::Timestamp)> {
    let (status, page) = call(
        reqwest::Method::GET,
        &format!("{api}/outbox?check={check}&limit=1000"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap().to_owned(),
                n["created_at"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

async fn state(api: &str, check: &str) -> Value {
    let (status, check) = call(reqwest::Method::GET, &format!("{api}/checks/{check}"), None).await;
    assert_eq!(status, 200, "{check}");
    check["status"].clone()
}

#[tokio::test]
async fn a_silence_holds_alerts_and_an_acknowledgement_stops_reminders_across_a_restart() {
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let (http, refused) = (sim.info.http[0], sim.info.refused);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pulsecheck.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  listen: 127.0.0.1:0\n  tokens: [\"${{PULSECHECK_API_TEST_TOKEN}}\"]\n  allow: [\"{http}\", \"{refused}\"]\n\
             defaults:\n  interval: 1s\n  timeout: 500ms\n  failure_threshold: 1\n  reminder: 2s\n  channels: [hook]\n\
             channels:\n  hook:\n    type: webhook\n    url: http://127.0.0.1:9/never\n\
             checks:\n  - name: db\n    target: tcp://{refused}\n"
        ),
    )
    .unwrap();
    let db = dir.path().join("p.db");
    let log = dir.path().join("first.log");
    let daemon = Daemon::start(&config, &db, &log, &[("PULSECHECK_API_TEST_TOKEN", TOKEN)]);
    let api = api_base(&log).await;

    // Silenced before it goes down: the transition is recorded, no alert is queued.
    let url = format!("{api}/checks/muted");
    let (status, body) = call(
        reqwest::Method::PUT,
        &url,
        Some(json!({"target": format!("tcp://{http}")})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        reqwest::Method::POST,
        &format!("{url}/silence"),
        Some(json!({"duration": "1h"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        reqwest::Method::PUT,
        &url,
        Some(json!({"target": format!("tcp://{refused}")})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    eventually(Duration::from_secs(30), "muted down", || async {
        (state(&api, "muted").await["state"] == "down").then_some(())
    })
    .await;
    assert!(
        notifications(&api, "muted").await.is_empty(),
        "silenced: nothing queued"
    );

    // db goes down and reminds every 2 s until its incident is acknowledged.
    eventually(Duration::from_secs(30), "a reminder for db", || async {
        notifications(&api, "db")
            .await
            .iter()
            .any(|(kind, _)| kind == "reminder")
            .then_some(())
    })
    .await;
    let (_, incidents) = call(reqwest::Method::GET, &format!("{api}/incidents?check=db"), None).await;
    let id = incidents["items"][0]["id"].as_i64().unwrap();
    let (status, acked) = call(
        reqwest::Method::POST,
        &format!("{api}/incidents/{id}/acknowledge"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{acked}");
    let acked_at: jiff::Timestamp = acked["acknowledged_at"].as_str().unwrap().parse().unwrap();

    // Five more runs (past two reminder periods), before and after a restart: none.
    let runs_after = |api: String, since: jiff::Timestamp| async move {
        let (_, page) = call(
            reqwest::Method::GET,
            &format!("{api}/checks/db/results?limit=1000"),
            None,
        )
        .await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["started_at"].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) > Some(since))
            .count()
    };
    eventually(Duration::from_secs(30), "five runs after the acknowledgement", || {
        let api = api.clone();
        async move { (runs_after(api, acked_at).await >= 5).then_some(()) }
    })
    .await;
    daemon.stop(&log).await;
    let log = dir.path().join("second.log");
    let daemon = Daemon::start(&config, &db, &log, &[("PULSECHECK_API_TEST_TOKEN", TOKEN)]);
    let api = api_base(&log).await;
    let restarted = jiff::Timestamp::now();
    eventually(Duration::from_secs(30), "five runs after the restart", || {
        let api = api.clone();
        async move { (runs_after(api, restarted).await >= 5).then_some(()) }
    })
    .await;
    // A reminder queued in the instant before the acknowledgement may exist; none after.
    let late: Vec<_> = notifications(&api, "db")
        .await
        .into_iter()
        .filter(|(kind, at)| kind == "reminder" && *at > acked_at + jiff::SignedDuration::from_millis(500))
        .collect();
    assert!(late.is_empty(), "reminders after the acknowledgement: {late:?}");
    assert!(
        notifications(&api, "muted").await.is_empty(),
        "still silenced after the restart"
    );
    assert!(state(&api, "muted").await["silenced_until"].is_string());
    daemon.stop(&log).await;
    sim.shutdown().await;
}

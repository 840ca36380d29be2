//! The REST API in process: the router answers `oneshot` requests against a real SQLite
//! store in a temp dir, with a daemon double that applies API checks to the config the
//! listener reads (as `serve` does) and runs checks on the real engine. The real daemon
//! is tested in `crates/pulsecheck/tests/it/api.rs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use pulsecheck_config::{CheckConfig, MonitorConfig};
use pulsecheck_core::clock::Clock;
use pulsecheck_core::live::LiveChecks;
use pulsecheck_core::monitor::Monitor;
use pulsecheck_core::outbox::{BoxFuture, Outbox};
use pulsecheck_core::scheduler::Run;
use pulsecheck_core::storage::{CheckMeta, WriteEvent};
use pulsecheck_core::{CheckResult, Engine, EngineSetup, Outcome, ProbeKind, Reason};
use pulsecheck_store::Store;
use pulsecheck_web::control::{Control, ControlError};
use pulsecheck_web::{AppState, HealthSources};
use serde_json::{json, Value};
use tokio::sync::watch;
use tower::ServiceExt;

const WRITER: &str = "writer-token-0123456789";
const READER: &str = "reader-token-0123456789";

/// What the double was asked, for assertions.
#[derive(Debug, PartialEq)]
enum Asked {
    Silence(String, bool),
    Acknowledge(String),
}

/// The daemon's part, as `serve` does it: API checks are merged into the config the
/// listener reads and registered in the store; runs go through the real engine.
struct Daemon {
    file: MonitorConfig,
    config: watch::Sender<Arc<MonitorConfig>>,
    api: Mutex<BTreeMap<String, CheckConfig>>,
    engine: Arc<Engine>,
    store: Store,
    asked: Mutex<Vec<Asked>>,
}

impl Daemon {
    async fn apply(&self) {
        let mut config = self.file.clone();
        config.checks.extend(self.api.lock().unwrap().values().cloned());
        let checks = config
            .checks
            .iter()
            .map(|c| CheckMeta {
                name: c.name.clone(),
                group: c.group.clone(),
                target: c.target.input.clone(),
                origin: c.origin,
            })
            .collect();
        self.store
            .write(
                &[WriteEvent::RegisterChecks {
                    checks,
                    retire_others: true,
                }],
                jiff::Timestamp::now(),
            )
            .await
            .unwrap();
        self.config.send_replace(Arc::new(config));
    }
}

impl Control for Daemon {
    fn run_now<'a>(&'a self, check: &'a str) -> BoxFuture<'a, Result<CheckResult, ControlError>> {
        Box::pin(async move {
            let config = self.config.borrow().clone();
            let check = config
                .check(check)
                .ok_or_else(|| ControlError::NotRunning(check.to_owned()))?;
            let cancel = tokio_util::sync::CancellationToken::new();
            Ok(self.engine.check(&check.target, &check.options, &cancel).await)
        })
    }

    fn put_check(&self, check: CheckConfig, _definition: Value) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move {
            self.api.lock().unwrap().insert(check.name.clone(), check);
            self.apply().await;
            Ok(())
        })
    }

    fn delete_check<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            self.api.lock().unwrap().remove(name);
            self.apply().await;
            Ok(())
        })
    }

    fn silence<'a>(
        &'a self,
        check: &'a str,
        until: Option<jiff::Timestamp>,
    ) -> BoxFuture<'a, Result<(), ControlError>> {
        self.asked
            .lock()
            .unwrap()
            .push(Asked::Silence(check.to_owned(), until.is_some()));
        Box::pin(async { Ok(()) })
    }

    fn acknowledge<'a>(&'a self, check: &'a str, _: jiff::Timestamp) -> BoxFuture<'a, Result<(), ControlError>> {
        self.asked.lock().unwrap().push(Asked::Acknowledge(check.to_owned()));
        Box::pin(async { Ok(()) })
    }
}

struct Api {
    router: axum::Router,
    store: Store,
    daemon: Arc<Daemon>,
    _dir: tempfile::TempDir,
}

fn config_text(public_reads: bool, extra: &str) -> String {
    format!(
        "server:\n  public_reads: {public_reads}\n  allow: [\"127.0.0.1\", \"*.example.com\"]\n  tokens:\n    - {WRITER}\n    - token: {READER}\n      scopes: [read]\n\
         defaults:\n  interval: 30s\n  timeout: 2s\n\
         channels:\n  ops:\n    type: webhook\n    url: http://127.0.0.1:9/hook\n\
         checks:\n  - name: file-check\n    target: http://127.0.0.1:9/\n    group: core\n{extra}"
    )
}

async fn api(public_reads: bool) -> Api {
    api_with(public_reads, "").await
}

async fn api_with(public_reads: bool, extra: &str) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("pulsecheck.yaml");
    let file = pulsecheck_config::load_str(&config_text(public_reads, extra), &source, &|_| None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let store = Store::open(dir.path().join("p.db")).await.unwrap();
    let (config, receiver) = watch::channel(Arc::new(file.clone()));
    let engine = Arc::new(Engine::new(EngineSetup::default()).unwrap());
    let daemon = Arc::new(Daemon {
        file,
        config,
        api: Mutex::default(),
        engine: engine.clone(),
        store: store.clone(),
        asked: Mutex::default(),
    });
    daemon.apply().await;
    let state = AppState::new(
        engine,
        receiver,
        Arc::new(LiveChecks::default()),
        HealthSources::default(),
    )
    .with_store(Arc::new(store.clone()))
    .with_control(daemon.clone());
    Api {
        router: pulsecheck_web::router(state),
        store,
        daemon,
        _dir: dir,
    }
}

impl Api {
    async fn call(&self, method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string());
        self.raw(method, uri, token, body.map(String::into_bytes)).await
    }

    async fn raw(&self, method: Method, uri: &str, token: Option<&str>, body: Option<Vec<u8>>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(bytes) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(bytes)),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{status} {e}: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, value)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, None, None).await
    }

    async fn write(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, uri, Some(WRITER), body).await
    }

    /// Runs of `check` folded by the real monitor and written to the store, one a second
    /// from `start`.
    async fn record(&self, check: &str, outcomes: &[Outcome], start: jiff::Timestamp) {
        let config = self.daemon.config.borrow().clone();
        let (policy_tx, policy) = watch::channel(Arc::new(config.policy()));
        let states = pulsecheck_core::storage::Storage::load_states(&self.store)
            .await
            .unwrap();
        let writer = pulsecheck_store::spawn_writer(
            self.store.clone(),
            &tokio_util::task::TaskTracker::new(),
            pulsecheck_store::WriterConfig::default(),
        );
        let mut monitor = Monitor::new(policy, states, writer, Clock::new());
        for (i, outcome) in outcomes.iter().enumerate() {
            let mut result = CheckResult::new("http://127.0.0.1:9/", None, ProbeKind::Http, *outcome);
            result.started_at = start + jiff::SignedDuration::from_secs(i as i64);
            result.duration_ms = std::time::Duration::from_millis(10 + i as u64);
            if *outcome == Outcome::Down {
                result.reason = Some(Reason::Status);
                result.error = Some("status 503".into());
            }
            let run = Run {
                check: check.to_owned(),
                result,
                lag: std::time::Duration::ZERO,
                skipped: 0,
            };
            if let Some(record) = monitor.handle(run) {
                self.store
                    .write(&[WriteEvent::Run(Box::new(record))], jiff::Timestamp::now())
                    .await
                    .unwrap();
            }
        }
        drop(policy_tx);
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {body}"))
}

fn field(body: &Value) -> Option<&str> {
    body["error"]["field"].as_str()
}

#[tokio::test]
async fn tokens_scopes_and_public_reads() {
    let private = api(false).await;
    let (status, body) = private.get("/api/v1/checks").await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Authorization: Bearer"));
    let (status, _) = private
        .call(Method::GET, "/api/v1/checks", Some("wrong-token-0123456789"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = private.call(Method::GET, "/api/v1/checks", Some(READER), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"][0]["name"], "file-check");
    assert_eq!(body["items"][0]["origin"], "file");
    // A write-only... the plain token may read and write.
    let (status, _) = private.call(Method::GET, "/api/v1/checks", Some(WRITER), None).await;
    assert_eq!(status, StatusCode::OK);
    // The read cookie opens reads, never changes.
    let request = Request::get("/api/v1/checks")
        .header(header::COOKIE, format!("other=1; pulsecheck_token={READER}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        private.router.clone().oneshot(request).await.unwrap().status(),
        StatusCode::OK
    );
    let request = Request::post("/api/v1/checks/file-check/run")
        .header(header::COOKIE, format!("pulsecheck_token={WRITER}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        private.router.clone().oneshot(request).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    let public = api(true).await;
    let (status, _) = public.get("/api/v1/checks").await;
    assert_eq!(status, StatusCode::OK, "public reads need no token");
    let new = json!({"name": "x", "target": "http://127.0.0.1:9/"});
    let (status, body) = public
        .call(Method::POST, "/api/v1/checks", None, Some(new.clone()))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized"),
        "writes always need a token"
    );
    let (status, body) = public
        .call(Method::POST, "/api/v1/checks", Some(READER), Some(new.clone()))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "a read token cannot write"
    );
    let (status, body) = public.write(Method::POST, "/api/v1/checks", Some(new)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn login_sets_an_http_only_strict_cookie() {
    let api = api(false).await;
    let response = api
        .router
        .clone()
        .oneshot(
            Request::get(format!("/login?token={READER}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/");
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with(&format!("pulsecheck_token={READER};")), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let response = api
        .router
        .clone()
        .oneshot(
            Request::get("/login?token=nope-nope-nope-nope")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    let form = api
        .router
        .clone()
        .oneshot(Request::get("/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
}

#[tokio::test]
async fn create_validates_with_the_files_rules_and_names_the_field() {
    let api = api(true).await;
    // The same definition in the config file fails with the same message.
    let bad = "  - name: bad\n    target: http://127.0.0.1:9/\n    interval: 10s\n    timeout: 20s\n";
    let file_errors = pulsecheck_config::load_str(&config_text(true, bad), Path::new("p.yaml"), &|_| None).unwrap_err();
    let (status, body) = api
        .write(
            Method::POST,
            "/api/v1/checks",
            Some(json!({"name": "bad", "target": "http://127.0.0.1:9/", "interval": "10s", "timeout": "20s"})),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "invalid"), "{body}");
    assert_eq!(field(&body), Some("timeout"));
    assert_eq!(body["error"]["errors"][0]["message"], file_errors[0].message.as_str());

    let (status, body) = api
        .write(
            Method::POST,
            "/api/v1/checks",
            Some(json!({"name": "typo", "target": "http://127.0.0.1:9/", "intervall": "10s"})),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "unknown_field"),
        "{body}"
    );
    assert_eq!(field(&body), Some("intervall"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean 'interval'"),
        "{body}"
    );

    let (status, body) = api
        .write(
            Method::POST,
            "/api/v1/checks",
            Some(json!({"name": "c", "target": "http://127.0.0.1:9/", "channels": ["opps"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(field(&body), Some("channels[0]"));
    assert_eq!(body["error"]["errors"][0]["message"], "channel 'opps' is not defined");

    // The SSRF guard: only what server.allow lists.
    let (status, body) = api
        .write(
            Method::POST,
            "/api/v1/checks",
            Some(json!({"name": "meta", "target": "http://169.254.169.254/"})),
        )
        .await;
    assert_eq!(
        (status, field(&body)),
        (StatusCode::BAD_REQUEST, Some("target")),
        "{body}"
    );

    // Bad JSON, a body too large.
    let (status, body) = api
        .raw(
            Method::POST,
            "/api/v1/checks",
            Some(WRITER),
            Some(b"{\"name\": ".to_vec()),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "bad_json"));
    let huge = json!({"name": "big", "target": "http://127.0.0.1:9/", "user_agent": "x".repeat(70_000)});
    let (status, body) = api.write(Method::POST, "/api/v1/checks", Some(huge)).await;
    assert_eq!((status, code(&body)), (StatusCode::PAYLOAD_TOO_LARGE, "too_large"));

    let (status, body) = api
        .write(
            Method::POST,
            "/api/v1/checks",
            Some(json!({"name": "good", "target": "https://api.example.com/health", "channels": ["ops"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["origin"], "api");
    assert_eq!(body["interval_seconds"], 30.0, "the file's defaults apply");
    assert_eq!(body["definition"]["target"], "https://api.example.com/health");
}

#[tokio::test]
async fn the_file_owns_its_checks_and_names_are_unique() {
    let api = api(true).await;
    for (method, body) in [
        (Method::PUT, Some(json!({"target": "http://127.0.0.1:9/x"}))),
        (Method::PATCH, Some(json!({"interval": "1m"}))),
        (Method::DELETE, None),
    ] {
        let (status, reply) = api.write(method.clone(), "/api/v1/checks/file-check", body).await;
        assert_eq!((status, code(&reply)), (StatusCode::CONFLICT, "conflict"), "{method}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("config file") && message.contains("pulsecheck.yaml"),
            "names the file: {message}"
        );
    }
    let (status, body) = api
        .write(
            Method::POST,
            "/api/v1/checks",
            Some(json!({"name": "file-check", "target": "http://127.0.0.1:9/"})),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"));

    let create = json!({"name": "mine", "target": "http://127.0.0.1:9/a"});
    let (status, _) = api.write(Method::POST, "/api/v1/checks", Some(create.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = api.write(Method::POST, "/api/v1/checks", Some(create)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "conflict"),
        "a name is taken once"
    );

    // The API owns its checks: replace, patch, delete.
    let (status, body) = api
        .write(
            Method::PUT,
            "/api/v1/checks/mine",
            Some(json!({"target": "http://127.0.0.1:9/b"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["target"], "http://127.0.0.1:9/b");
    let (status, body) = api
        .write(Method::PATCH, "/api/v1/checks/mine", Some(json!({"interval": "2m"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["interval_seconds"], 120.0);
    assert_eq!(body["definition"]["target"], "http://127.0.0.1:9/b", "kept");
    let (status, body) = api
        .write(
            Method::PUT,
            "/api/v1/checks/mine",
            Some(json!({"name": "other", "target": "http://127.0.0.1:9/"})),
        )
        .await;
    assert_eq!((status, field(&body)), (StatusCode::BAD_REQUEST, Some("name")));
    let (_, list) = api.get("/api/v1/checks?origin=api").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["origin"], "api");
    let (status, _) = api.write(Method::DELETE, "/api/v1/checks/mine", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.write(Method::DELETE, "/api/v1/checks/mine", None).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    assert!(pulsecheck_core::storage::Console::api_checks(&api.store)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn lists_paginate_with_a_cursor_and_filter() {
    let mut extra = String::new();
    for i in 0..25 {
        let group = if i % 2 == 0 { "even" } else { "odd" };
        extra.push_str(&format!(
            "  - name: c{i:02}\n    target: http://127.0.0.1:9/{i}\n    group: {group}\n"
        ));
    }
    let api = api_with(true, &extra).await;
    let mut names = Vec::new();
    let mut uri = "/api/v1/checks?limit=10".to_owned();
    loop {
        let (status, page) = api.get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page["items"].as_array().unwrap().len() <= 10);
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => uri = format!("/api/v1/checks?limit=10&after={next}"),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..25).map(|i| format!("c{i:02}")).collect();
    expected.push("file-check".into());
    assert_eq!(names, expected, "every check once, in name order");
    let (_, odd) = api.get("/api/v1/checks?group=odd&limit=100").await;
    assert_eq!(odd["items"].as_array().unwrap().len(), 12);
    assert!(odd["next"].is_null());
    let (status, body) = api.get("/api/v1/checks?limit=0").await;
    assert_eq!((status, field(&body)), (StatusCode::BAD_REQUEST, Some("limit")));
    let (status, body) = api.get("/api/v1/checks?colour=red").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "unknown parameter: {body}");

    // Results, newest first, across pages.
    let start = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(10);
    api.record("c00", &[Outcome::Up; 7], start).await;
    let (_, first) = api.get("/api/v1/checks/c00/results?limit=3").await;
    let next = first["next"].as_str().unwrap().to_owned();
    let (_, second) = api
        .get(&format!("/api/v1/checks/c00/results?limit=3&before={next}"))
        .await;
    let (_, third) = api
        .get(&format!(
            "/api/v1/checks/c00/results?limit=3&before={}",
            second["next"].as_str().unwrap()
        ))
        .await;
    let ids: Vec<i64> = [&first, &second, &third]
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()))
        .collect();
    assert_eq!(ids.len(), 7, "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats: {ids:?}");
    assert!(third["next"].is_null());

    let (status, uptime) = api.get("/api/v1/checks/c00/uptime").await;
    assert_eq!(status, StatusCode::OK, "{uptime}");
    assert_eq!(uptime["windows"][0]["window"], "24h");
    assert_eq!(uptime["windows"][0]["runs"], 7);
    assert_eq!(uptime["windows"][0]["percent"], 100.0);
    let (status, latency) = api.get("/api/v1/checks/c00/latency?window=7d").await;
    assert_eq!(status, StatusCode::OK, "{latency}");
    assert_eq!(latency["percentiles"]["runs"], 7);
    assert!(!latency["hourly"].as_array().unwrap().is_empty());
    let (status, body) = api.get("/api/v1/checks/c00/latency?window=1y").await;
    assert_eq!((status, field(&body)), (StatusCode::BAD_REQUEST, Some("window")));
    let (status, _) = api.get("/api/v1/checks/nope/uptime").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn incidents_updates_acknowledgement_outbox_and_redelivery() {
    let api = api_with(
        true,
        "  - name: db\n    target: http://127.0.0.1:9/db\n    channels: [ops]\n    failure_threshold: 1\n",
    )
    .await;
    let start = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(5);
    api.record("db", &[Outcome::Up, Outcome::Down, Outcome::Down], start)
        .await;
    let (status, list) = api.get("/api/v1/incidents").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let incident = &list["items"][0];
    assert_eq!(incident["check"], "db");
    assert!(incident["ended_at"].is_null());
    let id = incident["id"].as_i64().unwrap();
    let (_, of_check) = api.get("/api/v1/checks/db/incidents").await;
    assert_eq!(of_check["items"][0]["id"], id);

    let uri = format!("/api/v1/incidents/{id}/updates");
    let (status, update) = api
        .write(
            Method::POST,
            &uri,
            Some(json!({"status": "identified", "message": "disk full"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{update}");
    let (status, body) = api
        .write(Method::POST, &uri, Some(json!({"status": "fixed", "message": "x"})))
        .await;
    assert_eq!(
        (status, field(&body)),
        (StatusCode::BAD_REQUEST, Some("status")),
        "{body}"
    );
    let (status, body) = api
        .write(
            Method::POST,
            &uri,
            Some(json!({"status": "resolved", "message": "x", "extra": 1})),
        )
        .await;
    assert_eq!(
        (status, code(&body), field(&body)),
        (StatusCode::BAD_REQUEST, "unknown_field", Some("extra"))
    );
    let (status, body) = api
        .write(
            Method::POST,
            "/api/v1/incidents/999999/updates",
            Some(json!({"status": "resolved", "message": "x"})),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));

    let (status, acked) = api
        .write(Method::POST, &format!("/api/v1/incidents/{id}/acknowledge"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert!(acked["acknowledged_at"].is_string());
    let (_, one) = api.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(one["updates"][0]["message"], "disk full");
    assert_eq!(one["updates"][0]["status"], "identified");

    let (status, silence) = api
        .write(
            Method::POST,
            "/api/v1/checks/db/silence",
            Some(json!({"duration": "2h", "reason": "maintenance"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{silence}");
    let (_, summary) = api.get("/api/v1/checks/db").await;
    assert!(summary["status"]["silenced_until"].is_string(), "{summary}");
    let (status, _) = api.write(Method::DELETE, "/api/v1/checks/db/silence", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        *api.daemon.asked.lock().unwrap(),
        [
            Asked::Acknowledge("db".into()),
            Asked::Silence("db".into(), true),
            Asked::Silence("db".into(), false)
        ]
    );

    // The down alert is in the outbox; made a dead letter, it can be redelivered.
    let (_, pending) = api.get("/api/v1/outbox?state=pending").await;
    let notification = pending["items"][0]["id"].as_i64().expect("a pending notification");
    Outbox::dead(&api.store, notification, 3, "410 Gone".into())
        .await
        .unwrap();
    let (_, dead) = api.get("/api/v1/outbox?state=dead").await;
    assert_eq!(dead["items"][0]["id"], notification);
    assert_eq!(dead["items"][0]["last_error"], "410 Gone");
    let (status, again) = api
        .write(Method::POST, &format!("/api/v1/outbox/{notification}/redeliver"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["state"], "pending");
    assert_eq!(again["attempts"], 0);
    let (_, dead) = api.get("/api/v1/outbox?state=dead").await;
    assert!(dead["items"].as_array().unwrap().is_empty());
    let (status, _) = api.write(Method::POST, "/api/v1/outbox/999999/redeliver", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn run_now_returns_the_result() {
    let sim = pulsecheck_sim::start(pulsecheck_sim::SimConfig::default())
        .await
        .unwrap();
    let http = sim.info.http[0];
    let api = api_with(true, &format!("  - name: web\n    target: http://{http}/ok\n")).await;
    let (status, body) = api.write(Method::POST, "/api/v1/checks/web/run", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["outcome"], "up");
    assert_eq!(body["result"]["http_status"], 200);
    let (status, _) = api.write(Method::POST, "/api/v1/checks/nope/run", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sim.shutdown().await;
}

#[tokio::test]
async fn errors_have_one_shape_for_unknown_routes_and_methods() {
    let api = api(true).await;
    let (status, body) = api.get("/api/v1/nothing-here").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = api.call(Method::PUT, "/api/v1/incidents", Some(WRITER), None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let (status, body) = api.get("/api/v1/incidents/not-a-number").await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "bad_request"));
}

/// Every path and method of the OpenAPI document is routed (neither 404 nor 405 from the
/// router itself), and every route under /api/v1 is documented.
#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let api = api(true).await;
    let (status, doc) = api.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let methods = ["get", "put", "post", "delete", "patch"];
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in methods {
            if item.get(method).is_none() {
                continue;
            }
            documented.push((path.clone(), method));
            let uri = format!("/api/v1{}", path.replace("{name}", "file-check").replace("{id}", "1"));
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let body = matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
            let (status, reply) = api.call(method.clone(), &uri, Some(WRITER), body).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}: {reply}");
            if status == StatusCode::NOT_FOUND {
                // A handler's 404 names what is missing; the router's points at this document.
                let message = reply["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    !message.starts_with("no such API route"),
                    "{method} {uri} is not routed"
                );
            }
        }
    }
    // Every routed method of every route: anything the document does not list answers
    // 405 from the router, so try them all on every documented path and on guesses.
    for (path, item) in paths {
        let uri = format!("/api/v1{}", path.replace("{name}", "file-check").replace("{id}", "1"));
        for method in methods {
            if item.get(method).is_some() {
                continue;
            }
            let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let (status, _) = api.call(m, &uri, Some(WRITER), None).await;
            assert_eq!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri} is routed but not documented"
            );
        }
    }
    // Every path the router declares (read from its source) is in the document.
    let source = include_str!("../src/api/mod.rs");
    let routed: Vec<&str> = source
        .split(".route(")
        .skip(1)
        .filter_map(|rest| rest.split('"').nth(1))
        .collect();
    assert!(routed.len() >= 15, "{routed:?}");
    for path in routed {
        assert!(paths.contains_key(path), "{path} is routed but not in openapi.json");
    }
    assert!(documented.len() >= 20, "{documented:?}");
}

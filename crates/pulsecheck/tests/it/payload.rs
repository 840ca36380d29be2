//! The alert a webhook receiver gets is the alert as stored, byte for byte: a receiver
//! that compares duplicates by body never sees two versions of one alert.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulsecheck_core::channel::{ChannelKind, ChannelSpec};
use pulsecheck_core::clock::Clock;
use pulsecheck_core::outbox::{AlertEvent, AlertKind, CauseResult, Outbox};
use pulsecheck_core::{Outcome, Reason};
use pulsecheck_notify::{spawn_delivery, Channel, DeliveryConfig};
use pulsecheck_sim::receiver::Receiver;
use pulsecheck_store::{Store, WriteEvent};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn cause(at: jiff::Timestamp, duration_ms: f64) -> CauseResult {
    CauseResult {
        at,
        outcome: Outcome::Down,
        reason: Some(Reason::Status),
        error: Some("HTTP 500 Internal Server Error".into()),
        duration_ms,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payload_sent_is_the_payload_stored() {
    let hook = Receiver::start(0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("pulsecheck.db")).await.unwrap();
    let at: jiff::Timestamp = "2026-11-30T08:00:00.123456789Z".parse().unwrap();
    // Durations as the engine computes them (`as_secs_f64() * 1000.0`): floats whose
    // shortest form has 17 digits.
    let event = AlertEvent {
        idempotency_key: "api:1:hook".into(),
        kind: AlertKind::Down,
        check: "api".into(),
        group: None,
        target: "http://127.0.0.1:9/health".into(),
        from: "up".into(),
        to: "down".into(),
        at,
        reason: Some(Reason::Status),
        error: Some("HTTP 500 Internal Server Error".into()),
        cause: vec![
            cause(at, 1.019_591_000_000_000_1),
            cause(at, 0.1 + 0.2),
            cause(at, Duration::from_nanos(1_234_567).as_secs_f64() * 1000.0),
        ],
    };
    // What the store writes to the outbox.
    let stored = serde_json::to_string(&event).unwrap();
    assert!(stored.contains("1.0195910000000001"), "{stored}");
    store
        .write(
            &[WriteEvent::Notify {
                notifications: vec![("hook".into(), event)],
            }],
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();

    let channel = Channel::new(ChannelSpec {
        name: "hook".into(),
        kind: ChannelKind::Webhook {
            url: hook.url("/hook"),
            headers: Vec::new(),
            template: None,
        },
        timeout: Duration::from_secs(10),
    })
    .unwrap();
    let (_channels, channels) = watch::channel(Arc::new(HashMap::from([("hook".to_owned(), channel)])));
    let tasks = TaskTracker::new();
    let cancel = CancellationToken::new();
    spawn_delivery(
        Arc::new(store.clone()) as Arc<dyn Outbox>,
        channels,
        Clock::new(),
        Arc::new(Notify::new()),
        DeliveryConfig::default(),
        &tasks,
        cancel.clone(),
    );
    let started = Instant::now();
    while hook.received().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "no delivery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
    store.close().await;

    let sent = String::from_utf8(hook.received()[0].body.to_vec()).unwrap();
    assert_eq!(sent, stored);
}

//! Backoff and the dispatcher's scheduling with paused tokio time, a fake channel and the
//! in-memory outbox (no sockets: paused time auto-advances whenever the runtime idles).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{down, wait_until};
use pulsecheck_core::clock::Clock;
use pulsecheck_core::outbox::{AlertEvent, BoxFuture, DeliveryState, MemoryOutbox, Notification, Outbox, OutboxError};
use pulsecheck_notify::{
    backoff, spawn_delivery, Channel, Channels, DeliveryConfig, DeliveryError, DeliveryStats, Notifier, PROBE_EVERY,
};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const SEC: Duration = Duration::from_secs(1);

#[test]
fn backoff_grows_and_is_capped() {
    let base = Duration::from_secs(2);
    let max = Duration::from_secs(60);
    // Without jitter: half the ceiling; with full jitter: the ceiling.
    let low: Vec<u64> = (1..=8).map(|a| backoff(a, base, max, 0.0).as_millis() as u64).collect();
    let high: Vec<u64> = (1..=8).map(|a| backoff(a, base, max, 1.0).as_millis() as u64).collect();
    assert_eq!(low, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert_eq!(high, [2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
    for attempt in 1..=40 {
        for jitter in [0.0, 0.25, 0.5, 0.99, 1.0] {
            let delay = backoff(attempt, base, max, jitter);
            assert!(delay <= max);
            let next = backoff(attempt + 1, base, max, jitter);
            assert!(next >= delay, "attempt {attempt}: {next:?} < {delay:?}");
        }
    }
    // Huge attempt counts and odd jitter values do not overflow or escape the bounds.
    assert_eq!(backoff(u32::MAX, base, max, 1.0), max);
    assert_eq!(backoff(0, base, max, 1.0), base);
    assert_eq!(backoff(3, base, max, f64::NAN), Duration::from_secs(4));
    assert_eq!(backoff(3, base, max, 7.0), Duration::from_secs(8));
    assert_eq!(backoff(3, base, max, -1.0), Duration::from_secs(4));
}

/// What the fake channel does on its n-th call (0-based) for an event.
type Script = Box<dyn Fn(&AlertEvent, usize) -> Step + Send + Sync>;

enum Step {
    Ok,
    Fail(DeliveryError),
    /// Take this long, then succeed.
    Slow(Duration),
    Panic,
}

#[derive(Default)]
struct Log {
    calls: Vec<(Instant, String)>,
    running: usize,
    max_running: usize,
    per_key: HashMap<String, usize>,
    max_same_key: usize,
}

struct Fake {
    script: Script,
    log: Arc<Mutex<Log>>,
}

impl Notifier for Fake {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn send<'a>(&'a self, event: &'a AlertEvent, _channel: &'a str) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let key = event.idempotency_key.clone();
            let call = {
                let mut log = self.log.lock().unwrap();
                let call = log.calls.iter().filter(|(_, k)| *k == key).count();
                log.calls.push((Instant::now(), key.clone()));
                log.running += 1;
                log.max_running = log.max_running.max(log.running);
                let same = log.per_key.entry(key.clone()).or_default();
                *same += 1;
                let same = *same;
                log.max_same_key = log.max_same_key.max(same);
                call
            };
            // Dropped when the attempt ends, also when it times out or panics.
            let _running = Running { log: &self.log, key };
            match (self.script)(event, call) {
                Step::Ok => Ok(()),
                Step::Fail(error) => Err(error),
                Step::Slow(duration) => {
                    tokio::time::sleep(duration).await;
                    Ok(())
                }
                Step::Panic => panic!("fake channel panics"),
            }
        })
    }
}

struct Running<'a> {
    log: &'a Mutex<Log>,
    key: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.running -= 1;
        *log.per_key.get_mut(&self.key).unwrap() -= 1;
    }
}

fn fake(name: &str, timeout: Duration, script: Script) -> (Channel, Arc<Mutex<Log>>) {
    let log = Arc::new(Mutex::new(Log::default()));
    let channel = Channel::custom(
        name,
        timeout,
        Arc::new(Fake {
            script,
            log: log.clone(),
        }),
    );
    (channel, log)
}

struct Setup {
    wake: Arc<Notify>,
    stats: Arc<DeliveryStats>,
    tasks: TaskTracker,
    cancel: CancellationToken,
    channels: watch::Sender<Channels>,
}

fn start(outbox: Arc<dyn Outbox>, channels: Vec<Channel>, config: DeliveryConfig) -> Setup {
    let map = channels.into_iter().map(|c| (c.name().to_owned(), c)).collect();
    let (sender, receiver) = watch::channel(Arc::new(map));
    let wake = Arc::new(Notify::new());
    let tasks = TaskTracker::new();
    let cancel = CancellationToken::new();
    let clock = Clock::starting_at("2026-01-01T00:00:00Z".parse().unwrap());
    let stats = spawn_delivery(
        outbox.clone(),
        receiver,
        clock,
        wake.clone(),
        config,
        &tasks,
        cancel.clone(),
    );
    Setup {
        wake,
        stats,
        tasks,
        cancel,
        channels: sender,
    }
}

fn config(workers: usize, base: Duration, max: Duration, poll: Duration) -> DeliveryConfig {
    DeliveryConfig {
        workers,
        backoff_base: base,
        backoff_max: max,
        poll,
    }
}

fn t0() -> jiff::Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn settled(outbox: &MemoryOutbox) -> bool {
    outbox.rows().iter().all(|r| r.state != DeliveryState::Pending)
}

#[tokio::test(start_paused = true)]
async fn retries_follow_the_backoff_schedule() {
    let outbox = Arc::new(MemoryOutbox::default());
    outbox.push("fake", down("api", 1, "fake"), t0());
    let (channel, log) = fake(
        "fake",
        SEC,
        Box::new(|_, call| {
            if call < 6 {
                Step::Fail(DeliveryError::retryable("HTTP 503"))
            } else {
                Step::Ok
            }
        }),
    );
    // A poll of an hour: only the scheduled retry times can wake the dispatcher.
    let setup = start(
        outbox.clone(),
        vec![channel],
        config(4, SEC, Duration::from_secs(8), Duration::from_secs(3600)),
    );
    assert!(wait_until(Duration::from_secs(120), || settled(&outbox)).await);

    let row = &outbox.rows()[0];
    assert_eq!(row.state, DeliveryState::Delivered);
    assert_eq!(row.notification.attempts, 7);
    let calls: Vec<Instant> = log.lock().unwrap().calls.iter().map(|(at, _)| *at).collect();
    assert_eq!(calls.len(), 7);
    for (attempt, pair) in calls.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let ceiling = (SEC * 2u32.pow(attempt as u32)).min(Duration::from_secs(8));
        assert!(
            gap >= ceiling / 2 && gap <= ceiling + Duration::from_millis(2),
            "retry {}: waited {gap:?}, expected {:?}..={ceiling:?}",
            attempt + 1,
            ceiling / 2
        );
    }
    assert_eq!(setup.stats.retried.load(Ordering::Relaxed), 6);
    assert_eq!(setup.stats.delivered.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_up_to_the_cap() {
    let outbox = Arc::new(MemoryOutbox::default());
    outbox.push("fake", down("api", 1, "fake"), t0());
    let (channel, log) = fake(
        "fake",
        SEC,
        Box::new(|_, call| match call {
            0 => Step::Fail(DeliveryError {
                retry_after: Some(Duration::from_secs(20)),
                ..DeliveryError::retryable("HTTP 429")
            }),
            1 => Step::Fail(DeliveryError {
                retry_after: Some(Duration::from_secs(3600)),
                ..DeliveryError::retryable("HTTP 429")
            }),
            _ => Step::Ok,
        }),
    );
    let _setup = start(
        outbox.clone(),
        vec![channel],
        config(
            1,
            Duration::from_millis(100),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        ),
    );
    assert!(wait_until(Duration::from_secs(300), || settled(&outbox)).await);
    let calls: Vec<Instant> = log.lock().unwrap().calls.iter().map(|(at, _)| *at).collect();
    let gaps: Vec<u64> = calls.windows(2).map(|p| (p[1] - p[0]).as_secs()).collect();
    assert_eq!(gaps, [20, 60]);
}

#[tokio::test(start_paused = true)]
async fn a_wake_up_dispatches_at_once_and_poll_catches_the_rest() {
    let outbox = Arc::new(MemoryOutbox::default());
    let (channel, log) = fake("fake", SEC, Box::new(|_, _| Step::Ok));
    let setup = start(
        outbox.clone(),
        vec![channel],
        config(2, SEC, Duration::from_secs(60), Duration::from_secs(30)),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;

    let woken = Instant::now();
    outbox.push("fake", down("api", 1, "fake"), t0());
    setup.wake.notify_one();
    assert!(wait_until(Duration::from_secs(60), || settled(&outbox)).await);
    assert!(log.lock().unwrap().calls[0].0 - woken < Duration::from_millis(10));

    // Without a wake-up the poll finds it, within one poll interval.
    let pushed = Instant::now();
    outbox.push("fake", down("db", 1, "fake"), t0());
    assert!(wait_until(Duration::from_secs(60), || settled(&outbox)).await);
    let found = log.lock().unwrap().calls[1].0 - pushed;
    assert!(found <= Duration::from_secs(30), "{found:?}");
}

#[tokio::test(start_paused = true)]
async fn the_pool_is_bounded_and_a_slow_channel_keeps_only_its_slots() {
    let outbox = Arc::new(MemoryOutbox::default());
    let (slow, slow_log) = fake(
        "slow",
        Duration::from_secs(600),
        Box::new(|_, _| Step::Slow(Duration::from_secs(300))),
    );
    let (quick, quick_log) = fake("quick", SEC, Box::new(|_, _| Step::Slow(Duration::from_millis(100))));
    for check in ["a", "b"] {
        outbox.push("slow", down(check, 1, "slow"), t0());
    }
    for check in ["c", "d", "e", "f", "g", "h"] {
        for seq in 1..=3 {
            outbox.push("quick", down(check, seq, "quick"), t0());
        }
    }
    let setup = start(
        outbox.clone(),
        vec![slow, quick],
        config(3, SEC, Duration::from_secs(60), Duration::from_millis(50)),
    );
    let quick_done = || {
        outbox
            .rows()
            .iter()
            .filter(|r| r.notification.channel == "quick")
            .all(|r| r.state == DeliveryState::Delivered)
    };
    let started = Instant::now();
    assert!(wait_until(Duration::from_secs(60), quick_done).await);
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    // All 18 quick ones went through the one slot the slow channel left.
    assert_eq!(quick_log.lock().unwrap().max_running, 1);
    assert_eq!(quick_log.lock().unwrap().calls.len(), 18);
    assert_eq!(slow_log.lock().unwrap().running, 2);
    assert!(wait_until(Duration::from_secs(600), || settled(&outbox)).await);
    let slow_log = slow_log.lock().unwrap();
    assert_eq!(
        slow_log.calls.len(),
        2,
        "each slow one sent once despite the 50 ms poll"
    );
    assert_eq!(slow_log.max_same_key, 1);
    assert_eq!(setup.stats.attempts.load(Ordering::Relaxed), 20);
}

#[tokio::test(start_paused = true)]
async fn the_same_notification_is_never_sent_twice_at_once() {
    let outbox = Arc::new(MemoryOutbox::default());
    // Every attempt takes 2 s and the first three time out at 1.5 s.
    let (channel, log) = fake(
        "fake",
        Duration::from_millis(1500),
        Box::new(|_, call| {
            if call < 3 {
                Step::Slow(Duration::from_secs(2))
            } else {
                Step::Ok
            }
        }),
    );
    for check in ["a", "b", "c"] {
        outbox.push("fake", down(check, 1, "fake"), t0());
    }
    let _setup = start(
        outbox.clone(),
        vec![channel],
        config(
            8,
            Duration::from_millis(10),
            Duration::from_millis(10),
            Duration::from_millis(5),
        ),
    );
    assert!(wait_until(Duration::from_secs(60), || settled(&outbox)).await);
    let log = log.lock().unwrap();
    assert_eq!(log.max_same_key, 1);
    assert_eq!(log.calls.len(), 12);
    for row in outbox.rows() {
        assert_eq!(row.notification.attempts, 4);
        assert!(row.last_error.as_deref().unwrap().contains("timed out"), "{row:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_new_work_and_lets_attempts_in_flight_finish() {
    let outbox = Arc::new(MemoryOutbox::default());
    let (channel, log) = fake(
        "fake",
        Duration::from_secs(10),
        Box::new(|_, _| Step::Slow(Duration::from_secs(2))),
    );
    outbox.push("fake", down("api", 1, "fake"), t0());
    let setup = start(
        outbox.clone(),
        vec![channel],
        config(4, SEC, Duration::from_secs(60), Duration::from_millis(100)),
    );
    tokio::time::sleep(SEC).await;
    assert_eq!(log.lock().unwrap().running, 1);
    setup.cancel.cancel();
    outbox.push("fake", down("db", 1, "fake"), t0());
    setup.wake.notify_one();
    setup.tasks.close();
    tokio::time::timeout(Duration::from_secs(5), setup.tasks.wait())
        .await
        .expect("stops within the attempt's timeout");
    let rows = outbox.rows();
    assert_eq!(
        rows[0].state,
        DeliveryState::Delivered,
        "the attempt in flight was recorded"
    );
    assert_eq!(rows[1].state, DeliveryState::Pending, "nothing new after cancel");
    assert_eq!(rows[1].notification.attempts, 0);
    assert_eq!(log.lock().unwrap().calls.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_removed_channel_is_a_dead_letter() {
    let outbox = Arc::new(MemoryOutbox::default());
    let (channel, _log) = fake("fake", SEC, Box::new(|_, _| Step::Ok));
    outbox.push("gone", down("api", 1, "gone"), t0());
    outbox.push("fake", down("api", 1, "fake"), t0());
    let setup = start(
        outbox.clone(),
        vec![channel.clone()],
        config(2, SEC, Duration::from_secs(60), Duration::from_secs(1)),
    );
    assert!(wait_until(Duration::from_secs(10), || settled(&outbox)).await);
    let rows = outbox.rows();
    assert_eq!(rows[0].state, DeliveryState::Dead);
    assert_eq!(
        rows[0].last_error.as_deref(),
        Some("channel 'gone' is no longer configured")
    );
    assert_eq!(rows[1].state, DeliveryState::Delivered);

    // A reload that adds the channel back is seen by the next notification.
    let mut map = HashMap::new();
    map.insert(
        "gone".to_owned(),
        Channel::custom(
            "gone",
            SEC,
            Arc::new(Fake {
                script: Box::new(|_, _| Step::Ok),
                log: Arc::new(Mutex::new(Log::default())),
            }),
        ),
    );
    setup.channels.send(Arc::new(map)).unwrap();
    outbox.push("gone", down("api", 2, "gone"), t0());
    setup.wake.notify_one();
    assert!(wait_until(Duration::from_secs(10), || settled(&outbox)).await);
    assert_eq!(outbox.rows()[2].state, DeliveryState::Delivered);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_channel_is_retried_not_stuck() {
    let outbox = Arc::new(MemoryOutbox::default());
    let (channel, log) = fake(
        "fake",
        SEC,
        Box::new(|_, call| if call == 0 { Step::Panic } else { Step::Ok }),
    );
    outbox.push("fake", down("api", 1, "fake"), t0());
    let _setup = start(
        outbox.clone(),
        vec![channel],
        config(2, SEC, Duration::from_secs(60), Duration::from_secs(1)),
    );
    assert!(wait_until(Duration::from_secs(30), || settled(&outbox)).await);
    let row = &outbox.rows()[0];
    assert_eq!(row.state, DeliveryState::Delivered);
    assert_eq!(row.notification.attempts, 2);
    assert!(row.last_error.as_deref().unwrap().contains("panicked"));
    assert_eq!(log.lock().unwrap().calls.len(), 2);
}

/// An outbox whose reads and writes fail a given number of times first.
struct Flaky {
    inner: Arc<MemoryOutbox>,
    due_failures: AtomicUsize,
    next_due_failures: AtomicUsize,
    delivered_failures: AtomicUsize,
}

fn fail_once(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

fn broken<T: Send + 'static>() -> BoxFuture<'static, Result<T, OutboxError>> {
    Box::pin(async { Err(OutboxError("database is locked".into())) })
}

impl Outbox for Flaky {
    fn due(&self, now: jiff::Timestamp, limit: usize) -> BoxFuture<'_, Result<Vec<Notification>, OutboxError>> {
        if fail_once(&self.due_failures) {
            return broken();
        }
        self.inner.due(now, limit)
    }

    fn next_due(&self) -> BoxFuture<'_, Result<Option<jiff::Timestamp>, OutboxError>> {
        if fail_once(&self.next_due_failures) {
            return broken();
        }
        self.inner.next_due()
    }

    fn delivered(&self, id: i64, attempts: u32, at: jiff::Timestamp) -> BoxFuture<'_, Result<(), OutboxError>> {
        if fail_once(&self.delivered_failures) {
            return broken();
        }
        self.inner.delivered(id, attempts, at)
    }

    fn retry_at(
        &self,
        id: i64,
        attempts: u32,
        next_attempt_at: jiff::Timestamp,
        error: String,
    ) -> BoxFuture<'_, Result<(), OutboxError>> {
        self.inner.retry_at(id, attempts, next_attempt_at, error)
    }

    fn dead(&self, id: i64, attempts: u32, error: String) -> BoxFuture<'_, Result<(), OutboxError>> {
        self.inner.dead(id, attempts, error)
    }

    fn retry_channel_now(&self, channel: &str, now: jiff::Timestamp) -> BoxFuture<'_, Result<u64, OutboxError>> {
        self.inner.retry_channel_now(channel, now)
    }
}

#[tokio::test(start_paused = true)]
async fn outbox_errors_are_retried_and_never_stop_delivery() {
    let memory = Arc::new(MemoryOutbox::default());
    memory.push("fake", down("api", 1, "fake"), t0());
    memory.push("fake", down("db", 1, "fake"), t0());
    let flaky = Arc::new(Flaky {
        inner: memory.clone(),
        due_failures: AtomicUsize::new(3),
        next_due_failures: AtomicUsize::new(2),
        // More than one attempt's write retries: the alert is held, then sent again.
        delivered_failures: AtomicUsize::new(6),
    });
    let (channel, log) = fake("fake", SEC, Box::new(|_, _| Step::Ok));
    let setup = start(
        flaky,
        vec![channel],
        config(1, SEC, Duration::from_secs(10), Duration::from_millis(500)),
    );
    assert!(wait_until(Duration::from_secs(120), || settled(&memory)).await);
    assert!(memory.rows().iter().all(|r| r.state == DeliveryState::Delivered));
    // One alert went out twice (its first success could not be recorded): at least once.
    assert_eq!(log.lock().unwrap().calls.len(), 3);
    assert!(setup.stats.outbox_errors.load(Ordering::Relaxed) >= 11);
}

#[tokio::test(start_paused = true)]
async fn a_failing_channel_is_probed_so_a_recovery_is_found_within_the_probe_period() {
    let outbox = Arc::new(MemoryOutbox::default());
    for seq in 1..=3 {
        outbox.push("fake", down("api", seq, "fake"), t0());
    }
    // Ten failures in a row, then the receiver is back: by then the head's own backoff
    // is two and a half minutes or more.
    let failures = Arc::new(AtomicUsize::new(0));
    let (channel, log) = {
        let failures = failures.clone();
        fake(
            "fake",
            SEC,
            Box::new(move |_, _| {
                if failures.fetch_add(1, Ordering::SeqCst) < 10 {
                    Step::Fail(DeliveryError::retryable("cannot connect: connection refused"))
                } else {
                    Step::Ok
                }
            }),
        )
    };
    let setup = start(outbox.clone(), vec![channel], DeliveryConfig::default());
    assert!(wait_until(Duration::from_secs(3600), || settled(&outbox)).await);

    let calls: Vec<Instant> = log.lock().unwrap().calls.iter().map(|(at, _)| *at).collect();
    assert_eq!(calls.len(), 13, "ten failures, then three deliveries");
    let last_failure = calls[9];
    let head_backoff = backoff(10, Duration::from_secs(2), Duration::from_secs(300), 0.0);
    assert!(head_backoff >= Duration::from_secs(150));
    assert!(
        calls[12] - last_failure <= PROBE_EVERY + Duration::from_millis(5),
        "the backlog went out {:?} after the receiver was back",
        calls[12] - last_failure
    );
    // Failing, it was tried no more than the backoff or the probe period allows.
    for pair in calls[..10].windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(900),
            "{:?}",
            pair[1] - pair[0]
        );
    }
    assert_eq!(setup.stats.delivered.load(Ordering::Relaxed), 3);
    let keys: Vec<String> = log.lock().unwrap().calls[10..].iter().map(|(_, k)| k.clone()).collect();
    assert_eq!(keys, ["api:1:fake", "api:2:fake", "api:3:fake"]);
}

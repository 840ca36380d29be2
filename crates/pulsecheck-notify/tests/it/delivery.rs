//! The delivery workers against real receivers on loopback, in real time with short
//! backoff.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{down, wait_until, HttpReceiver, Reply};
use pulsecheck_core::channel::{ChannelKind, ChannelSpec};
use pulsecheck_core::clock::Clock;
use pulsecheck_core::outbox::{BoxFuture, DeliveryState, MemoryOutbox, MemoryRow, Notification, Outbox, OutboxError};
use pulsecheck_notify::{spawn_delivery, Channel, Channels, DeliveryConfig, DeliveryStats};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn webhook(name: &str, url: &str, timeout: Duration) -> Channel {
    Channel::new(ChannelSpec {
        name: name.into(),
        kind: ChannelKind::Webhook {
            url: url.into(),
            headers: Vec::new(),
            template: None,
        },
        timeout,
    })
    .unwrap()
}

struct Running {
    outbox: Arc<MemoryOutbox>,
    wake: Arc<Notify>,
    stats: Arc<DeliveryStats>,
    tasks: TaskTracker,
    cancel: CancellationToken,
    _channels: watch::Sender<Channels>,
}

impl Running {
    fn start(outbox: Arc<MemoryOutbox>, channels: Vec<Channel>, workers: usize) -> Running {
        Running::start_on(outbox.clone(), outbox, channels, workers, Duration::from_millis(200))
    }

    /// Delivery reading `reader` (which may wrap `outbox`), looking at it every `poll`.
    fn start_on(
        outbox: Arc<MemoryOutbox>,
        reader: Arc<dyn Outbox>,
        channels: Vec<Channel>,
        workers: usize,
        poll: Duration,
    ) -> Running {
        let config = DeliveryConfig {
            workers,
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(80),
            poll,
        };
        Running::start_with(outbox, reader, channels, config)
    }

    fn start_with(
        outbox: Arc<MemoryOutbox>,
        reader: Arc<dyn Outbox>,
        channels: Vec<Channel>,
        config: DeliveryConfig,
    ) -> Running {
        let map: HashMap<String, Channel> = channels.into_iter().map(|c| (c.name().to_owned(), c)).collect();
        let (sender, receiver) = watch::channel(Arc::new(map));
        let wake = Arc::new(Notify::new());
        let tasks = TaskTracker::new();
        let cancel = CancellationToken::new();
        let stats = spawn_delivery(
            reader,
            receiver,
            Clock::new(),
            wake.clone(),
            config,
            &tasks,
            cancel.clone(),
        );
        Running {
            outbox,
            wake,
            stats,
            tasks,
            cancel,
            _channels: sender,
        }
    }

    async fn settle(&self, within: Duration) -> Vec<MemoryRow> {
        let outbox = self.outbox.clone();
        let settled = wait_until(within, || {
            outbox.rows().iter().all(|r| r.state != DeliveryState::Pending)
        })
        .await;
        assert!(settled, "still pending: {:#?}", self.outbox.rows());
        self.outbox.rows()
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.tasks.close();
        tokio::time::timeout(Duration::from_secs(5), self.tasks.wait())
            .await
            .expect("delivery stops promptly");
    }
}

/// (check, seq) from a `{check}:{seq}:{channel}` key.
fn parse_key(key: &str) -> (String, u32) {
    let mut parts = key.split(':');
    let check = parts.next().unwrap().to_owned();
    let seq = parts.next().unwrap().parse().unwrap();
    (check, seq)
}

#[tokio::test]
async fn a_receiver_that_recovers_gets_everything_in_order_per_check() {
    // Down for the first 3 requests, then fine.
    let receiver = HttpReceiver::start(|index, _| {
        if index < 3 {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let outbox = Arc::new(MemoryOutbox::default());
    let now = jiff::Timestamp::now();
    let checks = ["api", "db", "web", "queue"];
    for seq in 1..=4 {
        for check in checks {
            outbox.push("hook", down(check, seq, "hook"), now);
        }
    }
    let running = Running::start(
        outbox.clone(),
        vec![webhook("hook", &receiver.url(), Duration::from_secs(2))],
        3,
    );
    let rows = running.settle(Duration::from_secs(10)).await;
    running.stop().await;

    assert!(rows.iter().all(|r| r.state == DeliveryState::Delivered), "{rows:#?}");
    let requests = receiver.requests();
    let failed: Vec<_> = requests.iter().filter(|r| r.reply == Reply::Status(500)).collect();
    let delivered: Vec<_> = requests.iter().filter(|r| r.reply == Reply::Status(200)).collect();
    assert_eq!(failed.len(), 3);
    // Every notification delivered exactly once here (at least once in general).
    assert_eq!(delivered.len(), 16);
    let keys: HashSet<String> = delivered.iter().map(|r| r.key()).collect();
    assert_eq!(keys.len(), 16);
    // Retries carry the same key and the same payload as the attempt that failed.
    for failure in &failed {
        let retry = delivered.iter().find(|r| r.key() == failure.key()).expect("retried");
        assert_eq!(retry.body, failure.body);
        assert_eq!(retry.json()["idempotency_key"], failure.key().as_str());
    }
    // In order per check: no request for seq n+1 before the delivered request for seq n.
    let mut last_delivered: HashMap<String, u32> = HashMap::new();
    for request in &requests {
        let (check, seq) = parse_key(&request.key());
        let last = last_delivered.get(&check).copied().unwrap_or(0);
        assert!(
            seq == last + 1,
            "{check}: request for #{seq} while #{last} was the last delivered"
        );
        if request.reply == Reply::Status(200) {
            last_delivered.insert(check, seq);
        }
    }
    // The outbox counts every attempt.
    let attempts: u32 = rows.iter().map(|r| r.notification.attempts).sum();
    assert_eq!(attempts as usize, requests.len());
    let retried: Vec<_> = rows.iter().filter(|r| r.notification.attempts > 1).collect();
    assert!(
        retried
            .iter()
            .all(|r| r.last_error.as_deref().unwrap_or_default().contains("HTTP 500")),
        "{retried:#?}"
    );
}

#[tokio::test]
async fn a_400_goes_to_dead_letters_and_the_next_alert_proceeds() {
    let receiver = HttpReceiver::start(|_, request| {
        if request.key() == "api:2:hook" {
            Reply::Status(400)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let outbox = Arc::new(MemoryOutbox::default());
    let now = jiff::Timestamp::now();
    for seq in 1..=3 {
        outbox.push("hook", down("api", seq, "hook"), now);
    }
    let running = Running::start(
        outbox.clone(),
        vec![webhook("hook", &receiver.url(), Duration::from_secs(2))],
        2,
    );
    let rows = running.settle(Duration::from_secs(5)).await;
    running.stop().await;

    let states: Vec<_> = rows.iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        [DeliveryState::Delivered, DeliveryState::Dead, DeliveryState::Delivered]
    );
    let dead = &rows[1];
    assert_eq!(dead.notification.attempts, 1, "a 400 is not retried");
    assert!(
        dead.last_error.as_deref().unwrap().starts_with("HTTP 400 Bad Request"),
        "{dead:?}"
    );
    let keys: Vec<String> = receiver.requests().iter().map(|r| r.key()).collect();
    assert_eq!(keys, ["api:1:hook", "api:2:hook", "api:3:hook"]);
}

#[tokio::test]
async fn a_hanging_receiver_times_out_and_is_retried() {
    // Hangs on the first two requests, then answers.
    let receiver = HttpReceiver::start(|index, _| if index < 2 { Reply::Hang } else { Reply::Status(200) }).await;
    let outbox = Arc::new(MemoryOutbox::default());
    outbox.push("hook", down("api", 1, "hook"), jiff::Timestamp::now());
    let started = std::time::Instant::now();
    let running = Running::start(
        outbox.clone(),
        vec![webhook("hook", &receiver.url(), Duration::from_secs(1))],
        2,
    );
    // A timeout long enough that the answered third attempt cannot time out on a loaded
    // machine; two timed-out attempts take at least two of them.
    let rows = running.settle(Duration::from_secs(20)).await;
    running.stop().await;

    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(rows[0].state, DeliveryState::Delivered);
    assert_eq!(rows[0].notification.attempts, 3);
    assert!(
        rows[0].last_error.as_deref().unwrap().contains("timed out"),
        "{:?}",
        rows[0]
    );
    let keys: Vec<String> = receiver.requests().iter().map(|r| r.key()).collect();
    assert_eq!(keys, ["api:1:hook"; 3]);
}

#[tokio::test]
async fn a_slow_channel_does_not_hold_up_other_channels() {
    let slow = HttpReceiver::start(|_, _| Reply::Hang).await;
    let fast = HttpReceiver::ok().await;
    let outbox = Arc::new(MemoryOutbox::default());
    let now = jiff::Timestamp::now();
    outbox.push("slow", down("api", 1, "slow"), now);
    for seq in 1..=5 {
        outbox.push("fast", down("api", seq, "fast"), now);
    }
    let running = Running::start(
        outbox.clone(),
        vec![
            webhook("slow", &slow.url(), Duration::from_secs(30)),
            webhook("fast", &fast.url(), Duration::from_secs(2)),
        ],
        2,
    );
    // The slow channel's attempt hangs for its 30 s timeout; the fast one does not wait
    // for it (a deadline far below 30 s, with room for a loaded machine).
    let started = std::time::Instant::now();
    fast.wait_for(5, Duration::from_secs(15)).await;
    assert!(started.elapsed() < Duration::from_secs(15));
    let rows = outbox.rows();
    assert_eq!(rows[0].state, DeliveryState::Pending, "the slow one is still in flight");
    assert_eq!(slow.requests().len(), 1, "and was sent once, not again while in flight");
    assert_eq!(running.stats.in_flight.load(Ordering::Relaxed), 1);
    running.cancel.cancel();
    // Its attempt is still bounded by the channel timeout; end the test without waiting.
    drop(slow);
}

/// An outbox that counts the dispatcher's reads, so a test knows when it has looked.
struct Counting {
    inner: Arc<MemoryOutbox>,
    reads: AtomicUsize,
}

impl Outbox for Counting {
    fn due(&self, now: jiff::Timestamp, limit: usize) -> BoxFuture<'_, Result<Vec<Notification>, OutboxError>> {
        // MemoryOutbox reads its rows when called: count the read once it has happened.
        let due = self.inner.due(now, limit);
        self.reads.fetch_add(1, Ordering::SeqCst);
        due
    }

    fn next_due(&self) -> BoxFuture<'_, Result<Option<jiff::Timestamp>, OutboxError>> {
        self.inner.next_due()
    }

    fn delivered(&self, id: i64, attempts: u32, at: jiff::Timestamp) -> BoxFuture<'_, Result<(), OutboxError>> {
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

#[tokio::test]
async fn new_alerts_go_out_on_wake_up() {
    let receiver = HttpReceiver::ok().await;
    let outbox = Arc::new(MemoryOutbox::default());
    let counting = Arc::new(Counting {
        inner: outbox.clone(),
        reads: AtomicUsize::new(0),
    });
    // The dispatcher would look again only after an hour: a delivery within the test's
    // deadline can only come from the wake-up.
    let running = Running::start_on(
        outbox.clone(),
        counting.clone(),
        vec![webhook("hook", &receiver.url(), Duration::from_secs(2))],
        2,
        Duration::from_secs(3600),
    );
    // Its first look found the outbox empty.
    assert!(wait_until(Duration::from_secs(10), || counting.reads.load(Ordering::SeqCst) >= 1).await);
    outbox.push("hook", down("api", 1, "hook"), jiff::Timestamp::now());
    running.wake.notify_one();
    receiver.wait_for(1, Duration::from_secs(10)).await;
    running.settle(Duration::from_secs(10)).await;
    running.stop().await;
}

/// Backoff far longer than any test waits: a retry that goes out during the test was
/// brought forward, not waited for.
fn long_backoff() -> DeliveryConfig {
    DeliveryConfig {
        workers: 4,
        backoff_base: Duration::from_secs(1200),
        backoff_max: Duration::from_secs(3600),
        poll: Duration::from_millis(200),
    }
}

fn rows_of(outbox: &MemoryOutbox, channel: &str) -> Vec<MemoryRow> {
    outbox
        .rows()
        .into_iter()
        .filter(|r| r.notification.channel == channel)
        .collect()
}

#[tokio::test]
async fn a_receiver_that_is_back_gets_the_whole_backlog_at_once_in_order() {
    let up = Arc::new(AtomicBool::new(false));
    let hook = {
        let up = up.clone();
        HttpReceiver::start(move |_, _| {
            if up.load(Ordering::SeqCst) {
                Reply::Status(200)
            } else {
                Reply::Status(503)
            }
        })
        .await
    };
    let other = HttpReceiver::start(|_, _| Reply::Status(503)).await;
    let outbox = Arc::new(MemoryOutbox::default());
    let now = jiff::Timestamp::now();
    for check in ["api", "db", "web"] {
        for seq in 1..=3 {
            outbox.push("hook", down(check, seq, "hook"), now);
        }
    }
    outbox.push("other", down("api", 1, "other"), now);
    let running = Running::start_with(
        outbox.clone(),
        outbox.clone(),
        vec![
            webhook("hook", &hook.url(), Duration::from_secs(5)),
            webhook("other", &other.url(), Duration::from_secs(5)),
        ],
        long_backoff(),
    );
    // Each queue's head fails once and is put off by 10 minutes or more.
    let heads_failed = wait_until(Duration::from_secs(30), || {
        outbox.rows().iter().filter(|r| r.notification.attempts == 1).count() == 4
    })
    .await;
    assert!(heads_failed, "{:#?}", outbox.rows());

    // The receiver is back; an alert of a check with nothing queued goes out at once.
    up.store(true, Ordering::SeqCst);
    outbox.push("hook", down("cache", 1, "hook"), jiff::Timestamp::now());
    running.wake.notify_one();
    let drained = wait_until(Duration::from_secs(30), || {
        rows_of(&outbox, "hook")
            .iter()
            .all(|r| r.state == DeliveryState::Delivered)
    })
    .await;
    assert!(
        drained,
        "the backlog waits for its backoff: {:#?}",
        rows_of(&outbox, "hook")
    );

    // In order per check, each alert accepted once.
    let accepted: Vec<String> = hook
        .requests()
        .iter()
        .filter(|r| r.reply == Reply::Status(200))
        .map(|r| r.key())
        .collect();
    assert_eq!(accepted.len(), 10, "{accepted:?}");
    for check in ["api", "db", "web"] {
        let seqs: Vec<u32> = accepted
            .iter()
            .map(|key| parse_key(key))
            .filter(|(c, _)| c == check)
            .map(|(_, seq)| seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3], "{check}");
    }
    // A success on one channel says nothing about another: it keeps its backoff.
    let other_rows = rows_of(&outbox, "other");
    assert_eq!(other_rows[0].state, DeliveryState::Pending);
    assert!(other_rows[0].notification.next_attempt_at > jiff::Timestamp::now());
    assert_eq!(other.requests().len(), 1);
    running.stop().await;
}

#[tokio::test]
async fn retry_after_on_a_503_brings_the_retry_forward() {
    let receiver = HttpReceiver::start(|index, _| {
        if index == 0 {
            Reply::RetryAfter(503, 1)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let outbox = Arc::new(MemoryOutbox::default());
    outbox.push("hook", down("api", 1, "hook"), jiff::Timestamp::now());
    let running = Running::start_with(
        outbox.clone(),
        outbox.clone(),
        vec![webhook("hook", &receiver.url(), Duration::from_secs(5))],
        long_backoff(),
    );
    let rows = running.settle(Duration::from_secs(30)).await;
    assert_eq!(rows[0].state, DeliveryState::Delivered);
    assert_eq!(rows[0].notification.attempts, 2);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].key(), requests[1].key());
    running.stop().await;
}

//! The delivery workers against real receivers on loopback, in real time with short
//! backoff.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::{down, wait_until, HttpReceiver, Reply};
use pulsecheck_core::channel::{ChannelKind, ChannelSpec};
use pulsecheck_core::clock::Clock;
use pulsecheck_core::outbox::{DeliveryState, MemoryOutbox, MemoryRow};
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
        let map: HashMap<String, Channel> = channels.into_iter().map(|c| (c.name().to_owned(), c)).collect();
        let (sender, receiver) = watch::channel(Arc::new(map));
        let wake = Arc::new(Notify::new());
        let tasks = TaskTracker::new();
        let cancel = CancellationToken::new();
        let config = DeliveryConfig {
            workers,
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(80),
            poll: Duration::from_millis(200),
        };
        let stats = spawn_delivery(
            outbox.clone(),
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
        vec![webhook("hook", &receiver.url(), Duration::from_millis(150))],
        2,
    );
    let rows = running.settle(Duration::from_secs(5)).await;
    running.stop().await;

    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
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
    let started = std::time::Instant::now();
    fast.wait_for(5, Duration::from_secs(3)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let rows = outbox.rows();
    assert_eq!(rows[0].state, DeliveryState::Pending, "the slow one is still in flight");
    assert_eq!(slow.requests().len(), 1, "and was sent once, not again while in flight");
    assert_eq!(running.stats.in_flight.load(std::sync::atomic::Ordering::Relaxed), 1);
    running.cancel.cancel();
    // Its attempt is still bounded by the channel timeout; end the test without waiting.
    drop(slow);
}

#[tokio::test]
async fn new_alerts_go_out_on_wake_up() {
    let receiver = HttpReceiver::ok().await;
    let outbox = Arc::new(MemoryOutbox::default());
    let running = Running::start(
        outbox.clone(),
        vec![webhook("hook", &receiver.url(), Duration::from_secs(2))],
        2,
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    outbox.push("hook", down("api", 1, "hook"), jiff::Timestamp::now());
    running.wake.notify_one();
    // Well before the 200 ms poll.
    receiver.wait_for(1, Duration::from_millis(150)).await;
    running.settle(Duration::from_secs(2)).await;
    running.stop().await;
}

//! The delivery workers: a dispatcher that takes due notifications from the outbox and a
//! bounded pool of attempts, separate from probing.
//!
//! - **In order per check.** The outbox hands out only the oldest pending notification
//!   per (check, channel); the next one becomes due when that one is delivered or dead.
//! - **Never twice at once.** Ids in flight are tracked and skipped when the outbox
//!   offers them again.
//! - **Bounded.** At most `workers` attempts run at once, each bounded by its channel's
//!   timeout, so a slow receiver holds at most its own slot.
//! - **A receiver that is back gets its backlog at once.** While a channel fails, one of
//!   its notifications is tried at least every [`PROBE_EVERY`], however long the backoff
//!   (unless the receiver asked for a later time with `Retry-After`). When a delivery to
//!   a channel succeeds, the channel's other pending notifications become due (still in
//!   order per check) instead of each sitting out its own backoff.
//! - **At least once.** The outbox is updated only after an attempt; an attempt cut
//!   short by a crash is repeated after restart with the same idempotency key.

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::FutureExt as _;
use pulsecheck_core::clock::Clock;
use pulsecheck_core::outbox::{AlertEvent, AlertKind, Notification, Outbox, OutboxError};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::channel::Channel;
use crate::error::DeliveryError;

/// The channels by name, as the daemon publishes them (replaced as a whole on reload).
pub type Channels = Arc<HashMap<String, Channel>>;

/// How the delivery workers run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Attempts in flight at once, over all channels.
    pub workers: usize,
    /// The first retry waits between `backoff_base / 2` and `backoff_base`; each retry
    /// doubles that, up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// The longest the dispatcher sleeps between looks at the outbox, in case a wake-up
    /// was missed (another process wrote the outbox, or a store error).
    pub poll: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            workers: 8,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            poll: Duration::from_secs(1),
        }
    }
}

/// While a channel fails, it is tried at least this often: a receiver that recovers
/// gets its backlog within this long, at the cost of one request per period.
pub const PROBE_EVERY: Duration = Duration::from_secs(10);

/// The shortest wait a `Retry-After` can ask for (its unit is the second).
const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Counters since start, for metrics and tests.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    pub attempts: AtomicU64,
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub dead: AtomicU64,
    /// Outbox reads and writes that failed (each is logged and retried).
    pub outbox_errors: AtomicU64,
    /// Attempts running now.
    pub in_flight: AtomicU64,
    /// Attempts by channel and result (`delivered`, `retried`, `dead`), for `/metrics`.
    /// Locked once per attempt, far from any hot path.
    pub by_channel: std::sync::Mutex<std::collections::BTreeMap<(String, &'static str), u64>>,
}

impl DeliveryStats {
    fn count(&self, channel: &str, result: &'static str) {
        let mut counts = self.by_channel.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *counts.entry((channel.to_owned(), result)).or_default() += 1;
    }

    /// `(channel, result, attempts)`, sorted.
    pub fn by_channel(&self) -> Vec<(String, &'static str, u64)> {
        let counts = self.by_channel.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        counts.iter().map(|((c, r), n)| (c.clone(), *r, *n)).collect()
    }
}

/// Jittered exponential backoff ("equal jitter"): the ceiling `base * 2^(attempt-1)`,
/// capped at `max`, and the delay uniformly in `[ceiling/2, ceiling]` by `jitter` in
/// `[0, 1]`. Half the ceiling is fixed, so the delay grows with every attempt while
/// retries of many notifications still spread out.
///
/// `attempt` is the number of attempts made so far (1 after the first failure).
pub fn backoff(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let doublings = attempt.saturating_sub(1).min(63);
    let ceiling = base
        .checked_mul(1u32.checked_shl(doublings).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let half = ceiling / 2;
    half + (ceiling - half).mul_f64(jitter)
}

/// A fresh random number in `[0, 1)` (std's hasher keys are random per process and
/// bumped per `RandomState`; mixing in the id and attempt keeps retries apart).
fn jitter(id: i64, attempts: u32) -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_i64(id);
    hasher.write_u32(attempts);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Starts the dispatcher on `tasks`; attempts are spawned on `tasks` too, so waiting on
/// the tracker after cancelling waits for in-flight attempts (each bounded by its
/// channel's timeout).
///
/// `wake` is notified by the store after it commits new notifications (use
/// `notify_one`, which is not lost when the dispatcher is busy). On `cancel` the
/// dispatcher takes no new work and returns; attempts in flight finish and are recorded.
pub fn spawn_delivery(
    outbox: Arc<dyn Outbox>,
    channels: watch::Receiver<Channels>,
    clock: Clock,
    wake: Arc<Notify>,
    config: DeliveryConfig,
    tasks: &TaskTracker,
    cancel: CancellationToken,
) -> Arc<DeliveryStats> {
    let workers = config.workers.max(1);
    let shared = Arc::new(Shared {
        outbox,
        clock,
        config,
        stats: Arc::new(DeliveryStats::default()),
        tracking: Mutex::new(Tracking::default()),
        held: Mutex::new(HashMap::new()),
        failing: Mutex::new(HashMap::new()),
        scheduled: Mutex::new(BinaryHeap::new()),
        finished: Notify::new(),
        cancel,
        permits: Arc::new(Semaphore::new(workers)),
        tasks: tasks.clone(),
    });
    let stats = shared.stats.clone();
    tasks.spawn(dispatch(shared, channels, wake));
    stats
}

/// Sends a test alert (`pulsecheck notify-test CHANNEL`) once, with the channel's timeout.
pub async fn send_test(channel: &Channel, check: &str) -> Result<(), DeliveryError> {
    let at = jiff::Timestamp::now();
    let event = AlertEvent {
        idempotency_key: format!("test:{}:{}:{}", check, channel.name(), at.as_millisecond()),
        kind: AlertKind::Test,
        check: check.to_owned(),
        group: None,
        target: String::new(),
        from: "unknown".into(),
        to: "unknown".into(),
        at,
        reason: None,
        error: None,
        cause: Vec::new(),
    };
    channel.send(&event).await
}

struct Shared {
    outbox: Arc<dyn Outbox>,
    clock: Clock,
    config: DeliveryConfig,
    stats: Arc<DeliveryStats>,
    /// Which notifications are being sent, and which finished while the outbox was read.
    tracking: Mutex<Tracking>,
    /// Ids whose outcome could not be written to the outbox: left alone until then, so a
    /// failing store does not turn into a tight resend loop.
    held: Mutex<HashMap<i64, Instant>>,
    /// Channels whose last attempt failed and whose retry is further off than
    /// [`PROBE_EVERY`], by name: the notification to try again early.
    failing: Mutex<HashMap<String, Probe>>,
    /// Retry times this process set. The outbox's `next_due` is the earliest of *all*
    /// pending rows, and a row queued behind a retrying one is "due" already; these
    /// times let the dispatcher wake exactly when a retry falls due.
    scheduled: Mutex<BinaryHeap<Reverse<Instant>>>,
    /// An attempt finished: its slot is free, and the next notification of its check
    /// may be due.
    finished: Notify,
    cancel: CancellationToken,
    permits: Arc<Semaphore>,
    tasks: TaskTracker,
}

/// A failed notification (pending, the head of its queue) to retry at `at`, before its
/// own retry time.
struct Probe {
    id: i64,
    attempts: u32,
    error: String,
    at: Instant,
}

#[derive(Default)]
struct Tracking {
    /// Ids with an attempt running.
    running: HashSet<i64>,
    /// Ids whose attempt ended (and was recorded) since the dispatcher last started
    /// reading the outbox: that read may predate the record, so they are not taken
    /// from it. One lock for both sets, so no id slips between them.
    finished: HashSet<i64>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn dispatch(shared: Arc<Shared>, channels: watch::Receiver<Channels>, wake: Arc<Notify>) {
    tracing::debug!(
        workers = shared.permits.available_permits(),
        "delivery dispatcher started"
    );
    while !shared.cancel.is_cancelled() {
        dispatch_due(&shared, &channels).await;
        let until = next_wake(&shared).await;
        tokio::select! {
            biased;
            () = shared.cancel.cancelled() => break,
            () = wake.notified() => {}
            () = shared.finished.notified() => {}
            () = tokio::time::sleep_until(until) => {}
        }
    }
    tracing::debug!("delivery dispatcher stopped");
}

/// Hands every due notification that is not already in flight to a free slot.
async fn dispatch_due(shared: &Arc<Shared>, channels: &watch::Receiver<Channels>) {
    let running = {
        let mut tracking = lock(&shared.tracking);
        tracking.finished.clear();
        tracking.running.len()
    };
    let free = shared.permits.available_permits();
    if free == 0 {
        return;
    }
    let now = shared.clock.now();
    let held = {
        let instant = Instant::now();
        let mut held = lock(&shared.held);
        held.retain(|_, until| *until > instant);
        held.len()
    };
    probe_failing_channels(shared).await;
    // Running and held rows are still pending and may come back: ask for enough.
    let skip = running + held;
    let due = match shared.outbox.due(now, free + skip).await {
        Ok(due) => due,
        Err(e) => {
            shared.stats.outbox_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "cannot read due notifications; retrying");
            return;
        }
    };
    for notification in due {
        if shared.cancel.is_cancelled() {
            return;
        }
        let id = notification.id;
        if lock(&shared.held).contains_key(&id) {
            continue;
        }
        let Ok(permit) = shared.permits.clone().try_acquire_owned() else {
            return;
        };
        {
            let mut tracking = lock(&shared.tracking);
            if tracking.finished.contains(&id) || !tracking.running.insert(id) {
                continue;
            }
        }
        let channel = channels.borrow().get(&notification.channel).cloned();
        shared.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight {
            shared: shared.clone(),
            id,
            _permit: permit,
        };
        shared
            .tasks
            .spawn(attempt(shared.clone(), notification, channel, guard));
    }
}

/// When to look at the outbox again: at the earliest future due time we know of, or
/// after `poll`. A due time in the past belongs to a row that is in flight or queued
/// behind another; a finishing attempt or a wake-up brings the dispatcher back for it.
async fn next_wake(shared: &Shared) -> Instant {
    let instant = Instant::now();
    let mut until = instant + shared.config.poll;
    match shared.outbox.next_due().await {
        Ok(Some(at)) => {
            let at = shared.clock.instant_at(at);
            if at > instant {
                until = until.min(at);
            }
        }
        Ok(None) => {}
        Err(e) => {
            shared.stats.outbox_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "cannot read the next due time; retrying");
        }
    }
    let mut scheduled = lock(&shared.scheduled);
    while let Some(Reverse(at)) = scheduled.peek().copied() {
        if at > instant {
            until = until.min(at);
            break;
        }
        scheduled.pop();
    }
    if let Some(held) = lock(&shared.held).values().min() {
        until = until.min(*held);
    }
    // A probe time in the past waits for a free slot: a finishing attempt brings the
    // dispatcher back.
    let probes = lock(&shared.failing);
    if let Some(probe) = probes.values().map(|p| p.at).filter(|at| *at > instant).min() {
        until = until.min(probe);
    }
    until
}

/// Makes the failed notification of each channel whose probe time has come due now, so
/// that a receiver that recovered is found within [`PROBE_EVERY`]. Its outcome sets the
/// next probe (a failure) or makes the whole channel due (a success).
async fn probe_failing_channels(shared: &Shared) {
    let instant = Instant::now();
    let ready: Vec<(String, Probe)> = {
        let mut failing = lock(&shared.failing);
        let names: Vec<String> = failing
            .iter()
            .filter(|(_, probe)| probe.at <= instant)
            .map(|(name, _)| name.clone())
            .collect();
        names
            .into_iter()
            .filter_map(|name| failing.remove(&name).map(|probe| (name, probe)))
            .collect()
    };
    for (channel, probe) in ready {
        let busy = lock(&shared.tracking).running.contains(&probe.id) || lock(&shared.held).contains_key(&probe.id);
        if busy {
            continue;
        }
        let now = shared.clock.now();
        match shared.outbox.retry_at(probe.id, probe.attempts, now, probe.error).await {
            Ok(()) => tracing::debug!(channel, id = probe.id, "trying a failing channel again"),
            Err(e) => {
                shared.stats.outbox_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(channel, error = %e, "cannot bring a retry forward");
            }
        }
    }
}

/// Frees the slot and the id when an attempt ends, even if it panicked.
struct InFlight {
    shared: Arc<Shared>,
    id: i64,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut tracking = lock(&self.shared.tracking);
            tracking.running.remove(&self.id);
            tracking.finished.insert(self.id);
        }
        self.shared.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.shared.finished.notify_one();
    }
}

async fn attempt(shared: Arc<Shared>, notification: Notification, channel: Option<Channel>, guard: InFlight) {
    let Notification {
        id,
        channel: channel_name,
        event,
        attempts,
        ..
    } = notification;
    let check = event.check.as_str();
    let Some(channel) = channel else {
        // Nothing was sent: the attempt count stays.
        let error = format!("channel '{channel_name}' is no longer configured");
        tracing::error!(id, check, channel = %channel_name, "{error}; giving up");
        shared.stats.dead.fetch_add(1, Ordering::Relaxed);
        forget_probe(&shared, &channel_name, id);
        record(&shared, id, attempts, || {
            shared.outbox.dead(id, attempts, error.clone())
        })
        .await;
        drop(guard);
        return;
    };
    let attempts = attempts.saturating_add(1);
    shared.stats.attempts.fetch_add(1, Ordering::Relaxed);
    let result = AssertUnwindSafe(channel.send(&event))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(DeliveryError::retryable("internal error: the channel panicked")));
    let key = event.idempotency_key.as_str();
    match result {
        Ok(()) => {
            tracing::info!(id, check, channel = %channel_name, attempts, key, "alert delivered");
            shared.stats.delivered.fetch_add(1, Ordering::Relaxed);
            shared.stats.count(&channel_name, "delivered");
            let at = shared.clock.now();
            record(&shared, id, attempts, || shared.outbox.delivered(id, attempts, at)).await;
            lock(&shared.failing).remove(&channel_name);
            retry_channel_now(&shared, &channel_name, at).await;
        }
        Err(error) if error.permanent => {
            tracing::error!(id, check, channel = %channel_name, attempts, key, error = %error, "alert rejected; moved to dead letters");
            shared.stats.dead.fetch_add(1, Ordering::Relaxed);
            forget_probe(&shared, &channel_name, id);
            shared.stats.count(&channel_name, "dead");
            let message = error.message;
            record(&shared, id, attempts, || {
                shared.outbox.dead(id, attempts, message.clone())
            })
            .await;
        }
        Err(error) => {
            let config = &shared.config;
            let asked = error.retry_after.is_some();
            let delay = match error.retry_after {
                // The receiver knows when it will be back: ask again then, not later; a
                // second at least, so "Retry-After: 0" does not make a busy loop.
                Some(asked) => asked.min(config.backoff_max).max(MIN_RETRY_AFTER),
                None => backoff(attempts, config.backoff_base, config.backoff_max, jitter(id, attempts)),
            };
            let next = shared
                .clock
                .now()
                .checked_add(jiff::SignedDuration::try_from(delay).unwrap_or(jiff::SignedDuration::MAX))
                .unwrap_or(jiff::Timestamp::MAX);
            tracing::warn!(id, check, channel = %channel_name, attempts, key, error = %error, retry_in = %human(delay), "alert not delivered; will retry");
            shared.stats.retried.fetch_add(1, Ordering::Relaxed);
            shared.stats.count(&channel_name, "retried");
            lock(&shared.scheduled).push(Reverse(Instant::now() + delay));
            let message = error.message;
            record(&shared, id, attempts, || {
                shared.outbox.retry_at(id, attempts, next, message.clone())
            })
            .await;
            // Probe the channel early unless this retry comes soon anyway, or the
            // receiver said when to come back.
            let mut failing = lock(&shared.failing);
            if asked || delay <= PROBE_EVERY {
                failing.remove(&channel_name);
            } else {
                failing.insert(
                    channel_name,
                    Probe {
                        id,
                        attempts,
                        error: message,
                        at: Instant::now() + PROBE_EVERY,
                    },
                );
            }
        }
    }
    drop(guard);
}

/// `id` is no longer pending: it cannot be the channel's probe.
fn forget_probe(shared: &Shared, channel: &str, id: i64) {
    let mut failing = lock(&shared.failing);
    if failing.get(channel).is_some_and(|probe| probe.id == id) {
        failing.remove(channel);
    }
}

/// After a delivery to `channel` succeeded: its notifications waiting for a retry are
/// due now. A failure only delays them until their own retry time, so it is logged and
/// not retried. The attempt's end wakes the dispatcher, which then finds them due.
async fn retry_channel_now(shared: &Shared, channel: &str, now: jiff::Timestamp) {
    match shared.outbox.retry_channel_now(channel, now).await {
        Ok(0) => {}
        Ok(made_due) => {
            tracing::info!(
                channel,
                made_due,
                "the receiver is back: retrying its pending alerts now"
            );
        }
        Err(e) => {
            shared.stats.outbox_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(channel, error = %e, "cannot make the channel's pending alerts due; they keep their retry times");
        }
    }
}

/// Writes an attempt's outcome, retrying briefly; if the outbox stays unavailable the
/// notification is held back for a while and then sent again (at least once).
async fn record<F, Fut>(shared: &Shared, id: i64, attempts: u32, mut write: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), OutboxError>>,
{
    let mut wait = Duration::from_millis(50);
    for round in 0..5 {
        match write().await {
            Ok(()) => return,
            Err(e) => {
                shared.stats.outbox_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(id, error = %e, "cannot record a delivery attempt");
                if round == 4 || shared.cancel.is_cancelled() {
                    break;
                }
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    let config = &shared.config;
    let hold = backoff(attempts.max(1), config.backoff_base, config.backoff_max, 1.0).max(config.poll);
    tracing::error!(id, hold = %human(hold), "could not record a delivery attempt; it will be repeated");
    lock(&shared.held).insert(id, Instant::now() + hold);
}

/// "250ms", "5s", "3m 12s", "2h 5m".
pub(crate) fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 {
        return format!("{}ms", duration.as_millis());
    }
    if secs < 60 {
        let tenths = duration.subsec_millis() / 100;
        return if tenths == 0 {
            format!("{secs}s")
        } else {
            format!("{secs}.{tenths}s")
        };
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, s) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_secs(5)), "5s");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human(Duration::from_secs(192)), "3m 12s");
        assert_eq!(human(Duration::from_secs(7500)), "2h 5m");
    }

    #[test]
    fn jitter_is_in_range_and_varies() {
        let values: Vec<f64> = (0..100).map(|i| jitter(i, 1)).collect();
        assert!(values.iter().all(|j| (0.0..1.0).contains(j)));
        let distinct: HashSet<u64> = values.iter().map(|j| j.to_bits()).collect();
        assert!(distinct.len() > 90);
    }
}

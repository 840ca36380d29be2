//! Durable alerts: the contract between the store that persists notifications (in the
//! same transaction as the state transition that caused them) and the delivery workers
//! that send them. Delivery is at least once; every notification carries an idempotency
//! key so that receivers can drop duplicates.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::result::{Outcome, Reason};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a notification is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The check went down.
    Down,
    /// The check came back up after being down.
    Resolved,
    /// Still down: a reminder sent every `reminder` interval while down.
    Reminder,
    /// `pulsecheck notify-test CHANNEL`.
    Test,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Down => "down",
            AlertKind::Resolved => "resolved",
            AlertKind::Reminder => "reminder",
            AlertKind::Test => "test",
        }
    }
}

/// One result that contributed to a transition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CauseResult {
    pub at: jiff::Timestamp,
    pub outcome: Outcome,
    pub reason: Option<Reason>,
    pub error: Option<String>,
    pub duration_ms: f64,
}

/// What receivers are told: the webhook's JSON payload and the template context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Stable across retries and restarts: `{check}:{transition id}:{channel}` or similar.
    pub idempotency_key: String,
    pub kind: AlertKind,
    pub check: String,
    pub group: Option<String>,
    pub target: String,
    /// State names: `unknown`, `up`, `down`.
    pub from: String,
    pub to: String,
    pub at: jiff::Timestamp,
    pub reason: Option<Reason>,
    pub error: Option<String>,
    /// The results that caused the transition, oldest first.
    pub cause: Vec<CauseResult>,
}

/// A pending notification as the outbox hands it to a delivery worker.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub id: i64,
    pub channel: String,
    pub event: AlertEvent,
    /// Delivery attempts made so far.
    pub attempts: u32,
    pub created_at: jiff::Timestamp,
    pub next_attempt_at: jiff::Timestamp,
}

/// Where a notification stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Gave up (a 4xx other than 408/429, or a channel that no longer exists); stays
    /// visible for an operator.
    Dead,
}

/// The outbox could not be read or written. Delivery workers log it and retry later.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("outbox: {0}")]
pub struct OutboxError(pub String);

/// The store side of the outbox. Implementations: SQLite (pulsecheck-store) and
/// [`MemoryOutbox`] for tests.
pub trait Outbox: Send + Sync {
    /// Pending notifications due at `now`: for each (check, channel) only the oldest
    /// pending one, and only when it is due, so that delivery is in order per check.
    fn due(&self, now: jiff::Timestamp, limit: usize) -> BoxFuture<'_, Result<Vec<Notification>, OutboxError>>;

    /// The earliest `next_attempt_at` among the heads (the oldest pending notification
    /// of each check and channel). Rows queued behind a head are not counted: their own
    /// due time may be past while they wait, and a worker sleeping until it would spin.
    fn next_due(&self) -> BoxFuture<'_, Result<Option<jiff::Timestamp>, OutboxError>>;

    fn delivered(&self, id: i64, attempts: u32, at: jiff::Timestamp) -> BoxFuture<'_, Result<(), OutboxError>>;

    fn retry_at(
        &self,
        id: i64,
        attempts: u32,
        next_attempt_at: jiff::Timestamp,
        error: String,
    ) -> BoxFuture<'_, Result<(), OutboxError>>;

    fn dead(&self, id: i64, attempts: u32, error: String) -> BoxFuture<'_, Result<(), OutboxError>>;

    /// Makes every pending notification of `channel` that waits for a later retry due at
    /// `now`, and returns how many. Delivery workers call it when a delivery to the
    /// channel succeeded: the receiver is back, so its backlog need not sit out each
    /// notification's own backoff. Order per check still holds, as [`Outbox::due`] hands
    /// out only the head of each queue. Attempt counts are kept.
    fn retry_channel_now(&self, channel: &str, now: jiff::Timestamp) -> BoxFuture<'_, Result<u64, OutboxError>>;
}

/// An in-memory outbox with the same ordering rules, for tests.
#[derive(Default)]
pub struct MemoryOutbox {
    rows: std::sync::Mutex<Vec<MemoryRow>>,
}

/// A notification and its delivery record, as [`MemoryOutbox`] keeps it.
#[derive(Clone, Debug)]
pub struct MemoryRow {
    pub notification: Notification,
    pub state: DeliveryState,
    pub last_error: Option<String>,
    pub delivered_at: Option<jiff::Timestamp>,
}

impl MemoryOutbox {
    /// Adds a pending notification and returns its id.
    pub fn push(&self, channel: &str, event: AlertEvent, now: jiff::Timestamp) -> i64 {
        let mut rows = self.lock();
        let id = rows.len() as i64 + 1;
        rows.push(MemoryRow {
            notification: Notification {
                id,
                channel: channel.to_owned(),
                event,
                attempts: 0,
                created_at: now,
                next_attempt_at: now,
            },
            state: DeliveryState::Pending,
            last_error: None,
            delivered_at: None,
        });
        id
    }

    pub fn rows(&self) -> Vec<MemoryRow> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<MemoryRow>> {
        self.rows.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The oldest pending notification of each (check, channel).
    fn heads(&self) -> Vec<Notification> {
        let rows = self.lock();
        let mut seen = std::collections::HashSet::new();
        rows.iter()
            .filter(|r| r.state == DeliveryState::Pending)
            .map(|r| &r.notification)
            // Rows are in insertion order, so the first pending one per pair is the oldest.
            .filter(|n| seen.insert((n.event.check.clone(), n.channel.clone())))
            .cloned()
            .collect()
    }

    fn update(&self, id: i64, change: impl FnOnce(&mut MemoryRow)) -> Result<(), OutboxError> {
        let mut rows = self.lock();
        let row = rows
            .iter_mut()
            .find(|r| r.notification.id == id)
            .ok_or_else(|| OutboxError(format!("no notification {id}")))?;
        change(row);
        Ok(())
    }
}

impl Outbox for MemoryOutbox {
    fn due(&self, now: jiff::Timestamp, limit: usize) -> BoxFuture<'_, Result<Vec<Notification>, OutboxError>> {
        let due = self
            .heads()
            .into_iter()
            .filter(|n| n.next_attempt_at <= now)
            .take(limit)
            .collect();
        Box::pin(async move { Ok(due) })
    }

    fn next_due(&self) -> BoxFuture<'_, Result<Option<jiff::Timestamp>, OutboxError>> {
        let next = self.heads().into_iter().map(|n| n.next_attempt_at).min();
        Box::pin(async move { Ok(next) })
    }

    fn delivered(&self, id: i64, attempts: u32, at: jiff::Timestamp) -> BoxFuture<'_, Result<(), OutboxError>> {
        let result = self.update(id, |row| {
            row.state = DeliveryState::Delivered;
            row.notification.attempts = attempts;
            row.delivered_at = Some(at);
        });
        Box::pin(async move { result })
    }

    fn retry_at(
        &self,
        id: i64,
        attempts: u32,
        next_attempt_at: jiff::Timestamp,
        error: String,
    ) -> BoxFuture<'_, Result<(), OutboxError>> {
        let result = self.update(id, |row| {
            row.notification.attempts = attempts;
            row.notification.next_attempt_at = next_attempt_at;
            row.last_error = Some(error);
        });
        Box::pin(async move { result })
    }

    fn dead(&self, id: i64, attempts: u32, error: String) -> BoxFuture<'_, Result<(), OutboxError>> {
        let result = self.update(id, |row| {
            row.state = DeliveryState::Dead;
            row.notification.attempts = attempts;
            row.last_error = Some(error);
        });
        Box::pin(async move { result })
    }

    fn retry_channel_now(&self, channel: &str, now: jiff::Timestamp) -> BoxFuture<'_, Result<u64, OutboxError>> {
        let mut made_due = 0;
        for row in self.lock().iter_mut() {
            let n = &mut row.notification;
            if row.state == DeliveryState::Pending && n.channel == channel && n.next_attempt_at > now {
                n.next_attempt_at = now;
                made_due += 1;
            }
        }
        Box::pin(async move { Ok(made_due) })
    }
}

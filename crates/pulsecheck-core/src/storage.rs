//! What the monitor needs from a durable store, as a small trait, so that the SQLite
//! store (pulsecheck-store) and a PostgreSQL one are interchangeable and the monitor can
//! be tested in process against [`MemoryStorage`].
//!
//! The operations: write a batch of [`WriteEvent`]s in one transaction (a run's result,
//! the check's new state, the transition and its notifications are always one event, so
//! they are never split across transactions), load the persisted states, and the
//! [`Outbox`] through which deliveries are claimed and settled. Reads of the past
//! (results, down spans, uptime) are the separate [`History`] trait.

pub mod aggregate;
pub mod console;
pub mod encoding;
pub mod history;
pub mod housekeeping;
pub mod rows;

use std::collections::HashMap;
use std::sync::Mutex;

pub use console::{Console, Origin};
pub use history::History;
pub use housekeeping::{CompactReport, Cutoffs, Housekeeping, Retention};

use crate::outbox::{AlertEvent, BoxFuture, MemoryOutbox, Outbox};
use crate::state::{CheckState, Transition};
use crate::CheckResult;

/// A configured check's metadata, upserted on start and on every reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckMeta {
    pub name: String,
    pub group: Option<String>,
    pub target: String,
    /// Whether the config file or the API defines the check.
    pub origin: Origin,
}

/// One finished run and everything it caused. The store writes all of it in the same
/// transaction: the result row, the check's new state (and its latest-result columns),
/// and, when the state changed, the transition, the incident it opens or closes and one
/// outbox row per notification. A crash can therefore never leave a check "down" in the
/// store without the transition and the alert that go with it.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub check: String,
    pub result: CheckResult,
    pub state: CheckState,
    pub transition: Option<Transition>,
    /// With several nodes, the lease the run was made under: the store commits the run
    /// (all of it) only while that lease is current, and drops it otherwise. `None` on a
    /// single node.
    pub fence: Option<crate::cluster::Fence>,
    /// For a check with a location quorum: where the run was made. `state` and
    /// `transition` are then the location's; the store tallies the locations and writes
    /// a check-level transition (with `notifications`) only when the tally flips the
    /// check. `None` for a plain check.
    pub quorum: Option<crate::quorum::Located>,
    /// `(channel, event)`: for the transition when there is one, else reminders; for a
    /// quorum run, the candidates the store picks from once it has tallied (see
    /// [`crate::quorum::Located`]). An empty idempotency key is filled by the store:
    /// `{check}:{transition id}:{channel}` for a transition, `{check}:{kind}:{at
    /// ms}:{channel}` otherwise.
    pub notifications: Vec<(String, AlertEvent)>,
}

/// One unit of work for the writer. Events are applied in the order they were sent.
#[derive(Clone, Debug)]
pub enum WriteEvent {
    /// A finished run ([`RunRecord`]). Boxed: a run is most events, but the box keeps
    /// the channel's slots small.
    Run(Box<RunRecord>),
    /// Notifications without a run: test messages. An empty idempotency key is replaced
    /// by `{check}:{kind}:{at ms}:{channel}`.
    Notify { notifications: Vec<(String, AlertEvent)> },
    /// Upserts metadata of the configured checks. With `retire_others`, every other known
    /// check is marked inactive (removed from the config; its history stays) and listed
    /// ones are marked active again.
    RegisterChecks {
        checks: Vec<CheckMeta>,
        retire_others: bool,
    },
}

impl WriteEvent {
    /// Whether committing this event gives delivery workers something to do.
    pub fn adds_notifications(&self) -> bool {
        match self {
            WriteEvent::Run(run) => !run.notifications.is_empty(),
            WriteEvent::Notify { notifications } => !notifications.is_empty(),
            WriteEvent::RegisterChecks { .. } => false,
        }
    }

    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            WriteEvent::Run(run) if run.transition.is_some() => "run with transition",
            WriteEvent::Run(_) => "run",
            WriteEvent::Notify { .. } => "notify",
            WriteEvent::RegisterChecks { .. } => "register_checks",
        }
    }
}

/// A store operation failed. `transient` errors (a busy database, a lost connection)
/// are retried for ever; others are retried a few times and then isolated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    pub message: String,
    pub transient: bool,
}

/// The durable store behind `pulsecheck serve`.
pub trait Storage: Send + Sync + 'static {
    /// Applies `events` in order in one transaction: all of them or none. `now` stamps
    /// `updated_at` and new notifications' `created_at` / `next_attempt_at`.
    fn write<'a>(&'a self, events: &'a [WriteEvent], now: jiff::Timestamp) -> BoxFuture<'a, Result<(), StorageError>>;

    /// The persisted state of every check, by name.
    fn load_states(&self) -> BoxFuture<'_, Result<HashMap<String, CheckState>, StorageError>>;

    /// The persisted state of these checks (those without one are missing): what a node
    /// resumes from when it takes over a check from another node.
    fn load_states_of<'a>(
        &'a self,
        checks: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, CheckState>, StorageError>> {
        Box::pin(async move {
            let mut states = self.load_states().await?;
            states.retain(|name, _| checks.contains(name));
            Ok(states)
        })
    }

    /// The outbox that delivery workers claim and settle notifications through.
    fn outbox(&self) -> &dyn Outbox;

    /// Where the data lives, for logs (a file path, a database URL without password).
    fn location(&self) -> String;
}

/// An in-memory [`Storage`] for tests: keeps every committed event, the states, and an
/// outbox with the same ordering rules as the real stores. [`MemoryStorage::fail_next`]
/// makes the next writes fail, to test retries.
#[derive(Default)]
pub struct MemoryStorage {
    inner: Mutex<MemoryData>,
    outbox: MemoryOutbox,
}

#[derive(Default)]
struct MemoryData {
    committed: Vec<WriteEvent>,
    states: HashMap<String, CheckState>,
    transitions: u64,
    fail_next: u32,
}

impl MemoryStorage {
    /// A store that starts with these persisted states.
    pub fn with_states(states: HashMap<String, CheckState>) -> MemoryStorage {
        let storage = MemoryStorage::default();
        storage.lock().states = states;
        storage
    }

    /// The next `writes` calls to [`Storage::write`] fail with a transient error.
    pub fn fail_next(&self, writes: u32) {
        self.lock().fail_next = writes;
    }

    /// Every event committed so far, in order.
    pub fn committed(&self) -> Vec<WriteEvent> {
        self.lock().committed.clone()
    }

    /// The committed runs, in order.
    pub fn runs(&self) -> Vec<RunRecord> {
        self.lock()
            .committed
            .iter()
            .filter_map(|e| match e {
                WriteEvent::Run(run) => Some((**run).clone()),
                _ => None,
            })
            .collect()
    }

    pub fn states(&self) -> HashMap<String, CheckState> {
        self.lock().states.clone()
    }

    /// The outbox, for inspecting notifications and their delivery.
    pub fn outbox(&self) -> &MemoryOutbox {
        &self.outbox
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryData> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn apply(&self, events: &[WriteEvent], now: jiff::Timestamp) -> Result<(), StorageError> {
        let mut data = self.lock();
        if data.fail_next > 0 {
            data.fail_next -= 1;
            return Err(StorageError {
                message: "injected failure".into(),
                transient: true,
            });
        }
        for event in events {
            match event {
                WriteEvent::Run(run) => {
                    data.states.insert(run.check.clone(), run.state.clone());
                    let transition_id = run.transition.as_ref().map(|_| {
                        data.transitions += 1;
                        data.transitions
                    });
                    for (channel, event) in &run.notifications {
                        self.push(channel, event, transition_id, now);
                    }
                }
                WriteEvent::Notify { notifications } => {
                    for (channel, event) in notifications {
                        self.push(channel, event, None, now);
                    }
                }
                WriteEvent::RegisterChecks { .. } => {}
            }
            data.committed.push(event.clone());
        }
        Ok(())
    }

    fn push(&self, channel: &str, event: &AlertEvent, transition_id: Option<u64>, now: jiff::Timestamp) {
        let mut event = event.clone();
        if event.idempotency_key.is_empty() {
            event.idempotency_key = idempotency_key(&event, transition_id, channel);
        }
        if self
            .outbox
            .rows()
            .iter()
            .any(|r| r.notification.event.idempotency_key == event.idempotency_key)
        {
            return;
        }
        self.outbox.push(channel, event, now);
    }
}

/// The key a store gives a notification that has none: stable across retries and
/// restarts, the same on every node.
pub fn idempotency_key(event: &AlertEvent, transition_id: Option<u64>, channel: &str) -> String {
    match transition_id {
        Some(id) => format!("{}:{id}:{channel}", event.check),
        None => format!(
            "{}:{}:{}:{channel}",
            event.check,
            event.kind.as_str(),
            event.at.as_millisecond()
        ),
    }
}

impl Storage for MemoryStorage {
    fn write<'a>(&'a self, events: &'a [WriteEvent], now: jiff::Timestamp) -> BoxFuture<'a, Result<(), StorageError>> {
        let result = self.apply(events, now);
        Box::pin(async move { result })
    }

    fn load_states(&self) -> BoxFuture<'_, Result<HashMap<String, CheckState>, StorageError>> {
        let states = self.states();
        Box::pin(async move { Ok(states) })
    }

    fn outbox(&self) -> &dyn Outbox {
        &self.outbox
    }

    fn location(&self) -> String {
        "memory".into()
    }
}

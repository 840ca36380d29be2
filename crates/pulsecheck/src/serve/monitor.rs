//! The monitor: turns each finished run into state. Conditions refine the probe's
//! verdict, the state machine applies thresholds, and every result, transition and
//! notification goes to the store's single writer, transition and outbox rows together.

use std::collections::HashMap;
use std::sync::Arc;

use pulsecheck_config::{CheckConfig, MonitorConfig};
use pulsecheck_core::clock::Clock;
use pulsecheck_core::conditions;
use pulsecheck_core::outbox::{AlertEvent, AlertKind, CauseResult};
use pulsecheck_core::scheduler::Run;
use pulsecheck_core::state::{self, CheckState, State, Transition};
use pulsecheck_store::{WriteEvent, WriterHandle};
use tokio::sync::{mpsc, watch};

/// The running configuration, indexed by check name.
pub struct Active {
    pub config: MonitorConfig,
    by_name: HashMap<String, usize>,
}

impl Active {
    pub fn new(config: MonitorConfig) -> Active {
        let by_name = config
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        Active { config, by_name }
    }

    pub fn check(&self, name: &str) -> Option<&CheckConfig> {
        self.by_name.get(name).map(|i| &self.config.checks[*i])
    }

    fn muted(&self, check: &CheckConfig, at: jiff::Timestamp) -> bool {
        self.config.maintenance_for(check, at).is_some()
    }
}

pub struct Monitor {
    pub active: watch::Receiver<Arc<Active>>,
    pub states: HashMap<String, CheckState>,
    pub writer: WriterHandle,
    pub clock: Clock,
    /// When each down check last alerted, for reminders.
    last_alert: HashMap<String, jiff::Timestamp>,
}

impl Monitor {
    pub fn new(
        active: watch::Receiver<Arc<Active>>,
        states: HashMap<String, CheckState>,
        writer: WriterHandle,
        clock: Clock,
    ) -> Monitor {
        // After a restart, reminders count from now rather than firing at once.
        let now = clock.now();
        let last_alert = states
            .iter()
            .filter(|(_, s)| s.state == State::Down)
            .map(|(name, _)| (name.clone(), now))
            .collect();
        Monitor {
            active,
            states,
            writer,
            clock,
            last_alert,
        }
    }

    /// Runs until the scheduler closes the channel, then returns.
    pub async fn run(mut self, mut runs: mpsc::Receiver<Run>) {
        while let Some(run) = runs.recv().await {
            self.handle(run).await;
        }
    }

    async fn handle(&mut self, run: Run) {
        let active = self.active.borrow().clone();
        // A run of a check removed by a reload is dropped.
        let Some(check) = active.check(&run.check) else {
            return;
        };
        let mut result = run.result;
        conditions::apply(&check.conditions, &mut result);
        // The captured body was only for the conditions.
        result.response = None;
        let cause = CauseResult {
            at: result.started_at,
            outcome: result.outcome,
            reason: result.reason,
            error: result.error.clone(),
            duration_ms: result.duration_ms.as_secs_f64() * 1000.0,
        };
        let previous = self.states.get(&check.name).cloned().unwrap_or_default();
        let (next, transition) = state::step(&previous, cause, check.thresholds);
        self.writer
            .send(WriteEvent::Result {
                check: check.name.clone(),
                result,
                state: next.clone(),
            })
            .await;
        match transition {
            Some(transition) => self.on_transition(&active, check, transition, &next).await,
            None => self.maybe_remind(&active, check, &next).await,
        }
        self.states.insert(check.name.clone(), next);
    }

    async fn on_transition(&mut self, active: &Active, check: &CheckConfig, transition: Transition, next: &CheckState) {
        let muted = active.muted(check, transition.at);
        let kind = match (transition.from, transition.to) {
            (_, State::Down) => Some(AlertKind::Down),
            (State::Down, State::Up) => Some(AlertKind::Resolved),
            // Unknown → up is how every check starts: nothing to tell anyone.
            _ => None,
        };
        let notifications = match kind {
            Some(kind) if !muted => events(check, kind, &transition),
            _ => Vec::new(),
        };
        if kind == Some(AlertKind::Down) && !muted {
            self.last_alert.insert(check.name.clone(), transition.at);
        }
        tracing::info!(
            check = %check.name,
            from = %transition.from,
            to = %transition.to,
            notifications = notifications.len(),
            muted,
            "state changed"
        );
        self.writer
            .send(WriteEvent::Transition {
                check: check.name.clone(),
                transition,
                state: next.clone(),
                notifications,
            })
            .await;
    }

    async fn maybe_remind(&mut self, active: &Active, check: &CheckConfig, state: &CheckState) {
        let Some(every) = check.reminder else { return };
        if state.state != State::Down {
            return;
        }
        let now = self.clock.now();
        let due = match self.last_alert.get(&check.name) {
            Some(last) => now.duration_since(*last) >= jiff::SignedDuration::try_from(every).unwrap_or_default(),
            None => true,
        };
        if !due || active.muted(check, now) {
            return;
        }
        self.last_alert.insert(check.name.clone(), now);
        let transition = Transition {
            from: State::Down,
            to: State::Down,
            at: now,
            cause: state.streak.clone(),
        };
        let notifications = events(check, AlertKind::Reminder, &transition);
        self.writer.send(WriteEvent::Notify { notifications }).await;
    }
}

/// One event per channel of the check. The idempotency key is left empty: the store
/// derives it from the transition's row id, which is stable across retries and restarts.
fn events(check: &CheckConfig, kind: AlertKind, transition: &Transition) -> Vec<(String, AlertEvent)> {
    let last = transition.cause.last();
    check
        .channels
        .iter()
        .map(|channel| {
            let event = AlertEvent {
                idempotency_key: String::new(),
                kind,
                check: check.name.clone(),
                group: check.group.clone(),
                target: check.target.input.clone(),
                from: transition.from.as_str().to_owned(),
                to: transition.to.as_str().to_owned(),
                at: transition.at,
                reason: last.and_then(|c| c.reason),
                error: last.and_then(|c| c.error.clone()),
                cause: transition.cause.clone(),
            };
            (channel.clone(), event)
        })
        .collect()
}

//! The monitor: turns each finished run into state. The state machine applies the
//! check's thresholds; a change of state becomes a transition with one notification per
//! channel (none while a maintenance window mutes the check); a check that stays down
//! re-alerts every `reminder`. Everything one run causes goes to the store's writer as
//! one [`WriteEvent::Run`], so it is committed in one transaction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::cluster::Fence;
use crate::live::LiveChecks;
use crate::maintenance::MaintenanceWindow;
use crate::outbox::{AlertEvent, AlertKind, CauseResult};
use crate::ownership::{lease_key, Owned};
use crate::quorum::{Located, Quorum, ReminderTerms};
use crate::scheduler::Run;
use crate::state::{self, CheckState, State, Thresholds, Transition};
use crate::storage::{RunRecord, WriteEvent};
use crate::writer::WriterHandle;

/// What the monitor needs to know of one check.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitoredCheck {
    /// Unique; the identity of a check across reloads.
    pub name: String,
    pub group: Option<String>,
    /// The target as written, for notifications.
    pub target: String,
    pub thresholds: Thresholds,
    /// Names of the channels to notify.
    pub channels: Vec<String>,
    /// Re-alert this often while down; `None` for no reminders.
    pub reminder: Option<Duration>,
    /// Probed from several locations, down only when this many agree.
    pub quorum: Option<Quorum>,
}

/// The checks and maintenance windows in force, and the operator's silences and
/// acknowledgements. Replaced as a whole on reload and on every operator change.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    checks: Vec<MonitoredCheck>,
    by_name: HashMap<String, usize>,
    maintenance: Vec<MaintenanceWindow>,
    /// Alerts of a check are held back until this time (it still runs and records).
    silences: HashMap<String, jiff::Timestamp>,
    /// The start of a check's acknowledged down span: no reminders for that span.
    acknowledged: HashMap<String, jiff::Timestamp>,
}

impl Policy {
    pub fn new(checks: Vec<MonitoredCheck>, maintenance: Vec<MaintenanceWindow>) -> Policy {
        let by_name = checks.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect();
        Policy {
            checks,
            by_name,
            maintenance,
            silences: HashMap::new(),
            acknowledged: HashMap::new(),
        }
    }

    /// The same policy with these silences (check → until).
    pub fn with_silences(mut self, silences: HashMap<String, jiff::Timestamp>) -> Policy {
        self.silences = silences;
        self
    }

    /// The same policy with these acknowledged down spans (check → the span's start).
    pub fn with_acknowledged(mut self, acknowledged: HashMap<String, jiff::Timestamp>) -> Policy {
        self.acknowledged = acknowledged;
        self
    }

    /// Until when `check`'s alerts are held back, if a silence is in force at `at`.
    pub fn silenced_until(&self, check: &str, at: jiff::Timestamp) -> Option<jiff::Timestamp> {
        self.silences.get(check).copied().filter(|until| *until > at)
    }

    /// Whether the down span of `check` that started at `since` was acknowledged. Stores
    /// keep milliseconds, so the comparison is in milliseconds; an acknowledgement of an
    /// older span does not cover a newer one.
    pub fn acknowledged(&self, check: &str, since: Option<jiff::Timestamp>) -> bool {
        acknowledgement_covers(self.acknowledged.get(check).copied(), since)
    }

    pub fn check(&self, name: &str) -> Option<&MonitoredCheck> {
        self.by_name.get(name).map(|i| &self.checks[*i])
    }

    /// The maintenance window that mutes `check` at `at`, if any.
    pub fn maintenance_for(&self, check: &MonitoredCheck, at: jiff::Timestamp) -> Option<&MaintenanceWindow> {
        self.maintenance
            .iter()
            .find(|w| w.covers(&check.name, check.group.as_deref(), at))
    }

    fn muted(&self, check: &MonitoredCheck, at: jiff::Timestamp) -> bool {
        self.maintenance_for(check, at).is_some() || self.silenced_until(&check.name, at).is_some()
    }
}

/// Whether an acknowledgement of the down span that started at `acknowledged` covers the
/// span that started at `since`. Stores keep milliseconds, so the comparison is in
/// milliseconds; an acknowledgement of an older span does not cover a newer one.
pub fn acknowledgement_covers(acknowledged: Option<jiff::Timestamp>, since: Option<jiff::Timestamp>) -> bool {
    match (acknowledged, since) {
        (Some(acked), Some(since)) => acked.as_millisecond() >= since.as_millisecond(),
        _ => false,
    }
}

/// Whether a check still down, last alerted at `last_alert`, reminds at `now`: `every`
/// after the last alert, or at once when nothing was sent for this span (its down alert
/// was muted).
pub fn reminder_due(last_alert: Option<jiff::Timestamp>, now: jiff::Timestamp, every: Duration) -> bool {
    match last_alert {
        Some(last) => now.duration_since(last) >= jiff::SignedDuration::try_from(every).unwrap_or_default(),
        None => true,
    }
}

pub struct Monitor {
    policy: watch::Receiver<Arc<Policy>>,
    states: HashMap<String, CheckState>,
    writer: WriterHandle,
    clock: Clock,
    /// When each down check last alerted, for reminders.
    last_alert: HashMap<String, jiff::Timestamp>,
    /// What `/metrics` shows, when a listener runs.
    live: Option<Arc<LiveChecks>>,
    /// With several nodes: the leases this node holds. `None` on a single node.
    ownership: Option<watch::Receiver<Arc<Owned>>>,
    /// The epoch each check's state was last adopted under (with `ownership`).
    epochs: HashMap<String, i64>,
    /// Runs dropped because this node did not hold the check's lease when they ended.
    fenced: Arc<AtomicU64>,
}

impl Monitor {
    /// A monitor that resumes from the persisted `states`.
    pub fn new(
        policy: watch::Receiver<Arc<Policy>>,
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
            policy,
            states,
            writer,
            clock,
            last_alert,
            live: None,
            ownership: None,
            epochs: HashMap::new(),
            fenced: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Runs on one node of several: a run is recorded only while this node holds the
    /// check's lease, fenced with its epoch; when the epoch changes (the check came from
    /// another node), the state is resumed from what `ownership` adopted.
    pub fn with_ownership(mut self, ownership: watch::Receiver<Arc<Owned>>) -> Monitor {
        self.ownership = Some(ownership);
        self
    }

    /// The count of runs dropped for want of the check's lease (shared, for `/metrics`).
    pub fn fenced_runs(&self) -> Arc<AtomicU64> {
        self.fenced.clone()
    }

    /// Also folds every run into `live` (seeded with the resumed states).
    pub fn with_live(mut self, live: Arc<LiveChecks>) -> Monitor {
        live.seed(self.states.iter().map(|(name, s)| (name.clone(), s.state)));
        self.live = Some(live);
        self
    }

    /// Runs until the scheduler closes the channel, then returns.
    pub async fn run(mut self, mut runs: mpsc::Receiver<Run>) {
        while let Some(run) = runs.recv().await {
            if let Some(record) = self.handle(run) {
                self.writer.send(WriteEvent::Run(Box::new(record))).await;
            }
        }
    }

    /// Folds one run into the check's state and returns what to write. A run of a check
    /// removed by a reload is dropped.
    pub fn handle(&mut self, run: Run) -> Option<RunRecord> {
        let policy = self.policy.borrow().clone();
        let check = policy.check(&run.check)?;
        let mut located = None;
        let fence = match self.ownership.clone() {
            None => None,
            Some(ownership) => {
                let owned = ownership.borrow();
                // A node has one location, so it holds at most one location's lease of a
                // check, and the monitor's state of a quorum check is that location's.
                located = check.quorum.as_ref().and_then(|quorum| {
                    let location = owned.location()?.to_owned();
                    Some(Located {
                        location,
                        quorum: quorum.clone(),
                        reminder: reminder_terms(&policy, check, run.result.started_at),
                    })
                });
                if check.quorum.is_some() && located.is_none() {
                    self.fenced.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                Some(self.fence(&owned, &check.name, located.as_ref().map(|l| l.location.as_str()))?)
            }
        };
        // Engine::check has judged the result and dropped the captured response.
        let result = run.result;
        let cause = CauseResult {
            at: result.started_at,
            outcome: result.outcome,
            reason: result.reason,
            error: result.error.clone(),
            duration_ms: result.duration_ms.as_secs_f64() * 1000.0,
        };
        let previous = self.states.get(&check.name).cloned().unwrap_or_default();
        let (next, transition) = state::step(&previous, cause, check.thresholds);
        let notifications = match (&transition, &located) {
            (Some(transition), None) => self.on_transition(&policy, check, transition),
            (None, None) => self.reminders(&policy, check, &next),
            // Only the store knows the check-level state; it picks from these.
            (_, Some(located)) => {
                located_candidates(&policy, check, &next, transition.as_ref(), located, result.started_at)
            }
        };
        if let Some(live) = &self.live {
            live.record(&check.name, check.group.as_deref(), &result, next.state);
        }
        self.states.insert(check.name.clone(), next.clone());
        Some(RunRecord {
            check: check.name.clone(),
            fence,
            result,
            state: next,
            transition,
            quorum: located,
            notifications,
        })
    }

    /// The fence for a run of `check`, adopting the state the lease came with when its
    /// epoch is new here; `None` (the run is dropped) when this node does not hold it.
    fn fence(&mut self, owned: &Owned, check: &str, location: Option<&str>) -> Option<Fence> {
        let key = lease_key(check, location);
        let Some(epoch) = owned.epoch(&key) else {
            self.fenced.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(check, "run dropped: this node does not hold the check's lease");
            return None;
        };
        if self.epochs.get(&key) != Some(&epoch) {
            let state = owned.adopted.get(&key).cloned().unwrap_or_default();
            // Like after a restart: reminders of an adopted down span count from now.
            if state.state == State::Down {
                self.last_alert.insert(check.to_owned(), self.clock.now());
            } else {
                self.last_alert.remove(check);
            }
            if let Some(live) = &self.live {
                live.seed([(check.to_owned(), state.state)]);
            }
            self.states.insert(check.to_owned(), state);
            self.epochs.insert(key.clone(), epoch);
        }
        Some(Fence {
            key,
            node: owned.node.clone(),
            epoch,
        })
    }

    /// The current state of every check seen so far.
    pub fn states(&self) -> &HashMap<String, CheckState> {
        &self.states
    }

    fn on_transition(
        &mut self,
        policy: &Policy,
        check: &MonitoredCheck,
        transition: &Transition,
    ) -> Vec<(String, AlertEvent)> {
        let muted = policy.muted(check, transition.at);
        let kind = match (transition.from, transition.to) {
            (_, State::Down) => Some(AlertKind::Down),
            (State::Down, State::Up) => Some(AlertKind::Resolved),
            // Unknown → up is how every check starts: nothing to tell anyone.
            _ => None,
        };
        let notifications = match kind {
            Some(kind) if !muted => events(check, kind, transition),
            _ => Vec::new(),
        };
        if kind == Some(AlertKind::Down) && !muted {
            self.last_alert.insert(check.name.clone(), transition.at);
        }
        // The result that tipped the state, so the line says why without a look at the store.
        let last = transition.cause.last();
        tracing::info!(
            check = %check.name,
            from = %transition.from,
            to = %transition.to,
            reason = last.and_then(|c| c.reason).map(tracing::field::display),
            error = last.and_then(|c| c.error.as_deref()),
            notifications = notifications.len(),
            muted,
            "state changed"
        );
        notifications
    }

    fn reminders(&mut self, policy: &Policy, check: &MonitoredCheck, state: &CheckState) -> Vec<(String, AlertEvent)> {
        let Some(every) = check.reminder else {
            return Vec::new();
        };
        if state.state != State::Down || policy.acknowledged(&check.name, state.since) {
            return Vec::new();
        }
        let now = self.clock.now();
        if !reminder_due(self.last_alert.get(&check.name).copied(), now, every) || policy.muted(check, now) {
            return Vec::new();
        }
        self.last_alert.insert(check.name.clone(), now);
        let transition = Transition {
            from: State::Down,
            to: State::Down,
            at: now,
            cause: state.streak.clone(),
        };
        events(check, AlertKind::Reminder, &transition)
    }
}

/// The reminder terms a run of a quorum check at `at` carries: `None` without a
/// reminder interval or while the check is muted.
fn reminder_terms(policy: &Policy, check: &MonitoredCheck, at: jiff::Timestamp) -> Option<ReminderTerms> {
    let every = check.reminder?;
    if policy.muted(check, at) {
        return None;
    }
    Some(ReminderTerms {
        every,
        acknowledged: policy.acknowledged.get(&check.name).copied(),
    })
}

/// The check-level notifications a run of a quorum check may cause, for the store to
/// pick from once it has tallied the locations (see [`Located`]): down, resolved (only
/// from an up location, the only one that can resolve), and a reminder. Every run
/// carries them, not only a location's transition, because the tally can also cross
/// `min_down` when a reload changed the quorum. `at` is the run's start: the time the
/// store judges by. None while the check is muted.
fn located_candidates(
    policy: &Policy,
    check: &MonitoredCheck,
    location_state: &CheckState,
    transition: Option<&Transition>,
    located: &Located,
    at: jiff::Timestamp,
) -> Vec<(String, AlertEvent)> {
    if let Some(transition) = transition {
        tracing::info!(
            check = %check.name,
            location = %located.location,
            from = %transition.from,
            to = %transition.to,
            "location state changed"
        );
    }
    if policy.muted(check, at) {
        return Vec::new();
    }
    // The location's own change when there is one (its cause is what tipped it), else its
    // standing streak; the store sets from, to and at to the check's.
    let basis = transition.cloned().unwrap_or_else(|| Transition {
        from: location_state.state,
        to: location_state.state,
        at,
        cause: location_state.streak.clone(),
    });
    let mut candidates = events(check, AlertKind::Down, &basis);
    if location_state.state == State::Up {
        candidates.extend(events(check, AlertKind::Resolved, &basis));
    }
    if located.reminder.is_some() {
        let reminder = Transition {
            from: State::Down,
            to: State::Down,
            ..basis
        };
        candidates.extend(events(check, AlertKind::Reminder, &reminder));
    }
    candidates
}

/// One event per channel of the check. The idempotency key is left empty: the store
/// derives it from the transition's row id, which is stable across retries and restarts.
fn events(check: &MonitoredCheck, kind: AlertKind, transition: &Transition) -> Vec<(String, AlertEvent)> {
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
                target: check.target.clone(),
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

#[cfg(test)]
mod tests {
    //! The monitor in process, on paused time, writing through the real batched writer
    //! into [`MemoryStorage`].

    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::{mpsc, watch};
    use tokio_util::task::TaskTracker;

    use super::*;
    use crate::maintenance::Recurrence;
    use crate::ownership::Owned;
    use crate::storage::MemoryStorage;
    use crate::writer::{spawn_writer, WriterConfig};
    use crate::{CheckResult, Outcome, ProbeKind, Reason};

    const MINUTE: Duration = Duration::from_secs(60);

    fn start() -> jiff::Timestamp {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    fn check(name: &str, reminder: Option<Duration>) -> MonitoredCheck {
        MonitoredCheck {
            name: name.into(),
            group: Some("web".into()),
            target: format!("https://{name}.test/"),
            thresholds: Thresholds { failure: 2, success: 1 },
            channels: vec!["ops".into(), "pager".into()],
            reminder,
            quorum: None,
        }
    }

    fn run(clock: &Clock, name: &str, outcome: Outcome) -> Run {
        let mut result = CheckResult::new(&format!("https://{name}.test/"), None, ProbeKind::Http, outcome);
        result.started_at = clock.now();
        if outcome == Outcome::Down {
            result.reason = Some(Reason::Status);
            result.error = Some("status 503".into());
        }
        Run {
            check: name.into(),
            result,
            lag: Duration::ZERO,
            skipped: 0,
        }
    }

    struct Harness {
        clock: Clock,
        storage: Arc<MemoryStorage>,
        policy: watch::Sender<Arc<Policy>>,
        monitor: Monitor,
    }

    impl Harness {
        fn new(policy: Policy) -> Harness {
            let clock = Clock::starting_at(start());
            let storage = Arc::new(MemoryStorage::default());
            let writer = spawn_writer(
                storage.clone(),
                &TaskTracker::new(),
                WriterConfig {
                    clock: clock.clone(),
                    ..WriterConfig::default()
                },
            );
            let (policy, policy_rx) = watch::channel(Arc::new(policy));
            let monitor = Monitor::new(policy_rx, HashMap::new(), writer, clock.clone());
            Harness {
                clock,
                storage,
                policy,
                monitor,
            }
        }

        /// One run of `name` with `outcome` now, then `after` of paused time.
        async fn step(&mut self, name: &str, outcome: Outcome, after: Duration) -> Option<RunRecord> {
            let record = self.monitor.handle(run(&self.clock, name, outcome));
            tokio::time::advance(after).await;
            record
        }
    }

    fn kinds(record: &RunRecord) -> Vec<(String, AlertKind)> {
        record
            .notifications
            .iter()
            .map(|(channel, event)| (channel.clone(), event.kind))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_down_transition_alerts_every_channel_and_recovery_resolves() {
        let mut h = Harness::new(Policy::new(vec![check("api", None)], Vec::new()));
        let first = h.step("api", Outcome::Up, MINUTE).await.unwrap();
        assert_eq!(
            first.transition.as_ref().map(|t| (t.from, t.to)),
            Some((State::Unknown, State::Up))
        );
        assert!(first.notifications.is_empty(), "unknown → up tells nobody");

        let one_failure = h.step("api", Outcome::Down, MINUTE).await.unwrap();
        assert!(one_failure.transition.is_none(), "the failure threshold is 2");
        let down = h.step("api", Outcome::Down, MINUTE).await.unwrap();
        let transition = down.transition.as_ref().unwrap();
        assert_eq!((transition.from, transition.to), (State::Up, State::Down));
        assert_eq!(transition.cause.len(), 2);
        assert_eq!(down.state.state, State::Down);
        assert_eq!(
            kinds(&down),
            [
                ("ops".to_owned(), AlertKind::Down),
                ("pager".to_owned(), AlertKind::Down)
            ]
        );
        assert_eq!(down.notifications[0].1.error.as_deref(), Some("status 503"));

        let up = h.step("api", Outcome::Up, MINUTE).await.unwrap();
        assert_eq!(kinds(&up)[0].1, AlertKind::Resolved);
        assert_eq!(h.monitor.states()["api"].state, State::Up);
    }

    #[tokio::test(start_paused = true)]
    async fn a_maintenance_window_mutes_the_transition_but_records_it() {
        let window = MaintenanceWindow {
            name: "deploy".into(),
            start: start(),
            end: start() + jiff::SignedDuration::from_mins(30),
            every: None,
            checks: None,
            groups: Some(vec!["web".into()]),
        };
        let other = MonitoredCheck {
            group: Some("db".into()),
            ..check("db", None)
        };
        let mut h = Harness::new(Policy::new(vec![check("api", None), other], vec![window]));
        h.step("api", Outcome::Up, Duration::ZERO).await;
        h.step("db", Outcome::Up, MINUTE).await;
        h.step("api", Outcome::Down, Duration::ZERO).await;
        h.step("db", Outcome::Down, MINUTE).await;
        let api = h.step("api", Outcome::Down, Duration::ZERO).await.unwrap();
        let db = h.step("db", Outcome::Down, 40 * MINUTE).await.unwrap();
        assert_eq!(
            api.transition.as_ref().map(|t| t.to),
            Some(State::Down),
            "muted, still recorded"
        );
        assert!(api.notifications.is_empty(), "the window covers group web");
        assert_eq!(db.notifications.len(), 2, "the window does not cover group db");

        // After the window: recovery and the next failure alert again.
        let up = h.step("api", Outcome::Up, MINUTE).await.unwrap();
        assert_eq!(kinds(&up)[0].1, AlertKind::Resolved);
        h.step("api", Outcome::Down, MINUTE).await;
        let down = h.step("api", Outcome::Down, MINUTE).await.unwrap();
        assert_eq!(kinds(&down)[0].1, AlertKind::Down);
    }

    #[tokio::test(start_paused = true)]
    async fn reminders_repeat_while_down_and_not_while_muted() {
        // A daily window from 13:00 to 13:20 (the check goes down at 12:01).
        let window = MaintenanceWindow {
            name: "nightly".into(),
            start: start() + jiff::SignedDuration::from_hours(1),
            end: start() + jiff::SignedDuration::from_mins(80),
            every: Some(Recurrence::Daily),
            checks: Some(vec!["api".into()]),
            groups: None,
        };
        let mut h = Harness::new(Policy::new(vec![check("api", Some(10 * MINUTE))], vec![window]));
        h.step("api", Outcome::Down, MINUTE).await;
        let down = h.step("api", Outcome::Down, MINUTE).await.unwrap();
        assert_eq!(kinds(&down)[0].1, AlertKind::Down);
        let down_at = down.transition.unwrap().at;

        // One run a minute for 100 minutes; note when reminders were written.
        let mut reminders = Vec::new();
        for _ in 0..100 {
            let record = h.step("api", Outcome::Down, MINUTE).await.unwrap();
            assert!(record.transition.is_none());
            if !record.notifications.is_empty() {
                assert_eq!(kinds(&record)[0].1, AlertKind::Reminder);
                assert_eq!(record.notifications.len(), 2, "one per channel");
                reminders.push(record.result.started_at.duration_since(down_at).as_mins());
            }
        }
        // Every 10 minutes, except inside 13:00–13:20 (59 to 79 minutes after going down);
        // the first run after the window reminds at once, since one is overdue.
        assert_eq!(reminders, [10, 20, 30, 40, 50, 79, 89, 99]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silence_holds_alerts_back_and_an_acknowledgement_stops_reminders() {
        let policy = || Policy::new(vec![check("api", Some(10 * MINUTE))], Vec::new());
        let mut h = Harness::new(policy().with_silences(HashMap::from([(
            "api".to_owned(),
            start() + jiff::SignedDuration::from_mins(5),
        )])));
        h.step("api", Outcome::Down, MINUTE).await;
        let down = h.step("api", Outcome::Down, 10 * MINUTE).await.unwrap();
        assert_eq!(down.transition.as_ref().map(|t| t.to), Some(State::Down));
        assert!(down.notifications.is_empty(), "silenced until 12:05");
        // The silence is over: the overdue reminder goes out.
        let reminder = h.step("api", Outcome::Down, MINUTE).await.unwrap();
        assert_eq!(kinds(&reminder)[0].1, AlertKind::Reminder);

        // Acknowledged: no more reminders for this down span.
        let since = down.state.since;
        h.policy.send_replace(Arc::new(
            policy().with_acknowledged(HashMap::from([("api".to_owned(), since.unwrap())])),
        ));
        for _ in 0..30 {
            let record = h.step("api", Outcome::Down, MINUTE).await.unwrap();
            assert!(record.notifications.is_empty(), "acknowledged");
        }
        // A new down span is not covered by the old acknowledgement.
        h.step("api", Outcome::Up, MINUTE).await;
        h.step("api", Outcome::Down, MINUTE).await;
        let again = h.step("api", Outcome::Down, 10 * MINUTE).await.unwrap();
        assert_eq!(kinds(&again)[0].1, AlertKind::Down);
        let reminder = h.step("api", Outcome::Down, MINUTE).await.unwrap();
        assert_eq!(kinds(&reminder)[0].1, AlertKind::Reminder);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_restart_reminders_count_from_now_and_a_removed_check_is_dropped() {
        let clock = Clock::starting_at(start());
        let storage = Arc::new(MemoryStorage::default());
        let writer = spawn_writer(storage.clone(), &TaskTracker::new(), WriterConfig::default());
        let down = CheckState {
            state: State::Down,
            since: Some(start() - jiff::SignedDuration::from_hours(5)),
            streak: Vec::new(),
        };
        let (policy_tx, policy) =
            watch::channel(Arc::new(Policy::new(vec![check("api", Some(10 * MINUTE))], Vec::new())));
        let states = HashMap::from([("api".to_owned(), down)]);
        let mut monitor = Monitor::new(policy, states, writer, clock.clone());
        let first = monitor.handle(run(&clock, "api", Outcome::Down)).unwrap();
        assert!(first.notifications.is_empty(), "no reminder burst on start");
        tokio::time::advance(10 * MINUTE).await;
        let later = monitor.handle(run(&clock, "api", Outcome::Down)).unwrap();
        assert_eq!(kinds(&later)[0].1, AlertKind::Reminder);

        policy_tx.send_replace(Arc::new(Policy::new(vec![check("web", None)], Vec::new())));
        assert!(monitor.handle(run(&clock, "api", Outcome::Down)).is_none());
    }

    /// The whole pipeline: runs in, one write per run out, through a store that fails
    /// for a while. Nothing is lost and every transition is written with its result.
    #[tokio::test(start_paused = true)]
    async fn runs_flow_through_the_writer_as_one_event_each_despite_failures() {
        let h = Harness::new(Policy::new(vec![check("api", None)], Vec::new()));
        h.storage.fail_next(3);
        let (runs_tx, runs_rx) = mpsc::channel(16);
        let clock = h.clock.clone();
        let storage = h.storage.clone();
        let tasks = TaskTracker::new();
        tasks.spawn(h.monitor.run(runs_rx));
        for outcome in [Outcome::Up, Outcome::Down, Outcome::Down, Outcome::Up] {
            runs_tx.send(run(&clock, "api", outcome)).await.unwrap();
            tokio::time::advance(MINUTE).await;
        }
        drop(runs_tx);
        tasks.close();
        tasks.wait().await;
        // The writer retries with backoff on paused time; wait for it to catch up.
        while storage.runs().len() < 4 {
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        let runs = storage.runs();
        let transitions: Vec<(State, State)> = runs
            .iter()
            .filter_map(|r| r.transition.as_ref().map(|t| (t.from, t.to)))
            .collect();
        assert_eq!(
            transitions,
            [
                (State::Unknown, State::Up),
                (State::Up, State::Down),
                (State::Down, State::Up)
            ]
        );
        assert_eq!(storage.states()["api"].state, State::Up);
        let keys: Vec<String> = storage
            .outbox()
            .rows()
            .iter()
            .map(|r| r.notification.event.idempotency_key.clone())
            .collect();
        assert_eq!(keys, ["api:2:ops", "api:2:pager", "api:3:ops", "api:3:pager"]);
        drop(h.policy);
    }

    /// With ownership: runs of checks this node does not hold are dropped and counted,
    /// the others carry the lease's fence, and a new epoch resumes from the adopted
    /// state (here: down, written by the previous owner) without a reminder burst.
    #[tokio::test(start_paused = true)]
    async fn runs_are_fenced_dropped_and_adopted_by_lease() {
        let h = Harness::new(Policy::new(
            vec![check("api", Some(10 * MINUTE)), check("db", None)],
            Vec::new(),
        ));
        let owned = |epoch: i64, adopted: HashMap<String, CheckState>| {
            Arc::new(Owned {
                node: "n1".into(),
                members: Vec::new(),
                leases: HashMap::from([("api".to_owned(), epoch)]),
                adopted,
            })
        };
        let (ownership, ownership_rx) = watch::channel(owned(4, HashMap::new()));
        let mut monitor = h.monitor.with_ownership(ownership_rx);
        let fenced = monitor.fenced_runs();

        assert!(
            monitor.handle(run(&h.clock, "db", Outcome::Up)).is_none(),
            "db is not held here"
        );
        assert_eq!(fenced.load(Ordering::Relaxed), 1);
        let up = monitor.handle(run(&h.clock, "api", Outcome::Up)).unwrap();
        assert_eq!(
            up.fence,
            Some(Fence {
                key: "api".into(),
                node: "n1".into(),
                epoch: 4
            })
        );
        assert_eq!(
            up.transition.map(|t| t.from),
            Some(State::Unknown),
            "nothing adopted: starts unknown"
        );

        // The lease went away and came back under epoch 6; meanwhile another node took the
        // check down and persisted that.
        let down = CheckState {
            state: State::Down,
            since: Some(start()),
            streak: Vec::new(),
        };
        ownership.send_replace(owned(6, HashMap::from([("api".to_owned(), down)])));
        let resumed = monitor.handle(run(&h.clock, "api", Outcome::Down)).unwrap();
        assert_eq!(resumed.fence.as_ref().map(|f| f.epoch), Some(6));
        assert!(resumed.transition.is_none(), "already down: no second down alert");
        assert!(resumed.notifications.is_empty(), "reminders count from the adoption");
        assert_eq!(resumed.state.since, Some(start()));
        tokio::time::advance(10 * MINUTE).await;
        let reminder = monitor.handle(run(&h.clock, "api", Outcome::Down)).unwrap();
        assert_eq!(kinds(&reminder)[0].1, AlertKind::Reminder);
        // Same epoch again: the monitor's own state is kept, not re-adopted.
        let up = monitor.handle(run(&h.clock, "api", Outcome::Up)).unwrap();
        assert_eq!(up.transition.map(|t| (t.from, t.to)), Some((State::Down, State::Up)));
    }

    /// A quorum check on a node at "eu": the run is fenced by the `api@eu` lease, judged
    /// per location from the state adopted for that key, and carries the would-be
    /// check-level alerts of its location's change for the store to use or drop.
    #[tokio::test(start_paused = true)]
    async fn a_quorum_check_is_judged_per_location_under_its_located_lease() {
        let quorum = Quorum {
            locations: vec!["eu".into(), "us".into(), "ap".into()],
            min_down: 2,
        };
        let api = MonitoredCheck {
            quorum: Some(quorum.clone()),
            ..check("api", Some(10 * MINUTE))
        };
        let h = Harness::new(Policy::new(vec![api], Vec::new()));
        let up_at_eu = CheckState {
            state: State::Up,
            since: Some(start()),
            streak: Vec::new(),
        };
        let owned = Arc::new(Owned {
            node: "n-eu".into(),
            members: vec![crate::cluster::Member {
                node: "n-eu".into(),
                location: Some("eu".into()),
            }],
            leases: HashMap::from([("api@eu".to_owned(), 3)]),
            adopted: HashMap::from([("api@eu".to_owned(), up_at_eu)]),
        });
        let (_ownership, ownership_rx) = watch::channel(owned);
        let mut monitor = h.monitor.with_ownership(ownership_rx);
        let first = monitor.handle(run(&h.clock, "api", Outcome::Down)).unwrap();
        assert_eq!(
            first.fence.as_ref().map(|f| (f.key.as_str(), f.epoch)),
            Some(("api@eu", 3))
        );
        let terms = ReminderTerms {
            every: 10 * MINUTE,
            acknowledged: None,
        };
        assert_eq!(
            first.quorum,
            Some(Located {
                location: "eu".into(),
                quorum,
                reminder: Some(terms.clone()),
            })
        );
        assert!(first.transition.is_none(), "adopted up; the threshold is 2");
        // Every run carries candidates, since a reload can make the tally flip without
        // a change here: up → resolved is only offered by an up location.
        let candidates = |record: &RunRecord| {
            let mut kinds: Vec<AlertKind> = kinds(record).into_iter().map(|(_, kind)| kind).collect();
            kinds.dedup();
            kinds
        };
        assert_eq!(
            candidates(&first),
            [AlertKind::Down, AlertKind::Resolved, AlertKind::Reminder],
            "one failure of two: the location is still up"
        );
        let down = monitor.handle(run(&h.clock, "api", Outcome::Down)).unwrap();
        assert_eq!(
            down.transition.as_ref().map(|t| (t.from, t.to)),
            Some((State::Up, State::Down))
        );
        assert_eq!(
            &kinds(&down)[..2],
            [
                ("ops".to_owned(), AlertKind::Down),
                ("pager".to_owned(), AlertKind::Down)
            ]
        );
        let reminder = &down.notifications[2].1;
        assert_eq!(
            (reminder.kind, reminder.from.as_str(), reminder.at),
            (AlertKind::Reminder, "down", down.result.started_at),
            "a reminder is stamped with the run's start, which the store judges by"
        );
        assert_eq!(
            candidates(&down),
            [AlertKind::Down, AlertKind::Reminder],
            "a down location cannot resolve the check"
        );
        let up = monitor.handle(run(&h.clock, "api", Outcome::Up)).unwrap();
        assert_eq!(
            candidates(&up),
            [AlertKind::Down, AlertKind::Resolved, AlertKind::Reminder]
        );

        // Silenced: no candidates and no reminder terms; the acknowledgement is passed on.
        let until = start() + jiff::SignedDuration::from_hours(1);
        let span = start() - jiff::SignedDuration::from_mins(5);
        h.policy.send_replace(Arc::new(
            Policy::new(
                vec![MonitoredCheck {
                    quorum: Some(Quorum {
                        locations: vec!["eu".into(), "us".into(), "ap".into()],
                        min_down: 2,
                    }),
                    ..check("api", Some(10 * MINUTE))
                }],
                Vec::new(),
            )
            .with_silences(HashMap::from([("api".to_owned(), until)]))
            .with_acknowledged(HashMap::from([("api".to_owned(), span)])),
        ));
        let silenced = monitor.handle(run(&h.clock, "api", Outcome::Down)).unwrap();
        assert!(silenced.notifications.is_empty());
        assert_eq!(silenced.quorum.and_then(|l| l.reminder), None);
        tokio::time::advance(2 * 60 * MINUTE).await;
        let after = monitor.handle(run(&h.clock, "api", Outcome::Down)).unwrap();
        assert_eq!(
            after.quorum.and_then(|l| l.reminder),
            Some(ReminderTerms {
                acknowledged: Some(span),
                ..terms
            })
        );
    }
}

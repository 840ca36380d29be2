//! Two nodes in one process on paused time: each with its ownership loop and monitor,
//! sharing a [`MemoryCoordinator`] and a [`MemoryStorage`] through the real batched
//! writer. Every run is recorded by exactly one node under the lease it holds; when a
//! node is cut off, the other takes its checks over under higher epochs and resumes
//! from the state the first one wrote, so a check already down does not alert again.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pulsecheck_core::clock::Clock;
use pulsecheck_core::cluster::memory::MemoryCoordinator;
use pulsecheck_core::cluster::Member;
use pulsecheck_core::monitor::{Monitor, MonitoredCheck, Policy};
use pulsecheck_core::ownership::{spawn_ownership, Owned, OwnershipConfig};
use pulsecheck_core::scheduler::Run;
use pulsecheck_core::state::{State, Thresholds};
use pulsecheck_core::storage::{MemoryStorage, RunRecord, WriteEvent};
use pulsecheck_core::writer::{spawn_writer, WriterConfig, WriterHandle};
use pulsecheck_core::{CheckResult, Outcome, ProbeKind, Reason};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const TTL: Duration = Duration::from_secs(15);
const CHECKS: usize = 30;

struct Node {
    owned: watch::Receiver<Arc<Owned>>,
    monitor: Monitor,
    writer: WriterHandle,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Node {
    /// Folds a run of `check` with `outcome` into this node's monitor and writes what it
    /// records; `None` when the node does not hold the check.
    async fn run(&mut self, clock: &Clock, check: &str, outcome: Outcome) -> Option<RunRecord> {
        let mut result = CheckResult::new("http://sim.test/", None, ProbeKind::Http, outcome);
        result.started_at = clock.now();
        if outcome == Outcome::Down {
            result.reason = Some(Reason::Status);
        }
        let record = self.monitor.handle(Run {
            check: check.into(),
            result,
            lag: Duration::ZERO,
            skipped: 0,
        })?;
        self.writer.send(WriteEvent::Run(Box::new(record.clone()))).await;
        self.writer.flush().await;
        Some(record)
    }

    /// Commits what the writer holds, then releases the leases.
    async fn stop(self) {
        let Node {
            monitor,
            writer,
            cancel,
            tasks,
            ..
        } = self;
        drop(monitor);
        writer.close_and_wait().await;
        cancel.cancel();
        tasks.close();
        tasks.wait().await;
    }
}

fn policy() -> Policy {
    let checks = (0..CHECKS)
        .map(|i| MonitoredCheck {
            name: format!("c{i}"),
            group: None,
            target: "http://sim.test/".into(),
            thresholds: Thresholds { failure: 1, success: 1 },
            channels: vec!["ops".into()],
            reminder: None,
        })
        .collect();
    Policy::new(checks, Vec::new())
}

fn start(
    name: &str,
    coordinator: &Arc<MemoryCoordinator>,
    storage: &Arc<MemoryStorage>,
    keys: &watch::Receiver<Arc<Vec<String>>>,
    clock: &Clock,
) -> Node {
    let tasks = TaskTracker::new();
    let cancel = CancellationToken::new();
    let owned = spawn_ownership(
        coordinator.clone(),
        Member {
            node: name.into(),
            location: None,
        },
        keys.clone(),
        storage.clone(),
        OwnershipConfig { ttl: TTL },
        &tasks,
        cancel.clone(),
    );
    let writer = spawn_writer(
        storage.clone(),
        &tasks,
        WriterConfig {
            clock: clock.clone(),
            ..WriterConfig::default()
        },
    );
    let (_, policy) = watch::channel(Arc::new(policy()));
    let monitor = Monitor::new(policy, HashMap::new(), writer.clone(), clock.clone()).with_ownership(owned.clone());
    Node {
        owned,
        monitor,
        writer,
        cancel,
        tasks,
    }
}

/// Advances paused time in small steps until `done`, for at most `limit`.
async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::advance(Duration::from_millis(250)).await;
        tokio::task::yield_now().await;
    }
    done()
}

fn holds(node: &Node) -> usize {
    node.owned.borrow().leases.len()
}

#[tokio::test(start_paused = true)]
async fn runs_are_recorded_once_under_the_lease_and_a_takeover_resumes_the_state() {
    let clock = Clock::starting_at("2026-03-01T12:00:00Z".parse().unwrap());
    let coordinator = Arc::new(MemoryCoordinator::new());
    let storage = Arc::new(MemoryStorage::default());
    let keys: Vec<String> = (0..CHECKS).map(|i| format!("c{i}")).collect();
    let (_keys_tx, keys_rx) = watch::channel(Arc::new(keys.clone()));
    let mut a = start("a", &coordinator, &storage, &keys_rx, &clock);
    let mut b = start("b", &coordinator, &storage, &keys_rx, &clock);
    assert!(
        until(3 * TTL, || holds(&a) + holds(&b) == CHECKS
            && holds(&a) > 0
            && holds(&b) > 0
            && a.owned.borrow().members.len() == 2
            && b.owned.borrow().members.len() == 2)
        .await,
        "a and b split the checks"
    );

    // Both nodes probe every check (as two schedulers that disagree would): only the
    // holder records it, fenced with its lease.
    let mut epochs_of_a = HashMap::new();
    for check in &keys {
        let on_a = a.run(&clock, check, Outcome::Down).await;
        let on_b = b.run(&clock, check, Outcome::Down).await;
        let record = match (on_a, on_b) {
            (Some(record), None) => {
                epochs_of_a.insert(check.clone(), record.fence.as_ref().unwrap().epoch);
                record
            }
            (None, Some(record)) => record,
            (x, y) => panic!("{check}: recorded by a: {}, by b: {}", x.is_some(), y.is_some()),
        };
        let fence = record.fence.unwrap();
        assert_eq!(coordinator.holder(check), Some((fence.node.clone(), fence.epoch)));
        assert_eq!(record.transition.map(|t| t.to), Some(State::Down));
    }
    let dropped = a.monitor.fenced_runs().load(Ordering::Relaxed) + b.monitor.fenced_runs().load(Ordering::Relaxed);
    assert_eq!(dropped, CHECKS as u64, "one dropped run per check");
    assert_eq!(storage.outbox().rows().len(), CHECKS, "one down alert per check");

    // a is cut off from the store: it stops recording, b takes its checks over.
    coordinator.partition("a", true);
    assert!(
        until(2 * TTL, || holds(&b) == CHECKS && holds(&a) == 0).await,
        "b holds every check, a none"
    );
    for check in &keys {
        assert!(a.run(&clock, check, Outcome::Down).await.is_none(), "a is fenced off");
        let record = b.run(&clock, check, Outcome::Down).await.unwrap();
        if let Some(old) = epochs_of_a.get(check) {
            assert!(record.fence.as_ref().unwrap().epoch > *old, "{check}: a higher epoch");
        }
        // The state a wrote (down) is where b resumes: no second down alert.
        assert!(record.transition.is_none(), "{check}: {:?}", record.transition);
        assert_eq!(record.state.state, State::Down);
    }
    assert_eq!(storage.outbox().rows().len(), CHECKS, "still one down alert per check");
    a.stop().await;
    b.stop().await;
}

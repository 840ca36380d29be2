//! The engine: one check loop shared by `scan` and `serve`. It owns the limits, the
//! shared probe resources and the ledger, and turns every target into exactly one result.

use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use rustls_pki_types::CertificateDer;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::conditions;
use crate::ledger::{Ledger, LedgerCounts};
use crate::limiter::Limiter;
use crate::options::{CheckOptions, EngineOptions, DEFAULT_HTTP_IN_FLIGHT};
use crate::probe::{self, Attempt, Failure, ProbeContext, TrackedExecutor};
use crate::resolve::Resolver;
use crate::result::{CheckResult, Outcome, ProbeKind, Reason};
use crate::target::{Target, TargetSpec};
use crate::tls::{TlsClients, TlsSetupError};

/// Resources shared by every check.
pub struct Engine {
    ctx: ProbeContext,
    limiter: Limiter,
    ledger: Ledger,
    options: EngineOptions,
}

/// Everything an engine needs that comes from the environment.
#[derive(Default)]
pub struct EngineSetup {
    pub limits: EngineOptions,
    /// Resolve names with this nameserver instead of the system configuration.
    pub nameserver: Option<SocketAddr>,
    /// Extra trust anchors (`--cacert`).
    pub extra_ca: Vec<CertificateDer<'static>>,
    /// HTTP(S) checks in flight at once, at most `limits.concurrency`; `None` means
    /// [`DEFAULT_HTTP_IN_FLIGHT`].
    pub http_in_flight: Option<usize>,
}

impl Engine {
    /// Must be called inside a Tokio runtime.
    pub fn new(setup: EngineSetup) -> Result<Engine, TlsSetupError> {
        Ok(Engine {
            ctx: ProbeContext {
                resolver: Resolver::new(setup.nameserver),
                tls: TlsClients::new(&setup.extra_ca)?,
                icmp: Default::default(),
                executor: TrackedExecutor::default(),
                pool: Default::default(),
            },
            limiter: Limiter::new(
                setup.limits.concurrency,
                setup.limits.per_host,
                setup.http_in_flight.unwrap_or(DEFAULT_HTTP_IN_FLIGHT),
            ),
            ledger: Ledger::default(),
            options: setup.limits,
        })
    }

    pub fn ledger(&self) -> LedgerCounts {
        self.ledger.counts()
    }

    /// Runs one check: waits for its slots (time recorded as `queue_ms`), then runs the
    /// probe under `options.timeout`, then judges what it saw with the check's
    /// conditions ([`conditions::judge`]). Returns exactly one result whatever happens: a
    /// panic in the probe becomes `internal`, cancellation becomes `cancelled`. The
    /// captured response, if a condition needed one, is dropped before it returns.
    pub async fn check(&self, target: &Target, options: &CheckOptions, cancel: &CancellationToken) -> CheckResult {
        self.ledger.start();
        let result = self.check_inner(target, options, cancel).await;
        self.ledger.finish();
        result
    }

    async fn check_inner(&self, target: &Target, options: &CheckOptions, cancel: &CancellationToken) -> CheckResult {
        let spec = match &target.spec {
            Ok(spec) => spec,
            Err(invalid) => {
                let mut result = CheckResult::new(&target.input, target.line, ProbeKind::None, Outcome::Down);
                result.reason = Some(Reason::InvalidTarget);
                result.error = Some(match target.line {
                    Some(line) => format!("line {line}: {invalid}"),
                    None => invalid.to_string(),
                });
                return result;
            }
        };
        let enqueued = Instant::now();
        let kind = spec.probe_kind();
        let host_key = spec.host_key();
        let _permits = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                let mut result = CheckResult::new(&target.input, target.line, kind, Outcome::Cancelled);
                result.queue_ms = enqueued.elapsed();
                result.error = Some("cancelled before it started".into());
                return result;
            }
            permits = self.limiter.acquire(&host_key, crate::limiter::http_weight(spec, options)) => permits,
        };
        // Boxed so that a check still waiting for its slots is a small task: the probe's
        // state is allocated only once it may run, not by every queued check (10,000
        // checks queued behind the HTTP cap held about 9 MB of idle probe futures).
        Box::pin(self.probe_and_judge(target, spec, kind, options, cancel, enqueued)).await
    }

    /// The part of a check that runs once it holds its slots.
    async fn probe_and_judge(
        &self,
        target: &Target,
        spec: &TargetSpec,
        kind: ProbeKind,
        options: &CheckOptions,
        cancel: &CancellationToken,
        enqueued: Instant,
    ) -> CheckResult {
        let mut attempt = Attempt::new(CheckResult::new(&target.input, target.line, kind, Outcome::Down));
        attempt.policy = options.address_policy.clone();
        attempt.result.queue_ms = enqueued.elapsed();
        let (verdict, duration) = guarded(
            probe::run(&self.ctx, spec, options, &mut attempt),
            options.timeout,
            cancel,
        )
        .await;
        let mut result = attempt.result;
        result.duration_ms = duration;
        let failure = match verdict {
            Verdict::Finished(Ok(())) => {
                result.outcome = Outcome::Up;
                conditions::judge(&options.conditions, spec, attempt.redirected.as_deref(), &result)
                    .err()
                    .map(|(reason, message)| Failure::new(reason, message))
            }
            Verdict::Finished(Err(failure)) => Some(failure),
            Verdict::TimedOut => Some(Failure::new(
                Reason::Timeout,
                format!(
                    "no verdict within {} (while {})",
                    probe::human(options.timeout),
                    attempt.phase.describe()
                ),
            )),
            Verdict::Panicked(message) => Some(Failure::new(Reason::Internal, format!("probe panicked: {message}"))),
            Verdict::Cancelled => {
                result.outcome = Outcome::Cancelled;
                result.error = Some(format!("cancelled while {}", attempt.phase.describe()));
                result.response = None;
                return result;
            }
        };
        // The response was kept only for the conditions, which have run.
        result.response = None;
        match failure {
            None => result.outcome = Outcome::Up,
            Some(failure) => {
                result.outcome = Outcome::Down;
                result.reason = Some(failure.reason);
                result.error = Some(match (failure.reason, target.line) {
                    // Found only when the check ran, but still the line's fault.
                    (Reason::InvalidTarget, Some(line)) => format!("line {line}: {}", failure.message),
                    _ => failure.message,
                });
            }
        }
        result
    }

    /// Checks every target once and sends each result, tagged with the target's index,
    /// as soon as it is known. On cancellation no new check starts, running ones end
    /// as `cancelled`, and every target not yet started still gets a `cancelled` result.
    pub async fn scan(
        self: &Arc<Self>,
        targets: Vec<Target>,
        options: Arc<CheckOptions>,
        cancel: CancellationToken,
        results: mpsc::Sender<(usize, CheckResult)>,
    ) {
        // Bound the tasks alive at once: enough to keep every slot busy while others
        // wait for their host, without one task per target for huge inputs.
        let max_tasks = self.options.concurrency.saturating_mul(2).max(64);
        let mut running: JoinSet<(usize, CheckResult)> = JoinSet::new();
        let mut task_targets: HashMap<tokio::task::Id, usize> = HashMap::new();
        let targets: Vec<Arc<Target>> = targets.into_iter().map(Arc::new).collect();
        let mut next = 0;
        while next < targets.len() || !running.is_empty() {
            let can_start = next < targets.len() && running.len() < max_tasks && !cancel.is_cancelled();
            if can_start {
                let index = next;
                next += 1;
                let (engine, target, options, cancel) =
                    (self.clone(), targets[index].clone(), options.clone(), cancel.clone());
                let handle = running.spawn(async move { (index, engine.check(&target, &options, &cancel).await) });
                task_targets.insert(handle.id(), index);
                // Reap whatever already finished without waiting, so results stream out.
                while let Some(joined) = running.try_join_next_with_id() {
                    if !forward(joined, &mut task_targets, &targets, &results).await {
                        return;
                    }
                }
                continue;
            }
            if next < targets.len() && cancel.is_cancelled() {
                for (index, target) in targets.iter().enumerate().skip(next) {
                    if results.send((index, cancelled_unstarted(target))).await.is_err() {
                        return;
                    }
                }
                next = targets.len();
                continue;
            }
            let joined = tokio::select! {
                joined = running.join_next_with_id() => joined,
                _ = cancel.cancelled(), if next < targets.len() => continue,
            };
            let Some(joined) = joined else { continue };
            if !forward(joined, &mut task_targets, &targets, &results).await {
                return;
            }
        }
    }
}

/// Runs a probe under its deadline, catching a panic and giving way to cancellation,
/// and says how long it ran. The deadline wins: a verdict reached only after it (a poll
/// that ran long, a timer that fired late on a busy machine) is a timeout, and the
/// duration reported never exceeds the deadline.
async fn guarded<F>(probe: F, timeout: Duration, cancel: &CancellationToken) -> (Verdict, Duration)
where
    F: std::future::Future<Output = Result<(), Failure>>,
{
    let started = Instant::now();
    let probe = AssertUnwindSafe(probe).catch_unwind();
    let verdict = tokio::select! {
        biased;
        _ = cancel.cancelled() => Verdict::Cancelled,
        finished = tokio::time::timeout(timeout, probe) => match finished {
            Err(_) => Verdict::TimedOut,
            Ok(Err(panic)) => Verdict::Panicked(panic_message(panic.as_ref())),
            Ok(Ok(outcome)) => Verdict::Finished(outcome),
        },
    };
    let elapsed = started.elapsed();
    match verdict {
        Verdict::Cancelled => (verdict, elapsed.min(timeout)),
        _ if elapsed > timeout => (Verdict::TimedOut, timeout),
        verdict => (verdict, elapsed),
    }
}

#[derive(Debug)]
enum Verdict {
    Finished(Result<(), Failure>),
    TimedOut,
    Panicked(String),
    Cancelled,
}

/// Sends one finished task's result; a task that died is still that target's result.
async fn forward(
    joined: Result<(tokio::task::Id, (usize, CheckResult)), tokio::task::JoinError>,
    task_targets: &mut HashMap<tokio::task::Id, usize>,
    targets: &[Arc<Target>],
    results: &mpsc::Sender<(usize, CheckResult)>,
) -> bool {
    let item = match joined {
        Ok((id, item)) => {
            task_targets.remove(&id);
            item
        }
        Err(error) => {
            let Some(index) = task_targets.remove(&error.id()) else {
                return true;
            };
            let target = &targets[index];
            let kind = target.spec.as_ref().map_or(ProbeKind::None, |s| s.probe_kind());
            let mut result = CheckResult::new(&target.input, target.line, kind, Outcome::Down);
            result.reason = Some(Reason::Internal);
            result.error = Some(format!("check task failed: {error}"));
            (index, result)
        }
    };
    results.send(item).await.is_ok()
}

fn cancelled_unstarted(target: &Target) -> CheckResult {
    let kind = target.spec.as_ref().map_or(ProbeKind::None, |s| s.probe_kind());
    let mut result = CheckResult::new(&target.input, target.line, kind, Outcome::Cancelled);
    result.error = Some("cancelled before it started".into());
    result
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scan spawns a task per target, and most of them wait for a slot: what one
    /// waiting check holds is multiplied by the batch size.
    #[tokio::test]
    async fn a_check_waiting_for_its_slots_is_small() {
        let engine = Engine::new(EngineSetup::default()).expect("engine builds");
        let target = Target::parse("http://127.0.0.1:9/", None);
        let options = CheckOptions::default();
        let cancel = CancellationToken::new();
        let size = std::mem::size_of_val(&engine.check(&target, &options, &cancel));
        assert!(size <= 512, "a waiting check future is {size} bytes");
    }

    #[tokio::test]
    async fn a_panicking_probe_becomes_a_verdict() {
        let cancel = CancellationToken::new();
        let (verdict, _) = guarded(async { panic!("probe exploded") }, Duration::from_secs(1), &cancel).await;
        match verdict {
            Verdict::Panicked(message) => assert_eq!(message, "probe exploded"),
            other => panic!("expected a panic verdict, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_and_cancellation_end_a_hanging_probe() {
        let cancel = CancellationToken::new();
        let (verdict, duration) = guarded(std::future::pending(), Duration::from_secs(5), &cancel).await;
        assert!(matches!(verdict, Verdict::TimedOut), "{verdict:?}");
        assert_eq!(duration, Duration::from_secs(5));
        cancel.cancel();
        let (verdict, _) = guarded(std::future::pending(), Duration::from_secs(5), &cancel).await;
        assert!(matches!(verdict, Verdict::Cancelled), "{verdict:?}");
    }

    /// A probe whose one poll holds the thread past its deadline (as a hyper parse loop
    /// over a flood of 1xx responses did) and then succeeds is still a timeout, and its
    /// duration is the deadline, not what the late poll made of it.
    #[tokio::test]
    #[expect(
        clippy::disallowed_methods,
        reason = "blocking the worker is the behaviour under test"
    )]
    async fn a_verdict_reached_after_the_deadline_is_a_timeout() {
        let cancel = CancellationToken::new();
        let hog = async {
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        };
        let (verdict, duration) = guarded(hog, Duration::from_millis(50), &cancel).await;
        assert!(matches!(verdict, Verdict::TimedOut), "{verdict:?}");
        assert_eq!(duration, Duration::from_millis(50));
    }
}

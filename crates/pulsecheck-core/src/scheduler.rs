//! The scheduler: runs each check on its own interval, on the shared engine.
//!
//! - Start times are spread over the interval by a hash of the check's name, so a
//!   thousand checks do not all fire at start-up or after a reload.
//! - A check never overlaps with itself: the next run is scheduled only after the
//!   current one returns.
//! - Missed ticks (a run that took longer than the interval) are skipped and counted,
//!   never run in a burst.
//! - Schedule lag (due time to start time) is recorded for every run.
//! - `apply` diffs a new set of jobs against the running ones: unchanged jobs keep
//!   running untouched, removed ones stop, changed ones restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::latency::LatencyHistogram;
use crate::outbox::BoxFuture;
use crate::result::CheckResult;

/// What to run and how often. A reload restarts a job when its interval or its spec
/// (compared with `PartialEq`) changed.
#[derive(Clone, Debug)]
pub struct Job<S> {
    pub name: String,
    pub interval: Duration,
    /// Whatever the runner needs to run the check (target, options, conditions…).
    pub spec: Arc<S>,
}

/// Runs one check. Production: the engine; tests: a fake that follows paused time.
pub trait Runner<S>: Send + Sync + 'static {
    /// `cancel` fires when the check must stop at once (second signal, job removed).
    fn run<'a>(&'a self, job: &'a Job<S>, cancel: &'a CancellationToken) -> BoxFuture<'a, CheckResult>;
}

/// One finished run, as the scheduler reports it.
#[derive(Debug)]
pub struct Run {
    pub check: String,
    pub result: CheckResult,
    /// From the tick's due time to the run's start.
    pub lag: Duration,
    /// Ticks skipped before this run because the previous one overran.
    pub skipped: u64,
}

/// Counters across all jobs.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    pub runs: AtomicU64,
    pub skipped: AtomicU64,
    /// Schedule lag of every run.
    pub lag: LatencyHistogram,
}

struct Running<S> {
    interval: Duration,
    spec: Arc<S>,
    /// Stops scheduling this job (a child of `stop_all`).
    stop: CancellationToken,
    /// Cancels its run in flight (a child of `abort_all`).
    cancel: CancellationToken,
    /// Held while a run of this job is in flight, so a run on demand never overlaps
    /// a scheduled one.
    busy: Arc<tokio::sync::Mutex<()>>,
}

/// Runs jobs; see the module docs.
pub struct Scheduler<S, R> {
    runner: Arc<R>,
    results: mpsc::Sender<Run>,
    tasks: TaskTracker,
    /// Stops scheduling new runs (first signal); runs in flight finish.
    stop_all: CancellationToken,
    /// Cancels runs in flight (second signal).
    abort_all: CancellationToken,
    running: HashMap<String, Running<S>>,
    stats: Arc<SchedulerStats>,
    _spec: std::marker::PhantomData<fn() -> S>,
}

impl<S, R> Scheduler<S, R>
where
    S: PartialEq + Send + Sync + 'static,
    R: Runner<S>,
{
    pub fn new(
        runner: Arc<R>,
        results: mpsc::Sender<Run>,
        stop_all: CancellationToken,
        abort_all: CancellationToken,
    ) -> Self {
        Scheduler {
            runner,
            results,
            tasks: TaskTracker::new(),
            stop_all,
            abort_all,
            running: HashMap::new(),
            stats: Arc::new(SchedulerStats::default()),
            _spec: std::marker::PhantomData,
        }
    }

    pub fn stats(&self) -> Arc<SchedulerStats> {
        self.stats.clone()
    }

    pub fn job_names(&self) -> impl Iterator<Item = &str> {
        self.running.keys().map(String::as_str)
    }

    /// Makes the running set equal to `jobs`. Returns (started, stopped, kept) names.
    pub fn apply(&mut self, jobs: Vec<Job<S>>) -> ApplyReport {
        let mut report = ApplyReport::default();
        let mut wanted: HashMap<String, Job<S>> = HashMap::new();
        for job in jobs {
            wanted.insert(job.name.clone(), job);
        }
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            let keep = wanted.get(&name).is_some_and(|job| {
                let running = &self.running[&name];
                running.interval == job.interval && *running.spec == *job.spec
            });
            if keep {
                wanted.remove(&name);
                report.kept.push(name);
            } else if let Some(old) = self.running.remove(&name) {
                // A removed or changed job stops at once, run in flight included.
                old.stop.cancel();
                old.cancel.cancel();
                if wanted.contains_key(&name) {
                    report.changed.push(name);
                } else {
                    report.stopped.push(name);
                }
            }
        }
        let start = Instant::now();
        for (name, job) in wanted {
            if !report.changed.contains(&name) {
                report.started.push(name.clone());
            }
            let stop = self.stop_all.child_token();
            let cancel = self.abort_all.child_token();
            let first_due = start + spread(&job.name, job.interval);
            let busy = Arc::new(tokio::sync::Mutex::new(()));
            self.running.insert(
                name,
                Running {
                    interval: job.interval,
                    spec: job.spec.clone(),
                    stop: stop.clone(),
                    cancel: cancel.clone(),
                    busy: busy.clone(),
                },
            );
            self.tasks.spawn(run_job(
                job,
                first_due,
                self.runner.clone(),
                self.results.clone(),
                self.stats.clone(),
                JobControl { stop, cancel, busy },
            ));
        }
        report.started.sort();
        report.stopped.sort();
        report.changed.sort();
        report.kept.sort();
        report
    }

    /// A run of `name` now, outside its schedule, as a future to spawn: it waits for a
    /// run in flight of the same job to finish (a check never overlaps with itself),
    /// runs on the same runner and limits, reports the run like a scheduled one (the
    /// monitor records it), and returns its result. `None` when no such job runs.
    pub fn run_now(&self, name: &str) -> Option<BoxFuture<'static, Option<CheckResult>>>
    where
        S: 'static,
    {
        let running = self.running.get(name)?;
        let job = Job {
            name: name.to_owned(),
            interval: running.interval,
            spec: running.spec.clone(),
        };
        let (runner, results, stats) = (self.runner.clone(), self.results.clone(), self.stats.clone());
        let (busy, cancel, stop) = (running.busy.clone(), running.cancel.clone(), running.stop.clone());
        Some(Box::pin(async move {
            let _busy = tokio::select! {
                biased;
                // Removed or shutting down: nothing runs.
                () = stop.cancelled() => return None,
                guard = busy.lock() => guard,
            };
            stats.runs.fetch_add(1, Ordering::Relaxed);
            let result = runner.run(&job, &cancel).await;
            let run = Run {
                check: job.name.clone(),
                result: result.clone(),
                lag: Duration::ZERO,
                skipped: 0,
            };
            // The monitor is gone only at shutdown; the caller still gets the result.
            let _ = results.send(run).await;
            Some(result)
        }))
    }

    /// Stops every job and waits until they have all returned.
    pub async fn shutdown(&mut self) {
        self.stop_all.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.running.clear();
    }
}

/// What a reload changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub changed: Vec<String>,
    pub kept: Vec<String>,
}

/// A stable offset in `[0, interval)` from the name, so start times are spread evenly
/// and a restart keeps each check's phase.
pub fn spread(name: &str, interval: Duration) -> Duration {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a: stable across runs and builds
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let nanos = interval.as_nanos().max(1) as u64;
    Duration::from_nanos(hash % nanos)
}

/// What stops a job, cancels its run in flight and keeps runs from overlapping.
struct JobControl {
    stop: CancellationToken,
    cancel: CancellationToken,
    busy: Arc<tokio::sync::Mutex<()>>,
}

async fn run_job<S, R: Runner<S>>(
    job: Job<S>,
    first_due: Instant,
    runner: Arc<R>,
    results: mpsc::Sender<Run>,
    stats: Arc<SchedulerStats>,
    control: JobControl,
) {
    let JobControl { stop, cancel, busy } = control;
    let mut due = first_due;
    let mut skipped = 0;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(due) => {}
        }
        let guard = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            guard = busy.lock() => guard,
        };
        let started = Instant::now();
        let lag = started.saturating_duration_since(due);
        stats.lag.record(lag);
        stats.runs.fetch_add(1, Ordering::Relaxed);
        let result = runner.run(&job, &cancel).await;
        drop(guard);
        let run = Run {
            check: job.name.clone(),
            result,
            lag,
            skipped,
        };
        if results.send(run).await.is_err() {
            return;
        }
        // Next tick on the original grid; ticks that already passed are skipped.
        due += job.interval;
        let now = Instant::now();
        skipped = 0;
        if due <= now {
            let behind = now.duration_since(due);
            let missed = (behind.as_nanos() / job.interval.as_nanos().max(1)) as u64 + 1;
            skipped = missed;
            stats.skipped.fetch_add(missed, Ordering::Relaxed);
            due += job.interval * u32::try_from(missed).unwrap_or(u32::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{Outcome, ProbeKind};
    use std::sync::Mutex;

    /// A runner whose checks take `spec.0` of (paused) time and record start times.
    #[derive(Default)]
    struct FakeRunner {
        starts: Mutex<Vec<(String, Instant)>>,
        running: Mutex<HashMap<String, bool>>,
    }

    #[derive(PartialEq)]
    struct FakeSpec(Duration);

    impl Runner<FakeSpec> for FakeRunner {
        fn run<'a>(&'a self, job: &'a Job<FakeSpec>, cancel: &'a CancellationToken) -> BoxFuture<'a, CheckResult> {
            Box::pin(async move {
                {
                    let mut running = self.running.lock().unwrap();
                    assert!(
                        !running.get(&job.name).copied().unwrap_or(false),
                        "{} overlapped itself",
                        job.name
                    );
                    running.insert(job.name.clone(), true);
                }
                self.starts.lock().unwrap().push((job.name.clone(), Instant::now()));
                let outcome = tokio::select! {
                    _ = tokio::time::sleep(job.spec.0) => Outcome::Up,
                    _ = cancel.cancelled() => Outcome::Cancelled,
                };
                self.running.lock().unwrap().insert(job.name.clone(), false);
                CheckResult::new(&job.name, None, ProbeKind::Tcp, outcome)
            })
        }
    }

    fn job(name: &str, interval_ms: u64, takes_ms: u64) -> Job<FakeSpec> {
        Job {
            name: name.into(),
            interval: Duration::from_millis(interval_ms),
            spec: Arc::new(FakeSpec(Duration::from_millis(takes_ms))),
        }
    }

    fn scheduler(runner: Arc<FakeRunner>) -> (Scheduler<FakeSpec, FakeRunner>, mpsc::Receiver<Run>) {
        let (tx, rx) = mpsc::channel(1024);
        (
            Scheduler::new(runner, tx, CancellationToken::new(), CancellationToken::new()),
            rx,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn runs_on_interval_spread_and_without_lag() {
        let runner = Arc::new(FakeRunner::default());
        let (mut scheduler, mut rx) = scheduler(runner.clone());
        let jobs: Vec<_> = (0..50).map(|i| job(&format!("check-{i}"), 10_000, 10)).collect();
        let t0 = Instant::now();
        scheduler.apply(jobs);
        let mut runs = Vec::new();
        while runs.len() < 150 {
            runs.push(rx.recv().await.unwrap());
        }
        scheduler.shutdown().await;
        // Spread: the first runs of 50 checks do not all start at t0.
        let starts = runner.starts.lock().unwrap();
        let first_starts: std::collections::HashSet<_> = starts
            .iter()
            .take(50)
            .map(|(_, at)| at.duration_since(t0).as_millis() / 1000)
            .collect();
        assert!(
            first_starts.len() >= 5,
            "start times spread over the interval: {first_starts:?}"
        );
        // Each check runs every 10 s on its own grid.
        for name in ["check-0", "check-7"] {
            let mine: Vec<Instant> = starts.iter().filter(|(n, _)| n == name).map(|(_, at)| *at).collect();
            for pair in mine.windows(2) {
                assert_eq!(pair[1] - pair[0], Duration::from_secs(10));
            }
        }
        assert!(runs.iter().all(|r| r.lag < Duration::from_millis(5) && r.skipped == 0));
        assert_eq!(scheduler.stats().skipped.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn overruns_skip_ticks_instead_of_bursting() {
        let runner = Arc::new(FakeRunner::default());
        let (mut scheduler, mut rx) = scheduler(runner.clone());
        // Takes 2.5 intervals: ticks 2 and 3 are skipped, the next run is at tick 4.
        scheduler.apply(vec![job("slow", 1_000, 2_500)]);
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        let third = rx.recv().await.unwrap();
        scheduler.shutdown().await;
        assert_eq!(first.skipped, 0);
        assert_eq!(second.skipped, 2);
        assert_eq!(third.skipped, 2);
        let starts: Vec<Instant> = runner.starts.lock().unwrap().iter().map(|(_, at)| *at).collect();
        assert_eq!(starts[1] - starts[0], Duration::from_secs(3));
        assert_eq!(starts[2] - starts[1], Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn reload_keeps_unchanged_jobs_and_stops_removed_ones() {
        let runner = Arc::new(FakeRunner::default());
        let (mut scheduler, mut rx) = scheduler(runner.clone());
        let report = scheduler.apply(vec![job("a", 1_000, 10), job("b", 1_000, 10), job("c", 1_000, 10)]);
        assert_eq!(report.started, vec!["a", "b", "c"]);
        for _ in 0..6 {
            rx.recv().await.unwrap();
        }
        // b keeps its interval but its spec changes: that alone restarts it.
        let report = scheduler.apply(vec![job("a", 1_000, 10), job("b", 1_000, 20), job("d", 1_000, 10)]);
        assert_eq!(report.kept, vec!["a"]);
        assert_eq!(report.changed, vec!["b"]);
        assert_eq!(report.stopped, vec!["c"]);
        assert_eq!(report.started, vec!["d"]);
        let mut names: Vec<String> = scheduler.job_names().map(str::to_owned).collect();
        names.sort();
        assert_eq!(names, vec!["a", "b", "d"]);
        let before = runner.starts.lock().unwrap().len();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let starts: Vec<(String, Instant)> = runner.starts.lock().unwrap().clone();
        assert!(
            !starts[before..].iter().any(|(n, _)| n == "c"),
            "a removed job no longer runs"
        );
        assert!(starts[before..].iter().any(|(n, _)| n == "d"));
        scheduler.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn stop_lets_the_run_in_flight_finish_and_abort_cancels_it() {
        let runner = Arc::new(FakeRunner::default());
        let (tx, mut rx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let abort = CancellationToken::new();
        let mut scheduler = Scheduler::new(runner.clone(), tx, stop.clone(), abort.clone());
        scheduler.apply(vec![job("long", 100_000, 5_000)]);
        // Wait until the run has started, then stop scheduling: the run still completes.
        while runner.starts.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.cancel();
        let run = rx.recv().await.unwrap();
        assert_eq!(run.result.outcome, Outcome::Up);
        scheduler.shutdown().await;

        let (tx, mut rx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let abort = CancellationToken::new();
        let mut scheduler = Scheduler::new(runner.clone(), tx, stop.clone(), abort.clone());
        scheduler.apply(vec![job("long2", 100_000, 5_000)]);
        while !runner.starts.lock().unwrap().iter().any(|(n, _)| n == "long2") {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let started = Instant::now();
        abort.cancel();
        let run = rx.recv().await.unwrap();
        assert_eq!(run.result.outcome, Outcome::Cancelled);
        assert!(started.elapsed() < Duration::from_millis(10));
        scheduler.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_now_reports_like_a_scheduled_run_and_never_overlaps() {
        let runner = Arc::new(FakeRunner::default());
        let (mut scheduler, mut rx) = scheduler(runner.clone());
        scheduler.apply(vec![job("x", 10_000, 3_000)]);
        assert!(scheduler.run_now("missing").is_none());
        // Wait for the scheduled run to start, then ask for three more at once: each
        // waits for the one before (the fake runner panics on an overlap).
        while runner.starts.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut asked = tokio::task::JoinSet::new();
        for _ in 0..3 {
            asked.spawn(scheduler.run_now("x").expect("x runs"));
        }
        while let Some(done) = asked.join_next().await {
            let result = done.unwrap().expect("it ran");
            assert_eq!(result.outcome, Outcome::Up);
        }
        let mut reported = 0;
        while let Ok(run) = rx.try_recv() {
            assert_eq!(run.check, "x");
            reported += 1;
        }
        assert!(reported >= 4, "the scheduled run and the three on demand: {reported}");
        let starts: Vec<Instant> = runner.starts.lock().unwrap().iter().map(|(_, at)| *at).collect();
        for pair in starts.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_secs(3), "one at a time: {starts:?}");
        }
        // A removed job's pending run on demand does not run.
        let pending = scheduler.run_now("x").unwrap();
        scheduler.apply(Vec::new());
        assert!(pending.await.is_none());
        scheduler.shutdown().await;
    }

    #[test]
    fn spread_is_stable_and_within_the_interval() {
        let interval = Duration::from_secs(60);
        assert_eq!(spread("api", interval), spread("api", interval));
        assert!(spread("api", interval) < interval);
        assert_ne!(spread("api", interval), spread("web", interval));
    }
}

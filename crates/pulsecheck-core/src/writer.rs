//! The one task that writes: batches [`WriteEvent`]s off the probe path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::latency::LatencyHistogram;
use crate::storage::{Storage, WriteEvent};

/// How the writer batches and retries.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Events the channel holds before `send` waits (backpressure on the producers).
    pub capacity: usize,
    /// Most events in one transaction.
    pub max_batch: usize,
    /// How long the writer keeps collecting after the first event of a batch. Fewer,
    /// larger transactions mean fewer fsyncs; `Duration::ZERO` commits whatever is queued.
    pub max_delay: Duration,
    /// First wait before retrying a failed batch; doubles up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Failed attempts of a whole batch, on an error that is not transient, before the
    /// writer commits its events one by one to isolate the one that cannot be written.
    pub isolate_after: u32,
    /// Stamps `updated_at` and new notifications' `created_at` / `next_attempt_at`.
    pub clock: Clock,
    /// Cancelling it makes the writer stop accepting events, commit everything queued,
    /// and exit (as [`WriterHandle::close_and_wait`] does). Do not pass the root shutdown
    /// token: in-flight checks still produce results after it is cancelled. Close the
    /// writer once the engine has stopped.
    pub shutdown: CancellationToken,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            capacity: 16_384,
            max_batch: 1_000,
            max_delay: Duration::from_millis(50),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            isolate_after: 5,
            clock: Clock::new(),
            shutdown: CancellationToken::new(),
        }
    }
}

/// What the writer has done so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriterStats {
    /// Committed transactions.
    pub batches: u64,
    /// Events committed.
    pub events: u64,
    /// Events waiting in the channel right now.
    pub queued: usize,
    /// Latency of the last commit (`BEGIN IMMEDIATE` to `COMMIT` returned), in ms.
    pub last_batch_ms: f64,
    pub max_batch_ms: f64,
    /// Percentiles over every commit since the writer started.
    pub p50_batch_ms: f64,
    pub p99_batch_ms: f64,
    pub last_batch_size: usize,
    pub max_batch_size: usize,
    /// Failed attempts (each was retried).
    pub failed_attempts: u64,
    /// Events refused because the writer had already closed.
    pub rejected: u64,
    /// Events that failed on every retry with an error that is not transient (a bug, or
    /// a corrupt row); logged with their content and skipped so that the rest commit.
    pub poisoned: u64,
}

/// The sending side of the writer. Clone it freely; the writer exits once every clone
/// is dropped or it is closed, after committing everything it accepted.
#[derive(Clone, Debug)]
pub struct WriterHandle {
    tx: mpsc::Sender<WriteEvent>,
    shared: Arc<Shared>,
    close: CancellationToken,
    done: CancellationToken,
}

#[derive(Debug)]
struct Shared {
    stats: Mutex<StatsData>,
    rejected: AtomicU64,
    accepted: AtomicU64,
    committed: Arc<Notify>,
    commit_seq: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct StatsData {
    stats: WriterStats,
    /// Commit latencies, for the percentiles.
    latency: LatencyHistogram,
}

/// Starts the writer on `tasks`. It runs until every [`WriterHandle`] is dropped, the
/// handle is closed, or `config.shutdown` is cancelled, and in each case commits every
/// accepted event before it exits.
pub fn spawn_writer(store: Arc<dyn Storage>, tasks: &TaskTracker, config: WriterConfig) -> WriterHandle {
    let (tx, rx) = mpsc::channel(config.capacity.max(1));
    let (commit_seq, _) = watch::channel(0);
    let shared = Arc::new(Shared {
        stats: Mutex::new(StatsData::default()),
        rejected: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        committed: Arc::new(Notify::new()),
        commit_seq,
    });
    let close = config.shutdown.child_token();
    let done = CancellationToken::new();
    let writer = Writer {
        store,
        rx,
        shared: shared.clone(),
        close: close.clone(),
        config,
    };
    let done_guard = done.clone().drop_guard();
    tasks.spawn(async move {
        // Also fires if the writer panics, so that close_and_wait never hangs.
        let _done = done_guard;
        writer.run().await;
    });
    WriterHandle {
        tx,
        shared,
        close,
        done,
    }
}

impl WriterHandle {
    /// Queues an event, waiting while the channel is full. After the writer closed the
    /// event is refused: logged and counted in [`WriterStats::rejected`].
    pub async fn send(&self, event: WriteEvent) {
        match self.tx.send(event).await {
            Ok(()) => {
                self.shared.accepted.fetch_add(1, Ordering::SeqCst);
            }
            Err(mpsc::error::SendError(event)) => {
                self.shared.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    kind = event.kind(),
                    "store writer is closed; event not written: {event:?}"
                );
            }
        }
    }

    /// Woken after every commit that added notifications (`notify_waiters` for every
    /// worker waiting, plus one stored permit for a worker that was busy), so delivery
    /// workers need not poll.
    pub fn committed(&self) -> Arc<Notify> {
        self.shared.committed.clone()
    }

    /// Counts commits; changes after each one. For waiting on "everything I sent so far
    /// is on disk" use [`WriterHandle::flush`].
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.shared.commit_seq.subscribe()
    }

    /// Waits until every event sent before this call is committed.
    pub async fn flush(&self) {
        let mut commits = self.commits();
        // Events are committed in the order they were accepted, so once the writer has
        // processed as many events as had been accepted, every earlier send is on disk.
        let target = self.shared.accepted.load(Ordering::SeqCst);
        loop {
            let processed = {
                let stats = &self.lock_stats().stats;
                stats.events + stats.poisoned
            };
            if processed >= target || self.done.is_cancelled() {
                return;
            }
            tokio::select! {
                changed = commits.changed() => if changed.is_err() { return },
                () = self.done.cancelled() => return,
            }
        }
    }

    pub fn stats(&self) -> WriterStats {
        let data = self.lock_stats();
        let mut stats = data.stats.clone();
        stats.queued = self.tx.max_capacity() - self.tx.capacity();
        stats.rejected = self.shared.rejected.load(Ordering::Relaxed);
        let ms = |q| data.latency.quantile(q).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        stats.p50_batch_ms = ms(0.50);
        stats.p99_batch_ms = ms(0.99);
        stats
    }

    /// Commit latencies as cumulative counts below each of `bounds` (a Prometheus
    /// histogram), with the count and sum of every commit since the writer started.
    pub fn batch_buckets(&self, bounds: &[Duration]) -> (Vec<u64>, u64, Duration) {
        self.lock_stats().latency.buckets(bounds)
    }

    /// Stops accepting events, commits everything queued, and waits for the writer to
    /// exit. Safe to call from several clones. While the database keeps failing the
    /// writer keeps retrying, so this waits too: bound it with the process's own
    /// shutdown grace (a second signal) rather than a timeout that would abandon data.
    pub async fn close_and_wait(&self) {
        self.close.cancel();
        self.done.cancelled().await;
    }

    /// True once the writer has exited.
    pub fn is_closed(&self) -> bool {
        self.done.is_cancelled()
    }

    fn lock_stats(&self) -> std::sync::MutexGuard<'_, StatsData> {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Writer {
    store: Arc<dyn Storage>,
    rx: mpsc::Receiver<WriteEvent>,
    shared: Arc<Shared>,
    close: CancellationToken,
    config: WriterConfig,
}

impl Writer {
    async fn run(mut self) {
        let max_batch = self.config.max_batch.max(1);
        let mut batch: Vec<WriteEvent> = Vec::with_capacity(max_batch);
        let mut closing = false;
        loop {
            closing = closing || self.close.is_cancelled();
            // Wait for the first event of a batch (or the end).
            if !closing {
                tokio::select! {
                    biased;
                    () = self.close.cancelled() => closing = true,
                    n = self.rx.recv_many(&mut batch, max_batch) => if n == 0 { break },
                }
            }
            if closing {
                // Refuse new events, then take what is already queued.
                self.rx.close();
                if self.rx.recv_many(&mut batch, max_batch).await == 0 {
                    break;
                }
            } else {
                // Keep collecting for up to max_delay, or until the batch is full.
                let deadline = Instant::now() + self.config.max_delay;
                while batch.len() < max_batch {
                    let room = max_batch - batch.len();
                    tokio::select! {
                        biased;
                        () = self.close.cancelled() => break,
                        n = self.rx.recv_many(&mut batch, room) => if n == 0 { break },
                        () = tokio::time::sleep_until(deadline) => break,
                    }
                }
            }
            self.commit(&batch).await;
            batch.clear();
        }
        tracing::debug!(store = %self.store.location(), "store writer finished");
    }

    /// Commits `events` in one transaction, retrying until it succeeds. Never gives up
    /// on a transient error. An error that is not transient and persists is narrowed
    /// down by committing the events one at a time.
    async fn commit(&self, events: &[WriteEvent]) {
        if events.is_empty() {
            return;
        }
        if self.commit_with_retry(events).await {
            return;
        }
        tracing::warn!(
            events = events.len(),
            "store writer: isolating the event that cannot be written by committing one at a time"
        );
        for event in events {
            if !self.commit_with_retry(std::slice::from_ref(event)).await {
                self.shared
                    .stats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .stats
                    .poisoned += 1;
                // Wake `flush` callers: the skipped event counts as processed.
                self.shared.commit_seq.send_modify(|seq| *seq += 1);
                tracing::error!(
                    store = %self.store.location(),
                    kind = event.kind(),
                    "store writer: skipping an event that fails on every attempt: {event:?}"
                );
            }
        }
    }

    /// Returns false only after `isolate_after` attempts that all failed with an error
    /// that is not transient.
    async fn commit_with_retry(&self, events: &[WriteEvent]) -> bool {
        let mut delay = self.config.retry_initial;
        let mut permanent_failures = 0;
        loop {
            let started = Instant::now();
            // Never raced against a timer or a token: an abandoned write future could
            // leave the transaction in an unknown state.
            match self.store.write(events, self.config.clock.now()).await {
                Ok(()) => {
                    self.record(events, started.elapsed());
                    return true;
                }
                Err(error) => {
                    self.shared
                        .stats
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .stats
                        .failed_attempts += 1;
                    if !error.transient {
                        permanent_failures += 1;
                        if permanent_failures >= self.config.isolate_after.max(1) {
                            tracing::error!(events = events.len(), "store writer: batch failed: {error}");
                            return false;
                        }
                    }
                    tracing::warn!(
                        events = events.len(),
                        retry_in_ms = delay.as_millis() as u64,
                        "store writer: batch failed, retrying: {error}"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.config.retry_max.max(self.config.retry_initial));
                }
            }
        }
    }

    fn record(&self, events: &[WriteEvent], elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        {
            let mut data = self.shared.stats.lock().unwrap_or_else(|p| p.into_inner());
            let stats = &mut data.stats;
            stats.batches += 1;
            stats.events += events.len() as u64;
            stats.last_batch_ms = ms;
            stats.max_batch_ms = stats.max_batch_ms.max(ms);
            stats.last_batch_size = events.len();
            stats.max_batch_size = stats.max_batch_size.max(events.len());
            data.latency.record(elapsed);
        }
        self.shared.commit_seq.send_modify(|seq| *seq += 1);
        if events.iter().any(WriteEvent::adds_notifications) {
            self.shared.committed.notify_waiters();
            self.shared.committed.notify_one();
        }
    }
}

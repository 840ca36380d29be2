//! The engine's own health, as `/metrics` shows it: where each figure comes from (the
//! engine's ledger, the scheduler, the writer, the outbox, delivery), the process's CPU
//! and memory, and a runtime-stall detector.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pulsecheck_core::scheduler::SchedulerStats;
use pulsecheck_core::writer::WriterHandle;
use pulsecheck_notify::DeliveryStats;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Pending and dead notifications, refreshed periodically by whoever owns the store
/// (never counted per scrape).
#[derive(Debug, Default)]
pub struct OutboxGauges {
    pub pending: AtomicU64,
    pub dead: AtomicU64,
    /// False until the first refresh: until then the gauges are not shown.
    pub known: AtomicBool,
}

impl OutboxGauges {
    pub fn set(&self, pending: u64, dead: u64) {
        self.pending.store(pending, Ordering::Relaxed);
        self.dead.store(dead, Ordering::Relaxed);
        self.known.store(true, Ordering::Relaxed);
    }
}

/// Where the daemon's health figures come from. Each is optional so that a listener
/// can run without a scheduler or a store (the `/probe` benchmark, tests).
#[derive(Clone, Default)]
pub struct HealthSources {
    pub scheduler: Option<Arc<SchedulerStats>>,
    pub writer: Option<WriterHandle>,
    pub delivery: Option<Arc<DeliveryStats>>,
    pub outbox: Option<Arc<OutboxGauges>>,
    pub runtime: Arc<StallStats>,
    /// With several nodes on one store: what this node owns.
    pub cluster: Option<Arc<ClusterGauges>>,
}

/// One node of a cluster, for `/metrics`.
#[derive(Debug, Default)]
pub struct ClusterGauges {
    /// Checks whose lease this node holds.
    pub owned_checks: AtomicU64,
    /// Live members at the last heartbeat, this node included.
    pub members: AtomicU64,
    /// Runs the monitor dropped because this node did not hold their lease.
    pub fenced_runs: Arc<AtomicU64>,
    /// Runs the store refused because their fence was no longer current.
    pub rejected_runs: AtomicU64,
}

/// What the stall detector measured.
#[derive(Debug, Default)]
pub struct StallStats {
    /// Wake-ups later than the threshold.
    pub stalls: AtomicU64,
    /// Total lateness of those wake-ups, in microseconds.
    pub stalled_micros: AtomicU64,
    /// The lateness of the last wake-up, in microseconds.
    pub last_lag_micros: AtomicU64,
    /// The largest lateness seen, in microseconds.
    pub max_lag_micros: AtomicU64,
}

/// How often the detector wakes up.
pub const STALL_TICK: Duration = Duration::from_millis(100);
/// Lateness beyond which a wake-up counts as a stall and is logged.
pub const STALL_THRESHOLD: Duration = Duration::from_millis(250);

/// Sleeps [`STALL_TICK`] at a time and measures how late it wakes: a worker thread held
/// by blocking code delays every task queued behind it, this one included. A wake-up
/// more than `threshold` late is counted and logged with its length.
pub async fn detect_stalls(stats: Arc<StallStats>, threshold: Duration, stop: CancellationToken) {
    loop {
        let asleep = Instant::now();
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(STALL_TICK) => {}
        }
        let lag = asleep.elapsed().saturating_sub(STALL_TICK);
        let micros = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        stats.last_lag_micros.store(micros, Ordering::Relaxed);
        stats.max_lag_micros.fetch_max(micros, Ordering::Relaxed);
        if lag > threshold {
            stats.stalls.fetch_add(1, Ordering::Relaxed);
            stats.stalled_micros.fetch_add(micros, Ordering::Relaxed);
            tracing::warn!(
                stall_ms = lag.as_millis() as u64,
                "runtime stall: a timer woke {} ms late, so a worker thread was blocked (blocking code on the async runtime, or an overloaded machine)",
                lag.as_millis()
            );
        }
    }
}

/// The process's CPU time, memory and file descriptors, from /proc.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

/// Reads /proc/self (through tokio's blocking pool: it is a file read). `None` where
/// /proc is not there.
pub async fn process_stats() -> Option<ProcessStats> {
    let stat = tokio::fs::read_to_string("/proc/self/stat").await.ok()?;
    let statm = tokio::fs::read_to_string("/proc/self/statm").await.ok()?;
    let open_fds = match tokio::fs::read_dir("/proc/self/fd").await {
        Ok(mut dir) => {
            let mut count = 0u64;
            while let Ok(Some(_)) = dir.next_entry().await {
                count += 1;
            }
            Some(count)
        }
        Err(_) => None,
    };
    let boot = tokio::fs::read_to_string("/proc/stat").await.ok();
    parse_process(&stat, &statm, open_fds, boot.as_deref())
}

/// Linux reports CPU times in clock ticks of 1/100 s on every architecture it runs on
/// (USER_HZ), and pages of 4 KiB on the machines this targets.
const TICKS_PER_SECOND: f64 = 100.0;
const PAGE_BYTES: u64 = 4096;

fn parse_process(stat: &str, statm: &str, open_fds: Option<u64>, proc_stat: Option<&str>) -> Option<ProcessStats> {
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let cpu_seconds = (ticks(11)? + ticks(12)?) / TICKS_PER_SECOND;
    let start_ticks = ticks(19);
    let mut pages = statm.split_whitespace().map(|f| f.parse::<u64>().ok());
    let virtual_pages = pages.next()??;
    let resident_pages = pages.next()??;
    let boot_time = proc_stat.and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    Some(ProcessStats {
        cpu_seconds,
        resident_bytes: resident_pages * PAGE_BYTES,
        virtual_bytes: virtual_pages * PAGE_BYTES,
        open_fds,
        start_time_seconds: boot_time
            .zip(start_ticks)
            .map(|(boot, ticks)| boot + ticks / TICKS_PER_SECOND),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_lines_parse() {
        let stat = "1234 (pulse check) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 5000 1000000 300 18446744073709551615";
        let process = parse_process(
            stat,
            "2500 300 100 1 0 200 0\n",
            Some(12),
            Some("cpu 1 2\nbtime 1700000000\n"),
        )
        .unwrap();
        assert_eq!(process.cpu_seconds, 3.0);
        assert_eq!(process.resident_bytes, 300 * 4096);
        assert_eq!(process.virtual_bytes, 2500 * 4096);
        assert_eq!(process.start_time_seconds, Some(1_700_000_050.0));
    }

    /// A worker blocked for 400 ms is seen as a stall of about that length.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    #[expect(
        clippy::disallowed_methods,
        reason = "blocking the only worker is the behaviour under test"
    )]
    async fn a_blocked_worker_is_a_stall() {
        let stats = Arc::new(StallStats::default());
        let stop = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(detect_stalls(stats.clone(), STALL_THRESHOLD, stop.clone()));
        // Let the detector start sleeping, then hold the only worker (the test body runs
        // on its own thread, so the blocking must be in a task).
        tokio::time::sleep(Duration::from_millis(20)).await;
        tasks.spawn(async { std::thread::sleep(Duration::from_millis(600)) });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while stats.stalls.load(Ordering::Relaxed) == 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        while tasks.join_next().await.is_some() {}
        assert!(stats.stalls.load(Ordering::Relaxed) >= 1);
        assert!(stats.max_lag_micros.load(Ordering::Relaxed) >= 250_000);
    }
}

//! The daemon's counters: exact figures as JSON for `--stats-json`, and a short line with
//! rounded figures for the log (every minute and at shutdown).

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use pulsecheck_core::scheduler::SchedulerStats;
use pulsecheck_notify::DeliveryStats;
use pulsecheck_store::WriterHandle;
use tokio_util::sync::CancellationToken;

/// How often the daemon logs its statistics.
const STATS_EVERY: Duration = Duration::from_secs(60);

/// The counters at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub runs: u64,
    pub skipped_ticks: u64,
    pub lag_p50_ms: Option<f64>,
    pub lag_p99_ms: Option<f64>,
    pub lag_max_ms: Option<f64>,
    pub writer_batches: u64,
    pub writer_events: u64,
    pub writer_queued: usize,
    pub writer_batch_p50_ms: f64,
    pub writer_batch_p99_ms: f64,
    pub writer_batch_max_ms: f64,
    pub writer_max_batch_size: usize,
    pub writer_failed_attempts: u64,
    pub deliveries: u64,
    pub delivery_retries: u64,
    pub dead_letters: u64,
    pub log_lines_dropped: u64,
}

impl Snapshot {
    pub fn take(scheduler: &SchedulerStats, writer: &WriterHandle, delivery: &DeliveryStats) -> Snapshot {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        let w = writer.stats();
        Snapshot {
            runs: scheduler.runs.load(Relaxed),
            skipped_ticks: scheduler.skipped.load(Relaxed),
            lag_p50_ms: ms(scheduler.lag.quantile(0.50)),
            lag_p99_ms: ms(scheduler.lag.quantile(0.99)),
            lag_max_ms: ms(scheduler.lag.quantile(1.0)),
            writer_batches: w.batches,
            writer_events: w.events,
            writer_queued: w.queued,
            writer_batch_p50_ms: w.p50_batch_ms,
            writer_batch_p99_ms: w.p99_batch_ms,
            writer_batch_max_ms: w.max_batch_ms,
            writer_max_batch_size: w.max_batch_size,
            writer_failed_attempts: w.failed_attempts,
            deliveries: delivery.delivered.load(Relaxed),
            delivery_retries: delivery.retried.load(Relaxed),
            dead_letters: delivery.dead.load(Relaxed),
            log_lines_dropped: crate::logging::dropped_lines(),
        }
    }

    /// Every figure, unrounded, for `--stats-json` (the benchmark reads it).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "runs": self.runs,
            "skipped_ticks": self.skipped_ticks,
            "lag_p50_ms": self.lag_p50_ms,
            "lag_p99_ms": self.lag_p99_ms,
            "lag_max_ms": self.lag_max_ms,
            "writer_batches": self.writer_batches,
            "writer_events": self.writer_events,
            "writer_queued": self.writer_queued,
            "writer_batch_p50_ms": self.writer_batch_p50_ms,
            "writer_batch_p99_ms": self.writer_batch_p99_ms,
            "writer_batch_max_ms": self.writer_batch_max_ms,
            "writer_max_batch_size": self.writer_max_batch_size,
            "writer_failed_attempts": self.writer_failed_attempts,
            "deliveries": self.deliveries,
            "delivery_retries": self.delivery_retries,
            "dead_letters": self.dead_letters,
            "log_lines_dropped": self.log_lines_dropped,
        })
    }
}

/// Milliseconds as a person reads them: "0.42ms", "3.1ms", "250ms", "2.4s"; "-" when unknown.
fn millis(ms: Option<f64>) -> String {
    match ms {
        None => "-".to_owned(),
        Some(ms) if !ms.is_finite() || ms < 0.0 => "-".to_owned(),
        Some(ms) if ms < 1.0 => format!("{ms:.2}ms"),
        Some(ms) if ms < 10.0 => format!("{ms:.1}ms"),
        Some(ms) if ms < 1000.0 => format!("{ms:.0}ms"),
        Some(ms) => format!("{:.1}s", ms / 1000.0),
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} runs, {} skipped ticks; schedule lag p50 {} p99 {} max {}; \
             writer {} events in {} commits ({} queued, {} failed), commit p50 {} p99 {} max {}; \
             alerts {} delivered, {} retried, {} dead",
            self.runs,
            self.skipped_ticks,
            millis(self.lag_p50_ms),
            millis(self.lag_p99_ms),
            millis(self.lag_max_ms),
            self.writer_events,
            self.writer_batches,
            self.writer_queued,
            self.writer_failed_attempts,
            millis(Some(self.writer_batch_p50_ms)),
            millis(Some(self.writer_batch_p99_ms)),
            millis(Some(self.writer_batch_max_ms)),
            self.deliveries,
            self.delivery_retries,
            self.dead_letters,
        )?;
        if self.log_lines_dropped > 0 {
            write!(f, "; {} log lines dropped", self.log_lines_dropped)?;
        }
        Ok(())
    }
}

pub async fn log_periodically(
    scheduler: Arc<SchedulerStats>,
    writer: WriterHandle,
    delivery: Arc<DeliveryStats>,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(STATS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    every.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let snapshot = Snapshot::take(&scheduler, &writer, &delivery);
        tracing::info!("statistics: {snapshot}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_line_rounds_its_figures() {
        let snapshot = Snapshot {
            runs: 1200,
            skipped_ticks: 2,
            lag_p50_ms: Some(0.123_456_789),
            lag_p99_ms: Some(4.567_891_234),
            lag_max_ms: Some(1_234.567_8),
            writer_batches: 40,
            writer_events: 1210,
            writer_queued: 3,
            writer_batch_p50_ms: 1.019_591_000_000_000_1,
            writer_batch_p99_ms: 12.345_678,
            writer_batch_max_ms: 250.4,
            writer_max_batch_size: 90,
            writer_failed_attempts: 0,
            deliveries: 7,
            delivery_retries: 1,
            dead_letters: 0,
            log_lines_dropped: 0,
        };
        assert_eq!(
            snapshot.to_string(),
            "1200 runs, 2 skipped ticks; schedule lag p50 0.12ms p99 4.6ms max 1.2s; \
             writer 1210 events in 40 commits (3 queued, 0 failed), commit p50 1.0ms p99 12ms max 250ms; \
             alerts 7 delivered, 1 retried, 0 dead"
        );
        let dropped = Snapshot {
            log_lines_dropped: 17,
            lag_p50_ms: None,
            ..snapshot
        };
        let line = dropped.to_string();
        assert!(line.contains("lag p50 - p99"), "{line}");
        assert!(line.ends_with("; 17 log lines dropped"), "{line}");
        // The JSON keeps every digit.
        assert_eq!(dropped.json()["lag_p99_ms"], 4.567_891_234);
        assert_eq!(dropped.json()["log_lines_dropped"], 17);
    }
}

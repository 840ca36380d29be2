//! Logs for the daemon: human-readable lines on stderr, `RUST_LOG` to filter
//! (default `info`).
//!
//! Lines go through a bounded queue to a writer thread, so a stderr that nobody reads
//! (a full pipe, a terminal stopped with Ctrl+S) never blocks the runtime: while the
//! queue is full, new lines are dropped and counted. [`report_dropped`] logs the count
//! once lines get through again.

use std::sync::OnceLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

/// Lines queued for stderr before new ones are dropped (half a megabyte at most): far
/// more than a burst of state changes, which the writer thread drains in milliseconds.
pub const QUEUED_LINES: usize = 2048;
/// How often the dropped-line count is looked at.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The dropped-line counter of the daemon's logger, once [`init`] installed it.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Keeps the log writer thread; dropping it flushes the queued lines, waiting at most
/// about a second for a stderr that does not drain.
pub struct Logging {
    _worker: Option<WorkerGuard>,
}

pub fn init() -> Logging {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, worker) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("pulsecheck-log")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init()
        .is_ok();
    if !installed {
        return Logging { _worker: None };
    }
    let _ = DROPPED.set(dropped);
    Logging { _worker: Some(worker) }
}

/// Log lines dropped so far because stderr was not read fast enough.
pub fn dropped_lines() -> u64 {
    DROPPED.get().map_or(0, |counter| counter.dropped_lines() as u64)
}

/// A message for the person at the terminal while a command runs: through the
/// non-blocking logger when the daemon installed it, else straight to stderr.
pub fn note(message: &str) {
    if DROPPED.get().is_some() {
        tracing::warn!("{message}");
    } else {
        eprintln!("{message}");
    }
}

/// Every [`REPORT_EVERY`], logs how many lines were dropped since the last report that
/// got through. A report dropped itself is repeated, with the larger count, next time.
pub async fn report_dropped(stop: CancellationToken) {
    let mut reported = 0;
    let mut every = tokio::time::interval(REPORT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let total = dropped_lines();
        if total > reported {
            tracing::warn!(
                dropped = total - reported,
                total,
                "log lines dropped: stderr is not read fast enough"
            );
            // Queueing is synchronous: had this report been dropped, the counter would
            // have moved already, and the next tick reports again.
            if dropped_lines() == total {
                reported = total;
            }
        }
    }
}

//! Housekeeping: what a store does besides recording runs, on a timer. Retention folds
//! raw results into hourly and daily aggregates and drops them in tiers; a size budget
//! (where the backend has one) prunes the oldest raw results first. `serve` runs it
//! through this trait so that SQLite and PostgreSQL are interchangeable; with several
//! nodes, only the node holding the housekeeping lease runs it.

use serde::Serialize;

use crate::outbox::BoxFuture;
use crate::storage::StorageError;

/// How long each tier is kept. 0 keeps a tier forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Days down results, and results that caused a transition, stay raw (default 7).
    pub raw_days: u32,
    /// Hours every other result (up, cancelled) stays raw (default 48, capped at
    /// `raw_days`); after that it lives only in the aggregates.
    pub raw_up_hours: u32,
    /// Days hourly aggregates are kept (default 90).
    pub hourly_days: u32,
    /// Days daily aggregates (the 90-day bar) are kept (default 400; never fewer than
    /// `hourly_days`).
    pub daily_days: u32,
}

impl Retention {
    pub const DEFAULT_RAW_DAYS: u32 = 7;
    pub const DEFAULT_RAW_UP_HOURS: u32 = 48;
    pub const DEFAULT_HOURLY_DAYS: u32 = 90;
    pub const DEFAULT_DAILY_DAYS: u32 = 400;

    /// `raw_days` and `hourly_days` as given, the other tiers at their defaults (the up
    /// window capped at `raw_days`; `raw_days` 0 keeps every raw result forever).
    pub fn new(raw_days: u32, hourly_days: u32) -> Retention {
        let raw_up_hours = match raw_days {
            0 => 0,
            days => Retention::DEFAULT_RAW_UP_HOURS.min(days.saturating_mul(24)),
        };
        Retention {
            raw_days,
            raw_up_hours,
            hourly_days,
            daily_days: Retention::DEFAULT_DAILY_DAYS.max(hourly_days),
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Retention::new(Retention::DEFAULT_RAW_DAYS, Retention::DEFAULT_HOURLY_DAYS)
    }
}

/// What one compaction run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    /// Hours that had results and were aggregated.
    pub hours_aggregated: u64,
    /// Hourly rows written (one per check per hour).
    pub hourly_rows_written: u64,
    /// Raw results past their retention (the up window or `raw_days`).
    pub results_deleted: u64,
    pub hourly_deleted: u64,
    pub daily_deleted: u64,
    /// Delivered notifications past the hourly retention. Pending and dead ones stay.
    pub notifications_deleted: u64,
    /// Raw results deleted because the file was over `max_size`.
    pub results_pruned_for_size: u64,
    /// Hourly rows deleted because raw results alone could not bring the file under
    /// `max_size`.
    pub hourly_pruned_for_size: u64,
}

/// Periodic upkeep of a store.
pub trait Housekeeping: Send + Sync + 'static {
    /// Aggregates complete hours, then deletes past `retention` (and enforces the size
    /// budget, where the backend has one). Idempotent for the same `now`.
    fn compact<'a>(
        &'a self,
        now: jiff::Timestamp,
        retention: &'a Retention,
    ) -> BoxFuture<'a, Result<CompactReport, StorageError>>;

    /// Sets the size budget in bytes (0: none). Backends without one ignore it.
    fn set_max_size(&self, bytes: u64);

    /// Pending and dead notifications, for `/metrics`.
    fn outbox_counts(&self) -> BoxFuture<'_, Result<(u64, u64), StorageError>>;

    /// Closes the connections, after the writer finished.
    fn close(&self) -> BoxFuture<'_, ()>;
}

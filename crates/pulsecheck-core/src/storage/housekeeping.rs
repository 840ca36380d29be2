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

/// What one compaction deletes: rows strictly before each cutoff (unix milliseconds);
/// `None` keeps that tier forever.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cutoffs {
    /// Up and cancelled results that caused no transition.
    pub up_results: Option<i64>,
    /// Every raw result.
    pub results: Option<i64>,
    /// Hourly aggregates, and delivered notifications.
    pub hourly: Option<i64>,
    /// Daily aggregates.
    pub daily: Option<i64>,
}

impl Retention {
    /// The cutoffs at `now_ms`, for a store whose hours are aggregated up to
    /// `aggregated_through_ms`: a raw result is never deleted before its hour was
    /// aggregated, and a daily row lives at least as long as its hours (uptime reads
    /// whole days from daily rows). Every backend prunes by these, so the tiers mean the
    /// same on all of them.
    pub fn cutoffs(&self, now_ms: i64, aggregated_through_ms: i64) -> Cutoffs {
        use crate::storage::encoding::{DAY_MS, HOUR_MS};
        let before = |units: u32, unit_ms: i64| (units > 0).then(|| now_ms - i64::from(units) * unit_ms);
        let daily_days = match (self.daily_days, self.hourly_days) {
            (0, _) | (_, 0) => 0,
            (daily, hourly) => daily.max(hourly),
        };
        Cutoffs {
            up_results: before(self.raw_up_hours, HOUR_MS).map(|c| c.min(aggregated_through_ms)),
            results: before(self.raw_days, DAY_MS).map(|c| c.min(aggregated_through_ms)),
            hourly: before(self.hourly_days, DAY_MS),
            daily: before(daily_days, DAY_MS),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::encoding::{DAY_MS, HOUR_MS};

    #[test]
    fn cutoffs_never_pass_the_aggregated_hours_and_keep_days_as_long_as_hours() {
        let now = 1_000 * DAY_MS;
        let cutoffs = Retention::default().cutoffs(now, now - 3 * DAY_MS);
        assert_eq!(
            cutoffs.up_results,
            Some(now - 3 * DAY_MS),
            "48 h, but only aggregated hours"
        );
        assert_eq!(cutoffs.results, Some(now - 7 * DAY_MS));
        assert_eq!(cutoffs.hourly, Some(now - 90 * DAY_MS));
        assert_eq!(cutoffs.daily, Some(now - 400 * DAY_MS));

        let cutoffs = Retention::default().cutoffs(now, now);
        assert_eq!(cutoffs.up_results, Some(now - 48 * HOUR_MS));

        let long_hours = Retention {
            hourly_days: 500,
            daily_days: 30,
            ..Retention::default()
        };
        assert_eq!(long_hours.cutoffs(now, now).daily, Some(now - 500 * DAY_MS));

        let forever = Retention::new(0, 0);
        assert_eq!(forever.cutoffs(now, now), Cutoffs::default());
    }
}

//! The read side of a store: a check's recent results, its down spans (incidents) and
//! its uptime over a window, as a small trait that every backend (SQLite today,
//! PostgreSQL later) implements, so that the CLI and a REST API read history the same
//! way. Every read is paginated or bounded: the API runs them against 10,000 checks.

use serde::Serialize;

use crate::outbox::BoxFuture;
use crate::storage::StorageError;
use crate::{Outcome, Reason};

/// One stored run of a check (the columns a store keeps, not every field of a
/// `CheckResult`). Durations are milliseconds with microsecond precision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordedResult {
    /// Unique within the check: its start in unix milliseconds.
    pub id: i64,
    pub check: String,
    pub started_at: jiff::Timestamp,
    pub outcome: Outcome,
    pub reason: Option<Reason>,
    pub error: Option<String>,
    pub probe: String,
    pub http_status: Option<u16>,
    pub duration_ms: f64,
    pub queue_ms: f64,
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    pub ttfb_ms: Option<f64>,
    pub transfer_ms: Option<f64>,
    pub rtt_ms: Option<f64>,
    pub ip: Option<String>,
    pub http_version: Option<String>,
    pub redirects: u32,
    pub cert_days_left: Option<i64>,
}

/// A page of a check's results, newest first: at most `limit` results that started
/// before `before` (all when `None`). The next page starts before the last one's
/// `started_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResultPage {
    pub before: Option<jiff::Timestamp>,
    pub limit: usize,
}

/// A down span of a check: from the transition to down to the one back up (`ended_at`
/// is `None` while it lasts), with the result that opened it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DownSpan {
    pub id: i64,
    pub check: String,
    pub started_at: jiff::Timestamp,
    pub ended_at: Option<jiff::Timestamp>,
    /// Why the check went down: the reason and error of the last result of the streak
    /// that opened the span.
    pub reason: Option<Reason>,
    pub error: Option<String>,
}

impl DownSpan {
    /// How long the span lasted, or has lasted until `now` while open.
    pub fn duration(&self, now: jiff::Timestamp) -> std::time::Duration {
        let end = self.ended_at.unwrap_or(now);
        std::time::Duration::try_from(end.duration_since(self.started_at)).unwrap_or_default()
    }
}

/// A page of down spans, newest first: of one check or of all, at most `limit` whose id
/// is below `before_id` (all when `None`). The next page starts below the last one's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanPage {
    pub check: Option<String>,
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// Runs of a check in a window that ended up or down (cancelled runs do not count).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Uptime {
    pub runs: u64,
    pub up: u64,
}

impl Uptime {
    /// The share of runs that were up, in percent; `None` without runs.
    pub fn percent(&self) -> Option<f64> {
        (self.runs > 0).then(|| self.up as f64 * 100.0 / self.runs as f64)
    }
}

/// What a store answers about the past.
pub trait History: Send + Sync + 'static {
    /// A page of one check's results, newest first.
    fn recent_results<'a>(
        &'a self,
        check: &'a str,
        page: ResultPage,
    ) -> BoxFuture<'a, Result<Vec<RecordedResult>, StorageError>>;

    /// A page of down spans, newest first.
    fn down_spans<'a>(&'a self, page: &'a SpanPage) -> BoxFuture<'a, Result<Vec<DownSpan>, StorageError>>;

    /// The runs of one check that started in `[since, until)`, from raw results where
    /// they are still kept and from the hourly and daily aggregates before that (so a
    /// window is exact to the hour once its results were aggregated).
    fn uptime<'a>(
        &'a self,
        check: &'a str,
        since: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Uptime, StorageError>>;
}

/// Implements [`History`] for a store type whose inherent `result_page`,
/// `down_span_page` and `uptime_between` do the work (returning the store's own error,
/// which converts into [`StorageError`]), as the SQLite and PostgreSQL stores have them.
#[macro_export]
macro_rules! impl_history {
    ($store:ty) => {
        impl $crate::storage::history::History for $store {
            fn recent_results<'a>(
                &'a self,
                check: &'a str,
                page: $crate::storage::history::ResultPage,
            ) -> $crate::outbox::BoxFuture<
                'a,
                Result<Vec<$crate::storage::history::RecordedResult>, $crate::storage::StorageError>,
            > {
                Box::pin(async move { self.result_page(check, page).await.map_err(Into::into) })
            }

            fn down_spans<'a>(
                &'a self,
                page: &'a $crate::storage::history::SpanPage,
            ) -> $crate::outbox::BoxFuture<
                'a,
                Result<Vec<$crate::storage::history::DownSpan>, $crate::storage::StorageError>,
            > {
                Box::pin(async move { self.down_span_page(page).await.map_err(Into::into) })
            }

            fn uptime<'a>(
                &'a self,
                check: &'a str,
                since: $crate::__jiff::Timestamp,
                until: $crate::__jiff::Timestamp,
            ) -> $crate::outbox::BoxFuture<'a, Result<$crate::storage::history::Uptime, $crate::storage::StorageError>>
            {
                Box::pin(async move { self.uptime_between(check, since, until).await.map_err(Into::into) })
            }
        }
    };
}

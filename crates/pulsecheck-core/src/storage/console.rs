//! What the status page and the REST API read and change in a store, beyond the
//! monitor's own writes: a page of checks with their state, uptime over several
//! windows, daily bars, latency by phase, incidents with their updates, the outbox, and
//! the operator's changes (API-created checks, incident updates and acknowledgements,
//! silences, redelivery). Every backend (SQLite today, PostgreSQL later) implements
//! [`Console`]. Every read is bounded: the page and the API run them with 10,000 checks.

use serde::{Deserialize, Serialize};

use crate::outbox::{AlertEvent, AlertKind, BoxFuture, DeliveryState};
use crate::state::State;
use crate::storage::history::DownSpan;
use crate::storage::StorageError;
use crate::{Outcome, Reason};

/// Who owns a check's definition. File checks can only be changed by editing the file;
/// API checks only through the API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    #[default]
    File,
    Api,
}

/// Which checks a [`CheckPage`] lists; every field narrows the set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckFilter {
    pub group: Option<String>,
    pub state: Option<State>,
    pub origin: Option<Origin>,
    /// Checks removed from the config keep their history; listed only when asked.
    pub include_retired: bool,
}

/// A page of checks ordered by name: at most `limit` whose name sorts after `after`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckPage {
    pub filter: CheckFilter,
    pub after: Option<String>,
    pub limit: usize,
}

impl CheckPage {
    /// Every check, retired ones included: the page of at most `limit` after `after`.
    pub fn including_retired(after: Option<String>, limit: usize) -> CheckPage {
        CheckPage {
            filter: CheckFilter {
                include_retired: true,
                ..CheckFilter::default()
            },
            after,
            limit,
        }
    }
}

/// One check with its state and latest result, as the list and the check page show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckSummary {
    pub name: String,
    pub group: Option<String>,
    pub target: String,
    pub origin: Origin,
    /// False once the check was removed (from the file or through the API).
    pub active: bool,
    pub state: State,
    pub since: Option<jiff::Timestamp>,
    pub last_result_at: Option<jiff::Timestamp>,
    pub last_outcome: Option<Outcome>,
    pub last_reason: Option<Reason>,
    pub last_error: Option<String>,
    pub last_duration_ms: Option<f64>,
    /// The open incident (down span), when the check is down.
    pub open_incident: Option<i64>,
    /// The end of the check's silence when one is in force at the time of the read.
    pub silenced_until: Option<jiff::Timestamp>,
    pub pending_notifications: u64,
    pub dead_notifications: u64,
}

/// Active checks of one group (`None`: checks without a group) by state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GroupCounts {
    pub group: Option<String>,
    pub up: u64,
    pub down: u64,
    pub unknown: u64,
}

/// One UTC day of a check: its runs and how many were up (cancelled runs not counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DayUptime {
    pub day: jiff::Timestamp,
    pub runs: u64,
    pub up: u64,
}

/// One hour of a check's latency: the mean of each phase over its up runs (milliseconds;
/// `None` when no up run measured that phase), and its runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LatencyPoint {
    pub hour: jiff::Timestamp,
    pub runs: u64,
    pub up: u64,
    pub mean_ms: Option<f64>,
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    pub ttfb_ms: Option<f64>,
    pub transfer_ms: Option<f64>,
}

/// Latency percentiles of a check's up runs in a window (milliseconds). Exact
/// (nearest-rank over raw results) where raw results are kept; where only hourly
/// aggregates remain, the run-weighted mean of the hours' percentiles.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LatencyPercentiles {
    pub runs: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// Where an incident stands, as an operator reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Investigating => "investigating",
            IncidentStatus::Identified => "identified",
            IncidentStatus::Monitoring => "monitoring",
            IncidentStatus::Resolved => "resolved",
        }
    }
}

/// An operator's update on an incident.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IncidentUpdate {
    pub id: i64,
    pub incident: i64,
    pub at: jiff::Timestamp,
    pub status: IncidentStatus,
    pub message: String,
}

/// A down span (opened by a down transition, closed by the up one) with what operators
/// added to it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IncidentRecord {
    #[serde(flatten)]
    pub span: DownSpan,
    pub acknowledged_at: Option<jiff::Timestamp>,
    /// Oldest first.
    pub updates: Vec<IncidentUpdate>,
}

/// Which outbox rows a page holds, newest first: at most `limit` with an id below
/// `before_id`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxPage {
    pub check: Option<String>,
    pub state: Option<DeliveryState>,
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// One outbox row with its delivery record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NotificationRecord {
    pub id: i64,
    pub check: String,
    pub channel: String,
    pub idempotency_key: String,
    pub kind: AlertKind,
    pub event: AlertEvent,
    /// The transition that caused it; `None` for reminders and test messages.
    pub transition_id: Option<i64>,
    pub state: DeliveryState,
    pub attempts: u32,
    pub created_at: jiff::Timestamp,
    pub next_attempt_at: jiff::Timestamp,
    pub delivered_at: Option<jiff::Timestamp>,
    pub last_error: Option<String>,
}

/// A check created through the API: its definition exactly as accepted (the same
/// fields as a check in the config file), kept so that it survives a restart.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApiCheck {
    pub name: String,
    pub definition: serde_json::Value,
    pub created_at: jiff::Timestamp,
    pub updated_at: jiff::Timestamp,
}

/// A check's alerts are held back until `until` (it still runs and records results).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Silence {
    pub check: String,
    pub until: jiff::Timestamp,
    pub reason: Option<String>,
}

/// What the status page and the API need from a store.
pub trait Console: Send + Sync + 'static {
    /// A page of checks with their state, ordered by name.
    fn check_page<'a>(&'a self, page: &'a CheckPage) -> BoxFuture<'a, Result<Vec<CheckSummary>, StorageError>>;

    /// One check, active or retired; `None` when the store never knew it.
    fn check_summary<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<CheckSummary>, StorageError>>;

    /// Active checks by group and state, ordered by group (no group first).
    fn group_counts(&self) -> BoxFuture<'_, Result<Vec<GroupCounts>, StorageError>>;

    /// For each check in `checks`, its uptime over each window `[since, until)` (same
    /// order): one batch for a page of checks instead of a query per cell.
    fn uptimes<'a>(
        &'a self,
        checks: &'a [String],
        windows: &'a [(jiff::Timestamp, jiff::Timestamp)],
    ) -> BoxFuture<'a, Result<Vec<Vec<crate::storage::history::Uptime>>, StorageError>>;

    /// For each check in `checks` (same order), one entry per UTC day in `[since,
    /// until)` that has runs, oldest first (from the daily aggregates and raw results not
    /// yet aggregated): one batch for a page of checks.
    fn daily_uptimes<'a>(
        &'a self,
        checks: &'a [String],
        since: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Vec<Vec<DayUptime>>, StorageError>>;

    /// [`Console::daily_uptimes`] of one check.
    fn daily_uptime<'a>(
        &'a self,
        check: &'a str,
        since: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Vec<DayUptime>, StorageError>> {
        Box::pin(async move {
            let checks = [check.to_owned()];
            Ok(self
                .daily_uptimes(&checks, since, until)
                .await?
                .pop()
                .unwrap_or_default())
        })
    }

    /// One entry per hour in `[since, until)` that has runs, oldest first (hourly
    /// aggregates, and raw results for hours not yet aggregated).
    fn latency_series<'a>(
        &'a self,
        check: &'a str,
        since: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Vec<LatencyPoint>, StorageError>>;

    /// Percentiles of the up runs in `[since, until)`; `None` without one.
    fn latency_percentiles<'a>(
        &'a self,
        check: &'a str,
        since: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Option<LatencyPercentiles>, StorageError>>;

    /// A page of incidents with their acknowledgement and updates, newest first.
    fn incident_page<'a>(
        &'a self,
        page: &'a crate::storage::history::SpanPage,
    ) -> BoxFuture<'a, Result<Vec<IncidentRecord>, StorageError>>;

    fn incident<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<IncidentRecord>, StorageError>>;

    /// Adds an update; `None` when there is no such incident.
    fn add_incident_update<'a>(
        &'a self,
        incident: i64,
        status: IncidentStatus,
        message: &'a str,
        at: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Option<IncidentUpdate>, StorageError>>;

    /// Marks an incident acknowledged (kept if it already was); `None` when there is no
    /// such incident.
    fn acknowledge_incident(
        &self,
        incident: i64,
        at: jiff::Timestamp,
    ) -> BoxFuture<'_, Result<Option<IncidentRecord>, StorageError>>;

    /// A page of outbox rows, newest first.
    fn outbox_page<'a>(&'a self, page: &'a OutboxPage) -> BoxFuture<'a, Result<Vec<NotificationRecord>, StorageError>>;

    /// Puts a dead (or pending) notification back in its queue, due at `now`, with its
    /// attempts reset; `None` when there is no such row, the row as it is now otherwise
    /// (a delivered row is left alone).
    fn redeliver(
        &self,
        notification: i64,
        now: jiff::Timestamp,
    ) -> BoxFuture<'_, Result<Option<NotificationRecord>, StorageError>>;

    /// Every check created through the API, by name.
    fn api_checks(&self) -> BoxFuture<'_, Result<Vec<ApiCheck>, StorageError>>;

    /// Creates or replaces an API check's definition.
    fn put_api_check<'a>(&'a self, check: &'a ApiCheck) -> BoxFuture<'a, Result<(), StorageError>>;

    /// Deletes an API check's definition (its history stays, the check is retired);
    /// false when there was none.
    fn delete_api_check<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, StorageError>>;

    /// Silences in force at `now`, by check.
    fn silences(&self, now: jiff::Timestamp) -> BoxFuture<'_, Result<Vec<Silence>, StorageError>>;

    /// Sets (or with `until` in the past, lifts) a check's silence.
    fn set_silence<'a>(&'a self, silence: &'a Silence) -> BoxFuture<'a, Result<(), StorageError>>;

    /// Each location's latest state of a check with a location quorum, by location;
    /// empty for a plain check and for stores without locations (one node).
    fn location_views<'a>(&'a self, check: &'a str) -> BoxFuture<'a, Result<Vec<LocationView>, StorageError>> {
        let _ = check;
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// One location's view of a quorum check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocationView {
    pub location: String,
    /// The location's own judgement, with the check's thresholds.
    pub state: State,
    pub since: Option<jiff::Timestamp>,
    pub last_result_at: Option<jiff::Timestamp>,
    pub last_outcome: Option<Outcome>,
    pub last_reason: Option<Reason>,
    pub last_error: Option<String>,
    /// Its state differs from the check-level one (neither unknown).
    pub disagrees: bool,
}

/// Implements [`Console`] for a store type whose inherent methods do the work under
/// these names (each returning the store's own error, which converts into
/// [`StorageError`]), as the SQLite and PostgreSQL stores have them. Items after the
/// type (`impl_console!(Store, fn location_views(...) {...})`) are added to the impl.
#[macro_export]
macro_rules! impl_console {
    ($store:ty $(, $($extra:tt)*)?) => {
        impl $crate::storage::console::Console for $store {
            fn check_page<'a>(
                &'a self,
                page: &'a $crate::storage::console::CheckPage,
            ) -> $crate::outbox::BoxFuture<'a, Result<Vec<$crate::storage::console::CheckSummary>, $crate::storage::StorageError>> {
                Box::pin(async move { self.check_summaries(page).await.map_err(Into::into) })
            }

            fn check_summary<'a>(
                &'a self,
                name: &'a str,
            ) -> $crate::outbox::BoxFuture<'a, Result<Option<$crate::storage::console::CheckSummary>, $crate::storage::StorageError>> {
                Box::pin(async move { self.check_summary_of(name).await.map_err(Into::into) })
            }

            fn group_counts(
                &self,
            ) -> $crate::outbox::BoxFuture<'_, Result<Vec<$crate::storage::console::GroupCounts>, $crate::storage::StorageError>> {
                Box::pin(async move { self.group_state_counts().await.map_err(Into::into) })
            }

            fn uptimes<'a>(
                &'a self,
                checks: &'a [String],
                windows: &'a [($crate::__jiff::Timestamp, $crate::__jiff::Timestamp)],
            ) -> $crate::outbox::BoxFuture<'a, Result<Vec<Vec<$crate::storage::history::Uptime>>, $crate::storage::StorageError>> {
                Box::pin(async move { self.uptimes_between(checks, windows).await.map_err(Into::into) })
            }

            fn daily_uptimes<'a>(
                &'a self,
                checks: &'a [String],
                since: $crate::__jiff::Timestamp,
                until: $crate::__jiff::Timestamp,
            ) -> $crate::outbox::BoxFuture<'a, Result<Vec<Vec<$crate::storage::console::DayUptime>>, $crate::storage::StorageError>> {
                Box::pin(async move { self.daily_uptimes_of(checks, since, until).await.map_err(Into::into) })
            }

            fn latency_series<'a>(
                &'a self,
                check: &'a str,
                since: $crate::__jiff::Timestamp,
                until: $crate::__jiff::Timestamp,
            ) -> $crate::outbox::BoxFuture<'a, Result<Vec<$crate::storage::console::LatencyPoint>, $crate::storage::StorageError>> {
                Box::pin(async move { self.latency_points(check, since, until).await.map_err(Into::into) })
            }

            fn latency_percentiles<'a>(
                &'a self,
                check: &'a str,
                since: $crate::__jiff::Timestamp,
                until: $crate::__jiff::Timestamp,
            ) -> $crate::outbox::BoxFuture<'a, Result<Option<$crate::storage::console::LatencyPercentiles>, $crate::storage::StorageError>> {
                Box::pin(async move { self.percentiles_between(check, since, until).await.map_err(Into::into) })
            }

            fn incident_page<'a>(
                &'a self,
                page: &'a $crate::storage::history::SpanPage,
            ) -> $crate::outbox::BoxFuture<'a, Result<Vec<$crate::storage::console::IncidentRecord>, $crate::storage::StorageError>> {
                Box::pin(async move { self.incident_records(page).await.map_err(Into::into) })
            }

            fn incident<'a>(
                &'a self,
                id: i64,
            ) -> $crate::outbox::BoxFuture<'a, Result<Option<$crate::storage::console::IncidentRecord>, $crate::storage::StorageError>> {
                Box::pin(async move { self.incident_record(id).await.map_err(Into::into) })
            }

            fn add_incident_update<'a>(
                &'a self,
                incident: i64,
                status: $crate::storage::console::IncidentStatus,
                message: &'a str,
                at: $crate::__jiff::Timestamp,
            ) -> $crate::outbox::BoxFuture<'a, Result<Option<$crate::storage::console::IncidentUpdate>, $crate::storage::StorageError>> {
                Box::pin(async move { self.add_update(incident, status, message, at).await.map_err(Into::into) })
            }

            fn acknowledge_incident(
                &self,
                incident: i64,
                at: $crate::__jiff::Timestamp,
            ) -> $crate::outbox::BoxFuture<'_, Result<Option<$crate::storage::console::IncidentRecord>, $crate::storage::StorageError>> {
                Box::pin(async move { self.acknowledge(incident, at).await.map_err(Into::into) })
            }

            fn outbox_page<'a>(
                &'a self,
                page: &'a $crate::storage::console::OutboxPage,
            ) -> $crate::outbox::BoxFuture<'a, Result<Vec<$crate::storage::console::NotificationRecord>, $crate::storage::StorageError>> {
                Box::pin(async move { self.outbox_rows(page).await.map_err(Into::into) })
            }

            fn redeliver(
                &self,
                notification: i64,
                now: $crate::__jiff::Timestamp,
            ) -> $crate::outbox::BoxFuture<'_, Result<Option<$crate::storage::console::NotificationRecord>, $crate::storage::StorageError>> {
                Box::pin(async move { self.redeliver_notification(notification, now).await.map_err(Into::into) })
            }

            fn api_checks(
                &self,
            ) -> $crate::outbox::BoxFuture<'_, Result<Vec<$crate::storage::console::ApiCheck>, $crate::storage::StorageError>> {
                Box::pin(async move { self.api_check_definitions().await.map_err(Into::into) })
            }

            fn put_api_check<'a>(
                &'a self,
                check: &'a $crate::storage::console::ApiCheck,
            ) -> $crate::outbox::BoxFuture<'a, Result<(), $crate::storage::StorageError>> {
                Box::pin(async move { self.put_api_check_definition(check).await.map_err(Into::into) })
            }

            fn delete_api_check<'a>(
                &'a self,
                name: &'a str,
            ) -> $crate::outbox::BoxFuture<'a, Result<bool, $crate::storage::StorageError>> {
                Box::pin(async move { self.delete_api_check_definition(name).await.map_err(Into::into) })
            }

            fn silences(
                &self,
                now: $crate::__jiff::Timestamp,
            ) -> $crate::outbox::BoxFuture<'_, Result<Vec<$crate::storage::console::Silence>, $crate::storage::StorageError>> {
                Box::pin(async move { self.silences_at(now).await.map_err(Into::into) })
            }

            fn set_silence<'a>(
                &'a self,
                silence: &'a $crate::storage::console::Silence,
            ) -> $crate::outbox::BoxFuture<'a, Result<(), $crate::storage::StorageError>> {
                Box::pin(async move { self.put_silence(silence).await.map_err(Into::into) })
            }

            $($($extra)*)?
        }
    };
}

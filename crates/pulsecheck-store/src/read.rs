//! Reads: persisted state, status, history and the outbox's rows.

use std::collections::HashMap;

use pulsecheck_core::outbox::{CauseResult, DeliveryState};
use pulsecheck_core::state::{CheckState, State};
use pulsecheck_core::storage::console::NotificationRecord;
use pulsecheck_core::storage::rows::{self, Columns, RowError};
use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use pulsecheck_core::storage::history::ResultPage;

use crate::error::StoreError;
use crate::store::Store;
use pulsecheck_core::storage::encoding::{from_ms, us_to_ms};

/// Which outbox rows [`Store::notifications`] returns; every field narrows the set.
#[derive(Clone, Debug, Default)]
pub struct NotificationFilter {
    pub check: Option<String>,
    pub channel: Option<String>,
    pub state: Option<DeliveryState>,
    /// At most this many rows (oldest first); all when `None`.
    pub limit: Option<usize>,
}

/// A raw result as stored: the backend-neutral [`RecordedResult`] of core's
/// [`pulsecheck_core::storage::History`].
pub type StoredResult = pulsecheck_core::storage::history::RecordedResult;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredTransition {
    pub id: i64,
    pub check: String,
    pub from: State,
    pub to: State,
    pub at: jiff::Timestamp,
    pub cause: Vec<CauseResult>,
}

/// A down-to-up span; `ended_at` is `None` while it is open.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Incident {
    pub id: i64,
    pub check: String,
    pub started_at: jiff::Timestamp,
    pub ended_at: Option<jiff::Timestamp>,
    pub opened_by: i64,
    pub closed_by: Option<i64>,
}

/// One check's results in one hour. Cancelled results are not counted; percentiles are
/// nearest-rank over the durations of up results (`None` when none was up).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HourlyAggregate {
    pub check: String,
    pub hour: jiff::Timestamp,
    pub count: u64,
    pub up_count: u64,
    pub mean_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Mean of each phase over the up runs that measured it.
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    pub ttfb_ms: Option<f64>,
    pub transfer_ms: Option<f64>,
}

/// One check's results in one UTC day, summed from its hourly aggregates; `mean_ms`
/// is the mean duration of up results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DailyAggregate {
    pub check: String,
    pub day: jiff::Timestamp,
    pub count: u64,
    pub up_count: u64,
    pub mean_ms: Option<f64>,
}

impl Store {
    /// The persisted state of every known check, to resume after a restart.
    pub async fn load_states(&self) -> Result<HashMap<String, CheckState>, StoreError> {
        let rows = sqlx::query("SELECT name, state, since, streak FROM checks")
            .fetch_all(&self.inner.read)
            .await
            .map_err(self.query_error("load states"))?;
        rows.iter().map(|row| self.decode(row, rows::check_state)).collect()
    }

    /// Outbox rows matching `filter`, oldest first, with their delivery records.
    pub async fn notifications(&self, filter: &NotificationFilter) -> Result<Vec<NotificationRecord>, StoreError> {
        let mut sql = String::from(
            "SELECT id, check_name, channel, idempotency_key, kind, event, transition_id, state, attempts,
                    created_at, next_attempt_at, delivered_at, last_error
             FROM notifications WHERE 1 = 1",
        );
        let mut binds: Vec<String> = Vec::new();
        for (column, value) in [
            ("check_name", filter.check.clone()),
            ("channel", filter.channel.clone()),
            ("state", filter.state.map(|s| delivery_state_str(s).to_owned())),
        ] {
            if let Some(value) = value {
                binds.push(value);
                sql.push_str(&format!(" AND {column} = ${}", binds.len()));
            }
        }
        sql.push_str(" ORDER BY id");
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut query = sqlx::query(&sql);
        for value in &binds {
            query = query.bind(value);
        }
        let rows = query
            .fetch_all(&self.inner.read)
            .await
            .map_err(self.query_error("read notifications"))?;
        rows.iter().map(|row| self.notification_record(row)).collect()
    }

    /// The newest `limit` results of one check, newest first.
    pub async fn results(&self, check: &str, limit: usize) -> Result<Vec<StoredResult>, StoreError> {
        self.result_page(check, ResultPage { before: None, limit }).await
    }

    /// Number of raw results kept (all checks, or one).
    pub async fn result_count(&self, check: Option<&str>) -> Result<u64, StoreError> {
        let count: i64 = match check {
            Some(check) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM check_ids c JOIN results r ON r.check_id = c.id WHERE c.name = $1",
            )
            .bind(check),
            None => sqlx::query_scalar("SELECT COUNT(*) FROM results"),
        }
        .fetch_one(&self.inner.read)
        .await
        .map_err(self.query_error("count results"))?;
        Ok(count.max(0) as u64)
    }

    /// Transitions (all checks, or one), oldest first, at most `limit` of the newest.
    pub async fn transitions(&self, check: Option<&str>, limit: usize) -> Result<Vec<StoredTransition>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, check_name, from_state, to_state, at, cause FROM (
                 SELECT * FROM transitions WHERE $1 IS NULL OR check_name = $1
                 ORDER BY id DESC LIMIT $2
             ) AS newest ORDER BY id",
        )
        .bind(check)
        .bind(limit_i64(limit))
        .fetch_all(&self.inner.read)
        .await
        .map_err(self.query_error("read transitions"))?;
        rows.iter()
            .map(|row| {
                let cause: String = self.get(row, "cause")?;
                Ok(StoredTransition {
                    id: self.get(row, "id")?,
                    check: self.get(row, "check_name")?,
                    from: self.state_col(row, "from_state")?,
                    to: self.state_col(row, "to_state")?,
                    at: from_ms(self.get(row, "at")?),
                    cause: serde_json::from_str(&cause)
                        .map_err(|e| self.corrupt("decode transition cause", e.to_string()))?,
                })
            })
            .collect()
    }

    /// Incidents (all checks, or one), oldest first.
    pub async fn incidents(&self, check: Option<&str>) -> Result<Vec<Incident>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, check_name, started_at, ended_at, opened_by, closed_by FROM incidents
             WHERE $1 IS NULL OR check_name = $1 ORDER BY id",
        )
        .bind(check)
        .fetch_all(&self.inner.read)
        .await
        .map_err(self.query_error("read incidents"))?;
        rows.iter()
            .map(|row| {
                Ok(Incident {
                    id: self.get(row, "id")?,
                    check: self.get(row, "check_name")?,
                    started_at: from_ms(self.get(row, "started_at")?),
                    ended_at: self.get::<Option<i64>>(row, "ended_at")?.map(from_ms),
                    opened_by: self.get(row, "opened_by")?,
                    closed_by: self.get(row, "closed_by")?,
                })
            })
            .collect()
    }

    /// Hourly aggregates of one check, oldest first.
    pub async fn hourly(&self, check: &str) -> Result<Vec<HourlyAggregate>, StoreError> {
        let rows = sqlx::query(
            "SELECT h.hour, h.count, h.up_count, h.mean_us, h.p50_us, h.p95_us, h.p99_us,
                    h.dns_us, h.connect_us, h.tls_us, h.ttfb_us, h.transfer_us
             FROM check_ids c JOIN hourly h ON h.check_id = c.id
             WHERE c.name = $1 ORDER BY h.hour",
        )
        .bind(check)
        .fetch_all(&self.inner.read)
        .await
        .map_err(self.query_error("read hourly aggregates"))?;
        let us = |row: &SqliteRow, column: &'static str| -> Result<Option<f64>, StoreError> {
            Ok(self.get::<Option<i64>>(row, column)?.map(us_to_ms))
        };
        rows.iter()
            .map(|row| {
                Ok(HourlyAggregate {
                    check: check.to_owned(),
                    hour: from_ms(self.get(row, "hour")?),
                    count: self.get::<i64>(row, "count")?.max(0) as u64,
                    up_count: self.get::<i64>(row, "up_count")?.max(0) as u64,
                    mean_ms: us(row, "mean_us")?,
                    p50_ms: us(row, "p50_us")?,
                    p95_ms: us(row, "p95_us")?,
                    p99_ms: us(row, "p99_us")?,
                    dns_ms: us(row, "dns_us")?,
                    connect_ms: us(row, "connect_us")?,
                    tls_ms: us(row, "tls_us")?,
                    ttfb_ms: us(row, "ttfb_us")?,
                    transfer_ms: us(row, "transfer_us")?,
                })
            })
            .collect()
    }

    /// Daily aggregates of one check (UTC days), oldest first: the 90-day bar.
    pub async fn daily(&self, check: &str) -> Result<Vec<DailyAggregate>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.day, d.count, d.up_count, d.mean_us
             FROM check_ids c JOIN daily d ON d.check_id = c.id
             WHERE c.name = $1 ORDER BY d.day",
        )
        .bind(check)
        .fetch_all(&self.inner.read)
        .await
        .map_err(self.query_error("read daily aggregates"))?;
        rows.iter()
            .map(|row| {
                Ok(DailyAggregate {
                    check: check.to_owned(),
                    day: from_ms(self.get(row, "day")?),
                    count: self.get::<i64>(row, "count")?.max(0) as u64,
                    up_count: self.get::<i64>(row, "up_count")?.max(0) as u64,
                    mean_ms: self.get::<Option<i64>>(row, "mean_us")?.map(us_to_ms),
                })
            })
            .collect()
    }

    pub(crate) fn notification_record(&self, row: &SqliteRow) -> Result<NotificationRecord, StoreError> {
        self.decode(row, rows::notification_record)
    }

    /// Reads `row` into a core type through the shared decoding of [`rows`].
    pub(crate) fn decode<'r, T>(
        &self,
        row: &'r SqliteRow,
        decode: impl FnOnce(&SqliteColumns<'r>) -> Result<T, RowError>,
    ) -> Result<T, StoreError> {
        decode(&SqliteColumns(row)).map_err(|e| self.row_error(e))
    }

    pub(crate) fn row_error(&self, error: RowError) -> StoreError {
        match error.split::<sqlx::Error>() {
            Ok((column, source)) => self.query_error(column)(source),
            Err((context, detail)) => self.corrupt(context, detail),
        }
    }

    pub(crate) fn get<'r, T>(&self, row: &'r SqliteRow, column: &'static str) -> Result<T, StoreError>
    where
        T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    {
        row.try_get(column).map_err(self.query_error(column))
    }

    pub(crate) fn state_col(&self, row: &SqliteRow, column: &'static str) -> Result<State, StoreError> {
        let text: String = self.get(row, column)?;
        State::parse(&text).ok_or_else(|| self.corrupt("decode state", format!("{column} = {text:?}")))
    }
}

pub(crate) use pulsecheck_core::storage::rows::delivery_state_str;

/// A SQLite row as core's [`Columns`].
pub(crate) struct SqliteColumns<'r>(pub(crate) &'r SqliteRow);

fn column_error(column: &'static str) -> impl FnOnce(sqlx::Error) -> RowError {
    move |source| RowError::Column {
        column,
        source: Box::new(source),
    }
}

impl Columns for SqliteColumns<'_> {
    fn int(&self, column: &'static str) -> Result<Option<i64>, RowError> {
        self.0.try_get(column).map_err(column_error(column))
    }

    fn float(&self, column: &'static str) -> Result<Option<f64>, RowError> {
        self.0.try_get(column).map_err(column_error(column))
    }

    fn text(&self, column: &'static str) -> Result<Option<String>, RowError> {
        self.0.try_get(column).map_err(column_error(column))
    }

    fn bytes(&self, column: &'static str) -> Result<Option<Vec<u8>>, RowError> {
        self.0.try_get(column).map_err(column_error(column))
    }
}

pub(crate) fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

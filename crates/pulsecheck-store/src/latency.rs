//! Latency by phase and percentiles: the per-phase means compaction keeps in each hourly
//! row, the hourly series the latency chart draws, and percentiles over a window.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use pulsecheck_core::storage::console::{LatencyPercentiles, LatencyPoint};
use sqlx::sqlite::SqliteRow;

use crate::codes::{self, Phases};
use crate::error::StoreError;
use crate::store::Store;
use crate::uptime::watermark;
pub(crate) use pulsecheck_core::storage::aggregate::{PhaseSums, MEAN_PHASES};
use pulsecheck_core::storage::aggregate::{RawHours, WindowPercentiles};
use pulsecheck_core::storage::encoding::{to_ms, HOUR_MS};
use pulsecheck_core::storage::rows::{self, Columns};

/// The phases of a result selected as `phases` (the blob) and `phases_text` (the text
/// of a row converted from schema 1); `None` when malformed.
fn row_phases(store: &Store, row: &SqliteRow) -> Result<Option<Phases>, StoreError> {
    store.decode(row, |r| match r.text("phases_text")? {
        Some(text) => Ok(codes::parse_phases_text(&text)),
        None => rows::phases(r),
    })
}

const PHASE_COLUMNS: &str = "CASE typeof(r.phases) WHEN 'blob' THEN r.phases END AS phases,
        CASE typeof(r.phases) WHEN 'text' THEN r.phases END AS phases_text";

const RAW_SERIES_SQL: &str = "SELECT r.started_at, r.kind & 3 AS outcome, r.duration_us,
        CASE typeof(r.phases) WHEN 'blob' THEN r.phases END AS phases,
        CASE typeof(r.phases) WHEN 'text' THEN r.phases END AS phases_text
 FROM check_ids k JOIN results r ON r.check_id = k.id
 WHERE k.name = $1 AND r.started_at >= MAX($2, $4) AND r.started_at < $3 AND r.kind & 3 <> 2
 ORDER BY r.started_at";

const HOURLY_SERIES_SQL: &str = "SELECT h.hour, h.count, h.up_count, h.mean_us,
        h.dns_us, h.connect_us, h.tls_us, h.ttfb_us, h.transfer_us
 FROM check_ids k JOIN hourly h ON h.check_id = k.id
 WHERE k.name = $1 AND h.hour >= $2 AND h.hour < MIN($3, $4)
 ORDER BY h.hour";

/// Hourly rows of a window with how many up results of each hour are still raw.
const PERCENTILE_HOURS_SQL: &str = "SELECT h.hour, h.up_count, h.mean_us, h.p50_us, h.p95_us, h.p99_us,
        (SELECT COUNT(*) FROM results r
          WHERE r.check_id = h.check_id AND r.started_at >= h.hour AND r.started_at < h.hour + $5
            AND r.kind & 3 = 0) AS raw_up
 FROM check_ids k JOIN hourly h ON h.check_id = k.id
 WHERE k.name = $1 AND h.hour >= $2 AND h.hour < MIN($3, $4)
 ORDER BY h.hour";

const UP_DURATIONS_SQL: &str = "SELECT r.started_at, r.duration_us
 FROM check_ids k JOIN results r ON r.check_id = k.id
 WHERE k.name = $1 AND r.started_at >= $2 AND r.started_at < $3 AND r.kind & 3 = 0";

impl Store {
    /// Per check, the mean of each phase over the up runs that started in the hour at
    /// `hour` (unix ms). The phases are a blob of varints that SQL cannot read, so the
    /// rows are streamed and summed here rather than loaded at once.
    pub(crate) async fn hour_phase_means(
        &self,
        hour: i64,
    ) -> Result<HashMap<i64, [Option<i64>; MEAN_PHASES]>, StoreError> {
        let sql = format!(
            "SELECT r.check_id, {PHASE_COLUMNS}
             FROM check_ids c CROSS JOIN results r
             WHERE r.check_id = c.id AND r.started_at >= $1 AND r.started_at < $2
               AND r.kind & 3 = 0 AND r.phases IS NOT NULL"
        );
        let mut sums: HashMap<i64, PhaseSums> = HashMap::new();
        let mut rows = sqlx::query(&sql)
            .bind(hour)
            .bind(hour + HOUR_MS)
            .fetch(&self.inner.read);
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(self.query_error("read phases of an hour"))?
        {
            let check_id = self.decode(&row, |r| r.required_int("check_id"))?;
            // A malformed blob (only corruption makes one) leaves its run out of the means.
            if let Some(phases) = row_phases(self, &row)? {
                sums.entry(check_id).or_default().add(&phases);
            }
        }
        Ok(sums.into_iter().map(|(id, s)| (id, s.means())).collect())
    }

    /// One point per hour in `[since, until)` with runs: hourly aggregates before the
    /// aggregation watermark, raw results summed by hour from it on.
    pub async fn latency_points(
        &self,
        check: &str,
        since: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> Result<Vec<LatencyPoint>, StoreError> {
        let (since, until) = (to_ms(since), to_ms(until));
        let watermark = watermark(self).await?;
        let hourly = sqlx::query(HOURLY_SERIES_SQL)
            .bind(check)
            .bind(since)
            .bind(until)
            .bind(watermark)
            .fetch_all(&self.inner.read)
            .await
            .map_err(self.query_error("read hourly latency"))?;
        let mut points = hourly
            .iter()
            .map(|row| self.decode(row, rows::latency_point))
            .collect::<Result<Vec<_>, _>>()?;
        let mut hours = RawHours::default();
        let mut raw = sqlx::query(RAW_SERIES_SQL)
            .bind(check)
            .bind(since)
            .bind(until)
            .bind(watermark)
            .fetch(&self.inner.read);
        while let Some(row) = raw.try_next().await.map_err(self.query_error("read raw latency"))? {
            let (at, up, duration_us) = self.decode(&row, rows::raw_run)?;
            hours.add(at, up, duration_us, row_phases(self, &row)?.as_ref());
        }
        points.extend(hours.into_points());
        Ok(points)
    }

    /// Percentiles of the up runs in `[since, until)`. Hours whose up results are all
    /// still raw, and everything after the aggregation watermark, give exact
    /// nearest-rank percentiles over the raw durations; hours whose raw up results were
    /// pruned contribute their hourly percentiles. The result is the up-run-weighted mean
    /// of the exact part and those hours (exact when no hour was pruned). The mean is
    /// always exact.
    pub async fn percentiles_between(
        &self,
        check: &str,
        since: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> Result<Option<LatencyPercentiles>, StoreError> {
        let (since, until) = (to_ms(since), to_ms(until));
        let watermark = watermark(self).await?;
        let hours = sqlx::query(PERCENTILE_HOURS_SQL)
            .bind(check)
            .bind(since)
            .bind(until)
            .bind(watermark)
            .bind(HOUR_MS)
            .fetch_all(&self.inner.read)
            .await
            .map_err(self.query_error("read hourly percentiles"))?;
        let mut percentiles = WindowPercentiles::new(since, watermark);
        for row in &hours {
            percentiles.add_hour(&self.decode(row, rows::percentile_hour)?);
        }
        let rows = sqlx::query(UP_DURATIONS_SQL)
            .bind(check)
            .bind(percentiles.raw_from())
            .bind(until)
            .fetch_all(&self.inner.read)
            .await
            .map_err(self.query_error("read up durations"))?;
        let runs = rows
            .iter()
            .map(|row| self.decode(row, rows::up_duration))
            .collect::<Result<Vec<_>, _>>()?;
        percentiles.add_raw(runs);
        Ok(percentiles.result())
    }

    /// `(name, sql, parameters)` of the latency reads, for the query-plan test.
    pub(crate) fn latency_sql_for_plans() -> Vec<(&'static str, String, usize)> {
        vec![
            ("latency raw", RAW_SERIES_SQL.to_owned(), 4),
            ("latency hourly", HOURLY_SERIES_SQL.to_owned(), 4),
            ("percentile hours", PERCENTILE_HOURS_SQL.to_owned(), 5),
            ("up durations", UP_DURATIONS_SQL.to_owned(), 3),
        ]
    }
}

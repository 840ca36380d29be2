//! Latency by phase and percentiles: the per-phase means compaction keeps in each hourly
//! row, the hourly series the latency chart draws, and percentiles over a window.

use std::collections::{BTreeMap, HashMap};

use futures_util::TryStreamExt;

use pulsecheck_core::storage::console::{LatencyPercentiles, LatencyPoint};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::error::PgError;
use crate::store::PgStore;
use crate::uptime::watermark;
use pulsecheck_core::storage::aggregate::{nearest_rank, Weighted};
pub(crate) use pulsecheck_core::storage::aggregate::{PhaseSums, MEAN_PHASES};
use pulsecheck_core::storage::encoding::{self as codes, Phases};
use pulsecheck_core::storage::encoding::{floor_hour, from_ms, to_ms, us_to_ms, HOUR_MS};

/// The `phases` column of a result: `None` for a malformed blob.
pub(crate) fn row_phases(store: &PgStore, row: &PgRow) -> Result<Option<Phases>, PgError> {
    Ok(match store.get::<Option<Vec<u8>>>(row, "phases")? {
        Some(bytes) => codes::decode_phases(&bytes),
        None => Some([None; 6]),
    })
}

/// One hour of one check being summed from raw results.
#[derive(Default)]
struct HourSums {
    runs: u64,
    up: u64,
    duration_us: i128,
    phases: PhaseSums,
}

pub(crate) const RAW_SERIES_SQL: &str = "SELECT r.started_at, r.kind & 3 AS outcome, r.duration_us, r.phases
 FROM check_ids k JOIN results r ON r.check_id = k.id
 WHERE k.name = $1 AND r.started_at >= GREATEST($2, $4) AND r.started_at < $3 AND r.kind & 3 <> 2
 ORDER BY r.started_at";

pub(crate) const HOURLY_SERIES_SQL: &str = "SELECT h.hour, h.count, h.up_count, h.mean_us,
        h.dns_us, h.connect_us, h.tls_us, h.ttfb_us, h.transfer_us
 FROM check_ids k JOIN hourly h ON h.check_id = k.id
 WHERE k.name = $1 AND h.hour >= $2 AND h.hour < LEAST($3, $4)
 ORDER BY h.hour";

/// Hourly rows of a window with how many up results of each hour are still raw.
pub(crate) const PERCENTILE_HOURS_SQL: &str = "SELECT h.hour, h.up_count, h.mean_us, h.p50_us, h.p95_us, h.p99_us,
        (SELECT COUNT(*) FROM results r
          WHERE r.check_id = h.check_id AND r.started_at >= h.hour AND r.started_at < h.hour + $5
            AND r.kind & 3 = 0) AS raw_up
 FROM check_ids k JOIN hourly h ON h.check_id = k.id
 WHERE k.name = $1 AND h.hour >= $2 AND h.hour < LEAST($3, $4)
 ORDER BY h.hour";

/// The phases of the up results of `[$1, $2)`, for the hourly means.
pub(crate) const HOUR_PHASES_SQL: &str = "SELECT r.check_id, r.phases
 FROM check_ids c CROSS JOIN results r
 WHERE r.check_id = c.id AND r.started_at >= $1 AND r.started_at < $2
   AND r.kind & 3 = 0 AND r.phases IS NOT NULL";

pub(crate) const UP_DURATIONS_SQL: &str = "SELECT r.started_at, r.duration_us
 FROM check_ids k JOIN results r ON r.check_id = k.id
 WHERE k.name = $1 AND r.started_at >= $2 AND r.started_at < $3 AND r.kind & 3 = 0";

impl PgStore {
    /// Per check, the mean of each phase over the up runs that started in the hour at
    /// `hour` (unix ms). The phases are a blob of varints that SQL cannot read, so the
    /// rows are streamed and summed here rather than loaded at once.
    pub(crate) async fn hour_phase_means(
        &self,
        hour: i64,
    ) -> Result<HashMap<i64, [Option<i64>; MEAN_PHASES]>, PgError> {
        let mut sums: HashMap<i64, PhaseSums> = HashMap::new();
        let mut rows = sqlx::query(HOUR_PHASES_SQL)
            .bind(hour)
            .bind(hour + HOUR_MS)
            .fetch(&self.inner.pool);
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(self.query_error("read phases of an hour"))?
        {
            let check_id = i64::from(self.get::<i32>(&row, "check_id")?);
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
    ) -> Result<Vec<LatencyPoint>, PgError> {
        let (since, until) = (to_ms(since), to_ms(until));
        let watermark = watermark(self).await?;
        let hourly = sqlx::query(HOURLY_SERIES_SQL)
            .bind(check)
            .bind(since)
            .bind(until)
            .bind(watermark)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.query_error("read hourly latency"))?;
        let ms = |row: &PgRow, column: &'static str| -> Result<Option<f64>, PgError> {
            Ok(self.get::<Option<i64>>(row, column)?.map(us_to_ms))
        };
        let mut points = Vec::with_capacity(hourly.len() + 2);
        for row in &hourly {
            points.push(LatencyPoint {
                hour: from_ms(self.get(row, "hour")?),
                runs: count(self.get(row, "count")?),
                up: count(self.get(row, "up_count")?),
                mean_ms: ms(row, "mean_us")?,
                dns_ms: ms(row, "dns_us")?,
                connect_ms: ms(row, "connect_us")?,
                tls_ms: ms(row, "tls_us")?,
                ttfb_ms: ms(row, "ttfb_us")?,
                transfer_ms: ms(row, "transfer_us")?,
            });
        }

        let mut hours: BTreeMap<i64, HourSums> = BTreeMap::new();
        let mut raw = sqlx::query(RAW_SERIES_SQL)
            .bind(check)
            .bind(since)
            .bind(until)
            .bind(watermark)
            .fetch(&self.inner.pool);
        while let Some(row) = raw.try_next().await.map_err(self.query_error("read raw latency"))? {
            let hour = hours.entry(floor_hour(self.get(&row, "started_at")?)).or_default();
            hour.runs += 1;
            if self.get::<i32>(&row, "outcome")? == 0 {
                hour.up += 1;
                hour.duration_us += i128::from(self.get::<i64>(&row, "duration_us")?);
                if let Some(phases) = row_phases(self, &row)? {
                    hour.phases.add(&phases);
                }
            }
        }
        for (hour, sums) in hours {
            let phases = sums.phases.means().map(|p| p.map(us_to_ms));
            points.push(LatencyPoint {
                hour: from_ms(hour),
                runs: sums.runs,
                up: sums.up,
                mean_ms: (sums.up > 0).then(|| sums.duration_us as f64 / sums.up as f64 / 1000.0),
                dns_ms: phases[0],
                connect_ms: phases[1],
                tls_ms: phases[2],
                ttfb_ms: phases[3],
                transfer_ms: phases[4],
            });
        }
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
    ) -> Result<Option<LatencyPercentiles>, PgError> {
        let (since, until) = (to_ms(since), to_ms(until));
        let watermark = watermark(self).await?;
        let hours = sqlx::query(PERCENTILE_HOURS_SQL)
            .bind(check)
            .bind(since)
            .bind(until)
            .bind(watermark)
            .bind(HOUR_MS)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.query_error("read hourly percentiles"))?;
        // Hours read raw (by start), and the weighted sums of the others.
        let mut raw_hours = std::collections::HashSet::new();
        let mut weighted = Weighted::default();
        for row in &hours {
            let hour: i64 = self.get(row, "hour")?;
            let up: i64 = self.get(row, "up_count")?;
            let raw_up: i64 = self.get(row, "raw_up")?;
            if up <= 0 {
                continue;
            }
            if raw_up == up {
                raw_hours.insert(hour);
                continue;
            }
            let us = |column: &'static str| -> Result<f64, PgError> {
                Ok(self.get::<Option<i64>>(row, column)?.unwrap_or(0) as f64)
            };
            weighted.add(up as f64, [us("mean_us")?, us("p50_us")?, us("p95_us")?, us("p99_us")?]);
        }

        // Raw durations: from the first raw hour (or the watermark) to the end.
        let raw_from = raw_hours
            .iter()
            .min()
            .copied()
            .unwrap_or(i64::MAX)
            .min(since.max(watermark));
        let rows = sqlx::query(UP_DURATIONS_SQL)
            .bind(check)
            .bind(raw_from)
            .bind(until)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.query_error("read up durations"))?;
        let mut durations = Vec::with_capacity(rows.len());
        for row in &rows {
            let at: i64 = row.try_get(0).map_err(self.query_error("started_at"))?;
            let in_raw_part = at >= since.max(watermark) || raw_hours.contains(&floor_hour(at));
            if in_raw_part {
                durations.push(row.try_get::<i64, _>(1).map_err(self.query_error("duration_us"))?);
            }
        }
        if !durations.is_empty() {
            durations.sort_unstable();
            let n = durations.len();
            let sum: i128 = durations.iter().map(|d| i128::from(*d)).sum();
            let mean = sum as f64 / n as f64;
            weighted.add(
                n as f64,
                [
                    mean,
                    nearest_rank(&durations, 50),
                    nearest_rank(&durations, 95),
                    nearest_rank(&durations, 99),
                ],
            );
        }
        Ok(weighted.result())
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

//! Retention: raw results are folded into hourly aggregates, then dropped.

use serde::Serialize;
use sqlx::Row;

use crate::error::StoreError;
use crate::store::Store;
use crate::time::{floor_hour, to_ms, DAY_MS, HOUR_MS};

/// An hour is aggregated only once it ended this long ago, so that results of checks
/// that started just before the hour turned (and the writer's batching delay) are in.
const GRACE_MS: i64 = 10 * 60 * 1000;
/// Rows deleted per write transaction, so that the writer never waits long for the lock.
const DELETE_CHUNK: i64 = 5_000;
const WATERMARK_KEY: &str = "hourly_aggregated_through";

/// What one [`Store::compact`] run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    /// Hours that had results and were aggregated.
    pub hours_aggregated: u64,
    /// Hourly rows written (one per check per hour).
    pub hourly_rows_written: u64,
    pub results_deleted: u64,
    pub hourly_deleted: u64,
    /// Delivered notifications past the hourly retention. Pending and dead ones stay.
    pub notifications_deleted: u64,
}

struct HourRow {
    check: String,
    count: i64,
    up_count: i64,
    mean_ms: Option<f64>,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
}

impl Store {
    /// Aggregates every complete hour of raw results not yet aggregated into `hourly`
    /// (count and up count, excluding cancelled results; mean and nearest-rank p50/p95/p99
    /// of up results' durations), then deletes raw results older than `raw_days` (never
    /// ones not yet aggregated), hourly rows older than `hourly_days`, and delivered
    /// notifications older than `hourly_days`. A retention of 0 days keeps that tier
    /// forever. Idempotent: a second run with the same `now` changes nothing.
    ///
    /// Reads happen outside write transactions and deletions go in small chunks, so the
    /// writer is never blocked for long.
    pub async fn compact(
        &self,
        now: jiff::Timestamp,
        raw_days: u32,
        hourly_days: u32,
    ) -> Result<CompactReport, StoreError> {
        let now = to_ms(now);
        let mut report = CompactReport::default();
        let complete_end = floor_hour(now - GRACE_MS);

        let watermark: Option<i64> = sqlx::query_scalar("SELECT value FROM store_meta WHERE key = $1")
            .bind(WATERMARK_KEY)
            .fetch_optional(&self.inner.read)
            .await
            .map_err(self.query_error("read aggregation watermark"))?;
        let mut from = watermark.unwrap_or(i64::MIN);
        while from < complete_end {
            let next: Option<i64> =
                sqlx::query_scalar("SELECT MIN(started_at) FROM results WHERE started_at >= $1 AND started_at < $2")
                    .bind(from)
                    .bind(complete_end)
                    .fetch_one(&self.inner.read)
                    .await
                    .map_err(self.query_error("find next hour to aggregate"))?;
            let Some(next) = next else { break };
            let hour = floor_hour(next);
            let rows = self.aggregate_hour(hour).await?;
            let mut tx = self.begin_write().await?;
            for row in &rows {
                sqlx::query(
                    "INSERT INTO hourly (check_name, hour, count, up_count, mean_ms, p50_ms, p95_ms, p99_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (check_name, hour) DO UPDATE SET
                         count = excluded.count,
                         up_count = excluded.up_count,
                         mean_ms = excluded.mean_ms,
                         p50_ms = excluded.p50_ms,
                         p95_ms = excluded.p95_ms,
                         p99_ms = excluded.p99_ms",
                )
                .bind(&row.check)
                .bind(hour)
                .bind(row.count)
                .bind(row.up_count)
                .bind(row.mean_ms)
                .bind(row.p50_ms)
                .bind(row.p95_ms)
                .bind(row.p99_ms)
                .execute(&mut *tx)
                .await
                .map_err(self.query_error("write hourly aggregate"))?;
            }
            set_watermark(self, &mut tx, hour + HOUR_MS).await?;
            tx.commit().await.map_err(self.query_error("commit"))?;
            report.hours_aggregated += 1;
            report.hourly_rows_written += rows.len() as u64;
            from = hour + HOUR_MS;
        }
        // Hours without results up to complete_end are done too.
        let aggregated_through = watermark.unwrap_or(i64::MIN).max(complete_end);
        if watermark != Some(aggregated_through) {
            let mut tx = self.begin_write().await?;
            set_watermark(self, &mut tx, aggregated_through).await?;
            tx.commit().await.map_err(self.query_error("commit"))?;
        }

        if raw_days > 0 {
            let cutoff = (now - i64::from(raw_days) * DAY_MS).min(aggregated_through);
            report.results_deleted = self
                .delete_chunked(
                    "delete old results",
                    "DELETE FROM results WHERE id IN (SELECT id FROM results WHERE started_at < $1 LIMIT $2)",
                    cutoff,
                )
                .await?;
        }
        if hourly_days > 0 {
            let cutoff = now - i64::from(hourly_days) * DAY_MS;
            // One hour of every check per transaction.
            report.hourly_deleted = self
                .delete_chunked(
                    "delete old hourly aggregates",
                    "DELETE FROM hourly WHERE hour = (SELECT MIN(hour) FROM hourly WHERE hour < $1)",
                    cutoff,
                )
                .await?;
            report.notifications_deleted = self
                .delete_chunked(
                    "delete old delivered notifications",
                    "DELETE FROM notifications WHERE id IN (
                         SELECT id FROM notifications
                         WHERE state = 'delivered' AND delivered_at < $1 LIMIT $2)",
                    cutoff,
                )
                .await?;
        }
        Ok(report)
    }

    /// One check per row: counts over the hour's results, percentiles over its up results.
    async fn aggregate_hour(&self, hour: i64) -> Result<Vec<HourRow>, StoreError> {
        let rows = sqlx::query(
            "WITH hour_results AS (
                 SELECT check_name, outcome, duration_ms FROM results
                 WHERE started_at >= $1 AND started_at < $2 AND outcome <> 'cancelled'
             ),
             counts AS (
                 SELECT check_name,
                        COUNT(*) AS n,
                        SUM(CASE WHEN outcome = 'up' THEN 1 ELSE 0 END) AS up_n,
                        AVG(CASE WHEN outcome = 'up' THEN duration_ms END) AS mean_ms
                 FROM hour_results GROUP BY check_name
             ),
             ranked AS (
                 SELECT check_name, duration_ms,
                        ROW_NUMBER() OVER (PARTITION BY check_name ORDER BY duration_ms) AS rn,
                        COUNT(*) OVER (PARTITION BY check_name) AS n
                 FROM hour_results WHERE outcome = 'up'
             ),
             percentiles AS (
                 SELECT check_name,
                        MIN(CASE WHEN rn * 100 >= n * 50 THEN duration_ms END) AS p50,
                        MIN(CASE WHEN rn * 100 >= n * 95 THEN duration_ms END) AS p95,
                        MIN(CASE WHEN rn * 100 >= n * 99 THEN duration_ms END) AS p99
                 FROM ranked GROUP BY check_name
             )
             SELECT c.check_name, c.n, c.up_n, c.mean_ms, p.p50, p.p95, p.p99
             FROM counts c LEFT JOIN percentiles p ON p.check_name = c.check_name",
        )
        .bind(hour)
        .bind(hour + HOUR_MS)
        .fetch_all(&self.inner.read)
        .await
        .map_err(self.query_error("aggregate an hour of results"))?;
        rows.iter()
            .map(|row| {
                Ok(HourRow {
                    check: row.try_get("check_name").map_err(self.query_error("check_name"))?,
                    count: row.try_get("n").map_err(self.query_error("n"))?,
                    up_count: row.try_get("up_n").map_err(self.query_error("up_n"))?,
                    mean_ms: row.try_get("mean_ms").map_err(self.query_error("mean_ms"))?,
                    p50_ms: row.try_get("p50").map_err(self.query_error("p50"))?,
                    p95_ms: row.try_get("p95").map_err(self.query_error("p95"))?,
                    p99_ms: row.try_get("p99").map_err(self.query_error("p99"))?,
                })
            })
            .collect()
    }

    /// Runs `sql` (binding `$1` = cutoff, and `$2` = chunk size when it has a `$2`), each
    /// time in its own write transaction, until it deletes nothing; returns the rows
    /// deleted.
    async fn delete_chunked(&self, context: &'static str, sql: &'static str, cutoff: i64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let mut tx = self.begin_write().await?;
            let mut query = sqlx::query(sql).bind(cutoff);
            if sql.contains("$2") {
                query = query.bind(DELETE_CHUNK);
            }
            let done = query.execute(&mut *tx).await.map_err(self.query_error(context))?;
            tx.commit().await.map_err(self.query_error("commit"))?;
            total += done.rows_affected();
            if done.rows_affected() == 0 {
                return Ok(total);
            }
        }
    }
}

async fn set_watermark(store: &Store, conn: &mut sqlx::SqliteConnection, value: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO store_meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(WATERMARK_KEY)
    .bind(value)
    .execute(conn)
    .await
    .map_err(store.query_error("write aggregation watermark"))?;
    Ok(())
}

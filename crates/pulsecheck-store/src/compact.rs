//! Retention: raw results are folded into hourly and daily aggregates, then dropped in
//! tiers; a size budget prunes the oldest raw results first when the file grows past it.

use pulsecheck_core::storage::aggregate::HourRow;
use pulsecheck_core::storage::housekeeping::{CompactReport, Retention};
use pulsecheck_core::storage::rows;

use crate::error::StoreError;
use crate::store::Store;
use crate::uptime::WATERMARK_KEY;
use pulsecheck_core::storage::encoding::{floor_hour, to_ms, DAY_MS, HOUR_MS};

/// An hour is aggregated only once it ended this long ago, so that results of checks
/// that started just before the hour turned (and the writer's batching delay) are in.
const GRACE_MS: i64 = 10 * 60 * 1000;
/// Rows deleted per write transaction (roughly), so that the writer never waits long.
const DELETE_CHUNK: u64 = 5_000;
/// Checks visited per write transaction by the per-check deletes.
const CHECKS_PER_TX: usize = 200;
/// The size budget prunes down to this share of `max_size`, so that it does not run
/// again on the next few results.
const BUDGET_TARGET_PERCENT: u64 = 90;

/// The size budget deletes raw results in slices of this much time.
const BUDGET_STEP_MS: i64 = 10 * 60 * 1000;

impl Store {
    /// [`Store::compact_with`] with `raw_days` and `hourly_days` and the other tiers at
    /// their defaults ([`Retention::new`]).
    pub async fn compact(
        &self,
        now: jiff::Timestamp,
        raw_days: u32,
        hourly_days: u32,
    ) -> Result<CompactReport, StoreError> {
        self.compact_with(now, &Retention::new(raw_days, hourly_days)).await
    }

    /// Aggregates every complete hour of raw results not yet aggregated into `hourly`
    /// (count and up count, excluding cancelled results; mean and nearest-rank p50/p95/p99
    /// of up results' durations) and adds it to its day in `daily`. Then deletes, never
    /// touching results not yet aggregated: up and cancelled results older than
    /// `raw_up_hours` unless they caused a transition, every result older than
    /// `raw_days`, hourly rows older than `hourly_days`, daily rows older than
    /// `daily_days`, and delivered notifications older than `hourly_days`. Last, it
    /// enforces the size budget ([`Store::enforce_size_budget`]). Idempotent: a second
    /// run with the same `now` changes nothing.
    ///
    /// Reads happen outside write transactions and deletions go in small chunks, so the
    /// writer is never blocked for long.
    pub async fn compact_with(&self, now: jiff::Timestamp, retention: &Retention) -> Result<CompactReport, StoreError> {
        let now = to_ms(now);
        let mut report = CompactReport::default();
        let aggregated_through = self.aggregate(now, &mut report).await?;

        let cutoffs = retention.cutoffs(now, aggregated_through);
        if let Some(cutoff) = cutoffs.up_results {
            report.results_deleted += self
                .delete_per_check(
                    "delete old up results",
                    "DELETE FROM results WHERE check_id = $1 AND started_at < $2 AND kind & 3 <> 1 AND kind & 4 = 0",
                    cutoff,
                )
                .await?;
        }
        if let Some(cutoff) = cutoffs.results {
            report.results_deleted += self
                .delete_per_check(
                    "delete old results",
                    "DELETE FROM results WHERE check_id = $1 AND started_at < $2",
                    cutoff,
                )
                .await?;
        }
        if let Some(cutoff) = cutoffs.hourly {
            report.hourly_deleted = self
                .delete_per_check(
                    "delete old hourly aggregates",
                    "DELETE FROM hourly WHERE check_id = $1 AND hour < $2",
                    cutoff,
                )
                .await?;
            report.notifications_deleted = self.delete_delivered_notifications(cutoff).await?;
        }
        if let Some(cutoff) = cutoffs.daily {
            report.daily_deleted = self
                .delete_per_check(
                    "delete old daily aggregates",
                    "DELETE FROM daily WHERE check_id = $1 AND day < $2",
                    cutoff,
                )
                .await?;
        }
        let (results, hourly) = self.prune_to_budget(aggregated_through).await?;
        report.results_pruned_for_size = results;
        report.hourly_pruned_for_size = hourly;
        Ok(report)
    }

    /// Aggregates the complete hours not yet aggregated; returns the time up to which
    /// every hour is aggregated.
    async fn aggregate(&self, now: i64, report: &mut CompactReport) -> Result<i64, StoreError> {
        let complete_end = floor_hour(now - GRACE_MS);
        let watermark: Option<i64> = sqlx::query_scalar("SELECT value FROM store_meta WHERE key = $1")
            .bind(WATERMARK_KEY)
            .fetch_optional(&self.inner.read)
            .await
            .map_err(self.query_error("read aggregation watermark"))?;
        let mut from = watermark.unwrap_or(i64::MIN);
        while from < complete_end {
            // The key leads with the check: one seek per check instead of a time index.
            let next: Option<i64> = sqlx::query_scalar(
                "SELECT MIN((SELECT MIN(r.started_at) FROM results r
                             WHERE r.check_id = c.id AND r.started_at >= $1 AND r.started_at < $2))
                 FROM check_ids c",
            )
            .bind(from)
            .bind(complete_end)
            .fetch_one(&self.inner.read)
            .await
            .map_err(self.query_error("find next hour to aggregate"))?;
            let Some(next) = next else { break };
            let hour = floor_hour(next);
            let rows = self.aggregate_hour(hour).await?;
            let phases = self.hour_phase_means(hour).await?;
            let day = hour.div_euclid(DAY_MS) * DAY_MS;
            let mut tx = self.begin_write().await?;
            for row in &rows {
                let means = phases.get(&row.check_id).copied().unwrap_or_default();
                sqlx::query(
                    "INSERT INTO hourly (check_id, hour, count, up_count, mean_us, p50_us, p95_us, p99_us,
                                         dns_us, connect_us, tls_us, ttfb_us, transfer_us)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                     ON CONFLICT (check_id, hour) DO UPDATE SET
                         count = excluded.count,
                         up_count = excluded.up_count,
                         mean_us = excluded.mean_us,
                         p50_us = excluded.p50_us,
                         p95_us = excluded.p95_us,
                         p99_us = excluded.p99_us,
                         dns_us = excluded.dns_us,
                         connect_us = excluded.connect_us,
                         tls_us = excluded.tls_us,
                         ttfb_us = excluded.ttfb_us,
                         transfer_us = excluded.transfer_us",
                )
                .bind(row.check_id)
                .bind(hour)
                .bind(row.count)
                .bind(row.up_count)
                .bind(row.mean_us)
                .bind(row.p50_us)
                .bind(row.p95_us)
                .bind(row.p99_us)
                .bind(means[0])
                .bind(means[1])
                .bind(means[2])
                .bind(means[3])
                .bind(means[4])
                .execute(&mut *tx)
                .await
                .map_err(self.query_error("write hourly aggregate"))?;
                // The watermark moves in the same transaction, so an hour is added to
                // its day exactly once.
                sqlx::query(
                    "INSERT INTO daily (check_id, day, count, up_count, mean_us)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (check_id, day) DO UPDATE SET
                         count = daily.count + excluded.count,
                         up_count = daily.up_count + excluded.up_count,
                         mean_us = CASE
                             WHEN excluded.mean_us IS NULL THEN daily.mean_us
                             WHEN daily.mean_us IS NULL THEN excluded.mean_us
                             ELSE CAST(ROUND((daily.mean_us * daily.up_count + excluded.mean_us * excluded.up_count)
                                             * 1.0 / (daily.up_count + excluded.up_count)) AS INTEGER)
                         END",
                )
                .bind(row.check_id)
                .bind(day)
                .bind(row.count)
                .bind(row.up_count)
                .bind(row.mean_us)
                .execute(&mut *tx)
                .await
                .map_err(self.query_error("write daily aggregate"))?;
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
        Ok(aggregated_through)
    }

    /// One check per row: counts over the hour's results, percentiles over its up results.
    async fn aggregate_hour(&self, hour: i64) -> Result<Vec<HourRow>, StoreError> {
        let rows = sqlx::query(
            "WITH hour_results AS (
                 SELECT r.check_id, r.kind & 3 AS outcome, r.duration_us
                 FROM check_ids c CROSS JOIN results r
                 WHERE r.check_id = c.id AND r.started_at >= $1 AND r.started_at < $2 AND r.kind & 3 <> 2
             ),
             counts AS (
                 SELECT check_id,
                        COUNT(*) AS n,
                        SUM(CASE WHEN outcome = 0 THEN 1 ELSE 0 END) AS up_n,
                        CAST(ROUND(AVG(CASE WHEN outcome = 0 THEN duration_us END)) AS INTEGER) AS mean_us
                 FROM hour_results GROUP BY check_id
             ),
             ranked AS (
                 SELECT check_id, duration_us,
                        ROW_NUMBER() OVER (PARTITION BY check_id ORDER BY duration_us) AS rn,
                        COUNT(*) OVER (PARTITION BY check_id) AS n
                 FROM hour_results WHERE outcome = 0
             ),
             percentiles AS (
                 SELECT check_id,
                        MIN(CASE WHEN rn * 100 >= n * 50 THEN duration_us END) AS p50,
                        MIN(CASE WHEN rn * 100 >= n * 95 THEN duration_us END) AS p95,
                        MIN(CASE WHEN rn * 100 >= n * 99 THEN duration_us END) AS p99
                 FROM ranked GROUP BY check_id
             )
             SELECT c.check_id, c.n, c.up_n, c.mean_us, p.p50, p.p95, p.p99
             FROM counts c LEFT JOIN percentiles p ON p.check_id = c.check_id",
        )
        .bind(hour)
        .bind(hour + HOUR_MS)
        .fetch_all(&self.inner.read)
        .await
        .map_err(self.query_error("aggregate an hour of results"))?;
        rows.iter().map(|row| self.decode(row, rows::hour_row)).collect()
    }

    /// Runs `sql` (`$1` = a check id, `$2` = `cutoff`) for every numbered check, a few
    /// hundred checks or about [`DELETE_CHUNK`] rows per write transaction; returns the
    /// rows deleted. The tables are keyed by check first, so each run is one range.
    async fn delete_per_check(&self, context: &'static str, sql: &'static str, cutoff: i64) -> Result<u64, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM check_ids ORDER BY id")
            .fetch_all(&self.inner.read)
            .await
            .map_err(self.query_error("list check ids"))?;
        let mut total = 0;
        let mut ids = ids.iter().peekable();
        while ids.peek().is_some() {
            let mut tx = self.begin_write().await?;
            let mut in_tx = 0;
            for (visited, id) in ids.by_ref().enumerate() {
                let done = sqlx::query(sql)
                    .bind(id)
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.query_error(context))?;
                in_tx += done.rows_affected();
                if visited + 1 >= CHECKS_PER_TX || in_tx >= DELETE_CHUNK {
                    break;
                }
            }
            tx.commit().await.map_err(self.query_error("commit"))?;
            total += in_tx;
        }
        Ok(total)
    }

    async fn delete_delivered_notifications(&self, cutoff: i64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let mut tx = self.begin_write().await?;
            let done = sqlx::query(
                "DELETE FROM notifications WHERE id IN (
                     SELECT id FROM notifications
                     WHERE state = 'delivered' AND delivered_at < $1 LIMIT $2)",
            )
            .bind(cutoff)
            .bind(DELETE_CHUNK as i64)
            .execute(&mut *tx)
            .await
            .map_err(self.query_error("delete old delivered notifications"))?;
            tx.commit().await.map_err(self.query_error("commit"))?;
            total += done.rows_affected();
            if done.rows_affected() == 0 {
                return Ok(total);
            }
        }
    }

    /// Bytes the database's live pages take: the file minus its free pages (which
    /// SQLite reuses before it grows the file).
    pub async fn used_bytes(&self) -> Result<u64, StoreError> {
        let mut conn = self.write_connection().await?;
        let pages = self.pages(&mut conn).await?;
        Ok(pages.count.saturating_sub(pages.free).saturating_mul(pages.size))
    }

    async fn write_connection(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, StoreError> {
        self.inner
            .write
            .acquire()
            .await
            .map_err(self.query_error("acquire write connection"))
    }

    /// The page size, the pages in the file and how many of them are free.
    async fn pages(&self, conn: &mut sqlx::SqliteConnection) -> Result<Pages, StoreError> {
        let size = self.pragma(conn, "page_size").await?.max(1);
        let count = self.pragma(conn, "page_count").await?;
        let free = self.pragma(conn, "freelist_count").await?;
        Ok(Pages { size, count, free })
    }

    async fn pragma(&self, conn: &mut sqlx::SqliteConnection, name: &'static str) -> Result<u64, StoreError> {
        let value: i64 = sqlx::query_scalar(&format!("PRAGMA {name}"))
            .fetch_one(conn)
            .await
            .map_err(self.query_error(name))?;
        Ok(value.max(0) as u64)
    }

    /// When the live pages take more than `max_size` ([`crate::StoreOptions::max_size`]),
    /// deletes the oldest aggregated raw results, ten minutes at a time, until they take at
    /// most 90 % of it: first up and cancelled results that caused no transition, then
    /// every raw result, then (only if raw results alone were not enough) the oldest
    /// hourly aggregates. The outbox, transitions, incidents, checks and daily
    /// aggregates are never pruned. Then returns free pages beyond `max_size` to the
    /// file system (incremental vacuum). Returns (results, hourly rows) deleted.
    pub async fn enforce_size_budget(&self) -> Result<(u64, u64), StoreError> {
        let watermark: Option<i64> = sqlx::query_scalar("SELECT value FROM store_meta WHERE key = $1")
            .bind(WATERMARK_KEY)
            .fetch_optional(&self.inner.read)
            .await
            .map_err(self.query_error("read aggregation watermark"))?;
        self.prune_to_budget(watermark.unwrap_or(i64::MIN)).await
    }

    async fn prune_to_budget(&self, aggregated_through: i64) -> Result<(u64, u64), StoreError> {
        let max = self.max_size();
        if max == 0 {
            return Ok((0, 0));
        }
        let target = max / 100 * BUDGET_TARGET_PERCENT;
        let (mut results, mut hourly) = (0, 0);
        if self.used_bytes().await? > max {
            let passes: [(&'static str, &'static str, &'static str); 3] = [
                (
                    "results",
                    "started_at",
                    "DELETE FROM results WHERE check_id = $1 AND started_at < $2 AND kind & 3 <> 1 AND kind & 4 = 0",
                ),
                (
                    "results",
                    "started_at",
                    "DELETE FROM results WHERE check_id = $1 AND started_at < $2",
                ),
                ("hourly", "hour", "DELETE FROM hourly WHERE check_id = $1 AND hour < $2"),
            ];
            for (table, column, sql) in passes {
                let Some(oldest) = self.oldest(table, column).await? else {
                    continue;
                };
                // Raw results only once aggregated; hourly rows up to the newest hour.
                let (limit, step) = if table == "results" {
                    (aggregated_through, BUDGET_STEP_MS)
                } else {
                    (i64::MAX, HOUR_MS)
                };
                let mut cutoff = oldest.div_euclid(step).saturating_mul(step).saturating_add(step);
                loop {
                    let cut = cutoff.min(limit);
                    let deleted = self.delete_per_check("prune for the size budget", sql, cut).await?;
                    if table == "results" {
                        results += deleted;
                    } else {
                        hourly += deleted;
                    }
                    if self.used_bytes().await? <= target {
                        self.release_free_pages(max).await?;
                        return Ok((results, hourly));
                    }
                    if cut >= limit || self.oldest(table, column).await?.is_none_or(|o| o >= limit) {
                        break;
                    }
                    cutoff = cutoff.saturating_add(step);
                }
            }
            let used = self.used_bytes().await?;
            tracing::warn!(
                max_size = max,
                used,
                "the database stays over store.max_size: what is left is not prunable (the outbox, transitions, \
                 daily aggregates, results not yet aggregated)"
            );
        }
        self.release_free_pages(max).await?;
        Ok((results, hourly))
    }

    /// The oldest time in `table` (per check, one seek each).
    async fn oldest(&self, table: &'static str, column: &'static str) -> Result<Option<i64>, StoreError> {
        let sql =
            format!("SELECT MIN((SELECT MIN(t.{column}) FROM {table} t WHERE t.check_id = c.id)) FROM check_ids c");
        sqlx::query_scalar(&sql)
            .fetch_one(&self.inner.read)
            .await
            .map_err(self.query_error("find the oldest row"))
    }

    /// Free pages are reused before the file grows, so they are kept while the file is
    /// within `max`; beyond it they go back to the file system, [`VACUUM_STEP_PAGES`] at a
    /// time, with the write connection given back between steps so that results keep
    /// being written.
    async fn release_free_pages(&self, max: u64) -> Result<(), StoreError> {
        let mut last_count = u64::MAX;
        loop {
            let mut conn = self.write_connection().await?;
            let pages = self.pages(&mut conn).await?;
            let file = pages.count.saturating_mul(pages.size);
            // Done, or nothing left to release (the count stopped falling).
            if file <= max || pages.free == 0 || pages.count >= last_count {
                return Ok(());
            }
            last_count = pages.count;
            let step = (file - max).div_ceil(pages.size).min(VACUUM_STEP_PAGES);
            sqlx::query(&format!("PRAGMA incremental_vacuum({step})"))
                .execute(&mut *conn)
                .await
                .map_err(self.query_error("incremental vacuum"))?;
        }
    }
}

/// Pages one incremental vacuum returns at most (16 MiB of 4 KiB pages). The writer waits
/// for the write connection meanwhile: releasing 775 MB in one statement took 10 s.
const VACUUM_STEP_PAGES: u64 = 4096;

/// Page counts of the database file.
struct Pages {
    size: u64,
    count: u64,
    free: u64,
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

//! Bulk import of aggregates, for imports from another monitor, tests and benchmarks:
//! months of hourly rows for thousands of checks in seconds, without going through raw
//! results and compaction.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::error::StoreError;
use crate::read::{DailyAggregate, HourlyAggregate};
use crate::store::Store;
use crate::uptime::WATERMARK_KEY;
use pulsecheck_core::storage::encoding::{to_ms, DAY_MS, HOUR_MS};

/// Rows per statement. The values are integers written into the statement's text: one
/// statement per thousand rows costs a third of binding them one row at a time through
/// the driver, and half of unpacking a bound JSON array. (A PostgreSQL store would use
/// COPY.)
const ROWS_PER_STATEMENT: usize = 1_000;

const HOURLY_HEAD: &str = "INSERT INTO hourly (check_id, hour, count, up_count, mean_us, p50_us, p95_us, p99_us,
                             dns_us, connect_us, tls_us, ttfb_us, transfer_us) VALUES ";
const HOURLY_TAIL: &str = "
 ON CONFLICT (check_id, hour) DO UPDATE SET
     count = excluded.count, up_count = excluded.up_count, mean_us = excluded.mean_us,
     p50_us = excluded.p50_us, p95_us = excluded.p95_us, p99_us = excluded.p99_us,
     dns_us = excluded.dns_us, connect_us = excluded.connect_us, tls_us = excluded.tls_us,
     ttfb_us = excluded.ttfb_us, transfer_us = excluded.transfer_us";

const DAILY_HEAD: &str = "INSERT INTO daily (check_id, day, count, up_count, mean_us) VALUES ";
const DAILY_TAIL: &str = "
 ON CONFLICT (check_id, day) DO UPDATE SET
     count = excluded.count, up_count = excluded.up_count, mean_us = excluded.mean_us";

/// The daily rows of one check (`$1`) in `[$2, $3)` as the sums of its hourly rows; the
/// mean weighted by up runs, as compaction and migration 0002 compute it.
const DAILY_FROM_HOURLY_SQL: &str = "INSERT INTO daily (check_id, day, count, up_count, mean_us)
 SELECT check_id, hour - hour % $4, SUM(count), SUM(up_count),
        CAST(ROUND(SUM(mean_us * up_count) * 1.0
                   / NULLIF(SUM(CASE WHEN mean_us IS NOT NULL THEN up_count END), 0)) AS INTEGER)
 FROM hourly WHERE check_id = $1 AND hour >= $2 AND hour < $3
 GROUP BY check_id, hour - hour % $4
 ON CONFLICT (check_id, day) DO UPDATE SET
     count = excluded.count, up_count = excluded.up_count, mean_us = excluded.mean_us";

/// Fractional milliseconds as stored microseconds.
fn us(ms: Option<f64>) -> Option<i64> {
    ms.filter(|v| v.is_finite()).map(|v| (v * 1000.0).round() as i64)
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Appends one row of integers and NULLs to a VALUES list that starts after `head`.
fn push_row(sql: &mut String, head: usize, values: &[Option<i64>]) {
    if sql.len() > head {
        sql.push(',');
    }
    sql.push('(');
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        match value {
            Some(v) => {
                let _ = write!(sql, "{v}");
            }
            None => sql.push_str("NULL"),
        }
    }
    sql.push(')');
}

impl Store {
    /// Imports hourly aggregates (replacing rows of the same check and hour) in one
    /// write transaction, for imports, tests and benchmarks. Checks are numbered on
    /// first sight (they need no `checks` row). The aggregation watermark moves to the end
    /// of the newest imported hour: imported hours count as aggregated, so uptime and
    /// latency read them, and compaction does not aggregate raw results before it again.
    /// Every day the rows touch is summed again from its hourly rows into `daily` (as
    /// compaction keeps it). The rows are held in memory:
    /// import a large set in chunks of, say, 100,000 rows.
    pub async fn insert_hourly(&self, rows: &[HourlyAggregate]) -> Result<(), StoreError> {
        let Some(newest) = rows.iter().map(|r| to_ms(r.hour)).max() else {
            return Ok(());
        };
        let mut tx = self.begin_write().await?;
        self.check_ids().pending.clear();
        // The hours each check's rows span, to recompute its days from.
        let mut spans: HashMap<i64, (i64, i64)> = HashMap::new();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::with_capacity(HOURLY_HEAD.len() + HOURLY_TAIL.len() + chunk.len() * 64);
            sql.push_str(HOURLY_HEAD);
            for r in chunk {
                let id = self.check_id(&mut tx, &r.check).await?;
                let hour = to_ms(r.hour);
                let span = spans.entry(id).or_insert((hour, hour));
                *span = (span.0.min(hour), span.1.max(hour));
                push_row(
                    &mut sql,
                    HOURLY_HEAD.len(),
                    &[
                        Some(id),
                        Some(to_ms(r.hour)),
                        Some(count(r.count)),
                        Some(count(r.up_count)),
                        us(r.mean_ms),
                        us(r.p50_ms),
                        us(r.p95_ms),
                        us(r.p99_ms),
                        us(r.dns_ms),
                        us(r.connect_ms),
                        us(r.tls_ms),
                        us(r.ttfb_ms),
                        us(r.transfer_ms),
                    ],
                );
            }
            sql.push_str(HOURLY_TAIL);
            sqlx::raw_sql(&sql)
                .execute(&mut *tx)
                .await
                .map_err(self.query_error("import hourly aggregates"))?;
        }
        // Uptime reads whole days from daily rows where every hour is kept, so each day
        // touched is summed again from its hours (as compaction keeps them).
        for (id, (first, last)) in spans {
            sqlx::query(DAILY_FROM_HOURLY_SQL)
                .bind(id)
                .bind(first.div_euclid(DAY_MS) * DAY_MS)
                .bind((last.div_euclid(DAY_MS) + 1) * DAY_MS)
                .bind(DAY_MS)
                .execute(&mut *tx)
                .await
                .map_err(self.query_error("sum imported hours into days"))?;
        }
        sqlx::query(
            "INSERT INTO store_meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = MAX(store_meta.value, excluded.value)",
        )
        .bind(WATERMARK_KEY)
        .bind(newest.saturating_add(HOUR_MS))
        .execute(&mut *tx)
        .await
        .map_err(self.query_error("move the aggregation watermark"))?;
        self.commit_import(tx).await
    }

    /// Imports daily aggregates (replacing rows of the same check and day) in one write
    /// transaction, for imports, tests and benchmarks: days older than a check's oldest
    /// hourly row (a day that also has hourly rows must be their sum).
    pub async fn insert_daily(&self, rows: &[DailyAggregate]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        self.check_ids().pending.clear();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::with_capacity(DAILY_HEAD.len() + DAILY_TAIL.len() + chunk.len() * 32);
            sql.push_str(DAILY_HEAD);
            for r in chunk {
                let id = self.check_id(&mut tx, &r.check).await?;
                push_row(
                    &mut sql,
                    DAILY_HEAD.len(),
                    &[
                        Some(id),
                        Some(to_ms(r.day)),
                        Some(count(r.count)),
                        Some(count(r.up_count)),
                        us(r.mean_ms),
                    ],
                );
            }
            sql.push_str(DAILY_TAIL);
            sqlx::raw_sql(&sql)
                .execute(&mut *tx)
                .await
                .map_err(self.query_error("import daily aggregates"))?;
        }
        self.commit_import(tx).await
    }

    /// Commits, and keeps the check numbers the import assigned (as [`Store::write`]).
    async fn commit_import(&self, tx: sqlx::Transaction<'static, sqlx::Sqlite>) -> Result<(), StoreError> {
        tx.commit().await.map_err(self.query_error("commit"))?;
        let mut ids = self.check_ids();
        let pending = std::mem::take(&mut ids.pending);
        ids.committed.extend(pending);
        Ok(())
    }
}

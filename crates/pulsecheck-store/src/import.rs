//! Bulk import of aggregates, for imports from another monitor, tests and benchmarks:
//! months of hourly rows for thousands of checks in seconds, without going through raw
//! results and compaction.

use std::fmt::Write as _;

use sqlx::SqliteConnection;

use crate::error::StoreError;
use crate::read::{DailyAggregate, HourlyAggregate};
use crate::store::Store;
use crate::time::{to_ms, HOUR_MS};
use crate::uptime::WATERMARK_KEY;

/// Rows per INSERT statement: few statements, and well under SQLite's 32,766 parameters.
const ROWS_PER_STATEMENT: usize = 200;

const HOURLY_COLUMNS: usize = 13;
const DAILY_COLUMNS: usize = 5;

/// Binds and runs one chunk's statement on the import transaction.
type InsertChunk<T> = for<'c> fn(
    &'c Store,
    &'c mut SqliteConnection,
    &'c [T],
    &'c str,
) -> pulsecheck_core::outbox::BoxFuture<'c, Result<(), StoreError>>;

fn values_sql(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::from(head);
    sql.push_str(" VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            let sep = if column == 0 { "" } else { ", " };
            let _ = write!(sql, "{sep}${}", row * columns + column + 1);
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

fn hourly_sql(rows: usize) -> String {
    values_sql(
        "INSERT INTO hourly (check_id, hour, count, up_count, mean_us, p50_us, p95_us, p99_us,
                             dns_us, connect_us, tls_us, ttfb_us, transfer_us)",
        HOURLY_COLUMNS,
        rows,
        "ON CONFLICT (check_id, hour) DO UPDATE SET
             count = excluded.count, up_count = excluded.up_count, mean_us = excluded.mean_us,
             p50_us = excluded.p50_us, p95_us = excluded.p95_us, p99_us = excluded.p99_us,
             dns_us = excluded.dns_us, connect_us = excluded.connect_us, tls_us = excluded.tls_us,
             ttfb_us = excluded.ttfb_us, transfer_us = excluded.transfer_us",
    )
}

fn daily_sql(rows: usize) -> String {
    values_sql(
        "INSERT INTO daily (check_id, day, count, up_count, mean_us)",
        DAILY_COLUMNS,
        rows,
        "ON CONFLICT (check_id, day) DO UPDATE SET
             count = excluded.count, up_count = excluded.up_count, mean_us = excluded.mean_us",
    )
}

/// Fractional milliseconds as stored microseconds.
fn us(ms: Option<f64>) -> Option<i64> {
    ms.filter(|v| v.is_finite()).map(|v| (v * 1000.0).round() as i64)
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Imports hourly aggregates (replacing rows of the same check and hour) in one
    /// write transaction, for imports, tests and benchmarks. Checks are numbered on
    /// first sight (they need no `checks` row). The aggregation watermark moves to the end
    /// of the newest imported hour: imported hours count as aggregated, so uptime and
    /// latency read them, and compaction does not aggregate raw results before it again.
    /// Does not touch `daily` ([`Store::insert_daily`]). Call it with chunks of, say,
    /// 100,000 rows: the rows are held in memory.
    pub async fn insert_hourly(&self, rows: &[HourlyAggregate]) -> Result<(), StoreError> {
        let Some(newest) = rows.iter().map(|r| to_ms(r.hour)).max() else {
            return Ok(());
        };
        self.import(rows, ROWS_PER_STATEMENT, hourly_sql, |store, conn, chunk, sql| {
            Box::pin(async move {
                let mut query = sqlx::query(sql);
                for r in chunk {
                    let id = store.check_id(conn, &r.check).await?;
                    query = query
                        .bind(id)
                        .bind(to_ms(r.hour))
                        .bind(count(r.count))
                        .bind(count(r.up_count))
                        .bind(us(r.mean_ms))
                        .bind(us(r.p50_ms))
                        .bind(us(r.p95_ms))
                        .bind(us(r.p99_ms))
                        .bind(us(r.dns_ms))
                        .bind(us(r.connect_ms))
                        .bind(us(r.tls_ms))
                        .bind(us(r.ttfb_ms))
                        .bind(us(r.transfer_ms));
                }
                query
                    .execute(&mut *conn)
                    .await
                    .map_err(store.query_error("import hourly aggregates"))?;
                Ok(())
            })
        })
        .await?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO store_meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = MAX(store_meta.value, excluded.value)",
        )
        .bind(WATERMARK_KEY)
        .bind(newest.saturating_add(HOUR_MS))
        .execute(&mut *tx)
        .await
        .map_err(self.query_error("move the aggregation watermark"))?;
        tx.commit().await.map_err(self.query_error("commit"))
    }

    /// Imports daily aggregates (replacing rows of the same check and day) in one write
    /// transaction, for imports, tests and benchmarks: the 90-day bar and uptime of days
    /// older than a check's oldest hourly row.
    pub async fn insert_daily(&self, rows: &[DailyAggregate]) -> Result<(), StoreError> {
        self.import(rows, ROWS_PER_STATEMENT, daily_sql, |store, conn, chunk, sql| {
            Box::pin(async move {
                let mut query = sqlx::query(sql);
                for r in chunk {
                    let id = store.check_id(conn, &r.check).await?;
                    query = query
                        .bind(id)
                        .bind(to_ms(r.day))
                        .bind(count(r.count))
                        .bind(count(r.up_count))
                        .bind(us(r.mean_ms));
                }
                query
                    .execute(&mut *conn)
                    .await
                    .map_err(store.query_error("import daily aggregates"))?;
                Ok(())
            })
        })
        .await
    }

    /// Runs `insert` for each chunk of `rows` in one write transaction, with check
    /// numbers handled as [`Store::write`] does.
    async fn import<T>(
        &self,
        rows: &[T],
        per_statement: usize,
        sql: fn(usize) -> String,
        insert: InsertChunk<T>,
    ) -> Result<(), StoreError>
    where
        T: Sync,
    {
        let mut tx = self.begin_write().await?;
        self.check_ids().pending.clear();
        let full = sql(per_statement);
        for chunk in rows.chunks(per_statement) {
            let partial;
            let statement = if chunk.len() == per_statement {
                &full
            } else {
                partial = sql(chunk.len());
                &partial
            };
            insert(self, &mut tx, chunk, statement).await?;
        }
        tx.commit().await.map_err(self.query_error("commit"))?;
        let mut ids = self.check_ids();
        let pending = std::mem::take(&mut ids.pending);
        ids.committed.extend(pending);
        Ok(())
    }
}

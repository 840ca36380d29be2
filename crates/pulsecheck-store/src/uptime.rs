//! Runs and up runs of checks over windows, from three sources that never overlap: raw
//! results from the aggregation watermark on, hourly aggregates before it, and daily
//! aggregates for whole days older than a check's oldest hourly row. [`History`]'s
//! uptime, the console's batched uptimes and its daily bars all read the same
//! [`source_sql`], so they always agree.
//!
//! [`History`]: pulsecheck_core::storage::history::History

use std::fmt::Write as _;

use pulsecheck_core::storage::history::Uptime;

use crate::error::StoreError;
use crate::store::Store;
use crate::time::{to_ms, DAY_MS};

/// Where compaction has aggregated raw results up to (see `compact.rs`).
pub(crate) const WATERMARK_KEY: &str = "hourly_aggregated_through";

/// Parameters of [`source_sql`] before the check names.
const FIXED_PARAMS: usize = 5;

/// A CTE list ending in `src(pos, t, t_end, runs, up)`: one row per raw result, hourly
/// row or daily row of the checks named by parameters `$6..` (`pos` is the name's
/// position), in `[$2, $3)`. `$1` is the aggregation watermark, `$4` the end daily rows
/// must fit before, `$5` a day in milliseconds. A row belongs to a window `[since, until)`
/// when `t >= since AND t_end < until`: a raw result or an hour by its start, a day only
/// as a whole. Every source is read through its `(check_id, time)` key.
pub(crate) fn source_sql(checks: usize) -> String {
    let mut sql = String::from("WITH wanted(pos, name) AS (VALUES ");
    for i in 0..checks.max(1) {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(sql, "{sep}({i}, ${})", FIXED_PARAMS + 1 + i);
    }
    sql.push_str(
        "),
 ids AS (SELECT wanted.pos, k.id,
                (SELECT MIN(oh.hour) FROM hourly oh WHERE oh.check_id = k.id) AS oldest_hour
         FROM wanted JOIN check_ids k ON k.name = wanted.name),
 src(pos, t, t_end, runs, up) AS (
     SELECT ids.pos, r.started_at, r.started_at, 1, CASE WHEN r.kind & 3 = 0 THEN 1 ELSE 0 END
     FROM ids JOIN results r ON r.check_id = ids.id
     WHERE r.started_at >= MAX($2, $1) AND r.started_at < $3 AND r.kind & 3 <> 2
     UNION ALL
     SELECT ids.pos, h.hour, h.hour, h.count, h.up_count
     FROM ids JOIN hourly h ON h.check_id = ids.id
     WHERE h.hour >= $2 AND h.hour < MIN($3, $1)
     UNION ALL
     SELECT ids.pos, d.day, d.day + $5 - 1, d.count, d.up_count
     FROM ids JOIN daily d ON d.check_id = ids.id
     WHERE d.day >= $2 AND d.day + $5 <= MIN($4, $1, COALESCE(ids.oldest_hour, $1)))",
    );
    sql
}

/// Per check, runs and up runs of each window: two columns per window after `pos`.
fn uptimes_sql(checks: usize, windows: usize) -> String {
    let mut sql = source_sql(checks);
    sql.push_str("\nSELECT pos");
    for w in 0..windows {
        let since = FIXED_PARAMS + checks.max(1) + 2 * w + 1;
        let until = since + 1;
        let _ = write!(
            sql,
            ",\n SUM(CASE WHEN t >= ${since} AND t_end < ${until} THEN runs ELSE 0 END),\
             \n SUM(CASE WHEN t >= ${since} AND t_end < ${until} THEN up ELSE 0 END)"
        );
    }
    sql.push_str("\nFROM src GROUP BY pos");
    sql
}

/// The aggregation watermark as bound to [`source_sql`]'s `$1`.
pub(crate) async fn watermark(store: &Store) -> Result<i64, StoreError> {
    let watermark: Option<i64> = sqlx::query_scalar("SELECT value FROM store_meta WHERE key = $1")
        .bind(WATERMARK_KEY)
        .fetch_optional(&store.inner.read)
        .await
        .map_err(store.query_error("read aggregation watermark"))?;
    Ok(watermark.unwrap_or(i64::MIN))
}

impl Store {
    /// For each of `checks`, its runs and up runs over each of `windows` (`[since,
    /// until)`), in the same order; a check the store never knew has none. One query
    /// for all of them.
    pub async fn uptimes_between(
        &self,
        checks: &[String],
        windows: &[(jiff::Timestamp, jiff::Timestamp)],
    ) -> Result<Vec<Vec<Uptime>>, StoreError> {
        let mut out = vec![vec![Uptime::default(); windows.len()]; checks.len()];
        if checks.is_empty() || windows.is_empty() {
            return Ok(out);
        }
        let watermark = watermark(self).await?;
        let windows_ms: Vec<(i64, i64)> = windows.iter().map(|(s, u)| (to_ms(*s), to_ms(*u))).collect();
        let lo = windows_ms.iter().map(|w| w.0).min().unwrap_or(0);
        let hi = windows_ms.iter().map(|w| w.1).max().unwrap_or(0);
        // SQLite allows 32,766 parameters; larger batches go in several queries.
        const CHECKS_PER_QUERY: usize = 500;
        for (chunk_index, chunk) in checks.chunks(CHECKS_PER_QUERY).enumerate() {
            let sql = uptimes_sql(chunk.len(), windows.len());
            let mut query = sqlx::query(&sql)
                .bind(watermark)
                .bind(lo)
                .bind(hi)
                .bind(hi)
                .bind(DAY_MS);
            for name in chunk {
                query = query.bind(name);
            }
            for (since, until) in &windows_ms {
                query = query.bind(since).bind(until);
            }
            let rows = query
                .fetch_all(&self.inner.read)
                .await
                .map_err(self.query_error("read uptimes"))?;
            for row in &rows {
                use sqlx::Row;
                let pos: i64 = row.try_get(0).map_err(self.query_error("pos"))?;
                let Some(cells) = usize::try_from(pos)
                    .ok()
                    .and_then(|p| out.get_mut(chunk_index * CHECKS_PER_QUERY + p))
                else {
                    continue;
                };
                for (w, cell) in cells.iter_mut().enumerate() {
                    let runs: i64 = row.try_get(1 + 2 * w).map_err(self.query_error("uptime runs"))?;
                    let up: i64 = row.try_get(2 + 2 * w).map_err(self.query_error("uptime up"))?;
                    *cell = Uptime {
                        runs: u64::try_from(runs).unwrap_or(0),
                        up: u64::try_from(up).unwrap_or(0),
                    };
                }
            }
        }
        Ok(out)
    }

    /// `(name, sql)` of the uptime reads, for the query-plan test.
    pub(crate) fn uptime_sql_for_plans() -> Vec<(&'static str, String, usize)> {
        vec![
            ("uptime", uptimes_sql(1, 1), FIXED_PARAMS + 2),
            ("uptimes of a page", uptimes_sql(3, 4), FIXED_PARAMS + 3 + 8),
        ]
    }
}

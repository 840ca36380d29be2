//! Runs and up runs of checks over windows, from sources that never overlap: raw results
//! from the aggregation watermark on, hourly aggregates before it, and daily aggregates
//! for whole days older than a check's oldest hourly row.
//!
//! [`History`]'s uptime and the console's batched uptimes share [`Store::uptimes_between`].
//! It reads whole days inside a window from the daily rows even where the hourly rows
//! are still kept: compaction adds every aggregated hour to its day in the same
//! transaction (and [`Store::insert_hourly`] recomputes the days it touches; retention
//! keeps a day's row as long as its hours), so a day whose hours are all kept sums to its
//! daily row, and a 90-day window reads about 90
//! daily rows and a few dozen hourly ones instead of 2,160 hourly rows. The daily bars
//! (`Store::daily_uptimes`) read daily rows the same way.
//!
//! [`History`]: pulsecheck_core::storage::history::History

use std::fmt::Write as _;

use pulsecheck_core::storage::history::Uptime;

use crate::error::StoreError;
use crate::store::Store;
use pulsecheck_core::storage::aggregate::{WindowBounds, TIME_LIMIT};
use pulsecheck_core::storage::encoding::{to_ms, DAY_MS};
use pulsecheck_core::storage::rows;

/// Where compaction has aggregated raw results up to (see `compact.rs`).
pub(crate) const WATERMARK_KEY: &str = "hourly_aggregated_through";

/// Parameters bound before the check names: the watermark and a day.
const FIXED_PARAMS: usize = 2;
/// Parameters bound per window ([`WindowBounds`]).
const WINDOW_PARAMS: usize = 6;

/// Per check: `pos`, then per window five `"runs up"` texts (NULL when empty): raw, first
/// partial day, whole days, the oldest hour's day, last partial day. Each is a sum over
/// one key range; the sums are added up in Rust.
fn uptimes_sql(checks: usize, windows: usize) -> String {
    let mut sql = String::from("WITH wanted(pos, name) AS (VALUES ");
    for i in 0..checks.max(1) {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(sql, "{sep}({i}, ${})", FIXED_PARAMS + 1 + i);
    }
    // The oldest hourly row once per check, not once per window.
    sql.push_str(
        "),
 ids AS MATERIALIZED (
     SELECT wanted.pos, k.id, COALESCE((SELECT MIN(oh.hour) FROM hourly oh WHERE oh.check_id = k.id), $1) AS o
     FROM wanted JOIN check_ids k ON k.name = wanted.name)
SELECT ids.pos",
    );
    for w in 0..windows.max(1) {
        let p = |i: usize| FIXED_PARAMS + checks.max(1) + WINDOW_PARAMS * w + i + 1;
        let (raw_start, until, since, lead_end, mid_start, mid_end) = (p(0), p(1), p(2), p(3), p(4), p(5));
        let _ = write!(
            sql,
            ",
 (SELECT COUNT(*) || ' ' || SUM(CASE WHEN r.kind & 3 = 0 THEN 1 ELSE 0 END) FROM results r
   WHERE r.check_id = ids.id AND r.started_at >= ${raw_start} AND r.started_at < ${until} AND r.kind & 3 <> 2),
 (SELECT SUM(h.count) || ' ' || SUM(h.up_count) FROM hourly h
   WHERE h.check_id = ids.id AND h.hour >= ${since} AND h.hour < ${lead_end}),
 (SELECT SUM(d.count) || ' ' || SUM(d.up_count) FROM daily d
   WHERE d.check_id = ids.id AND d.day >= ${mid_start} AND d.day < ${mid_end}
     AND NOT (d.day < ids.o AND d.day + $2 > ids.o)),
 (SELECT SUM(h.count) || ' ' || SUM(h.up_count) FROM hourly h
   WHERE h.check_id = ids.id AND ids.o % $2 <> 0
     AND h.hour >= MAX(ids.o, ${mid_start}) AND h.hour < MIN(ids.o - ids.o % $2 + $2, ${mid_end})),
 (SELECT SUM(h.count) || ' ' || SUM(h.up_count) FROM hourly h
   WHERE h.check_id = ids.id AND h.hour >= MAX(${mid_end}, ${since}) AND h.hour < MIN(${until}, $1))"
        );
    }
    sql.push_str("\nFROM ids");
    sql
}

/// Columns per window in [`uptimes_sql`]'s rows.
const PARTS: usize = 5;

/// The aggregation watermark: raw results before it are in the hourly and daily rows.
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
    /// per 500 checks.
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
        let bounds: Vec<[i64; WINDOW_PARAMS]> = windows
            .iter()
            .map(|(s, u)| WindowBounds::new(to_ms(*s), to_ms(*u), watermark).params())
            .collect();
        // SQLite allows 32,766 parameters; larger batches go in several queries.
        const CHECKS_PER_QUERY: usize = 500;
        for (chunk_index, chunk) in checks.chunks(CHECKS_PER_QUERY).enumerate() {
            let sql = uptimes_sql(chunk.len(), windows.len());
            let mut query = sqlx::query(&sql)
                .bind(watermark.clamp(-TIME_LIMIT, TIME_LIMIT))
                .bind(DAY_MS);
            for name in chunk {
                query = query.bind(name);
            }
            for window in &bounds {
                for value in window {
                    query = query.bind(*value);
                }
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
                    let parts = (0..PARTS)
                        .map(|part| row.try_get::<Option<String>, _>(1 + PARTS * w + part))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(self.query_error("uptime part"))?;
                    *cell = rows::uptime_of_parts(parts).map_err(|e| self.row_error(e))?;
                }
            }
        }
        Ok(out)
    }

    /// `(name, sql, parameters)` of the uptime reads, for the query-plan test.
    pub(crate) fn uptime_sql_for_plans() -> Vec<(&'static str, String, usize)> {
        vec![
            ("uptime", uptimes_sql(1, 1), FIXED_PARAMS + 1 + WINDOW_PARAMS),
            (
                "uptimes of a page",
                uptimes_sql(3, 4),
                FIXED_PARAMS + 3 + 4 * WINDOW_PARAMS,
            ),
        ]
    }
}

//! Reads of the past for [`History`](pulsecheck_core::storage::History): a check's results page by page, down spans page
//! by page, uptime over a window. Every query walks a primary key or an index: results
//! and aggregates by `(check_id, time)`, incidents by id or `(check_name, started_at)`.

use pulsecheck_core::storage::history::{DownSpan, RecordedResult, ResultPage, SpanPage, Uptime};
use sqlx::sqlite::SqliteRow;

use crate::codes;
use crate::error::StoreError;
use crate::read::limit_i64;
use crate::store::Store;
use pulsecheck_core::storage::encoding::to_ms;
use pulsecheck_core::storage::rows::{self, Columns, RowError};

const RESULT_PAGE_SQL: &str = "SELECT r.started_at, r.kind, r.error, r.http_status, r.duration_us, r.queue_us,
        CASE typeof(r.phases) WHEN 'blob' THEN r.phases END AS phases,
        CASE typeof(r.phases) WHEN 'text' THEN r.phases END AS phases_text,
        CASE typeof(r.ip) WHEN 'blob' THEN r.ip END AS ip,
        CASE typeof(r.ip) WHEN 'text' THEN r.ip END AS ip_text,
        CASE typeof(r.http_version) WHEN 'integer' THEN r.http_version END AS http_version,
        CASE typeof(r.http_version) WHEN 'integer' THEN NULL
             ELSE CAST(r.http_version AS TEXT) END AS http_version_text,
        r.redirects, r.cert_days_left
 FROM check_ids c JOIN results r ON r.check_id = c.id
 WHERE c.name = $1 AND r.started_at < $2
 ORDER BY r.started_at DESC LIMIT $3";

// Two statements so that each uses its index: by check, or by id for all checks.
const SPANS_OF_CHECK_SQL: &str = "SELECT i.id, i.check_name, i.started_at, i.ended_at, i.acknowledged_at, t.cause
             FROM incidents i LEFT JOIN transitions t ON t.id = i.opened_by
             WHERE i.check_name = $1 AND i.id < $2
             ORDER BY i.started_at DESC, i.id DESC LIMIT $3";
const SPANS_OF_ALL_SQL: &str = "SELECT i.id, i.check_name, i.started_at, i.ended_at, i.acknowledged_at, t.cause
             FROM incidents i LEFT JOIN transitions t ON t.id = i.opened_by
             WHERE $1 IS NULL AND i.id < $2
             ORDER BY i.id DESC LIMIT $3";
const SPAN_BY_ID_SQL: &str = "SELECT i.id, i.check_name, i.started_at, i.ended_at, i.acknowledged_at, t.cause
             FROM incidents i LEFT JOIN transitions t ON t.id = i.opened_by
             WHERE i.id = $1";

impl Store {
    /// A page of one check's results, newest first ([`ResultPage`]).
    pub async fn result_page(&self, check: &str, page: ResultPage) -> Result<Vec<RecordedResult>, StoreError> {
        let before = page.before.map_or(i64::MAX, to_ms);
        let rows = sqlx::query(RESULT_PAGE_SQL)
            .bind(check)
            .bind(before)
            .bind(limit_i64(page.limit))
            .fetch_all(&self.inner.read)
            .await
            .map_err(self.query_error("read results"))?;
        rows.iter().map(|row| self.recorded_result(check, row)).collect()
    }

    /// Core's decoding, then what only SQLite has: rows converted from schema 1 keep
    /// their phases (`phases_text`) and address (`ip_text`) as text.
    fn recorded_result(&self, check: &str, row: &SqliteRow) -> Result<RecordedResult, StoreError> {
        self.decode(row, |r| {
            let mut result = rows::recorded_result(r, check)?;
            if let Some(text) = r.text("phases_text")? {
                let phases = codes::parse_phases_text(&text).ok_or_else(|| RowError::Corrupt {
                    context: "decode result phases",
                    detail: format!("started at {}", result.id),
                })?;
                rows::set_phases(&mut result, &phases);
            }
            if let Some(ip) = r.text("ip_text")? {
                result.ip = Some(ip);
            }
            Ok(result)
        })
    }

    /// A page of down spans, newest first ([`SpanPage`]), each with the cause of the
    /// transition that opened it.
    pub async fn down_span_page(&self, page: &SpanPage) -> Result<Vec<DownSpan>, StoreError> {
        Ok(self.span_rows(page).await?.into_iter().map(|(span, _)| span).collect())
    }

    /// [`Store::down_span_page`] with each span's acknowledgement (unix ms).
    pub(crate) async fn span_rows(&self, page: &SpanPage) -> Result<Vec<(DownSpan, Option<i64>)>, StoreError> {
        let sql = if page.check.is_some() {
            SPANS_OF_CHECK_SQL
        } else {
            SPANS_OF_ALL_SQL
        };
        let rows = sqlx::query(sql)
            .bind(page.check.as_deref())
            .bind(page.before_id.unwrap_or(i64::MAX))
            .bind(limit_i64(page.limit))
            .fetch_all(&self.inner.read)
            .await
            .map_err(self.query_error("read incidents"))?;
        rows.iter().map(|row| self.span_row(row)).collect()
    }

    /// One down span by id with its acknowledgement.
    pub(crate) async fn span_by_id(
        &self,
        id: i64,
        conn: &mut sqlx::SqliteConnection,
    ) -> Result<Option<(DownSpan, Option<i64>)>, StoreError> {
        let row = sqlx::query(SPAN_BY_ID_SQL)
            .bind(id)
            .fetch_optional(conn)
            .await
            .map_err(self.query_error("read an incident"))?;
        row.as_ref().map(|row| self.span_row(row)).transpose()
    }

    fn span_row(&self, row: &SqliteRow) -> Result<(DownSpan, Option<i64>), StoreError> {
        self.decode(row, rows::down_span)
    }

    /// Up and counted runs of one check that started in `[since, until)`: raw results
    /// from the aggregation watermark on, hourly aggregates before it, and daily
    /// aggregates for whole days older than the oldest hourly row. Cancelled runs are
    /// not counted, in the aggregates as here.
    pub async fn uptime_between(
        &self,
        check: &str,
        since: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> Result<Uptime, StoreError> {
        let checks = [check.to_owned()];
        let uptimes = self.uptimes_between(&checks, &[(since, until)]).await?;
        Ok(uptimes
            .first()
            .and_then(|windows| windows.first())
            .copied()
            .unwrap_or_default())
    }
}

impl Store {
    /// `EXPLAIN QUERY PLAN` of every history read, as `(name, plan)`: the tests check
    /// that none scans a whole table.
    #[doc(hidden)]
    pub async fn history_query_plans(&self) -> Result<Vec<(&'static str, String)>, StoreError> {
        let mut queries: Vec<(&'static str, String, usize)> = vec![
            ("results", RESULT_PAGE_SQL.to_owned(), 3),
            ("spans of a check", SPANS_OF_CHECK_SQL.to_owned(), 3),
            ("spans of all", SPANS_OF_ALL_SQL.to_owned(), 3),
            ("span by id", SPAN_BY_ID_SQL.to_owned(), 1),
        ];
        queries.extend(Store::uptime_sql_for_plans());
        self.explain_all(&queries).await
    }

    /// `EXPLAIN QUERY PLAN` of each `(name, sql, parameters)`, every parameter bound to
    /// 0 (plans do not depend on the values).
    pub(crate) async fn explain_all(
        &self,
        queries: &[(&'static str, String, usize)],
    ) -> Result<Vec<(&'static str, String)>, StoreError> {
        let mut plans = Vec::new();
        for (name, sql, parameters) in queries {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain);
            for _ in 0..*parameters {
                query = query.bind(0_i64);
            }
            let rows = query
                .fetch_all(&self.inner.read)
                .await
                .map_err(self.query_error("explain a query"))?;
            plans.push((*name, rows.into_iter().map(|row| row.3).collect::<Vec<_>>().join("\n")));
        }
        Ok(plans)
    }
}

// The History trait is the inherent methods above.
pulsecheck_core::impl_history!(Store);

//! Reads of the past for [`History`](pulsecheck_core::storage::History) (as in the SQLite store): a check's results page by page, down spans page
//! by page, uptime over a window. Every query walks a primary key or an index: results
//! and aggregates by `(check_id, time)`, incidents by id or `(check_name, started_at)`.

use pulsecheck_core::storage::history::{DownSpan, RecordedResult, ResultPage, SpanPage, Uptime};
use sqlx::postgres::PgRow;

use crate::error::PgError;
use crate::read::limit_i64;
use crate::store::PgStore;
use pulsecheck_core::storage::encoding::to_ms;
use pulsecheck_core::storage::rows;

pub(crate) const RESULT_PAGE_SQL: &str =
    "SELECT r.started_at, r.kind, r.error, r.http_status, r.duration_us, r.queue_us,
        r.phases, r.ip, r.http_version, r.http_version_text,
        r.redirects, r.cert_days_left
 FROM check_ids c JOIN results r ON r.check_id = c.id
 WHERE c.name = $1 AND r.started_at < $2
 ORDER BY r.started_at DESC LIMIT $3";

// Two statements so that each uses its index: by check, or by id for all checks.
pub(crate) const SPANS_OF_CHECK_SQL: &str =
    "SELECT i.id, i.check_name, i.started_at, i.ended_at, i.acknowledged_at, t.cause
             FROM incidents i LEFT JOIN transitions t ON t.id = i.opened_by
             WHERE i.check_name = $1 AND i.id < $2
             ORDER BY i.started_at DESC, i.id DESC LIMIT $3";
pub(crate) const SPANS_OF_ALL_SQL: &str =
    "SELECT i.id, i.check_name, i.started_at, i.ended_at, i.acknowledged_at, t.cause
             FROM incidents i LEFT JOIN transitions t ON t.id = i.opened_by
             WHERE $1 IS NULL AND i.id < $2
             ORDER BY i.id DESC LIMIT $3";
pub(crate) const SPAN_BY_ID_SQL: &str =
    "SELECT i.id, i.check_name, i.started_at, i.ended_at, i.acknowledged_at, t.cause
             FROM incidents i LEFT JOIN transitions t ON t.id = i.opened_by
             WHERE i.id = $1";

impl PgStore {
    /// A page of one check's results, newest first ([`ResultPage`]).
    pub async fn result_page(&self, check: &str, page: ResultPage) -> Result<Vec<RecordedResult>, PgError> {
        let before = page.before.map_or(i64::MAX, to_ms);
        let rows = sqlx::query(RESULT_PAGE_SQL)
            .bind(check)
            .bind(before)
            .bind(limit_i64(page.limit))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.query_error("read results"))?;
        rows.iter().map(|row| self.recorded_result(check, row)).collect()
    }

    fn recorded_result(&self, check: &str, row: &PgRow) -> Result<RecordedResult, PgError> {
        self.decode(row, |r| rows::recorded_result(r, check))
    }

    /// A page of down spans, newest first ([`SpanPage`]), each with the cause of the
    /// transition that opened it.
    pub async fn down_span_page(&self, page: &SpanPage) -> Result<Vec<DownSpan>, PgError> {
        Ok(self.span_rows(page).await?.into_iter().map(|(span, _)| span).collect())
    }

    /// [`PgStore::down_span_page`] with each span's acknowledgement (unix ms).
    pub(crate) async fn span_rows(&self, page: &SpanPage) -> Result<Vec<(DownSpan, Option<i64>)>, PgError> {
        let sql = if page.check.is_some() {
            SPANS_OF_CHECK_SQL
        } else {
            SPANS_OF_ALL_SQL
        };
        let rows = sqlx::query(sql)
            .bind(page.check.as_deref())
            .bind(page.before_id.unwrap_or(i64::MAX))
            .bind(limit_i64(page.limit))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.query_error("read incidents"))?;
        rows.iter().map(|row| self.span_row(row)).collect()
    }

    /// One down span by id with its acknowledgement.
    pub(crate) async fn span_by_id(
        &self,
        id: i64,
        conn: &mut sqlx::PgConnection,
    ) -> Result<Option<(DownSpan, Option<i64>)>, PgError> {
        let row = sqlx::query(SPAN_BY_ID_SQL)
            .bind(id)
            .fetch_optional(conn)
            .await
            .map_err(self.query_error("read an incident"))?;
        row.as_ref().map(|row| self.span_row(row)).transpose()
    }

    fn span_row(&self, row: &PgRow) -> Result<(DownSpan, Option<i64>), PgError> {
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
    ) -> Result<Uptime, PgError> {
        let checks = [check.to_owned()];
        let uptimes = self.uptimes_between(&checks, &[(since, until)]).await?;
        Ok(uptimes
            .first()
            .and_then(|windows| windows.first())
            .copied()
            .unwrap_or_default())
    }
}

// The History trait is the inherent methods above.
pulsecheck_core::impl_history!(PgStore);

//! Reads of the past for [`History`]: a check's results page by page, down spans page
//! by page, uptime over a window. Every query walks a primary key or an index: results
//! and aggregates by `(check_id, time)`, incidents by id or `(check_name, started_at)`.

use pulsecheck_core::outbox::{BoxFuture, CauseResult};
use pulsecheck_core::storage::history::{DownSpan, History, RecordedResult, ResultPage, SpanPage, Uptime};
use pulsecheck_core::storage::StorageError;
use sqlx::sqlite::SqliteRow;

use crate::codes;
use crate::error::StoreError;
use crate::read::limit_i64;
use crate::store::Store;
use pulsecheck_core::storage::encoding::{from_ms, to_ms, us_to_ms};

const RESULT_PAGE_SQL: &str = "SELECT r.started_at, r.kind, r.error, r.http_status, r.duration_us, r.queue_us,
        CASE typeof(r.phases) WHEN 'blob' THEN r.phases END AS phases_bytes,
        CASE typeof(r.phases) WHEN 'text' THEN r.phases END AS phases_text,
        CASE typeof(r.ip) WHEN 'blob' THEN r.ip END AS ip_bytes,
        CASE typeof(r.ip) WHEN 'text' THEN r.ip END AS ip_text,
        CASE typeof(r.http_version) WHEN 'integer' THEN r.http_version END AS http_version_code,
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

    fn recorded_result(&self, check: &str, row: &SqliteRow) -> Result<RecordedResult, StoreError> {
        let started_at: i64 = self.get(row, "started_at")?;
        let kind: i64 = self.get(row, "kind")?;
        let (outcome, probe, reason) =
            codes::parse_kind(kind).ok_or_else(|| self.corrupt("decode result kind", format!("code {kind}")))?;
        let phases = match self.get::<Option<Vec<u8>>>(row, "phases_bytes")? {
            Some(bytes) => codes::decode_phases(&bytes),
            None => match self.get::<Option<String>>(row, "phases_text")? {
                Some(text) => codes::parse_phases_text(&text),
                None => Some([None; 6]),
            },
        }
        .ok_or_else(|| self.corrupt("decode result phases", format!("started at {started_at}")))?
        .map(|phase| phase.map(us_to_ms));
        let ip = match self.get::<Option<Vec<u8>>>(row, "ip_bytes")? {
            Some(bytes) => codes::parse_ip(&bytes).map(|ip| ip.to_string()),
            None => self.get(row, "ip_text")?,
        };
        let http_version = match self.get::<Option<i64>>(row, "http_version_code")? {
            Some(code) => codes::http_version_name(code).map(str::to_owned),
            None => self.get(row, "http_version_text")?,
        };
        Ok(RecordedResult {
            id: started_at,
            check: check.to_owned(),
            started_at: from_ms(started_at),
            outcome,
            reason,
            error: self.get(row, "error")?,
            probe: codes::probe_name(probe)
                .ok_or_else(|| self.corrupt("decode probe", format!("code {probe}")))?
                .to_owned(),
            http_status: self
                .get::<Option<i64>>(row, "http_status")?
                .and_then(|s| u16::try_from(s).ok()),
            duration_ms: us_to_ms(self.get(row, "duration_us")?),
            queue_ms: us_to_ms(self.get(row, "queue_us")?),
            dns_ms: phases[0],
            connect_ms: phases[1],
            tls_ms: phases[2],
            ttfb_ms: phases[3],
            transfer_ms: phases[4],
            rtt_ms: phases[5],
            ip,
            http_version,
            redirects: u32::try_from(self.get::<i64>(row, "redirects")?).unwrap_or(u32::MAX),
            cert_days_left: self.get(row, "cert_days_left")?,
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
        let id: i64 = self.get(row, "id")?;
        let cause: Vec<CauseResult> = match self.get::<Option<String>>(row, "cause")? {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| self.corrupt("decode transition cause", format!("incident {id}: {e}")))?,
            None => Vec::new(),
        };
        let last = cause.last();
        let span = DownSpan {
            id,
            check: self.get(row, "check_name")?,
            started_at: from_ms(self.get(row, "started_at")?),
            ended_at: self.get::<Option<i64>>(row, "ended_at")?.map(from_ms),
            reason: last.and_then(|c| c.reason),
            error: last.and_then(|c| c.error.clone()),
        };
        Ok((span, self.get(row, "acknowledged_at")?))
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

fn storage_error(error: StoreError) -> StorageError {
    StorageError::from(error)
}

impl History for Store {
    fn recent_results<'a>(
        &'a self,
        check: &'a str,
        page: ResultPage,
    ) -> BoxFuture<'a, Result<Vec<RecordedResult>, StorageError>> {
        Box::pin(async move { self.result_page(check, page).await.map_err(storage_error) })
    }

    fn down_spans<'a>(&'a self, page: &'a SpanPage) -> BoxFuture<'a, Result<Vec<DownSpan>, StorageError>> {
        Box::pin(async move { self.down_span_page(page).await.map_err(storage_error) })
    }

    fn uptime<'a>(
        &'a self,
        check: &'a str,
        since: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Uptime, StorageError>> {
        Box::pin(async move { self.uptime_between(check, since, until).await.map_err(storage_error) })
    }
}

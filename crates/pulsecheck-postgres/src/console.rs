//! [`Console`](pulsecheck_core::storage::Console) for the PostgreSQL store: the check
//! list and its counts, uptime over several windows, daily bars, latency, incidents
//! with operators' updates, the outbox, and the operator's writes (API checks, incident
//! updates and acknowledgements, silences, redelivery), each a short transaction on the
//! pool. Rows are decoded by `pulsecheck_core::storage::rows`, as in SQLite.

use std::collections::HashMap;
use std::fmt::Write as _;

use pulsecheck_core::outbox::BoxFuture;
use pulsecheck_core::storage::console::{
    ApiCheck, CheckPage, CheckSummary, DayUptime, GroupCounts, IncidentRecord, IncidentStatus, IncidentUpdate,
    NotificationRecord, OutboxPage, Silence,
};
use pulsecheck_core::storage::history::{DownSpan, SpanPage};
use pulsecheck_core::storage::StorageError;
use sqlx::postgres::PgRow;

use crate::error::PgError;
use crate::read::limit_i64;
use crate::store::PgStore;
use crate::uptime::watermark;
use pulsecheck_core::storage::encoding::{from_ms, to_ms, DAY_MS};
use pulsecheck_core::storage::rows::{self, delivery_state_str};

pub(crate) use pulsecheck_core::storage::rows::origin_str;

/// A check's row with its open incident, silence (`$1` is now) and outbox counts, each
/// an indexed lookup: `incidents_open`, the `silences` key, `notifications_pending` and
/// `notifications_dead`.
pub(crate) const SUMMARY_SELECT: &str = "SELECT c.name, c.check_group, c.target, c.origin, c.active, c.state, c.since,
        c.last_result_at, c.last_outcome, c.last_reason, c.last_error, c.last_duration_ms,
        (SELECT i.id FROM incidents i WHERE i.check_name = c.name AND i.ended_at IS NULL) AS open_incident,
        (SELECT s.until FROM silences s WHERE s.check_name = c.name AND s.until > $1) AS silenced_until,
        (SELECT COUNT(*) FROM notifications n WHERE n.check_name = c.name AND n.state = 'pending') AS pending,
        (SELECT COUNT(*) FROM notifications n WHERE n.check_name = c.name AND n.state = 'dead') AS dead
 FROM checks c";

pub(crate) const GROUP_COUNTS_SQL: &str = "SELECT check_group, state, COUNT(*) AS n FROM checks
 WHERE active = 1 GROUP BY check_group, state ORDER BY check_group NULLS FIRST";

const UPDATE_COLUMNS: &str = "SELECT id, incident_id, at, status, message FROM incident_updates";

const NOTIFICATION_COLUMNS: &str = "SELECT id, check_name, channel, idempotency_key, kind, event, transition_id,
        state, attempts, created_at, next_attempt_at, delivered_at, last_error
 FROM notifications";

/// Placeholders bound per `IN (...)` list.
const IDS_PER_QUERY: usize = 500;

/// The check page's statement: filters as SQL (enum values as literals, so that the
/// partial index on API checks applies), `$1` now, then the bound values in order.
pub(crate) fn check_page_sql(page: &CheckPage) -> (String, Vec<String>) {
    let mut sql = format!("{SUMMARY_SELECT} WHERE 1 = 1");
    let mut binds = Vec::new();
    if let Some(after) = &page.after {
        binds.push(after.clone());
        let _ = write!(sql, " AND c.name > ${}", binds.len() + 1);
    }
    if let Some(group) = &page.filter.group {
        binds.push(group.clone());
        let _ = write!(sql, " AND c.check_group = ${}", binds.len() + 1);
    }
    if let Some(state) = page.filter.state {
        let _ = write!(sql, " AND c.state = '{}'", state.as_str());
    }
    if let Some(origin) = page.filter.origin {
        let _ = write!(sql, " AND c.origin = '{}'", origin_str(origin));
    }
    if !page.filter.include_retired {
        sql.push_str(" AND c.active = 1");
    }
    let _ = write!(sql, " ORDER BY c.name LIMIT ${}", binds.len() + 2);
    (sql, binds)
}

pub(crate) fn outbox_page_sql(page: &OutboxPage) -> String {
    let mut sql = format!("{NOTIFICATION_COLUMNS} WHERE id < $1");
    if page.check.is_some() {
        sql.push_str(" AND check_name = $2");
    } else {
        sql.push_str(" AND $2 IS NULL");
    }
    if let Some(state) = page.state {
        let _ = write!(sql, " AND state = '{}'", delivery_state_str(state));
    }
    sql.push_str(" ORDER BY id DESC LIMIT $3");
    sql
}

/// Runs and up runs by UTC day of each check named from `$8` on, one row per check with
/// its days as `"day runs up"` texts joined by commas: a page of 50 checks is 50 rows, not
/// 4,500 (each row costs more to hand over than to read). Compaction adds every hour it
/// aggregates to its day's row, so a daily row holds exactly the day's runs before the
/// aggregation watermark (`$1`), whether or not the hours are still kept: a bar is that
/// row plus the raw results from the watermark on, about 90 rows for 90 days instead of
/// 2,160 hourly ones. Daily rows are read for days in `[$2, $4)`; when the window ends
/// before the watermark inside a day, `$4` is that day's start and the day is read from
/// its hours. `$5` is a day in milliseconds, `$7` the window's end (`$3`, `$6` unused).
pub(crate) fn daily_uptimes_sql() -> String {
    String::from(
        "WITH wanted AS MATERIALIZED (SELECT id, name FROM check_ids WHERE name = ANY($8)),
         src AS (
             SELECT d.check_id AS cid, d.day AS day, d.count AS runs, d.up_count AS up
             FROM wanted JOIN daily d ON d.check_id = wanted.id
             WHERE d.day >= $2 AND d.day < $4
             UNION ALL
             SELECT h.check_id, h.hour - (h.hour % $5), h.count, h.up_count
             FROM wanted JOIN hourly h ON h.check_id = wanted.id
             WHERE h.hour >= $4 AND h.hour < LEAST($7, $1)
             UNION ALL
             SELECT r.check_id, r.started_at - (r.started_at % $5), 1, CASE WHEN r.kind & 3 = 0 THEN 1 ELSE 0 END
             FROM wanted JOIN results r ON r.check_id = wanted.id
             WHERE r.started_at >= GREATEST($2, $1) AND r.started_at < $7 AND r.kind & 3 <> 2),
         days AS (SELECT cid, day, SUM(runs) AS runs, SUM(up) AS up FROM src GROUP BY cid, day)
         SELECT wanted.name, string_agg(days.day || ' ' || days.runs || ' ' || days.up, ',') AS days
         FROM days JOIN wanted ON wanted.id = days.cid
         GROUP BY wanted.name",
    )
}

impl PgStore {
    /// A page of checks ordered by name ([`CheckPage`]).
    pub async fn check_summaries(&self, page: &CheckPage) -> Result<Vec<CheckSummary>, PgError> {
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let (sql, binds) = check_page_sql(page);
        let mut query = sqlx::query(&sql).bind(to_ms(jiff::Timestamp::now()));
        for value in &binds {
            query = query.bind(value);
        }
        let rows = query
            .bind(limit_i64(page.limit))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.query_error("read a page of checks"))?;
        rows.iter().map(|row| self.summary(row)).collect()
    }

    /// One check, active or retired.
    pub async fn check_summary_of(&self, name: &str) -> Result<Option<CheckSummary>, PgError> {
        let sql = format!("{SUMMARY_SELECT} WHERE c.name = $2");
        let row = sqlx::query(&sql)
            .bind(to_ms(jiff::Timestamp::now()))
            .bind(name)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(self.query_error("read a check"))?;
        row.as_ref().map(|row| self.summary(row)).transpose()
    }

    fn summary(&self, row: &PgRow) -> Result<CheckSummary, PgError> {
        self.decode(row, rows::check_summary)
    }

    /// Active checks by group and state, no group first.
    pub async fn group_state_counts(&self) -> Result<Vec<GroupCounts>, PgError> {
        let rows: Vec<(Option<String>, String, i64)> = sqlx::query_as(GROUP_COUNTS_SQL)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.query_error("count checks by group"))?;
        rows::group_counts(rows).map_err(|e| self.row_error(e))
    }

    /// For each of `checks` (same order), one entry per UTC day in `[since, until)` with
    /// runs, oldest first, from the same rows as uptime (so the bars add up to the uptime
    /// of whole days). One query per 500 checks.
    pub async fn daily_uptimes_of(
        &self,
        checks: &[String],
        since: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> Result<Vec<Vec<DayUptime>>, PgError> {
        let lo = to_ms(since).div_euclid(DAY_MS) * DAY_MS;
        let hi = to_ms(until);
        let watermark = watermark(self).await?;
        let ceil_hi = hi.div_euclid(DAY_MS) * DAY_MS + if hi.rem_euclid(DAY_MS) == 0 { 0 } else { DAY_MS };
        // A day's row may hold hours after `until` only when `until` is before the
        // watermark and inside a day: that day is then read from its hours.
        let daily_hi = if hi < watermark {
            hi.div_euclid(DAY_MS) * DAY_MS
        } else {
            ceil_hi
        };
        let mut by_name: HashMap<String, Vec<DayUptime>> = HashMap::with_capacity(checks.len());
        for chunk in checks.chunks(IDS_PER_QUERY) {
            let sql = daily_uptimes_sql();
            let query = sqlx::query_as::<_, (String, String)>(&sql)
                .bind(watermark)
                .bind(lo)
                .bind(ceil_hi)
                .bind(daily_hi)
                .bind(DAY_MS)
                .bind(0_i64)
                .bind(hi)
                .bind(chunk);
            let rows = query
                .fetch_all(&self.inner.pool)
                .await
                .map_err(self.query_error("read daily uptime"))?;
            for (name, days) in rows {
                by_name.insert(name, rows::day_uptimes(&days).map_err(|e| self.row_error(e))?);
            }
        }
        Ok(checks
            .iter()
            .map(|name| by_name.get(name).cloned().unwrap_or_default())
            .collect())
    }

    /// Incidents with their acknowledgement and updates, newest first.
    pub async fn incident_records(&self, page: &SpanPage) -> Result<Vec<IncidentRecord>, PgError> {
        let spans = self.span_rows(page).await?;
        self.with_updates(spans).await
    }

    /// One incident with its acknowledgement and updates.
    pub async fn incident_record(&self, id: i64) -> Result<Option<IncidentRecord>, PgError> {
        let mut conn = self
            .inner
            .pool
            .acquire()
            .await
            .map_err(self.query_error("acquire a read connection"))?;
        let Some(span) = self.span_by_id(id, &mut conn).await? else {
            return Ok(None);
        };
        drop(conn);
        Ok(self.with_updates(vec![span]).await?.pop())
    }

    /// Loads the updates of every span in one query (per 500 spans).
    async fn with_updates(&self, spans: Vec<(DownSpan, Option<i64>)>) -> Result<Vec<IncidentRecord>, PgError> {
        let mut updates: HashMap<i64, Vec<IncidentUpdate>> = HashMap::new();
        for chunk in spans.chunks(IDS_PER_QUERY) {
            let sql = format!("{UPDATE_COLUMNS} WHERE incident_id = ANY($1) ORDER BY incident_id, at, id");
            let ids: Vec<i64> = chunk.iter().map(|(span, _)| span.id).collect();
            let query = sqlx::query(&sql).bind(ids);
            let rows = query
                .fetch_all(&self.inner.pool)
                .await
                .map_err(self.query_error("read incident updates"))?;
            for row in &rows {
                let update = self.incident_update(row)?;
                updates.entry(update.incident).or_default().push(update);
            }
        }
        Ok(spans
            .into_iter()
            .map(|(span, acknowledged_at)| IncidentRecord {
                updates: updates.remove(&span.id).unwrap_or_default(),
                span,
                acknowledged_at: acknowledged_at.map(from_ms),
            })
            .collect())
    }

    fn incident_update(&self, row: &PgRow) -> Result<IncidentUpdate, PgError> {
        self.decode(row, rows::incident_update)
    }

    /// Adds an operator's update to an incident; `None` when there is no such incident.
    pub async fn add_update(
        &self,
        incident: i64,
        status: IncidentStatus,
        message: &str,
        at: jiff::Timestamp,
    ) -> Result<Option<IncidentUpdate>, PgError> {
        let mut tx = self.inner.pool.begin().await.map_err(self.query_error("begin"))?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM incidents WHERE id = $1")
            .bind(incident)
            .fetch_optional(&mut *tx)
            .await
            .map_err(self.query_error("look up an incident"))?;
        if exists.is_none() {
            return Ok(None);
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO incident_updates (incident_id, at, status, message) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(incident)
        .bind(to_ms(at))
        .bind(status.as_str())
        .bind(message)
        .fetch_one(&mut *tx)
        .await
        .map_err(self.query_error("add an incident update"))?;
        tx.commit().await.map_err(self.query_error("commit"))?;
        Ok(Some(IncidentUpdate {
            id,
            incident,
            at: from_ms(to_ms(at)),
            status,
            message: message.to_owned(),
        }))
    }

    /// Marks an incident acknowledged at `at` unless it already was.
    pub async fn acknowledge(&self, incident: i64, at: jiff::Timestamp) -> Result<Option<IncidentRecord>, PgError> {
        let mut tx = self.inner.pool.begin().await.map_err(self.query_error("begin"))?;
        let done = sqlx::query("UPDATE incidents SET acknowledged_at = COALESCE(acknowledged_at, $2) WHERE id = $1")
            .bind(incident)
            .bind(to_ms(at))
            .execute(&mut *tx)
            .await
            .map_err(self.query_error("acknowledge an incident"))?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        tx.commit().await.map_err(self.query_error("commit"))?;
        self.incident_record(incident).await
    }

    /// A page of outbox rows, newest first ([`OutboxPage`]).
    pub async fn outbox_rows(&self, page: &OutboxPage) -> Result<Vec<NotificationRecord>, PgError> {
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&outbox_page_sql(page))
            .bind(page.before_id.unwrap_or(i64::MAX))
            .bind(page.check.as_deref())
            .bind(limit_i64(page.limit))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.query_error("read a page of the outbox"))?;
        rows.iter().map(|row| self.notification_record(row)).collect()
    }

    /// Puts a dead or pending notification back at the head of its queue's order (by
    /// id), due at `now`, attempts reset; its last error stays for the record. A
    /// delivered row is returned unchanged.
    pub async fn redeliver_notification(
        &self,
        id: i64,
        now: jiff::Timestamp,
    ) -> Result<Option<NotificationRecord>, PgError> {
        let mut tx = self.inner.pool.begin().await.map_err(self.query_error("begin"))?;
        sqlx::query(
            "UPDATE notifications SET state = 'pending', attempts = 0, next_attempt_at = $2
             WHERE id = $1 AND state <> 'delivered'",
        )
        .bind(id)
        .bind(to_ms(now))
        .execute(&mut *tx)
        .await
        .map_err(self.query_error("redeliver a notification"))?;
        let row = sqlx::query(&format!("{NOTIFICATION_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(self.query_error("read a notification"))?;
        tx.commit().await.map_err(self.query_error("commit"))?;
        row.as_ref().map(|row| self.notification_record(row)).transpose()
    }

    /// Every API check's stored definition, by name.
    pub async fn api_check_definitions(&self) -> Result<Vec<ApiCheck>, PgError> {
        let rows = sqlx::query("SELECT name, definition, created_at, updated_at FROM api_checks ORDER BY name")
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.query_error("read API checks"))?;
        rows.iter().map(|row| self.decode(row, rows::api_check)).collect()
    }

    /// Creates or replaces an API check's definition (a replacement keeps `created_at`).
    pub async fn put_api_check_definition(&self, check: &ApiCheck) -> Result<(), PgError> {
        let definition =
            serde_json::to_string(&check.definition).map_err(|e| self.corrupt("encode an API check", e.to_string()))?;
        let mut tx = self.inner.pool.begin().await.map_err(self.query_error("begin"))?;
        sqlx::query(
            "INSERT INTO api_checks (name, definition, created_at, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
        )
        .bind(&check.name)
        .bind(definition)
        .bind(to_ms(check.created_at))
        .bind(to_ms(check.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(self.query_error("store an API check"))?;
        tx.commit().await.map_err(self.query_error("commit"))
    }

    /// Deletes an API check's definition and retires the check (its history stays).
    pub async fn delete_api_check_definition(&self, name: &str) -> Result<bool, PgError> {
        let mut tx = self.inner.pool.begin().await.map_err(self.query_error("begin"))?;
        let done = sqlx::query("DELETE FROM api_checks WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(self.query_error("delete an API check"))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE checks SET active = 0, updated_at = $2 WHERE name = $1")
            .bind(name)
            .bind(to_ms(jiff::Timestamp::now()))
            .execute(&mut *tx)
            .await
            .map_err(self.query_error("retire a deleted API check"))?;
        tx.commit().await.map_err(self.query_error("commit"))?;
        Ok(true)
    }

    /// Silences in force at `now`, by check.
    pub async fn silences_at(&self, now: jiff::Timestamp) -> Result<Vec<Silence>, PgError> {
        let rows = sqlx::query("SELECT check_name, until, reason FROM silences WHERE until > $1 ORDER BY check_name")
            .bind(to_ms(now))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.query_error("read silences"))?;
        rows.iter().map(|row| self.decode(row, rows::silence)).collect()
    }

    /// Sets a check's silence (an `until` in the past lifts it).
    pub async fn put_silence(&self, silence: &Silence) -> Result<(), PgError> {
        let mut tx = self.inner.pool.begin().await.map_err(self.query_error("begin"))?;
        sqlx::query(
            "INSERT INTO silences (check_name, until, reason) VALUES ($1, $2, $3)
             ON CONFLICT (check_name) DO UPDATE SET until = excluded.until, reason = excluded.reason",
        )
        .bind(&silence.check)
        .bind(to_ms(silence.until))
        .bind(&silence.reason)
        .execute(&mut *tx)
        .await
        .map_err(self.query_error("set a silence"))?;
        tx.commit().await.map_err(self.query_error("commit"))
    }
}

// The Console trait is the inherent methods above; location views are quorum.rs's.
pulsecheck_core::impl_console!(
    PgStore,
    fn location_views<'a>(
        &'a self,
        check: &'a str,
    ) -> BoxFuture<'a, Result<Vec<pulsecheck_core::storage::console::LocationView>, StorageError>> {
        Box::pin(async move { PgStore::location_views(self, check).await.map_err(StorageError::from) })
    }
);

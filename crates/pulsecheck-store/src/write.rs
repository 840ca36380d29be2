//! Applying [`WriteEvent`]s inside one write transaction.

use pulsecheck_core::outbox::AlertEvent;
use pulsecheck_core::state::{CheckState, State, Transition};
use pulsecheck_core::storage::rows;
use pulsecheck_core::storage::WriteEvent;
use pulsecheck_core::CheckResult;
use sqlx::SqliteConnection;

use crate::codes;
use crate::error::StoreError;
use crate::store::Store;
use pulsecheck_core::storage::encoding::{duration_ms, to_ms, EncodedResult};

/// Milliseconds tried after a result's own when its key is taken.
const MAX_KEY_PROBES: usize = 1_000;

impl Store {
    /// Applies `events` in order in one `BEGIN IMMEDIATE` transaction: either all of
    /// them are committed or none. `now` stamps `updated_at` and new notifications'
    /// `created_at`/`next_attempt_at`. The writer task calls this; tests and one-off
    /// tools may call it directly.
    pub async fn write(&self, events: &[WriteEvent], now: jiff::Timestamp) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        // Writes are serialized on the one write connection: numbers pending here can
        // only be from an earlier transaction that did not commit.
        self.check_ids().pending.clear();
        let now = to_ms(now);
        for event in events {
            self.apply(&mut tx, event, now).await?;
        }
        tx.commit().await.map_err(self.query_error("commit"))?;
        let mut ids = self.check_ids();
        let pending = std::mem::take(&mut ids.pending);
        ids.committed.extend(pending);
        Ok(())
    }

    pub(crate) fn check_ids(&self) -> std::sync::MutexGuard<'_, crate::store::CheckIds> {
        self.inner
            .check_ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn apply(&self, conn: &mut SqliteConnection, event: &WriteEvent, now: i64) -> Result<(), StoreError> {
        match event {
            WriteEvent::Run(run) => {
                self.upsert_state(conn, &run.check, Some(&run.result), &run.state, now)
                    .await?;
                self.insert_result(conn, &run.check, &run.result).await?;
                let transition_id = match &run.transition {
                    Some(transition) => {
                        let id = self.insert_transition(conn, &run.check, transition).await?;
                        // The results that caused it stay raw for the full retention.
                        self.keep_cause(conn, &run.check, transition).await?;
                        Some(id)
                    }
                    None => None,
                };
                for (channel, event) in &run.notifications {
                    self.insert_notification(conn, channel, event, transition_id, now)
                        .await?;
                }
                Ok(())
            }
            WriteEvent::Notify { notifications } => {
                for (channel, event) in notifications {
                    self.insert_notification(conn, channel, event, None, now).await?;
                }
                Ok(())
            }
            WriteEvent::RegisterChecks { checks, retire_others } => {
                if *retire_others {
                    sqlx::query("UPDATE checks SET active = 0, updated_at = $1 WHERE active = 1")
                        .bind(now)
                        .execute(&mut *conn)
                        .await
                        .map_err(self.query_error("retire checks"))?;
                }
                for meta in checks {
                    sqlx::query(
                        "INSERT INTO checks (name, check_group, target, origin, active, updated_at)
                         VALUES ($1, $2, $3, $4, 1, $5)
                         ON CONFLICT (name) DO UPDATE SET
                             check_group = excluded.check_group,
                             target = excluded.target,
                             origin = excluded.origin,
                             active = 1,
                             updated_at = excluded.updated_at",
                    )
                    .bind(&meta.name)
                    .bind(&meta.group)
                    .bind(&meta.target)
                    .bind(crate::console::origin_str(meta.origin))
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map_err(self.query_error("register check"))?;
                    self.check_id(conn, &meta.name).await?;
                }
                Ok(())
            }
        }
    }

    /// Upserts the persisted state; with a result, also the latest-result columns (and
    /// the target, for a check that was never registered).
    async fn upsert_state(
        &self,
        conn: &mut SqliteConnection,
        check: &str,
        result: Option<&CheckResult>,
        state: &CheckState,
        now: i64,
    ) -> Result<(), StoreError> {
        let streak = serde_json::to_string(&state.streak).map_err(|e| self.corrupt("encode streak", e.to_string()))?;
        let since = state.since.map(to_ms);
        match result {
            Some(result) => sqlx::query(
                "INSERT INTO checks (name, target, state, since, streak, last_result_at, last_outcome,
                                     last_reason, last_error, last_duration_ms, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (name) DO UPDATE SET
                     state = excluded.state,
                     since = excluded.since,
                     streak = excluded.streak,
                     last_result_at = excluded.last_result_at,
                     last_outcome = excluded.last_outcome,
                     last_reason = excluded.last_reason,
                     last_error = excluded.last_error,
                     last_duration_ms = excluded.last_duration_ms,
                     updated_at = excluded.updated_at",
            )
            .bind(check)
            .bind(&result.target)
            .bind(state.state.as_str())
            .bind(since)
            .bind(streak)
            .bind(to_ms(result.started_at))
            .bind(result.outcome.as_str())
            .bind(result.reason.map(|r| r.as_str()))
            .bind(&result.error)
            .bind(duration_ms(result.duration_ms))
            .bind(now),
            None => sqlx::query(
                "INSERT INTO checks (name, state, since, streak, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET
                     state = excluded.state,
                     since = excluded.since,
                     streak = excluded.streak,
                     updated_at = excluded.updated_at",
            )
            .bind(check)
            .bind(state.state.as_str())
            .bind(since)
            .bind(streak)
            .bind(now),
        }
        .execute(&mut *conn)
        .await
        .map_err(self.query_error("upsert check state"))?;
        Ok(())
    }

    async fn insert_result(&self, conn: &mut SqliteConnection, check: &str, r: &CheckResult) -> Result<(), StoreError> {
        let id = self.check_id(conn, check).await?;
        let e = EncodedResult::of(r);
        // One column holds the version's code, or its text when it has none.
        let http_version = match (e.http_version, e.http_version_text.as_deref()) {
            (Some(code), _) => Some(codes::SqlHttpVersion(codes::HttpVersion::Code(code))),
            (None, Some(text)) => Some(codes::SqlHttpVersion(codes::HttpVersion::Text(text))),
            (None, None) => None,
        };
        let mut started_at = to_ms(r.started_at);
        // The key is (check, millisecond): a second result of one check in the same
        // millisecond (only a clock step backwards makes one) moves to the next free one.
        for _ in 0..MAX_KEY_PROBES {
            let done = sqlx::query(
                "INSERT INTO results (check_id, started_at, kind, http_status, duration_us, queue_us, phases,
                                      ip, http_version, redirects, cert_days_left, error)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (check_id, started_at) DO NOTHING",
            )
            .bind(id)
            .bind(started_at)
            .bind(e.kind)
            .bind(e.http_status)
            .bind(e.duration_us)
            .bind(e.queue_us)
            .bind(&e.phases)
            .bind(&e.ip)
            .bind(&http_version)
            .bind(e.redirects)
            .bind(e.cert_days_left)
            .bind(&e.error)
            .execute(&mut *conn)
            .await
            .map_err(self.query_error("insert result"))?;
            if done.rows_affected() > 0 {
                return Ok(());
            }
            started_at = started_at.saturating_add(1);
        }
        Err(self.corrupt(
            "insert result",
            format!("check {check}: no free millisecond near {}", to_ms(r.started_at)),
        ))
    }

    /// The check's number in `check_ids`, assigned on first use.
    pub(crate) async fn check_id(&self, conn: &mut SqliteConnection, check: &str) -> Result<i64, StoreError> {
        {
            let ids = self.check_ids();
            if let Some(id) = ids.committed.get(check).or_else(|| ids.pending.get(check)) {
                return Ok(*id);
            }
        }
        if let Some(id) = sqlx::query_scalar("SELECT id FROM check_ids WHERE name = $1")
            .bind(check)
            .fetch_optional(&mut *conn)
            .await
            .map_err(self.query_error("look up check id"))?
        {
            // Not assigned by this transaction (it would be pending), so committed.
            self.check_ids().committed.insert(check.to_owned(), id);
            return Ok(id);
        }
        let id = sqlx::query_scalar("INSERT INTO check_ids (name) VALUES ($1) RETURNING id")
            .bind(check)
            .fetch_one(&mut *conn)
            .await
            .map_err(self.query_error("number a check"))?;
        self.check_ids().pending.insert(check.to_owned(), id);
        Ok(id)
    }

    /// Marks the raw results a transition names as its cause, so that retention keeps
    /// them as long as down results.
    async fn keep_cause(
        &self,
        conn: &mut SqliteConnection,
        check: &str,
        transition: &Transition,
    ) -> Result<(), StoreError> {
        let id = self.check_id(conn, check).await?;
        for cause in &transition.cause {
            sqlx::query("UPDATE results SET kind = kind | $3 WHERE check_id = $1 AND started_at = $2")
                .bind(id)
                .bind(to_ms(cause.at))
                .bind(codes::KEEP_BIT)
                .execute(&mut *conn)
                .await
                .map_err(self.query_error("keep a transition's cause"))?;
        }
        Ok(())
    }

    async fn insert_transition(
        &self,
        conn: &mut SqliteConnection,
        check: &str,
        transition: &Transition,
    ) -> Result<i64, StoreError> {
        let cause = serde_json::to_string(&transition.cause)
            .map_err(|e| self.corrupt("encode transition cause", e.to_string()))?;
        let at = to_ms(transition.at);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO transitions (check_name, from_state, to_state, at, cause)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(check)
        .bind(transition.from.as_str())
        .bind(transition.to.as_str())
        .bind(at)
        .bind(cause)
        .fetch_one(&mut *conn)
        .await
        .map_err(self.query_error("insert transition"))?;

        if transition.from == State::Down && transition.to != State::Down {
            sqlx::query(
                "UPDATE incidents SET ended_at = $1, closed_by = $2
                 WHERE check_name = $3 AND ended_at IS NULL",
            )
            .bind(at)
            .bind(id)
            .bind(check)
            .execute(&mut *conn)
            .await
            .map_err(self.query_error("close incident"))?;
        }
        if transition.to == State::Down && transition.from != State::Down {
            // At most one open incident per check: a second "down" without an "up" in
            // between (possible after a restart that lost no state but re-derived one)
            // extends the open incident instead of failing on the unique index.
            sqlx::query(
                "INSERT INTO incidents (check_name, started_at, opened_by)
                 SELECT $1, $2, $3
                 WHERE NOT EXISTS (SELECT 1 FROM incidents WHERE check_name = $1 AND ended_at IS NULL)",
            )
            .bind(check)
            .bind(at)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(self.query_error("open incident"))?;
        }
        Ok(id)
    }

    async fn insert_notification(
        &self,
        conn: &mut SqliteConnection,
        channel: &str,
        event: &AlertEvent,
        transition_id: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        let event = rows::keyed_event(event, transition_id, channel);
        let json = serde_json::to_string(&*event).map_err(|e| self.corrupt("encode alert event", e.to_string()))?;
        sqlx::query(
            "INSERT INTO notifications (check_name, channel, idempotency_key, kind, event, transition_id,
                                        state, attempts, created_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&event.check)
        .bind(channel)
        .bind(&event.idempotency_key)
        .bind(event.kind.as_str())
        .bind(json)
        .bind(transition_id)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(self.query_error("insert notification"))?;
        Ok(())
    }
}

//! The outbox with claims, for several nodes delivering from one database.
//!
//! `due` claims rows (see the crate docs): the head of each (check, channel) queue, due
//! at `now`, not held by a live claim of another node, locked `FOR UPDATE SKIP LOCKED`
//! so that two nodes claiming at once never get the same row. Only the claimant settles
//! a row; a settle by a node whose claim was taken over changes nothing.

use pulsecheck_core::outbox::{BoxFuture, Notification, Outbox, OutboxError};

use crate::error::PgError;
use crate::read::limit_i64;
use crate::store::{PgStore, DB_NOW};
use crate::time::{from_ms, to_ms};

/// Rows a settle may change: claimed by this node ($1), or never claimed (a caller
/// that settles without `due`, such as a tool working alone).
const SETTLE_GUARD: &str = "(claimed_by = $1 OR claimed_by IS NULL)";

impl PgStore {
    /// Notifications pending and dead now, for `/metrics`.
    pub async fn outbox_counts(&self) -> Result<(u64, u64), PgError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, COUNT(*) FROM notifications WHERE state IN ('pending', 'dead') GROUP BY state",
        )
        .fetch_all(&self.inner.pool)
        .await
        .map_err(self.query_error("count pending and dead notifications"))?;
        let count = |state: &str| {
            rows.iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0))
        };
        Ok((count("pending"), count("dead")))
    }

    /// Claims for this node, and returns, the due heads of the queues: oldest first.
    pub async fn claim_due(&self, now: jiff::Timestamp, limit: usize) -> Result<Vec<Notification>, PgError> {
        // The head of a queue is its lowest pending id, whatever its next_attempt_at or
        // claim: a head that waits holds back the rest of its queue (order per check).
        let sql = claim_sql();
        let rows = sqlx::query(&sql)
            .bind(to_ms(now))
            .bind(&self.inner.node)
            .bind(limit_i64(limit))
            .bind(self.claim_ttl_ms())
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.query_error("claim due notifications"))?;
        let mut due = rows
            .iter()
            .map(|row| {
                let record = self.notification_record(row)?;
                Ok(Notification {
                    id: record.id,
                    channel: record.channel,
                    event: record.event,
                    attempts: record.attempts,
                    created_at: record.created_at,
                    next_attempt_at: record.next_attempt_at,
                })
            })
            .collect::<Result<Vec<_>, PgError>>()?;
        // RETURNING has no order.
        due.sort_by_key(|n| n.id);
        Ok(due)
    }

    /// The earliest time a head becomes due for this node: its `next_attempt_at`, or
    /// the end of another node's live claim on it.
    pub async fn next_due_notification(&self) -> Result<Option<jiff::Timestamp>, PgError> {
        let next: Option<i64> = sqlx::query_scalar(&next_due_sql())
            .bind(&self.inner.node)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(self.query_error("read next due notification"))?;
        Ok(next.map(from_ms))
    }

    /// Makes the pending notifications of `channel` that wait for a retry after `now` due
    /// at `now`; returns how many.
    pub async fn retry_channel_at(&self, channel: &str, now: jiff::Timestamp) -> Result<u64, PgError> {
        let done = sqlx::query(
            "UPDATE notifications SET next_attempt_at = $1
             WHERE state = 'pending' AND channel = $2 AND next_attempt_at > $1",
        )
        .bind(to_ms(now))
        .bind(channel)
        .execute(&self.inner.pool)
        .await
        .map_err(self.query_error("make a channel's notifications due"))?;
        Ok(done.rows_affected())
    }

    /// Runs one settle (`$1` is this node, `$2` the id). A row claimed by another node
    /// is left alone (logged); a missing row is an error.
    async fn settle<'q>(
        &self,
        id: i64,
        context: &'static str,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<(), PgError> {
        let done = query
            .execute(&self.inner.pool)
            .await
            .map_err(self.query_error(context))?;
        if done.rows_affected() > 0 {
            return Ok(());
        }
        let owner: Option<Option<String>> = sqlx::query_scalar("SELECT claimed_by FROM notifications WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(self.query_error(context))?;
        match owner {
            None => Err(self.corrupt(context, format!("no notification {id}"))),
            Some(owner) => {
                tracing::info!(
                    node = %self.inner.node,
                    notification = id,
                    claimed_by = owner.as_deref().unwrap_or(""),
                    "another node took this delivery over; not settling it here"
                );
                Ok(())
            }
        }
    }
}

impl Outbox for PgStore {
    fn due(&self, now: jiff::Timestamp, limit: usize) -> BoxFuture<'_, Result<Vec<Notification>, OutboxError>> {
        Box::pin(async move { Ok(self.claim_due(now, limit).await?) })
    }

    fn next_due(&self) -> BoxFuture<'_, Result<Option<jiff::Timestamp>, OutboxError>> {
        Box::pin(async move { Ok(self.next_due_notification().await?) })
    }

    fn delivered(&self, id: i64, attempts: u32, at: jiff::Timestamp) -> BoxFuture<'_, Result<(), OutboxError>> {
        Box::pin(async move {
            let sql = format!(
                "UPDATE notifications SET state = 'delivered', attempts = $3, delivered_at = $4, claim_expires_at = 0
                 WHERE id = $2 AND {SETTLE_GUARD}"
            );
            let query = sqlx::query(&sql)
                .bind(&self.inner.node)
                .bind(id)
                .bind(i64::from(attempts))
                .bind(to_ms(at));
            Ok(self.settle(id, "mark notification delivered", query).await?)
        })
    }

    fn retry_at(
        &self,
        id: i64,
        attempts: u32,
        next_attempt_at: jiff::Timestamp,
        error: String,
    ) -> BoxFuture<'_, Result<(), OutboxError>> {
        Box::pin(async move {
            // The claim ends (any node may take the retry) but names this node, so that
            // a late settle of an older claimant still sees the row as not its own.
            let sql = format!(
                "UPDATE notifications SET attempts = $3, next_attempt_at = $4, last_error = $5, claim_expires_at = 0
                 WHERE id = $2 AND {SETTLE_GUARD}"
            );
            let query = sqlx::query(&sql)
                .bind(&self.inner.node)
                .bind(id)
                .bind(i64::from(attempts))
                .bind(to_ms(next_attempt_at))
                .bind(error);
            Ok(self.settle(id, "schedule notification retry", query).await?)
        })
    }

    fn dead(&self, id: i64, attempts: u32, error: String) -> BoxFuture<'_, Result<(), OutboxError>> {
        Box::pin(async move {
            let sql = format!(
                "UPDATE notifications SET state = 'dead', attempts = $3, last_error = $4, claim_expires_at = 0
                 WHERE id = $2 AND {SETTLE_GUARD}"
            );
            let query = sqlx::query(&sql)
                .bind(&self.inner.node)
                .bind(id)
                .bind(i64::from(attempts))
                .bind(error);
            Ok(self.settle(id, "mark notification dead", query).await?)
        })
    }

    fn retry_channel_now(&self, channel: &str, now: jiff::Timestamp) -> BoxFuture<'_, Result<u64, OutboxError>> {
        let channel = channel.to_owned();
        Box::pin(async move { Ok(self.retry_channel_at(&channel, now).await?) })
    }
}

/// Claims due heads: `$1` now (the caller's clock, as `next_attempt_at` is), `$2` this
/// node, `$3` the limit, `$4` the claim TTL in ms.
pub(crate) fn claim_sql() -> String {
    format!(
        "WITH heads AS (
             SELECT DISTINCT ON (check_name, channel) id FROM notifications
             WHERE state = 'pending' ORDER BY check_name, channel, id),
         due AS (
             SELECT n.id FROM notifications n JOIN heads h ON h.id = n.id
             WHERE n.state = 'pending' AND n.next_attempt_at <= $1
               AND (n.claimed_by IS NULL OR n.claimed_by = $2 OR n.claim_expires_at <= {DB_NOW})
             ORDER BY n.id LIMIT $3
             FOR UPDATE OF n SKIP LOCKED)
         UPDATE notifications SET claimed_by = $2, claim_expires_at = {DB_NOW} + $4
         FROM due WHERE notifications.id = due.id
         RETURNING notifications.id, notifications.check_name, notifications.channel,
                   notifications.idempotency_key, notifications.kind, notifications.event,
                   notifications.transition_id, notifications.state, notifications.attempts,
                   notifications.created_at, notifications.next_attempt_at,
                   notifications.delivered_at, notifications.last_error"
    )
}

/// The earliest time a head becomes due for node `$1`.
pub(crate) fn next_due_sql() -> String {
    format!(
        "WITH heads AS (
                 SELECT DISTINCT ON (check_name, channel) next_attempt_at, claimed_by, claim_expires_at
                 FROM notifications WHERE state = 'pending' ORDER BY check_name, channel, id)
             SELECT MIN(CASE WHEN claimed_by IS NOT NULL AND claimed_by <> $1 AND claim_expires_at > {DB_NOW}
                             THEN GREATEST(next_attempt_at, claim_expires_at)
                             ELSE next_attempt_at END)
             FROM heads"
    )
}

//! The SQLite side of the outbox contract in `pulsecheck_core::outbox`.

use pulsecheck_core::outbox::{BoxFuture, Notification, Outbox, OutboxError};

use crate::error::StoreError;
use crate::read::limit_i64;
use crate::store::Store;
use pulsecheck_core::storage::encoding::{from_ms, to_ms};

impl Store {
    /// Notifications pending and dead now, for `/metrics` (read periodically, not per
    /// scrape).
    pub async fn outbox_counts(&self) -> Result<(u64, u64), StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, COUNT(*) FROM notifications WHERE state IN ('pending', 'dead') GROUP BY state",
        )
        .fetch_all(&self.inner.read)
        .await
        .map_err(self.query_error("count pending and dead notifications"))?;
        let count = |state: &str| {
            rows.iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0))
        };
        Ok((count("pending"), count("dead")))
    }

    /// For each (check, channel) the oldest pending notification, when it is due at
    /// `now`; oldest first.
    pub async fn due_notifications(&self, now: jiff::Timestamp, limit: usize) -> Result<Vec<Notification>, StoreError> {
        // The head of a queue is its lowest pending id, whatever its next_attempt_at: a
        // head that waits for a retry holds back the rest of its queue, which keeps
        // delivery in order per check and channel.
        let rows = sqlx::query(
            "SELECT n.id, n.check_name, n.channel, n.idempotency_key, n.kind, n.event, n.transition_id,
                    n.state, n.attempts, n.created_at, n.next_attempt_at, n.delivered_at, n.last_error
             FROM notifications n
             WHERE n.state = 'pending' AND n.next_attempt_at <= $1
               AND n.id = (SELECT MIN(m.id) FROM notifications m
                           WHERE m.state = 'pending' AND m.check_name = n.check_name AND m.channel = n.channel)
             ORDER BY n.id
             LIMIT $2",
        )
        .bind(to_ms(now))
        .bind(limit_i64(limit))
        .fetch_all(&self.inner.read)
        .await
        .map_err(self.query_error("read due notifications"))?;
        rows.iter()
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
            .collect()
    }

    /// The earliest `next_attempt_at` of the queue heads: the next time [`Store::due_notifications`]
    /// can return something. (A pending notification behind a head that waits for a retry
    /// is not counted: it cannot be delivered before its head, and counting it would make
    /// a worker that sleeps until `next_due` wake up and find nothing, over and over.)
    pub async fn next_due_notification(&self) -> Result<Option<jiff::Timestamp>, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(n.next_attempt_at) FROM notifications n
             WHERE n.state = 'pending'
               AND n.id = (SELECT MIN(m.id) FROM notifications m
                           WHERE m.state = 'pending' AND m.check_name = n.check_name AND m.channel = n.channel)",
        )
        .fetch_one(&self.inner.read)
        .await
        .map_err(self.query_error("read next due notification"))?;
        Ok(next.map(from_ms))
    }

    /// Makes the pending notifications of `channel` that wait for a retry after `now` due
    /// at `now`; returns how many (see [`Outbox::retry_channel_now`]).
    pub async fn retry_channel_at(&self, channel: &str, now: jiff::Timestamp) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE notifications SET next_attempt_at = $1
             WHERE state = 'pending' AND channel = $2 AND next_attempt_at > $1",
        )
        .bind(to_ms(now))
        .bind(channel)
        .execute(&mut *tx)
        .await
        .map_err(self.query_error("make a channel's notifications due"))?;
        tx.commit().await.map_err(self.query_error("commit"))?;
        Ok(done.rows_affected())
    }

    /// Runs one outbox update in its own `BEGIN IMMEDIATE` transaction; fails when no
    /// row has `id`.
    async fn update_notification<'q>(
        &self,
        id: i64,
        context: &'static str,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = query.execute(&mut *tx).await.map_err(self.query_error(context))?;
        tx.commit().await.map_err(self.query_error("commit"))?;
        if done.rows_affected() == 0 {
            return Err(self.corrupt(context, format!("no notification {id}")));
        }
        Ok(())
    }
}

fn outbox_error(error: StoreError) -> OutboxError {
    OutboxError(error.to_string())
}

fn attempts_i64(attempts: u32) -> i64 {
    i64::from(attempts)
}

impl Outbox for Store {
    fn due(&self, now: jiff::Timestamp, limit: usize) -> BoxFuture<'_, Result<Vec<Notification>, OutboxError>> {
        Box::pin(async move { self.due_notifications(now, limit).await.map_err(outbox_error) })
    }

    fn next_due(&self) -> BoxFuture<'_, Result<Option<jiff::Timestamp>, OutboxError>> {
        Box::pin(async move { self.next_due_notification().await.map_err(outbox_error) })
    }

    fn delivered(&self, id: i64, attempts: u32, at: jiff::Timestamp) -> BoxFuture<'_, Result<(), OutboxError>> {
        Box::pin(async move {
            let query = sqlx::query(
                "UPDATE notifications SET state = 'delivered', attempts = $1, delivered_at = $2 WHERE id = $3",
            )
            .bind(attempts_i64(attempts))
            .bind(to_ms(at))
            .bind(id);
            self.update_notification(id, "mark notification delivered", query)
                .await
                .map_err(outbox_error)
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
            let query = sqlx::query(
                "UPDATE notifications SET attempts = $1, next_attempt_at = $2, last_error = $3 WHERE id = $4",
            )
            .bind(attempts_i64(attempts))
            .bind(to_ms(next_attempt_at))
            .bind(error)
            .bind(id);
            self.update_notification(id, "schedule notification retry", query)
                .await
                .map_err(outbox_error)
        })
    }

    fn dead(&self, id: i64, attempts: u32, error: String) -> BoxFuture<'_, Result<(), OutboxError>> {
        Box::pin(async move {
            let query =
                sqlx::query("UPDATE notifications SET state = 'dead', attempts = $1, last_error = $2 WHERE id = $3")
                    .bind(attempts_i64(attempts))
                    .bind(error)
                    .bind(id);
            self.update_notification(id, "mark notification dead", query)
                .await
                .map_err(outbox_error)
        })
    }

    fn retry_channel_now(&self, channel: &str, now: jiff::Timestamp) -> BoxFuture<'_, Result<u64, OutboxError>> {
        let channel = channel.to_owned();
        Box::pin(async move { self.retry_channel_at(&channel, now).await.map_err(outbox_error) })
    }
}

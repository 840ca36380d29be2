//! [`Coordinator`] on PostgreSQL: members and leases are rows whose expiries come from
//! the database's clock. No advisory locks (they do not survive a pooler in
//! transaction mode).

use std::time::Duration;

use pulsecheck_core::cluster::{Coordinator, Lease, Member};
use pulsecheck_core::outbox::BoxFuture;
use pulsecheck_core::storage::StorageError;

use crate::error::PgError;
use crate::store::{PgStore, DB_NOW};
use crate::time::from_ms;

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2)
}

impl PgStore {
    /// See [`Coordinator::heartbeat`].
    pub async fn heartbeat_member(&self, member: &Member, ttl: Duration) -> Result<Vec<Member>, PgError> {
        sqlx::query(&format!(
            "INSERT INTO members (node, location, started_at, expires_at)
             VALUES ($1, $2, {DB_NOW}, {DB_NOW} + $3)
             ON CONFLICT (node) DO UPDATE SET location = excluded.location, expires_at = excluded.expires_at"
        ))
        .bind(&member.node)
        .bind(&member.location)
        .bind(ttl_ms(ttl))
        .execute(&self.inner.pool)
        .await
        .map_err(self.query_error("renew membership"))?;
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(&format!(
            "SELECT node, location FROM members WHERE expires_at > {DB_NOW} ORDER BY node"
        ))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(self.query_error("list live members"))?;
        Ok(rows
            .into_iter()
            .map(|(node, location)| Member { node, location })
            .collect())
    }

    /// See [`Coordinator::acquire`]: one statement takes free or expired leases and
    /// renews this node's own. The epoch grows when a lease changes hands or is taken
    /// after it expired (even by the same node: another node may have held it in
    /// between and its writes must not be confused with this one's).
    pub async fn acquire_leases(&self, node: &str, keys: &[String], ttl: Duration) -> Result<Vec<Lease>, PgError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        // Sorted and unique: one row is not upserted twice, and two nodes lock in one order.
        keys.sort_unstable();
        keys.dedup();
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(&format!(
            "INSERT INTO leases AS l (key, node, epoch, expires_at)
             SELECT k, $1, 1, {DB_NOW} + $3 FROM unnest($2::text[]) AS k
             ON CONFLICT (key) DO UPDATE SET
                 epoch = CASE WHEN l.node = excluded.node AND l.expires_at > {DB_NOW}
                              THEN l.epoch ELSE l.epoch + 1 END,
                 node = excluded.node,
                 expires_at = excluded.expires_at
             WHERE l.node = excluded.node OR l.expires_at <= {DB_NOW}
             RETURNING key, epoch, expires_at"
        ))
        .bind(node)
        .bind(&keys)
        .bind(ttl_ms(ttl))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(self.query_error("acquire leases"))?;
        let mut leases: Vec<Lease> = rows
            .into_iter()
            .map(|(key, epoch, expires_at)| Lease {
                key,
                epoch,
                expires_at: from_ms(expires_at),
            })
            .collect();
        leases.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(leases)
    }

    /// See [`Coordinator::release`]: the row and its epoch stay, expired.
    pub async fn release_leases(&self, node: &str, keys: &[String]) -> Result<(), PgError> {
        sqlx::query("UPDATE leases SET expires_at = 0 WHERE node = $1 AND key = ANY($2)")
            .bind(node)
            .bind(keys)
            .execute(&self.inner.pool)
            .await
            .map_err(self.query_error("release leases"))?;
        Ok(())
    }

    /// See [`Coordinator::leave`].
    pub async fn leave_cluster(&self, node: &str) -> Result<(), PgError> {
        let mut tx = self.inner.pool.begin().await.map_err(self.query_error("begin"))?;
        sqlx::query("DELETE FROM members WHERE node = $1")
            .bind(node)
            .execute(&mut *tx)
            .await
            .map_err(self.query_error("leave the cluster"))?;
        sqlx::query("UPDATE leases SET expires_at = 0 WHERE node = $1")
            .bind(node)
            .execute(&mut *tx)
            .await
            .map_err(self.query_error("release a leaving node's leases"))?;
        tx.commit().await.map_err(self.query_error("commit"))
    }
}

impl Coordinator for PgStore {
    fn heartbeat<'a>(&'a self, member: &'a Member, ttl: Duration) -> BoxFuture<'a, Result<Vec<Member>, StorageError>> {
        Box::pin(async move { Ok(self.heartbeat_member(member, ttl).await?) })
    }

    fn acquire<'a>(
        &'a self,
        node: &'a str,
        keys: &'a [String],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<Lease>, StorageError>> {
        Box::pin(async move { Ok(self.acquire_leases(node, keys, ttl).await?) })
    }

    fn release<'a>(&'a self, node: &'a str, keys: &'a [String]) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move { Ok(self.release_leases(node, keys).await?) })
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move { Ok(self.leave_cluster(node).await?) })
    }
}

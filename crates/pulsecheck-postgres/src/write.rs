//! Applying [`WriteEvent`]s in one transaction, with fencing.
//!
//! Consecutive runs of a batch are written together: the state upserts and the result
//! rows of all of them in one statement each (UNNEST of arrays), so that a batch of a
//! thousand runs costs a handful of round trips; transitions, incidents and
//! notifications (a few per batch) are written per row, in order.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use pulsecheck_core::cluster::Fence;
use pulsecheck_core::outbox::AlertEvent;
use pulsecheck_core::state::{State, Transition};
use pulsecheck_core::storage::rows;
use pulsecheck_core::storage::{RunRecord, WriteEvent};
use sqlx::PgConnection;

use crate::error::PgError;
use crate::store::{PgStore, DB_NOW};
use pulsecheck_core::storage::encoding as codes;
use pulsecheck_core::storage::encoding::{duration_ms, to_ms, EncodedResult};

/// Milliseconds tried after a result's own when its key is taken.
const MAX_KEY_PROBES: i64 = 1_000;

impl PgStore {
    /// Applies `events` in order in one transaction: all of them or none, except runs
    /// whose fence is not current, which are dropped (and counted, see
    /// [`PgStore::fenced_runs`]). `now` stamps `updated_at` and new notifications'
    /// `created_at` / `next_attempt_at`.
    pub async fn write(&self, events: &[WriteEvent], now: jiff::Timestamp) -> Result<(), PgError> {
        let now = to_ms(now);
        let mut tx = self.inner.pool.begin().await.map_err(self.query_error("begin"))?;
        let current = self.current_fences(&mut tx, events).await?;
        let mut ids = HashMap::new();
        let mut dropped = 0_u64;
        let mut runs: Vec<&RunRecord> = Vec::new();
        for event in events {
            match event {
                WriteEvent::Run(run) => {
                    if run.fence.as_ref().is_some_and(|f| !current.contains(f)) {
                        dropped += 1;
                    } else {
                        runs.push(run);
                    }
                }
                WriteEvent::Notify { notifications } => {
                    self.write_runs(&mut tx, &mut ids, &runs, now).await?;
                    runs.clear();
                    for (channel, event) in notifications {
                        self.insert_notification(&mut tx, channel, event, None, now).await?;
                    }
                }
                WriteEvent::RegisterChecks { checks, retire_others } => {
                    self.write_runs(&mut tx, &mut ids, &runs, now).await?;
                    runs.clear();
                    self.register_checks(&mut tx, &mut ids, checks, *retire_others, now)
                        .await?;
                }
            }
        }
        self.write_runs(&mut tx, &mut ids, &runs, now).await?;
        tx.commit().await.map_err(self.query_error("commit"))?;
        self.inner
            .check_ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend(ids);
        if dropped > 0 {
            self.inner.fenced_runs.fetch_add(dropped, Ordering::Relaxed);
            tracing::warn!(
                node = %self.inner.node,
                dropped,
                "dropped runs whose lease this node no longer holds (another node owns those checks now)"
            );
        }
        Ok(())
    }

    /// The fences of `events` that are current: the lease has that node and epoch and
    /// has not expired by the database's clock. The rows are locked `FOR SHARE` until
    /// the transaction ends, so a takeover waits for this write to commit.
    async fn current_fences(&self, conn: &mut PgConnection, events: &[WriteEvent]) -> Result<HashSet<Fence>, PgError> {
        let mut keys: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                WriteEvent::Run(run) => run.fence.as_ref().map(|f| f.key.as_str()),
                _ => None,
            })
            .collect();
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        keys.sort_unstable();
        keys.dedup();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(&format!(
            "SELECT key, node, epoch FROM leases
             WHERE key = ANY($1) AND expires_at > {DB_NOW}
             ORDER BY key FOR SHARE"
        ))
        .bind(&keys)
        .fetch_all(&mut *conn)
        .await
        .map_err(self.query_error("check the fences of a batch"))?;
        Ok(rows
            .into_iter()
            .map(|(key, node, epoch)| Fence { key, node, epoch })
            .collect())
    }

    /// The numbers of `names` in `check_ids`, assigned on first use; `ids` collects the
    /// ones this transaction looked up (cached once it commits).
    async fn check_ids(
        &self,
        conn: &mut PgConnection,
        ids: &mut HashMap<String, i64>,
        names: &[&str],
    ) -> Result<(), PgError> {
        let mut missing: Vec<&str> = {
            let cached = self.inner.check_ids.lock().unwrap_or_else(|p| p.into_inner());
            names
                .iter()
                .copied()
                .filter(|n| !ids.contains_key(*n) && !cached.contains_key(*n))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        // Sorted, so that two nodes numbering the same new checks lock them in one order.
        missing.sort_unstable();
        missing.dedup();
        sqlx::query("INSERT INTO check_ids (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING")
            .bind(&missing)
            .execute(&mut *conn)
            .await
            .map_err(self.query_error("number checks"))?;
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT name, id FROM check_ids WHERE name = ANY($1)")
            .bind(&missing)
            .fetch_all(&mut *conn)
            .await
            .map_err(self.query_error("look up check numbers"))?;
        ids.extend(rows);
        Ok(())
    }

    fn check_id(&self, ids: &HashMap<String, i64>, name: &str) -> Result<i64, PgError> {
        if let Some(id) = ids.get(name) {
            return Ok(*id);
        }
        let cached = self.inner.check_ids.lock().unwrap_or_else(|p| p.into_inner());
        cached
            .get(name)
            .copied()
            .ok_or_else(|| self.corrupt("look up a check number", format!("check {name} has none")))
    }

    /// A check's number as `results.check_id` (INTEGER) holds it. check_ids stops
    /// numbering there, so only a database changed by hand has a larger one: an error
    /// that says so, never a wrapped number that would file results under another check.
    fn results_check_id(&self, ids: &HashMap<String, i64>, name: &str) -> Result<i32, PgError> {
        let id = self.check_id(ids, name)?;
        i32::try_from(id).map_err(|_| {
            self.corrupt(
                "number a result",
                format!(
                    "check {name} has number {id}, beyond the {} that results.check_id holds",
                    i32::MAX
                ),
            )
        })
    }

    async fn register_checks(
        &self,
        conn: &mut PgConnection,
        ids: &mut HashMap<String, i64>,
        checks: &[pulsecheck_core::storage::CheckMeta],
        retire_others: bool,
        now: i64,
    ) -> Result<(), PgError> {
        if retire_others {
            sqlx::query("UPDATE checks SET active = 0, updated_at = $1 WHERE active = 1")
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(self.query_error("retire checks"))?;
        }
        // Last definition of a name wins, as when applied one by one.
        let mut by_name: HashMap<&str, &pulsecheck_core::storage::CheckMeta> = HashMap::new();
        for meta in checks {
            by_name.insert(&meta.name, meta);
        }
        let mut metas: Vec<_> = by_name.into_values().collect();
        metas.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<&str> = metas.iter().map(|m| m.name.as_str()).collect();
        let groups: Vec<Option<&str>> = metas.iter().map(|m| m.group.as_deref()).collect();
        let targets: Vec<&str> = metas.iter().map(|m| m.target.as_str()).collect();
        let origins: Vec<&str> = metas.iter().map(|m| crate::console::origin_str(m.origin)).collect();
        sqlx::query(
            "INSERT INTO checks (name, check_group, target, origin, active, updated_at)
             SELECT n, g, t, o, 1, $5 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(n, g, t, o)
             ON CONFLICT (name) DO UPDATE SET
                 check_group = excluded.check_group,
                 target = excluded.target,
                 origin = excluded.origin,
                 active = 1,
                 updated_at = excluded.updated_at",
        )
        .bind(&names)
        .bind(&groups)
        .bind(&targets)
        .bind(&origins)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(self.query_error("register checks"))?;
        self.check_ids(conn, ids, &names).await
    }

    /// Writes consecutive runs: states and results in bulk, then each run's transition,
    /// incident and notifications in order.
    async fn write_runs(
        &self,
        conn: &mut PgConnection,
        ids: &mut HashMap<String, i64>,
        runs: &[&RunRecord],
        now: i64,
    ) -> Result<(), PgError> {
        if runs.is_empty() {
            return Ok(());
        }
        // Runs of quorum checks tally their locations (see quorum.rs), the others as ever.
        let (mut located, plain): (Vec<&RunRecord>, Vec<&RunRecord>) = runs.iter().partition(|r| r.quorum.is_some());
        if !plain.is_empty() {
            self.upsert_states(conn, &plain, now).await?;
        }
        let names: Vec<&str> = runs.iter().map(|r| r.check.as_str()).collect();
        self.check_ids(conn, ids, &names).await?;
        self.insert_results(conn, ids, runs).await?;
        // By check (stable: a check's runs stay in order), so that nodes lock check rows
        // in one order.
        located.sort_by(|a, b| a.check.cmp(&b.check));
        for run in &located {
            if let Some(quorum) = &run.quorum {
                self.write_located(conn, run, quorum, now).await?;
            }
        }
        for run in plain {
            let Some(transition) = &run.transition else {
                for (channel, event) in &run.notifications {
                    self.insert_notification(conn, channel, event, None, now).await?;
                }
                continue;
            };
            let transition_id = self.insert_transition(conn, &run.check, transition).await?;
            // The results that caused it stay raw for the full retention.
            let id = self.check_id(ids, &run.check)?;
            let causes: Vec<i64> = transition.cause.iter().map(|c| to_ms(c.at)).collect();
            sqlx::query("UPDATE results SET kind = kind | $3 WHERE check_id = $1 AND started_at = ANY($2)")
                .bind(id)
                .bind(&causes)
                .bind(codes::KEEP_BIT as i16)
                .execute(&mut *conn)
                .await
                .map_err(self.query_error("keep a transition's cause"))?;
            for (channel, event) in &run.notifications {
                self.insert_notification(conn, channel, event, Some(transition_id), now)
                    .await?;
            }
        }
        Ok(())
    }

    /// One upsert for the state and latest-result columns of every check in `runs` (the
    /// last run of a check wins, as when applied in order).
    async fn upsert_states(&self, conn: &mut PgConnection, runs: &[&RunRecord], now: i64) -> Result<(), PgError> {
        let mut last: HashMap<&str, &RunRecord> = HashMap::with_capacity(runs.len());
        for run in runs {
            last.insert(&run.check, run);
        }
        let mut latest: Vec<&RunRecord> = last.into_values().collect();
        // Sorted, so that concurrent writers lock check rows in one order.
        latest.sort_by(|a, b| a.check.cmp(&b.check));
        let n = latest.len();
        let (mut names, mut targets, mut states, mut since, mut streaks) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut at, mut outcomes, mut reasons, mut errors, mut durations) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for run in latest {
            let streak =
                serde_json::to_string(&run.state.streak).map_err(|e| self.corrupt("encode streak", e.to_string()))?;
            names.push(run.check.as_str());
            targets.push(run.result.target.as_str());
            states.push(run.state.state.as_str());
            since.push(run.state.since.map(to_ms));
            streaks.push(streak);
            at.push(to_ms(run.result.started_at));
            outcomes.push(run.result.outcome.as_str());
            reasons.push(run.result.reason.map(|r| r.as_str()));
            errors.push(run.result.error.as_deref());
            durations.push(duration_ms(run.result.duration_ms));
        }
        sqlx::query(
            "INSERT INTO checks (name, target, state, since, streak, last_result_at, last_outcome,
                                 last_reason, last_error, last_duration_ms, updated_at)
             SELECT *, $11 FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                                       $6::bigint[], $7::text[], $8::text[], $9::text[], $10::float8[])
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
        .bind(&names)
        .bind(&targets)
        .bind(&states)
        .bind(&since)
        .bind(&streaks)
        .bind(&at)
        .bind(&outcomes)
        .bind(&reasons)
        .bind(&errors)
        .bind(&durations)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(self.query_error("upsert check states"))?;
        Ok(())
    }

    /// One insert for every result of `runs`. The key is (check, millisecond): a result
    /// whose millisecond is taken (only a clock step backwards makes one) moves to the
    /// next free one, as in SQLite.
    async fn insert_results(
        &self,
        conn: &mut PgConnection,
        ids: &HashMap<String, i64>,
        runs: &[&RunRecord],
    ) -> Result<(), PgError> {
        let mut rows = ResultRows::default();
        let mut taken: HashSet<(i32, i64)> = HashSet::with_capacity(runs.len());
        for run in runs {
            let id = self.results_check_id(ids, &run.check)?;
            let mut started_at = to_ms(run.result.started_at);
            // Within the batch, a duplicate key moves on here; against stored rows, below.
            while !taken.insert((id, started_at)) {
                started_at = started_at.saturating_add(1);
            }
            rows.push(
                id,
                started_at,
                &run.result,
                run.quorum.as_ref().map(|q| q.location.clone()),
            );
        }
        let inserted: Vec<(i32, i64)> = rows
            .bind(sqlx::query_as(
                "INSERT INTO results (check_id, started_at, kind, http_status, duration_us, queue_us, phases,
                                      ip, http_version, http_version_text, redirects, cert_days_left, error,
                                      location)
                 SELECT * FROM unnest($1::int[], $2::bigint[], $3::smallint[], $4::smallint[], $5::bigint[],
                                      $6::bigint[], $7::bytea[], $8::bytea[], $9::smallint[], $10::text[],
                                      $11::smallint[], $12::int[], $13::text[], $14::text[])
                 ON CONFLICT (check_id, started_at) DO NOTHING
                 RETURNING check_id, started_at",
            ))
            .fetch_all(&mut *conn)
            .await
            .map_err(self.query_error("insert results"))?;
        if inserted.len() == rows.check_id.len() {
            return Ok(());
        }
        let inserted: HashSet<(i32, i64)> = inserted.into_iter().collect();
        for i in 0..rows.check_id.len() {
            if !inserted.contains(&(rows.check_id[i], rows.started_at[i])) {
                self.insert_result_probing(conn, &rows, i).await?;
            }
        }
        Ok(())
    }

    async fn insert_result_probing(&self, conn: &mut PgConnection, rows: &ResultRows, i: usize) -> Result<(), PgError> {
        let first = rows.started_at[i];
        // The same result already stored: a batch retried after its commit was lost with
        // the connection (the commit may have happened). Stored once, not moved on.
        let same: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM results WHERE check_id = $1 AND started_at = $2
                              AND kind & ~$3 = $4 AND duration_us = $5 AND queue_us = $6
                              AND error IS NOT DISTINCT FROM $7)",
        )
        .bind(rows.check_id[i])
        .bind(first)
        .bind(codes::KEEP_BIT as i16)
        .bind(rows.kind[i])
        .bind(rows.duration_us[i])
        .bind(rows.queue_us[i])
        .bind(&rows.error[i])
        .fetch_one(&mut *conn)
        .await
        .map_err(self.query_error("compare a result with the stored one"))?;
        if same {
            return Ok(());
        }
        for probe in 1..=MAX_KEY_PROBES {
            let done = sqlx::query(
                "INSERT INTO results (check_id, started_at, kind, http_status, duration_us, queue_us, phases,
                                      ip, http_version, http_version_text, redirects, cert_days_left, error,
                                      location)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                 ON CONFLICT (check_id, started_at) DO NOTHING",
            )
            .bind(rows.check_id[i])
            .bind(first.saturating_add(probe))
            .bind(rows.kind[i])
            .bind(rows.http_status[i])
            .bind(rows.duration_us[i])
            .bind(rows.queue_us[i])
            .bind(&rows.phases[i])
            .bind(&rows.ip[i])
            .bind(rows.http_version[i])
            .bind(&rows.http_version_text[i])
            .bind(rows.redirects[i])
            .bind(rows.cert_days_left[i])
            .bind(&rows.error[i])
            .bind(&rows.location[i])
            .execute(&mut *conn)
            .await
            .map_err(self.query_error("insert result"))?;
            if done.rows_affected() > 0 {
                return Ok(());
            }
        }
        Err(self.corrupt(
            "insert result",
            format!("check {}: no free millisecond near {first}", rows.check_id[i]),
        ))
    }

    pub(crate) async fn insert_transition(
        &self,
        conn: &mut PgConnection,
        check: &str,
        transition: &Transition,
    ) -> Result<i64, PgError> {
        let cause = serde_json::to_string(&transition.cause)
            .map_err(|e| self.corrupt("encode transition cause", e.to_string()))?;
        let at = to_ms(transition.at);
        // Already stored (a retried batch whose commit was lost with the connection):
        // the same id, so derived notification keys match and nothing is sent twice.
        let stored: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM transitions WHERE check_name = $1 AND at = $2 AND from_state = $3 AND to_state = $4",
        )
        .bind(check)
        .bind(at)
        .bind(transition.from.as_str())
        .bind(transition.to.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(self.query_error("look up a stored transition"))?;
        if let Some(id) = stored {
            return Ok(id);
        }
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
                "UPDATE incidents SET ended_at = $1, closed_by = $2 WHERE check_name = $3 AND ended_at IS NULL",
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
            // between extends the open incident instead of failing on the unique index.
            sqlx::query(
                "INSERT INTO incidents (check_name, started_at, opened_by) VALUES ($1, $2, $3)
                 ON CONFLICT (check_name) WHERE ended_at IS NULL DO NOTHING",
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

    pub(crate) async fn insert_notification(
        &self,
        conn: &mut PgConnection,
        channel: &str,
        event: &AlertEvent,
        transition_id: Option<i64>,
        now: i64,
    ) -> Result<(), PgError> {
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

/// The columns of a batch of results, one array each, for UNNEST.
#[derive(Default)]
struct ResultRows {
    check_id: Vec<i32>,
    started_at: Vec<i64>,
    kind: Vec<i16>,
    http_status: Vec<Option<i16>>,
    duration_us: Vec<i64>,
    queue_us: Vec<i64>,
    phases: Vec<Option<Vec<u8>>>,
    ip: Vec<Option<Vec<u8>>>,
    http_version: Vec<Option<i16>>,
    http_version_text: Vec<Option<String>>,
    redirects: Vec<i16>,
    cert_days_left: Vec<Option<i32>>,
    error: Vec<Option<String>>,
    location: Vec<Option<String>>,
}

impl ResultRows {
    /// One result, its values narrowed to the compact table's columns (0004): they
    /// saturate instead of wrapping, and none of them reaches its column's limit
    /// (a kind has 10 bits, statuses are 100-999, redirects are capped by config).
    fn push(&mut self, check_id: i32, started_at: i64, r: &pulsecheck_core::CheckResult, location: Option<String>) {
        let e = EncodedResult::of(r);
        let small = |v: i64| i16::try_from(v).unwrap_or(if v < 0 { i16::MIN } else { i16::MAX });
        self.check_id.push(check_id);
        self.started_at.push(started_at);
        self.kind.push(small(e.kind));
        self.http_status.push(e.http_status.map(small));
        self.duration_us.push(e.duration_us);
        self.queue_us.push(e.queue_us);
        self.phases.push(e.phases);
        self.ip.push(e.ip);
        self.http_version.push(e.http_version.map(small));
        self.http_version_text.push(e.http_version_text);
        self.redirects.push(small(e.redirects));
        self.cert_days_left.push(
            e.cert_days_left
                .map(|d| i32::try_from(d).unwrap_or(if d < 0 { i32::MIN } else { i32::MAX })),
        );
        self.error.push(e.error);
        self.location.push(location);
    }

    fn bind<'q, O>(
        &'q self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        query
            .bind(&self.check_id)
            .bind(&self.started_at)
            .bind(&self.kind)
            .bind(&self.http_status)
            .bind(&self.duration_us)
            .bind(&self.queue_us)
            .bind(&self.phases)
            .bind(&self.ip)
            .bind(&self.http_version)
            .bind(&self.http_version_text)
            .bind(&self.redirects)
            .bind(&self.cert_days_left)
            .bind(&self.error)
            .bind(&self.location)
    }
}

//! Location quorum on PostgreSQL: each location's state, the check-level tally in the
//! write transaction, second-opinion requests, and the per-location view.
//!
//! A located run locks its check's row (`SELECT ... FOR UPDATE`) before it upserts its
//! location's state and counts the locations down, so runs from several nodes tally one
//! after the other and exactly one of them sees the count cross `min_down`: that one
//! writes the check-level transition, incident and notifications, as a plain check
//! would. The others write their location's state and result only. While the check
//! stays down, the same locked row decides its reminders (`last_alert_at`), so the check
//! reminds once per interval however many locations and nodes write.
//!
//! A second-opinion request is announced with `NOTIFY` on [`RECHECK_CHANNEL`] (payload:
//! the location asked) in the transaction that writes it, so nodes listening there run
//! the re-check as soon as it commits; polling stays as the fallback.

use std::collections::HashMap;

use pulsecheck_core::monitor::acknowledgement_covers;
use pulsecheck_core::outbox::{AlertKind, BoxFuture};
use pulsecheck_core::quorum::{Located, Recheck, RecheckWakeups};
use pulsecheck_core::state::{CheckState, State, Transition};
use pulsecheck_core::storage::console::LocationView;
use pulsecheck_core::storage::encoding::{duration_ms, from_ms, to_ms};
use pulsecheck_core::storage::{RunRecord, StorageError};
use pulsecheck_core::Outcome;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgConnection;

use crate::error::PgError;
use crate::store::PgStore;

/// The `LISTEN`/`NOTIFY` channel of second-opinion requests; the payload is the
/// location asked to re-check.
pub const RECHECK_CHANNEL: &str = "pulsecheck_rechecks";

/// How long the listener waits for its connection before the attempt fails (and the
/// node polls until it subscribes again).
const LISTENER_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A `LISTEN` on [`RECHECK_CHANNEL`] for one location (see [`PgStore::listen_rechecks`]).
pub struct RecheckListener {
    listener: PgListener,
    location: String,
    store: PgStore,
}

impl RecheckListener {
    /// Returns when a request for this location was announced, or when the connection
    /// was lost and re-established (announcements in between are lost: take now). An
    /// error means it could not reconnect.
    pub async fn next(&mut self) -> Result<(), PgError> {
        loop {
            match self.listener.try_recv().await {
                Ok(Some(announced)) if announced.payload() == self.location => return Ok(()),
                Ok(Some(_)) => continue,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.store.query_error("wait for second-opinion requests")(e)),
            }
        }
    }
}

impl RecheckWakeups for RecheckListener {
    fn next(&mut self) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move { Ok(RecheckListener::next(self).await?) })
    }
}

impl PgStore {
    /// Writes one run of a quorum check after its result row: the location's state,
    /// the tally, and when it flips the check, the check-level transition with the
    /// notifications the monitor attached for that direction. Also asks the other
    /// locations for a second opinion on a first failure while the check is not down.
    pub(crate) async fn write_located(
        &self,
        conn: &mut PgConnection,
        run: &RunRecord,
        located: &Located,
        now: i64,
    ) -> Result<(), PgError> {
        let check = run.check.as_str();
        sqlx::query("INSERT INTO checks (name, target, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(check)
            .bind(&run.result.target)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(self.query_error("register a quorum check"))?;
        // Serializes every location's write of this check, whichever node makes it.
        let (current, since, last_alert): (String, Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT state, since, last_alert_at FROM checks WHERE name = $1 FOR UPDATE")
                .bind(check)
                .fetch_one(&mut *conn)
                .await
                .map_err(self.query_error("lock a quorum check"))?;
        let current = State::parse(&current)
            .ok_or_else(|| self.corrupt("decode state", format!("check {check}: {current:?}")))?;
        let streak =
            serde_json::to_string(&run.state.streak).map_err(|e| self.corrupt("encode streak", e.to_string()))?;
        let r = &run.result;
        sqlx::query(
            "INSERT INTO location_states (check_name, location, state, since, streak, last_result_at, last_outcome,
                                          last_reason, last_error, last_duration_ms, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (check_name, location) DO UPDATE SET
                 state = excluded.state, since = excluded.since, streak = excluded.streak,
                 last_result_at = excluded.last_result_at, last_outcome = excluded.last_outcome,
                 last_reason = excluded.last_reason, last_error = excluded.last_error,
                 last_duration_ms = excluded.last_duration_ms, updated_at = excluded.updated_at",
        )
        .bind(check)
        .bind(&located.location)
        .bind(run.state.state.as_str())
        .bind(run.state.since.map(to_ms))
        .bind(&streak)
        .bind(to_ms(r.started_at))
        .bind(r.outcome.as_str())
        .bind(r.reason.map(|x| x.as_str()))
        .bind(r.error.as_deref())
        .bind(duration_ms(r.duration_ms))
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(self.query_error("upsert a location's state"))?;
        let down: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM location_states WHERE check_name = $1 AND location = ANY($2) AND state = 'down'",
        )
        .bind(check)
        .bind(&located.quorum.locations)
        .fetch_one(&mut *conn)
        .await
        .map_err(self.query_error("count the locations down"))?;
        let down = usize::try_from(down).unwrap_or(0);
        let decided = located.quorum.decide(current, down, run.state.state);
        let at = r.started_at;
        let (state, since) = match decided {
            Some(next) => (next, Some(to_ms(at))),
            None => (current, since),
        };
        let last_alert = match decided {
            Some(to) => {
                let alerts = self.write_flip(conn, run, current, to, now).await?;
                tracing::info!(
                    check,
                    location = %located.location,
                    from = %current,
                    to = %to,
                    down,
                    min_down = located.quorum.min_down,
                    notifications = alerts,
                    "quorum changed the check's state"
                );
                // Reminders count from the down alert; a muted one leaves the first due.
                (to == State::Down && alerts > 0).then(|| to_ms(at))
            }
            None if current == State::Down => self.write_reminder(conn, run, located, since, last_alert, now).await?,
            None => last_alert,
        };
        // The latest result of any location is the check's latest result.
        sqlx::query(
            "UPDATE checks SET state = $2, since = $3, streak = CASE WHEN $4 THEN $5 ELSE streak END,
                    last_result_at = $6, last_outcome = $7, last_reason = $8, last_error = $9,
                    last_duration_ms = $10, updated_at = $11, last_alert_at = $12
             WHERE name = $1",
        )
        .bind(check)
        .bind(state.as_str())
        .bind(since)
        .bind(decided.is_some())
        .bind(&streak)
        .bind(to_ms(at))
        .bind(r.outcome.as_str())
        .bind(r.reason.map(|x| x.as_str()))
        .bind(r.error.as_deref())
        .bind(duration_ms(r.duration_ms))
        .bind(now)
        .bind(last_alert)
        .execute(&mut *conn)
        .await
        .map_err(self.query_error("update a quorum check's state"))?;

        // A second opinion: the first failure here, while the check is not down, asks
        // the other locations to re-check now. The key bounds it to one pending request
        // per check and location.
        let first_failure = r.outcome == Outcome::Down && run.state.state != State::Down
            || run.transition.as_ref().is_some_and(|t| t.to == State::Down);
        if first_failure && state != State::Down {
            let others: Vec<&str> = located
                .quorum
                .locations
                .iter()
                .map(String::as_str)
                .filter(|l| *l != located.location)
                .collect();
            // Announced on commit (NOTIFY is transactional), only for new requests: a
            // pending one was announced when it was written.
            sqlx::query(
                "WITH added AS (
                     INSERT INTO recheck_requests (location, check_name, requested_at)
                     SELECT unnest($1::text[]), $2, $3 ON CONFLICT (location, check_name) DO NOTHING
                     RETURNING location)
                 SELECT pg_notify($4, location) FROM added",
            )
            .bind(&others)
            .bind(check)
            .bind(now)
            .bind(RECHECK_CHANNEL)
            .execute(&mut *conn)
            .await
            .map_err(self.query_error("request a second opinion"))?;
        }
        Ok(())
    }

    /// Writes the check-level transition the tally decided, with the run's candidate
    /// notifications for its direction; returns how many it wrote.
    async fn write_flip(
        &self,
        conn: &mut PgConnection,
        run: &RunRecord,
        from: State,
        to: State,
        now: i64,
    ) -> Result<usize, PgError> {
        let check = run.check.as_str();
        let at = run.result.started_at;
        let cause = run
            .transition
            .as_ref()
            .map_or_else(|| run.state.streak.clone(), |t| t.cause.clone());
        let transition = Transition { from, to, at, cause };
        let id = self.insert_transition(conn, check, &transition).await?;
        let wanted = match (from, to) {
            (_, State::Down) => Some(AlertKind::Down),
            (State::Down, State::Up) => Some(AlertKind::Resolved),
            _ => None,
        };
        let mut written = 0;
        for (channel, event) in &run.notifications {
            if Some(event.kind) != wanted {
                continue;
            }
            // The alert is about the check, not the location that tipped it (after a
            // reload that lowered `min_down`, that location may even be up).
            let mut event = event.clone();
            event.from = from.as_str().to_owned();
            event.to = to.as_str().to_owned();
            event.at = at;
            self.insert_notification(conn, channel, &event, Some(id), now).await?;
            written += 1;
        }
        Ok(written)
    }

    /// While the check stays down: writes the run's reminder candidates when the run's
    /// terms say one is due (the same rules as a plain check's). Returns the check's new
    /// `last_alert_at`.
    async fn write_reminder(
        &self,
        conn: &mut PgConnection,
        run: &RunRecord,
        located: &Located,
        since: Option<i64>,
        last_alert: Option<i64>,
        now: i64,
    ) -> Result<Option<i64>, PgError> {
        let Some(terms) = &located.reminder else {
            return Ok(last_alert);
        };
        let at = run.result.started_at;
        if !terms.due(since.map(from_ms), last_alert.map(from_ms), at) {
            return Ok(last_alert);
        }
        // An acknowledgement made through another node's API is in the store before it
        // is in this node's policy: the open incident's counts too, by the same rule.
        let acknowledged_span: Option<i64> = sqlx::query_scalar(
            "SELECT started_at FROM incidents
             WHERE check_name = $1 AND ended_at IS NULL AND acknowledged_at IS NOT NULL",
        )
        .bind(&run.check)
        .fetch_optional(&mut *conn)
        .await
        .map_err(self.query_error("look up the acknowledgement of a quorum check's incident"))?;
        if acknowledgement_covers(acknowledged_span.map(from_ms), since.map(from_ms)) {
            return Ok(last_alert);
        }
        let mut reminded = 0;
        for (channel, event) in &run.notifications {
            if event.kind == AlertKind::Reminder {
                // Keyed by the check, kind and `at`: the same on a retried batch.
                self.insert_notification(conn, channel, event, None, now).await?;
                reminded += 1;
            }
        }
        if reminded == 0 {
            return Ok(last_alert);
        }
        tracing::info!(check = %run.check, location = %located.location, channels = reminded, "quorum check still down: reminder");
        Ok(Some(to_ms(at)))
    }

    /// Takes the second-opinion requests for `location` among `checks` (the quorum
    /// checks this node holds there): each is deleted and returned once, to be run now.
    pub async fn take_rechecks(&self, location: &str, checks: &[String]) -> Result<Vec<Recheck>, PgError> {
        if checks.is_empty() {
            return Ok(Vec::new());
        }
        let mut taken: Vec<(String, i64)> = sqlx::query_as(
            "DELETE FROM recheck_requests WHERE location = $1 AND check_name = ANY($2)
             RETURNING check_name, requested_at",
        )
        .bind(location)
        .bind(checks)
        .fetch_all(&self.inner.pool)
        .await
        .map_err(self.query_error("take second-opinion requests"))?;
        taken.sort();
        Ok(taken
            .into_iter()
            .map(|(check, requested_at)| Recheck {
                check,
                requested_at: from_ms(requested_at),
            })
            .collect())
    }

    /// Listens for second-opinion requests written for `location`, on a connection of
    /// its own (not one of the pool's, which it would hold for good).
    pub async fn listen_rechecks(&self, location: &str) -> Result<RecheckListener, PgError> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(LISTENER_CONNECT_TIMEOUT)
            // The listener keeps its connection; the pool only reconnects it.
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(self.inner.connect.clone());
        let mut listener = PgListener::connect_with(&pool)
            .await
            .map_err(self.query_error("connect the second-opinion listener"))?;
        listener
            .listen(RECHECK_CHANNEL)
            .await
            .map_err(self.query_error("listen for second-opinion requests"))?;
        Ok(RecheckListener {
            listener,
            location: location.to_owned(),
            store: self.clone(),
        })
    }

    /// Every pending second-opinion request, `(check, location)`, sorted.
    pub async fn pending_rechecks(&self) -> Result<Vec<(String, String)>, PgError> {
        sqlx::query_as("SELECT check_name, location FROM recheck_requests ORDER BY check_name, location")
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.query_error("list second-opinion requests"))
    }

    /// The persisted state of located lease keys (`check@location`), for a node taking
    /// a location of a quorum check over.
    pub(crate) async fn load_location_states(&self, keys: &[String]) -> Result<HashMap<String, CheckState>, PgError> {
        let (checks, locations): (Vec<&str>, Vec<&str>) = keys.iter().filter_map(|k| k.rsplit_once('@')).unzip();
        if checks.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, String, String, Option<i64>, String)> = sqlx::query_as(
            "SELECT s.check_name, s.location, s.state, s.since, s.streak
             FROM unnest($1::text[], $2::text[]) AS k(c, l)
             JOIN location_states s ON s.check_name = k.c AND s.location = k.l",
        )
        .bind(&checks)
        .bind(&locations)
        .fetch_all(&self.inner.pool)
        .await
        .map_err(self.query_error("load location states"))?;
        let mut states = HashMap::with_capacity(rows.len());
        for (check, location, state, since, streak) in rows {
            let state =
                State::parse(&state).ok_or_else(|| self.corrupt("decode state", format!("{check}@{location}")))?;
            let streak = serde_json::from_str(&streak)
                .map_err(|e| self.corrupt("decode streak", format!("{check}@{location}: {e}")))?;
            states.insert(
                format!("{check}@{location}"),
                CheckState {
                    state,
                    since: since.map(from_ms),
                    streak,
                },
            );
        }
        Ok(states)
    }

    /// Each location's latest state of `check`, sorted by location; empty for a check
    /// without a quorum.
    pub async fn location_views(&self, check: &str) -> Result<Vec<LocationView>, PgError> {
        type Row = (
            String,
            String,
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT location, state, since, last_result_at, last_outcome, last_reason, last_error
             FROM location_states WHERE check_name = $1 ORDER BY location",
        )
        .bind(check)
        .fetch_all(&self.inner.pool)
        .await
        .map_err(self.query_error("load location states"))?;
        let check_state: Option<String> = sqlx::query_scalar("SELECT state FROM checks WHERE name = $1")
            .bind(check)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(self.query_error("load a check's state"))?;
        let check_state = check_state.and_then(|s| State::parse(&s)).unwrap_or_default();
        let mut views = Vec::with_capacity(rows.len());
        for (location, state, since, last_at, outcome, reason, error) in rows {
            let state =
                State::parse(&state).ok_or_else(|| self.corrupt("decode state", format!("{check}@{location}")))?;
            views.push(LocationView {
                disagrees: state != State::Unknown && check_state != State::Unknown && state != check_state,
                location,
                state,
                since: since.map(from_ms),
                last_result_at: last_at.map(from_ms),
                last_outcome: outcome.map(|o| self.outcome(&o)).transpose()?,
                last_reason: reason.map(|r| self.reason(&r)).transpose()?,
                last_error: error,
            });
        }
        Ok(views)
    }
}

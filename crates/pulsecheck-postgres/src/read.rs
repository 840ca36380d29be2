//! Reading rows back: persisted states, outbox rows, and typed column access.

use std::collections::HashMap;

use pulsecheck_core::outbox::{AlertEvent, DeliveryState};
use pulsecheck_core::state::{CheckState, State};
use pulsecheck_core::storage::console::NotificationRecord;
use pulsecheck_core::{Outcome, Reason};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::error::PgError;
use crate::store::PgStore;
use pulsecheck_core::storage::encoding::from_ms;

impl PgStore {
    /// The persisted state of every known check, to resume after a restart.
    pub async fn load_states(&self) -> Result<HashMap<String, CheckState>, PgError> {
        let rows = sqlx::query("SELECT name, state, since, streak FROM checks")
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.query_error("load states"))?;
        self.states_of_rows(&rows)
    }

    /// The persisted state of `checks` (those without one are missing): one indexed
    /// query, for a node taking checks over.
    pub async fn load_states_of(&self, checks: &[String]) -> Result<HashMap<String, CheckState>, PgError> {
        let rows = sqlx::query("SELECT name, state, since, streak FROM checks WHERE name = ANY($1)")
            .bind(checks)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.query_error("load states"))?;
        let mut states = self.states_of_rows(&rows)?;
        // Located keys (check@location) of quorum checks resume from their location.
        states.extend(self.load_location_states(checks).await?);
        Ok(states)
    }

    fn states_of_rows(&self, rows: &[PgRow]) -> Result<HashMap<String, CheckState>, PgError> {
        let mut states = HashMap::with_capacity(rows.len());
        for row in rows {
            let name: String = self.get(row, "name")?;
            let state = self.state_col(row, "state")?;
            let since: Option<i64> = self.get(row, "since")?;
            let streak: String = self.get(row, "streak")?;
            let streak = serde_json::from_str(&streak)
                .map_err(|e| self.corrupt("decode streak", format!("check {name}: {e}")))?;
            states.insert(
                name,
                CheckState {
                    state,
                    since: since.map(from_ms),
                    streak,
                },
            );
        }
        Ok(states)
    }

    pub(crate) fn notification_record(&self, row: &PgRow) -> Result<NotificationRecord, PgError> {
        let id: i64 = self.get(row, "id")?;
        let event: String = self.get(row, "event")?;
        let event: AlertEvent = serde_json::from_str(&event)
            .map_err(|e| self.corrupt("decode notification event", format!("notification {id}: {e}")))?;
        let state: String = self.get(row, "state")?;
        let state = parse_delivery_state(&state)
            .ok_or_else(|| self.corrupt("decode notification state", format!("notification {id}: {state:?}")))?;
        Ok(NotificationRecord {
            id,
            check: self.get(row, "check_name")?,
            channel: self.get(row, "channel")?,
            idempotency_key: self.get(row, "idempotency_key")?,
            kind: event.kind,
            event,
            transition_id: self.get(row, "transition_id")?,
            state,
            attempts: u32::try_from(self.get::<i32>(row, "attempts")?).unwrap_or(0),
            created_at: from_ms(self.get(row, "created_at")?),
            next_attempt_at: from_ms(self.get(row, "next_attempt_at")?),
            delivered_at: self.get::<Option<i64>>(row, "delivered_at")?.map(from_ms),
            last_error: self.get(row, "last_error")?,
        })
    }

    pub(crate) fn get<'r, T>(&self, row: &'r PgRow, column: &'static str) -> Result<T, PgError>
    where
        T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        row.try_get(column).map_err(self.query_error(column))
    }

    pub(crate) fn state_col(&self, row: &PgRow, column: &'static str) -> Result<State, PgError> {
        let text: String = self.get(row, column)?;
        State::parse(&text).ok_or_else(|| self.corrupt("decode state", format!("{column} = {text:?}")))
    }

    pub(crate) fn outcome(&self, text: &str) -> Result<Outcome, PgError> {
        [Outcome::Up, Outcome::Down, Outcome::Cancelled]
            .into_iter()
            .find(|o| o.as_str() == text)
            .ok_or_else(|| self.corrupt("decode outcome", format!("{text:?}")))
    }

    pub(crate) fn reason(&self, text: &str) -> Result<Reason, PgError> {
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| self.corrupt("decode reason", format!("{text:?}")))
    }
}

pub(crate) fn delivery_state_str(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Pending => "pending",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Dead => "dead",
    }
}

fn parse_delivery_state(text: &str) -> Option<DeliveryState> {
    match text {
        "pending" => Some(DeliveryState::Pending),
        "delivered" => Some(DeliveryState::Delivered),
        "dead" => Some(DeliveryState::Dead),
        _ => None,
    }
}

pub(crate) fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

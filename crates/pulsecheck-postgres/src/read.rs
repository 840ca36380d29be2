//! Reading rows back: PostgreSQL rows as core's [`Columns`], whose decoding into core
//! types (`pulsecheck_core::storage::rows`) SQLite shares; persisted states.

use std::collections::HashMap;

use pulsecheck_core::state::CheckState;
use pulsecheck_core::storage::console::NotificationRecord;
use pulsecheck_core::storage::rows::{self, Columns, RowError};
use pulsecheck_core::{Outcome, Reason};
use sqlx::postgres::PgRow;
use sqlx::{Column, Row, TypeInfo};

use crate::error::PgError;
use crate::store::PgStore;

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
        rows.iter().map(|row| self.decode(row, rows::check_state)).collect()
    }

    pub(crate) fn notification_record(&self, row: &PgRow) -> Result<NotificationRecord, PgError> {
        self.decode(row, rows::notification_record)
    }

    /// Reads `row` into a core type through the shared decoding of [`rows`].
    pub(crate) fn decode<'r, T>(
        &self,
        row: &'r PgRow,
        decode: impl FnOnce(&PgColumns<'r>) -> Result<T, RowError>,
    ) -> Result<T, PgError> {
        decode(&PgColumns(row)).map_err(|e| self.row_error(e))
    }

    pub(crate) fn row_error(&self, error: RowError) -> PgError {
        match error.split::<sqlx::Error>() {
            Ok((column, source)) => self.query_error(column)(source),
            Err((context, detail)) => self.corrupt(context, detail),
        }
    }

    pub(crate) fn outcome(&self, text: &str) -> Result<Outcome, PgError> {
        rows::parse_outcome_text(text).map_err(|e| self.row_error(e))
    }

    pub(crate) fn reason(&self, text: &str) -> Result<Reason, PgError> {
        rows::parse_reason_text(text).map_err(|e| self.row_error(e))
    }
}

/// A PostgreSQL row as [`Columns`]: integers of any width (the compact results table
/// has SMALLINT and INTEGER columns) widen to `i64`.
pub(crate) struct PgColumns<'r>(pub(crate) &'r PgRow);

fn column_error(column: &'static str) -> impl FnOnce(sqlx::Error) -> RowError {
    move |source| RowError::Column {
        column,
        source: Box::new(source),
    }
}

impl Columns for PgColumns<'_> {
    fn int(&self, column: &'static str) -> Result<Option<i64>, RowError> {
        let row = self.0;
        let width = row.try_column(column).map_err(column_error(column))?.type_info().name();
        match width {
            "INT2" => Ok(row
                .try_get::<Option<i16>, _>(column)
                .map_err(column_error(column))?
                .map(i64::from)),
            "INT4" => Ok(row
                .try_get::<Option<i32>, _>(column)
                .map_err(column_error(column))?
                .map(i64::from)),
            _ => row.try_get(column).map_err(column_error(column)),
        }
    }

    fn float(&self, column: &'static str) -> Result<Option<f64>, RowError> {
        self.0.try_get(column).map_err(column_error(column))
    }

    fn text(&self, column: &'static str) -> Result<Option<String>, RowError> {
        self.0.try_get(column).map_err(column_error(column))
    }

    fn bytes(&self, column: &'static str) -> Result<Option<Vec<u8>>, RowError> {
        self.0.try_get(column).map_err(column_error(column))
    }
}

pub(crate) fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

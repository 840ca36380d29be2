//! `/status.json`: the counts by state and the down checks, which the list page polls
//! every 10 s to update its summary and its down list without a reload. Two bounded
//! reads (the group counts and a page of down checks), so polling stays cheap.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::format;
use super::list::{down_checks, CheckRow, Totals};
use super::{stores, PageError};
use crate::auth::ReadAccess;
use crate::AppState;

#[derive(Serialize)]
pub struct Counts {
    pub up: u64,
    pub down: u64,
    pub unknown: u64,
    pub total: u64,
}

#[derive(Serialize)]
pub struct DownCheck {
    pub name: String,
    pub href: String,
    pub group: Option<String>,
    pub since: String,
    pub since_iso: String,
    pub ago: String,
    pub reason: Option<String>,
    pub error: Option<String>,
}

#[derive(Serialize)]
pub struct Status {
    /// When this was read (UTC, as the page writes it) and as RFC 3339.
    pub generated: String,
    pub generated_iso: String,
    pub headline: String,
    pub counts: Counts,
    pub down: Vec<DownCheck>,
    /// Down checks beyond those listed.
    pub more_down: u64,
}

pub async fn handler(_: ReadAccess, State(app): State<AppState>) -> Result<Response, PageError> {
    let status = read(&app, jiff::Timestamp::now()).await?;
    let body = serde_json::to_vec(&status).map_err(|e| {
        PageError::Store(pulsecheck_core::storage::StorageError {
            message: format!("cannot encode the status: {e}"),
            transient: false,
        })
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response())
}

pub async fn read(app: &AppState, now: jiff::Timestamp) -> Result<Status, PageError> {
    let (console, _) = stores(app)?;
    let totals = Totals::of(&console.group_counts().await?);
    let down = down_checks(console.as_ref(), &totals).await?;
    Ok(Status {
        generated: format::utc(now),
        generated_iso: format::iso(now),
        headline: totals.headline(),
        counts: Counts {
            up: totals.up,
            down: totals.down,
            unknown: totals.unknown,
            total: totals.total(),
        },
        more_down: totals.down.saturating_sub(down.len() as u64),
        down: down
            .iter()
            .map(|c| {
                let row = CheckRow::new(c, now);
                DownCheck {
                    name: row.name,
                    href: row.href,
                    group: c.group.clone(),
                    since: row.since,
                    since_iso: row.since_iso,
                    ago: row.ago,
                    reason: (!row.reason.is_empty()).then_some(row.reason),
                    error: (!row.error.is_empty()).then_some(row.error),
                }
            })
            .collect(),
    })
}

//! A check's past: its results (paginated), uptime over 24 h, 7 d, 30 d and 90 d,
//! latency percentiles and the hourly phase series, and its incidents.

use axum::extract::State;
use axum::Json;
use pulsecheck_core::storage::history::{RecordedResult, ResultPage, SpanPage};
use serde::{Deserialize, Serialize};

use super::checks::Page;
use super::error::ApiError;
use super::extract::{self, ApiPath, ApiQuery};
use crate::auth::ReadAccess;
use crate::AppState;

/// The windows uptime is reported over, and latency may be asked for.
pub const WINDOWS: [(&str, i64); 4] = [("24h", 24), ("7d", 7 * 24), ("30d", 30 * 24), ("90d", 90 * 24)];

fn window(name: &str) -> Result<jiff::SignedDuration, ApiError> {
    WINDOWS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, hours)| jiff::SignedDuration::from_hours(*hours))
        .ok_or_else(|| {
            ApiError::bad_request(format!("window {name:?} is not one of 24h, 7d, 30d, 90d")).field("window")
        })
}

/// 404 unless the store or the config knows the check.
async fn known(app: &AppState, name: &str) -> Result<(), ApiError> {
    let console = app.console().ok_or_else(ApiError::no_store)?;
    if app.config().check(name).is_some() || console.check_summary(name).await?.is_some() {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "there is no check '{name}'; list checks with GET /api/v1/checks"
        )))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultParams {
    /// Results that started before this time (the `next` of the previous page).
    before: Option<String>,
    limit: Option<usize>,
}

pub async fn results(
    State(app): State<AppState>,
    _access: ReadAccess,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<ResultParams>,
) -> Result<Json<Page<RecordedResult, jiff::Timestamp>>, ApiError> {
    let history = app.history().ok_or_else(ApiError::no_store)?;
    known(&app, &name).await?;
    let limit = extract::limit(params.limit)?;
    let before = params
        .before
        .as_deref()
        .map(|b| extract::timestamp("before", b))
        .transpose()?;
    let items = history.recent_results(&name, ResultPage { before, limit }).await?;
    let next = (items.len() == limit)
        .then(|| items.last().map(|r| r.started_at))
        .flatten();
    Ok(Json(Page { items, next }))
}

#[derive(Serialize)]
pub struct UptimeWindow {
    window: &'static str,
    runs: u64,
    up: u64,
    /// `null` without runs in the window.
    percent: Option<f64>,
}

pub async fn uptime(
    State(app): State<AppState>,
    _access: ReadAccess,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let console = app.console().ok_or_else(ApiError::no_store)?;
    known(&app, &name).await?;
    let now = jiff::Timestamp::now();
    let windows: Vec<(jiff::Timestamp, jiff::Timestamp)> = WINDOWS
        .iter()
        .map(|(_, hours)| (now - jiff::SignedDuration::from_hours(*hours), now))
        .collect();
    let checks = [name.clone()];
    let rows = console.uptimes(&checks, &windows).await?;
    let row = rows.into_iter().next().unwrap_or_default();
    let windows: Vec<UptimeWindow> = WINDOWS
        .iter()
        .zip(row.iter().copied().chain(std::iter::repeat(Default::default())))
        .map(|((window, _), uptime)| UptimeWindow {
            window,
            runs: uptime.runs,
            up: uptime.up,
            percent: uptime.percent(),
        })
        .collect();
    Ok(Json(serde_json::json!({ "check": name, "windows": windows })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyParams {
    /// 24h (default), 7d, 30d or 90d.
    window: Option<String>,
}

pub async fn latency(
    State(app): State<AppState>,
    _access: ReadAccess,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<LatencyParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let console = app.console().ok_or_else(ApiError::no_store)?;
    known(&app, &name).await?;
    let window_name = params.window.unwrap_or_else(|| "24h".to_owned());
    let span = window(&window_name)?;
    let until = jiff::Timestamp::now();
    let since = until - span;
    let percentiles = console.latency_percentiles(&name, since, until).await?;
    let series = console.latency_series(&name, since, until).await?;
    Ok(Json(serde_json::json!({
        "check": name,
        "window": window_name,
        "since": since,
        "until": until,
        "percentiles": percentiles,
        "hourly": series,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentParams {
    /// Incidents with an id below this (the `next` of the previous page).
    before: Option<i64>,
    limit: Option<usize>,
}

pub async fn incidents(
    State(app): State<AppState>,
    _access: ReadAccess,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<IncidentParams>,
) -> Result<Json<Page<pulsecheck_core::storage::console::IncidentRecord, i64>>, ApiError> {
    known(&app, &name).await?;
    super::incidents::page(&app, Some(name), params.before, params.limit)
        .await
        .map(Json)
}

pub fn span_page(check: Option<String>, before_id: Option<i64>, limit: usize) -> SpanPage {
    SpanPage {
        check,
        before_id,
        limit,
    }
}

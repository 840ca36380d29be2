//! Incidents (down spans opened by a down transition and closed by the up one), their
//! operators' updates, and acknowledgement (which stops reminders for the span).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pulsecheck_core::storage::console::{IncidentRecord, IncidentStatus};
use serde::Deserialize;

use super::checks::Page;
use super::error::ApiError;
use super::extract::{self, ApiPath, ApiQuery, JsonBody};
use crate::auth::{MutationAccess, ReadAccess};
use crate::AppState;

/// Longest update message.
const MAX_MESSAGE_CHARS: usize = 10_000;

pub async fn page(
    app: &AppState,
    check: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
) -> Result<Page<IncidentRecord, i64>, ApiError> {
    let console = app.console().ok_or_else(ApiError::no_store)?;
    let limit = extract::limit(limit)?;
    let items = console
        .incident_page(&super::history::span_page(check, before, limit))
        .await?;
    let next = (items.len() == limit)
        .then(|| items.last().map(|i| i.span.id))
        .flatten();
    Ok(Page { items, next })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    check: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
}

pub async fn list(
    State(app): State<AppState>,
    _access: ReadAccess,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Page<IncidentRecord, i64>>, ApiError> {
    page(&app, params.check, params.before, params.limit).await.map(Json)
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!(
        "there is no incident {id}; list incidents with GET /api/v1/incidents"
    ))
}

pub async fn get(
    State(app): State<AppState>,
    _access: ReadAccess,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<IncidentRecord>, ApiError> {
    let console = app.console().ok_or_else(ApiError::no_store)?;
    console.incident(id).await?.map(Json).ok_or_else(|| not_found(id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    status: IncidentStatus,
    message: String,
}

pub async fn add_update(
    State(app): State<AppState>,
    _access: MutationAccess,
    ApiPath(id): ApiPath<i64>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Response, ApiError> {
    let console = app.console().ok_or_else(ApiError::no_store)?;
    let message = body.message.trim();
    if message.is_empty() {
        return Err(ApiError::bad_request("message is empty; say what is known").field("message"));
    }
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(
            ApiError::bad_request(format!("message is longer than {MAX_MESSAGE_CHARS} characters")).field("message"),
        );
    }
    let update = console
        .add_incident_update(id, body.status, message, jiff::Timestamp::now())
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok((StatusCode::CREATED, Json(update)).into_response())
}

pub async fn acknowledge(
    State(app): State<AppState>,
    _access: MutationAccess,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<IncidentRecord>, ApiError> {
    let console = app.console().ok_or_else(ApiError::no_store)?;
    let record = console
        .acknowledge_incident(id, jiff::Timestamp::now())
        .await?
        .ok_or_else(|| not_found(id))?;
    // Only an open span still has reminders to stop.
    if record.span.ended_at.is_none() {
        if let Some(control) = app.control() {
            control.acknowledge(&record.span.check, record.span.started_at).await?;
        }
    }
    Ok(Json(record))
}

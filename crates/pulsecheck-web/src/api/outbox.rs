//! The outbox: notifications with their delivery record (pending, delivered, dead
//! letters), newest first, and redelivery of one.

use axum::extract::State;
use axum::Json;
use pulsecheck_core::outbox::DeliveryState;
use pulsecheck_core::storage::console::{NotificationRecord, OutboxPage};
use serde::Deserialize;

use super::checks::Page;
use super::error::ApiError;
use super::extract::{self, ApiPath, ApiQuery};
use crate::auth::{MutationAccess, ReadAccess};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// pending, delivered or dead.
    state: Option<DeliveryState>,
    check: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
}

pub async fn list(
    State(app): State<AppState>,
    _access: ReadAccess,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Page<NotificationRecord, i64>>, ApiError> {
    let console = app.console().ok_or_else(ApiError::no_store)?;
    let limit = extract::limit(params.limit)?;
    let items = console
        .outbox_page(&OutboxPage {
            check: params.check,
            state: params.state,
            before_id: params.before,
            limit,
        })
        .await?;
    let next = (items.len() == limit).then(|| items.last().map(|n| n.id)).flatten();
    Ok(Json(Page { items, next }))
}

/// Puts a dead (or pending) notification back in its queue, due now.
pub async fn redeliver(
    State(app): State<AppState>,
    _access: MutationAccess,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<NotificationRecord>, ApiError> {
    let console = app.console().ok_or_else(ApiError::no_store)?;
    console
        .redeliver(id, jiff::Timestamp::now())
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "there is no notification {id}; list them with GET /api/v1/outbox?state=dead"
            ))
        })
}

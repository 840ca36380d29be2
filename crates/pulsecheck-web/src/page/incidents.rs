//! `/incidents` (open incidents first, then the timeline, newest first, paginated by
//! id) and `/incidents/{id}`: cause, duration, acknowledgement, and the operators'
//! updates with their status.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use pulsecheck_core::state::State as CheckState;
use pulsecheck_core::storage::console::{CheckFilter, CheckPage, IncidentRecord};
use pulsecheck_core::storage::history::SpanPage;
use serde::Deserialize;

use super::format;
use super::{html, stores, PageError};
use crate::auth::ReadAccess;
use crate::AppState;

/// Incidents per page of the timeline.
pub const PAGE_SIZE: usize = 30;

/// Open incidents listed above the timeline.
pub const OPEN_SHOWN: usize = 25;

pub struct UpdateView {
    pub at: String,
    pub at_iso: String,
    pub status: &'static str,
    pub message: String,
}

/// An incident as every page shows it.
pub struct IncidentView {
    pub id: i64,
    pub href: String,
    pub check: String,
    pub check_href: String,
    pub open: bool,
    pub started: String,
    pub started_iso: String,
    pub ended: String,
    pub ended_iso: String,
    pub duration: String,
    pub reason: String,
    pub error: String,
    pub acknowledged: String,
    pub updates: Vec<UpdateView>,
}

impl IncidentView {
    pub fn new(record: &IncidentRecord, now: jiff::Timestamp) -> IncidentView {
        let span = &record.span;
        IncidentView {
            id: span.id,
            href: format::incident_href(span.id),
            check: span.check.clone(),
            check_href: format::check_href(&span.check),
            open: span.ended_at.is_none(),
            started: format::utc(span.started_at),
            started_iso: format::iso(span.started_at),
            ended: span.ended_at.map(format::utc).unwrap_or_default(),
            ended_iso: span.ended_at.map(format::iso).unwrap_or_default(),
            duration: format::span(span.duration(now)),
            reason: span.reason.map(|r| r.as_str().to_owned()).unwrap_or_default(),
            error: span.error.clone().unwrap_or_default(),
            acknowledged: record.acknowledged_at.map(format::utc).unwrap_or_default(),
            updates: record
                .updates
                .iter()
                .map(|u| UpdateView {
                    at: format::utc(u.at),
                    at_iso: format::iso(u.at),
                    status: u.status.as_str(),
                    message: u.message.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "incidents.html")]
pub struct IncidentsPage {
    pub rendered: String,
    pub open: Vec<IncidentView>,
    pub open_more: bool,
    pub timeline: Vec<IncidentView>,
    pub next: Option<String>,
    pub paged: bool,
}

#[derive(Template)]
#[template(path = "incident.html")]
pub struct IncidentPage {
    pub rendered: String,
    pub incident: IncidentView,
}

#[derive(Debug, Default, Deserialize)]
pub struct TimelineQuery {
    /// Incidents with a smaller id (kept as text so that a bad value gets this page's 400).
    pub before: Option<String>,
}

pub async fn list(
    _: ReadAccess,
    State(app): State<AppState>,
    Query(query): Query<TimelineQuery>,
) -> Result<Response, PageError> {
    let (console, _) = stores(&app)?;
    let before = match query.before.as_deref().filter(|b| !b.is_empty()) {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| PageError::BadRequest(format!("before must be an incident number, not {text:?}")))?,
        ),
    };
    let now = jiff::Timestamp::now();
    // Open incidents are those of the checks down now (one each).
    let mut open = Vec::new();
    let mut open_more = false;
    if before.is_none() {
        let down = console
            .check_page(&CheckPage {
                filter: CheckFilter {
                    state: Some(CheckState::Down),
                    ..CheckFilter::default()
                },
                after: None,
                limit: OPEN_SHOWN + 1,
            })
            .await?;
        open_more = down.len() > OPEN_SHOWN;
        for check in down.iter().take(OPEN_SHOWN) {
            if let Some(id) = check.open_incident {
                if let Some(record) = console.incident(id).await? {
                    open.push(IncidentView::new(&record, now));
                }
            }
        }
    }
    let mut records = console
        .incident_page(&SpanPage {
            check: None,
            before_id: before,
            limit: PAGE_SIZE + 1,
        })
        .await?;
    let more = records.len() > PAGE_SIZE;
    records.truncate(PAGE_SIZE);
    let next = match (more, records.last()) {
        (true, Some(last)) => Some(format!("/incidents?before={}", last.span.id)),
        _ => None,
    };
    // Newest first, like the timeline, which does not repeat them.
    open.sort_by_key(|i| std::cmp::Reverse(i.id));
    let shown: std::collections::HashSet<i64> = open.iter().map(|i| i.id).collect();
    html(&IncidentsPage {
        rendered: format::utc(now),
        open,
        open_more,
        timeline: records
            .iter()
            .filter(|r| !shown.contains(&r.span.id))
            .map(|r| IncidentView::new(r, now))
            .collect(),
        next,
        paged: before.is_some(),
    })
}

pub async fn one(_: ReadAccess, State(app): State<AppState>, Path(id): Path<String>) -> Result<Response, PageError> {
    let (console, _) = stores(&app)?;
    let not_found = || PageError::NotFound {
        what: format!("There is no incident {id:?}."),
        hint: "Incidents are numbered; the list of incidents links to each.".to_owned(),
    };
    let number: i64 = id.parse().map_err(|_| not_found())?;
    let record = console.incident(number).await?.ok_or_else(not_found)?;
    let now = jiff::Timestamp::now();
    html(&IncidentPage {
        rendered: format::utc(now),
        incident: IncidentView::new(&record, now),
    })
}

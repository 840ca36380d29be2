//! `/feed.atom`: the latest incidents as an Atom feed (RFC 4287). An entry's `updated`
//! moves when the incident closes or an operator adds an update, so feed readers show
//! it again. Links are absolute, built from the request's `Host` (and
//! `X-Forwarded-Proto` behind a TLS proxy), as Atom wants.

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use pulsecheck_core::storage::console::IncidentRecord;
use pulsecheck_core::storage::history::SpanPage;

use super::{format, stores, PageError};
use crate::auth::ReadAccess;
use crate::AppState;

/// Incidents in the feed.
pub const ENTRIES: usize = 50;

pub struct Entry {
    pub href: String,
    pub title: String,
    pub published: String,
    pub updated: String,
    pub status: &'static str,
    pub content: String,
}

#[derive(Template)]
#[template(path = "feed.xml")]
pub struct Feed {
    pub base: String,
    pub updated: String,
    pub entries: Vec<Entry>,
}

/// `http://host:port` of this listener as the client reached it.
fn base_url(headers: &HeaderMap, app: &AppState) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c)))
        .map(str::to_owned)
        .unwrap_or_else(|| app.server().listen.to_string());
    let scheme = match headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

/// When the incident last changed: its start, its end, or its latest update.
fn last_change(record: &IncidentRecord) -> jiff::Timestamp {
    let mut at = record.span.started_at;
    if let Some(ended) = record.span.ended_at {
        at = at.max(ended);
    }
    if let Some(ack) = record.acknowledged_at {
        at = at.max(ack);
    }
    for update in &record.updates {
        at = at.max(update.at);
    }
    at
}

fn entry(record: &IncidentRecord, now: jiff::Timestamp) -> Entry {
    let span = &record.span;
    let reason = span.reason.map(|r| r.as_str()).unwrap_or("unknown reason");
    let duration = format::span(span.duration(now));
    let title = match span.ended_at {
        None => format!("{} is down ({reason})", span.check),
        Some(_) => format!("{} was down for {duration} ({reason})", span.check),
    };
    let mut content = format!("{} went down at {}", span.check, format::utc(span.started_at));
    match span.ended_at {
        None => content.push_str(&format!(" and has been down for {duration}.")),
        Some(ended) => content.push_str(&format!(" and came back up at {} ({duration}).", format::utc(ended))),
    }
    content.push_str(&format!("\nCause: {reason}"));
    if let Some(error) = &span.error {
        content.push_str(&format!(": {error}"));
    }
    if let Some(ack) = record.acknowledged_at {
        content.push_str(&format!("\nAcknowledged at {}.", format::utc(ack)));
    }
    for update in &record.updates {
        content.push_str(&format!(
            "\n{} {}: {}",
            format::utc(update.at),
            update.status.as_str(),
            update.message
        ));
    }
    Entry {
        href: format::incident_href(span.id),
        title: format::clean(&title),
        published: format::iso(span.started_at),
        updated: format::iso(last_change(record)),
        status: if span.ended_at.is_none() { "open" } else { "resolved" },
        content: format::clean(&content),
    }
}

pub async fn handler(_: ReadAccess, State(app): State<AppState>, headers: HeaderMap) -> Result<Response, PageError> {
    let (console, _) = stores(&app)?;
    let now = jiff::Timestamp::now();
    let records = console
        .incident_page(&SpanPage {
            check: None,
            before_id: None,
            limit: ENTRIES,
        })
        .await?;
    // An empty feed is stamped now; otherwise with its latest change.
    let updated = records.iter().map(last_change).max().unwrap_or(now);
    let feed = Feed {
        base: base_url(&headers, &app),
        updated: format::iso(updated),
        entries: records.iter().map(|r| entry(r, now)).collect(),
    };
    let body = feed.render()?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/atom+xml; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("max-age=60")),
        ],
        body,
    )
        .into_response())
}

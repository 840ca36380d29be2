//! The status page: server-rendered HTML (askama templates compiled into the binary),
//! with no external CDN, font or script, so that it works offline and behind a strict
//! Content-Security-Policy. Every page reads a bounded amount: a page of checks, one
//! batch of uptimes, aggregates rather than results.
//!
//! - [`list`]: `/`, the summary, the groups, the down checks and a page of checks;
//! - [`check`]: `/checks/{name}`, one check's uptime, daily bar, latency and results;
//! - [`incidents`]: `/incidents` and `/incidents/{id}`;
//! - [`badge`]: `/badge/{check}/status.svg` and `/badge/{check}/uptime-30d.svg`;
//! - [`feed`]: `/feed.atom`, the incidents as an Atom feed;
//! - [`live`]: `/status.json`, which the list page polls to update itself;
//! - [`svg`]: the inline charts; [`format`]: how times and figures are written.

pub mod badge;
pub mod check;
pub mod feed;
pub mod format;
pub mod incidents;
pub mod list;
pub mod live;
pub mod svg;

use std::sync::Arc;

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use pulsecheck_core::storage::console::DayUptime;
use pulsecheck_core::storage::history::Uptime;
use pulsecheck_core::storage::{Console, History, StorageError};

use crate::AppState;

/// The windows of the uptime columns, in order, with their labels.
pub const WINDOWS: [(&str, i64); 4] = [("24 h", 1), ("7 d", 7), ("30 d", 30), ("90 d", 90)];

/// Days in the daily uptime bar.
pub const BAR_DAYS: i64 = 90;

/// The page's routes, merged into the listener's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(list::handler))
        .route("/checks/{name}", get(check::handler))
        .route("/incidents", get(incidents::list))
        .route("/incidents/{id}", get(incidents::one))
        .route("/badge/{check}/status.svg", get(badge::status))
        .route("/badge/{check}/uptime-30d.svg", get(badge::uptime_30d))
        .route("/feed.atom", get(feed::handler))
        .route("/status.json", get(live::handler))
}

/// Why a page could not be shown; each renders as a page that says what to do.
#[derive(Debug)]
pub enum PageError {
    NotFound {
        what: String,
        hint: String,
    },
    BadRequest(String),
    /// The listener runs without a store (only `/metrics` and `/probe` work then).
    NoStore,
    Store(StorageError),
    Render(askama::Error),
}

impl From<StorageError> for PageError {
    fn from(e: StorageError) -> Self {
        PageError::Store(e)
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::Render(e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    message: String,
    hint: String,
    rendered: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message, hint) = match self {
            PageError::NotFound { what, hint } => (StatusCode::NOT_FOUND, "Not found".to_owned(), what, hint),
            PageError::BadRequest(message) => (
                StatusCode::BAD_REQUEST,
                "Bad request".to_owned(),
                message,
                "Fix the address, or start again from the list of checks.".to_owned(),
            ),
            PageError::NoStore => (
                StatusCode::SERVICE_UNAVAILABLE,
                "No store".to_owned(),
                "This listener has no store to read checks and history from.".to_owned(),
                "The status page is served by `pulsecheck serve`, which keeps its SQLite database (--db); start it that way."
                    .to_owned(),
            ),
            PageError::Store(e) => {
                tracing::warn!(error = %e.message, "status page: the store did not answer");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Store unavailable".to_owned(),
                    format!("The store did not answer: {}.", e.message),
                    if e.transient {
                        "This is usually brief (the database is busy): reload in a few seconds.".to_owned()
                    } else {
                        "Check the daemon's log and the database file (disk space, permissions), then reload."
                            .to_owned()
                    },
                )
            }
            PageError::Render(e) => {
                tracing::error!(error = %e, "status page: a template failed to render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Page error".to_owned(),
                    format!("The page could not be rendered: {e}."),
                    "This is a bug in pulsecheck; the daemon's log has the details. Other pages still work.".to_owned(),
                )
            }
        };
        let page = ErrorPage {
            title,
            message,
            hint,
            rendered: format::utc(jiff::Timestamp::now()),
        };
        match page.render() {
            Ok(body) => (status, html_headers(), body).into_response(),
            Err(_) => (status, format!("{}\n", page.message)).into_response(),
        }
    }
}

/// The store's two read sides.
pub type Reads<'a> = (&'a Arc<dyn Console>, &'a Arc<dyn History>);

/// The store's two read sides, or the 503 that says there is none.
pub fn stores(app: &AppState) -> Result<Reads<'_>, PageError> {
    match (app.console(), app.history()) {
        (Some(console), Some(history)) => Ok((console, history)),
        _ => Err(PageError::NoStore),
    }
}

/// Headers of every HTML page: never cached (state changes every few seconds), and a
/// policy under which the browser loads nothing from anywhere but this listener.
pub fn html_headers() -> [(header::HeaderName, HeaderValue); 4] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            ),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ]
}

/// A rendered template as a page.
pub fn html<T: Template>(page: &T) -> Result<Response, PageError> {
    Ok((html_headers(), page.render()?).into_response())
}

/// The rolling windows the store is asked for (24 h, 7 d, 30 d, ending at `now`). The
/// 90-day figure is the sum of the daily bar's days instead: those are read anyway, and
/// a 90-day window would triple the rows the batch scans. So "90 d" is exactly what the
/// bar shows (today and the 89 UTC days before).
pub fn windows(now: jiff::Timestamp) -> Vec<(jiff::Timestamp, jiff::Timestamp)> {
    WINDOWS[..3]
        .iter()
        .map(|(_, days)| (now - jiff::SignedDuration::from_hours(24 * days), now))
        .collect()
}

/// One uptime cell: its window's label, the figure and its class.
#[derive(Clone, Debug)]
pub struct UptimeCell {
    pub label: &'static str,
    pub text: String,
    pub class: &'static str,
}

/// The cells of one check, in [`WINDOWS`] order: the store's windows (`no data` where
/// it gave none), then the 90 days of `days`.
pub fn uptime_cells(uptimes: Option<&Vec<Uptime>>, days: &[DayUptime]) -> Vec<UptimeCell> {
    let ninety = days.iter().fold(Uptime::default(), |u, d| Uptime {
        runs: u.runs + d.runs,
        up: u.up + d.up,
    });
    WINDOWS
        .iter()
        .enumerate()
        .map(|(i, (label, _))| {
            let u = match i {
                3 => ninety,
                _ => uptimes.and_then(|u| u.get(i)).copied().unwrap_or_default(),
            };
            UptimeCell {
                label,
                text: format::uptime(&u),
                class: format::uptime_class(&u),
            }
        })
        .collect()
}

/// The first UTC midnight of the daily bar that ends today.
pub fn bar_start(now: jiff::Timestamp) -> jiff::Timestamp {
    let today = now.as_second().div_euclid(86_400) * 86_400;
    jiff::Timestamp::from_second(today - (BAR_DAYS - 1) * 86_400).unwrap_or(now)
}

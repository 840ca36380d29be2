//! Shields-style flat badges: `/badge/{check}/status.svg` (up, down, unknown) and
//! `/badge/{check}/uptime-30d.svg`. Cached for a short while only, since they are
//! embedded in READMEs and dashboards that should show the state of the last minute.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pulsecheck_core::state::State as CheckState;

use super::{format, stores, PageError};
use crate::auth::ReadAccess;
use crate::AppState;

/// How long a client or a proxy may keep a badge.
const CACHE: &str = "max-age=60";

const GREEN: &str = "#2c8a3e";
const YELLOW: &str = "#b58900";
const ORANGE: &str = "#c75c00";
const RED: &str = "#c9302c";
const GREY: &str = "#6b6b6b";

#[derive(Template)]
#[template(path = "badge.svg")]
pub struct Badge {
    pub label: String,
    pub message: String,
    pub colour: &'static str,
    pub width: u32,
    pub label_width: u32,
    pub message_width: u32,
    pub label_x: f64,
    pub message_x: f64,
}

/// Approximate width of text in 11 px Verdana, the font badges are drawn in.
fn text_width(text: &str) -> u32 {
    let tenths: u32 = text
        .chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' => 35,
            'f' | 't' | 'r' | ' ' | '(' | ')' | '-' | 'I' | '1' => 48,
            'm' | 'w' | 'M' | 'W' | '%' => 105,
            c if c.is_ascii_uppercase() => 80,
            c if c.is_ascii() => 68,
            _ => 100,
        })
        .sum();
    tenths.div_ceil(10)
}

impl Badge {
    pub fn new(label: &str, message: &str, colour: &'static str) -> Badge {
        // Long names are cut so that a badge stays a badge.
        let label: String = if label.chars().count() > 40 {
            label.chars().take(39).chain(['…']).collect()
        } else {
            label.to_owned()
        };
        let label_width = text_width(&label) + 10;
        let message_width = text_width(message) + 10;
        Badge {
            label_x: f64::from(label_width) / 2.0,
            message_x: f64::from(label_width) + f64::from(message_width) / 2.0,
            width: label_width + message_width,
            label,
            message: message.to_owned(),
            colour,
            label_width,
            message_width,
        }
    }

    fn respond(&self, status: StatusCode) -> Response {
        match self.render() {
            Ok(body) => (
                status,
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("image/svg+xml; charset=utf-8"),
                    ),
                    (header::CACHE_CONTROL, HeaderValue::from_static(CACHE)),
                    (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
                ],
                body,
            )
                .into_response(),
            Err(e) => PageError::Render(e).into_response(),
        }
    }
}

/// A badge that says the check does not exist (404, still an image, so an embed shows
/// why instead of a broken picture).
fn unknown_check(name: &str) -> Response {
    Badge::new(name, "no such check", GREY).respond(StatusCode::NOT_FOUND)
}

pub async fn status(
    _: ReadAccess,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let (console, _) = stores(&app)?;
    let Some(check) = console.check_summary(&name).await? else {
        return Ok(unknown_check(&name));
    };
    let colour = match check.state {
        CheckState::Up => GREEN,
        CheckState::Down => RED,
        CheckState::Unknown => GREY,
    };
    Ok(Badge::new(&check.name, check.state.as_str(), colour).respond(StatusCode::OK))
}

pub async fn uptime_30d(
    _: ReadAccess,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let (console, _) = stores(&app)?;
    let Some(check) = console.check_summary(&name).await? else {
        return Ok(unknown_check(&name));
    };
    let now = jiff::Timestamp::now();
    let names = [check.name.clone()];
    let window = [(now - jiff::SignedDuration::from_hours(24 * 30), now)];
    let uptime = console
        .uptimes(&names, &window)
        .await?
        .first()
        .and_then(|u| u.first())
        .copied()
        .unwrap_or_default();
    let colour = match uptime.percent() {
        None => GREY,
        Some(p) if p >= 99.9 => GREEN,
        Some(p) if p >= 99.0 => YELLOW,
        Some(p) if p >= 95.0 => ORANGE,
        Some(_) => RED,
    };
    let label = format!("{} 30d", check.name);
    Ok(Badge::new(&label, &format::uptime(&uptime), colour).respond(StatusCode::OK))
}

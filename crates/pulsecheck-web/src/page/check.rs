//! `/checks/{name}`: one check's state, uptime over four windows, the 90-day daily bar,
//! latency by phase over 24 hours and 30 days, its recent results (paginated by start
//! time) and its incidents. Reads: the summary, one batch of uptimes, one daily series,
//! two hourly series (24 and 720 points), two percentile reads, a page of results and
//! a page of incidents.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use pulsecheck_core::storage::console::Origin;
use pulsecheck_core::storage::history::{ResultPage, SpanPage};
use pulsecheck_core::Outcome;
use serde::Deserialize;

use super::format;
use super::incidents::IncidentView;
use super::{html, stores, svg, uptime_cells, PageError, UptimeCell};
use crate::auth::ReadAccess;
use crate::AppState;

/// Results per page of the results table.
pub const RESULTS_PAGE: usize = 30;

/// Incidents shown on the check page (the incidents page has the rest).
pub const INCIDENTS_SHOWN: usize = 10;

#[derive(Debug, Default, Deserialize)]
pub struct CheckQuery {
    /// Results that started before this time (RFC 3339), for the next page.
    pub before: Option<String>,
}

pub struct ResultRow {
    pub at: String,
    pub at_iso: String,
    pub outcome: &'static str,
    pub outcome_class: &'static str,
    pub reason: String,
    pub error: String,
    pub status: String,
    pub duration: String,
    pub phases: Vec<String>,
}

/// One location of a check with a location quorum.
pub struct LocationRow {
    pub location: String,
    pub state: &'static str,
    pub state_class: &'static str,
    pub last_result: String,
    pub reason: String,
    pub error: String,
    /// Its state differs from the check's.
    pub disagrees: bool,
}

pub struct Percentiles {
    pub window: &'static str,
    pub text: String,
}

pub struct Legend {
    pub name: &'static str,
    pub class: &'static str,
}

#[derive(Template)]
#[template(path = "check.html")]
pub struct CheckPageView {
    pub rendered: String,
    pub name: String,
    pub group: String,
    pub group_href: String,
    pub target: String,
    pub origin: &'static str,
    pub active: bool,
    pub state: &'static str,
    pub state_class: &'static str,
    pub since: String,
    pub since_iso: String,
    pub ago: String,
    pub reason: String,
    pub error: String,
    pub last_result: String,
    pub silenced_until: String,
    pub uptimes: Vec<UptimeCell>,
    pub bar: String,
    pub latency_24h: String,
    pub latency_30d: String,
    pub percentiles: Vec<Percentiles>,
    pub legend: Vec<Legend>,
    pub results: Vec<ResultRow>,
    pub older: Option<String>,
    pub newest: Option<String>,
    pub incidents: Vec<IncidentView>,
    pub badge_status: String,
    pub badge_uptime: String,
    /// Each location's view, for a check with a location quorum (else empty).
    pub locations: Vec<LocationRow>,
}

pub async fn handler(
    _: ReadAccess,
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<CheckQuery>,
) -> Result<Response, PageError> {
    let page = render(&app, &name, query, jiff::Timestamp::now()).await?;
    html(&page)
}

pub async fn render(
    app: &AppState,
    name: &str,
    query: CheckQuery,
    now: jiff::Timestamp,
) -> Result<CheckPageView, PageError> {
    let (console, history) = stores(app)?;
    let before = match query.before.as_deref().filter(|b| !b.is_empty()) {
        None => None,
        Some(text) => Some(text.parse::<jiff::Timestamp>().map_err(|_| {
            PageError::BadRequest(format!("before must be a time like 2026-01-02T15:04:05Z, not {text:?}"))
        })?),
    };
    let check = console.check_summary(name).await?.ok_or_else(|| PageError::NotFound {
        what: format!("There is no check named {name:?}."),
        hint: "Check names are case-sensitive; the list of checks links to each.".to_owned(),
    })?;

    let names = [check.name.clone()];
    let uptimes = console.uptimes(&names, &super::windows(now)).await?;
    let bar_start = super::bar_start(now);
    let days = console.daily_uptime(&check.name, bar_start, now).await?;

    // 24 hourly bars ending with the current hour; 30 daily bars ending today.
    let hour_now = jiff::Timestamp::from_second(now.as_second().div_euclid(3_600) * 3_600).unwrap_or(now);
    let start_24h = hour_now - jiff::SignedDuration::from_hours(23);
    let day_now = jiff::Timestamp::from_second(now.as_second().div_euclid(86_400) * 86_400).unwrap_or(now);
    let start_30d = day_now - jiff::SignedDuration::from_hours(24 * 29);
    let series_24h = console.latency_series(&check.name, start_24h, now).await?;
    let series_30d = console.latency_series(&check.name, start_30d, now).await?;
    let slots_24h = svg::latency_slots(&series_24h, start_24h, 1, 24, format::hour);
    let slots_30d = svg::latency_slots(&series_30d, start_30d, 24, 30, format::day);

    let mut percentiles = Vec::new();
    for (window, since) in [
        ("24 h", now - jiff::SignedDuration::from_hours(24)),
        ("30 d", now - jiff::SignedDuration::from_hours(24 * 30)),
    ] {
        let text = match console.latency_percentiles(&check.name, since, now).await? {
            None => "no successful run".to_owned(),
            Some(p) => format!(
                "p50 {}, p95 {}, p99 {}, mean {} over {} up runs",
                format::ms(Some(p.p50_ms)),
                format::ms(Some(p.p95_ms)),
                format::ms(Some(p.p99_ms)),
                format::ms(Some(p.mean_ms)),
                format::thousands(p.runs)
            ),
        };
        percentiles.push(Percentiles { window, text });
    }

    let mut results = history
        .recent_results(
            &check.name,
            ResultPage {
                before,
                limit: RESULTS_PAGE + 1,
            },
        )
        .await?;
    let more = results.len() > RESULTS_PAGE;
    results.truncate(RESULTS_PAGE);
    let href = format::check_href(&check.name);
    let older = match (more, results.last()) {
        (true, Some(last)) => Some(format!(
            "{href}?before={}#results",
            format::encode(&format::iso_ms(last.started_at))
        )),
        _ => None,
    };
    let incidents = console
        .incident_page(&SpanPage {
            check: Some(check.name.clone()),
            before_id: None,
            limit: INCIDENTS_SHOWN,
        })
        .await?;

    let locations = console
        .location_views(&check.name)
        .await?
        .into_iter()
        .map(|l| LocationRow {
            state: format::state_label(l.state),
            state_class: format::state_class(l.state),
            last_result: l.last_result_at.map(format::utc).unwrap_or_default(),
            reason: l.last_reason.map(|r| r.as_str().to_owned()).unwrap_or_default(),
            error: l.last_error.unwrap_or_default(),
            disagrees: l.disagrees,
            location: l.location,
        })
        .collect();
    let encoded = format::encode(&check.name);
    Ok(CheckPageView {
        locations,
        rendered: format::utc(now),
        group: check.group.clone().unwrap_or_default(),
        group_href: check
            .group
            .as_deref()
            .map(|g| format!("/?group={}", format::encode(g)))
            .unwrap_or_default(),
        target: check.target.clone(),
        origin: match check.origin {
            Origin::File => "the config file",
            Origin::Api => "the API",
        },
        active: check.active,
        state: format::state_label(check.state),
        state_class: format::state_class(check.state),
        since: check.since.map(format::utc).unwrap_or_default(),
        since_iso: check.since.map(format::iso).unwrap_or_default(),
        ago: check.since.map(|s| format::since(s, now)).unwrap_or_default(),
        reason: match check.state {
            pulsecheck_core::state::State::Down => check.last_reason.map(|r| r.as_str().to_owned()).unwrap_or_default(),
            _ => String::new(),
        },
        error: match check.state {
            pulsecheck_core::state::State::Down => check.last_error.clone().unwrap_or_default(),
            _ => String::new(),
        },
        last_result: check
            .last_result_at
            .map(|at| format!("{} ({} ago)", format::utc(at), format::since(at, now)))
            .unwrap_or_default(),
        silenced_until: check
            .silenced_until
            .filter(|until| *until > now)
            .map(format::utc)
            .unwrap_or_default(),
        uptimes: uptime_cells(uptimes.first(), &days),
        bar: svg::daily_bar(&days, bar_start),
        latency_24h: svg::latency_chart(&slots_24h, "Last 24 hours"),
        latency_30d: svg::latency_chart(&slots_30d, "Last 30 days"),
        percentiles,
        legend: svg::PHASES.iter().map(|(name, class)| Legend { name, class }).collect(),
        results: results
            .iter()
            .map(|r| ResultRow {
                at: format::utc(r.started_at),
                at_iso: format::iso(r.started_at),
                outcome: match r.outcome {
                    Outcome::Up => "Up",
                    Outcome::Down => "Down",
                    Outcome::Cancelled => "Cancelled",
                },
                outcome_class: match r.outcome {
                    Outcome::Up => "st-up",
                    Outcome::Down => "st-down",
                    Outcome::Cancelled => "st-unknown",
                },
                reason: r.reason.map(|x| x.as_str().to_owned()).unwrap_or_default(),
                error: r.error.clone().unwrap_or_default(),
                status: r.http_status.map(|s| s.to_string()).unwrap_or_default(),
                duration: format::ms(Some(r.duration_ms)),
                phases: [r.dns_ms, r.connect_ms, r.tls_ms, r.ttfb_ms, r.transfer_ms]
                    .into_iter()
                    .map(format::ms)
                    .collect(),
            })
            .collect(),
        older,
        newest: before.map(|_| format!("{href}#results")),
        incidents: incidents.iter().map(|r| IncidentView::new(r, now)).collect(),
        badge_status: format!("/badge/{encoded}/status.svg"),
        badge_uptime: format!("/badge/{encoded}/uptime-30d.svg"),
        name: check.name,
    })
}

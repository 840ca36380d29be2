//! `/`: the overall summary, the groups, the checks that are down, then a page of checks
//! (keyset-paginated by name, filtered by group and state) with their uptimes and a
//! 90-day bar. The reads are bounded whatever the number of checks: the group counts
//! (one aggregate), a page of down checks, a page of checks, one batch of uptimes, and
//! one daily series per listed check.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use pulsecheck_core::state::State as CheckState;
use pulsecheck_core::storage::console::{CheckFilter, CheckPage, CheckSummary, GroupCounts};
use pulsecheck_core::storage::{Console, StorageError};
use serde::Deserialize;

use super::format::{self, encode};
use super::{html, stores, svg, uptime_cells, PageError, UptimeCell};
use crate::auth::ReadAccess;
use crate::AppState;

/// Checks per page of the list.
pub const PAGE_SIZE: usize = 50;

/// Groups listed (those with down checks first); the rest are counted.
pub const GROUPS_SHOWN: usize = 40;

/// Down checks shown above the list (the rest are a filter away).
pub const DOWN_SHOWN: usize = 25;

/// The down checks shown above the list (and in `/status.json`): the first
/// [`DOWN_SHOWN`] by name, read only when `totals` has any.
pub async fn down_checks(console: &dyn Console, totals: &Totals) -> Result<Vec<CheckSummary>, StorageError> {
    if totals.down == 0 {
        return Ok(Vec::new());
    }
    console
        .check_page(&CheckPage {
            filter: CheckFilter {
                state: Some(CheckState::Down),
                ..CheckFilter::default()
            },
            after: None,
            limit: DOWN_SHOWN,
        })
        .await
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub after: Option<String>,
    pub group: Option<String>,
    pub state: Option<String>,
}

/// Checks by state over every group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub up: u64,
    pub down: u64,
    pub unknown: u64,
}

impl Totals {
    pub fn of(groups: &[GroupCounts]) -> Totals {
        groups.iter().fold(Totals::default(), |t, g| Totals {
            up: t.up + g.up,
            down: t.down + g.down,
            unknown: t.unknown + g.unknown,
        })
    }

    pub fn total(&self) -> u64 {
        self.up + self.down + self.unknown
    }

    /// One line for the header: "All 12 checks up", "2 of 12 checks down".
    pub fn headline(&self) -> String {
        match (self.total(), self.down) {
            (0, _) => "No checks yet".to_owned(),
            (t, 0) if self.unknown == 0 => format!("All {} up", plural(t, "check")),
            (t, 0) => format!("{} up, {} waiting for a verdict", plural_of(self.up, t), self.unknown),
            (t, d) => format!("{} down", plural_of(d, t)),
        }
    }
}

fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", format::thousands(n))
    }
}

fn plural_of(n: u64, total: u64) -> String {
    format!("{} of {}", format::thousands(n), plural(total, "check"))
}

/// A group's line in the group list.
pub struct GroupRow {
    pub label: String,
    /// `None` for checks without a group, which no filter selects.
    pub href: Option<String>,
    pub current: bool,
    pub up: u64,
    pub down: u64,
    pub unknown: u64,
}

/// A check's row (or a down check's entry).
pub struct CheckRow {
    pub name: String,
    pub href: String,
    pub group: String,
    pub target: String,
    pub state: &'static str,
    pub state_class: &'static str,
    pub since: String,
    pub since_iso: String,
    pub ago: String,
    pub reason: String,
    pub error: String,
    pub uptimes: Vec<UptimeCell>,
    pub bar: String,
    /// `until …` while the check's alerts are silenced.
    pub silenced: String,
}

impl CheckRow {
    pub fn new(check: &CheckSummary, now: jiff::Timestamp) -> CheckRow {
        CheckRow {
            name: check.name.clone(),
            href: format::check_href(&check.name),
            group: check.group.clone().unwrap_or_default(),
            target: check.target.clone(),
            state: format::state_label(check.state),
            state_class: format::state_class(check.state),
            since: check.since.map(format::utc).unwrap_or_default(),
            since_iso: check.since.map(format::iso).unwrap_or_default(),
            ago: check.since.map(|s| format::since(s, now)).unwrap_or_default(),
            reason: match check.state {
                CheckState::Down => check.last_reason.map(|r| r.as_str().to_owned()).unwrap_or_default(),
                _ => String::new(),
            },
            error: match check.state {
                CheckState::Down => check.last_error.clone().unwrap_or_default(),
                _ => String::new(),
            },
            uptimes: Vec::new(),
            bar: String::new(),
            silenced: check
                .silenced_until
                .filter(|until| *until > now)
                .map(|until| format!("until {}", format::utc(until)))
                .unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "list.html")]
pub struct ListPage {
    pub rendered: String,
    pub totals: Totals,
    pub headline: String,
    pub groups: Vec<GroupRow>,
    pub groups_more: usize,
    pub down: Vec<CheckRow>,
    /// Down checks beyond those shown, with the link that lists them.
    pub down_more: u64,
    pub filter_text: String,
    pub filtered: bool,
    pub rows: Vec<CheckRow>,
    pub next: Option<String>,
    pub first: Option<String>,
    pub group_value: String,
    pub state_value: String,
    pub windows: Vec<&'static str>,
}

/// `?group=…&state=…` for links that keep the filter.
fn filter_query(filter: &CheckFilter) -> String {
    let mut parts = Vec::new();
    if let Some(group) = &filter.group {
        parts.push(format!("group={}", encode(group)));
    }
    if let Some(state) = filter.state {
        parts.push(format!("state={}", state.as_str()));
    }
    parts.join("&")
}

pub async fn handler(
    _: ReadAccess,
    State(app): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let page = render(&app, query, jiff::Timestamp::now()).await?;
    html(&page)
}

/// Reads and builds the list page as it is at `now`.
pub async fn render(app: &AppState, query: ListQuery, now: jiff::Timestamp) -> Result<ListPage, PageError> {
    let (console, _) = stores(app)?;
    let state = match query.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(
            CheckState::parse(text)
                .ok_or_else(|| PageError::BadRequest(format!("state must be up, down or unknown, not {text:?}")))?,
        ),
    };
    let filter = CheckFilter {
        group: query.group.filter(|g| !g.is_empty()),
        state,
        ..CheckFilter::default()
    };

    let counts = console.group_counts().await?;
    let totals = Totals::of(&counts);
    // A deployment may have thousands of groups: the ones with down checks come first,
    // then by name, and the list stops at GROUPS_SHOWN.
    let mut ordered: Vec<&GroupCounts> = counts.iter().collect();
    ordered.sort_by_key(|g| (std::cmp::Reverse(g.down), g.group.clone()));
    let groups_more = ordered.len().saturating_sub(GROUPS_SHOWN);
    let groups = ordered
        .into_iter()
        .take(GROUPS_SHOWN)
        .map(|g| GroupRow {
            label: g.group.clone().unwrap_or_else(|| "(no group)".to_owned()),
            href: g.group.as_ref().map(|name| format!("/?group={}", encode(name))),
            current: g.group.is_some() && g.group == filter.group,
            up: g.up,
            down: g.down,
            unknown: g.unknown,
        })
        .collect();

    let down_checks = down_checks(console.as_ref(), &totals).await?;

    // One more than a page tells whether there is a next one.
    let mut checks = console
        .check_page(&CheckPage {
            filter: filter.clone(),
            after: query.after.clone().filter(|a| !a.is_empty()),
            limit: PAGE_SIZE + 1,
        })
        .await?;
    let more = checks.len() > PAGE_SIZE;
    checks.truncate(PAGE_SIZE);

    // Two batches for the page's checks, side by side on the store's read connections.
    let names: Vec<String> = checks.iter().map(|c| c.name.clone()).collect();
    let windows = super::windows(now);
    let bar_start = super::bar_start(now);
    let (uptimes, dailies) = if names.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        tokio::try_join!(
            console.uptimes(&names, &windows),
            console.daily_uptimes(&names, bar_start, now)
        )?
    };
    let rows = checks
        .iter()
        .zip(&dailies)
        .enumerate()
        .map(|(i, (check, days))| {
            let mut row = CheckRow::new(check, now);
            row.uptimes = uptime_cells(uptimes.get(i), days);
            row.bar = svg::compact_bar(days, bar_start);
            row
        })
        .collect();

    let query_string = filter_query(&filter);
    let next = match (more, checks.last()) {
        (true, Some(last)) => Some(if query_string.is_empty() {
            format!("/?after={}", encode(&last.name))
        } else {
            format!("/?{query_string}&after={}", encode(&last.name))
        }),
        _ => None,
    };
    let first = query
        .after
        .as_ref()
        .filter(|a| !a.is_empty())
        .map(|_| match query_string.is_empty() {
            true => "/".to_owned(),
            false => format!("/?{query_string}"),
        });
    let filter_text = match (&filter.group, filter.state) {
        (None, None) => "All checks".to_owned(),
        (Some(g), None) => format!("Checks in {g}"),
        (None, Some(s)) => format!("Checks that are {}", format::state_label(s).to_lowercase()),
        (Some(g), Some(s)) => format!("Checks in {g} that are {}", format::state_label(s).to_lowercase()),
    };
    Ok(ListPage {
        rendered: format::utc(now),
        headline: totals.headline(),
        totals,
        groups,
        groups_more,
        down_more: totals.down.saturating_sub(down_checks.len() as u64),
        down: down_checks.iter().map(|c| CheckRow::new(c, now)).collect(),
        filtered: filter.group.is_some() || filter.state.is_some(),
        filter_text,
        rows,
        next,
        first,
        group_value: filter.group.clone().unwrap_or_default(),
        state_value: filter.state.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        windows: super::WINDOWS.iter().map(|(label, _)| *label).collect(),
    })
}

//! `pulsecheck status`: the current state of every check, read from the store, as a
//! table or JSON: when each check last ran and runs next, and whether its last result is
//! too old to trust (the daemon stopped, or the check is stuck). Works whether or not
//! the daemon is running, and says which.

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use pulsecheck_core::state::State;
use pulsecheck_core::storage::console::CheckSummary;
use pulsecheck_core::storage::history::{History, ResultPage};
use serde::Serialize;

use crate::cli::{ColorChoice, StatusArgs, StatusFormat};
use crate::database::Reader;
use crate::exit::Exit;
use crate::output::cut;
use crate::when;

/// A result is stale when it is older than two intervals plus this: room for a run in
/// progress (up to its timeout) and the writer's batching.
pub const STALE_GRACE: Duration = Duration::from_secs(5);

/// One check as `status` reports it: the stored status and what its age means.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    #[serde(flatten)]
    pub status: CheckSummary,
    /// From the config (`--config`), else the gap between the last two stored results;
    /// `None` until a check has two.
    pub interval_s: Option<f64>,
    /// When the next run is due: the last run plus the interval.
    pub next_run_at: Option<jiff::Timestamp>,
    /// The last result is older than two intervals (plus a few seconds).
    pub stale: bool,
}

/// What `status` concluded about the whole store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub any_down: bool,
    pub any_stale: bool,
    /// No active check has a recent result: the daemon is not running on this store.
    pub daemon_quiet: bool,
}

impl Verdict {
    /// Stale beats down: a state nobody refreshed cannot be trusted either way.
    pub fn exit(&self) -> Exit {
        if self.daemon_quiet || self.any_stale {
            Exit::Stale
        } else if self.any_down {
            Exit::SomeDown
        } else {
            Exit::AllUp
        }
    }
}

pub fn run(args: StatusArgs) -> Exit {
    let runtime = match crate::runtime::build(crate::runtime::Threads::One) {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let now = jiff::Timestamp::now();
    let reports = runtime.block_on(async {
        let opened = crate::database::open(&args.database).await?;
        let reports = reports(&opened.reader, &opened.intervals, now).await;
        opened.reader.close().await;
        reports.map_err(|e| {
            eprintln!("error: {e}");
            Exit::Internal
        })
    });
    let reports = match reports {
        Ok(reports) => reports,
        Err(exit) => return exit,
    };
    let verdict = verdict(&reports);
    let stdout_is_tty = io::stdout().is_terminal();
    let written = match args.format {
        StatusFormat::Json => print_json(&reports),
        StatusFormat::Table => {
            let color = match args.color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => stdout_is_tty && std::env::var_os("NO_COLOR").is_none(),
            };
            let width = stdout_is_tty
                .then(|| terminal_size::terminal_size_of(io::stdout()))
                .flatten()
                .map(|(width, _)| usize::from(width.0));
            let table = table(&reports, now, color, width);
            io::stdout().lock().write_all(table.as_bytes())
        }
    };
    if let Err(e) = written {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("error: {e}");
            return Exit::Internal;
        }
    }
    if let Some(warning) = warning(&reports, &verdict, now) {
        eprintln!("{warning}");
    }
    verdict.exit()
}

/// Every check's report: intervals from the config, else estimated from the store.
pub async fn reports(
    reader: &Reader,
    intervals: &HashMap<String, Duration>,
    now: jiff::Timestamp,
) -> Result<Vec<CheckReport>, String> {
    let rows = reader.checks().await?;
    let mut reports = Vec::with_capacity(rows.len());
    for status in rows {
        let interval = match intervals.get(&status.name) {
            Some(interval) => Some(*interval),
            None if status.active => estimated_interval(reader.history.as_ref(), &status.name).await?,
            None => None,
        };
        reports.push(report(status, interval, now));
    }
    Ok(reports)
}

/// The gap between a check's last two results: its interval, since a check runs once a
/// tick and skips ticks it missed.
async fn estimated_interval(history: &dyn History, check: &str) -> Result<Option<Duration>, String> {
    let last_two = history
        .recent_results(check, ResultPage { before: None, limit: 2 })
        .await
        .map_err(|e| e.to_string())?;
    Ok(match last_two.as_slice() {
        [newest, previous] => Duration::try_from(newest.started_at.duration_since(previous.started_at))
            .ok()
            .filter(|gap| !gap.is_zero()),
        _ => None,
    })
}

pub fn report(status: CheckSummary, interval: Option<Duration>, now: jiff::Timestamp) -> CheckReport {
    let next_run_at = status
        .last_result_at
        .zip(interval)
        .and_then(|(last, interval)| last.checked_add(interval).ok());
    let stale = match (status.last_result_at, interval) {
        (Some(last), Some(interval)) if status.active => {
            Duration::try_from(now.duration_since(last)).is_ok_and(|age| age > interval * 2 + STALE_GRACE)
        }
        _ => false,
    };
    CheckReport {
        interval_s: interval.map(|i| i.as_secs_f64()),
        next_run_at,
        stale,
        status,
    }
}

pub fn verdict(reports: &[CheckReport]) -> Verdict {
    let active: Vec<&CheckReport> = reports.iter().filter(|r| r.status.active).collect();
    let judged: Vec<&&CheckReport> = active.iter().filter(|r| r.next_run_at.is_some()).collect();
    Verdict {
        any_down: active.iter().any(|r| r.status.state == State::Down),
        any_stale: active.iter().any(|r| r.stale),
        daemon_quiet: !judged.is_empty() && judged.iter().all(|r| r.stale),
    }
}

/// What stderr says when results are too old.
pub fn warning(reports: &[CheckReport], verdict: &Verdict, now: jiff::Timestamp) -> Option<String> {
    if verdict.daemon_quiet {
        let newest = reports.iter().filter_map(|r| r.status.last_result_at).max()?;
        return Some(format!(
            "warning: no check has run recently (the newest result is from {}, {}): `pulsecheck serve` is not \
             running on this database; the states above are as it left them",
            when::local(newest),
            when::ago(newest, now)
        ));
    }
    let stale: Vec<&str> = reports
        .iter()
        .filter(|r| r.stale)
        .map(|r| r.status.name.as_str())
        .collect();
    (!stale.is_empty()).then(|| {
        format!(
            "warning: {} check(s) have no result for more than two intervals: {} (stuck or overloaded? see the \
             daemon's log)",
            stale.len(),
            stale.join(", ")
        )
    })
}

fn print_json(reports: &[CheckReport]) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    for report in reports {
        serde_json::to_writer(&mut out, report)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

const HEADERS: [&str; 8] = [
    "CHECK",
    "STATE",
    "SINCE",
    "LAST RUN",
    "NEXT RUN",
    "LAST RESULT",
    "ALERTS",
    "DETAIL",
];

/// The table of active checks, down first, then unknown, then up; by name within.
pub fn table(reports: &[CheckReport], now: jiff::Timestamp, color: bool, width: Option<usize>) -> String {
    let mut rows: Vec<&CheckReport> = reports.iter().filter(|r| r.status.active).collect();
    rows.sort_by_key(|r| {
        let rank = match r.status.state {
            State::Down => 0,
            State::Unknown => 1,
            State::Up => 2,
        };
        (rank, r.status.name.clone())
    });
    let mut cells: Vec<[String; 8]> = rows.iter().map(|r| cells(r, now)).collect();
    let mut widths = HEADERS.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row.iter()).take(7) {
            *w = (*w).max(cell.chars().count());
        }
    }
    if let Some(width) = width {
        let before_detail: usize = widths.iter().take(7).map(|w| w + 2).sum();
        let room = width.saturating_sub(before_detail).max(16);
        for row in &mut cells {
            row[7] = cut(&row[7], room);
        }
    }
    let paint = |text: String, code: &str| {
        if color && !code.is_empty() {
            format!("{code}{text}\x1b[0m")
        } else {
            text
        }
    };
    let mut out = String::new();
    let mut line = |cells: &[String; 8], report: Option<&CheckReport>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == 7 {
                text.push_str(cell);
                break;
            }
            let padded = format!("{cell:<w$}", w = widths[i]);
            let code = match (i, report) {
                (1, Some(r)) => match r.status.state {
                    State::Down => "\x1b[31m",
                    State::Up => "\x1b[32m",
                    State::Unknown => "\x1b[33m",
                },
                (3, Some(r)) if r.stale => "\x1b[33m",
                (_, None) => "\x1b[1m",
                _ => "",
            };
            text.push_str(&paint(padded, code));
            text.push_str("  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&HEADERS.map(str::to_owned), None);
    for (row, report) in cells.iter().zip(rows) {
        line(row, Some(report));
    }
    out
}

fn cells(r: &CheckReport, now: jiff::Timestamp) -> [String; 8] {
    let s = &r.status;
    let last_result = match (s.last_outcome, s.last_duration_ms) {
        (Some(outcome), Some(ms)) => format!("{outcome} {ms:.0}ms"),
        (Some(outcome), None) => outcome.to_string(),
        _ => "-".into(),
    };
    let alerts = match (s.pending_notifications, s.dead_notifications) {
        (0, 0) => "-".to_owned(),
        (pending, 0) => format!("{pending} pending"),
        (pending, dead) => format!("{pending} pending, {dead} dead"),
    };
    let last_run = match s.last_result_at {
        Some(at) if r.stale => format!("{} STALE", when::ago(at, now)),
        Some(at) => when::ago(at, now),
        None => "never".into(),
    };
    let next_run = match r.next_run_at {
        Some(next) if next >= now => when::ago(next, now),
        Some(next) => format!("overdue {}", when::ago(next, now).trim_end_matches(" ago")),
        None => "-".into(),
    };
    let mut detail = s.last_error.clone().unwrap_or_default();
    if let Some(group) = &s.group {
        detail = if detail.is_empty() {
            format!("[{group}]")
        } else {
            format!("[{group}] {detail}")
        };
    }
    [
        s.name.clone(),
        s.state.to_string(),
        s.since.map_or_else(|| "-".into(), when::local),
        last_run,
        next_run,
        last_result,
        alerts,
        detail,
    ]
}

#[cfg(test)]
mod tests {
    use pulsecheck_core::Outcome;

    use super::*;

    fn ts(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_767_225_600 + seconds).unwrap()
    }

    fn status(name: &str, state: State, last: Option<i64>) -> CheckSummary {
        CheckSummary {
            name: name.into(),
            group: None,
            target: format!("https://{name}.test"),
            origin: Default::default(),
            active: true,
            state,
            since: Some(ts(0)),
            last_result_at: last.map(ts),
            last_outcome: last.map(|_| {
                if state == State::Down {
                    Outcome::Down
                } else {
                    Outcome::Up
                }
            }),
            last_reason: None,
            last_error: (state == State::Down).then(|| "connection refused".into()),
            last_duration_ms: last.map(|_| 12.0),
            open_incident: None,
            silenced_until: None,
            pending_notifications: 0,
            dead_notifications: 0,
        }
    }

    #[test]
    fn a_result_older_than_two_intervals_is_stale_and_says_so() {
        let now = ts(1_000);
        let minute = Some(Duration::from_secs(60));
        let fresh = report(status("api", State::Up, Some(990)), minute, now);
        assert!(!fresh.stale);
        assert_eq!(fresh.next_run_at, Some(ts(1_050)));
        let old = report(status("db", State::Up, Some(1_000 - 126)), minute, now);
        assert!(old.stale, "126 s > 2 × 60 s + 5 s");
        let verdict = verdict(&[fresh.clone(), old.clone()]);
        assert_eq!((verdict.any_stale, verdict.daemon_quiet), (true, false));
        assert_eq!(verdict.exit(), Exit::Stale);
        let text = table(&[fresh.clone(), old.clone()], now, false, None);
        assert!(text.contains("2 min 6 s ago STALE"), "{text}");
        assert!(text.contains("10 s ago") && text.contains("in 50 s"), "{text}");
        let warning = warning(&[fresh, old], &verdict, now).unwrap();
        assert!(
            warning.contains("1 check(s) have no result for more than two intervals: db"),
            "{warning}"
        );
    }

    #[test]
    fn no_recent_result_anywhere_means_the_daemon_is_not_running() {
        let now = ts(10_000);
        let reports = [
            report(status("api", State::Up, Some(100)), Some(Duration::from_secs(60)), now),
            report(status("db", State::Down, Some(90)), Some(Duration::from_secs(30)), now),
        ];
        let verdict = verdict(&reports);
        assert!(verdict.daemon_quiet && verdict.any_down);
        assert_eq!(verdict.exit(), Exit::Stale, "stale beats down");
        let warning = warning(&reports, &verdict, now).unwrap();
        assert!(warning.contains("`pulsecheck serve` is not running"), "{warning}");
        assert!(warning.contains("2 h 45 min ago"), "{warning}");
    }

    #[test]
    fn down_checks_come_first_and_states_are_coloured() {
        let now = ts(100);
        let reports = [
            report(status("a-up", State::Up, Some(95)), None, now),
            report(status("b-new", State::Unknown, None), None, now),
            report(status("c-down", State::Down, Some(99)), None, now),
        ];
        let plain = table(&reports, now, false, None);
        let names: Vec<&str> = plain
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(names, ["c-down", "b-new", "a-up"]);
        assert!(!plain.contains('\x1b'));
        let coloured = table(&reports, now, true, None);
        assert!(coloured.contains("\x1b[31mdown"), "{coloured}");
        assert!(coloured.contains("\x1b[32mup"), "{coloured}");
        assert_eq!(
            verdict(&reports).exit(),
            Exit::SomeDown,
            "without intervals, no age verdict"
        );
    }
}

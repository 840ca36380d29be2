//! `pulsecheck incidents [CHECK]`: down spans, newest first, with start, end, duration
//! and cause, and the uptime of the checks they belong to; a table or JSON, a page at a
//! time.

use std::collections::BTreeMap;

use crate::database::Reader;
use pulsecheck_core::storage::history::{DownSpan, SpanPage};
use serde::Serialize;

use crate::cli::IncidentsArgs;
use crate::exit::Exit;
use crate::uptime::{self, WindowUptime};
use crate::when;

#[derive(Serialize)]
struct Span {
    #[serde(flatten)]
    span: DownSpan,
    /// Until now while it lasts.
    duration_s: f64,
    ongoing: bool,
}

#[derive(Serialize)]
struct Report {
    /// Newest first.
    incidents: Vec<Span>,
    /// Of the check asked for, or of each check with an incident listed.
    uptime: BTreeMap<String, Vec<WindowUptime>>,
    /// Pass as `--before-id` for the next, older page; `null` on the last page.
    next_before_id: Option<i64>,
}

pub fn run(args: IncidentsArgs) -> Exit {
    crate::database::print_report(
        &args.database,
        args.format,
        async |store, now| report(store, &args, now).await,
        |report, now, width| table(report, &args, now, width),
    )
}

async fn report(reader: &Reader, args: &IncidentsArgs, now: jiff::Timestamp) -> Result<Report, Exit> {
    if let Some(check) = &args.check {
        crate::database::known_check(reader, check).await?;
    }
    let internal = |e: String| {
        eprintln!("error: {e}");
        Exit::Internal
    };
    let limit = args.limit.max(1);
    let page = SpanPage {
        check: args.check.clone(),
        before_id: args.before_id,
        limit,
    };
    let spans = reader
        .history
        .down_spans(&page)
        .await
        .map_err(|e| internal(e.to_string()))?;
    let mut checks: Vec<String> = spans.iter().map(|s| s.check.clone()).collect();
    checks.extend(args.check.clone());
    checks.sort();
    checks.dedup();
    let mut uptimes = BTreeMap::new();
    for check in checks {
        let windows = uptime::windows(reader.history.as_ref(), &check, now)
            .await
            .map_err(internal)?;
        uptimes.insert(check, windows);
    }
    let next_before_id = (spans.len() == limit).then(|| spans.last().map(|s| s.id)).flatten();
    Ok(Report {
        incidents: spans
            .into_iter()
            .map(|span| Span {
                duration_s: span.duration(now).as_secs_f64(),
                ongoing: span.ended_at.is_none(),
                span,
            })
            .collect(),
        uptime: uptimes,
        next_before_id,
    })
}

const HEADERS: [&str; 5] = ["CHECK", "STARTED", "ENDED", "DURATION", "CAUSE"];

fn table(report: &Report, args: &IncidentsArgs, now: jiff::Timestamp, width: Option<usize>) -> String {
    let mut out = String::new();
    for (check, windows) in &report.uptime {
        out.push_str(&format!("{check}: uptime {}\n", uptime::line(windows)));
    }
    if report.incidents.is_empty() {
        out.push_str("no incidents: no check went down in the stored history\n");
        return out;
    }
    let mut rows: Vec<[String; 5]> = report
        .incidents
        .iter()
        .map(|s| {
            let cause = match (s.span.reason, &s.span.error) {
                (Some(reason), Some(error)) => format!("{reason}: {error}"),
                (Some(reason), None) => reason.to_string(),
                (None, Some(error)) => error.clone(),
                (None, None) => "-".into(),
            };
            [
                s.span.check.clone(),
                when::local(s.span.started_at),
                s.span.ended_at.map_or_else(|| "ongoing".into(), when::local),
                when::span(s.span.duration(now)),
                cause,
            ]
        })
        .collect();
    out.push_str(&crate::columns::columns(&HEADERS, &mut rows, width));
    if let Some(before_id) = report.next_before_id {
        let check = args.check.as_deref().map(|c| format!(" {c}")).unwrap_or_default();
        out.push_str(&format!(
            "older: pulsecheck incidents{check} --limit {} --before-id {before_id}\n",
            args.limit
        ));
    }
    out
}

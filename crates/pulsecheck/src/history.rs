//! `pulsecheck history CHECK`: a check's recent results, newest first, with their
//! reasons and phase times, and its uptime over 24 hours, 7 days and 30 days; a table
//! or JSON, a page at a time.

use crate::database::Reader;
use pulsecheck_core::storage::history::{RecordedResult, ResultPage};
use serde::Serialize;

use crate::cli::HistoryArgs;
use crate::exit::Exit;
use crate::uptime::{self, WindowUptime};
use crate::when;

#[derive(Serialize)]
struct Report {
    check: String,
    target: String,
    uptime: Vec<WindowUptime>,
    /// Newest first.
    results: Vec<RecordedResult>,
    /// Pass as `--before` for the next, older page; `null` on the last page.
    next_before: Option<jiff::Timestamp>,
}

pub fn run(args: HistoryArgs) -> Exit {
    crate::database::print_report(
        &args.database,
        args.format,
        async |store, now| report(store, &args, now).await,
        |report, _, width| table(report, &args, width),
    )
}

async fn report(reader: &Reader, args: &HistoryArgs, now: jiff::Timestamp) -> Result<Report, Exit> {
    let target = crate::database::known_check(reader, &args.check).await?;
    let internal = |e: String| {
        eprintln!("error: {e}");
        Exit::Internal
    };
    let limit = args.limit.max(1);
    let results = reader
        .history
        .recent_results(
            &args.check,
            ResultPage {
                before: args.before,
                limit,
            },
        )
        .await
        .map_err(|e| internal(e.to_string()))?;
    let uptime = uptime::windows(reader.history.as_ref(), &args.check, now)
        .await
        .map_err(internal)?;
    let next_before = (results.len() == limit)
        .then(|| results.last().map(|r| r.started_at))
        .flatten();
    Ok(Report {
        check: args.check.clone(),
        target,
        uptime,
        results,
        next_before,
    })
}

const HEADERS: [&str; 10] = [
    "STARTED", "RESULT", "STATUS", "TIME", "DNS", "CONNECT", "TLS", "TTFB", "TRANSFER", "DETAIL",
];

fn table(report: &Report, args: &HistoryArgs, width: Option<usize>) -> String {
    let mut out = format!(
        "{} ({}): uptime {}\n",
        report.check,
        report.target,
        uptime::line(&report.uptime)
    );
    if report.results.is_empty() {
        out.push_str(
            "no results stored in this range (raw results are kept for a limited time: see store.retention)\n",
        );
        return out;
    }
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    let mut rows: Vec<[String; 10]> = report
        .results
        .iter()
        .map(|r| {
            [
                when::local(r.started_at),
                match r.reason {
                    Some(reason) => format!("{} {reason}", r.outcome),
                    None => r.outcome.to_string(),
                },
                r.http_status.map_or_else(|| "-".into(), |s| s.to_string()),
                format!("{:.1}ms", r.duration_ms),
                ms(r.dns_ms),
                ms(r.connect_ms),
                ms(r.tls_ms),
                ms(r.ttfb_ms.or(r.rtt_ms)),
                ms(r.transfer_ms),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&crate::columns::columns(&HEADERS, &mut rows, width));
    if let Some(before) = report.next_before {
        out.push_str(&format!(
            "older: pulsecheck history {} --limit {} --before {before}\n",
            args.check, args.limit
        ));
    }
    out
}

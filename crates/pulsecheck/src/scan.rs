//! `pulsecheck scan`: the engine with "check each target once and stop".

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderName, HeaderValue, Method};
use indicatif::ProgressDrawTarget;
use pulsecheck_core::conditions::Condition;
use pulsecheck_core::{CheckOptions, CheckResult, Engine, EngineOptions, EngineSetup};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::{ColorChoice, Format, ScanArgs, Show};
use crate::exit::Exit;
use crate::inputs::{classify, read_targets};
use crate::output::{stdout_reader_gone, ResultWriter, Rows, TableStyle};
use crate::progress::Progress;
use crate::summary::Summary;

/// `--show auto` lists every target up to this many; past it, on a terminal, only
/// those that are not up.
const LIST_ALL_UP_TO: usize = 100;

/// A usage or input error: printed once, exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl<E: std::fmt::Display> From<E> for UsageError {
    fn from(e: E) -> Self {
        UsageError(e.to_string())
    }
}

pub fn run(args: ScanArgs) -> Exit {
    match prepare(&args) {
        Ok(prepared) => execute(args, prepared),
        Err(UsageError(message)) => {
            eprintln!("error: {message}");
            Exit::BadInput
        }
    }
}

struct Prepared {
    targets: Vec<pulsecheck_core::Target>,
    options: CheckOptions,
    setup: EngineSetup,
}

/// Everything that can be wrong with the command line is found before any check runs.
fn prepare(args: &ScanArgs) -> Result<Prepared, UsageError> {
    let sources = classify(&args.inputs, &args.files);
    if sources.is_empty() {
        return Err(UsageError(
            "no targets given; pass targets, a targets file, or - to read stdin (see pulsecheck scan --help)".into(),
        ));
    }
    let targets = read_targets(&sources)?;
    if targets.is_empty() {
        return Err(UsageError(
            "the input holds no targets (only blank lines or comments)".into(),
        ));
    }
    let options = check_options(args)?;
    let limits = EngineOptions {
        concurrency: args.concurrency.max(1),
        per_host: args.per_host.max(1),
    };
    let mut setup = crate::setup::engine_setup(limits, args.nameserver.as_deref(), args.cacert.as_deref(), |note| {
        eprintln!("note: {note}")
    })
    .map_err(UsageError)?;
    setup.http_in_flight = args.http_in_flight;
    Ok(Prepared {
        targets,
        options,
        setup,
    })
}

/// The options every target of the scan is checked with, conditions included.
pub fn check_options(args: &ScanArgs) -> Result<CheckOptions, UsageError> {
    let mut options = CheckOptions {
        timeout: args.timeout,
        method: Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| UsageError(format!("--method: '{}' is not an HTTP method", args.method)))?,
        max_redirects: args.max_redirects,
        max_body_bytes: args.max_body.max(1),
        insecure: args.insecure,
        reuse_connections: args.reuse_connections,
        conditions: conditions(args).into(),
        ..CheckOptions::default()
    };
    if options.timeout.is_zero() {
        return Err(UsageError("--timeout must be more than 0".into()));
    }
    if let Some(agent) = &args.user_agent {
        options.user_agent = agent.clone();
    }
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| UsageError(format!("--header '{header}': write it as 'Name: value'")))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| UsageError(format!("--header '{header}': '{}' is not a header name", name.trim())))?;
        let value = HeaderValue::from_str(value.trim()).map_err(|_| {
            UsageError(format!(
                "--header '{header}': the value has characters a header cannot hold"
            ))
        })?;
        options.headers.push((name, value));
    }
    Ok(options)
}

/// The judging flags as one list, in the order a person reads them (and the help and
/// README document): status, headers, body text, body regex, JSONPath, latency,
/// certificate days, DNS rcode, DNS answers. The engine skips, per target, those that do
/// not fit it.
pub fn conditions(args: &ScanArgs) -> Vec<Condition> {
    let mut conditions = Vec::new();
    conditions.extend(args.expect_status.clone().map(Condition::Status));
    conditions.extend(args.expect_headers.iter().cloned());
    conditions.extend(args.body_contains.iter().cloned().map(Condition::BodyContains));
    conditions.extend(args.body_regex.iter().cloned());
    conditions.extend(args.json_paths.iter().cloned());
    conditions.extend(args.max_latency.map(Condition::LatencyUnder));
    conditions.extend(args.min_cert_days.map(|days| Condition::CertExpiresInMoreThan { days }));
    conditions.extend(args.dns_rcode.iter().cloned());
    conditions.extend(
        args.dns_answer_contains
            .iter()
            .cloned()
            .map(Condition::DnsAnswerContains),
    );
    conditions
}

fn open_output(args: &ScanArgs) -> Result<(Box<dyn Write + Send>, bool), UsageError> {
    match &args.output {
        Some(path) => {
            let file = File::create(path).map_err(|e| UsageError(format!("--output '{}': {e}", path.display())))?;
            Ok((Box::new(file), false))
        }
        None => Ok((Box::new(io::stdout()), io::stdout().is_terminal())),
    }
}

fn execute(args: ScanArgs, prepared: Prepared) -> Exit {
    let (out, out_is_tty) = match open_output(&args) {
        Ok(out) => out,
        Err(UsageError(message)) => {
            eprintln!("error: {message}");
            return Exit::BadInput;
        }
    };
    let format = match args.format {
        Format::Auto if out_is_tty => Format::Table,
        Format::Auto => Format::Json,
        other => other,
    };
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => out_is_tty && std::env::var_os("NO_COLOR").is_none(),
    };
    let writer = match format {
        Format::Json => ResultWriter::json(out),
        Format::Csv => match ResultWriter::csv(out) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("error: cannot write output: {e}");
                return Exit::BadInput;
            }
        },
        _ => ResultWriter::table(
            out,
            TableStyle {
                color,
                order: args.order,
                rows: table_rows(args.show, out_is_tty, prepared.targets.len()),
                width: out_is_tty
                    .then(|| terminal_size::terminal_size_of(io::stdout()))
                    .flatten()
                    .map(|(width, _)| usize::from(width.0)),
            },
        ),
    };
    let runtime = match crate::runtime::build(crate::runtime::Threads::All) {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let show_progress = !args.no_progress && io::stderr().is_terminal();
    let watch_reader = args.output.is_none();
    runtime.block_on(scan(prepared, writer, show_progress, watch_reader, args.quiet))
}

async fn scan(
    prepared: Prepared,
    mut writer: ResultWriter,
    show_progress: bool,
    watch_reader: bool,
    quiet: bool,
) -> Exit {
    let Prepared {
        targets,
        options,
        setup,
    } = prepared;
    let engine = match Engine::new(setup) {
        Ok(engine) => Arc::new(engine),
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    let finished = CancellationToken::new();
    if let Err(e) = crate::signals::watch(
        cancel.clone(),
        finished.clone(),
        &tasks,
        "\ninterrupted: cancelling checks in flight (press Ctrl+C again to exit now)",
    ) {
        eprintln!("warning: cannot watch for Ctrl+C: {e}");
    }
    let total = targets.len();
    let any_invalid = targets.iter().any(|t| t.spec.is_err());
    let progress = if show_progress {
        let engine = engine.clone();
        Progress::new(total, ProgressDrawTarget::stderr(), move || {
            let ledger = engine.ledger();
            ledger.started.saturating_sub(ledger.finished)
        })
    } else {
        Progress::hidden()
    };
    let started = Instant::now();
    let (sender, mut receiver) = mpsc::channel::<(usize, CheckResult)>(1024);
    let scan_engine = engine.clone();
    let scan_cancel = cancel.clone();
    tasks.spawn(async move {
        scan_engine.scan(targets, Arc::new(options), scan_cancel, sender).await;
    });

    // Exactly-once bookkeeping; full results are kept only when the table needs them.
    let mut seen = vec![false; total];
    let mut kept: Vec<Option<CheckResult>> = if writer.needs_all_results() {
        vec![None; total]
    } else {
        Vec::new()
    };
    let mut summary = Summary::default();
    let mut duplicated = 0;
    let mut output_open = true;
    let mut reader_gone = false;
    let reader_left = async {
        if watch_reader {
            stdout_reader_gone().await
        } else {
            std::future::pending().await
        }
    };
    tokio::pin!(reader_left);
    loop {
        let (index, result) = tokio::select! {
            received = receiver.recv() => match received {
                Some(received) => received,
                None => break,
            },
            // Whoever read stdout (`| head`) has what it wants: start no new check.
            () = &mut reader_left, if !reader_gone => {
                reader_gone = true;
                output_open = false;
                cancel.cancel();
                continue;
            }
        };
        if output_open {
            let written = writer
                .result(&result)
                .and_then(|_| if receiver.is_empty() { writer.flush() } else { Ok(()) });
            output_open = still_open(written);
            if !output_open && !reader_gone {
                reader_gone = true;
                cancel.cancel();
            }
        }
        match seen.get_mut(index) {
            Some(seen @ false) => *seen = true,
            _ => {
                duplicated += 1;
                continue;
            }
        }
        summary.add(index, &result);
        progress.finished_one(summary.up, summary.down);
        if let Some(slot) = kept.get_mut(index) {
            *slot = Some(result);
        }
    }
    summary.finish(started.elapsed());
    progress.clear();
    finished.cancel();
    tasks.close();
    tasks.wait().await;

    if output_open {
        let results: Vec<&CheckResult> = kept.iter().flatten().collect();
        still_open(writer.finish(&results));
    }
    summary.ledger = Some(engine.ledger());
    summary.missing = seen.iter().filter(|s| !**s).count();
    summary.duplicated = duplicated;
    if !quiet {
        eprint!("{}", summary.render());
        if reader_gone && summary.cancelled > 0 {
            eprintln!(
                "output closed: the scan stopped; {} checks were not run",
                summary.cancelled
            );
        }
    }
    if !summary.balanced() {
        eprintln!("error: the ledger did not balance; this is a bug in pulsecheck, please report it");
        Exit::Internal
    } else if summary.cancelled > 0 {
        Exit::Interrupted
    } else if any_invalid || summary.invalid > 0 {
        Exit::BadInput
    } else if summary.down > 0 {
        Exit::SomeDown
    } else {
        Exit::AllUp
    }
}

/// Which rows the table lists: `--show auto` lists every target up to
/// [`LIST_ALL_UP_TO`], and past that on a terminal only those that are not up (a pipe or
/// file gets every row; it has no scrollback to outgrow).
pub fn table_rows(show: Show, on_terminal: bool, targets: usize) -> Rows {
    match show {
        Show::All => Rows::All,
        Show::Down => Rows::NotUp,
        Show::Auto if on_terminal && targets > LIST_ALL_UP_TO => Rows::NotUp,
        Show::Auto => Rows::All,
    }
}

/// A closed pipe means the reader has what it wants; other write errors are reported.
fn still_open(written: io::Result<()>) -> bool {
    match written {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => false,
        Err(e) => {
            eprintln!("error: cannot write results: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_100_targets_a_terminal_lists_only_those_not_up() {
        assert_eq!(table_rows(Show::Auto, true, 100), Rows::All);
        assert_eq!(table_rows(Show::Auto, true, 2_000), Rows::NotUp);
        assert_eq!(table_rows(Show::Auto, false, 2_000), Rows::All, "a pipe gets every row");
        assert_eq!(table_rows(Show::All, true, 2_000), Rows::All);
        assert_eq!(table_rows(Show::Down, false, 3), Rows::NotUp);
    }
}

//! `pulsecheck scan`: the engine with "check each target once and stop".

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderName, HeaderValue, Method};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pulsecheck_core::rlimit::{max_concurrency_for, raise_nofile_limit};
use pulsecheck_core::{CheckOptions, CheckResult, Engine, EngineOptions, EngineSetup, Reason, StatusMatcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::{ColorChoice, Format, ScanArgs};
use crate::exit::Exit;
use crate::inputs::{classify, read_targets};
use crate::output::{ResultWriter, TableStyle};
use crate::summary::Summary;

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
    let mut limits = EngineOptions {
        concurrency: args.concurrency.max(1),
        per_host: args.per_host.max(1),
    };
    match raise_nofile_limit() {
        Ok(nofile) => {
            let max = max_concurrency_for(nofile);
            if limits.concurrency > max {
                eprintln!(
                    "note: concurrency lowered from {} to {max} to fit the open-file limit ({nofile}); raise it with `ulimit -n`",
                    limits.concurrency
                );
                limits.concurrency = max;
            }
        }
        Err(e) => eprintln!(
            "warning: cannot read the open-file limit ({e}); keeping concurrency {}",
            limits.concurrency
        ),
    }
    let nameserver = args
        .nameserver
        .as_deref()
        .map(pulsecheck_core::target::parse_server)
        .transpose()
        .map_err(|m| UsageError(format!("--nameserver: {m}")))?;
    let extra_ca = match &args.cacert {
        Some(path) => {
            pulsecheck_core::tls::load_pem_certificates(path).map_err(|e| UsageError(format!("--cacert {e}")))?
        }
        None => Vec::new(),
    };
    Ok(Prepared {
        targets,
        options,
        setup: EngineSetup {
            limits,
            nameserver,
            extra_ca,
            http_in_flight: args.http_in_flight,
        },
    })
}

fn check_options(args: &ScanArgs) -> Result<CheckOptions, UsageError> {
    let mut options = CheckOptions {
        timeout: args.timeout,
        method: Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| UsageError(format!("--method: '{}' is not an HTTP method", args.method)))?,
        expect_status: StatusMatcher::parse(&args.expect_status)
            .map_err(|m| UsageError(format!("--expect-status: {m}")))?,
        body_contains: args.body_contains.clone(),
        body_regex: args
            .body_regex
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| UsageError(format!("--body-regex: {e}")))?,
        max_latency: args.max_latency,
        max_redirects: args.max_redirects,
        max_body_bytes: args.max_body.max(1),
        insecure: args.insecure,
        min_cert_days: args.min_cert_days,
        reuse_connections: args.reuse_connections,
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
            },
        ),
    };
    let runtime = match crate::runtime::build(crate::runtime::Threads::All) {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let show_progress = !args.no_progress && io::stderr().is_terminal();
    runtime.block_on(scan(prepared, writer, show_progress, args.quiet))
}

async fn scan(prepared: Prepared, mut writer: ResultWriter, show_progress: bool, quiet: bool) -> Exit {
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
    if let Err(e) = crate::signals::watch(cancel.clone(), finished.clone(), &tasks) {
        eprintln!("warning: cannot watch for Ctrl+C: {e}");
    }
    let total = targets.len();
    let any_invalid = targets.iter().any(|t| t.spec.is_err());
    let progress = progress_bar(total, show_progress);
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
    while let Some((index, result)) = receiver.recv().await {
        progress.inc(1);
        if output_open {
            let written = writer
                .result(&result)
                .and_then(|_| if receiver.is_empty() { writer.flush() } else { Ok(()) });
            output_open = still_open(written);
        }
        match seen.get_mut(index) {
            Some(seen @ false) => *seen = true,
            _ => {
                duplicated += 1;
                continue;
            }
        }
        summary.add(&result);
        progress.set_message(format!("{} up · {} down", summary.up, summary.down));
        if let Some(slot) = kept.get_mut(index) {
            *slot = Some(result);
        }
    }
    summary.finish(started.elapsed());
    progress.finish_and_clear();
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
    }
    if !summary.balanced() {
        eprintln!("error: the ledger did not balance; this is a bug in pulsecheck, please report it");
        Exit::Internal
    } else if summary.cancelled > 0 {
        Exit::Interrupted
    } else if any_invalid || summary.count(Reason::InvalidTarget) > 0 {
        Exit::BadInput
    } else if summary.down > 0 {
        Exit::SomeDown
    } else {
        Exit::AllUp
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

fn progress_bar(total: usize, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

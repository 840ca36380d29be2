//! `pulsecheck-bench`: measures the real `pulsecheck` binary against the real
//! `pulsecheck-sim` binary, each its own process, on loopback.
//!
//! It starts one simulator on 127.0.0.1–127.0.0.100 (one HTTP listener per
//! address, plus a blackhole and a refused port), writes each scenario's
//! targets to a file in a private temp dir, runs
//! `pulsecheck scan FILE --format json -o OUT -q [--timeout 5s]` with no
//! tuning flags, and reaps it with `wait4`, which gives that child's exact
//! user+sys CPU time and peak RSS. Wall time spans spawn to reap. Every JSON
//! result is then matched by target against what that target should yield.
//!
//! Scenarios (targets spread round-robin over the 100 hosts):
//!
//! * `fast`: 10,000 × `/delay/200`, all up. Goals: wall ≤ 1 s, CPU ≤ 1 s, RSS ≤ 100 MB.
//! * `mixed`: 10,000, shuffled: 80 % `/delay/200`, 10 % `/status/404|500`,
//!   5 % blackhole, 5 % refused; `--timeout 5s`. Goals: wall ≤ 5.5 s, 0 misclassified.
//! * `blackhole`: 1,000 × a listener that never answers; `--timeout 5s`. Goal: wall ≤ 5.2 s.
//!
//! Those three are the default set. One more runs only when named, since it
//! takes minutes:
//!
//! * `serve`: `pulsecheck serve CONFIG --db DB --stats-json STATS` (RUST_LOG=warn)
//!   with 10,000 checks of `/ok` every 6 s (100,000 checks per minute), for
//!   `--serve-seconds` (120), then SIGTERM and `wait4`. Reports CPU share, peak
//!   RSS, the daemon's own schedule-lag and writer-batch figures, and database
//!   growth. Goals (issue 3): CPU < 50 % of one core, lag p99 < 50 ms.
//!
//! * `probe`: `/probe` of `pulsecheck serve` and Debian's `prometheus-blackbox-exporter`
//!   (found on PATH, or installed with apt-get as root) on the same simulator targets,
//!   `/ok` and `/delay/200`, at 10, 100 and 500 concurrent scrapes, 5 s each: probes per
//!   second, each exporter's CPU per probe (from /proc) and the ratios; then the time and
//!   bytes of one `/metrics` scrape of a daemon with 10,000 checks. Goals (issue 9): at
//!   most a quarter of blackbox_exporter's CPU per probe, more probes per second.
//!
//! * `web`: the status page and the REST API of `pulsecheck serve` with 10,000 checks and
//!   30 days of hourly aggregates in its store, at 50 requests/s (page and API check list
//!   alternating) for 30 s while it monitors 100,000 checks per minute: p50/p99 of each,
//!   the page's bytes, the daemon's CPU share and schedule lag. Goals (issue 11): page
//!   p99 < 100 ms and < 300 KB, API list p99 < 50 ms, lag p99 < 50 ms.
//!
//! * `cluster`: two `pulsecheck serve --store postgres://…` nodes on one throwaway
//!   PostgreSQL (initdb and pg_ctl, as the tests start it) with the `serve` scenario's
//!   checks (`--serve-checks`, every 6 s) for `--serve-seconds`: CPU of each node and of
//!   PostgreSQL (from /proc), schedule lag p99 (from /metrics), results per second,
//!   database growth per hour, then SIGKILL of one node and the time until the other
//!   holds every check; and how many checks per minute one PostgreSQL core carries at
//!   the measured CPU per result, with what limits first (issue 10).
//!
//! Usage: `cargo build --release --workspace && target/release/pulsecheck-bench [SCENARIO...]`
//! (`pulsecheck-bench fast mixed blackhole serve` runs everything).
//! The exit code is 0 even when goals are missed (it is a measurement); it is
//! non-zero only when the benchmark itself failed. MB are 10^6 bytes.

mod cluster;
mod measure;
mod probe;
mod proc;
mod report;
mod scenarios;
mod serve;
mod sim;
mod web;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;

use scenarios::Scenario;

/// How long one pulsecheck run may take before it is killed and the benchmark fails.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Measure pulsecheck against pulsecheck-sim on loopback: wall time, CPU time
/// and peak RSS of the pulsecheck process, checks per second, and results
/// that differ from what each target should yield.
///
/// Build first: cargo build --release --workspace && target/release/pulsecheck-bench
#[derive(Parser, Debug)]
#[command(name = "pulsecheck-bench", version, max_term_width = 100)]
struct Cli {
    /// Scenarios to run, in this order [default: fast mixed blackhole; serve
    /// takes minutes and runs only when named]
    #[arg(value_enum, value_name = "SCENARIO")]
    scenarios: Vec<Scenario>,

    /// Print one JSON object per scenario instead of the table.
    #[arg(long)]
    json: bool,

    /// Runs per scan scenario; each is reported, then the median. `serve` runs once.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=50))]
    runs: u32,

    /// How long `serve` lets the daemon run before SIGTERM, in seconds.
    #[arg(long, value_name = "N", default_value_t = serve::DEFAULT_SECONDS,
          value_parser = clap::value_parser!(u64).range(serve::MIN_SECONDS..=86_400))]
    serve_seconds: u64,

    /// How many checks `serve` runs, each every 6 s.
    #[arg(long, value_name = "N", default_value_t = serve::DEFAULT_CHECKS,
          value_parser = parse_checks)]
    serve_checks: usize,

    /// The pulsecheck binary [default: next to this executable]
    #[arg(long, value_name = "PATH")]
    pulsecheck: Option<PathBuf>,

    /// The pulsecheck-sim binary [default: next to this executable]
    #[arg(long, value_name = "PATH")]
    sim: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = proc::catch_sigint() {
        eprintln!("warning: cannot catch SIGINT ({e}); Ctrl+C may leave a temp dir behind");
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if proc::interrupted() => {
            eprintln!("pulsecheck-bench: interrupted; cleaned up");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("pulsecheck-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let pulsecheck = binary(cli.pulsecheck.as_deref(), "pulsecheck", "--pulsecheck")?;
    let sim_bin = binary(cli.sim.as_deref(), "pulsecheck-sim", "--sim")?;
    let selected: Vec<Scenario> = if cli.scenarios.is_empty() {
        scenarios::ALL.to_vec()
    } else {
        cli.scenarios.clone()
    };

    // Declared before the simulator so it is removed after the simulator stops.
    let dir = TempDir::create()?;
    let sim = sim::Sim::start(&sim_bin, &dir.0.join("sim.stderr"))?;
    // `None` stands for serve, which has a config instead of a target list.
    let jobs: Vec<(Scenario, Option<scenarios::Plan>)> = selected.iter().map(|s| (*s, s.plan(&sim.ready))).collect();
    let serve_paths = serve::Paths::in_dir(&dir.0);
    let serve_command = serve::command_line(&pulsecheck, &serve_paths);

    if !cli.json {
        let (cpus, kernel) = report::machine();
        println!("machine     {cpus} CPUs, {kernel}");
        for (label, bin) in [("pulsecheck", &pulsecheck), ("sim", &sim_bin)] {
            let debug = if bin.components().any(|c| c.as_os_str() == "debug") {
                " — WARNING: looks like a debug build"
            } else {
                ""
            };
            println!("{label:<11} {} ({}){debug}", bin.display(), report::age(bin));
        }
        println!("sim command {}", sim.command);
        for (scenario, job) in &jobs {
            match job {
                None if *scenario == Scenario::Web => println!(
                    "{:<11} `{} serve` with {} checks, {} days of hourly aggregates; {} req/s for {} s to / and /api/v1/checks?limit=50",
                    Scenario::Web.name(),
                    pulsecheck.display(),
                    web::CHECKS,
                    web::DAYS,
                    web::RATE,
                    web::WINDOW.as_secs(),
                ),
                None if *scenario == Scenario::Cluster => println!(
                    "{:<11} RUST_LOG=warn {}  (and node-2 alike; {} checks every {}, lease TTL {} s; SIGKILL of node-2 after {} s)",
                    Scenario::Cluster.name(),
                    cluster::command_line(&pulsecheck, &dir.0, "node-1", "postgres://postgres@127.0.0.1:PORT/bench").join(" "),
                    cli.serve_checks,
                    serve::INTERVAL,
                    cluster::LEASE_TTL.as_secs(),
                    cli.serve_seconds,
                ),
                None if *scenario == Scenario::Probe => println!(
                    "{:<11} /probe of `{} serve` vs prometheus-blackbox-exporter at {:?} concurrent scrapes, then /metrics with 10,000 checks",
                    Scenario::Probe.name(),
                    pulsecheck.display(),
                    probe::CONCURRENCY,
                ),
                Some(plan) => {
                    let (args, _) = measure::command_line(&pulsecheck, plan, &dir.0);
                    println!("{:<11} {}", plan.scenario.name(), args.join(" "));
                }
                None => println!(
                    "{:<11} RUST_LOG=warn {}  ({} checks every {}, timeout {}; SIGTERM after {} s)",
                    Scenario::Serve.name(),
                    serve_command.join(" "),
                    cli.serve_checks,
                    serve::INTERVAL,
                    serve::TIMEOUT,
                    cli.serve_seconds,
                ),
            }
        }
    }

    let mut scan_header_printed = false;
    for (scenario, job) in &jobs {
        if proc::interrupted() {
            bail!("interrupted");
        }
        if *scenario == Scenario::Web {
            let run = web::run(&pulsecheck, &sim.ready.http, &dir.0).context("scenario web")?;
            if cli.json {
                println!("{}", web::json(&run));
            } else {
                println!();
                for line in web::report(&run) {
                    println!("{line}");
                }
            }
            scan_header_printed = false;
            continue;
        }
        if *scenario == Scenario::Cluster {
            let seconds = Duration::from_secs(cli.serve_seconds);
            let run = cluster::run(&pulsecheck, &sim.ready.http, &dir.0, cli.serve_checks, seconds)
                .context("scenario cluster")?;
            if cli.json {
                let url = "postgres://postgres@127.0.0.1:PORT/bench";
                let commands = ["node-1", "node-2"].map(|n| cluster::command_line(&pulsecheck, &dir.0, n, url));
                println!("{}", cluster::json(&run, &commands));
            } else {
                println!();
                for line in cluster::report(&run) {
                    println!("{line}");
                }
            }
            scan_header_printed = false;
            continue;
        }
        if *scenario == Scenario::Probe {
            probe::run(&pulsecheck, &sim.ready.http, &dir.0, cli.json).context("scenario probe")?;
            scan_header_printed = false;
            continue;
        }
        let Some(plan) = job else {
            let seconds = Duration::from_secs(cli.serve_seconds);
            let run = serve::run(&pulsecheck, &sim.ready.http, &dir.0, cli.serve_checks, seconds)
                .context("scenario serve")?;
            if cli.json {
                let v = report::serve_json(&run, &serve_command, cli.serve_seconds, &sim.command);
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!();
                println!("{}", report::serve_header());
                println!("{}", report::serve_row(&run));
                for line in report::serve_details(&run) {
                    println!("{line}");
                }
                scan_header_printed = false;
            }
            continue;
        };
        if !cli.json && !scan_header_printed {
            println!();
            println!("{}", report::TABLE_HEADER);
            scan_header_printed = true;
        }
        let mut runs = Vec::new();
        for i in 1..=cli.runs {
            if proc::interrupted() {
                bail!("interrupted");
            }
            let run = measure::run(&pulsecheck, plan, &dir.0, RUN_LIMIT)
                .with_context(|| format!("scenario {} run {i}", plan.scenario.name()))?;
            if !cli.json {
                let s = report::Summary::of_run(&run, plan.targets.len());
                println!("{}", report::row(plan, &i.to_string(), &s));
                for line in report::details(&run) {
                    println!("{line}");
                }
            }
            runs.push(run);
        }
        if cli.json {
            let (args, _) = measure::command_line(&pulsecheck, plan, &dir.0);
            let v = report::scenario_json(plan, &args, &runs, &sim.command);
            println!("{}", serde_json::to_string(&v)?);
        } else if runs.len() > 1 {
            let s = report::Summary::median(&runs, plan.targets.len());
            println!("{}", report::row(plan, "median", &s));
        }
    }
    drop(sim);
    drop(dir);
    Ok(())
}

/// `--serve-checks`: at least 1, at most a million.
fn parse_checks(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n @ 1..=1_000_000) => Ok(n),
        Ok(_) => Err("must be between 1 and 1000000".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The given binary, or the one named `name` next to this executable.
fn binary(given: Option<&Path>, name: &str, flag: &str) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .context("locating this executable")?
            .parent()
            .context("this executable has no parent directory")?
            .join(name),
    };
    if !path.is_file() {
        bail!(
            "{name} not found at {}.\nBuild the binaries first:\n    \
             cargo build --release --workspace && target/release/pulsecheck-bench\n\
             or pass {flag} PATH.",
            path.display()
        );
    }
    Ok(path)
}

/// `$TMPDIR/pulsecheck-bench-<pid>/`, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> anyhow::Result<TempDir> {
        let path = std::env::temp_dir().join(format!("pulsecheck-bench-{}", std::process::id()));
        // Only a dead process with our pid could have left this behind.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("warning: could not remove {}: {e}", self.0.display());
        }
    }
}

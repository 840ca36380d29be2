//! The `serve` scenario: `pulsecheck serve` as a daemon, run for a fixed time
//! against the simulator, then stopped with SIGTERM and reaped with `wait4`.
//!
//! It writes a config of N checks (`c{i}` → `http://{http[i % 100]}/ok?i={i}`)
//! on a 6 s interval with a 5 s timeout, no channels and default limits, so
//! 10,000 checks are 100,000 checks per minute. The daemon writes its own
//! figures (runs, schedule lag, writer batches) to `--stats-json` at shutdown;
//! the benchmark adds CPU time and peak RSS from `wait4` and the database size.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Deserialize;

use crate::proc;
use crate::sim::tail;

/// Default `--serve-seconds`.
pub const DEFAULT_SECONDS: u64 = 120;
/// Shortest `--serve-seconds`: more than one interval, so every check has run.
pub const MIN_SECONDS: u64 = 10;
/// Default `--serve-checks`.
pub const DEFAULT_CHECKS: usize = 10_000;
/// Every check's interval and timeout, as written into the config.
pub const INTERVAL: &str = "6s";
pub const TIMEOUT: &str = "5s";
/// How long the daemon may take to exit after SIGTERM before it is killed (a failure).
const STOP_LIMIT: Duration = Duration::from_secs(60);
/// Goals from issue 3, item 9.
pub const GOAL_CPU_SHARE_PCT: f64 = 50.0;
pub const GOAL_LAG_P99_MS: f64 = 50.0;

/// The config file: `defaults` and one check per target, nothing else.
pub fn config_yaml(http: &[String], checks: usize) -> String {
    let mut out = String::with_capacity(64 + checks * 64);
    let _ = writeln!(
        out,
        "# pulsecheck-bench serve: {checks} checks every {INTERVAL} against pulsecheck-sim on loopback"
    );
    let _ = writeln!(out, "defaults:\n  interval: {INTERVAL}\n  timeout: {TIMEOUT}\nchecks:");
    if http.is_empty() {
        return out;
    }
    for i in 0..checks {
        let host = &http[i % http.len()];
        let _ = writeln!(out, "  - name: c{i}\n    target: \"http://{host}/ok?i={i}\"");
    }
    out
}

/// Where one serve run keeps its files, all in the benchmark's temp dir.
pub struct Paths {
    pub config: PathBuf,
    pub db: PathBuf,
    pub stats: PathBuf,
    pub stderr: PathBuf,
}

impl Paths {
    pub fn in_dir(dir: &Path) -> Paths {
        Paths {
            config: dir.join("serve.yaml"),
            db: dir.join("serve.db"),
            stats: dir.join("serve-stats.json"),
            stderr: dir.join("serve.stderr"),
        }
    }

    /// serve.db plus its -wal and -shm files.
    fn db_files(&self) -> [PathBuf; 3] {
        let with = |suffix: &str| {
            let mut s = self.db.clone().into_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        [self.db.clone(), with("-wal"), with("-shm")]
    }

    /// Total size of the database files that exist.
    fn db_bytes(&self) -> u64 {
        self.db_files()
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// The exact `pulsecheck serve` invocation (run with RUST_LOG=warn).
pub fn command_line(bin: &Path, paths: &Paths) -> Vec<String> {
    vec![
        bin.display().to_string(),
        "serve".into(),
        paths.config.display().to_string(),
        "--db".into(),
        paths.db.display().to_string(),
        "--stats-json".into(),
        paths.stats.display().to_string(),
    ]
}

/// What the daemon writes to `--stats-json` at shutdown. Unknown keys are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Stats {
    pub runs: u64,
    pub skipped_ticks: u64,
    pub lag_p50_ms: Option<f64>,
    pub lag_p99_ms: Option<f64>,
    pub lag_max_ms: Option<f64>,
    pub writer_batches: u64,
    pub writer_events: u64,
    pub writer_queued: u64,
    pub writer_batch_p50_ms: Option<f64>,
    pub writer_batch_p99_ms: Option<f64>,
    pub writer_batch_max_ms: Option<f64>,
    pub writer_max_batch_size: u64,
    pub writer_failed_attempts: u64,
    pub deliveries: u64,
    pub delivery_retries: u64,
    pub dead_letters: u64,
}

/// The figures of one serve run.
#[derive(Debug, Clone)]
pub struct ServeRun {
    pub checks: usize,
    /// Spawn to reap.
    pub wall: Duration,
    /// SIGTERM to reap.
    pub shutdown: Duration,
    pub user: Duration,
    pub sys: Duration,
    pub max_rss_kib: u64,
    pub exit_code: i32,
    pub stats: Stats,
    /// The stats file as the daemon wrote it.
    pub stats_raw: serde_json::Value,
    /// serve.db + -wal + -shm after the daemon exited.
    pub db_bytes: u64,
}

impl ServeRun {
    pub fn cpu(&self) -> Duration {
        self.user + self.sys
    }

    /// CPU time over wall time, as a percentage of one core.
    pub fn cpu_share_pct(&self) -> f64 {
        100.0 * self.cpu().as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }

    /// Peak RSS in MB (10^6 bytes).
    pub fn rss_mb(&self) -> f64 {
        self.max_rss_kib as f64 * 1024.0 / 1e6
    }

    /// Checks run per minute of wall time.
    pub fn checks_per_min(&self) -> f64 {
        self.stats.runs as f64 * 60.0 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Database bytes per hour of wall time, in MB.
    pub fn db_growth_mb_per_h(&self) -> f64 {
        self.db_bytes as f64 / 1e6 * 3600.0 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Database bytes (the whole file) per check run; `None` when nothing ran. Issue 7
    /// item 8 asks for at most 50 bytes per run.
    pub fn db_bytes_per_run(&self) -> Option<f64> {
        (self.stats.runs > 0).then(|| self.db_bytes as f64 / self.stats.runs as f64)
    }

    /// Each goal with whether the run met it: (name, met, limit as text).
    /// A missing lag figure (no check ran) misses the goal.
    pub fn verdicts(&self) -> Vec<(&'static str, bool, String)> {
        vec![
            (
                "cpu",
                self.cpu_share_pct() < GOAL_CPU_SHARE_PCT,
                format!("<{GOAL_CPU_SHARE_PCT:.0} % of a core"),
            ),
            (
                "lag",
                self.stats.lag_p99_ms.is_some_and(|l| l < GOAL_LAG_P99_MS),
                format!("p99 <{GOAL_LAG_P99_MS:.0} ms"),
            ),
        ]
    }
}

/// Kills and reaps the daemon unless it was reaped, so no error path leaves it behind.
struct Daemon {
    pid: libc::pid_t,
    reaped: bool,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.reaped {
            // A zero limit means SIGKILL at once, then wait4.
            if let Err(e) = proc::reap(self.pid, Duration::ZERO) {
                eprintln!("warning: could not reap pulsecheck serve (pid {}): {e}", self.pid);
            }
        }
    }
}

/// Writes the config, runs the daemon for `run_for`, stops it with SIGTERM and
/// measures it. Errors when the benchmark itself failed: the daemon exited
/// early, did not stop within [`STOP_LIMIT`], exited non-zero or wrote no stats.
pub fn run(bin: &Path, http: &[String], dir: &Path, checks: usize, run_for: Duration) -> anyhow::Result<ServeRun> {
    let paths = Paths::in_dir(dir);
    std::fs::write(&paths.config, config_yaml(http, checks))
        .with_context(|| format!("writing {}", paths.config.display()))?;
    // Stale files from an earlier run must never be mistaken for this one's.
    for p in paths.db_files().iter().chain([&paths.stats]) {
        let _ = std::fs::remove_file(p);
    }
    let args = command_line(bin, &paths);
    let stderr = File::create(&paths.stderr).with_context(|| format!("creating {}", paths.stderr.display()))?;
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    proc::die_with_parent(&mut cmd);

    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
    let mut daemon = Daemon {
        pid: child.id() as libc::pid_t,
        reaped: false,
    };
    // Reaped by pid (std's Child::wait would hide the rusage); dropping a std
    // Child neither waits nor kills.
    drop(child);

    let still_running = proc::run_for(daemon.pid, run_for).context("watching pulsecheck serve")?;
    let shutdown_start = Instant::now();
    if still_running {
        proc::signal(daemon.pid, libc::SIGTERM);
    }
    let reaped = proc::reap(daemon.pid, STOP_LIMIT).context("waiting for pulsecheck serve")?;
    daemon.reaped = true;
    let wall = start.elapsed();
    let shutdown = shutdown_start.elapsed();

    if !still_running {
        if proc::interrupted() {
            bail!("interrupted");
        }
        let how = match (reaped.exit_code(), reaped.signal()) {
            (Some(code), _) => format!("with code {code}"),
            (None, Some(sig)) => format!("by signal {sig}"),
            (None, None) => format!("with wait status {:#x}", reaped.status),
        };
        bail!(
            "pulsecheck serve exited {how} after {:.1} s, before the {} s run was over\nits stderr:\n{}",
            wall.as_secs_f64(),
            run_for.as_secs(),
            tail(&paths.stderr)
        );
    }
    if reaped.killed_after_limit {
        bail!(
            "pulsecheck serve did not exit within {STOP_LIMIT:?} of SIGTERM and was killed\nits stderr:\n{}",
            tail(&paths.stderr)
        );
    }
    let exit_code = match (reaped.exit_code(), reaped.signal()) {
        (Some(0), _) => 0,
        (Some(code), _) => bail!(
            "pulsecheck serve exited with code {code} after SIGTERM (expected 0)\nits stderr:\n{}",
            tail(&paths.stderr)
        ),
        (None, Some(sig)) => bail!(
            "pulsecheck serve was killed by signal {sig}\nits stderr:\n{}",
            tail(&paths.stderr)
        ),
        (None, None) => bail!("pulsecheck serve ended with wait status {:#x}", reaped.status),
    };
    let text = std::fs::read_to_string(&paths.stats).with_context(|| {
        format!(
            "reading the stats pulsecheck serve should write at shutdown, {}\nits stderr:\n{}",
            paths.stats.display(),
            tail(&paths.stderr)
        )
    })?;
    let stats_raw: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("unparsable {}: {text}", paths.stats.display()))?;
    let stats: Stats = serde_json::from_value(stats_raw.clone())
        .with_context(|| format!("unexpected stats in {}: {text}", paths.stats.display()))?;
    let (user, sys) = reaped.cpu();
    Ok(ServeRun {
        checks,
        wall,
        shutdown,
        user,
        sys,
        max_rss_kib: reaped.max_rss_kib(),
        exit_code,
        stats,
        stats_raw,
        db_bytes: paths.db_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;

    /// The shape of the generated config; unknown keys are errors, so a typo shows.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        defaults: BTreeMap<String, String>,
        checks: Vec<Check>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Check {
        name: String,
        target: String,
    }

    fn hosts() -> Vec<String> {
        (1..=100).map(|i| format!("127.0.0.{i}:40000")).collect()
    }

    #[test]
    fn config_parses_as_yaml_with_every_check_and_unique_names() {
        let text = config_yaml(&hosts(), DEFAULT_CHECKS);
        let config: Config = serde_saphyr::from_str(&text).expect("the config is valid YAML");
        assert_eq!(config.defaults.len(), 2);
        assert_eq!(config.defaults["interval"], INTERVAL);
        assert_eq!(config.defaults["timeout"], TIMEOUT);
        assert_eq!(config.checks.len(), DEFAULT_CHECKS);
        let names: HashSet<_> = config.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names.len(), DEFAULT_CHECKS);
        let targets: HashSet<_> = config.checks.iter().map(|c| c.target.as_str()).collect();
        assert_eq!(targets.len(), DEFAULT_CHECKS);
        assert_eq!(config.checks[0].name, "c0");
        assert_eq!(config.checks[0].target, "http://127.0.0.1:40000/ok?i=0");
        assert_eq!(config.checks[101].target, "http://127.0.0.2:40000/ok?i=101");
        assert_eq!(config.checks[9999].target, "http://127.0.0.100:40000/ok?i=9999");
    }

    #[test]
    fn stats_parse_with_null_lag() {
        let text = r#"{"runs":5,"skipped_ticks":0,"lag_p50_ms":null,"lag_p99_ms":null,"lag_max_ms":null,
            "writer_batches":1,"writer_events":5,"writer_queued":0,"writer_batch_p50_ms":1.5,
            "writer_batch_p99_ms":2.0,"writer_batch_max_ms":2.0,"writer_max_batch_size":5,
            "writer_failed_attempts":0,"deliveries":0,"delivery_retries":0,"dead_letters":0,"extra":1}"#;
        let stats: Stats = serde_json::from_str(text).unwrap();
        assert_eq!(stats.runs, 5);
        assert_eq!(stats.lag_p99_ms, None);
        assert_eq!(stats.writer_batch_p99_ms, Some(2.0));
    }

    #[test]
    fn figures_and_goals() {
        let stats: Stats = serde_json::from_str(
            r#"{"runs":200000,"skipped_ticks":0,"lag_p50_ms":1.0,"lag_p99_ms":20.0,"lag_max_ms":60.0,
            "writer_batches":1,"writer_events":1,"writer_queued":0,"writer_batch_p50_ms":1.0,
            "writer_batch_p99_ms":1.0,"writer_batch_max_ms":1.0,"writer_max_batch_size":1,
            "writer_failed_attempts":0,"deliveries":0,"delivery_retries":0,"dead_letters":0}"#,
        )
        .unwrap();
        let run = ServeRun {
            checks: 10_000,
            wall: Duration::from_secs(120),
            shutdown: Duration::from_millis(100),
            user: Duration::from_secs(50),
            sys: Duration::from_secs(10),
            max_rss_kib: 100_000,
            exit_code: 0,
            stats,
            stats_raw: serde_json::Value::Null,
            db_bytes: 10_000_000,
        };
        assert!((run.cpu_share_pct() - 50.0).abs() < 1e-9);
        assert!((run.checks_per_min() - 100_000.0).abs() < 1e-6);
        assert!((run.db_growth_mb_per_h() - 300.0).abs() < 1e-6);
        let per_run = run.db_bytes_per_run().unwrap();
        assert!((per_run - 50.0).abs() < 1e-9, "{per_run}");
        // 50 % is not under 50 %; 20 ms is under 50 ms.
        let v = run.verdicts();
        assert_eq!((v[0].0, v[0].1), ("cpu", false));
        assert_eq!((v[1].0, v[1].1), ("lag", true));
    }
}

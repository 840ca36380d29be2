//! The `cluster` scenario (issue 10): two `pulsecheck serve` nodes sharing one throwaway
//! PostgreSQL (`initdb` and `pg_ctl` in a temporary directory, from
//! `pulsecheck_postgres::testing`), running the `serve` scenario's checks (10,000 of
//! `/ok`, every 6 s) for `--serve-seconds`.
//!
//! Once both nodes hold their share of the leases and every check has run once, it
//! measures over the window: each node's CPU and PostgreSQL's (the postmaster and all
//! its children, user+sys from /proc), each node's schedule lag (the difference of its
//! `/metrics` histogram between the window's ends), the results written per second and
//! the database's growth (`count(*)` and `pg_database_size` at both ends). Then it
//! SIGKILLs the second node and times how long the first takes to hold every lease
//! (from `/api/v1/cluster`). From PostgreSQL's CPU per 1,000 results it estimates how
//! many checks per minute one PostgreSQL core carries.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use pulsecheck_postgres::testing::TestPostgres;

use crate::proc;
use crate::serve::{INTERVAL, TIMEOUT};
use crate::sim::tail;

/// The lease TTL of the nodes: the default of `cluster.lease_ttl`.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// Clock ticks per second in /proc/PID/stat (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;
/// Schedule-lag bucket bounds of `/metrics`, in seconds (pulsecheck-web's LAG_BUCKETS).
const LAG_SERIES: &str = "pulsecheck_schedule_lag_seconds_bucket";

/// The figures of one run.
#[derive(Clone, Debug)]
pub struct ClusterRun {
    pub checks: usize,
    pub window: Duration,
    /// Each node's CPU over the window, % of one core.
    pub node_cpu_pct: [f64; 2],
    /// PostgreSQL's CPU over the window, % of one core.
    pub postgres_cpu_pct: f64,
    pub postgres_cpu_seconds: f64,
    /// Each node's schedule lag p99 over the window: the bound of the `/metrics`
    /// histogram bucket holding the 99th percentile, in ms (`None`: no run).
    pub lag_p99_ms: [Option<f64>; 2],
    /// The surviving node's lag p99 over its whole life, from `--stats-json`.
    pub survivor_lag_p99_ms: Option<f64>,
    pub results: u64,
    pub results_per_second: f64,
    pub db_growth_bytes: i64,
    /// SIGKILL of the second node until the first holds every lease.
    pub takeover: Duration,
    /// Each node's share of the checks when the window began.
    pub owned: [usize; 2],
}

impl ClusterRun {
    /// PostgreSQL CPU seconds per 1,000 results written.
    pub fn postgres_cpu_per_1000(&self) -> Option<f64> {
        (self.results > 0).then(|| self.postgres_cpu_seconds / (self.results as f64 / 1000.0))
    }

    /// Checks per minute one PostgreSQL core carries at the measured cost per result.
    pub fn checks_per_minute_per_core(&self) -> Option<f64> {
        self.postgres_cpu_per_1000()
            .filter(|c| *c > 0.0)
            .map(|per_1000| 60.0 * 1000.0 / per_1000)
    }

    /// Node CPU seconds per 1,000 results (both nodes together).
    pub fn node_cpu_per_1000(&self) -> Option<f64> {
        let seconds = (self.node_cpu_pct[0] + self.node_cpu_pct[1]) / 100.0 * self.window.as_secs_f64();
        (self.results > 0).then(|| seconds / (self.results as f64 / 1000.0))
    }

    pub fn db_growth_mb_per_hour(&self) -> f64 {
        self.db_growth_bytes as f64 / 1e6 * 3600.0 / self.window.as_secs_f64().max(1e-9)
    }

    /// Database bytes per result written.
    pub fn bytes_per_result(&self) -> Option<f64> {
        (self.results > 0).then(|| self.db_growth_bytes as f64 / self.results as f64)
    }

    /// What limits first, in words: PostgreSQL's CPU (shared by every node) or the
    /// nodes' (which scale out), from the measured CPU per result of each.
    pub fn limit(&self) -> String {
        let (Some(pg), Some(bytes)) = (self.checks_per_minute_per_core(), self.bytes_per_result()) else {
            return "no results were written: nothing to estimate from".into();
        };
        let Some(node) = self.node_cpu_per_1000().filter(|c| *c > 0.0).map(|c| 60.0 * 1000.0 / c) else {
            return "the nodes used no CPU: nothing to estimate from".into();
        };
        let growth_gb_per_day = pg / 60.0 * bytes.max(0.0) * 86_400.0 / 1e9;
        let first = if pg <= node {
            format!(
                "PostgreSQL's CPU: one core of it carries {pg:.0} checks/min, one node core runs {node:.0}; nodes \
                 are added freely, PostgreSQL is shared, so its cores bound the cluster"
            )
        } else {
            format!(
                "the nodes' CPU: one node core runs {node:.0} checks/min, one PostgreSQL core carries {pg:.0}; \
                 add nodes until PostgreSQL's cores are the bound, at {pg:.0} checks/min each"
            )
        };
        format!(
            "{first}. At {pg:.0} checks/min the database grows {growth_gb_per_day:.1} GB/day of raw results until \
             retention (store.raw_days) prunes them; each node holds up to 8 connections, so PostgreSQL's default \
             max_connections (100) admits about 12 nodes"
        )
    }
}

/// A node this scenario started; SIGKILLed and reaped on drop unless stopped.
struct NodeProcess {
    child: Option<Child>,
    base: String,
    stderr: PathBuf,
    stats: PathBuf,
}

impl NodeProcess {
    fn pid(&self) -> anyhow::Result<libc::pid_t> {
        Ok(self.child.as_ref().context("the node was already reaped")?.id() as libc::pid_t)
    }

    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(self.pid()?)
    }

    fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.take() {
            proc::reap(child.id() as libc::pid_t, Duration::ZERO).context("reaping a killed node")?;
        }
        Ok(())
    }

    /// SIGTERM and a clean exit within a minute.
    fn stop(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id() as libc::pid_t;
        proc::signal(pid, libc::SIGTERM);
        let reaped = proc::reap(pid, Duration::from_secs(60)).context("waiting for a node to stop")?;
        if reaped.killed_after_limit || reaped.exit_code() != Some(0) {
            bail!(
                "a node did not stop cleanly after SIGTERM\nits stderr:\n{}",
                tail(&self.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = proc::reap(child.id() as libc::pid_t, Duration::ZERO);
        }
    }
}

/// user+sys of one process, in seconds.
fn cpu_seconds(pid: libc::pid_t) -> anyhow::Result<f64> {
    let (_, ticks) = stat(pid).with_context(|| format!("reading /proc/{pid}/stat"))?;
    Ok(ticks / TICKS_PER_SECOND)
}

/// (parent pid, user+sys ticks) of a process.
fn stat(pid: libc::pid_t) -> Option<(libc::pid_t, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let user: f64 = fields.get(11)?.parse().ok()?;
    let sys: f64 = fields.get(12)?.parse().ok()?;
    Some((ppid, user + sys))
}

/// PostgreSQL's CPU seconds: the postmaster and every child of it (backends, the
/// WAL writer, the checkpointer…). A backend's CPU counts while it lives; the nodes'
/// pools keep their connections, so their backends live through the window.
fn postgres_cpu_seconds(postmaster: libc::pid_t) -> anyhow::Result<f64> {
    let mut ticks = stat(postmaster).context("the PostgreSQL postmaster is gone")?.1;
    for entry in std::fs::read_dir("/proc").context("listing /proc")? {
        let Some(pid) = entry
            .ok()
            .and_then(|e| e.file_name().to_str().and_then(|n| n.parse::<libc::pid_t>().ok()))
        else {
            continue;
        };
        if let Some((ppid, t)) = stat(pid) {
            if ppid == postmaster {
                ticks += t;
            }
        }
    }
    Ok(ticks / TICKS_PER_SECOND)
}

/// A node's config: a listener, the cluster section, the checks.
fn config(node: &str, port: u16, hosts: &[String], checks: usize) -> String {
    let mut text = format!(
        "# pulsecheck-bench cluster: node {node}\nserver:\n  listen: 127.0.0.1:{port}\ncluster:\n  node: {node}\n  \
         lease_ttl: {}s\ndefaults:\n  interval: {INTERVAL}\n  timeout: {TIMEOUT}\nchecks:\n",
        LEASE_TTL.as_secs()
    );
    for i in 0..checks {
        let host = &hosts[i % hosts.len()];
        let _ = writeln!(text, "  - name: c{i}\n    target: \"http://{host}/ok?i={i}\"");
    }
    text
}

/// The exact command of node `name` (run with RUST_LOG=warn).
pub fn command_line(bin: &Path, dir: &Path, name: &str, url: &str) -> Vec<String> {
    vec![
        bin.display().to_string(),
        "serve".into(),
        dir.join(format!("{name}.yaml")).display().to_string(),
        "--store".into(),
        url.to_owned(),
        "--stats-json".into(),
        dir.join(format!("{name}-stats.json")).display().to_string(),
    ]
}

fn start_node(
    bin: &Path,
    dir: &Path,
    name: &str,
    url: &str,
    hosts: &[String],
    checks: usize,
) -> anyhow::Result<NodeProcess> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    std::fs::write(dir.join(format!("{name}.yaml")), config(name, port, hosts, checks))?;
    let args = command_line(bin, dir, name, url);
    let stderr = dir.join(format!("{name}.stderr"));
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr)?);
    proc::die_with_parent(&mut cmd);
    let child = cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
    Ok(NodeProcess {
        child: Some(child),
        base: format!("http://127.0.0.1:{port}"),
        stderr,
        stats: dir.join(format!("{name}-stats.json")),
    })
}

/// The lease keys `GET /api/v1/cluster` lists, and the members it knows.
async fn leases(client: &reqwest::Client, node: &NodeProcess) -> Option<(usize, usize)> {
    let body: serde_json::Value = client
        .get(format!("{}/api/v1/cluster", node.base))
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .json()
        .await
        .ok()?;
    let leases = body["leases"].as_array()?;
    let checks = leases.iter().filter(|l| l["key"] != "housekeeping").count();
    Some((checks, body["members"].as_array()?.len()))
}

/// The cumulative counts of the schedule-lag histogram, by bound (seconds; +Inf last).
async fn lag_buckets(client: &reqwest::Client, node: &NodeProcess) -> anyhow::Result<Vec<(f64, f64)>> {
    let page = client
        .get(format!("{}/metrics", node.base))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut buckets = Vec::new();
    for line in page.lines().filter(|l| l.starts_with(LAG_SERIES)) {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some(bound) = labels.split("le=\"").nth(1).and_then(|s| s.split('"').next()) else {
            continue;
        };
        let bound = if bound == "+Inf" { f64::INFINITY } else { bound.parse()? };
        buckets.push((bound, value.parse()?));
    }
    if buckets.is_empty() {
        bail!("{}/metrics has no {LAG_SERIES}", node.base);
    }
    Ok(buckets)
}

/// The bound (ms) of the bucket holding the 99th percentile of the runs between two
/// snapshots of the histogram.
fn p99_between(before: &[(f64, f64)], after: &[(f64, f64)]) -> Option<f64> {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|(bound, n)| {
            let earlier = before.iter().find(|(b, _)| b == bound).map_or(0.0, |(_, n)| *n);
            (*bound, n - earlier)
        })
        .collect();
    let total = counts.last()?.1;
    if total <= 0.0 {
        return None;
    }
    counts
        .iter()
        .find(|(_, n)| *n >= 0.99 * total)
        .map(|(bound, _)| bound * 1000.0)
}

struct Db {
    pool: sqlx::PgPool,
}

impl Db {
    async fn results(&self) -> anyhow::Result<u64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM results")
            .fetch_one(&self.pool)
            .await
            .context("counting results")?;
        Ok(n.max(0) as u64)
    }

    async fn checks_with_results(&self) -> anyhow::Result<usize> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(DISTINCT check_id) FROM results")
            .fetch_one(&self.pool)
            .await
            .context("counting checks with results")?;
        Ok(n.max(0) as usize)
    }

    async fn size(&self) -> anyhow::Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT pg_database_size(current_database())")
            .fetch_one(&self.pool)
            .await
            .context("reading pg_database_size")?;
        Ok(n)
    }
}

/// The whole scenario.
pub fn run(bin: &Path, hosts: &[String], dir: &Path, checks: usize, window: Duration) -> anyhow::Result<ClusterRun> {
    if hosts.is_empty() {
        bail!("the simulator has no HTTP listener");
    }
    let server = TestPostgres::start().map_err(|e| anyhow::anyhow!(e))?.context(
        "PostgreSQL is not installed (initdb and pg_ctl are neither on PATH nor in /usr/lib/postgresql/*/bin); \
             install Debian's postgresql package to run the cluster scenario",
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = runtime
        .block_on(server.create_database("bench"))
        .map_err(|e| anyhow::anyhow!(e))?;
    let postmaster = server.pid().context("the PostgreSQL postmaster's pid")? as libc::pid_t;
    let mut nodes = [
        start_node(bin, dir, "node-1", &url, hosts, checks)?,
        start_node(bin, dir, "node-2", &url, hosts, checks)?,
    ];

    // Both nodes up, the leases shared out, and every check run once.
    let settled = Instant::now();
    let owned = loop {
        if proc::interrupted() {
            bail!("interrupted");
        }
        let shares = runtime.block_on(async {
            let a = leases(&client, &nodes[0]).await?;
            let b = leases(&client, &nodes[1]).await?;
            Some([a, b])
        });
        if let Some([(a, members_a), (b, members_b)]) = shares {
            if a + b == checks && a > 0 && b > 0 && members_a == 2 && members_b == 2 {
                break [a, b];
            }
        }
        if settled.elapsed() > Duration::from_secs(180) {
            bail!(
                "the two nodes did not share out the {checks} checks within 180 s\nnode-1:\n{}\nnode-2:\n{}",
                tail(&nodes[0].stderr),
                tail(&nodes[1].stderr)
            );
        }
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(250)).await });
    };
    let db = Db {
        pool: runtime.block_on(sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&url))?,
    };
    // Every check has run on its owner before the window begins.
    let first_runs = Instant::now();
    while runtime.block_on(db.checks_with_results())? < checks {
        if first_runs.elapsed() > Duration::from_secs(120) || proc::interrupted() {
            bail!(
                "not every check had a result within 120 s\nnode-1:\n{}",
                tail(&nodes[0].stderr)
            );
        }
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(500)).await });
    }

    let lag_before = runtime.block_on(async {
        anyhow::Ok([
            lag_buckets(&client, &nodes[0]).await?,
            lag_buckets(&client, &nodes[1]).await?,
        ])
    })?;
    let results_before = runtime.block_on(db.results())?;
    let size_before = runtime.block_on(db.size())?;
    let cpu_before = [nodes[0].cpu_seconds()?, nodes[1].cpu_seconds()?];
    let pg_before = postgres_cpu_seconds(postmaster)?;
    let started = Instant::now();
    if !proc::run_for(nodes[0].pid()?, window).context("watching node-1")? {
        bail!(
            "node-1 exited during the window\nits stderr:\n{}",
            tail(&nodes[0].stderr)
        );
    }
    if proc::run_for(nodes[1].pid()?, Duration::ZERO).map(|running| !running)? {
        bail!(
            "node-2 exited during the window\nits stderr:\n{}",
            tail(&nodes[1].stderr)
        );
    }
    let elapsed = started.elapsed();
    let cpu_after = [nodes[0].cpu_seconds()?, nodes[1].cpu_seconds()?];
    let pg_after = postgres_cpu_seconds(postmaster)?;
    let results_after = runtime.block_on(db.results())?;
    let size_after = runtime.block_on(db.size())?;
    let lag_after = runtime.block_on(async {
        anyhow::Ok([
            lag_buckets(&client, &nodes[0]).await?,
            lag_buckets(&client, &nodes[1]).await?,
        ])
    })?;

    // SIGKILL node-2: how long until node-1 holds every check.
    let killed = Instant::now();
    nodes[1].kill()?;
    let takeover = loop {
        if let Some((held, _)) = runtime.block_on(leases(&client, &nodes[0])) {
            if held == checks {
                break killed.elapsed();
            }
        }
        if killed.elapsed() > LEASE_TTL * 4 {
            bail!(
                "node-1 did not take over node-2's checks within {:?}\nits stderr:\n{}",
                LEASE_TTL * 4,
                tail(&nodes[0].stderr)
            );
        }
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
    };
    nodes[0].stop()?;
    let survivor_lag_p99_ms = std::fs::read_to_string(&nodes[0].stats)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v["lag_p99_ms"].as_f64());
    runtime.block_on(db.pool.close());
    drop(server);

    let seconds = elapsed.as_secs_f64();
    let pct = |cpu: f64| 100.0 * cpu / seconds;
    let results = results_after.saturating_sub(results_before);
    Ok(ClusterRun {
        checks,
        window: elapsed,
        node_cpu_pct: [pct(cpu_after[0] - cpu_before[0]), pct(cpu_after[1] - cpu_before[1])],
        postgres_cpu_pct: pct(pg_after - pg_before),
        postgres_cpu_seconds: pg_after - pg_before,
        lag_p99_ms: [
            p99_between(&lag_before[0], &lag_after[0]),
            p99_between(&lag_before[1], &lag_after[1]),
        ],
        survivor_lag_p99_ms,
        results,
        results_per_second: results as f64 / seconds,
        db_growth_bytes: size_after - size_before,
        takeover,
        owned,
    })
}

fn ms(value: Option<f64>) -> String {
    value.map_or("n/a".into(), |v| format!("{v:.0} ms"))
}

/// The report's lines.
pub fn report(run: &ClusterRun) -> Vec<String> {
    let mut lines = vec![format!(
        "cluster     2 nodes, one PostgreSQL, {} checks every {INTERVAL} ({:.0} checks/min), window {:.0} s; \
         shares {} + {}",
        run.checks,
        run.checks as f64 * 10.0,
        run.window.as_secs_f64(),
        run.owned[0],
        run.owned[1]
    )];
    lines.push(format!(
        "  CPU        node-1 {:.1} %, node-2 {:.1} %, PostgreSQL {:.1} % of a core",
        run.node_cpu_pct[0], run.node_cpu_pct[1], run.postgres_cpu_pct
    ));
    lines.push(format!(
        "  lag p99    node-1 ≤ {}, node-2 ≤ {} (/metrics bucket bounds over the window); node-1 whole run {}",
        ms(run.lag_p99_ms[0]),
        ms(run.lag_p99_ms[1]),
        run.survivor_lag_p99_ms.map_or("n/a".into(), |v| format!("{v:.1} ms"))
    ));
    lines.push(format!(
        "  writes     {} results, {:.0} results/s; database +{:.1} MB = {:.0} MB/hour ({} bytes/result)",
        run.results,
        run.results_per_second,
        run.db_growth_bytes as f64 / 1e6,
        run.db_growth_mb_per_hour(),
        run.bytes_per_result().map_or("n/a".into(), |b| format!("{b:.0}"))
    ));
    lines.push(format!(
        "  takeover   {:.1} s after SIGKILL of node-2 until node-1 held all {} checks (lease TTL {} s)",
        run.takeover.as_secs_f64(),
        run.checks,
        LEASE_TTL.as_secs()
    ));
    lines.push(format!(
        "  capacity   PostgreSQL {} CPU s per 1,000 results, nodes {} → one PostgreSQL core carries {} checks/min",
        run.postgres_cpu_per_1000().map_or("n/a".into(), |c| format!("{c:.3}")),
        run.node_cpu_per_1000().map_or("n/a".into(), |c| format!("{c:.3}")),
        run.checks_per_minute_per_core()
            .map_or("n/a".into(), |c| format!("{c:.0}"))
    ));
    lines.push(format!("  limit      {}", run.limit()));
    lines
}

pub fn json(run: &ClusterRun, commands: &[Vec<String>]) -> serde_json::Value {
    serde_json::json!({
        "scenario": "cluster",
        "commands": commands,
        "nodes": 2,
        "checks": run.checks,
        "interval": INTERVAL,
        "lease_ttl_s": LEASE_TTL.as_secs(),
        "window_s": run.window.as_secs_f64(),
        "owned": run.owned,
        "node_cpu_pct": run.node_cpu_pct,
        "postgres_cpu_pct": run.postgres_cpu_pct,
        "lag_p99_ms": run.lag_p99_ms,
        "survivor_lag_p99_ms": run.survivor_lag_p99_ms,
        "results": run.results,
        "results_per_second": run.results_per_second,
        "db_growth_bytes": run.db_growth_bytes,
        "db_growth_mb_per_hour": run.db_growth_mb_per_hour(),
        "bytes_per_result": run.bytes_per_result(),
        "takeover_s": run.takeover.as_secs_f64(),
        "postgres_cpu_s_per_1000_results": run.postgres_cpu_per_1000(),
        "node_cpu_s_per_1000_results": run.node_cpu_per_1000(),
        "checks_per_minute_per_postgres_core": run.checks_per_minute_per_core(),
        "limit": run.limit(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_is_the_bound_of_the_bucket_reaching_99_percent_of_the_window() {
        let before = [(0.001, 100.0), (0.005, 100.0), (0.01, 100.0), (f64::INFINITY, 100.0)];
        let after = [
            (0.001, 1090.0),
            (0.005, 1099.0),
            (0.01, 1100.0),
            (f64::INFINITY, 1100.0),
        ];
        // 1000 runs in the window: 990 under 1 ms, 999 under 5 ms.
        assert_eq!(p99_between(&before, &after), Some(1.0));
        let after = [(0.001, 900.0), (0.005, 1095.0), (0.01, 1100.0), (f64::INFINITY, 1100.0)];
        assert_eq!(p99_between(&before, &after), Some(5.0));
        assert_eq!(p99_between(&after, &after), None);
    }

    #[test]
    fn capacity_follows_postgres_cpu_per_result() {
        let run = ClusterRun {
            checks: 10_000,
            window: Duration::from_secs(100),
            node_cpu_pct: [20.0, 20.0],
            postgres_cpu_pct: 30.0,
            postgres_cpu_seconds: 30.0,
            lag_p99_ms: [Some(5.0), Some(5.0)],
            survivor_lag_p99_ms: Some(3.0),
            results: 100_000,
            results_per_second: 1000.0,
            db_growth_bytes: 10_000_000,
            takeover: Duration::from_secs(16),
            owned: [5000, 5000],
        };
        // 30 s for 100,000 results: 0.3 s per 1,000, so 200,000 per core-minute.
        assert!((run.postgres_cpu_per_1000().unwrap() - 0.3).abs() < 1e-9);
        assert!((run.checks_per_minute_per_core().unwrap() - 200_000.0).abs() < 1e-6);
        assert!((run.node_cpu_per_1000().unwrap() - 0.4).abs() < 1e-9);
        assert!((run.db_growth_mb_per_hour() - 360.0).abs() < 1e-6);
        assert_eq!(run.bytes_per_result(), Some(100.0));
        // 0.4 node CPU s per 1,000: a node core runs 150,000/min, less than PostgreSQL's 200,000.
        assert!(run.limit().starts_with("the nodes' CPU"), "{}", run.limit());
        let pg_bound = ClusterRun {
            postgres_cpu_seconds: 60.0,
            ..run.clone()
        };
        assert!(pg_bound.limit().starts_with("PostgreSQL's CPU"), "{}", pg_bound.limit());
        let text = report(&run).join("\n");
        assert!(text.contains("200000 checks/min"), "{text}");
        assert!(config("node-1", 1, &["127.0.0.1:2".into()], 2).contains("lease_ttl: 15s"));
    }
}

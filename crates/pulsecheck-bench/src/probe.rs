//! The `probe` scenario: `/probe` of `pulsecheck serve` against Debian's
//! `prometheus-blackbox-exporter`, both long-running processes probing the same
//! simulator targets (`/ok` and `/delay/200`, round-robin over its 100 hosts) with the
//! same module (`http_2xx`, 5 s), at 10, 100 and 500 concurrent scrapes for a fixed
//! time each. Reports probes per second, each exporter's CPU per probe (its own
//! user+sys time from /proc over the window, so the load generator and the simulator
//! are not counted) and the ratios. Then the time and size of one `/metrics` scrape of
//! a daemon running 10,000 checks.
//!
//! blackbox_exporter is found on PATH (`prometheus-blackbox-exporter`); when it is
//! missing and this runs as root, it is installed with apt-get; otherwise only
//! pulsecheck is measured.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::proc;

/// Concurrent scrapes per measurement.
pub const CONCURRENCY: [usize; 3] = [10, 100, 500];
/// Simulator paths probed.
pub const PATHS: [&str; 2] = ["/ok", "/delay/200"];
/// How long each measurement drives one exporter.
const WINDOW: Duration = Duration::from_secs(5);
/// Checks of the `/metrics` daemon.
const METRICS_CHECKS: usize = 10_000;
const BLACKBOX: &str = "prometheus-blackbox-exporter";
/// Linux's USER_HZ.
const TICKS_PER_SECOND: f64 = 100.0;

/// One exporter process, killed and reaped on drop.
pub(crate) struct Exporter {
    name: &'static str,
    child: Child,
    pub(crate) base: String,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        proc::signal(pid, libc::SIGTERM);
        // Waits on a pidfd for the exit (no polling loop); SIGKILL after 10 s.
        if proc::run_for(pid, Duration::from_secs(10)).unwrap_or(true) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Exporter {
    pub(crate) fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        let rest = &stat[stat.rfind(')').context("no ) in /proc stat")? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| -> anyhow::Result<f64> { Ok(fields.get(i).context("short /proc stat")?.parse()?) };
        Ok((ticks(11)? + ticks(12)?) / TICKS_PER_SECOND)
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until `port` accepts, or fails with the process's stderr.
fn wait_listening(
    runtime: &tokio::runtime::Runtime,
    port: u16,
    stderr: &Path,
    child: &mut Child,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("exited ({status}) before listening:\n{}", crate::sim::tail(stderr));
        }
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    }
    bail!("not listening on {port} after 60 s:\n{}", crate::sim::tail(stderr))
}

fn start_pulsecheck(
    runtime: &tokio::runtime::Runtime,
    bin: &Path,
    dir: &Path,
    name: &str,
    config: &str,
) -> anyhow::Result<Exporter> {
    start_pulsecheck_with(runtime, bin, dir, name, config, &[])
}

/// `pulsecheck serve DIR/NAME.yaml --db DIR/NAME.db EXTRA...`, with `LISTEN` in `config`
/// replaced by a free loopback port; returns once it listens.
pub(crate) fn start_pulsecheck_with(
    runtime: &tokio::runtime::Runtime,
    bin: &Path,
    dir: &Path,
    name: &str,
    config: &str,
    extra: &[&std::ffi::OsStr],
) -> anyhow::Result<Exporter> {
    let port = free_port()?;
    let config_path = dir.join(format!("{name}.yaml"));
    std::fs::write(&config_path, config.replace("LISTEN", &format!("127.0.0.1:{port}")))?;
    let stderr = dir.join(format!("{name}.stderr"));
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg(&config_path)
        .arg("--db")
        .arg(dir.join(format!("{name}.db")))
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr)?);
    proc::die_with_parent(&mut cmd);
    let mut child = cmd.spawn().context("starting pulsecheck serve")?;
    wait_listening(runtime, port, &stderr, &mut child).context("pulsecheck serve")?;
    Ok(Exporter {
        name: "pulsecheck",
        child,
        base: format!("http://127.0.0.1:{port}"),
    })
}

/// blackbox_exporter on PATH, installed with apt-get when missing and we are root.
fn find_blackbox() -> Option<PathBuf> {
    let find = || {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(BLACKBOX))
                .find(|candidate| candidate.is_file())
        })
    };
    if let Some(path) = find() {
        return Some(path);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("probe: {BLACKBOX} is missing; installing Debian's package");
        let ok = Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", BLACKBOX])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return find();
        }
    }
    None
}

fn start_blackbox(runtime: &tokio::runtime::Runtime, bin: &Path, dir: &Path) -> anyhow::Result<Exporter> {
    let port = free_port()?;
    let config = dir.join("blackbox.yml");
    std::fs::write(&config, "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n")?;
    let stderr = dir.join("blackbox.stderr");
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr)?);
    proc::die_with_parent(&mut cmd);
    let mut child = cmd.spawn().context("starting blackbox_exporter")?;
    wait_listening(runtime, port, &stderr, &mut child).context("blackbox_exporter")?;
    Ok(Exporter {
        name: "blackbox",
        child,
        base: format!("http://127.0.0.1:{port}"),
    })
}

/// One measurement.
#[derive(Clone, Debug)]
pub struct Measured {
    pub exporter: &'static str,
    pub path: &'static str,
    pub concurrency: usize,
    pub probes: u64,
    pub succeeded: u64,
    pub seconds: f64,
    pub cpu_seconds: f64,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        self.probes as f64 / self.seconds
    }

    pub fn cpu_micros_per_probe(&self) -> f64 {
        self.cpu_seconds * 1e6 / (self.probes.max(1) as f64)
    }
}

/// Drives `concurrency` scrapers at `exporter` for [`WINDOW`].
fn drive(
    runtime: &tokio::runtime::Runtime,
    exporter: &Exporter,
    targets: &[String],
    path: &'static str,
    concurrency: usize,
) -> anyhow::Result<Measured> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let urls: Arc<Vec<String>> = Arc::new(
        targets
            .iter()
            .map(|host| format!("{}/probe?module=http_2xx&target=http://{host}{path}", exporter.base))
            .collect(),
    );
    let probes = Arc::new(AtomicU64::new(0));
    let succeeded = Arc::new(AtomicU64::new(0));
    let cpu_before = exporter.cpu_seconds()?;
    let started = Instant::now();
    let end = started + WINDOW;
    runtime.block_on(async {
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..concurrency {
            let (client, urls, probes, succeeded) = (client.clone(), urls.clone(), probes.clone(), succeeded.clone());
            workers.spawn(async move {
                let mut i = worker;
                while Instant::now() < end {
                    let url = &urls[i % urls.len()];
                    i += concurrency;
                    let Ok(response) = client
                        .get(url)
                        .header("X-Prometheus-Scrape-Timeout-Seconds", "10")
                        .send()
                        .await
                    else {
                        continue;
                    };
                    let Ok(body) = response.text().await else { continue };
                    probes.fetch_add(1, Ordering::Relaxed);
                    if body.contains("\nprobe_success 1\n") {
                        succeeded.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        while workers.join_next().await.is_some() {}
    });
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = exporter.cpu_seconds()? - cpu_before;
    Ok(Measured {
        exporter: exporter.name,
        path,
        concurrency,
        probes: probes.load(Ordering::Relaxed),
        succeeded: succeeded.load(Ordering::Relaxed),
        seconds,
        cpu_seconds,
    })
}

/// The `/metrics` figures of a daemon with 10,000 checks.
#[derive(Clone, Debug)]
pub struct MetricsScrape {
    pub checks: usize,
    pub bytes: usize,
    pub median_ms: f64,
    pub max_ms: f64,
}

fn metrics_scrape(
    runtime: &tokio::runtime::Runtime,
    bin: &Path,
    dir: &Path,
    hosts: &[String],
) -> anyhow::Result<MetricsScrape> {
    let mut config = String::from("server:\n  listen: LISTEN\ndefaults:\n  interval: 5s\n  timeout: 2s\nchecks:\n");
    for i in 0..METRICS_CHECKS {
        let host = &hosts[i % hosts.len()];
        let _ = writeln!(
            config,
            "  - name: c{i}\n    group: g{}\n    target: \"http://{host}/ok?i={i}\"",
            i % 10
        );
    }
    let daemon = start_pulsecheck(runtime, bin, dir, "metrics", &config)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()?;
    let url = format!("{}/metrics", daemon.base);
    // Every check has a result once each has run once (spread over the 5 s interval).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let page = runtime.block_on(async { client.get(&url).send().await?.text().await })?;
        let with_result = page.lines().filter(|l| l.starts_with("probe_success{")).count();
        if with_result >= METRICS_CHECKS {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {with_result} of {METRICS_CHECKS} checks had a result after 120 s");
        }
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(500)).await });
    }
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..9 {
        let started = Instant::now();
        let page = runtime.block_on(async { client.get(&url).send().await?.bytes().await })?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        bytes = page.len();
    }
    times.sort_by(f64::total_cmp);
    drop(daemon);
    Ok(MetricsScrape {
        checks: METRICS_CHECKS,
        bytes,
        median_ms: times[times.len() / 2],
        max_ms: times[times.len() - 1],
    })
}

/// The whole scenario; prints its table, or with `json` one JSON object at the end.
pub fn run(bin: &Path, hosts: &[String], dir: &Path, json: bool) -> anyhow::Result<()> {
    let say = |line: String| {
        if !json {
            println!("{line}");
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let config = format!(
        "server:\n  listen: LISTEN\n  allow: [{}]\n",
        hosts.iter().map(|h| format!("\"{h}\"")).collect::<Vec<_>>().join(", ")
    );
    let pulsecheck = start_pulsecheck(&runtime, bin, dir, "probe", &config)?;
    let blackbox = match find_blackbox() {
        Some(path) => Some(start_blackbox(&runtime, &path, dir)?),
        None => {
            eprintln!("probe: {BLACKBOX} not found (apt-get install {BLACKBOX}); measuring pulsecheck alone");
            None
        }
    };
    say(String::new());
    say("probe       path        conc  exporter    probes/s   ok %  CPU µs/probe".into());
    let mut rows: Vec<Measured> = Vec::new();
    for path in PATHS {
        for concurrency in CONCURRENCY {
            for exporter in std::iter::once(&pulsecheck).chain(blackbox.as_ref()) {
                if proc::interrupted() {
                    bail!("interrupted");
                }
                let m = drive(&runtime, exporter, hosts, path, concurrency)?;
                say(format!(
                    "probe       {:<11} {:>4}  {:<10} {:>9.0} {:>6.1} {:>13.0}",
                    m.path,
                    m.concurrency,
                    m.exporter,
                    m.per_second(),
                    100.0 * m.succeeded as f64 / m.probes.max(1) as f64,
                    m.cpu_micros_per_probe()
                ));
                rows.push(m);
            }
            let ours = rows.iter().rev().find(|m| m.exporter == "pulsecheck");
            let theirs = rows.iter().rev().find(|m| m.exporter == "blackbox");
            if let (Some(ours), Some(theirs)) = (ours, theirs) {
                say(format!(
                    "probe       {:<11} {:>4}  ratio      {:>8.2}×        {:>12.2}×  (throughput pulsecheck/blackbox; CPU per probe pulsecheck/blackbox, goal ≤ 0.25)",
                    path,
                    concurrency,
                    ours.per_second() / theirs.per_second().max(f64::MIN_POSITIVE),
                    ours.cpu_micros_per_probe() / theirs.cpu_micros_per_probe().max(f64::MIN_POSITIVE),
                ));
            }
        }
    }
    drop(blackbox);
    drop(pulsecheck);
    let scrape = metrics_scrape(&runtime, bin, dir, hosts)?;
    say(format!(
        "metrics     one /metrics scrape with {} checks: {:.1} ms median, {:.1} ms max (of 9), {} bytes ({:.1} MB)",
        scrape.checks,
        scrape.median_ms,
        scrape.max_ms,
        scrape.bytes,
        scrape.bytes as f64 / 1e6
    ));
    if json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|m| {
                serde_json::json!({
                    "exporter": m.exporter,
                    "path": m.path,
                    "concurrency": m.concurrency,
                    "probes": m.probes,
                    "succeeded": m.succeeded,
                    "seconds": m.seconds,
                    "probes_per_s": m.per_second(),
                    "cpu_us_per_probe": m.cpu_micros_per_probe(),
                })
            })
            .collect();
        let v = serde_json::json!({
            "scenario": "probe",
            "measurements": rows,
            "metrics_scrape": {
                "checks": scrape.checks,
                "bytes": scrape.bytes,
                "median_ms": scrape.median_ms,
                "max_ms": scrape.max_ms,
            },
        });
        println!("{v}");
    }
    Ok(())
}

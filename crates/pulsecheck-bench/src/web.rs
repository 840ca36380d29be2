//! The `web` scenario (issue 11): the status page and the REST API of a daemon that is
//! also monitoring at full load.
//!
//! It seeds a store with 10,000 checks and 30 days of hourly aggregates each (7.2
//! million rows, through the store's bulk import), starts `pulsecheck serve` on that
//! store with the `serve` scenario's 10,000 checks every 6 s (100,000 checks per
//! minute) and a listener, lets every check run once, then sends 50 requests per second
//! for [`WINDOW`], alternating the status page (`/`) and the API's check list
//! (`/api/v1/checks?limit=50`), each request on its own schedule slot so a slow answer
//! does not slow the rate. Reports the p50/p99 latency of each, the page's size, the
//! daemon's CPU share over the window (its own user+sys from /proc) and its schedule lag
//! (from `--stats-json` at shutdown).

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::probe::start_pulsecheck_with;
use crate::serve;

/// Checks in the store and in the config.
pub const CHECKS: usize = 10_000;
/// Days of hourly aggregates seeded per check.
pub const DAYS: u32 = 30;
/// Requests per second, page and API together.
pub const RATE: u32 = 50;
/// How long the requests are sent.
pub const WINDOW: Duration = Duration::from_secs(30);
/// Goals from issue 11, item 5.
pub const GOAL_PAGE_P99_MS: f64 = 100.0;
pub const GOAL_PAGE_BYTES: usize = 300_000;
pub const GOAL_API_P99_MS: f64 = 50.0;
pub const GOAL_LAG_P99_MS: f64 = serve::GOAL_LAG_P99_MS;

/// Latencies of one kind of request.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    pub ok: usize,
    pub failed: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub bytes: usize,
}

impl Latencies {
    fn of(mut times: Vec<f64>, failed: usize, bytes: usize) -> Latencies {
        times.sort_by(f64::total_cmp);
        let at = |q: f64| -> f64 {
            if times.is_empty() {
                return f64::NAN;
            }
            // Nearest rank.
            let rank = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len());
            times[rank - 1]
        };
        Latencies {
            ok: times.len(),
            failed,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: times.last().copied().unwrap_or(f64::NAN),
            bytes,
        }
    }
}

/// The figures of one web run.
#[derive(Clone, Debug)]
pub struct WebRun {
    pub seed_seconds: f64,
    pub seeded_rows: u64,
    pub page: Latencies,
    pub api: Latencies,
    pub cpu_share_pct: f64,
    pub lag_p99_ms: Option<f64>,
    pub runs: u64,
}

impl WebRun {
    /// Each goal with whether the run met it: (name, met, limit as text).
    pub fn verdicts(&self) -> Vec<(&'static str, bool, String)> {
        vec![
            (
                "page p99",
                self.page.p99_ms < GOAL_PAGE_P99_MS && self.page.failed == 0,
                format!("<{GOAL_PAGE_P99_MS:.0} ms"),
            ),
            (
                "page size",
                self.page.bytes < GOAL_PAGE_BYTES,
                format!("<{} KB", GOAL_PAGE_BYTES / 1000),
            ),
            (
                "api p99",
                self.api.p99_ms < GOAL_API_P99_MS && self.api.failed == 0,
                format!("<{GOAL_API_P99_MS:.0} ms"),
            ),
            (
                "lag p99",
                self.lag_p99_ms.is_some_and(|l| l < GOAL_LAG_P99_MS),
                format!("<{GOAL_LAG_P99_MS:.0} ms"),
            ),
        ]
    }
}

/// Rows per import call: the rows of a call are held in memory.
const SEED_CHUNK: usize = 100_000;

/// Seeds `db` with [`DAYS`] days of hourly aggregates for each of [`CHECKS`] checks,
/// ending before the current hour, and the daily rows compaction would derive from them;
/// returns the rows written. Every check runs 600 times an hour (every 6 s); about one
/// check in 50 has a bad hour now and then, so uptimes and bars are not all 100 %.
fn seed(runtime: &tokio::runtime::Runtime, db: &Path) -> anyhow::Result<u64> {
    use pulsecheck_store::{DailyAggregate, HourlyAggregate};
    const RUNS_PER_HOUR: u64 = 600;
    let hour_ms = 3_600_000_i64;
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let first_hour = now_ms - now_ms.rem_euclid(hour_ms) - i64::from(DAYS) * 24 * hour_ms;
    let at = |ms: i64| jiff::Timestamp::from_millisecond(ms).expect("a time within range");
    runtime.block_on(async {
        let store = pulsecheck_store::Store::open(db)
            .await
            .with_context(|| format!("creating {}", db.display()))?;
        let mut written = 0u64;
        let mut hourly = Vec::with_capacity(SEED_CHUNK);
        let mut daily: Vec<DailyAggregate> = Vec::with_capacity(SEED_CHUNK);
        // A fixed xorshift sequence: the same store every run, no dependency.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for check in 0..CHECKS {
            let name = format!("c{check}");
            let flaky = check % 50 == 7;
            for hour in 0..(DAYS as i64 * 24) {
                let start = first_hour + hour * hour_ms;
                let down = if flaky && next() % 40 == 0 {
                    next() % RUNS_PER_HOUR
                } else {
                    0
                };
                let jitter = (next() % 1000) as f64 / 1000.0;
                hourly.push(HourlyAggregate {
                    check: name.clone(),
                    hour: at(start),
                    count: RUNS_PER_HOUR,
                    up_count: RUNS_PER_HOUR - down,
                    mean_ms: Some(1.2 + jitter),
                    p50_ms: Some(1.0 + jitter),
                    p95_ms: Some(2.5 + jitter),
                    p99_ms: Some(4.0 + jitter),
                    dns_ms: None,
                    connect_ms: Some(0.2 + jitter / 10.0),
                    tls_ms: None,
                    ttfb_ms: Some(0.8 + jitter),
                    transfer_ms: Some(0.1),
                });
                let day = start - start.rem_euclid(24 * hour_ms);
                match daily.last_mut() {
                    Some(d) if d.check == name && d.day.as_millisecond() == day => {
                        d.count += RUNS_PER_HOUR;
                        d.up_count += RUNS_PER_HOUR - down;
                    }
                    _ => daily.push(DailyAggregate {
                        check: name.clone(),
                        day: at(day),
                        count: RUNS_PER_HOUR,
                        up_count: RUNS_PER_HOUR - down,
                        mean_ms: Some(1.7),
                    }),
                }
                if hourly.len() == SEED_CHUNK {
                    store.insert_hourly(&hourly).await.context("importing hourly rows")?;
                    written += hourly.len() as u64;
                    hourly.clear();
                }
            }
            if daily.len() >= SEED_CHUNK {
                store.insert_daily(&daily).await.context("importing daily rows")?;
                written += daily.len() as u64;
                daily.clear();
            }
        }
        store.insert_hourly(&hourly).await.context("importing hourly rows")?;
        store.insert_daily(&daily).await.context("importing daily rows")?;
        written += (hourly.len() + daily.len()) as u64;
        store.close().await;
        anyhow::Ok(written)
    })
}

/// Groups the checks are spread over, as a status page usually has a few.
const GROUPS: usize = 20;

/// The config: a listener, then the `serve` scenario's checks, each in one of
/// [`GROUPS`] groups.
fn config(hosts: &[String]) -> String {
    let mut text = format!(
        "server:\n  listen: LISTEN\ndefaults:\n  interval: {}\n  timeout: {}\nchecks:\n",
        serve::INTERVAL,
        serve::TIMEOUT
    );
    for i in 0..CHECKS {
        let host = &hosts[i % hosts.len()];
        let _ = writeln!(
            text,
            "  - name: c{i}\n    group: g{}\n    target: \"http://{host}/ok?i={i}\"",
            i % GROUPS
        );
    }
    text
}

/// Sends [`RATE`] requests per second for [`WINDOW`], alternating `urls`; returns the
/// latencies (ms) and failures of each, and the size of the last answer of each.
fn drive(runtime: &tokio::runtime::Runtime, urls: [String; 2]) -> anyhow::Result<[(Vec<f64>, usize, usize); 2]> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let total = (RATE as u64 * WINDOW.as_secs()) as usize;
    let step = Duration::from_secs(1) / RATE;
    let results = runtime.block_on(async {
        let start = tokio::time::Instant::now();
        let mut requests = tokio::task::JoinSet::new();
        for i in 0..total {
            tokio::time::sleep_until(start + step * i as u32).await;
            let client = client.clone();
            let kind = i % 2;
            let url = urls[kind].clone();
            requests.spawn(async move {
                let sent = Instant::now();
                let answer = async {
                    let response = client.get(&url).send().await?.error_for_status()?;
                    response.bytes().await
                }
                .await;
                (kind, sent.elapsed().as_secs_f64() * 1000.0, answer.map(|b| b.len()))
            });
        }
        let mut out = Vec::with_capacity(total);
        while let Some(joined) = requests.join_next().await {
            out.push(joined);
        }
        out
    });
    let mut figures: [(Vec<f64>, usize, usize); 2] = Default::default();
    for joined in results {
        let (kind, ms, answer) = joined.context("a request task failed")?;
        match answer {
            Ok(bytes) => {
                figures[kind].0.push(ms);
                figures[kind].2 = bytes;
            }
            Err(_) => figures[kind].1 += 1,
        }
    }
    Ok(figures)
}

/// Waits until `url` answers 200 and every check has run once (one interval).
fn wait_ready(runtime: &tokio::runtime::Runtime, url: &str, started: Instant) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ok = runtime.block_on(async { client.get(url).send().await.is_ok_and(|r| r.status().is_success()) });
        if ok && started.elapsed() >= Duration::from_secs(10) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer 200 within 120 s");
        }
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(250)).await });
    }
}

/// The whole scenario.
pub fn run(bin: &Path, hosts: &[String], dir: &Path) -> anyhow::Result<WebRun> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let db = dir.join("web.db");
    let seed_started = Instant::now();
    let seeded_rows = seed(&runtime, &db)?;
    let seed_seconds = seed_started.elapsed().as_secs_f64();

    let stats = dir.join("web-stats.json");
    let started = Instant::now();
    let daemon = start_pulsecheck_with(
        &runtime,
        bin,
        dir,
        "web",
        &config(hosts),
        &[OsStr::new("--stats-json"), stats.as_os_str()],
    )?;
    let page_url = format!("{}/", daemon.base);
    let api_url = format!("{}/api/v1/checks?limit=50", daemon.base);
    wait_ready(&runtime, &api_url, started)?;
    wait_ready(&runtime, &page_url, started)?;

    let cpu_before = daemon.cpu_seconds()?;
    let window_started = Instant::now();
    let [page, api] = drive(&runtime, [page_url, api_url])?;
    let cpu_share_pct = 100.0 * (daemon.cpu_seconds()? - cpu_before) / window_started.elapsed().as_secs_f64();
    // SIGTERM; the daemon writes its stats as it exits.
    drop(daemon);
    let text = std::fs::read_to_string(&stats).with_context(|| format!("reading {}", stats.display()))?;
    let stats: serve::Stats = serde_json::from_str(&text).with_context(|| format!("parsing {text}"))?;
    Ok(WebRun {
        seed_seconds,
        seeded_rows,
        page: Latencies::of(page.0, page.1, page.2),
        api: Latencies::of(api.0, api.1, api.2),
        cpu_share_pct,
        lag_p99_ms: stats.lag_p99_ms,
        runs: stats.runs,
    })
}

/// The run as one JSON object.
pub fn json(run: &WebRun) -> serde_json::Value {
    let latencies = |l: &Latencies| {
        serde_json::json!({
            "ok": l.ok, "failed": l.failed, "p50_ms": l.p50_ms, "p99_ms": l.p99_ms,
            "max_ms": l.max_ms, "bytes": l.bytes,
        })
    };
    serde_json::json!({
        "scenario": "web",
        "checks": CHECKS,
        "days": DAYS,
        "rate_per_s": RATE,
        "window_s": WINDOW.as_secs(),
        "seeded_rows": run.seeded_rows,
        "seed_s": run.seed_seconds,
        "page": latencies(&run.page),
        "api_list": latencies(&run.api),
        "cpu_share_pct": run.cpu_share_pct,
        "lag_p99_ms": run.lag_p99_ms,
        "runs": run.runs,
        "goals": run.verdicts().into_iter().map(|(name, met, limit)| serde_json::json!({"goal": name, "limit": limit, "met": met})).collect::<Vec<_>>(),
    })
}

/// The scenario's lines of output.
pub fn report(run: &WebRun) -> Vec<String> {
    let mut lines = vec![
        format!(
            "web         seeded {} hourly and daily rows ({CHECKS} checks × {DAYS} days) in {:.1} s",
            run.seeded_rows, run.seed_seconds
        ),
        format!(
            "web         {RATE} req/s for {} s while monitoring 100,000 checks/min: daemon CPU {:.1} % of a core, schedule lag p99 {}, {} runs",
            WINDOW.as_secs(),
            run.cpu_share_pct,
            run.lag_p99_ms.map_or("n/a".into(), |l| format!("{l:.1} ms")),
            run.runs
        ),
    ];
    for (name, l) in [("status page /", &run.page), ("API /api/v1/checks?limit=50", &run.api)] {
        lines.push(format!(
            "web         {name:<28} p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms  {} ok, {} failed, {} bytes",
            l.p50_ms, l.p99_ms, l.max_ms, l.ok, l.failed, l.bytes
        ));
    }
    let verdicts: Vec<String> = run
        .verdicts()
        .into_iter()
        .map(|(name, met, limit)| format!("{name} {limit}: {}", if met { "met" } else { "MISSED" }))
        .collect();
    lines.push(format!("web         goals: {}", verdicts.join("; ")));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let l = Latencies::of((1..=100).map(f64::from).rev().collect(), 2, 10);
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (50.0, 99.0, 100.0));
        assert_eq!((l.ok, l.failed, l.bytes), (100, 2, 10));
        assert!(Latencies::of(Vec::new(), 0, 0).p99_ms.is_nan());
    }

    #[test]
    fn the_config_has_a_listener_and_every_check() {
        let hosts: Vec<String> = (1..=100).map(|i| format!("127.0.0.{i}:40000")).collect();
        let text = config(&hosts);
        assert!(text.starts_with("server:\n  listen: LISTEN\n"));
        assert_eq!(text.matches("\n  - name: c").count(), CHECKS);
    }
}

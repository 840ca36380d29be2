//! Printing: the machine header, the table rows, goal verdicts and JSON objects
//! (the scan scenarios' and the serve scenario's).

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::measure::Run;
use crate::scenarios::{Goals, Plan};
use crate::serve::{self, ServeRun};

/// "2 CPUs, Linux 6.1.0 x86_64".
pub fn machine() -> (usize, String) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    // SAFETY: utsname is plain data; uname fills it with NUL-terminated strings.
    let kernel = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) == 0 {
            let s = |f: &[libc::c_char]| std::ffi::CStr::from_ptr(f.as_ptr()).to_string_lossy().into_owned();
            format!("{} {} {}", s(&u.sysname), s(&u.release), s(&u.machine))
        } else {
            "unknown kernel".to_owned()
        }
    };
    (cpus, kernel)
}

/// "built 3 min ago", from the file's mtime.
pub fn age(path: &Path) -> String {
    let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) else {
        return "build time unknown".into();
    };
    let secs = SystemTime::now().duration_since(modified).unwrap_or_default().as_secs();
    match secs {
        0..=119 => format!("built {secs} s ago"),
        120..=7199 => format!("built {} min ago", secs / 60),
        _ => format!("built {} h ago", secs / 3600),
    }
}

/// Per-figure medians of several runs (counts too, so one odd run shows).
#[derive(Debug, Clone)]
pub struct Summary {
    pub wall: Duration,
    pub cpu: Duration,
    pub rss_mb: f64,
    pub checks_per_s: f64,
    pub up: u64,
    pub down: u64,
    pub misclassified: u64,
}

impl Summary {
    pub fn of_run(run: &Run, targets: usize) -> Summary {
        Summary {
            wall: run.wall,
            cpu: run.cpu(),
            rss_mb: run.rss_mb(),
            checks_per_s: run.checks_per_s(targets),
            up: run.tally.up,
            down: run.tally.down,
            misclassified: run.tally.misclassified,
        }
    }

    pub fn median(runs: &[Run], targets: usize) -> Summary {
        let med = |f: &dyn Fn(&Run) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n == 0 {
                0.0
            } else if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        };
        Summary {
            wall: Duration::from_secs_f64(med(&|r| r.wall.as_secs_f64())),
            cpu: Duration::from_secs_f64(med(&|r| r.cpu().as_secs_f64())),
            rss_mb: med(&|r| r.rss_mb()),
            checks_per_s: med(&|r| r.checks_per_s(targets)),
            up: med(&|r| r.tally.up as f64).round() as u64,
            down: med(&|r| r.tally.down as f64).round() as u64,
            misclassified: med(&|r| r.tally.misclassified as f64).round() as u64,
        }
    }
}

/// Each goal with whether the figures met it: (name, met, limit as text).
pub fn verdicts(goals: &Goals, s: &Summary) -> Vec<(&'static str, bool, String)> {
    let mut v = Vec::new();
    if let Some(g) = goals.wall {
        v.push(("wall", s.wall <= g, format!("≤{:.1} s", g.as_secs_f64())));
    }
    if let Some(g) = goals.cpu {
        v.push(("cpu", s.cpu <= g, format!("≤{:.1} s", g.as_secs_f64())));
    }
    if let Some(g) = goals.rss_mb {
        v.push(("rss", s.rss_mb <= g, format!("≤{g:.0} MB")));
    }
    if let Some(g) = goals.misclassified {
        v.push(("misclassified", s.misclassified <= g, format!("={g}")));
    }
    v
}

pub const TABLE_HEADER: &str =
    "scenario   run     targets  wall      cpu       peak_rss  checks/s  up     down   misclassified  goals";

/// `name ✓`, or `name ✗ (limit)` for a goal missed.
fn goal_marks(verdicts: Vec<(&'static str, bool, String)>) -> Vec<String> {
    verdicts
        .into_iter()
        .map(|(name, met, limit)| {
            if met {
                format!("{name} ✓")
            } else {
                format!("{name} ✗ ({limit})")
            }
        })
        .collect()
}

pub fn row(plan: &Plan, label: &str, s: &Summary) -> String {
    let goals = goal_marks(verdicts(&plan.goals, s));
    format!(
        "{:<10} {:<7} {:<8} {:<9} {:<9} {:<9} {:<9} {:<6} {:<6} {:<14} {}",
        plan.scenario.name(),
        label,
        plan.targets.len(),
        format!("{:.2} s", s.wall.as_secs_f64()),
        format!("{:.2} s", s.cpu.as_secs_f64()),
        format!("{:.0} MB", s.rss_mb),
        format!("{:.0}", s.checks_per_s),
        s.up,
        s.down,
        s.misclassified,
        goals.join(" "),
    )
}

/// Indented detail lines under a run: user/sys split, queueing, exit code, mistakes.
pub fn details(run: &Run) -> Vec<String> {
    let t = &run.tally;
    let mut lines = vec![format!(
        "           user {:.2} s + sys {:.2} s · max queue {:.0} ms · slowest check {:.0} ms · exit {}{}",
        run.user.as_secs_f64(),
        run.sys.as_secs_f64(),
        t.max_queue_ms,
        t.max_duration_ms,
        run.exit_code,
        if t.cancelled > 0 {
            format!(" · {} cancelled", t.cancelled)
        } else {
            String::new()
        },
    )];
    for (what, n) in t.mistakes.iter().take(5) {
        lines.push(format!("           misclassified: {n} × {what}"));
    }
    lines
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 1e4
}

fn summary_json(plan: &Plan, s: &Summary) -> Value {
    let met: serde_json::Map<String, Value> = verdicts(&plan.goals, s)
        .into_iter()
        .map(|(name, met, _)| (name.to_owned(), Value::Bool(met)))
        .collect();
    json!({
        "wall_s": secs(s.wall),
        "cpu_s": secs(s.cpu),
        "peak_rss_mb": (s.rss_mb * 10.0).round() / 10.0,
        "checks_per_s": s.checks_per_s.round(),
        "up": s.up,
        "down": s.down,
        "misclassified": s.misclassified,
        "goals_met": met,
    })
}

/// One machine-readable object for a scenario and all its runs.
pub fn scenario_json(plan: &Plan, command: &[String], runs: &[Run], sim_command: &str) -> Value {
    let (cpus, kernel) = machine();
    let n = plan.targets.len();
    let runs_json: Vec<Value> = runs
        .iter()
        .map(|r| {
            let mut v = summary_json(plan, &Summary::of_run(r, n));
            let extra = json!({
                "user_s": secs(r.user),
                "sys_s": secs(r.sys),
                "peak_rss_kib": r.max_rss_kib,
                "exit_code": r.exit_code,
                "results": r.tally.results,
                "cancelled": r.tally.cancelled,
                "max_queue_ms": r.tally.max_queue_ms,
                "max_duration_ms": r.tally.max_duration_ms,
                "mistakes": r
                    .tally
                    .mistakes
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect::<serde_json::Map<String, Value>>(),
            });
            if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
                a.extend(b);
            }
            v
        })
        .collect();
    let g = &plan.goals;
    json!({
        "scenario": plan.scenario.name(),
        "targets": n,
        "machine": { "cpus": cpus, "kernel": kernel },
        "command": command,
        "sim_command": sim_command,
        "goals": {
            "wall_s": g.wall.map(secs),
            "cpu_s": g.cpu.map(secs),
            "peak_rss_mb": g.rss_mb,
            "misclassified": g.misclassified,
        },
        "runs": runs_json,
        "median": summary_json(plan, &Summary::median(runs, n)),
    })
}

/// A column set shared by the serve header and its rows, so they line up.
fn serve_columns(f: [&str; 14]) -> String {
    format!(
        "{:<10} {:<7} {:<8} {:<8} {:<10} {:<8} {:<9} {:<15} {:<20} {:<8} {:<8} {:<9} {:<12} {}",
        f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12], f[13]
    )
}

pub fn serve_header() -> String {
    serve_columns([
        "scenario",
        "checks",
        "seconds",
        "runs",
        "checks/min",
        "cpu",
        "peak_rss",
        "lag p50/p99",
        "batch p50/p99/max",
        "batches",
        "skipped",
        "db",
        "db growth",
        "goals",
    ])
}

/// "1.2" or "—" when the daemon had no figure.
fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.1}"))
}

pub fn serve_row(run: &ServeRun) -> String {
    let s = &run.stats;
    let goals = goal_marks(run.verdicts());
    serve_columns([
        "serve",
        &run.checks.to_string(),
        &format!("{:.1} s", run.wall.as_secs_f64()),
        &s.runs.to_string(),
        &format!("{:.0}", run.checks_per_min()),
        &format!("{:.1} %", run.cpu_share_pct()),
        &format!("{:.0} MB", run.rss_mb()),
        &format!("{}/{} ms", opt_ms(s.lag_p50_ms), opt_ms(s.lag_p99_ms)),
        &format!(
            "{}/{}/{} ms",
            opt_ms(s.writer_batch_p50_ms),
            opt_ms(s.writer_batch_p99_ms),
            opt_ms(s.writer_batch_max_ms)
        ),
        &s.writer_batches.to_string(),
        &s.skipped_ticks.to_string(),
        &format!("{:.1} MB", run.db_bytes as f64 / 1e6),
        &format!("{:.0} MB/h", run.db_growth_mb_per_h()),
        &goals.join(" "),
    ])
}

/// Indented detail lines under the serve row.
pub fn serve_details(run: &ServeRun) -> Vec<String> {
    let s = &run.stats;
    vec![
        format!(
            "           cpu {:.2} s = user {:.2} s + sys {:.2} s · lag max {} ms · shutdown {:.2} s after SIGTERM · exit {}",
            run.cpu().as_secs_f64(),
            run.user.as_secs_f64(),
            run.sys.as_secs_f64(),
            opt_ms(s.lag_max_ms),
            run.shutdown.as_secs_f64(),
            run.exit_code,
        ),
        format!(
            "           writer: {} events in {} batches (largest {}), {} queued at exit, {} failed attempts · \
             deliveries {} · retries {} · dead letters {}",
            s.writer_events,
            s.writer_batches,
            s.writer_max_batch_size,
            s.writer_queued,
            s.writer_failed_attempts,
            s.deliveries,
            s.delivery_retries,
            s.dead_letters,
        ),
        format!(
            "           database: {} bytes per run (the whole file over {} runs, schema and check rows included)",
            run.db_bytes_per_run().map_or("-".to_owned(), |b| format!("{b:.1}")),
            s.runs,
        ),
    ]
}

/// One machine-readable object for the serve scenario.
pub fn serve_json(run: &ServeRun, command: &[String], seconds: u64, sim_command: &str) -> Value {
    let (cpus, kernel) = machine();
    let met: serde_json::Map<String, Value> = run
        .verdicts()
        .into_iter()
        .map(|(name, met, _)| (name.to_owned(), Value::Bool(met)))
        .collect();
    let round1 = |v: f64| (v * 10.0).round() / 10.0;
    json!({
        "scenario": "serve",
        "checks": run.checks,
        "interval": serve::INTERVAL,
        "timeout": serve::TIMEOUT,
        "serve_seconds": seconds,
        "machine": { "cpus": cpus, "kernel": kernel },
        "command": command,
        "env": { "RUST_LOG": "warn" },
        "sim_command": sim_command,
        "goals": {
            "cpu_share_pct_below": serve::GOAL_CPU_SHARE_PCT,
            "lag_p99_ms_below": serve::GOAL_LAG_P99_MS,
        },
        "wall_s": secs(run.wall),
        "shutdown_s": secs(run.shutdown),
        "cpu_s": secs(run.cpu()),
        "user_s": secs(run.user),
        "sys_s": secs(run.sys),
        "cpu_share_pct": round1(run.cpu_share_pct()),
        "peak_rss_mb": round1(run.rss_mb()),
        "peak_rss_kib": run.max_rss_kib,
        "runs": run.stats.runs,
        "checks_per_min": run.checks_per_min().round(),
        "lag_p50_ms": run.stats.lag_p50_ms,
        "lag_p99_ms": run.stats.lag_p99_ms,
        "lag_max_ms": run.stats.lag_max_ms,
        "writer_batch_p50_ms": run.stats.writer_batch_p50_ms,
        "writer_batch_p99_ms": run.stats.writer_batch_p99_ms,
        "writer_batch_max_ms": run.stats.writer_batch_max_ms,
        "writer_batches": run.stats.writer_batches,
        "skipped_ticks": run.stats.skipped_ticks,
        "db_bytes": run.db_bytes,
        "db_growth_mb_per_h": round1(run.db_growth_mb_per_h()),
        "db_bytes_per_run": run.db_bytes_per_run().map(round1),
        "exit_code": run.exit_code,
        "daemon_stats": run.stats_raw,
        "goals_met": met,
    })
}

//! `/metrics`: every check's last result in blackbox_exporter's names (with `check` and
//! `group` labels), its state and uptime, and the engine's own health. Rendered from
//! memory into one buffer: no database read per scrape.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pulsecheck_core::live::{LiveCheck, ResultCounters};
use pulsecheck_core::state;
use pulsecheck_core::CheckResult;

use crate::auth::ReadAccess;
use crate::blackbox::{Sample, FAMILIES};
use crate::exposition::{Exposition, Format, Kind};
use crate::health::{process_stats, ProcessStats};
use crate::AppState;

pub async fn handler(State(app): State<AppState>, _access: ReadAccess, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let process = process_stats().await;
    let body = render(&app, format, process, jiff::Timestamp::now().as_second());
    (StatusCode::OK, [(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// Schedule-lag histogram bounds, in seconds.
const LAG_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0];
/// Store commit-time histogram bounds, in seconds.
const BATCH_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// One histogram family: `buckets` gives the cumulative counts below each bound, the
/// count and the sum.
fn write_histogram(
    page: &mut Exposition,
    name: &str,
    help: &str,
    bounds_seconds: &[f64],
    buckets: impl FnOnce(&[Duration]) -> (Vec<u64>, u64, Duration),
) {
    page.family(name, Kind::Histogram, help);
    let bounds: Vec<Duration> = bounds_seconds.iter().map(|s| Duration::from_secs_f64(*s)).collect();
    let (below, count, sum) = buckets(&bounds);
    let bucket = format!("{name}_bucket");
    for (bound, n) in bounds_seconds.iter().zip(&below) {
        page.sample(&bucket, &[("le", &bound.to_string())], *n as f64);
    }
    page.sample(&bucket, &[("le", "+Inf")], count as f64);
    page.sample(&format!("{name}_sum"), &[], sum.as_secs_f64());
    page.sample(&format!("{name}_count"), &[], count as f64);
}

/// The whole page.
pub fn render(app: &AppState, format: Format, process: Option<ProcessStats>, now: i64) -> String {
    // About 1.3 KB per HTTP check; sized from the last page so it is allocated once.
    let mut page = Exposition::new(format, app.inner.last_page_bytes.load(Relaxed) + 4096);
    app.inner.live.with(|checks| {
        let mut sorted: Vec<(&String, &LiveCheck)> = checks.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        write_checks(&mut page, &sorted, now);
    });
    write_health(app, &mut page, process);
    let text = page.finish();
    app.inner.last_page_bytes.store(text.len(), Relaxed);
    text
}

fn write_checks(page: &mut Exposition, checks: &[(&String, &LiveCheck)], now: i64) {
    let mut samples: Vec<Sample> = Vec::with_capacity(8);
    for family in FAMILIES {
        let with_result = || {
            checks
                .iter()
                .filter_map(|(name, live)| Some((*name, live, live.last.as_ref()?)))
        };
        if !with_result().any(|(_, _, result)| (family.applies)(result)) {
            continue;
        }
        page.family(family.name, family.kind, family.help);
        for (name, live, result) in with_result() {
            if !(family.applies)(result) {
                continue;
            }
            samples.clear();
            (family.samples)(result, &mut samples);
            let group = live.group.as_deref().unwrap_or("");
            for (label, value) in &samples {
                match label {
                    Some(label) => page.sample(family.name, &[("check", name), ("group", group), *label], *value),
                    None => page.sample(family.name, &[("check", name), ("group", group)], *value),
                }
            }
        }
    }
    page.family(
        "pulsecheck_check_up",
        Kind::Gauge,
        "The check's state with its thresholds applied: 1 up, 0 down (absent while unknown)",
    );
    for (name, live) in checks {
        let value = match live.state {
            state::State::Up => 1.0,
            state::State::Down => 0.0,
            state::State::Unknown => continue,
        };
        page.sample(
            "pulsecheck_check_up",
            &[("check", name), ("group", group_of(live))],
            value,
        );
    }
    page.family(
        "pulsecheck_check_uptime_ratio",
        Kind::Gauge,
        "Share of the check's results that were up over the window (24h or 30d), from the store's runs before the daemon started and its own since",
    );
    for (name, live) in checks {
        for (window, ratio) in [("24h", live.uptime.last_24h(now)), ("30d", live.uptime.last_30d(now))] {
            if let Some(ratio) = ratio {
                page.sample(
                    "pulsecheck_check_uptime_ratio",
                    &[("check", name), ("group", group_of(live)), ("window", window)],
                    ratio,
                );
            }
        }
    }
}

fn group_of(live: &LiveCheck) -> &str {
    live.group.as_deref().unwrap_or("")
}

fn write_counters(page: &mut Exposition, name: &str, counters: &ResultCounters) {
    for (outcome, reason, count) in counters.snapshot() {
        page.sample(
            name,
            &[
                ("outcome", outcome.as_str()),
                ("reason", reason.map_or("", |r| r.as_str())),
            ],
            count as f64,
        );
    }
}

fn write_health(app: &AppState, page: &mut Exposition, process: Option<ProcessStats>) {
    let live = &app.inner.live;
    let health = &app.inner.health;
    page.family(
        "pulsecheck_checks",
        Kind::Counter,
        "Scheduled check results by outcome and reason (reason is empty unless down)",
    );
    write_counters(page, "pulsecheck_checks_total", &live.scheduled);
    page.family(
        "pulsecheck_probes",
        Kind::Counter,
        "/probe results by outcome and reason",
    );
    write_counters(page, "pulsecheck_probes_total", &live.probes);

    let ledger = app.inner.engine.ledger();
    page.family(
        "pulsecheck_checks_in_flight",
        Kind::Gauge,
        "Checks started and not yet finished",
    );
    page.sample(
        "pulsecheck_checks_in_flight",
        &[],
        ledger.started.saturating_sub(ledger.finished) as f64,
    );
    page.family("pulsecheck_ledger_started", Kind::Counter, "Checks the engine started");
    page.sample("pulsecheck_ledger_started_total", &[], ledger.started as f64);
    page.family(
        "pulsecheck_ledger_finished",
        Kind::Counter,
        "Checks the engine finished (each with exactly one result)",
    );
    page.sample("pulsecheck_ledger_finished_total", &[], ledger.finished as f64);

    if let Some(scheduler) = &health.scheduler {
        write_histogram(
            page,
            "pulsecheck_schedule_lag_seconds",
            "How late each scheduled run started after its tick",
            LAG_BUCKETS,
            |bounds| scheduler.lag.buckets(bounds),
        );
        page.family("pulsecheck_scheduled_runs", Kind::Counter, "Scheduled runs started");
        page.sample(
            "pulsecheck_scheduled_runs_total",
            &[],
            scheduler.runs.load(Relaxed) as f64,
        );
        page.family(
            "pulsecheck_skipped_ticks",
            Kind::Counter,
            "Ticks skipped because the check's previous run was still going",
        );
        page.sample(
            "pulsecheck_skipped_ticks_total",
            &[],
            scheduler.skipped.load(Relaxed) as f64,
        );
    }

    if let Some(outbox) = health.outbox.as_ref().filter(|o| o.known.load(Relaxed)) {
        page.family(
            "pulsecheck_outbox_pending",
            Kind::Gauge,
            "Notifications waiting to be delivered",
        );
        page.sample("pulsecheck_outbox_pending", &[], outbox.pending.load(Relaxed) as f64);
        page.family(
            "pulsecheck_outbox_dead",
            Kind::Gauge,
            "Notifications given up on (dead letters)",
        );
        page.sample("pulsecheck_outbox_dead", &[], outbox.dead.load(Relaxed) as f64);
    }

    if let Some(cluster) = &health.cluster {
        page.family(
            "pulsecheck_cluster_owned_checks",
            Kind::Gauge,
            "Checks this node holds the lease of (and runs)",
        );
        page.sample(
            "pulsecheck_cluster_owned_checks",
            &[],
            cluster.owned_checks.load(Relaxed) as f64,
        );
        page.family("pulsecheck_cluster_members", Kind::Gauge, "Live nodes in the cluster");
        page.sample("pulsecheck_cluster_members", &[], cluster.members.load(Relaxed) as f64);
        page.family(
            "pulsecheck_cluster_fenced_runs",
            Kind::Counter,
            "Runs not recorded because this node no longer held the check's lease (dropped here or refused by the store)",
        );
        page.sample(
            "pulsecheck_cluster_fenced_runs_total",
            &[],
            (cluster.fenced_runs.load(Relaxed) + cluster.rejected_runs.load(Relaxed)) as f64,
        );
    }

    if let Some(delivery) = &health.delivery {
        page.family(
            "pulsecheck_delivery_attempts",
            Kind::Counter,
            "Delivery attempts by channel and result (delivered, retried, dead)",
        );
        for (channel, result, count) in delivery.by_channel() {
            page.sample(
                "pulsecheck_delivery_attempts_total",
                &[("channel", &channel), ("result", result)],
                count as f64,
            );
        }
        page.family(
            "pulsecheck_deliveries_in_flight",
            Kind::Gauge,
            "Delivery attempts running now",
        );
        page.sample(
            "pulsecheck_deliveries_in_flight",
            &[],
            delivery.in_flight.load(Relaxed) as f64,
        );
    }

    if let Some(writer) = &health.writer {
        let stats = writer.stats();
        page.family(
            "pulsecheck_writer_queue_length",
            Kind::Gauge,
            "Events waiting for the store writer",
        );
        page.sample("pulsecheck_writer_queue_length", &[], stats.queued as f64);
        write_histogram(
            page,
            "pulsecheck_writer_batch_seconds",
            "Store writer commit time per batch (BEGIN to COMMIT)",
            BATCH_BUCKETS,
            |bounds| writer.batch_buckets(bounds),
        );
        page.family(
            "pulsecheck_writer_batches",
            Kind::Counter,
            "Batches the store writer committed",
        );
        page.sample("pulsecheck_writer_batches_total", &[], stats.batches as f64);
        page.family(
            "pulsecheck_writer_failed_attempts",
            Kind::Counter,
            "Store writes that failed and were retried",
        );
        page.sample(
            "pulsecheck_writer_failed_attempts_total",
            &[],
            stats.failed_attempts as f64,
        );
    }

    let runtime = &health.runtime;
    page.family(
        "pulsecheck_runtime_stalls",
        Kind::Counter,
        "Times a 100 ms timer woke more than 250 ms late: a worker thread was blocked",
    );
    page.sample(
        "pulsecheck_runtime_stalls_total",
        &[],
        runtime.stalls.load(Relaxed) as f64,
    );
    page.family(
        "pulsecheck_runtime_stalled_seconds",
        Kind::Counter,
        "Total lateness of those wake-ups",
    );
    page.sample(
        "pulsecheck_runtime_stalled_seconds_total",
        &[],
        runtime.stalled_micros.load(Relaxed) as f64 / 1e6,
    );
    page.family(
        "pulsecheck_runtime_lag_seconds",
        Kind::Gauge,
        "How late the runtime's 100 ms timer last woke",
    );
    page.sample(
        "pulsecheck_runtime_lag_seconds",
        &[],
        runtime.last_lag_micros.load(Relaxed) as f64 / 1e6,
    );

    if let Some(process) = process {
        page.family(
            "process_cpu_seconds",
            Kind::Counter,
            "Total user and system CPU time spent in seconds.",
        );
        page.sample("process_cpu_seconds_total", &[], process.cpu_seconds);
        page.family(
            "process_resident_memory_bytes",
            Kind::Gauge,
            "Resident memory size in bytes.",
        );
        page.sample("process_resident_memory_bytes", &[], process.resident_bytes as f64);
        page.family(
            "process_virtual_memory_bytes",
            Kind::Gauge,
            "Virtual memory size in bytes.",
        );
        page.sample("process_virtual_memory_bytes", &[], process.virtual_bytes as f64);
        if let Some(fds) = process.open_fds {
            page.family("process_open_fds", Kind::Gauge, "Number of open file descriptors.");
            page.sample("process_open_fds", &[], fds as f64);
        }
        if let Some(start) = process.start_time_seconds {
            page.family(
                "process_start_time_seconds",
                Kind::Gauge,
                "Start time of the process since unix epoch in seconds.",
            );
            page.sample("process_start_time_seconds", &[], start);
        }
    }
}

/// Renders one result alone (for tests and the benchmark's size figures).
pub fn result_page(result: &CheckResult, timeout: f64) -> String {
    let mut page = Exposition::new(Format::Prometheus, 2048);
    crate::blackbox::write_result(&mut page, result, timeout);
    page.finish()
}

//! `pulsecheck serve`: the engine driven by a schedule, with state, an SQLite store and
//! durable alerts.
//!
//! Lifecycle: load and validate the config; open the store and resume the persisted
//! states and pending deliveries; start the writer, the delivery workers, the monitor
//! and the scheduler. SIGHUP or a change to the config file reloads it (an invalid new
//! config keeps the old one running). SIGINT/SIGTERM stop scheduling, let checks in
//! flight finish within their deadlines, commit every result and outbox row, let
//! delivery attempts in flight finish, and exit; a second signal exits at once.

pub mod monitor;
pub mod runner;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pulsecheck_core::clock::Clock;
use pulsecheck_core::config::{self, MonitorConfig};
use pulsecheck_core::outbox::Outbox;
use pulsecheck_core::rlimit::{max_concurrency_for, raise_nofile_limit};
use pulsecheck_core::scheduler::{Scheduler, SchedulerStats};
use pulsecheck_core::{Engine, EngineSetup};
use pulsecheck_notify::{spawn_delivery, Channel, Channels, DeliveryConfig, DeliveryStats};
use pulsecheck_store::{spawn_writer, CheckMeta, Store, WriteEvent, WriterConfig};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::ServeArgs;
use crate::exit::Exit;
use monitor::{Active, Monitor};
use runner::{jobs, EngineRunner};

/// How often the config file's modification time is compared, for reload on change.
const CONFIG_POLL: Duration = Duration::from_secs(2);
/// How often old results are aggregated and pruned.
const COMPACT_EVERY: Duration = Duration::from_secs(3600);

pub fn run(args: ServeArgs) -> Exit {
    crate::logging::init();
    let runtime = match crate::runtime::build(crate::runtime::Threads::All) {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    runtime.block_on(serve(args))
}

/// Prints every config error, each with its location and hint.
pub fn print_config_errors(errors: &[config::ConfigError]) {
    for error in errors {
        eprintln!("{error}");
    }
    eprintln!("{} error(s); nothing was started", errors.len());
}

/// `--db`, else the config's `store.path` (relative to the config file), else
/// `$XDG_STATE_HOME/pulsecheck/pulsecheck.db` (`~/.local/state/...`).
pub fn database_path(cli: Option<&Path>, config_path: Option<&Path>, configured: Option<&Path>) -> PathBuf {
    if let Some(path) = cli {
        return path.to_path_buf();
    }
    if let Some(path) = configured {
        let base = config_path.and_then(Path::parent).unwrap_or(Path::new("."));
        return base.join(path);
    }
    let state_home = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")));
    match state_home {
        Some(dir) => dir.join("pulsecheck").join("pulsecheck.db"),
        None => PathBuf::from("pulsecheck.db"),
    }
}

/// Builds every channel, so template errors surface before anything starts.
pub fn build_channels(config: &MonitorConfig) -> Result<Channels, Vec<String>> {
    let mut channels = HashMap::new();
    let mut errors = Vec::new();
    for spec in &config.channels {
        match Channel::new(spec.clone()) {
            Ok(channel) => {
                channels.insert(spec.name.clone(), channel);
            }
            Err(e) => errors.push(format!("{}: channel '{}': {e}", config.source.display(), spec.name)),
        }
    }
    if errors.is_empty() {
        Ok(Arc::new(channels))
    } else {
        Err(errors)
    }
}

fn check_meta(config: &MonitorConfig) -> Vec<CheckMeta> {
    config
        .checks
        .iter()
        .map(|c| CheckMeta {
            name: c.name.clone(),
            group: c.group.clone(),
            target: c.target.input.clone(),
        })
        .collect()
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

async fn serve(args: ServeArgs) -> Exit {
    let config = match config::load(&args.config) {
        Ok(config) => config,
        Err(errors) => {
            print_config_errors(&errors);
            return Exit::BadInput;
        }
    };
    let channels = match build_channels(&config) {
        Ok(channels) => channels,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return Exit::BadInput;
        }
    };
    let db_path = database_path(args.db.as_deref(), Some(&args.config), config.store.path.as_deref());
    let store = match Store::open(&db_path).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    let mut limits = config.limits.clone();
    if let Ok(nofile) = raise_nofile_limit() {
        let max = max_concurrency_for(nofile);
        if limits.concurrency > max {
            tracing::warn!(
                from = limits.concurrency,
                to = max,
                "concurrency lowered to fit the open-file limit"
            );
            limits.concurrency = max;
        }
    }
    let nameserver = match args
        .nameserver
        .as_deref()
        .map(pulsecheck_core::target::parse_server)
        .transpose()
    {
        Ok(ns) => ns,
        Err(m) => {
            eprintln!("error: --nameserver: {m}");
            return Exit::BadInput;
        }
    };
    let extra_ca = match &args.cacert {
        Some(path) => match pulsecheck_core::tls::load_pem_certificates(path) {
            Ok(certs) => certs,
            Err(e) => {
                eprintln!("error: --cacert {e}");
                return Exit::BadInput;
            }
        },
        None => Vec::new(),
    };
    let engine = match Engine::new(EngineSetup {
        limits,
        nameserver,
        extra_ca,
        http_in_flight: None,
    }) {
        Ok(engine) => Arc::new(engine),
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    let states = match store.load_states().await {
        Ok(states) => states,
        Err(e) => {
            eprintln!("error: cannot load the saved state: {e}");
            return Exit::Internal;
        }
    };

    let clock = Clock::new();
    let background = TaskTracker::new();
    let writer_shutdown = CancellationToken::new();
    let writer = spawn_writer(
        store.clone(),
        &background,
        WriterConfig {
            clock: clock.clone(),
            shutdown: writer_shutdown.clone(),
            ..WriterConfig::default()
        },
    );
    writer
        .send(WriteEvent::RegisterChecks {
            checks: check_meta(&config),
            retire_others: true,
        })
        .await;
    let delivery_cancel = CancellationToken::new();
    let (channels_tx, channels_rx) = watch::channel(channels);
    let delivery_stats = spawn_delivery(
        Arc::new(store.clone()) as Arc<dyn Outbox>,
        channels_rx,
        clock.clone(),
        writer.committed(),
        delivery_config(&config),
        &background,
        delivery_cancel.clone(),
    );

    let stop = CancellationToken::new();
    let abort = CancellationToken::new();
    let (runs_tx, runs_rx) = mpsc::channel(16_384);
    let mut scheduler = Scheduler::new(Arc::new(EngineRunner { engine }), runs_tx, stop.clone(), abort.clone());
    let (active_tx, active_rx) = watch::channel(Arc::new(Active::new(config.clone())));
    let pipeline = TaskTracker::new();
    pipeline.spawn(Monitor::new(active_rx.clone(), states, writer.clone(), clock.clone()).run(runs_rx));
    background.spawn(compact_periodically(store.clone(), active_rx, delivery_cancel.clone()));
    background.spawn(log_stats_periodically(
        scheduler.stats(),
        writer.clone(),
        delivery_stats.clone(),
        delivery_cancel.clone(),
    ));
    let report = scheduler.apply(jobs(&config));
    tracing::info!(
        checks = report.started.len(),
        channels = config.channels.len(),
        database = %db_path.display(),
        "pulsecheck serve started"
    );

    let (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("error: cannot install signal handlers");
        return Exit::Internal;
    };
    let mut config_mtime = modified(&args.config);
    let mut poll = tokio::time::interval(CONFIG_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let why = tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = hangup.recv() => "SIGHUP",
            _ = poll.tick() => {
                let now = modified(&args.config);
                if now == config_mtime {
                    continue;
                }
                config_mtime = now;
                "the config file changed"
            }
        };
        match reload(&args.config) {
            Ok((config, channels)) => {
                active_tx.send_replace(Arc::new(Active::new(config.clone())));
                channels_tx.send_replace(channels);
                writer
                    .send(WriteEvent::RegisterChecks {
                        checks: check_meta(&config),
                        retire_others: true,
                    })
                    .await;
                let report = scheduler.apply(jobs(&config));
                tracing::info!(
                    why,
                    started = ?report.started,
                    stopped = ?report.stopped,
                    changed = ?report.changed,
                    kept = report.kept.len(),
                    "config reloaded"
                );
            }
            Err(errors) => {
                for error in errors {
                    tracing::error!(why, "{error}");
                }
                tracing::error!("reload failed: the running config stays in force");
            }
        }
    }

    // A second signal exits at once, whatever is still running. Its tracker is never
    // waited on: the watcher ends with the process.
    let second_signal = TaskTracker::new();
    second_signal.spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("second signal: exiting now");
        std::process::exit(Exit::Interrupted as i32);
    });
    tracing::info!("shutting down: no new checks; waiting for checks in flight (signal again to exit now)");
    let scheduler_stats = scheduler.stats();
    scheduler.shutdown().await;
    drop(scheduler);
    pipeline.close();
    pipeline.wait().await;
    writer.close_and_wait().await;
    let stats = stats_json(&scheduler_stats, &writer, &delivery_stats);
    tracing::info!(%stats, "final statistics");
    if let Some(path) = &args.stats_json {
        if let Err(e) = std::fs::write(path, format!("{stats}\n")) {
            tracing::error!("cannot write --stats-json {}: {e}", path.display());
        }
    }
    delivery_cancel.cancel();
    writer_shutdown.cancel();
    background.close();
    background.wait().await;
    store.close().await;
    tracing::info!("stopped cleanly");
    Exit::AllUp
}

/// How often the daemon logs its statistics.
const STATS_EVERY: Duration = Duration::from_secs(60);

fn stats_json(
    scheduler: &SchedulerStats,
    writer: &pulsecheck_store::WriterHandle,
    delivery: &DeliveryStats,
) -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    let w = writer.stats();
    serde_json::json!({
        "runs": scheduler.runs.load(Relaxed),
        "skipped_ticks": scheduler.skipped.load(Relaxed),
        "lag_p50_ms": ms(scheduler.lag.quantile(0.50)),
        "lag_p99_ms": ms(scheduler.lag.quantile(0.99)),
        "lag_max_ms": ms(scheduler.lag.quantile(1.0)),
        "writer_batches": w.batches,
        "writer_events": w.events,
        "writer_queued": w.queued,
        "writer_batch_p50_ms": w.p50_batch_ms,
        "writer_batch_p99_ms": w.p99_batch_ms,
        "writer_batch_max_ms": w.max_batch_ms,
        "writer_max_batch_size": w.max_batch_size,
        "writer_failed_attempts": w.failed_attempts,
        "deliveries": delivery.delivered.load(Relaxed),
        "delivery_retries": delivery.retried.load(Relaxed),
        "dead_letters": delivery.dead.load(Relaxed),
    })
}

async fn log_stats_periodically(
    scheduler: Arc<SchedulerStats>,
    writer: pulsecheck_store::WriterHandle,
    delivery: Arc<DeliveryStats>,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(STATS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    every.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        tracing::info!(stats = %stats_json(&scheduler, &writer, &delivery), "statistics");
    }
}

fn delivery_config(config: &MonitorConfig) -> DeliveryConfig {
    DeliveryConfig {
        workers: config.delivery.workers,
        backoff_base: config.delivery.backoff_base,
        backoff_max: config.delivery.backoff_max,
        ..DeliveryConfig::default()
    }
}

fn reload(path: &Path) -> Result<(MonitorConfig, Channels), Vec<String>> {
    let config = config::load(path).map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let channels = build_channels(&config)?;
    Ok((config, channels))
}

async fn compact_periodically(store: Store, active: watch::Receiver<Arc<Active>>, stop: CancellationToken) {
    let mut every = tokio::time::interval(COMPACT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let (raw_days, hourly_days) = {
            let active = active.borrow();
            (active.config.store.raw_days, active.config.store.hourly_days)
        };
        match store.compact(jiff::Timestamp::now(), raw_days, hourly_days).await {
            Ok(report) => tracing::debug!(?report, "compacted the store"),
            Err(e) => tracing::warn!("compaction failed (retried next hour): {e}"),
        }
    }
}

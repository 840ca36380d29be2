//! `pulsecheck serve`: the engine driven by a schedule, with state, a store (an SQLite
//! file, or PostgreSQL shared by several nodes) and durable alerts.
//!
//! Lifecycle: load and validate the config; open the store and resume the persisted
//! states and pending deliveries; start the writer, the delivery workers, the monitor
//! and the scheduler. SIGHUP or a change to the config file reloads it (an invalid new
//! config keeps the old one running). SIGINT/SIGTERM stop scheduling, let checks in
//! flight finish within their deadlines, commit every result and outbox row, let
//! delivery attempts in flight finish, and exit; a second signal exits at once.
//!
//! On a shared store ([`backend::Backend::coordinator`]) the node runs only the checks
//! whose lease it holds ([`cluster`]); the monitor fences every run with the lease's
//! epoch, and housekeeping runs on the node holding its own lease.

pub mod backend;
pub mod cluster;
pub mod control;
mod operated_sync;
pub mod runner;
mod second_opinion;
pub mod stats;
pub mod web;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pulsecheck_config::MonitorConfig;
use pulsecheck_core::clock::Clock;
use pulsecheck_core::live::LiveChecks;
use pulsecheck_core::monitor::Monitor;
use pulsecheck_core::ownership::{lease_key, spawn_ownership, Owned, OwnershipConfig, HOUSEKEEPING};
use pulsecheck_core::scheduler::Scheduler;
use pulsecheck_core::storage::{CheckMeta, Housekeeping, Retention, WriteEvent};
use pulsecheck_core::writer::{spawn_writer, WriterConfig, WriterHandle};
use pulsecheck_core::Engine;
use pulsecheck_notify::{spawn_delivery, DeliveryConfig};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::ServeArgs;
use crate::config_file::{self, Loaded};
use crate::exit::Exit;
use backend::{Backend, StoreLocation};
use control::{Command, DaemonControl, Operated};
use runner::EngineRunner;

/// How often the config file's modification time is compared, for reload on change.
const CONFIG_POLL: Duration = Duration::from_secs(2);
/// How often old results are aggregated and pruned.
const COMPACT_EVERY: Duration = Duration::from_secs(3600);

pub fn run(args: ServeArgs) -> Exit {
    let logging = crate::logging::init();
    let runtime = match crate::runtime::build(crate::runtime::Threads::All) {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let exit = runtime.block_on(serve(args));
    drop(runtime);
    // Flushes the queued log lines, for a second at most.
    drop(logging);
    exit
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

fn check_meta(config: &MonitorConfig) -> Vec<CheckMeta> {
    config
        .checks
        .iter()
        .map(|c| CheckMeta {
            name: c.name.clone(),
            group: c.group.clone(),
            target: c.target.input.clone(),
            origin: c.origin,
        })
        .collect()
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

async fn serve(args: ServeArgs) -> Exit {
    let (mut file_config, channels) = match config_file::load_or_report(&args.config) {
        Ok(loaded) => (loaded.config, loaded.channels),
        Err(exit) => return exit,
    };
    let config = file_config.clone();
    let location = StoreLocation::resolve(args.store.as_deref(), args.db.as_deref(), &args.config, &config.store);
    if config.cluster.is_some() {
        if let StoreLocation::Sqlite(path) = &location {
            eprintln!(
                "error: cluster: needs a shared PostgreSQL store, but the store is the SQLite file {}; set \
                 store.url: postgres://USER@HOST/DB (or --store postgres://…), or remove cluster:",
                path.display()
            );
            return Exit::BadInput;
        }
    }
    let node = cluster::Node::new(config.cluster.as_ref());
    let backend = match Backend::open(&location, &config, &node.member.node).await {
        Ok(backend) => backend,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    let setup = match crate::setup::engine_setup(
        config.limits.clone(),
        args.nameserver.as_deref(),
        args.cacert.as_deref(),
        |note| tracing::warn!("{note}"),
    ) {
        Ok(setup) => setup,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::BadInput;
        }
    };
    let engine = match Engine::new(setup) {
        Ok(engine) => Arc::new(engine),
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    let listener = match web::bind(&config).await {
        Ok(listener) => listener,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::BadInput;
        }
    };
    let states = match backend.storage.load_states().await {
        Ok(states) => states,
        Err(e) => {
            eprintln!("error: cannot load the saved state: {e}");
            return Exit::Internal;
        }
    };
    // Checks created through the API, silences and acknowledgements survive restarts.
    let down = states
        .iter()
        .filter(|(_, s)| s.state == pulsecheck_core::state::State::Down)
        .map(|(name, _)| name.as_str());
    let mut operated = match Operated::load(&*backend.console, &file_config, down).await {
        Ok(operated) => operated,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::Internal;
        }
    };
    let config = operated.effective(&config);

    let clock = Clock::new();
    let background = TaskTracker::new();
    let writer_shutdown = CancellationToken::new();
    let writer = spawn_writer(
        backend.storage.clone(),
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
        backend.outbox.clone(),
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
    let mut scheduler = Scheduler::new(
        Arc::new(EngineRunner { engine: engine.clone() }),
        runs_tx,
        stop.clone(),
        abort.clone(),
    );
    let (policy_tx, policy_rx) = watch::channel(operated.policy(&config));
    // On a shared store: this node's leases. Its loop outlives the pipeline, so the last
    // runs are written under leases still held, and releases them at the very end.
    let ownership_tasks = TaskTracker::new();
    let ownership_cancel = CancellationToken::new();
    let (keys_tx, keys_rx) = watch::channel(cluster::keys(&config));
    let node = backend.coordinator.as_ref().map(|_| node);
    let ownership = match (&backend.coordinator, &node) {
        (Some(coordinator), Some(node)) => Some(spawn_ownership(
            coordinator.clone(),
            node.member.clone(),
            keys_rx,
            backend.storage.clone(),
            OwnershipConfig { ttl: node.ttl },
            &ownership_tasks,
            ownership_cancel.clone(),
        )),
        _ => None,
    };
    let (active_tx, active_rx) = watch::channel(Arc::new(config.clone()));
    let pipeline = TaskTracker::new();
    let live = Arc::new(LiveChecks::default());
    let mut monitor = Monitor::new(policy_rx, states, writer.clone(), clock.clone());
    if let Some(ownership) = &ownership {
        monitor = monitor.with_ownership(ownership.clone());
    }
    let cluster_gauges = ownership.as_ref().map(|ownership| {
        let gauges = Arc::new(pulsecheck_web::ClusterGauges {
            fenced_runs: monitor.fenced_runs(),
            ..Default::default()
        });
        cluster::follow_gauges(
            ownership.clone(),
            backend.rejected_runs.clone(),
            gauges.clone(),
            &background,
            delivery_cancel.clone(),
        );
        gauges
    });
    // The live view (each check's last result and uptime buckets, about 3.5 KB a check)
    // is read only by /metrics: without a listener nothing would ever read it.
    if listener.is_some() {
        monitor = monitor.with_live(live.clone());
        // Uptime over 24 h and 30 d continues from the store instead of restarting with
        // the daemon: the store's runs before now, this process's after.
        let started = jiff::Timestamp::now();
        let names: Vec<String> = config.checks.iter().map(|c| c.name.clone()).collect();
        let (live, console, stop) = (live.clone(), backend.console.clone(), delivery_cancel.clone());
        background.spawn(async move {
            tokio::select! {
                () = live.seed_uptime(&*console, &names, started) => {}
                () = stop.cancelled() => {}
            }
        });
    }
    pipeline.spawn(monitor.run(runs_rx));
    background.spawn(compact_periodically(
        backend.housekeeping.clone(),
        active_rx,
        ownership.clone(),
        delivery_cancel.clone(),
    ));
    background.spawn(stats::log_periodically(
        scheduler.stats(),
        writer.clone(),
        delivery_stats.clone(),
        delivery_cancel.clone(),
    ));
    background.spawn(crate::logging::report_dropped(delivery_cancel.clone()));
    let report = scheduler.apply(cluster::jobs(&config, owned_now(ownership.as_ref()).as_deref()));
    match &node {
        None => tracing::info!(
            checks = report.started.len(),
            channels = config.channels.len(),
            database = %location.display(),
            "pulsecheck serve started"
        ),
        Some(node) => tracing::info!(
            node = %node.member.node,
            location = node.member.location.as_deref().unwrap_or("-"),
            store = %location.display(),
            lease_ttl = ?node.ttl,
            claim_ttl = ?config.claim_ttl(),
            checks = config.checks.len(),
            channels = config.channels.len(),
            "pulsecheck serve started as a cluster node; it runs the checks whose lease it holds"
        ),
    }

    // The first SIGINT/SIGTERM cancels `shutdown`; a second one exits at once. The
    // watcher's tracker is never waited on: it ends with the process.
    let shutdown = CancellationToken::new();
    let signal_watch = TaskTracker::new();
    let (Ok(()), Ok(mut hangup)) = (
        crate::signals::watch(
            shutdown.clone(),
            CancellationToken::new(),
            &signal_watch,
            "shutting down: no new checks; waiting for checks in flight (signal again to exit now)",
        ),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("error: cannot install signal handlers");
        return Exit::Internal;
    };
    let listening = TaskTracker::new();
    // The API's changes reach this loop through `commands`; its sender lives in the
    // listener's state, so without a listener nothing ever sends.
    let (commands_tx, mut commands) = mpsc::channel::<Command>(64);
    if let Some(listener) = listener {
        let stalls = Arc::new(pulsecheck_web::StallStats::default());
        let outbox = Arc::new(pulsecheck_web::OutboxGauges::default());
        let health = pulsecheck_web::HealthSources {
            scheduler: Some(scheduler.stats()),
            writer: Some(writer.clone()),
            delivery: Some(delivery_stats.clone()),
            outbox: Some(outbox.clone()),
            runtime: stalls.clone(),
            cluster: cluster_gauges.clone(),
        };
        let state = pulsecheck_web::AppState::new(engine.clone(), active_tx.subscribe(), live.clone(), health);
        let state = backend.attach(state).with_control(Arc::new(DaemonControl {
            commands: commands_tx.clone(),
            cluster: ownership
                .clone()
                .zip(node.as_ref())
                .map(|(owned, node)| control::ClusterSource {
                    owned,
                    location: node.member.location.clone(),
                    ttl: node.ttl,
                }),
        }));
        web::start(
            listener,
            state,
            backend.housekeeping.clone(),
            outbox,
            stalls,
            &listening,
            shutdown.clone(),
        );
    }
    // Another node's API changes (checks, silences, acknowledgements) reach this one.
    if let (Some(ownership), Some(node)) = (ownership.clone(), node.as_ref()) {
        background.spawn(operated_sync::run(
            backend.console.clone(),
            active_tx.subscribe(),
            ownership,
            operated.changes.clone(),
            commands_tx.clone(),
            node.ttl / 3,
            delivery_cancel.clone(),
        ));
    }
    // Quorum checks held at this node's location re-check at once when another
    // location asks (through the run-now path below).
    if let (Some(store), Some(ownership), Some(location)) = (
        backend.second_opinions.clone(),
        ownership.clone(),
        node.as_ref().and_then(|n| n.member.location.clone()),
    ) {
        second_opinion::spawn(
            second_opinion::POLL,
            store,
            location,
            ownership,
            active_tx.subscribe(),
            commands_tx.clone(),
            &background,
            delivery_cancel.clone(),
        );
    }
    // A second receiver of the leases, for the loop to wait on.
    let mut ownership_watch = ownership.clone();
    let mut config_mtime = modified(&args.config);
    let mut poll = tokio::time::interval(CONFIG_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let why = tokio::select! {
            () = shutdown.cancelled() => break,
            Some(command) = commands.recv() => {
                let applied = Applied {
                    policy: &policy_tx,
                    active: &active_tx,
                    live: &live,
                    writer: &writer,
                    tasks: &pipeline,
                    ownership: ownership.as_ref(),
                    keys: &keys_tx,
                };
                applied.command(command, &file_config, &mut operated, &mut scheduler).await;
                continue;
            }
            () = ownership_changed(ownership_watch.as_mut()) => {
                // Leases moved: run exactly the checks held now.
                let active = active_tx.borrow().clone();
                let report = scheduler.apply(cluster::jobs(&active, owned_now(ownership.as_ref()).as_deref()));
                if !report.started.is_empty() || !report.stopped.is_empty() {
                    tracing::info!(
                        started = report.started.len(),
                        stopped = report.stopped.len(),
                        running = report.started.len() + report.kept.len() + report.changed.len(),
                        "cluster ownership changed"
                    );
                }
                continue;
            }
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
        match config_file::load(&args.config) {
            Ok(Loaded { config, channels }) => {
                // The file's checks with the API's, validated again against the new file.
                file_config = config;
                operated.revalidate(&file_config);
                channels_tx.send_replace(channels);
                let applied = Applied {
                    policy: &policy_tx,
                    active: &active_tx,
                    live: &live,
                    writer: &writer,
                    tasks: &pipeline,
                    ownership: ownership.as_ref(),
                    keys: &keys_tx,
                };
                let report = applied
                    .config(operated.effective(&file_config), &operated, &mut scheduler)
                    .await;
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

    tracing::info!("shutting down");
    // The listener stops with the shutdown token; requests in flight finish first.
    listening.close();
    listening.wait().await;
    let scheduler_stats = scheduler.stats();
    scheduler.shutdown().await;
    drop(scheduler);
    pipeline.close();
    pipeline.wait().await;
    writer.close_and_wait().await;
    // Everything is written: hand the leases over at once.
    ownership_cancel.cancel();
    ownership_tasks.close();
    ownership_tasks.wait().await;
    let snapshot = stats::Snapshot::take(&scheduler_stats, &writer, &delivery_stats);
    tracing::info!("final statistics: {snapshot}");
    if let Some(path) = &args.stats_json {
        if let Err(e) = tokio::fs::write(path, format!("{}\n", snapshot.json())).await {
            tracing::error!("cannot write --stats-json {}: {e}", path.display());
        }
    }
    delivery_cancel.cancel();
    writer_shutdown.cancel();
    background.close();
    background.wait().await;
    backend.close().await;
    tracing::info!("stopped cleanly");
    Exit::AllUp
}

/// Where a new effective config (the file's checks and the API's) goes.
struct Applied<'a> {
    policy: &'a watch::Sender<Arc<pulsecheck_core::monitor::Policy>>,
    active: &'a watch::Sender<Arc<MonitorConfig>>,
    live: &'a LiveChecks,
    writer: &'a WriterHandle,
    /// Where runs on demand go (waited for at shutdown, with the monitor).
    tasks: &'a TaskTracker,
    /// On a shared store: this node's leases, and the keys the cluster shares out.
    ownership: Option<&'a watch::Receiver<Arc<Owned>>>,
    keys: &'a watch::Sender<Arc<Vec<pulsecheck_core::ownership::LeaseKey>>>,
}

impl Applied<'_> {
    /// Applies `config` to the monitor, the listener, the store's check list and the
    /// scheduler (unchanged checks keep running untouched).
    async fn config(
        &self,
        config: MonitorConfig,
        operated: &Operated,
        scheduler: &mut Scheduler<pulsecheck_config::CheckConfig, EngineRunner>,
    ) -> pulsecheck_core::scheduler::ApplyReport {
        self.policy.send_replace(operated.policy(&config));
        self.active.send_replace(Arc::new(config.clone()));
        self.keys.send_replace(cluster::keys(&config));
        // Removed and renamed checks leave no series behind.
        self.live.retain(config.checks.iter().map(|c| c.name.as_str()));
        self.writer
            .send(WriteEvent::RegisterChecks {
                checks: check_meta(&config),
                retire_others: true,
            })
            .await;
        // The API answers once the store lists the change.
        self.writer.flush().await;
        scheduler.apply(cluster::jobs(&config, owned_now(self.ownership).as_deref()))
    }

    /// Does what the API asked and answers once it is in force.
    async fn command(
        &self,
        command: Command,
        file: &MonitorConfig,
        operated: &mut Operated,
        scheduler: &mut Scheduler<pulsecheck_config::CheckConfig, EngineRunner>,
    ) {
        match command {
            Command::RunNow { check, reply } => match scheduler.run_now(&check) {
                None if self.ownership.is_some() && self.active.borrow().check(&check).is_some() => {
                    let owned = owned_now(self.ownership).unwrap_or_default();
                    // A quorum check runs at this node's location by the node holding it there.
                    let quorum = self.active.borrow().check(&check).is_some_and(|c| c.quorum.is_some());
                    let location = quorum.then(|| owned.location()).flatten().map(str::to_owned);
                    let owner = owned
                        .owner_at(&lease_key(&check, location.as_deref()), location.as_deref())
                        .filter(|owner| *owner != owned.node)
                        .map(str::to_owned);
                    let _ = reply.send(Err(pulsecheck_web::control::ControlError::NotOwned { check, owner }));
                }
                None => {
                    let _ = reply.send(Err(pulsecheck_web::control::ControlError::NotRunning(check)));
                }
                // Runs beside the loop; the monitor records it like a scheduled run.
                Some(run) => {
                    self.tasks.spawn(async move {
                        let result = run.await.ok_or(pulsecheck_web::control::ControlError::Stopping);
                        let _ = reply.send(result);
                    });
                }
            },
            Command::PutCheck {
                check,
                definition,
                reply,
            } => {
                let name = check.name.clone();
                operated.put(*check, definition);
                let report = self.config(operated.effective(file), operated, scheduler).await;
                tracing::info!(check = %name, started = ?report.started, changed = ?report.changed, "API check applied");
                let _ = reply.send(());
            }
            Command::DeleteCheck { name, reply } => {
                operated.delete(&name);
                self.config(operated.effective(file), operated, scheduler).await;
                tracing::info!(check = %name, "API check deleted");
                let _ = reply.send(());
            }
            Command::Refresh { snapshot, seen } => {
                if operated.changes.load(std::sync::atomic::Ordering::Acquire) != seen {
                    // Read while this node applied an API change: maybe older than it.
                    return;
                }
                let refreshed = operated.refresh(*snapshot, file);
                if refreshed.checks {
                    let report = self.config(operated.effective(file), operated, scheduler).await;
                    tracing::info!(
                        started = ?report.started,
                        stopped = ?report.stopped,
                        changed = ?report.changed,
                        "checks created through another node's API applied"
                    );
                } else if refreshed.policy {
                    let active = self.active.borrow().clone();
                    self.policy.send_replace(operated.policy(&active));
                }
            }
            Command::Silence { check, until, reply } => {
                operated.silence(check, until);
                let active = self.active.borrow().clone();
                self.policy.send_replace(operated.policy(&active));
                let _ = reply.send(());
            }
            Command::Acknowledge {
                check,
                span_started,
                reply,
            } => {
                operated.acknowledge(check, span_started);
                let active = self.active.borrow().clone();
                self.policy.send_replace(operated.policy(&active));
                let _ = reply.send(());
            }
        }
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

/// What this node owns now (`None` on a single node).
fn owned_now(ownership: Option<&watch::Receiver<Arc<Owned>>>) -> Option<Arc<Owned>> {
    ownership.map(|o| o.borrow().clone())
}

/// Resolves when ownership changes; never on a single node (or once the loop ended).
async fn ownership_changed(ownership: Option<&mut watch::Receiver<Arc<Owned>>>) {
    let changed = match ownership {
        Some(ownership) => ownership.changed().await.is_ok(),
        None => false,
    };
    if !changed {
        std::future::pending::<()>().await;
    }
}

async fn compact_periodically(
    store: Arc<dyn Housekeeping>,
    active: watch::Receiver<Arc<MonitorConfig>>,
    ownership: Option<watch::Receiver<Arc<Owned>>>,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(COMPACT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        // In a cluster, one node compacts: the one holding the housekeeping lease.
        if ownership.as_ref().is_some_and(|o| !o.borrow().owns(HOUSEKEEPING)) {
            continue;
        }
        let retention = {
            let active = active.borrow();
            let config = &active.store;
            store.set_max_size(config.max_size);
            Retention {
                raw_days: config.raw_days,
                raw_up_hours: config.raw_up_hours,
                hourly_days: config.hourly_days,
                ..Retention::new(config.raw_days, config.hourly_days)
            }
        };
        match store.compact(jiff::Timestamp::now(), &retention).await {
            Ok(report) => tracing::debug!(?report, "compacted the store"),
            Err(e) => tracing::warn!("compaction failed (retried next hour): {e}"),
        }
    }
}

//! The HTTP listener of `serve` (`server:` in the config): bound before anything starts,
//! so a taken port is an error at once; served until the daemon's shutdown token is
//! cancelled, together with the tasks that feed its health figures.

use std::sync::Arc;
use std::time::Duration;

use pulsecheck_config::MonitorConfig;
use pulsecheck_core::storage::Housekeeping;
use pulsecheck_web::{AppState, OutboxGauges, StallStats};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the outbox's pending and dead counts are read for `/metrics`.
const OUTBOX_REFRESH: Duration = Duration::from_secs(15);

/// Binds `server.listen` when the config has a `server:` section.
pub async fn bind(config: &MonitorConfig) -> Result<Option<TcpListener>, String> {
    match &config.server {
        Some(server) => pulsecheck_web::bind(server.listen).await.map(Some),
        None => Ok(None),
    }
}

/// Serves `state` on `listener` until `shutdown`, with the stall detector and the outbox
/// refresher; every task is on `tasks`.
pub fn start(
    listener: TcpListener,
    state: AppState,
    store: Arc<dyn Housekeeping>,
    outbox: Arc<OutboxGauges>,
    stalls: Arc<StallStats>,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "listening: /metrics, /probe, /login and the API under /api/v1");
    }
    tasks.spawn(pulsecheck_web::health::detect_stalls(
        stalls,
        pulsecheck_web::health::STALL_THRESHOLD,
        shutdown.clone(),
    ));
    let refresh_stop = shutdown.clone();
    tasks.spawn(async move {
        let mut every = tokio::time::interval(OUTBOX_REFRESH);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = refresh_stop.cancelled() => return,
                _ = every.tick() => {}
            }
            match store.outbox_counts().await {
                Ok((pending, dead)) => outbox.set(pending, dead),
                Err(e) => tracing::warn!("cannot count the outbox for /metrics (retried): {e}"),
            }
        }
    });
    tasks.spawn(async move {
        if let Err(e) = pulsecheck_web::serve(listener, state, shutdown).await {
            tracing::error!("the HTTP listener stopped: {e}");
        }
    });
}

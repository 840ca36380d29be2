//! Second opinions for quorum checks: every second, this node takes the re-check
//! requests for its location among the quorum checks it holds there and runs each at
//! once through the scheduler's run-now path, instead of at the next interval. The
//! store writes a request when another location records a failure while the check is
//! not down (at most one pending per check and location).

use std::sync::Arc;
use std::time::Duration;

use pulsecheck_config::MonitorConfig;
use pulsecheck_core::ownership::{lease_key, Owned};
use pulsecheck_core::quorum::SecondOpinions;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::control::Command;

/// How often requests are picked up: a second opinion within about a second.
const POLL: Duration = Duration::from_secs(1);

/// The quorum checks of `config` that this node holds at `location`.
pub fn held_here(config: &MonitorConfig, owned: &Owned, location: &str) -> Vec<String> {
    config
        .checks
        .iter()
        .filter(|c| {
            c.quorum
                .as_ref()
                .is_some_and(|q| q.locations.iter().any(|l| l == location))
        })
        .filter(|c| owned.owns(&lease_key(&c.name, Some(location))))
        .map(|c| c.name.clone())
        .collect()
}

/// Polls for requests until `stop`.
pub fn spawn(
    store: Arc<dyn SecondOpinions>,
    location: String,
    ownership: watch::Receiver<Arc<Owned>>,
    active: watch::Receiver<Arc<MonitorConfig>>,
    commands: mpsc::Sender<Command>,
    tasks: &TaskTracker,
    stop: CancellationToken,
) {
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let checks = {
                let (config, owned) = (active.borrow().clone(), ownership.borrow().clone());
                held_here(&config, &owned, &location)
            };
            if checks.is_empty() {
                continue;
            }
            let taken = match store.take_rechecks(&location, &checks).await {
                Ok(taken) => taken,
                Err(e) => {
                    tracing::warn!(location = %location, "cannot read second-opinion requests (retried): {e}");
                    continue;
                }
            };
            for check in taken {
                tracing::info!(check = %check, location = %location, "second opinion: re-checking now");
                // The run is recorded by the monitor like any other; nobody waits for it here.
                let (reply, _) = oneshot::channel();
                if commands.send(Command::RunNow { check, reply }).await.is_err() {
                    return;
                }
            }
        }
    });
}

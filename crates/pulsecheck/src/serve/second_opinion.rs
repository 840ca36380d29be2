//! Second opinions for quorum checks: this node takes the re-check requests for its
//! location among the quorum checks it holds there and runs each at once through the
//! scheduler's run-now path, instead of at the next interval. The store writes a request
//! when another location records a failure while the check is not down (at most one
//! pending per check and location).
//!
//! The store announces each request as it commits (PostgreSQL `NOTIFY`), so a
//! subscribed node re-checks within milliseconds. Polling every second stays as the
//! fallback: a `LISTEN` behind PgBouncer in transaction pooling mode never hears
//! anything, and announcements made while the listener's connection is down are lost.

use std::sync::Arc;
use std::time::Duration;

use pulsecheck_config::MonitorConfig;
use pulsecheck_core::ownership::{lease_key, Owned};
use pulsecheck_core::quorum::{RecheckWakeups, SecondOpinions};
use pulsecheck_core::storage::StorageError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::control::Command;

/// How often requests are polled for, whether or not announcements arrive.
const POLL: Duration = Duration::from_secs(1);
/// How long after a failed subscription the next attempt is made (polling meanwhile).
const RESUBSCRIBE: Duration = Duration::from_secs(5);

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

/// What made this node look for requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Woken {
    Announced,
    Poll,
}

impl Woken {
    fn as_str(self) -> &'static str {
        match self {
            Woken::Announced => "notify",
            Woken::Poll => "poll",
        }
    }
}

/// The next announcement, or never without a subscription.
async fn announced(subscription: &mut Option<Box<dyn RecheckWakeups>>) -> Result<(), StorageError> {
    match subscription {
        Some(wakeups) => wakeups.next().await,
        None => std::future::pending().await,
    }
}

/// Takes and runs requests until `stop`, woken by the store's announcements and a poll.
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
        let mut subscription: Option<Box<dyn RecheckWakeups>> = None;
        let mut subscribe_at = Instant::now();
        loop {
            if subscription.is_none() && Instant::now() >= subscribe_at {
                let attempt = tokio::select! {
                    () = stop.cancelled() => return,
                    attempt = store.subscribe(&location) => attempt,
                };
                match attempt {
                    Ok(wakeups) => subscription = wakeups,
                    Err(e) => {
                        tracing::warn!(location = %location, "cannot listen for second-opinion requests, polling every {}s meanwhile: {e}", POLL.as_secs());
                        subscribe_at = Instant::now() + RESUBSCRIBE;
                    }
                }
            }
            let woken = tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => Woken::Poll,
                heard = announced(&mut subscription) => match heard {
                    Ok(()) => Woken::Announced,
                    Err(e) => {
                        tracing::warn!(location = %location, "lost the second-opinion listener, polling meanwhile: {e}");
                        subscription = None;
                        subscribe_at = Instant::now() + RESUBSCRIBE;
                        // Requests announced while it was failing: look now.
                        Woken::Poll
                    }
                },
            };
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
            for recheck in taken {
                // Across nodes' clocks: a figure for the log, not a measurement to act on.
                let waited = jiff::Timestamp::now().duration_since(recheck.requested_at);
                let waited_ms = i64::try_from(waited.as_millis()).unwrap_or(i64::MAX).max(0);
                tracing::info!(
                    check = %recheck.check,
                    location = %location,
                    woken_by = woken.as_str(),
                    waited_ms,
                    "second opinion: re-checking now"
                );
                // The run is recorded by the monitor like any other; nobody waits for it here.
                let (reply, _) = oneshot::channel();
                let check = recheck.check;
                if commands.send(Command::RunNow { check, reply }).await.is_err() {
                    return;
                }
            }
        }
    });
}

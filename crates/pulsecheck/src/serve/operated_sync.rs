//! On a shared store, what an operator changes through one node's API reaches every
//! node: checks created or deleted through the API (a check is run by whichever node
//! holds its lease, which may not be the node that was asked), silences, and
//! acknowledgements of down checks this node reminds about. Each node reads them from
//! the store every heartbeat and hands them to the serve loop, which applies what
//! differs.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pulsecheck_config::MonitorConfig;
use pulsecheck_core::ownership::{lease_key, Owned};
use pulsecheck_core::state::State;
use pulsecheck_core::storage::console::{CheckFilter, CheckPage};
use pulsecheck_core::storage::Console;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::control::{Command, OperatedSnapshot};

/// Reads the store every `every` (a heartbeat) until `cancel` or until the serve loop
/// is gone. `changes` counts this node's own API changes: a snapshot read while one was
/// applied may be older than it, so the loop drops it and the next read carries it.
pub async fn run(
    console: Arc<dyn Console>,
    active: watch::Receiver<Arc<MonitorConfig>>,
    ownership: watch::Receiver<Arc<Owned>>,
    changes: Arc<AtomicU64>,
    commands: mpsc::Sender<Command>,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate, and the loop loaded the store just before.
    tick.tick().await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let seen = changes.load(Ordering::Acquire);
        let (config, owned) = (active.borrow().clone(), ownership.borrow().clone());
        let reminded = match reminded_down(&*console, &config, &owned).await {
            Ok(reminded) => reminded,
            Err(e) => {
                tracing::warn!("cannot read the down checks for their acknowledgements: {e}");
                continue;
            }
        };
        let snapshot = match OperatedSnapshot::read(&*console, reminded.iter().map(String::as_str)).await {
            Ok(snapshot) => snapshot,
            Err(e) => {
                tracing::warn!("{e}; trying again in {every:?}");
                continue;
            }
        };
        let command = Command::Refresh {
            snapshot: Box::new(snapshot),
            seen,
        };
        if commands.send(command).await.is_err() {
            return;
        }
    }
}

/// The down checks whose reminders this node sends: its own checks with a `reminder`
/// (a quorum check's reminders are decided in the store, which reads its
/// acknowledgements there).
async fn reminded_down(console: &dyn Console, config: &MonitorConfig, owned: &Owned) -> Result<Vec<String>, String> {
    const PAGE: usize = 1_000;
    let reminding: HashSet<&str> = config
        .checks
        .iter()
        .filter(|c| c.reminder.is_some() && c.quorum.is_none() && owned.owns(&lease_key(&c.name, None)))
        .map(|c| c.name.as_str())
        .collect();
    let mut reminded = Vec::new();
    // Without a check that reminds, there is no acknowledgement to look for: skip the
    // pages of down checks (thousands in a wide outage) every heartbeat.
    if reminding.is_empty() {
        return Ok(reminded);
    }
    let mut after = None;
    loop {
        let page = CheckPage {
            filter: CheckFilter {
                state: Some(State::Down),
                ..CheckFilter::default()
            },
            after: after.clone(),
            limit: PAGE,
        };
        let down = console.check_page(&page).await.map_err(|e| e.to_string())?;
        let last_page = down.len() < PAGE;
        after = down.last().map(|c| c.name.clone());
        reminded.extend(
            down.into_iter()
                .map(|summary| summary.name)
                .filter(|name| reminding.contains(name.as_str())),
        );
        if last_page {
            return Ok(reminded);
        }
    }
}

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
pub const POLL: Duration = Duration::from_secs(1);
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

/// Takes and runs requests until `stop`, woken by the store's announcements and a poll
/// every `poll` ([`POLL`]).
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    poll: Duration,
    store: Arc<dyn SecondOpinions>,
    location: String,
    ownership: watch::Receiver<Arc<Owned>>,
    active: watch::Receiver<Arc<MonitorConfig>>,
    commands: mpsc::Sender<Command>,
    tasks: &TaskTracker,
    stop: CancellationToken,
) {
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut subscription: Option<Box<dyn RecheckWakeups>> = None;
        // When to (re)subscribe; `None`: never (the store cannot push).
        let mut subscribe_at = Some(Instant::now());
        loop {
            if subscription.is_none() && subscribe_at.is_some_and(|at| Instant::now() >= at) {
                let attempt = tokio::select! {
                    () = stop.cancelled() => return,
                    attempt = store.subscribe(&location) => attempt,
                };
                match attempt {
                    Ok(Some(wakeups)) => subscription = Some(wakeups),
                    // The store cannot push: polling is all there is, for good.
                    Ok(None) => subscribe_at = None,
                    Err(e) => {
                        tracing::warn!(location = %location, "cannot listen for second-opinion requests, polling every {poll:?} meanwhile: {e}");
                        subscribe_at = Some(Instant::now() + RESUBSCRIBE);
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
                        subscribe_at = Some(Instant::now() + RESUBSCRIBE);
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

#[cfg(test)]
mod tests {
    //! The loop against an in-memory store, on paused time: an announcement runs the
    //! re-check before the next poll; without a subscription (PgBouncer, a server that
    //! refuses it) or after it breaks, the poll still runs every request.

    use std::sync::Mutex;

    use pulsecheck_core::outbox::BoxFuture;
    use pulsecheck_core::quorum::Recheck;

    use super::*;

    /// Pending requests for "us", and how subscriptions go.
    #[derive(Default)]
    struct Requests {
        pending: Mutex<Vec<String>>,
        /// Announcements to hand to the next subscription; `None`: subscribing fails.
        announcements: Mutex<Option<mpsc::Receiver<Result<(), StorageError>>>>,
    }

    struct Announcements(mpsc::Receiver<Result<(), StorageError>>);

    impl RecheckWakeups for Announcements {
        fn next(&mut self) -> BoxFuture<'_, Result<(), StorageError>> {
            Box::pin(async move {
                self.0.recv().await.unwrap_or_else(|| {
                    Err(StorageError {
                        message: "listener connection closed".into(),
                        transient: true,
                    })
                })
            })
        }
    }

    impl SecondOpinions for Requests {
        fn take_rechecks<'a>(
            &'a self,
            _location: &'a str,
            checks: &'a [String],
        ) -> BoxFuture<'a, Result<Vec<Recheck>, StorageError>> {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let (taken, kept): (Vec<String>, Vec<String>) = pending.drain(..).partition(|c| checks.contains(c));
            *pending = kept;
            let taken = taken
                .into_iter()
                .map(|check| Recheck {
                    check,
                    requested_at: jiff::Timestamp::now(),
                })
                .collect();
            Box::pin(async move { Ok(taken) })
        }

        fn subscribe<'a>(
            &'a self,
            _location: &'a str,
        ) -> BoxFuture<'a, Result<Option<Box<dyn RecheckWakeups>>, StorageError>> {
            let announcements = self.announcements.lock().unwrap_or_else(|p| p.into_inner()).take();
            Box::pin(async move {
                match announcements {
                    Some(rx) => Ok(Some(Box::new(Announcements(rx)) as Box<dyn RecheckWakeups>)),
                    None => Err(StorageError {
                        message: "LISTEN refused".into(),
                        transient: true,
                    }),
                }
            })
        }
    }

    struct Harness {
        store: Arc<Requests>,
        commands: mpsc::Receiver<Command>,
        stop: CancellationToken,
    }

    /// Generous for a loaded machine, and far below the hour-long poll of the test that
    /// needs the announcement to be what woke the loop.
    const PROMPTLY: Duration = Duration::from_secs(30);

    fn start(poll: Duration, announcements: Option<mpsc::Receiver<Result<(), StorageError>>>) -> Harness {
        let text = "store: {url: postgres://h/db}\ncluster: {location: us}\nchecks:\n  - name: q\n    target: tcp://127.0.0.1:1\n    quorum: {locations: [eu, us]}\n";
        let config = pulsecheck_config::load_str(text, std::path::Path::new("t.yaml"), &|_: &str| None).unwrap();
        let owned = Owned {
            node: "us-1".into(),
            leases: [("q@us".to_owned(), 1)].into(),
            ..Owned::default()
        };
        let store = Arc::new(Requests {
            announcements: Mutex::new(announcements),
            ..Requests::default()
        });
        let (commands_tx, commands) = mpsc::channel(8);
        let stop = CancellationToken::new();
        // The senders are dropped: the loop keeps the last values.
        let (_, ownership) = watch::channel(Arc::new(owned));
        let (_, active) = watch::channel(Arc::new(config));
        spawn(
            poll,
            store.clone(),
            "us".into(),
            ownership,
            active,
            commands_tx,
            &TaskTracker::new(),
            stop.clone(),
        );
        Harness { store, commands, stop }
    }

    impl Harness {
        /// Writes a request (announcing it with `announce`) and waits until the loop asks
        /// to run it.
        async fn request(&mut self, announce: Option<&mpsc::Sender<Result<(), StorageError>>>) {
            self.store
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push("q".into());
            if let Some(announce) = announce {
                announce.send(Ok(())).await.unwrap();
            }
            match tokio::time::timeout(PROMPTLY, self.commands.recv()).await {
                Ok(Some(Command::RunNow { check, .. })) => assert_eq!(check, "q"),
                Ok(_) => panic!("expected a run-now of q"),
                Err(_) => panic!("the request was not run within {PROMPTLY:?}"),
            }
        }
    }

    /// The poll is an hour away: only the announcement can wake the loop in time.
    #[tokio::test]
    async fn an_announcement_runs_the_recheck_without_waiting_for_the_poll() {
        let (announce, announcements) = mpsc::channel(8);
        let mut h = start(Duration::from_secs(3600), Some(announcements));
        for _ in 0..3 {
            h.request(Some(&announce)).await;
        }
        h.stop.cancel();
    }

    /// Subscribing fails (a server or pooler that refuses LISTEN), or the subscription
    /// breaks: the poll runs every request all the same.
    #[tokio::test]
    async fn without_a_working_subscription_the_poll_runs_every_request() {
        let mut refused = start(Duration::from_millis(20), None);
        for _ in 0..3 {
            refused.request(None).await;
        }
        refused.stop.cancel();

        let (announce, announcements) = mpsc::channel(8);
        let mut broken = start(Duration::from_millis(20), Some(announcements));
        broken.request(Some(&announce)).await;
        drop(announce);
        for _ in 0..3 {
            broken.request(None).await;
        }
        broken.stop.cancel();
    }
}

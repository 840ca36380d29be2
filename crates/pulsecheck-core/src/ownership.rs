//! The ownership loop of one node: every `ttl / 3` it heartbeats, works out which keys
//! it should own among the live members ([`crate::rendezvous`]), takes or renews those
//! leases, gives up the ones that now belong to another member, and publishes what it
//! holds as [`Owned`]. The scheduler runs only owned checks and the monitor fences each
//! run with the lease's epoch.
//!
//! A key newly taken (or taken again under a new epoch) comes with the state the
//! previous owner persisted, loaded before the key is published, so the monitor resumes
//! where that owner left off. A node that cannot renew for a whole TTL (by its own
//! monotonic clock) publishes nothing owned: its leases may have passed to others, so it
//! stops probing until the store answers again. On cancel it releases every lease and
//! leaves, so a clean shutdown hands its checks over at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::{Coordinator, Member};
use crate::rendezvous;
use crate::state::CheckState;
use crate::storage::{Storage, StorageError};

/// The lease key of a check: its name, or `check@location` for a check probed from
/// several locations (one lease per location). Everything that maps checks to leases
/// goes through here.
pub fn lease_key(check: &str, location: Option<&str>) -> String {
    match location {
        None => check.to_owned(),
        Some(location) => format!("{check}@{location}"),
    }
}

/// A key the cluster shares out, with the location whose members alone may own it.
/// The location travels beside the key rather than being parsed out of it, because a
/// check's own name may contain '@'.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseKey {
    pub key: String,
    pub location: Option<String>,
}

impl LeaseKey {
    /// A key any member may own (a plain check, housekeeping).
    pub fn plain(key: impl Into<String>) -> LeaseKey {
        LeaseKey {
            key: key.into(),
            location: None,
        }
    }

    /// The key of `check` at `location` (see [`lease_key`]).
    pub fn check(check: &str, location: Option<&str>) -> LeaseKey {
        LeaseKey {
            key: lease_key(check, location),
            location: location.map(str::to_owned),
        }
    }
}

/// The lease key of the store's housekeeping (retention, compaction): one node runs it.
pub const HOUSEKEEPING: &str = "housekeeping";

/// What one node holds, as last published by its ownership loop.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Owned {
    /// This node's id.
    pub node: String,
    /// The live members at the last heartbeat (empty while cut off from the store).
    pub members: Vec<Member>,
    /// Lease key → fencing epoch, for every lease this node holds.
    pub leases: HashMap<String, i64>,
    /// The persisted state of the checks taken under their current epoch (a check the
    /// store has no state for is missing: it starts unknown).
    pub adopted: HashMap<String, CheckState>,
}

impl Owned {
    /// The epoch this node holds `key` under, if it holds it.
    pub fn epoch(&self, key: &str) -> Option<i64> {
        self.leases.get(key).copied()
    }

    pub fn owns(&self, key: &str) -> bool {
        self.leases.contains_key(key)
    }

    /// The member that should own `key` by the last member list (another node's id when
    /// this one does not own it), for telling a user where a check runs.
    pub fn owner_of(&self, key: &str) -> Option<&str> {
        rendezvous::owner(&self.members, key).map(|m| m.node.as_str())
    }

    /// [`Owned::owner_of`] for a key that runs at `location` (only members there).
    pub fn owner_at(&self, key: &str, location: Option<&str>) -> Option<&str> {
        rendezvous::owner_at(&self.members, key, location).map(|m| m.node.as_str())
    }

    /// This node's location, by the last member list.
    pub fn location(&self) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.node == self.node)
            .and_then(|m| m.location.as_deref())
    }
}

/// The timing of the loop.
#[derive(Clone, Copy, Debug)]
pub struct OwnershipConfig {
    /// How long leases and membership last without renewal; renewed every third.
    pub ttl: Duration,
}

impl OwnershipConfig {
    pub fn heartbeat(&self) -> Duration {
        self.ttl / 3
    }
}

/// Starts the loop on `tasks` and returns its publications. `keys` are every key the
/// cluster should own (all checks' lease keys, housekeeping), replaced on reload.
pub fn spawn_ownership(
    coordinator: Arc<dyn Coordinator>,
    member: Member,
    keys: watch::Receiver<Arc<Vec<LeaseKey>>>,
    storage: Arc<dyn Storage>,
    config: OwnershipConfig,
    tasks: &TaskTracker,
    cancel: CancellationToken,
) -> watch::Receiver<Arc<Owned>> {
    let (published, receiver) = watch::channel(Arc::new(Owned {
        node: member.node.clone(),
        ..Owned::default()
    }));
    let looped = Loop {
        coordinator,
        member,
        storage,
        config,
        held: Owned::default(),
        published,
        unowned: HashSet::new(),
    };
    tasks.spawn(looped.run(keys, cancel));
    receiver
}

struct Loop {
    coordinator: Arc<dyn Coordinator>,
    member: Member,
    storage: Arc<dyn Storage>,
    config: OwnershipConfig,
    /// What was last published (and is therefore what the node acts on).
    held: Owned,
    published: watch::Sender<Arc<Owned>>,
    /// Locations some key needs but no live member has, already logged (once each).
    unowned: HashSet<String>,
}

impl Loop {
    async fn run(mut self, mut keys: watch::Receiver<Arc<Vec<LeaseKey>>>, cancel: CancellationToken) {
        self.held.node = self.member.node.clone();
        let mut tick = tokio::time::interval(self.config.heartbeat());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When the last round that renewed everything started: leases taken then last
        // at least until then + ttl by the store's clock.
        let mut renewed_at: Option<Instant> = None;
        let mut keys_open = true;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {}
                changed = keys.changed(), if keys_open => keys_open = changed.is_ok(),
            }
            let started = Instant::now();
            let wanted = keys.borrow_and_update().clone();
            // A round that hangs counts as failed once the next one is due.
            match tokio::time::timeout(self.config.heartbeat(), self.round(&wanted)).await {
                Ok(Ok(())) => renewed_at = Some(started),
                Ok(Err(e)) => tracing::warn!(node = %self.member.node, "cannot renew cluster leases (retried): {e}"),
                Err(_) => {
                    tracing::warn!(node = %self.member.node, "the store did not answer the lease renewal in time (retried)")
                }
            }
            let lapsed = renewed_at.is_none_or(|at| started.duration_since(at) >= self.config.ttl);
            if lapsed && !self.held.leases.is_empty() {
                tracing::error!(
                    node = %self.member.node,
                    leases = self.held.leases.len(),
                    "cut off from the store for a whole lease period: stopping every check here until it answers"
                );
                self.held.leases.clear();
                self.held.adopted.clear();
                self.held.members.clear();
                self.publish();
            }
        }
        let mut all: Vec<String> = self.held.leases.keys().cloned().collect();
        all.sort();
        self.held = Owned {
            node: self.member.node.clone(),
            ..Owned::default()
        };
        self.publish();
        if let Err(e) = self.coordinator.release(&self.member.node, &all).await {
            tracing::warn!("cannot release the cluster leases (they lapse within the TTL): {e}");
        }
        if let Err(e) = self.coordinator.leave(&self.member.node).await {
            tracing::warn!("cannot leave the cluster (the membership lapses within the TTL): {e}");
        }
    }

    /// One heartbeat: membership, leases, adoption, release; publishes on success.
    async fn round(&mut self, keys: &[LeaseKey]) -> Result<(), StorageError> {
        let node = self.member.node.clone();
        let ttl = self.config.ttl;
        let mut members = self.coordinator.heartbeat(&self.member, ttl).await?;
        if !members.iter().any(|m| m.node == node) {
            members.push(self.member.clone());
        }
        self.log_unowned_locations(keys, &members);
        let wanted: Vec<String> = keys
            .iter()
            .filter(|k| rendezvous::owner_at(&members, &k.key, k.location.as_deref()).is_some_and(|m| m.node == node))
            .map(|k| k.key.clone())
            .collect();
        let leases = self.coordinator.acquire(&node, &wanted, ttl).await?;
        let leases: HashMap<String, i64> = leases.into_iter().map(|l| (l.key, l.epoch)).collect();
        // Taken now, or again under a new epoch: resume from what the store holds.
        let mut fresh: Vec<String> = leases
            .iter()
            .filter(|(key, epoch)| self.held.epoch(key) != Some(**epoch))
            .map(|(key, _)| key.clone())
            .collect();
        fresh.sort();
        let loaded = if fresh.is_empty() {
            HashMap::new()
        } else {
            self.storage.load_states_of(&fresh).await?
        };
        let mut adopted = std::mem::take(&mut self.held.adopted);
        adopted.retain(|key, _| leases.contains_key(key) && !fresh.contains(key));
        adopted.extend(loaded);
        // Held before, not wanted now: its new owner should not wait for it to lapse.
        let mut leaving: Vec<String> = self
            .held
            .leases
            .keys()
            .filter(|key| !leases.contains_key(*key))
            .cloned()
            .collect();
        leaving.sort();
        let next = Owned {
            node,
            members,
            leases,
            adopted,
        };
        let changed = next != self.held;
        self.held = next;
        if changed {
            self.publish();
        }
        if !leaving.is_empty() {
            self.coordinator.release(&self.member.node, &leaving).await?;
        }
        Ok(())
    }

    fn publish(&self) {
        self.published.send_replace(Arc::new(self.held.clone()));
    }

    /// Says once per location that keys there are unowned (no live member has it), and
    /// again if it happens again after a member came.
    fn log_unowned_locations(&mut self, keys: &[LeaseKey], members: &[Member]) {
        let missing: HashSet<String> = keys
            .iter()
            .filter_map(|k| k.location.as_deref())
            .filter(|location| !members.iter().any(|m| m.location.as_deref() == Some(*location)))
            .map(str::to_owned)
            .collect();
        for location in missing.difference(&self.unowned) {
            tracing::warn!(
                node = %self.member.node,
                location = %location,
                "no live node has this location: checks with a quorum are not probed from it until one joins"
            );
        }
        self.unowned = missing;
    }
}

#[cfg(test)]
mod tests {
    //! Several nodes' loops on one [`MemoryCoordinator`] and [`MemoryStorage`], on
    //! paused time.

    use std::collections::HashSet;

    use super::*;
    use crate::cluster::memory::MemoryCoordinator;
    use crate::state::State;
    use crate::storage::MemoryStorage;

    const TTL: Duration = Duration::from_secs(15);

    struct Node {
        owned: watch::Receiver<Arc<Owned>>,
        cancel: CancellationToken,
        tasks: TaskTracker,
    }

    fn start(
        coordinator: &Arc<MemoryCoordinator>,
        storage: &Arc<MemoryStorage>,
        node: &str,
        keys: &watch::Receiver<Arc<Vec<LeaseKey>>>,
    ) -> Node {
        start_at(coordinator, storage, node, None, keys)
    }

    fn start_at(
        coordinator: &Arc<MemoryCoordinator>,
        storage: &Arc<MemoryStorage>,
        node: &str,
        location: Option<&str>,
        keys: &watch::Receiver<Arc<Vec<LeaseKey>>>,
    ) -> Node {
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let owned = spawn_ownership(
            coordinator.clone(),
            Member {
                node: node.into(),
                location: location.map(str::to_owned),
            },
            keys.clone(),
            storage.clone(),
            OwnershipConfig { ttl: TTL },
            &tasks,
            cancel.clone(),
        );
        Node { owned, cancel, tasks }
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("check-{i}")).collect()
    }

    fn plain(keys: &[String]) -> Arc<Vec<LeaseKey>> {
        Arc::new(keys.iter().map(LeaseKey::plain).collect())
    }

    /// Advances paused time in small steps until `done`, for at most `limit`.
    async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if done() {
                return true;
            }
            tokio::time::advance(Duration::from_millis(250)).await;
            tokio::task::yield_now().await;
        }
        done()
    }

    fn leases(nodes: &[&Node]) -> Vec<HashMap<String, i64>> {
        nodes.iter().map(|n| n.owned.borrow().leases.clone()).collect()
    }

    /// Every key held by exactly one node.
    fn exactly_once(nodes: &[&Node], keys: &[String]) -> bool {
        let held = leases(nodes);
        keys.iter()
            .all(|k| held.iter().filter(|l| l.contains_key(k)).count() == 1)
    }

    /// Stable: every key held once, by the node rendezvous hashing names among `nodes`.
    fn settled(nodes: &[&Node], keys: &[String]) -> bool {
        let members: Vec<Member> = nodes
            .iter()
            .map(|n| Member {
                node: n.owned.borrow().node.clone(),
                location: None,
            })
            .collect();
        exactly_once(nodes, keys)
            && nodes.iter().all(|n| {
                let owned = n.owned.borrow();
                keys.iter()
                    .all(|k| owned.owns(k) == rendezvous::owns(&members, &owned.node, k))
            })
    }

    #[tokio::test(start_paused = true)]
    async fn three_nodes_share_300_keys_and_take_over_from_a_silent_one() {
        let coordinator = Arc::new(MemoryCoordinator::new());
        let storage = Arc::new(MemoryStorage::default());
        let all = keys(300);
        let (_keys_tx, keys_rx) = watch::channel(plain(&all));
        let a = start(&coordinator, &storage, "a", &keys_rx);
        let b = start(&coordinator, &storage, "b", &keys_rx);
        let c = start(&coordinator, &storage, "c", &keys_rx);
        assert!(
            until(3 * TTL, || settled(&[&a, &b, &c], &all)).await,
            "every key owned exactly once"
        );
        // Each holds about a third; the coordinator agrees with what they publish.
        for node in [&a, &b, &c] {
            let owned = node.owned.borrow().clone();
            assert!(
                (60..=140).contains(&owned.leases.len()),
                "{} holds {}",
                owned.node,
                owned.leases.len()
            );
            assert_eq!(owned.members.len(), 3);
            for (key, epoch) in &owned.leases {
                assert_eq!(coordinator.holder(key), Some((owned.node.clone(), *epoch)));
            }
        }

        // c falls silent: within the TTL (plus a heartbeat) a and b hold c's keys, with
        // higher epochs, and c has stopped claiming them by its own clock.
        let c_had = c.owned.borrow().leases.clone();
        coordinator.partition("c", true);
        assert!(
            until(TTL + TTL, || settled(&[&a, &b], &all)
                && c.owned.borrow().leases.is_empty())
            .await,
            "a and b take every key over, c lets go"
        );
        for node in [&a, &b] {
            for (key, epoch) in &node.owned.borrow().leases {
                if let Some(old) = c_had.get(key) {
                    assert!(epoch > old, "{key}: epoch {epoch} after {old}");
                }
            }
        }

        // c comes back and gets about its share again.
        coordinator.partition("c", false);
        assert!(until(3 * TTL, || settled(&[&a, &b, &c], &all)).await);
        let back = c.owned.borrow().leases.len();
        assert!((60..=140).contains(&back), "c holds {back} again");

        // A clean stop hands over at once, without waiting for the TTL.
        a.cancel.cancel();
        a.tasks.close();
        a.tasks.wait().await;
        assert!(until(TTL / 2, || settled(&[&b, &c], &all)).await);
        for node in [b, c] {
            node.cancel.cancel();
            node.tasks.close();
            node.tasks.wait().await;
        }
        assert!(
            all.iter().all(|k| coordinator.holder(k).is_none()),
            "everything released"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_taken_over_key_comes_with_the_state_its_previous_owner_wrote() {
        let coordinator = Arc::new(MemoryCoordinator::new());
        let down = CheckState {
            state: State::Down,
            since: Some("2026-03-01T12:00:00Z".parse().unwrap()),
            streak: Vec::new(),
        };
        let storage = Arc::new(MemoryStorage::with_states(HashMap::from([(
            "check-1".to_owned(),
            down.clone(),
        )])));
        let all = keys(2);
        let (keys_tx, keys_rx) = watch::channel(plain(&all));
        let a = start(&coordinator, &storage, "a", &keys_rx);
        assert!(until(TTL, || a.owned.borrow().leases.len() == 2).await);
        let owned = a.owned.borrow().clone();
        assert_eq!(owned.adopted.get("check-1"), Some(&down));
        assert!(
            !owned.adopted.contains_key("check-0"),
            "no state stored: starts unknown"
        );

        // A key added on reload is taken on the next round, a removed one released.
        keys_tx.send_replace(plain(&["check-1".into(), "check-2".into()]));
        assert!(
            until(TTL, || {
                let held: HashSet<String> = a.owned.borrow().leases.keys().cloned().collect();
                held == HashSet::from(["check-1".to_owned(), "check-2".to_owned()])
            })
            .await
        );
        assert_eq!(coordinator.holder("check-0"), None);
        a.cancel.cancel();
        a.tasks.close();
        a.tasks.wait().await;
    }

    /// A quorum check has one key per location, each held by a node at that location;
    /// a location without a node leaves its key unowned, and it is taken once one joins.
    #[tokio::test(start_paused = true)]
    async fn located_keys_are_owned_at_their_location() {
        let coordinator = Arc::new(MemoryCoordinator::new());
        let storage = Arc::new(MemoryStorage::default());
        let mut wanted: Vec<LeaseKey> = ["eu", "us", "ap"]
            .iter()
            .flat_map(|loc| (0..20).map(move |i| LeaseKey::check(&format!("q-{i}"), Some(loc))))
            .collect();
        wanted.extend((0..20).map(|i| LeaseKey::check(&format!("plain-{i}"), None)));
        assert_eq!(wanted[0].key, "q-0@eu");
        assert_eq!(wanted[60].key, "plain-0", "a plain check's key stays its name");
        let (_keys_tx, keys_rx) = watch::channel(Arc::new(wanted.clone()));
        let eu = start_at(&coordinator, &storage, "eu-1", Some("eu"), &keys_rx);
        let us = start_at(&coordinator, &storage, "us-1", Some("us"), &keys_rx);
        let at = |owned: &Owned, suffix: &str| owned.leases.keys().filter(|k| k.ends_with(suffix)).count();
        assert!(
            until(3 * TTL, || {
                let (e, u) = (eu.owned.borrow().clone(), us.owned.borrow().clone());
                at(&e, "@eu") == 20 && at(&u, "@us") == 20 && e.leases.len() + u.leases.len() == 60
            })
            .await,
            "each location's keys at its node, plain keys shared"
        );
        assert_eq!(at(&eu.owned.borrow(), "@us"), 0);
        assert!(wanted
            .iter()
            .filter(|k| k.key.ends_with("@ap"))
            .all(|k| coordinator.holder(&k.key).is_none()));

        let ap = start_at(&coordinator, &storage, "ap-1", Some("ap"), &keys_rx);
        assert!(
            until(3 * TTL, || at(&ap.owned.borrow(), "@ap") == 20).await,
            "ap takes its keys"
        );
        for node in [eu, us, ap] {
            node.cancel.cancel();
            node.tasks.close();
            node.tasks.wait().await;
        }
    }
}

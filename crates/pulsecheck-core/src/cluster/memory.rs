//! An in-memory [`Coordinator`] with the PostgreSQL one's semantics, on tokio's clock so
//! tests run on paused time: a member lives until its heartbeat's TTL lapses; a lease's
//! epoch grows when it changes hands or is taken again after it lapsed, and is kept
//! while its holder renews it; a release keeps the epoch and lapses the lease at once.
//! [`MemoryCoordinator::partition`] makes one node's calls fail, as a node cut off from
//! the store would see.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{Coordinator, Lease, Member};
use crate::outbox::BoxFuture;
use crate::storage::StorageError;

#[derive(Default)]
pub struct MemoryCoordinator {
    inner: Mutex<Data>,
}

#[derive(Default)]
struct Data {
    members: BTreeMap<String, (Member, Instant)>,
    leases: HashMap<String, Row>,
    cut_off: HashSet<String>,
}

struct Row {
    node: String,
    epoch: i64,
    expires: Instant,
}

impl MemoryCoordinator {
    pub fn new() -> MemoryCoordinator {
        MemoryCoordinator::default()
    }

    /// Cuts `node` off (`true`: its calls fail with a transient error) or reconnects it.
    pub fn partition(&self, node: &str, cut_off: bool) {
        let mut data = self.lock();
        if cut_off {
            data.cut_off.insert(node.to_owned());
        } else {
            data.cut_off.remove(node);
        }
    }

    /// Who holds `key` now and under which epoch (`None`: nobody, or lapsed).
    pub fn holder(&self, key: &str) -> Option<(String, i64)> {
        let data = self.lock();
        let now = Instant::now();
        data.leases
            .get(key)
            .filter(|row| row.expires > now)
            .map(|row| (row.node.clone(), row.epoch))
    }

    /// Whether `fence` is current: what a fenced store checks before it commits a run.
    pub fn is_current(&self, fence: &super::Fence) -> bool {
        self.holder(&fence.key) == Some((fence.node.clone(), fence.epoch))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reachable(data: &Data, node: &str) -> Result<(), StorageError> {
        if data.cut_off.contains(node) {
            return Err(StorageError {
                message: format!("{node} is cut off from the store"),
                transient: true,
            });
        }
        Ok(())
    }
}

fn timestamp(at: Instant) -> jiff::Timestamp {
    let left = at.saturating_duration_since(Instant::now());
    jiff::Timestamp::now() + jiff::SignedDuration::try_from(left).unwrap_or_default()
}

impl Coordinator for MemoryCoordinator {
    fn heartbeat<'a>(&'a self, member: &'a Member, ttl: Duration) -> BoxFuture<'a, Result<Vec<Member>, StorageError>> {
        let result = (|| {
            let mut data = self.lock();
            Self::reachable(&data, &member.node)?;
            let now = Instant::now();
            data.members.insert(member.node.clone(), (member.clone(), now + ttl));
            data.members.retain(|_, (_, expires)| *expires > now);
            Ok(data.members.values().map(|(m, _)| m.clone()).collect())
        })();
        Box::pin(async move { result })
    }

    fn acquire<'a>(
        &'a self,
        node: &'a str,
        keys: &'a [String],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<Lease>, StorageError>> {
        let result = (|| {
            let mut data = self.lock();
            Self::reachable(&data, node)?;
            let now = Instant::now();
            let mut held = Vec::new();
            for key in keys {
                let row = data.leases.entry(key.clone()).or_insert(Row {
                    node: String::new(),
                    epoch: 0,
                    expires: now,
                });
                let live = row.expires > now;
                if live && row.node != node {
                    continue;
                }
                if !live || row.node != node {
                    row.epoch += 1;
                    row.node = node.to_owned();
                }
                row.expires = now + ttl;
                held.push(Lease {
                    key: key.clone(),
                    epoch: row.epoch,
                    expires_at: timestamp(row.expires),
                });
            }
            Ok(held)
        })();
        Box::pin(async move { result })
    }

    fn release<'a>(&'a self, node: &'a str, keys: &'a [String]) -> BoxFuture<'a, Result<(), StorageError>> {
        let result = (|| {
            let mut data = self.lock();
            Self::reachable(&data, node)?;
            let now = Instant::now();
            for key in keys {
                if let Some(row) = data.leases.get_mut(key) {
                    if row.node == node && row.expires > now {
                        row.expires = now;
                    }
                }
            }
            Ok(())
        })();
        Box::pin(async move { result })
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        let result = (|| {
            let mut data = self.lock();
            Self::reachable(&data, node)?;
            let now = Instant::now();
            data.members.remove(node);
            for row in data.leases.values_mut() {
                if row.node == node && row.expires > now {
                    row.expires = now;
                }
            }
            Ok(())
        })();
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(15);

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn epochs_grow_on_change_of_hands_and_stay_on_renewal() {
        let c = MemoryCoordinator::new();
        let k = keys(&["api"]);
        assert_eq!(c.acquire("a", &k, TTL).await.unwrap()[0].epoch, 1);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(c.acquire("a", &k, TTL).await.unwrap()[0].epoch, 1, "renewal keeps it");
        assert!(c.acquire("b", &k, TTL).await.unwrap().is_empty(), "held by a");
        tokio::time::advance(TTL).await;
        assert_eq!(c.acquire("b", &k, TTL).await.unwrap()[0].epoch, 2, "lapsed: b takes it");
        c.release("b", &k).await.unwrap();
        assert_eq!(c.holder("api"), None);
        assert_eq!(
            c.acquire("b", &k, TTL).await.unwrap()[0].epoch,
            3,
            "taken again after release"
        );
        c.release("a", &k).await.unwrap();
        assert_eq!(
            c.holder("api"),
            Some(("b".into(), 3)),
            "a release by a non-holder is ignored"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn members_lapse_and_a_cut_off_node_fails() {
        let c = MemoryCoordinator::new();
        let a = Member {
            node: "a".into(),
            location: None,
        };
        let b = Member {
            node: "b".into(),
            location: Some("eu".into()),
        };
        c.heartbeat(&a, TTL).await.unwrap();
        assert_eq!(c.heartbeat(&b, TTL).await.unwrap(), vec![a.clone(), b.clone()]);
        c.partition("a", true);
        assert!(c.heartbeat(&a, TTL).await.unwrap_err().transient);
        tokio::time::advance(TTL + Duration::from_secs(1)).await;
        assert_eq!(c.heartbeat(&b, TTL).await.unwrap(), vec![b.clone()]);
        c.partition("a", false);
        c.acquire("a", &keys(&["x"]), TTL).await.unwrap();
        c.leave("a").await.unwrap();
        assert_eq!(c.holder("x"), None);
    }
}

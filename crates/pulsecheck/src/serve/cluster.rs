//! `serve` as one node of several on a shared store: the node's identity, the lease
//! keys of the config, the jobs this node runs (those it holds the lease of), and the
//! cluster gauges of `/metrics`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pulsecheck_config::{CheckConfig, ClusterConfig, MonitorConfig};
use pulsecheck_core::cluster::Member;
use pulsecheck_core::ownership::{lease_key, Owned, HOUSEKEEPING};
use pulsecheck_core::scheduler::Job;
use pulsecheck_web::ClusterGauges;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// This process as a cluster member.
#[derive(Clone, Debug)]
pub struct Node {
    pub member: Member,
    pub ttl: Duration,
}

impl Node {
    /// `{cluster.node or the host name}-{8 random hex digits}`: a new id per process
    /// start, so a restarted node never passes for its previous incarnation (whose
    /// leases, and epochs, are not its own).
    pub fn new(config: Option<&ClusterConfig>) -> Node {
        let base = config
            .and_then(|c| c.node.clone())
            .or_else(|| hostname::get().ok().and_then(|h| h.into_string().ok()))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "pulsecheck".to_owned());
        // RandomState is seeded from the OS's randomness once per process.
        let random = RandomState::new().hash_one(std::process::id()) as u32;
        Node {
            member: Member {
                node: format!("{base}-{random:08x}"),
                location: config.and_then(|c| c.location.clone()),
            },
            ttl: config.map_or(pulsecheck_config::DEFAULT_LEASE_TTL, |c| c.lease_ttl),
        }
    }
}

/// Every lease the cluster hands out for `config`: one per check, and housekeeping.
pub fn keys(config: &MonitorConfig) -> Arc<Vec<String>> {
    let mut keys: Vec<String> = config.checks.iter().map(|c| lease_key(&c.name)).collect();
    keys.push(HOUSEKEEPING.to_owned());
    Arc::new(keys)
}

/// The jobs of `config` this node runs: all of them alone, the owned ones in a cluster.
pub fn jobs(config: &MonitorConfig, owned: Option<&Owned>) -> Vec<Job<CheckConfig>> {
    let mut jobs = super::runner::jobs(config);
    if let Some(owned) = owned {
        jobs.retain(|job| owned.owns(&lease_key(&job.name)));
    }
    jobs
}

/// How often the store's count of refused runs is read for `/metrics`.
const REJECTED_REFRESH: Duration = Duration::from_secs(5);

/// Keeps `gauges` in step with the ownership loop's publications and the store's count
/// of refused runs, until `stop`.
pub fn follow_gauges(
    mut owned: watch::Receiver<Arc<Owned>>,
    rejected_runs: Arc<dyn Fn() -> u64 + Send + Sync>,
    gauges: Arc<ClusterGauges>,
    tasks: &TaskTracker,
    stop: CancellationToken,
) {
    tasks.spawn(async move {
        let mut refresh = tokio::time::interval(REJECTED_REFRESH);
        let mut open = true;
        loop {
            {
                let owned = owned.borrow_and_update();
                let checks = owned.leases.keys().filter(|k| k.as_str() != HOUSEKEEPING).count();
                gauges.owned_checks.store(checks as u64, Ordering::Relaxed);
                gauges.members.store(owned.members.len() as u64, Ordering::Relaxed);
            }
            gauges.rejected_runs.store(rejected_runs(), Ordering::Relaxed);
            tokio::select! {
                () = stop.cancelled() => return,
                _ = refresh.tick() => {}
                changed = owned.changed(), if open => open = changed.is_ok(),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_start_is_a_new_incarnation() {
        let config = ClusterConfig {
            node: Some("eu-1".into()),
            location: Some("eu".into()),
            lease_ttl: Duration::from_secs(9),
        };
        let (a, b) = (Node::new(Some(&config)), Node::new(Some(&config)));
        assert!(a.member.node.starts_with("eu-1-") && a.member.node.len() == "eu-1-".len() + 8);
        assert_ne!(a.member.node, b.member.node);
        assert_eq!(a.member.location.as_deref(), Some("eu"));
        assert_eq!(a.ttl, Duration::from_secs(9));
        let default = Node::new(None);
        assert_eq!(default.ttl, pulsecheck_config::DEFAULT_LEASE_TTL);
        assert!(!default.member.node.starts_with('-'));
    }
}

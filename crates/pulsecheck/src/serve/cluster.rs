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
use pulsecheck_core::ownership::{lease_key, LeaseKey, Owned, HOUSEKEEPING};
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

/// Every lease the cluster hands out for `config`: one per check (one per location of
/// a check with a quorum, owned at that location), and housekeeping.
pub fn keys(config: &MonitorConfig) -> Arc<Vec<LeaseKey>> {
    let mut keys: Vec<LeaseKey> = Vec::with_capacity(config.checks.len() + 1);
    for check in &config.checks {
        match &check.quorum {
            None => keys.push(LeaseKey::check(&check.name, None)),
            Some(quorum) => keys.extend(
                quorum
                    .locations
                    .iter()
                    .map(|location| LeaseKey::check(&check.name, Some(location))),
            ),
        }
    }
    keys.push(LeaseKey::plain(HOUSEKEEPING));
    Arc::new(keys)
}

/// The jobs of `config` this node runs: all of them alone, the owned ones in a cluster.
/// A quorum check runs here when this node holds one of its locations (a node has one
/// location, so the job's name, the check's, stays unique on the node).
pub fn jobs(config: &MonitorConfig, owned: Option<&Owned>) -> Vec<Job<CheckConfig>> {
    let mut jobs = super::runner::jobs(config);
    if let Some(owned) = owned {
        jobs.retain(|job| match &job.spec.quorum {
            None => owned.owns(&lease_key(&job.name, None)),
            Some(quorum) => quorum
                .locations
                .iter()
                .any(|location| owned.owns(&lease_key(&job.name, Some(location)))),
        });
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
            claim_ttl: None,
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

    /// A quorum check has one key per location and runs on a node holding one of them,
    /// under its own name; a plain check keeps its name as its key.
    #[test]
    fn a_quorum_check_has_a_key_per_location_and_runs_where_one_is_held() {
        let text = "store: {url: postgres://h/db}\ncluster: {location: us}\nchecks:\n  - name: plain\n    target: tcp://127.0.0.1:1\n  - name: q\n    target: tcp://127.0.0.1:1\n    quorum: {locations: [eu, us]}\n";
        let config = pulsecheck_config::load_str(text, std::path::Path::new("t.yaml"), &|_: &str| None).unwrap();
        let keys: Vec<(String, Option<String>)> = keys(&config)
            .iter()
            .map(|k| (k.key.clone(), k.location.clone()))
            .collect();
        assert_eq!(
            keys,
            [
                ("plain".to_owned(), None),
                ("q@eu".to_owned(), Some("eu".to_owned())),
                ("q@us".to_owned(), Some("us".to_owned())),
                (HOUSEKEEPING.to_owned(), None),
            ]
        );
        let holding = |leases: &[&str]| Owned {
            node: "us-1".into(),
            leases: leases.iter().map(|k| (k.to_string(), 1)).collect(),
            ..Owned::default()
        };
        let names = |owned: &Owned| -> Vec<String> { jobs(&config, Some(owned)).into_iter().map(|j| j.name).collect() };
        assert_eq!(names(&holding(&["q@us"])), ["q"]);
        assert_eq!(names(&holding(&["plain", "q@eu"])), ["plain", "q"]);
        assert!(
            names(&holding(&["q"])).is_empty(),
            "a quorum check is never held by its bare name"
        );
        assert_eq!(jobs(&config, None).len(), 2, "alone, every check runs");
    }
}

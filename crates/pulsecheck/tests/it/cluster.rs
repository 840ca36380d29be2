//! Two real `pulsecheck serve` nodes on one real PostgreSQL (started by the test, see
//! `pulsecheck_postgres::testing`), probing the simulator: they share the checks, each
//! check runs on one node (the other answers a run-now with 409 naming the owner), and
//! when one node is killed the other owns every check within the lease TTL plus a
//! margin. Skipped without PostgreSQL unless `CI` is set.
//!
//! The helpers (`Node`, `metric`, `owned`) are for the heavier cluster tests too.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pulsecheck_sim::SimConfig;
use serde_json::Value;

use crate::daemon::{eventually, listening, Daemon};

pub const TOKEN: &str = "cluster-test-token-0123456789";
/// The lease TTL of the tests: the shortest allowed, so takeovers are quick.
pub const TTL: Duration = Duration::from_secs(3);

/// A fresh database on the test binary's PostgreSQL, or `None` to skip.
pub async fn database() -> Option<String> {
    match pulsecheck_postgres::testing::shared_database().await {
        Ok(Some(url)) => Some(url),
        Ok(None) => {
            eprintln!("{}", pulsecheck_postgres::testing::SKIPPED);
            None
        }
        Err(e) => panic!("cannot start the test PostgreSQL: {e}"),
    }
}

/// A config with `checks` HTTP checks on the simulator, every second, for node `name`.
pub fn config(dir: &Path, name: &str, http: std::net::SocketAddr, checks: usize) -> PathBuf {
    let mut text = format!(
        "server:\n  listen: 127.0.0.1:0\n  tokens: [\"${{PULSECHECK_CLUSTER_TEST_TOKEN}}\"]\n  allow: [\"{http}\"]\n\
         cluster:\n  node: {name}\n  lease_ttl: {}s\nchecks:\n",
        TTL.as_secs()
    );
    for i in 0..checks {
        text.push_str(&format!(
            "  - name: c{i:03}\n    target: http://{http}/ok\n    interval: 1s\n    timeout: 500ms\n"
        ));
    }
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// One node: the daemon, its log and its base URL.
pub struct Node {
    pub daemon: Option<Daemon>,
    pub log: PathBuf,
    pub base: String,
}

impl Node {
    pub async fn start(dir: &Path, name: &str, config: &Path, store: &str) -> Node {
        let log = dir.join(format!("{name}.log"));
        // --db is ignored: --store (here PULSECHECK_STORE) wins.
        let daemon = Daemon::start(
            config,
            &dir.join(format!("{name}.db")),
            &log,
            &[("PULSECHECK_STORE", store), ("PULSECHECK_CLUSTER_TEST_TOKEN", TOKEN)],
        );
        let base = format!("http://{}", listening(&log).await);
        Node {
            daemon: Some(daemon),
            log,
            base,
        }
    }

    /// SIGKILL, by the PID this test started (`Daemon` kills on drop).
    pub fn kill(&mut self) {
        drop(self.daemon.take());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A sample of `/metrics` without labels, if the node answers and shows it.
pub async fn metric(node: &Node, name: &str) -> Option<f64> {
    let response = client()
        .get(format!("{}/metrics", node.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .ok()?;
    let text = response.text().await.ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// How many checks the node owns, by `/metrics`.
pub async fn owned(node: &Node) -> Option<u64> {
    metric(node, "pulsecheck_cluster_owned_checks").await.map(|v| v as u64)
}

/// `POST /api/v1/checks/NAME/run`: the status and the body.
pub async fn run_now(node: &Node, check: &str) -> (u16, Value) {
    let response = client()
        .post(format!("{}/api/v1/checks/{check}/run", node.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn two_nodes_share_the_checks_and_one_takes_over_when_the_other_is_killed() {
    let Some(url) = database().await else {
        return;
    };
    const CHECKS: u64 = 50;
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let http = sim.info.http[0];
    let dir = tempfile::tempdir().unwrap();
    let config_a = config(dir.path(), "a", http, CHECKS as usize);
    let config_b = config(dir.path(), "b", http, CHECKS as usize);
    let mut a = Node::start(dir.path(), "a", &config_a, &url).await;
    let b = Node::start(dir.path(), "b", &config_b, &url).await;

    // Both nodes see each other and split the checks between them.
    let (owned_a, owned_b) = eventually(Duration::from_secs(60), "both nodes own a share", || async {
        let (x, y) = (owned(&a).await?, owned(&b).await?);
        let members = (
            metric(&a, "pulsecheck_cluster_members").await?,
            metric(&b, "pulsecheck_cluster_members").await?,
        );
        (x + y == CHECKS && x > 0 && y > 0 && members == (2.0, 2.0)).then_some((x, y))
    })
    .await;
    eprintln!("node a owns {owned_a} checks, node b {owned_b}");

    // Each check runs on exactly one node: the other refuses a run-now, naming it.
    let mut ran = (0, 0);
    for i in 0..CHECKS {
        let check = format!("c{i:03}");
        let (on_a, body_a) = run_now(&a, &check).await;
        let (on_b, body_b) = run_now(&b, &check).await;
        match (on_a, on_b) {
            (200, 409) => {
                ran.0 += 1;
                assert!(body_b.to_string().contains("owned by node a-"), "{body_b}");
            }
            (409, 200) => {
                ran.1 += 1;
                assert!(body_a.to_string().contains("owned by node b-"), "{body_a}");
            }
            _ => panic!("{check}: a answered {on_a} {body_a}, b answered {on_b} {body_b}"),
        }
    }
    assert_eq!(ran.0 + ran.1, CHECKS);
    assert!(ran.0 > 0 && ran.1 > 0, "{ran:?}");

    // Both nodes have recorded runs (the scheduled ones count).
    for node in [&a, &b] {
        eventually(Duration::from_secs(30), "scheduled runs on both nodes", || async {
            (metric(node, "pulsecheck_scheduled_runs_total").await? > 0.0).then_some(())
        })
        .await;
    }

    // SIGKILL a: b owns all the checks within the TTL plus a margin for a loaded machine.
    a.kill();
    let killed = Instant::now();
    eventually(
        Duration::from_secs(60),
        "b owns every check after a is killed",
        || async { (owned(&b).await? == CHECKS).then_some(()) },
    )
    .await;
    let takeover = killed.elapsed();
    eprintln!("takeover after SIGKILL: {takeover:?} (lease TTL {TTL:?})");
    assert!(
        takeover < TTL + Duration::from_secs(20),
        "takeover took {takeover:?}; log of b:\n{}",
        b.log_text()
    );
    // And b runs them: a run-now of a check a had is answered.
    let (status, body) = run_now(&b, "c000").await;
    assert_eq!(status, 200, "{body}");
    let b_log = b.log.clone();
    b.daemon.unwrap().stop(&b_log).await;
}

//! Two real `pulsecheck serve` nodes on one real PostgreSQL (started by the test, see
//! `pulsecheck_postgres::testing`), probing the simulator: they share the checks, each
//! check runs on one node (the other answers a run-now with 409 naming the owner), and
//! when one node is killed the other owns every check within the lease TTL plus a
//! margin. Skipped without PostgreSQL unless `CI` is set.
//!
//! The node helpers live in `cluster_nodes`; [`database`] hands out a database on the
//! PostgreSQL server the in-process tests share.

use std::time::{Duration, Instant};

use pulsecheck_sim::SimConfig;

use crate::cluster_nodes::{checks, config, serial, Node};
pub use crate::cluster_nodes::{TOKEN, TTL};
use crate::daemon::eventually;

/// A fresh database on the test binary's shared PostgreSQL, or `None` to skip.
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

#[tokio::test]
async fn two_nodes_share_the_checks_and_one_takes_over_when_the_other_is_killed() {
    let _serial = serial().await;
    let Some((url, _pool)) = crate::cluster_nodes::database("two_nodes").await else {
        return;
    };
    const CHECKS: u64 = 50;
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let (_, yaml) = checks(CHECKS as usize, &format!("http://{}/ok", sim.info.http[0]));
    let defaults = "  interval: 1s\n  timeout: 500ms\n";
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(dir.path(), "a", &url, &config("a", defaults, &yaml, ""), &[]).await;
    let b = Node::start(dir.path(), "b", &url, &config("b", defaults, &yaml, ""), &[]).await;

    // Both nodes see each other and split the checks between them.
    let (owned_a, owned_b) = eventually(Duration::from_secs(60), "both nodes own a share", || async {
        let (x, y) = (a.owned().await?, b.owned().await?);
        let members = (
            a.metric("pulsecheck_cluster_members").await?,
            b.metric("pulsecheck_cluster_members").await?,
        );
        (x + y == CHECKS && x > 0 && y > 0 && members == (2.0, 2.0)).then_some((x, y))
    })
    .await;
    eprintln!("node a owns {owned_a} checks, node b {owned_b}");

    // Each check runs on exactly one node: the other refuses a run-now, naming it.
    let mut ran = (0, 0);
    for i in 0..CHECKS {
        let check = format!("c{i:03}");
        let (on_a, body_a) = a.run_now(&check).await;
        let (on_b, body_b) = b.run_now(&check).await;
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
            (node.metric("pulsecheck_scheduled_runs_total").await? > 0.0).then_some(())
        })
        .await;
    }

    // SIGKILL a: b owns all the checks within the TTL plus a margin for a loaded machine.
    a.kill().await;
    let killed = Instant::now();
    eventually(
        Duration::from_secs(60),
        "b owns every check after a is killed",
        || async { (b.owned().await? == CHECKS).then_some(()) },
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
    let (status, body) = b.run_now("c000").await;
    assert_eq!(status, 200, "{body}");
    b.stop().await;
}

/// A check created through one node's API runs on whichever node holds its lease, and
/// one deleted through another node's API stops there: every node reads the operators'
/// changes from the store.
#[tokio::test]
async fn checks_created_through_one_nodes_api_run_on_the_node_that_holds_them() {
    let _serial = serial().await;
    let Some((url, pool)) = crate::cluster_nodes::database("api_checks").await else {
        return;
    };
    const CHECKS: usize = 12;
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let http = sim.info.http[0];
    let text = |node: &str| {
        config(node, "  interval: 1s\n  timeout: 500ms\n", "", "")
            .replace(
                "  listen: 127.0.0.1:0\n",
                &format!("  listen: 127.0.0.1:0\n  allow: [\"{http}\"]\n"),
            )
            .replace("checks:\n", "checks: []\n")
    };
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(dir.path(), "a", &url, &text("a"), &[]).await;
    let b = Node::start(dir.path(), "b", &url, &text("b"), &[]).await;
    eventually(Duration::from_secs(60), "two members", || async {
        let members = (
            a.metric("pulsecheck_cluster_members").await?,
            b.metric("pulsecheck_cluster_members").await?,
        );
        (members == (2.0, 2.0)).then_some(())
    })
    .await;

    // Created through a only.
    for i in 0..CHECKS {
        let (status, body) = a
            .call(
                reqwest::Method::PUT,
                &format!("/api/v1/checks/api-{i:02}"),
                Some(serde_json::json!({"target": format!("http://{http}/ok"), "interval": "1s"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (on_a, on_b) = eventually(Duration::from_secs(60), "both nodes run a share", || async {
        let (x, y) = (a.owned().await?, b.owned().await?);
        (x + y == CHECKS as u64 && x > 0 && y > 0).then_some((x, y))
    })
    .await;
    eprintln!("checks created through a: a runs {on_a}, b runs {on_b}");
    // Every one of them has results, whichever node runs it.
    eventually(Duration::from_secs(60), "results of every API check", || async {
        let ran: i64 = sqlx::query_scalar(
            "SELECT COUNT(DISTINCT r.check_id) FROM results r JOIN check_ids c ON c.id = r.check_id
             WHERE c.name LIKE 'api-%'",
        )
        .fetch_one(&pool)
        .await
        .ok()?;
        (ran == CHECKS as i64).then_some(())
    })
    .await;

    // Deleted through b: neither node runs them any more.
    for i in 0..CHECKS / 2 {
        let (status, body) = b
            .call(reqwest::Method::DELETE, &format!("/api/v1/checks/api-{i:02}"), None)
            .await;
        assert!(matches!(status, 200 | 204), "{status} {body}");
    }
    eventually(Duration::from_secs(60), "half of the checks left", || async {
        let (x, y) = (a.owned().await?, b.owned().await?);
        (x + y == (CHECKS / 2) as u64).then_some(())
    })
    .await;
    a.stop().await;
    b.stop().await;
}

//! Location quorum end to end: three real `pulsecheck serve` nodes at locations eu, us
//! and ap on one throwaway PostgreSQL, each resolving names through its own simulator
//! DNS (started with that location), so that `down-eu-us.pulsecheck.test` is down from
//! eu and us only and `down-eu.pulsecheck.test` from eu only. With `min_down: 2` the
//! first check is declared down and the second is not, though eu sees it down and asks
//! the others for a second opinion, which they run at once, woken by NOTIFY. While
//! `twice` stays down the cluster reminds once per interval. Skipped without PostgreSQL
//! unless `CI` is set.

use std::time::Duration;

use pulsecheck_sim::{SimConfig, SimHandle};
use serde_json::Value;

use crate::cluster::{database, TOKEN, TTL};
use crate::cluster_nodes::Node;
use crate::daemon::eventually;
const LOCATIONS: [&str; 3] = ["eu", "us", "ap"];
/// Twice the checks' interval (4 s): three nodes write `twice` about six times per reminder.
const REMINDER: Duration = Duration::from_secs(4);

/// The config of the node at `location`: the two quorum checks on the simulators' port.
fn node_config(location: &str, port: u16) -> String {
    let mut text = format!(
        "server:\n  listen: 127.0.0.1:0\n  tokens: [\"${{PULSECHECK_CLUSTER_TEST_TOKEN}}\"]\n\
         cluster:\n  node: {location}\n  location: {location}\n  lease_ttl: {}s\n\
         channels:\n  hook:\n    type: webhook\n    url: http://127.0.0.1:9/never\nchecks:\n",
        TTL.as_secs()
    );
    for (name, host) in [("twice", "down-eu-us"), ("once", "down-eu")] {
        text.push_str(&format!(
            "  - name: {name}\n    target: http://{host}.pulsecheck.test:{port}/ok\n    interval: 2s\n    \
             timeout: 1s\n    quorum: {{locations: [eu, us, ap], min_down: 2}}\n    channels: [hook]\n    \
             reminder: {}s\n",
            REMINDER.as_secs()
        ));
    }
    text
}

/// `GET /api/v1/checks/NAME`, if the node answers.
async fn check(node: &Node, name: &str) -> Option<Value> {
    let (status, body) = node
        .call(reqwest::Method::GET, &format!("/api/v1/checks/{name}"), None)
        .await;
    (status == 200).then_some(body)
}

/// The check's state and `location → (state, disagrees)` of its locations.
fn states(body: &Value) -> (String, Vec<(String, String, bool)>) {
    let state = body["status"]["state"].as_str().unwrap_or("unknown").to_owned();
    let locations = body["locations"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|l| {
                    (
                        l["location"].as_str().unwrap_or_default().to_owned(),
                        l["state"].as_str().unwrap_or_default().to_owned(),
                        l["disagrees"].as_bool().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (state, locations)
}

fn expect(list: &[(&str, &str, bool)]) -> Vec<(String, String, bool)> {
    list.iter()
        .map(|(l, s, d)| (l.to_string(), s.to_string(), *d))
        .collect()
}

/// `(woken_by, waited_ms)` of each second opinion a node's log records.
fn second_opinions(log: &str) -> Vec<(String, i64)> {
    let field = |line: &str, name: &str| -> Option<String> {
        let rest = line.split(&format!(" {name}=")).nth(1)?;
        Some(rest.split(' ').next()?.trim_matches('"').to_owned())
    };
    log.lines()
        .filter(|l| l.contains("second opinion: re-checking now"))
        .filter_map(|l| Some((field(l, "woken_by")?, field(l, "waited_ms")?.parse().ok()?)))
        .collect()
}

#[tokio::test]
async fn two_locations_down_declare_down_one_does_not() {
    let Some(url) = database().await else {
        return;
    };
    // One simulator per location, for its DNS; the first also serves the target.
    let mut sims: Vec<SimHandle> = Vec::new();
    for location in LOCATIONS {
        let config = SimConfig {
            location: Some(location.to_owned()),
            ..SimConfig::default()
        };
        sims.push(pulsecheck_sim::start(config).await.unwrap());
    }
    let port = sims[0].info.http[0].port();
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for (location, sim) in LOCATIONS.iter().zip(&sims) {
        let text = node_config(location, port);
        let dns = sim.info.dns.to_string();
        nodes.push(Node::start_with_args(dir.path(), location, &url, &text, &[], &["--nameserver", &dns]).await);
    }
    let logs = |nodes: &[Node]| -> String { nodes.iter().map(Node::log_text).collect::<Vec<_>>().join("\n") };

    // Down from eu and us: two of three, the check is down; ap disagrees.
    let twice = eventually(Duration::from_secs(90), "twice declared down", || async {
        let body = check(&nodes[2], "twice").await?;
        let (state, locations) = states(&body);
        (state == "down" && locations.len() == 3).then_some(locations)
    })
    .await;
    assert_eq!(
        twice,
        expect(&[("ap", "up", true), ("eu", "down", false), ("us", "down", false)]),
        "{}",
        logs(&nodes)
    );

    // Down from eu only: eu judges it down, the check stays up, eu disagrees.
    let once = eventually(Duration::from_secs(90), "once judged by every location", || async {
        let body = check(&nodes[1], "once").await?;
        let (state, locations) = states(&body);
        (locations.len() == 3 && locations.iter().all(|(_, s, _)| s != "unknown")).then_some((state, locations))
    })
    .await;
    assert_eq!(
        once,
        (
            "up".to_owned(),
            expect(&[("ap", "up", false), ("eu", "down", true), ("us", "up", false)])
        ),
        "{}",
        logs(&nodes)
    );

    // The check page shows the locations and marks eu.
    let page = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{}/checks/once", nodes[0].addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let table = page.split("id=\"locations-h\"").nth(1).expect("a locations section");
    let eu_row = table
        .split("<tr>")
        .find(|row| row.contains("<td>eu</td>"))
        .expect("a row for eu");
    assert!(eu_row.contains("disagrees"), "{eu_row}");
    assert!(!table
        .split("<tr>")
        .any(|row| row.contains("<td>us</td>") && row.contains("disagrees")));

    // eu's failure asked us and ap for a second opinion, which they ran at once, woken
    // by the store's announcement (LISTEN/NOTIFY) rather than the one-second poll.
    let waits = eventually(Duration::from_secs(60), "a second opinion from us or ap", || async {
        let waits: Vec<(String, i64)> = nodes[1..].iter().flat_map(|n| second_opinions(&n.log_text())).collect();
        waits.iter().any(|(by, _)| by == "notify").then_some(waits)
    })
    .await;
    let mut announced: Vec<i64> = waits
        .iter()
        .filter(|(by, _)| by == "notify")
        .map(|(_, ms)| *ms)
        .collect();
    announced.sort_unstable();
    eprintln!(
        "second opinions: {} woken by NOTIFY, {} by the poll; request written → re-check started: {announced:?} ms",
        announced.len(),
        waits.len() - announced.len()
    );
    // `twice` stays down: the cluster reminds once per interval, not once per node or
    // location (the three nodes write it every 2 s, the reminder is every 4 s).
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    let reminders = eventually(Duration::from_secs(90), "three reminders of twice", || async {
        let events: Vec<String> = sqlx::query_scalar(
            "SELECT event FROM notifications WHERE check_name = 'twice' AND kind = 'reminder' ORDER BY id",
        )
        .fetch_all(&db)
        .await
        .ok()?;
        let at: Vec<jiff::Timestamp> = events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok()?["at"].as_str()?.parse().ok())
            .collect();
        (at.len() >= 3).then_some(at)
    })
    .await;
    // In milliseconds, as the store keeps and compares them.
    for pair in reminders.windows(2) {
        let gap = pair[1].as_millisecond() - pair[0].as_millisecond();
        assert!(
            gap >= i64::try_from(REMINDER.as_millis()).unwrap(),
            "reminders {reminders:?}"
        );
    }
    let downs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE check_name = 'twice' AND kind = 'down'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(downs, 1, "one down alert for the check, one channel");
    db.close().await;

    // Nobody ever declared `once` down: no transition to down in any log.
    let all = logs(&nodes);
    assert!(
        !all.lines().any(|l| l.contains("quorum changed the check's state")
            && l.contains("check=\"once\"")
            && l.contains("to=down")),
        "{all}"
    );
    assert!(all.lines().any(|l| l.contains("quorum changed the check's state")
        && l.contains("check=\"twice\"")
        && l.contains("to=down")));
    drop(nodes);
    for sim in sims {
        sim.shutdown().await;
    }
}

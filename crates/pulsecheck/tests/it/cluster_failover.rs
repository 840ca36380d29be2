//! Several real `pulsecheck serve` nodes on one throwaway PostgreSQL: every check owned
//! exactly once, a SIGKILLed node's checks taken over within the lease TTL, a node
//! paused past its leases unable to write or notify when it wakes, one delivery per
//! notification cluster-wide (also when a node dies mid-delivery), and a PostgreSQL
//! restart under running nodes. The tests run one at a time (they share the server, and
//! one restarts it) and skip with a message when PostgreSQL is not installed and `CI`
//! is unset.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use pulsecheck_sim::receiver::Receiver;
use pulsecheck_sim::SimConfig;
use rustix::process::Signal;

use crate::cluster_nodes::{
    checks, config, database, holders, in_state, live_leases, outbox, result_times, serial, server, settled,
    transitions_to, unix_ms, views, Hook, Node, CLAIM_TTL, TTL,
};
use crate::daemon::eventually;

const HOUSEKEEPING: &str = "housekeeping";
/// What the tests allow beyond the design's bounds, for a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(6);

fn with_housekeeping(names: &[String]) -> Vec<String> {
    let mut keys = names.to_vec();
    keys.push(HOUSEKEEPING.to_owned());
    keys
}

/// A webhook channel `hook` whose requests name the sending node in `x-node`.
fn hook_channel(url: &str, node: &str) -> String {
    format!("  hook:\n    type: webhook\n    url: {url}\n    timeout: 3s\n    headers:\n      x-node: {node}\n")
}

/// Checks judged on one result, with alerts to `hook`.
const FLIPPING: &str =
    "  interval: 1s\n  timeout: 800ms\n  failure_threshold: 1\n  success_threshold: 1\n  channels: [hook]\n";

/// Waits until every check of `names` is in `state` in the database, every outbox row
/// is delivered, and `hook` got every key.
async fn settle_deliveries(pool: &sqlx::PgPool, hook: &Hook, names: &[String], state: &str, limit: Duration) {
    let names: HashSet<String> = names.iter().cloned().collect();
    eventually(
        limit,
        &format!("every check {state}, every notification delivered"),
        || async {
            if in_state(pool, state).await != names {
                return None;
            }
            let rows = outbox(pool).await;
            let counts = hook.counts();
            let done = rows.values().all(|(s, _)| s == "delivered") && rows.keys().all(|k| counts.contains_key(k));
            done.then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_own_300_checks_once_and_take_over_a_killed_node_within_the_ttl() {
    let _serial = serial().await;
    let Some((url, pool)) = database("failover_kill").await else {
        return;
    };
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (names, yaml) = checks(300, &format!("http://{}/ok", sim.info.http[0]));
    let keys = with_housekeeping(&names);
    let defaults = "  interval: 1s\n  timeout: 800ms\n";
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3"] {
        nodes.push(Node::start(dir.path(), name, &url, &config(name, defaults, &yaml, ""), &[]).await);
    }
    let all: Vec<&Node> = nodes.iter().collect();
    eventually(
        Duration::from_secs(90),
        "300 checks owned once by three nodes",
        || async { settled(&views(&all).await?, &keys, 3).then_some(()) },
    )
    .await;

    // Every sample: each key held by exactly one node, which the database names with the
    // same epoch, and each node holds about a third.
    for _ in 0..10 {
        let views = views(&all).await.expect("every node answers");
        let counts = holders(&views, &keys);
        for (key, count) in keys.iter().zip(&counts) {
            assert_eq!(*count, 1, "{key} is held by {count} nodes: {views:?}");
        }
        let rows: Vec<(String, String, i64)> = sqlx::query_as("SELECT key, node, epoch FROM leases")
            .fetch_all(&pool)
            .await
            .unwrap();
        let db: HashMap<String, (String, i64)> = rows.into_iter().map(|(k, n, e)| (k, (n, e))).collect();
        for view in &views {
            for (key, epoch) in &view.leases {
                assert_eq!(db.get(key), Some(&(view.node.clone(), *epoch)), "{key}");
            }
            let checks = view.leases.keys().filter(|k| *k != HOUSEKEEPING).count();
            assert!((50..=150).contains(&checks), "{} holds {checks} of 300", view.node);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // SIGKILL the third: the others hold everything within the TTL (plus a margin).
    let victim = nodes.pop().unwrap();
    let had = victim.cluster().await.expect("the victim answers").leases;
    let killed_ms = unix_ms();
    let killed = Instant::now();
    victim.kill().await;
    let survivors: Vec<&Node> = nodes.iter().collect();
    eventually(TTL + MARGIN + MARGIN, "the survivors own everything", || async {
        settled(&views(&survivors).await?, &keys, 2).then_some(())
    })
    .await;
    let takeover = killed.elapsed();
    eprintln!(
        "takeover after SIGKILL: {takeover:?} for {} leases (lease TTL {TTL:?})",
        had.len()
    );
    assert!(takeover <= TTL + MARGIN, "takeover took {takeover:?}");
    // Taken leases carry a higher epoch than the dead node's.
    let after = views(&survivors).await.unwrap();
    for (key, old) in &had {
        let new = after.iter().find_map(|v| v.leases.get(key)).unwrap();
        assert!(new > old, "{key}: epoch {new} after {old}");
    }

    // Every check runs again, and no check went unwatched longer than interval + TTL.
    let since = killed_ms - 5_000;
    let resumed_ms = unix_ms();
    eventually(
        Duration::from_secs(60),
        "a result of every check after the takeover",
        || async {
            let times = result_times(&pool, since).await;
            names
                .iter()
                .all(|n| {
                    times
                        .get(n)
                        .and_then(|t| t.last())
                        .is_some_and(|last| *last >= resumed_ms)
                })
                .then_some(())
        },
    )
    .await;
    let times = result_times(&pool, since).await;
    let bound = (Duration::from_secs(1) + TTL + MARGIN).as_millis() as i64;
    let mut worst = (0_i64, String::new());
    for name in &names {
        let times = &times[name];
        let gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        if gap > worst.0 {
            worst = (gap, name.clone());
        }
    }
    eprintln!(
        "largest gap between two results of a check around the kill: {} ms ({})",
        worst.0, worst.1
    );
    assert!(
        worst.0 <= bound,
        "{} went {} ms without a result (bound {bound} ms)",
        worst.1,
        worst.0
    );
    for node in nodes {
        node.stop().await;
    }
}

/// The three delivery tests' setup: `nodes` nodes running `count` [`FLIPPING`] checks
/// on `target` with alerts to `hook`, every check held once and up, every alert in.
struct Flipping {
    url: String,
    pool: sqlx::PgPool,
    target: Receiver,
    hook: Hook,
    names: Vec<String>,
    keys: Vec<String>,
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Flipping {
    /// `None` (the test passes, saying why) without PostgreSQL when `CI` is unset.
    async fn start(database_name: &str, count: usize, node_names: &[&str]) -> Option<Flipping> {
        let (url, pool) = database(database_name).await?;
        let target = Receiver::start(0).await.unwrap();
        let hook = Hook::start().await;
        let dir = tempfile::tempdir().unwrap();
        let (names, yaml) = checks(count, &target.url("/health"));
        let keys = with_housekeeping(&names);
        let mut nodes = Vec::new();
        for name in node_names {
            let text = config(name, FLIPPING, &yaml, &hook_channel(&hook.url, name));
            nodes.push(Node::start(dir.path(), name, &url, &text, &[]).await);
        }
        let all: Vec<&Node> = nodes.iter().collect();
        eventually(
            Duration::from_secs(90),
            &format!("{count} checks owned once by {} nodes", nodes.len()),
            || async { settled(&views(&all).await?, &keys, all.len()).then_some(()) },
        )
        .await;
        settle_deliveries(&pool, &hook, &names, "up", Duration::from_secs(60)).await;
        Some(Flipping {
            url,
            pool,
            target,
            hook,
            names,
            keys,
            nodes,
            _dir: dir,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_paused_past_its_leases_writes_nothing_and_sends_nothing_when_it_wakes() {
    let _serial = serial().await;
    let Some(Flipping {
        pool,
        target,
        hook,
        names,
        keys,
        nodes,
        _dir,
        ..
    }) = Flipping::start("failover_pause", 60, &["n1", "n2", "n3"]).await
    else {
        return;
    };
    let all: Vec<&Node> = nodes.iter().collect();
    let downs_before = transitions_to(&pool, "down").await;
    assert!(downs_before.is_empty(), "{downs_before:?}");

    // SIGSTOP n3 until n1 and n2 hold everything.
    let sleeper = &nodes[2];
    let held = sleeper.cluster().await.unwrap().leases;
    assert!(held.keys().any(|k| k != HOUSEKEEPING), "n3 holds checks: {held:?}");
    let fenced_before = sleeper
        .metric("pulsecheck_cluster_fenced_runs_total")
        .await
        .unwrap_or(0.0);
    let stopped = Instant::now();
    sleeper.signal(Signal::STOP);
    let awake: Vec<&Node> = nodes[..2].iter().collect();
    eventually(TTL + MARGIN + MARGIN, "n1 and n2 own everything", || async {
        settled(&views(&awake).await?, &keys, 2).then_some(())
    })
    .await;
    eprintln!("takeover from a paused node: {:?}", stopped.elapsed());

    // While n3 sleeps, every check goes down: n1 and n2 record it and alert once.
    target.set_status(500);
    settle_deliveries(&pool, &hook, &names, "down", Duration::from_secs(60)).await;

    // n3 wakes believing it still owns its checks, which now fail: its runs must not be
    // written (the database checks the epoch) and it must not alert.
    let woke = Instant::now();
    let woke_log = sleeper.log_text().len();
    sleeper.signal(Signal::CONT);
    eventually(
        Duration::from_secs(60),
        "n3 rejoins and takes its share again",
        || async {
            let views = views(&all).await?;
            let share = views[2].leases.keys().filter(|k| *k != HOUSEKEEPING).count();
            (settled(&views, &keys, 3) && share > 0).then_some(())
        },
    )
    .await;
    eprintln!("n3 rejoined {:?} after SIGCONT", woke.elapsed());
    // Results continue on every check, n3's included.
    let rejoined_ms = unix_ms();
    eventually(
        Duration::from_secs(60),
        "a result of every check after the rejoin",
        || async {
            let times = result_times(&pool, rejoined_ms).await;
            names.iter().all(|n| times.contains_key(n)).then_some(())
        },
    )
    .await;

    let downs = transitions_to(&pool, "down").await;
    for name in &names {
        assert_eq!(
            downs.get(name),
            Some(&1),
            "{name}: one down transition, written by n1 or n2"
        );
    }
    let from_sleeper: Vec<_> = hook
        .received()
        .into_iter()
        .filter(|d| d.node == "n3" && d.at >= woke)
        .collect();
    assert!(from_sleeper.is_empty(), "n3 sent after waking: {from_sleeper:?}");
    let counts = hook.counts();
    assert!(counts.values().all(|n| *n == 1), "a key delivered twice: {counts:?}");
    // Its stale runs were refused: dropped by its monitor once its loop saw the leases
    // gone, or by the database's fence before that.
    let fenced_after = nodes[2]
        .metric("pulsecheck_cluster_fenced_runs_total")
        .await
        .unwrap_or(0.0);
    let log = nodes[2].log_text();
    let refused_by_store = log[woke_log..].contains("dropped runs whose lease this node no longer holds");
    eprintln!(
        "n3 after waking: {} runs dropped by its monitor, refused by the database: {refused_by_store}",
        fenced_after - fenced_before
    );
    assert!(
        fenced_after > fenced_before || refused_by_store,
        "no stale run was refused:\n{log}"
    );
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_notification_is_delivered_once_cluster_wide_and_survives_a_node_killed_mid_delivery() {
    let _serial = serial().await;
    let Some(Flipping {
        pool,
        target,
        hook,
        names,
        mut nodes,
        _dir,
        ..
    }) = Flipping::start("failover_notify", 30, &["n1", "n2", "n3"]).await
    else {
        return;
    };

    // Four state changes of every check, each alerted once, by whichever node owns it.
    let base_down = transitions_to(&pool, "down").await;
    let base_up = transitions_to(&pool, "up").await;
    for (status, state) in [(500, "down"), (200, "up"), (500, "down"), (200, "up")] {
        target.set_status(status);
        settle_deliveries(&pool, &hook, &names, state, Duration::from_secs(60)).await;
    }
    let rows = outbox(&pool).await;
    let counts = hook.counts();
    assert!(rows.len() >= 4 * names.len(), "{} rows", rows.len());
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let unknown: Vec<_> = counts.keys().filter(|k| !rows.contains_key(*k)).collect();
    assert!(unknown.is_empty(), "keys not in the outbox: {unknown:?}");
    let senders: HashSet<String> = hook.received().into_iter().map(|d| d.node).collect();
    assert!(senders.len() >= 2, "deliveries came from {senders:?}");
    let (downs, ups) = (transitions_to(&pool, "down").await, transitions_to(&pool, "up").await);
    for name in &names {
        let down = downs.get(name).copied().unwrap_or(0) - base_down.get(name).copied().unwrap_or(0);
        let up = ups.get(name).copied().unwrap_or(0) - base_up.get(name).copied().unwrap_or(0);
        assert_eq!((down, up), (2, 2), "{name}: one transition per change");
    }

    // A slow receiver: kill a node while it has deliveries in flight.
    hook.set_delay(Duration::from_millis(1500));
    target.set_status(500);
    let busy = eventually(Duration::from_secs(60), "a node with deliveries in flight", || async {
        ["n1", "n2", "n3"].into_iter().find(|n| hook.in_flight(n) > 0)
    })
    .await;
    let index = nodes.iter().position(|n| n.name == busy).unwrap();
    let victim = nodes.remove(index);
    let victim_id = victim.cluster().await.expect("the busy node answers").node;
    victim.kill().await;
    // It is dead: what it had in flight stays in flight until the receiver answers.
    let in_flight = hook.in_flight(busy);
    hook.set_delay(Duration::ZERO);
    let killed = Instant::now();
    // Its claims lapse after the claim TTL; the survivors' claim query then takes them
    // over through its expired-claim branch.
    let lapsed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE claimed_by = $1 AND state = 'pending'")
            .bind(&victim_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    eprintln!("{victim_id} held {lapsed} claims when it died (claim TTL {CLAIM_TTL:?})");
    settle_deliveries(&pool, &hook, &names, "down", Duration::from_secs(90)).await;
    let counts = hook.counts();
    let rows = outbox(&pool).await;
    let missing: Vec<_> = rows.keys().filter(|k| !counts.contains_key(*k)).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    eprintln!(
        "killed {busy} with {in_flight} deliveries in flight: every key arrived {:?} later, {duplicates} duplicates",
        killed.elapsed()
    );
    assert!(in_flight >= 1);
    assert!(
        duplicates <= in_flight,
        "{duplicates} duplicates, {in_flight} were in flight"
    );
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_reconnect_after_a_postgresql_restart_and_lose_no_notification() {
    let _serial = serial().await;
    let Some(Flipping {
        url,
        pool,
        target,
        hook,
        names,
        keys,
        nodes,
        _dir,
    }) = Flipping::start("failover_restart", 20, &["n1", "n2"]).await
    else {
        return;
    };
    let all: Vec<&Node> = nodes.iter().collect();
    let base_up = transitions_to(&pool, "up").await;
    target.set_status(500);
    settle_deliveries(&pool, &hook, &names, "down", Duration::from_secs(60)).await;

    // Twice: the checks change state while PostgreSQL restarts under the nodes.
    let mut pool = pool;
    let mut windows = Vec::new();
    for (status, state) in [(200, "up"), (500, "down")] {
        pool.close().await;
        target.set_status(status);
        let began = Instant::now();
        tokio::task::spawn_blocking(|| server().unwrap().unwrap().stop())
            .await
            .unwrap()
            .expect("PostgreSQL stops");
        // Down for a round of every check (their runs wait in the writers), less than the TTL.
        let probed = target.received().len();
        eventually(
            Duration::from_secs(30),
            "every check probed while PostgreSQL is down",
            || async { (target.received().len() >= probed + names.len()).then_some(()) },
        )
        .await;
        tokio::task::spawn_blocking(|| server().unwrap().unwrap().start_again())
            .await
            .unwrap()
            .expect("PostgreSQL starts again");
        let restarted = Instant::now();
        let restarted_ms = unix_ms();
        eprintln!("PostgreSQL was down for {:?}", restarted - began);
        windows.push(began..restarted + Duration::from_secs(5));
        pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .unwrap();
        settle_deliveries(&pool, &hook, &names, state, Duration::from_secs(90)).await;
        eventually(
            Duration::from_secs(60),
            "results of every check after the restart",
            || async {
                let times = result_times(&pool, restarted_ms).await;
                names.iter().all(|n| times.contains_key(n)).then_some(())
            },
        )
        .await;
        eventually(Duration::from_secs(60), "ownership settled again", || async {
            settled(&views(&all).await?, &keys, 2).then_some(())
        })
        .await;
    }
    // A delivery whose success could not be recorded while the server was down is sent
    // again (at least once, same key); nothing else is.
    let received = hook.received();
    let mut first: HashMap<&str, Instant> = HashMap::new();
    for d in &received {
        first.entry(d.key.as_str()).or_insert(d.at);
    }
    let counts = hook.counts();
    let duplicates: Vec<_> = counts
        .iter()
        .filter(|(key, n)| **n > 1 && !windows.iter().any(|w| w.contains(&first[key.as_str()])))
        .collect();
    assert!(
        duplicates.is_empty(),
        "delivered twice outside the restarts: {duplicates:?}"
    );
    eprintln!(
        "after the restarts: {} keys, {} sent again",
        counts.len(),
        counts.values().filter(|n| **n > 1).count()
    );
    let ups = transitions_to(&pool, "up").await;
    let downs = transitions_to(&pool, "down").await;
    for name in &names {
        assert_eq!(downs.get(name), Some(&2), "{name}: down twice, once each");
        let up = ups.get(name).copied().unwrap_or(0) - base_up.get(name).copied().unwrap_or(0);
        assert_eq!(up, 1, "{name}: down → up once");
    }
    let rows = outbox(&pool).await;
    let missing: Vec<_> = rows.keys().filter(|k| !counts.contains_key(*k)).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    // And the next change after the restarts is alerted exactly once.
    let before: HashSet<String> = counts.keys().cloned().collect();
    target.set_status(200);
    settle_deliveries(&pool, &hook, &names, "up", Duration::from_secs(60)).await;
    let counts = hook.counts();
    let new: Vec<_> = counts.iter().filter(|(k, _)| !before.contains(*k)).collect();
    assert_eq!(new.len(), names.len(), "{new:?}");
    assert!(new.iter().all(|(_, n)| **n == 1), "{new:?}");
    let leases = live_leases(&pool).await;
    assert!(names.iter().all(|n| leases.contains_key(n)), "{leases:?}");
    for node in nodes {
        node.stop().await;
    }
}

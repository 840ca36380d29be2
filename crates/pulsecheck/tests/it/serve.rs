//! `pulsecheck serve` as a real process: alerts delivered with idempotency keys, a
//! receiver outage, hot reload, a stderr that nobody reads, and a crash test that
//! SIGKILLs the daemon 20 times while checks flip state.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use pulsecheck_core::outbox::{AlertEvent, AlertKind, DeliveryState};
use pulsecheck_core::state::State;
use pulsecheck_core::storage::console::{CheckPage, Console};
use pulsecheck_sim::receiver::Receiver;
use pulsecheck_sim::{SimConfig, SimHandle};
use pulsecheck_store::{NotificationFilter, Store};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_pulsecheck");

struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(config: &Path, db: &Path, log: &Path) -> Daemon {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        Daemon::start_logging(config, db, log.into(), "info")
    }

    /// The daemon with its stderr on `stderr`, filtered by `rust_log`.
    fn start_logging(config: &Path, db: &Path, stderr: Stdio, rust_log: &str) -> Daemon {
        let child = Command::new(BIN)
            .args(["serve", config.to_str().unwrap(), "--db", db.to_str().unwrap()])
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("pulsecheck serve starts");
        Daemon { child }
    }

    fn signal(&self, signal: libc::c_int) {
        if let Some(pid) = self.child.id() {
            // SAFETY: signalling the daemon this test started, by its PID.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
        }
    }

    async fn stop(mut self) -> i32 {
        self.signal(libc::SIGTERM);
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the daemon stops after SIGTERM")
            .unwrap();
        status.code().unwrap_or(-1)
    }

    async fn kill(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait().await;
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

async fn sim() -> SimHandle {
    pulsecheck_sim::start(SimConfig::default()).await.unwrap()
}

/// Polls `condition` every 100 ms until it holds or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

async fn states(db: &Path) -> HashMap<String, (State, bool)> {
    let Ok(store) = Store::open_existing(db).await else {
        return HashMap::new();
    };
    let rows = store
        .check_page(&CheckPage::including_retired(None, 10_000))
        .await
        .unwrap_or_default();
    store.close().await;
    rows.into_iter().map(|r| (r.name, (r.state, r.active))).collect()
}

/// Outbox rows not yet delivered (`usize::MAX` while the database cannot be read).
async fn pending(db: &Path) -> usize {
    let Ok(store) = Store::open_existing(db).await else {
        return usize::MAX;
    };
    let pending = store
        .notifications(&NotificationFilter {
            state: Some(DeliveryState::Pending),
            ..NotificationFilter::default()
        })
        .await
        .map_or(usize::MAX, |rows| rows.len());
    store.close().await;
    pending
}

/// Outbox rows of any state (0 while the database cannot be read).
/// Every notification in the store, oldest first; none while the file cannot be opened.
async fn notifications(db: &Path) -> Vec<pulsecheck_store::NotificationRecord> {
    let Ok(store) = Store::open_existing(db).await else {
        return Vec::new();
    };
    let rows = store
        .notifications(&NotificationFilter::default())
        .await
        .unwrap_or_default();
    store.close().await;
    rows
}

async fn notification_count(db: &Path) -> usize {
    let Ok(store) = Store::open_existing(db).await else {
        return 0;
    };
    let count = store
        .notifications(&NotificationFilter::default())
        .await
        .map_or(0, |rows| rows.len());
    store.close().await;
    count
}

async fn result_count(db: &Path, check: &str) -> u64 {
    let store = Store::open_existing(db).await.unwrap();
    let count = store.result_count(Some(check)).await.unwrap();
    store.close().await;
    count
}

fn events(receiver: &Receiver) -> Vec<(String, AlertEvent)> {
    receiver
        .received()
        .into_iter()
        .filter(|r| r.status == 200)
        .map(|r| {
            let key = r.header("idempotency-key").expect("Idempotency-Key header").to_owned();
            let event: AlertEvent = serde_json::from_slice(&r.body).expect("the payload is an AlertEvent");
            (key, event)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_and_resolved_alerts_carry_the_idempotency_key() {
    let sim = sim().await;
    let hook = Receiver::start(0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let http = sim.info.http[0];
    let config = write(
        dir.path(),
        "pulsecheck.yaml",
        &format!(
            r#"
defaults:
  interval: 1s
  timeout: 800ms
  failure_threshold: 2
  channels: [hook]
checks:
  - name: broken
    target: http://{http}/status/500
  - name: healthy
    target: http://{http}/json
    conditions:
      - json_path: "$.status"
        equals: UP
channels:
  hook:
    type: webhook
    url: {url}
"#,
            url = hook.url("/hook")
        ),
    );
    let db = dir.path().join("pulsecheck.db");
    let daemon = Daemon::start(&config, &db, &dir.path().join("serve.log"));
    eventually(Duration::from_secs(20), "the down alert", || async {
        !events(&hook).is_empty()
    })
    .await;
    let (key, event) = events(&hook).remove(0);
    assert_eq!(event.check, "broken");
    assert_eq!(event.kind, AlertKind::Down);
    assert_eq!(event.to, "down");
    assert_eq!(event.idempotency_key, key, "the key is in the header and the payload");
    assert_eq!(event.cause.len(), 2, "two failures in a row caused it");
    eventually(Duration::from_secs(10), "both states", || async {
        let s = states(&db).await;
        s.get("broken") == Some(&(State::Down, true)) && s.get("healthy") == Some(&(State::Up, true))
    })
    .await;

    // `pulsecheck status` reads the same store.
    let status = Command::new(BIN)
        .args(["status", "--db", db.to_str().unwrap(), "--format", "json"])
        .output()
        .await
        .unwrap();
    assert_eq!(status.status.code(), Some(1), "a check is down");
    let text = String::from_utf8(status.stdout).unwrap();
    assert!(
        text.contains("\"name\":\"broken\"") && text.contains("\"state\":\"down\""),
        "{text}"
    );
    assert_eq!(daemon.stop().await, 0);
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(log.contains("stopped cleanly"), "{log}");
    // The log says why a check went down.
    assert!(
        log.lines().any(|line| line.contains("state changed")
            && line.contains("check=broken")
            && line.contains("to=down")
            && line.contains("reason=status")
            && line.contains("error=\"")
            && line.contains("500")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_recovers_gets_every_alert_in_order() {
    let sim = sim().await;
    let hook = Receiver::start(0).await.unwrap();
    hook.set_status(503);
    let dir = tempfile::tempdir().unwrap();
    let http = sim.info.http[0];
    let config = write(
        dir.path(),
        "pulsecheck.yaml",
        &format!(
            r#"
defaults:
  interval: 1s
  timeout: 800ms
  failure_threshold: 1
  success_threshold: 1
  channels: [hook]
checks:
  - name: flap-a
    target: http://{http}/flap/1500
  - name: flap-b
    target: http://{http}/flap/2100
channels:
  hook:
    type: webhook
    url: {url}
delivery:
  backoff_base: 200ms
  backoff_max: 1s
"#,
            url = hook.url("/hook")
        ),
    );
    let db = dir.path().join("pulsecheck.db");
    let daemon = Daemon::start(&config, &db, &dir.path().join("serve.log"));
    // While the receiver is down, alerts pile up and are retried: wait until both
    // checks have flipped several times and some alert has been tried twice.
    eventually(Duration::from_secs(60), "alerts to pile up and be retried", || async {
        let mut keys = HashSet::new();
        let retried = hook
            .received()
            .iter()
            .filter_map(|r| r.header("idempotency-key").map(str::to_owned))
            .any(|key| !keys.insert(key));
        retried && notification_count(&db).await >= 4
    })
    .await;
    assert!(hook.received().iter().all(|r| r.status == 503));
    hook.set_status(200);
    // Everything queued during the outage goes out. The checks keep flapping, so fresh
    // alerts keep coming; the backlog is what the store held when the receiver recovered.
    let backlog: HashSet<i64> = notifications(&db).await.iter().map(|r| r.id).collect();
    assert!(
        backlog.len() >= 4,
        "both checks flipped several times: {}",
        backlog.len()
    );
    eventually(Duration::from_secs(30), "the backlog to be delivered", || async {
        let delivered: HashSet<i64> = notifications(&db)
            .await
            .iter()
            .filter(|r| r.state == DeliveryState::Delivered)
            .map(|r| r.id)
            .collect();
        backlog.is_subset(&delivered)
    })
    .await;
    assert_eq!(daemon.stop().await, 0);

    let rows = notifications(&db).await;
    assert!(
        rows.iter()
            .filter(|r| backlog.contains(&r.id))
            .all(|r| r.state == DeliveryState::Delivered),
        "every alert of the outage was delivered after the recovery"
    );
    let delivered: Vec<_> = rows.iter().filter(|r| r.state == DeliveryState::Delivered).collect();
    let received = events(&hook);
    for check in ["flap-a", "flap-b"] {
        // The order the store created them in, and the order the receiver first saw them.
        let created: Vec<&str> = delivered
            .iter()
            .filter(|r| r.check == check)
            .map(|r| r.idempotency_key.as_str())
            .collect();
        let mut seen = HashSet::new();
        let arrived: Vec<&str> = received
            .iter()
            .filter(|(_, e)| e.check == check)
            .map(|(key, _)| key.as_str())
            .filter(|key| seen.insert(*key))
            .collect();
        assert_eq!(arrived, created, "{check}: delivered in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_keeps_state_and_survives_a_broken_config() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let http = sim.info.http[0];
    let config_text = |names: &[&str]| {
        let mut text = String::from("defaults:\n  interval: 1s\n  timeout: 800ms\nchecks:\n");
        for name in names {
            text.push_str(&format!("  - name: {name}\n    target: http://{http}/ok?{name}\n"));
        }
        text
    };
    let config = write(dir.path(), "pulsecheck.yaml", &config_text(&["keep", "drop"]));
    let db = dir.path().join("pulsecheck.db");
    let log = dir.path().join("serve.log");
    let daemon = Daemon::start(&config, &db, &log);
    eventually(Duration::from_secs(15), "both checks up", || async {
        let s = states(&db).await;
        s.get("keep") == Some(&(State::Up, true)) && s.get("drop") == Some(&(State::Up, true))
    })
    .await;

    // A broken config is refused and the old one keeps running.
    write(
        dir.path(),
        "pulsecheck.yaml",
        "checks:\n  - name: x\n    target: ftp://nope\n",
    );
    daemon.signal(libc::SIGHUP);
    eventually(Duration::from_secs(10), "the refused reload in the log", || async {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("reload failed")
    })
    .await;

    write(dir.path(), "pulsecheck.yaml", &config_text(&["keep", "new"]));
    daemon.signal(libc::SIGHUP);
    eventually(
        Duration::from_secs(15),
        "the new check up, the dropped one retired",
        || async {
            let s = states(&db).await;
            s.get("new") == Some(&(State::Up, true)) && s.get("drop").is_some_and(|(_, active)| !active)
        },
    )
    .await;
    // The kept check keeps running after both reloads.
    let results_after_reload = result_count(&db, "keep").await;
    eventually(Duration::from_secs(10), "more results of the kept check", || async {
        result_count(&db, "keep").await >= results_after_reload + 2
    })
    .await;
    assert_eq!(daemon.stop().await, 0);
    let store = Store::open_existing(&db).await.unwrap();
    let transitions = store.transitions(Some("keep"), 100).await.unwrap();
    store.close().await;
    assert_eq!(transitions.len(), 1, "the kept check kept its state: only unknown→up");
}

/// Kills the daemon with SIGKILL at 20 moments while checks flip state, restarting it
/// each time; then lets it drain. Every transition must be delivered at least once,
/// duplicates must carry the same key and payload, and the database must be intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_test_every_transition_is_delivered() {
    let sim = sim().await;
    let hook = Receiver::start(0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let http = sim.info.http[0];
    let checks = [900, 1300, 1700, 2300, 2900, 3700];
    let config_with = |flapping: bool| {
        let mut text = format!(
            "defaults:\n  interval: 1s\n  timeout: 800ms\n  failure_threshold: 1\n  success_threshold: 1\n  channels: [hook]\n\
             channels:\n  hook:\n    type: webhook\n    url: {}\n    timeout: 2s\n\
             delivery:\n  backoff_base: 100ms\n  backoff_max: 500ms\nchecks:\n",
            hook.url("/hook")
        );
        for (i, period) in checks.iter().enumerate() {
            let path = if flapping {
                format!("/flap/{period}")
            } else {
                "/ok".to_owned()
            };
            text.push_str(&format!("  - name: check-{i}\n    target: http://{http}{path}?c={i}\n"));
        }
        text
    };
    let flapping = write(dir.path(), "flapping.yaml", &config_with(true));
    let stable = write(dir.path(), "stable.yaml", &config_with(false));
    let db = dir.path().join("pulsecheck.db");
    let log = dir.path().join("serve.log");

    // A fixed pseudo-random sequence of kill moments between 0.3 s and 1.5 s.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let after = Duration::from_millis(300 + seed % 1200);
        // Now and then the receiver is failing when the daemon dies.
        hook.set_status(if round % 4 == 3 { 503 } else { 200 });
        let daemon = Daemon::start(&flapping, &db, &log);
        tokio::time::sleep(after).await;
        daemon.kill().await;
    }
    hook.set_status(200);

    // Stable targets: every check settles up, so the outbox can drain completely.
    let daemon = Daemon::start(&stable, &db, &log);
    eventually(Duration::from_secs(60), "the outbox to drain", || async {
        let settled = states(&db).await;
        pending(&db).await == 0 && settled.len() == checks.len() && settled.values().all(|(s, _)| *s == State::Up)
    })
    .await;
    assert_eq!(daemon.stop().await, 0);

    let store = Store::open_existing(&db).await.unwrap();
    assert!(
        store.integrity_check().await.unwrap(),
        "SQLite integrity check after 20 SIGKILLs"
    );
    let rows = store.notifications(&NotificationFilter::default()).await.unwrap();
    let transitions = store.transitions(None, 100_000).await.unwrap();
    store.close().await;

    let alerting = transitions
        .iter()
        .filter(|t| t.to == State::Down || (t.from == State::Down && t.to == State::Up))
        .count();
    assert!(
        alerting >= 10,
        "the checks flipped often enough to mean something: {alerting}"
    );
    assert_eq!(
        rows.len(),
        alerting,
        "one outbox row per alerting transition (one channel)"
    );
    assert!(
        rows.iter().all(|r| r.state == DeliveryState::Delivered),
        "nothing pending or dead"
    );

    let received = events(&hook);
    let mut payloads: HashMap<&str, &AlertEvent> = HashMap::new();
    for (key, event) in &received {
        if let Some(first) = payloads.insert(key.as_str(), event) {
            assert_eq!(first, event, "a duplicate delivery carries the same payload");
        }
        assert_eq!(&event.idempotency_key, key);
    }
    for row in &rows {
        assert!(
            payloads.contains_key(row.idempotency_key.as_str()),
            "transition alert {} was never delivered",
            row.idempotency_key
        );
    }
    let duplicates = received.len() - payloads.len();
    eprintln!(
        "crash test: 20 SIGKILLs, {} transitions, {alerting} alerts, {} deliveries ({duplicates} duplicates)",
        transitions.len(),
        received.len()
    );
}

/// Bytes waiting in the pipe behind `fd`, and the pipe's capacity.
fn pipe_fill(fd: &impl std::os::fd::AsRawFd) -> (usize, usize) {
    let fd = fd.as_raw_fd();
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD and F_GETPIPE_SZ on a pipe this test owns; `queued` outlives the call.
    let (read, size) = unsafe {
        (
            libc::ioctl(fd, libc::FIONREAD, &mut queued as *mut libc::c_int),
            libc::fcntl(fd, libc::F_GETPIPE_SZ),
        )
    };
    assert!(read == 0 && size > 0, "cannot inspect the pipe");
    (queued as usize, size as usize)
}

fn pipe_full(reader: &std::io::PipeReader) -> bool {
    let (queued, size) = pipe_fill(reader);
    queued == size
}

/// Writes filler lines into the pipe from a thread of its own, which blocks while nobody
/// reads: the pipe ends up full to the last byte, whoever else writes to it.
/// Writes more than the pipe holds, from a thread that blocks once it is full.
fn fill(pipe: &std::io::PipeWriter) -> std::thread::JoinHandle<()> {
    use std::io::Write;
    let (_, size) = pipe_fill(pipe);
    let mut pipe = pipe.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = pipe.write_all(&vec![b'\n'; 2 * size + 16 * 1024]);
    })
}

/// Reads what the pipe holds now, without waiting (the read end is non-blocking);
/// false at end of file.
fn drain(pipe: &mut std::io::PipeReader, into: &mut Vec<u8>) -> bool {
    use std::io::Read;
    let mut chunk = [0u8; 8192];
    for _ in 0..10_000 {
        match pipe.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => into.extend_from_slice(&chunk[..n]),
            Err(_) => return true,
        }
    }
    true
}

async fn total_results(db: &Path) -> u64 {
    let Ok(store) = Store::open_existing(db).await else {
        return 0;
    };
    let count = store.result_count(None).await.unwrap_or(0);
    store.close().await;
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stderr_nobody_reads_does_not_stop_monitoring() {
    use std::os::fd::AsRawFd;
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let http = sim.info.http[0];
    // A hundred checks that change state often, logged at debug: hundreds of lines a
    // second.
    let mut text = String::from(
        "defaults:\n  interval: 1s\n  timeout: 800ms\n  failure_threshold: 1\n  success_threshold: 1\nchecks:\n",
    );
    for i in 0..100 {
        text.push_str(&format!(
            "  - name: flap-{i}\n    target: http://{http}/flap/{}\n",
            300 + 7 * i
        ));
    }
    let config = write(dir.path(), "pulsecheck.yaml", &text);
    let db = dir.path().join("pulsecheck.db");

    // stderr is a pipe that is full before the daemon starts, and nobody reads it.
    let (mut reader, writer) = std::io::pipe().unwrap();
    // SAFETY: fcntl on the pipe this test just made: the smallest size, and a read end
    // (ours alone) that does not block.
    unsafe {
        libc::fcntl(writer.as_raw_fd(), libc::F_SETPIPE_SZ, 4096);
        let flags = libc::fcntl(reader.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(reader.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let filler = fill(&writer);
    eventually(Duration::from_secs(10), "the pipe to fill up", || async {
        pipe_full(&reader)
    })
    .await;
    let filler_end = writer.try_clone().unwrap();
    let daemon = Daemon::start_logging(&config, &db, writer.into(), "debug");

    // Every stored result is logged at debug (its INSERT) at least: these are more lines
    // than the daemon's log queue holds, so some were dropped.
    let results = pulsecheck::logging::QUEUED_LINES as u64 + 500;
    eventually(
        Duration::from_secs(240),
        "results to be stored with stderr full",
        || async { total_results(&db).await >= results },
    )
    .await;
    assert!(pipe_full(&reader), "nobody read stderr: {:?}", pipe_fill(&reader));

    // Once stderr is read again, the daemon says how many lines it dropped. The pipe
    // grows first: through 4 KiB read every 100 ms, the debug lines alone would keep the
    // daemon's queue full, and the report would be dropped with them.
    // SAFETY: fcntl on the pipe this test made.
    unsafe {
        libc::fcntl(reader.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
    let mut log = Vec::new();
    eventually(Duration::from_secs(90), "the dropped-line report", || {
        drain(&mut reader, &mut log);
        let reported = String::from_utf8_lossy(&log).contains("log lines dropped");
        async move { reported }
    })
    .await;

    // Stuck again (a partly read pipe may hold less than its size: it is full when the
    // filler's write is blocked and nothing moves), a stop still goes through.
    let refill = fill(&filler_end);
    drop(filler_end);
    eventually(Duration::from_secs(30), "the pipe to fill up again", || async {
        let (before, _) = pipe_fill(&reader);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (after, size) = pipe_fill(&reader);
        before == after && after >= size / 2 && !refill.is_finished()
    })
    .await;
    assert_eq!(daemon.stop().await, 0);
    eventually(Duration::from_secs(30), "the end of stderr", || {
        let open = drain(&mut reader, &mut log);
        async move { !open }
    })
    .await;
    filler.join().unwrap();
    refill.join().unwrap();
}

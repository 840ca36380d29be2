//! What the cluster tests share: `pulsecheck serve` nodes on one PostgreSQL (started,
//! signalled and killed by their PID), their `/api/v1/cluster` and `/metrics`, a
//! webhook receiver that counts deliveries by idempotency key and sending node and can
//! answer slowly, and reads of the database the nodes share.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pulsecheck_postgres::testing::TestPostgres;
use rustix::process::{kill_process, Pid, Signal};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::daemon::listening;

const BIN: &str = env!("CARGO_BIN_EXE_pulsecheck");

/// Every test node's API token (from the environment, as a deployment keeps it).
pub const TOKEN: &str = "cluster-test-token-0123456789";

/// The lease TTL of every test node: short, so takeovers are quick.
pub const TTL: Duration = Duration::from_secs(3);
/// How long a node holds a notification it delivers: short, so a dead node's claims
/// move quickly, and longer than the tests' channel timeouts (3 s) plus the margin.
pub const CLAIM_TTL: Duration = Duration::from_secs(8);

/// One PostgreSQL server for the cluster tests of this binary, which run one at a time
/// ([`serial`]) so that one of them may restart it.
pub fn server() -> Result<Option<&'static TestPostgres>, String> {
    static SERVER: OnceLock<Result<Option<TestPostgres>, String>> = OnceLock::new();
    match SERVER.get_or_init(TestPostgres::start) {
        Ok(server) => Ok(server.as_ref()),
        Err(e) => Err(e.clone()),
    }
}

/// Held for the whole of a cluster test: several nodes each, on two cores, are enough.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A fresh database on the shared server and a pool on it; `None` (the test prints why
/// and passes) without PostgreSQL when `CI` is unset.
pub async fn database(name: &str) -> Option<(String, sqlx::PgPool)> {
    let server = match server() {
        Ok(Some(server)) => server,
        Ok(None) => {
            eprintln!("{}", pulsecheck_postgres::testing::SKIPPED);
            return None;
        }
        Err(e) => panic!("{e}"),
    };
    let url = server.create_database(name).await.expect("create the test database");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("connect to the test database");
    Some((url, pool))
}

/// A `pulsecheck serve` node this test started; killed by its PID when dropped.
pub struct Node {
    /// The configured `cluster.node` (the process adds a suffix per start).
    pub name: String,
    pub log: PathBuf,
    pub addr: String,
    child: Child,
}

impl Node {
    /// Writes `config` to `DIR/NAME.yaml` and starts `serve` on it with `--store url`;
    /// returns once it listens.
    pub async fn start(dir: &Path, name: &str, url: &str, config: &str, env: &[(&str, &str)]) -> Node {
        Node::start_with_args(dir, name, url, config, env, &[]).await
    }

    /// [`Node::start`] with more arguments for `serve` (such as `--nameserver`).
    pub async fn start_with_args(
        dir: &Path,
        name: &str,
        url: &str,
        config: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Node {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, config).unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(BIN)
            .args(["serve", path.to_str().unwrap(), "--store", url])
            .args(args)
            .env("RUST_LOG", "info")
            .env("PULSECHECK_CLUSTER_TEST_TOKEN", TOKEN)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("pulsecheck serve starts");
        let addr = listening(&log).await;
        Node {
            name: name.to_owned(),
            log,
            addr,
            child,
        }
    }

    pub fn pid(&self) -> Option<Pid> {
        self.child.id().and_then(|id| Pid::from_raw(id as i32))
    }

    /// Sends `signal` to this node's process (by its PID, never by name).
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill_process(pid, signal);
        }
    }

    /// SIGKILL, and the exit.
    pub async fn kill(mut self) {
        self.signal(Signal::KILL);
        let _ = self.child.wait().await;
    }

    /// SIGTERM, and a clean exit (the log is shown when it is not).
    pub async fn stop(mut self) {
        self.signal(Signal::TERM);
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the node stops after SIGTERM")
            .unwrap();
        assert_eq!(status.code(), Some(0), "{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /api/v1/cluster`; `None` while the node does not answer.
    pub async fn cluster(&self) -> Option<View> {
        let response = client()
            .get(format!("http://{}/api/v1/cluster", self.addr))
            .bearer_auth(TOKEN)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: Value = response.json().await.ok()?;
        Some(View::from_json(&body))
    }

    /// The value of an unlabelled series of `/metrics`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let page = client()
            .get(format!("http://{}/metrics", self.addr))
            .bearer_auth(TOKEN)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        page.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// How many checks the node runs, by `/metrics`.
    pub async fn owned(&self) -> Option<u64> {
        self.metric("pulsecheck_cluster_owned_checks").await.map(|v| v as u64)
    }

    /// `POST /api/v1/checks/NAME/run`: the status and the body.
    pub async fn run_now(&self, check: &str) -> (u16, Value) {
        self.call(reqwest::Method::POST, &format!("/api/v1/checks/{check}/run"), None)
            .await
    }

    /// A call of the node's API at `path`, with the token: the status and the body.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = client()
            .request(method, format!("http://{}{path}", self.addr))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// One node's answer to `GET /api/v1/cluster`.
#[derive(Clone, Debug, Default)]
pub struct View {
    pub node: String,
    pub members: Vec<String>,
    /// Lease key → epoch.
    pub leases: HashMap<String, i64>,
}

impl View {
    fn from_json(body: &Value) -> View {
        View {
            node: body["node"].as_str().unwrap_or_default().to_owned(),
            members: body["members"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["node"].as_str().map(str::to_owned))
                .collect(),
            leases: body["leases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| Some((l["key"].as_str()?.to_owned(), l["epoch"].as_i64()?)))
                .collect(),
        }
    }
}

/// The views of `nodes`, or `None` when one does not answer.
pub async fn views(nodes: &[&Node]) -> Option<Vec<View>> {
    let mut all = Vec::new();
    for node in nodes {
        all.push(node.cluster().await?);
    }
    Some(all)
}

/// How many of `views` hold each of `keys`.
pub fn holders(views: &[View], keys: &[String]) -> Vec<usize> {
    keys.iter()
        .map(|k| views.iter().filter(|v| v.leases.contains_key(k)).count())
        .collect()
}

/// Every key held by exactly one of `views`, and every view lists `members` members.
pub fn settled(views: &[View], keys: &[String], members: usize) -> bool {
    holders(views, keys).iter().all(|n| *n == 1) && views.iter().all(|v| v.members.len() == members)
}

/// A cluster node's config: `checks` (YAML list items) and `channels` (YAML map items,
/// may be empty) on a listener at a free port that takes [`TOKEN`].
pub fn config(node: &str, defaults: &str, checks: &str, channels: &str) -> String {
    let channels = if channels.is_empty() {
        String::new()
    } else {
        format!("channels:\n{channels}")
    };
    format!(
        "server:\n  listen: 127.0.0.1:0\n  tokens: [\"${{PULSECHECK_CLUSTER_TEST_TOKEN}}\"]\n\
         cluster:\n  node: {node}\n  lease_ttl: {}s\n  claim_ttl: {}s\n\
         defaults:\n{defaults}checks:\n{checks}{channels}",
        TTL.as_secs(),
        CLAIM_TTL.as_secs()
    )
}

/// `count` checks named `c000`… on `target`.
pub fn checks(count: usize, target: &str) -> (Vec<String>, String) {
    let names: Vec<String> = (0..count).map(|i| format!("c{i:03}")).collect();
    let yaml = names
        .iter()
        .map(|n| format!("  - name: {n}\n    target: {target}\n"))
        .collect();
    (names, yaml)
}

/// One delivery as the hook got it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub key: String,
    /// The `x-node` header the sending node's channel sets.
    pub node: String,
    pub at: Instant,
}

#[derive(Default)]
struct HookShared {
    received: Mutex<Vec<Delivery>>,
    /// Requests being answered now, by sending node.
    in_flight: Mutex<HashMap<String, usize>>,
    delay_ms: AtomicU64,
}

/// A webhook receiver on loopback that records each request (idempotency key, sending
/// node) when it arrives and answers 200 after a delay that the test sets.
pub struct Hook {
    pub url: String,
    shared: Arc<HookShared>,
    stop: CancellationToken,
}

impl Hook {
    pub async fn start() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let shared = Arc::new(HookShared::default());
        let (accept_shared, stop) = (shared.clone(), CancellationToken::new());
        let (tasks, accept_stop) = (TaskTracker::new(), stop.clone());
        tasks.clone().spawn(async move {
            loop {
                let stream = tokio::select! {
                    () = accept_stop.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                let (shared, stop) = (accept_shared.clone(), accept_stop.clone());
                tasks.spawn(async move {
                    tokio::select! {
                        () = serve_connection(stream, shared) => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
        });
        Hook { url, shared, stop }
    }

    pub fn set_delay(&self, delay: Duration) {
        self.shared.delay_ms.store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn received(&self) -> Vec<Delivery> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Requests from `node` that arrived and are not answered yet.
    pub fn in_flight(&self, node: &str) -> usize {
        self.shared.in_flight.lock().unwrap().get(node).copied().unwrap_or(0)
    }

    /// Deliveries by idempotency key.
    pub fn counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for delivery in self.received() {
            *counts.entry(delivery.key).or_insert(0) += 1;
        }
        counts
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// HTTP/1.1 requests one after another on one connection (keep-alive): each recorded,
/// then answered after the delay.
async fn serve_connection(stream: tokio::net::TcpStream, shared: Arc<HookShared>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut length = 0_usize;
        let (mut key, mut node) = (String::new(), String::new());
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            match read.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                if first {
                    continue;
                }
                break;
            }
            first = false;
            if let Some((name, value)) = trimmed.split_once(':') {
                let value = value.trim().to_owned();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.parse().unwrap_or(0),
                    "idempotency-key" => key = value,
                    "x-node" => node = value,
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if read.read_exact(&mut body).await.is_err() {
            return;
        }
        shared.received.lock().unwrap().push(Delivery {
            key,
            node: node.clone(),
            at: Instant::now(),
        });
        *shared.in_flight.lock().unwrap().entry(node.clone()).or_insert(0) += 1;
        let delay = Duration::from_millis(shared.delay_ms.load(Ordering::Relaxed));
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let answered = write.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        if let Some(n) = shared.in_flight.lock().unwrap().get_mut(&node) {
            *n = n.saturating_sub(1);
        }
        if answered.is_err() {
            return;
        }
    }
}

/// Every result's start (unix ms) by check name, from `since` on, in order.
pub async fn result_times(pool: &sqlx::PgPool, since_ms: i64) -> HashMap<String, Vec<i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.name, r.started_at FROM results r JOIN check_ids c ON c.id = r.check_id
         WHERE r.started_at >= $1 ORDER BY c.name, r.started_at",
    )
    .bind(since_ms)
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let mut times: HashMap<String, Vec<i64>> = HashMap::new();
    for (name, at) in rows {
        times.entry(name).or_default().push(at);
    }
    times
}

/// The outbox: idempotency key → (state, claimed_by).
pub async fn outbox(pool: &sqlx::PgPool) -> HashMap<String, (String, Option<String>)> {
    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT idempotency_key, state, claimed_by FROM notifications")
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    rows.into_iter().map(|(k, s, c)| (k, (s, c))).collect()
}

/// Checks in `state` (up, down) in the database.
pub async fn in_state(pool: &sqlx::PgPool, state: &str) -> HashSet<String> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT name FROM checks WHERE state = $1 AND active = 1")
        .bind(state)
        .fetch_all(pool)
        .await
        .unwrap_or_default();
    rows.into_iter().map(|(n,)| n).collect()
}

/// Transitions into `to` by check.
pub async fn transitions_to(pool: &sqlx::PgPool, to: &str) -> HashMap<String, i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT check_name, COUNT(*) FROM transitions WHERE to_state = $1 GROUP BY check_name")
            .bind(to)
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    rows.into_iter().collect()
}

/// Live lease holders by the database's clock: key → node.
pub async fn live_leases(pool: &sqlx::PgPool) -> HashMap<String, String> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT key, node FROM leases
         WHERE expires_at > (extract(epoch from clock_timestamp()) * 1000)::bigint",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    rows.into_iter().collect()
}

pub fn unix_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

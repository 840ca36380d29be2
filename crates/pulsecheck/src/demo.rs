//! `pulsecheck demo`: the product, offline, against the built-in simulator. It starts
//! `pulsecheck-sim` in-process on loopback, writes a targets file that covers every kind
//! of probe (HTTP, HTTPS, TCP, TLS, DNS, ICMP to 127.0.0.1) and most reasons for being
//! down, and runs `pulsecheck scan` on it. Then (unless `--scan-only`) it runs the
//! daemon, `pulsecheck serve` (this same binary, as a child process), on a config
//! against the simulator with checks that flap, a slow one and down ones, alerts to a
//! webhook receiver, and a SQLite file, all in a temporary directory; it prints the
//! status page's URL and runs until Ctrl+C, then stops the daemon and removes it all.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cli::{Cli, Command};
use crate::exit::Exit;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Only the one-shot scan: exit when it is done instead of starting the daemon and
    /// its status page.
    #[arg(long)]
    pub scan_only: bool,
    /// Where the daemon's status page and API listen (loopback; port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Extra `scan` flags, e.g. `--format json` or `--order input`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "SCAN FLAGS")]
    pub scan_flags: Vec<String>,
}

pub fn run(args: DemoArgs) -> Exit {
    match demo(args) {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("error: demo failed: {e:#}");
            Exit::Internal
        }
    }
}

fn demo(args: DemoArgs) -> anyhow::Result<Exit> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let sim = runtime.block_on(pulsecheck_sim::start(pulsecheck_sim::SimConfig {
        cert_dir: Some(dir.path().to_path_buf()),
        ..pulsecheck_sim::SimConfig::default()
    }))?;
    let info = &sim.info;
    let http = info.http[0];
    let targets = [
        format!("# pulsecheck demo: the simulator listens on {http}"),
        format!("http://{http}/ok"),
        format!("http://{http}/delay/300"),
        format!("http://{http}/redirect/3"),
        format!("http://{http}/json"),
        format!("http://ok.pulsecheck.test:{}/ok", http.port()),
        format!("https://localhost:{}/ok", info.tls_valid.port()),
        format!("tls://localhost:{}", info.tls_valid.port()),
        format!("tcp://{http}"),
        format!("dns://ok.pulsecheck.test?type=A&server={}", info.dns),
        format!("http://{http}/status/503"),
        format!("http://{http}/malformed"),
        format!("http://{}/", info.blackhole),
        format!("http://{}/", info.refused),
        format!("http://{}/", info.reset),
        format!("https://localhost:{}/ok", info.tls_expired.port()),
        format!("https://localhost:{}/ok", info.tls_self_signed.port()),
        format!("http://nx.pulsecheck.test:{}/ok", http.port()),
        format!("dns://nx.pulsecheck.test?server={}", info.dns),
        // Up with ICMP privilege; without it the result says what is missing (`internal`).
        "icmp://127.0.0.1".to_owned(),
        "ftp://not-a-supported-scheme".to_owned(),
    ];
    let file = dir.path().join("demo-targets.txt");
    let mut out = std::fs::File::create(&file)?;
    for line in &targets {
        writeln!(out, "{line}")?;
    }
    drop(out);
    let ca = info.ca_file.clone().unwrap_or_else(|| dir.path().join("ca.pem"));
    // The targets file lives in a directory removed when the demo ends: name what is
    // scanned, not where.
    eprintln!(
        "pulsecheck demo: simulator on {http} (DNS {}); scanning {} targets, one per probe and per way of being down",
        info.dns,
        targets.len() - 1
    );
    let mut argv: Vec<String> = ["pulsecheck", "scan", "--timeout", "2s", "--cacert"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    argv.push(ca.display().to_string());
    argv.push("--nameserver".into());
    argv.push(info.dns.to_string());
    argv.extend(args.scan_flags);
    argv.push(file.display().to_string());
    let scan_only = args.scan_only;
    let listen = args.listen;
    let exit = match Cli::try_parse_from(&argv) {
        Ok(Cli {
            command: Command::Scan(scan),
        }) => crate::scan::run(*scan),
        Ok(_) => Exit::Internal,
        Err(e) => {
            let _ = e.print();
            Exit::BadInput
        }
    };
    // The demo is meant to show failures: exit 0 unless something is actually wrong.
    let exit = match exit {
        Exit::SomeDown | Exit::BadInput | Exit::AllUp => Exit::AllUp,
        other => other,
    };
    if scan_only || exit != Exit::AllUp {
        runtime.block_on(sim.shutdown());
        return Ok(exit);
    }
    let daemon = runtime.block_on(daemon(&sim.info, dir.path(), listen));
    runtime.block_on(sim.shutdown());
    daemon.map(|()| Exit::AllUp)
}

/// A token for the demo's API (loopback only, gone with the demo).
const DEMO_TOKEN: &str = "demo-token-loopback-only";

/// The daemon's config: checks on the simulator in four groups, two of them flapping,
/// one slow, two down for good, alerts to the receiver, the listener on `listen`.
fn daemon_config(info: &pulsecheck_sim::ReadyInfo, receiver: SocketAddr, listen: SocketAddr) -> String {
    let http = info.http[0];
    format!(
        r#"# pulsecheck demo: `pulsecheck serve` watching the simulator on {http}
defaults:
  interval: 2s
  timeout: 1s
  channels: [ops]
  reminder: 0s
checks:
  - name: home
    group: web
    target: http://{http}/ok
  - name: catalog
    group: web
    target: http://{http}/delay/120
  - name: search
    group: web
    target: http://{http}/delay/600
    conditions:
      - latency_under: 400ms
  - name: checkout
    group: shop
    target: http://{http}/flap/40000
  - name: payments
    group: shop
    target: http://{http}/flap/90000
  - name: inventory
    group: api
    target: http://{http}/json
    conditions:
      - status: 200
      - json_path: "$.status"
        equals: UP
  - name: legacy-api
    group: api
    target: http://{http}/status/503
  - name: db
    group: data
    target: tcp://{refused}
  - name: cache
    group: data
    target: tcp://{http}
  - name: dns
    group: data
    target: dns://ok.pulsecheck.test?type=A&server={dns}
channels:
  ops:
    type: webhook
    url: http://{receiver}/hook
server:
  listen: {listen}
  tokens: ["{DEMO_TOKEN}"]
"#,
        refused = info.refused,
        dns = info.dns,
    )
}

/// `addr=…` of the daemon's "listening" log line.
fn listening_addr(line: &str) -> Option<String> {
    if !line.contains("listening") {
        return None;
    }
    let addr = line.split("addr=").nth(1)?.split_whitespace().next()?;
    Some(addr.trim_matches('"').to_owned())
}

/// Runs `pulsecheck serve` on the demo config until Ctrl+C (or SIGTERM), forwarding its
/// log, then stops it by its PID and waits for it.
async fn daemon(info: &pulsecheck_sim::ReadyInfo, dir: &Path, listen: SocketAddr) -> anyhow::Result<()> {
    let receiver = pulsecheck_sim::receiver::Receiver::start(0)
        .await
        .context("cannot start the webhook receiver")?;
    let config = dir.join("demo.yaml");
    std::fs::write(&config, daemon_config(info, receiver.addr, listen))?;
    let exe = std::env::current_exe().context("cannot find this program to run `serve`")?;
    // The daemon stays in the demo's process group, so that whatever stops the group
    // (Ctrl+C in a terminal, a supervisor) stops both and nothing is left behind.
    let mut child = tokio::process::Command::new(exe)
        .arg("serve")
        .arg(&config)
        .arg("--db")
        .arg(dir.join("demo.db"))
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start `pulsecheck serve`")?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut lines = BufReader::new(child.stderr.take().context("no stderr")?).lines();
    let mut announced = false;
    let ended = loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    eprintln!("{line}");
                    if !announced {
                        if let Some(addr) = listening_addr(&line) {
                            announced = true;
                            announce(&addr);
                        }
                    }
                }
                // The daemon closed its stderr: it is exiting; wait for its status below.
                Ok(None) | Err(_) => break Ended::Daemon(child.wait().await?),
            },
            status = child.wait() => break Ended::Daemon(status?),
            _ = interrupt.recv() => break Ended::Signal(Stop::Interrupt),
            _ = terminate.recv() => break Ended::Signal(Stop::Terminate),
        }
    };
    let result = match ended {
        Ended::Daemon(status) => Err(anyhow::anyhow!(
            "`pulsecheck serve` stopped on its own ({status}); its log is above"
        )),
        Ended::Signal(signal) => {
            eprintln!("pulsecheck demo: stopping the daemon");
            stop(&mut child, &mut lines, signal).await
        }
    };
    receiver.shutdown().await;
    result
}

/// Why the demo's wait ended.
enum Ended {
    Daemon(std::process::ExitStatus),
    Signal(Stop),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Interrupt,
    Terminate,
}

fn announce(addr: &str) {
    eprintln!(
        "\n  Status page:  http://{addr}/\n  Incidents:    http://{addr}/incidents   (Atom: http://{addr}/feed.atom)\n  Badge:        http://{addr}/badge/checkout/status.svg\n  API:          curl -H 'Authorization: Bearer {DEMO_TOKEN}' http://{addr}/api/v1/checks\n\n  checkout and payments flap (40 s and 90 s), search is too slow, legacy-api and db are down.\n  Press Ctrl+C to stop; the demo's files are removed.\n"
    );
}

type Log = tokio::io::Lines<BufReader<tokio::process::ChildStderr>>;

/// Forwards the daemon's log until it exits, or `None` after `limit`.
async fn until_exit(
    child: &mut tokio::process::Child,
    lines: &mut Log,
    limit: Duration,
) -> Option<std::io::Result<std::process::ExitStatus>> {
    tokio::time::timeout(limit, async {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{line}");
        }
        child.wait().await
    })
    .await
    .ok()
}

/// Stops the daemon. Ctrl+C in a terminal reaches it too (same process group), and it
/// stops by itself: a second signal would cut its graceful stop short, so it gets a few
/// seconds first. Otherwise (a signal to the demo alone) it gets SIGTERM by its PID,
/// then 10 s, then SIGKILL.
async fn stop(child: &mut tokio::process::Child, lines: &mut Log, signal: Stop) -> anyhow::Result<()> {
    let mut exited = None;
    if signal == Stop::Interrupt {
        exited = until_exit(child, lines, Duration::from_secs(3)).await;
    }
    if exited.is_none() {
        if let Some(pid) = child.id().and_then(|id| rustix::process::Pid::from_raw(id as i32)) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        exited = until_exit(child, lines, Duration::from_secs(10)).await;
    }
    match exited {
        Some(status) => {
            let status = status?;
            // 130: it was signalled twice (Ctrl+C pressed again) and exited at once.
            anyhow::ensure!(
                status.success() || status.code() == Some(130),
                "`pulsecheck serve` exited with {status} while stopping"
            );
            Ok(())
        }
        None => {
            child.start_kill()?;
            child.wait().await?;
            anyhow::bail!("`pulsecheck serve` did not stop within 10 s of SIGTERM; it was killed")
        }
    }
}

//! A target simulator for pulsecheck.
//!
//! [`start`] binds a set of loopback listeners, each misbehaving in one chosen
//! way, and returns a [`SimHandle`] whose [`ReadyInfo`] says where each one is:
//!
//! - `http`: plain HTTP/1.1 and h2c (prior knowledge) listeners serving the
//!   routes below, one per bind address;
//! - `blackhole`: accepts and never answers; `reset`: accepts then sends a TCP
//!   RST; `refused`: a port where nothing listens;
//! - `tls_valid`, `tls_expired`, `tls_self_signed`: HTTPS with certificates
//!   generated at start (the first two signed by the sim's own CA, see
//!   [`ReadyInfo::ca_pem`]);
//! - `dns`: a UDP DNS server for names under `pulsecheck.test.`.
//!
//! HTTP routes: `/ok`, `/delay/{ms}`, `/status/{code}`, `/redirect/{n}`,
//! `/redirect-loop`, `/flap/{ms}`, `/json`, `/bytes/{n}`, `/endless`, `/headers` (alias
//! `/method`), and on plain HTTP listeners only the raw behaviours `/trickle`,
//! `/header-flood` and `/malformed`. Anything else is a 404.
//!
//! DNS: any name under `pulsecheck.test.` resolves to `127.0.0.1` / `::1`
//! (TTL 60), except a first label of `nx` (NXDOMAIN), `servfail` (SERVFAIL),
//! `slow` (never answered) or `empty` (NOERROR, no answers). Other names are
//! REFUSED.
//!
//! Every task is spawned on one [`TaskTracker`] and stops when the handle's
//! [`CancellationToken`] is cancelled, so [`SimHandle::shutdown`] returns only
//! once every connection is closed.

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod dns;
mod http;
mod listeners;
mod raw;
pub mod receiver;
mod tls;

/// Zone served by the DNS listener.
pub const DNS_ZONE: &str = "pulsecheck.test.";

/// Where and how the simulator listens.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Addresses for the plain HTTP listeners, one listener each. The special
    /// listeners (blackhole, reset, refused, TLS, DNS) use the first one.
    /// Must be loopback addresses.
    pub bind: Vec<IpAddr>,
    /// Port of the plain HTTP listeners; 0 picks an ephemeral port per
    /// listener. Special listeners always use ephemeral ports.
    pub port: u16,
    /// If set, the CA certificate is written to `cert_dir/ca.pem` (the
    /// directory is created if needed).
    pub cert_dir: Option<PathBuf>,
    /// Port of the valid-certificate HTTPS listener; 0 picks an ephemeral one.
    pub tls_port: u16,
    /// Port of the DNS server (UDP); 0 picks an ephemeral one.
    pub dns_port: u16,
    /// The location this simulator's DNS answers for: `down-LOC…` names that list it
    /// resolve to an address where nothing listens (see the `dns` module).
    pub location: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            port: 0,
            cert_dir: None,
            tls_port: 0,
            dns_port: 0,
            location: None,
        }
    }
}

/// Where every listener ended up; printed by the binary as one JSON line.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReadyInfo {
    /// Always `"ready"`.
    pub event: String,
    /// Plain HTTP listeners (HTTP/1.1 and h2c prior knowledge), one per bind address.
    pub http: Vec<SocketAddr>,
    /// Accepts connections and never answers; holds them until the peer closes.
    pub blackhole: SocketAddr,
    /// Accepts connections and resets them at once (TCP RST).
    pub reset: SocketAddr,
    /// Nothing listens here: connecting is refused.
    pub refused: SocketAddr,
    /// HTTPS with a certificate for `localhost`, 127.0.0.1, ::1, the bind
    /// addresses and `*.pulsecheck.test`, signed by the sim's CA.
    pub tls_valid: SocketAddr,
    /// HTTPS with an expired certificate signed by the sim's CA.
    pub tls_expired: SocketAddr,
    /// HTTPS with a self-signed certificate for `localhost`.
    pub tls_self_signed: SocketAddr,
    /// UDP DNS server for `pulsecheck.test.`.
    pub dns: SocketAddr,
    /// PEM of the CA that signed the `tls_valid` and `tls_expired` certificates.
    pub ca_pem: String,
    /// Where the CA PEM was written (`cert_dir/ca.pem`), if a `cert_dir` was given.
    pub ca_file: Option<PathBuf>,
}

/// A running simulator. Dropping it cancels every task without waiting;
/// prefer [`SimHandle::shutdown`].
#[derive(Debug)]
pub struct SimHandle {
    /// Where every listener is.
    pub info: ReadyInfo,
    token: CancellationToken,
    tracker: TaskTracker,
    // Bound but never listening, so the `refused` port stays reserved and
    // connections to it are refused for the handle's whole life.
    _refused: socket2::Socket,
}

impl SimHandle {
    /// `http://<first http listener><path>`, e.g. `url("/ok")`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.info.http[0], path)
    }

    /// `https://<tls_valid listener><path>`; trust [`ReadyInfo::ca_pem`] to verify it.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{}", self.info.tls_valid, path)
    }

    /// Cancels every listener and connection and waits until all tasks ended.
    pub async fn shutdown(self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Starts every listener and returns once all are bound and accepting.
///
/// Must be called inside a tokio runtime; the simulator's tasks run on it.
pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
    let Some(&first) = config.bind.first() else {
        anyhow::bail!("no bind address given");
    };
    for ip in &config.bind {
        if !ip.is_loopback() {
            anyhow::bail!(
                "bind address {ip} is not a loopback address; the simulator only listens on 127.0.0.0/8 and ::1"
            );
        }
    }

    let certs = tls::Certs::generate(&config.bind)?;
    let ca_file = match &config.cert_dir {
        Some(dir) => {
            tokio::fs::create_dir_all(dir)
                .await
                .with_context(|| format!("cannot create cert dir {}", dir.display()))?;
            let path = dir.join("ca.pem");
            tokio::fs::write(&path, &certs.ca_pem)
                .await
                .with_context(|| format!("cannot write {}", path.display()))?;
            Some(path)
        }
        None => None,
    };

    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let ctx = listeners::Ctx::new(token.clone(), tracker.clone());

    // Bind everything before spawning anything so a bind error leaves no task behind.
    let mut http = Vec::with_capacity(config.bind.len());
    for ip in &config.bind {
        let listener = listeners::bind_tcp(SocketAddr::new(*ip, config.port))?;
        http.push(listener);
    }
    let eph = SocketAddr::new(first, 0);
    let blackhole = listeners::bind_tcp(eph)?;
    let reset = listeners::bind_tcp(eph)?;
    let (refused_socket, refused) = listeners::reserve_refused(eph)?;
    let tls_valid = listeners::bind_tcp(SocketAddr::new(first, config.tls_port))?;
    let tls_expired = listeners::bind_tcp(eph)?;
    let tls_self_signed = listeners::bind_tcp(eph)?;
    let dns_addr = SocketAddr::new(first, config.dns_port);
    let dns_socket = tokio::net::UdpSocket::bind(dns_addr)
        .await
        .with_context(|| format!("cannot bind UDP {dns_addr}"))?;

    let info = ReadyInfo {
        event: "ready".to_owned(),
        http: http.iter().map(|l| l.local_addr()).collect::<Result<_, _>>()?,
        blackhole: blackhole.local_addr()?,
        reset: reset.local_addr()?,
        refused,
        tls_valid: tls_valid.local_addr()?,
        tls_expired: tls_expired.local_addr()?,
        tls_self_signed: tls_self_signed.local_addr()?,
        dns: dns_socket.local_addr()?,
        ca_pem: certs.ca_pem.clone(),
        ca_file,
    };

    for listener in http {
        tracker.spawn(listeners::serve_plain_http(listener, ctx.clone()));
    }
    tracker.spawn(listeners::serve_blackhole(blackhole, ctx.clone()));
    tracker.spawn(listeners::serve_reset(reset, ctx.clone()));
    for (listener, config) in [
        (tls_valid, certs.valid),
        (tls_expired, certs.expired),
        (tls_self_signed, certs.self_signed),
    ] {
        tracker.spawn(listeners::serve_tls(listener, config, ctx.clone()));
    }
    tracker.spawn({
        let token = token.clone();
        let location = config.location.clone();
        async move {
            token.run_until_cancelled(dns::serve(dns_socket, location)).await;
        }
    });

    Ok(SimHandle {
        info,
        token,
        tracker,
        _refused: refused_socket,
    })
}

/// Raises this process's `RLIMIT_NOFILE` soft limit to its hard limit and
/// returns the new soft limit. Call it before opening thousands of sockets.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

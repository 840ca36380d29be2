//! Probes: how each kind of target is checked. A probe fills in an [`Attempt`] as it
//! goes, so that when the deadline cuts it short the phases it finished are kept.
//!
//! A probe measures; it does not judge. It fails only when the target did not answer
//! properly (timeout, refused, reset, TLS or certificate verification, protocol) and
//! otherwise records what it saw: the status, the certificate, the DNS answer, and the
//! response when a condition needs it. Whether that answer is the right one is for the
//! check's conditions ([`crate::conditions::judge`]), which the engine applies.

pub mod dns;
pub mod http;
pub mod icmp;
pub mod informational;
pub mod pool;
pub mod prewritten;
pub mod tcp;
pub mod tls;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_util::task::TaskTracker;
use url::Url;

use crate::address_policy::AddressPolicy;
use crate::options::CheckOptions;
use crate::resolve::Resolver;
use crate::result::{CheckResult, Reason, Timings};
use crate::target::{Host, TargetSpec};
use crate::tls::{certificate_info, classify_tls_error, server_name, TlsClients};

/// Shared, read-only resources every probe uses.
pub struct ProbeContext {
    pub resolver: Resolver,
    pub tls: TlsClients,
    pub icmp: icmp::Pingers,
    /// Runs the few background tasks hyper needs (HTTP/2), tracked like every other task.
    pub executor: TrackedExecutor,
    /// Idle connections for `--reuse-connections`; empty otherwise.
    pub pool: pool::Pool,
}

/// A hyper executor that spawns onto a [`TaskTracker`], so no task is fire-and-forget.
#[derive(Clone, Default)]
pub struct TrackedExecutor(pub TaskTracker);

impl<F> hyper::rt::Executor<F> for TrackedExecutor
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        self.0.spawn(future);
    }
}

/// The phase a check is in, named in timeout messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Starting,
    Dns,
    Connect,
    Tls,
    WaitingForResponse,
    ReadingBody,
    Query,
    Echo,
}

impl Phase {
    pub fn describe(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Dns => "resolving the name",
            Phase::Connect => "connecting",
            Phase::Tls => "the TLS handshake",
            Phase::WaitingForResponse => "waiting for the response headers",
            Phase::ReadingBody => "reading the body",
            Phase::Query => "waiting for the DNS answer",
            Phase::Echo => "waiting for the echo reply",
        }
    }
}

/// A check in progress: the result being filled in and the phase it has reached.
pub struct Attempt {
    pub result: CheckResult,
    pub phase: Phase,
    /// Set by the HTTP probe when it followed a redirect or stopped at the limit.
    pub redirected: Option<Box<Redirected>>,
    /// The SSRF guard, when the check came from a request: every host and every
    /// address connected to must pass it.
    pub policy: Option<Arc<AddressPolicy>>,
}

impl Attempt {
    pub fn new(result: CheckResult) -> Attempt {
        Attempt {
            result,
            phase: Phase::Starting,
            redirected: None,
            policy: None,
        }
    }

    /// A fresh attempt at the same check (a raced connection), under the same guard.
    pub fn fork(&self) -> Attempt {
        Attempt {
            policy: self.policy.clone(),
            ..Attempt::new(self.result.clone())
        }
    }

    /// Refuses a host (of the target or of a redirect) the guard does not allow.
    pub fn guard_host(&self, host: &Host, port: Option<u16>) -> Result<(), Failure> {
        match &self.policy {
            Some(policy) => policy
                .check_host(host, port)
                .map_err(|denied| Failure::new(Reason::Denied, denied.0)),
            None => Ok(()),
        }
    }

    /// Refuses an address (after DNS) the guard does not allow.
    pub fn guard_address(&self, ip: IpAddr, port: Option<u16>) -> Result<(), Failure> {
        match &self.policy {
            Some(policy) => policy
                .check_address(ip, port)
                .map_err(|denied| Failure::new(Reason::Denied, denied.0)),
            None => Ok(()),
        }
    }
}

/// Where an HTTP check that met a redirect ended up, for the judge's status message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirected {
    /// The URL the final response came from.
    pub url: Url,
    /// The redirect that was not followed because `max_redirects` were followed already.
    pub unfollowed: Option<Url>,
}

/// Why a probe decided the target is down.
#[derive(Debug)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

impl Failure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Failure {
        Failure {
            reason,
            message: message.into(),
        }
    }
}

/// Runs the probe for `spec`. `Ok` means up.
pub async fn run(
    ctx: &ProbeContext,
    spec: &TargetSpec,
    options: &CheckOptions,
    attempt: &mut Attempt,
) -> Result<(), Failure> {
    // Each probe's future is boxed so a check waiting for its slot stays small, and a
    // running one only holds the state of the probe it actually runs.
    match spec {
        TargetSpec::Http { url } => Box::pin(http::probe(ctx, url, options, attempt)).await,
        TargetSpec::Tcp { host, port } => Box::pin(tcp::probe(ctx, host, *port, attempt)).await,
        TargetSpec::Tls { host, port } => Box::pin(tls::probe(ctx, host, *port, options, attempt)).await,
        TargetSpec::Dns { name, record, server } => Box::pin(dns::probe(ctx, name, *record, *server, attempt)).await,
        TargetSpec::Icmp { host } => Box::pin(icmp::probe(ctx, host, attempt)).await,
    }
}

/// Maps a socket error to a reason. Local resource exhaustion is our failure, not the target's.
pub fn classify_io_error(error: &io::Error) -> Reason {
    use io::ErrorKind::*;
    if let Some((reason, _)) = classify_tls_error(error) {
        return reason;
    }
    match error.kind() {
        ConnectionRefused | HostUnreachable | NetworkUnreachable => Reason::Refused,
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => Reason::Reset,
        TimedOut => Reason::Timeout,
        AddrNotAvailable | OutOfMemory => Reason::Internal,
        InvalidData => Reason::Protocol,
        _ if error.raw_os_error() == Some(libc::EMFILE) || error.raw_os_error() == Some(libc::ENFILE) => {
            Reason::Internal
        }
        _ => Reason::Reset,
    }
}

/// Resolves `host`, recording the DNS phase when a lookup actually happened.
pub async fn resolve(ctx: &ProbeContext, host: &Host, attempt: &mut Attempt) -> Result<Vec<IpAddr>, Failure> {
    if let Host::Ip(ip) = host {
        return Ok(vec![*ip]);
    }
    attempt.phase = Phase::Dns;
    let started = Instant::now();
    // Boxed: the lookup's state is large and would otherwise stay in every probe's future
    // for its whole life, long after the name is resolved.
    let result = Box::pin(ctx.resolver.resolve(host)).await;
    Timings::add(&mut attempt.result.timings.dns_ms, started.elapsed());
    result.map_err(|e| Failure::new(Reason::Dns, e.0))
}

/// Connects to the first address that accepts, recording the connect phase and the IP used.
pub async fn connect(addrs: &[IpAddr], port: u16, attempt: &mut Attempt) -> Result<TcpStream, Failure> {
    attempt.phase = Phase::Connect;
    let started = Instant::now();
    let mut last_error = None;
    let mut denied = None;
    for ip in addrs {
        let addr = SocketAddr::new(*ip, port);
        // The guard judges the address actually connected to, after DNS.
        if let Err(failure) = attempt.guard_address(*ip, Some(port)) {
            denied.get_or_insert(failure);
            continue;
        }
        attempt.result.ip = Some(*ip);
        // Boxed: the connect state would otherwise stay in the probe's future for its life.
        match Box::pin(TcpStream::connect(addr)).await {
            Ok(stream) => {
                Timings::add(&mut attempt.result.timings.connect_ms, started.elapsed());
                return Ok(stream);
            }
            Err(e) => last_error = Some((addr, e)),
        }
    }
    Timings::add(&mut attempt.result.timings.connect_ms, started.elapsed());
    Err(match (last_error, denied) {
        (None, Some(denied)) => denied,
        (Some((addr, error)), _) => {
            Failure::new(classify_io_error(&error), format!("connect to {addr} failed: {error}"))
        }
        (None, None) => Failure::new(Reason::Dns, "the name resolved to no address"),
    })
}

/// Performs a TLS handshake, recording its phase and the certificate seen.
pub async fn handshake(
    ctx: &ProbeContext,
    stream: TcpStream,
    host: &Host,
    insecure: bool,
    attempt: &mut Attempt,
) -> Result<Box<TlsStream<TcpStream>>, Failure> {
    attempt.phase = Phase::Tls;
    let name = server_name(&host.server_name()).map_err(|m| Failure::new(Reason::Tls, m))?;
    let connector = tokio_rustls::TlsConnector::from(ctx.tls.config(insecure));
    let started = Instant::now();
    // Boxed for the same reason as the lookup: the handshake state is large and short-lived.
    let outcome = Box::pin(connector.connect(name, stream)).await;
    Timings::add(&mut attempt.result.timings.tls_ms, started.elapsed());
    let stream = outcome.map_err(|e| match classify_tls_error(&e) {
        Some((reason, message)) => Failure::new(reason, message),
        None => Failure::new(classify_io_error(&e), format!("TLS handshake failed: {e}")),
    })?;
    attempt.result.tls_version = match stream.get_ref().1.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => Some("TLS 1.3"),
        Some(rustls::ProtocolVersion::TLSv1_2) => Some("TLS 1.2"),
        Some(_) => Some("unknown"),
        None => None,
    };
    if let Some(chain) = stream.get_ref().1.peer_certificates() {
        attempt.result.certificate = certificate_info(chain);
    }
    // Boxed so the caller's future holds a pointer, not the whole TLS session state.
    Ok(Box::new(stream))
}

/// Rounds a duration for messages.
pub fn human(duration: Duration) -> String {
    if duration >= Duration::from_secs(1) {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

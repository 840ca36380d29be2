//! The result of one check. A probe's verdict is data: `Err` is reserved for the engine
//! failing, never for a target being down.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Whether a target answered as expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Up,
    Down,
    /// The check was stopped (Ctrl+C, SIGTERM, removal) before it could finish.
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Up => "up",
            Outcome::Down => "down",
            Outcome::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a target is down. A closed set so that alerts, dashboards and scripts can match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The check did not finish within its deadline.
    Timeout,
    /// The connection was refused (nothing listens on the port).
    Refused,
    /// The peer reset or aborted the connection.
    Reset,
    /// The name did not resolve, or a DNS check got an unexpected answer.
    Dns,
    /// The TLS handshake failed for a reason other than the certificate.
    Tls,
    /// The certificate is invalid, expired, untrusted, or expires too soon.
    Certificate,
    /// The HTTP status was not the expected one.
    Status,
    /// The body did not contain the expected text or match the expected pattern.
    Body,
    /// The target answered, but slower than the latency limit.
    Latency,
    /// The peer spoke something that is not the expected protocol, or broke it.
    Protocol,
    /// The target could not be parsed; the error names the line.
    InvalidTarget,
    /// pulsecheck itself failed while checking (a bug, a panic, a local resource limit).
    Internal,
    /// The SSRF guard refused the host or the address (a check from a request only).
    Denied,
}

impl Reason {
    pub const ALL: [Reason; 13] = [
        Reason::Timeout,
        Reason::Refused,
        Reason::Reset,
        Reason::Dns,
        Reason::Tls,
        Reason::Certificate,
        Reason::Status,
        Reason::Body,
        Reason::Latency,
        Reason::Protocol,
        Reason::InvalidTarget,
        Reason::Internal,
        Reason::Denied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Refused => "refused",
            Reason::Reset => "reset",
            Reason::Dns => "dns",
            Reason::Tls => "tls",
            Reason::Certificate => "certificate",
            Reason::Status => "status",
            Reason::Body => "body",
            Reason::Latency => "latency",
            Reason::Protocol => "protocol",
            Reason::InvalidTarget => "invalid_target",
            Reason::Internal => "internal",
            Reason::Denied => "denied",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of probe that produced a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    Http,
    Tcp,
    Tls,
    Dns,
    Icmp,
    /// The target could not be parsed, so no probe ran.
    None,
}

/// Time spent in each phase of a check. `None` where the phase did not happen.
/// Across HTTP redirects the phases are summed over all hops.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    #[serde(with = "millis")]
    pub dns_ms: Option<Duration>,
    #[serde(with = "millis")]
    pub connect_ms: Option<Duration>,
    #[serde(with = "millis")]
    pub tls_ms: Option<Duration>,
    #[serde(with = "millis")]
    pub ttfb_ms: Option<Duration>,
    #[serde(with = "millis")]
    pub transfer_ms: Option<Duration>,
}

impl Timings {
    /// Adds `elapsed` to a phase, so that redirect hops sum up.
    pub fn add(slot: &mut Option<Duration>, elapsed: Duration) {
        *slot = Some(slot.unwrap_or_default() + elapsed);
    }
}

/// The answer of a DNS check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsAnswer {
    pub rcode: String,
    pub answers: Vec<String>,
    /// Records in the authority and additional sections, for `/metrics`; not part of
    /// the schema.
    #[serde(skip)]
    pub authority_rrs: usize,
    #[serde(skip)]
    pub additional_rrs: usize,
}

/// Details of the certificate a TLS or HTTPS check saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CertificateInfo {
    /// Subject of the leaf certificate.
    pub subject: String,
    /// The earliest `not_after` in the presented chain (RFC 3339).
    pub not_after: String,
    /// Whole days until that expiry; negative once expired.
    pub days_left: i64,
}

/// One check of one target: exactly one of these per target per run.
///
/// The JSON field order is part of the documented schema (see README, "JSON output").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The target exactly as given.
    pub target: String,
    pub outcome: Outcome,
    /// Why the target is down; `null` when up, and for cancelled checks.
    pub reason: Option<Reason>,
    /// The final HTTP status (after redirects); `null` for non-HTTP probes.
    pub http_status: Option<u16>,
    /// Time from getting a concurrency slot to the verdict.
    #[serde(with = "millis_required")]
    pub duration_ms: Duration,
    pub timings: Timings,
    /// Time spent waiting for a concurrency slot; never counted against the target.
    #[serde(with = "millis_required")]
    pub queue_ms: Duration,
    pub probe: ProbeKind,
    /// Human-readable detail of the failure, or `null`.
    pub error: Option<String>,
    /// 1-based line in the targets file, when the target came from a file or stdin.
    pub line: Option<usize>,
    /// When the check got its slot and started (RFC 3339, UTC).
    pub started_at: jiff::Timestamp,
    /// The IP address that was connected to, when one was.
    pub ip: Option<IpAddr>,
    /// `HTTP/1.1` or `HTTP/2`, for HTTP checks that got a response.
    pub http_version: Option<String>,
    pub redirects: u32,
    pub certificate: Option<CertificateInfo>,
    pub dns: Option<DnsAnswer>,
    /// Round-trip time of an ICMP echo.
    #[serde(with = "millis")]
    pub rtt_ms: Option<Duration>,
    /// The final HTTP response, kept by the probe only when a condition reads it
    /// ([`CheckOptions::needs_response`](crate::CheckOptions::needs_response)) and
    /// dropped by [`Engine::check`](crate::Engine::check) once the conditions have run,
    /// so a result handed out never carries it. Never serialized.
    #[serde(skip)]
    pub response: Option<Box<CapturedResponse>>,
    /// The TLS version negotiated (`TLS 1.3`), for `/metrics`; not part of the schema.
    #[serde(skip)]
    pub tls_version: Option<&'static str>,
    /// The final response's `Content-Length`, for `/metrics`; not part of the schema.
    #[serde(skip)]
    pub content_length: Option<u64>,
    /// Body bytes read (up to the cap), for `/metrics`; not part of the schema.
    #[serde(skip)]
    pub body_bytes: Option<u64>,
}

/// Headers and the capped body of an HTTP response.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CapturedResponse {
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
}

impl CheckResult {
    /// A result with every optional field empty.
    pub fn new(target: &str, line: Option<usize>, probe: ProbeKind, outcome: Outcome) -> Self {
        CheckResult {
            target: target.to_owned(),
            outcome,
            reason: None,
            http_status: None,
            duration_ms: Duration::ZERO,
            timings: Timings::default(),
            queue_ms: Duration::ZERO,
            probe,
            error: None,
            line,
            started_at: jiff::Timestamp::now(),
            ip: None,
            http_version: None,
            redirects: 0,
            certificate: None,
            dns: None,
            rtt_ms: None,
            response: None,
            tls_version: None,
            content_length: None,
            body_bytes: None,
        }
    }

    pub fn is_up(&self) -> bool {
        self.outcome == Outcome::Up
    }
}

/// Durations as fractional milliseconds (microsecond precision), the unit the schema documents.
pub(crate) fn duration_to_ms(duration: Duration) -> f64 {
    (duration.as_micros() as f64) / 1000.0
}

fn ms_to_duration(ms: f64) -> Duration {
    Duration::from_secs_f64((ms.max(0.0)) / 1000.0)
}

mod millis {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_some(&duration_to_ms(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.map(ms_to_duration))
    }
}

mod millis_required {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(duration_to_ms(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(ms_to_duration(f64::deserialize(d)?))
    }
}

//! How every store writes a result: the small integer codes of outcomes, reasons and
//! probes, addresses as bytes, phases as a varint blob, timestamps as unix
//! milliseconds and durations as integer microseconds. SQLite and PostgreSQL share this
//! one format (see pulsecheck-store's `0002_compact_results.sql`). Codes are part of the
//! stored format: never renumber one, only add.

use std::net::IpAddr;
use std::time::Duration;

use crate::{CheckResult, Outcome, ProbeKind, Reason};

pub fn outcome(outcome: Outcome) -> i64 {
    match outcome {
        Outcome::Up => 0,
        Outcome::Down => 1,
        Outcome::Cancelled => 2,
    }
}

pub fn parse_outcome(code: i64) -> Option<Outcome> {
    [Outcome::Up, Outcome::Down, Outcome::Cancelled]
        .into_iter()
        .find(|o| outcome(*o) == code)
}

pub fn reason(reason: Reason) -> i64 {
    match reason {
        Reason::Timeout => 1,
        Reason::Refused => 2,
        Reason::Reset => 3,
        Reason::Dns => 4,
        Reason::Tls => 5,
        Reason::Certificate => 6,
        Reason::Status => 7,
        Reason::Body => 8,
        Reason::Latency => 9,
        Reason::Protocol => 10,
        Reason::InvalidTarget => 11,
        Reason::Internal => 12,
        Reason::Denied => 13,
    }
}

pub fn parse_reason(code: i64) -> Option<Reason> {
    Reason::ALL.into_iter().find(|r| reason(*r) == code)
}

pub fn probe(probe: ProbeKind) -> i64 {
    match probe {
        ProbeKind::Http => 0,
        ProbeKind::Tcp => 1,
        ProbeKind::Tls => 2,
        ProbeKind::Dns => 3,
        ProbeKind::Icmp => 4,
        ProbeKind::None => 5,
    }
}

/// The name `StoredResult::probe` has always reported.
pub fn probe_name(code: i64) -> Option<&'static str> {
    Some(match code {
        0 => "http",
        1 => "tcp",
        2 => "tls",
        3 => "dns",
        4 => "icmp",
        5 => "none",
        _ => return None,
    })
}

pub fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

pub fn parse_ip(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}

const HTTP_VERSIONS: [(i64, &str); 5] = [
    (9, "HTTP/0.9"),
    (10, "HTTP/1.0"),
    (11, "HTTP/1.1"),
    (20, "HTTP/2"),
    (30, "HTTP/3"),
];

/// A version is a code when it has one, else its text.
pub enum HttpVersion<'a> {
    Code(i64),
    Text(&'a str),
}

impl<'a> HttpVersion<'a> {
    pub fn encode(text: &'a str) -> HttpVersion<'a> {
        HTTP_VERSIONS
            .iter()
            .find(|(_, name)| *name == text)
            .map_or(HttpVersion::Text(text), |(code, _)| HttpVersion::Code(*code))
    }
}

pub fn http_version_name(code: i64) -> Option<&'static str> {
    HTTP_VERSIONS.iter().find(|(c, _)| *c == code).map(|(_, name)| *name)
}

/// `kind` bit 2: the result is part of a transition's cause.
pub const KEEP_BIT: i64 = 4;

/// Outcome, keep flag, probe and reason in one integer (0 for an up HTTP result).
pub fn kind(o: Outcome, probe_kind: ProbeKind, r: Option<Reason>) -> i64 {
    outcome(o) | (probe(probe_kind) << 3) | (r.map_or(0, reason) << 6)
}

/// (outcome, probe code, reason): `None` for a code no version wrote.
pub fn parse_kind(kind: i64) -> Option<(Outcome, i64, Option<Reason>)> {
    let outcome = parse_outcome(kind & 3)?;
    let probe = (kind >> 3) & 7;
    let reason = match (kind >> 6) & 15 {
        0 => None,
        code => Some(parse_reason(code)?),
    };
    Some((outcome, probe, reason))
}

/// The phases in their stored order: dns, connect, tls, ttfb, transfer, rtt.
pub type Phases = [Option<i64>; 6];

/// A flags byte, then one unsigned LEB128 varint per present phase; `None` when no
/// phase was measured. Negative values (none are ever measured) store as 0.
pub fn encode_phases(phases: &Phases) -> Option<Vec<u8>> {
    if phases.iter().all(Option::is_none) {
        return None;
    }
    let mut out = vec![0u8];
    for (bit, phase) in phases.iter().enumerate() {
        if let Some(value) = phase {
            out[0] |= 1 << bit;
            let mut v = (*value).max(0) as u64;
            loop {
                let byte = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
        }
    }
    Some(out)
}

/// The inverse of [`encode_phases`]; `None` for a malformed blob.
pub fn decode_phases(bytes: &[u8]) -> Option<Phases> {
    let (&flags, mut rest) = bytes.split_first()?;
    let mut phases: Phases = [None; 6];
    for (bit, phase) in phases.iter_mut().enumerate() {
        if flags & (1 << bit) == 0 {
            continue;
        }
        let mut value: u64 = 0;
        let mut shift = 0;
        loop {
            let (&byte, tail) = rest.split_first()?;
            rest = tail;
            if shift > 56 {
                return None;
            }
            value |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        *phase = Some(i64::try_from(value).ok()?);
    }
    rest.is_empty().then_some(phases)
}

/// A result's columns in the stored format, as every store writes them (PostgreSQL
/// narrows some integers to its column types; the values are the same).
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedResult {
    pub kind: i64,
    pub http_status: Option<i64>,
    pub duration_us: i64,
    pub queue_us: i64,
    pub phases: Option<Vec<u8>>,
    pub ip: Option<Vec<u8>>,
    /// The HTTP version's code; a version without one is `http_version_text`.
    pub http_version: Option<i64>,
    pub http_version_text: Option<String>,
    pub redirects: i64,
    pub cert_days_left: Option<i64>,
    pub error: Option<String>,
}

impl EncodedResult {
    pub fn of(r: &CheckResult) -> EncodedResult {
        let t = &r.timings;
        let (http_version, http_version_text) = match r.http_version.as_deref().map(HttpVersion::encode) {
            Some(HttpVersion::Code(code)) => (Some(code), None),
            Some(HttpVersion::Text(text)) => (None, Some(text.to_owned())),
            None => (None, None),
        };
        EncodedResult {
            kind: kind(r.outcome, r.probe, r.reason),
            http_status: r.http_status.map(i64::from),
            duration_us: duration_us(r.duration_ms),
            queue_us: duration_us(r.queue_ms),
            phases: encode_phases(&[
                t.dns_ms.map(duration_us),
                t.connect_ms.map(duration_us),
                t.tls_ms.map(duration_us),
                t.ttfb_ms.map(duration_us),
                t.transfer_ms.map(duration_us),
                r.rtt_ms.map(duration_us),
            ]),
            ip: r.ip.map(ip_bytes),
            http_version,
            http_version_text,
            redirects: i64::from(r.redirects),
            cert_days_left: r.certificate.as_ref().map(|c| c.days_left),
            error: r.error.clone(),
        }
    }
}

// Time.
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

pub fn to_ms(ts: jiff::Timestamp) -> i64 {
    ts.as_millisecond()
}

/// Reads a stored timestamp. Out-of-range values (only a corrupted row has them) clamp.
pub fn from_ms(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    })
}

/// Microsecond precision, as the JSON output documents.
pub fn duration_ms(duration: Duration) -> f64 {
    (duration.as_micros() as f64) / 1000.0
}

pub fn floor_hour(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// Durations are stored as integer microseconds (saturating far beyond any timeout).
pub fn duration_us(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Stored microseconds as the API's fractional milliseconds.
pub fn us_to_ms(us: i64) -> f64 {
    us as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip() {
        for phases in [
            [Some(0), None, None, Some(127), Some(128), Some(i64::MAX)],
            [None, Some(1_500), None, None, None, None],
        ] {
            let bytes = encode_phases(&phases).unwrap();
            assert_eq!(decode_phases(&bytes), Some(phases));
        }
        assert_eq!(encode_phases(&[None; 6]), None);
        assert_eq!(decode_phases(&[0b11, 0x80]), None, "truncated");
        assert_eq!(decode_phases(&[]), None);
    }

    #[test]
    fn kinds_round_trip() {
        assert_eq!(kind(Outcome::Up, ProbeKind::Http, None), 0);
        for o in [Outcome::Up, Outcome::Down, Outcome::Cancelled] {
            for r in Reason::ALL.into_iter().map(Some).chain([None]) {
                let k = kind(o, ProbeKind::Icmp, r);
                assert_eq!(parse_kind(k | KEEP_BIT), Some((o, probe(ProbeKind::Icmp), r)));
            }
        }
    }
}

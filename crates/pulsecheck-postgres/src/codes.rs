//! The small integer codes results are stored with: the same as the SQLite store's
//! (pulsecheck-store/src/codes.rs, `0002_compact_results.sql`), so that both backends
//! read and write one format. Never renumber one, only add.

use std::net::IpAddr;

use pulsecheck_core::{Outcome, ProbeKind, Reason};

pub(crate) fn outcome(outcome: Outcome) -> i64 {
    match outcome {
        Outcome::Up => 0,
        Outcome::Down => 1,
        Outcome::Cancelled => 2,
    }
}

pub(crate) fn parse_outcome(code: i64) -> Option<Outcome> {
    [Outcome::Up, Outcome::Down, Outcome::Cancelled]
        .into_iter()
        .find(|o| outcome(*o) == code)
}

pub(crate) fn reason(reason: Reason) -> i64 {
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

pub(crate) fn parse_reason(code: i64) -> Option<Reason> {
    Reason::ALL.into_iter().find(|r| reason(*r) == code)
}

pub(crate) fn probe(probe: ProbeKind) -> i64 {
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
pub(crate) fn probe_name(code: i64) -> Option<&'static str> {
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

pub(crate) fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

pub(crate) fn parse_ip(bytes: &[u8]) -> Option<IpAddr> {
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
pub(crate) enum HttpVersion<'a> {
    Code(i64),
    Text(&'a str),
}

impl<'a> HttpVersion<'a> {
    pub(crate) fn encode(text: &'a str) -> HttpVersion<'a> {
        HTTP_VERSIONS
            .iter()
            .find(|(_, name)| *name == text)
            .map_or(HttpVersion::Text(text), |(code, _)| HttpVersion::Code(*code))
    }
}

pub(crate) fn http_version_name(code: i64) -> Option<&'static str> {
    HTTP_VERSIONS.iter().find(|(c, _)| *c == code).map(|(_, name)| *name)
}

/// `kind` bit 2: the result is part of a transition's cause.
pub(crate) const KEEP_BIT: i64 = 4;

/// Outcome, keep flag, probe and reason in one integer (0 for an up HTTP result).
pub(crate) fn kind(o: Outcome, probe_kind: ProbeKind, r: Option<Reason>) -> i64 {
    outcome(o) | (probe(probe_kind) << 3) | (r.map_or(0, reason) << 6)
}

/// (outcome, probe code, reason): `None` for a code no version wrote.
pub(crate) fn parse_kind(kind: i64) -> Option<(Outcome, i64, Option<Reason>)> {
    let outcome = parse_outcome(kind & 3)?;
    let probe = (kind >> 3) & 7;
    let reason = match (kind >> 6) & 15 {
        0 => None,
        code => Some(parse_reason(code)?),
    };
    Some((outcome, probe, reason))
}

/// The phases in their stored order: dns, connect, tls, ttfb, transfer, rtt.
pub(crate) type Phases = [Option<i64>; 6];

/// A flags byte, then one unsigned LEB128 varint per present phase; `None` when no
/// phase was measured. Negative values (none are ever measured) store as 0.
pub(crate) fn encode_phases(phases: &Phases) -> Option<Vec<u8>> {
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
pub(crate) fn decode_phases(bytes: &[u8]) -> Option<Phases> {
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

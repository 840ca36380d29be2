//! The small integer codes results are stored with (see `0002_compact_results.sql`).
//! Codes are part of the file format: never renumber one, only add.

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

impl<'q> sqlx::Encode<'q, sqlx::Sqlite> for HttpVersion<'q> {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Sqlite as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        match self {
            HttpVersion::Code(code) => <i64 as sqlx::Encode<sqlx::Sqlite>>::encode_by_ref(code, buf),
            HttpVersion::Text(text) => <&str as sqlx::Encode<sqlx::Sqlite>>::encode_by_ref(text, buf),
        }
    }
}

impl sqlx::Type<sqlx::Sqlite> for HttpVersion<'_> {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <i64 as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
}

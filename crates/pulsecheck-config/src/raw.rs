//! The raw config: serde structs that mirror the file one to one. Every field is an
//! `Option` so that one bad value does not hide the others (see `de`), and
//! `deny_unknown_fields` makes every typo an error. Meaning (defaults, cross references,
//! ranges) is added by `validate`.
//!
//! When you add a key: add the field here, handle it in `validate`, document it in the
//! README's config reference, and use it in `examples/pulsecheck.yaml` and `.toml` — the
//! example test fails until every key of every struct in [`SCHEMA`] is used.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize as DeriveDeserialize;

use super::de::{struct_fields, Entries, Spanned, OR_SCALAR};
use pulsecheck_core::options::StatusMatcher;

/// The whole file.
#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub defaults: Option<Spanned<RawCheck>>,
    pub checks: Option<Vec<Spanned<RawCheck>>>,
    pub channels: Option<Entries<Spanned<RawChannel>>>,
    pub store: Option<Spanned<RawStore>>,
    pub limits: Option<Spanned<RawLimits>>,
    pub maintenance: Option<Vec<Spanned<RawWindow>>>,
    pub delivery: Option<Spanned<RawDelivery>>,
    pub server: Option<Spanned<RawServer>>,
    pub modules: Option<Entries<Spanned<RawModule>>>,
    pub cluster: Option<Spanned<RawCluster>>,
}

/// One check, and also `defaults` (where `name` and `target` are refused).
#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    pub name: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    pub target: Option<Spanned<String>>,
    pub interval: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    pub method: Option<Spanned<String>>,
    pub headers: Option<Spanned<Entries<Spanned<String>>>>,
    pub user_agent: Option<Spanned<String>>,
    pub max_redirects: Option<Spanned<u32>>,
    pub max_body: Option<Spanned<ByteSize>>,
    pub insecure: Option<Spanned<bool>>,
    pub conditions: Option<Spanned<Vec<Spanned<RawCondition>>>>,
    pub failure_threshold: Option<Spanned<u32>>,
    pub success_threshold: Option<Spanned<u32>>,
    pub channels: Option<Spanned<Vec<Spanned<String>>>>,
    pub reminder: Option<Spanned<Dur>>,
    pub quorum: Option<Spanned<RawQuorum>>,
}

/// `quorum: {locations: [...], min_down: N}` of a check.
#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuorum {
    pub locations: Option<Spanned<Vec<Spanned<String>>>>,
    pub min_down: Option<Spanned<u32>>,
}

/// One condition: exactly one of the kind keys, plus `equals`/`exists` after `json_path`.
#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCondition {
    pub status: Option<Spanned<StatusSpec>>,
    pub latency_under: Option<Spanned<Dur>>,
    pub json_path: Option<Spanned<String>>,
    pub equals: Option<Spanned<serde_json::Value>>,
    pub exists: Option<Spanned<bool>>,
    pub body_contains: Option<Spanned<String>>,
    pub body_regex: Option<Spanned<String>>,
    pub header: Option<Spanned<RawHeaderCondition>>,
    pub cert_expires_in_more_than: Option<Spanned<Days>>,
    pub dns_rcode: Option<Spanned<String>>,
    pub dns_answer_contains: Option<Spanned<String>>,
}

/// The key names that choose a condition's kind.
pub(crate) const CONDITION_KINDS: &[&str] = &[
    "status",
    "latency_under",
    "json_path",
    "body_contains",
    "body_regex",
    "header",
    "cert_expires_in_more_than",
    "dns_rcode",
    "dns_answer_contains",
];

#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeaderCondition {
    pub name: Option<Spanned<String>>,
    pub matches: Option<Spanned<String>>,
    pub equals: Option<Spanned<String>>,
}

/// One channel. The keys allowed depend on `type`; `validate` says which.
#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChannel {
    #[serde(rename = "type")]
    pub kind: Option<Spanned<ChannelType>>,
    pub timeout: Option<Spanned<Dur>>,
    // webhook
    pub url: Option<Spanned<String>>,
    pub headers: Option<Spanned<Entries<Spanned<String>>>>,
    // webhook and slack
    pub template: Option<Spanned<String>>,
    // slack
    pub webhook_url: Option<Spanned<String>>,
    // email
    pub smtp: Option<Spanned<SmtpField>>,
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<Vec<Spanned<String>>>>,
    pub subject: Option<Spanned<String>>,
    pub body: Option<Spanned<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, DeriveDeserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ChannelType {
    Webhook,
    Slack,
    Email,
}

impl ChannelType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChannelType::Webhook => "webhook",
            ChannelType::Slack => "slack",
            ChannelType::Email => "email",
        }
    }
}

/// `smtp: "smtp://host:port"` or `smtp: {host, port, security, username, password}`.
#[derive(Debug)]
pub(crate) enum SmtpField {
    Url(String),
    Parts(RawSmtp),
}

#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSmtp {
    pub host: Option<Spanned<String>>,
    pub port: Option<Spanned<u16>>,
    pub security: Option<Spanned<Security>>,
    pub username: Option<Spanned<String>>,
    pub password: Option<Spanned<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, DeriveDeserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Security {
    None,
    Starttls,
    Tls,
}

impl<'de> Deserialize<'de> for SmtpField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SmtpVisitor;
        impl<'de> Visitor<'de> for SmtpVisitor {
            type Value = SmtpField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an smtp:// URL or a mapping with host, port, security, username, password")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SmtpField, E> {
                Ok(SmtpField::Url(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SmtpField, A::Error> {
                RawSmtp::deserialize(de::value::MapAccessDeserializer::new(map)).map(SmtpField::Parts)
            }
        }
        // The prefixed name tells the config deserializer that a string is fine too, and
        // records the mapping form's keys under "RawSmtp" for the schema coverage test.
        let (_, fields) = struct_fields::<RawSmtp>();
        d.deserialize_struct(SMTP_NAME, fields, SmtpVisitor)
    }
}

const SMTP_NAME: &str = "$or_scalar:RawSmtp";
const _: () = assert!(SMTP_NAME.len() == OR_SCALAR.len() + "RawSmtp".len());

#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub path: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub retention: Option<Spanned<RawRetention>>,
    pub max_size: Option<Spanned<ByteSize>>,
}

#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub node: Option<Spanned<String>>,
    pub location: Option<Spanned<String>>,
    pub lease_ttl: Option<Spanned<Dur>>,
    pub claim_ttl: Option<Spanned<Dur>>,
}

#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetention {
    pub raw_days: Option<Spanned<u32>>,
    pub raw_up_hours: Option<Spanned<u32>>,
    pub hourly_days: Option<Spanned<u32>>,
}

#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub concurrency: Option<Spanned<u32>>,
    pub per_host: Option<Spanned<u32>>,
}

/// A maintenance window: `start` and (`end` or `duration`), optionally repeating `every`
/// day or week; limited to `checks` and/or `groups`, or all checks when neither is given.
#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWindow {
    pub name: Option<Spanned<String>>,
    pub start: Option<Spanned<String>>,
    pub end: Option<Spanned<String>>,
    pub duration: Option<Spanned<Dur>>,
    pub every: Option<Spanned<Every>>,
    pub checks: Option<Spanned<Vec<Spanned<String>>>>,
    pub groups: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, DeriveDeserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Every {
    Daily,
    Weekly,
}

#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDelivery {
    pub workers: Option<Spanned<u32>>,
    pub backoff_base: Option<Spanned<Dur>>,
    pub backoff_max: Option<Spanned<Dur>>,
}

/// The HTTP listener (`/metrics`, `/probe`, later the API): where it listens, who may
/// use it, and where `/probe` may go.
#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: Option<Spanned<String>>,
    pub tokens: Option<Spanned<Vec<Spanned<TokenField>>>>,
    pub public_reads: Option<Spanned<bool>>,
    pub allow: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `- "TOKEN"` (read and write) or `- {token: TOKEN, scopes: [read]}`.
#[derive(Debug)]
pub(crate) enum TokenField {
    Plain(String),
    Scoped(RawToken),
}

#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawToken {
    pub token: Option<Spanned<String>>,
    pub scopes: Option<Spanned<Vec<Spanned<Scope>>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, DeriveDeserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scope {
    Read,
    Write,
}

impl<'de> Deserialize<'de> for TokenField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TokenVisitor;
        impl<'de> Visitor<'de> for TokenVisitor {
            type Value = TokenField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a token, or a mapping with token and scopes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TokenField, E> {
                Ok(TokenField::Plain(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TokenField, A::Error> {
                RawToken::deserialize(de::value::MapAccessDeserializer::new(map)).map(TokenField::Scoped)
            }
        }
        // As for `smtp`: a string is fine too, the mapping's keys count as "RawToken".
        let (_, fields) = struct_fields::<RawToken>();
        d.deserialize_struct(TOKEN_NAME, fields, TokenVisitor)
    }
}

const TOKEN_NAME: &str = "$or_scalar:RawToken";
const _: () = assert!(TOKEN_NAME.len() == OR_SCALAR.len() + "RawToken".len());

/// A `/probe` module, blackbox_exporter style: a prober and the options and conditions
/// a check takes.
#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModule {
    pub prober: Option<Spanned<Prober>>,
    pub timeout: Option<Spanned<Dur>>,
    pub method: Option<Spanned<String>>,
    pub headers: Option<Spanned<Entries<Spanned<String>>>>,
    pub user_agent: Option<Spanned<String>>,
    pub max_redirects: Option<Spanned<u32>>,
    pub max_body: Option<Spanned<ByteSize>>,
    pub insecure: Option<Spanned<bool>>,
    pub conditions: Option<Spanned<Vec<Spanned<RawCondition>>>>,
    pub query_name: Option<Spanned<String>>,
    pub query_type: Option<Spanned<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, DeriveDeserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Prober {
    Http,
    Tcp,
    Tls,
    Dns,
    Icmp,
}

/// Every struct of the schema: a section name for messages and docs, and the keys serde
/// accepts. `tests/config.rs` checks that the example configs use all of them.
/// Returns a struct's name and keys (see [`struct_fields`]).
pub(crate) type FieldsFn = fn() -> (&'static str, &'static [&'static str]);

pub(crate) const SCHEMA: &[(&str, FieldsFn)] = &[
    ("top level", struct_fields::<RawConfig>),
    ("checks[] and defaults", struct_fields::<RawCheck>),
    ("checks[].conditions[]", struct_fields::<RawCondition>),
    ("checks[].quorum", struct_fields::<RawQuorum>),
    ("checks[].conditions[].header", struct_fields::<RawHeaderCondition>),
    ("channels.NAME", struct_fields::<RawChannel>),
    ("channels.NAME.smtp", struct_fields::<RawSmtp>),
    ("store", struct_fields::<RawStore>),
    ("store.retention", struct_fields::<RawRetention>),
    ("limits", struct_fields::<RawLimits>),
    ("maintenance[]", struct_fields::<RawWindow>),
    ("delivery", struct_fields::<RawDelivery>),
    ("server", struct_fields::<RawServer>),
    ("server.tokens[]", struct_fields::<RawToken>),
    ("modules.NAME", struct_fields::<RawModule>),
    ("cluster", struct_fields::<RawCluster>),
];

// ---------------------------------------------------------------------------------------
// Value types with their own syntax

/// A duration: `"30s"`, `"500ms"`, `"2m"`, `"1h"`, `"1d"`, or a number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dur(pub Duration);

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if let Some(days) = trimmed.strip_suffix('d') {
        if let Ok(days) = days.trim().parse::<f64>() {
            if days.is_finite() && (0.0..=10_000.0).contains(&days) {
                return Ok(Duration::from_secs_f64(days * 86_400.0));
            }
        }
    }
    // Days in jiff's friendly format ("2 days", "1 day 12h"), each 24 hours. Weeks and
    // longer stay errors: a config means days when it says so.
    if let Ok(span) = trimmed.parse::<jiff::Span>() {
        let calendar = span.get_years() != 0 || span.get_months() != 0 || span.get_weeks() != 0;
        if span.get_days() > 0 && !calendar && !span.is_negative() {
            let total = span.total(jiff::SpanTotal::from(jiff::Unit::Second).days_are_24_hours());
            if let Ok(seconds) = total {
                if seconds.is_finite() && seconds <= 10_000.0 * 86_400.0 {
                    return Ok(Duration::from_secs_f64(seconds));
                }
            }
        }
    }
    pulsecheck_core::options::parse_duration(trimmed)
        .map_err(|e| e.replace("use ms, s, m or h", "use ms, s, m, h or d"))
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DurVisitor;
        impl Visitor<'_> for DurVisitor {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 30s, 500ms, 2m or 1h")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).map(Dur).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v)
                    .map(|s| Dur(Duration::from_secs(s)))
                    .map_err(|_| E::custom(format!("a duration cannot be negative ({v})")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                Ok(Dur(Duration::from_secs(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                parse_duration(&v.to_string()).map(Dur).map_err(E::custom)
            }
        }
        d.deserialize_any(DurVisitor)
    }
}

/// Whole days: `14`, `"14d"`, or a duration (`"336h"`), rounded down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Days(pub i64);

impl<'de> Deserialize<'de> for Days {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DaysVisitor;
        impl Visitor<'_> for DaysVisitor {
            type Value = Days;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of days such as 14d")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Days, E> {
                if let Ok(days) = v.trim().parse::<i64>() {
                    return self.visit_i64(days);
                }
                parse_duration(v)
                    .map(|d| Days((d.as_secs() / 86_400) as i64))
                    .map_err(|_| E::custom(format!("'{v}' is not a number of days; write e.g. 14d")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Days, E> {
                if (0..=100_000).contains(&v) {
                    Ok(Days(v))
                } else {
                    Err(E::custom(format!("{v} days is out of range (0 to 100000)")))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Days, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_any(DaysVisitor)
    }
}

/// A byte count: `65536`, `"64KiB"`, `"1MiB"`, `"1MB"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ByteSize(pub u64);

pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size; write e.g. 65536, 64KiB or 1MiB"))?;
    let factor: f64 = match unit.trim() {
        "" | "B" | "b" => 1.0,
        "KB" | "kB" => 1e3,
        "KiB" | "K" | "k" => 1024.0,
        "MB" => 1e6,
        "MiB" | "M" => 1024.0 * 1024.0,
        "GB" => 1e9,
        "GiB" | "G" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{text}'; use B, KiB, MiB, GiB (or KB, MB, GB)"
            ))
        }
    };
    let bytes = number * factor;
    if !bytes.is_finite() || bytes > 1e15 {
        return Err(format!("'{text}' is too large"));
    }
    Ok(bytes as u64)
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 65536, 64KiB or 1MiB")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_size(v).map(ByteSize).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("a size cannot be negative ({v})")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

/// HTTP statuses: `200`, `[200, 204]`, `"2xx"`, `"200-399"`, `"2xx,301"`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StatusSpec(pub StatusMatcher);

impl<'de> Deserialize<'de> for StatusSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StatusVisitor;
        impl<'de> Visitor<'de> for StatusVisitor {
            type Value = StatusSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a status such as 200, [200, 204], \"2xx\" or \"200-399\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusSpec, E> {
                StatusMatcher::parse(v).map(StatusSpec).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusSpec, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusSpec, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StatusSpec, A::Error> {
                let mut parts = Vec::new();
                while let Some(part) = seq.next_element::<StatusPart>()? {
                    parts.push(part.0);
                }
                self.visit_str(&parts.join(","))
            }
        }
        d.deserialize_any(StatusVisitor)
    }
}

/// One element of a status list: a number or a string.
struct StatusPart(String);

impl<'de> Deserialize<'de> for StatusPart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PartVisitor;
        impl Visitor<'_> for PartVisitor {
            type Value = StatusPart;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a status code such as 200 or \"2xx\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusPart, E> {
                StatusMatcher::parse(v).map_err(E::custom)?;
                Ok(StatusPart(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusPart, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusPart, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(PartVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert!(parse_size("1 parsec").is_err());
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5 weeks").unwrap_err().contains("m, h or d"));
        assert_eq!(parse_duration("2 days"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1 day, 12 hours"), Ok(Duration::from_secs(129_600)));
        assert_eq!(parse_duration("10 seconds"), Ok(Duration::from_secs(10)));
        assert!(parse_duration("20000 days").is_err());
    }

    #[test]
    fn schema_lists_every_struct_with_its_keys() {
        for (section, fields) in SCHEMA {
            let (name, keys) = fields();
            assert!(!name.is_empty() && !keys.is_empty(), "{section}");
        }
        assert_eq!(struct_fields::<RawChannel>().1[0], "type");
    }
}

//! Options: how checks are done and judged (per check) and how many run at once (per
//! engine).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};

use crate::address_policy::AddressPolicy;
use crate::conditions::Condition;

/// The default per-check deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default cap on body bytes read per response.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// The default number of redirects followed.
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;

/// How one check is done, and how its result is judged.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Covers every phase of the check; starts when the check gets its concurrency slot.
    pub timeout: Duration,
    pub method: Method,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub max_redirects: u32,
    /// Bytes of body read at most; the rest is not downloaded.
    pub max_body_bytes: usize,
    /// Skip certificate verification (the certificate is still recorded).
    pub insecure: bool,
    pub user_agent: String,
    /// Keep HTTP connections open between checks of the same scheme, host and port
    /// (keep-alive) instead of a fresh connection per check.
    pub reuse_connections: bool,
    /// The check's judge: applied in order by [`Engine::check`](crate::Engine::check) to
    /// a result the probe found up, after the default of the target's kind (2xx for HTTP,
    /// NOERROR with an answer for DNS; see [`crate::conditions`]). Conditions that do not
    /// apply to a target are skipped for it.
    pub conditions: Arc<[Condition]>,
    /// The SSRF guard for checks that come from a request (`/probe`, the API): every
    /// host and every address connected to must pass it. `None` (checks the operator
    /// wrote) reaches anything.
    pub address_policy: Option<Arc<AddressPolicy>>,
}

impl CheckOptions {
    /// Whether the HTTP probe must keep the final response's headers and (capped) body:
    /// some condition reads them. The engine drops them once the conditions have run.
    pub fn needs_response(&self) -> bool {
        self.conditions.iter().any(Condition::needs_response)
    }
}

/// Equal when checks would run and be judged the same way (regexes compare by their
/// source). Written out field by field so that a new option cannot be left out unnoticed.
impl PartialEq for CheckOptions {
    fn eq(&self, other: &Self) -> bool {
        let CheckOptions {
            timeout,
            method,
            headers,
            max_redirects,
            max_body_bytes,
            insecure,
            user_agent,
            reuse_connections,
            conditions,
            address_policy,
        } = self;
        *timeout == other.timeout
            && *method == other.method
            && *headers == other.headers
            && *max_redirects == other.max_redirects
            && *max_body_bytes == other.max_body_bytes
            && *insecure == other.insecure
            && *user_agent == other.user_agent
            && *reuse_connections == other.reuse_connections
            && **conditions == *other.conditions
            && *address_policy == other.address_policy
    }
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            timeout: DEFAULT_TIMEOUT,
            method: Method::GET,
            headers: Vec::new(),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            insecure: false,
            user_agent: concat!("pulsecheck/", env!("CARGO_PKG_VERSION")).to_owned(),
            reuse_connections: false,
            conditions: Arc::from([]),
            address_policy: None,
        }
    }
}

/// Which HTTP statuses count as up ([`Condition::Status`]): a list of codes and
/// inclusive ranges.
#[derive(Clone, PartialEq, Eq)]
pub struct StatusMatcher {
    ranges: Vec<(u16, u16)>,
}

impl Default for StatusMatcher {
    /// 2xx, judged after redirects are followed.
    fn default() -> Self {
        StatusMatcher {
            ranges: vec![(200, 299)],
        }
    }
}

impl StatusMatcher {
    /// Parses `200`, `200,204`, `200-399` or `2xx,301`.
    pub fn parse(text: &str) -> Result<StatusMatcher, String> {
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let code = |s: &str| -> Result<u16, String> {
                s.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .ok_or_else(|| format!("'{s}' is not an HTTP status code (100-599)"))
            };
            let range = if let Some(class) = part.strip_suffix("xx").or_else(|| part.strip_suffix("XX")) {
                let digit: u16 = class
                    .parse()
                    .ok()
                    .filter(|d| (1..=5).contains(d))
                    .ok_or_else(|| format!("'{part}' is not a status class (1xx-5xx)"))?;
                (digit * 100, digit * 100 + 99)
            } else if let Some((low, high)) = part.split_once('-') {
                let (low, high) = (code(low)?, code(high)?);
                if low > high {
                    return Err(format!("'{part}': the range is reversed"));
                }
                (low, high)
            } else {
                let c = code(part)?;
                (c, c)
            };
            ranges.push(range);
        }
        if ranges.is_empty() {
            return Err("no status codes given; write e.g. 200, 200-299 or 2xx".into());
        }
        Ok(StatusMatcher { ranges })
    }

    pub fn matches(&self, status: u16) -> bool {
        self.ranges.iter().any(|(low, high)| (*low..=*high).contains(&status))
    }
}

impl fmt::Display for StatusMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (low, high)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if low == high {
                write!(f, "{low}")?;
            } else {
                write!(f, "{low}-{high}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for StatusMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusMatcher({self})")
    }
}

/// How many checks run at once.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Checks in flight at once across all hosts.
    pub concurrency: usize,
    /// Checks in flight at once against one host.
    pub per_host: usize,
}

/// Defaults sized so 10,000 targets finish in about one round trip, and a batch of 1,000
/// hanging endpoints on one host ends in about one timeout rather than several.
pub const DEFAULT_CONCURRENCY: usize = 10_000;
pub const DEFAULT_PER_HOST: usize = 1000;
/// HTTP slots by default (never more than the concurrency): a plain HTTP check takes one,
/// an HTTPS or pooled one two ([`crate::limiter::http_weight`]). A plain HTTP/1 check waits
/// for its response holding only its socket, and hyper's buffers (about 24 KiB) only
/// while the response is read, so 5,000 keep a 10,000-target scan to two waves at about
/// 52 MB resident (README, "Benchmark"); 2,500 HTTPS checks hold about what 2,500 did
/// before plain HTTP stopped holding hyper's buffers while it waits. Other probes are not
/// counted here.
pub const DEFAULT_HTTP_IN_FLIGHT: usize = 5_000;

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            concurrency: DEFAULT_CONCURRENCY,
            per_host: DEFAULT_PER_HOST,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_compare_by_how_the_check_runs() {
        let with_regex = |source: &str| CheckOptions {
            conditions: Arc::from([Condition::body_regex(source).unwrap()]),
            ..CheckOptions::default()
        };
        assert_eq!(with_regex("up|ok"), with_regex("up|ok"), "regexes compare by source");
        assert_ne!(with_regex("up|ok"), with_regex("up"));
        assert_ne!(with_regex("up"), CheckOptions::default());
        assert!(with_regex("up").needs_response() && !CheckOptions::default().needs_response());
        let latency = CheckOptions {
            conditions: Arc::from([Condition::LatencyUnder(Duration::from_secs(1))]),
            ..CheckOptions::default()
        };
        assert!(!latency.needs_response(), "latency is measured, not read from the body");
        let reuse = CheckOptions {
            reuse_connections: true,
            ..CheckOptions::default()
        };
        assert_ne!(reuse, CheckOptions::default());
    }

    #[test]
    fn status_matcher_forms() {
        let m = StatusMatcher::parse("2xx, 301,400-404").unwrap();
        assert!(m.matches(204) && m.matches(301) && m.matches(403));
        assert!(!m.matches(302) && !m.matches(500));
        assert_eq!(m.to_string(), "200-299,301,400-404");
        assert!(StatusMatcher::parse("6xx").is_err());
        assert!(StatusMatcher::parse("abc").is_err());
        assert!(StatusMatcher::parse("500-400").is_err());
        assert!(StatusMatcher::parse("").is_err());
    }
}

/// Parses a duration with jiff's friendly format: `5s`, `250ms`, `1.5s`, `2m`, `1h30m`,
/// `10 seconds`, `1 hour, 30 minutes` (or ISO 8601, `PT10S`), or a bare number of seconds.
/// Units go from hours down to nanoseconds; a duration is never negative.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let seconds = if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        text.parse::<f64>().map_err(|_| not_a_duration(text))?
    } else {
        let parsed = text
            .parse::<jiff::SignedDuration>()
            .map_err(|e| duration_error(text, &e))?;
        if parsed.is_negative() {
            return Err(format!("'{text}' is negative; a duration is zero or more"));
        }
        parsed.as_secs_f64()
    };
    if !seconds.is_finite() || seconds > 1e9 {
        return Err(format!("'{text}' is too long"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Every unit word jiff accepts for a duration of hours or less.
const DURATION_UNITS: &[&str] = &[
    "h",
    "hr",
    "hrs",
    "hour",
    "hours",
    "m",
    "min",
    "mins",
    "minute",
    "minutes",
    "s",
    "sec",
    "secs",
    "second",
    "seconds",
    "ms",
    "msec",
    "msecs",
    "millisecond",
    "milliseconds",
    "us",
    "µs",
    "μs",
    "usec",
    "usecs",
    "microsecond",
    "microseconds",
    "ns",
    "nsec",
    "nsecs",
    "nanosecond",
    "nanoseconds",
];

fn not_a_duration(text: &str) -> String {
    format!("'{text}' is not a duration; write e.g. 5s, 250ms, 1.5s or 2m")
}

/// Names the first unit that is not one, since that is the usual mistake; otherwise
/// passes on jiff's own explanation.
fn duration_error(text: &str, error: &jiff::Error) -> String {
    if !text.chars().any(|c| c.is_ascii_digit()) {
        return not_a_duration(text);
    }
    let words = text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty() && !w.eq_ignore_ascii_case("pt"));
    for word in words {
        if !DURATION_UNITS.contains(&word) {
            return format!("unknown unit '{word}' in '{text}'; use ms, s, m or h");
        }
    }
    format!("'{text}' is not a duration ({error}); write e.g. 5s, 250ms, 1.5s or 2m")
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration(" 1h "), Ok(Duration::from_secs(3600)));
        assert_eq!(
            parse_duration("5 parsecs"),
            Err("unknown unit 'parsecs' in '5 parsecs'; use ms, s, m or h".into())
        );
        assert_eq!(
            parse_duration("2d"),
            Err("unknown unit 'd' in '2d'; use ms, s, m or h".into())
        );
        assert!(parse_duration("fast").unwrap_err().contains("'fast' is not a duration"));
        assert!(parse_duration("").unwrap_err().contains("is not a duration"));
        assert!(parse_duration("1.2.3").unwrap_err().contains("is not a duration"));
    }

    #[test]
    fn friendly_durations() {
        assert_eq!(parse_duration("10 seconds"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1 hour, 30 minutes"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2 mins 5 secs"), Ok(Duration::from_secs(125)));
        assert_eq!(parse_duration("250 ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("PT10S"), Ok(Duration::from_secs(10)));
        assert!(parse_duration("-5s").unwrap_err().contains("negative"));
        assert!(parse_duration("2000000000s").unwrap_err().contains("too long"));
        // A unit out of order is a known unit, so jiff's own explanation is passed on.
        let error = parse_duration("5s 1h").unwrap_err();
        assert!(error.starts_with("'5s 1h' is not a duration ("), "{error}");
    }
}

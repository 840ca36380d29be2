//! Options: how checks are done (per check) and how many run at once (per engine).

use std::fmt;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use regex::Regex;

/// The default per-check deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default cap on body bytes read per response.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// The default number of redirects followed.
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;

/// How one check is done.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Covers every phase of the check; starts when the check gets its concurrency slot.
    pub timeout: Duration,
    pub method: Method,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub expect_status: StatusMatcher,
    pub body_contains: Option<String>,
    pub body_regex: Option<Regex>,
    /// A check slower than this is down with reason `latency`.
    pub max_latency: Option<Duration>,
    pub max_redirects: u32,
    /// Bytes of body read at most; the rest is not downloaded.
    pub max_body_bytes: usize,
    /// Skip certificate verification (the certificate is still recorded).
    pub insecure: bool,
    /// A TLS or HTTPS check is down when the certificate expires in fewer days.
    pub min_cert_days: Option<i64>,
    pub user_agent: String,
    /// Keep the final response's headers and (capped) body in
    /// [`CheckResult::response`](crate::CheckResult::response), for conditions to inspect.
    pub capture_response: bool,
    /// Keep HTTP connections open between checks of the same scheme, host and port
    /// (keep-alive) instead of a fresh connection per check.
    pub reuse_connections: bool,
}

/// Equal when checks would run the same way (regexes compare by their source). Written
/// out field by field so that a new option cannot be left out unnoticed.
impl PartialEq for CheckOptions {
    fn eq(&self, other: &Self) -> bool {
        let CheckOptions {
            timeout,
            method,
            headers,
            expect_status,
            body_contains,
            body_regex,
            max_latency,
            max_redirects,
            max_body_bytes,
            insecure,
            min_cert_days,
            user_agent,
            capture_response,
            reuse_connections,
        } = self;
        *timeout == other.timeout
            && *method == other.method
            && *headers == other.headers
            && *expect_status == other.expect_status
            && *body_contains == other.body_contains
            && body_regex.as_ref().map(Regex::as_str) == other.body_regex.as_ref().map(Regex::as_str)
            && *max_latency == other.max_latency
            && *max_redirects == other.max_redirects
            && *max_body_bytes == other.max_body_bytes
            && *insecure == other.insecure
            && *min_cert_days == other.min_cert_days
            && *user_agent == other.user_agent
            && *capture_response == other.capture_response
            && *reuse_connections == other.reuse_connections
    }
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            timeout: DEFAULT_TIMEOUT,
            method: Method::GET,
            headers: Vec::new(),
            expect_status: StatusMatcher::default(),
            body_contains: None,
            body_regex: None,
            max_latency: None,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            insecure: false,
            min_cert_days: None,
            user_agent: concat!("pulsecheck/", env!("CARGO_PKG_VERSION")).to_owned(),
            capture_response: false,
            reuse_connections: false,
        }
    }
}

/// Which HTTP statuses count as up: a list of codes and inclusive ranges.
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
/// HTTP(S) checks in flight at once by default (never more than the concurrency). Each
/// holds a hyper connection whose read and write buffers and request channel are 8 KiB
/// each, so 10,000 at once peak near 150 MB resident; with 2,500 a 10,000-target scan
/// runs in four waves and stays under 100 MB (README, "Benchmark"). Other probes are
/// not counted here.
pub const DEFAULT_HTTP_IN_FLIGHT: usize = 2_500;

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
            body_regex: Some(Regex::new(source).unwrap()),
            ..CheckOptions::default()
        };
        assert_eq!(with_regex("up|ok"), with_regex("up|ok"), "regexes compare by source");
        assert_ne!(with_regex("up|ok"), with_regex("up"));
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

/// Parses a duration: `5s`, `250ms`, `1.5s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration; write e.g. 5s, 250ms, 1.5s or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1000.0,
        "us" | "µs" => value / 1_000_000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit '{other}' in '{text}'; use ms, s, m or h")),
    };
    if !seconds.is_finite() || seconds > 1e9 {
        return Err(format!("'{text}' is too long"));
    }
    Ok(Duration::from_secs_f64(seconds))
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
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("fast").is_err());
    }
}

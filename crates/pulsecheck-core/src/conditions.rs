//! Conditions: the one judge of every check, in `scan` and `serve` alike, in the spirit of
//! Gatus's `[STATUS] == 200`, `[BODY].status == UP`, `[RESPONSE_TIME] < 300`.
//!
//! A probe only measures: it says whether the target answered at all (or why not: a
//! timeout, a refused or reset connection, a failed TLS handshake, a malformed answer)
//! and records what it saw. [`judge`] then decides, inside
//! [`Engine::check`](crate::Engine::check), whether the answer is the right one. It runs
//! the check's conditions in order, and the first that fails makes the result down, with
//! a reason that names what was wrong (status, body, latency, certificate, dns) and a
//! message that quotes the condition and what was seen:
//!
//! ```text
//! condition `$.status == "UP"` failed: got "DOWN"
//! ```
//!
//! Each kind of target has a default that comes first unless a condition of the same kind
//! replaces it: an HTTP check is up on a 2xx final status unless a `status` condition says
//! otherwise, and a DNS check is up on NOERROR with at least one record of the type asked
//! for unless a `dns_rcode` condition says otherwise. A condition that cannot apply to a
//! target ([`Condition::applies`]: a body condition on a `tcp://` target, a certificate
//! condition on an `http://` URL) is skipped for it.
//!
//! A result that is already down keeps its own reason: conditions never turn a timeout
//! into a body error, nor a down result into an up one.
//!
//! Conditions on the body or headers need the response, which the HTTP probe keeps only
//! when one of the check's conditions asks for it ([`Condition::needs_response`]); the
//! engine drops it as soon as the conditions have run.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde_json::Value;
use serde_json_path::JsonPath;

use crate::options::StatusMatcher;
use crate::probe::Redirected;
use crate::result::{CheckResult, Outcome, ProbeKind, Reason};
use crate::target::{RecordKind, TargetSpec};

/// One condition on a result.
#[derive(Clone, Debug)]
pub enum Condition {
    /// `status: 200`, `status: [200, 204]`, `status: "2xx"`: the final HTTP status.
    Status(StatusMatcher),
    /// `latency_under: 300ms` (`--max-latency`): the check's duration, from getting its
    /// slot to the end of the probe, is under this.
    LatencyUnder(Duration),
    /// `json_path: "$.status"` with `equals: "UP"` or `exists: true`, on the JSON body
    /// (RFC 9535 JSONPath). With `equals`, every node the query selects must equal the
    /// value, and there must be at least one.
    JsonPath {
        /// The query as written.
        path: String,
        query: JsonPath,
        expect: JsonExpect,
    },
    /// `body_contains: "ok"`: the (capped) body contains the text.
    BodyContains(String),
    /// `body_regex: "\"status\":\\s*\"UP\""`: the body matches the regular expression.
    BodyRegex(Regex),
    /// `header: { name: content-type, matches: "json" }` or `equals: "…"`: some value of
    /// the header (names are compared in lower case) matches.
    Header { name: String, expect: HeaderExpect },
    /// `cert_expires_in_more_than: 14d` (`--min-cert-days 14`): at least this many whole
    /// days are left on the certificate (the earliest expiry in the chain).
    CertExpiresInMoreThan { days: i64 },
    /// `dns_rcode: NXDOMAIN`: the DNS response code, by its mnemonic. It replaces the DNS
    /// default (NOERROR with a record of the type asked for): with it, an empty answer is
    /// fine.
    DnsRcode(String),
    /// `dns_answer_contains: "127.0.0.1"`: some answer record (`"A 127.0.0.1"`) contains
    /// the text.
    DnsAnswerContains(String),
}

/// What a JSONPath query must find.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonExpect {
    Equals(Value),
    /// `exists: true` passes when the query selects something; `exists: false` when it
    /// selects nothing.
    Exists(bool),
}

/// What a header value must be.
#[derive(Clone, Debug)]
pub enum HeaderExpect {
    Matches(Regex),
    Equals(String),
}

/// DNS response codes by mnemonic, with the text the DNS probe records for each.
const RCODES: &[(&str, hickory_proto::op::ResponseCode)] = {
    use hickory_proto::op::ResponseCode as R;
    &[
        ("NOERROR", R::NoError),
        ("FORMERR", R::FormErr),
        ("SERVFAIL", R::ServFail),
        ("NXDOMAIN", R::NXDomain),
        ("NOTIMP", R::NotImp),
        ("REFUSED", R::Refused),
        ("YXDOMAIN", R::YXDomain),
        ("YXRRSET", R::YXRRSet),
        ("NXRRSET", R::NXRRSet),
        ("NOTAUTH", R::NotAuth),
        ("NOTZONE", R::NotZone),
    ]
};

/// The mnemonics accepted by `dns_rcode`.
pub fn rcode_names() -> impl Iterator<Item = &'static str> {
    RCODES.iter().map(|(name, _)| *name)
}

/// The mnemonic of an rcode as the DNS probe records it ("Non-Existent Domain" → NXDOMAIN).
fn rcode_mnemonic(recorded: &str) -> Option<&'static str> {
    RCODES
        .iter()
        .find(|(name, code)| name.eq_ignore_ascii_case(recorded) || code.to_str().eq_ignore_ascii_case(recorded))
        .map(|(name, _)| *name)
}

impl Condition {
    /// A JSONPath condition; the error says what is wrong with the query.
    pub fn json_path(path: &str, expect: JsonExpect) -> Result<Condition, String> {
        let query = JsonPath::parse(path).map_err(|e| format!("'{path}' is not a valid JSONPath (RFC 9535): {e}"))?;
        Ok(Condition::JsonPath {
            path: path.to_owned(),
            query,
            expect,
        })
    }

    pub fn body_regex(pattern: &str) -> Result<Condition, String> {
        compile(pattern).map(Condition::BodyRegex)
    }

    pub fn header_matches(name: &str, pattern: &str) -> Result<Condition, String> {
        Ok(Condition::Header {
            name: name.to_ascii_lowercase(),
            expect: HeaderExpect::Matches(compile(pattern)?),
        })
    }

    pub fn header_equals(name: &str, value: &str) -> Condition {
        Condition::Header {
            name: name.to_ascii_lowercase(),
            expect: HeaderExpect::Equals(value.to_owned()),
        }
    }

    /// `NOERROR`, `NXDOMAIN`, … (any case).
    pub fn dns_rcode(mnemonic: &str) -> Result<Condition, String> {
        rcode_names()
            .find(|name| name.eq_ignore_ascii_case(mnemonic.trim()))
            .map(|name| Condition::DnsRcode(name.to_owned()))
            .ok_or_else(|| {
                format!(
                    "'{mnemonic}' is not a DNS response code; use {}",
                    rcode_names().collect::<Vec<_>>().join(", ")
                )
            })
    }

    /// The reason a result gets when this condition fails.
    pub fn reason(&self) -> Reason {
        match self {
            Condition::Status(_) => Reason::Status,
            Condition::LatencyUnder(_) => Reason::Latency,
            Condition::JsonPath { .. }
            | Condition::BodyContains(_)
            | Condition::BodyRegex(_)
            | Condition::Header { .. } => Reason::Body,
            Condition::CertExpiresInMoreThan { .. } => Reason::Certificate,
            Condition::DnsRcode(_) | Condition::DnsAnswerContains(_) => Reason::Dns,
        }
    }

    /// Whether the condition reads the response body or headers, so the probe must keep them.
    pub fn needs_response(&self) -> bool {
        matches!(
            self,
            Condition::JsonPath { .. }
                | Condition::BodyContains(_)
                | Condition::BodyRegex(_)
                | Condition::Header { .. }
        )
    }

    /// Whether the condition can judge this target: [`applies_to`](Self::applies_to) its
    /// kind of probe, and a certificate condition needs an `https://` URL (an `http://`
    /// one has no certificate). The judge skips conditions that do not apply.
    pub fn applies(&self, spec: &TargetSpec) -> bool {
        match (self, spec) {
            (Condition::CertExpiresInMoreThan { .. }, TargetSpec::Http { url }) => url.scheme() == "https",
            _ => self.applies_to(spec.probe_kind()),
        }
    }

    /// The probes whose results this condition can be true for.
    pub fn applies_to(&self, probe: ProbeKind) -> bool {
        match self {
            Condition::LatencyUnder(_) => true,
            Condition::Status(_)
            | Condition::JsonPath { .. }
            | Condition::BodyContains(_)
            | Condition::BodyRegex(_)
            | Condition::Header { .. } => probe == ProbeKind::Http,
            Condition::CertExpiresInMoreThan { .. } => matches!(probe, ProbeKind::Http | ProbeKind::Tls),
            Condition::DnsRcode(_) | Condition::DnsAnswerContains(_) => probe == ProbeKind::Dns,
        }
    }

    /// Checks one result; the error is the result's message when the condition fails.
    pub fn check(&self, result: &CheckResult) -> Result<(), String> {
        self.check_with(result, &mut Seen::default())
    }

    fn check_with(&self, result: &CheckResult, seen: &mut Seen<'_>) -> Result<(), String> {
        self.test(result, seen).map_err(|got| match self {
            // Said as scan always said it: the status, the URL it came from, what was expected.
            Condition::Status(_) => got,
            _ => format!("condition `{self}` failed: {got}"),
        })
    }

    /// The condition itself; the error says what was seen instead.
    fn test(&self, result: &CheckResult, seen: &mut Seen<'_>) -> Result<(), String> {
        match self {
            Condition::Status(matcher) => match result.http_status {
                Some(status) if matcher.matches(status) => Ok(()),
                Some(status) => Err(status_failure(status, matcher, result, seen)),
                None => Err(format!("no HTTP status, expected {matcher}")),
            },
            Condition::LatencyUnder(limit) => {
                if result.duration_ms < *limit {
                    Ok(())
                } else {
                    Err(format!("took {}", crate::probe::human(result.duration_ms)))
                }
            }
            Condition::JsonPath { query, expect, .. } => {
                let value = seen.json.get(result)?;
                let nodes = query.query(value).all();
                match expect {
                    JsonExpect::Exists(true) if nodes.is_empty() => Err("nothing matched".into()),
                    JsonExpect::Exists(false) if !nodes.is_empty() => Err(format!("got {}", show(nodes[0]))),
                    JsonExpect::Exists(_) => Ok(()),
                    JsonExpect::Equals(_) if nodes.is_empty() => Err("nothing matched".into()),
                    JsonExpect::Equals(expected) => match nodes.iter().find(|node| !json_equal(node, expected)) {
                        Some(node) => Err(format!("got {}", show(node))),
                        None => Ok(()),
                    },
                }
            }
            Condition::BodyContains(needle) => {
                let body = body(result)?;
                if String::from_utf8_lossy(body).contains(needle.as_str()) {
                    Ok(())
                } else {
                    Err(format!("not found in the {} bytes read", body.len()))
                }
            }
            Condition::BodyRegex(regex) => {
                let body = body(result)?;
                if regex.is_match(&String::from_utf8_lossy(body)) {
                    Ok(())
                } else {
                    Err(format!("no match in the {} bytes read", body.len()))
                }
            }
            Condition::Header { name, expect } => {
                let response = result.response.as_deref().ok_or("the response was not kept")?;
                let mut values = response
                    .headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str())
                    .peekable();
                let first = *values.peek().ok_or_else(|| format!("no {name} header"))?;
                let ok = values.any(|v| match expect {
                    HeaderExpect::Matches(regex) => regex.is_match(v),
                    HeaderExpect::Equals(expected) => v.trim() == expected.trim(),
                });
                if ok {
                    Ok(())
                } else {
                    Err(format!("got {}", show_str(first)))
                }
            }
            Condition::CertExpiresInMoreThan { days } => match &result.certificate {
                Some(cert) if cert.days_left >= *days => Ok(()),
                Some(cert) => Err(format!("got {} days left (expires {})", cert.days_left, cert.not_after)),
                None => Err("no certificate was seen".into()),
            },
            Condition::DnsRcode(expected) => match &result.dns {
                Some(answer) => {
                    let got = rcode_mnemonic(&answer.rcode).unwrap_or(answer.rcode.as_str());
                    if got.eq_ignore_ascii_case(expected) {
                        Ok(())
                    } else {
                        Err(format!("got {got}"))
                    }
                }
                None => Err("no DNS answer".into()),
            },
            Condition::DnsAnswerContains(needle) => match &result.dns {
                Some(answer) if answer.answers.iter().any(|a| a.contains(needle.as_str())) => Ok(()),
                Some(answer) if answer.answers.is_empty() => Err("got no answer records".into()),
                Some(answer) => Err(format!("got {}", show_str(&answer.answers.join(", ")))),
                None => Err("no DNS answer".into()),
            },
        }
    }
}

fn compile(pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("'{pattern}' is not a valid regular expression: {e}"))
}

fn body(result: &CheckResult) -> Result<&[u8], String> {
    result
        .response
        .as_deref()
        .map(|r| r.body.as_ref())
        .ok_or_else(|| "the response was not kept".to_owned())
}

/// The body parsed as JSON once per evaluation, however many JSONPath conditions there are.
#[derive(Default)]
struct JsonCache {
    parsed: Option<Result<Value, String>>,
}

impl JsonCache {
    fn get(&mut self, result: &CheckResult) -> Result<&Value, String> {
        let parsed = self.parsed.get_or_insert_with(|| {
            let body = body(result)?;
            serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e})"))
        });
        parsed.as_ref().map_err(Clone::clone)
    }
}

/// Equality that treats `200` and `200.0` as the same number.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        _ => a == b,
    }
}

fn show(value: &Value) -> String {
    let text = value.to_string();
    crate::text::truncate(&text, 80)
}

fn show_str(text: &str) -> String {
    crate::text::truncate(&format!("{text:?}"), 80)
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Status(matcher) => {
                let text = matcher.to_string();
                if text.contains([',', '-']) {
                    write!(f, "status in {text}")
                } else {
                    write!(f, "status == {text}")
                }
            }
            Condition::LatencyUnder(limit) => write!(f, "latency < {}", crate::probe::human(*limit)),
            Condition::JsonPath { path, expect, .. } => match expect {
                JsonExpect::Equals(value) => write!(f, "{path} == {value}"),
                JsonExpect::Exists(true) => write!(f, "{path} exists"),
                JsonExpect::Exists(false) => write!(f, "{path} does not exist"),
            },
            Condition::BodyContains(needle) => write!(f, "body contains {needle:?}"),
            Condition::BodyRegex(regex) => write!(f, "body matches /{regex}/"),
            Condition::Header { name, expect } => match expect {
                HeaderExpect::Matches(regex) => write!(f, "header {name} matches /{regex}/"),
                HeaderExpect::Equals(value) => write!(f, "header {name} == {value:?}"),
            },
            Condition::CertExpiresInMoreThan { days } => write!(f, "certificate expires in more than {days} days"),
            Condition::DnsRcode(rcode) => write!(f, "dns rcode == {rcode}"),
            Condition::DnsAnswerContains(needle) => write!(f, "dns answer contains {needle:?}"),
        }
    }
}

/// Conditions are equal when they are written the same (regexes compare by pattern).
impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        use Condition as C;
        match (self, other) {
            (C::Status(a), C::Status(b)) => a == b,
            (C::LatencyUnder(a), C::LatencyUnder(b)) => a == b,
            (
                C::JsonPath {
                    path: pa, expect: ea, ..
                },
                C::JsonPath {
                    path: pb, expect: eb, ..
                },
            ) => pa == pb && ea == eb,
            (C::BodyContains(a), C::BodyContains(b)) => a == b,
            (C::BodyRegex(a), C::BodyRegex(b)) => a.as_str() == b.as_str(),
            (C::Header { name: na, expect: ea }, C::Header { name: nb, expect: eb }) => {
                na == nb
                    && match (ea, eb) {
                        (HeaderExpect::Matches(a), HeaderExpect::Matches(b)) => a.as_str() == b.as_str(),
                        (HeaderExpect::Equals(a), HeaderExpect::Equals(b)) => a == b,
                        _ => false,
                    }
            }
            (C::CertExpiresInMoreThan { days: a }, C::CertExpiresInMoreThan { days: b }) => a == b,
            (C::DnsRcode(a), C::DnsRcode(b)) => a == b,
            (C::DnsAnswerContains(a), C::DnsAnswerContains(b)) => a == b,
            _ => false,
        }
    }
}

/// The default of an HTTP check: a 2xx final status.
static DEFAULT_STATUS: LazyLock<StatusMatcher> = LazyLock::new(StatusMatcher::default);

/// What the judge knows besides the result: where an HTTP check ended up, and the body
/// parsed as JSON once however many JSONPath conditions there are.
#[derive(Default)]
struct Seen<'a> {
    /// The URL the final response came from (the target's when no redirect was followed).
    url: Option<&'a url::Url>,
    redirected: Option<&'a Redirected>,
    json: JsonCache,
}

/// Judges a result the probe found up: the default of its kind of target first (unless
/// a condition replaces it), then every condition that [`applies`](Condition::applies) to
/// the target, in order. The first that fails gives the reason and the message, such as
/// ``condition `$.status == "UP"` failed: got "DOWN"``.
///
/// Only results that are up are judged: a down or cancelled result returns `Ok(())`
/// here and keeps its own reason. `redirected` is what the HTTP probe recorded about
/// redirects, for the status message.
pub fn judge(
    conditions: &[Condition],
    spec: &TargetSpec,
    redirected: Option<&Redirected>,
    result: &CheckResult,
) -> Result<(), (Reason, String)> {
    if result.outcome != Outcome::Up {
        return Ok(());
    }
    let mut seen = Seen {
        url: match (redirected, spec) {
            (Some(redirected), _) => Some(&redirected.url),
            (None, TargetSpec::Http { url }) => Some(url),
            (None, _) => None,
        },
        redirected,
        json: JsonCache::default(),
    };
    let applicable = || conditions.iter().filter(|c| c.applies(spec));
    match spec {
        TargetSpec::Http { .. } if !applicable().any(|c| matches!(c, Condition::Status(_))) => {
            let matcher = &*DEFAULT_STATUS;
            match result.http_status {
                Some(status) if matcher.matches(status) => {}
                Some(status) => return Err((Reason::Status, status_failure(status, matcher, result, &seen))),
                None => return Err((Reason::Status, format!("no HTTP status, expected {matcher}"))),
            }
        }
        TargetSpec::Dns { name, record, .. } if !applicable().any(|c| matches!(c, Condition::DnsRcode(_))) => {
            dns_default(name, *record, result).map_err(|message| (Reason::Dns, message))?;
        }
        _ => {}
    }
    for condition in applicable() {
        condition
            .check_with(result, &mut seen)
            .map_err(|message| (condition.reason(), message))?;
    }
    Ok(())
}

/// `status 503 Service Unavailable from http://…/health, expected 200-299`, or, when the
/// redirect limit stopped the check, the redirect it did not follow.
fn status_failure(status: u16, expected: &StatusMatcher, result: &CheckResult, seen: &Seen<'_>) -> String {
    let status = match http::StatusCode::from_u16(status) {
        Ok(code) => code.to_string(),
        Err(_) => status.to_string(),
    };
    match (seen.redirected.and_then(|r| r.unfollowed.as_ref()), seen.url) {
        (Some(next), _) => format!(
            "status {status} after {} redirects, the limit (max redirects); next was {next}, expected {expected}",
            result.redirects
        ),
        (None, Some(url)) => format!("status {status} from {url}, expected {expected}"),
        (None, None) => format!("status {status}, expected {expected}"),
    }
}

/// The DNS default: NOERROR, with at least one record of the type asked for.
fn dns_default(name: &str, record: RecordKind, result: &CheckResult) -> Result<(), String> {
    let answer = result.dns.as_ref().ok_or("no DNS answer")?;
    let from = || result.ip.map(|ip| format!(" from {ip}")).unwrap_or_default();
    let asked: &'static str = crate::probe::dns::record_type(record).into();
    let rcode = rcode_mnemonic(&answer.rcode).unwrap_or(answer.rcode.as_str());
    if rcode != "NOERROR" {
        return Err(format!("{name} {asked}: {rcode}{}", from()));
    }
    // The probe writes each record as `TYPE DATA`.
    let has_asked = answer.answers.iter().any(|a| a.split(' ').next() == Some(asked));
    if !has_asked {
        return Err(if answer.answers.is_empty() {
            format!("{name} has no {asked} records (NOERROR, empty answer{})", from())
        } else {
            format!(
                "{name} has no {asked} records (NOERROR{}, answers: {})",
                from(),
                show_str(&answer.answers.join(", "))
            )
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{CapturedResponse, CertificateInfo, DnsAnswer};

    fn http(status: u16, headers: &[(&str, &str)], body: &str) -> CheckResult {
        let mut result = CheckResult::new("http://x/", None, ProbeKind::Http, Outcome::Up);
        result.http_status = Some(status);
        result.duration_ms = Duration::from_millis(120);
        result.response = Some(Box::new(CapturedResponse {
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: bytes::Bytes::from(body.to_owned()),
        }));
        result
    }

    /// Judges a result as the engine does, for the target it names.
    fn evaluate(conditions: &[Condition], result: &CheckResult) -> Result<(), (Reason, String)> {
        let spec = crate::target::parse_spec(&result.target).unwrap();
        judge(conditions, &spec, None, result)
    }

    fn message(conditions: &[Condition], result: &CheckResult) -> Option<(Reason, String)> {
        evaluate(conditions, result).err()
    }

    #[test]
    fn status_in_a_list_or_class() {
        let ok = http(204, &[], "");
        let c = |s: &str| Condition::Status(StatusMatcher::parse(s).unwrap());
        assert_eq!(evaluate(&[c("200,204")], &ok), Ok(()));
        assert_eq!(evaluate(&[c("2xx")], &ok), Ok(()));
        assert_eq!(
            message(&[c("200")], &http(503, &[], "")),
            Some((
                Reason::Status,
                "status 503 Service Unavailable from http://x/, expected 200".into()
            ))
        );
        let mut no_status = http(200, &[], "");
        no_status.http_status = None;
        assert_eq!(
            message(&[c("200")], &no_status).unwrap().1,
            "no HTTP status, expected 200"
        );
        assert_eq!(c("2xx").to_string(), "status in 200-299");
    }

    #[test]
    fn http_is_up_on_2xx_unless_a_status_condition_says_otherwise() {
        assert_eq!(evaluate(&[], &http(204, &[], "")), Ok(()));
        assert_eq!(
            message(&[], &http(500, &[], "")),
            Some((
                Reason::Status,
                "status 500 Internal Server Error from http://x/, expected 200-299".into()
            ))
        );
        let status = |s: &str| Condition::Status(StatusMatcher::parse(s).unwrap());
        assert_eq!(evaluate(&[status("5xx")], &http(503, &[], "")), Ok(()));
        // The default comes first; a latency condition does not replace it.
        let slow = [Condition::LatencyUnder(Duration::from_millis(1))];
        assert_eq!(message(&slow, &http(500, &[], "")).unwrap().0, Reason::Status);
        // The message names where the response came from, and the redirect not followed.
        let spec = crate::target::parse_spec("http://x/").unwrap();
        let mut moved = http(302, &[], "");
        moved.redirects = 2;
        let redirected = Redirected {
            url: url::Url::parse("http://x/b").unwrap(),
            unfollowed: Some(url::Url::parse("http://x/c").unwrap()),
        };
        assert_eq!(
            judge(&[], &spec, Some(&redirected), &moved).unwrap_err().1,
            "status 302 Found after 2 redirects, the limit (max redirects); next was http://x/c, expected 200-299"
        );
        let landed = Redirected {
            unfollowed: None,
            ..redirected
        };
        assert_eq!(
            judge(&[status("200")], &spec, Some(&landed), &http(404, &[], ""))
                .unwrap_err()
                .1,
            "status 404 Not Found from http://x/b, expected 200"
        );
    }

    #[test]
    fn latency_under() {
        let result = http(200, &[], "");
        assert_eq!(
            evaluate(&[Condition::LatencyUnder(Duration::from_millis(300))], &result),
            Ok(())
        );
        assert_eq!(
            message(&[Condition::LatencyUnder(Duration::from_millis(100))], &result),
            Some((Reason::Latency, "condition `latency < 100ms` failed: took 120ms".into()))
        );
    }

    #[test]
    fn json_path_equals_and_exists() {
        let result = http(
            200,
            &[],
            r#"{"status": "DOWN", "checks": [{"ok": 1}, {"ok": 1.0}], "n": 3}"#,
        );
        let eq = |p: &str, v: Value| Condition::json_path(p, JsonExpect::Equals(v)).unwrap();
        assert_eq!(
            message(&[eq("$.status", Value::from("UP"))], &result),
            Some((
                Reason::Body,
                "condition `$.status == \"UP\"` failed: got \"DOWN\"".into()
            ))
        );
        assert_eq!(evaluate(&[eq("$.checks[*].ok", Value::from(1))], &result), Ok(()));
        assert_eq!(evaluate(&[eq("$.n", Value::from(3.0))], &result), Ok(()));
        assert!(message(&[eq("$.missing", Value::from(1))], &result)
            .unwrap()
            .1
            .ends_with("nothing matched"));
        let exists = |p: &str, b: bool| Condition::json_path(p, JsonExpect::Exists(b)).unwrap();
        assert_eq!(
            evaluate(&[exists("$.status", true), exists("$.nope", false)], &result),
            Ok(())
        );
        assert_eq!(
            message(&[exists("$.status", false)], &result).unwrap().1,
            "condition `$.status does not exist` failed: got \"DOWN\""
        );
        let not_json = http(200, &[], "<html>");
        assert!(message(&[exists("$.a", true)], &not_json)
            .unwrap()
            .1
            .contains("the body is not JSON"));
        assert!(Condition::json_path("$[", JsonExpect::Exists(true)).is_err());
    }

    #[test]
    fn body_contains_and_regex() {
        let result = http(200, &[], "all ok here");
        assert_eq!(evaluate(&[Condition::BodyContains("ok".into())], &result), Ok(()));
        assert_eq!(
            message(&[Condition::BodyContains("fine".into())], &result),
            Some((
                Reason::Body,
                "condition `body contains \"fine\"` failed: not found in the 11 bytes read".into()
            ))
        );
        assert_eq!(
            evaluate(&[Condition::body_regex("a+ll\\s+ok").unwrap()], &result),
            Ok(())
        );
        assert!(message(&[Condition::body_regex("^ok").unwrap()], &result).is_some());
        assert!(Condition::body_regex("(").is_err());
        let mut uncaptured = result.clone();
        uncaptured.response = None;
        assert!(message(&[Condition::BodyContains("ok".into())], &uncaptured)
            .unwrap()
            .1
            .contains("not kept"));
    }

    #[test]
    fn header_matches_or_equals() {
        let result = http(
            200,
            &[("content-type", "application/json"), ("x-a", "1"), ("x-a", "2")],
            "",
        );
        assert_eq!(
            evaluate(&[Condition::header_matches("Content-Type", "json").unwrap()], &result),
            Ok(())
        );
        assert_eq!(evaluate(&[Condition::header_equals("x-a", "2")], &result), Ok(()));
        assert_eq!(
            message(&[Condition::header_equals("x-a", "3")], &result).unwrap().1,
            "condition `header x-a == \"3\"` failed: got \"1\""
        );
        assert_eq!(
            message(&[Condition::header_matches("x-missing", ".").unwrap()], &result),
            Some((
                Reason::Body,
                "condition `header x-missing matches /./` failed: no x-missing header".into()
            ))
        );
    }

    #[test]
    fn certificate_days() {
        let mut result = CheckResult::new("tls://x", None, ProbeKind::Tls, Outcome::Up);
        result.certificate = Some(CertificateInfo {
            subject: "CN=x".into(),
            not_after: "2030-01-01T00:00:00Z".into(),
            days_left: 10,
        });
        assert_eq!(
            evaluate(&[Condition::CertExpiresInMoreThan { days: 10 }], &result),
            Ok(())
        );
        assert_eq!(
            message(&[Condition::CertExpiresInMoreThan { days: 14 }], &result),
            Some((
                Reason::Certificate,
                "condition `certificate expires in more than 14 days` failed: got 10 days left (expires 2030-01-01T00:00:00Z)"
                    .into()
            ))
        );
        result.certificate = None;
        assert!(message(&[Condition::CertExpiresInMoreThan { days: 1 }], &result).is_some());
    }

    #[test]
    fn dns_is_up_on_noerror_with_an_answer_unless_a_rcode_condition_says_otherwise() {
        let answer = |rcode: hickory_proto::op::ResponseCode, answers: &[&str]| {
            let mut result = CheckResult::new("dns://x.test?type=AAAA", None, ProbeKind::Dns, Outcome::Up);
            result.ip = Some("127.0.0.1".parse().unwrap());
            result.dns = Some(DnsAnswer {
                rcode: rcode.to_str().into(),
                answers: answers.iter().map(|a| a.to_string()).collect(),
                ..DnsAnswer::default()
            });
            result
        };
        use hickory_proto::op::ResponseCode as R;
        assert_eq!(evaluate(&[], &answer(R::NoError, &["AAAA ::1"])), Ok(()));
        assert_eq!(
            message(&[], &answer(R::NXDomain, &[])),
            Some((Reason::Dns, "x.test AAAA: NXDOMAIN from 127.0.0.1".into()))
        );
        assert_eq!(
            message(&[], &answer(R::NoError, &[])).unwrap().1,
            "x.test has no AAAA records (NOERROR, empty answer from 127.0.0.1)"
        );
        assert_eq!(
            message(&[], &answer(R::NoError, &["CNAME y.test."])).unwrap().1,
            "x.test has no AAAA records (NOERROR from 127.0.0.1, answers: \"CNAME y.test.\")"
        );
        // A rcode condition replaces the default: NXDOMAIN can be what is expected.
        let nx = [Condition::dns_rcode("nxdomain").unwrap()];
        assert_eq!(evaluate(&nx, &answer(R::NXDomain, &[])), Ok(()));
        assert_eq!(
            message(&nx, &answer(R::NoError, &["AAAA ::1"])).unwrap().1,
            "condition `dns rcode == NXDOMAIN` failed: got NOERROR"
        );
        let noerror = [Condition::dns_rcode("NOERROR").unwrap()];
        assert_eq!(
            evaluate(&noerror, &answer(R::NoError, &[])),
            Ok(()),
            "an empty answer is fine"
        );
    }

    #[test]
    fn dns_rcode_and_answers() {
        let mut result = CheckResult::new("dns://x", None, ProbeKind::Dns, Outcome::Up);
        result.dns = Some(DnsAnswer {
            rcode: hickory_proto::op::ResponseCode::NoError.to_str().into(),
            answers: vec!["A 127.0.0.1".into()],
            ..DnsAnswer::default()
        });
        assert_eq!(evaluate(&[Condition::dns_rcode("noerror").unwrap()], &result), Ok(()));
        assert_eq!(
            message(&[Condition::dns_rcode("NXDOMAIN").unwrap()], &result),
            Some((
                Reason::Dns,
                "condition `dns rcode == NXDOMAIN` failed: got NOERROR".into()
            ))
        );
        assert!(Condition::dns_rcode("NOPE").unwrap_err().contains("NXDOMAIN"));
        assert_eq!(
            evaluate(&[Condition::DnsAnswerContains("127.0.0.1".into())], &result),
            Ok(())
        );
        assert_eq!(
            message(&[Condition::DnsAnswerContains("10.0.0.1".into())], &result)
                .unwrap()
                .1,
            "condition `dns answer contains \"10.0.0.1\"` failed: got \"A 127.0.0.1\""
        );
    }

    #[test]
    fn down_results_keep_their_reason_and_the_first_failure_wins() {
        let mut down = http(500, &[], "");
        down.outcome = Outcome::Down;
        down.reason = Some(Reason::Timeout);
        let conditions = [
            Condition::Status(StatusMatcher::parse("200").unwrap()),
            Condition::BodyContains("x".into()),
        ];
        assert_eq!(evaluate(&conditions, &down), Ok(()));
        down.outcome = Outcome::Cancelled;
        assert_eq!(evaluate(&conditions, &down), Ok(()));

        assert_eq!(
            message(&conditions, &http(500, &[], "")),
            Some((
                Reason::Status,
                "status 500 Internal Server Error from http://x/, expected 200".into()
            ))
        );
        assert_eq!(
            message(&conditions, &http(200, &[], "")),
            Some((
                Reason::Body,
                "condition `body contains \"x\"` failed: not found in the 0 bytes read".into()
            ))
        );
    }

    #[test]
    fn conditions_that_do_not_apply_to_a_target_are_skipped() {
        let conditions = [
            Condition::json_path("$.status", JsonExpect::Exists(true)).unwrap(),
            Condition::header_equals("x", "y"),
            Condition::CertExpiresInMoreThan { days: 1000 },
            Condition::DnsAnswerContains("10.0.0.1".into()),
        ];
        let tcp = CheckResult::new("tcp://x:1", None, ProbeKind::Tcp, Outcome::Up);
        assert_eq!(evaluate(&conditions, &tcp), Ok(()));
        // A certificate condition does not apply to an http:// URL (it has none) …
        let plain = http(200, &[], "{\"status\": 1}");
        assert_eq!(evaluate(&conditions[..1], &plain), Ok(()));
        assert_eq!(evaluate(&conditions[2..], &plain), Ok(()));
        // … but does to an https:// one.
        let mut secure = plain.clone();
        secure.target = "https://x/".into();
        assert_eq!(message(&conditions[2..], &secure).unwrap().0, Reason::Certificate);
        let latency = [Condition::LatencyUnder(Duration::from_millis(1))];
        assert_eq!(message(&latency, &tcp), None, "0 ms is under 1 ms");
        let mut slow = tcp.clone();
        slow.duration_ms = Duration::from_millis(5);
        assert_eq!(
            message(&latency, &slow).unwrap().0,
            Reason::Latency,
            "latency applies to every probe"
        );
    }

    #[test]
    fn applicability_and_equality() {
        assert!(Condition::LatencyUnder(Duration::ZERO).applies_to(ProbeKind::Icmp));
        assert!(!Condition::BodyContains("x".into()).applies_to(ProbeKind::Tcp));
        assert!(Condition::CertExpiresInMoreThan { days: 1 }.applies_to(ProbeKind::Tls));
        assert!(Condition::BodyContains("x".into()).needs_response());
        assert!(!Condition::LatencyUnder(Duration::ZERO).needs_response());
        assert_eq!(Condition::body_regex("a").unwrap(), Condition::body_regex("a").unwrap());
        assert_ne!(Condition::body_regex("a").unwrap(), Condition::body_regex("b").unwrap());
    }
}

//! Stage 2: from the raw structs to the typed [`MonitorConfig`], checking meaning:
//! defaults, ranges, cross references (channels, checks and groups named elsewhere),
//! uniqueness, and that every value parses (targets, URLs, regexes, JSONPath, times).
//!
//! Validation and building are one pass because building a typed value is how most
//! values are validated (a target, a regex, a JSONPath); two passes would drift apart.
//! The pass is pure (no I/O, no environment) and never stops at the first problem.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};

use super::de::{Entries, Invalid, Spanned};
use super::raw::*;
use super::suggest;
use super::tree::{Kind, Loc, Node};
use super::{CheckConfig, DeliveryConfig, Located, MaintenanceWindow, MonitorConfig, Recurrence, StoreConfig};
use pulsecheck_core::channel::{ChannelKind, ChannelSpec, SmtpSecurity, SmtpSettings, DEFAULT_DELIVERY_TIMEOUT};
use pulsecheck_core::conditions::{Condition, JsonExpect};
use pulsecheck_core::options::{CheckOptions, EngineOptions};
use pulsecheck_core::result::ProbeKind;
use pulsecheck_core::state::Thresholds;
use pulsecheck_core::target::{Target, TargetSpec};

pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
pub(crate) const MIN_INTERVAL: Duration = Duration::from_secs(1);
pub(crate) const DEFAULT_RAW_DAYS: u32 = 7;
pub(crate) const DEFAULT_HOURLY_DAYS: u32 = 90;
pub(crate) const DEFAULT_RAW_UP_HOURS: u32 = 48;
/// 2 GiB; the store crate documents why (`StoreOptions::DEFAULT_MAX_SIZE`).
pub(crate) const DEFAULT_MAX_SIZE: u64 = 2 * 1024 * 1024 * 1024;
/// Smallest non-zero `store.max_size`: below it the budget would prune every raw result.
const MIN_MAX_SIZE: u64 = 16 * 1024 * 1024;
pub(crate) const DEFAULT_WORKERS: usize = 4;
pub(crate) const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);
pub(crate) const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(300);
const MAX_THRESHOLD: u32 = 100;
pub(crate) const MAX_BODY_LIMIT: u64 = 64 * 1024 * 1024;
const MAX_NAME_CHARS: usize = 100;

/// Keys that only mean something for some probes. Set on a check, they must fit its
/// target; inherited from `defaults`, they are ignored where they do not fit.
const HTTP_ONLY: &str = "applies to HTTP checks only";

pub(crate) struct Validator<'a> {
    errors: Vec<Located>,
    base_dir: &'a Path,
    invalid: &'a Invalid,
}

impl Validator<'_> {
    /// Whether `key` of the mapping at `map` was given but invalid (already reported),
    /// so it must not also be called missing.
    fn was_invalid(&self, map: Loc, key: &str) -> bool {
        self.invalid.contains(map, key)
    }

    /// Reports a missing key, unless it was there with an invalid value.
    pub(crate) fn missing(&mut self, map: Loc, key: &str, at: Loc, message: impl Into<String>, hint: Option<String>) {
        if !self.was_invalid(map, key) {
            self.error(at, message, hint);
        }
    }

    pub(crate) fn error_count(&self) -> usize {
        self.errors.len()
    }

    pub(crate) fn error(&mut self, loc: Loc, message: impl Into<String>, hint: Option<String>) {
        self.errors.push(Located {
            loc,
            message: message.into(),
            hint,
        });
    }
}

/// Names defined in the document, taken from the tree so that a definition with an error
/// in its body still counts as defined (one mistake, one message).
pub(crate) struct Names {
    pub(crate) channels: Vec<String>,
    pub(crate) checks: BTreeSet<String>,
    pub(crate) groups: BTreeSet<String>,
}

fn names(tree: &Node) -> Names {
    let text = |node: Option<&Node>| match node.map(|n| &n.kind) {
        Some(Kind::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let channels = match tree.get("channels").map(|n| &n.kind) {
        Some(Kind::Map(entries)) => entries.iter().map(|(k, _)| k.name.clone()).collect(),
        _ => Vec::new(),
    };
    let mut checks = BTreeSet::new();
    let mut groups = BTreeSet::new();
    if let Some(Kind::Seq(items)) = tree.get("checks").map(|n| &n.kind) {
        for item in items {
            checks.extend(text(item.get("name")));
            groups.extend(text(item.get("group")));
        }
    }
    groups.extend(text(tree.get("defaults").and_then(|d| d.get("group"))));
    Names {
        channels,
        checks,
        groups,
    }
}

pub(crate) fn validate(
    raw: &RawConfig,
    tree: &Node,
    invalid: &Invalid,
    source: &Path,
) -> (MonitorConfig, Vec<Located>) {
    let base_dir = source.parent().unwrap_or(Path::new(""));
    let mut v = Validator {
        errors: Vec::new(),
        base_dir,
        invalid,
    };
    let names = names(tree);
    let channels = channels(&mut v, raw.channels.as_ref());
    let checks = checks(&mut v, raw, &names);
    super::quorum::needs_cluster(&mut v, raw);
    let maintenance = maintenance(&mut v, raw.maintenance.as_deref().unwrap_or_default(), &names);
    let cluster = super::cluster::cluster(&mut v, raw.cluster.as_ref(), raw.store.as_ref(), &channels);
    let config = MonitorConfig {
        checks,
        channels,
        store: store(&mut v, raw.store.as_ref()),
        limits: limits(&mut v, raw.limits.as_ref()),
        maintenance,
        delivery: delivery(&mut v, raw.delivery.as_ref()),
        server: super::web::server(&mut v, raw.server.as_ref()),
        modules: super::web::modules(&mut v, raw.modules.as_ref()),
        cluster,
        source: source.to_owned(),
        check_defaults: super::api_check::CheckDefaults(tree.get("defaults").cloned().map(std::sync::Arc::new)),
    };
    (config, v.errors)
}

/// One check defined outside the file (through the API), with the file's `defaults`
/// and channel names: exactly the rules and messages of a check in the file.
pub(crate) fn api_check(
    check: &Spanned<RawCheck>,
    defaults: Option<&RawCheck>,
    names: &Names,
    invalid: &Invalid,
    base_dir: &Path,
) -> (Option<CheckConfig>, Vec<Located>) {
    let mut v = Validator {
        errors: Vec::new(),
        base_dir,
        invalid,
    };
    let built = check_config(&mut v, check, Some(0), defaults, names);
    (built, v.errors)
}

// ---------------------------------------------------------------------------------------
// checks

/// A value from the check or, failing that, from `defaults`; `inherited` says which.
struct Pick<'a, T> {
    value: Option<&'a Spanned<T>>,
    inherited: bool,
}

fn pick<'a, T>(own: &'a Option<Spanned<T>>, defaults: Option<&'a Option<Spanned<T>>>) -> Pick<'a, T> {
    match (own, defaults.and_then(Option::as_ref)) {
        (Some(value), _) => Pick {
            value: Some(value),
            inherited: false,
        },
        (None, value) => Pick { value, inherited: true },
    }
}

fn valid_name(v: &mut Validator<'_>, what: &str, name: &Spanned<String>, hint: &str) -> bool {
    let text = name.value.as_str();
    let problem = if text.trim().is_empty() {
        Some(format!("{what} is empty"))
    } else if text.chars().count() > MAX_NAME_CHARS {
        Some(format!("{what} is longer than {MAX_NAME_CHARS} characters"))
    } else if text.chars().any(char::is_control) || text.trim() != text {
        Some(format!(
            "{what} {text:?} has leading or trailing spaces or control characters"
        ))
    } else {
        None
    };
    match problem {
        Some(message) => {
            v.error(name.loc, message, Some(hint.to_owned()));
            false
        }
        None => true,
    }
}

fn checks(v: &mut Validator<'_>, raw: &RawConfig, names: &Names) -> Vec<CheckConfig> {
    let defaults = raw.defaults.as_ref().map(|d| &d.value);
    if let Some(defaults) = defaults {
        for (key, value) in [("name", &defaults.name), ("target", &defaults.target)] {
            if let Some(value) = value {
                v.error(
                    value.loc,
                    format!("'{key}' cannot be set in defaults"),
                    Some("defaults apply to every check; give each check its own name and target".into()),
                );
            }
        }
    }
    if let Some(defaults) = &raw.defaults {
        check_config(v, defaults, None, None, names);
    }
    let mut seen: HashMap<String, Loc> = HashMap::new();
    let mut out = Vec::new();
    for (index, check) in raw.checks.as_deref().unwrap_or_default().iter().enumerate() {
        if let Some(name) = &check.value.name {
            if let Some(first) = seen.get(&name.value) {
                v.error(
                    name.loc,
                    format!("duplicate check name '{}'", name.value),
                    Some(format!(
                        "first defined at line {}, column {}; names identify checks across reloads and must be unique",
                        first.line, first.column
                    )),
                );
            } else {
                seen.insert(name.value.clone(), name.loc);
            }
        }
        if let Some(built) = check_config(v, check, Some(index), defaults, names) {
            out.push(built);
        }
    }
    out
}

fn check_config(
    v: &mut Validator<'_>,
    check: &Spanned<RawCheck>,
    // `None` validates `defaults` itself, so that its mistakes are found even when no
    // check uses them (its name and target are not required).
    index: Option<usize>,
    defaults: Option<&RawCheck>,
    names: &Names,
) -> Option<CheckConfig> {
    let c = &check.value;
    let d = |f: fn(&RawCheck) -> &Option<Spanned<Dur>>| defaults.map(f);
    let errors_before = v.errors.len();

    let name = match &c.name {
        Some(name) => {
            valid_name(v, "check name", name, "a check name is its identity across reloads").then(|| name.value.clone())
        }
        None => {
            if let Some(index) = index {
                v.missing(
                    check.loc,
                    "name",
                    check.loc,
                    format!("check #{} has no 'name'", index + 1),
                    Some("every check needs a unique name; it identifies the check across reloads".into()),
                );
            }
            None
        }
    };
    let group = pick(&c.group, defaults.map(|d| &d.group)).value.and_then(|group| {
        valid_name(v, "group name", group, "write a short group name such as 'api'").then(|| group.value.clone())
    });

    let target = match &c.target {
        Some(text) => {
            let target = Target::parse(&text.value, None);
            match &target.spec {
                Ok(_) => Some((target, text.loc)),
                Err(invalid) => {
                    v.error(
                        text.loc,
                        format!("invalid target: {}", invalid.message),
                        Some(
                            "targets are written as for `pulsecheck scan`: https://HOST/PATH, tcp://HOST:PORT, tls://HOST, dns://NAME?type=A, icmp://HOST"
                                .into(),
                        ),
                    );
                    None
                }
            }
        }
        None if index.is_none() => None,
        None => {
            v.missing(
                check.loc,
                "target",
                c.name.as_ref().map_or(check.loc, |n| n.loc),
                match &c.name {
                    Some(n) => format!("check '{}' has no 'target'", n.value),
                    None => format!("check #{} has no 'target'", index.unwrap_or_default() + 1),
                },
                Some("add e.g. target: https://example.com/health".into()),
            );
            None
        }
    };
    let spec = target.as_ref().and_then(|(t, _)| t.spec.as_ref().ok());
    let probe = spec.map(TargetSpec::probe_kind);
    let is_http = probe.is_none_or(|p| p == ProbeKind::Http);
    let scheme_desc = target
        .as_ref()
        .map(|(t, _)| format!("this check's target is {}", t.input))
        .unwrap_or_default();

    // Probe-specific knobs: an error when set on the check itself and not applicable.
    let not_applicable =
        |v: &mut Validator<'_>, key: &str, loc: Option<Loc>, inherited: bool, applies: bool, why: &str| {
            if let (Some(loc), false, false) = (loc, inherited, applies) {
                v.error(loc, format!("'{key}' {why}"), Some(scheme_desc.clone()));
            }
            applies
        };

    let interval = pick(&c.interval, d(|r| &r.interval));
    let interval_value = interval.value.map_or(DEFAULT_INTERVAL, |i| i.value.0);
    if let Some(i) = interval.value {
        if i.value.0 < MIN_INTERVAL {
            v.error(
                i.loc,
                format!("interval {} is too short", human(i.value.0)),
                Some("the shortest interval is 1s".into()),
            );
        }
    }
    let timeout = pick(&c.timeout, d(|r| &r.timeout));
    let timeout_value = timeout
        .value
        .map_or(pulsecheck_core::options::DEFAULT_TIMEOUT, |t| t.value.0);
    if timeout_value.is_zero() {
        if let Some(t) = timeout.value {
            v.error(t.loc, "timeout must be more than 0", None);
        }
    } else if timeout_value >= interval_value && interval_value >= MIN_INTERVAL {
        // Point at whichever of the two this check set itself.
        let loc = match (timeout.value, interval.value, timeout.inherited) {
            (Some(t), _, false) => t.loc,
            (_, Some(i), _) if !interval.inherited => i.loc,
            (Some(t), _, _) => t.loc,
            (None, Some(i), _) => i.loc,
            (None, None, _) => check.loc,
        };
        v.error(
            loc,
            format!(
                "timeout ({}) must be shorter than the interval ({})",
                human(timeout_value),
                human(interval_value)
            ),
            Some("a check must finish before the next one is due: lower 'timeout' or raise 'interval'".into()),
        );
    }

    let mut options = CheckOptions {
        timeout: timeout_value,
        ..CheckOptions::default()
    };

    let method = pick(&c.method, defaults.map(|d| &d.method));
    if let Some(m) = method.value {
        if not_applicable(v, "method", Some(m.loc), method.inherited, is_http, HTTP_ONLY) {
            match Method::from_bytes(m.value.trim().to_ascii_uppercase().as_bytes()) {
                Ok(parsed) if !m.value.trim().is_empty() => options.method = parsed,
                _ => v.error(
                    m.loc,
                    format!("'{}' is not an HTTP method", m.value),
                    Some("use GET, HEAD, POST, PUT, DELETE, OPTIONS or PATCH".into()),
                ),
            }
        }
    }
    let headers = pick(&c.headers, defaults.map(|d| &d.headers));
    if let Some(h) = headers.value {
        if not_applicable(v, "headers", Some(h.loc), headers.inherited, is_http, HTTP_ONLY) {
            options.headers = http_headers(v, &h.value);
        }
    }
    let user_agent = pick(&c.user_agent, defaults.map(|d| &d.user_agent));
    if let Some(ua) = user_agent.value {
        if not_applicable(v, "user_agent", Some(ua.loc), user_agent.inherited, is_http, HTTP_ONLY) {
            if HeaderValue::from_str(&ua.value).is_ok() && !ua.value.trim().is_empty() {
                options.user_agent = ua.value.clone();
            } else {
                v.error(
                    ua.loc,
                    "user_agent is empty or has characters a header cannot carry",
                    None,
                );
            }
        }
    }
    let redirects = pick(&c.max_redirects, defaults.map(|d| &d.max_redirects));
    if let Some(r) = redirects.value {
        if not_applicable(v, "max_redirects", Some(r.loc), redirects.inherited, is_http, HTTP_ONLY) {
            if r.value > 50 {
                v.error(r.loc, format!("max_redirects {} is more than 50", r.value), None);
            } else {
                options.max_redirects = r.value;
            }
        }
    }
    let max_body = pick(&c.max_body, defaults.map(|d| &d.max_body));
    if let Some(b) = max_body.value {
        if not_applicable(v, "max_body", Some(b.loc), max_body.inherited, is_http, HTTP_ONLY) {
            if b.value.0 == 0 || b.value.0 > MAX_BODY_LIMIT {
                v.error(
                    b.loc,
                    format!("max_body {} bytes is out of range", b.value.0),
                    Some("use 1 byte to 64MiB".into()),
                );
            } else {
                options.max_body_bytes = b.value.0 as usize;
            }
        }
    }
    let insecure = pick(&c.insecure, defaults.map(|d| &d.insecure));
    if let Some(i) = insecure.value {
        let applies = probe.is_none_or(|p| matches!(p, ProbeKind::Http | ProbeKind::Tls));
        if not_applicable(
            v,
            "insecure",
            Some(i.loc),
            insecure.inherited,
            applies,
            "applies to HTTP and TLS checks only",
        ) {
            options.insecure = i.value;
        }
    }

    // Conditions.
    let raw_conditions = pick(&c.conditions, defaults.map(|d| &d.conditions));
    let mut conditions = Vec::new();
    if let Some(list) = raw_conditions.value {
        for raw in &list.value {
            let Some(condition) = condition(v, raw) else { continue };
            if spec.is_none_or(|spec| condition.applies(spec)) {
                conditions.push(condition);
            } else if !raw_conditions.inherited {
                v.error(
                    raw.loc,
                    format!("condition `{condition}` cannot apply to this check"),
                    Some(format!(
                        "{scheme_desc}; {}",
                        match condition.reason() {
                            pulsecheck_core::Reason::Certificate =>
                                "certificate conditions need an https:// or tls:// target",
                            pulsecheck_core::Reason::Dns => "DNS conditions need a dns:// target",
                            _ => "status, body, JSON and header conditions need an http:// or https:// target",
                        }
                    )),
                );
            }
        }
    }
    options.conditions = conditions.into();

    let thresholds = Thresholds {
        failure: threshold(
            v,
            pick(&c.failure_threshold, defaults.map(|d| &d.failure_threshold)).value,
        )
        .unwrap_or(Thresholds::default().failure),
        success: threshold(
            v,
            pick(&c.success_threshold, defaults.map(|d| &d.success_threshold)).value,
        )
        .unwrap_or(Thresholds::default().success),
    };

    let mut channels: Vec<String> = Vec::new();
    if let Some(list) = pick(&c.channels, defaults.map(|d| &d.channels)).value {
        for channel in &list.value {
            if !names.channels.contains(&channel.value) {
                v.error(
                    channel.loc,
                    format!("channel '{}' is not defined", channel.value),
                    Some(defined_hint(&channel.value, &names.channels, "channels", "channels:")),
                );
            } else if channels.contains(&channel.value) {
                v.error(
                    channel.loc,
                    format!("channel '{}' is listed twice", channel.value),
                    None,
                );
            } else {
                channels.push(channel.value.clone());
            }
        }
    }

    let reminder = match pick(&c.reminder, d(|r| &r.reminder)).value {
        Some(r) if r.value.0.is_zero() => None,
        Some(r) if r.value.0 < interval_value => {
            v.error(
                r.loc,
                format!(
                    "reminder ({}) is shorter than the interval ({})",
                    human(r.value.0),
                    human(interval_value)
                ),
                Some(
                    "a reminder repeats a down alert; it cannot be more frequent than the checks (0s turns it off)"
                        .into(),
                ),
            );
            None
        }
        Some(r) => Some(r.value.0),
        None => None,
    };

    let quorum = super::quorum::quorum(v, pick(&c.quorum, defaults.map(|d| &d.quorum)).value);

    if v.errors.len() > errors_before {
        return None;
    }
    Some(CheckConfig {
        name: name?,
        group,
        target: target?.0,
        interval: interval_value,
        options,
        thresholds,
        channels,
        reminder,
        quorum,
        origin: pulsecheck_core::storage::Origin::File,
    })
}

fn threshold(v: &mut Validator<'_>, value: Option<&Spanned<u32>>) -> Option<u32> {
    let value = value?;
    if (1..=MAX_THRESHOLD).contains(&value.value) {
        Some(value.value)
    } else {
        v.error(
            value.loc,
            format!("threshold {} is out of range", value.value),
            Some(format!("use 1 to {MAX_THRESHOLD} results in a row")),
        );
        None
    }
}

fn defined_hint(name: &str, defined: &[String], what: &str, section: &str) -> String {
    if defined.is_empty() {
        return format!("no {what} are defined; define them under '{section}'");
    }
    let list = defined.join(", ");
    match suggest::closest(name, defined.iter().map(String::as_str)) {
        Some(best) => format!("did you mean '{best}'? defined {what}: {list}"),
        None => format!("defined {what}: {list}"),
    }
}

pub(crate) fn http_headers(
    v: &mut Validator<'_>,
    entries: &Entries<Spanned<String>>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for (name, value) in &entries.0 {
        let parsed_name = HeaderName::from_bytes(name.value.as_bytes());
        let parsed_value = HeaderValue::from_str(&value.value);
        match (parsed_name, parsed_value) {
            (Ok(n), Ok(val)) => out.push((n, val)),
            (Err(_), _) => v.error(name.loc, format!("'{}' is not a valid header name", name.value), None),
            (_, Err(_)) => v.error(
                value.loc,
                format!(
                    "the value of header '{}' has characters a header cannot carry",
                    name.value
                ),
                Some("header values are one line of visible ASCII".into()),
            ),
        }
    }
    out
}

fn string_headers(v: &mut Validator<'_>, entries: &Entries<Spanned<String>>) -> Vec<(String, String)> {
    http_headers(v, entries)
        .into_iter()
        .map(|(n, val)| (n.as_str().to_owned(), val.to_str().unwrap_or_default().to_owned()))
        .collect()
}

pub(crate) fn condition(v: &mut Validator<'_>, raw: &Spanned<RawCondition>) -> Option<Condition> {
    let c = &raw.value;
    let present: Vec<(&str, Loc)> = [
        ("status", c.status.as_ref().map(|x| x.loc)),
        ("latency_under", c.latency_under.as_ref().map(|x| x.loc)),
        ("json_path", c.json_path.as_ref().map(|x| x.loc)),
        ("body_contains", c.body_contains.as_ref().map(|x| x.loc)),
        ("body_regex", c.body_regex.as_ref().map(|x| x.loc)),
        ("header", c.header.as_ref().map(|x| x.loc)),
        (
            "cert_expires_in_more_than",
            c.cert_expires_in_more_than.as_ref().map(|x| x.loc),
        ),
        ("dns_rcode", c.dns_rcode.as_ref().map(|x| x.loc)),
        ("dns_answer_contains", c.dns_answer_contains.as_ref().map(|x| x.loc)),
    ]
    .into_iter()
    .filter_map(|(k, loc)| loc.map(|l| (k, l)))
    .collect();
    debug_assert_eq!(CONDITION_KINDS.len(), 9);
    let kinds = CONDITION_KINDS.join(", ");
    match present.as_slice() {
        [] if CONDITION_KINDS.iter().any(|k| v.was_invalid(raw.loc, k)) => return None,
        [] => {
            v.error(
                raw.loc,
                "a condition needs one of its kind keys",
                Some(format!("use one of: {kinds}")),
            );
            return None;
        }
        [_] => {}
        [_, (second, loc), ..] => {
            v.error(
                *loc,
                format!("one condition per list item: '{second}' is a second condition here"),
                Some(format!("start a new list item ('- {second}: …') for it")),
            );
            return None;
        }
    }
    let kind = present[0].0;
    // equals/exists belong to json_path (equals also in header, which is its own map).
    if kind != "json_path" {
        for (key, loc) in [
            ("equals", c.equals.as_ref().map(|x| x.loc)),
            ("exists", c.exists.as_ref().map(|x| x.loc)),
        ] {
            if let Some(loc) = loc {
                v.error(
                    loc,
                    format!("'{key}' goes with 'json_path', not with '{kind}'"),
                    Some("write e.g. - json_path: \"$.status\"\n    equals: UP".into()),
                );
                return None;
            }
        }
    }
    let fail = |v: &mut Validator<'_>, loc: Loc, message: String| {
        v.error(loc, message, None);
        None
    };
    if let Some(s) = &c.status {
        return Some(Condition::Status(s.value.0.clone()));
    }
    if let Some(l) = &c.latency_under {
        if l.value.0.is_zero() {
            return fail(v, l.loc, "latency_under must be more than 0".into());
        }
        return Some(Condition::LatencyUnder(l.value.0));
    }
    if let Some(path) = &c.json_path {
        let expect = match (&c.equals, &c.exists) {
            (Some(value), None) => JsonExpect::Equals(value.value.clone()),
            (None, Some(exists)) => JsonExpect::Exists(exists.value),
            (Some(_), Some(exists)) => {
                return fail(v, exists.loc, "give 'equals' or 'exists', not both".into());
            }
            (None, None) if v.was_invalid(raw.loc, "equals") || v.was_invalid(raw.loc, "exists") => return None,
            (None, None) => {
                v.error(
                    path.loc,
                    "json_path needs 'equals' or 'exists'",
                    Some("add e.g. equals: \"UP\" or exists: true next to json_path".into()),
                );
                return None;
            }
        };
        return match Condition::json_path(&path.value, expect) {
            Ok(condition) => Some(condition),
            Err(message) => fail(v, path.loc, message),
        };
    }
    if let Some(needle) = &c.body_contains {
        return Some(Condition::BodyContains(needle.value.clone()));
    }
    if let Some(pattern) = &c.body_regex {
        return match Condition::body_regex(&pattern.value) {
            Ok(condition) => Some(condition),
            Err(message) => fail(v, pattern.loc, message),
        };
    }
    if let Some(header) = &c.header {
        let h = &header.value;
        let Some(name) = &h.name else {
            v.missing(
                header.loc,
                "name",
                header.loc,
                "a header condition needs 'name'",
                Some("write header: { name: content-type, matches: json }".into()),
            );
            return None;
        };
        if HeaderName::from_bytes(name.value.as_bytes()).is_err() {
            return fail(v, name.loc, format!("'{}' is not a valid header name", name.value));
        }
        return match (&h.matches, &h.equals) {
            (Some(pattern), None) => match Condition::header_matches(&name.value, &pattern.value) {
                Ok(condition) => Some(condition),
                Err(message) => fail(v, pattern.loc, message),
            },
            (None, Some(value)) => Some(Condition::header_equals(&name.value, &value.value)),
            (Some(_), Some(value)) => fail(v, value.loc, "give 'matches' or 'equals', not both".into()),
            (None, None) if v.was_invalid(header.loc, "matches") || v.was_invalid(header.loc, "equals") => None,
            (None, None) => {
                v.error(
                    header.loc,
                    "a header condition needs 'matches' (a regex) or 'equals'",
                    None,
                );
                None
            }
        };
    }
    if let Some(days) = &c.cert_expires_in_more_than {
        return Some(Condition::CertExpiresInMoreThan { days: days.value.0 });
    }
    if let Some(rcode) = &c.dns_rcode {
        return match Condition::dns_rcode(&rcode.value) {
            Ok(condition) => Some(condition),
            Err(message) => fail(v, rcode.loc, message),
        };
    }
    if let Some(needle) = &c.dns_answer_contains {
        if needle.value.is_empty() {
            return fail(v, needle.loc, "dns_answer_contains is empty".into());
        }
        return Some(Condition::DnsAnswerContains(needle.value.clone()));
    }
    None
}

// ---------------------------------------------------------------------------------------
// channels

fn channels(v: &mut Validator<'_>, raw: Option<&Entries<Spanned<RawChannel>>>) -> Vec<ChannelSpec> {
    let mut out = Vec::new();
    for (name, channel) in raw.map(|e| e.0.as_slice()).unwrap_or_default() {
        let valid = !name.value.is_empty()
            && name.value.len() <= MAX_NAME_CHARS
            && name
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            v.error(
                name.loc,
                format!("channel name {:?} is not allowed", name.value),
                Some("use letters, digits, '_', '-' and '.' (it is typed in `pulsecheck notify-test NAME`)".into()),
            );
        }
        if let Some(kind) = channel_kind(v, name, channel) {
            let timeout = match &channel.value.timeout {
                Some(t) if t.value.0 < Duration::from_millis(100) || t.value.0 > Duration::from_secs(600) => {
                    v.error(
                        t.loc,
                        format!("timeout {} is out of range", human(t.value.0)),
                        Some("use 100ms to 10m".into()),
                    );
                    DEFAULT_DELIVERY_TIMEOUT
                }
                Some(t) => t.value.0,
                None => DEFAULT_DELIVERY_TIMEOUT,
            };
            if valid {
                out.push(ChannelSpec {
                    name: name.value.clone(),
                    kind,
                    timeout,
                });
            }
        }
    }
    out
}

fn channel_kind(v: &mut Validator<'_>, name: &Spanned<String>, channel: &Spanned<RawChannel>) -> Option<ChannelKind> {
    let c = &channel.value;
    // Problems with the channel as a whole are reported at its name.
    let at = Site {
        map: channel.loc,
        name: name.loc,
    };
    let name = name.value.as_str();
    let Some(kind) = &c.kind else {
        v.missing(
            at.map,
            "type",
            at.name,
            format!("channel '{name}' has no 'type'"),
            Some("add type: webhook, slack or email".into()),
        );
        return None;
    };
    let kind = kind.value;
    // Keys set, and which types take them.
    let keys: [(&str, Option<Loc>, &[ChannelType]); 9] = [
        ("url", c.url.as_ref().map(|x| x.loc), &[ChannelType::Webhook]),
        ("headers", c.headers.as_ref().map(|x| x.loc), &[ChannelType::Webhook]),
        (
            "template",
            c.template.as_ref().map(|x| x.loc),
            &[ChannelType::Webhook, ChannelType::Slack],
        ),
        (
            "webhook_url",
            c.webhook_url.as_ref().map(|x| x.loc),
            &[ChannelType::Slack],
        ),
        ("smtp", c.smtp.as_ref().map(|x| x.loc), &[ChannelType::Email]),
        ("from", c.from.as_ref().map(|x| x.loc), &[ChannelType::Email]),
        ("to", c.to.as_ref().map(|x| x.loc), &[ChannelType::Email]),
        ("subject", c.subject.as_ref().map(|x| x.loc), &[ChannelType::Email]),
        ("body", c.body.as_ref().map(|x| x.loc), &[ChannelType::Email]),
    ];
    let accepted: Vec<&str> = keys
        .iter()
        .filter(|(_, _, types)| types.contains(&kind))
        .map(|(k, _, _)| *k)
        .chain(["type", "timeout"])
        .collect();
    let mut ok = true;
    for (key, loc, types) in &keys {
        if let (Some(loc), false) = (loc, types.contains(&kind)) {
            let near = match (key, kind) {
                (&"webhook_url", ChannelType::Webhook) => "did you mean 'url'? ".to_owned(),
                (&"url", ChannelType::Slack) => "did you mean 'webhook_url'? ".to_owned(),
                _ => String::new(),
            };
            v.error(
                *loc,
                format!("'{key}' does not apply to a {} channel", kind.as_str()),
                Some(format!(
                    "{near}a {} channel takes: {}",
                    kind.as_str(),
                    accepted.join(", ")
                )),
            );
            ok = false;
        }
    }
    let template = |t: &Option<Spanned<String>>| t.as_ref().map(|t| t.value.clone());
    let built = match kind {
        ChannelType::Webhook => {
            let url = required_url(v, name, "url", &c.url, at);
            let headers = c
                .headers
                .as_ref()
                .map(|h| string_headers(v, &h.value))
                .unwrap_or_default();
            url.map(|url| ChannelKind::Webhook {
                url,
                headers,
                template: template(&c.template),
            })
        }
        ChannelType::Slack => {
            required_url(v, name, "webhook_url", &c.webhook_url, at).map(|webhook_url| ChannelKind::Slack {
                webhook_url,
                template: template(&c.template),
            })
        }
        ChannelType::Email => email(v, name, c, at),
    };
    built.filter(|_| ok)
}

/// A mapping with a name: where it is, and where its name is (for whole-item errors).
#[derive(Clone, Copy)]
struct Site {
    map: Loc,
    name: Loc,
}

fn required_url(
    v: &mut Validator<'_>,
    name: &str,
    key: &str,
    value: &Option<Spanned<String>>,
    at: Site,
) -> Option<String> {
    let Some(value) = value else {
        v.missing(at.map, key, at.name, format!("channel '{name}' has no '{key}'"), None);
        return None;
    };
    match url::Url::parse(&value.value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty()) => {
            Some(value.value.clone())
        }
        Ok(url) => {
            v.error(
                value.loc,
                format!(
                    "'{}' is not an http:// or https:// URL (scheme '{}')",
                    value.value,
                    url.scheme()
                ),
                None,
            );
            None
        }
        Err(e) => {
            v.error(value.loc, format!("'{}' is not a valid URL: {e}", value.value), None);
            None
        }
    }
}

/// Minimal address check: `local@domain` or `Name <local@domain>`, no spaces in the address.
fn valid_email(text: &str) -> bool {
    let address = match (text.find('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close && text[close + 1..].trim().is_empty() => &text[open + 1..close],
        (None, None) => text,
        _ => return false,
    };
    let Some((local, domain)) = address.trim().rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !address.trim().chars().any(|c| c.is_whitespace() || c.is_control())
}

fn email(v: &mut Validator<'_>, name: &str, c: &RawChannel, at: Site) -> Option<ChannelKind> {
    let errors_before = v.errors.len();
    let smtp = match &c.smtp {
        Some(smtp) => smtp_settings(v, smtp),
        None => {
            v.missing(
                at.map,
                "smtp",
                at.name,
                format!("channel '{name}' has no 'smtp'"),
                Some("add smtp: smtp+starttls://HOST:587 or smtp: {host, port, security, username, password}".into()),
            );
            None
        }
    };
    let from = match &c.from {
        Some(from) if valid_email(&from.value) => Some(from.value.clone()),
        Some(from) => {
            v.error(from.loc, format!("'{}' is not an email address", from.value), None);
            None
        }
        None => {
            v.missing(at.map, "from", at.name, format!("channel '{name}' has no 'from'"), None);
            None
        }
    };
    let mut to = Vec::new();
    match &c.to {
        Some(list) if list.value.is_empty() => {
            v.error(list.loc, "'to' is empty", Some("list at least one address".into()))
        }
        Some(list) => {
            for address in &list.value {
                if valid_email(&address.value) {
                    to.push(address.value.clone());
                } else {
                    v.error(
                        address.loc,
                        format!("'{}' is not an email address", address.value),
                        None,
                    );
                }
            }
        }
        None => v.missing(at.map, "to", at.name, format!("channel '{name}' has no 'to'"), None),
    }
    if v.errors.len() > errors_before {
        return None;
    }
    Some(ChannelKind::Email {
        smtp: smtp?,
        from: from?,
        to,
        subject: c.subject.as_ref().map(|s| s.value.clone()),
        body: c.body.as_ref().map(|s| s.value.clone()),
    })
}

fn default_port(security: SmtpSecurity) -> u16 {
    match security {
        SmtpSecurity::None => 25,
        SmtpSecurity::StartTls => 587,
        SmtpSecurity::Tls => 465,
    }
}

fn smtp_settings(v: &mut Validator<'_>, smtp: &Spanned<SmtpField>) -> Option<SmtpSettings> {
    match &smtp.value {
        SmtpField::Url(text) => {
            let url = match url::Url::parse(text) {
                Ok(url) => url,
                Err(e) => {
                    v.error(smtp.loc, format!("'{text}' is not a valid URL: {e}"), None);
                    return None;
                }
            };
            let security = match url.scheme() {
                "smtp" => SmtpSecurity::None,
                "smtp+starttls" => SmtpSecurity::StartTls,
                "smtps" => SmtpSecurity::Tls,
                other => {
                    v.error(
                        smtp.loc,
                        format!("unknown SMTP scheme '{other}'"),
                        Some("use smtp:// (plain), smtp+starttls:// (STARTTLS) or smtps:// (TLS)".into()),
                    );
                    return None;
                }
            };
            let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
                v.error(smtp.loc, format!("'{text}' has no host"), None);
                return None;
            };
            let decode = |s: &str| percent_decode(s);
            Some(SmtpSettings {
                host: host.trim_matches(['[', ']']).to_owned(),
                port: url.port().unwrap_or(default_port(security)),
                security,
                username: Some(url.username()).filter(|u| !u.is_empty()).map(decode),
                password: url.password().map(decode),
            })
        }
        SmtpField::Parts(parts) => {
            let security = match parts.security.as_ref().map(|s| s.value) {
                Some(Security::None) => SmtpSecurity::None,
                Some(Security::Tls) => SmtpSecurity::Tls,
                Some(Security::Starttls) | None => SmtpSecurity::StartTls,
            };
            let Some(host) = parts.host.as_ref().filter(|h| !h.value.trim().is_empty()) else {
                v.missing(smtp.loc, "host", smtp.loc, "smtp needs 'host'", None);
                return None;
            };
            if parts.username.is_some() != parts.password.is_some() {
                let loc = parts
                    .username
                    .as_ref()
                    .or(parts.password.as_ref())
                    .map_or(smtp.loc, |x| x.loc);
                v.error(loc, "give both 'username' and 'password', or neither", None);
                return None;
            }
            let port = parts.port.as_ref().map_or(default_port(security), |p| p.value);
            if port == 0 {
                v.error(
                    parts.port.as_ref().map_or(smtp.loc, |p| p.loc),
                    "port 0 is not a port",
                    None,
                );
                return None;
            }
            Some(SmtpSettings {
                host: host.value.trim().to_owned(),
                port,
                security,
                username: parts.username.as_ref().map(|u| u.value.clone()),
                password: parts.password.as_ref().map(|p| p.value.clone()),
            })
        }
    }
}

/// Decodes `%XX` escapes (as in a URL's user and password); anything else, a stray
/// `%` included, stays as written.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

// ---------------------------------------------------------------------------------------
// store, limits, delivery

fn store(v: &mut Validator<'_>, raw: Option<&Spanned<RawStore>>) -> StoreConfig {
    let mut out = StoreConfig::default();
    let Some(raw) = raw else { return out };
    out.url = super::cluster::store_url(v, &raw.value);
    if let Some(path) = &raw.value.path {
        if path.value.trim().is_empty() {
            v.error(
                path.loc,
                "store path is empty",
                Some("remove 'path' to use the default location".into()),
            );
        } else {
            // Relative paths are relative to the config file, not to the working directory.
            out.path = Some(v.base_dir.join(&path.value));
        }
    }
    if let Some(retention) = &raw.value.retention {
        let days = |v: &mut Validator<'_>, value: &Option<Spanned<u32>>, default: u32| match value {
            Some(d) if d.value == 0 || d.value > 36_500 => {
                v.error(
                    d.loc,
                    format!("{} days is out of range", d.value),
                    Some("use 1 to 36500 days".into()),
                );
                default
            }
            Some(d) => d.value,
            None => default,
        };
        out.raw_days = days(v, &retention.value.raw_days, DEFAULT_RAW_DAYS);
        out.hourly_days = days(v, &retention.value.hourly_days, DEFAULT_HOURLY_DAYS.max(out.raw_days));
        let raw_hours = out.raw_days.saturating_mul(24);
        out.raw_up_hours = match &retention.value.raw_up_hours {
            Some(h) if h.value == 0 || h.value > raw_hours => {
                v.error(
                    h.loc,
                    format!("raw_up_hours {} is out of range", h.value),
                    Some(format!("use 1 to {raw_hours} hours (raw_days × 24)")),
                );
                DEFAULT_RAW_UP_HOURS.min(raw_hours)
            }
            Some(h) => h.value,
            None => DEFAULT_RAW_UP_HOURS.min(raw_hours),
        };
        if out.hourly_days < out.raw_days {
            let loc = retention.value.hourly_days.as_ref().map_or(retention.loc, |d| d.loc);
            v.error(
                loc,
                format!(
                    "hourly_days ({}) is shorter than raw_days ({})",
                    out.hourly_days, out.raw_days
                ),
                Some("hourly aggregates summarize raw results and are kept at least as long".into()),
            );
        }
    }
    if let Some(size) = &raw.value.max_size {
        if size.value.0 != 0 && size.value.0 < MIN_MAX_SIZE {
            v.error(
                size.loc,
                format!("max_size {} bytes is too small", size.value.0),
                Some("use at least 16MiB, or 0 for no size budget".into()),
            );
        } else {
            out.max_size = size.value.0;
        }
    }
    out
}

fn limits(v: &mut Validator<'_>, raw: Option<&Spanned<RawLimits>>) -> EngineOptions {
    let mut out = EngineOptions::default();
    let Some(raw) = raw else { return out };
    for (key, value, slot) in [
        ("concurrency", &raw.value.concurrency, &mut out.concurrency),
        ("per_host", &raw.value.per_host, &mut out.per_host),
    ] {
        match value {
            Some(n) if n.value == 0 || n.value > 1_000_000 => v.error(
                n.loc,
                format!("{key} {} is out of range", n.value),
                Some("use 1 to 1000000".into()),
            ),
            Some(n) => *slot = n.value as usize,
            None => {}
        }
    }
    out
}

fn delivery(v: &mut Validator<'_>, raw: Option<&Spanned<RawDelivery>>) -> DeliveryConfig {
    let mut out = DeliveryConfig::default();
    let Some(raw) = raw else { return out };
    let r = &raw.value;
    match &r.workers {
        Some(w) if w.value == 0 || w.value > 256 => v.error(
            w.loc,
            format!("workers {} is out of range", w.value),
            Some("use 1 to 256".into()),
        ),
        Some(w) => out.workers = w.value as usize,
        None => {}
    }
    match &r.backoff_base {
        Some(b) if b.value.0.is_zero() => v.error(b.loc, "backoff_base must be more than 0", None),
        Some(b) => out.backoff_base = b.value.0,
        None => {}
    }
    if let Some(m) = &r.backoff_max {
        out.backoff_max = m.value.0;
    }
    if out.backoff_max < out.backoff_base {
        let loc = r
            .backoff_max
            .as_ref()
            .or(r.backoff_base.as_ref())
            .map_or(raw.loc, |x| x.loc);
        v.error(
            loc,
            format!(
                "backoff_max ({}) is shorter than backoff_base ({})",
                human(out.backoff_max),
                human(out.backoff_base)
            ),
            None,
        );
    }
    out
}

// ---------------------------------------------------------------------------------------
// maintenance

fn timestamp(v: &mut Validator<'_>, key: &str, value: &Spanned<String>) -> Option<jiff::Timestamp> {
    match value.value.trim().parse::<jiff::Timestamp>() {
        Ok(t) => Some(t),
        Err(e) => {
            v.error(
                value.loc,
                format!("{key} '{}' is not a timestamp: {e}", value.value),
                Some("write RFC 3339 with a UTC offset, e.g. 2025-06-01T22:00:00Z or 2025-06-01T22:00:00+02:00".into()),
            );
            None
        }
    }
}

fn maintenance(v: &mut Validator<'_>, raw: &[Spanned<RawWindow>], names: &Names) -> Vec<MaintenanceWindow> {
    let mut out = Vec::new();
    let mut seen: HashMap<&str, Loc> = HashMap::new();
    for (index, window) in raw.iter().enumerate() {
        let w = &window.value;
        let errors_before = v.errors.len();
        let name = match &w.name {
            Some(name) => {
                if let Some(first) = seen.get(name.value.as_str()) {
                    v.error(
                        name.loc,
                        format!("duplicate maintenance window name '{}'", name.value),
                        Some(format!("first defined at line {}, column {}", first.line, first.column)),
                    );
                } else {
                    seen.insert(&name.value, name.loc);
                }
                valid_name(v, "window name", name, "name the window, e.g. 'nightly-backup'");
                Some(name.value.clone())
            }
            None => {
                v.missing(
                    window.loc,
                    "name",
                    window.loc,
                    format!("maintenance window #{} has no 'name'", index + 1),
                    Some("name it, e.g. name: nightly-backup".into()),
                );
                None
            }
        };
        let start = match &w.start {
            Some(s) => timestamp(v, "start", s),
            None => {
                v.missing(
                    window.loc,
                    "start",
                    window.loc,
                    "a maintenance window needs 'start'",
                    None,
                );
                None
            }
        };
        let end = match (&w.end, &w.duration, start) {
            (Some(end), None, _) => timestamp(v, "end", end),
            (None, Some(d), Some(start)) => {
                let nanos = i64::try_from(d.value.0.as_nanos()).unwrap_or(i64::MAX);
                start
                    .checked_add(jiff::SignedDuration::from_nanos(nanos))
                    .map_err(|_| v.error(d.loc, "the window ends too far in the future", None))
                    .ok()
            }
            (None, Some(_), None) => None,
            (Some(_), Some(d), _) => {
                v.error(d.loc, "give 'end' or 'duration', not both", None);
                None
            }
            (None, None, _) if v.was_invalid(window.loc, "end") || v.was_invalid(window.loc, "duration") => None,
            (None, None, _) => {
                v.error(window.loc, "a maintenance window needs 'end' or 'duration'", None);
                None
            }
        };
        if let (Some(start), Some(end)) = (start, end) {
            if end <= start {
                let loc = w
                    .end
                    .as_ref()
                    .map(|e| e.loc)
                    .or(w.duration.as_ref().map(|d| d.loc))
                    .unwrap_or(window.loc);
                v.error(loc, "the window ends before it starts", None);
            } else if let Some(every) = &w.every {
                let period = recurrence(every.value).period_nanos();
                if end.as_nanosecond() - start.as_nanosecond() >= period {
                    v.error(
                        every.loc,
                        "the window is as long as its period, so it never ends",
                        Some("shorten the window, or drop 'every' for a one-off window".into()),
                    );
                }
            }
        }
        let list = |v: &mut Validator<'_>,
                    what: &str,
                    list: &Option<Spanned<Vec<Spanned<String>>>>,
                    defined: &BTreeSet<String>| {
            list.as_ref().map(|items| {
                let defined_list: Vec<String> = defined.iter().cloned().collect();
                for item in &items.value {
                    if !defined.contains(&item.value) {
                        let section = if what == "checks" {
                            "checks:"
                        } else {
                            "a check's 'group'"
                        };
                        v.error(
                            item.loc,
                            format!(
                                "{} '{}' is not defined",
                                if what == "checks" { "check" } else { "group" },
                                item.value
                            ),
                            Some(defined_hint(&item.value, &defined_list, what, section)),
                        );
                    }
                }
                items.value.iter().map(|s| s.value.clone()).collect::<Vec<_>>()
            })
        };
        let checks = list(v, "checks", &w.checks, &names.checks);
        let groups = list(v, "groups", &w.groups, &names.groups);
        if v.errors.len() > errors_before {
            continue;
        }
        if let (Some(name), Some(start), Some(end)) = (name, start, end) {
            out.push(MaintenanceWindow {
                name,
                start,
                end,
                every: w.every.as_ref().map(|e| recurrence(e.value)),
                checks,
                groups,
            });
        }
    }
    out
}

fn recurrence(every: Every) -> Recurrence {
    match every {
        Every::Daily => Recurrence::Daily,
        Every::Weekly => Recurrence::Weekly,
    }
}

fn human(duration: Duration) -> String {
    pulsecheck_core::probe::human(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.c", "ops@localhost", "Ops Team <ops@example.com>"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in ["", "a", "@b", "a@", "a b@c", "a@.c", "x <a@b", "<a@b> x"] {
            assert!(!valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("p%40ss%2"), "p@ss%2");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("a%zz"), "a%zz");
    }
}

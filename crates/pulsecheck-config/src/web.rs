//! `server:` (the HTTP listener: address, tokens, public reads, the `/probe` allow-list)
//! and `modules:` (what `/probe?module=NAME` runs, blackbox_exporter style).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method};
use pulsecheck_core::address_policy::AddressPolicy;
use pulsecheck_core::conditions::Condition;
use pulsecheck_core::options::CheckOptions;
use pulsecheck_core::target::RecordKind;
use pulsecheck_core::Reason;

use super::de::{Entries, Spanned};
use super::raw::{self, RawModule, RawServer};
use super::validate::{condition, http_headers, Validator, MAX_BODY_LIMIT};

/// Where the listener binds when `server:` gives no `listen`: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9417";
/// Tokens shorter than this are refused: they are the only lock on mutations.
const MIN_TOKEN_CHARS: usize = 16;

/// The HTTP listener (`server:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Bearer tokens with their scopes; a mutation always needs a `write` one, a read a
    /// `read` one when `public_reads` is off.
    pub tokens: Vec<ApiToken>,
    /// Whether reads (`/metrics`, `/probe`, status) need no token (default true).
    pub public_reads: bool,
    /// Where `/probe` (and the API's checks) may go: host names, `*.domain`, addresses
    /// and networks, each optionally with a port. Empty: nowhere.
    pub allow: Arc<AddressPolicy>,
}

/// One of `server.tokens`: the secret and what it may do.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub secret: String,
    pub read: bool,
    pub write: bool,
}

impl ApiToken {
    /// A token that may read and write (the plain-string form).
    pub fn full(secret: impl Into<String>) -> ApiToken {
        ApiToken {
            secret: secret.into(),
            read: true,
            write: true,
        }
    }
}

/// Never prints the secret (configs end up in logs and panics).
impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("secret", &"<redacted>")
            .field("read", &self.read)
            .field("write", &self.write)
            .finish()
    }
}

/// What a module probes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prober {
    Http,
    Tcp,
    Tls,
    Dns,
    Icmp,
}

impl Prober {
    pub fn as_str(self) -> &'static str {
        match self {
            Prober::Http => "http",
            Prober::Tcp => "tcp",
            Prober::Tls => "tls",
            Prober::Dns => "dns",
            Prober::Icmp => "icmp",
        }
    }
}

/// One `/probe` module.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeModule {
    pub name: String,
    pub prober: Prober,
    /// The check's options and conditions; `timeout` is the module's (the scrape timeout
    /// can only lower it).
    pub options: CheckOptions,
    /// For `dns`: the name asked for; the target is then the server. Without it the
    /// target is a whole `dns://NAME?type=…&server=…` target.
    pub query_name: Option<String>,
    pub query_type: RecordKind,
    /// Whether the timeout was set in the file (else the scrape timeout decides alone).
    pub timeout_set: bool,
}

impl ProbeModule {
    fn builtin(name: &str, prober: Prober) -> ProbeModule {
        ProbeModule {
            name: name.to_owned(),
            prober,
            options: CheckOptions::default(),
            query_name: None,
            query_type: RecordKind::A,
            timeout_set: false,
        }
    }

    /// `http_2xx`, `tcp_connect`, `icmp` and `dns`, as blackbox_exporter ships them.
    pub fn builtins() -> Vec<ProbeModule> {
        vec![
            ProbeModule::builtin("http_2xx", Prober::Http),
            ProbeModule::builtin("tcp_connect", Prober::Tcp),
            ProbeModule::builtin("icmp", Prober::Icmp),
            ProbeModule::builtin("dns", Prober::Dns),
        ]
    }
}

pub(crate) fn server(v: &mut Validator<'_>, raw: Option<&Spanned<RawServer>>) -> Option<ServerConfig> {
    let raw = raw?;
    let r = &raw.value;
    let listen = match &r.listen {
        Some(text) => match text.value.trim().parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => {
                v.error(
                    text.loc,
                    format!("listen {:?} is not an address and port", text.value),
                    Some(format!(
                        "write e.g. {DEFAULT_LISTEN}, or 0.0.0.0:9417 to listen on every interface"
                    )),
                );
                DEFAULT_LISTEN.parse().expect("valid default")
            }
        },
        None => DEFAULT_LISTEN.parse().expect("valid default"),
    };
    let mut tokens = Vec::new();
    for token in r.tokens.as_ref().map(|t| t.value.as_slice()).unwrap_or_default() {
        let (secret, read, write) = match &token.value {
            raw::TokenField::Plain(text) => (
                Spanned {
                    value: text.clone(),
                    loc: token.loc,
                },
                true,
                true,
            ),
            raw::TokenField::Scoped(scoped) => {
                let Some(secret) = &scoped.token else {
                    v.missing(
                        token.loc,
                        "token",
                        token.loc,
                        "this token has no 'token'",
                        Some("write token: ${PULSECHECK_TOKEN} and scopes: [read, write]".into()),
                    );
                    continue;
                };
                let scopes: Vec<raw::Scope> = scoped
                    .scopes
                    .as_ref()
                    .map(|s| s.value.iter().map(|s| s.value).collect())
                    .unwrap_or_default();
                // A list whose every scope was invalid is already reported.
                if scoped.scopes.is_none() {
                    v.missing(
                        token.loc,
                        "scopes",
                        token.loc,
                        "this token has no scopes, so it could do nothing",
                        Some("add scopes: [read], [write] or [read, write]".into()),
                    );
                    continue;
                }
                if scopes.is_empty() {
                    continue;
                }
                (
                    secret.clone(),
                    scopes.contains(&raw::Scope::Read),
                    scopes.contains(&raw::Scope::Write),
                )
            }
        };
        let text = secret.value.as_str();
        if text.chars().count() < MIN_TOKEN_CHARS || HeaderValue::from_str(text).is_err() || text.trim() != text {
            v.error(
                secret.loc,
                format!("a token must be at least {MIN_TOKEN_CHARS} printable characters without spaces at the ends"),
                Some(
                    "generate one with `openssl rand -hex 24` and keep it out of the file: token: ${PULSECHECK_TOKEN}"
                        .into(),
                ),
            );
        } else {
            tokens.push(ApiToken {
                secret: text.to_owned(),
                read,
                write,
            });
        }
    }
    let public_reads = r.public_reads.as_ref().is_none_or(|p| p.value);
    if !public_reads && !tokens.iter().any(|t| t.read) {
        let loc = r.public_reads.as_ref().map_or(raw.loc, |p| p.loc);
        v.error(
            loc,
            "public_reads is off but no token has the read scope, so nothing could be read",
            Some("add tokens: [...] (a plain token may read and write) or set public_reads: true".into()),
        );
    }
    let mut entries = Vec::new();
    for entry in r.allow.as_ref().map(|a| a.value.as_slice()).unwrap_or_default() {
        match AddressPolicy::parse(&[entry.value.as_str()]) {
            Ok(_) => entries.push(entry.value.clone()),
            Err(message) => v.error(entry.loc, message, None),
        }
    }
    let allow = AddressPolicy::parse(&entries).unwrap_or_default();
    Some(ServerConfig {
        listen,
        tokens,
        public_reads,
        allow: Arc::new(allow),
    })
}

pub(crate) fn modules(v: &mut Validator<'_>, raw: Option<&Entries<Spanned<RawModule>>>) -> Vec<ProbeModule> {
    let mut out = ProbeModule::builtins();
    for (name, module) in raw.map(|e| e.0.as_slice()).unwrap_or_default() {
        let valid = !name.value.is_empty()
            && name.value.len() <= 100
            && name
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            v.error(
                name.loc,
                format!("module name {:?} is not allowed", name.value),
                Some("use letters, digits, '_', '-' and '.' (it is written in the URL: /probe?module=NAME)".into()),
            );
            continue;
        }
        if let Some(built) = module_config(v, &name.value, module) {
            out.retain(|m| m.name != built.name);
            out.push(built);
        }
    }
    out
}

fn module_config(v: &mut Validator<'_>, name: &str, module: &Spanned<RawModule>) -> Option<ProbeModule> {
    let m = &module.value;
    let errors_before = v.error_count();
    let Some(prober) = &m.prober else {
        v.missing(
            module.loc,
            "prober",
            module.loc,
            format!("module '{name}' has no 'prober'"),
            Some("add prober: http, tcp, tls, dns or icmp".into()),
        );
        return None;
    };
    let prober = match prober.value {
        raw::Prober::Http => Prober::Http,
        raw::Prober::Tcp => Prober::Tcp,
        raw::Prober::Tls => Prober::Tls,
        raw::Prober::Dns => Prober::Dns,
        raw::Prober::Icmp => Prober::Icmp,
    };
    let is_http = prober == Prober::Http;
    let only = |v: &mut Validator<'_>, key: &str, loc: super::tree::Loc, applies: bool, which: &str| {
        if !applies {
            v.error(
                loc,
                format!("'{key}' applies to {which} modules only"),
                Some(format!("module '{name}' has prober: {}", prober.as_str())),
            );
        }
        applies
    };
    let mut options = CheckOptions::default();
    if let Some(t) = &m.timeout {
        if t.value.0.is_zero() || t.value.0 > Duration::from_secs(300) {
            v.error(
                t.loc,
                "timeout is out of range",
                Some("use more than 0 and at most 5m".into()),
            );
        } else {
            options.timeout = t.value.0;
        }
    }
    if let Some(method) = &m.method {
        if only(v, "method", method.loc, is_http, "http") {
            match Method::from_bytes(method.value.trim().to_ascii_uppercase().as_bytes()) {
                Ok(parsed) if !method.value.trim().is_empty() => options.method = parsed,
                _ => v.error(
                    method.loc,
                    format!("'{}' is not an HTTP method", method.value),
                    Some("use GET, HEAD, POST, PUT, DELETE, OPTIONS or PATCH".into()),
                ),
            }
        }
    }
    if let Some(h) = &m.headers {
        if only(v, "headers", h.loc, is_http, "http") {
            options.headers = http_headers(v, &h.value);
        }
    }
    if let Some(ua) = &m.user_agent {
        if only(v, "user_agent", ua.loc, is_http, "http") {
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
    if let Some(r) = &m.max_redirects {
        if only(v, "max_redirects", r.loc, is_http, "http") {
            if r.value > 50 {
                v.error(r.loc, format!("max_redirects {} is more than 50", r.value), None);
            } else {
                options.max_redirects = r.value;
            }
        }
    }
    if let Some(b) = &m.max_body {
        if only(v, "max_body", b.loc, is_http, "http") {
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
    if let Some(i) = &m.insecure {
        if only(
            v,
            "insecure",
            i.loc,
            matches!(prober, Prober::Http | Prober::Tls),
            "http and tls",
        ) {
            options.insecure = i.value;
        }
    }
    let mut conditions = Vec::new();
    for raw in m.conditions.as_ref().map(|c| c.value.as_slice()).unwrap_or_default() {
        let Some(condition) = condition(v, raw) else { continue };
        if condition_fits(&condition, prober) {
            conditions.push(condition);
        } else {
            v.error(
                raw.loc,
                format!("condition `{condition}` cannot apply to a {} module", prober.as_str()),
                None,
            );
        }
    }
    options.conditions = conditions.into();
    let query_name = m
        .query_name
        .as_ref()
        .and_then(|q| only(v, "query_name", q.loc, prober == Prober::Dns, "dns").then(|| q.value.trim().to_owned()));
    let mut query_type = RecordKind::A;
    if let Some(q) = &m.query_type {
        if only(v, "query_type", q.loc, prober == Prober::Dns, "dns") {
            match RecordKind::parse(q.value.trim()) {
                Some(kind) => query_type = kind,
                None => v.error(
                    q.loc,
                    format!("'{}' is not a record type", q.value),
                    Some(format!("use {}", RecordKind::NAMES)),
                ),
            }
        }
    }
    if v.error_count() > errors_before {
        return None;
    }
    Some(ProbeModule {
        name: name.to_owned(),
        prober,
        options,
        query_name,
        query_type,
        timeout_set: m.timeout.is_some(),
    })
}

fn condition_fits(condition: &Condition, prober: Prober) -> bool {
    match condition.reason() {
        Reason::Certificate => matches!(prober, Prober::Http | Prober::Tls),
        Reason::Dns => prober == Prober::Dns,
        Reason::Latency => true,
        _ => prober == Prober::Http,
    }
}

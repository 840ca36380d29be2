//! Targets: what to check, parsed from one line of input.
//!
//! Forms (see README, "Targets"):
//! - `http://…`, `https://…` — an HTTP(S) request;
//! - `tcp://host:port` — a TCP connect;
//! - `tls://host[:port]` — a TLS handshake and certificate check (port 443 by default);
//! - `dns://name?type=AAAA&server=IP:PORT` — a DNS query (type A and the system nameserver by default);
//! - `icmp://host` — an ICMP echo;
//! - a bare `host` or `host/path` means `https://host/path`, and a bare `host:port` means
//!   `tcp://host:port`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use url::Url;

/// A host to connect to: an address literal needs no DNS.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl Host {
    fn from_url(url: &Url) -> Option<Host> {
        match url.host()? {
            url::Host::Ipv4(ip) => Some(Host::Ip(IpAddr::V4(ip))),
            url::Host::Ipv6(ip) => Some(Host::Ip(IpAddr::V6(ip))),
            url::Host::Domain("") => None,
            url::Host::Domain(name) => Some(match name.parse::<IpAddr>() {
                Ok(ip) => Host::Ip(ip),
                Err(_) => Host::Name(name.to_ascii_lowercase()),
            }),
        }
    }

    /// The name to send in SNI and the `Host` header.
    pub fn server_name(&self) -> String {
        match self {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(name) => name.clone(),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// DNS record types a `dns://` target can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    A,
    Aaaa,
    Cname,
    Mx,
    Ns,
    Txt,
    Soa,
    Srv,
    Ptr,
    Caa,
}

impl RecordKind {
    pub const NAMES: &'static str = "A, AAAA, CNAME, MX, NS, TXT, SOA, SRV, PTR or CAA";

    pub fn parse(text: &str) -> Option<RecordKind> {
        Some(match text.to_ascii_uppercase().as_str() {
            "A" => RecordKind::A,
            "AAAA" => RecordKind::Aaaa,
            "CNAME" => RecordKind::Cname,
            "MX" => RecordKind::Mx,
            "NS" => RecordKind::Ns,
            "TXT" => RecordKind::Txt,
            "SOA" => RecordKind::Soa,
            "SRV" => RecordKind::Srv,
            "PTR" => RecordKind::Ptr,
            "CAA" => RecordKind::Caa,
            _ => return None,
        })
    }
}

/// What a target asks pulsecheck to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    Http {
        url: Url,
    },
    Tcp {
        host: Host,
        port: u16,
    },
    Tls {
        host: Host,
        port: u16,
    },
    Dns {
        name: String,
        record: RecordKind,
        server: Option<SocketAddr>,
    },
    Icmp {
        host: Host,
    },
}

impl TargetSpec {
    /// The key the per-host concurrency limit is counted under.
    pub fn host_key(&self) -> String {
        match self {
            TargetSpec::Http { url } => url.host_str().unwrap_or_default().to_ascii_lowercase(),
            TargetSpec::Tcp { host, .. } | TargetSpec::Tls { host, .. } | TargetSpec::Icmp { host } => host.to_string(),
            TargetSpec::Dns { server, .. } => match server {
                Some(addr) => addr.ip().to_string(),
                None => "system-resolver".to_owned(),
            },
        }
    }

    pub fn probe_kind(&self) -> crate::ProbeKind {
        match self {
            TargetSpec::Http { .. } => crate::ProbeKind::Http,
            TargetSpec::Tcp { .. } => crate::ProbeKind::Tcp,
            TargetSpec::Tls { .. } => crate::ProbeKind::Tls,
            TargetSpec::Dns { .. } => crate::ProbeKind::Dns,
            TargetSpec::Icmp { .. } => crate::ProbeKind::Icmp,
        }
    }
}

/// Why a line is not a target. The message says what to write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidTarget {
    pub message: String,
}

fn invalid(message: impl Into<String>) -> InvalidTarget {
    InvalidTarget {
        message: message.into(),
    }
}

/// One target as given, where it came from, and what it parsed to.
#[derive(Clone, Debug)]
pub struct Target {
    /// The text exactly as given (trimmed).
    pub input: String,
    /// 1-based line number when read from a file or stdin.
    pub line: Option<usize>,
    pub spec: Result<TargetSpec, InvalidTarget>,
}

impl Target {
    pub fn parse(input: &str, line: Option<usize>) -> Target {
        let input = input.trim();
        Target {
            input: input.to_owned(),
            line,
            spec: parse_spec(input),
        }
    }
}

/// Parses one target. Pure: no DNS, no I/O.
pub fn parse_spec(input: &str) -> Result<TargetSpec, InvalidTarget> {
    if input.is_empty() {
        return Err(invalid("empty target"));
    }
    if input.chars().any(char::is_whitespace) {
        return Err(invalid(format!(
            "'{input}' contains whitespace; put one target per line (percent-encode spaces in URLs as %20)"
        )));
    }
    let Some((scheme, _)) = input.split_once("://") else {
        return parse_bare(input);
    };
    let scheme = scheme.to_ascii_lowercase();
    let url = Url::parse(input).map_err(|e| invalid(format!("'{input}' is not a valid URL: {e}")))?;
    let host = || Host::from_url(&url).ok_or_else(|| invalid(format!("'{input}' has no host; write {scheme}://HOST…")));
    match scheme.as_str() {
        "http" | "https" => {
            host()?;
            Ok(TargetSpec::Http { url })
        }
        "tcp" => {
            let host = host()?;
            let port = url
                .port()
                .ok_or_else(|| invalid(format!("'{input}' has no port; write tcp://{host}:PORT")))?;
            Ok(TargetSpec::Tcp { host, port })
        }
        "tls" => Ok(TargetSpec::Tls {
            host: host()?,
            port: url.port().unwrap_or(443),
        }),
        "icmp" => Ok(TargetSpec::Icmp { host: host()? }),
        "dns" => parse_dns(input, &url),
        other => Err(invalid(format!(
            "unknown scheme '{other}' in '{input}'; use http, https, tcp, tls, dns or icmp"
        ))),
    }
}

fn parse_dns(input: &str, url: &Url) -> Result<TargetSpec, InvalidTarget> {
    let name = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid(format!("'{input}' has no name to query; write dns://NAME?type=A")))?
        .to_ascii_lowercase();
    let mut record = RecordKind::A;
    let mut server = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "type" => {
                record = RecordKind::parse(&value).ok_or_else(|| {
                    invalid(format!(
                        "unknown DNS record type '{value}' in '{input}'; use {}",
                        RecordKind::NAMES
                    ))
                })?
            }
            "server" => server = Some(parse_server(&value).map_err(|m| invalid(format!("{m} in '{input}'")))?),
            other => {
                return Err(invalid(format!(
                    "unknown parameter '{other}' in '{input}'; dns:// takes type= and server="
                )))
            }
        }
    }
    Ok(TargetSpec::Dns { name, record, server })
}

/// A nameserver address: `IP` (port 53) or `IP:PORT` / `[IPv6]:PORT`.
pub fn parse_server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(format!(
        "nameserver '{text}' is not an IP address or IP:PORT (names are not allowed, to avoid resolving the resolver)"
    ))
}

fn parse_bare(input: &str) -> Result<TargetSpec, InvalidTarget> {
    // `host:port` (no path) is a TCP check; anything else is treated as an HTTPS URL.
    let authority = input.split('/').next().unwrap_or_default();
    if authority.len() == input.len() {
        if let Some((host, port)) = authority.rsplit_once(':') {
            let bracketed_v6 = host.starts_with('[') && host.ends_with(']');
            if !host.contains(':') || bracketed_v6 {
                let port: u16 = port.parse().map_err(|_| {
                    invalid(format!(
                        "'{input}': '{port}' is not a port number (0-65535); write tcp://HOST:PORT or https://HOST:PORT/"
                    ))
                })?;
                return parse_spec(&format!("tcp://{host}:{port}"));
            }
        }
    }
    if input.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6()) {
        return parse_spec(&format!("https://[{input}]/"));
    }
    parse_spec(&format!("https://{input}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert!(matches!(
            parse_spec("http://127.0.0.1:8080/ok"),
            Ok(TargetSpec::Http { .. })
        ));
        assert!(matches!(parse_spec("HTTPS://Example.COM"), Ok(TargetSpec::Http { .. })));
        assert_eq!(
            parse_spec("tcp://127.0.0.1:22"),
            Ok(TargetSpec::Tcp {
                host: Host::Ip("127.0.0.1".parse().unwrap()),
                port: 22
            })
        );
        assert_eq!(
            parse_spec("tls://localhost"),
            Ok(TargetSpec::Tls {
                host: Host::Name("localhost".into()),
                port: 443
            })
        );
        assert_eq!(
            parse_spec("dns://example.com?type=AAAA&server=127.0.0.1:5353"),
            Ok(TargetSpec::Dns {
                name: "example.com".into(),
                record: RecordKind::Aaaa,
                server: Some("127.0.0.1:5353".parse().unwrap())
            })
        );
        assert_eq!(
            parse_spec("icmp://[::1]"),
            Ok(TargetSpec::Icmp {
                host: Host::Ip("::1".parse().unwrap())
            })
        );
    }

    #[test]
    fn bare_forms() {
        assert_eq!(
            parse_spec("example.com:25"),
            Ok(TargetSpec::Tcp {
                host: Host::Name("example.com".into()),
                port: 25
            })
        );
        assert_eq!(
            parse_spec("[::1]:25"),
            Ok(TargetSpec::Tcp {
                host: Host::Ip("::1".parse().unwrap()),
                port: 25
            })
        );
        match parse_spec("example.com/health") {
            Ok(TargetSpec::Http { url }) => assert_eq!(url.as_str(), "https://example.com/health"),
            other => panic!("{other:?}"),
        }
        match parse_spec("::1") {
            Ok(TargetSpec::Http { url }) => assert_eq!(url.as_str(), "https://[::1]/"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_with_a_hint() {
        for (input, hint) in [
            ("ftp://x", "unknown scheme"),
            ("tcp://host", "has no port"),
            ("http://", "not a valid URL"),
            ("dns://x?type=BOGUS", "unknown DNS record type"),
            ("dns://x?server=name", "not an IP address"),
            ("dns://x?foo=1", "unknown parameter"),
            ("example.com:http", "not a port number"),
            ("a b", "whitespace"),
            ("", "empty"),
        ] {
            let err = parse_spec(input).unwrap_err();
            assert!(err.message.contains(hint), "{input}: {err}");
        }
    }

    #[test]
    fn host_keys_group_by_host() {
        let a = parse_spec("http://127.0.0.1:1/a").unwrap();
        let b = parse_spec("http://127.0.0.1:2/b").unwrap();
        assert_eq!(a.host_key(), b.host_key());
    }
}

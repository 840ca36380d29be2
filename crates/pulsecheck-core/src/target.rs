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
    /// The host of `url`; `Ok(None)` when it has none.
    fn from_url(url: &Url) -> Result<Option<Host>, String> {
        Ok(match url.host() {
            None | Some(url::Host::Domain("")) => None,
            Some(url::Host::Ipv4(ip)) => Some(Host::Ip(IpAddr::V4(ip))),
            Some(url::Host::Ipv6(ip)) => Some(Host::Ip(IpAddr::V6(ip))),
            // Only `http` and `https` hosts come out of the URL parser in their DNS form;
            // the others are left percent-encoded (`b%C3%BCcher.test`).
            Some(url::Host::Domain(name)) => Some(match dns_host(name)? {
                url::Host::Ipv4(ip) => Host::Ip(IpAddr::V4(ip)),
                url::Host::Ipv6(ip) => Host::Ip(IpAddr::V6(ip)),
                url::Host::Domain(name) => Host::Name(name),
            }),
        })
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

/// A host as DNS knows it: percent-decoded, an international name in its ASCII
/// (`xn--`) form, lower case, and within DNS's limits on name and label length.
fn dns_host(name: &str) -> Result<url::Host, String> {
    let shown = crate::text::truncate(name, 80);
    let host = url::Host::parse(name).map_err(|e| format!("'{shown}' is not a valid host name ({e})"))?;
    if let url::Host::Domain(ascii) = &host {
        check_dns_lengths(ascii).map_err(|problem| format!("'{shown}' is not a valid host name: {problem}"))?;
    }
    Ok(host)
}

/// DNS allows at most 63 bytes in a label and 253 in a name (RFC 1035), counted in the
/// ASCII form. A resolver would refuse the name later, without saying which line it was.
fn check_dns_lengths(name: &str) -> Result<(), String> {
    const MAX_LABEL: usize = 63;
    const MAX_NAME: usize = 253;
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > MAX_NAME {
        return Err(format!("{} bytes long, DNS allows at most {MAX_NAME}", name.len()));
    }
    match name.split('.').find(|label| label.len() > MAX_LABEL) {
        Some(label) => Err(format!(
            "the label '{}' is {} bytes long, DNS allows at most {MAX_LABEL}",
            crate::text::truncate(label, 20),
            label.len()
        )),
        None => Ok(()),
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

/// The schemes a target may have.
const SCHEMES: [&str; 6] = ["http", "https", "tcp", "tls", "dns", "icmp"];

/// The longest part of a target quoted in a message: a 1 MB line is not repeated whole.
const QUOTED_CHARS: usize = 100;

/// Parses one target. Pure: no DNS, no I/O.
pub fn parse_spec(input: &str) -> Result<TargetSpec, InvalidTarget> {
    if input.is_empty() {
        return Err(invalid("empty target"));
    }
    let shown = crate::text::truncate(input, QUOTED_CHARS);
    if input.chars().any(char::is_whitespace) {
        return Err(invalid(format!(
            "'{shown}' contains whitespace; put one target per line (percent-encode spaces in URLs as %20)"
        )));
    }
    let Some((scheme, _)) = input.split_once("://") else {
        return parse_bare(input);
    };
    let scheme = scheme.to_ascii_lowercase();
    let url = Url::parse(input).map_err(|e| invalid(format!("'{shown}' is not a valid URL: {e}")))?;
    let host = || match Host::from_url(&url) {
        Ok(Some(host)) => Ok(host),
        Ok(None) => Err(invalid(format!("'{shown}' has no host; write {scheme}://HOST…"))),
        Err(message) => Err(invalid(format!("{message} in '{shown}'"))),
    };
    // Port 0 is no port: connecting to it fails in a way that blames the target.
    if url.port() == Some(0) {
        return Err(invalid(format!("'{shown}' has port 0; write a port from 1 to 65535")));
    }
    match scheme.as_str() {
        "http" | "https" => {
            host()?;
            check_request_target(&url, &shown)?;
            Ok(TargetSpec::Http { url })
        }
        "tcp" => {
            let host = host()?;
            let port = url
                .port()
                .ok_or_else(|| invalid(format!("'{shown}' has no port; write tcp://{host}:PORT")))?;
            Ok(TargetSpec::Tcp { host, port })
        }
        "tls" => Ok(TargetSpec::Tls {
            host: host()?,
            port: url.port().unwrap_or(443),
        }),
        "icmp" => Ok(TargetSpec::Icmp { host: host()? }),
        "dns" => parse_dns(&shown, &url),
        other => Err(invalid(format!(
            "unknown scheme '{other}' in '{shown}'; use {}",
            SCHEMES.join(", ")
        ))),
    }
}

/// An HTTP request can carry a URL of at most 65,534 bytes (the `http` crate's limit);
/// a longer one would fail only when the check runs.
fn check_request_target(url: &Url, shown: &str) -> Result<(), InvalidTarget> {
    http::Uri::try_from(url.as_str()).map(drop).map_err(|e| {
        invalid(format!(
            "'{shown}' cannot be sent in an HTTP request ({e}, {} bytes); shorten the URL to at most 65,534 bytes",
            url.as_str().len()
        ))
    })
}

fn parse_dns(input: &str, url: &Url) -> Result<TargetSpec, InvalidTarget> {
    let name = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid(format!("'{input}' has no name to query; write dns://NAME?type=A")))?;
    let name = match dns_host(name).map_err(|message| invalid(format!("{message} in '{input}'")))? {
        url::Host::Domain(name) => name,
        // A query for an address literal asks for that text as a name, as `dig` does.
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    };
    hickory_proto::rr::Name::from_ascii(&name)
        .map_err(|e| invalid(format!("'{name}' is not a DNS name ({e}) in '{input}'")))?;
    let mut record = RecordKind::A;
    let mut server = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "type" => {
                record = RecordKind::parse(&value).ok_or_else(|| {
                    invalid(format!(
                        "unknown DNS record type '{}' in '{input}'; use {}",
                        crate::text::truncate(&value, 20),
                        RecordKind::NAMES
                    ))
                })?
            }
            "server" => server = Some(parse_server(&value).map_err(|m| invalid(format!("{m} in '{input}'")))?),
            other => {
                return Err(invalid(format!(
                    "unknown parameter '{}' in '{input}'; dns:// takes type= and server=",
                    crate::text::truncate(other, 20)
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
    // `http:/host` or `https:host` is a mistyped URL, not a host called `http`; but
    // `https:8443` is still a host and a port.
    if let Some((scheme, rest)) = input.split_once(':') {
        let is_port = !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
        if SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) && !is_port {
            return Err(invalid(format!(
                "'{}' is missing '//' after '{scheme}:'; write {scheme}://{}",
                crate::text::truncate(input, QUOTED_CHARS),
                crate::text::truncate(rest.trim_start_matches('/'), QUOTED_CHARS)
            )));
        }
    }
    // `host:port` (no path) is a TCP check; anything else is treated as an HTTPS URL.
    let authority = input.split('/').next().unwrap_or_default();
    if authority.len() == input.len() {
        if let Some((host, port)) = authority.rsplit_once(':') {
            let bracketed_v6 = host.starts_with('[') && host.ends_with(']');
            if !host.contains(':') || bracketed_v6 {
                let port: u16 = port.parse().map_err(|_| {
                    invalid(format!(
                        "'{}': '{}' is not a port number (1-65535); write tcp://HOST:PORT or https://HOST:PORT/",
                        crate::text::truncate(input, QUOTED_CHARS),
                        crate::text::truncate(port, 20)
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

    /// Every form converts an international name to its `xn--` form, as `http://` does.
    #[test]
    fn international_names_are_converted_in_every_form() {
        let ascii = Host::Name("xn--bcher-kva.test".into());
        assert_eq!(
            parse_spec("tcp://bücher.test:80"),
            Ok(TargetSpec::Tcp {
                host: ascii.clone(),
                port: 80
            })
        );
        assert_eq!(
            parse_spec("BÜCHER.test:80"),
            Ok(TargetSpec::Tcp {
                host: ascii.clone(),
                port: 80
            })
        );
        assert_eq!(
            parse_spec("tls://bücher.test"),
            Ok(TargetSpec::Tls {
                host: ascii.clone(),
                port: 443
            })
        );
        assert_eq!(parse_spec("icmp://bücher.test"), Ok(TargetSpec::Icmp { host: ascii }));
        assert_eq!(
            parse_spec("dns://bücher.test?type=AAAA"),
            Ok(TargetSpec::Dns {
                name: "xn--bcher-kva.test".into(),
                record: RecordKind::Aaaa,
                server: None
            })
        );
        match parse_spec("http://bücher.test/") {
            Ok(TargetSpec::Http { url }) => assert_eq!(url.host_str(), Some("xn--bcher-kva.test")),
            other => panic!("{other:?}"),
        }
        // Service names keep their underscores; IP literals stay addresses.
        assert!(
            matches!(parse_spec("dns://_sip._tcp.example.com?type=SRV"), Ok(TargetSpec::Dns { name, .. }) if name == "_sip._tcp.example.com")
        );
        assert_eq!(
            parse_spec("tcp://127.0.0.1:22"),
            Ok(TargetSpec::Tcp {
                host: Host::Ip("127.0.0.1".parse().unwrap()),
                port: 22
            })
        );
    }

    #[test]
    fn names_beyond_what_dns_allows_are_invalid() {
        let label = "a".repeat(63);
        assert!(
            parse_spec(&format!("tcp://{label}.test:1")).is_ok(),
            "63 bytes is a label"
        );
        let long_label = "a".repeat(64);
        let long_name = ["abcdefghi"; 30].join(".");
        for input in [
            format!("tcp://{long_label}.test:1"),
            format!("https://{long_label}.test/"),
            format!("{long_label}.test"),
            format!("dns://{long_label}.test"),
            format!("tls://{long_name}"),
            format!("dns://{long_name}"),
        ] {
            let err = parse_spec(&input).unwrap_err();
            assert!(err.message.contains("DNS allows at most"), "{input}: {err}");
            assert!(err.message.len() < 400, "a long name is quoted shortened: {err}");
        }
    }

    #[test]
    fn port_zero_one_slash_and_oversized_urls_are_invalid() {
        for (input, hint) in [
            ("tcp://127.0.0.1:0", "port 0"),
            ("http://127.0.0.1:0/", "port 0"),
            ("tls://example.com:0", "port 0"),
            ("example.com:0", "port 0"),
            ("http:/127.0.0.1", "write http://127.0.0.1"),
            ("https:example.com/x", "write https://example.com/x"),
            ("TCP:/db:5432", "write TCP://db:5432"),
            ("example.com:", "not a port number"),
        ] {
            let err = parse_spec(input).unwrap_err();
            assert!(err.message.contains(hint), "{input}: {err}");
        }
        assert!(matches!(
            parse_spec("https:8443"),
            Ok(TargetSpec::Tcp { port: 8443, .. })
        ));
        let huge = format!("http://127.0.0.1/{}", "p".repeat(1024 * 1024));
        let err = parse_spec(&huge).unwrap_err();
        assert!(err.message.contains("65,534 bytes"), "{}", &err.message[..200]);
        assert!(err.message.len() < 400, "the URL is quoted shortened");
    }

    #[test]
    fn host_keys_group_by_host() {
        let a = parse_spec("http://127.0.0.1:1/a").unwrap();
        let b = parse_spec("http://127.0.0.1:2/b").unwrap();
        assert_eq!(a.host_key(), b.host_key());
    }
}

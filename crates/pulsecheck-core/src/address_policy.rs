//! The SSRF guard: which hosts and addresses a check that came from a request (`/probe`,
//! and later the API's checks) may reach. It is enforced by the probes themselves on
//! the host of every hop (the target, then each redirect) and on the address actually
//! connected to, after DNS resolution, so neither a redirect nor a DNS answer (one that
//! changes between checks included) can lead a check somewhere the list does not allow.
//!
//! Rules: a host name must match a `name` or `*.domain` entry, and an IP literal must be
//! inside a CIDR (or single-address) entry. Every address connected to must then be
//! either inside a CIDR entry or not a sensitive address: loopback, link-local (cloud
//! metadata at 169.254.169.254 included), `fd00:ec2::254`, or unspecified. An entry may
//! carry a port (`127.0.0.1:8080`, `api.example.com:443`), which it then only allows.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::target::Host;

/// One allow-list entry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    /// A network (a single address is a /32 or /128).
    Net(IpNet, Option<u16>),
    /// A host name, exactly (lower case, no trailing dot).
    Name(String, Option<u16>),
    /// `*.example.com`: any name below `example.com`, not `example.com` itself.
    Below(String, Option<u16>),
}

/// An allow-list of hosts, wildcard domains and networks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    entries: Vec<Entry>,
}

/// Why a host or an address was refused, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied(pub String);

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn port_allows(entry_port: Option<u16>, port: Option<u16>) -> bool {
    match (entry_port, port) {
        (None, _) => true,
        (Some(want), Some(got)) => want == got,
        // A portless probe (ICMP) is not allowed by an entry for one port.
        (Some(_), None) => false,
    }
}

impl AddressPolicy {
    /// Parses the entries; the error names the entry and says what to write.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AddressPolicy, String> {
        let entries = entries
            .iter()
            .map(|e| parse_entry(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AddressPolicy { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a check may go to `host` (a target's or a redirect's), before any lookup.
    pub fn check_host(&self, host: &Host, port: Option<u16>) -> Result<(), Denied> {
        let allowed = match host {
            Host::Ip(ip) => self.net_allows(*ip, port),
            Host::Name(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                self.entries.iter().any(|entry| match entry {
                    Entry::Name(listed, p) => *listed == name && port_allows(*p, port),
                    Entry::Below(domain, p) => {
                        name.len() > domain.len() + 1
                            && name.ends_with(domain.as_str())
                            && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
                            && port_allows(*p, port)
                    }
                    Entry::Net(..) => false,
                })
            }
        };
        if allowed {
            Ok(())
        } else {
            let shown = match port {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            };
            Err(Denied(format!("{shown} is not in the allow-list")))
        }
    }

    /// Whether a check may connect to (or send to) `ip`: the address actually used,
    /// after DNS. Sensitive addresses pass only when a network entry lists them.
    pub fn check_address(&self, ip: IpAddr, port: Option<u16>) -> Result<(), Denied> {
        if self.net_allows(ip, port) {
            return Ok(());
        }
        match sensitive(ip) {
            Some(kind) => Err(Denied(format!(
                "{ip} is {kind} and not listed in the allow-list (list it as {ip}/{} to permit it)",
                if ip.is_ipv4() { 32 } else { 128 }
            ))),
            None => Ok(()),
        }
    }

    fn net_allows(&self, ip: IpAddr, port: Option<u16>) -> bool {
        let ip = canonical(ip);
        self.entries.iter().any(|entry| match entry {
            Entry::Net(net, p) => net.contains(&ip) && port_allows(*p, port),
            _ => false,
        })
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is the IPv4 address it maps.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Cloud metadata services on addresses that are not link-local.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// What kind of address a request must never reach unless it is listed.
fn sensitive(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) if v4 == Ipv4Addr::new(169, 254, 169, 254) => Some("a cloud metadata address"),
        IpAddr::V4(v4) if v4.is_loopback() => Some("a loopback address"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address"),
        IpAddr::V4(v4) if v4.octets()[0] == 0 || v4.is_broadcast() => Some("an unspecified or broadcast address"),
        IpAddr::V6(v6) if v6 == METADATA_V6 => Some("a cloud metadata address"),
        IpAddr::V6(v6) if v6.is_loopback() => Some("a loopback address"),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some("a link-local address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("an unspecified address"),
        _ => None,
    }
}

fn parse_entry(text: &str) -> Result<Entry, String> {
    let entry = text.trim();
    let hint = "write a host name (api.example.com), a wildcard domain (*.example.com), an address \
                (10.0.0.5, [::1]) or a network (10.0.0.0/8), each optionally with :PORT";
    if entry.is_empty() {
        return Err(format!("an empty allow-list entry; {hint}"));
    }
    if let Ok(net) = entry.parse::<IpNet>() {
        return Ok(Entry::Net(net.trunc(), None));
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(Entry::Net(IpNet::from(canonical(ip)), None));
    }
    if let Ok(addr) = entry.parse::<std::net::SocketAddr>() {
        return Ok(Entry::Net(
            IpNet::from(canonical(addr.ip())),
            Some(nonzero_port(addr.port(), entry)?),
        ));
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((host, port)) => {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("'{entry}': '{port}' is not a port (1-65535)"))?;
            (host, Some(nonzero_port(port, entry)?))
        }
        None => (entry, None),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let (below, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest.to_owned()),
        None => (false, host.clone()),
    };
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(format!("'{entry}' is not a valid allow-list entry; {hint}"));
    }
    Ok(if below {
        Entry::Below(name, port)
    } else {
        Entry::Name(name, port)
    })
}

fn nonzero_port(port: u16, entry: &str) -> Result<u16, String> {
    if port == 0 {
        Err(format!(
            "'{entry}': port 0 cannot be connected to; give a port from 1 to 65535"
        ))
    } else {
        Ok(port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn names_wildcards_and_networks() {
        let policy = AddressPolicy::parse(&["api.example.com", "*.corp.test", "10.0.0.0/8", "127.0.0.1:8080"]).unwrap();
        let name = |n: &str| Host::Name(n.into());
        assert!(policy.check_host(&name("api.example.com"), Some(443)).is_ok());
        assert!(policy.check_host(&name("API.example.com."), Some(443)).is_ok());
        assert!(policy.check_host(&name("other.example.com"), Some(443)).is_err());
        assert!(policy.check_host(&name("a.b.corp.test"), Some(80)).is_ok());
        assert!(
            policy.check_host(&name("corp.test"), Some(80)).is_err(),
            "the apex is not below"
        );
        assert!(policy.check_host(&name("evilcorp.test"), Some(80)).is_err());
        assert!(policy.check_host(&Host::Ip(ip("10.1.2.3")), Some(22)).is_ok());
        assert!(policy.check_host(&Host::Ip(ip("127.0.0.1")), Some(8080)).is_ok());
        assert!(policy.check_host(&Host::Ip(ip("127.0.0.1")), Some(8081)).is_err());
        assert!(policy.check_host(&Host::Ip(ip("127.0.0.1")), None).is_err());
    }

    #[test]
    fn sensitive_addresses_pass_only_when_listed() {
        let policy = AddressPolicy::parse(&["*.example.com", "127.0.0.1:8080"]).unwrap();
        for denied in [
            "127.0.0.2",
            "169.254.169.254",
            "169.254.1.1",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "0.0.0.0",
            "::ffff:127.0.0.1",
            "::",
        ] {
            let error = policy.check_address(ip(denied), Some(80)).unwrap_err();
            assert!(error.0.contains("not listed"), "{denied}: {error}");
        }
        assert!(policy.check_address(ip("127.0.0.1"), Some(8080)).is_ok());
        assert!(policy.check_address(ip("::ffff:127.0.0.1"), Some(8080)).is_ok());
        assert!(policy.check_address(ip("127.0.0.1"), Some(8081)).is_err());
        assert!(
            policy.check_address(ip("93.184.216.34"), Some(80)).is_ok(),
            "a public address of a listed name"
        );
        assert!(policy
            .check_address(ip("169.254.169.254"), Some(80))
            .unwrap_err()
            .0
            .contains("metadata"));
    }

    #[test]
    fn bad_entries_say_what_to_write() {
        for bad in ["", "http://x", "a..b", "*.", "host:0", "host:99999", "10.0.0.0/33"] {
            let error = AddressPolicy::parse(&[bad]).unwrap_err();
            assert!(error.contains(bad.trim()), "{bad}: {error}");
        }
        assert!(AddressPolicy::parse(&["[::1]:9000", "fd00::/8"]).is_ok());
    }
}

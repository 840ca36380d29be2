//! Asynchronous name resolution with hickory: honours /etc/hosts and /etc/resolv.conf,
//! never calls `getaddrinfo` on the blocking pool (which would cap concurrency).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

use crate::target::Host;

/// A shared resolver. Cloning is cheap; lookups are cached by hickory.
#[derive(Clone)]
pub struct Resolver {
    inner: Result<Arc<TokioResolver>, Arc<str>>,
    nameserver: Option<SocketAddr>,
    system_nameservers: Arc<[SocketAddr]>,
}

/// A failed lookup, with a message that says what was asked and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ResolveError(pub String);

impl Resolver {
    /// Uses `nameserver` if given, else the system configuration. A broken system
    /// configuration is reported at lookup time, so IP literals still work without one.
    pub fn new(nameserver: Option<SocketAddr>) -> Resolver {
        let built = match nameserver {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                let config = ResolverConfig::from_parts(None, Vec::new(), vec![server]);
                let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
                *builder.options_mut() = options(ResolverOpts::default());
                builder.build()
            }
            None => TokioResolver::builder_tokio().and_then(|mut builder| {
                let opts = builder.options_mut().clone();
                *builder.options_mut() = options(opts);
                builder.build()
            }),
        };
        Resolver {
            inner: built.map(Arc::new).map_err(|e| {
                Arc::from(format!(
                    "cannot set up DNS resolution: {e}; pass --nameserver IP[:PORT]"
                ))
            }),
            nameserver,
            system_nameservers: system_nameservers().into(),
        }
    }

    /// Where a `dns://` check without `server=` sends its query: `--nameserver`, else
    /// the first nameserver in the system configuration.
    pub fn query_server(&self) -> Option<SocketAddr> {
        self.nameserver.or_else(|| self.system_nameservers.first().copied())
    }

    /// Resolves a host to its addresses. IP literals skip DNS entirely.
    pub async fn resolve(&self, host: &Host) -> Result<Vec<IpAddr>, ResolveError> {
        let name = match host {
            Host::Ip(ip) => return Ok(vec![*ip]),
            Host::Name(name) => name,
        };
        let resolver = self.inner.as_ref().map_err(|e| ResolveError(e.to_string()))?;
        match resolver.lookup_ip(name.as_str()).await {
            Ok(lookup) => {
                let addrs: Vec<IpAddr> = lookup.iter().collect();
                if addrs.is_empty() {
                    Err(ResolveError(format!("{name} has no A or AAAA records")))
                } else {
                    Ok(addrs)
                }
            }
            Err(e) if e.is_nx_domain() => Err(ResolveError(format!("{name} does not exist (NXDOMAIN)"))),
            Err(e) if e.is_no_records_found() => Err(ResolveError(format!("{name} has no A or AAAA records"))),
            Err(e) => Err(ResolveError(format!("cannot resolve {name}: {e}"))),
        }
    }
}

/// Read once at start-up (a small file), never on the check path.
fn system_nameservers() -> Vec<SocketAddr> {
    let Ok((config, _)) = hickory_resolver::system_conf::read_system_conf() else {
        return Vec::new();
    };
    config
        .name_servers()
        .iter()
        .map(|ns| {
            let port = ns.connections.first().map_or(53, |c| c.port);
            SocketAddr::new(ns.ip, port)
        })
        .collect()
}

fn options(mut opts: ResolverOpts) -> ResolverOpts {
    // The check's own deadline bounds the lookup; hickory's retries must fit inside it.
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    opts.cache_size = 4096;
    opts
}

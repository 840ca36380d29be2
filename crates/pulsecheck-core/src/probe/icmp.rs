//! ICMP echo probe (surge-ping). Unprivileged ICMP sockets are tried first; where
//! `net.ipv4.ping_group_range` forbids them, surge-ping falls back to a raw socket,
//! which needs root or CAP_NET_RAW. Without either the check is `internal` with a hint.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use surge_ping::{Client, Config, PingIdentifier, PingSequence, SurgeError, ICMP};

use super::{resolve, Attempt, Failure, Phase, ProbeContext};
use crate::result::Reason;
use crate::target::Host;

/// One ICMP socket per address family, opened on first use and shared by all checks.
#[derive(Default)]
pub struct Pingers {
    v4: OnceLock<Result<Client, String>>,
    v6: OnceLock<Result<Client, String>>,
    next_ident: AtomicU16,
}

impl Pingers {
    fn client(&self, ip: IpAddr) -> Result<Client, Failure> {
        let (cell, kind) = match ip {
            IpAddr::V4(_) => (&self.v4, ICMP::V4),
            IpAddr::V6(_) => (&self.v6, ICMP::V6),
        };
        cell.get_or_init(|| {
            Client::new(&Config::builder().kind(kind).build()).map_err(|e| {
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    "ICMP needs privileges here: unprivileged ICMP is disabled (net.ipv4.ping_group_range) \
                     and raw sockets need root or CAP_NET_RAW; run `sudo setcap cap_net_raw+ep $(which pulsecheck)` \
                     or check with tcp:// instead"
                        .to_owned()
                } else {
                    format!("cannot open an ICMP socket: {e}")
                }
            })
        })
        .clone()
        .map_err(|message| Failure::new(Reason::Internal, message))
    }
}

pub async fn probe(ctx: &ProbeContext, host: &Host, attempt: &mut Attempt) -> Result<(), Failure> {
    attempt.guard_host(host, None)?;
    let addrs = resolve(ctx, host, attempt).await?;
    let ip = *addrs
        .first()
        .ok_or_else(|| Failure::new(Reason::Dns, format!("{host} resolved to no address")))?;
    attempt.guard_address(ip, None)?;
    attempt.result.ip = Some(ip);
    let client = ctx.icmp.client(ip)?;
    let ident = PingIdentifier(ctx.icmp.next_ident.fetch_add(1, Ordering::Relaxed));
    let mut pinger = client.pinger(ip, ident).await;
    // The check's own deadline is the real bound; this only stops surge-ping's default 2 s.
    pinger.timeout(Duration::from_secs(3600));
    attempt.phase = Phase::Echo;
    match pinger.ping(PingSequence(0), &[0u8; 16]).await {
        Ok((_, rtt)) => {
            attempt.result.rtt_ms = Some(rtt);
            Ok(())
        }
        Err(SurgeError::Timeout { .. }) => Err(Failure::new(Reason::Timeout, format!("no echo reply from {ip}"))),
        Err(SurgeError::IOError(e)) => Err(Failure::new(
            super::classify_io_error(&e),
            format!("ICMP echo to {ip} failed: {e}"),
        )),
        Err(e) => Err(Failure::new(Reason::Protocol, format!("ICMP echo to {ip} failed: {e}"))),
    }
}

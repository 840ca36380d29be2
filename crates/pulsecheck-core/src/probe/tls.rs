//! TLS probe: a full handshake (with verification unless `insecure`), recording the
//! certificate chain's earliest expiry for the conditions to judge.

use super::{connect, handshake, resolve, Attempt, Failure, ProbeContext};
use crate::options::CheckOptions;
use crate::target::Host;

pub async fn probe(
    ctx: &ProbeContext,
    host: &Host,
    port: u16,
    options: &CheckOptions,
    attempt: &mut Attempt,
) -> Result<(), Failure> {
    attempt.guard_host(host, Some(port))?;
    let addrs = resolve(ctx, host, attempt).await?;
    let stream = connect(&addrs, port, attempt).await?;
    let _tls = handshake(ctx, stream, host, options.insecure, attempt).await?;
    Ok(())
}

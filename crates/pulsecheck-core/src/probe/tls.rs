//! TLS probe: a full handshake, then the certificate chain's earliest expiry against
//! the minimum-days option.

use super::{check_certificate_days, connect, handshake, resolve, Attempt, Failure, ProbeContext};
use crate::options::CheckOptions;
use crate::target::Host;

pub async fn probe(
    ctx: &ProbeContext,
    host: &Host,
    port: u16,
    options: &CheckOptions,
    attempt: &mut Attempt,
) -> Result<(), Failure> {
    let addrs = resolve(ctx, host, attempt).await?;
    let stream = connect(&addrs, port, attempt).await?;
    let _tls = handshake(ctx, stream, host, options.insecure, attempt).await?;
    check_certificate_days(attempt, options.min_cert_days)
}

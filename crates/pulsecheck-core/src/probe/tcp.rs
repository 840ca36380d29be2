//! TCP probe: up when a connection is accepted.

use super::{connect, resolve, Attempt, Failure, ProbeContext};
use crate::target::Host;

pub async fn probe(ctx: &ProbeContext, host: &Host, port: u16, attempt: &mut Attempt) -> Result<(), Failure> {
    attempt.guard_host(host, Some(port))?;
    let addrs = resolve(ctx, host, attempt).await?;
    let _stream = connect(&addrs, port, attempt).await?;
    Ok(())
}

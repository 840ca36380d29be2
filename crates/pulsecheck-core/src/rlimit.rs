//! Raising the open-file limit, so thousands of sockets can be open at once.

/// File descriptors kept free for stdio, DNS sockets, the output file and the runtime.
pub const RESERVED_FDS: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft limit. If
/// the raise is refused, returns the soft limit as it was.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    if !rlimit::Resource::NOFILE.is_supported() {
        // No such limit on this platform: nothing caps the sockets but the system.
        return Ok(u64::MAX);
    }
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    if soft < hard && rlimit::Resource::NOFILE.set(hard, hard).is_ok() {
        return Ok(hard);
    }
    Ok(soft)
}

/// The most checks that can run at once under a file limit (one socket each).
pub fn max_concurrency_for(nofile: u64) -> usize {
    usize::try_from(nofile.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_reaches_the_hard_limit_and_is_idempotent() {
        let raised = raise_nofile_limit().unwrap();
        let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
        assert_eq!((raised, soft), (hard, hard));
        assert_eq!(raise_nofile_limit().unwrap(), raised);
    }

    #[test]
    fn concurrency_keeps_the_reserve() {
        assert_eq!(max_concurrency_for(1024), 960);
        assert_eq!(max_concurrency_for(10), 1);
    }
}

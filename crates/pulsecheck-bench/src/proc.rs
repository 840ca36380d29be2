//! Child-process plumbing on Linux: reap one child with `wait4` (its exact CPU
//! time and peak RSS) within a time bound, let a daemon run for a while while
//! noticing if it exits early, tie children to our life, and notice Ctrl+C
//! without dying before cleanup.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libc::{c_int, pid_t};

/// How one child ended, as `wait4` reported it.
pub struct Reaped {
    /// Raw wait status (decode with `exit_code` / `signal`).
    pub status: c_int,
    /// Resource usage of that child alone (its own descendants only if it reaped them).
    pub rusage: libc::rusage,
    /// We had to SIGKILL it because it outlived its time limit.
    pub killed_after_limit: bool,
}

impl Reaped {
    pub fn exit_code(&self) -> Option<i32> {
        libc::WIFEXITED(self.status).then(|| libc::WEXITSTATUS(self.status))
    }

    pub fn signal(&self) -> Option<i32> {
        libc::WIFSIGNALED(self.status).then(|| libc::WTERMSIG(self.status))
    }

    /// User + system CPU time.
    pub fn cpu(&self) -> (Duration, Duration) {
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        (tv(self.rusage.ru_utime), tv(self.rusage.ru_stime))
    }

    /// Peak resident set size in KiB (Linux reports `ru_maxrss` in KiB).
    pub fn max_rss_kib(&self) -> u64 {
        self.rusage.ru_maxrss.max(0) as u64
    }
}

/// Most `EINTR` retries before giving up; only a signal storm gets near it.
const MAX_EINTR: u32 = 10_000;

/// Waits for `pid`, which must be our own child and not yet reaped, for at most
/// `limit`; if it is still running then, sends it SIGKILL. Then reaps it with
/// `wait4` and returns its status and resource usage.
///
/// The wait is a `poll` on a pidfd, so no sleeping loop skews the wall clock.
/// Killing by pid is safe here: an unreaped child's pid cannot be reused.
pub fn reap(pid: pid_t, limit: Duration) -> io::Result<Reaped> {
    let killed_after_limit = match pidfd_open(pid) {
        Ok(pidfd) => !wait_exit(&pidfd, limit)?,
        // Kernels before 5.3 have no pidfd: fall back to a blocking wait4.
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => false,
        Err(e) => return Err(e),
    };
    if killed_after_limit {
        // SAFETY: plain syscall; `pid` is our unreaped child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let mut status: c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    for _ in 0..MAX_EINTR {
        // SAFETY: both out-pointers are valid for the duration of the call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
        if r == pid {
            return Ok(Reaped {
                status,
                rusage,
                killed_after_limit,
            });
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
    Err(io::Error::other("wait4 kept being interrupted"))
}

/// Lets `pid`, our own unreaped child, run for `duration` while watching it on a
/// pidfd (a `poll`, no sleeping loop). True if it is still running at the end,
/// false if it exited before (it is then left for [`reap`] to collect).
pub fn run_for(pid: pid_t, duration: Duration) -> io::Result<bool> {
    let pidfd = pidfd_open(pid).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOSYS) {
            io::Error::other("pidfd_open is not supported (Linux before 5.3): cannot watch a running child")
        } else {
            e
        }
    })?;
    Ok(!wait_exit(&pidfd, duration)?)
}

/// Sends `sig` to `pid`, which must be our own unreaped child.
pub fn signal(pid: pid_t, sig: c_int) {
    // SAFETY: plain syscall; the caller guarantees `pid` is our unreaped child,
    // so it cannot name anyone else's process.
    unsafe { libc::kill(pid, sig) };
}

/// True once the process behind `pidfd` has exited, false if `limit` passed first.
fn wait_exit(pidfd: &OwnedFd, limit: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + limit;
    for _ in 0..MAX_EINTR {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as c_int;
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        match unsafe { libc::poll(&mut pfd, 1, ms) } {
            n if n > 0 => return Ok(true),
            0 => continue,
            _ => {
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EINTR) {
                    return Err(err);
                }
            }
        }
    }
    Err(io::Error::other("poll kept being interrupted"))
}

fn pidfd_open(pid: pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just handed us this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as c_int) })
}

/// Makes the kernel send the child SIGTERM if this process dies first (even by
/// SIGKILL), so a crashed benchmark never leaves a simulator behind.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure only calls prctl, which is async-signal-safe, and
    // allocates nothing between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catches SIGINT instead of dying on it. Ctrl+C reaches the children too (same
/// process group); they exit, we notice, and the guards clean up. A handler
/// (unlike SIG_IGN) is reset by exec, so the children keep default behaviour.
pub fn catch_sigint() -> io::Result<()> {
    // SAFETY: sigaction is plain data; the handler only stores to an atomic,
    // which is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as extern "C" fn(c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

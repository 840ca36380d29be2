//! The `pulsecheck-sim` child: start it, wait for its ready line, and stop it
//! (SIGTERM, then SIGKILL after a grace period) when the guard drops, on every path.

use std::fs::File;
use std::io::{self, Read as _};
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Deserialize;

use crate::proc;

/// The loopback addresses the simulator listens on, one HTTP listener each.
pub const BIND_RANGE: &str = "127.0.0.1-127.0.0.100";
/// How long the simulator may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest ready line we accept (it carries a CA certificate, a few KiB).
const MAX_READY_LINE: usize = 1 << 20;
/// How long the simulator may take to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The part of the simulator's ready line the benchmark uses.
#[derive(Debug, Deserialize)]
pub struct Ready {
    pub event: String,
    pub http: Vec<String>,
    pub blackhole: String,
    pub refused: String,
}

/// A running simulator; dropping it stops and reaps the process.
pub struct Sim {
    child: Child,
    /// Kept open so the simulator never writes into a closed pipe.
    _stdout: ChildStdout,
    pub ready: Ready,
    pub command: String,
}

impl Sim {
    /// Starts `bin` on [`BIND_RANGE`] and waits for its ready line. Its stderr
    /// goes to `stderr_path`, quoted in errors.
    pub fn start(bin: &Path, stderr_path: &Path) -> anyhow::Result<Sim> {
        let stderr = File::create(stderr_path).with_context(|| format!("creating {}", stderr_path.display()))?;
        let mut cmd = Command::new(bin);
        cmd.args(["--bind-range", BIND_RANGE])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        proc::die_with_parent(&mut cmd);
        let command = format!("{} --bind-range {BIND_RANGE}", bin.display());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting the simulator `{command}`"))?;
        let mut stdout = child.stdout.take().context("simulator stdout was not piped")?;
        // From here on the guard stops the process, whatever fails next.
        let mut guard = Guard(Some(child));
        let line = match read_line(&mut stdout, READY_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                drop(guard);
                bail!(
                    "the simulator did not get ready: {e}\nits stderr:\n{}",
                    tail(stderr_path)
                );
            }
        };
        let ready: Ready =
            serde_json::from_str(&line).with_context(|| format!("unparsable ready line from the simulator: {line}"))?;
        if ready.event != "ready" || ready.http.is_empty() {
            bail!("unexpected ready line from the simulator: {line}");
        }
        Ok(Sim {
            child: guard.0.take().expect("guard holds the child"),
            _stdout: stdout,
            ready,
            command,
        })
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        stop(&self.child);
    }
}

/// Stops the child if `start` fails before a `Sim` exists.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = &self.0 {
            stop(child);
        }
    }
}

fn stop(child: &Child) {
    let pid = child.id() as libc::pid_t;
    proc::signal(pid, libc::SIGTERM);
    match proc::reap(pid, STOP_GRACE) {
        Ok(r) if r.killed_after_limit => {
            eprintln!("warning: the simulator ignored SIGTERM for {STOP_GRACE:?}; killed it")
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: could not reap the simulator (pid {pid}): {e}"),
    }
}

/// Reads up to the first newline from `stdout` within `timeout`.
fn read_line(stdout: &mut ChildStdout, timeout: Duration) -> io::Result<String> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    while !buf.contains(&b'\n') {
        if buf.len() > MAX_READY_LINE {
            return Err(io::Error::other("ready line longer than 1 MiB"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no ready line within {timeout:?}"),
            ));
        }
        let mut pfd = libc::pollfd {
            fd: stdout.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted && !proc::interrupted() {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            continue;
        }
        match stdout.read(&mut chunk) {
            Ok(0) => return Err(io::Error::other("it exited before printing a ready line")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted && !proc::interrupted() => {}
            Err(e) => return Err(e),
        }
    }
    let end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    buf.truncate(end);
    String::from_utf8(buf).map_err(|_| io::Error::other("ready line is not UTF-8"))
}

/// The last few lines of a log file, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(15);
    let out = lines[start..].join("\n");
    if out.is_empty() {
        "(empty)".to_owned()
    } else {
        out
    }
}

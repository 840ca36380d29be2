//! What the tests that run the real `pulsecheck serve` share: starting it on a config,
//! stopping it by its PID, waiting on a condition, and reading its listener's address.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_pulsecheck");

/// A `pulsecheck serve` this test started; killed by its PID when dropped.
pub struct Daemon(Child);

impl Daemon {
    /// `pulsecheck serve CONFIG --db DB` with `RUST_LOG=info`, its log in `log`, and
    /// `env` added to its environment.
    pub fn start(config: &Path, db: &Path, log: &Path, env: &[(&str, &str)]) -> Daemon {
        let child = Command::new(BIN)
            .args(["serve", config.to_str().unwrap(), "--db", db.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("pulsecheck serve starts");
        Daemon(child)
    }

    /// SIGTERM, then the exit, which must be clean (`log` is shown when it is not).
    pub async fn stop(mut self, log: &Path) {
        if let Some(pid) = self.0.id() {
            // SAFETY: signalling the daemon this test started, by its PID.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        let status = tokio::time::timeout(Duration::from_secs(30), self.0.wait())
            .await
            .expect("the daemon stops after SIGTERM")
            .unwrap();
        assert_eq!(
            status.code(),
            Some(0),
            "{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

/// Polls `condition` every 100 ms until it gives a value or `limit` passes.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The daemon's listening address (`HOST:PORT`), from its log.
pub async fn listening(log: &Path) -> String {
    eventually(Duration::from_secs(60), "the listener's address in the log", || async {
        let text = std::fs::read_to_string(log).ok()?;
        let line = text.lines().find(|l| l.contains("listening"))?;
        let addr = line.split("addr=").nth(1)?.split_whitespace().next()?;
        Some(addr.to_owned())
    })
    .await
}

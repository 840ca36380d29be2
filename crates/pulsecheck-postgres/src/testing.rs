//! A throwaway PostgreSQL server for tests (cargo feature `testing`).
//!
//! [`TestPostgres::start`] runs `initdb` in a fresh temporary directory and `pg_ctl
//! start` on a free loopback port (trust authentication, user `postgres`, no fsync).
//! [`shared_database`] gives each test its own database on one server started once per
//! test binary. Without PostgreSQL's binaries, both return `Ok(None)` (the test prints
//! why and passes) unless the environment has `CI` set: a CI run must not skip.
//!
//! initdb refuses to run as root; as root, the server runs as the `postgres` user
//! (Debian's package creates it) through `runuser`, in a directory chowned to it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use sqlx::Connection;

/// A PostgreSQL server in a temporary directory, stopped on drop.
pub struct TestPostgres {
    bin: PathBuf,
    dir: Option<tempfile::TempDir>,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
    /// Stops the server when the test process exits without dropping this value (a
    /// server in a static); killed by its PID on drop.
    watchdog: Option<Child>,
}

impl TestPostgres {
    /// Starts a server; `Ok(None)` when PostgreSQL is not installed and `CI` is unset.
    pub fn start() -> Result<Option<TestPostgres>, String> {
        let Some(bin) = find_bin() else {
            return not_installed(std::env::var_os("CI").is_some()).map(|()| None);
        };
        let as_postgres = rustix::process::geteuid().is_root();
        let dir = tempfile::Builder::new()
            .prefix("pulsecheck-pg-")
            .tempdir()
            .map_err(|e| format!("create a temporary directory: {e}"))?;
        if as_postgres {
            run(
                Command::new("chown").arg("postgres:").arg(dir.path()),
                "chown the test directory to postgres",
            )?;
        }
        let data = dir.path().join("data");
        let mut server = TestPostgres {
            bin,
            data,
            port: free_port()?,
            as_postgres,
            dir: Some(dir),
            watchdog: None,
        };
        let initdb = server.bin.join("initdb");
        let mut cmd = server.command(&initdb);
        cmd.arg("-D").arg(&server.data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        run(&mut cmd, "initdb")?;
        server.pg_ctl_start()?;
        server.watchdog = Some(server.spawn_watchdog()?);
        Ok(Some(server))
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of database `name` on this server.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's PID (changes with [`TestPostgres::restart`]).
    pub fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// `pg_ctl stop -m fast`: disconnects every client and stops.
    pub fn stop(&self) -> Result<(), String> {
        let mut cmd = self.command(&self.bin.join("pg_ctl"));
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        run(&mut cmd, "pg_ctl stop")
    }

    /// `pg_ctl restart -m fast` on the same port: every client loses its connection.
    pub fn restart(&self) -> Result<(), String> {
        self.stop()?;
        self.pg_ctl_start()
    }

    /// Starts the server again after [`TestPostgres::stop`], on the same port.
    pub fn start_again(&self) -> Result<(), String> {
        self.pg_ctl_start()
    }

    /// Creates database `name` and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String, String> {
        let mut conn = sqlx::PgConnection::connect(&self.url())
            .await
            .map_err(|e| format!("connect to the test server: {e}"))?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .map_err(|e| format!("create database {name}: {e}"))?;
        let _ = conn.close().await;
        Ok(self.url_of(name))
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let socket_dir = self.data.parent().unwrap_or(Path::new("/tmp"));
        let mut cmd = self.command(&self.bin.join("pg_ctl"));
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(socket_dir.join("server.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-p {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300 \
                 -c unix_socket_directories={}",
                self.port,
                socket_dir.display()
            ))
            .arg("start");
        run(&mut cmd, "pg_ctl start").map_err(|e| {
            let log = std::fs::read_to_string(socket_dir.join("server.log")).unwrap_or_default();
            format!("{e}\nserver log:\n{log}")
        })
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        };
        cmd.stdin(Stdio::null());
        cmd
    }

    /// A shell loop that waits for this process to exit, then stops the server and
    /// removes its directory.
    fn spawn_watchdog(&self) -> Result<Child, String> {
        let dir = self.data.parent().unwrap_or(Path::new("/nonexistent"));
        let stop = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 1; done; \
             {runuser} '{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            parent = std::process::id(),
            runuser = if self.as_postgres { "runuser -u postgres --" } else { "" },
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data.display(),
            dir = dir.display(),
        );
        Command::new("sh")
            .args(["-c", &stop])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start the test server's watchdog: {e}"))
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if self.pid().is_some() {
            if let Err(e) = self.stop() {
                eprintln!("test PostgreSQL: {e}");
            }
        }
        drop(self.dir.take());
    }
}

/// A fresh database on the test binary's shared server: its URL, or `Ok(None)` when
/// PostgreSQL is not installed and `CI` is unset (see [`TestPostgres::start`]).
pub async fn shared_database() -> Result<Option<String>, String> {
    static SERVER: OnceLock<Result<Option<TestPostgres>, String>> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let server = match SERVER.get_or_init(TestPostgres::start) {
        Ok(Some(server)) => server,
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.clone()),
    };
    let name = format!("test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    server.create_database(&name).await.map(Some)
}

/// Applies the store's migrations numbered up to `version` only, leaving the database
/// at `url` as a release with that schema left it: for tests that migrate its data.
pub async fn migrate_up_to(url: &str, version: i64) -> Result<(), String> {
    let all = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let dir = tempfile::tempdir().map_err(|e| format!("create a temporary directory: {e}"))?;
    let entries = std::fs::read_dir(&all).map_err(|e| format!("list {}: {e}", all.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("list {}: {e}", all.display()))?;
        let name = entry.file_name();
        let number = name
            .to_str()
            .and_then(|n| n.split_once('_'))
            .and_then(|(n, _)| n.parse::<i64>().ok());
        if number.is_some_and(|n| n <= version) {
            std::fs::copy(entry.path(), dir.path().join(&name)).map_err(|e| format!("copy {name:?}: {e}"))?;
        }
    }
    let migrator = sqlx::migrate::Migrator::new(dir.path())
        .await
        .map_err(|e| format!("read migrations: {e}"))?;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| format!("connect to {url}: {e}"))?;
    migrator
        .run(&mut conn)
        .await
        .map_err(|e| format!("migrate to {version}: {e}"))
}

/// What a test prints when it skips.
pub const SKIPPED: &str = "skipped: PostgreSQL not installed";

/// Without PostgreSQL: a skip (`Ok`), or under CI an error that says what to install.
fn not_installed(ci: bool) -> Result<(), String> {
    if ci {
        Err(
            "PostgreSQL is not installed (initdb and pg_ctl are neither on PATH nor in \
             /usr/lib/postgresql/*/bin); CI is set, so the test fails instead of skipping: \
             install Debian's postgresql package (.ci/run does)"
                .into(),
        )
    } else {
        Ok(())
    }
}

/// initdb and pg_ctl's directory: on PATH, else the newest /usr/lib/postgresql/*/bin.
fn find_bin() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_both(&dir) {
                // /usr/local/bin may hold symlinks: pg_ctl finds `postgres` next to itself.
                let real = std::fs::canonicalize(dir.join("pg_ctl")).ok()?;
                return real.parent().map(Path::to_path_buf);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("find a free port: {e}"))
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let output = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_server_skips_locally_and_fails_under_ci() {
        assert_eq!(super::not_installed(false), Ok(()));
        let error = super::not_installed(true).unwrap_err();
        assert!(error.contains("install Debian's postgresql package"), "{error}");
    }

    #[test]
    fn finds_initdb_and_pg_ctl_together() {
        if let Some(bin) = super::find_bin() {
            assert!(
                bin.join("initdb").is_file() && bin.join("pg_ctl").is_file(),
                "{}",
                bin.display()
            );
        }
    }
}

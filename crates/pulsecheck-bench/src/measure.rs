//! One measured `pulsecheck scan`: spawn, reap with `wait4`, read its output.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::proc;
use crate::scenarios::{Plan, Tally};
use crate::sim::tail;

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct Run {
    pub wall: Duration,
    pub user: Duration,
    pub sys: Duration,
    pub max_rss_kib: u64,
    pub exit_code: i32,
    pub tally: Tally,
}

impl Run {
    pub fn cpu(&self) -> Duration {
        self.user + self.sys
    }

    /// Peak RSS in MB (10^6 bytes).
    pub fn rss_mb(&self) -> f64 {
        self.max_rss_kib as f64 * 1024.0 / 1e6
    }

    pub fn checks_per_s(&self, targets: usize) -> f64 {
        targets as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// The exact `pulsecheck` invocation for a plan: no tuning flags besides the
/// scenario's `--timeout`.
pub fn command_line(bin: &Path, plan: &Plan, dir: &Path) -> (Vec<String>, PathBuf) {
    let name = plan.scenario.name();
    let out = dir.join(format!("{name}.out.jsonl"));
    let mut args = vec![
        bin.display().to_string(),
        "scan".into(),
        dir.join(format!("{name}.targets")).display().to_string(),
        "--format".into(),
        "json".into(),
        "-o".into(),
        out.display().to_string(),
        "-q".into(),
    ];
    if let Some(t) = plan.timeout {
        args.extend(["--timeout".into(), t.into()]);
    }
    (args, out)
}

/// Runs pulsecheck once on `plan` and measures it. Errors only when the
/// benchmark itself failed (crash, unexpected exit code, unparsable output).
pub fn run(bin: &Path, plan: &Plan, dir: &Path, limit: Duration) -> anyhow::Result<Run> {
    let name = plan.scenario.name();
    let targets_path = dir.join(format!("{name}.targets"));
    let mut text = plan.targets.join("\n");
    text.push('\n');
    std::fs::write(&targets_path, text).with_context(|| format!("writing {}", targets_path.display()))?;
    let (args, out) = command_line(bin, plan, dir);
    // A stale result file must never be mistaken for this run's.
    let _ = std::fs::remove_file(&out);
    let stderr_path = dir.join(format!("{name}.stderr"));
    let stderr = File::create(&stderr_path).with_context(|| format!("creating {}", stderr_path.display()))?;

    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    proc::die_with_parent(&mut cmd);

    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
    // Reaped by pid below (std's Child::wait would hide the rusage); dropping
    // a std Child neither waits nor kills.
    let reaped = proc::reap(child.id() as libc::pid_t, limit).context("waiting for pulsecheck")?;
    let wall = start.elapsed();
    drop(child);

    if reaped.killed_after_limit {
        bail!(
            "pulsecheck ran longer than {limit:?} and was killed\nits stderr:\n{}",
            tail(&stderr_path)
        );
    }
    let exit_code = match (reaped.exit_code(), reaped.signal()) {
        (Some(code @ (0 | 1)), _) => code,
        (Some(130), _) if proc::interrupted() => bail!("interrupted"),
        (Some(code), _) => bail!(
            "pulsecheck exited with code {code} (expected 0 or 1)\nits stderr:\n{}",
            tail(&stderr_path)
        ),
        (None, Some(sig)) => bail!(
            "pulsecheck was killed by signal {sig}\nits stderr:\n{}",
            tail(&stderr_path)
        ),
        (None, None) => bail!("pulsecheck ended with wait status {:#x}", reaped.status),
    };
    let output = std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
    let tally = plan.tally(&output)?;
    let (user, sys) = reaped.cpu();
    Ok(Run {
        wall,
        user,
        sys,
        max_rss_kib: reaped.max_rss_kib(),
        exit_code,
        tally,
    })
}

//! `pulsecheck demo`: a real scan, offline, against the built-in simulator. It starts
//! `pulsecheck-sim` in-process on loopback, writes a targets file that covers every kind
//! of probe (HTTP, HTTPS, TCP, TLS, DNS, ICMP to 127.0.0.1) and most reasons for being
//! down, and runs `pulsecheck scan` on it.

use std::io::Write as _;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::exit::Exit;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Extra `scan` flags, e.g. `--format json` or `--order input`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "SCAN FLAGS")]
    pub scan_flags: Vec<String>,
}

pub fn run(args: DemoArgs) -> Exit {
    match demo(args) {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("error: demo failed: {e:#}");
            Exit::Internal
        }
    }
}

fn demo(args: DemoArgs) -> anyhow::Result<Exit> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let sim = runtime.block_on(pulsecheck_sim::start(pulsecheck_sim::SimConfig {
        cert_dir: Some(dir.path().to_path_buf()),
        ..pulsecheck_sim::SimConfig::default()
    }))?;
    let info = &sim.info;
    let http = info.http[0];
    let targets = [
        format!("# pulsecheck demo: the simulator listens on {http}"),
        format!("http://{http}/ok"),
        format!("http://{http}/delay/300"),
        format!("http://{http}/redirect/3"),
        format!("http://{http}/json"),
        format!("http://ok.pulsecheck.test:{}/ok", http.port()),
        format!("https://localhost:{}/ok", info.tls_valid.port()),
        format!("tls://localhost:{}", info.tls_valid.port()),
        format!("tcp://{http}"),
        format!("dns://ok.pulsecheck.test?type=A&server={}", info.dns),
        format!("http://{http}/status/503"),
        format!("http://{http}/malformed"),
        format!("http://{}/", info.blackhole),
        format!("http://{}/", info.refused),
        format!("http://{}/", info.reset),
        format!("https://localhost:{}/ok", info.tls_expired.port()),
        format!("https://localhost:{}/ok", info.tls_self_signed.port()),
        format!("http://nx.pulsecheck.test:{}/ok", http.port()),
        format!("dns://nx.pulsecheck.test?server={}", info.dns),
        // Up with ICMP privilege; without it the result says what is missing (`internal`).
        "icmp://127.0.0.1".to_owned(),
        "ftp://not-a-supported-scheme".to_owned(),
    ];
    let file = dir.path().join("demo-targets.txt");
    let mut out = std::fs::File::create(&file)?;
    for line in &targets {
        writeln!(out, "{line}")?;
    }
    drop(out);
    let ca = info.ca_file.clone().unwrap_or_else(|| dir.path().join("ca.pem"));
    // The targets file lives in a directory removed when the demo ends: name what is
    // scanned, not where.
    eprintln!(
        "pulsecheck demo: simulator on {http} (DNS {}); scanning {} targets, one per probe and per way of being down",
        info.dns,
        targets.len() - 1
    );
    let mut argv: Vec<String> = ["pulsecheck", "scan", "--timeout", "2s", "--cacert"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    argv.push(ca.display().to_string());
    argv.push("--nameserver".into());
    argv.push(info.dns.to_string());
    argv.extend(args.scan_flags);
    argv.push(file.display().to_string());
    let exit = match Cli::try_parse_from(&argv) {
        Ok(Cli {
            command: Command::Scan(scan),
        }) => crate::scan::run(*scan),
        Ok(_) => Exit::Internal,
        Err(e) => {
            let _ = e.print();
            Exit::BadInput
        }
    };
    runtime.block_on(sim.shutdown());
    // The demo is meant to show failures: exit 0 unless something is actually wrong.
    Ok(match exit {
        Exit::SomeDown | Exit::BadInput | Exit::AllUp => Exit::AllUp,
        other => other,
    })
}

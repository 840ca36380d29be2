//! `pulsecheck-sim`: run the target simulator until SIGINT/SIGTERM.
//!
//! Prints one JSON line (`{"event":"ready",...}`, see `pulsecheck_sim::ReadyInfo`)
//! to stdout once every listener is up, and a human summary to stderr.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pulsecheck_sim::{ReadyInfo, SimConfig};

/// Most addresses one --bind-range may expand to.
const MAX_RANGE: u32 = 4096;
/// How long a clean shutdown may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A target simulator for pulsecheck: HTTP routes with chosen delays, status
/// codes, redirects and bodies, plus listeners that blackhole, reset or refuse
/// connections, HTTPS with valid, expired and self-signed certificates, and a
/// DNS server for *.pulsecheck.test. Listens on loopback only.
///
/// Once ready it prints one JSON line to stdout with every address
/// ({"event":"ready","http":[...],"blackhole":...,"ca_pem":...}) and runs
/// until SIGINT or SIGTERM.
#[derive(Parser, Debug)]
#[command(name = "pulsecheck-sim", version, max_term_width = 100)]
struct Cli {
    /// Loopback address for a plain HTTP listener; repeat for more. The special
    /// listeners (blackhole, reset, TLS, DNS...) use the first address.
    /// [default: 127.0.0.1 unless --bind-range is given]
    #[arg(long, value_name = "IP", value_parser = parse_loopback)]
    bind: Vec<IpAddr>,

    /// An inclusive range of IPv4 loopback addresses, one HTTP listener each
    /// (at most 4096), e.g. 127.0.0.1-127.0.0.200. Lets a benchmark spread
    /// targets over many hosts. Repeatable; added after the --bind addresses.
    #[arg(long, value_name = "START-END", value_parser = parse_range)]
    bind_range: Vec<BindRange>,

    /// Port of the plain HTTP listeners; 0 picks an ephemeral port per listener.
    #[arg(long, value_name = "N", default_value_t = 0)]
    port: u16,

    /// Port of the HTTPS listener with the valid certificate; 0 picks an ephemeral port.
    #[arg(long, value_name = "N", default_value_t = 0)]
    tls_port: u16,

    /// Port of the DNS server (UDP); 0 picks an ephemeral port.
    #[arg(long, value_name = "N", default_value_t = 0)]
    dns_port: u16,

    /// The location this simulator's DNS answers for: names down-LOC[-LOC…].pulsecheck.test
    /// that list it resolve to 127.0.0.2, where nothing listens; other simulators answer
    /// the working 127.0.0.1. For testing a location quorum, one simulator per location.
    #[arg(long, value_name = "LABEL")]
    location: Option<String>,

    /// Also run a webhook receiver on 127.0.0.1:N that accepts every request and
    /// prints it to stderr, to watch `pulsecheck serve` alerts arrive.
    #[arg(long, value_name = "N")]
    receiver_port: Option<u16>,

    /// Directory to write the CA certificate to (as ca.pem), so clients can
    /// trust the tls_valid listener. Created if missing.
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
}

fn parse_loopback(s: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = s.trim().parse().map_err(|_| format!("`{s}` is not an IP address"))?;
    if !ip.is_loopback() {
        return Err(format!(
            "{ip} is not a loopback address; the simulator only listens on 127.0.0.0/8 and ::1"
        ));
    }
    Ok(ip)
}

/// The addresses of one `--bind-range`.
#[derive(Clone, Debug)]
struct BindRange(Vec<IpAddr>);

fn parse_range(s: &str) -> Result<BindRange, String> {
    let (start, end) = s
        .split_once('-')
        .ok_or_else(|| format!("`{s}` is not a range; expected START-END, e.g. 127.0.0.1-127.0.0.200"))?;
    let parse_v4 = |part: &str| -> Result<Ipv4Addr, String> {
        match parse_loopback(part)? {
            IpAddr::V4(v4) => Ok(v4),
            IpAddr::V6(_) => Err("--bind-range takes IPv4 addresses only".to_owned()),
        }
    };
    let (start, end) = (u32::from(parse_v4(start)?), u32::from(parse_v4(end)?));
    if start > end {
        return Err(format!("range start is after its end in `{s}`"));
    }
    if end - start >= MAX_RANGE {
        return Err(format!(
            "`{s}` has {} addresses; at most {MAX_RANGE} are allowed",
            u64::from(end - start) + 1
        ));
    }
    Ok(BindRange(
        (start..=end).map(|ip| IpAddr::V4(Ipv4Addr::from(ip))).collect(),
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();

    let mut bind = cli.bind;
    for ip in cli.bind_range.into_iter().flat_map(|range| range.0) {
        if !bind.contains(&ip) {
            bind.push(ip);
        }
    }
    if bind.is_empty() {
        bind.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let config = SimConfig {
        bind,
        port: cli.port,
        cert_dir: cli.cert_dir,
        tls_port: cli.tls_port,
        dns_port: cli.dns_port,
        location: cli.location,
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("pulsecheck-sim: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, cli.receiver_port)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pulsecheck-sim: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: SimConfig, receiver_port: Option<u16>) -> anyhow::Result<()> {
    // Registered first so a signal that arrives while starting is not lost.
    let mut signals = Signals::new()?;
    let nofile = pulsecheck_sim::raise_nofile_limit();
    let listeners = config.bind.len();
    let sim = pulsecheck_sim::start(config).await?;

    // A closed stdout (e.g. piped into `head`) is not a reason to stop serving.
    let mut stdout = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut stdout, &sim.info)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(stdout))
        .and_then(|()| stdout.flush());
    drop(stdout);
    print_summary(&sim.info, listeners, nofile.ok());

    match receiver_port {
        Some(port) => {
            let receiver = pulsecheck_sim::receiver::Receiver::start(port).await?;
            eprintln!("pulsecheck-sim: webhook receiver on {}", receiver.url("/"));
            let mut printed = 0;
            let mut every = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = signals.wait() => break,
                    _ = every.tick() => {}
                }
                let received = receiver.received();
                for request in &received[printed..] {
                    eprintln!(
                        "pulsecheck-sim: received {} {} ({}): {}",
                        request.method,
                        request.path,
                        request.header("idempotency-key").unwrap_or("no idempotency key"),
                        String::from_utf8_lossy(&request.body)
                    );
                }
                printed = received.len();
            }
            receiver.shutdown().await;
        }
        None => signals.wait().await,
    }
    eprintln!("pulsecheck-sim: shutting down");
    if tokio::time::timeout(SHUTDOWN_GRACE, sim.shutdown()).await.is_err() {
        eprintln!("pulsecheck-sim: some connections did not close within {SHUTDOWN_GRACE:?}");
    }
    Ok(())
}

/// SIGINT and SIGTERM, the two ways to stop the simulator.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

fn print_summary(info: &ReadyInfo, listeners: usize, nofile: Option<u64>) {
    let http = info.http[0];
    let more = match listeners {
        1 => String::new(),
        n => format!(" (+{} more HTTP listeners, see the JSON line)", n - 1),
    };
    let nofile = nofile.map_or_else(|| "unknown".to_owned(), |n| n.to_string());
    let ca = info.ca_file.as_ref().map_or_else(
        || "not written (use --cert-dir DIR)".to_owned(),
        |p| p.display().to_string(),
    );
    let cacert = info.ca_file.as_ref().map_or_else(
        || "--cacert <sim CA, see --cert-dir> ".to_owned(),
        |p| format!("--cacert {} ", p.display()),
    );
    eprintln!(
        "pulsecheck-sim ready (open files limit {nofile})
  http          http://{http}{more}
                routes: /ok /delay/{{ms}} /status/{{code}} /redirect/{{n}} /redirect-loop /json
                        /bytes/{{n}} /endless /headers /trickle /header-flood /malformed
  blackhole     {blackhole}   (accepts, never answers)
  reset         {reset}   (accepts, then TCP RST)
  refused       {refused}   (nothing listens)
  tls valid     https://{tls_valid}/ok   (CA: {ca})
  tls expired   https://{tls_expired}/ok
  tls self-sig  https://{tls_self}/ok
  dns (udp)     {dns}   (*.pulsecheck.test -> 127.0.0.1/::1; nx. servfail. slow. empty. down-LOC.)

try:
  pulsecheck scan --timeout 2s http://{http}/ok http://{http}/status/503 http://{http}/delay/3000
  pulsecheck scan --timeout 2s http://{blackhole}/ http://{reset}/ http://{refused}/ http://{http}/trickle
  pulsecheck scan {cacert}https://{tls_valid}/ok https://{tls_expired}/ok https://{tls_self}/ok
  pulsecheck scan --nameserver {dns} http://ok.pulsecheck.test:{port}/ok http://nx.pulsecheck.test:{port}/ok
  pulsecheck scan dns://ok.pulsecheck.test?server={dns} dns://servfail.pulsecheck.test?server={dns}

Ctrl+C to stop.",
        blackhole = info.blackhole,
        reset = info.reset,
        refused = info.refused,
        tls_valid = info.tls_valid,
        tls_expired = info.tls_expired,
        tls_self = info.tls_self_signed,
        dns = info.dns,
        port = http.port(),
    );
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bind_range_expands_loopback_only() {
        let range = parse_range("127.0.0.254-127.0.1.1").unwrap();
        assert_eq!(range.0.len(), 4);
        assert_eq!(range.0[3], IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1)));
        assert_eq!(parse_range("127.0.0.1-127.0.16.0").unwrap().0.len(), 4096);
        assert!(parse_range("127.0.0.1-127.0.16.1").is_err());
        assert!(parse_range("127.0.0.2-127.0.0.1").is_err());
        assert!(parse_range("10.0.0.1-10.0.0.2").unwrap_err().contains("loopback"));
        assert!(parse_range("::1-::1").is_err());
        assert!(parse_loopback("0.0.0.0").is_err());
        assert!(parse_loopback("::1").is_ok());
    }

    #[test]
    fn non_loopback_bind_exits_2() {
        let err = Cli::try_parse_from(["pulsecheck-sim", "--bind", "192.168.1.1"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}

//! Command-line interface definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pulsecheck_core::conditions::{Condition, JsonExpect};
use pulsecheck_core::StatusMatcher;

#[derive(Parser, Debug)]
#[command(
    name = "pulsecheck",
    version,
    about = "Health-check and uptime engine: probe thousands of endpoints under strict deadlines",
    long_about = None,
    after_help = "Exit codes: 0 all up · 1 any down · 2 bad usage or input · 3 internal error (ledger did not balance) · 4 stale results (status) · 130 interrupted"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check every target once and report which are up and which are down, and why.
    Scan(Box<ScanArgs>),
    /// Scan a built-in simulator, then serve its status page until Ctrl+C (offline).
    Demo(crate::demo::DemoArgs),
    /// Run checks on a schedule, keep their history in SQLite and send alerts.
    Serve(ServeArgs),
    /// Check a config file and report every error with its line and column.
    Validate(ValidateArgs),
    /// Show the current state of every check, from the store: when it last ran and runs next.
    Status(StatusArgs),
    /// Show a check's recent results, with reasons and phase times, and its uptime.
    History(HistoryArgs),
    /// Show down spans (all checks, or one) with start, end, duration and cause, and uptime.
    Incidents(IncidentsArgs),
    /// Send a test message through one channel of a config file.
    NotifyTest(NotifyTestArgs),
}

#[derive(Args, Debug)]
#[command(after_help = SERVE_AFTER_HELP)]
pub struct ServeArgs {
    /// The config file (YAML, or TOML by extension).
    #[arg(value_name = "CONFIG")]
    pub config: PathBuf,

    /// The SQLite database [default: $PULSECHECK_DB, else the config's store.path, else
    /// $XDG_STATE_HOME/pulsecheck/pulsecheck.db].
    #[arg(long, value_name = "PATH", env = "PULSECHECK_DB", hide_env = true)]
    pub db: Option<PathBuf>,

    /// The store, overriding the config's store.url and store.path: a PostgreSQL URL
    /// (postgres://USER:PASSWORD@HOST/DB, shared by several nodes) or an SQLite file
    /// (sqlite:PATH, or a path) [env: PULSECHECK_STORE].
    #[arg(long, value_name = "URL", env = "PULSECHECK_STORE", hide_env = true)]
    pub store: Option<String>,

    /// Resolve names with this nameserver (`IP` or `IP:PORT`) instead of /etc/resolv.conf.
    #[arg(long, value_name = "IP[:PORT]")]
    pub nameserver: Option<String>,

    /// Also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// On shutdown, write run, schedule-lag and writer statistics to this file as JSON.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
}

const SERVE_AFTER_HELP: &str = "\
Reload: SIGHUP, or a change to the config file (checked every 2 s), reloads it; unchanged
checks keep their state, an invalid new config is logged and the old one keeps running.
SIGINT/SIGTERM stop cleanly (a second one exits at once).
Logs go to stderr; RUST_LOG filters them (default `info`, e.g. RUST_LOG=debug or
RUST_LOG=pulsecheck=debug,sqlx=warn).";

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The config file to check (YAML, or TOML by extension).
    #[arg(value_name = "CONFIG")]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
#[command(after_help = STATUS_AFTER_HELP)]
pub struct StatusArgs {
    #[command(flatten)]
    pub database: crate::database::DatabaseArgs,

    /// Output format: a table of the active checks, or JSON Lines (one object per check).
    #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
    pub format: StatusFormat,

    /// Colour the table: `auto` colours only on a terminal.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

const STATUS_AFTER_HELP: &str = "\
A check's result is stale when it is older than two intervals (plus 5 s); the interval
comes from --config, else from the gap between its last two results.

Exit codes:
  0  every check is up and its last result is fresh
  1  a check is down
  2  bad usage, or no database where it was looked for
  3  the database cannot be read
  4  stale: a check has not run for two intervals, or none has (the daemon is not running)";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
}

/// Output of `history` and `incidents`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReadFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The check's name, as in the config (`pulsecheck status` lists them).
    #[arg(value_name = "CHECK")]
    pub check: String,

    #[command(flatten)]
    pub database: crate::database::DatabaseArgs,

    /// Results per page, newest first.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub limit: usize,

    /// Only results that started before this time (RFC 3339, e.g. 2026-11-30T08:00:00Z):
    /// the next page, as the last line of the table says.
    #[arg(long, value_name = "TIME", value_parser = timestamp)]
    pub before: Option<jiff::Timestamp>,

    /// Output format: a table, or one JSON document with the uptime and the results.
    #[arg(long, value_enum, default_value_t = ReadFormat::Table)]
    pub format: ReadFormat,
}

#[derive(Args, Debug)]
pub struct IncidentsArgs {
    /// Only this check's incidents (all checks without it).
    #[arg(value_name = "CHECK")]
    pub check: Option<String>,

    #[command(flatten)]
    pub database: crate::database::DatabaseArgs,

    /// Incidents per page, newest first.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub limit: usize,

    /// Only incidents older than this one: the next page, as the last line of the table
    /// says.
    #[arg(long, value_name = "ID")]
    pub before_id: Option<i64>,

    /// Output format: a table, or one JSON document with the incidents and the uptime.
    #[arg(long, value_enum, default_value_t = ReadFormat::Table)]
    pub format: ReadFormat,
}

#[derive(Args, Debug)]
pub struct NotifyTestArgs {
    /// The channel's name in the config.
    #[arg(value_name = "CHANNEL")]
    pub channel: String,

    /// The config file that defines the channel.
    #[arg(long, short = 'C', value_name = "CONFIG")]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
#[command(after_long_help = SCAN_AFTER_HELP)]
pub struct ScanArgs {
    /// Targets, files of targets (one per line), or `-` for stdin. An argument with `://`
    /// is a target; one that exists as a file, starts with `/`, `.` or `~`, or ends in
    /// `.txt`, `.list`, `.lst`, `.csv` or `.conf` is a file; anything else is a bare target.
    #[arg(value_name = "TARGET|FILE|-")]
    pub inputs: Vec<String>,

    /// Read targets from this file (repeatable); `-` is stdin.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Output format. `auto` is a table on a terminal and JSON Lines when piped.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,

    /// Write results to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Row order of the table (JSON and CSV stream in completion order).
    #[arg(long, value_enum, default_value_t = Order::DownLast)]
    pub order: Order,

    /// Rows of the table. `auto` lists every target up to 100 of them, and past that on a
    /// terminal only those that are not up (the summary still counts all).
    #[arg(long, value_enum, default_value_t = Show::Auto)]
    pub show: Show,

    /// Deadline per check, covering every phase; starts when the check gets its slot.
    #[arg(short, long, default_value = "5s", value_parser = duration)]
    pub timeout: std::time::Duration,

    /// Checks in flight at once (clamped to the open-file limit).
    #[arg(short, long, default_value_t = pulsecheck_core::options::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,

    /// Checks in flight at once against one host.
    #[arg(long, default_value_t = pulsecheck_core::options::DEFAULT_PER_HOST)]
    pub per_host: usize,

    /// HTTP slots, at most --concurrency: a plain HTTP check in flight takes one, an HTTPS
    /// check two (it holds TLS and hyper's buffers, about 24 KiB, the whole time).
    /// [default: 5000]
    #[arg(long, value_name = "N")]
    pub http_in_flight: Option<usize>,

    /// HTTP method.
    #[arg(short = 'X', long, default_value = "GET")]
    pub method: String,

    /// Extra request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// HTTP statuses that count as up, after redirects: e.g. `200`, `200-399`, `2xx,301`.
    /// Without it, 2xx.
    #[arg(long, value_name = "CODES", value_parser = status_codes)]
    pub expect_status: Option<StatusMatcher>,

    /// Down (reason `body`) unless a value of this response header matches: `NAME~REGEX`,
    /// or `NAME=VALUE` for an exact value, e.g. `content-type~json` (repeatable).
    #[arg(long = "expect-header", value_name = "NAME~REGEX", value_parser = header_condition)]
    pub expect_headers: Vec<Condition>,

    /// Down (reason `body`) unless the body contains this text (repeatable).
    #[arg(long, value_name = "TEXT")]
    pub body_contains: Vec<String>,

    /// Down (reason `body`) unless the body matches this regular expression (repeatable).
    #[arg(long, value_name = "REGEX", value_parser = body_regex)]
    pub body_regex: Vec<Condition>,

    /// Down (reason `body`) unless this RFC 9535 JSONPath query on the JSON body selects
    /// something and every value it selects equals VALUE (read as JSON if it parses, else
    /// as a string): `'$.status=UP'`, `'$.checks[*].ok=true'`. Without `=VALUE` the query
    /// only has to select something (repeatable).
    #[arg(long = "json-path", value_name = "EXPR[=VALUE]", value_parser = json_path)]
    pub json_paths: Vec<Condition>,

    /// Down (reason `latency`) when a check that succeeded took this long or longer.
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    pub max_latency: Option<std::time::Duration>,

    /// Redirects followed at most; phases are summed across hops.
    #[arg(long, default_value_t = pulsecheck_core::options::DEFAULT_MAX_REDIRECTS)]
    pub max_redirects: u32,

    /// Body bytes read at most per response; the rest is not downloaded.
    #[arg(long, default_value_t = pulsecheck_core::options::DEFAULT_MAX_BODY_BYTES, value_name = "BYTES")]
    pub max_body: usize,

    /// Skip certificate verification (the certificate is still recorded).
    #[arg(short = 'k', long)]
    pub insecure: bool,

    /// Keep HTTP(S) connections open and reuse them for later checks of the same scheme,
    /// host and port, instead of a fresh connection per check. A check on a reused
    /// connection reports no DNS, connect or TLS time (those phases did not happen).
    #[arg(long)]
    pub reuse_connections: bool,

    /// Also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// TLS and HTTPS checks are down (reason `certificate`) when the certificate expires
    /// in fewer days.
    #[arg(long, value_name = "DAYS")]
    pub min_cert_days: Option<i64>,

    /// DNS checks are up on this response code (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, …)
    /// instead of the default, NOERROR with a record of the type asked for.
    #[arg(long, value_name = "RCODE", value_parser = dns_rcode)]
    pub dns_rcode: Option<Condition>,

    /// DNS checks are down (reason `dns`) unless some answer record, written as
    /// `TYPE DATA` (`A 127.0.0.1`), contains this text (repeatable).
    #[arg(long, value_name = "TEXT", value_parser = dns_answer)]
    pub dns_answer_contains: Vec<String>,

    /// Resolve names with this nameserver (`IP` or `IP:PORT`) instead of /etc/resolv.conf.
    #[arg(long, value_name = "IP[:PORT]")]
    pub nameserver: Option<String>,

    /// User-Agent header.
    #[arg(long, value_name = "TEXT")]
    pub user_agent: Option<String>,

    /// Do not show the progress bar.
    #[arg(long)]
    pub no_progress: bool,

    /// Do not print the summary.
    #[arg(short, long)]
    pub quiet: bool,

    /// Colour the table: `auto` colours only on a terminal.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

const SCAN_AFTER_HELP: &str = "\
Targets:
  http://HOST[:PORT]/PATH, https://…   HTTP(S) request, expected status 2xx after redirects
  tcp://HOST:PORT                      TCP connect
  tls://HOST[:PORT]                    TLS handshake and certificate (port 443 by default)
  dns://NAME?type=AAAA&server=IP:PORT  DNS query (type A, system nameserver by default)
  icmp://HOST                          ICMP echo (needs root or CAP_NET_RAW here)
  HOST or HOST/PATH                    same as https://HOST/PATH
  HOST:PORT                            same as tcp://HOST:PORT
In files: one target per line; blank lines and lines starting with # are skipped.

Conditions (the flags that judge an answer) run in this order, and the first that fails
gives the reason: --expect-status (2xx without it), --expect-header, --body-contains,
--body-regex, --json-path, --max-latency, --min-cert-days, --dns-rcode (NOERROR with an
answer without it), --dns-answer-contains. Each applies only to the targets it fits
and is skipped for the others: status, header, body and JSONPath to http(s)://,
--min-cert-days to https:// and tls://, the DNS ones to dns://, --max-latency to all.

Exit codes:
  0    every target is up
  1    at least one target is down
  2    bad usage or input (unknown flag, unreadable file, an invalid target line);
       every valid target is still checked and reported
  3    internal error: the ledger of started and finished checks did not balance
  130  interrupted (Ctrl+C or SIGTERM); finished results are printed, the rest are cancelled";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Auto,
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Order {
    /// Up first, then cancelled, then down, nearest the prompt; input order within each
    /// group.
    DownLast,
    /// Down first, then cancelled, then up; input order within each group.
    DownFirst,
    /// The order the targets were given in.
    Input,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Show {
    Auto,
    All,
    /// Only the targets that are not up: down, invalid and cancelled.
    Down,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

fn timestamp(text: &str) -> Result<jiff::Timestamp, String> {
    text.parse()
        .map_err(|e| format!("{e}; write an RFC 3339 time with its offset, e.g. 2026-11-30T08:00:00Z"))
}

fn duration(text: &str) -> Result<std::time::Duration, String> {
    pulsecheck_core::options::parse_duration(text)
}

fn status_codes(text: &str) -> Result<StatusMatcher, String> {
    StatusMatcher::parse(text)
}

fn body_regex(text: &str) -> Result<Condition, String> {
    Condition::body_regex(text)
}

fn dns_rcode(text: &str) -> Result<Condition, String> {
    Condition::dns_rcode(text)
}

fn dns_answer(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("the text is empty; write part of an answer record, e.g. '127.0.0.1' or 'MX 10 '".into());
    }
    Ok(text.to_owned())
}

/// `NAME~REGEX` or `NAME=VALUE`, split at the first `~` or `=` (neither can be in a
/// header name that anyone uses).
pub fn header_condition(text: &str) -> Result<Condition, String> {
    const HINT: &str = "write NAME~REGEX (some value matches) or NAME=VALUE (some value is exactly VALUE), \
                        e.g. 'content-type~json'";
    let Some(at) = text.find(['~', '=']) else {
        return Err(format!("there is no ~ or = in it; {HINT}"));
    };
    let (name, rest) = (text[..at].trim(), &text[at + 1..]);
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("'{name}' is not a header name; {HINT}"));
    }
    if text[at..].starts_with('~') {
        Condition::header_matches(name, rest).map_err(|e| format!("{e}; {HINT}"))
    } else {
        Ok(Condition::header_equals(name, rest.trim()))
    }
}

/// `EXPR=VALUE` or `EXPR`. The split is at the first `=` that leaves a valid query on its
/// left and is not part of a filter's `==`, `!=`, `<=` or `>=`, so
/// `$[?@.name=='db'].status=UP` works. VALUE is JSON when it parses as JSON (`3`,
/// `true`, `"3"`, `null`), else a string.
pub fn json_path(text: &str) -> Result<Condition, String> {
    const HINT: &str = "write EXPR=VALUE, e.g. '$.status=UP' or '$.count=3', or EXPR alone to require a match";
    for (at, _) in text.match_indices('=') {
        let before = text[..at].chars().next_back();
        let after = text[at + 1..].chars().next();
        if matches!(before, Some('=' | '!' | '<' | '>')) || after == Some('=') {
            continue;
        }
        let (expr, value) = (text[..at].trim(), &text[at + 1..]);
        let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        if let Ok(condition) = Condition::json_path(expr, JsonExpect::Equals(value)) {
            return Ok(condition);
        }
    }
    Condition::json_path(text.trim(), JsonExpect::Exists(true)).map_err(|e| format!("{e}; {HINT}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_flags() {
        let show = |text: &str| json_path(text).map(|c| c.to_string());
        assert_eq!(show("$.status=UP").unwrap(), "$.status == \"UP\"");
        assert_eq!(show("$.count=3").unwrap(), "$.count == 3");
        assert_eq!(show("$.count=\"3\"").unwrap(), "$.count == \"3\"");
        assert_eq!(show("$.ok=true").unwrap(), "$.ok == true");
        assert_eq!(show("$.a=b=c").unwrap(), "$.a == \"b=c\"");
        assert_eq!(show("$.status").unwrap(), "$.status exists");
        assert_eq!(
            show("$.checks[?@.name=='db'].status=UP").unwrap(),
            "$.checks[?@.name=='db'].status == \"UP\""
        );
        assert_eq!(show("$[?@.n>=2]").unwrap(), "$[?@.n>=2] exists");
        for bad in ["$[", "status=UP", "", "$.a==1"] {
            let e = json_path(bad).unwrap_err();
            assert!(e.contains("EXPR=VALUE"), "{bad}: {e}");
        }
    }

    #[test]
    fn header_flags() {
        let show = |text: &str| header_condition(text).map(|c| c.to_string());
        assert_eq!(show("Content-Type~json").unwrap(), "header content-type matches /json/");
        assert_eq!(show("x-a=1 = 2").unwrap(), "header x-a == \"1 = 2\"");
        assert_eq!(show("x-a~a=b").unwrap(), "header x-a matches /a=b/");
        for bad in ["content-type", "~json", "bad name~x", "x~("] {
            let e = header_condition(bad).unwrap_err();
            assert!(e.contains("NAME~REGEX"), "{bad}: {e}");
        }
    }
}

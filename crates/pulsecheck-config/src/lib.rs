//! The `pulsecheck serve` configuration file: checks, channels, store, limits,
//! maintenance windows and delivery settings, in YAML (`.yaml`, `.yml`) or TOML (`.toml`).
//!
//! [`load`] reads a file and [`load_str`] does the same from a string with an injected
//! environment (for tests and fuzzing). Both return the typed [`MonitorConfig`] or
//! *every* problem found, each as a [`ConfigError`] with file, line, column and a hint:
//!
//! ```text
//! pulsecheck.yaml:12:5: unknown key 'intervall'
//!   hint: did you mean 'interval'?
//! pulsecheck.yaml:20:9: channel 'slak' is not defined
//!   hint: did you mean 'slack'? defined channels: slack, ops
//! ```
//!
//! The stages, all pure except reading the file:
//!
//! 1. **parse** the text into a tree whose every node and key knows its line and column
//!    (serde-saphyr or toml); a syntax error stops here;
//! 2. **substitute** `${NAME}` and `${NAME:-default}` in string values (`$${` is a literal
//!    `${`), so secrets stay out of the file; an unset variable without a default is an
//!    error at its position. This works on parsed strings, so a value can never change
//!    the structure of the file;
//! 3. **deserialize** the raw serde structs (`deny_unknown_fields`), reporting every
//!    unknown key (with "did you mean"), wrong type and bad value, not just the first;
//! 4. **validate and build**: defaults, ranges, cross references, uniqueness, targets,
//!    regexes and JSONPath queries, into [`MonitorConfig`].
//!
//! The reference for every key is in the README ("Configuration") and the example
//! `examples/pulsecheck.yaml` uses all of them (a test makes sure).

#![forbid(unsafe_code)]

mod api_check;
mod cluster;
mod de;
mod quorum;
mod raw;
mod suggest;
mod tree;
mod validate;
mod web;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use api_check::{validate_api_check, CheckDefaults, FieldError};
pub use cluster::{is_postgres_url, ClusterConfig, DEFAULT_CLAIM_TTL, DEFAULT_LEASE_TTL, MIN_LEASE_TTL};
pub use pulsecheck_core::maintenance::{MaintenanceWindow, Recurrence};
pub use tree::Format;
pub use web::{ApiToken, ProbeModule, Prober, ServerConfig, DEFAULT_LISTEN};

use pulsecheck_core::channel::ChannelSpec;
use pulsecheck_core::monitor::{MonitoredCheck, Policy};
use pulsecheck_core::options::{CheckOptions, EngineOptions};
use pulsecheck_core::state::Thresholds;
use pulsecheck_core::target::Target;

/// Config files larger than this are refused.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Everything `pulsecheck serve` runs from.
#[derive(Clone, Debug)]
pub struct MonitorConfig {
    pub checks: Vec<CheckConfig>,
    pub channels: Vec<ChannelSpec>,
    pub store: StoreConfig,
    /// Global and per-host concurrency (`limits:`).
    pub limits: EngineOptions,
    pub maintenance: Vec<MaintenanceWindow>,
    pub delivery: DeliveryConfig,
    /// The HTTP listener (`server:`); `None` when the section is absent: no listener.
    pub server: Option<ServerConfig>,
    /// `/probe` modules: the built-in `http_2xx`, `tcp_connect`, `icmp` and `dns`, then
    /// the file's `modules:` (which may replace them), by name.
    pub modules: Vec<ProbeModule>,
    /// Several nodes on one PostgreSQL store (`cluster:`); `None`: this node alone.
    pub cluster: Option<ClusterConfig>,
    /// The file this was loaded from.
    pub source: PathBuf,
    /// The file's `defaults:`, for checks created through the API.
    pub check_defaults: CheckDefaults,
}

impl MonitorConfig {
    /// How long a node holds a notification it delivers on a shared store:
    /// `cluster.claim_ttl`, else the default stretched to twice the longest channel
    /// timeout.
    pub fn claim_ttl(&self) -> std::time::Duration {
        cluster::claim_ttl(
            self.cluster.as_ref().and_then(|c| c.claim_ttl),
            self.channels.iter().map(|c| c.timeout),
        )
    }

    pub fn check(&self, name: &str) -> Option<&CheckConfig> {
        self.checks.iter().find(|c| c.name == name)
    }

    pub fn module(&self, name: &str) -> Option<&ProbeModule> {
        self.modules.iter().find(|m| m.name == name)
    }

    pub fn channel(&self, name: &str) -> Option<&ChannelSpec> {
        self.channels.iter().find(|c| c.name == name)
    }

    /// What the monitor needs: each check's thresholds, channels and reminder, and the
    /// maintenance windows.
    pub fn policy(&self) -> Policy {
        let checks = self
            .checks
            .iter()
            .map(|c| MonitoredCheck {
                name: c.name.clone(),
                group: c.group.clone(),
                target: c.target.input.clone(),
                thresholds: c.thresholds,
                channels: c.channels.clone(),
                reminder: c.reminder,
                quorum: c.quorum.clone(),
            })
            .collect();
        Policy::new(checks, self.maintenance.clone())
    }

    /// The first maintenance window that covers `check` at `at`, if any.
    pub fn maintenance_for(&self, check: &CheckConfig, at: jiff::Timestamp) -> Option<&MaintenanceWindow> {
        self.maintenance
            .iter()
            .find(|w| w.covers(&check.name, check.group.as_deref(), at))
    }
}

/// One check as configured, with `defaults` applied.
#[derive(Clone, Debug)]
pub struct CheckConfig {
    /// Unique; the identity of a check across reloads.
    pub name: String,
    pub group: Option<String>,
    /// Always a valid target (`target.spec` is `Ok`).
    pub target: Target,
    pub interval: Duration,
    /// How the probe runs (`timeout`, `method`, `headers`, `user_agent`,
    /// `max_redirects`, `max_body`, `insecure`) and how its result is judged: `conditions`,
    /// in the order written, that apply to the target (the engine applies them,
    /// [`pulsecheck_core::conditions::judge`]).
    pub options: CheckOptions,
    pub thresholds: Thresholds,
    /// Names of channels in [`MonitorConfig::channels`].
    pub channels: Vec<String>,
    /// Re-alert this often while down; `None` for no reminders.
    pub reminder: Option<Duration>,
    /// Probed from several locations, down when `min_down` agree (see `quorum`).
    pub quorum: Option<pulsecheck_core::quorum::Quorum>,
    /// Whether the file or the API defines it (see [`validate_api_check`]).
    pub origin: pulsecheck_core::storage::Origin,
}

/// Two checks are equal when they would run the same way (used to tell, on reload,
/// which checks changed).
impl PartialEq for CheckConfig {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.group == other.group
            && self.target.input == other.target.input
            && self.interval == other.interval
            && self.thresholds == other.thresholds
            && self.channels == other.channels
            && self.reminder == other.reminder
            && self.quorum == other.quorum
            && self.options == other.options
            && self.origin == other.origin
    }
}

/// Where results are kept and for how long (`store:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// The SQLite file; relative paths are relative to the config file's directory.
    /// `None`: the default location, decided by the binary.
    pub path: Option<PathBuf>,
    /// A PostgreSQL database (`postgres://…`, after `${ENV}` substitution) instead of
    /// the SQLite file; never set together with `path`.
    pub url: Option<String>,
    /// Days down results, and results that caused a transition, stay raw (default 7).
    pub raw_days: u32,
    /// Hours every other result stays raw before only the aggregates keep it (default
    /// 48, never more than `raw_days` × 24).
    pub raw_up_hours: u32,
    /// Days hourly aggregates are kept (default 90, never less than `raw_days`).
    pub hourly_days: u32,
    /// Size budget of the database in bytes (default 2 GiB; 0: none). Over it, the
    /// oldest raw results are pruned first; the outbox never is.
    pub max_size: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: None,
            url: None,
            raw_days: validate::DEFAULT_RAW_DAYS,
            raw_up_hours: validate::DEFAULT_RAW_UP_HOURS,
            hourly_days: validate::DEFAULT_HOURLY_DAYS,
            max_size: validate::DEFAULT_MAX_SIZE,
        }
    }
}

/// Delivery of notifications (`delivery:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Concurrent delivery workers (default 4).
    pub workers: usize,
    /// First retry delay; doubles per attempt, with jitter (default 1s).
    pub backoff_base: Duration,
    /// Longest retry delay (default 5m).
    pub backoff_max: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            workers: validate::DEFAULT_WORKERS,
            backoff_base: validate::DEFAULT_BACKOFF_BASE,
            backoff_max: validate::DEFAULT_BACKOFF_MAX,
        }
    }
}

/// One problem in a config file. `line` and `column` are 1-based; both are 0 when the
/// problem is with the file as a whole (it cannot be read, or its name has no known
/// extension).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A problem at a place in the text (the file is added at the end).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Located {
    pub loc: tree::Loc,
    pub message: String,
    pub hint: Option<String>,
}

impl Located {
    pub(crate) fn new(loc: tree::Loc, message: String) -> Located {
        Located {
            loc,
            message,
            hint: None,
        }
    }
}

fn whole_file(path: &Path, message: String, hint: Option<String>) -> ConfigError {
    ConfigError {
        file: path.to_owned(),
        line: 0,
        column: 0,
        message,
        hint,
    }
}

/// The format a file name asks for: `.yaml`/`.yml` or `.toml` (any case).
pub fn format_for(path: &Path) -> Result<Format, ConfigError> {
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("yaml" | "yml") => Ok(Format::Yaml),
        Some("toml") => Ok(Format::Toml),
        other => Err(whole_file(
            path,
            match other {
                Some(ext) => format!("unsupported config file extension '.{ext}'"),
                None => "the config file name has no extension".to_owned(),
            },
            Some("name the file *.yaml, *.yml or *.toml".into()),
        )),
    }
}

/// Reads, substitutes `${ENV}` from the process environment, parses, validates and builds.
pub fn load(path: &Path) -> Result<MonitorConfig, Vec<ConfigError>> {
    let format = format_for(path).map_err(|e| vec![e])?;
    let text = read(path).map_err(|e| vec![e])?;
    load_str_as(&text, path, format, &|name| std::env::var(name).ok())
}

fn read(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| whole_file(path, format!("cannot read the config file: {e}"), None))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| whole_file(path, format!("cannot read the config file: {e}"), None))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(whole_file(
            path,
            format!("the config file is larger than {} MiB", MAX_FILE_BYTES / (1024 * 1024)),
            None,
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        whole_file(
            path,
            format!(
                "the config file is not UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
            None,
        )
    })
}

/// [`load`] without I/O: the text, the path it is reported under (its extension picks
/// the format), and the environment to substitute from.
pub fn load_str(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<MonitorConfig, Vec<ConfigError>> {
    let format = format_for(path).map_err(|e| vec![e])?;
    load_str_as(text, path, format, env)
}

/// [`load_str`] with the format given explicitly.
pub fn load_str_as(
    text: &str,
    path: &Path,
    format: Format,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<MonitorConfig, Vec<ConfigError>> {
    let (config, _, errors) = run(text, path, format, env);
    match config {
        Some(config) if errors.is_empty() => Ok(config),
        _ => Err(errors),
    }
}

fn run(
    text: &str,
    path: &Path,
    format: Format,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Option<MonitorConfig>, de::Coverage, Vec<ConfigError>) {
    let to_errors = |located: Vec<Located>| finish(path, located);
    let parsed = match format {
        Format::Yaml => tree::parse_yaml(text),
        Format::Toml => tree::parse_toml(text),
    };
    let mut root = match parsed {
        Ok(root) => root,
        Err(error) => return (None, Default::default(), to_errors(vec![error])),
    };
    if !matches!(root.kind, tree::Kind::Map(_) | tree::Kind::Null) {
        let error = Located {
            loc: root.loc,
            message: format!("the file must be a mapping of sections, found {}", root.describe()),
            hint: Some("start with e.g. 'checks:' and 'channels:'".into()),
        };
        return (None, Default::default(), to_errors(vec![error]));
    }
    if matches!(root.kind, tree::Kind::Null) {
        root.kind = tree::Kind::Map(Vec::new());
    }
    let mut env_errors = Vec::new();
    let index = tree::LineIndex::new(text);
    tree::substitute_env(&mut root, text, &index, env, &mut env_errors);
    // A value with an unset variable is not what the user meant: report the variable,
    // not what the half-substituted value then fails.
    let poisoned: BTreeSet<tree::Loc> = env_errors.iter().filter_map(|e| e.node).collect();

    let ctx = de::Ctx::default();
    let raw = de::from_node::<raw::RawConfig>(&root, &ctx);
    let (mut located, coverage, invalid) = ctx.into_parts();
    let raw = raw.unwrap_or_default();
    let (config, validation_errors) = validate::validate(&raw, &root, &invalid, path);
    located.extend(validation_errors);
    located.retain(|e| !poisoned.contains(&e.loc));
    located.extend(env_errors.into_iter().map(|e| e.error));
    (Some(config), coverage, to_errors(located))
}

/// Sorts by position and drops exact repeats.
fn finish(path: &Path, mut located: Vec<Located>) -> Vec<ConfigError> {
    located.sort_by_key(|l| (l.loc.line, l.loc.column));
    located.dedup();
    located
        .into_iter()
        .map(|l| ConfigError {
            file: path.to_owned(),
            line: l.loc.line,
            column: l.loc.column,
            message: l.message,
            hint: l.hint,
        })
        .collect()
}

/// One section of the schema: its keys, and which of them a document used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaSection {
    /// Where the section is, e.g. `checks[] and defaults`, `channels.NAME.smtp`.
    pub section: &'static str,
    /// Every key the section accepts (derived from the serde structs).
    pub keys: &'static [&'static str],
    /// The keys the document used in this section (anywhere it appears).
    pub used: BTreeSet<&'static str>,
}

impl SchemaSection {
    /// Keys of the section the document did not use.
    pub fn unused(&self) -> Vec<&'static str> {
        self.keys.iter().copied().filter(|k| !self.used.contains(k)).collect()
    }
}

/// Every section of the schema with the keys a document uses, for the test that the
/// example configs cover the whole schema (and for generating docs). Errors as [`load_str`].
pub fn schema_coverage(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<SchemaSection>, Vec<ConfigError>> {
    let format = format_for(path).map_err(|e| vec![e])?;
    let (_, mut coverage, errors) = run(text, path, format, env);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut sections: Vec<SchemaSection> = raw::SCHEMA
        .iter()
        .map(|(section, fields)| {
            let (name, keys) = fields();
            let used = coverage.remove(name).map(|(_, used)| used).unwrap_or_default();
            SchemaSection { section, keys, used }
        })
        .collect();
    // A struct the document reached that SCHEMA does not list is a schema bug.
    for (name, (keys, used)) in coverage {
        sections.push(SchemaSection {
            section: name,
            keys,
            used,
        });
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    fn check(name: &str, group: Option<&str>) -> CheckConfig {
        CheckConfig {
            name: name.into(),
            group: group.map(Into::into),
            target: Target::parse("tcp://127.0.0.1:1", None),
            interval: Duration::from_secs(60),
            options: CheckOptions::default(),
            thresholds: Thresholds::default(),
            channels: Vec::new(),
            reminder: None,
            quorum: None,
            origin: Default::default(),
        }
    }

    #[test]
    fn one_off_and_recurring_windows() {
        let mut window = MaintenanceWindow {
            name: "w".into(),
            start: at("2025-06-01T22:00:00Z"),
            end: at("2025-06-01T23:00:00Z"),
            every: None,
            checks: Some(vec!["api".into()]),
            groups: Some(vec!["db".into()]),
        };
        let api = check("api", None);
        let db = check("pg", Some("db"));
        let other = check("web", Some("front"));
        assert!(window.covers(&api.name, api.group.as_deref(), at("2025-06-01T22:00:00Z")));
        assert!(window.covers(&db.name, db.group.as_deref(), at("2025-06-01T22:59:59Z")));
        assert!(!window.covers(&other.name, other.group.as_deref(), at("2025-06-01T22:30:00Z")));
        assert!(
            !window.covers(&api.name, api.group.as_deref(), at("2025-06-01T23:00:00Z")),
            "end is exclusive"
        );
        assert!(!window.covers(&api.name, api.group.as_deref(), at("2025-06-02T22:30:00Z")));
        assert!(!window.covers(&api.name, api.group.as_deref(), at("2025-06-01T21:59:59Z")));

        window.every = Some(Recurrence::Daily);
        assert!(window.covers(&api.name, api.group.as_deref(), at("2025-06-05T22:30:00Z")));
        assert!(!window.covers(&api.name, api.group.as_deref(), at("2025-06-05T21:30:00Z")));
        window.every = Some(Recurrence::Weekly);
        assert!(window.covers(&api.name, api.group.as_deref(), at("2025-06-08T22:30:00Z")));
        assert!(!window.covers(&api.name, api.group.as_deref(), at("2025-06-05T22:30:00Z")));

        window.checks = None;
        window.groups = None;
        assert!(
            window.covers(&other.name, other.group.as_deref(), at("2025-06-08T22:30:00Z")),
            "no lists: every check"
        );
    }

    #[test]
    fn error_display() {
        let error = ConfigError {
            file: "p.yaml".into(),
            line: 3,
            column: 5,
            message: "unknown key 'intervall'".into(),
            hint: Some("did you mean 'interval'?".into()),
        };
        assert_eq!(
            error.to_string(),
            "p.yaml:3:5: unknown key 'intervall'\n  hint: did you mean 'interval'?"
        );
        let whole = format_for(Path::new("p.json")).unwrap_err();
        assert_eq!(
            whole.to_string(),
            "p.json: unsupported config file extension '.json'\n  hint: name the file *.yaml, *.yml or *.toml"
        );
        assert_eq!(format_for(Path::new("A.YML")).unwrap(), Format::Yaml);
        assert_eq!(format_for(Path::new("a.toml")).unwrap(), Format::Toml);
    }
}

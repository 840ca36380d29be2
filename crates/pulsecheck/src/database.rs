//! Finding and opening the database `pulsecheck serve` writes, the one way `status`,
//! `history` and `incidents` do it: `--db` (or `PULSECHECK_DB`), else `--config`'s
//! `store.path`, else the default path `serve` uses without either.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use pulsecheck_store::Store;

use crate::exit::Exit;

/// The flags that say where the database is.
#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// The SQLite database written by `pulsecheck serve` [default: $PULSECHECK_DB, else
    /// the --config file's store.path, else $XDG_STATE_HOME/pulsecheck/pulsecheck.db,
    /// the same default as `serve`].
    #[arg(long, value_name = "PATH", env = "PULSECHECK_DB", hide_env = true)]
    pub db: Option<PathBuf>,

    /// Find the database through this config file's store.path (and read the checks'
    /// intervals from it).
    #[arg(long, value_name = "CONFIG")]
    pub config: Option<PathBuf>,
}

/// An open store and what the config file (when given) says about the checks.
pub struct Opened {
    pub store: Store,
    /// Each configured check's interval, by name; empty without `--config`.
    pub intervals: HashMap<String, Duration>,
}

/// Opens the database for reading, or prints why not: a missing database is bad input
/// (exit 2) with what to do, a database that cannot be read is exit 3.
pub async fn open(args: &DatabaseArgs) -> Result<Opened, Exit> {
    let (configured, intervals) = match &args.config {
        Some(path) => match crate::config_file::load_or_report(path) {
            Ok(loaded) if args.db.is_none() && loaded.config.store.url.is_some() => {
                // Reads of a shared PostgreSQL store go through a node's API for now.
                eprintln!(
                    "error: {} keeps its results in PostgreSQL (store.url); this command reads SQLite files \
                     only: use a serve node's API (/api/v1/checks, /api/v1/incidents) or pass --db PATH",
                    path.display()
                );
                return Err(Exit::BadInput);
            }
            Ok(loaded) => (
                loaded.config.store.path,
                loaded
                    .config
                    .checks
                    .iter()
                    .map(|check| (check.name.clone(), check.interval))
                    .collect(),
            ),
            Err(exit) => return Err(exit),
        },
        None => (None, HashMap::new()),
    };
    let path = crate::serve::database_path(args.db.as_deref(), args.config.as_deref(), configured.as_deref());
    if !path.exists() {
        eprintln!(
            "error: no database at {}; start `pulsecheck serve` first, or pass --db PATH (or set PULSECHECK_DB) \
             or --config FILE",
            path.display()
        );
        return Err(Exit::BadInput);
    }
    match Store::open_existing(&path).await {
        Ok(store) => Ok(Opened { store, intervals }),
        Err(e) => {
            eprintln!("error: {e}");
            Err(Exit::Internal)
        }
    }
}

/// The target of the check named `name`, or a clear error (exit 2) naming the checks
/// the database knows.
pub async fn known_check(store: &Store, name: &str) -> Result<String, Exit> {
    let checks = store.status().await.map_err(|e| {
        eprintln!("error: {e}");
        Exit::Internal
    })?;
    if let Some(check) = checks.iter().find(|c| c.name == name) {
        return Ok(check.target.clone());
    }
    let names: Vec<&str> = checks.iter().take(20).map(|c| c.name.as_str()).collect();
    let more = checks.len().saturating_sub(names.len());
    let known = match (names.is_empty(), more) {
        (true, _) => "it has no checks yet".to_owned(),
        (false, 0) => format!("it has {}", names.join(", ")),
        (false, more) => format!(
            "it has {} and {more} more (`pulsecheck status` lists them)",
            names.join(", ")
        ),
    };
    eprintln!("error: no check named '{name}' in {}; {known}", store.path().display());
    Err(Exit::BadInput)
}

/// The frame of a read-only command (`history`, `incidents`): open the database on a
/// one-thread runtime, build the report, close, then print it as JSON or as the
/// command's table at the terminal's width.
pub fn print_report<R: serde::Serialize>(
    database: &DatabaseArgs,
    format: crate::cli::ReadFormat,
    report: impl AsyncFnOnce(&Store, jiff::Timestamp) -> Result<R, Exit>,
    table: impl FnOnce(&R, jiff::Timestamp, Option<usize>) -> String,
) -> Exit {
    use std::io::{self, IsTerminal};
    let runtime = match crate::runtime::build(crate::runtime::Threads::One) {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let now = jiff::Timestamp::now();
    let report = runtime.block_on(async {
        let opened = open(database).await?;
        let report = report(&opened.store, now).await;
        opened.store.close().await;
        report
    });
    let report = match report {
        Ok(report) => report,
        Err(exit) => return exit,
    };
    let text = match format {
        crate::cli::ReadFormat::Json => serde_json::to_string_pretty(&report)
            .map(|json| json + "\n")
            .unwrap_or_default(),
        crate::cli::ReadFormat::Table => {
            let width = io::stdout()
                .is_terminal()
                .then(|| terminal_size::terminal_size_of(io::stdout()))
                .flatten()
                .map(|(width, _)| usize::from(width.0));
            table(&report, now, width)
        }
    };
    crate::columns::print_stdout(&text)
}

//! Finding and opening the store `pulsecheck serve` writes, the one way `status`,
//! `history` and `incidents` do it: `--store` (or `PULSECHECK_STORE`), else `--db` (or
//! `PULSECHECK_DB`), else `--config`'s `store.url` or `store.path`, else the default path
//! `serve` uses without either. The commands read through the core traits, so an SQLite
//! file and a shared PostgreSQL database answer the same.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use pulsecheck_core::storage::console::{CheckPage, CheckSummary};
use pulsecheck_core::storage::{Console, History, Housekeeping};
use pulsecheck_postgres::{PgOptions, PgStore};
use pulsecheck_store::Store;

use crate::exit::Exit;
use crate::serve::backend::StoreLocation;

/// The flags that say where the store is.
#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// The SQLite database written by `pulsecheck serve` [default: $PULSECHECK_DB, else
    /// the --config file's store.path, else $XDG_STATE_HOME/pulsecheck/pulsecheck.db,
    /// the same default as `serve`].
    #[arg(long, value_name = "PATH", env = "PULSECHECK_DB", hide_env = true)]
    pub db: Option<PathBuf>,

    /// The store, overriding --db and the config: a PostgreSQL URL
    /// (postgres://USER:PASSWORD@HOST/DB, the database the serve nodes share) or an
    /// SQLite file (sqlite:PATH, or a path) [env: PULSECHECK_STORE].
    #[arg(long, value_name = "URL", env = "PULSECHECK_STORE", hide_env = true)]
    pub store: Option<String>,

    /// Find the store through this config file's store.url or store.path (and read the
    /// checks' intervals from it).
    #[arg(long, value_name = "CONFIG")]
    pub config: Option<PathBuf>,
}

/// An open store, read through the traits both backends implement.
pub struct Reader {
    pub history: Arc<dyn History>,
    pub console: Arc<dyn Console>,
    closer: Arc<dyn Housekeeping>,
    /// The file, or the URL without its password, for messages.
    pub location: String,
}

impl Reader {
    fn of<S: History + Console + Housekeeping>(store: Arc<S>, location: String) -> Reader {
        Reader {
            history: store.clone(),
            console: store.clone(),
            closer: store,
            location,
        }
    }

    /// Every check the store knows, retired ones included, by name.
    pub async fn checks(&self) -> Result<Vec<CheckSummary>, String> {
        const PAGE: usize = 1_000;
        let mut checks: Vec<CheckSummary> = Vec::new();
        loop {
            let page = CheckPage::including_retired(checks.last().map(|c| c.name.clone()), PAGE);
            let rows = self.console.check_page(&page).await.map_err(|e| e.to_string())?;
            let last_page = rows.len() < PAGE;
            checks.extend(rows);
            if last_page {
                return Ok(checks);
            }
        }
    }

    pub async fn close(&self) {
        self.closer.close().await;
    }
}

/// An open store and what the config file (when given) says about the checks.
pub struct Opened {
    pub reader: Reader,
    /// Each configured check's interval, by name; empty without `--config`.
    pub intervals: HashMap<String, Duration>,
}

/// Opens the store for reading, or prints why not: a missing SQLite file is bad input
/// (exit 2) with what to do, a store that cannot be read or reached is exit 3.
pub async fn open(args: &DatabaseArgs) -> Result<Opened, Exit> {
    let (store, intervals) = match &args.config {
        Some(path) => {
            let loaded = crate::config_file::load_or_report(path)?;
            let intervals = loaded
                .config
                .checks
                .iter()
                .map(|check| (check.name.clone(), check.interval))
                .collect();
            (loaded.config.store, intervals)
        }
        None => (pulsecheck_config::StoreConfig::default(), HashMap::new()),
    };
    let location = match (&args.store, &store.url) {
        (Some(text), _) => StoreLocation::parse(text),
        (None, Some(url)) if args.db.is_none() => StoreLocation::Postgres(url.clone()),
        _ => StoreLocation::Sqlite(crate::serve::database_path(
            args.db.as_deref(),
            args.config.as_deref(),
            store.path.as_deref(),
        )),
    };
    let reader = match &location {
        StoreLocation::Sqlite(path) => {
            if !path.exists() {
                eprintln!(
                    "error: no database at {}; start `pulsecheck serve` first, or pass --db PATH (or set \
                     PULSECHECK_DB), --store URL or --config FILE",
                    path.display()
                );
                return Err(Exit::BadInput);
            }
            Store::open_existing(path)
                .await
                .map(|store| Reader::of(Arc::new(store), path.display().to_string()))
                .map_err(|e| e.to_string())
        }
        StoreLocation::Postgres(url) => {
            // A reader takes no claims; two connections are plenty for its few queries,
            // and a person waits for the answer, so an unreachable server fails sooner
            // than it does for `serve`.
            let options = PgOptions {
                node: "pulsecheck-cli".into(),
                max_connections: 2,
                acquire_timeout: Duration::from_secs(5),
                ..PgOptions::default()
            };
            PgStore::connect(url, options)
                .await
                .map(|store| {
                    let location = store.location().to_owned();
                    Reader::of(Arc::new(store), location)
                })
                .map_err(|e| e.to_string())
        }
    };
    match reader {
        Ok(reader) => Ok(Opened { reader, intervals }),
        Err(e) => {
            eprintln!("error: {e}");
            Err(Exit::Internal)
        }
    }
}

/// The target of the check named `name`, or a clear error (exit 2) naming the checks
/// the store knows.
pub async fn known_check(reader: &Reader, name: &str) -> Result<String, Exit> {
    let internal = |e: String| {
        eprintln!("error: {e}");
        Exit::Internal
    };
    if let Some(check) = reader
        .console
        .check_summary(name)
        .await
        .map_err(|e| internal(e.to_string()))?
    {
        return Ok(check.target);
    }
    const SHOWN: usize = 20;
    let page = CheckPage::including_retired(None, SHOWN + 1);
    let checks = reader
        .console
        .check_page(&page)
        .await
        .map_err(|e| internal(e.to_string()))?;
    let names: Vec<&str> = checks.iter().take(SHOWN).map(|c| c.name.as_str()).collect();
    let known = match (names.is_empty(), checks.len() > SHOWN) {
        (true, _) => "it has no checks yet".to_owned(),
        (false, false) => format!("it has {}", names.join(", ")),
        (false, true) => format!("it has {} and more (`pulsecheck status` lists them)", names.join(", ")),
    };
    eprintln!("error: no check named '{name}' in {}; {known}", reader.location);
    Err(Exit::BadInput)
}

/// The frame of a read-only command (`history`, `incidents`): open the database on a
/// one-thread runtime, build the report, close, then print it as JSON or as the
/// command's table at the terminal's width.
pub fn print_report<R: serde::Serialize>(
    database: &DatabaseArgs,
    format: crate::cli::ReadFormat,
    report: impl AsyncFnOnce(&Reader, jiff::Timestamp) -> Result<R, Exit>,
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
        let report = report(&opened.reader, now).await;
        opened.reader.close().await;
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

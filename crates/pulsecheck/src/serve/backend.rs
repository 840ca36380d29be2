//! The store behind `serve`, whichever it is: an SQLite file (one node) or a PostgreSQL
//! database (one node or several). The daemon sees it only through the core traits, so
//! nothing else in `serve` knows which backend runs.
//!
//! Where: `--store` (or `PULSECHECK_STORE`), else `--db` (or `PULSECHECK_DB`), else the
//! config's `store.url`, else its `store.path`, else the default SQLite file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pulsecheck_config::MonitorConfig;
use pulsecheck_core::cluster::Coordinator;
use pulsecheck_core::outbox::Outbox;
use pulsecheck_core::quorum::SecondOpinions;
use pulsecheck_core::storage::{Console, History, Housekeeping, Storage};
use pulsecheck_postgres::{PgOptions, PgStore};
use pulsecheck_store::{Store, StoreOptions};
use pulsecheck_web::AppState;

/// Where the store is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl StoreLocation {
    /// From `--store`: a PostgreSQL URL, `sqlite:PATH` (or `sqlite://PATH`), or a path.
    pub fn parse(text: &str) -> StoreLocation {
        if pulsecheck_config::is_postgres_url(text) {
            return StoreLocation::Postgres(text.trim().to_owned());
        }
        let path = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
            .unwrap_or(text);
        StoreLocation::Sqlite(PathBuf::from(path))
    }

    /// The location `serve` uses (see the module's doc for the order).
    pub fn resolve(
        store: Option<&str>,
        db: Option<&Path>,
        config_path: &Path,
        config: &pulsecheck_config::StoreConfig,
    ) -> StoreLocation {
        if let Some(store) = store {
            return StoreLocation::parse(store);
        }
        if db.is_none() {
            if let Some(url) = &config.url {
                return StoreLocation::Postgres(url.clone());
            }
        }
        StoreLocation::Sqlite(super::database_path(db, Some(config_path), config.path.as_deref()))
    }

    /// For logs: the path, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            StoreLocation::Sqlite(path) => path.display().to_string(),
            StoreLocation::Postgres(url) => without_password(url),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user@host/db`.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// The open store, as the traits the daemon uses.
pub struct Backend {
    pub storage: Arc<dyn Storage>,
    pub outbox: Arc<dyn Outbox>,
    pub history: Arc<dyn History>,
    pub console: Arc<dyn Console>,
    pub housekeeping: Arc<dyn Housekeeping>,
    /// Membership and leases, on a shared store; `None`: this node owns everything.
    pub coordinator: Option<Arc<dyn Coordinator>>,
    /// Second-opinion requests of quorum checks, on a shared store.
    pub second_opinions: Option<Arc<dyn SecondOpinions>>,
    /// Runs the store refused because their fence was stale (0 where nothing is fenced).
    pub rejected_runs: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// Hands the store's reads to the web state, whose `with_store` takes one concrete
    /// store for both of its traits.
    attach: Box<dyn Fn(AppState) -> AppState + Send + Sync>,
}

impl Backend {
    /// Every trait from one store that implements them all.
    pub fn from_store<S>(store: Arc<S>, coordinator: Option<Arc<dyn Coordinator>>) -> Backend
    where
        S: Storage + Outbox + History + Console + Housekeeping,
    {
        let web = store.clone();
        Backend {
            storage: store.clone(),
            outbox: store.clone(),
            history: store.clone(),
            console: store.clone(),
            housekeeping: store,
            coordinator,
            second_opinions: None,
            rejected_runs: Arc::new(|| 0),
            attach: Box::new(move |state| state.with_store(web.clone())),
        }
    }

    /// Opens (and creates or migrates) the store at `location`; `node` is this process's
    /// id on a shared store (outbox claims are taken in its name).
    pub async fn open(location: &StoreLocation, config: &MonitorConfig, node: &str) -> Result<Backend, String> {
        match location {
            StoreLocation::Sqlite(path) => {
                let options = StoreOptions {
                    max_size: config.store.max_size,
                    ..StoreOptions::default()
                };
                let store = Store::open_with(path, options).await.map_err(|e| e.to_string())?;
                Ok(Backend::from_store(Arc::new(store), None))
            }
            StoreLocation::Postgres(url) => {
                let options = PgOptions {
                    node: node.to_owned(),
                    claim_ttl: config.claim_ttl(),
                    ..PgOptions::default()
                };
                let store = Arc::new(PgStore::connect(url, options).await.map_err(|e| e.to_string())?);
                let mut backend = Backend::from_store(store.clone(), Some(store.clone() as Arc<dyn Coordinator>));
                backend.second_opinions = Some(store.clone() as Arc<dyn SecondOpinions>);
                backend.rejected_runs = Arc::new(move || store.fenced_runs());
                Ok(backend)
            }
        }
    }

    /// The web state reading history and status from this store.
    pub fn attach(&self, state: AppState) -> AppState {
        (self.attach)(state)
    }

    pub fn location(&self) -> String {
        self.storage.location()
    }

    /// Closes the connections, after the writer finished.
    pub async fn close(&self) {
        self.housekeeping.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_locations_parse_and_hide_passwords() {
        assert_eq!(
            StoreLocation::parse("postgresql://u:p@h/db"),
            StoreLocation::Postgres("postgresql://u:p@h/db".into())
        );
        assert_eq!(
            StoreLocation::parse("sqlite:/tmp/x.db"),
            StoreLocation::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            StoreLocation::parse("data/x.db"),
            StoreLocation::Sqlite("data/x.db".into())
        );
        assert_eq!(
            without_password("postgres://u:s3cret@h:5432/db"),
            "postgres://u@h:5432/db"
        );
        assert_eq!(without_password("postgres://h/db"), "postgres://h/db");
        assert_eq!(without_password("postgres://u:p@w@h/db?x=/"), "postgres://u@h/db?x=/");
    }

    #[test]
    fn the_command_line_wins_over_the_config() {
        let config = pulsecheck_config::StoreConfig {
            url: Some("postgres://h/db".into()),
            ..Default::default()
        };
        let file = Path::new("/etc/pulsecheck/p.yaml");
        assert_eq!(
            StoreLocation::resolve(None, None, file, &config),
            StoreLocation::Postgres("postgres://h/db".into())
        );
        assert_eq!(
            StoreLocation::resolve(Some("sqlite:a.db"), None, file, &config),
            StoreLocation::Sqlite("a.db".into())
        );
        assert_eq!(
            StoreLocation::resolve(None, Some(Path::new("/b.db")), file, &config),
            StoreLocation::Sqlite("/b.db".into())
        );
    }
}

//! pulsecheck's HTTP listener: one axum router, served on `server.listen` with graceful
//! shutdown on the daemon's shutdown path.
//!
//! - [`metrics`]: `/metrics`, Prometheus text or OpenMetrics, from memory;
//! - [`probe`]: `/probe`, blackbox_exporter's multi-target pattern, under the SSRF guard;
//! - [`auth`]: tokens with scopes for reads (optional) and changes (always), `/login`;
//! - [`api`]: the REST API under `/api/v1`, with [`control`] into the daemon;
//! - [`health`]: the engine's own health figures and the runtime-stall detector.
//!
//! Routes of other concerns (the status page, the API) are added in [`router`], one
//! module each, sharing [`AppState`].

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod blackbox;
pub mod control;
pub mod exposition;
pub mod health;
pub mod metrics;
pub mod page;
pub mod probe;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use pulsecheck_config::{MonitorConfig, ServerConfig};
use pulsecheck_core::live::LiveChecks;
use pulsecheck_core::storage::{Console, History};
use pulsecheck_core::Engine;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use health::{ClusterGauges, HealthSources, OutboxGauges, StallStats};

/// What every handler shares: the engine, the config in force, the live view of the
/// checks and the health sources. Cloning is cheap.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) engine: Arc<Engine>,
    pub(crate) config: watch::Receiver<Arc<MonitorConfig>>,
    pub(crate) live: Arc<LiveChecks>,
    pub(crate) health: HealthSources,
    /// The size of the last `/metrics` page, to size the next one's buffer.
    pub(crate) last_page_bytes: AtomicUsize,
    /// Cancelled when the listener shuts down, so `/probe` checks in flight end at once
    /// instead of holding the shutdown for their whole timeout.
    pub(crate) stopping: CancellationToken,
    /// The store's reads for the status page and the API (`None` without a store, as in
    /// tests of /metrics alone).
    pub(crate) console: Option<Arc<dyn Console>>,
    pub(crate) history: Option<Arc<dyn History>>,
    /// The daemon's controls (run now, API checks, silences); `None` outside `serve`.
    pub(crate) control: Option<Arc<dyn control::Control>>,
    /// API changes to checks, one at a time (so two creates of a name cannot both pass).
    pub(crate) check_writes: tokio::sync::Mutex<()>,
}

impl AppState {
    /// `config` follows reloads: modules, tokens and the allow-list take effect at once
    /// (the listen address only at the next start).
    pub fn new(
        engine: Arc<Engine>,
        config: watch::Receiver<Arc<MonitorConfig>>,
        live: Arc<LiveChecks>,
        health: HealthSources,
    ) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                engine,
                config,
                live,
                health,
                last_page_bytes: AtomicUsize::new(0),
                stopping: CancellationToken::new(),
                console: None,
                history: None,
                control: None,
                check_writes: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The same state reading history and status from `store` (before any clone is
    /// handed out).
    pub fn with_store<S: Console + History>(mut self, store: Arc<S>) -> AppState {
        let inner = Arc::get_mut(&mut self.inner).expect("with_store is called before the state is shared");
        inner.console = Some(store.clone());
        inner.history = Some(store);
        self
    }

    /// The same state with the daemon's controls (before any clone is handed out).
    pub fn with_control(mut self, control: Arc<dyn control::Control>) -> AppState {
        let inner = Arc::get_mut(&mut self.inner).expect("with_control is called before the state is shared");
        inner.control = Some(control);
        self
    }

    pub fn control(&self) -> Option<&Arc<dyn control::Control>> {
        self.inner.control.as_ref()
    }

    pub fn console(&self) -> Option<&Arc<dyn Console>> {
        self.inner.console.as_ref()
    }

    pub fn history(&self) -> Option<&Arc<dyn History>> {
        self.inner.history.as_ref()
    }

    pub fn config(&self) -> Arc<MonitorConfig> {
        self.inner.config.borrow().clone()
    }

    /// The `server:` section in force; without one (removed by a reload), reads are
    /// public, nothing is allowed to `/probe` and no token opens mutations.
    pub fn server(&self) -> ServerConfig {
        self.inner
            .config
            .borrow()
            .server
            .clone()
            .unwrap_or_else(|| ServerConfig {
                listen: pulsecheck_config::DEFAULT_LISTEN.parse().expect("valid default"),
                tokens: Vec::new(),
                public_reads: true,
                allow: Arc::default(),
            })
    }

    /// The engine's started and finished checks.
    pub fn ledger(&self) -> pulsecheck_core::LedgerCounts {
        self.inner.engine.ledger()
    }

    pub fn live(&self) -> &Arc<LiveChecks> {
        &self.inner.live
    }
}

/// Every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::handler))
        .route("/probe", get(probe::handler))
        .route("/login", get(auth::login))
        .nest("/api/v1", api::routes())
        .merge(page::routes())
        .with_state(state)
}

/// Binds `addr`, with an error that says what to do.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen on {addr}: {e}; change server.listen in the config (another process may hold the port)")
    })
}

/// Serves until `shutdown` is cancelled, then stops accepting, cancels the `/probe`
/// checks in flight (they answer `probe_success 0` at once) and lets requests finish.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: CancellationToken) -> std::io::Result<()> {
    let stopping = state.inner.stopping.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown.cancelled().await;
            stopping.cancel();
        })
        .await
}

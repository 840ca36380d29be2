//! What the API asks of the running daemon (implemented by `pulsecheck serve`): run a
//! check now, start, replace or stop an API check, and hold back or stop alerts. The
//! API validates and persists first (through the store's `Console`); the daemon then
//! applies the change to its scheduler and monitor without a restart, and has applied
//! it when the call returns (so `AppState::config` already shows it).

use pulsecheck_config::CheckConfig;
use pulsecheck_core::outbox::BoxFuture;
use pulsecheck_core::CheckResult;

/// Why the daemon could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// No running check has this name.
    NotRunning(String),
    /// The daemon is shutting down.
    Stopping,
    /// Another node of the cluster runs this check (named when known).
    NotOwned { check: String, owner: Option<String> },
}

pub trait Control: Send + Sync + 'static {
    /// Runs `check` now, through the engine's limits, without overlapping a scheduled
    /// run of it; the run is recorded like a scheduled one. Returns its result.
    fn run_now<'a>(&'a self, check: &'a str) -> BoxFuture<'a, Result<CheckResult, ControlError>>;

    /// Starts, or replaces, a check created through the API: validated (origin `Api`)
    /// and persisted; `definition` is the JSON it was validated from, which the daemon
    /// validates again when the config file is reloaded (defaults and channels may
    /// change).
    fn put_check(&self, check: CheckConfig, definition: serde_json::Value) -> BoxFuture<'_, Result<(), ControlError>>;

    /// Stops an API check (its definition is already deleted from the store).
    fn delete_check<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>>;

    /// Holds `check`'s alerts back until `until` (`None` lifts the silence).
    fn silence<'a>(&'a self, check: &'a str, until: Option<jiff::Timestamp>)
        -> BoxFuture<'a, Result<(), ControlError>>;

    /// Stops reminders for `check`'s down span that started at `span_started`.
    fn acknowledge<'a>(
        &'a self,
        check: &'a str,
        span_started: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<(), ControlError>>;

    /// This node's membership and leases when it is one node of a cluster on a shared
    /// store; `None` for a single node, which owns every check.
    fn cluster(&self) -> Option<ClusterView> {
        None
    }
}

/// One node's view of the cluster it belongs to, for `GET /api/v1/cluster`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClusterView {
    /// This node's id (a new one per process start).
    pub node: String,
    /// This node's location label, if it has one.
    pub location: Option<String>,
    /// How long leases and memberships last without renewal, in milliseconds.
    pub lease_ttl_ms: u64,
    /// The live members at this node's last successful heartbeat, by node id (empty
    /// while this node is cut off from the store).
    pub members: Vec<ClusterMember>,
    /// The leases this node holds, by key, with the fencing epoch it holds each under.
    pub leases: Vec<HeldLease>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClusterMember {
    pub node: String,
    pub location: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HeldLease {
    pub key: String,
    pub epoch: i64,
}

//! The daemon's side of the API's [`Control`]: each call becomes a [`Command`] to the
//! serve loop, which owns the scheduler, and is answered once applied. The loop keeps
//! the operator's state ([`Operated`]): checks created through the API, silences and
//! acknowledgements, which it merges into every config it applies (the file's, on
//! start and on each reload, and after each API change).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use pulsecheck_config::{CheckConfig, MonitorConfig};
use pulsecheck_core::monitor::Policy;
use pulsecheck_core::outbox::BoxFuture;
use pulsecheck_core::ownership::Owned;
use pulsecheck_core::storage::{Console, Origin};
use pulsecheck_core::CheckResult;
use pulsecheck_web::control::{ClusterMember, ClusterView, Control, ControlError, HeldLease};
use tokio::sync::{mpsc, oneshot, watch};

/// One request from the API to the serve loop.
pub enum Command {
    RunNow {
        check: String,
        reply: oneshot::Sender<Result<CheckResult, ControlError>>,
    },
    PutCheck {
        check: Box<CheckConfig>,
        definition: serde_json::Value,
        reply: oneshot::Sender<()>,
    },
    DeleteCheck {
        name: String,
        reply: oneshot::Sender<()>,
    },
    Silence {
        check: String,
        until: Option<jiff::Timestamp>,
        reply: oneshot::Sender<()>,
    },
    Acknowledge {
        check: String,
        span_started: jiff::Timestamp,
        reply: oneshot::Sender<()>,
    },
}

/// [`Control`] over a channel to the serve loop.
pub struct DaemonControl {
    pub commands: mpsc::Sender<Command>,
    /// On a shared store: this node's leases as its ownership loop publishes them.
    pub cluster: Option<ClusterSource>,
}

/// What `GET /api/v1/cluster` reads: the ownership loop's publications.
pub struct ClusterSource {
    pub owned: watch::Receiver<Arc<Owned>>,
    pub location: Option<String>,
    pub ttl: std::time::Duration,
}

impl ClusterSource {
    fn view(&self) -> ClusterView {
        let owned = self.owned.borrow().clone();
        let mut leases: Vec<HeldLease> = owned
            .leases
            .iter()
            .map(|(key, epoch)| HeldLease {
                key: key.clone(),
                epoch: *epoch,
            })
            .collect();
        leases.sort_by(|a, b| a.key.cmp(&b.key));
        ClusterView {
            node: owned.node.clone(),
            location: self.location.clone(),
            lease_ttl_ms: u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX),
            members: owned
                .members
                .iter()
                .map(|m| ClusterMember {
                    node: m.node.clone(),
                    location: m.location.clone(),
                })
                .collect(),
            leases,
        }
    }
}

impl DaemonControl {
    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, ControlError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| ControlError::Stopping)?;
        answer.await.map_err(|_| ControlError::Stopping)
    }
}

impl Control for DaemonControl {
    fn run_now<'a>(&'a self, check: &'a str) -> BoxFuture<'a, Result<CheckResult, ControlError>> {
        Box::pin(async move {
            self.ask(|reply| Command::RunNow {
                check: check.to_owned(),
                reply,
            })
            .await?
        })
    }

    fn put_check(&self, check: CheckConfig, definition: serde_json::Value) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(self.ask(move |reply| Command::PutCheck {
            check: Box::new(check),
            definition,
            reply,
        }))
    }

    fn delete_check<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(self.ask(move |reply| Command::DeleteCheck {
            name: name.to_owned(),
            reply,
        }))
    }

    fn silence<'a>(
        &'a self,
        check: &'a str,
        until: Option<jiff::Timestamp>,
    ) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(self.ask(move |reply| Command::Silence {
            check: check.to_owned(),
            until,
            reply,
        }))
    }

    fn acknowledge<'a>(
        &'a self,
        check: &'a str,
        span_started: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(self.ask(move |reply| Command::Acknowledge {
            check: check.to_owned(),
            span_started,
            reply,
        }))
    }

    fn cluster(&self) -> Option<ClusterView> {
        self.cluster.as_ref().map(ClusterSource::view)
    }
}

/// What operators changed through the API, kept by the serve loop.
#[derive(Default)]
pub struct Operated {
    /// API checks that validate against the file in force, by name, with the JSON they
    /// came from.
    checks: BTreeMap<String, (CheckConfig, serde_json::Value)>,
    /// Definitions that no longer validate against the file (kept in the store; they
    /// run again once the file allows them).
    invalid: BTreeMap<String, serde_json::Value>,
    silences: HashMap<String, jiff::Timestamp>,
    acknowledged: HashMap<String, jiff::Timestamp>,
}

impl Operated {
    /// Loads API checks, silences and the acknowledgements of the open incidents of the
    /// `down` checks from the store, and validates the checks against `file`.
    pub async fn load(
        console: &dyn Console,
        file: &MonitorConfig,
        down: impl Iterator<Item = &str>,
    ) -> Result<Operated, String> {
        let now = jiff::Timestamp::now();
        let mut operated = Operated::default();
        let definitions = console
            .api_checks()
            .await
            .map_err(|e| format!("cannot read the checks created through the API: {e}"))?;
        for stored in definitions {
            operated.invalid.insert(stored.name, stored.definition);
        }
        operated.revalidate(file);
        for silence in console
            .silences(now)
            .await
            .map_err(|e| format!("cannot read the silences: {e}"))?
        {
            operated.silences.insert(silence.check, silence.until);
        }
        // Acknowledged incidents still open: their reminders stay stopped. Only a check
        // that is down has an open incident, and it is its newest.
        for check in down {
            let page = pulsecheck_core::storage::history::SpanPage {
                check: Some(check.to_owned()),
                before_id: None,
                limit: 1,
            };
            let newest = console
                .incident_page(&page)
                .await
                .map_err(|e| format!("cannot read the incidents of {check}: {e}"))?;
            if let Some(incident) = newest.first() {
                if incident.span.ended_at.is_none() && incident.acknowledged_at.is_some() {
                    operated.acknowledged.insert(check.to_owned(), incident.span.started_at);
                }
            }
        }
        Ok(operated)
    }

    /// Validates every API definition again against `file` (after a reload): those that
    /// no longer pass stop, with an error in the log, and run again once they pass.
    pub fn revalidate(&mut self, file: &MonitorConfig) {
        let mut all: BTreeMap<String, serde_json::Value> = std::mem::take(&mut self.invalid);
        all.extend(
            std::mem::take(&mut self.checks)
                .into_iter()
                .map(|(name, (_, json))| (name, json)),
        );
        for (name, definition) in all {
            if file.check(&name).is_some() {
                tracing::error!(
                    check = %name,
                    "the config file now defines a check with the name of one created through the API; \
                     the file's runs, the API's is kept in the store but not run (delete it through the API)"
                );
                self.invalid.insert(name, definition);
                continue;
            }
            match pulsecheck_config::validate_api_check(file, &definition) {
                Ok(check) => {
                    self.checks.insert(name, (check, definition));
                }
                Err(errors) => {
                    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    tracing::error!(
                        check = %name,
                        errors = %errors.join("; "),
                        "a check created through the API no longer validates against the config file; it stops \
                         until the file allows it again or it is changed through the API"
                    );
                    self.invalid.insert(name, definition);
                }
            }
        }
    }

    pub fn put(&mut self, check: CheckConfig, definition: serde_json::Value) {
        self.invalid.remove(&check.name);
        self.checks.insert(check.name.clone(), (check, definition));
    }

    pub fn delete(&mut self, name: &str) {
        self.checks.remove(name);
        self.invalid.remove(name);
    }

    pub fn silence(&mut self, check: String, until: Option<jiff::Timestamp>) {
        match until {
            Some(until) => self.silences.insert(check, until),
            None => self.silences.remove(&check),
        };
    }

    pub fn acknowledge(&mut self, check: String, span_started: jiff::Timestamp) {
        self.acknowledged.insert(check, span_started);
    }

    /// The file's checks and then the API's (the file wins a name).
    pub fn effective(&self, file: &MonitorConfig) -> MonitorConfig {
        let mut config = file.clone();
        for (check, _) in self.checks.values() {
            if config.check(&check.name).is_none() {
                debug_assert_eq!(check.origin, Origin::Api);
                config.checks.push(check.clone());
            }
        }
        config
    }

    /// The monitor's policy for `config`, with the silences and acknowledgements.
    pub fn policy(&self, config: &MonitorConfig) -> Arc<Policy> {
        Arc::new(
            config
                .policy()
                .with_silences(self.silences.clone())
                .with_acknowledged(self.acknowledged.clone()),
        )
    }
}

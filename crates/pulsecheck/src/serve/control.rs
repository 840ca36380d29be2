//! The daemon's side of the API's [`Control`]: each call becomes a [`Command`] to the
//! serve loop, which owns the scheduler, and is answered once applied. The loop keeps
//! the operator's state ([`Operated`]): checks created through the API, silences and
//! acknowledgements, which it merges into every config it applies (the file's, on
//! start and on each reload, and after each API change).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
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
    /// What the store holds of the operators' changes, read by [`super::operated_sync`]
    /// on a shared store: another node's API may have changed it.
    Refresh {
        snapshot: Box<OperatedSnapshot>,
        /// [`Operated::changes`] when the read began.
        seen: u64,
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
    /// Counts this node's own API changes (see [`super::operated_sync`]).
    pub changes: Arc<AtomicU64>,
}

/// The operators' changes as the store holds them: API checks, silences in force, and
/// the acknowledged open incidents of the checks asked about.
#[derive(Debug, Default, PartialEq)]
pub struct OperatedSnapshot {
    pub definitions: BTreeMap<String, serde_json::Value>,
    pub silences: HashMap<String, jiff::Timestamp>,
    /// Check → start of its acknowledged open incident.
    pub acknowledged: HashMap<String, jiff::Timestamp>,
}

impl OperatedSnapshot {
    /// Reads the snapshot; acknowledgements only of `down` (only a check that is down
    /// has an open incident, and it is its newest).
    pub async fn read(console: &dyn Console, down: impl Iterator<Item = &str>) -> Result<OperatedSnapshot, String> {
        let now = jiff::Timestamp::now();
        let mut snapshot = OperatedSnapshot::default();
        for stored in console
            .api_checks()
            .await
            .map_err(|e| format!("cannot read the checks created through the API: {e}"))?
        {
            snapshot.definitions.insert(stored.name, stored.definition);
        }
        for silence in console
            .silences(now)
            .await
            .map_err(|e| format!("cannot read the silences: {e}"))?
        {
            snapshot.silences.insert(silence.check, silence.until);
        }
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
                    snapshot.acknowledged.insert(check.to_owned(), incident.span.started_at);
                }
            }
        }
        Ok(snapshot)
    }
}

/// What [`Operated::refresh`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// The set of API checks differs: the config must be applied again.
    pub checks: bool,
    /// Silences or acknowledgements differ: the monitor's policy must be sent again.
    pub policy: bool,
}

impl Operated {
    /// Loads API checks, silences and the acknowledgements of the open incidents of the
    /// `down` checks from the store, and validates the checks against `file`.
    pub async fn load(
        console: &dyn Console,
        file: &MonitorConfig,
        down: impl Iterator<Item = &str>,
    ) -> Result<Operated, String> {
        let snapshot = OperatedSnapshot::read(console, down).await?;
        let mut operated = Operated {
            invalid: snapshot.definitions,
            silences: snapshot.silences,
            acknowledged: snapshot.acknowledged,
            ..Operated::default()
        };
        operated.revalidate(file);
        Ok(operated)
    }

    /// Takes the store's view (another node's API may have changed it): its API checks
    /// and silences replace this node's, its acknowledgements are added (they only stop
    /// reminders of the span they name, so an old one is harmless).
    pub fn refresh(&mut self, snapshot: OperatedSnapshot, file: &MonitorConfig) -> Refreshed {
        let mut refreshed = Refreshed::default();
        let current: BTreeMap<&String, &serde_json::Value> = self
            .checks
            .iter()
            .map(|(name, (_, json))| (name, json))
            .chain(self.invalid.iter())
            .collect();
        let stored: BTreeMap<&String, &serde_json::Value> = snapshot.definitions.iter().collect();
        if current != stored {
            self.checks.clear();
            self.invalid = snapshot.definitions;
            self.revalidate(file);
            refreshed.checks = true;
        }
        if self.silences != snapshot.silences {
            self.silences = snapshot.silences;
            refreshed.policy = true;
        }
        for (check, span_started) in snapshot.acknowledged {
            if self.acknowledged.insert(check, span_started) != Some(span_started) {
                refreshed.policy = true;
            }
        }
        refreshed
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

    /// Notes an API change made on this node.
    fn changed(&self) {
        self.changes.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    pub fn put(&mut self, check: CheckConfig, definition: serde_json::Value) {
        self.changed();
        self.invalid.remove(&check.name);
        self.checks.insert(check.name.clone(), (check, definition));
    }

    pub fn delete(&mut self, name: &str) {
        self.changed();
        self.checks.remove(name);
        self.invalid.remove(name);
    }

    pub fn silence(&mut self, check: String, until: Option<jiff::Timestamp>) {
        self.changed();
        match until {
            Some(until) => self.silences.insert(check, until),
            None => self.silences.remove(&check),
        };
    }

    pub fn acknowledge(&mut self, check: String, span_started: jiff::Timestamp) {
        self.changed();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> MonitorConfig {
        let text = "server:\n  listen: 127.0.0.1:0\n  allow: [127.0.0.1]\nchecks:\n  - name: file-check\n    \
                    target: http://127.0.0.1:9/\n";
        pulsecheck_config::load_str(text, std::path::Path::new("p.yaml"), &|_| None).unwrap()
    }

    fn ts(second: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_767_225_600 + second).unwrap()
    }

    #[test]
    fn a_refresh_takes_the_stores_checks_and_silences_and_adds_its_acknowledgements() {
        let file = file();
        let mut operated = Operated::default();
        operated.acknowledge("db".into(), ts(0));
        let api = serde_json::json!({"name": "api", "target": "http://127.0.0.1:9/api"});
        let mut snapshot = OperatedSnapshot::default();
        snapshot.definitions.insert("api".into(), api.clone());
        snapshot.silences.insert("api".into(), ts(3_600));
        snapshot.acknowledged.insert("web".into(), ts(10));
        let refreshed = operated.refresh(snapshot, &file);
        assert_eq!(
            refreshed,
            Refreshed {
                checks: true,
                policy: true
            }
        );
        let names: Vec<String> = operated.effective(&file).checks.into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["file-check", "api"]);
        assert_eq!(operated.silences.get("api"), Some(&ts(3_600)));
        assert_eq!(
            operated.acknowledged.len(),
            2,
            "the store's acknowledgement is added to this node's"
        );

        // The same view again changes nothing.
        let mut same = OperatedSnapshot::default();
        same.definitions.insert("api".into(), api);
        same.silences.insert("api".into(), ts(3_600));
        same.acknowledged.insert("web".into(), ts(10));
        assert_eq!(operated.refresh(same, &file), Refreshed::default());

        // Deleted and unsilenced through another node: gone here too.
        assert_eq!(
            operated.refresh(OperatedSnapshot::default(), &file),
            Refreshed {
                checks: true,
                policy: true
            }
        );
        assert_eq!(operated.effective(&file).checks.len(), 1);
        assert!(operated.silences.is_empty());
    }

    #[test]
    fn every_api_change_on_this_node_is_counted() {
        let mut operated = Operated::default();
        operated.silence("a".into(), Some(ts(1)));
        operated.silence("a".into(), None);
        operated.acknowledge("a".into(), ts(0));
        operated.delete("a");
        assert_eq!(operated.changes.load(std::sync::atomic::Ordering::Acquire), 4);
    }
}

//! The scheduler's runner in production: each run is one `Engine::check`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use pulsecheck_core::config::{CheckConfig, MonitorConfig};
use pulsecheck_core::outbox::BoxFuture;
use pulsecheck_core::scheduler::{Job, Runner};
use pulsecheck_core::{CheckResult, Engine};
use tokio_util::sync::CancellationToken;

/// A configured check as the scheduler sees it. Two specs are equal when their whole
/// configuration is, so a reload restarts exactly the checks whose config changed.
pub struct JobSpec {
    pub check: CheckConfig,
    fingerprint: u64,
}

impl Hash for JobSpec {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fingerprint.hash(state);
    }
}

impl JobSpec {
    pub fn new(check: CheckConfig) -> JobSpec {
        // Debug covers every field (regexes print their pattern), which is what a
        // config change is.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        format!("{check:?}").hash(&mut hasher);
        JobSpec {
            fingerprint: hasher.finish(),
            check,
        }
    }
}

pub fn jobs(config: &MonitorConfig) -> Vec<Job<JobSpec>> {
    config
        .checks
        .iter()
        .map(|check| Job {
            name: check.name.clone(),
            interval: check.interval,
            spec: Arc::new(JobSpec::new(check.clone())),
        })
        .collect()
}

pub struct EngineRunner {
    pub engine: Arc<Engine>,
}

impl Runner<JobSpec> for EngineRunner {
    fn run<'a>(&'a self, job: &'a Job<JobSpec>, cancel: &'a CancellationToken) -> BoxFuture<'a, CheckResult> {
        let check = &job.spec.check;
        Box::pin(self.engine.check(&check.target, &check.options, cancel))
    }
}

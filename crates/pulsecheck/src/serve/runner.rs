//! The scheduler's runner in production: each run is one `Engine::check`. Jobs carry
//! their `CheckConfig`, whose `PartialEq` tells a reload which checks changed.

use std::sync::Arc;

use pulsecheck_config::{CheckConfig, MonitorConfig};
use pulsecheck_core::outbox::BoxFuture;
use pulsecheck_core::scheduler::{Job, Runner};
use pulsecheck_core::{CheckResult, Engine};
use tokio_util::sync::CancellationToken;

pub fn jobs(config: &MonitorConfig) -> Vec<Job<CheckConfig>> {
    config
        .checks
        .iter()
        .map(|check| Job {
            name: check.name.clone(),
            interval: check.interval,
            spec: Arc::new(check.clone()),
        })
        .collect()
}

pub struct EngineRunner {
    pub engine: Arc<Engine>,
}

impl Runner<CheckConfig> for EngineRunner {
    fn run<'a>(&'a self, job: &'a Job<CheckConfig>, cancel: &'a CancellationToken) -> BoxFuture<'a, CheckResult> {
        // The engine judges the result with the check's conditions (in its options).
        Box::pin(self.engine.check(&job.spec.target, &job.spec.options, cancel))
    }
}

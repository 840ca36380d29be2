//! The web crate's one integration-test binary: the real listener on loopback, driven
//! with a real HTTP client, probing the real simulator.

mod compat;
mod metrics;
mod probe;

use std::path::Path;
use std::sync::Arc;

use pulsecheck_config::MonitorConfig;
use pulsecheck_core::live::LiveChecks;
use pulsecheck_core::{Engine, EngineSetup};
use pulsecheck_web::{AppState, HealthSources};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A listener on 127.0.0.1:0 serving `config` (YAML), until dropped.
pub struct Web {
    pub base: String,
    pub state: AppState,
    pub config: watch::Sender<Arc<MonitorConfig>>,
    stop: CancellationToken,
    _task: tokio::task::JoinSet<()>,
}

impl Drop for Web {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn load(yaml: &str) -> MonitorConfig {
    pulsecheck_config::load_str(yaml, Path::new("test.yaml"), &|_| None)
        .unwrap_or_else(|errors| panic!("{}", errors.iter().map(|e| format!("{e}\n")).collect::<String>()))
}

pub async fn start(yaml: &str, engine: EngineSetup) -> Web {
    let (config, receiver) = watch::channel(Arc::new(load(yaml)));
    let engine = Arc::new(Engine::new(engine).expect("engine"));
    let state = AppState::new(
        engine,
        receiver,
        Arc::new(LiveChecks::default()),
        HealthSources::default(),
    );
    let listener = pulsecheck_web::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let mut task = tokio::task::JoinSet::new();
    task.spawn({
        let (state, stop) = (state.clone(), stop.clone());
        async move {
            pulsecheck_web::serve(listener, state, stop).await.unwrap();
        }
    });
    Web {
        base,
        state,
        config,
        stop,
        _task: task,
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `(name, labels)` of every sample of a text page, labels sorted, values dropped.
pub fn series(page: &str) -> Vec<(String, Vec<String>)> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let head = line.rsplit_once(' ').map_or(line, |(head, _)| head);
            match head.split_once('{') {
                Some((name, labels)) => {
                    let mut keys: Vec<String> = labels
                        .trim_end_matches('}')
                        .split("\",")
                        .filter_map(|pair| pair.split_once('=').map(|(k, _)| k.to_owned()))
                        .collect();
                    keys.sort();
                    (name.to_owned(), keys)
                }
                None => (head.to_owned(), Vec::new()),
            }
        })
        .collect()
}

/// The value of the first sample whose line starts with `prefix`.
pub fn value(page: &str, prefix: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

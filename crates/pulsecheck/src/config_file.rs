//! Loading a config file, the one way every command that reads one (`serve`, `validate`,
//! `status`, `notify-test`, and a reload) does it: parse and validate the file, build
//! every channel so template errors surface before anything starts, and report every
//! problem with its location and hint.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use pulsecheck_config::MonitorConfig;
use pulsecheck_notify::{Channel, Channels};

use crate::exit::Exit;

/// A config file that loaded and whose channels were built.
pub struct Loaded {
    pub config: MonitorConfig,
    pub channels: Channels,
}

/// Loads `path`; on failure, every error as a line (`file:line:column: message` and its
/// hint).
pub fn load(path: &Path) -> Result<Loaded, Vec<String>> {
    let config =
        pulsecheck_config::load(path).map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let channels = build_channels(&config)?;
    Ok(Loaded { config, channels })
}

/// Loads `path` for a command: on failure prints every error and a count to stderr and
/// returns the exit code for bad input.
pub fn load_or_report(path: &Path) -> Result<Loaded, Exit> {
    load(path).map_err(|errors| {
        for error in &errors {
            eprintln!("{error}");
        }
        eprintln!("{} error(s) in {}", errors.len(), path.display());
        Exit::BadInput
    })
}

/// Builds every channel of `config`.
fn build_channels(config: &MonitorConfig) -> Result<Channels, Vec<String>> {
    let mut channels = HashMap::new();
    let mut errors = Vec::new();
    for spec in &config.channels {
        match Channel::new(spec.clone()) {
            Ok(channel) => {
                channels.insert(spec.name.clone(), channel);
            }
            Err(e) => errors.push(format!("{}: channel '{}': {e}", config.source.display(), spec.name)),
        }
    }
    if errors.is_empty() {
        Ok(Arc::new(channels))
    } else {
        Err(errors)
    }
}

//! One engine setup for `scan` and `serve`: raise the open-file limit and fit the
//! concurrency to it, parse `--nameserver`, load `--cacert`.

use std::path::Path;

use pulsecheck_core::rlimit::{max_concurrency_for, raise_nofile_limit};
use pulsecheck_core::{EngineOptions, EngineSetup};

/// Builds the engine's setup. `note` receives what the user should know but that is not
/// an error (the concurrency was lowered); an `Err` is a usage error, prefixed with the
/// flag it is about.
pub fn engine_setup(
    mut limits: EngineOptions,
    nameserver: Option<&str>,
    cacert: Option<&Path>,
    note: impl Fn(String),
) -> Result<EngineSetup, String> {
    match raise_nofile_limit() {
        Ok(nofile) => {
            let max = max_concurrency_for(nofile);
            if limits.concurrency > max {
                note(format!(
                    "concurrency lowered from {} to {max} to fit the open-file limit ({nofile}); raise it with `ulimit -n`",
                    limits.concurrency
                ));
                limits.concurrency = max;
            }
        }
        Err(e) => note(format!(
            "cannot read the open-file limit ({e}); keeping concurrency {}",
            limits.concurrency
        )),
    }
    let nameserver = nameserver
        .map(pulsecheck_core::target::parse_server)
        .transpose()
        .map_err(|m| format!("--nameserver: {m}"))?;
    let extra_ca = match cacert {
        Some(path) => pulsecheck_core::tls::load_pem_certificates(path).map_err(|e| format!("--cacert {e}"))?,
        None => Vec::new(),
    };
    Ok(EngineSetup {
        limits,
        nameserver,
        extra_ca,
        ..EngineSetup::default()
    })
}

//! Target names end to end: international names in every form, and targets that are
//! invalid for a reason found only when the check runs still name their line.

use std::sync::Arc;
use std::time::Duration;

use pulsecheck_core::{CheckOptions, CheckResult, Engine, EngineSetup, Outcome, Reason, Target};
use pulsecheck_sim::{SimConfig, SimHandle};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

async fn sim_and_engine() -> (SimHandle, Arc<Engine>) {
    let sim = pulsecheck_sim::start(SimConfig::default())
        .await
        .expect("simulator starts");
    let ca = CertificateDer::pem_slice_iter(sim.info.ca_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("sim CA parses");
    let engine = Engine::new(EngineSetup {
        nameserver: Some(sim.info.dns),
        extra_ca: ca,
        ..EngineSetup::default()
    })
    .expect("engine builds");
    (sim, Arc::new(engine))
}

async fn check(engine: &Engine, target: &Target) -> CheckResult {
    let options = CheckOptions {
        timeout: Duration::from_secs(3),
        ..CheckOptions::default()
    };
    engine.check(target, &options, &CancellationToken::new()).await
}

/// `bücher.pulsecheck.test` is asked for as `xn--bcher-kva.pulsecheck.test` by every
/// probe, not percent-encoded, and the simulator's DNS answers it.
#[tokio::test]
async fn international_names_are_converted_for_every_probe() {
    let (sim, engine) = sim_and_engine().await;
    let name = "bücher.pulsecheck.test";
    let http_port = sim.info.http[0].port();
    for target in [
        format!("http://{name}:{http_port}/ok"),
        format!("tcp://{name}:{http_port}"),
        format!("{name}:{http_port}"),
        format!("tls://{name}:{}", sim.info.tls_valid.port()),
        format!("dns://{name}?server={}", sim.info.dns),
    ] {
        let r = check(&engine, &Target::parse(&target, None)).await;
        assert_eq!(r.outcome, Outcome::Up, "{target}: {r:#?}");
    }
    let r = check(
        &engine,
        &Target::parse(&format!("dns://{name}?server={}", sim.info.dns), None),
    )
    .await;
    let answers = r.dns.expect("a DNS answer").answers;
    assert_eq!(answers, vec!["A 127.0.0.1".to_owned()]);
    // ICMP may lack the privilege here; what matters is that the name resolved.
    let r = check(&engine, &Target::parse(&format!("icmp://{name}"), None)).await;
    assert!(r.outcome == Outcome::Up || r.reason == Some(Reason::Internal), "{r:#?}");
}

/// Whatever makes a target unusable, the result names its line and says why.
#[tokio::test]
async fn every_invalid_target_names_its_line() {
    let (sim, engine) = sim_and_engine().await;
    let http = sim.info.http[0];
    let long_label = "a".repeat(64);
    let long_name = ["abcdefghi"; 30].join(".");
    let long_path = "p".repeat(1024 * 1024);
    for (line, target) in [
        (3, format!("http://{long_label}.pulsecheck.test:{}/", http.port())),
        (4, format!("tcp://{long_name}:80")),
        (5, format!("dns://{long_label}.pulsecheck.test?server={}", sim.info.dns)),
        (6, format!("dns://{long_name}?server={}", sim.info.dns)),
        (7, format!("http://{http}/{long_path}")),
        (8, format!("tcp://{http}").replace(&http.port().to_string(), "0")),
        (9, format!("http:/{http}/")),
    ] {
        let r = check(&engine, &Target::parse(&target, Some(line))).await;
        let shown = &target[..target.len().min(80)];
        assert_eq!(r.reason, Some(Reason::InvalidTarget), "{shown}: {r:#?}");
        let error = r.error.as_deref().unwrap();
        assert!(error.starts_with(&format!("line {line}: ")), "{shown}: {error}");
        assert!(error.len() < 600, "the message quotes a long target shortened: {error}");
    }
}

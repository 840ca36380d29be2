//! `/probe` as blackbox_exporter answers it: 400s, failures as `probe_success 0`, the
//! scrape timeout, debug output, tokens, and the SSRF guard on what it may reach.

use std::time::{Duration, Instant};

use pulsecheck_core::EngineSetup;
use pulsecheck_sim::SimConfig;

use crate::{client, start, value};

async fn get(url: &str, query: &[(&str, &str)], headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = client().get(url).query(query);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn bad_requests_are_400_and_failures_are_200_with_probe_success_0() {
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let http = sim.info.http[0];
    let web = start(&format!("server:\n  allow: [\"{http}\"]\n"), EngineSetup::default()).await;
    let probe = format!("{}/probe", web.base);

    let (status, body) = get(&probe, &[("module", "http_2xx")], &[]).await;
    assert_eq!((status, body.as_str()), (400, "Target parameter is missing\n"));
    let (status, body) = get(&probe, &[("target", "x"), ("module", "nope")], &[]).await;
    assert_eq!(status, 400);
    assert!(
        body.starts_with("Unknown module \"nope\"; modules: http_2xx, tcp_connect, icmp, dns"),
        "{body}"
    );

    // No module: http_2xx, as blackbox_exporter.
    let (status, page) = get(&probe, &[("target", &format!("{http}/ok"))], &[]).await;
    assert_eq!(status, 200);
    assert_eq!(value(&page, "probe_success "), Some(1.0), "{page}");
    assert!(!page.contains("probe_failure_reason{"), "no reason when up: {page}");

    let (status, page) = get(&probe, &[("target", &format!("http://{http}/status/500"))], &[]).await;
    assert_eq!(status, 200);
    assert_eq!(value(&page, "probe_success "), Some(0.0), "{page}");
    assert_eq!(value(&page, "probe_http_status_code "), Some(500.0));
    assert_eq!(
        value(&page, "probe_failure_reason{reason=\"status\"} "),
        Some(1.0),
        "{page}"
    );
    // Each request has its own page: the failure above left nothing in the next one.
    let (_, page) = get(&probe, &[("target", &format!("http://{http}/ok"))], &[]).await;
    assert!(!page.contains("probe_failure_reason{"), "{page}");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_scrape_timeout_header_bounds_the_probe() {
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let http = sim.info.http[0];
    let web = start(
        &format!("server:\n  allow: [\"{http}\"]\nmodules:\n  quick:\n    prober: http\n    timeout: 300ms\n"),
        EngineSetup::default(),
    )
    .await;
    let probe = format!("{}/probe", web.base);
    let slow = format!("http://{http}/delay/20000");
    let started = Instant::now();
    let (status, page) = get(
        &probe,
        &[("target", &slow)],
        &[("X-Prometheus-Scrape-Timeout-Seconds", "1.5")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    assert_eq!(
        value(&page, "probe_timeout_seconds "),
        Some(1.0),
        "the header minus 0.5 s: {page}"
    );
    assert_eq!(
        value(&page, "probe_failure_reason{reason=\"timeout\"} "),
        Some(1.0),
        "{page}"
    );
    // The module's shorter timeout wins.
    let (_, page) = get(
        &probe,
        &[("target", &slow), ("module", "quick")],
        &[("X-Prometheus-Scrape-Timeout-Seconds", "10")],
    )
    .await;
    assert_eq!(value(&page, "probe_timeout_seconds "), Some(0.3), "{page}");
    let (status, _) = get(
        &probe,
        &[("target", &slow)],
        &[("X-Prometheus-Scrape-Timeout-Seconds", "soon")],
    )
    .await;
    assert_eq!(status, 500);
    sim.shutdown().await;
}

#[tokio::test]
async fn debug_returns_the_log_the_metrics_and_the_module() {
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let http = sim.info.http[0];
    let web = start(&format!("server:\n  allow: [\"{http}\"]\n"), EngineSetup::default()).await;
    let (status, body) = get(
        &format!("{}/probe", web.base),
        &[("target", &format!("http://{http}/status/503")), ("debug", "true")],
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let logs = body.find("Logs for the probe:\n").expect("logs");
    let metrics = body
        .find("\n\n\nMetrics that would have been returned:\n")
        .expect("metrics");
    let module = body
        .find("\n\n\nModule configuration:\nprober: http\n")
        .expect("module");
    assert!(logs < metrics && metrics < module, "{body}");
    assert!(body.contains("msg=\"Probe failed\" reason=status"), "{body}");
    assert!(body.contains("\nprobe_success 0\n"), "{body}");
    sim.shutdown().await;
}

#[tokio::test]
async fn reads_need_a_token_when_they_are_not_public() {
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let http = sim.info.http[0];
    let token = "a-long-enough-token-1234";
    let web = start(
        &format!("server:\n  public_reads: false\n  tokens: [\"{token}\"]\n  allow: [\"{http}\"]\n"),
        EngineSetup::default(),
    )
    .await;
    for path in ["/metrics", &format!("/probe?target=http://{http}/ok")] {
        let url = format!("{}{path}", web.base);
        assert_eq!(get(&url, &[], &[]).await.0, 401, "{path}");
        assert_eq!(
            get(&url, &[], &[("Authorization", "Bearer wrong-token-of-some-length")])
                .await
                .0,
            401
        );
        let (status, body) = get(&url, &[], &[("Authorization", &format!("Bearer {token}"))]).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    sim.shutdown().await;
}

/// Only listed addresses are probed: another loopback name, a name that resolves (via
/// the simulator's DNS server) to an unlisted loopback address, metadata addresses.
#[tokio::test]
async fn probe_is_not_an_open_proxy() {
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let http = sim.info.http[0];
    let port = http.port();
    // A second server nobody listed: without the guard every probe of it would be up.
    let other = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let other_port = other.info.http[0].port();
    let web = start(
        &format!("server:\n  allow: [\"{http}\", \"ok.pulsecheck.test\", \"*.example.com\"]\n"),
        EngineSetup {
            nameserver: Some(sim.info.dns),
            ..EngineSetup::default()
        },
    )
    .await;
    let probe = format!("{}/probe", web.base);
    let denied = |page: &str| value(page, "probe_failure_reason{reason=\"denied\"} ") == Some(1.0);

    let (_, page) = get(&probe, &[("target", &format!("http://{http}/ok"))], &[]).await;
    assert_eq!(value(&page, "probe_success "), Some(1.0), "{page}");
    for target in [
        format!("http://ok.pulsecheck.test:{other_port}/ok"),
        format!("http://localhost:{port}/ok"),
        format!("http://127.0.0.1:{other_port}/ok"),
        format!("http://127.0.0.2:{port}/ok"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[fd00:ec2::254]/".to_owned(),
    ] {
        let (status, page) = get(&probe, &[("target", &target)], &[]).await;
        assert_eq!(status, 200);
        assert!(denied(&page), "{target} must be denied:\n{page}");
    }
    let (_, page) = get(&probe, &[("target", &http.to_string()), ("module", "tcp_connect")], &[]).await;
    assert_eq!(value(&page, "probe_success "), Some(1.0), "{page}");
    let (_, page) = get(
        &probe,
        &[
            ("target", &format!("127.0.0.1:{other_port}")),
            ("module", "tcp_connect"),
        ],
        &[],
    )
    .await;
    assert!(denied(&page), "{page}");
    // The listed name on the listed address and port is fine.
    let (_, page) = get(
        &probe,
        &[("target", &format!("http://ok.pulsecheck.test:{port}/ok"))],
        &[],
    )
    .await;
    assert_eq!(value(&page, "probe_success "), Some(1.0), "{page}");
    other.shutdown().await;
    sim.shutdown().await;
}

/// The daemon's shutdown does not wait for a probe's whole timeout (120 s without the
/// scrape header): probes in flight are cancelled and answer at once.
#[tokio::test]
async fn shutdown_cancels_probes_in_flight() {
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let http = sim.info.http[0];
    let web = start(&format!("server:\n  allow: [\"{http}\"]\n"), EngineSetup::default()).await;
    let url = format!("{}/probe", web.base);
    let target = format!("http://{http}/delay/50000");
    let mut request = tokio::task::JoinSet::new();
    request.spawn(async move { get(&url, &[("target", &target)], &[]).await });
    // Wait until the probe is running, then shut the listener down.
    let deadline = Instant::now() + Duration::from_secs(30);
    while web.state.ledger().started == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    drop(web);
    let (status, page) = request.join_next().await.unwrap().unwrap();
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert_eq!(value(&page, "probe_success "), Some(0.0), "{page}");
    sim.shutdown().await;
}

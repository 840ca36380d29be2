//! `/metrics`: each check's last result under blackbox_exporter's names with `check` and
//! `group` labels, its state and uptime, no series left for removed checks, the engine's
//! health, and OpenMetrics by content negotiation.

use pulsecheck_core::state::State;
use pulsecheck_core::{CheckResult, EngineSetup, Outcome, ProbeKind, Reason};

use crate::{client, start, value};

fn result(outcome: Outcome, reason: Option<Reason>) -> CheckResult {
    let mut result = CheckResult::new("http://127.0.0.1:1/", None, ProbeKind::Http, outcome);
    result.reason = reason;
    result.http_status = Some(if outcome == Outcome::Up { 200 } else { 503 });
    result.duration_ms = std::time::Duration::from_millis(12);
    result
}

async fn scrape(base: &str, accept: Option<&str>) -> (String, String) {
    let mut request = client().get(format!("{base}/metrics"));
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
    (kind, response.text().await.unwrap())
}

#[tokio::test]
async fn each_check_has_its_series_and_a_removed_one_leaves_none() {
    let web = start("server: {}\n", EngineSetup::default()).await;
    let live = web.state.live();
    live.record("api", Some("web"), &result(Outcome::Up, None), State::Up);
    live.record("db", None, &result(Outcome::Down, Some(Reason::Refused)), State::Down);
    let (kind, page) = scrape(&web.base, None).await;
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(
        value(&page, "probe_success{check=\"api\",group=\"web\"} "),
        Some(1.0),
        "{page}"
    );
    assert_eq!(value(&page, "probe_success{check=\"db\",group=\"\"} "), Some(0.0));
    assert_eq!(
        value(
            &page,
            "probe_failure_reason{check=\"db\",group=\"\",reason=\"refused\"} "
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&page, "probe_http_status_code{check=\"db\",group=\"\"} "),
        Some(503.0)
    );
    assert_eq!(
        value(&page, "pulsecheck_check_up{check=\"api\",group=\"web\"} "),
        Some(1.0)
    );
    assert_eq!(value(&page, "pulsecheck_check_up{check=\"db\",group=\"\"} "), Some(0.0));
    assert_eq!(
        value(
            &page,
            "pulsecheck_check_uptime_ratio{check=\"db\",group=\"\",window=\"24h\"} "
        ),
        Some(0.0)
    );
    assert!(page.contains("probe_http_duration_seconds{check=\"api\",group=\"web\",phase=\"processing\"} "));
    assert_eq!(
        value(&page, "pulsecheck_checks_total{outcome=\"down\",reason=\"refused\"} "),
        Some(1.0)
    );
    assert_eq!(
        value(&page, "pulsecheck_checks_total{outcome=\"up\",reason=\"\"} "),
        Some(1.0)
    );
    assert!(value(&page, "process_resident_memory_bytes ").unwrap() > 0.0, "{page}");
    assert!(page.contains("\npulsecheck_runtime_stalls_total 0\n"));

    // A reload removed `db` (or renamed it): none of its series stays.
    live.retain(["api"]);
    let (_, page) = scrape(&web.base, None).await;
    assert!(!page.contains("check=\"db\""), "{page}");
    assert!(page.contains("check=\"api\""));
}

#[tokio::test]
async fn openmetrics_by_content_negotiation() {
    let web = start("server: {}\n", EngineSetup::default()).await;
    web.state
        .live()
        .record("api", None, &result(Outcome::Up, None), State::Up);
    let (kind, page) = scrape(
        &web.base,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .await;
    assert_eq!(kind, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(page.ends_with("# EOF\n"), "{page}");
    assert!(page.contains("# TYPE pulsecheck_checks counter\n"), "{page}");
    assert!(page.contains("\npulsecheck_checks_total{outcome=\"up\",reason=\"\"} 1\n"));
}

//! A dashboard built for blackbox_exporter keeps working: for an http, tcp, dns and icmp
//! probe, `/probe` returns every series blackbox_exporter's probers return (name and
//! label names), with its type and help text, and nothing else but
//! `probe_failure_reason`. The expected sets are blackbox_exporter's, as its
//! `prober/{handler,utils,http,tcp,dns,icmp}.go` register them for these modules.

use std::collections::BTreeSet;

use pulsecheck_core::EngineSetup;
use pulsecheck_sim::SimConfig;

use crate::{client, series, start};

/// `(name, type, help)` of every family these probes can return.
const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "probe_success",
        "gauge",
        "Displays whether or not the probe was a success",
    ),
    (
        "probe_duration_seconds",
        "gauge",
        "Returns how long the probe took to complete in seconds",
    ),
    (
        "probe_timeout_seconds",
        "gauge",
        "Returns how long the probe timeout is in seconds",
    ),
    (
        "probe_dns_lookup_time_seconds",
        "gauge",
        "Returns the time taken for probe dns lookup in seconds",
    ),
    (
        "probe_ip_protocol",
        "gauge",
        "Specifies whether probe ip protocol is IP4 or IP6",
    ),
    (
        "probe_ip_addr_hash",
        "gauge",
        "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
    ),
    (
        "probe_http_duration_seconds",
        "gauge",
        "Duration of http request by phase, summed over all redirects",
    ),
    ("probe_http_content_length", "gauge", "Length of http content response"),
    (
        "probe_http_uncompressed_body_length",
        "gauge",
        "Length of uncompressed response body",
    ),
    ("probe_http_redirects", "gauge", "The number of redirects"),
    (
        "probe_http_ssl",
        "gauge",
        "Indicates if SSL was used for the final redirect",
    ),
    ("probe_http_status_code", "gauge", "Response HTTP status code"),
    (
        "probe_http_version",
        "gauge",
        "Returns the version of HTTP of the probe response",
    ),
    (
        "probe_failed_due_to_regex",
        "gauge",
        "Indicates if probe failed due to regex",
    ),
    (
        "probe_ssl_earliest_cert_expiry",
        "gauge",
        "Returns last SSL chain expiry in unixtime",
    ),
    (
        "probe_tls_version_info",
        "gauge",
        "Returns the TLS version used or NaN when unknown",
    ),
    (
        "probe_icmp_duration_seconds",
        "gauge",
        "Duration of icmp request by phase",
    ),
    (
        "probe_dns_duration_seconds",
        "gauge",
        "Duration of DNS request by phase",
    ),
    (
        "probe_dns_answer_rrs",
        "gauge",
        "Returns number of entries in the answer resource record list",
    ),
    (
        "probe_dns_authority_rrs",
        "gauge",
        "Returns number of entries in the authority resource record list",
    ),
    (
        "probe_dns_additional_rrs",
        "gauge",
        "Returns number of entries in the additional resource record list",
    ),
    (
        "probe_dns_query_succeeded",
        "gauge",
        "Displays whether or not the query was executed successfully",
    ),
];

const COMMON: &[&str] = &[
    "probe_success",
    "probe_duration_seconds",
    "probe_timeout_seconds",
    "probe_dns_lookup_time_seconds",
    "probe_ip_protocol",
    "probe_ip_addr_hash",
];

fn expected(extra: &[&str], phases: Option<(&str, &[&str])>) -> BTreeSet<(String, Vec<String>)> {
    let mut set: BTreeSet<(String, Vec<String>)> = COMMON
        .iter()
        .chain(extra)
        .map(|name| (name.to_string(), Vec::new()))
        .collect();
    if let Some((name, _)) = phases {
        set.insert((name.to_owned(), vec!["phase".to_owned()]));
    }
    set
}

async fn probe(base: &str, module: &str, target: &str) -> String {
    let response = client()
        .get(format!("{base}/probe"))
        .query(&[("module", module), ("target", target)])
        .header("X-Prometheus-Scrape-Timeout-Seconds", "5")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

fn check_page(page: &str, want: &BTreeSet<(String, Vec<String>)>, phases: Option<(&str, &[&str])>, what: &str) {
    let got: BTreeSet<(String, Vec<String>)> = series(page)
        .into_iter()
        .filter(|(name, _)| name != "probe_failure_reason")
        .collect();
    assert_eq!(&got, want, "{what}: series differ from blackbox_exporter's\n{page}");
    for (name, kind, help) in FAMILIES {
        if got.iter().any(|(n, _)| n == name) {
            assert!(
                page.contains(&format!("# HELP {name} {help}\n")),
                "{what}: help of {name}\n{page}"
            );
            assert!(
                page.contains(&format!("# TYPE {name} {kind}\n")),
                "{what}: type of {name}\n{page}"
            );
        }
    }
    if let Some((family, names)) = phases {
        for phase in names.iter() {
            assert!(
                page.contains(&format!("{family}{{phase=\"{phase}\"}} ")),
                "{what}: phase {phase}\n{page}"
            );
        }
    }
}

#[tokio::test]
async fn probe_series_match_blackbox_exporter_for_http_tcp_dns_and_icmp() {
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let http = sim.info.http[0];
    let dns = sim.info.dns;
    let web = start(
        &format!(
            "server:\n  allow: [\"{http}\", \"{dns}\", \"127.0.0.1\"]\nmodules:\n  dns_ok:\n    prober: dns\n    query_name: ok.pulsecheck.test\n"
        ),
        EngineSetup::default(),
    )
    .await;

    let http_phases: (&str, &[&str]) = (
        "probe_http_duration_seconds",
        &["resolve", "connect", "tls", "processing", "transfer"],
    );
    let page = probe(&web.base, "http_2xx", &format!("http://{http}/ok")).await;
    let want = expected(
        &[
            "probe_http_content_length",
            "probe_http_uncompressed_body_length",
            "probe_http_redirects",
            "probe_http_ssl",
            "probe_http_status_code",
            "probe_http_version",
            "probe_failed_due_to_regex",
        ],
        Some(http_phases),
    );
    check_page(&page, &want, Some(http_phases), "http");
    assert!(page.contains("\nprobe_success 1\n"), "{page}");
    assert!(page.contains("\nprobe_http_status_code 200\n"), "{page}");

    let page = probe(&web.base, "tcp_connect", &http.to_string()).await;
    check_page(&page, &expected(&[], None), None, "tcp");

    let dns_phases: (&str, &[&str]) = ("probe_dns_duration_seconds", &["resolve", "connect", "request"]);
    let page = probe(&web.base, "dns_ok", &dns.to_string()).await;
    let want = expected(
        &[
            "probe_dns_answer_rrs",
            "probe_dns_authority_rrs",
            "probe_dns_additional_rrs",
            "probe_dns_query_succeeded",
        ],
        Some(dns_phases),
    );
    check_page(&page, &want, Some(dns_phases), "dns");
    assert!(page.contains("\nprobe_dns_answer_rrs 1\n"), "{page}");

    // ICMP may lack the privilege here; the series are the same either way.
    let icmp_phases: (&str, &[&str]) = ("probe_icmp_duration_seconds", &["resolve", "setup", "rtt"]);
    let page = probe(&web.base, "icmp", "127.0.0.1").await;
    check_page(&page, &expected(&[], Some(icmp_phases)), Some(icmp_phases), "icmp");
    sim.shutdown().await;
}

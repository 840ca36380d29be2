//! `/probe?target=…&module=…`: blackbox_exporter's multi-target pattern. One check of
//! the target with the module's options and conditions, through the engine's limits and
//! under the SSRF guard (`server.allow`), answered with a fresh page of metrics.
//!
//! As blackbox_exporter: a missing target or an unknown module is 400; a failed probe
//! is 200 with `probe_success 0`; the timeout is `X-Prometheus-Scrape-Timeout-Seconds`
//! minus 0.5 s (120 s without the header), and a module's own timeout can only lower
//! it; `debug=true` returns the probe's log, its metrics and the module's config.

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pulsecheck_config::{ProbeModule, Prober};
use pulsecheck_core::target::{InvalidTarget, TargetSpec};
use pulsecheck_core::{CheckOptions, CheckResult, Outcome, Target};
use serde::Deserialize;

use crate::auth::ReadAccess;
use crate::exposition::{Exposition, Format};
use crate::AppState;

/// Subtracted from Prometheus's scrape timeout, so the answer arrives before it.
const SCRAPE_TIMEOUT_OFFSET: f64 = 0.5;
/// The timeout when the scrape does not say (blackbox_exporter's default).
const DEFAULT_SCRAPE_TIMEOUT: f64 = 120.0;
/// The module when the request names none.
const DEFAULT_MODULE: &str = "http_2xx";

#[derive(Debug, Default, Deserialize)]
pub struct ProbeParams {
    target: Option<String>,
    module: Option<String>,
    debug: Option<String>,
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

pub async fn handler(
    State(app): State<AppState>,
    _access: ReadAccess,
    Query(params): Query<ProbeParams>,
    headers: HeaderMap,
) -> Response {
    let Some(target) = params.target.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        return bad_request("Target parameter is missing".into());
    };
    let config = app.config();
    let module_name = params.module.as_deref().unwrap_or(DEFAULT_MODULE);
    let Some(module) = config.module(module_name) else {
        let known: Vec<&str> = config.modules.iter().map(|m| m.name.as_str()).collect();
        return bad_request(format!("Unknown module {module_name:?}; modules: {}", known.join(", ")));
    };
    let scrape_header = headers
        .get("X-Prometheus-Scrape-Timeout-Seconds")
        .and_then(|v| v.to_str().ok());
    let timeout = match probe_timeout(scrape_header, module) {
        Ok(timeout) => timeout,
        Err(message) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Failed to parse timeout from Prometheus header: {message}\n"),
            )
                .into_response()
        }
    };
    let options = CheckOptions {
        timeout,
        address_policy: Some(app.server().allow.clone()),
        ..module.options.clone()
    };
    let check_target = build_target(module, target);
    // Dropped with the request when the scraper goes away, and the check with it;
    // cancelled when the listener shuts down.
    let result = app
        .inner
        .engine
        .check(&check_target, &options, &app.inner.stopping)
        .await;
    app.inner.live.probes.count(&result);

    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    if params.debug.as_deref() == Some("true") {
        let body = debug_output(module, target, &result, timeout);
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response();
    }
    let mut page = Exposition::new(format, 2048);
    crate::blackbox::write_result(&mut page, &result, timeout.as_secs_f64());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        page.finish(),
    )
        .into_response()
}

/// blackbox_exporter's rule: the scrape timeout minus the offset, unless the module's
/// own timeout is shorter (or the difference is negative).
pub fn probe_timeout(scrape_header: Option<&str>, module: &ProbeModule) -> Result<Duration, String> {
    let mut scrape = match scrape_header {
        Some(value) => value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("{value:?} is not a number of seconds"))?,
        None => 0.0,
    };
    if scrape == 0.0 {
        scrape = DEFAULT_SCRAPE_TIMEOUT;
    }
    let max = scrape - SCRAPE_TIMEOUT_OFFSET;
    let own = if module.timeout_set {
        module.options.timeout.as_secs_f64()
    } else {
        0.0
    };
    let seconds = if (own > 0.0 && own < max) || max < 0.0 {
        own
    } else {
        max
    };
    // A zero timeout would time out at once; a millisecond says the same, measurably.
    Ok(Duration::from_secs_f64(seconds.max(0.001)))
}

/// The target as the module's prober reads it, blackbox style: `http_2xx` takes a URL
/// (`http://` added when missing), `tcp_connect` and `tls` take `HOST:PORT`, `icmp` a
/// host, and `dns` the server (`IP[:PORT]`) when the module names the query, else a
/// whole `dns://NAME?type=…&server=…` target.
pub fn build_target(module: &ProbeModule, target: &str) -> Target {
    let with_scheme = |scheme: &str| {
        if target.contains("://") {
            target.to_owned()
        } else {
            format!("{scheme}://{target}")
        }
    };
    match module.prober {
        Prober::Http => {
            let lower = target.to_ascii_lowercase();
            if lower.starts_with("http://") || lower.starts_with("https://") {
                Target::parse(target, None)
            } else {
                Target::parse(&format!("http://{target}"), None)
            }
        }
        Prober::Tcp => Target::parse(&with_scheme("tcp"), None),
        Prober::Tls => Target::parse(&with_scheme("tls"), None),
        Prober::Icmp => Target::parse(&with_scheme("icmp"), None),
        Prober::Dns => match &module.query_name {
            None => Target::parse(&with_scheme("dns"), None),
            Some(name) => {
                let server = target
                    .parse::<SocketAddr>()
                    .or_else(|_| target.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .or_else(|_| {
                        target
                            .trim_start_matches('[')
                            .trim_end_matches(']')
                            .parse::<IpAddr>()
                            .map(|ip| SocketAddr::new(ip, 53))
                    });
                Target {
                    input: target.to_owned(),
                    line: None,
                    spec: match server {
                        Ok(server) => Ok(TargetSpec::Dns {
                            name: name.clone(),
                            record: module.query_type,
                            server: Some(server),
                        }),
                        Err(_) => Err(InvalidTarget {
                            message: format!("'{target}' is not a DNS server address; write IP or IP:PORT"),
                        }),
                    },
                }
            }
        },
    }
}

/// The page `debug=true` returns: the probe's log, the metrics, the module.
fn debug_output(module: &ProbeModule, target: &str, result: &CheckResult, timeout: Duration) -> String {
    let mut out = String::from("Logs for the probe:\n");
    let ts = result.started_at;
    let log = |out: &mut String, level: &str, msg: &str, rest: String| {
        let _ = writeln!(
            out,
            "ts={ts} module={} target={target:?} level={level} msg={msg:?}{rest}",
            module.name
        );
    };
    log(
        &mut out,
        "info",
        "Beginning probe",
        format!(
            " probe={} timeout_seconds={}",
            module.prober.as_str(),
            timeout.as_secs_f64()
        ),
    );
    if let Some(ip) = result.ip {
        log(&mut out, "info", "Resolved target address", format!(" ip={ip}"));
    }
    let t = &result.timings;
    let ms = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{:.3}", d.as_secs_f64() * 1000.0));
    log(
        &mut out,
        "info",
        "Phase times",
        format!(
            " dns_ms={} connect_ms={} tls_ms={} ttfb_ms={} transfer_ms={} queue_ms={:.3}",
            ms(t.dns_ms),
            ms(t.connect_ms),
            ms(t.tls_ms),
            ms(t.ttfb_ms),
            ms(t.transfer_ms),
            result.queue_ms.as_secs_f64() * 1000.0
        ),
    );
    if let Some(status) = result.http_status {
        log(
            &mut out,
            "info",
            "Received HTTP response",
            format!(" status_code={status} redirects={}", result.redirects),
        );
    }
    match (result.outcome, result.reason) {
        (Outcome::Up, _) => log(
            &mut out,
            "info",
            "Probe succeeded",
            format!(" duration_seconds={}", result.duration_ms.as_secs_f64()),
        ),
        (_, reason) => log(
            &mut out,
            "error",
            "Probe failed",
            format!(
                " reason={} err={:?} duration_seconds={}",
                reason.map_or("cancelled", |r| r.as_str()),
                result.error.as_deref().unwrap_or(""),
                result.duration_ms.as_secs_f64()
            ),
        ),
    }
    out.push_str("\n\n\nMetrics that would have been returned:\n");
    let mut page = Exposition::new(Format::Prometheus, 2048);
    crate::blackbox::write_result(&mut page, result, timeout.as_secs_f64());
    out.push_str(&page.finish());
    out.push_str("\n\n\nModule configuration:\n");
    out.push_str(&module_yaml(module));
    out
}

fn module_yaml(module: &ProbeModule) -> String {
    let o = &module.options;
    let mut out = String::new();
    let _ = writeln!(out, "prober: {}", module.prober.as_str());
    let _ = writeln!(out, "timeout: {}s", o.timeout.as_secs_f64());
    match module.prober {
        Prober::Http => {
            let _ = writeln!(out, "method: {}", o.method);
            let _ = writeln!(out, "max_redirects: {}", o.max_redirects);
            let _ = writeln!(out, "max_body: {}", o.max_body_bytes);
            let _ = writeln!(out, "insecure: {}", o.insecure);
            let _ = writeln!(out, "user_agent: {:?}", o.user_agent);
            if !o.headers.is_empty() {
                out.push_str("headers:\n");
                for (name, value) in &o.headers {
                    let _ = writeln!(out, "  {name}: {:?}", String::from_utf8_lossy(value.as_bytes()));
                }
            }
        }
        Prober::Tls => {
            let _ = writeln!(out, "insecure: {}", o.insecure);
        }
        Prober::Dns => {
            if let Some(name) = &module.query_name {
                let _ = writeln!(out, "query_name: {name}");
            }
            let _ = writeln!(
                out,
                "query_type: {}",
                format!("{:?}", module.query_type).to_ascii_uppercase()
            );
        }
        Prober::Tcp | Prober::Icmp => {}
    }
    if !o.conditions.is_empty() {
        out.push_str("conditions:\n");
        for condition in o.conditions.iter() {
            let _ = writeln!(out, "  - {condition:?}", condition = condition.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(timeout: Option<u64>) -> ProbeModule {
        let mut module = ProbeModule::builtins().remove(0);
        if let Some(seconds) = timeout {
            module.options.timeout = Duration::from_secs(seconds);
            module.timeout_set = true;
        }
        module
    }

    #[test]
    fn the_scrape_timeout_rules() {
        let t = |header: Option<&str>, own: Option<u64>| probe_timeout(header, &module(own)).unwrap().as_secs_f64();
        assert_eq!(t(Some("10"), None), 9.5, "the header minus 0.5 s");
        assert_eq!(t(Some("10"), Some(3)), 3.0, "a module timeout lowers it");
        assert_eq!(t(Some("10"), Some(30)), 9.5, "but never raises it");
        assert_eq!(t(None, None), 119.5, "120 s without the header");
        assert_eq!(
            t(Some("0.2"), Some(3)),
            3.0,
            "a negative difference gives the module's own"
        );
        assert!(probe_timeout(Some("soon"), &module(None)).is_err());
    }

    #[test]
    fn targets_as_each_prober_reads_them() {
        let modules = ProbeModule::builtins();
        let input = |m: usize, t: &str| build_target(&modules[m], t).spec.map(|s| format!("{s:?}"));
        let url = |t: &str| match build_target(&modules[0], t).spec {
            Ok(TargetSpec::Http { url }) => url.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(url("127.0.0.1:8080/ok"), "http://127.0.0.1:8080/ok");
        assert_eq!(url("HTTPS://x.test/"), "https://x.test/");
        assert!(input(1, "127.0.0.1:22").unwrap().starts_with("Tcp"));
        assert!(input(2, "127.0.0.1").unwrap().starts_with("Icmp"));
        let mut dns = modules[3].clone();
        dns.query_name = Some("ok.pulsecheck.test".into());
        let spec = build_target(&dns, "127.0.0.1:5353").spec.unwrap();
        assert_eq!(
            spec,
            TargetSpec::Dns {
                name: "ok.pulsecheck.test".into(),
                record: pulsecheck_core::target::RecordKind::A,
                server: Some("127.0.0.1:5353".parse().unwrap())
            }
        );
        assert!(build_target(&dns, "ns.example").spec.is_err());
    }
}

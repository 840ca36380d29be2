//! One check result as blackbox_exporter's metrics: the same names, types, help texts
//! and labels as its http, tcp, icmp and dns probers (so dashboards and alerts built for
//! it keep working), plus `probe_failure_reason`, which it does not have. `/probe`
//! writes them for one result; `/metrics` for every check, with `check` and `group`
//! labels added.

use std::net::IpAddr;

use pulsecheck_core::{CheckResult, Outcome, ProbeKind, Reason};

use crate::exposition::{Exposition, Kind};

/// A sample's own label (a phase, a reason, a TLS version) and value.
pub type Sample = (Option<(&'static str, &'static str)>, f64);

/// One metric family of a probe result.
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    /// Whether a result of this kind has the family at all.
    pub applies: fn(&CheckResult) -> bool,
    pub samples: fn(&CheckResult, &mut Vec<Sample>),
}

fn secs(d: Option<std::time::Duration>) -> f64 {
    d.map_or(0.0, |d| d.as_secs_f64())
}

fn any(result: &CheckResult) -> bool {
    result.probe != ProbeKind::None
}

fn http(result: &CheckResult) -> bool {
    result.probe == ProbeKind::Http
}

fn tls(result: &CheckResult) -> bool {
    result.certificate.is_some() || result.tls_version.is_some()
}

fn single(value: f64, out: &mut Vec<Sample>) {
    out.push((None, value));
}

/// FNV-1a over the address's bytes: changes when the address does, like blackbox's.
fn ip_hash(ip: IpAddr) -> f64 {
    let bytes = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let mut hash: u32 = 0x811c_9dc5;
    for byte in bytes {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    f64::from(hash)
}

fn http_version(result: &CheckResult) -> f64 {
    match result.http_version.as_deref() {
        Some("HTTP/1.0") => 1.0,
        Some("HTTP/1.1") => 1.1,
        Some("HTTP/2") | Some("HTTP/2.0") => 2.0,
        Some("HTTP/3") => 3.0,
        _ => 0.0,
    }
}

fn cert_expiry(result: &CheckResult) -> f64 {
    result
        .certificate
        .as_ref()
        .and_then(|c| c.not_after.parse::<jiff::Timestamp>().ok())
        .map_or(0.0, |t| t.as_second() as f64)
}

/// Every family, in the order they are written.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "probe_success",
        kind: Kind::Gauge,
        help: "Displays whether or not the probe was a success",
        applies: |_| true,
        samples: |r, out| single(f64::from(u8::from(r.outcome == Outcome::Up)), out),
    },
    Family {
        name: "probe_duration_seconds",
        kind: Kind::Gauge,
        help: "Returns how long the probe took to complete in seconds",
        applies: |_| true,
        samples: |r, out| single(r.duration_ms.as_secs_f64(), out),
    },
    Family {
        name: "probe_failure_reason",
        kind: Kind::Gauge,
        help: "1 for the reason the probe failed (timeout, refused, reset, dns, tls, certificate, status, body, latency, protocol, invalid_target, internal, denied); absent when it succeeded",
        applies: |_| true,
        samples: |r, out| {
            if let (Outcome::Down, Some(reason)) = (r.outcome, r.reason) {
                out.push((Some(("reason", reason.as_str())), 1.0));
            }
        },
    },
    Family {
        name: "probe_dns_lookup_time_seconds",
        kind: Kind::Gauge,
        help: "Returns the time taken for probe dns lookup in seconds",
        applies: any,
        samples: |r, out| single(secs(r.timings.dns_ms), out),
    },
    Family {
        name: "probe_ip_protocol",
        kind: Kind::Gauge,
        help: "Specifies whether probe ip protocol is IP4 or IP6",
        applies: any,
        samples: |r, out| {
            single(
                match r.ip {
                    Some(IpAddr::V4(_)) => 4.0,
                    Some(IpAddr::V6(_)) => 6.0,
                    None => 0.0,
                },
                out,
            )
        },
    },
    Family {
        name: "probe_ip_addr_hash",
        kind: Kind::Gauge,
        help: "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
        applies: any,
        samples: |r, out| single(r.ip.map_or(0.0, ip_hash), out),
    },
    Family {
        name: "probe_http_duration_seconds",
        kind: Kind::Gauge,
        help: "Duration of http request by phase, summed over all redirects",
        applies: http,
        samples: |r, out| {
            let t = &r.timings;
            for (phase, value) in [
                ("resolve", t.dns_ms),
                ("connect", t.connect_ms),
                ("tls", t.tls_ms),
                ("processing", t.ttfb_ms),
                ("transfer", t.transfer_ms),
            ] {
                out.push((Some(("phase", phase)), secs(value)));
            }
        },
    },
    Family {
        name: "probe_http_content_length",
        kind: Kind::Gauge,
        help: "Length of http content response",
        applies: http,
        samples: |r, out| {
            let length = match (r.content_length, r.http_status) {
                (Some(length), _) => length as f64,
                // A response without Content-Length, as Go reports it.
                (None, Some(_)) => -1.0,
                (None, None) => 0.0,
            };
            single(length, out)
        },
    },
    Family {
        name: "probe_http_uncompressed_body_length",
        kind: Kind::Gauge,
        help: "Length of uncompressed response body",
        applies: http,
        samples: |r, out| single(r.body_bytes.unwrap_or(0) as f64, out),
    },
    Family {
        name: "probe_http_redirects",
        kind: Kind::Gauge,
        help: "The number of redirects",
        applies: http,
        samples: |r, out| single(f64::from(r.redirects), out),
    },
    Family {
        name: "probe_http_ssl",
        kind: Kind::Gauge,
        help: "Indicates if SSL was used for the final redirect",
        applies: http,
        samples: |r, out| single(f64::from(u8::from(r.tls_version.is_some())), out),
    },
    Family {
        name: "probe_http_status_code",
        kind: Kind::Gauge,
        help: "Response HTTP status code",
        applies: http,
        samples: |r, out| single(r.http_status.map_or(0.0, f64::from), out),
    },
    Family {
        name: "probe_http_version",
        kind: Kind::Gauge,
        help: "Returns the version of HTTP of the probe response",
        applies: http,
        samples: |r, out| single(http_version(r), out),
    },
    Family {
        name: "probe_failed_due_to_regex",
        kind: Kind::Gauge,
        help: "Indicates if probe failed due to regex",
        applies: http,
        samples: |r, out| single(f64::from(u8::from(r.reason == Some(Reason::Body))), out),
    },
    Family {
        name: "probe_ssl_earliest_cert_expiry",
        kind: Kind::Gauge,
        help: "Returns last SSL chain expiry in unixtime",
        applies: tls,
        samples: |r, out| {
            if r.certificate.is_some() {
                single(cert_expiry(r), out)
            }
        },
    },
    Family {
        name: "probe_tls_version_info",
        kind: Kind::Gauge,
        help: "Returns the TLS version used or NaN when unknown",
        applies: tls,
        samples: |r, out| {
            if let Some(version) = r.tls_version {
                out.push((Some(("version", version)), 1.0));
            }
        },
    },
    Family {
        name: "probe_icmp_duration_seconds",
        kind: Kind::Gauge,
        help: "Duration of icmp request by phase",
        applies: |r| r.probe == ProbeKind::Icmp,
        samples: |r, out| {
            out.push((Some(("phase", "resolve")), secs(r.timings.dns_ms)));
            out.push((Some(("phase", "setup")), 0.0));
            out.push((Some(("phase", "rtt")), secs(r.rtt_ms)));
        },
    },
    Family {
        name: "probe_dns_duration_seconds",
        kind: Kind::Gauge,
        help: "Duration of DNS request by phase",
        applies: |r| r.probe == ProbeKind::Dns,
        samples: |r, out| {
            out.push((Some(("phase", "resolve")), secs(r.timings.dns_ms)));
            out.push((Some(("phase", "connect")), secs(r.timings.connect_ms)));
            out.push((Some(("phase", "request")), secs(r.timings.ttfb_ms)));
        },
    },
    Family {
        name: "probe_dns_answer_rrs",
        kind: Kind::Gauge,
        help: "Returns number of entries in the answer resource record list",
        applies: |r| r.probe == ProbeKind::Dns,
        samples: |r, out| single(r.dns.as_ref().map_or(0, |d| d.answers.len()) as f64, out),
    },
    Family {
        name: "probe_dns_authority_rrs",
        kind: Kind::Gauge,
        help: "Returns number of entries in the authority resource record list",
        applies: |r| r.probe == ProbeKind::Dns,
        samples: |r, out| single(r.dns.as_ref().map_or(0, |d| d.authority_rrs) as f64, out),
    },
    Family {
        name: "probe_dns_additional_rrs",
        kind: Kind::Gauge,
        help: "Returns number of entries in the additional resource record list",
        applies: |r| r.probe == ProbeKind::Dns,
        samples: |r, out| single(r.dns.as_ref().map_or(0, |d| d.additional_rrs) as f64, out),
    },
    Family {
        name: "probe_dns_query_succeeded",
        kind: Kind::Gauge,
        help: "Displays whether or not the query was executed successfully",
        applies: |r| r.probe == ProbeKind::Dns,
        samples: |r, out| single(f64::from(u8::from(r.dns.is_some())), out),
    },
];

/// The families of one result, for `/probe`: only those its kind of probe has.
pub fn write_result(page: &mut Exposition, result: &CheckResult, timeout_seconds: f64) {
    let mut samples = Vec::with_capacity(8);
    for family in FAMILIES {
        if !(family.applies)(result) {
            continue;
        }
        page.family(family.name, family.kind, family.help);
        samples.clear();
        (family.samples)(result, &mut samples);
        for (label, value) in &samples {
            match label {
                Some(label) => page.sample(family.name, &[*label], *value),
                None => page.sample(family.name, &[], *value),
            }
        }
        if family.name == "probe_duration_seconds" {
            page.family(
                "probe_timeout_seconds",
                Kind::Gauge,
                "Returns how long the probe timeout is in seconds",
            );
            page.sample("probe_timeout_seconds", &[], timeout_seconds);
        }
    }
}

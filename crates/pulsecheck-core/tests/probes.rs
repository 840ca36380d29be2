//! Every probe and every reason class, against the real simulator on loopback.
//! Deadlines are asserted with generous margins: CI is a loaded 2-core machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pulsecheck_core::{CheckOptions, CheckResult, Engine, EngineSetup, Outcome, Reason, Target};
use pulsecheck_sim::{SimConfig, SimHandle};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

struct Fixture {
    sim: SimHandle,
    engine: Arc<Engine>,
}

async fn fixture() -> Fixture {
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
    Fixture {
        sim,
        engine: Arc::new(engine),
    }
}

fn opts() -> CheckOptions {
    CheckOptions {
        timeout: Duration::from_secs(3),
        ..CheckOptions::default()
    }
}

impl Fixture {
    async fn check_with(&self, target: &str, options: &CheckOptions) -> CheckResult {
        let target = Target::parse(target, None);
        self.engine.check(&target, options, &CancellationToken::new()).await
    }

    async fn check(&self, target: &str) -> CheckResult {
        self.check_with(target, &opts()).await
    }

    fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.sim.info.http[0])
    }

    /// HTTPS by name, so the certificate's DNS name is what gets verified.
    fn https(&self, addr: std::net::SocketAddr, path: &str) -> String {
        format!("https://localhost:{}{path}", addr.port())
    }
}

#[track_caller]
fn assert_down(result: &CheckResult, reason: Reason) {
    assert_eq!(result.outcome, Outcome::Down, "{result:#?}");
    assert_eq!(result.reason, Some(reason), "{result:#?}");
    assert!(result.error.is_some(), "a down result explains itself: {result:#?}");
}

#[track_caller]
fn assert_up(result: &CheckResult) {
    assert_eq!(result.outcome, Outcome::Up, "{result:#?}");
    assert_eq!(result.reason, None);
}

#[tokio::test]
async fn http_up_records_every_phase() {
    let f = fixture().await;
    let r = f.check(&f.http("/ok")).await;
    assert_up(&r);
    assert_eq!(r.http_status, Some(200));
    assert_eq!(r.http_version.as_deref(), Some("HTTP/1.1"));
    assert_eq!(r.ip, Some("127.0.0.1".parse().unwrap()));
    assert!(r.timings.dns_ms.is_none(), "an IP literal needs no DNS");
    assert!(r.timings.connect_ms.is_some() && r.timings.ttfb_ms.is_some() && r.timings.transfer_ms.is_some());
    assert!(r.timings.tls_ms.is_none());
    assert!(r.duration_ms >= r.timings.connect_ms.unwrap());
}

#[tokio::test]
async fn status_body_and_latency_conditions() {
    let f = fixture().await;
    let r = f.check(&f.http("/status/503")).await;
    assert_down(&r, Reason::Status);
    assert_eq!(r.http_status, Some(503));

    let contains = CheckOptions {
        body_contains: Some("\"UP\"".into()),
        ..opts()
    };
    assert_up(&f.check_with(&f.http("/json"), &contains).await);
    let missing = CheckOptions {
        body_contains: Some("DOWN".into()),
        ..opts()
    };
    assert_down(&f.check_with(&f.http("/json"), &missing).await, Reason::Body);
    let regex = CheckOptions {
        body_regex: Some(regex::Regex::new(r#""version":"\d+\.\d+""#).unwrap()),
        ..opts()
    };
    assert_up(&f.check_with(&f.http("/json"), &regex).await);

    let slow = CheckOptions {
        max_latency: Some(Duration::from_millis(100)),
        ..opts()
    };
    let r = f.check_with(&f.http("/delay/400"), &slow).await;
    assert_down(&r, Reason::Latency);
    assert_eq!(r.http_status, Some(200));
}

#[tokio::test]
async fn method_and_headers_are_sent() {
    let f = fixture().await;
    let options = CheckOptions {
        method: http::Method::POST,
        headers: vec![(
            http::HeaderName::from_static("x-probe"),
            http::HeaderValue::from_static("pulsecheck-test"),
        )],
        body_contains: Some("pulsecheck-test".into()),
        ..opts()
    };
    let r = f.check_with(&f.http("/headers"), &options).await;
    assert_up(&r);
    let options = CheckOptions {
        method: http::Method::POST,
        body_contains: Some("\"POST\"".into()),
        ..opts()
    };
    assert_up(&f.check_with(&f.http("/method"), &options).await);
}

/// With `reuse_connections`, later checks of the same scheme, host and port go over the
/// first check's connection: no DNS, connect or TLS phase, but the same IP and certificate.
#[tokio::test]
async fn reused_connections_skip_the_handshake_phases() {
    let f = fixture().await;
    let options = CheckOptions {
        reuse_connections: true,
        ..opts()
    };
    let first = f.check_with(&f.http("/ok"), &options).await;
    assert_up(&first);
    assert!(first.timings.connect_ms.is_some(), "{first:#?}");
    for _ in 0..3 {
        let again = f.check_with(&f.http("/ok"), &options).await;
        assert_up(&again);
        assert_eq!(again.timings.connect_ms, None, "reused: {again:#?}");
        assert!(again.timings.ttfb_ms.is_some(), "{again:#?}");
        assert_eq!(again.ip, first.ip);
    }

    let https = f.https(f.sim.info.tls_valid, "/ok");
    let first = f.check_with(&https, &options).await;
    assert_up(&first);
    assert!(first.timings.tls_ms.is_some(), "{first:#?}");
    let again = f.check_with(&https, &options).await;
    assert_up(&again);
    assert_eq!(again.timings.tls_ms, None, "reused: {again:#?}");
    assert_eq!(
        again.certificate.as_ref().map(|c| c.days_left),
        first.certificate.as_ref().map(|c| c.days_left),
        "the connection's certificate is reported again"
    );

    // A check cut short by its deadline closes the connection it was using.
    let short = CheckOptions {
        timeout: Duration::from_millis(500),
        ..options.clone()
    };
    assert_down(&f.check_with(&f.http("/delay/5000"), &short).await, Reason::Timeout);
    let fresh = f.check_with(&f.http("/ok"), &options).await;
    assert!(fresh.timings.connect_ms.is_some(), "{fresh:#?}");

    // A response left partly unread closes its connection: the next check opens anew.
    let capped = CheckOptions {
        max_body_bytes: 16,
        ..options.clone()
    };
    assert_up(&f.check_with(&f.http("/bytes/200000"), &capped).await);
    let fresh = f.check_with(&f.http("/ok"), &options).await;
    assert_up(&fresh);
    assert!(fresh.timings.connect_ms.is_some(), "{fresh:#?}");

    // Without the option every check connects.
    let r = f.check(&f.http("/ok")).await;
    assert!(r.timings.connect_ms.is_some(), "{r:#?}");
}

/// Larger than hyper's first read and write buffers (8 KiB): a 20 KB request head
/// must still be written whole, and its 20 KB echo read across many reads.
#[tokio::test]
async fn heads_and_bodies_larger_than_the_first_buffers_arrive_whole() {
    let f = fixture().await;
    let value = format!("{}-end-marker", "a".repeat(20_000));
    let options = CheckOptions {
        headers: vec![(
            http::HeaderName::from_static("x-large"),
            http::HeaderValue::from_str(&value).unwrap(),
        )],
        body_contains: Some(value),
        ..opts()
    };
    let r = f.check_with(&f.http("/headers"), &options).await;
    assert_up(&r);
    assert!(r.timings.transfer_ms.is_some(), "{r:#?}");
}

#[tokio::test]
async fn redirects_are_followed_and_bounded() {
    let f = fixture().await;
    let r = f.check(&f.http("/redirect/3")).await;
    assert_up(&r);
    assert_eq!(r.redirects, 3);
    // Connect time is summed over the four hops.
    assert!(r.timings.connect_ms.is_some());

    let r = f.check(&f.http("/redirect-loop")).await;
    assert_down(&r, Reason::Status);
    assert_eq!(r.redirects, pulsecheck_core::options::DEFAULT_MAX_REDIRECTS);
    assert!(r.error.unwrap().contains("redirects"));

    let no_follow = CheckOptions {
        max_redirects: 0,
        expect_status: pulsecheck_core::StatusMatcher::parse("3xx").unwrap(),
        ..opts()
    };
    let r = f.check_with(&f.http("/redirect/1"), &no_follow).await;
    assert_up(&r);
    assert_eq!(r.http_status, Some(302));
}

#[tokio::test]
async fn bodies_are_capped_and_endless_bodies_end() {
    let f = fixture().await;
    let capped = CheckOptions {
        max_body_bytes: 64 * 1024,
        ..opts()
    };
    let started = Instant::now();
    assert_up(&f.check_with(&f.http("/endless"), &capped).await);
    assert_up(&f.check_with(&f.http("/bytes/10000000"), &capped).await);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn connection_failures_have_their_own_reasons() {
    let f = fixture().await;
    assert_down(
        &f.check(&format!("http://{}/", f.sim.info.refused)).await,
        Reason::Refused,
    );
    assert_down(
        &f.check(&format!("tcp://{}", f.sim.info.refused)).await,
        Reason::Refused,
    );
    assert_down(&f.check(&format!("http://{}/", f.sim.info.reset)).await, Reason::Reset);
    assert_down(&f.check(&f.http("/malformed")).await, Reason::Protocol);
    assert_down(&f.check(&f.http("/header-flood")).await, Reason::Protocol);
    assert_up(&f.check(&format!("tcp://{}", f.sim.info.http[0])).await);
}

#[tokio::test]
async fn hanging_targets_time_out_at_the_deadline() {
    let f = fixture().await;
    let options = CheckOptions {
        timeout: Duration::from_millis(700),
        ..opts()
    };
    for target in [
        format!("http://{}/", f.sim.info.blackhole),
        f.http("/trickle"),
        f.http("/delay/5000"),
    ] {
        let started = Instant::now();
        let r = f.check_with(&target, &options).await;
        assert_down(&r, Reason::Timeout);
        assert!(r.duration_ms >= Duration::from_millis(690), "{r:#?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the deadline holds for {target}"
        );
        assert!(r.timings.connect_ms.is_some(), "finished phases are kept: {r:#?}");
    }
}

#[tokio::test]
async fn tls_certificates_are_verified_and_reported() {
    let f = fixture().await;
    let info = &f.sim.info;
    let r = f.check(&f.https(info.tls_valid, "/ok")).await;
    assert_up(&r);
    assert!(r.timings.tls_ms.is_some());
    assert!(r.certificate.as_ref().unwrap().days_left > 0);
    assert!(matches!(r.http_version.as_deref(), Some("HTTP/2") | Some("HTTP/1.1")));

    assert_down(&f.check(&f.https(info.tls_expired, "/ok")).await, Reason::Certificate);
    assert_down(
        &f.check(&f.https(info.tls_self_signed, "/ok")).await,
        Reason::Certificate,
    );
    assert_down(
        &f.check(&format!("tls://localhost:{}", info.tls_expired.port())).await,
        Reason::Certificate,
    );

    // --insecure accepts the certificate but still records it.
    let insecure = CheckOptions {
        insecure: true,
        ..opts()
    };
    let r = f.check_with(&f.https(info.tls_expired, "/ok"), &insecure).await;
    assert_up(&r);
    assert!(r.certificate.as_ref().unwrap().days_left < 0, "{r:#?}");

    // The sim's valid certificate has 90 days left.
    let r = f.check(&format!("tls://localhost:{}", info.tls_valid.port())).await;
    assert_up(&r);
    assert!((88..=90).contains(&r.certificate.as_ref().unwrap().days_left), "{r:#?}");
    let relaxed = CheckOptions {
        min_cert_days: Some(30),
        ..opts()
    };
    assert_up(
        &f.check_with(&format!("tls://localhost:{}", info.tls_valid.port()), &relaxed)
            .await,
    );
    let demanding = CheckOptions {
        min_cert_days: Some(120),
        ..opts()
    };
    let r = f
        .check_with(&format!("tls://localhost:{}", info.tls_valid.port()), &demanding)
        .await;
    assert_down(&r, Reason::Certificate);

    // A TLS client talking to a plain HTTP server: a handshake failure, not a certificate one.
    let r = f.check(&format!("tls://localhost:{}", info.http[0].port())).await;
    assert_down(&r, Reason::Tls);
}

#[tokio::test]
async fn names_resolve_through_the_configured_nameserver() {
    let f = fixture().await;
    let port = f.sim.info.http[0].port();
    let r = f.check(&format!("http://ok.pulsecheck.test:{port}/ok")).await;
    assert_up(&r);
    assert!(r.timings.dns_ms.is_some());
    let r = f.check(&format!("http://nx.pulsecheck.test:{port}/ok")).await;
    assert_down(&r, Reason::Dns);
    assert!(r.error.unwrap().contains("nx.pulsecheck.test"));
}

#[tokio::test]
async fn dns_probe_reports_rcode_and_answers() {
    let f = fixture().await;
    let server = f.sim.info.dns;
    let r = f
        .check(&format!("dns://ok.pulsecheck.test?type=A&server={server}"))
        .await;
    assert_up(&r);
    let answer = r.dns.unwrap();
    assert_eq!(answer.rcode, "No Error");
    assert!(answer.answers.iter().any(|a| a.contains("127.0.0.1")), "{answer:?}");
    let r = f
        .check(&format!("dns://ok.pulsecheck.test?type=AAAA&server={server}"))
        .await;
    assert_up(&r);

    assert_down(
        &f.check(&format!("dns://nx.pulsecheck.test?server={server}")).await,
        Reason::Dns,
    );
    assert_down(
        &f.check(&format!("dns://servfail.pulsecheck.test?server={server}"))
            .await,
        Reason::Dns,
    );
    assert_down(
        &f.check(&format!("dns://empty.pulsecheck.test?server={server}")).await,
        Reason::Dns,
    );
    let quick = CheckOptions {
        timeout: Duration::from_millis(500),
        ..opts()
    };
    assert_down(
        &f.check_with(&format!("dns://slow.pulsecheck.test?server={server}"), &quick)
            .await,
        Reason::Timeout,
    );
}

#[tokio::test]
async fn icmp_echo_or_a_clear_privilege_error() {
    let f = fixture().await;
    let r = f.check("icmp://127.0.0.1").await;
    match r.outcome {
        Outcome::Up => assert!(r.rtt_ms.is_some()),
        // Without root or CAP_NET_RAW the check says what to do instead of crashing.
        _ => {
            assert_down(&r, Reason::Internal);
            assert!(r.error.unwrap().contains("CAP_NET_RAW"));
        }
    }
}

#[tokio::test]
async fn invalid_targets_are_results() {
    let f = fixture().await;
    let target = Target::parse("ftp://example.com", Some(7));
    let r = f.engine.check(&target, &opts(), &CancellationToken::new()).await;
    assert_down(&r, Reason::InvalidTarget);
    assert!(r.error.unwrap().starts_with("line 7:"));
    assert_eq!(r.line, Some(7));
}

#[tokio::test]
async fn queue_wait_is_not_blamed_on_the_target() {
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let engine = Engine::new(EngineSetup {
        limits: pulsecheck_core::EngineOptions {
            concurrency: 100,
            per_host: 1,
        },
        ..EngineSetup::default()
    })
    .unwrap();
    let options = CheckOptions {
        timeout: Duration::from_millis(900),
        ..CheckOptions::default()
    };
    // Three 400 ms checks through one slot: the last waits ~800 ms, yet none times out.
    let target = Target::parse(&format!("http://{}/delay/400", sim.info.http[0]), None);
    let cancel = CancellationToken::new();
    let (a, b, c) = tokio::join!(
        engine.check(&target, &options, &cancel),
        engine.check(&target, &options, &cancel),
        engine.check(&target, &options, &cancel)
    );
    for r in [&a, &b, &c] {
        assert_up(r);
    }
    let max_queue = [a.queue_ms, b.queue_ms, c.queue_ms].into_iter().max().unwrap();
    assert!(max_queue >= Duration::from_millis(700), "queue {max_queue:?}");
    assert!(engine.ledger().balanced());
}

#[tokio::test]
async fn the_final_response_is_captured_for_conditions() {
    let f = fixture().await;
    let capture = CheckOptions {
        capture_response: true,
        ..opts()
    };
    let r = f.check_with(&f.http("/json"), &capture).await;
    assert_up(&r);
    let response = r.response.expect("captured");
    assert!(response
        .headers
        .iter()
        .any(|(name, value)| name == "content-type" && value.contains("json")));
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["status"], "UP");
    assert!(
        f.check(&f.http("/json")).await.response.is_none(),
        "not kept unless asked"
    );
}

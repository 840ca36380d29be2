//! Every probe and every reason class, against the real simulator on loopback.
//! Deadlines are asserted with generous margins: CI is a loaded 2-core machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pulsecheck_core::conditions::{Condition, JsonExpect};
use pulsecheck_core::{CheckOptions, CheckResult, Engine, EngineSetup, Outcome, Reason, StatusMatcher, Target};
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

/// Options judged by these conditions.
fn judged_by(conditions: impl IntoIterator<Item = Condition>) -> CheckOptions {
    CheckOptions {
        conditions: conditions.into_iter().collect(),
        ..opts()
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

    let contains = judged_by([Condition::BodyContains("\"UP\"".into())]);
    assert_up(&f.check_with(&f.http("/json"), &contains).await);
    let missing = judged_by([Condition::BodyContains("DOWN".into())]);
    let r = f.check_with(&f.http("/json"), &missing).await;
    assert_down(&r, Reason::Body);
    assert!(r.response.is_none(), "the body is dropped once judged");
    let regex = judged_by([Condition::body_regex(r#""version":"\d+\.\d+""#).unwrap()]);
    assert_up(&f.check_with(&f.http("/json"), &regex).await);

    let slow = judged_by([Condition::LatencyUnder(Duration::from_millis(100))]);
    let r = f.check_with(&f.http("/delay/400"), &slow).await;
    assert_down(&r, Reason::Latency);
    assert_eq!(r.http_status, Some(200));

    // The status conditions decide which statuses are up: the 2xx default gives way.
    let r = f
        .check_with(
            &f.http("/status/503"),
            &judged_by([Condition::Status(StatusMatcher::parse("503").unwrap())]),
        )
        .await;
    assert_up(&r);
    let r = f
        .check_with(
            &f.http("/ok"),
            &judged_by([Condition::Status(StatusMatcher::parse("204").unwrap())]),
        )
        .await;
    assert_down(&r, Reason::Status);
    assert!(r.error.as_deref().unwrap().ends_with("/ok, expected 204"), "{r:#?}");
}

/// JSONPath and header conditions read the captured response; the result handed back
/// never carries it.
#[tokio::test]
async fn json_path_and_header_conditions_judge_the_response() {
    let f = fixture().await;
    let json = f.http("/json");
    let up = judged_by([
        Condition::header_matches("Content-Type", "^application/json").unwrap(),
        Condition::json_path("$.status", JsonExpect::Equals("UP".into())).unwrap(),
        Condition::json_path("$.checks.db", JsonExpect::Exists(true)).unwrap(),
    ]);
    let r = f.check_with(&json, &up).await;
    assert_up(&r);
    assert!(r.response.is_none(), "the response is dropped once judged");

    let wrong_value = judged_by([Condition::json_path("$.version", JsonExpect::Equals(2.into())).unwrap()]);
    let r = f.check_with(&json, &wrong_value).await;
    assert_down(&r, Reason::Body);
    assert_eq!(
        r.error.as_deref(),
        Some("condition `$.version == 2` failed: got \"1.0\"")
    );
    assert!(r.response.is_none());

    let wrong_header = judged_by([Condition::header_equals("content-type", "text/html")]);
    let r = f.check_with(&json, &wrong_header).await;
    assert_down(&r, Reason::Body);
    assert!(r.error.as_deref().unwrap().contains("application/json"), "{r:#?}");

    let not_json = judged_by([Condition::json_path("$.status", JsonExpect::Exists(true)).unwrap()]);
    let r = f.check_with(&f.http("/ok"), &not_json).await;
    assert_down(&r, Reason::Body);
    assert!(r.error.as_deref().unwrap().contains("not JSON"), "{r:#?}");

    // Order decides the reason: the first condition that fails.
    let status_first = judged_by([
        Condition::Status(StatusMatcher::parse("200").unwrap()),
        Condition::BodyContains("nowhere".into()),
    ]);
    assert_down(
        &f.check_with(&f.http("/status/500"), &status_first).await,
        Reason::Status,
    );
    let body_first = judged_by([
        Condition::BodyContains("nowhere".into()),
        Condition::Status(StatusMatcher::parse("200").unwrap()),
    ]);
    assert_down(&f.check_with(&f.http("/status/500"), &body_first).await, Reason::Body);
}

/// Conditions of a kind that cannot judge a target are skipped for it, so one list can
/// serve a mixed targets file.
#[tokio::test]
async fn conditions_that_do_not_fit_a_target_are_skipped() {
    let f = fixture().await;
    let mixed = judged_by([
        Condition::Status(StatusMatcher::parse("200").unwrap()),
        Condition::json_path("$.status", JsonExpect::Equals("UP".into())).unwrap(),
        Condition::CertExpiresInMoreThan { days: 30 },
        Condition::dns_rcode("NOERROR").unwrap(),
        Condition::DnsAnswerContains("127.0.0.1".into()),
    ]);
    let server = f.sim.info.dns;
    for target in [
        f.http("/json"),
        format!("tcp://{}", f.sim.info.http[0]),
        format!("tls://localhost:{}", f.sim.info.tls_valid.port()),
        f.https(f.sim.info.tls_valid, "/json"),
        format!("dns://ok.pulsecheck.test?server={server}"),
    ] {
        let r = f.check_with(&target, &mixed).await;
        assert_up(&r);
    }
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
        ..judged_by([Condition::BodyContains("pulsecheck-test".into())])
    };
    let r = f.check_with(&f.http("/headers"), &options).await;
    assert_up(&r);
    let options = CheckOptions {
        method: http::Method::POST,
        ..judged_by([Condition::BodyContains("\"POST\"".into())])
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
        ..judged_by([Condition::BodyContains(value)])
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
        ..judged_by([Condition::Status(StatusMatcher::parse("3xx").unwrap())])
    };
    let r = f.check_with(&f.http("/redirect/1"), &no_follow).await;
    assert_up(&r);
    assert_eq!(r.http_status, Some(302));
    let r = f
        .check_with(
            &f.http("/redirect/1"),
            &CheckOptions {
                max_redirects: 0,
                ..opts()
            },
        )
        .await;
    assert_down(&r, Reason::Status);
    assert!(r.error.as_deref().unwrap().contains("next was"), "{r:#?}");
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
    let relaxed = judged_by([Condition::CertExpiresInMoreThan { days: 30 }]);
    assert_up(
        &f.check_with(&format!("tls://localhost:{}", info.tls_valid.port()), &relaxed)
            .await,
    );
    let demanding = judged_by([Condition::CertExpiresInMoreThan { days: 120 }]);
    let r = f
        .check_with(&format!("tls://localhost:{}", info.tls_valid.port()), &demanding)
        .await;
    assert_down(&r, Reason::Certificate);
    let r = f.check_with(&f.https(info.tls_valid, "/ok"), &demanding).await;
    assert_down(&r, Reason::Certificate);
    assert_up(&f.check_with(&f.https(info.tls_valid, "/ok"), &relaxed).await);
    // An http:// URL has no certificate: the condition does not apply to it.
    assert_up(&f.check_with(&f.http("/ok"), &demanding).await);

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

    // A rcode condition replaces the NOERROR default: a name can be expected not to exist.
    let nx = format!("dns://nx.pulsecheck.test?server={server}");
    let expect_nx = judged_by([Condition::dns_rcode("NXDOMAIN").unwrap()]);
    assert_up(&f.check_with(&nx, &expect_nx).await);
    let r = f
        .check_with(&format!("dns://ok.pulsecheck.test?server={server}"), &expect_nx)
        .await;
    assert_down(&r, Reason::Dns);
    assert!(r.error.as_deref().unwrap().contains("got NOERROR"), "{r:#?}");
    let r = f.check(&nx).await;
    assert!(r.error.as_deref().unwrap().contains("NXDOMAIN"), "{r:#?}");
    let expect_answer = |text: &str| judged_by([Condition::DnsAnswerContains(text.into())]);
    let ok = format!("dns://ok.pulsecheck.test?server={server}");
    assert_up(&f.check_with(&ok, &expect_answer("127.0.0.1")).await);
    assert_down(&f.check_with(&ok, &expect_answer("10.9.9.9")).await, Reason::Dns);
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

/// The response is captured only for the conditions and never comes back in a result,
/// whatever the verdict and whether or not a condition needed it.
#[tokio::test]
async fn results_never_carry_the_response() {
    let f = fixture().await;
    let body = judged_by([Condition::BodyContains("x".into())]);
    for (target, options) in [
        (f.http("/json"), opts()),
        (f.http("/json"), body.clone()),
        (f.http("/bytes/2000000"), opts()),
        (f.http("/bytes/2000000"), body.clone()),
        (f.http("/status/500"), body.clone()),
        (f.http("/redirect/2"), body),
    ] {
        let r = f.check_with(&target, &options).await;
        assert!(r.response.is_none(), "{target}: {r:#?}");
        assert!(
            r.timings.transfer_ms.is_some(),
            "the body is still read (and timed): {r:#?}"
        );
    }
}

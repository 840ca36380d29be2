//! One attempt per channel kind against real receivers on loopback.

use std::time::Duration;

use crate::common::{down, event, HttpReceiver, Reply, SmtpReceiver};
use pulsecheck_core::channel::{ChannelKind, ChannelSpec, SmtpSecurity, SmtpSettings};
use pulsecheck_core::outbox::AlertKind;
use pulsecheck_notify::{send_test, Channel, DeliveryError};

fn spec(name: &str, kind: ChannelKind) -> ChannelSpec {
    ChannelSpec {
        name: name.into(),
        kind,
        timeout: Duration::from_secs(5),
    }
}

fn webhook(url: &str, template: Option<&str>) -> ChannelSpec {
    spec(
        "hook",
        ChannelKind::Webhook {
            url: url.into(),
            headers: vec![("Authorization".into(), "Bearer s3cret".into())],
            template: template.map(Into::into),
        },
    )
}

fn slack(url: &str, template: Option<&str>) -> ChannelSpec {
    spec(
        "slack",
        ChannelKind::Slack {
            webhook_url: url.into(),
            template: template.map(Into::into),
        },
    )
}

fn email(port: u16, subject: Option<&str>, body: Option<&str>) -> ChannelSpec {
    spec(
        "mail",
        ChannelKind::Email {
            smtp: SmtpSettings {
                host: "127.0.0.1".into(),
                port,
                security: SmtpSecurity::None,
                username: None,
                password: None,
            },
            from: "pulsecheck <alerts@example.com>".into(),
            to: vec!["ops@example.com".into(), "Oncall <oncall@example.org>".into()],
            subject: subject.map(Into::into),
            body: body.map(Into::into),
        },
    )
}

#[tokio::test]
async fn webhook_posts_the_event_as_json_with_the_idempotency_key() {
    let receiver = HttpReceiver::ok().await;
    let channel = Channel::new(webhook(&receiver.url(), None)).unwrap();
    assert_eq!(channel.kind(), "webhook");
    let event = down("api", 1, "hook");
    channel.send(&event).await.unwrap();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hook");
    assert_eq!(request.header("idempotency-key"), Some("api:1:hook"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), Some("Bearer s3cret"));
    assert!(request.header("user-agent").unwrap().starts_with("pulsecheck/"));
    // The payload is the AlertEvent itself, key included.
    assert_eq!(request.json(), serde_json::to_value(&event).unwrap());
    assert_eq!(request.json()["idempotency_key"], "api:1:hook");
    assert_eq!(request.json()["kind"], "down");
    assert_eq!(request.json()["reason"], "timeout");
}

#[tokio::test]
async fn webhook_template_is_rendered_with_the_event_and_key() {
    let receiver = HttpReceiver::ok().await;
    let template = r#"{"alert": {{ check|tojson }}, "state": "{{ to }}", "key": {{ idempotency_key|tojson }},
        "summary": {{ summary|tojson }}, "causes": {{ cause|length }}, "channel": "{{ channel }}",
        "event": {{ event|tojson }}}"#;
    let channel = Channel::new(webhook(&receiver.url(), Some(template))).unwrap();
    let event = down("api", 7, "hook");
    channel.send(&event).await.unwrap();

    let request = &receiver.requests()[0];
    assert_eq!(request.header("idempotency-key"), Some("api:7:hook"));
    let body = request.json();
    assert_eq!(body["alert"], "api");
    assert_eq!(body["state"], "down");
    assert_eq!(body["key"], "api:7:hook");
    assert_eq!(body["summary"], "api is DOWN — timeout: no verdict within 5s");
    assert_eq!(body["causes"], 1);
    assert_eq!(body["channel"], "hook");
    assert_eq!(body["event"], serde_json::to_value(&event).unwrap());
}

#[tokio::test]
async fn webhook_template_that_renders_invalid_json_is_permanent() {
    let receiver = HttpReceiver::ok().await;
    // Valid JSON for the sample events, but the error text is pasted without escaping.
    let channel = Channel::new(webhook(&receiver.url(), Some(r#"{"error": "{{ error }}"}"#))).unwrap();
    let mut event = down("api", 1, "hook");
    event.error = Some(r#"unexpected "quote""#.into());
    let error = channel.send(&event).await.unwrap_err();
    assert!(error.permanent, "{error:?}");
    assert!(error.message.contains("invalid JSON"), "{error:?}");
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn slack_default_texts() {
    let receiver = HttpReceiver::ok().await;
    let channel = Channel::new(slack(&receiver.url(), None)).unwrap();
    assert_eq!(channel.kind(), "slack");
    channel.send(&down("api", 1, "slack")).await.unwrap();
    channel
        .send(&event("api", 2, "slack", AlertKind::Resolved))
        .await
        .unwrap();

    let requests = receiver.requests();
    assert_eq!(requests[0].header("idempotency-key"), Some("api:1:slack"));
    assert_eq!(
        requests[0].json(),
        serde_json::json!({"text": ":red_circle: *api* is DOWN — timeout: no verdict within 5s"})
    );
    assert_eq!(requests[1].header("idempotency-key"), Some("api:2:slack"));
    assert_eq!(
        requests[1].json(),
        serde_json::json!({"text": ":large_green_circle: *api* is UP again"})
    );
}

#[tokio::test]
async fn slack_template() {
    let receiver = HttpReceiver::ok().await;
    let template = "{{ check }} → {{ to|upper }}{% if reason %} ({{ reason }}){% endif %} [{{ idempotency_key }}]";
    let channel = Channel::new(slack(&receiver.url(), Some(template))).unwrap();
    channel.send(&down("db", 3, "slack")).await.unwrap();
    assert_eq!(
        receiver.requests()[0].json(),
        serde_json::json!({"text": "db → DOWN (timeout) [db:3:slack]"})
    );
}

#[tokio::test]
async fn http_status_classes() {
    for (status, permanent) in [
        (400, true),
        (401, true),
        (404, true),
        (301, true),
        (408, false),
        (429, false),
        (500, false),
        (503, false),
    ] {
        let receiver = HttpReceiver::start(move |_, _| Reply::Status(status)).await;
        let channel = Channel::new(webhook(&receiver.url(), None)).unwrap();
        let error = channel.send(&down("api", 1, "hook")).await.unwrap_err();
        assert_eq!(error.permanent, permanent, "{status}: {error:?}");
        assert!(error.message.starts_with(&format!("HTTP {status}")), "{error:?}");
        assert!(error.message.contains(&format!("answer {status}")), "{error:?}");
    }
    let receiver = HttpReceiver::start(|_, _| Reply::Status(204)).await;
    let channel = Channel::new(webhook(&receiver.url(), None)).unwrap();
    assert_eq!(channel.send(&down("api", 1, "hook")).await, Ok(()));
}

#[tokio::test]
async fn retry_after_is_passed_on() {
    let receiver = HttpReceiver::start(|_, _| Reply::RetryAfter(429, 7)).await;
    let channel = Channel::new(slack(&receiver.url(), None)).unwrap();
    let error = channel.send(&down("api", 1, "slack")).await.unwrap_err();
    assert!(!error.permanent);
    assert_eq!(error.retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn connection_refused_is_retryable_and_hides_the_url() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let channel = Channel::new(slack(&format!("http://127.0.0.1:{port}/services/T0/B0/SECRET"), None)).unwrap();
    let error = channel.send(&down("api", 1, "slack")).await.unwrap_err();
    assert!(!error.permanent, "{error:?}");
    assert!(error.message.contains("cannot connect"), "{error:?}");
    assert!(!error.message.contains("SECRET"), "the webhook URL leaked: {error:?}");
}

#[tokio::test]
async fn a_hanging_receiver_times_out_per_attempt() {
    let receiver = HttpReceiver::start(|_, _| Reply::Hang).await;
    let mut spec = webhook(&receiver.url(), None);
    spec.timeout = Duration::from_millis(200);
    let channel = Channel::new(spec).unwrap();
    let started = std::time::Instant::now();
    let error = channel.send(&down("api", 1, "hook")).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(!error.permanent);
    assert!(error.message.contains("timed out"), "{error:?}");
    assert!(
        elapsed >= Duration::from_millis(190) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn email_arrives_with_subject_recipients_and_key() {
    let smtp = SmtpReceiver::start(None).await;
    let channel = Channel::new(email(smtp.addr.port(), None, None)).unwrap();
    assert_eq!(channel.kind(), "email");
    channel
        .send(&event("api", 4, "mail", AlertKind::Resolved))
        .await
        .unwrap();

    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.from, "<alerts@example.com>");
    assert_eq!(mail.to, vec!["<ops@example.com>", "<oncall@example.org>"]);
    assert_eq!(mail.header("Subject").as_deref(), Some("[pulsecheck] api is UP again"));
    assert_eq!(mail.header("X-Idempotency-Key").as_deref(), Some("api:4:mail"));
    assert_eq!(
        mail.header("Message-ID").as_deref(),
        Some("<pulsecheck.api=3A4=3Amail@example.com>")
    );
    let to = mail.header("To").unwrap();
    assert!(
        to.contains("ops@example.com") && to.contains("oncall@example.org"),
        "{to}"
    );
    let body = mail.body();
    assert!(body.contains("Idempotency key: api:4:mail"), "{body}");
    assert!(body.contains("State:   down -> up"), "{body}");
}

#[tokio::test]
async fn email_templates() {
    let smtp = SmtpReceiver::start(None).await;
    let channel = Channel::new(email(
        smtp.addr.port(),
        Some("{{ check }} is {{ to }}"),
        Some("Check {{ check }} ({{ target }}) went {{ to }}.\nKey: {{ idempotency_key }}\n"),
    ))
    .unwrap();
    channel.send(&down("db", 9, "mail")).await.unwrap();
    let mail = &smtp.mails()[0];
    assert_eq!(mail.header("Subject").as_deref(), Some("db is down"));
    assert_eq!(mail.header("X-Idempotency-Key").as_deref(), Some("db:9:mail"));
    let body = mail.body();
    assert!(
        body.contains("Check db (https://db.example.com/health) went down."),
        "{body}"
    );
    assert!(body.contains("Key: db:9:mail"), "{body}");
}

#[tokio::test]
async fn smtp_4xx_is_retried_and_5xx_is_permanent() {
    let transient = SmtpReceiver::start(Some("451 4.3.0 mailbox busy, try later")).await;
    let channel = Channel::new(email(transient.addr.port(), None, None)).unwrap();
    let error: DeliveryError = channel.send(&down("api", 1, "mail")).await.unwrap_err();
    assert!(!error.permanent, "{error:?}");
    assert!(error.message.contains("451"), "{error:?}");

    let permanent = SmtpReceiver::start(Some("550 5.1.1 no such user")).await;
    let channel = Channel::new(email(permanent.addr.port(), None, None)).unwrap();
    let error = channel.send(&down("api", 1, "mail")).await.unwrap_err();
    assert!(error.permanent, "{error:?}");
    assert!(error.message.contains("550"), "{error:?}");
    assert!(transient.mails().is_empty() && permanent.mails().is_empty());
}

#[tokio::test]
async fn smtp_server_down_is_retryable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let channel = Channel::new(email(port, None, None)).unwrap();
    let error = channel.send(&down("api", 1, "mail")).await.unwrap_err();
    assert!(!error.permanent, "{error:?}");
}

#[tokio::test]
async fn send_test_sends_a_test_event() {
    let receiver = HttpReceiver::ok().await;
    let channel = Channel::new(webhook(&receiver.url(), None)).unwrap();
    send_test(&channel, "pulsecheck").await.unwrap();
    let request = &receiver.requests()[0];
    assert_eq!(request.json()["kind"], "test");
    assert_eq!(request.json()["check"], "pulsecheck");
    let key = request.key();
    assert!(key.starts_with("test:pulsecheck:hook:"), "{key}");
    assert_eq!(request.json()["idempotency_key"], key.as_str());
}

#[test]
fn invalid_channels_are_config_errors() {
    let cases = [
        (webhook("not a url", None), "invalid URL"),
        (webhook("ftp://example.com/x", None), "http:// or https://"),
        (
            webhook("http://127.0.0.1:9/x", Some("{{ check }")),
            "template: syntax error",
        ),
        (webhook("http://127.0.0.1:9/x", Some("{{ chek }}")), "undefined"),
        (
            webhook("http://127.0.0.1:9/x", Some("{{ check }} is down")),
            "invalid JSON",
        ),
        (
            slack("http://127.0.0.1:9/x", Some("{% if %}")),
            "template: syntax error",
        ),
        (
            spec(
                "hook",
                ChannelKind::Webhook {
                    url: "http://127.0.0.1:9/x".into(),
                    headers: vec![("bad header".into(), "x".into())],
                    template: None,
                },
            ),
            "invalid header name",
        ),
        (
            spec(
                "hook",
                ChannelKind::Webhook {
                    url: "http://127.0.0.1:9/x".into(),
                    headers: vec![("Idempotency-Key".into(), "x".into())],
                    template: None,
                },
            ),
            "set by pulsecheck",
        ),
        (email(25, Some("{{ check"), None), "subject template"),
        (email(25, None, Some("{% for %}")), "body template"),
    ];
    for (spec, expected) in cases {
        let name = spec.name.clone();
        let error = Channel::new(spec).unwrap_err();
        assert_eq!(error.channel, name);
        assert!(error.message.contains(expected), "expected {expected:?} in {error}");
    }
    let mut bad_from = email(25, None, None);
    if let ChannelKind::Email { from, .. } = &mut bad_from.kind {
        *from = "not an address".into();
    }
    assert!(Channel::new(bad_from)
        .unwrap_err()
        .message
        .contains("invalid from address"));
    let mut no_to = email(25, None, None);
    if let ChannelKind::Email { to, .. } = &mut no_to.kind {
        to.clear();
    }
    assert!(Channel::new(no_to).unwrap_err().message.contains("no recipients"));
}

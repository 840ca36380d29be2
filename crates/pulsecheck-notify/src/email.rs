//! Email over SMTP with lettre: one connection per attempt (alerts are rare, and a
//! fresh connection never hands a half-dead session to the next alert).

use std::net::IpAddr;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use pulsecheck_core::channel::{SmtpSecurity, SmtpSettings};
use pulsecheck_core::outbox::{AlertEvent, BoxFuture};
use pulsecheck_core::resolve::Resolver;
use pulsecheck_core::target::Host;

use crate::channel::Notifier;
use crate::error::{chain, ChannelError, DeliveryError};
use crate::template::{email_body, email_subject, Templates};

pub(crate) struct EmailNotifier {
    smtp: SmtpSettings,
    host: Host,
    from: Mailbox,
    to: Vec<Mailbox>,
    templates: Templates,
    timeout: Duration,
    resolver: Resolver,
}

impl EmailNotifier {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        channel: &str,
        smtp: &SmtpSettings,
        from: &str,
        to: &[String],
        subject: Option<&str>,
        body: Option<&str>,
        timeout: Duration,
        resolver: Resolver,
    ) -> Result<EmailNotifier, ChannelError> {
        if smtp.host.trim().is_empty() {
            return Err(ChannelError::new(channel, "smtp host is empty"));
        }
        let host = match smtp.host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(smtp.host.to_ascii_lowercase()),
        };
        let from: Mailbox = from
            .parse()
            .map_err(|e| ChannelError::new(channel, format!("invalid from address '{from}': {e}")))?;
        if to.is_empty() {
            return Err(ChannelError::new(channel, "no recipients (to is empty)"));
        }
        let to = to
            .iter()
            .map(|address| {
                address
                    .parse::<Mailbox>()
                    .map_err(|e| ChannelError::new(channel, format!("invalid to address '{address}': {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if smtp.username.is_some() != smtp.password.is_some() {
            return Err(ChannelError::new(
                channel,
                "smtp username and password must be given together",
            ));
        }
        let mut templates = Templates::new();
        if let Some(source) = subject {
            templates
                .add("subject", source, false)
                .map_err(|e| ChannelError::new(channel, format!("subject template: {e}")))?;
        }
        if let Some(source) = body {
            templates
                .add("body", source, false)
                .map_err(|e| ChannelError::new(channel, format!("body template: {e}")))?;
        }
        Ok(EmailNotifier {
            smtp: smtp.clone(),
            host,
            from,
            to,
            templates,
            timeout,
            resolver,
        })
    }

    fn message(&self, event: &AlertEvent, channel: &str) -> Result<Message, DeliveryError> {
        let render = |name: &str, default: fn(&AlertEvent) -> String| {
            if self.templates.has(name) {
                self.templates
                    .render(name, event, channel)
                    .map_err(|e| DeliveryError::permanent(format!("{name} template: {e}")))
            } else {
                Ok(default(event))
            }
        };
        // A subject is one line; a template that renders newlines would break the header.
        let subject = render("subject", email_subject)?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let body = render("body", email_body)?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(message_id(&event.idempotency_key, &self.from)))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Idempotency-Key"),
                event.idempotency_key.clone(),
            ));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .body(body)
            .map_err(|e| DeliveryError::permanent(format!("cannot build the message: {e}")))
    }

    async fn deliver(&self, event: &AlertEvent, channel: &str) -> Result<(), DeliveryError> {
        let message = self.message(event, channel)?;
        let addresses = self
            .resolver
            .resolve(&self.host)
            .await
            .map_err(|e| DeliveryError::retryable(format!("smtp server: {e}")))?;
        let ip = addresses
            .first()
            .ok_or_else(|| DeliveryError::retryable("smtp server has no address"))?;
        let server_name = self.host.server_name();
        let tls = match self.smtp.security {
            SmtpSecurity::None => Tls::None,
            SmtpSecurity::StartTls | SmtpSecurity::Tls => {
                let parameters = TlsParameters::new(server_name)
                    .map_err(|e| DeliveryError::retryable(format!("smtp TLS setup: {}", chain(&e))))?;
                if self.smtp.security == SmtpSecurity::StartTls {
                    Tls::Required(parameters)
                } else {
                    Tls::Wrapper(parameters)
                }
            }
        };
        // Connect to the address resolved by hickory; TLS still verifies the host name.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(ip.to_string())
            .port(self.smtp.port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let (Some(user), Some(password)) = (&self.smtp.username, &self.smtp.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let transport = builder.build();
        transport.send(message).await.map(drop).map_err(classify)
    }
}

/// SMTP 5xx is permanent; 4xx, network, TLS and protocol failures are retried.
fn classify(error: lettre::transport::smtp::Error) -> DeliveryError {
    let code = error.status().map(|code| format!("SMTP {code}: "));
    let message = format!("{}{}", code.unwrap_or_default(), chain(&error));
    if error.is_permanent() {
        DeliveryError::permanent(message)
    } else {
        DeliveryError::retryable(message)
    }
}

/// A Message-ID derived from the idempotency key, so every retry of one alert carries
/// the same one. Characters outside RFC 5322 `atext` are written as `=XX`.
fn message_id(key: &str, from: &Mailbox) -> String {
    let mut left = String::from("pulsecheck.");
    for byte in key.bytes() {
        let c = byte as char;
        if c.is_ascii_alphanumeric() || "!#$%&'*+-/?^_`{|}~.".contains(c) {
            left.push(c);
        } else {
            left.push_str(&format!("={byte:02X}"));
        }
    }
    let left = left.trim_end_matches('.').replace("..", ".=2E");
    format!("<{left}@{}>", from.email.domain())
}

impl Notifier for EmailNotifier {
    fn kind(&self) -> &'static str {
        "email"
    }

    fn send<'a>(&'a self, event: &'a AlertEvent, channel: &'a str) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(self.deliver(event, channel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_and_valid() {
        let from: Mailbox = "pulsecheck <alerts@example.com>".parse().unwrap();
        assert_eq!(
            message_id("api:42:ops mail", &from),
            "<pulsecheck.api=3A42=3Aops=20mail@example.com>"
        );
        assert_eq!(message_id("a..b.", &from), "<pulsecheck.a.=2Eb@example.com>");
    }
}

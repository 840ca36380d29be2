//! Notification channels as configured (validated, with `${ENV}` already substituted).
//! The delivery side (pulsecheck-notify) turns these into requests; the config side
//! builds them. Plain data: no I/O here.

use std::time::Duration;

/// One named channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelSpec {
    pub name: String,
    pub kind: ChannelKind,
    /// Deadline for one delivery attempt.
    pub timeout: Duration,
}

/// Default deadline for one delivery attempt.
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq)]
pub enum ChannelKind {
    /// POST a JSON payload: the [`AlertEvent`](crate::outbox::AlertEvent) itself, or the
    /// rendering of `template` (minijinja, with the event as context).
    Webhook {
        url: String,
        headers: Vec<(String, String)>,
        template: Option<String>,
    },
    /// A Slack incoming webhook: `{"text": …}` from `template` or a default message.
    Slack {
        webhook_url: String,
        template: Option<String>,
    },
    /// Email over SMTP.
    Email {
        smtp: SmtpSettings,
        from: String,
        to: Vec<String>,
        /// minijinja templates for the subject and body; defaults are used when absent.
        subject: Option<String>,
        body: Option<String>,
    },
}

/// How to reach the SMTP server.
#[derive(Clone, Debug, PartialEq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP (loopback relays, tests).
    None,
    /// STARTTLS upgrade (usually port 587).
    StartTls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

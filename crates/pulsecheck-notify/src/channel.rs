use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pulsecheck_core::channel::{ChannelKind, ChannelSpec};
use pulsecheck_core::outbox::{AlertEvent, BoxFuture};
use pulsecheck_core::resolve::Resolver;

use crate::email::EmailNotifier;
use crate::error::{ChannelError, DeliveryError};
use crate::http::{HttpNotifier, HttpStyle};

/// Sends one alert to one kind of receiver. Object-safe so that the delivery workers can
/// hold any channel, and tests (or future channel kinds) can plug in their own.
///
/// An implementation makes exactly one attempt; [`Channel::send`] bounds it with the
/// channel's per-attempt timeout, and the delivery workers handle retries.
pub trait Notifier: Send + Sync {
    /// `webhook`, `slack`, `email`, ...
    fn kind(&self) -> &'static str;

    fn send<'a>(&'a self, event: &'a AlertEvent, channel: &'a str) -> BoxFuture<'a, Result<(), DeliveryError>>;
}

/// What the channels share: one HTTP client (one connection pool for every webhook and
/// Slack channel) and one asynchronous DNS resolver (hickory; no `getaddrinfo` on the
/// blocking pool). Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    pub(crate) http: reqwest::Client,
    pub(crate) resolver: Resolver,
}

impl Transport {
    /// A transport that resolves names with `resolver` (pass the engine's, so probes and
    /// delivery share one cache).
    pub fn new(resolver: Resolver) -> Result<Transport, String> {
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(crate::http::HickoryResolve(resolver.clone())))
            // A webhook that redirects is misconfigured; following it would turn the
            // POST into a GET on 301/302.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pulsecheck/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", crate::error::chain(&e)))?;
        Ok(Transport { http, resolver })
    }

    /// The process-wide transport that [`Channel::new`] uses, built on first use with the
    /// system DNS configuration.
    pub fn shared() -> Result<Transport, String> {
        static SHARED: OnceLock<Result<Transport, String>> = OnceLock::new();
        SHARED.get_or_init(|| Transport::new(Resolver::new(None))).clone()
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

/// A configured, validated channel, ready to send. Cheap to clone.
#[derive(Clone)]
pub struct Channel {
    name: Arc<str>,
    timeout: Duration,
    notifier: Arc<dyn Notifier>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("kind", &self.notifier.kind())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Channel {
    /// Builds a channel with the [shared transport](Transport::shared). Validates the
    /// URL, headers, addresses and templates; does no network I/O.
    pub fn new(spec: ChannelSpec) -> Result<Channel, ChannelError> {
        let transport = Transport::shared().map_err(|e| ChannelError::new(&spec.name, e))?;
        Channel::with_transport(spec, &transport)
    }

    pub fn with_transport(spec: ChannelSpec, transport: &Transport) -> Result<Channel, ChannelError> {
        let name = spec.name.as_str();
        if spec.timeout.is_zero() {
            return Err(ChannelError::new(name, "timeout must be greater than zero"));
        }
        let notifier: Arc<dyn Notifier> = match &spec.kind {
            ChannelKind::Webhook { url, headers, template } => Arc::new(HttpNotifier::new(
                name,
                HttpStyle::Webhook,
                url,
                headers,
                template.as_deref(),
                transport.http.clone(),
            )?),
            ChannelKind::Slack { webhook_url, template } => Arc::new(HttpNotifier::new(
                name,
                HttpStyle::Slack,
                webhook_url,
                &[],
                template.as_deref(),
                transport.http.clone(),
            )?),
            ChannelKind::Email {
                smtp,
                from,
                to,
                subject,
                body,
            } => Arc::new(EmailNotifier::new(
                name,
                smtp,
                from,
                to,
                subject.as_deref(),
                body.as_deref(),
                spec.timeout,
                transport.resolver.clone(),
            )?),
        };
        Ok(Channel::custom(name, spec.timeout, notifier))
    }

    /// A channel around any [`Notifier`] (tests, or kinds outside [`ChannelKind`]).
    pub fn custom(name: &str, timeout: Duration, notifier: Arc<dyn Notifier>) -> Channel {
        Channel {
            name: Arc::from(name),
            timeout,
            notifier,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> &'static str {
        self.notifier.kind()
    }

    /// The deadline for one attempt.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Makes one delivery attempt, bounded by the channel's timeout. A timeout is
    /// retryable.
    pub async fn send(&self, event: &AlertEvent) -> Result<(), DeliveryError> {
        match tokio::time::timeout(self.timeout, self.notifier.send(event, &self.name)).await {
            Ok(result) => result,
            Err(_) => Err(DeliveryError::retryable(format!(
                "timed out: no answer within {}",
                crate::delivery::human(self.timeout)
            ))),
        }
    }
}

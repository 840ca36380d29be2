//! pulsecheck-notify: alert delivery for `pulsecheck serve`.
//!
//! - [`Channel`] is a configured channel ([`ChannelSpec`](pulsecheck_core::channel::ChannelSpec)
//!   validated and built: webhook, Slack incoming webhook, or email over SMTP) that makes
//!   one delivery attempt per [`Channel::send`], bounded by the channel's timeout. All
//!   HTTP channels share one connection pool ([`Transport`]).
//! - [`DeliveryError`] says whether a failed attempt is worth retrying: 408, 429, 5xx,
//!   timeouts, network errors and SMTP 4xx are; other 4xx, SMTP 5xx and payloads that
//!   cannot be built are permanent and go to the dead-letter state.
//! - [`spawn_delivery`] runs the delivery workers: a dispatcher that takes due
//!   notifications from an [`Outbox`](pulsecheck_core::outbox::Outbox) and a bounded pool
//!   of attempts, with jittered exponential [`backoff`] between retries. Delivery is at
//!   least once; every notification carries its idempotency key (an `Idempotency-Key`
//!   header and a payload field for HTTP, `Message-ID` and `X-Idempotency-Key` for email).
//! - [`check_template`] and [`check_json_template`] validate minijinja templates for the
//!   config validator.

#![forbid(unsafe_code)]

mod channel;
mod delivery;
mod email;
mod error;
mod http;
mod template;

pub use channel::{Channel, Notifier, Transport};
pub use delivery::{backoff, send_test, spawn_delivery, Channels, DeliveryConfig, DeliveryStats, PROBE_EVERY};
pub use error::{ChannelError, DeliveryError};
pub use http::is_retryable;
pub use template::{check_json_template, check_template, detail, email_body, email_subject, slack_text, summary};

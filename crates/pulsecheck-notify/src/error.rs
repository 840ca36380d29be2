use std::fmt;
use std::time::Duration;

/// A channel could not be built from its spec: a bad URL, header, address or template.
/// This is a configuration error, reported at start-up or reload rather than at 3 am.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("channel '{channel}': {message}")]
pub struct ChannelError {
    pub channel: String,
    pub message: String,
}

impl ChannelError {
    pub(crate) fn new(channel: &str, message: impl Into<String>) -> ChannelError {
        ChannelError {
            channel: channel.to_owned(),
            message: message.into(),
        }
    }
}

/// One delivery attempt failed.
///
/// `permanent` errors (a 4xx other than 408/429, an SMTP 5xx, a template that renders to
/// invalid JSON) go to the dead-letter state; all others are retried with backoff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryError {
    pub permanent: bool,
    pub message: String,
    /// What the receiver asked for (`Retry-After` on a 429 or 503): the retry comes
    /// after this long instead of the backoff, capped at the backoff maximum (and one
    /// second at least).
    pub retry_after: Option<Duration>,
}

impl DeliveryError {
    pub fn retryable(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            permanent: false,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            permanent: true,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeliveryError {}

/// An error and its sources, joined with ": " (reqwest and lettre put the useful part,
/// such as "connection refused", in the source chain).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

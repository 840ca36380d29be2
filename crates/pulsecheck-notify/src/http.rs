//! Webhook and Slack channels: one POST per attempt on the shared connection pool.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use pulsecheck_core::outbox::{AlertEvent, BoxFuture};
use pulsecheck_core::resolve::Resolver;
use pulsecheck_core::target::Host;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;

use crate::channel::Notifier;
use crate::error::{chain, ChannelError, DeliveryError};
use crate::template::{slack_text, Templates};

/// How much of a response body is read: enough for an error message, and to let the
/// connection go back to the pool; a receiver that streams more is cut off.
const MAX_BODY: usize = 64 * 1024;
/// How much of an error response goes into the message stored with the notification.
const MAX_SNIPPET: usize = 300;

/// reqwest's default resolver calls `getaddrinfo` on the blocking pool; this one uses
/// pulsecheck's hickory resolver.
pub(crate) struct HickoryResolve(pub(crate) Resolver);

impl reqwest::dns::Resolve for HickoryResolve {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.0.clone();
        let host = match name.as_str().parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(name.as_str().to_ascii_lowercase()),
        };
        Box::pin(async move {
            let addrs = resolver.resolve(&host).await?;
            // reqwest replaces port 0 with the URL's port.
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HttpStyle {
    /// The event (or the rendered template) as the JSON body.
    Webhook,
    /// `{"text": …}`.
    Slack,
}

pub(crate) struct HttpNotifier {
    style: HttpStyle,
    url: reqwest::Url,
    headers: HeaderMap,
    templates: Templates,
    client: reqwest::Client,
}

impl HttpNotifier {
    pub(crate) fn new(
        channel: &str,
        style: HttpStyle,
        url: &str,
        headers: &[(String, String)],
        template: Option<&str>,
        client: reqwest::Client,
    ) -> Result<HttpNotifier, ChannelError> {
        let url = reqwest::Url::parse(url).map_err(|e| ChannelError::new(channel, format!("invalid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ChannelError::new(
                channel,
                "the URL must be http:// or https:// with a host",
            ));
        }
        let mut header_map = HeaderMap::new();
        header_map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ChannelError::new(channel, format!("invalid header name '{name}'")))?;
            if header.as_str() == "idempotency-key" {
                return Err(ChannelError::new(
                    channel,
                    "the Idempotency-Key header is set by pulsecheck and cannot be configured",
                ));
            }
            let value = HeaderValue::from_str(value)
                .map_err(|_| ChannelError::new(channel, format!("invalid value for header '{name}'")))?;
            header_map.insert(header, value);
        }
        let mut templates = Templates::new();
        if let Some(source) = template {
            templates
                .add("template", source, style == HttpStyle::Webhook)
                .map_err(|e| ChannelError::new(channel, format!("template: {e}")))?;
        }
        Ok(HttpNotifier {
            style,
            url,
            headers: header_map,
            templates,
            client,
        })
    }

    fn body(&self, event: &AlertEvent, channel: &str) -> Result<Vec<u8>, DeliveryError> {
        let rendered = if self.templates.has("template") {
            Some(
                self.templates
                    .render("template", event, channel)
                    .map_err(|e| DeliveryError::permanent(format!("template: {e}")))?,
            )
        } else {
            None
        };
        let body = match (self.style, rendered) {
            (HttpStyle::Webhook, None) => serde_json::to_vec(event),
            (HttpStyle::Webhook, Some(text)) => {
                if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
                    return Err(DeliveryError::permanent(format!(
                        "template rendered invalid JSON ({e}); use `|tojson` for values"
                    )));
                }
                Ok(text.into_bytes())
            }
            (HttpStyle::Slack, text) => {
                let text = text.unwrap_or_else(|| slack_text(event));
                serde_json::to_vec(&serde_json::json!({ "text": text }))
            }
        };
        body.map_err(|e| DeliveryError::permanent(format!("cannot encode the payload: {e}")))
    }

    async fn post(&self, event: &AlertEvent, channel: &str) -> Result<(), DeliveryError> {
        let body = self.body(event, channel)?;
        let key = HeaderValue::from_str(&event.idempotency_key)
            .map_err(|_| DeliveryError::permanent("the idempotency key is not a valid header value"))?;
        let response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header("idempotency-key", key)
            .body(body)
            .send()
            .await
            // Never store or log the URL: a Slack webhook URL is a secret.
            .map_err(|e| DeliveryError::retryable(describe_request_error(e)))?;
        let status = response.status();
        // Retry-After means "come back then" on a 429 or 503 only.
        let retry_after = match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                retry_after(response.headers(), jiff::Timestamp::now())
            }
            _ => None,
        };
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_capped(response).await;
        if status.is_success() {
            return Ok(());
        }
        let mut message = format!("HTTP {}", status_line(status));
        if let Some(location) = location.filter(|_| status.is_redirection()) {
            message.push_str(&format!(" to {location}; configure the final URL"));
        }
        let snippet = snippet(&body);
        if !snippet.is_empty() {
            message.push_str(": ");
            message.push_str(&snippet);
        }
        let mut error = if is_retryable(status) {
            DeliveryError::retryable(message)
        } else {
            DeliveryError::permanent(message)
        };
        error.retry_after = retry_after;
        Err(error)
    }
}

impl Notifier for HttpNotifier {
    fn kind(&self) -> &'static str {
        match self.style {
            HttpStyle::Webhook => "webhook",
            HttpStyle::Slack => "slack",
        }
    }

    fn send<'a>(&'a self, event: &'a AlertEvent, channel: &'a str) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(self.post(event, channel))
    }
}

/// 408, 429 and 5xx are worth retrying; any other non-2xx answer will not change.
pub fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

fn status_line(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

fn describe_request_error(error: reqwest::Error) -> String {
    let kind = if error.is_connect() {
        "cannot connect"
    } else if error.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    format!("{kind}: {}", chain(&error.without_url()))
}

/// `Retry-After` as seconds or as an HTTP date (a date in the past means now).
fn retry_after(headers: &HeaderMap, now: jiff::Timestamp) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
}

async fn read_capped(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(MAX_SNIPPET) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [301, 400, 401, 403, 404, 410, 413, 422] {
            assert!(!is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[test]
    fn retry_after_as_seconds_or_http_date() {
        let now: jiff::Timestamp = "2026-01-01T03:00:00Z".parse().unwrap();
        let header = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
            retry_after(&headers, now)
        };
        assert_eq!(header(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(header("Thu, 01 Jan 2026 03:00:30 GMT"), Some(Duration::from_secs(30)));
        assert_eq!(header("Thu, 01 Jan 2026 02:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(header("soon"), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn snippets_are_short_and_on_one_line() {
        assert_eq!(snippet(b"  bad\n request  "), "bad request");
        let long = "x".repeat(1000);
        assert_eq!(snippet(long.as_bytes()).chars().count(), MAX_SNIPPET + 1);
    }
}

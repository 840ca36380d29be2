//! HTTP(S) probe on hyper's `client::conn` over our own connector, so each phase (DNS,
//! connect, TLS, first byte, transfer) is measured. A fresh connection per check and hop.

use std::error::Error as _;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};

use bytes::Bytes;
use http::header::{ACCEPT, HOST, LOCATION, USER_AGENT};
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use url::Url;

use super::{check_certificate_days, connect, handshake, resolve, Attempt, Failure, Phase, ProbeContext};
use crate::options::CheckOptions;
use crate::result::{Reason, Timings};
use crate::target::Host;

/// What one request/response exchange produced.
struct Exchange {
    status: StatusCode,
    version: Version,
    location: Option<HeaderValue>,
    headers: http::HeaderMap,
    /// The body, kept only when a body condition needs it (and capped).
    body: Vec<u8>,
}

pub async fn probe(
    ctx: &ProbeContext,
    url: &Url,
    options: &CheckOptions,
    attempt: &mut Attempt,
) -> Result<(), Failure> {
    let mut current = url.clone();
    let mut method = options.method.clone();
    loop {
        let exchange = hop(ctx, &current, &method, options, attempt).await?;
        let status = exchange.status;
        attempt.result.http_status = Some(status.as_u16());
        attempt.result.http_version = Some(version_name(exchange.version).to_owned());
        let next = exchange
            .location
            .as_ref()
            .filter(|_| status.is_redirection())
            .and_then(|loc| loc.to_str().ok())
            .and_then(|loc| current.join(loc).ok());
        if let Some(next) = next {
            if attempt.result.redirects < options.max_redirects {
                attempt.result.redirects += 1;
                if status == StatusCode::SEE_OTHER || (method == Method::POST && status.as_u16() <= 302) {
                    method = Method::GET;
                }
                current = next;
                continue;
            }
            if !options.expect_status.matches(status.as_u16()) {
                return Err(Failure::new(
                    Reason::Status,
                    format!(
                        "status {status} after {} redirects, the limit (--max-redirects); next was {next}",
                        attempt.result.redirects
                    ),
                ));
            }
        }
        if options.capture_response {
            attempt.result.response = Some(Box::new(capture(&exchange)));
        }
        return evaluate(&exchange, &current, options, attempt);
    }
}

fn capture(exchange: &Exchange) -> crate::result::CapturedResponse {
    crate::result::CapturedResponse {
        headers: exchange
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: Bytes::from(exchange.body.clone()),
    }
}

fn evaluate(exchange: &Exchange, url: &Url, options: &CheckOptions, attempt: &Attempt) -> Result<(), Failure> {
    let status = exchange.status.as_u16();
    if !options.expect_status.matches(status) {
        return Err(Failure::new(
            Reason::Status,
            format!(
                "status {} from {url}, expected {}",
                exchange.status, options.expect_status
            ),
        ));
    }
    if options.body_contains.is_some() || options.body_regex.is_some() {
        let body = String::from_utf8_lossy(&exchange.body);
        if let Some(needle) = &options.body_contains {
            if !body.contains(needle.as_str()) {
                return Err(Failure::new(
                    Reason::Body,
                    format!("body does not contain {needle:?} (read {} bytes)", exchange.body.len()),
                ));
            }
        }
        if let Some(regex) = &options.body_regex {
            if !regex.is_match(&body) {
                return Err(Failure::new(
                    Reason::Body,
                    format!("body does not match /{regex}/ (read {} bytes)", exchange.body.len()),
                ));
            }
        }
    }
    check_certificate_days(attempt, options.min_cert_days)
}

async fn hop(
    ctx: &ProbeContext,
    url: &Url,
    method: &Method,
    options: &CheckOptions,
    attempt: &mut Attempt,
) -> Result<Exchange, Failure> {
    let host = match url.host() {
        Some(url::Host::Ipv4(ip)) => Host::Ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => Host::Ip(ip.into()),
        Some(url::Host::Domain(name)) => Host::Name(name.to_ascii_lowercase()),
        None => return Err(Failure::new(Reason::InvalidTarget, format!("{url} has no host"))),
    };
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        other => {
            return Err(Failure::new(
                Reason::Protocol,
                format!("redirected to unsupported scheme '{other}' ({url})"),
            ))
        }
    };
    let port = url.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
    let addrs = resolve(ctx, &host, attempt).await?;
    let stream = connect(&addrs, port, attempt).await?;
    if https {
        let tls = handshake(ctx, stream, &host, options.insecure, attempt).await?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        Box::pin(exchange(ctx, tls, h2, url, method, options, attempt)).await
    } else {
        Box::pin(exchange(ctx, stream, false, url, method, options, attempt)).await
    }
}

async fn exchange<I>(
    ctx: &ProbeContext,
    io: I,
    h2: bool,
    url: &Url,
    method: &Method,
    options: &CheckOptions,
    attempt: &mut Attempt,
) -> Result<Exchange, Failure>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Boxed: async parameters live as long as the future, so a bare request would stay.
    let request = Box::new(build_request(url, method, options, h2)?);
    let io = TokioIo::new(io);
    let keep_body = options.capture_response || options.body_contains.is_some() || options.body_regex.is_some();
    if h2 {
        Box::pin(exchange_http2(
            ctx,
            io,
            request,
            options.max_body_bytes,
            keep_body,
            attempt,
        ))
        .await
    } else {
        Box::pin(exchange_http1(io, request, options.max_body_bytes, keep_body, attempt)).await
    }
}

async fn exchange_http1<I>(
    io: TokioIo<I>,
    request: Box<Request<Empty<Bytes>>>,
    max_body_bytes: usize,
    keep_body: bool,
    attempt: &mut Attempt,
) -> Result<Exchange, Failure>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(io)
        .await
        .map_err(|e| hyper_failure(&e))?;
    // Pinned here and lent to `drive`, so their state is stored once, not again in
    // `drive`'s future (async parameters are never overlapped with later state).
    let conn = pin!(conn);
    let send = pin!(sender.send_request(*request));
    drive(conn, send, max_body_bytes, keep_body, attempt).await
}

async fn exchange_http2<I>(
    ctx: &ProbeContext,
    io: TokioIo<I>,
    request: Box<Request<Empty<Bytes>>>,
    max_body_bytes: usize,
    keep_body: bool,
    attempt: &mut Attempt,
) -> Result<Exchange, Failure>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(ctx.executor.clone())
        .handshake(io)
        .await
        .map_err(|e| hyper_failure(&e))?;
    // Pinned and lent, as in `exchange_http1`.
    let conn = pin!(conn);
    let send = pin!(sender.send_request(*request));
    drive(conn, send, max_body_bytes, keep_body, attempt).await
}

/// Sends the request and reads the capped body while polling the connection in this
/// task, so that dropping the check (deadline, cancellation) closes the socket at once.
async fn drive<C, S>(
    mut conn: Pin<&mut C>,
    send: Pin<&mut S>,
    max_body_bytes: usize,
    keep_body: bool,
    attempt: &mut Attempt,
) -> Result<Exchange, Failure>
where
    C: Future,
    S: Future<Output = hyper::Result<Response<Incoming>>>,
{
    let mut conn_done = false;
    attempt.phase = Phase::WaitingForResponse;
    let started = Instant::now();
    let response = alongside(send, conn.as_mut(), &mut conn_done).await;
    Timings::add(&mut attempt.result.timings.ttfb_ms, started.elapsed());
    let response = response.map_err(|e| hyper_failure(&e))?;
    let status = response.status();
    let version = response.version();
    let location = response.headers().get(LOCATION).cloned();
    let headers = if keep_body {
        response.headers().clone()
    } else {
        http::HeaderMap::new()
    };

    attempt.phase = Phase::ReadingBody;
    let started = Instant::now();
    let read = pin!(read_capped(response.into_body(), max_body_bytes, keep_body));
    let body = alongside(read, conn.as_mut(), &mut conn_done).await;
    Timings::add(&mut attempt.result.timings.transfer_ms, started.elapsed());
    let body = body.map_err(|e| hyper_failure(&e))?;
    Ok(Exchange {
        status,
        version,
        location,
        headers,
        body,
    })
}

/// Polls `work` and the connection together until `work` is done.
async fn alongside<W: Future, C: Future>(mut work: Pin<&mut W>, conn: Pin<&mut C>, conn_done: &mut bool) -> W::Output {
    if !*conn_done {
        tokio::select! {
            biased;
            out = work.as_mut() => return out,
            _ = conn => *conn_done = true,
        }
    }
    work.await
}

/// Reads at most `cap` body bytes; the rest is never downloaded, so memory stays bounded.
async fn read_capped(mut body: Incoming, cap: usize, keep: bool) -> hyper::Result<Vec<u8>> {
    let mut kept = Vec::new();
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let take = data.len().min(cap - read);
        if keep {
            kept.extend_from_slice(&data[..take]);
        }
        read += take;
        if read >= cap {
            break;
        }
    }
    Ok(kept)
}

fn build_request(
    url: &Url,
    method: &Method,
    options: &CheckOptions,
    h2: bool,
) -> Result<Request<Empty<Bytes>>, Failure> {
    let invalid =
        |e: http::Error| Failure::new(Reason::InvalidTarget, format!("cannot build a request for {url}: {e}"));
    let mut builder = Request::builder().method(method.clone());
    if h2 {
        builder = builder.uri(url.as_str()).version(Version::HTTP_2);
    } else {
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => String::new(),
        };
        builder = builder.uri(path).header(HOST, host);
    }
    let mut request = builder
        .header(USER_AGENT, options.user_agent.as_str())
        .header(ACCEPT, "*/*")
        .body(Empty::new())
        .map_err(invalid)?;
    for (name, value) in &options.headers {
        request.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(request)
}

fn version_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/?",
    }
}

/// Maps hyper's errors to reasons: socket errors by kind, broken HTTP as `protocol`.
fn hyper_failure(error: &hyper::Error) -> Failure {
    let mut source = error.source();
    while let Some(inner) = source {
        if let Some(io_error) = inner.downcast_ref::<io::Error>() {
            return Failure::new(super::classify_io_error(io_error), format!("{error}: {io_error}"));
        }
        source = inner.source();
    }
    if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
        return Failure::new(
            Reason::Reset,
            format!("connection closed before the response was complete ({error})"),
        );
    }
    let detail = match error.source() {
        Some(inner) => format!("{error}: {inner}"),
        None => error.to_string(),
    };
    Failure::new(Reason::Protocol, format!("invalid HTTP response: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::TrackedExecutor;
    use crate::resolve::Resolver;
    use crate::result::{CheckResult, Outcome, ProbeKind};
    use crate::tls::TlsClients;

    /// Every check in flight holds these futures, so their size is multiplied by the
    /// concurrency (10,000 by default). The bounds leave about 2× headroom over today's
    /// sizes; crossing one means some large state is no longer boxed or is stored twice.
    #[tokio::test]
    async fn in_flight_futures_stay_small() {
        let ctx = ProbeContext {
            resolver: Resolver::new(None),
            tls: TlsClients::new(&[]).unwrap(),
            icmp: Default::default(),
            executor: TrackedExecutor::default(),
        };
        let url = Url::parse("http://127.0.0.1:9/").unwrap();
        let options = CheckOptions::default();
        let mut attempt = Attempt {
            result: CheckResult::new("x", None, ProbeKind::Http, Outcome::Down),
            phase: Phase::Starting,
        };
        let probe_size = std::mem::size_of_val(&probe(&ctx, &url, &options, &mut attempt));
        assert!(probe_size <= 1024, "the HTTP probe future is {probe_size} bytes");

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let request = Box::new(build_request(&url, &Method::GET, &options, false).unwrap());
        let exchange_size = std::mem::size_of_val(&exchange_http1(
            TokioIo::new(stream),
            request,
            1024,
            false,
            &mut attempt,
        ));
        assert!(
            exchange_size <= 3 * 1024,
            "the HTTP/1 exchange future is {exchange_size} bytes"
        );
    }
}

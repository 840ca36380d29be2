//! HTTP(S) probe on hyper's `client::conn` over our own connector, so each phase (DNS,
//! connect, TLS, first byte, transfer) is measured. A fresh connection per check and hop.
//!
//! The probe follows redirects and records the final status; it does not judge it (the
//! check's conditions do). The body is always read up to `max_body_bytes` (that is the
//! transfer phase, and what lets a pooled connection be reused), but its bytes are kept
//! only when a condition needs them ([`CheckOptions::needs_response`]).
//!
//! A plain HTTP/1 check writes its request itself and starts hyper only once the response
//! begins to arrive ([`super::prewritten`]), so that waiting for a slow server costs a
//! socket, not hyper's buffers.

use std::error::Error as _;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};

use bytes::Bytes;
use futures_util::future::Either;
use http::header::{ACCEPT, CONNECTION, HOST, LOCATION, USER_AGENT};
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::time::Instant;
use url::Url;

use super::informational::{InformationalCap, InformationalCount};
use super::pool::{PoolKey, PooledConnection, Sender};
use super::prewritten::{encode_head, AlreadySent, FirstPollTwice};
use super::{connect, handshake, resolve, Attempt, Failure, Phase, ProbeContext, Redirected, TrackedExecutor};
use crate::options::CheckOptions;
use crate::result::{Reason, Timings};
use crate::target::Host;

/// A client connection of either version, driven until it closes.
type Connection<I> = Either<
    hyper::client::conn::http1::Connection<TokioIo<InformationalCap<I>>, Empty<Bytes>>,
    hyper::client::conn::http2::Connection<TokioIo<InformationalCap<I>>, Empty<Bytes>, TrackedExecutor>,
>;

/// What one request/response exchange produced.
struct Exchange {
    status: StatusCode,
    location: Option<HeaderValue>,
    headers: http::HeaderMap,
    /// The body, kept only when a condition needs it (and capped).
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
        let exchange = match hop(ctx, &current, &method, options, attempt).await {
            Ok(exchange) => exchange,
            // The user's URL was checked when its line was parsed: one that cannot be
            // requested after a redirect is the server's doing.
            Err(failure) if failure.reason == Reason::InvalidTarget && attempt.result.redirects > 0 => {
                return Err(Failure::new(
                    Reason::Protocol,
                    format!("after a redirect: {}", failure.message),
                ))
            }
            Err(failure) => return Err(failure),
        };
        let status = exchange.status;
        let next = exchange
            .location
            .as_ref()
            .filter(|_| status.is_redirection())
            .and_then(|loc| loc.to_str().ok())
            .and_then(|loc| current.join(loc).ok());
        let mut unfollowed = None;
        if let Some(next) = next {
            if attempt.result.redirects < options.max_redirects {
                attempt.result.redirects += 1;
                if status == StatusCode::SEE_OTHER || (method == Method::POST && status.as_u16() <= 302) {
                    method = Method::GET;
                }
                current = next;
                continue;
            }
            unfollowed = Some(next);
        }
        if attempt.result.redirects > 0 || unfollowed.is_some() {
            attempt.redirected = Some(Box::new(Redirected {
                url: current,
                unfollowed,
            }));
        }
        if options.needs_response() {
            attempt.result.response = Some(Box::new(capture(exchange)));
        }
        return Ok(());
    }
}

impl Exchange {
    fn new(response: http::response::Parts, keep_headers: bool, body: Vec<u8>) -> Exchange {
        Exchange {
            status: response.status,
            location: response.headers.get(LOCATION).cloned(),
            headers: if keep_headers {
                response.headers
            } else {
                http::HeaderMap::new()
            },
            body,
        }
    }
}

fn capture(exchange: Exchange) -> crate::result::CapturedResponse {
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
        body: Bytes::from(exchange.body),
    }
}

async fn hop(
    ctx: &ProbeContext,
    url: &Url,
    method: &Method,
    options: &CheckOptions,
    attempt: &mut Attempt,
) -> Result<Exchange, Failure> {
    // Only a redirect can lead to another scheme or to no host (the user's line was
    // checked when it was parsed), so both are the server's fault: `protocol`. The
    // scheme first: `javascript:`, `mailto:` or `data:` have no host at all.
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
    let host = match url.host() {
        Some(url::Host::Ipv4(ip)) => Host::Ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => Host::Ip(ip.into()),
        Some(url::Host::Domain(name)) => Host::Name(name.to_ascii_lowercase()),
        None => {
            return Err(Failure::new(
                Reason::Protocol,
                format!("redirected to {url}, which has no host"),
            ))
        }
    };
    let port = url.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
    // Every hop: a redirect may lead anywhere.
    attempt.guard_host(&host, Some(port))?;
    if options.reuse_connections {
        let key = PoolKey {
            https,
            host: host.to_string(),
            port,
            insecure: options.insecure,
        };
        return Box::pin(hop_on_pool(ctx, url, method, options, attempt, &host, key)).await;
    }
    let addrs = resolve(ctx, &host, attempt).await?;
    let stream = connect(&addrs, port, attempt).await?;
    if https {
        no_delay(&stream);
        let tls = handshake(ctx, stream, &host, options.insecure, attempt).await?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        Box::pin(exchange(ctx, tls, h2, url, method, options, attempt)).await
    } else {
        Box::pin(exchange_plain(ctx, stream, url, method, options, attempt)).await
    }
}

/// Says that this HTTP/1 connection carries one request and is dropped after it, so hyper
/// closes it when the response ends instead of reserving a fresh 8 KiB read buffer to
/// wait for a next response that never comes, and the server can let go at once.
pub(crate) fn close_after(request: &mut Request<Empty<Bytes>>) {
    request
        .headers_mut()
        .entry(CONNECTION)
        .or_insert(HeaderValue::from_static("close"));
}

/// Turns Nagle off where a small write can follow unacknowledged data: the request right
/// after TLS's Finished, or a second request on a kept connection, would otherwise wait
/// for the server's delayed ACK. The plain one-shot request below is a single write.
fn no_delay(stream: &tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
}

/// Plain HTTP/1 over a fresh connection, written here and handed to hyper only once the
/// response has begun to arrive. hyper reserves about 24 KiB per connection (read and
/// write buffers, its dispatch channel) from its first poll; a check spends most of its
/// life waiting for the server, and waits here holding only the socket. hyper still
/// parses every byte the server sends; the request it encodes is discarded
/// ([`AlreadySent`]), since the same request is on the wire.
async fn exchange_plain(
    ctx: &ProbeContext,
    mut stream: tokio::net::TcpStream,
    url: &Url,
    method: &Method,
    options: &CheckOptions,
    attempt: &mut Attempt,
) -> Result<Exchange, Failure> {
    let mut request = build_request(url, method, options, false)?;
    close_after(&mut request);
    attempt.phase = Phase::WaitingForResponse;
    let started = Instant::now();
    let head = encode_head(&request);
    let waited = async {
        stream.write_all(&head).await?;
        drop(head);
        stream.readable().await
    }
    .await;
    Timings::add(&mut attempt.result.timings.ttfb_ms, started.elapsed());
    if let Err(e) = waited {
        return Err(Failure::new(
            super::classify_io_error(&e),
            format!("sending the request failed: {e}"),
        ));
    }
    let (mut sender, conn, informational) = open(ctx, AlreadySent::new(stream), false).await?;
    informational.watch(&mut request);
    let conn = pin!(FirstPollTwice::new(conn));
    let send = pin!(sender.send_request(request));
    drive(conn, send, options.max_body_bytes, options.needs_response(), attempt).await
}

/// A hop with `--reuse-connections`: an idle pooled connection if there is one, else a
/// fresh one that joins the pool once its response has been read to the end.
async fn hop_on_pool(
    ctx: &ProbeContext,
    url: &Url,
    method: &Method,
    options: &CheckOptions,
    attempt: &mut Attempt,
    host: &Host,
    key: PoolKey,
) -> Result<Exchange, Failure> {
    let head = match ctx.pool.take(&key) {
        Some(connection) => {
            Box::pin(head_on_reused(
                ctx, connection, url, method, options, attempt, host, &key,
            ))
            .await?
        }
        None => Box::pin(head_on_fresh(ctx, url, method, options, attempt, host, &key)).await?,
    };
    read_pooled(ctx, head, &key, options, attempt).await
}

/// A response head and the pooled connection it came on.
struct PooledHead {
    connection: PooledConnection,
    response: Response<Incoming>,
}

/// How long a reused connection has to answer alone before a fresh connection is raced
/// against it: a keep-alive server may silently ignore a second request.
fn reuse_patience(timeout: std::time::Duration) -> std::time::Duration {
    timeout / 5
}

/// The response head over a reused connection. When it has not come within
/// [`reuse_patience`], a fresh connection is opened and sent the same request; the first
/// to answer is used and the other is closed, so a connection that stopped answering
/// costs a check a fifth of its deadline, never all of it, and is retired.
#[allow(clippy::too_many_arguments)]
async fn head_on_reused(
    ctx: &ProbeContext,
    connection: PooledConnection,
    url: &Url,
    method: &Method,
    options: &CheckOptions,
    attempt: &mut Attempt,
    host: &Host,
    key: &PoolKey,
) -> Result<PooledHead, Failure> {
    // A pooled connection may have been opened under another guard.
    attempt.guard_address(connection.ip, Some(key.port))?;
    // What this connection's handshake established is this check's too.
    attempt.result.ip = Some(connection.ip);
    attempt.result.certificate = connection.certificate.clone();
    let request = build_request(url, method, options, connection.sender.is_http2())?;
    attempt.phase = Phase::WaitingForResponse;
    let started = Instant::now();
    let mut reused = pin!(send_pooled(connection, request, true));
    let alone = tokio::select! {
        biased;
        sent = reused.as_mut() => Some(sent),
        () = tokio::time::sleep(reuse_patience(options.timeout)) => None,
    };
    match alone {
        Some(Ok(head)) => {
            Timings::add(&mut attempt.result.timings.ttfb_ms, started.elapsed());
            return Ok(head);
        }
        // The server closed the idle connection just before our request: not the
        // target's failure, so the hop goes on with a fresh connection.
        Some(Err(e)) if e.is_canceled() || e.is_closed() || e.is_incomplete_message() => {
            return head_on_fresh(ctx, url, method, options, attempt, host, key).await;
        }
        Some(Err(e)) => return Err(hyper_failure(&e)),
        None => {}
    }
    // The fresh connection measures into its own copy of the result, which replaces
    // this one only if it wins.
    let mut raced = attempt.fork();
    let winner = {
        let mut fresh = pin!(head_on_fresh(ctx, url, method, options, &mut raced, host, key));
        tokio::select! {
            sent = reused.as_mut() => match sent {
                Ok(head) => Ok(Won::Reused(head)),
                // Failing after keeping us waiting: the fresh connection tells the truth.
                Err(_) => fresh.await.map(Won::Fresh),
            },
            head = fresh.as_mut() => match head {
                Ok(head) => Ok(Won::Fresh(head)),
                Err(failure) => reused.await.map(Won::Reused).map_err(|_| failure),
            },
        }
    };
    match winner? {
        Won::Reused(head) => {
            Timings::add(&mut attempt.result.timings.ttfb_ms, started.elapsed());
            Ok(head)
        }
        Won::Fresh(head) => {
            attempt.result = raced.result;
            attempt.phase = raced.phase;
            Ok(head)
        }
    }
}

enum Won {
    Reused(PooledHead),
    Fresh(PooledHead),
}

/// The response head over a new connection, which joins the pool's care.
async fn head_on_fresh(
    ctx: &ProbeContext,
    url: &Url,
    method: &Method,
    options: &CheckOptions,
    attempt: &mut Attempt,
    host: &Host,
    key: &PoolKey,
) -> Result<PooledHead, Failure> {
    let addrs = resolve(ctx, host, attempt).await?;
    let stream = connect(&addrs, key.port, attempt).await?;
    no_delay(&stream);
    let ip = attempt.result.ip.unwrap_or(addrs[0]);
    let connection = if key.https {
        let tls = handshake(ctx, stream, host, options.insecure, attempt).await?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        open_pooled(ctx, tls, h2, ip, attempt).await?
    } else {
        open_pooled(ctx, stream, false, ip, attempt).await?
    };
    let request = build_request(url, method, options, connection.sender.is_http2())?;
    attempt.phase = Phase::WaitingForResponse;
    let started = Instant::now();
    let head = send_pooled(connection, request, false).await;
    Timings::add(&mut attempt.result.timings.ttfb_ms, started.elapsed());
    head.map_err(|e| hyper_failure(&e))
}

/// Sends one request on a pooled connection; a reused one is first waited on, as it may
/// still be finishing its previous response.
async fn send_pooled(
    mut connection: PooledConnection,
    mut request: Request<Empty<Bytes>>,
    reused: bool,
) -> hyper::Result<PooledHead> {
    connection.informational.watch(&mut request);
    if reused {
        connection.sender.ready().await?;
    }
    let response = connection.sender.send_request(request).await?;
    Ok(PooledHead { connection, response })
}

/// Hands a fresh connection to the pool's care: it is driven by its own task from now on.
async fn open_pooled<I>(
    ctx: &ProbeContext,
    io: I,
    h2: bool,
    ip: std::net::IpAddr,
    attempt: &Attempt,
) -> Result<PooledConnection, Failure>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn, informational) = open(ctx, io, h2).await?;
    let certificate = attempt.result.certificate.clone();
    Ok(ctx
        .pool
        .adopt(&ctx.executor, conn, sender, ip, certificate, informational))
}

/// Reads the body of a pooled response; the connection goes back to the pool only when
/// the response was read to the end.
async fn read_pooled(
    ctx: &ProbeContext,
    head: PooledHead,
    key: &PoolKey,
    options: &CheckOptions,
    attempt: &mut Attempt,
) -> Result<Exchange, Failure> {
    let (parts, mut body) = head.response.into_parts();
    record_head(attempt, &parts);
    attempt.phase = Phase::ReadingBody;
    let started = Instant::now();
    let keep_body = options.needs_response();
    let read = read_capped(&mut body, options.max_body_bytes, keep_body).await;
    Timings::add(&mut attempt.result.timings.transfer_ms, started.elapsed());
    let (read, length) = read.map_err(|e| hyper_failure(&e))?;
    attempt.result.body_bytes = Some(length as u64);
    // A response not read to the end leaves bytes on the wire: that connection is
    // dropped (closed), not reused.
    if body.is_end_stream() {
        ctx.pool.put(key.clone(), head.connection);
    }
    Ok(Exchange::new(parts, keep_body, read))
}

/// What the response head says, kept even when its body then fails.
fn record_head(attempt: &mut Attempt, parts: &http::response::Parts) {
    attempt.result.http_status = Some(parts.status.as_u16());
    attempt.result.http_version = Some(version_name(parts.version).to_owned());
    attempt.result.content_length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
}

/// One request over a fresh connection driven in this task (the default: no reuse).
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
    let (mut sender, conn, informational) = open(ctx, io, h2).await?;
    let mut request = build_request(url, method, options, h2)?;
    informational.watch(&mut request);
    if !h2 {
        close_after(&mut request);
    }
    // Pinned here and lent to `drive`, so their state is stored once, not again in
    // `drive`'s future (async parameters are never overlapped with later state).
    let conn = pin!(conn);
    let send = pin!(sender.send_request(request));
    drive(conn, send, options.max_body_bytes, options.needs_response(), attempt).await
}

/// The HTTP handshake on an established stream: HTTP/2 when ALPN chose it, else HTTP/1.1.
async fn open<I>(ctx: &ProbeContext, io: I, h2: bool) -> Result<(Sender, Connection<I>, InformationalCount), Failure>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let informational = InformationalCount::default();
    let io = TokioIo::new(InformationalCap::new(io, &informational));
    if h2 {
        let (sender, conn) = hyper::client::conn::http2::Builder::new(ctx.executor.clone())
            .handshake(io)
            .await
            .map_err(|e| hyper_failure(&e))?;
        Ok((Sender::Http2(sender), Either::Right(conn), informational))
    } else {
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| hyper_failure(&e))?;
        Ok((Sender::Http1(sender), Either::Left(conn), informational))
    }
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
    let (parts, mut body) = response.map_err(|e| hyper_failure(&e))?.into_parts();
    record_head(attempt, &parts);

    attempt.phase = Phase::ReadingBody;
    let started = Instant::now();
    let read = pin!(read_capped(&mut body, max_body_bytes, keep_body));
    let read = alongside(read, conn.as_mut(), &mut conn_done).await;
    Timings::add(&mut attempt.result.timings.transfer_ms, started.elapsed());
    let (read, length) = read.map_err(|e| hyper_failure(&e))?;
    attempt.result.body_bytes = Some(length as u64);
    Ok(Exchange::new(parts, keep_body, read))
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
/// Returns the bytes kept and how many were read.
async fn read_capped(body: &mut Incoming, cap: usize, keep: bool) -> hyper::Result<(Vec<u8>, usize)> {
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
    Ok((kept, read))
}

pub(crate) fn build_request(
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
            let reason = match super::classify_io_error(io_error) {
                // hyper reports a body that breaks HTTP's framing (a chunk size line that
                // is not hex, a missing CRLF) as `InvalidInput`.
                Reason::Reset if io_error.kind() == io::ErrorKind::InvalidInput => Reason::Protocol,
                reason => reason,
            };
            return Failure::new(reason, format!("{error}: {io_error}"));
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

    fn context() -> ProbeContext {
        ProbeContext {
            resolver: Resolver::new(None),
            tls: TlsClients::new(&[]).unwrap(),
            icmp: Default::default(),
            executor: TrackedExecutor::default(),
            pool: Default::default(),
        }
    }

    /// The probe keeps the body only when a condition will read it; otherwise it reads
    /// (and times) the capped body but keeps none of it.
    #[tokio::test]
    async fn the_body_is_kept_only_when_a_condition_reads_it() {
        let sim = pulsecheck_sim::start(pulsecheck_sim::SimConfig::default())
            .await
            .unwrap();
        let ctx = context();
        let url = Url::parse(&sim.url("/bytes/3000000")).unwrap();
        let run = |options: CheckOptions| {
            let (ctx, url) = (&ctx, &url);
            async move {
                let mut attempt = Attempt::new(CheckResult::new("x", None, ProbeKind::Http, Outcome::Down));
                let outcome = probe(ctx, url, &options, &mut attempt).await;
                assert!(outcome.is_ok(), "{outcome:?}");
                attempt.result
            }
        };
        let measured = run(CheckOptions::default()).await;
        assert!(measured.response.is_none(), "nothing asked for the body");
        assert!(measured.timings.transfer_ms.is_some());
        assert_eq!(measured.http_status, Some(200), "measured, not judged");

        let latency_only = CheckOptions {
            conditions: [crate::conditions::Condition::LatencyUnder(
                std::time::Duration::from_secs(9),
            )]
            .into_iter()
            .collect(),
            ..CheckOptions::default()
        };
        assert!(run(latency_only).await.response.is_none());

        let reads_body = CheckOptions {
            conditions: [crate::conditions::Condition::BodyContains("x".into())]
                .into_iter()
                .collect(),
            max_body_bytes: 100_000,
            ..CheckOptions::default()
        };
        let kept = run(reads_body).await.response.expect("a body condition keeps the body");
        assert_eq!(kept.body.len(), 100_000, "capped at max_body_bytes");
    }

    /// A status the default would call down is still a finished probe: the judge decides.
    #[tokio::test]
    async fn the_probe_does_not_judge_the_status() {
        let sim = pulsecheck_sim::start(pulsecheck_sim::SimConfig::default())
            .await
            .unwrap();
        let ctx = context();
        let options = CheckOptions {
            max_redirects: 1,
            ..CheckOptions::default()
        };
        for (path, status, redirected) in [
            ("/status/503", 503, None),
            ("/redirect/1", 200, Some(("/ok", None))),
            ("/redirect/3", 302, Some(("/redirect/2", Some("/redirect/1")))),
        ] {
            let url = Url::parse(&sim.url(path)).unwrap();
            let mut attempt = Attempt::new(CheckResult::new("x", None, ProbeKind::Http, Outcome::Down));
            let outcome = probe(&ctx, &url, &options, &mut attempt).await;
            assert!(outcome.is_ok(), "{path}: {outcome:?}");
            assert_eq!(attempt.result.http_status, Some(status), "{path}");
            let seen = attempt
                .redirected
                .map(|r| (r.url.path().to_owned(), r.unfollowed.map(|u| u.path().to_owned())));
            let expected =
                redirected.map(|(url, next): (&str, Option<&str>)| (url.to_owned(), next.map(str::to_owned)));
            assert_eq!(seen, expected, "{path}");
        }
    }

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
            pool: Default::default(),
        };
        let url = Url::parse("http://127.0.0.1:9/").unwrap();
        let options = CheckOptions::default();
        let mut attempt = Attempt::new(CheckResult::new("x", None, ProbeKind::Http, Outcome::Down));
        let probe_size = std::mem::size_of_val(&probe(&ctx, &url, &options, &mut attempt));
        assert!(probe_size <= 1024, "the HTTP probe future is {probe_size} bytes");

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let exchange_size = std::mem::size_of_val(&exchange(
            &ctx,
            stream,
            false,
            &url,
            &Method::GET,
            &options,
            &mut attempt,
        ));
        assert!(
            exchange_size <= 3 * 1024,
            "the exchange future is {exchange_size} bytes"
        );
        let plain_size = std::mem::size_of_val(&exchange_plain(
            &ctx,
            tokio::net::TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap(),
            &url,
            &Method::GET,
            &options,
            &mut attempt,
        ));
        assert!(
            plain_size <= 3 * 1024,
            "the plain exchange future is {plain_size} bytes"
        );
    }
}

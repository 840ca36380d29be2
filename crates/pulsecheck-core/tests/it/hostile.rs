//! Hostile servers: small loopback servers written here that break HTTP on purpose (1xx
//! floods, bad redirects, malformed bodies, connections that stop answering) and what
//! the engine must make of them. Deadlines are asserted with generous margins.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulsecheck_core::{CheckOptions, CheckResult, Engine, EngineSetup, Outcome, Reason, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A loopback server that runs `handle` on every connection it accepts, until it is
/// dropped.
struct Hostile {
    addr: SocketAddr,
    _server: JoinSet<()>,
}

async fn hostile<F, Fut>(handle: F) -> Hostile
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let mut server = JoinSet::new();
    server.spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(handle(stream));
                    }
                    Err(_) => return,
                },
                Some(_) = connections.join_next() => {}
            }
        }
    });
    Hostile { addr, _server: server }
}

/// Reads one request head (up to 64 KiB); `None` when the client closed first.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// The path of a request head's request line.
fn path_of(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or("/")
}

/// Answers one request with `response`, then closes.
async fn answer_once(mut stream: TcpStream, response: Vec<u8>) {
    if read_head(&mut stream).await.is_some() {
        let _ = stream.write_all(&response).await;
        let _ = stream.shutdown().await;
    }
}

fn engine() -> Arc<Engine> {
    Arc::new(Engine::new(EngineSetup::default()).expect("engine builds"))
}

async fn check(engine: &Engine, target: &str, options: &CheckOptions) -> CheckResult {
    engine
        .check(&Target::parse(target, None), options, &CancellationToken::new())
        .await
}

async fn scan(engine: Arc<Engine>, targets: Vec<Target>, options: CheckOptions) -> Vec<(usize, CheckResult)> {
    let (sender, mut receiver) = mpsc::channel(64);
    let scan = engine.scan(targets, Arc::new(options), CancellationToken::new(), sender);
    let collect = async {
        let mut all = Vec::new();
        while let Some(item) = receiver.recv().await {
            all.push(item);
        }
        all
    };
    let ((), all) = tokio::join!(scan, collect);
    all
}

#[track_caller]
fn assert_down(result: &CheckResult, reason: Reason) {
    assert_eq!(result.outcome, Outcome::Down, "{result:#?}");
    assert_eq!(result.reason, Some(reason), "{result:#?}");
}

/// Servers that answer every request with `100 Continue` (or `102 Processing`) over and
/// over, as fast as they can or every 50 ms, never with a final response. Each check of
/// them ends quickly as `protocol`, and a healthy check in the same batch on a 2-worker
/// runtime is neither starved nor reported slower than its own deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_informational_responses_is_capped_and_starves_nothing() {
    let as_fast_as_it_can = hostile(|mut stream| async move {
        if read_head(&mut stream).await.is_none() {
            return;
        }
        let heads = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(64);
        // Bounded: about 160 MB, far more than any check may read.
        for _ in 0..100_000 {
            if stream.write_all(&heads).await.is_err() {
                return;
            }
        }
    })
    .await;
    let every_50ms = hostile(|mut stream| async move {
        if read_head(&mut stream).await.is_none() {
            return;
        }
        for _ in 0..200 {
            if stream.write_all(b"HTTP/1.1 102 Processing\r\n\r\n").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let healthy = hostile(|mut stream| async move {
        if read_head(&mut stream).await.is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await;
    })
    .await;

    let timeout = Duration::from_secs(3);
    let mut targets: Vec<Target> = (0..8)
        .map(|i| {
            let addr = if i % 2 == 0 {
                as_fast_as_it_can.addr
            } else {
                every_50ms.addr
            };
            Target::parse(&format!("http://{addr}/flood/{i}"), None)
        })
        .collect();
    targets.push(Target::parse(&format!("http://{}/delay", healthy.addr), None));
    let options = CheckOptions {
        timeout,
        ..CheckOptions::default()
    };
    let started = Instant::now();
    let results = scan(engine(), targets, options).await;
    let wall = started.elapsed();
    assert_eq!(results.len(), 9);
    for (index, result) in &results {
        assert!(
            result.duration_ms <= timeout,
            "a reported duration never exceeds the deadline: {result:#?}"
        );
        if *index < 8 {
            assert_down(result, Reason::Protocol);
            assert!(
                result.error.as_deref().unwrap_or_default().contains("informational"),
                "{result:#?}"
            );
        } else {
            assert_eq!(
                result.outcome,
                Outcome::Up,
                "the healthy target is not starved: {result:#?}"
            );
        }
    }
    assert!(
        wall < timeout + Duration::from_secs(1),
        "the batch ended {wall:?} after it started"
    );
}

/// A redirect to a scheme that has no host is the server's fault, like one to `ftp:`.
#[tokio::test]
async fn a_redirect_to_a_scheme_without_a_host_is_a_protocol_failure() {
    const LOCATIONS: [&str; 5] = [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "mailto:ops@example.com",
        "data:text/plain,hello",
        "ftp://127.0.0.1/x",
    ];
    let server = hostile(|mut stream| async move {
        let Some(head) = read_head(&mut stream).await else {
            return;
        };
        let index: usize = path_of(&head).trim_start_matches('/').parse().unwrap_or(0);
        let response = format!(
            "HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            LOCATIONS[index.min(LOCATIONS.len() - 1)]
        );
        let _ = stream.write_all(response.as_bytes()).await;
    })
    .await;
    let engine = engine();
    for (index, location) in LOCATIONS.iter().enumerate() {
        let r = check(
            &engine,
            &format!("http://{}/{index}", server.addr),
            &CheckOptions::default(),
        )
        .await;
        assert_down(&r, Reason::Protocol);
        let scheme = location.split(':').next().unwrap();
        assert!(r.error.as_deref().unwrap().contains(scheme), "{location}: {r:#?}");
    }
}

/// A chunked body that breaks the chunk framing is a protocol failure, and the status
/// that arrived before it is kept; so it is when a `Content-Length` is never delivered.
#[tokio::test]
async fn a_malformed_body_is_a_protocol_failure_that_keeps_the_status() {
    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let bodies: [&[u8]; 3] = [
        b"zz\r\nhello\r\n0\r\n\r\n", // a size line that is not hex
        b"5\r\nhelloXX0\r\n\r\n",    // no CRLF after the chunk
        b"-5\r\nhello\r\n0\r\n\r\n", // a negative size
    ];
    let engine = engine();
    for body in bodies {
        let server = hostile(move |stream| answer_once(stream, [CHUNKED, body].concat())).await;
        let r = check(&engine, &format!("http://{}/", server.addr), &CheckOptions::default()).await;
        assert_down(&r, Reason::Protocol);
        assert_eq!(r.http_status, Some(200), "{r:#?}");
    }

    let short = hostile(|stream| {
        answer_once(
            stream,
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly this".to_vec(),
        )
    })
    .await;
    let r = check(&engine, &format!("http://{}/", short.addr), &CheckOptions::default()).await;
    assert_down(&r, Reason::Reset);
    assert_eq!(r.http_status, Some(200), "{r:#?}");

    let stalled = hostile(|mut stream| async move {
        if read_head(&mut stream).await.is_some() {
            let _ = stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 1000\r\n\r\nonly this")
                .await;
            // Hold the connection open without sending the rest.
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
        }
    })
    .await;
    let options = CheckOptions {
        timeout: Duration::from_millis(500),
        ..CheckOptions::default()
    };
    let r = check(&engine, &format!("http://{}/", stalled.addr), &options).await;
    assert_down(&r, Reason::Timeout);
    assert_eq!(r.http_status, Some(503), "{r:#?}");
}

/// With `--reuse-connections`, a keep-alive server that answers the first request on a
/// connection and silently ignores every later one must not make later checks time out:
/// the reused connection that does not answer soon is given up for a fresh one.
#[tokio::test]
async fn a_reused_connection_that_stops_answering_falls_back_to_a_fresh_one() {
    let server = hostile(|mut stream| async move {
        if read_head(&mut stream).await.is_none() {
            return;
        }
        if stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
            .await
            .is_err()
        {
            return;
        }
        // Later requests on this connection are read and never answered.
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    })
    .await;
    let engine = engine();
    let options = CheckOptions {
        timeout: Duration::from_secs(3),
        reuse_connections: true,
        ..CheckOptions::default()
    };
    for i in 0..4 {
        let started = Instant::now();
        let r = check(&engine, &format!("http://{}/{i}", server.addr), &options).await;
        assert_eq!(r.outcome, Outcome::Up, "check {i}: {r:#?}");
        assert!(r.duration_ms < options.timeout, "check {i}: {r:#?}");
        assert!(started.elapsed() < options.timeout + Duration::from_secs(1));
    }
}

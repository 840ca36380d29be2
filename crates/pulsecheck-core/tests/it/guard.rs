//! The SSRF guard on the probe path: only loopback here, so the tests list exact loopback
//! addresses and ports and show that everything else (another loopback address, a name
//! resolving to an unlisted one, a redirect to one, a DNS answer that changes between
//! checks) is refused with `denied`, on the address actually connected to.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use pulsecheck_core::{AddressPolicy, CheckOptions, CheckResult, Engine, EngineSetup, Outcome, Reason, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// An HTTP server on `ip:0` that answers every request with `response`.
async fn http_server(ip: Ipv4Addr, response: String, tasks: &mut JoinSet<()>) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    tasks.spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut stream, _)) = accepted else { return };
                    let response = response.clone();
                    connections.spawn(async move {
                        let mut buf = vec![0u8; 8192];
                        let mut head = Vec::new();
                        while !head.ends_with(b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let _ = stream.write_all(response.as_bytes()).await;
                    });
                }
                Some(_) = connections.join_next() => {}
            }
        }
    });
    addr
}

fn ok_response() -> String {
    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".into()
}

async fn check(engine: &Engine, target: &str, allow: &[String]) -> CheckResult {
    let options = CheckOptions {
        address_policy: Some(Arc::new(AddressPolicy::parse(allow).expect("valid allow-list"))),
        timeout: std::time::Duration::from_secs(10),
        ..CheckOptions::default()
    };
    engine
        .check(&Target::parse(target, None), &options, &CancellationToken::new())
        .await
}

fn assert_denied(result: &CheckResult, what: &str) {
    assert_eq!(result.outcome, Outcome::Down, "{what}: {result:?}");
    assert_eq!(result.reason, Some(Reason::Denied), "{what}: {result:?}");
}

#[tokio::test]
async fn only_listed_loopback_addresses_and_ports_are_reached() {
    let mut tasks = JoinSet::new();
    let listed = http_server(Ipv4Addr::LOCALHOST, ok_response(), &mut tasks).await;
    // A server really listening on another loopback address: without the guard the
    // check would be up.
    let unlisted = http_server(Ipv4Addr::new(127, 0, 0, 2), ok_response(), &mut tasks).await;
    let other_port = http_server(Ipv4Addr::LOCALHOST, ok_response(), &mut tasks).await;
    let engine = Engine::new(EngineSetup::default()).unwrap();
    let allow = vec![listed.to_string()];

    let up = check(&engine, &format!("http://{listed}/"), &allow).await;
    assert_eq!(up.outcome, Outcome::Up, "{up:?}");
    let unguarded = engine
        .check(
            &Target::parse(&format!("http://{unlisted}/"), None),
            &CheckOptions::default(),
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(
        unguarded.outcome,
        Outcome::Up,
        "the unlisted server does answer: {unguarded:?}"
    );

    assert_denied(
        &check(&engine, &format!("http://{unlisted}/"), &allow).await,
        "127.0.0.2",
    );
    assert_denied(
        &check(&engine, &format!("http://{other_port}/"), &allow).await,
        "another port",
    );
    assert_denied(
        &check(&engine, &format!("tcp://{unlisted}"), &allow).await,
        "tcp to 127.0.0.2",
    );
    // A listed name is not enough: the address it resolves to (loopback) is not listed.
    let by_name = check(
        &engine,
        &format!("http://localhost:{}/", listed.port()),
        &["localhost".into()],
    )
    .await;
    assert_denied(&by_name, "localhost resolving to loopback");
    assert!(
        by_name.error.as_deref().unwrap_or("").contains("loopback"),
        "{by_name:?}"
    );
    // Metadata and link-local are refused before any packet is sent.
    let metadata = check(
        &engine,
        "http://169.254.169.254/latest/meta-data/",
        &["*.example.com".into()],
    )
    .await;
    assert_denied(&metadata, "metadata");
}

#[tokio::test]
async fn a_redirect_to_an_unlisted_address_is_refused() {
    let mut tasks = JoinSet::new();
    let hidden = http_server(Ipv4Addr::new(127, 0, 0, 2), ok_response(), &mut tasks).await;
    let redirect = format!(
        "HTTP/1.1 302 Found\r\nlocation: http://{hidden}/secret\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    let front = http_server(Ipv4Addr::LOCALHOST, redirect, &mut tasks).await;
    let engine = Engine::new(EngineSetup::default()).unwrap();

    let result = check(&engine, &format!("http://{front}/"), &[front.to_string()]).await;
    assert_denied(&result, "redirect to 127.0.0.2");
    assert_eq!(result.redirects, 1, "{result:?}");
    // Listed, the same redirect is followed to the end.
    let result = check(
        &engine,
        &format!("http://{front}/"),
        &[front.to_string(), hidden.to_string()],
    )
    .await;
    assert_eq!(result.outcome, Outcome::Up, "{result:?}");
}

/// A DNS server for `rebind.test.` whose first answer is 127.0.0.1 and every later one
/// 127.0.0.2, with TTL 0 so no cache keeps the first.
async fn rebinding_dns(tasks: &mut JoinSet<()>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    tasks.spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let Ok(request) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
            reply.metadata.message_type = MessageType::Response;
            reply.metadata.recursion_desired = request.metadata.recursion_desired;
            reply.add_queries(request.queries.iter().cloned());
            if let Some(query) = request.queries.first() {
                if query.query_type == RecordType::A {
                    let first = asked.fetch_add(1, Ordering::SeqCst) == 0;
                    let ip = if first {
                        Ipv4Addr::LOCALHOST
                    } else {
                        Ipv4Addr::new(127, 0, 0, 2)
                    };
                    reply.add_answer(Record::from_rdata(query.name.clone(), 0, RData::A(A(ip))));
                }
            }
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    addr
}

#[tokio::test]
async fn a_dns_answer_that_changes_between_checks_is_refused() {
    let mut tasks = JoinSet::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    // The same port on both addresses, so the second check would connect without the guard.
    let first = http_server_on(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), &mut tasks).await;
    let second = http_server_on(SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), port)), &mut tasks).await;
    let dns = rebinding_dns(&mut tasks).await;
    let engine = Engine::new(EngineSetup {
        nameserver: Some(dns),
        ..EngineSetup::default()
    })
    .unwrap();
    let allow = vec!["rebind.test".to_string(), format!("{first}")];
    let target = format!("http://rebind.test:{port}/");
    let up = check(&engine, &target, &allow).await;
    assert_eq!(up.outcome, Outcome::Up, "the first answer is listed: {up:?}");
    let rebound = check(&engine, &target, &allow).await;
    assert_denied(&rebound, "the second answer");
    assert!(
        rebound.error.as_deref().unwrap_or("").contains("127.0.0.2"),
        "{rebound:?}"
    );
    let _ = second;
}

async fn http_server_on(addr: SocketAddr, tasks: &mut JoinSet<()>) -> SocketAddr {
    let listener = TcpListener::bind(addr).await.expect("bind loopback port");
    let addr = listener.local_addr().unwrap();
    tasks.spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut stream, _)) = accepted else { return };
                    connections.spawn(async move {
                        let mut buf = vec![0u8; 8192];
                        let _ = stream.read(&mut buf).await;
                        let _ = stream.write_all(ok_response().as_bytes()).await;
                    });
                }
                Some(_) = connections.join_next() => {}
            }
        }
    });
    addr
}

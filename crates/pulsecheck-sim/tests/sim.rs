//! The simulator on real loopback sockets, probed with hand-written requests.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, RecordType};
use pulsecheck_sim::{SimConfig, SimHandle};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(5);

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

async fn sim() -> SimHandle {
    pulsecheck_sim::start(SimConfig::default()).await.unwrap()
}

/// One HTTP/1.1 request with `Connection: close`, read to EOF.
async fn request(io: &mut (impl AsyncRead + AsyncWrite + Unpin), path: &str, extra: &str) -> Reply {
    let req = format!("GET {path} HTTP/1.1\r\nHost: sim\r\n{extra}Connection: close\r\n\r\n");
    io.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    timeout(DEADLINE, io.read_to_end(&mut raw))
        .await
        .expect("response within deadline")
        .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    request(&mut stream, path, "").await
}

#[tokio::test]
async fn http_routes() {
    let sim = sim().await;
    let http = sim.info.http[0];
    assert_eq!(sim.url("/ok"), format!("http://{http}/ok"));

    let ok = get(http, "/ok").await;
    assert_eq!((ok.status, ok.body.as_slice()), (200, &b"ok"[..]));

    let unavailable = get(http, "/status/503").await;
    assert_eq!(unavailable.status, 503);
    assert_eq!(get(http, "/status/204").await.status, 204);
    assert_eq!(get(http, "/status/100").await.status, 200);
    assert_eq!(get(http, "/status/600").await.status, 400);

    let redirect = get(http, "/redirect/2").await;
    assert_eq!(redirect.status, 302);
    assert_eq!(redirect.header("location"), Some("/redirect/1"));
    let last = get(http, "/redirect/1").await;
    assert_eq!(last.header("location"), Some("/ok"));
    let looped = get(http, "/redirect-loop").await;
    assert_eq!(looped.header("location"), Some("/redirect-loop"));

    let bytes = get(http, "/bytes/1000").await;
    assert_eq!(bytes.status, 200);
    assert_eq!(bytes.body.len(), 1000);
    assert_eq!(bytes.header("content-length"), Some("1000"));
    let big = get(http, "/bytes/100000").await;
    assert_eq!(big.body.len(), 100_000);

    let json = get(http, "/json").await;
    assert_eq!(json.header("content-type"), Some("application/json"));
    let value: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(value["status"], "UP");

    let mut stream = TcpStream::connect(http).await.unwrap();
    let echo = request(&mut stream, "/headers?x=1", "X-Custom: hello\r\n").await;
    let value: serde_json::Value = serde_json::from_slice(&echo.body).unwrap();
    assert_eq!(value["method"], "GET");
    assert_eq!(value["uri"], "/headers?x=1");
    assert_eq!(value["headers"]["x-custom"], "hello");

    assert_eq!(get(http, "/nope").await.status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn delay_waits() {
    let sim = sim().await;
    let started = Instant::now();
    let reply = get(sim.info.http[0], "/delay/100").await;
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(100));
    sim.shutdown().await;
}

#[tokio::test]
async fn endless_keeps_streaming() {
    let sim = sim().await;
    let mut stream = TcpStream::connect(sim.info.http[0]).await.unwrap();
    stream
        .write_all(b"GET /endless HTTP/1.1\r\nHost: sim\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 2 << 20];
    timeout(DEADLINE, stream.read_exact(&mut buf)).await.unwrap().unwrap();
    assert!(buf.starts_with(b"HTTP/1.1 200 OK\r\n"));
    sim.shutdown().await;
}

#[tokio::test]
async fn h2c_prior_knowledge() {
    let sim = sim().await;
    let mut stream = TcpStream::connect(sim.info.http[0]).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut frame_header = [0u8; 9];
    timeout(DEADLINE, stream.read_exact(&mut frame_header))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame_header[3], 0x04, "server answers with a SETTINGS frame");
    sim.shutdown().await;
}

#[tokio::test]
async fn blackhole_never_answers() {
    let sim = sim().await;
    let mut stream = TcpStream::connect(sim.info.blackhole).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: sim\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 16];
    let read = timeout(Duration::from_millis(300), stream.read(&mut buf)).await;
    assert!(read.is_err(), "blackhole answered: {read:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn reset_and_refused() {
    let sim = sim().await;
    let mut stream = TcpStream::connect(sim.info.reset).await.unwrap();
    let mut buf = [0u8; 16];
    let err = timeout(DEADLINE, stream.read(&mut buf))
        .await
        .unwrap()
        .expect_err("reset listener must reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);

    for _ in 0..3 {
        let err = TcpStream::connect(sim.info.refused).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn raw_routes() {
    let sim = sim().await;
    let http = sim.info.http[0];

    let mut stream = TcpStream::connect(http).await.unwrap();
    stream
        .write_all(b"GET /malformed HTTP/1.1\r\nHost: sim\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    timeout(DEADLINE, stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    assert_eq!(raw, b"THIS IS NOT HTTP\r\n\r\n");

    let mut stream = TcpStream::connect(http).await.unwrap();
    stream
        .write_all(b"GET /trickle HTTP/1.1\r\nHost: sim\r\n\r\n")
        .await
        .unwrap();
    let mut status = [0u8; 17];
    timeout(DEADLINE, stream.read_exact(&mut status))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&status, b"HTTP/1.1 200 OK\r\n");
    let started = Instant::now();
    let mut byte = [0u8; 1];
    timeout(DEADLINE, stream.read_exact(&mut byte)).await.unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(&byte, b"X");

    let mut stream = TcpStream::connect(http).await.unwrap();
    stream
        .write_all(b"GET /header-flood HTTP/1.1\r\nHost: sim\r\n\r\n")
        .await
        .unwrap();
    let mut flood = vec![0u8; 256 * 1024];
    timeout(DEADLINE, stream.read_exact(&mut flood)).await.unwrap().unwrap();
    assert!(flood.starts_with(b"HTTP/1.1 200 OK\r\nX-Flood-0: aaaa"));
    assert!(!flood.windows(4).any(|w| w == b"\r\n\r\n"));
    sim.shutdown().await;
}

async fn dns_query(server: SocketAddr, name: &str) -> Message {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let mut query = Message::query();
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    socket.send_to(&query.to_vec().unwrap(), server).await.unwrap();
    let mut buf = [0u8; 1500];
    let (len, _) = timeout(DEADLINE, socket.recv_from(&mut buf)).await.unwrap().unwrap();
    let reply = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(reply.metadata.id, query.metadata.id);
    assert_eq!(reply.queries, query.queries);
    reply
}

#[tokio::test]
async fn dns_answers() {
    let sim = sim().await;
    let ok = dns_query(sim.info.dns, "ok.pulsecheck.test.").await;
    assert_eq!(ok.metadata.response_code, ResponseCode::NoError);
    assert_eq!(ok.answers[0].data, RData::A(A(Ipv4Addr::LOCALHOST)));
    let nx = dns_query(sim.info.dns, "nx.pulsecheck.test.").await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    sim.shutdown().await;
}

fn tls_connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn tls_listeners() {
    let sim = sim().await;
    let connector = tls_connector(&sim.info.ca_pem);
    let localhost = ServerName::try_from("localhost").unwrap();

    let tcp = TcpStream::connect(sim.info.tls_valid).await.unwrap();
    let mut tls = connector.connect(localhost.clone(), tcp).await.unwrap();
    let reply = request(&mut tls, "/ok", "").await;
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"ok"[..]));

    // The valid certificate also names the IP address.
    let tcp = TcpStream::connect(sim.info.tls_valid).await.unwrap();
    let ip = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    connector.connect(ip, tcp).await.unwrap();

    let tcp = TcpStream::connect(sim.info.tls_expired).await.unwrap();
    let err = connector.connect(localhost.clone(), tcp).await.unwrap_err();
    assert!(err.to_string().contains("xpired"), "{err}");

    let tcp = TcpStream::connect(sim.info.tls_self_signed).await.unwrap();
    let err = connector.connect(localhost, tcp).await.unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    sim.shutdown().await;
}

#[tokio::test]
async fn several_binds_and_cert_dir() {
    let dir = std::env::temp_dir().join(format!("pulsecheck-sim-test-{}", std::process::id()));
    let second = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let sim = pulsecheck_sim::start(SimConfig {
        bind: vec![IpAddr::V4(Ipv4Addr::LOCALHOST), second],
        cert_dir: Some(dir.clone()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(sim.info.http.len(), 2);
    assert_eq!(sim.info.http[1].ip(), second);
    assert_eq!(get(sim.info.http[1], "/ok").await.status, 200);
    let ca_file = sim.info.ca_file.clone().unwrap();
    assert_eq!(std::fs::read_to_string(&ca_file).unwrap(), sim.info.ca_pem);

    let line = serde_json::to_string(&sim.info).unwrap();
    let back: pulsecheck_sim::ReadyInfo = serde_json::from_str(&line).unwrap();
    assert_eq!(back, sim.info);
    assert!(line.starts_with(r#"{"event":"ready","http":["127.0.0.1:"#));
    sim.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn rejects_non_loopback() {
    let err = pulsecheck_sim::start(SimConfig {
        bind: vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
        ..SimConfig::default()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");
}

#[tokio::test]
async fn shutdown_closes_open_connections() {
    let sim = sim().await;
    let mut held = TcpStream::connect(sim.info.blackhole).await.unwrap();
    let mut slow = TcpStream::connect(sim.info.http[0]).await.unwrap();
    slow.write_all(b"GET /delay/60000 HTTP/1.1\r\nHost: sim\r\n\r\n")
        .await
        .unwrap();
    // Give the accept loops a moment to take both connections.
    tokio::time::sleep(Duration::from_millis(50)).await;

    timeout(Duration::from_secs(2), sim.shutdown())
        .await
        .expect("shutdown is prompt");
    let mut buf = [0u8; 16];
    for stream in [&mut held, &mut slow] {
        let read = timeout(DEADLINE, stream.read(&mut buf)).await.unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}

#[tokio::test]
async fn flap_alternates_between_up_and_down() {
    let sim = pulsecheck_sim::start(pulsecheck_sim::SimConfig::default())
        .await
        .unwrap();
    let http = sim.info.http[0];
    let mut seen = std::collections::HashSet::new();
    for _ in 0..30 {
        seen.insert(get(http, "/flap/50").await.status);
        if seen.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(seen, [200, 500].into_iter().collect());
}

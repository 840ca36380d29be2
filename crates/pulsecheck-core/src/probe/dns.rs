//! DNS probe: one query to one server, recording the rcode and the answers. Over UDP,
//! retried over TCP when the answer is truncated. Any answer is an answer: whether it is
//! the right one (NOERROR with a record of the type asked for, by default) is for the
//! conditions to judge.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use super::{classify_io_error, Attempt, Failure, Phase, ProbeContext};
use crate::result::{DnsAnswer, Reason};
use crate::target::RecordKind;

pub async fn probe(
    ctx: &ProbeContext,
    name: &str,
    record: RecordKind,
    server: Option<SocketAddr>,
    attempt: &mut Attempt,
) -> Result<(), Failure> {
    let server = server.or_else(|| ctx.resolver.query_server()).ok_or_else(|| {
        Failure::new(
            Reason::Dns,
            "no nameserver: add server=IP:PORT to the target or pass --nameserver",
        )
    })?;
    attempt.guard_host(&crate::target::Host::Ip(server.ip()), Some(server.port()))?;
    attempt.result.ip = Some(server.ip());
    let query_name = Name::from_ascii(name)
        .map_err(|e| Failure::new(Reason::InvalidTarget, format!("'{name}' is not a DNS name: {e}")))?;
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(query_name, record_type(record)));
    let id = message.metadata.id;
    let request = message
        .to_vec()
        .map_err(|e| Failure::new(Reason::Internal, format!("cannot encode the DNS query: {e}")))?;

    attempt.phase = Phase::Query;
    let started = Instant::now();
    let mut response = query_udp(server, &request, id).await?;
    if response.metadata.truncation {
        response = query_tcp(server, &request, id).await?;
    }
    attempt.result.timings.ttfb_ms = Some(started.elapsed());

    // Each record as `TYPE DATA`: the conditions look for the type asked for this way.
    let answers: Vec<String> = response
        .answers
        .iter()
        .map(|r| format!("{} {}", r.record_type(), r.data))
        .collect();
    attempt.result.dns = Some(DnsAnswer {
        rcode: response.metadata.response_code.to_str().to_owned(),
        answers,
        authority_rrs: response.authorities.len(),
        additional_rrs: response.additionals.len(),
    });
    Ok(())
}

pub fn record_type(record: RecordKind) -> RecordType {
    match record {
        RecordKind::A => RecordType::A,
        RecordKind::Aaaa => RecordType::AAAA,
        RecordKind::Cname => RecordType::CNAME,
        RecordKind::Mx => RecordType::MX,
        RecordKind::Ns => RecordType::NS,
        RecordKind::Txt => RecordType::TXT,
        RecordKind::Soa => RecordType::SOA,
        RecordKind::Srv => RecordType::SRV,
        RecordKind::Ptr => RecordType::PTR,
        RecordKind::Caa => RecordType::CAA,
    }
}

fn io_failure(server: SocketAddr, error: std::io::Error) -> Failure {
    Failure::new(
        classify_io_error(&error),
        format!("DNS query to {server} failed: {error}"),
    )
}

fn parse(server: SocketAddr, bytes: &[u8]) -> Result<Message, Failure> {
    Message::from_vec(bytes)
        .map_err(|e| Failure::new(Reason::Protocol, format!("malformed DNS answer from {server}: {e}")))
}

async fn query_udp(server: SocketAddr, request: &[u8], id: u16) -> Result<Message, Failure> {
    let local: IpAddr = if server.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind((local, 0)).await.map_err(|e| io_failure(server, e))?;
    socket.connect(server).await.map_err(|e| io_failure(server, e))?;
    socket.send(request).await.map_err(|e| io_failure(server, e))?;
    let mut buffer = vec![0u8; 4096];
    loop {
        let len = socket.recv(&mut buffer).await.map_err(|e| io_failure(server, e))?;
        let message = parse(server, &buffer[..len])?;
        // A stray or spoofed datagram is ignored; the deadline bounds the wait.
        if message.metadata.id == id {
            return Ok(message);
        }
    }
}

async fn query_tcp(server: SocketAddr, request: &[u8], id: u16) -> Result<Message, Failure> {
    let mut stream = TcpStream::connect(server).await.map_err(|e| io_failure(server, e))?;
    let len = u16::try_from(request.len()).map_err(|_| Failure::new(Reason::Internal, "DNS query too large"))?;
    let mut framed = Vec::with_capacity(request.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(request);
    stream.write_all(&framed).await.map_err(|e| io_failure(server, e))?;
    let answer_len = stream.read_u16().await.map_err(|e| io_failure(server, e))?;
    let mut buffer = vec![0u8; usize::from(answer_len)];
    stream
        .read_exact(&mut buffer)
        .await
        .map_err(|e| io_failure(server, e))?;
    let message = parse(server, &buffer)?;
    if message.metadata.id != id {
        return Err(Failure::new(
            Reason::Protocol,
            format!("DNS answer from {server} has the wrong id"),
        ));
    }
    Ok(message)
}

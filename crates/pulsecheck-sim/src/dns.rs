//! A tiny authoritative UDP DNS server for `pulsecheck.test.`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

const TTL: u32 = 60;

/// Where a `down-…` name points from the locations it names: nothing listens on
/// 127.0.0.2 (the listeners bind 127.0.0.1), so connecting there is refused.
pub(crate) const DOWN_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

static ZONE: LazyLock<Name> = LazyLock::new(|| Name::from_ascii(crate::DNS_ZONE).expect("valid zone name"));

/// Answers queries until the future is dropped, as a simulator at `location`.
pub(crate) async fn serve(socket: UdpSocket, location: Option<String>) {
    let mut buf = [0u8; 4096];
    loop {
        // Errors here are per datagram (e.g. an ICMP error from an earlier
        // send surfacing as ECONNREFUSED); the socket itself stays usable.
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = answer(&buf[..len], location.as_deref()) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

/// The wire-format reply to one query datagram, or `None` to stay silent.
///
/// A first label `down-A-B…` names locations (`-` separated) from which the name is
/// down: a simulator started at one of them (`location`) answers [`DOWN_ADDRESS`]
/// (and no AAAA), every other one the working loopback listener. Nodes of a test
/// cluster that each resolve through their own simulator thus see one target down
/// from some locations only.
pub(crate) fn answer(packet: &[u8], location: Option<&str>) -> Option<Vec<u8>> {
    let request = match Message::from_vec(packet) {
        Ok(message) => message,
        Err(_) => {
            // Unparseable: FORMERR if it at least looks like a query header.
            if packet.len() < 12 || packet[2] & 0x80 != 0 {
                return None;
            }
            let id = u16::from_be_bytes([packet[0], packet[1]]);
            return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                .to_vec()
                .ok();
        }
    };
    let meta = &request.metadata;
    if meta.message_type != MessageType::Query {
        return None;
    }
    let mut reply = Message::response(meta.id, meta.op_code);
    reply.metadata.recursion_desired = meta.recursion_desired;
    reply.metadata.checking_disabled = meta.checking_disabled;
    reply.metadata.authoritative = true;
    reply.add_queries(request.queries.iter().cloned());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        reply.edns = Some(edns);
    }

    let rcode = match (meta.op_code, request.queries.as_slice()) {
        (OpCode::Query, [query]) => {
            let name = &query.name;
            if !ZONE.zone_of(name) {
                ResponseCode::Refused
            } else {
                let first = name
                    .iter()
                    .next()
                    .filter(|_| name.num_labels() > ZONE.num_labels())
                    .map(<[u8]>::to_ascii_lowercase);
                match first.as_deref() {
                    Some(b"nx") => ResponseCode::NXDomain,
                    Some(b"servfail") => ResponseCode::ServFail,
                    Some(b"slow") => return None,
                    Some(b"empty") => ResponseCode::NoError,
                    Some(label) if down_here(label, location) => {
                        if query.query_type == RecordType::A {
                            reply.add_answer(Record::from_rdata(name.clone(), TTL, RData::A(A(DOWN_ADDRESS))));
                        }
                        ResponseCode::NoError
                    }
                    _ => {
                        let rdata = match query.query_type {
                            RecordType::A => Some(RData::A(A(Ipv4Addr::LOCALHOST))),
                            RecordType::AAAA => Some(RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))),
                            // Other types exist for no name here: NOERROR, no data.
                            _ => None,
                        };
                        if let Some(rdata) = rdata {
                            reply.add_answer(Record::from_rdata(name.clone(), TTL, rdata));
                        }
                        ResponseCode::NoError
                    }
                }
            }
        }
        (OpCode::Query, _) => ResponseCode::FormErr,
        _ => ResponseCode::NotImp,
    };
    reply.metadata.response_code = rcode;
    reply.to_vec().ok()
}

/// Whether a first label `down-A-B…` names `location`.
fn down_here(label: &[u8], location: Option<&str>) -> bool {
    let (Some(rest), Some(location)) = (label.strip_prefix(b"down-"), location) else {
        return false;
    };
    rest.split(|b| *b == b'-')
        .any(|l| l.eq_ignore_ascii_case(location.as_bytes()))
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::Query;

    use super::*;

    fn ask(name: &str, rtype: RecordType) -> Option<Message> {
        ask_at(name, rtype, None)
    }

    fn ask_at(name: &str, rtype: RecordType, location: Option<&str>) -> Option<Message> {
        let mut query = Message::query();
        query.metadata.id = 4242;
        query.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        let reply = answer(&query.to_vec().unwrap(), location)?;
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(reply.metadata.id, 4242);
        assert_eq!(reply.queries, query.queries);
        Some(reply)
    }

    #[test]
    fn answers_by_first_label() {
        let ok = ask("ok.pulsecheck.test.", RecordType::A).unwrap();
        assert_eq!(ok.metadata.response_code, ResponseCode::NoError);
        assert_eq!(ok.answers.len(), 1);
        assert_eq!(ok.answers[0].data, RData::A(A(Ipv4Addr::LOCALHOST)));
        assert_eq!(ok.answers[0].ttl, TTL);

        let apex = ask("PulseCheck.Test.", RecordType::AAAA).unwrap();
        assert_eq!(apex.answers[0].data, RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)));

        let deep = ask("a.b.pulsecheck.test.", RecordType::A).unwrap();
        assert_eq!(deep.answers.len(), 1);

        let nx = ask("nx.pulsecheck.test.", RecordType::A).unwrap();
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
        let fail = ask("servfail.pulsecheck.test.", RecordType::A).unwrap();
        assert_eq!(fail.metadata.response_code, ResponseCode::ServFail);
        let empty = ask("empty.pulsecheck.test.", RecordType::A).unwrap();
        assert_eq!(empty.metadata.response_code, ResponseCode::NoError);
        assert!(empty.answers.is_empty());
        assert!(ask("slow.pulsecheck.test.", RecordType::A).is_none());

        let other = ask("example.com.", RecordType::A).unwrap();
        assert_eq!(other.metadata.response_code, ResponseCode::Refused);
        let suffix = ask("notpulsecheck.test.", RecordType::A).unwrap();
        assert_eq!(suffix.metadata.response_code, ResponseCode::Refused);
    }

    #[test]
    fn a_down_name_is_down_only_from_the_locations_it_names() {
        let a = |location| ask_at("down-eu-us.pulsecheck.test.", RecordType::A, location).unwrap();
        for here in ["eu", "us", "EU"] {
            assert_eq!(a(Some(here)).answers[0].data, RData::A(A(DOWN_ADDRESS)), "{here}");
        }
        for elsewhere in [Some("ap"), Some("e"), None] {
            assert_eq!(
                a(elsewhere).answers[0].data,
                RData::A(A(Ipv4Addr::LOCALHOST)),
                "{elsewhere:?}"
            );
        }
        let aaaa = ask_at("down-eu.pulsecheck.test.", RecordType::AAAA, Some("eu")).unwrap();
        assert!(aaaa.answers.is_empty(), "no working IPv6 address either");
    }

    #[test]
    fn garbage_gets_formerr_or_silence() {
        assert!(answer(b"xx", None).is_none());
        let reply = answer(&[0x12, 0x34, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 1], None).unwrap();
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(reply.metadata.id, 0x1234);
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    }
}

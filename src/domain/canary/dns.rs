//! The DNS receiver's message handling (canary.md §13.4 with §16.16 addressed), pure: request
//! bytes in, reply bytes and an optional hit out. Messages are parsed and built with
//! `hickory-proto`, never by hand.
//!
//! * Unparseable packets, responses (QR set), non-QUERY opcodes and QDCOUNT ≠ 1 → no reply.
//! * `<label>.<zone>` (exactly one label under the zone) → NOERROR, authoritative; an A query
//!   gets one `192.0.2.1` answer, TTL 60; other types get NODATA. The same answer is sent
//!   whether the label is a live slug or not (the DB lookup happens after, elsewhere).
//! * Anything else → NXDOMAIN.
//! * The question is echoed with the case the client sent (0x20 randomisation survives), RD is
//!   echoed, and an EDNS OPT is answered with one.

use std::net::Ipv4Addr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

/// Address every matching A query resolves to (TEST-NET-1).
pub const SINKHOLE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// TTL of the answer.
pub const TTL: u32 = 60;

/// What to do with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsOutcome {
    /// Reply bytes.
    pub reply: Vec<u8>,
    /// `(label, qname)` lowercased when the name matched `<label>.<zone>`.
    pub hit: Option<(String, String)>,
}

/// The single label directly under `zone` (normalised, non-empty), lowercased, if `qname`
/// (lowercase, no trailing dot) is `<label>.<zone>`.
pub fn match_zone<'a>(qname: &'a str, zone: &str) -> Option<&'a str> {
    if zone.is_empty() {
        return None;
    }
    let rest = qname.strip_suffix(zone)?.strip_suffix('.')?;
    (!rest.is_empty() && !rest.contains('.')).then_some(rest)
}

/// Answer one DNS request for `zone` (normalised: lowercase, no dots at the ends). `None` =
/// stay silent.
pub fn answer(request: &[u8], zone: &str) -> Option<DnsOutcome> {
    let req = Message::from_vec(request).ok()?;
    if req.metadata.message_type != MessageType::Query
        || req.metadata.op_code != OpCode::Query
        || req.queries.len() != 1
    {
        return None;
    }
    let q = &req.queries[0];
    let mut qname = q.name().to_ascii().to_ascii_lowercase();
    if qname.ends_with('.') {
        qname.pop();
    }
    let label = match_zone(&qname, zone).map(str::to_owned);
    let mut resp = Message::response(req.metadata.id, OpCode::Query);
    resp.metadata.authoritative = true;
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.add_query(q.clone());
    if req.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        resp.set_edns(e);
    }
    match &label {
        Some(_) => {
            resp.metadata.response_code = ResponseCode::NoError;
            if q.query_type() == RecordType::A {
                resp.add_answer(Record::from_rdata(
                    q.name().clone(),
                    TTL,
                    RData::A(A(SINKHOLE)),
                ));
            }
        }
        None => resp.metadata.response_code = ResponseCode::NXDomain,
    }
    let reply = resp.to_vec().ok()?;
    Some(DnsOutcome {
        reply,
        hit: label.map(|l| (l, qname)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn query(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    #[test]
    fn slug_under_zone_answers_a() {
        let out = answer(
            &query("SlUg42.Canary.Example.Test.", RecordType::A),
            "canary.example.test",
        )
        .unwrap();
        assert_eq!(
            out.hit,
            Some(("slug42".into(), "slug42.canary.example.test".into()))
        );
        let r = Message::from_vec(&out.reply).unwrap();
        assert_eq!(r.metadata.id, 0x1234);
        assert_eq!(r.metadata.message_type, MessageType::Response);
        assert!(r.metadata.authoritative);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].ttl, TTL);
        assert_eq!(
            r.queries[0].name().to_ascii(),
            "SlUg42.Canary.Example.Test."
        );
        // other types: NODATA, still a hit
        let out = answer(
            &query("slug42.canary.example.test.", RecordType::TXT),
            "canary.example.test",
        )
        .unwrap();
        assert!(out.hit.is_some());
        assert_eq!(Message::from_vec(&out.reply).unwrap().answers.len(), 0);
    }

    #[test]
    fn outside_zone_and_multi_label_are_nxdomain() {
        for name in [
            "not-our-zone.example.com.",
            "foo.bar.canary.example.test.",
            "canary.example.test.",
        ] {
            let out = answer(&query(name, RecordType::A), "canary.example.test").unwrap();
            assert_eq!(out.hit, None, "{name}");
            let r = Message::from_vec(&out.reply).unwrap();
            assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
            assert!(r.answers.is_empty());
        }
    }

    #[test]
    fn garbage_and_responses_are_silent() {
        assert_eq!(answer(b"abc", "z"), None);
        assert_eq!(answer(&[0u8; 12], "z"), None); // QDCOUNT 0
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("a.z.").unwrap(),
            RecordType::A,
        ));
        assert_eq!(answer(&m.to_vec().unwrap(), "z"), None);
        // compression pointer loop
        let mut p = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        assert_eq!(answer(&p, "z"), None);
        // 10,000 one-byte labels
        let mut p = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..10_000 {
            p.extend_from_slice(&[1, b'a']);
        }
        p.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(answer(&p, "z"), None);
    }

    #[test]
    fn zone_matching() {
        assert_eq!(match_zone("a.z.t", "z.t"), Some("a"));
        assert_eq!(match_zone("a.xz.t", "z.t"), None);
        assert_eq!(match_zone("z.t", "z.t"), None);
        assert_eq!(match_zone("a.z.t", ""), None);
    }
}

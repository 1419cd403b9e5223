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
//! * A source over its rate limit gets a truncated, answerless reply one time in two and
//!   silence otherwise ([`slip`], [`slips`]; keyed by [`rate_key`]).

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
    build(request, zone, false)
}

/// The reply to a request from a source over its rate limit (§16.16, response rate limiting
/// as resolvers know it): header and question only, TC set, no hit — no bigger than the
/// query, so the receiver cannot amplify a spoofed flood, and a real resolver retries over
/// TCP, where the source address cannot be forged. `None` = garbage, stay silent.
pub fn slip(request: &[u8], zone: &str) -> Option<Vec<u8>> {
    build(request, zone, true).map(|o| o.reply)
}

/// Whether the `n`-th (0-based) rate-limited reply to a source slips out truncated; the
/// others are dropped (one in two, like BIND's default `slip 2`).
pub fn slips(n: u64) -> bool {
    n.is_multiple_of(2)
}

/// The rate-limit key of a source: IPv4 address, or the /56 of an IPv6 address (one site
/// holds a whole /56; keying by /128 would let one host rotate addresses past the limit).
pub fn rate_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V4(v4) => std::net::IpAddr::V4(v4),
        std::net::IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return std::net::IpAddr::V4(v4);
            }
            let bits = u128::from(v6) & !((1u128 << 72) - 1);
            std::net::IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
    }
}

fn build(request: &[u8], zone: &str, truncate: bool) -> Option<DnsOutcome> {
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
    if truncate {
        resp.metadata.truncation = true;
        resp.metadata.response_code = ResponseCode::NoError;
        return Some(DnsOutcome {
            reply: resp.to_vec().ok()?,
            hit: None,
        });
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
    fn slip_is_truncated_small_and_hitless() {
        let q = query("slug42.canary.example.test.", RecordType::A);
        let r = slip(&q, "canary.example.test").unwrap();
        assert!(r.len() <= q.len() + 11, "{} vs {}", r.len(), q.len());
        let m = Message::from_vec(&r).unwrap();
        assert!(m.metadata.truncation);
        assert_eq!(m.metadata.id, 0x1234);
        assert!(m.answers.is_empty());
        assert_eq!(m.queries.len(), 1);
        assert_eq!(slip(b"junk", "z"), None);
        assert_eq!((0..10).filter(|n| slips(*n)).count(), 5);
    }

    #[test]
    fn rate_keys() {
        let k = |s: &str| rate_key(s.parse().unwrap()).to_string();
        assert_eq!(k("192.0.2.7"), "192.0.2.7");
        assert_eq!(k("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(k("2001:db8:1:2ff:aaaa::1"), "2001:db8:1:200::");
        assert_eq!(k("2001:db8:1:2ff:bbbb::9"), k("2001:db8:1:2ab::1"));
        assert_ne!(k("2001:db8:1:300::1"), k("2001:db8:1:200::1"));
    }

    #[test]
    fn zone_matching() {
        assert_eq!(match_zone("a.z.t", "z.t"), Some("a"));
        assert_eq!(match_zone("a.xz.t", "z.t"), None);
        assert_eq!(match_zone("z.t", "z.t"), None);
        assert_eq!(match_zone("a.z.t", ""), None);
    }
}

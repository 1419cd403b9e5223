//! The one shared IP parser: IPv4, IPv6, `a.b.c.d:port`, `[v6]:port`, and the
//! attacker-IP selection rules of spec §3.4 built on it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::fields::Fields;

/// SD parameter names that may carry the attacker address, in priority order.
pub const ATTACKER_IP_PARAMS: [&str; 7] = [
    "src_ip",
    "src",
    "client_ip",
    "remote_ip",
    "remote_addr",
    "target_ip",
    "ip",
];

/// Sentinel stored when no attacker address could be found.
pub const UNKNOWN_IP: &str = "Unknown";

/// A host that parsed as an IP literal, with the textual address (brackets
/// removed, otherwise verbatim) and an optional numeric port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort<'a> {
    /// The address text exactly as it appeared (without `[]`).
    pub addr_text: &'a str,
    /// Parsed address.
    pub addr: IpAddr,
    /// Port text when the value was `a.b.c.d:port` or `[v6]:port`.
    pub port: Option<&'a str>,
}

/// Parse a port: 1–5 ASCII digits, value ≤ 65535.
fn parse_port(s: &str) -> Option<&str> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().map(|_| s)
}

/// Parse `a.b.c.d`, `a.b.c.d:port`, `[v6]`, `[v6]:port` or a bare IPv6
/// literal. A bare IPv6 address is never split at its last colon.
pub fn parse_host_port(value: &str) -> Option<HostPort<'_>> {
    if let Some(rest) = value.strip_prefix('[') {
        let end = rest.find(']')?;
        let inner = &rest[..end];
        let addr: Ipv6Addr = inner.parse().ok()?;
        let after = &rest[end + 1..];
        let port = if after.is_empty() {
            None
        } else {
            Some(parse_port(after.strip_prefix(':')?)?)
        };
        return Some(HostPort {
            addr_text: inner,
            addr: IpAddr::V6(addr),
            port,
        });
    }
    if let Ok(addr) = value.parse::<IpAddr>() {
        return Some(HostPort {
            addr_text: value,
            addr,
            port: None,
        });
    }
    let (host, port) = value.split_once(':')?;
    let addr: Ipv4Addr = host.parse().ok()?;
    Some(HostPort {
        addr_text: host,
        addr: IpAddr::V4(addr),
        port: Some(parse_port(port)?),
    })
}

/// Strict IP literal (no port, no brackets).
pub fn parse_ip(value: &str) -> Option<IpAddr> {
    value.parse().ok()
}

/// Choose the attacker address of a record (spec §3.4).
///
/// SD parameters first (`fields.remote_port` is filled from an `ip:port`
/// value unless present), then `key=value` tokens of MSG (without touching
/// `fields`), then prose anchors, then the first bare dotted quad; otherwise
/// [`UNKNOWN_IP`]. An empty SD value counts as absent.
pub fn select_attacker_ip(fields: &mut Fields, msg: &str) -> String {
    for name in ATTACKER_IP_PARAMS {
        let Some(value) = fields.get_nonempty(name) else {
            continue;
        };
        return match parse_host_port(value) {
            Some(HostPort {
                addr_text,
                port: Some(port),
                ..
            }) => {
                let (addr, port) = (addr_text.to_owned(), port.to_owned());
                fields.set_default("remote_port", &port);
                addr
            }
            Some(hp) => hp.addr_text.to_owned(),
            None => value.to_owned(),
        };
    }
    if msg.is_empty() {
        return UNKNOWN_IP.to_owned();
    }
    if let Some(v) = msg_kv_ip(msg) {
        return v;
    }
    if let Some(v) = anchored_ip(msg) {
        return v;
    }
    if let Some(v) = first_bare_ipv4(msg) {
        return v.to_owned();
    }
    UNKNOWN_IP.to_owned()
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn prev_is_word(s: &str, i: usize) -> bool {
    s[..i].chars().next_back().is_some_and(is_word_char)
}

fn next_is_word(s: &str, i: usize) -> bool {
    s[i..].chars().next().is_some_and(is_word_char)
}

/// Iterate `key=value` tokens of free text the way `(\w+)=(\S+)` scans:
/// a maximal word run immediately followed by `=` and at least one
/// non-whitespace character; the value runs to the next whitespace.
pub fn msg_kv_tokens(msg: &str) -> impl Iterator<Item = (&str, &str)> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let bytes = msg.as_bytes();
        while pos < msg.len() {
            let c = msg[pos..].chars().next()?;
            if !is_word_char(c) {
                pos += c.len_utf8();
                continue;
            }
            let start = pos;
            let mut end = pos;
            for ch in msg[pos..].chars() {
                if !is_word_char(ch) {
                    break;
                }
                end += ch.len_utf8();
            }
            if end < msg.len() && bytes[end] == b'=' {
                let vstart = end + 1;
                let vend = msg[vstart..]
                    .char_indices()
                    .find(|(_, ch)| ch.is_whitespace())
                    .map_or(msg.len(), |(i, _)| vstart + i);
                if vend > vstart {
                    pos = vend;
                    return Some((&msg[start..end], &msg[vstart..vend]));
                }
            }
            pos = end;
        }
        None
    })
}

fn msg_kv_ip(msg: &str) -> Option<String> {
    let (_, value) = msg_kv_tokens(msg).find(|(k, _)| ATTACKER_IP_PARAMS.contains(k))?;
    Some(match parse_host_port(value) {
        Some(hp) => hp.addr_text.to_owned(),
        None => value.to_owned(),
    })
}

const ANCHORS: [&str; 7] = [
    "from", "rhost=", "rhost:", "client=", "client:", "src=", "src:",
];

/// Prose anchors `from <ip>`, `rhost=`/`rhost:`, `client=`/`client:`,
/// `src=`/`src:` (case-insensitive), IPv4 or IPv6.
pub fn anchored_ip(msg: &str) -> Option<String> {
    let lower = msg.to_ascii_lowercase();
    let lb = lower.as_bytes();
    for (i, &b) in lb.iter().enumerate() {
        if !matches!(b, b'f' | b'r' | b'c' | b's') || !msg.is_char_boundary(i) {
            continue;
        }
        let Some(anchor) = ANCHORS.iter().find(|a| lb[i..].starts_with(a.as_bytes())) else {
            continue;
        };
        if i > 0 && prev_is_word(msg, i) {
            continue;
        }
        let mut j = i + anchor.len();
        while j < lb.len() && lb[j].is_ascii_whitespace() {
            j += 1;
        }
        if let Some(ip) = ip_at(msg, j) {
            return Some(ip.to_owned());
        }
    }
    None
}

/// An IPv4 dotted quad (prefix) or an IPv6 literal starting at byte `j`.
fn ip_at(msg: &str, j: usize) -> Option<&str> {
    if let Some(end) = dotted_quad_end(msg.as_bytes(), j) {
        if msg[j..end].parse::<Ipv4Addr>().is_ok() {
            return Some(&msg[j..end]);
        }
    }
    let run_len = msg.as_bytes()[j..]
        .iter()
        .take_while(|b| b.is_ascii_hexdigit() || **b == b':' || **b == b'.')
        .count();
    let run = &msg[j..j + run_len];
    if !run.contains(':') {
        return None;
    }
    [
        run,
        run.trim_end_matches('.'),
        run.trim_end_matches(['.', ':']),
    ]
    .into_iter()
    .find(|c| c.parse::<Ipv6Addr>().is_ok())
}

/// End of `\d{1,3}(\.\d{1,3}){3}` at `j`, each digit run maximal.
fn dotted_quad_end(b: &[u8], j: usize) -> Option<usize> {
    let mut k = j;
    for group in 0..4 {
        if group > 0 {
            if b.get(k) != Some(&b'.') {
                return None;
            }
            k += 1;
        }
        let n = b[k.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if n == 0 || n > 3 {
            return None;
        }
        k += n;
    }
    Some(k)
}

/// First `\b\d{1,3}(\.\d{1,3}){3}\b` that is a valid IPv4 address.
pub fn first_bare_ipv4(msg: &str) -> Option<&str> {
    let b = msg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || !prev_is_word(msg, i)) {
            if let Some(end) = dotted_quad_end(b, i) {
                if !next_is_word(msg, end) && msg[i..end].parse::<Ipv4Addr>().is_ok() {
                    return Some(&msg[i..end]);
                }
            }
            // skip the rest of this digit run
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            continue;
        }
        i += 1;
    }
    None
}

/// IANA special-purpose category of a claimed address, checked in the order
/// unspecified, loopback, link-local, multicast, reserved, private; anything
/// else is public (Python `ipaddress` semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpCategory {
    /// `0.0.0.0`, `::`.
    Unspecified,
    /// `127/8`, `::1`.
    Loopback,
    /// `169.254/16`, `fe80::/10`.
    LinkLocal,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `240/4`, reserved IPv6 blocks.
    Reserved,
    /// RFC 1918, documentation, benchmarking, ULA, …
    Private,
    /// Globally routable.
    Public,
}

impl IpCategory {
    /// Label used in payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            IpCategory::Unspecified => "unspecified",
            IpCategory::Loopback => "loopback",
            IpCategory::LinkLocal => "link_local",
            IpCategory::Multicast => "multicast",
            IpCategory::Reserved => "reserved",
            IpCategory::Private => "private",
            IpCategory::Public => "public",
        }
    }
}

fn in_v4(a: Ipv4Addr, net: [u8; 4], len: u32) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (u32::from(a) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn in_v6(a: Ipv6Addr, net: [u16; 8], len: u32) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    (u128::from(a) & mask) == (u128::from(Ipv6Addr::from(net)) & mask)
}

/// Categorize an address.
pub fn categorize(addr: IpAddr) -> IpCategory {
    match addr {
        IpAddr::V4(a) => categorize_v4(a),
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return categorize_v4(v4);
            }
            categorize_v6(a)
        }
    }
}

fn categorize_v4(a: Ipv4Addr) -> IpCategory {
    if a.is_unspecified() {
        return IpCategory::Unspecified;
    }
    if a.is_loopback() {
        return IpCategory::Loopback;
    }
    if a.is_link_local() {
        return IpCategory::LinkLocal;
    }
    if a.is_multicast() {
        return IpCategory::Multicast;
    }
    if in_v4(a, [240, 0, 0, 0], 4) {
        return IpCategory::Reserved;
    }
    const PRIVATE: [([u8; 4], u32); 10] = [
        ([0, 0, 0, 0], 8),
        ([10, 0, 0, 0], 8),
        ([172, 16, 0, 0], 12),
        ([192, 0, 0, 0], 24),
        ([192, 0, 2, 0], 24),
        ([192, 168, 0, 0], 16),
        ([198, 18, 0, 0], 15),
        ([198, 51, 100, 0], 24),
        ([203, 0, 113, 0], 24),
        ([255, 255, 255, 255], 32),
    ];
    if PRIVATE.iter().any(|(n, l)| in_v4(a, *n, *l)) {
        return IpCategory::Private;
    }
    IpCategory::Public
}

fn categorize_v6(a: Ipv6Addr) -> IpCategory {
    if a.is_unspecified() {
        return IpCategory::Unspecified;
    }
    if a.is_loopback() {
        return IpCategory::Loopback;
    }
    if in_v6(a, [0xfe80, 0, 0, 0, 0, 0, 0, 0], 10) {
        return IpCategory::LinkLocal;
    }
    if a.is_multicast() {
        return IpCategory::Multicast;
    }
    const RESERVED: [(u16, u32); 15] = [
        (0x0000, 8),
        (0x0100, 8),
        (0x0200, 7),
        (0x0400, 6),
        (0x0800, 5),
        (0x1000, 4),
        (0x4000, 3),
        (0x6000, 3),
        (0x8000, 3),
        (0xa000, 3),
        (0xc000, 3),
        (0xe000, 4),
        (0xf000, 5),
        (0xf800, 6),
        (0xfe00, 9),
    ];
    if RESERVED
        .iter()
        .any(|(n, l)| in_v6(a, [*n, 0, 0, 0, 0, 0, 0, 0], *l))
    {
        return IpCategory::Reserved;
    }
    const PRIVATE: [([u16; 8], u32); 6] = [
        ([0x0064, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32),
        ([0x2001, 0x0010, 0, 0, 0, 0, 0, 0], 28),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        ([0x0100, 0, 0, 0, 0, 0, 0, 0], 64),
    ];
    if PRIVATE.iter().any(|(n, l)| in_v6(a, *n, *l)) {
        return IpCategory::Private;
    }
    IpCategory::Public
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        let hp = parse_host_port("192.168.1.5:40838").unwrap();
        assert_eq!((hp.addr_text, hp.port), ("192.168.1.5", Some("40838")));
        let hp = parse_host_port("[2001:db8::1]:443").unwrap();
        assert_eq!((hp.addr_text, hp.port), ("2001:db8::1", Some("443")));
        let hp = parse_host_port("[2001:db8::1]").unwrap();
        assert_eq!((hp.addr_text, hp.port), ("2001:db8::1", None));
        // bare IPv6 is never split at its last colon
        let hp = parse_host_port("2001:db8::1").unwrap();
        assert_eq!((hp.addr_text, hp.port), ("2001:db8::1", None));
        assert_eq!(parse_host_port("1.2.3.4").unwrap().port, None);
        assert!(parse_host_port("1.2.3.4:99999").is_none());
        assert!(parse_host_port("1.2.3.4:").is_none());
        assert!(parse_host_port("host:80").is_none());
        assert!(parse_host_port("[::1]x").is_none());
        assert!(parse_host_port("[nothex]:1").is_none());
        assert!(parse_host_port("").is_none());
    }

    fn sel(pairs: &[(&str, &str)], msg: &str) -> (String, Fields) {
        let mut f: Fields = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ip = select_attacker_ip(&mut f, msg);
        (ip, f)
    }

    #[test]
    fn every_param_resolves_and_priority_holds() {
        for p in ATTACKER_IP_PARAMS {
            assert_eq!(sel(&[(p, "9.9.9.9")], "").0, "9.9.9.9", "{p}");
        }
        assert_eq!(
            sel(&[("src", "2.2.2.2"), ("src_ip", "1.1.1.1")], "").0,
            "1.1.1.1"
        );
        assert_eq!(sel(&[("other", "1.1.1.1")], "").0, UNKNOWN_IP);
        assert_eq!(sel(&[("src_ip", ""), ("ip", "3.3.3.3")], "").0, "3.3.3.3");
    }

    #[test]
    fn remote_addr_port_split_only_when_present() {
        let (ip, f) = sel(&[("remote_addr", "192.168.1.5:40838")], "");
        assert_eq!(ip, "192.168.1.5");
        assert_eq!(f.get("remote_port"), Some("40838"));
        let (ip, f) = sel(&[("remote_addr", "192.168.1.5")], "");
        assert_eq!(ip, "192.168.1.5");
        assert_eq!(f.get("remote_port"), None);
        let (_, f) = sel(&[("remote_addr", "1.2.3.4:5"), ("remote_port", "7")], "");
        assert_eq!(f.get("remote_port"), Some("7"));
        let (ip, f) = sel(&[("src_ip", "2001:db8::1")], "");
        assert_eq!(ip, "2001:db8::1");
        assert_eq!(f.get("remote_port"), None);
        let (ip, f) = sel(&[("src_ip", "[2001:db8::1]:8080")], "");
        assert_eq!(ip, "2001:db8::1");
        assert_eq!(f.get("remote_port"), Some("8080"));
        // non-IP values are used verbatim
        assert_eq!(
            sel(&[("src", "attacker.example")], "").0,
            "attacker.example"
        );
    }

    #[test]
    fn msg_fallbacks() {
        // SD wins over src= in MSG; MSG kv does not add fields
        let (ip, f) = sel(&[("src_ip", "1.1.1.1")], "src=2.2.2.2");
        assert_eq!(ip, "1.1.1.1");
        assert_eq!(f.len(), 1);
        let (ip, f) = sel(&[], "CMD uid=0 user=root src=203.0.113.45 pwd=/tmp cmd=ls");
        assert_eq!(ip, "203.0.113.45");
        assert!(f.is_empty());
        assert_eq!(
            sel(
                &[],
                "Failed password for admin from 203.0.113.45 port 51822 ssh2"
            )
            .0,
            "203.0.113.45"
        );
        assert_eq!(
            sel(
                &[],
                "Connection from 198.51.100.1 port 4000 on 10.0.0.2 port 22"
            )
            .0,
            "198.51.100.1"
        );
        assert_eq!(
            sel(
                &[],
                "Disconnected from authenticating user root 192.0.2.7 port 4242 [preauth]"
            )
            .0,
            "192.0.2.7"
        );
        assert_eq!(sel(&[], "pam_unix(sshd:auth): authentication failure; logname= uid=0 rhost=192.0.2.8 user=root").0, "192.0.2.8");
        assert_eq!(sel(&[], "RHOST: 2001:db8::7 tried").0, "2001:db8::7");
        assert_eq!(sel(&[], "client:10.1.2.3").0, "10.1.2.3");
        assert_eq!(sel(&[], "no address at all").0, UNKNOWN_IP);
        assert_eq!(sel(&[], "v1.2.3.4 and 999.1.1.1 and 5.6.7.8.").0, "5.6.7.8");
    }

    #[test]
    fn kv_tokens_behave_like_the_regex() {
        let toks: Vec<_> = msg_kv_tokens("a=1 b= c=x=y é=2 cmd=wget -q http://h/?ip=1").collect();
        assert_eq!(
            toks,
            vec![
                ("a", "1"),
                ("c", "x=y"),
                ("é", "2"),
                ("cmd", "wget"),
                ("ip", "1")
            ]
        );
    }

    #[test]
    fn categories_follow_iana() {
        let c = |s: &str| categorize(s.parse().unwrap());
        assert_eq!(c("0.0.0.0"), IpCategory::Unspecified);
        assert_eq!(c("127.0.0.1"), IpCategory::Loopback);
        assert_eq!(c("169.254.1.1"), IpCategory::LinkLocal);
        assert_eq!(c("224.0.0.1"), IpCategory::Multicast);
        assert_eq!(c("250.1.1.1"), IpCategory::Reserved);
        assert_eq!(c("10.1.1.1"), IpCategory::Private);
        assert_eq!(c("192.168.3.3"), IpCategory::Private);
        assert_eq!(c("203.0.113.9"), IpCategory::Private);
        assert_eq!(c("8.8.8.8"), IpCategory::Public);
        assert_eq!(c("::"), IpCategory::Unspecified);
        assert_eq!(c("::1"), IpCategory::Loopback);
        assert_eq!(c("fe80::1"), IpCategory::LinkLocal);
        assert_eq!(c("ff02::1"), IpCategory::Multicast);
        assert_eq!(c("fd00::1"), IpCategory::Private);
        assert_eq!(c("2001:db8::1"), IpCategory::Private);
        assert_eq!(c("2606:4700::1111"), IpCategory::Public);
        assert_eq!(c("::ffff:10.0.0.1"), IpCategory::Private);
    }
}

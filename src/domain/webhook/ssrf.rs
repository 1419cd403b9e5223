//! SSRF guard (§5.5): which destinations a webhook may reach. The scheme and host come from
//! the URL; every address the host resolves to must be public. IPv4-mapped, IPv4-compatible,
//! NAT64 and 6to4 IPv6 addresses are unwrapped and checked as the IPv4 address they carry.
//! Decnetd also refuses 100.64.0.0/10 (shared address space, spec §10.15).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// Why a destination is refused. The text always contains "forbidden" (§5.3's 422 detail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Forbidden {
    #[error("forbidden URL: {0}")]
    BadUrl(String),
    #[error("forbidden URL scheme {0:?}: only http and https")]
    Scheme(String),
    #[error("forbidden URL: a host is required")]
    NoHost,
    #[error("forbidden destination: {host} does not resolve ({reason})")]
    Unresolvable { host: String, reason: String },
    #[error("forbidden destination: {addr} is {class}")]
    Address { addr: IpAddr, class: &'static str },
}

/// What the guard lets through besides public addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// `DECNET_WEBHOOK_ALLOW_PRIVATE`: skip the address-class check entirely.
    pub allow_private: bool,
    /// Loopback only (127.0.0.0/8, ::1): for tests and local development.
    pub allow_loopback: bool,
}

/// A parsed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: String,
    /// Host as written (brackets of an IPv6 literal removed).
    pub host: String,
    pub port: u16,
    /// Set when the host is an IP literal (no DNS).
    pub literal: Option<IpAddr>,
}

/// Scheme and host checks of a webhook URL.
pub fn check_url(raw: &str) -> Result<Target, Forbidden> {
    let url = url::Url::parse(raw).map_err(|e| Forbidden::BadUrl(e.to_string()))?;
    let scheme = url.scheme().to_owned();
    if scheme != "http" && scheme != "https" {
        return Err(Forbidden::Scheme(scheme));
    }
    let (host, literal) = match url.host() {
        None => return Err(Forbidden::NoHost),
        Some(url::Host::Domain("")) => return Err(Forbidden::NoHost),
        Some(url::Host::Domain(d)) => (d.to_owned(), None),
        Some(url::Host::Ipv4(a)) => (a.to_string(), Some(IpAddr::V4(a))),
        Some(url::Host::Ipv6(a)) => (a.to_string(), Some(IpAddr::V6(a))),
    };
    let port = url.port_or_known_default().unwrap_or(80);
    Ok(Target {
        scheme,
        host,
        port,
        literal,
    })
}

fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    // Prefix lengths below are constants ≤ 32.
    Ipv4Net::new(Ipv4Addr::new(a, b, c, d), len).unwrap_or_default()
}

/// The class of a non-public IPv4 address, or `None` when it is public.
pub fn class_v4(a: Ipv4Addr) -> Option<&'static str> {
    if a.is_loopback() {
        return Some("loopback");
    }
    if a == Ipv4Addr::new(169, 254, 169, 254) {
        return Some("the cloud metadata address");
    }
    let table: [(Ipv4Net, &'static str); 15] = [
        (v4(0, 0, 0, 0, 8), "unspecified"),
        (v4(10, 0, 0, 0, 8), "private"),
        (
            v4(100, 64, 0, 0, 10),
            "shared address space (100.64.0.0/10)",
        ),
        (v4(169, 254, 0, 0, 16), "link-local"),
        (v4(172, 16, 0, 0, 12), "private"),
        (v4(192, 0, 0, 0, 24), "reserved"),
        (v4(192, 0, 2, 0, 24), "reserved"),
        (v4(192, 88, 99, 0, 24), "reserved"),
        (v4(192, 168, 0, 0, 16), "private"),
        (v4(198, 18, 0, 0, 15), "reserved"),
        (v4(198, 51, 100, 0, 24), "reserved"),
        (v4(203, 0, 113, 0, 24), "reserved"),
        (v4(224, 0, 0, 0, 4), "multicast"),
        (v4(240, 0, 0, 0, 4), "reserved"),
        (v4(255, 255, 255, 255, 32), "reserved"),
    ];
    table
        .iter()
        .find(|(net, _)| net.contains(&a))
        .map(|(_, class)| *class)
}

fn v6(s: &str) -> Ipv6Net {
    s.parse().unwrap_or_default()
}

/// The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), if any.
pub fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(m) = a.to_ipv4_mapped() {
        return Some(m);
    }
    let o = a.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if v6("64:ff9b::/96").contains(&a) {
        return Some(tail);
    }
    if v6("2002::/16").contains(&a) {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    // IPv4-compatible ::a.b.c.d (deprecated); `::` and `::1` are not.
    if o[..12].iter().all(|b| *b == 0) && u32::from(tail) > 1 {
        return Some(tail);
    }
    None
}

/// The class of a non-public IPv6 address, or `None` when it is public.
pub fn class_v6(a: Ipv6Addr) -> Option<&'static str> {
    if a.is_loopback() {
        return Some("loopback");
    }
    if a.is_unspecified() {
        return Some("unspecified");
    }
    if let Some(inner) = embedded_v4(a) {
        return class_v4(inner);
    }
    let table = [
        ("fc00::/7", "private (unique local)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "reserved (site-local)"),
        ("ff00::/8", "multicast"),
        ("2001:db8::/32", "reserved"),
        ("100::/64", "reserved"),
    ];
    table
        .iter()
        .find(|(net, _)| v6(net).contains(&a))
        .map(|(_, class)| *class)
}

fn is_loopback(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.is_loopback(),
        IpAddr::V6(v) => v.is_loopback() || v.to_ipv4_mapped().is_some_and(|m| m.is_loopback()),
    }
}

/// Refuse `addr` unless it is public (or allowed by `policy`).
pub fn check_addr(addr: IpAddr, policy: Policy) -> Result<(), Forbidden> {
    if policy.allow_private || (policy.allow_loopback && is_loopback(addr)) {
        return Ok(());
    }
    let class = match addr {
        IpAddr::V4(a) => class_v4(a),
        IpAddr::V6(a) => class_v6(a),
    };
    match class {
        Some(class) => Err(Forbidden::Address { addr, class }),
        None => Ok(()),
    }
}

/// Check every resolved address; the validated set, sorted, or the first refusal. An empty
/// resolution is a failure.
pub fn check_resolved(
    host: &str,
    addrs: &[IpAddr],
    policy: Policy,
) -> Result<Vec<IpAddr>, Forbidden> {
    if addrs.is_empty() {
        return Err(Forbidden::Unresolvable {
            host: host.to_owned(),
            reason: "no addresses".to_owned(),
        });
    }
    for a in addrs {
        check_addr(*a, policy)?;
    }
    let mut out = addrs.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> bool {
        check_addr(s.parse().unwrap(), Policy::default()).is_err()
    }

    #[test]
    fn private_loopback_link_local_and_friends_are_refused() {
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:100.64.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "::10.0.0.1",
        ] {
            assert!(refused(a), "{a} should be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!refused(a), "{a} should pass");
        }
    }

    #[test]
    fn refusal_text_names_the_class_and_says_forbidden() {
        let e = check_addr("169.254.169.254".parse().unwrap(), Policy::default()).unwrap_err();
        let t = e.to_string();
        assert!(t.contains("forbidden") && t.contains("metadata"), "{t}");
        let e = check_addr("::ffff:127.0.0.1".parse().unwrap(), Policy::default()).unwrap_err();
        assert!(e.to_string().contains("loopback"));
    }

    #[test]
    fn loopback_allowance_is_loopback_only() {
        let p = Policy {
            allow_loopback: true,
            ..Policy::default()
        };
        assert!(check_addr("127.0.0.1".parse().unwrap(), p).is_ok());
        assert!(check_addr("::1".parse().unwrap(), p).is_ok());
        assert!(check_addr("::ffff:127.0.0.1".parse().unwrap(), p).is_ok());
        assert!(check_addr("10.0.0.1".parse().unwrap(), p).is_err());
        assert!(check_addr("169.254.169.254".parse().unwrap(), p).is_err());
        let all = Policy {
            allow_private: true,
            ..Policy::default()
        };
        assert!(check_addr("10.0.0.1".parse().unwrap(), all).is_ok());
    }

    #[test]
    fn any_bad_address_in_a_resolution_refuses_the_host() {
        let addrs: Vec<IpAddr> = vec!["8.8.8.8".parse().unwrap(), "10.0.0.1".parse().unwrap()];
        assert!(check_resolved("rebind.example", &addrs, Policy::default()).is_err());
        assert!(check_resolved("x.example", &[], Policy::default()).is_err());
        let ok = check_resolved(
            "x.example",
            &["9.9.9.9".parse().unwrap(), "1.1.1.1".parse().unwrap()],
            Policy::default(),
        )
        .unwrap();
        assert_eq!(ok[0], "1.1.1.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn urls_need_http_scheme_and_host() {
        assert!(matches!(
            check_url("ftp://x.example/"),
            Err(Forbidden::Scheme(_))
        ));
        assert!(matches!(
            check_url("file:///etc/passwd"),
            Err(Forbidden::Scheme(_))
        ));
        assert!(check_url("not a url").is_err());
        let t = check_url("https://[::ffff:7f00:1]:8443/h").unwrap();
        assert_eq!(t.port, 8443);
        assert_eq!(t.literal, Some("::ffff:127.0.0.1".parse().unwrap()));
        let t = check_url("http://hooks.example/x").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.literal),
            ("hooks.example", 80, None)
        );
        // Decimal and hex IPv4 spellings are normalised by the URL parser, then refused.
        let t = check_url("http://2130706433/").unwrap();
        assert_eq!(t.literal, Some("127.0.0.1".parse().unwrap()));
        let t = check_url("http://0x7f.1/").unwrap();
        assert_eq!(t.literal, Some("127.0.0.1".parse().unwrap()));
    }
}

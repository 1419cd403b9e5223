//! HTTP header analysis (spec §6 clauses 2b, 2b.2, 2c): proxy-header IP
//! claims and the header order/casing "quirks" fingerprint.

use std::net::IpAddr;

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use super::fields::{OrderedObject, OrderedValue};
use super::ip::{categorize, parse_ip, IpCategory};

/// Proxy headers in claim priority order (canonical names).
pub const PROXY_HEADERS: [&str; 5] = [
    "Forwarded",
    "X-Forwarded-For",
    "X-Real-IP",
    "True-Client-IP",
    "CF-Connecting-IP",
];

/// Parsed `DECNET_TRUSTED_PROXIES`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parse a comma list of IPs / CIDRs. Bad tokens are returned separately
    /// (the caller logs them) and otherwise ignored. A bare IPv6 address
    /// becomes a /128 (the reference wrongly appends /32).
    pub fn parse(list: &str) -> (Self, Vec<String>) {
        let mut nets = Vec::new();
        let mut bad = Vec::new();
        for tok in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let parsed = if tok.contains('/') {
                tok.parse::<IpNet>().ok().map(|n| n.trunc())
            } else {
                parse_ip(tok).map(IpNet::from)
            };
            match parsed {
                Some(n) => nets.push(n),
                None => bad.push(tok.to_owned()),
            }
        }
        (Self(nets), bad)
    }

    /// Whether `ip` (text) is inside one of the networks.
    pub fn contains(&self, ip: &str) -> bool {
        match parse_ip(ip) {
            Some(a) => self.0.iter().any(|n| n.contains(&a)),
            None => false,
        }
    }
}

/// Header map in received order with string values only where relevant.
pub type Headers = OrderedObject;

/// Decode `fields.headers` (JSON-object text). Anything else → empty.
pub fn decode_headers(raw: Option<&str>) -> Headers {
    raw.and_then(|s| OrderedObject::parse(s).ok())
        .unwrap_or_default()
}

/// Case-insensitive lookup; the first matching header whose value is a
/// non-blank string, trimmed.
pub fn lookup_header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.0.iter().find_map(|(k, v)| {
        if !k.eq_ignore_ascii_case(name) {
            return None;
        }
        match v {
            OrderedValue::String(s) if !s.trim().is_empty() => Some(s.trim()),
            _ => None,
        }
    })
}

fn strip_token(tok: &str) -> &str {
    tok.trim()
        .trim_matches('"')
        .trim_start_matches('[')
        .trim_end_matches(']')
}

/// First `for=` address of an RFC 7239 `Forwarded` value.
fn parse_forwarded(value: &str) -> Option<String> {
    let lower = value.to_ascii_lowercase();
    let mut from = 0;
    while let Some(off) = lower[from..].find("for") {
        let i = from + off;
        from = i + 3;
        let rest = value[i + 3..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start();
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        let end = rest.find(['"', ',', ';']).unwrap_or(rest.len());
        let token = &rest[..end];
        let after = &rest[end..];
        let after = after.strip_prefix('"').unwrap_or(after);
        if token.trim().is_empty() || !(after.is_empty() || after.starts_with([',', ';'])) {
            continue;
        }
        let mut token = token.trim();
        if let Some(inner) = token.strip_prefix('[') {
            if let Some(e) = inner.find(']') {
                token = &inner[..e];
            }
        } else if token.matches(':').count() == 1 {
            token = token.split(':').next().unwrap_or(token);
        }
        return parse_ip(token).map(|_| token.to_owned());
    }
    None
}

fn parse_xff(value: &str) -> Option<String> {
    value
        .split(',')
        .map(strip_token)
        .filter(|t| !t.is_empty())
        .find(|t| parse_ip(t).is_some())
        .map(str::to_owned)
}

/// (claimed ip, canonical header name) from the first header that yields one.
pub fn extract_claimed_ip(headers: &Headers) -> Option<(String, &'static str)> {
    PROXY_HEADERS.iter().find_map(|&h| {
        let raw = lookup_header(headers, h)?;
        let claimed = match h {
            "Forwarded" => parse_forwarded(raw),
            "X-Forwarded-For" => parse_xff(raw),
            _ => {
                let t = strip_token(raw);
                parse_ip(t).map(|_| t.to_owned())
            }
        }?;
        Some((claimed, h))
    })
}

/// A proxy-header claim that differs from the TCP source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyClaim {
    /// The record's attacker ip.
    pub source_ip: String,
    /// Claimed address.
    pub claimed_ip: String,
    /// Header that carried it.
    pub source_header: &'static str,
    /// Every proxy header present, canonical name → trimmed value.
    pub headers_seen: Vec<(&'static str, String)>,
    /// Category of the claimed address.
    pub category: IpCategory,
}

/// Clause 2b / 2b.2 precondition and claim (service must be `http`).
pub fn classify_proxy_claim(
    service: &str,
    source_ip: &str,
    headers: &Headers,
    trusted: &TrustedProxies,
) -> Option<ProxyClaim> {
    if service != "http" || headers.0.is_empty() || source_ip.is_empty() {
        return None;
    }
    if trusted.contains(source_ip) {
        return None;
    }
    let (claimed, header) = extract_claimed_ip(headers)?;
    if claimed == source_ip {
        return None;
    }
    let addr: IpAddr = parse_ip(&claimed)?;
    let headers_seen = PROXY_HEADERS
        .iter()
        .filter_map(|&h| lookup_header(headers, h).map(|v| (h, v.to_owned())))
        .collect();
    Some(ProxyClaim {
        source_ip: source_ip.to_owned(),
        claimed_ip: claimed,
        source_header: header,
        headers_seen,
        category: categorize(addr),
    })
}

const VOLATILE: [&str; 11] = [
    "content-length",
    "cookie",
    "authorization",
    "x-forwarded-for",
    "forwarded",
    "x-real-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-request-id",
    "x-correlation-id",
    "x-amzn-trace-id",
];

const TOOL_SIGNATURES: [(&str, &[&str]); 4] = [
    ("curl", &["host", "user-agent", "accept"]),
    (
        "python-requests",
        &[
            "host",
            "user-agent",
            "accept-encoding",
            "accept",
            "connection",
        ],
    ),
    ("go-http-client", &["host", "user-agent", "accept-encoding"]),
    ("nmap-nse", &["host", "user-agent"]),
];

/// Clause 2c payload data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quirks {
    /// 16-hex sha256 prefix of the lowercased stable names joined by `\n`.
    pub order_hash: String,
    /// Stable names as received.
    pub order: Vec<String>,
    /// 16-hex hash of the per-name casing labels.
    pub casing_hash: String,
    /// Single label, `mixed`, or `empty`.
    pub casing_category: &'static str,
    /// Number of stable names.
    pub stable_count: usize,
    /// First tool signature that prefixes the lowercased list.
    pub tool_guess: Option<&'static str>,
}

/// Casing label of one header name: upper / lower / title / mixed / empty.
pub fn casing_label(name: &str) -> &'static str {
    if name.is_empty() {
        return "empty";
    }
    if name.to_uppercase() == name {
        return "upper";
    }
    if name.to_lowercase() == name {
        return "lower";
    }
    let is_lower_run =
        |p: &str| p.chars().any(|c| c.is_lowercase() || c.is_uppercase()) && p.to_lowercase() == p;
    let mut parts = name.split('-').filter(|p| !p.is_empty()).peekable();
    if parts.peek().is_some()
        && parts.all(|p| {
            let mut cs = p.chars();
            let first_upper = cs.next().is_some_and(char::is_uppercase);
            let rest = cs.as_str();
            first_upper && (rest.is_empty() || is_lower_run(rest))
        })
    {
        return "title";
    }
    "mixed"
}

fn short_hash(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    hex::encode(&d[..8])
}

/// Clause 2c: only service `http` with a non-empty headers object.
pub fn http_quirks(service: &str, headers: &Headers) -> Option<Quirks> {
    if service != "http" || headers.0.is_empty() {
        return None;
    }
    let stable: Vec<String> = headers
        .0
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !VOLATILE.iter().any(|v| k.eq_ignore_ascii_case(v)))
        .cloned()
        .collect();
    let lowered: Vec<String> = stable.iter().map(|n| n.to_lowercase()).collect();
    let labels: Vec<&'static str> = stable.iter().map(|n| casing_label(n)).collect();
    let casing_category = match labels.first() {
        None => "empty",
        Some(first) if labels.iter().all(|l| l == first) => first,
        Some(_) => "mixed",
    };
    let tool_guess = TOOL_SIGNATURES
        .iter()
        .find(|(_, sig)| {
            lowered.len() >= sig.len() && lowered.iter().zip(sig.iter()).all(|(a, b)| a == b)
        })
        .map(|(n, _)| *n);
    Some(Quirks {
        order_hash: short_hash(&lowered.join("\n")),
        casing_hash: short_hash(&labels.join("\n")),
        order: stable,
        casing_category,
        stable_count: labels.len(),
        tool_guess,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(json: &str) -> Headers {
        decode_headers(Some(json))
    }

    fn claim(json: &str, src: &str) -> Option<ProxyClaim> {
        classify_proxy_claim("http", src, &h(json), &TrustedProxies::default())
    }

    #[test]
    fn xff_public_leak_and_equal_and_spoof() {
        let c = claim(r#"{"X-Forwarded-For": "8.8.8.8, 10.0.0.1"}"#, "1.2.3.4").unwrap();
        assert_eq!(
            (c.claimed_ip.as_str(), c.category),
            ("8.8.8.8", IpCategory::Public)
        );
        assert!(claim(r#"{"X-Forwarded-For": "1.2.3.4"}"#, "1.2.3.4").is_none());
        for (v, cat) in [
            ("127.0.0.1", IpCategory::Loopback),
            ("192.168.0.9", IpCategory::Private),
            ("169.254.3.3", IpCategory::LinkLocal),
        ] {
            let c = claim(&format!(r#"{{"x-forwarded-for": "{v}"}}"#), "1.2.3.4").unwrap();
            assert_eq!(c.category, cat);
        }
    }

    #[test]
    fn forwarded_forms_and_priority() {
        let c = claim(r#"{"Forwarded": "for=\"[2001:4860::8888]:4711\";proto=https", "X-Forwarded-For": "9.9.9.9"}"#, "1.2.3.4").unwrap();
        assert_eq!(c.claimed_ip, "2001:4860::8888");
        assert_eq!(c.source_header, "Forwarded");
        assert_eq!(c.headers_seen.len(), 2);
        let c = claim(r#"{"forwarded": "For=8.8.4.4:80, for=1.1.1.1"}"#, "1.2.3.4").unwrap();
        assert_eq!(c.claimed_ip, "8.8.4.4");
        // unparseable Forwarded falls through to XFF
        let c = claim(
            r#"{"Forwarded": "for=unknown", "X-Forwarded-For": "garbage, 9.9.9.9"}"#,
            "1.2.3.4",
        )
        .unwrap();
        assert_eq!(
            (c.claimed_ip.as_str(), c.source_header),
            ("9.9.9.9", "X-Forwarded-For")
        );
        let c = claim(r#"{"X-Real-IP": " 8.8.8.8 "}"#, "1.2.3.4").unwrap();
        assert_eq!(c.source_header, "X-Real-IP");
        let c = claim(r#"{"cf-connecting-ip": "[2606:4700::1]"}"#, "1.2.3.4").unwrap();
        assert_eq!(c.source_header, "CF-Connecting-IP");
        assert!(claim(r#"{"X-Forwarded-For": "nope, also-nope"}"#, "1.2.3.4").is_none());
    }

    #[test]
    fn trusted_and_non_http_skipped() {
        let (t, bad) = TrustedProxies::parse("10.0.0.0/8, 1.2.3.4, junk, 2001:db8::1");
        assert_eq!(bad, vec!["junk".to_owned()]);
        let hs = h(r#"{"X-Forwarded-For": "8.8.8.8"}"#);
        assert!(classify_proxy_claim("http", "10.9.9.9", &hs, &t).is_none());
        assert!(classify_proxy_claim("http", "1.2.3.4", &hs, &t).is_none());
        assert!(classify_proxy_claim("http", "2001:db8::2", &hs, &t).is_some());
        assert!(classify_proxy_claim("https", "5.5.5.5", &hs, &t).is_none());
    }

    #[test]
    fn casing_labels() {
        assert_eq!(casing_label("HOST"), "upper");
        assert_eq!(casing_label("host"), "lower");
        assert_eq!(casing_label("User-Agent"), "title");
        assert_eq!(casing_label("X-Forwarded-For"), "title");
        assert_eq!(casing_label("X-API-Key"), "mixed");
        assert_eq!(casing_label("uSer-agent"), "mixed");
        assert_eq!(casing_label("DNT"), "upper");
    }

    #[test]
    fn quirks_hashes_and_guesses() {
        let a = http_quirks(
            "http",
            &h(r#"{"Host":"x","User-Agent":"curl/8","Accept":"*/*"}"#),
        )
        .unwrap();
        let b = http_quirks(
            "http",
            &h(r#"{"Host":"y","User-Agent":"other","Accept":"a","Cookie":"c=1"}"#),
        )
        .unwrap();
        assert_eq!(a.order_hash, b.order_hash);
        assert_eq!(a.casing_hash, b.casing_hash);
        assert_eq!(a.tool_guess, Some("curl"));
        assert_eq!(a.casing_category, "title");
        let c = http_quirks("http", &h(r#"{"User-Agent":"x","Host":"y","Accept":"a"}"#)).unwrap();
        assert_ne!(a.order_hash, c.order_hash);
        let d = http_quirks(
            "http",
            &h(r#"{"host":"x","user-agent":"curl/8","accept":"*/*"}"#),
        )
        .unwrap();
        assert_eq!(a.order_hash, d.order_hash);
        assert_ne!(a.casing_hash, d.casing_hash);
        assert_eq!(d.casing_category, "lower");
        let only_volatile =
            http_quirks("http", &h(r#"{"Cookie":"1","Content-Length":"2"}"#)).unwrap();
        assert_eq!(
            (only_volatile.stable_count, only_volatile.casing_category),
            (0, "empty")
        );
        let pr = http_quirks("http", &h(r#"{"Host":"x","User-Agent":"p","Accept-Encoding":"g","Accept":"*","Connection":"k"}"#)).unwrap();
        assert_eq!(pr.tool_guess, Some("python-requests"));
        let go = http_quirks(
            "http",
            &h(r#"{"Host":"x","User-Agent":"p","Accept-Encoding":"g"}"#),
        )
        .unwrap();
        assert_eq!(go.tool_guess, Some("go-http-client"));
        let nm = http_quirks(
            "http",
            &h(r#"{"Host":"x","User-Agent":"p","Connection":"close"}"#),
        )
        .unwrap();
        assert_eq!(nm.tool_guess, Some("nmap-nse"));
        assert!(http_quirks("smtp", &h(r#"{"Host":"x"}"#)).is_none());
        assert!(http_quirks("http", &h("{}")).is_none());
        assert_eq!(a.order_hash.len(), 16);
    }
}

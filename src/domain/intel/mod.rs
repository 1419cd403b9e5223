//! Threat-intel enrichment, pure part: provider responses → column updates + verdicts, the
//! aggregate verdict, the merged `attacker_intel` fields and the `attacker.intel.enriched`
//! payload. No I/O here: the HTTP clients live in `crate::intel`, the actor in
//! `crate::actors::enricher`.
//!
//! Spec: `intake-and-intel.md` §5.6 and §11.

pub mod abuseipdb;
pub mod feodo;
pub mod greynoise;
mod record;
mod retry_after;
pub mod threatfox;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use record::{
    enriched_payload, merge_pass, skipped_pass, ColumnUpdate, IntelFields, PassResult,
    ProviderReport, ENRICHED_EVENT_TYPE,
};
pub use retry_after::{failure_backoff, parse_retry_after};

/// A provider-local or aggregate verdict. Ordered by precedence: `Malicious` is the strongest.
/// "No opinion" is expressed as `Option::None`, never as a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Malicious,
    Suspicious,
    Benign,
    Unknown,
}

impl Verdict {
    /// Wire / column spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Malicious => "malicious",
            Verdict::Suspicious => "suspicious",
            Verdict::Benign => "benign",
            Verdict::Unknown => "unknown",
        }
    }

    /// Precedence rank: higher wins (malicious > suspicious > benign > unknown).
    fn rank(self) -> u8 {
        match self {
            Verdict::Malicious => 3,
            Verdict::Suspicious => 2,
            Verdict::Benign => 1,
            Verdict::Unknown => 0,
        }
    }

    /// Parse one of the four verdict words (exact, lower-case). Anything else → `None`.
    pub fn from_word(word: &str) -> Option<Verdict> {
        match word {
            "malicious" => Some(Verdict::Malicious),
            "suspicious" => Some(Verdict::Suspicious),
            "benign" => Some(Verdict::Benign),
            "unknown" => Some(Verdict::Unknown),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The strongest verdict among `verdicts` (malicious > suspicious > benign > unknown);
/// `None` entries are "no opinion" and ignored; all-`None` or empty → `None`.
pub fn aggregate<I>(verdicts: I) -> Option<Verdict>
where
    I: IntoIterator<Item = Option<Verdict>>,
{
    verdicts.into_iter().flatten().max_by_key(|v| v.rank())
}

/// The four IP-keyed providers, in their canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    GreyNoise,
    AbuseIpdb,
    Feodo,
    ThreatFox,
}

impl ProviderName {
    /// Every provider, canonical order (also the default `DECNET_INTEL_PROVIDERS`).
    pub const ALL: [ProviderName; 4] = [
        ProviderName::GreyNoise,
        ProviderName::AbuseIpdb,
        ProviderName::Feodo,
        ProviderName::ThreatFox,
    ];

    /// Short tag = column prefix in `attacker_intel`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderName::GreyNoise => "greynoise",
            ProviderName::AbuseIpdb => "abuseipdb",
            ProviderName::Feodo => "feodo",
            ProviderName::ThreatFox => "threatfox",
        }
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown name in `DECNET_INTEL_PROVIDERS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown intel provider {0:?} (known: greynoise, abuseipdb, feodo, threatfox)")]
pub struct UnknownProvider(pub String);

impl FromStr for ProviderName {
    type Err = UnknownProvider;

    /// Case-insensitive, surrounding whitespace ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase();
        ProviderName::ALL
            .into_iter()
            .find(|p| p.as_str() == norm)
            .ok_or(UnknownProvider(norm))
    }
}

/// Parse a `DECNET_INTEL_PROVIDERS` value: comma list, items trimmed and lower-cased, empty
/// items skipped (so `""` → no providers), duplicates collapsed keeping first position;
/// an unknown name is an error.
pub fn parse_provider_list(raw: &str) -> Result<Vec<ProviderName>, UnknownProvider> {
    let mut out: Vec<ProviderName> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let name: ProviderName = item.parse()?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// Why a provider's response body could not be mapped. The actor treats it as a failed
/// provider (its previous columns are kept).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The body is not the JSON shape the provider documents.
    #[error("parse: {0}")]
    Parse(String),
    /// ThreatFox answered with a `query_status` other than `ok` / `no_result`.
    #[error("query_status={0}")]
    QueryStatus(String),
}

/// Whether asking third parties about `ip` makes sense: false for addresses that only exist
/// inside a network (RFC 1918, CGNAT, loopback, link-local, ULA, unspecified, multicast,
/// broadcast). Querying those wastes free-tier quota and tells the provider about the
/// honeypot's own network. IPv4-mapped IPv6 is judged as the IPv4 address. Documentation
/// ranges are left enrichable (providers simply do not know them).
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let cgnat = a == 100 && (64..128).contains(&b);
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || cgnat
        || a == 0)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = (first & 0xfe00) == 0xfc00;
    let link_local = (first & 0xffc0) == 0xfe80;
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || unique_local || link_local)
}

/// Column widths of `attacker_intel` (§5.6); longer provider strings are clipped to fit.
pub const GREYNOISE_CLASSIFICATION_MAX: usize = 32;
/// See [`GREYNOISE_CLASSIFICATION_MAX`].
pub const GREYNOISE_NAME_MAX: usize = 128;
/// See [`GREYNOISE_CLASSIFICATION_MAX`].
pub const FEODO_FAMILY_MAX: usize = 64;

/// The first `max` characters of `s` (never splits a character).
pub(crate) fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Decode a response body as JSON; a decoding failure is a [`MapError::Parse`].
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, MapError> {
    serde_json::from_slice(body).map_err(|e| MapError::Parse(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use Verdict::*;

    #[test]
    fn aggregate_precedence_table() {
        let cases: Vec<(Vec<Option<Verdict>>, Option<Verdict>)> = vec![
            (vec![], None),
            (vec![None], None),
            (vec![None, None, None], None),
            (vec![Some(Unknown)], Some(Unknown)),
            (vec![Some(Unknown), None], Some(Unknown)),
            (vec![Some(Benign), Some(Unknown)], Some(Benign)),
            (vec![Some(Unknown), Some(Benign)], Some(Benign)),
            (vec![Some(Benign), Some(Suspicious)], Some(Suspicious)),
            (vec![Some(Suspicious), Some(Benign), None], Some(Suspicious)),
            (
                vec![Some(Benign), Some(Benign), Some(Malicious)],
                Some(Malicious),
            ),
            (
                vec![
                    Some(Malicious),
                    Some(Suspicious),
                    Some(Benign),
                    Some(Unknown),
                ],
                Some(Malicious),
            ),
            (vec![None, Some(Malicious), None], Some(Malicious)),
            (vec![Some(Unknown), Some(Unknown)], Some(Unknown)),
        ];
        for (input, want) in cases {
            assert_eq!(aggregate(input.clone()), want, "input {input:?}");
        }
    }

    #[test]
    fn verdict_words_round_trip() {
        for v in [Malicious, Suspicious, Benign, Unknown] {
            assert_eq!(Verdict::from_word(v.as_str()), Some(v));
            assert_eq!(
                serde_json::to_value(v).unwrap(),
                serde_json::json!(v.as_str())
            );
        }
        assert_eq!(Verdict::from_word("Malicious"), None);
        assert_eq!(Verdict::from_word("noise"), None);
        assert_eq!(Verdict::from_word(""), None);
    }

    #[test]
    fn provider_list_default_and_normalisation() {
        assert_eq!(
            parse_provider_list("greynoise,abuseipdb,feodo,threatfox").unwrap(),
            ProviderName::ALL.to_vec()
        );
        assert_eq!(
            parse_provider_list("  GreyNoise , FEODO ").unwrap(),
            vec![ProviderName::GreyNoise, ProviderName::Feodo]
        );
        assert_eq!(parse_provider_list("").unwrap(), vec![]);
        assert_eq!(parse_provider_list(" , ,").unwrap(), vec![]);
        assert_eq!(
            parse_provider_list("feodo,feodo,threatfox").unwrap(),
            vec![ProviderName::Feodo, ProviderName::ThreatFox]
        );
    }

    #[test]
    fn provider_list_unknown_name_is_an_error() {
        let err = parse_provider_list("greynoise, Shodan").unwrap_err();
        assert_eq!(err, UnknownProvider("shodan".into()));
        assert!(err.to_string().contains("shodan"));
    }

    #[test]
    fn provider_names_match_column_prefixes() {
        let names: Vec<&str> = ProviderName::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(names, ["greynoise", "abuseipdb", "feodo", "threatfox"]);
        for p in ProviderName::ALL {
            assert_eq!(p.as_str().parse::<ProviderName>().unwrap(), p);
        }
    }

    #[test]
    fn public_address_policy() {
        for ip in [
            "8.8.8.8",
            "45.83.64.1",
            "203.0.113.7",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
        ] {
            assert!(is_public_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "10.0.0.5",
            "172.16.3.4",
            "192.168.1.5",
            "127.0.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:192.168.1.1",
        ] {
            assert!(!is_public_address(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn clip_counts_characters() {
        assert_eq!(clip("abcdef", 3), "abc");
        assert_eq!(clip("ab", 3), "ab");
        assert_eq!(clip("ééé", 2), "éé");
    }

    #[test]
    fn parse_json_errors_are_typed() {
        assert!(matches!(parse_json(b"{not json"), Err(MapError::Parse(_))));
        assert!(matches!(parse_json(b""), Err(MapError::Parse(_))));
        assert_eq!(parse_json(b"[1]").unwrap(), serde_json::json!([1]));
        assert!(MapError::Parse("x".into())
            .to_string()
            .starts_with("parse: "));
    }
}

//! Canary tokens, pure part (spec canary.md §3, §6–§10): slugs, the artifact contract, the
//! generator and instrumenter registries, the MIME sniffer and dispatch, placement paths and
//! the DNS receiver's message handling. No I/O: every function maps bytes and strings to bytes
//! and strings, so each is unit-tested on plain data.

pub mod beacon;
pub mod dns;
pub mod fingerprint;
pub mod generators;
pub mod instrumenters;
mod ooxml;
pub mod paths;
pub mod sniff;

use rand::RngCore;
use thiserror::Error;

/// Generator names in registry order (§6; the order is part of the contract).
pub const GENERATORS: [&str; 10] = [
    "git_config",
    "env_file",
    "ssh_key",
    "aws_creds",
    "honeydoc",
    "honeydoc_docx",
    "honeydoc_pdf",
    "mysql_dump",
    "fingerprint_html",
    "fingerprint_svg",
];

/// Instrumenter names in registry order (§6).
pub const INSTRUMENTERS: [&str; 7] = [
    "docx",
    "xlsx",
    "pdf",
    "html",
    "image",
    "plain",
    "passthrough",
];

/// Token kinds accepted by the API (§4.2).
pub const KINDS: [&str; 3] = ["http", "dns", "aws_passive"];

/// Token states (§4.2).
pub const STATE_PLANTED: &str = "planted";
pub const STATE_REVOKED: &str = "revoked";
pub const STATE_FAILED: &str = "failed";

/// Largest blob an instrumenter inflates from a zip (all members together): a zip bomb is a
/// rejection, never an allocation of gigabytes.
pub const MAX_INFLATED_BYTES: u64 = 64 * 1024 * 1024;

/// Errors of generation and instrumentation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CanaryError {
    /// Unknown generator name (API 400).
    #[error("unknown generator: '{0}'")]
    UnknownGenerator(String),
    /// Unknown instrumenter name.
    #[error("Unknown canary instrumenter: '{0}'")]
    UnknownInstrumenter(String),
    /// The input cannot be instrumented safely, or the generator cannot run with this
    /// context (API 400 at create, 409 at preview; §16.5).
    #[error("{0}")]
    Rejected(String),
}

/// Inputs of every generator and instrumenter (§7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The token's slug.
    pub slug: String,
    /// Public callback base, trailing `/` removed.
    pub http_base: String,
    /// Normalised DNS zone (may be empty).
    pub dns_zone: String,
    /// `linux` or `windows`.
    pub persona: String,
    /// HMAC key of the fingerprint nonce (§8.9); `None` = fingerprint generators refuse.
    fingerprint_secret: Option<FingerprintSecret>,
}

/// The fingerprint HMAC key; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
struct FingerprintSecret(String);

impl std::fmt::Debug for FingerprintSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl Context {
    /// A context with the base and zone normalised (§2).
    pub fn new(slug: &str, http_base: &str, dns_zone: &str, persona: &str) -> Context {
        Context {
            slug: slug.to_owned(),
            http_base: http_base.trim().trim_end_matches('/').to_owned(),
            dns_zone: normalize_zone(dns_zone),
            persona: if persona == "windows" {
                "windows"
            } else {
                "linux"
            }
            .to_owned(),
            fingerprint_secret: None,
        }
    }
    /// The same context with the fingerprint HMAC key set (empty = unset).
    pub fn with_fingerprint_secret(mut self, secret: &str) -> Context {
        self.fingerprint_secret =
            (!secret.is_empty()).then(|| FingerprintSecret(secret.to_owned()));
        self
    }
    /// The fingerprint HMAC key, if set.
    pub fn fingerprint_secret(&self) -> Option<&str> {
        self.fingerprint_secret.as_ref().map(|s| s.0.as_str())
    }
    /// `<base>/c/<slug>`.
    pub fn url(&self) -> String {
        format!("{}/c/{}", self.http_base, self.slug)
    }
    /// `<slug>.<zone>` when a zone is set.
    pub fn dns_host(&self) -> Option<String> {
        (!self.dns_zone.is_empty()).then(|| format!("{}.{}", self.slug, self.dns_zone))
    }
}

/// Strip leading/trailing dots and whitespace, lowercase (§2).
pub fn normalize_zone(zone: &str) -> String {
    zone.trim().trim_matches('.').to_ascii_lowercase()
}

/// What a generator or instrumenter produces (§7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Absolute container path (generators leave it empty).
    pub path: String,
    pub content: Vec<u8>,
    /// Unix permission bits.
    pub mode: u32,
    /// Seconds relative to now for the mtime (negative = backdated).
    pub mtime_offset: i64,
    pub generator: Option<String>,
    pub instrumenter: Option<String>,
    /// How the callback is embedded; never written to the decky.
    pub notes: Vec<String>,
    /// Only fingerprint generators.
    pub fingerprint_nonce: Option<String>,
}

const DAY: i64 = 86_400;

// ---- slugs ----------------------------------------------------------------------------------

/// Characters of a slug: RFC 4648 base32, lowercase.
pub const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Length of a slug: 26 base32 characters carry 130 bits; the first 128 come from the CSPRNG.
pub const SLUG_LEN: usize = 26;

/// A fresh slug: 16 CSPRNG bytes as 26 lowercase base32 characters (`[a-z2-7]`). It is a valid
/// DNS label and URL path segment, and case-folding resolvers (0x20 randomisation, lowercase
/// normalisation) cannot make HTTP and DNS callbacks resolve differently (§16.2 decision).
pub fn new_slug() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    encode_slug(&bytes)
}

/// Base32 (RFC 4648 alphabet, lowercase, unpadded) of 16 bytes.
pub fn encode_slug(bytes: &[u8; 16]) -> String {
    data_encoding::BASE32_NOPAD
        .encode(bytes)
        .to_ascii_lowercase()
}

/// The lookup form of a slug received from outside (lowercased); `None` when it cannot be a
/// slug (wrong length or alphabet), so garbage never reaches the database.
pub fn lookup_slug(raw: &str) -> Option<String> {
    let s = raw.to_ascii_lowercase();
    (s.len() == SLUG_LEN && s.bytes().all(|b| B32.contains(&b))).then_some(s)
}

// ---- dispatch -------------------------------------------------------------------------------

/// Instrumenter for a stored MIME type (§6 table; case-insensitive, first prefix wins).
pub fn instrumenter_for(content_type: &str) -> &'static str {
    const TABLE: [(&str, &str); 13] = [
        (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "docx",
        ),
        (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
        ),
        ("application/pdf", "pdf"),
        ("text/html", "html"),
        ("application/xhtml+xml", "html"),
        ("image/png", "image"),
        ("image/jpeg", "image"),
        ("image/gif", "image"),
        ("text/", "plain"),
        ("application/json", "plain"),
        ("application/x-yaml", "plain"),
        ("application/yaml", "plain"),
        ("application/toml", "plain"),
    ];
    let m = content_type.trim().to_ascii_lowercase();
    if m.is_empty() {
        return "passthrough";
    }
    TABLE
        .iter()
        .find(|(p, _)| m.starts_with(p))
        .map(|(_, i)| *i)
        .unwrap_or("passthrough")
}

/// Run the named generator.
pub fn generate(name: &str, ctx: &Context) -> Result<Artifact, CanaryError> {
    generators::generate(name, ctx)
}

/// Run the named instrumenter on `blob` for `target_path`.
pub fn instrument(
    name: &str,
    blob: &[u8],
    ctx: &Context,
    target_path: &str,
) -> Result<Artifact, CanaryError> {
    instrumenters::instrument(name, blob, ctx, target_path)
}

/// Token kind a generator implies (§8 table), used by seeding and the planner.
pub fn kind_for_generator(generator: &str) -> &'static str {
    match generator {
        "aws_creds" => "aws_passive",
        "ssh_key" | "mysql_dump" => "dns",
        _ => "http",
    }
}

/// §15: the generator of a realism canary class (`canary_<generator>`); any other class is
/// an error mentioning "non-canary".
pub fn generator_for_class(class: &str) -> Result<&'static str, String> {
    class
        .strip_prefix("canary_")
        .and_then(|g| GENERATORS.iter().find(|k| **k == g).copied())
        .ok_or_else(|| format!("cannot cultivate non-canary class '{class}'"))
}

/// Decode a stored `raw_headers` value (§4.3): anything but a JSON object is `{}`.
pub fn decode_headers(raw: &str) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

// ---- what a stored trigger may hold ------------------------------------------------------

/// Characters kept of a trigger's `src_ip`, `user_agent`, `request_path` and `dns_qname`.
pub const MAX_SRC_IP: usize = 64;
pub const MAX_USER_AGENT: usize = 1024;
pub const MAX_REQUEST_PATH: usize = 4096;
pub const MAX_QNAME: usize = 255;
/// Bytes kept of a trigger's `raw_headers` JSON text (more: entries dropped, `_truncated`).
pub const MAX_RAW_HEADERS: usize = 256 * 1024;
/// Characters kept of one header value when `raw_headers` has to be cut down.
pub const MAX_HEADER_VALUE: usize = 2048;

/// Replace NUL (PostgreSQL text cannot hold it; SQLite would) with U+FFFD and keep at most
/// `max` characters, so a hit stores the same text on both backends.
pub fn clean_text(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
        .collect()
}

/// A `raw_headers` text fit for storage on both backends: NUL replaced, at most
/// [`MAX_RAW_HEADERS`] bytes. An oversized JSON object keeps its entries in order (values
/// cut to [`MAX_HEADER_VALUE`] characters) while they fit and gains `"_truncated":"1"`;
/// oversized text that is not a JSON object becomes `{"_truncated":"1"}`.
pub fn bounded_headers(raw: &str) -> String {
    let raw = if raw.contains('\0') {
        std::borrow::Cow::Owned(raw.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(raw)
    };
    if raw.len() <= MAX_RAW_HEADERS {
        return raw.into_owned();
    }
    let mut out = serde_json::Map::new();
    out.insert("_truncated".into(), "1".into());
    let mut size = 20; // {"_truncated":"1"} and a comma
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(&raw) {
        for (k, v) in m {
            let k = clean_text(&k, MAX_HEADER_VALUE);
            let v = match v {
                serde_json::Value::String(s) => {
                    serde_json::Value::String(clean_text(&s, MAX_HEADER_VALUE))
                }
                other => other,
            };
            let len = k.len() + v.to_string().len() + 4;
            if size + len > MAX_RAW_HEADERS {
                break;
            }
            size += len;
            out.insert(k, v);
        }
    }
    serde_json::Value::Object(out).to_string()
}

/// True when `bytes` contain `decnet` in any case (the stealth rule of §7).
pub fn leaks_name(bytes: &[u8]) -> bool {
    bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"decnet"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_is_bounded_and_nul_free() {
        assert_eq!(clean_text("a\0b", 10), "a\u{FFFD}b");
        assert_eq!(clean_text("abcdef", 3), "abc");
        assert_eq!(bounded_headers("{\"a\":\"b\"}"), "{\"a\":\"b\"}");
        assert_eq!(bounded_headers("x\0y"), "x\u{FFFD}y");
        // a huge object: cut under the bound, first entries kept, marked
        let mut m = serde_json::Map::new();
        for i in 0..400 {
            m.insert(format!("h{i:03}"), "v".repeat(5000).into());
        }
        let raw = serde_json::Value::Object(m).to_string();
        assert!(raw.len() > MAX_RAW_HEADERS);
        let out = bounded_headers(&raw);
        assert!(out.len() <= MAX_RAW_HEADERS, "{}", out.len());
        let back = decode_headers(&out);
        assert_eq!(back["_truncated"], "1");
        assert_eq!(back["h000"].as_str().map(str::len), Some(MAX_HEADER_VALUE));
        assert!(back.len() > 100 && back.len() < 401);
        // huge text that is not an object
        let out = bounded_headers(&"x".repeat(MAX_RAW_HEADERS + 1));
        assert_eq!(out, "{\"_truncated\":\"1\"}");
    }

    #[test]
    fn slugs_are_dns_safe_and_distinct() {
        let a = new_slug();
        let b = new_slug();
        assert_ne!(a, b);
        for s in [&a, &b] {
            assert_eq!(s.len(), SLUG_LEN);
            assert!(s
                .bytes()
                .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c)));
            assert_eq!(
                lookup_slug(&s.to_ascii_uppercase()).as_deref(),
                Some(s.as_str())
            );
        }
        assert_eq!(encode_slug(&[0u8; 16]), "a".repeat(26));
        assert_eq!(encode_slug(&[0xff; 16]), format!("{}4", "7".repeat(25)));
        assert_eq!(lookup_slug("short"), None);
        assert_eq!(lookup_slug(&"1".repeat(26)), None);
    }

    #[test]
    fn dispatch_table() {
        for (m, i) in [
            (
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "docx",
            ),
            (
                "APPLICATION/VND.OPENXMLFORMATS-OFFICEDOCUMENT.SPREADSHEETML.SHEET",
                "xlsx",
            ),
            ("application/pdf", "pdf"),
            ("text/html; charset=utf-8", "html"),
            ("application/xhtml+xml", "html"),
            ("image/png", "image"),
            ("image/gif", "image"),
            ("text/plain", "plain"),
            ("application/json", "plain"),
            ("application/toml", "plain"),
            ("application/xml", "passthrough"),
            ("application/zip", "passthrough"),
            ("application/octet-stream", "passthrough"),
            ("audio/mpeg", "passthrough"),
            ("", "passthrough"),
        ] {
            assert_eq!(instrumenter_for(m), i, "{m}");
        }
    }

    #[test]
    fn registries_in_contract_order() {
        assert_eq!(GENERATORS[0], "git_config");
        assert_eq!(GENERATORS[9], "fingerprint_svg");
        assert_eq!(
            INSTRUMENTERS,
            [
                "docx",
                "xlsx",
                "pdf",
                "html",
                "image",
                "plain",
                "passthrough"
            ]
        );
        assert!(matches!(
            generate("bogus", &Context::new("s", "", "", "linux")),
            Err(CanaryError::UnknownGenerator(_))
        ));
        assert!(matches!(
            instrument("bogus", b"x", &Context::new("s", "", "", "linux"), "/x"),
            Err(CanaryError::UnknownInstrumenter(_))
        ));
    }

    #[test]
    fn canary_classes_map_to_generators() {
        use crate::domain::realism::ContentClass;
        let mut seen: Vec<&str> = ContentClass::CANARY
            .iter()
            .map(|c| {
                let g = generator_for_class(c.as_str()).unwrap();
                assert_eq!(format!("canary_{g}"), c.as_str());
                g
            })
            .collect();
        seen.sort_unstable();
        let mut all = GENERATORS.to_vec();
        all.sort_unstable();
        assert_eq!(seen, all, "one class per generator");
        for bad in ["note", "canary_", "canary_bogus", "aws_creds"] {
            assert!(
                generator_for_class(bad).unwrap_err().contains("non-canary"),
                "{bad}"
            );
        }
    }

    #[test]
    fn headers_decode_fallbacks() {
        for raw in ["", "not json", "[1,2,3]", "null"] {
            assert!(decode_headers(raw).is_empty(), "{raw}");
        }
        assert_eq!(decode_headers(r#"{"a":"b"}"#).len(), 1);
    }

    #[test]
    fn context_normalises() {
        let c = Context::new("abc", "http://h:1/", ".Zone.Example.", "solaris");
        assert_eq!(c.url(), "http://h:1/c/abc");
        assert_eq!(c.dns_host().as_deref(), Some("abc.zone.example"));
        assert_eq!(c.persona, "linux");
    }

    #[test]
    fn name_leak_detector() {
        assert!(leaks_name(b"xxDeCnEtxx"));
        assert!(!leaks_name(b"decne"));
    }
}

//! Fingerprint beacon parameters of the HTTP receiver (canary.md §13.3) and the shape of what
//! a stored trigger may hold. Pure: the receiver extracts [`BeaconQuery`] from the query string
//! (no token needed), the recorder validates it against the token ([`apply`]) with an in-memory
//! per-(token, source) budget ([`FpRateLimit`], time passed in).
//!
//! Outcome keys added to the trigger's header map, each `"1"` unless stated:
//! `_fp_open`, `_fp_oversize`, `_fp_sid`/`_fp_idx`/`_fp_total`/`_fp_chunk` (raw strings),
//! `_fp_decode_error`, `_fp_invalid_nonce`, `_fp_invalid_shape`, `_fp_invalid_mint`,
//! `_fp_rate_limited`, and `_fp` (the accepted fingerprint object). The outside sees none of
//! this: every hit is answered with the same GIF whatever the outcome.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use super::fingerprint::mint;

/// Largest `d` parameter examined (longer: `_fp_oversize`, nothing decoded).
pub const MAX_D: usize = 8192;
/// Characters kept of each raw chunk field (`s`, `i`, `n`; `d` is bounded by [`MAX_D`]).
pub const MAX_CHUNK_FIELD: usize = 128;
/// Sliding window and budget of accepted fingerprints per (token, source) (check D).
pub const RATE_WINDOW: Duration = Duration::from_secs(60);
pub const RATE_MAX: usize = 30;
/// Keys of which at least [`SHAPE_MIN`] must be JSON objects (check B).
pub const SHAPE_KEYS: [&str; 8] = ["nav", "scr", "tz", "cv", "gl", "au", "ft", "rtc"];
pub const SHAPE_MIN: usize = 3;

/// Prefix of every key this module adds; request headers with it are dropped, so a client
/// cannot forge an outcome by sending a header named `_fp`.
pub const META_PREFIX: &str = "_fp";

/// Flags of the validation failures, in check order.
pub const FLAG_NONCE: &str = "_fp_invalid_nonce";
pub const FLAG_SHAPE: &str = "_fp_invalid_shape";
pub const FLAG_MINT: &str = "_fp_invalid_mint";
pub const FLAG_RATE: &str = "_fp_rate_limited";

/// What the query string of one hit carries (§13.3 extraction).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BeaconQuery {
    /// Extraction outcome keys (`_fp_open`, `_fp_oversize`, chunk fields, `_fp_decode_error`).
    pub meta: Map<String, Value>,
    /// The decoded fingerprint object, still to be validated.
    pub candidate: Option<Map<String, Value>>,
    /// The `k` parameter (nonce claimed by the beacon).
    pub key: Option<String>,
}

impl BeaconQuery {
    /// True when the query carried nothing of the beacon's.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty() && self.candidate.is_none()
    }
}

fn one() -> Value {
    Value::String("1".into())
}

/// Whether a header name is reserved for this module's outcome keys.
pub fn is_meta_key(name: &str) -> bool {
    name.starts_with(META_PREFIX)
}

/// §13.3 extraction from a raw query string (`a=1&b=2`, form-encoded; the first value of a
/// repeated parameter wins).
pub fn parse_query(query: &str) -> BeaconQuery {
    let mut params: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if matches!(k.as_ref(), "o" | "d" | "s" | "i" | "n" | "k") {
            params
                .entry(k.into_owned())
                .or_insert_with(|| v.into_owned());
        }
    }
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let mut q = BeaconQuery {
        key: get("k").map(|k| super::clean_text(k, 64)),
        ..BeaconQuery::default()
    };
    if get("o").is_some() {
        q.meta.insert("_fp_open".into(), one());
    }
    let Some(d) = get("d") else {
        return q;
    };
    if d.chars().count() > MAX_D {
        q.meta.insert("_fp_oversize".into(), one());
        return q;
    }
    if let (Some(s), Some(i), Some(n)) = (get("s"), get("i"), get("n")) {
        for (key, v, max) in [
            ("_fp_sid", s, MAX_CHUNK_FIELD),
            ("_fp_idx", i, MAX_CHUNK_FIELD),
            ("_fp_total", n, MAX_CHUNK_FIELD),
            ("_fp_chunk", d, MAX_D),
        ] {
            q.meta
                .insert(key.into(), Value::String(super::clean_text(v, max)));
        }
        return q;
    }
    match decode_fingerprint(d) {
        Some(obj) => q.candidate = Some(obj),
        None => {
            q.meta.insert("_fp_decode_error".into(), one());
        }
    }
    q
}

/// Lenient URL-safe base64 (standard alphabet accepted too, other characters skipped,
/// padding restored) → UTF-8 → JSON object.
pub fn decode_fingerprint(d: &str) -> Option<Map<String, Value>> {
    let mut s: String = d
        .chars()
        .filter_map(|c| match c {
            '+' => Some('-'),
            '/' => Some('_'),
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect();
    while !s.len().is_multiple_of(4) {
        s.push('=');
    }
    let bytes = base64::engine::general_purpose::URL_SAFE.decode(s).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    match serde_json::from_str::<Value>(&text).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Checks A–C of a candidate for the token with `slug` and `token_nonce`; `Err(flag)` names
/// the first failed check.
pub fn check_candidate(
    candidate: &Map<String, Value>,
    key: Option<&str>,
    token_nonce: Option<&str>,
    slug: &str,
) -> Result<(), &'static str> {
    if let Some(nonce) = token_nonce {
        let claimed = key.unwrap_or_default();
        if !bool::from(claimed.as_bytes().ct_eq(nonce.as_bytes())) {
            return Err(FLAG_NONCE);
        }
    }
    let mint_ok = matches!(candidate.get("mint"), Some(Value::String(m)) if !m.is_empty());
    let objects = SHAPE_KEYS
        .iter()
        .filter(|k| matches!(candidate.get(**k), Some(Value::Object(_))))
        .count();
    if !mint_ok || objects < SHAPE_MIN {
        return Err(FLAG_SHAPE);
    }
    let claimed = candidate
        .get("mint")
        .and_then(Value::as_str)
        .and_then(|m| uuid::Uuid::parse_str(m).ok());
    if claimed != Some(mint(slug)) {
        return Err(FLAG_MINT);
    }
    Ok(())
}

/// Check D: per (token, source) sliding window of accepted fingerprints, in memory.
#[derive(Debug, Default)]
pub struct FpRateLimit {
    accepted: HashMap<(String, String), VecDeque<Instant>>,
}

impl FpRateLimit {
    /// Whether one more fingerprint of (`token`, `src`) may be accepted at `now`; consumes
    /// budget if so.
    pub fn admit(&mut self, token: &str, src: &str, now: Instant) -> bool {
        if self.accepted.len() > 10_000 {
            self.accepted.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < RATE_WINDOW)
            });
        }
        let q = self
            .accepted
            .entry((token.to_owned(), src.to_owned()))
            .or_default();
        while q
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= RATE_WINDOW)
        {
            q.pop_front();
        }
        if q.len() >= RATE_MAX {
            return false;
        }
        q.push_back(now);
        true
    }
}

/// The token a hit resolved to, as [`apply`] needs it.
#[derive(Debug, Clone, Copy)]
pub struct TokenRef<'a> {
    pub uuid: &'a str,
    pub slug: &'a str,
    pub nonce: Option<&'a str>,
}

/// §13.3 on one hit of `token` from `src`: the extraction keys go into `headers`, then the
/// candidate (if any) is validated (A–C, then D) and stored under `_fp`, or dropped with its
/// flag. Returns whether a fingerprint was accepted.
pub fn apply(
    headers: &mut Map<String, Value>,
    q: &BeaconQuery,
    token: TokenRef<'_>,
    src: &str,
    limit: &mut FpRateLimit,
    now: Instant,
) -> bool {
    for (k, v) in &q.meta {
        headers.insert(k.clone(), v.clone());
    }
    let Some(candidate) = &q.candidate else {
        return false;
    };
    let verdict =
        check_candidate(candidate, q.key.as_deref(), token.nonce, token.slug).and_then(|()| {
            if limit.admit(token.uuid, src, now) {
                Ok(())
            } else {
                Err(FLAG_RATE)
            }
        });
    match verdict {
        Ok(()) => {
            headers.insert("_fp".into(), Value::Object(candidate.clone()));
            true
        }
        Err(flag) => {
            headers.insert(flag.into(), one());
            false
        }
    }
}

/// Whether an accepted fingerprint retires the token (§13.2 step 5): only tokens minted with a
/// nonce (the fingerprint generators); plain tokens are never auto-revoked.
pub fn revokes(accepted: bool, token_nonce: Option<&str>) -> bool {
    accepted && token_nonce.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SLUG: &str = "abcdefghijklmnopqrstuvwxyz";

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn good() -> Value {
        json!({"mint": mint(SLUG).to_string(), "nav": {"ua": "x"}, "scr": {"w": 1}, "tz": {"tz": "UTC"}, "cn": {}})
    }

    fn tok(nonce: Option<&str>) -> TokenRef<'_> {
        TokenRef {
            uuid: "tok",
            slug: SLUG,
            nonce,
        }
    }

    #[test]
    fn extraction_order() {
        assert!(parse_query("").is_empty());
        assert!(parse_query("q=1&x=").is_empty());
        let q = parse_query("o=1&k=abc");
        assert_eq!(
            q.meta,
            json!({"_fp_open": "1"}).as_object().unwrap().clone()
        );
        assert_eq!(q.key.as_deref(), Some("abc"));
        assert!(q.candidate.is_none());
        // empty d stops; o= empty is not an open
        assert!(parse_query("o=&d=").is_empty());
        // oversize wins over chunking and decoding
        let big = "A".repeat(MAX_D + 1);
        let q = parse_query(&format!("d={big}&s=1&i=0&n=2"));
        assert_eq!(q.meta.len(), 1);
        assert_eq!(q.meta["_fp_oversize"], "1");
        // exactly MAX_D is examined
        let q = parse_query(&format!("d={}", "A".repeat(MAX_D)));
        assert!(!q.meta.contains_key("_fp_oversize"));
        // chunks: four raw strings, no decoding
        let q = parse_query("s=ab12&i=0&n=3&d=eyJh&k=n");
        assert_eq!(
            Value::Object(q.meta.clone()),
            json!({"_fp_sid": "ab12", "_fp_idx": "0", "_fp_total": "3", "_fp_chunk": "eyJh"})
        );
        assert!(q.candidate.is_none());
        // two of three chunk fields: decoded as a whole
        let q = parse_query(&format!("s=1&i=0&d={}", b64(&good())));
        assert_eq!(q.candidate.map(Value::Object), Some(good()));
        // decode errors: not base64 JSON, JSON but not an object, invalid UTF-8
        for d in [
            "not-json".to_owned(),
            b64(&json!([1, 2])),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xff, 0xfe, b'{']),
        ] {
            let q = parse_query(&format!("d={d}"));
            assert_eq!(q.meta["_fp_decode_error"], "1", "{d}");
            assert!(q.candidate.is_none());
        }
    }

    #[test]
    fn lenient_base64() {
        let v = json!({"a": "é?>>"});
        let std = base64::engine::general_purpose::STANDARD_NO_PAD.encode(v.to_string());
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        assert_ne!(
            std, url,
            "the sample must use both alphabets' odd characters"
        );
        assert_eq!(decode_fingerprint(&url).map(Value::Object), Some(v.clone()));
        assert_eq!(decode_fingerprint(&std).map(Value::Object), Some(v.clone()));
        let padded = base64::engine::general_purpose::URL_SAFE.encode(v.to_string());
        assert_eq!(decode_fingerprint(&padded).map(Value::Object), Some(v));
        // the first value of a repeated parameter wins; form encoding is undone
        let q = parse_query(&format!("d={}&d=zzz", b64(&good())));
        assert!(q.candidate.is_some());
    }

    #[test]
    fn checks_in_order() {
        let g = good();
        let c = g.as_object().unwrap();
        assert_eq!(check_candidate(c, None, None, SLUG), Ok(()));
        assert_eq!(
            check_candidate(c, Some("n0nce"), Some("n0nce"), SLUG),
            Ok(())
        );
        assert_eq!(
            check_candidate(c, Some("other"), Some("n0nce"), SLUG),
            Err(FLAG_NONCE)
        );
        assert_eq!(
            check_candidate(c, None, Some("n0nce"), SLUG),
            Err(FLAG_NONCE)
        );
        // the nonce check comes before the shape check
        let bad = json!({"nav": {}});
        assert_eq!(
            check_candidate(bad.as_object().unwrap(), None, Some("n"), SLUG),
            Err(FLAG_NONCE)
        );
        for bad in [
            json!({"mint": mint(SLUG).to_string(), "nav": {}}),
            json!({"mint": mint(SLUG).to_string(), "nav": {}, "scr": {}, "tz": "UTC", "cv": []}),
            json!({"mint": "", "nav": {}, "scr": {}, "tz": {}}),
            json!({"mint": 5, "nav": {}, "scr": {}, "tz": {}}),
            json!({"nav": {}, "scr": {}, "tz": {}}),
        ] {
            assert_eq!(
                check_candidate(bad.as_object().unwrap(), None, None, SLUG),
                Err(FLAG_SHAPE),
                "{bad}"
            );
        }
        for m in [
            mint("zyxwvutsrqponmlkjihgfedcba").to_string(),
            "not-a-uuid".into(),
        ] {
            let bad = json!({"mint": m, "nav": {}, "scr": {}, "tz": {}});
            assert_eq!(
                check_candidate(bad.as_object().unwrap(), None, None, SLUG),
                Err(FLAG_MINT)
            );
        }
        // upper-case mint text is the same UUID
        let up =
            json!({"mint": mint(SLUG).to_string().to_uppercase(), "nav": {}, "scr": {}, "tz": {}});
        assert_eq!(
            check_candidate(up.as_object().unwrap(), None, None, SLUG),
            Ok(())
        );
    }

    #[test]
    fn rate_limit_sliding_window() {
        let mut l = FpRateLimit::default();
        let t0 = Instant::now();
        for i in 0..RATE_MAX {
            assert!(
                l.admit("tok", "1.1.1.1", t0 + Duration::from_secs(i as u64)),
                "{i}"
            );
        }
        assert!(!l.admit("tok", "1.1.1.1", t0 + Duration::from_secs(30)));
        assert!(l.admit("tok", "2.2.2.2", t0 + Duration::from_secs(30)));
        assert!(l.admit("tok2", "1.1.1.1", t0 + Duration::from_secs(30)));
        // the oldest acceptance leaves the window at t0+60 s
        assert!(l.admit("tok", "1.1.1.1", t0 + Duration::from_secs(60)));
        assert!(!l.admit("tok", "1.1.1.1", t0 + Duration::from_secs(60)));
    }

    #[test]
    fn apply_stores_or_flags() {
        let mut l = FpRateLimit::default();
        let now = Instant::now();
        let d = b64(&good());
        // accepted: `_fp` is the object sent, `_fp_open` kept
        let mut h = Map::new();
        let q = parse_query(&format!("o=1&d={d}&k=n0nce"));
        assert!(apply(
            &mut h,
            &q,
            tok(Some("n0nce")),
            "1.1.1.1",
            &mut l,
            now
        ));
        assert_eq!(h["_fp"], good());
        assert_eq!(h["_fp_open"], "1");
        assert!(revokes(true, Some("n0nce")));
        assert!(!revokes(true, None));
        assert!(!revokes(false, Some("n0nce")));
        // rejected: flag only, no `_fp`, no budget used
        let mut h = Map::new();
        let q = parse_query(&format!("d={d}&k=wrong"));
        assert!(!apply(
            &mut h,
            &q,
            tok(Some("n0nce")),
            "1.1.1.1",
            &mut l,
            now
        ));
        assert_eq!(Value::Object(h), json!({"_fp_invalid_nonce": "1"}));
        // a token without a nonce: accepted until the budget is spent
        let q = parse_query(&format!("d={d}"));
        for _ in 1..RATE_MAX {
            let mut h = Map::new();
            assert!(apply(&mut h, &q, tok(None), "1.1.1.1", &mut l, now));
        }
        let mut h = Map::new();
        assert!(!apply(&mut h, &q, tok(None), "1.1.1.1", &mut l, now));
        assert_eq!(Value::Object(h), json!({"_fp_rate_limited": "1"}));
        // nothing in the query: nothing added
        let mut h = Map::new();
        assert!(!apply(
            &mut h,
            &parse_query("x=1"),
            tok(None),
            "1.1.1.1",
            &mut l,
            now
        ));
        assert!(h.is_empty());
        assert!(is_meta_key("_fp") && is_meta_key("_fp_open") && !is_meta_key("fp"));
    }
}

//! The delivered body and its signatures: the generic scheme of §5.4 (`X-DECNET-Signature`)
//! and the Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of a Standard Webhooks secret (the rest is the base64 key).
pub const WHSEC_PREFIX: &str = "whsec_";

/// `{v, id, ts, topic, type, payload}` as delivered (§5.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBody {
    pub v: u8,
    pub id: String,
    /// ISO-8601 UTC with microseconds and `+00:00` (a string timestamp passes through).
    pub ts: Value,
    pub topic: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: Value,
}

impl EventBody {
    /// Body of a registry event whose `ts` is epoch seconds.
    pub fn new(id: &str, topic: &str, kind: &str, ts_epoch: f64, payload: Value) -> EventBody {
        EventBody {
            v: 1,
            id: id.to_owned(),
            ts: Value::String(iso_ts(ts_epoch)),
            topic: topic.to_owned(),
            kind: kind.to_owned(),
            payload: if payload.is_object() {
                payload
            } else {
                Value::Object(serde_json::Map::new())
            },
        }
    }
}

/// Epoch seconds → `2026-04-24T00:00:00.123456+00:00` (out-of-range values clamp to the epoch).
pub fn iso_ts(epoch: f64) -> String {
    let micros = (epoch * 1_000_000.0).round();
    let micros = if micros.is_finite() { micros as i64 } else { 0 };
    let dt = DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or(DateTime::UNIX_EPOCH);
    dt.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Compact JSON with keys sorted at every level, UTF-8 (§5.4). serde_json's map is ordered by
/// key (the crate is built without `preserve_order`; a unit test guards that), so the canonical
/// form is the plain serialization of a `Value`.
pub fn canonical_body(body: &EventBody) -> String {
    let value = serde_json::to_value(body).unwrap_or(Value::Null);
    value.to_string()
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `sha256=<lowercase hex HMAC-SHA256(secret UTF-8, body)>`.
pub fn signature_header(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &[body]))
    )
}

/// The key of a Standard Webhooks secret: the base64 after `whsec_`, else the UTF-8 bytes.
pub fn standard_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix(WHSEC_PREFIX)
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// `webhook-signature`: `v1,<base64 HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")>`.
pub fn standard_signature(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(
        &standard_key(secret),
        &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    )
}

/// A new secret from 32 random bytes: URL-safe base64 (§5.3), or `whsec_` + standard base64
/// for Standard Webhooks subscriptions (the form their libraries take).
pub fn encode_secret(bytes: &[u8; 32], standard: bool) -> String {
    if standard {
        format!(
            "{WHSEC_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    } else {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn iso_timestamp_has_micros_and_offset() {
        assert_eq!(
            iso_ts(1_776_988_800.123456),
            "2026-04-24T00:00:00.123456+00:00"
        );
        assert_eq!(iso_ts(0.0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(iso_ts(f64::NAN), "1970-01-01T00:00:00.000000+00:00");
    }

    #[test]
    fn body_is_compact_and_sorted_at_every_level() {
        let b = EventBody::new(
            "ab",
            "attacker.observed",
            "observed",
            0.0,
            json!({"zeta": 1, "alpha": {"y": [1, {"b": 2, "a": 1}], "x": "é"}}),
        );
        assert_eq!(
            canonical_body(&b),
            r#"{"id":"ab","payload":{"alpha":{"x":"é","y":[1,{"a":1,"b":2}]},"zeta":1},"topic":"attacker.observed","ts":"1970-01-01T00:00:00.000000+00:00","type":"observed","v":1}"#
        );
    }

    #[test]
    fn non_object_payload_becomes_empty_object() {
        let b = EventBody::new("x", "t", "", 0.0, json!([1]));
        assert_eq!(b.payload, json!({}));
    }

    #[test]
    fn generic_signature_matches_rfc4231_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature_header("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn standard_webhooks_reference_vector() {
        // Example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            standard_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_have_the_expected_shape() {
        let s = encode_secret(&[7u8; 32], false);
        assert_eq!(s.len(), 43);
        assert!(!s.contains('='));
        let w = encode_secret(&[7u8; 32], true);
        assert!(w.starts_with("whsec_"));
        assert_eq!(standard_key(&w), vec![7u8; 32]);
        assert_eq!(standard_key("plain-secret"), b"plain-secret".to_vec());
    }
}

//! The identity-layer observation projection (spec §3.1) and the adapter that builds it from a
//! stored `attackers` row.
//!
//! The projection deliberately carries **no time field**: identity edges must never depend on
//! time (invariant 1), and the type makes that structural.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One observation (one `attackers` row) as the identity kernel sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub observation_id: String,
    pub ja3: Option<String>,
    pub hassh: Option<String>,
    pub asn: Option<i64>,
    pub payload_hashes: BTreeSet<String>,
    pub c2_endpoints: BTreeSet<String>,
    pub credentials: BTreeSet<(String, String)>,
    /// UKC phase → ordered commands (repeats kept; the edge function uses them as sets).
    pub commands_by_phase: BTreeMap<String, Vec<String>>,
}

impl Observation {
    /// An observation with only an id (no signal at all).
    pub fn new(observation_id: impl Into<String>) -> Self {
        Self {
            observation_id: observation_id.into(),
            ..Self::default()
        }
    }

    /// Production adapter: project a stored row. Only `asn`, JA3 and HASSH are filled; the other
    /// signals stay empty until log mining feeds them.
    ///
    /// `fingerprints` is the raw column: `None`/JSON null → no entries; a JSON string is decoded
    /// (undecodable → no entries); an array is read entry by entry.
    pub fn from_stored(
        observation_id: &str,
        asn: Option<i64>,
        fingerprints: Option<&Value>,
    ) -> Self {
        let (ja3, hassh) = project_fingerprints(fingerprints);
        Self {
            observation_id: observation_id.to_owned(),
            ja3,
            hassh,
            asn,
            ..Self::default()
        }
    }

    /// Same as [`Observation::from_stored`] for a TEXT column.
    pub fn from_stored_text(
        observation_id: &str,
        asn: Option<i64>,
        fingerprints: Option<&str>,
    ) -> Self {
        let value = fingerprints.map(|s| Value::String(s.to_owned()));
        Self::from_stored(observation_id, asn, value.as_ref())
    }
}

/// Decode a `fingerprints` column into its list of entries. Missing, null, malformed or
/// non-array content yields an empty list; a string is JSON-decoded once.
pub fn fingerprint_entries(fingerprints: Option<&Value>) -> Vec<Value> {
    match fingerprints {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        Some(_) => Vec::new(),
    }
}

/// What the identity tick takes from one `fingerprints` TEXT column, decoded once: the
/// projection's JA3 / HASSH ([`Observation::from_stored_text`]) and the roll-up values
/// ([`super::rollup::rollup_texts`]), each exactly as those functions read the column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedFingerprints {
    pub ja3: Option<String>,
    pub hassh: Option<String>,
    /// `(family index into the roll-up families, value)`, in entry order.
    pub rollup: Vec<(u8, String)>,
}

/// The payload object of a bounty-shape entry, borrowed when it is an object.
fn payload_of(
    entry: &serde_json::Map<String, Value>,
) -> Option<std::borrow::Cow<'_, serde_json::Map<String, Value>>> {
    use std::borrow::Cow;
    match entry.get("payload") {
        Some(Value::Object(map)) => Some(Cow::Borrowed(map)),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Some(Cow::Owned(map)),
            _ => Some(Cow::Owned(serde_json::Map::new())),
        },
        Some(_) => Some(Cow::Owned(serde_json::Map::new())),
        None => None,
    }
}

/// Decode a `fingerprints` TEXT column once (see [`DecodedFingerprints`]).
pub fn decode_fingerprints_text(text: Option<&str>) -> DecodedFingerprints {
    let mut out = DecodedFingerprints::default();
    let Some(text) = text else {
        return out;
    };
    let Ok(Value::Array(entries)) = serde_json::from_str::<Value>(text) else {
        return out;
    };
    for entry in &entries {
        let Value::Object(entry) = entry else {
            continue;
        };
        let payload = payload_of(entry);
        // Projection (same pass as `project_fingerprints`).
        if let Some(Value::String(kind)) = entry.get("kind") {
            let value =
                non_empty_str(entry.get("hash")).or_else(|| non_empty_str(entry.get("value")));
            match (kind.as_str(), value) {
                ("ja3", Some(v)) => out.ja3 = Some(v),
                ("hassh", Some(v)) => out.hassh = Some(v),
                _ => {}
            }
        } else if matches!(entry.get("bounty_type"), Some(Value::String(t)) if t == "fingerprint") {
            if let Some(payload) = payload.as_deref() {
                match payload.get("fingerprint_type") {
                    Some(Value::String(t)) if t == "ja3" => {
                        if let Some(v) = non_empty_str(payload.get("ja3")) {
                            out.ja3 = Some(v);
                        }
                    }
                    Some(Value::String(t)) if t == "hassh_server" => {
                        if let Some(v) = non_empty_str(payload.get("hash")) {
                            out.hassh = Some(v);
                        }
                    }
                    _ => {}
                }
            }
        }
        // Roll-up values (same rule as `rollup::rollup`).
        let source: &serde_json::Map<String, Value> = payload.as_deref().unwrap_or(entry);
        if let Some(Value::String(kind)) = source.get("fingerprint_type") {
            if let Some(family) = super::rollup::family_of(kind) {
                if let Some(Value::String(v)) = source.get(super::rollup::family_key(family)) {
                    if !v.is_empty() {
                        out.rollup.push((family as u8, v.clone()));
                    }
                }
            }
        }
    }
    out
}

/// The payload object of a bounty-shape entry: an object, or a JSON string holding an object.
pub(crate) fn entry_payload(
    entry: &serde_json::Map<String, Value>,
) -> Option<serde_json::Map<String, Value>> {
    match entry.get("payload") {
        Some(Value::Object(map)) => Some(map.clone()),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Some(map),
            _ => Some(serde_json::Map::new()),
        },
        Some(_) => Some(serde_json::Map::new()),
        None => None,
    }
}

fn non_empty_str(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// One left-to-right pass over the entries accepting both the legacy `{kind, hash|value}` shape
/// and the production bounty shape; the last matching entry per slot wins (spec §3.1,
/// Recommended dual reader).
fn project_fingerprints(fingerprints: Option<&Value>) -> (Option<String>, Option<String>) {
    let mut ja3 = None;
    let mut hassh = None;
    for entry in fingerprint_entries(fingerprints) {
        let Value::Object(entry) = entry else {
            continue;
        };
        if let Some(Value::String(kind)) = entry.get("kind") {
            let value =
                non_empty_str(entry.get("hash")).or_else(|| non_empty_str(entry.get("value")));
            match (kind.as_str(), value) {
                ("ja3", Some(v)) => ja3 = Some(v),
                ("hassh", Some(v)) => hassh = Some(v),
                _ => {}
            }
            continue;
        }
        let is_bounty =
            matches!(entry.get("bounty_type"), Some(Value::String(t)) if t == "fingerprint");
        if !is_bounty {
            continue;
        }
        let Some(payload) = entry_payload(&entry) else {
            continue;
        };
        match payload.get("fingerprint_type") {
            Some(Value::String(t)) if t == "ja3" => {
                if let Some(v) = non_empty_str(payload.get("ja3")) {
                    ja3 = Some(v);
                }
            }
            Some(Value::String(t)) if t == "hassh_server" => {
                if let Some(v) = non_empty_str(payload.get("hash")) {
                    hassh = Some(v);
                }
            }
            _ => {}
        }
    }
    (ja3, hassh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn legacy_kind_entries_are_recovered() {
        let fp = json!([{"kind": "ja3", "hash": "J"}, {"kind": "hassh", "hash": "", "value": "H"}]);
        let o = Observation::from_stored("a", Some(1), Some(&fp));
        assert_eq!(o.ja3.as_deref(), Some("J"));
        assert_eq!(o.hassh.as_deref(), Some("H"));
        assert_eq!(o.asn, Some(1));
    }

    #[test]
    fn bounty_entries_are_recovered_including_string_payloads() {
        let fp = json!([
            {"bounty_type": "fingerprint", "payload": {"fingerprint_type": "ja3", "ja3": "J"}},
            {"bounty_type": "fingerprint", "payload": "{\"fingerprint_type\": \"hassh_server\", \"hash\": \"H\"}"},
        ]);
        let o = Observation::from_stored("a", None, Some(&fp));
        assert_eq!(o.ja3.as_deref(), Some("J"));
        assert_eq!(o.hassh.as_deref(), Some("H"));
    }

    #[test]
    fn last_matching_entry_wins_across_shapes() {
        let fp = json!([
            {"kind": "ja3", "hash": "first"},
            {"bounty_type": "fingerprint", "payload": {"fingerprint_type": "ja3", "ja3": "second"}},
            {"bounty_type": "fingerprint", "payload": {"fingerprint_type": "ja3", "ja3": ""}},
        ]);
        let o = Observation::from_stored("a", None, Some(&fp));
        assert_eq!(o.ja3.as_deref(), Some("second"));
    }

    #[test]
    fn text_column_is_decoded_and_garbage_gives_nulls() {
        let o = Observation::from_stored_text("a", None, Some(r#"[{"kind":"hassh","hash":"H"}]"#));
        assert_eq!(o.hassh.as_deref(), Some("H"));
        for bad in ["not json", "{}", "[1, \"x\", null]", "[]", ""] {
            let o = Observation::from_stored_text("a", None, Some(bad));
            assert_eq!((o.ja3, o.hassh), (None, None), "{bad}");
        }
        let o = Observation::from_stored("a", None, None);
        assert_eq!((o.ja3, o.hassh), (None, None));
    }

    /// Decoding a column once gives exactly what the projection and the roll-up each read
    /// from it separately.
    #[test]
    fn decoding_once_matches_projection_and_rollup() {
        let inputs = [
            None,
            Some(String::new()),
            Some("not json".to_owned()),
            Some("{}".to_owned()),
            Some("\"[]\"".to_owned()),
            Some("[1, \"x\", null, []]".to_owned()),
            Some(
                json!([
                    {"kind": "ja3", "hash": "J"},
                    {"kind": "hassh", "hash": "", "value": "H"},
                    {"kind": "ja3", "payload": {"fingerprint_type": "ja3", "ja3": "kp"}},
                    {"kind": "tls", "fingerprint_type": "ja4h", "ja4h": "flat"},
                    {"bounty_type": "fingerprint", "payload": {"fingerprint_type": "ja3", "ja3": "second"}},
                    {"bounty_type": "fingerprint", "payload": {"fingerprint_type": "ja3", "ja3": ""}},
                    {"bounty_type": "fingerprint", "payload": "{\"fingerprint_type\": \"hassh_server\", \"hash\": \"HS\"}"},
                    {"bounty_type": "fingerprint", "payload": "{not json"},
                    {"bounty_type": "fingerprint", "payload": 7},
                    {"bounty_type": "fingerprint"},
                    {"bounty_type": "other", "payload": {"fingerprint_type": "ja3", "ja3": "notbounty"}},
                    {"payload": {"fingerprint_type": "tls_certificate", "cert_sha256": "c1"}},
                    {"fingerprint_type": "hassh_server", "hash": "flat-h"},
                    {"fingerprint_type": "ja4_quic", "ja4_quic": "q"},
                    {"bounty_type": "fingerprint", "payload": {"fingerprint_type": "ja3", "ja3": 42}},
                    {"bounty_type": "fingerprint", "payload": {"fingerprint_type": 7, "ja3": "x"}},
                    {"bounty_type": "fingerprint", "payload": {"fingerprint_type": "tcpfp", "hash": "t"}},
                    {"bounty_type": "fingerprint", "payload": {"fingerprint_type": "hassh_server", "hash": "H2"}},
                ])
                .to_string(),
            ),
        ];
        for text in &inputs {
            let text = text.as_deref();
            let decoded = decode_fingerprints_text(text);
            let o = Observation::from_stored_text("a", None, text);
            assert_eq!(
                (&decoded.ja3, &decoded.hassh),
                (&o.ja3, &o.hassh),
                "{text:?}"
            );
            assert_eq!(
                crate::domain::clustering::rollup::rollup_decoded([decoded.rollup.as_slice()]),
                crate::domain::clustering::rollup::rollup_texts([text]),
                "{text:?}"
            );
        }
    }

    #[test]
    fn projection_has_no_time_field() {
        // Invariant 1, structurally: the serialised projection names no time-like field.
        let value = serde_json::to_value(Observation::new("x")).unwrap_or_default();
        let keys: Vec<&String> = value
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys.len(), 8);
        for key in keys {
            for banned in ["time", "ts", "seen", "at", "date", "start", "end"] {
                assert!(
                    !key.split('_').any(|part| part == banned),
                    "{key} looks temporal"
                );
            }
        }
    }
}

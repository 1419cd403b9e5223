//! Fingerprint roll-up onto an identity (spec §3.6) and the keystroke centroid.
//!
//! Every list column is de-duplicated and sorted; a family with no value is `None` (stored as
//! SQL NULL, "no signal yet"), never an empty list. Lists are encoded as compact JSON arrays
//! (`["a","b"]`) — one encoding, byte-stable for the same input.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::observation::{entry_payload, fingerprint_entries};

/// The five roll-up families. The tick writes the first three (plus the centroid).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FingerprintRollup {
    pub ja3_hashes: Option<Vec<String>>,
    pub hassh_hashes: Option<Vec<String>>,
    pub tls_cert_sha256: Option<Vec<String>>,
    pub ja4h_hashes: Option<Vec<String>>,
    pub ja4_quic_hashes: Option<Vec<String>>,
}

/// `(fingerprint_type, payload key)` per family, in column order.
const FAMILIES: [(&str, &str); 5] = [
    ("ja3", "ja3"),
    ("hassh_server", "hash"),
    ("tls_certificate", "cert_sha256"),
    ("ja4h", "ja4h"),
    ("ja4_quic", "ja4_quic"),
];

/// The family index of a `fingerprint_type`.
pub(crate) fn family_of(kind: &str) -> Option<usize> {
    FAMILIES.iter().position(|(t, _)| *t == kind)
}

/// The payload key holding the value of family `family`.
pub(crate) fn family_key(family: usize) -> &'static str {
    FAMILIES[family].1
}

/// [`rollup_texts`] over columns already decoded ([`DecodedFingerprints::rollup`] of each
/// member row).
///
/// [`DecodedFingerprints::rollup`]: super::observation::DecodedFingerprints
pub fn rollup_decoded<'a, I>(rows: I) -> FingerprintRollup
where
    I: IntoIterator<Item = &'a [(u8, String)]>,
{
    let mut sets: [BTreeSet<&'a str>; 5] = Default::default();
    for values in rows {
        for (family, v) in values {
            sets[usize::from(*family)].insert(v.as_str());
        }
    }
    from_lists(sets.map(|s| (!s.is_empty()).then(|| s.into_iter().map(str::to_owned).collect())))
}

/// The roll-up of the five families' lists, in [`FAMILIES`] order.
fn from_lists(lists: [Option<Vec<String>>; 5]) -> FingerprintRollup {
    let [ja3, hassh, tls, ja4h, ja4_quic] = lists;
    FingerprintRollup {
        ja3_hashes: ja3,
        hassh_hashes: hassh,
        tls_cert_sha256: tls,
        ja4h_hashes: ja4h,
        ja4_quic_hashes: ja4_quic,
    }
}

/// Encode one list column: `None` stays NULL, a list becomes a compact JSON array.
pub fn encode_list(list: Option<&[String]>) -> Option<String> {
    list.map(|items| {
        let values: Vec<Value> = items.iter().cloned().map(Value::String).collect();
        Value::Array(values).to_string()
    })
}

impl FingerprintRollup {
    pub fn ja3_json(&self) -> Option<String> {
        encode_list(self.ja3_hashes.as_deref())
    }
    pub fn hassh_json(&self) -> Option<String> {
        encode_list(self.hassh_hashes.as_deref())
    }
    pub fn tls_cert_json(&self) -> Option<String> {
        encode_list(self.tls_cert_sha256.as_deref())
    }
}

/// Roll the `fingerprints` columns of an identity's member rows up into list columns.
/// Each item is the raw column (`None`/null, a JSON array, or a JSON-encoded string).
pub fn rollup<'a, I>(rows: I) -> FingerprintRollup
where
    I: IntoIterator<Item = Option<&'a Value>>,
{
    let mut sets: [BTreeSet<String>; 5] = Default::default();
    for column in rows {
        for entry in fingerprint_entries(column) {
            let Value::Object(entry) = entry else {
                continue;
            };
            let payload = entry_payload(&entry).unwrap_or(entry);
            let Some(Value::String(kind)) = payload.get("fingerprint_type") else {
                continue;
            };
            let Some(family) = family_of(kind) else {
                continue;
            };
            if let Some(Value::String(v)) = payload.get(family_key(family)) {
                if !v.is_empty() {
                    sets[family].insert(v.clone());
                }
            }
        }
    }
    from_lists(sets.map(|s| (!s.is_empty()).then(|| s.into_iter().collect())))
}

/// Same as [`rollup`] over TEXT columns.
pub fn rollup_texts<'a, I>(rows: I) -> FingerprintRollup
where
    I: IntoIterator<Item = Option<&'a str>>,
{
    let values: Vec<Option<Value>> = rows
        .into_iter()
        .map(|t| t.map(|s| Value::String(s.to_owned())))
        .collect();
    rollup(values.iter().map(Option::as_ref))
}

/// Parse one stored keystroke SimHash: exactly 16 hex characters.
pub fn parse_simhash_hex(value: &str) -> Option<u64> {
    if value.len() != 16 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(value, 16).ok()
}

/// Majority-vote centroid of `motor.digraph_simhash` values: bit *i* is set iff strictly more
/// than half of the usable hashes set it (ties → 0). Non-hex or wrong-length values are skipped;
/// no usable value → `None`. Returned as 8 big-endian bytes.
pub fn kd_centroid<'a, I>(values: I) -> Option<[u8; 8]>
where
    I: IntoIterator<Item = &'a str>,
{
    let hashes: Vec<u64> = values.into_iter().filter_map(parse_simhash_hex).collect();
    if hashes.is_empty() {
        return None;
    }
    let mut centroid = 0u64;
    for bit in 0..64 {
        let ones = hashes.iter().filter(|h| (*h >> bit) & 1 == 1).count();
        if 2 * ones > hashes.len() {
            centroid |= 1 << bit;
        }
    }
    Some(centroid.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bounty(t: &str, key: &str, v: &str) -> Value {
        json!({"bounty_type": "fingerprint", "payload": {"fingerprint_type": t, key: v}})
    }

    #[test]
    fn empty_input_gives_null_columns_not_empty_lists() {
        let r = rollup(std::iter::empty());
        assert_eq!(r, FingerprintRollup::default());
        assert_eq!(r.ja3_json(), None);
        let r = rollup([
            None,
            Some(&json!([])),
            Some(&json!("garbage")),
            Some(&json!({"no": "list"})),
        ]);
        assert_eq!(r, FingerprintRollup::default());
    }

    #[test]
    fn dedupes_sorts_and_reads_every_family() {
        let a = json!([
            bounty("ja3", "ja3", "zz"),
            bounty("hassh_server", "hash", "h1"),
            bounty("tls_certificate", "cert_sha256", "c2"),
        ]);
        let b = Value::String(
            json!([
                bounty("ja3", "ja3", "aa"),
                bounty("ja3", "ja3", "zz"),
                bounty("tls_certificate", "cert_sha256", "c1"),
                bounty("ja4h", "ja4h", "x"),
                bounty("ja4_quic", "ja4_quic", "q"),
            ])
            .to_string(),
        );
        let r = rollup([Some(&a), Some(&b), None]);
        assert_eq!(r.ja3_hashes, Some(vec!["aa".to_owned(), "zz".to_owned()]));
        assert_eq!(r.hassh_hashes, Some(vec!["h1".to_owned()]));
        assert_eq!(
            r.tls_cert_sha256,
            Some(vec!["c1".to_owned(), "c2".to_owned()])
        );
        assert_eq!(r.ja4h_hashes, Some(vec!["x".to_owned()]));
        assert_eq!(r.ja4_quic_hashes, Some(vec!["q".to_owned()]));
        assert_eq!(r.ja3_json().as_deref(), Some(r#"["aa","zz"]"#));
        // Repeatable and order-independent.
        assert_eq!(rollup([Some(&b), Some(&a)]), r);
    }

    #[test]
    fn skips_unknown_types_missing_keys_and_non_strings() {
        let rows = json!([
            {"bounty_type": "fingerprint", "payload": {"fingerprint_type": "tcpfp", "hash": "t"}},
            {"bounty_type": "fingerprint", "payload": {"fingerprint_type": "ja3"}},
            {"bounty_type": "fingerprint", "payload": {"fingerprint_type": "ja3", "ja3": 42}},
            {"bounty_type": "fingerprint", "payload": {"fingerprint_type": "ja3", "ja3": ""}},
            {"bounty_type": "fingerprint", "payload": {"fingerprint_type": 7, "ja3": "x"}},
            {"bounty_type": "fingerprint", "payload": "{not json"},
            "not an object",
            {"fingerprint_type": "hassh_server", "hash": "flat"},
            {"bounty_type": "fingerprint", "payload": "{\"fingerprint_type\": \"ja3\", \"ja3\": \"s\"}"},
        ]);
        let r = rollup([Some(&rows)]);
        assert_eq!(r.ja3_hashes, Some(vec!["s".to_owned()]));
        assert_eq!(
            r.hassh_hashes,
            Some(vec!["flat".to_owned()]),
            "legacy flattened entry"
        );
        assert_eq!(r.tls_cert_sha256, None);
        assert_eq!(rollup_texts([Some(rows.to_string().as_str())]), r);
    }

    #[test]
    fn keystroke_centroid() {
        assert_eq!(kd_centroid([]), None);
        assert_eq!(kd_centroid(["zz", "123"]), None, "garbage skipped");
        assert_eq!(
            kd_centroid(["00000000000000ff"]),
            Some(0xffu64.to_be_bytes())
        );
        // Majority per bit: bit0 in 2/3, bit1 in 1/3.
        let c = kd_centroid([
            "0000000000000001",
            "0000000000000003",
            "0000000000000001",
            "not-hex-at-all!!",
        ]);
        assert_eq!(c, Some(1u64.to_be_bytes()));
        // Tie → 0.
        assert_eq!(
            kd_centroid(["8000000000000000", "0000000000000000"]),
            Some([0; 8])
        );
    }
}

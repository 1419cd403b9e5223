//! abuse.ch ThreatFox (`POST /api/v1/` `{"query":"search_ioc","search_term":ip}`) → columns.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{MapError, Verdict};

/// The `threatfox_*` columns one successful lookup writes (plus `threatfox_queried_at`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Columns {
    pub listed: bool,
    pub threat_types: Vec<String>,
    pub ioc_types: Vec<String>,
    pub malware_families: Vec<String>,
    /// The match list when `query_status` is `ok`, `{}` for `no_result`.
    pub raw: Value,
}

impl Columns {
    /// Listed → malicious; not listed → no opinion.
    pub fn verdict(&self) -> Option<Verdict> {
        self.listed.then_some(Verdict::Malicious)
    }
}

/// The request body for one IP.
pub fn request_body(ip: &str) -> Value {
    json!({"query": "search_ioc", "search_term": ip})
}

/// Map a 200 body. `no_result` → not listed; `ok` → the `data` match list (must be a list or
/// absent/null); any other `query_status` → [`MapError::QueryStatus`].
pub fn map(body: &Value) -> Result<Columns, MapError> {
    let obj = body
        .as_object()
        .ok_or_else(|| MapError::Parse("threatfox body is not a JSON object".into()))?;
    let status = match obj.get("query_status") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(MapError::QueryStatus(other.to_string())),
        None => return Err(MapError::Parse("threatfox body has no query_status".into())),
    };
    match status {
        "no_result" => Ok(Columns {
            listed: false,
            threat_types: Vec::new(),
            ioc_types: Vec::new(),
            malware_families: Vec::new(),
            raw: json!({}),
        }),
        "ok" => {
            let matches: Vec<Value> = match obj.get("data") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items.clone(),
                Some(other) => {
                    return Err(MapError::Parse(format!(
                        "threatfox data is not a list: {}",
                        truncate(&other.to_string(), 80)
                    )))
                }
            };
            let mut threat_types = BTreeSet::new();
            let mut ioc_types = BTreeSet::new();
            let mut families = BTreeSet::new();
            for m in matches.iter().filter_map(Value::as_object) {
                let text = |k: &str| {
                    m.get(k)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                };
                threat_types.extend(text("threat_type"));
                ioc_types.extend(text("ioc_type"));
                families.extend(text("malware").or_else(|| text("malware_printable")));
            }
            Ok(Columns {
                listed: !matches.is_empty(),
                threat_types: threat_types.into_iter().collect(),
                ioc_types: ioc_types.into_iter().collect(),
                malware_families: families.into_iter().collect(),
                raw: Value::Array(matches),
            })
        }
        other => Err(MapError::QueryStatus(truncate(other, 64))),
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_flattens_taxonomy_sorted_unique() {
        let body = json!({"query_status": "ok", "data": [
            {"id": "41", "ioc": "139.180.203.104:443", "threat_type": "botnet_cc",
             "ioc_type": "ip:port", "malware": "win.cobalt_strike",
             "malware_printable": "Cobalt Strike", "confidence_level": 75},
            {"id": "42", "ioc": "139.180.203.104:80", "threat_type": "payload_delivery",
             "ioc_type": "ip:port", "malware": "", "malware_printable": "Unknown malware"},
            {"id": "43", "threat_type": "botnet_cc", "ioc_type": "url",
             "malware": "elf.mirai"},
            "ignored"
        ]});
        let c = map(&body).unwrap();
        assert!(c.listed);
        assert_eq!(c.verdict(), Some(Verdict::Malicious));
        assert_eq!(c.threat_types, vec!["botnet_cc", "payload_delivery"]);
        assert_eq!(c.ioc_types, vec!["ip:port", "url"]);
        assert_eq!(
            c.malware_families,
            vec!["Unknown malware", "elf.mirai", "win.cobalt_strike"]
        );
        assert_eq!(c.raw, body["data"]);
        assert_eq!(c.raw[0]["malware"], "win.cobalt_strike");
    }

    #[test]
    fn no_result_is_unlisted_no_opinion() {
        let body = json!({"query_status": "no_result",
                          "data": "Your search did not yield any results"});
        let c = map(&body).unwrap();
        assert!(!c.listed);
        assert_eq!(c.verdict(), None);
        assert!(c.threat_types.is_empty() && c.ioc_types.is_empty());
        assert!(c.malware_families.is_empty());
        assert_eq!(c.raw, json!({}));
    }

    #[test]
    fn ok_with_empty_or_null_data_is_unlisted() {
        for body in [
            json!({"query_status": "ok", "data": []}),
            json!({"query_status": "ok", "data": null}),
            json!({"query_status": "ok"}),
        ] {
            let c = map(&body).unwrap();
            assert!(!c.listed);
            assert_eq!(c.verdict(), None);
            assert_eq!(c.raw, json!([]));
        }
    }

    #[test]
    fn unexpected_status_is_a_query_status_error() {
        let err = map(&json!({"query_status": "illegal_search_term"})).unwrap_err();
        assert_eq!(err, MapError::QueryStatus("illegal_search_term".into()));
        assert_eq!(err.to_string(), "query_status=illegal_search_term");
        assert!(matches!(
            map(&json!({"query_status": "unknown_auth_key"})),
            Err(MapError::QueryStatus(_))
        ));
        assert!(matches!(
            map(&json!({"query_status": 1})),
            Err(MapError::QueryStatus(_))
        ));
    }

    #[test]
    fn malformed_bodies_are_parse_errors() {
        for body in [
            json!([]),
            json!({}),
            json!({"query_status": "ok", "data": {"id": 1}}),
            json!({"query_status": "ok", "data": "text"}),
        ] {
            assert!(matches!(map(&body), Err(MapError::Parse(_))), "{body}");
        }
    }

    #[test]
    fn request_body_shape() {
        assert_eq!(
            request_body("1.2.3.4"),
            json!({"query": "search_ioc", "search_term": "1.2.3.4"})
        );
    }
}

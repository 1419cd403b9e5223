//! GreyNoise Community API (`GET /v3/community/{ip}`): 200 body → columns; 404 → "not seen".

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{clip, MapError, Verdict, GREYNOISE_CLASSIFICATION_MAX, GREYNOISE_NAME_MAX};

/// The `greynoise_*` columns one successful lookup writes (plus `greynoise_queried_at`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Columns {
    /// Lower-cased `classification` (default `unknown`); stored verbatim even when it is not
    /// one of the four verdict words.
    pub classification: String,
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub raw: Value,
}

impl Columns {
    /// The classification as a verdict: one of the four words, anything else → `unknown`.
    pub fn verdict(&self) -> Verdict {
        classification_verdict(&self.classification)
    }
}

/// Classification → verdict (four words map to themselves, anything else → unknown).
pub fn classification_verdict(classification: &str) -> Verdict {
    Verdict::from_word(classification).unwrap_or(Verdict::Unknown)
}

/// Map a 200 body. The body must be a JSON object.
pub fn map_found(body: &Value) -> Result<Columns, MapError> {
    let obj = body
        .as_object()
        .ok_or_else(|| MapError::Parse("greynoise body is not a JSON object".into()))?;
    let classification = match obj.get("classification") {
        Some(Value::String(s)) if !s.is_empty() => {
            clip(&s.to_lowercase(), GREYNOISE_CLASSIFICATION_MAX)
        }
        None | Some(Value::Null) | Some(Value::String(_)) => "unknown".to_owned(),
        Some(other) => {
            return Err(MapError::Parse(format!(
                "greynoise classification is not a string: {other}"
            )))
        }
    };
    let name = match obj.get("name") {
        Some(Value::String(s)) if !s.is_empty() => Some(clip(s, GREYNOISE_NAME_MAX)),
        _ => None,
    };
    let tags = match obj.get("tags") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Columns {
        classification,
        name,
        tags,
        raw: body.clone(),
    })
}

/// A 404: the IP was not observed by GreyNoise. Not an error — verdict `unknown`.
pub fn not_seen() -> Columns {
    Columns {
        classification: "unknown".to_owned(),
        name: None,
        tags: Vec::new(),
        raw: json!({"message": "not seen"}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malicious_mapping_keeps_name_tags_and_raw() {
        let body = json!({
            "ip": "45.83.64.1", "noise": true, "riot": false,
            "classification": "MALICIOUS", "name": "Mirai",
            "tags": ["Mirai", 7, "SSH Bruteforcer", null],
            "link": "https://viz.greynoise.io/ip/45.83.64.1", "last_seen": "2026-11-20"
        });
        let c = map_found(&body).unwrap();
        assert_eq!(c.classification, "malicious");
        assert_eq!(c.verdict(), Verdict::Malicious);
        assert_eq!(c.name.as_deref(), Some("Mirai"));
        assert_eq!(c.tags, vec!["Mirai", "SSH Bruteforcer"]);
        assert_eq!(c.raw, body);
    }

    #[test]
    fn benign_and_suspicious_map_to_themselves() {
        for word in ["benign", "suspicious", "unknown"] {
            let c = map_found(&json!({"classification": word, "name": "Censys"})).unwrap();
            assert_eq!(c.verdict().as_str(), word);
        }
    }

    #[test]
    fn missing_empty_or_odd_classification_is_unknown() {
        for body in [
            json!({}),
            json!({"classification": null}),
            json!({"classification": ""}),
        ] {
            let c = map_found(&body).unwrap();
            assert_eq!(c.classification, "unknown");
            assert_eq!(c.verdict(), Verdict::Unknown);
        }
        let c = map_found(&json!({"classification": "Noise"})).unwrap();
        assert_eq!(c.classification, "noise", "stored verbatim, lower-cased");
        assert_eq!(c.verdict(), Verdict::Unknown);
    }

    #[test]
    fn empty_or_non_string_name_is_null_and_non_list_tags_empty() {
        let c = map_found(&json!({"name": "", "tags": "scanner"})).unwrap();
        assert_eq!(c.name, None);
        assert!(c.tags.is_empty());
        let c = map_found(&json!({"name": 5})).unwrap();
        assert_eq!(c.name, None);
    }

    #[test]
    fn non_object_body_or_bad_classification_type_is_a_parse_error() {
        for body in [
            json!([]),
            json!("x"),
            json!(null),
            json!({"classification": 3}),
        ] {
            assert!(
                matches!(map_found(&body), Err(MapError::Parse(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn overlong_strings_are_clipped_to_the_column_width() {
        let long = "x".repeat(500);
        let c = map_found(&json!({"classification": long, "name": long})).unwrap();
        assert_eq!(c.classification.len(), GREYNOISE_CLASSIFICATION_MAX);
        assert_eq!(c.name.unwrap().len(), GREYNOISE_NAME_MAX);
        assert_eq!(
            c.raw["name"].as_str().unwrap().len(),
            500,
            "raw keeps the original"
        );
    }

    #[test]
    fn not_seen_shape() {
        let c = not_seen();
        assert_eq!(c.classification, "unknown");
        assert_eq!(c.verdict(), Verdict::Unknown);
        assert_eq!(c.name, None);
        assert!(c.tags.is_empty());
        assert_eq!(c.raw, json!({"message": "not seen"}));
    }
}

//! AbuseIPDB (`GET /api/v2/check?ipAddress={ip}&maxAgeInDays=30`): 200 body → columns.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{MapError, Verdict};

/// Score at or above which the verdict is `malicious`.
pub const MALICIOUS_AT: i32 = 75;
/// Score at or above which (and below [`MALICIOUS_AT`]) the verdict is `suspicious`.
pub const SUSPICIOUS_AT: i32 = 25;

/// The `abuseipdb_*` columns one successful lookup writes (plus `abuseipdb_queried_at`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Columns {
    /// `abuseConfidenceScore`, 0–100.
    pub score: i32,
    /// Sorted union of the integer category codes over `data.reports[*].categories`.
    pub categories: Vec<i64>,
    /// The `data` object.
    pub raw: Value,
}

impl Columns {
    pub fn verdict(&self) -> Verdict {
        score_verdict(self.score)
    }
}

/// ≥75 malicious, 25–74 suspicious, <25 benign.
pub fn score_verdict(score: i32) -> Verdict {
    if score >= MALICIOUS_AT {
        Verdict::Malicious
    } else if score >= SUSPICIOUS_AT {
        Verdict::Suspicious
    } else {
        Verdict::Benign
    }
}

/// Map a 200 body `{"data": {...}}`. `data` must be an object; a missing/null score counts
/// as 0; a score that is not a number in 0–100 is a parse error.
pub fn map(body: &Value) -> Result<Columns, MapError> {
    let data = body
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| MapError::Parse("abuseipdb body has no `data` object".into()))?;
    let score = parse_score(data.get("abuseConfidenceScore"))?;
    let categories: BTreeSet<i64> = data
        .get("reports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("categories").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_i64)
        .collect();
    Ok(Columns {
        score,
        categories: categories.into_iter().collect(),
        raw: Value::Object(data.clone()),
    })
}

fn parse_score(v: Option<&Value>) -> Result<i32, MapError> {
    let n: f64 = match v {
        None | Some(Value::Null) => 0.0,
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| MapError::Parse("abuseConfidenceScore is not finite".into()))?,
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| MapError::Parse(format!("abuseConfidenceScore {s:?} is not a number")))?,
        Some(other) => {
            return Err(MapError::Parse(format!(
                "abuseConfidenceScore has the wrong type: {other}"
            )))
        }
    };
    if !(0.0..=100.0).contains(&n) {
        return Err(MapError::Parse(format!(
            "abuseConfidenceScore {n} outside 0-100"
        )));
    }
    // In range, so the truncating cast is exact for integers and floors fractions.
    Ok(n.trunc() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn thresholds() {
        for (score, want) in [
            (0, Verdict::Benign),
            (24, Verdict::Benign),
            (25, Verdict::Suspicious),
            (74, Verdict::Suspicious),
            (75, Verdict::Malicious),
            (100, Verdict::Malicious),
        ] {
            let c = map(&json!({"data": {"abuseConfidenceScore": score}})).unwrap();
            assert_eq!(c.score, score);
            assert_eq!(c.verdict(), want, "score {score}");
        }
    }

    #[test]
    fn categories_are_the_sorted_union_of_integer_codes() {
        let body = json!({"data": {
            "ipAddress": "1.2.3.4", "abuseConfidenceScore": 90, "totalReports": 3,
            "reports": [
                {"categories": [22, 18], "comment": "ssh"},
                {"categories": [18, 14, "x", 3.5]},
                {"comment": "no categories"},
                "not an object"
            ]
        }});
        let c = map(&body).unwrap();
        assert_eq!(c.categories, vec![14, 18, 22]);
        assert_eq!(c.raw, body["data"]);
    }

    #[test]
    fn no_reports_gives_empty_categories() {
        let c = map(&json!({"data": {"abuseConfidenceScore": 0}})).unwrap();
        assert!(c.categories.is_empty());
        let c = map(&json!({"data": {"abuseConfidenceScore": 0, "reports": null}})).unwrap();
        assert!(c.categories.is_empty());
    }

    #[test]
    fn missing_or_null_score_is_zero_and_numeric_strings_accepted() {
        assert_eq!(map(&json!({"data": {}})).unwrap().score, 0);
        assert_eq!(
            map(&json!({"data": {"abuseConfidenceScore": null}}))
                .unwrap()
                .score,
            0
        );
        assert_eq!(
            map(&json!({"data": {"abuseConfidenceScore": "80"}}))
                .unwrap()
                .score,
            80
        );
        assert_eq!(
            map(&json!({"data": {"abuseConfidenceScore": 74.9}}))
                .unwrap()
                .score,
            74
        );
    }

    #[test]
    fn malformed_bodies_are_parse_errors() {
        for body in [
            json!([]),
            json!({}),
            json!({"data": null}),
            json!({"data": []}),
            json!({"errors": [{"detail": "bad key"}]}),
            json!({"data": {"abuseConfidenceScore": 101}}),
            json!({"data": {"abuseConfidenceScore": -1}}),
            json!({"data": {"abuseConfidenceScore": "high"}}),
            json!({"data": {"abuseConfidenceScore": true}}),
        ] {
            assert!(matches!(map(&body), Err(MapError::Parse(_))), "{body}");
        }
    }
}

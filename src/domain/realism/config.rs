//! Planner weights and live-config validation (realism.md §4.4).
//!
//! [`validate_payload`] checks every field of an operator payload independently and reports
//! accepted values, dropped entries and per-field errors. [`RealismWeights::apply_payload`]
//! is all-or-nothing on top of it: any field error rejects the whole payload and leaves the
//! live values untouched (no torn state).

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::classes::{ClassFamily, ContentClass};

/// Default probability that a file plan is a canary.
pub const DEFAULT_CANARY_PROBABILITY: f64 = 0.03;

/// One `{"content_class", "weight"}` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassWeight {
    pub content_class: ContentClass,
    pub weight: u32,
}

impl ClassWeight {
    pub const fn new(content_class: ContentClass, weight: u32) -> Self {
        ClassWeight {
            content_class,
            weight,
        }
    }
}

/// The planner's live knobs. Invariant (kept by every constructor and by validation): each
/// list only holds classes of its family, is non-empty and has a positive total weight;
/// `canary_probability` is in `[0, 1]`. Build one from untrusted JSON only through
/// [`RealismWeights::merged`] / [`RealismWeights::apply_payload`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RealismWeights {
    pub user_class_weights: Vec<ClassWeight>,
    pub system_class_weights: Vec<ClassWeight>,
    pub canary_class_weights: Vec<ClassWeight>,
    pub canary_probability: f64,
}

impl Default for RealismWeights {
    fn default() -> Self {
        let user = [30, 20, 15, 10];
        let system = [12, 8, 5];
        RealismWeights {
            user_class_weights: ContentClass::USER
                .iter()
                .zip(user)
                .map(|(c, w)| ClassWeight::new(*c, w))
                .collect(),
            system_class_weights: ContentClass::SYSTEM
                .iter()
                .zip(system)
                .map(|(c, w)| ClassWeight::new(*c, w))
                .collect(),
            canary_class_weights: ContentClass::CANARY
                .iter()
                .map(|c| ClassWeight::new(*c, 1))
                .collect(),
            canary_probability: DEFAULT_CANARY_PROBABILITY,
        }
    }
}

/// The four payload keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigField {
    UserClassWeights,
    SystemClassWeights,
    CanaryClassWeights,
    CanaryProbability,
}

impl ConfigField {
    pub const fn as_str(self) -> &'static str {
        match self {
            ConfigField::UserClassWeights => "user_class_weights",
            ConfigField::SystemClassWeights => "system_class_weights",
            ConfigField::CanaryClassWeights => "canary_class_weights",
            ConfigField::CanaryProbability => "canary_probability",
        }
    }

    const fn family(self) -> Option<ClassFamily> {
        match self {
            ConfigField::UserClassWeights => Some(ClassFamily::User),
            ConfigField::SystemClassWeights => Some(ClassFamily::System),
            ConfigField::CanaryClassWeights => Some(ClassFamily::Canary),
            ConfigField::CanaryProbability => None,
        }
    }
}

/// A validation failure of one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", field.as_str())]
pub struct FieldError {
    pub field: ConfigField,
    pub message: String,
}

/// Outcome of validating a payload field by field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PayloadValidation {
    pub user_class_weights: Option<Vec<ClassWeight>>,
    pub system_class_weights: Option<Vec<ClassWeight>>,
    pub canary_class_weights: Option<Vec<ClassWeight>>,
    pub canary_probability: Option<f64>,
    /// Known classes posted on the wrong list, silently dropped (wire values).
    pub dropped: Vec<String>,
    pub errors: Vec<FieldError>,
}

/// Why a payload was rejected as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("body must be an object")]
    NotAnObject,
    #[error("{}", join_errors(.0))]
    Invalid(Vec<FieldError>),
}

fn join_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 64 {
        format!("{}…", s.chars().take(64).collect::<String>())
    } else {
        s
    }
}

/// Parse one weights list for `family`: `Ok((weights, dropped))` or the first error.
fn parse_weights(
    raw: &Value,
    family: ClassFamily,
) -> Result<(Vec<ClassWeight>, Vec<String>), String> {
    let items = raw.as_array().ok_or("weights must be a list")?;
    let mut out = Vec::with_capacity(items.len());
    let mut dropped = Vec::new();
    for entry in items {
        let obj = entry
            .as_object()
            .ok_or("each weight entry must be an object")?;
        let class_name = match obj.get("content_class") {
            Some(Value::String(s)) => s.as_str(),
            other => {
                return Err(format!(
                    "content_class must be a string, got {}",
                    other.map_or_else(|| "nothing".to_owned(), describe)
                ))
            }
        };
        let weight = obj
            .get("weight")
            .filter(|w| !w.is_boolean())
            .and_then(integral_u64)
            .and_then(|w| u32::try_from(w).ok())
            .ok_or_else(|| {
                format!(
                    "weight for {class_name:?} must be a non-negative integer (at most {})",
                    u32::MAX
                )
            })?;
        let class: ContentClass = class_name
            .parse()
            .map_err(|e: super::classes::UnknownContentClass| e.to_string())?;
        if class.family() != family {
            dropped.push(class.as_str().to_owned());
            continue;
        }
        out.push(ClassWeight::new(class, weight));
    }
    if out.is_empty() {
        return Err("weights list resolved to zero valid entries".to_owned());
    }
    if out.iter().map(|w| u64::from(w.weight)).sum::<u64>() == 0 {
        return Err("weights must sum to a positive number".to_owned());
    }
    Ok((out, dropped))
}

/// A JSON integer, including one written with a zero fraction (`30.0`): JSON Schema calls
/// both integers.
pub fn integral_u64(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    })
}

fn parse_probability(raw: &Value) -> Result<f64, String> {
    match raw {
        Value::Number(n) => n
            .as_f64()
            .filter(|p| (0.0..=1.0).contains(p))
            .ok_or_else(|| format!("canary_probability must be in [0.0, 1.0], got {n}")),
        other => Err(format!(
            "canary_probability must be a number in [0.0, 1.0], got {}",
            describe(other)
        )),
    }
}

/// Validate every present field of `payload` independently. Absent and unknown keys are
/// ignored. Only a non-object payload is an error here.
pub fn validate_payload(payload: &Value) -> Result<PayloadValidation, ConfigError> {
    let obj: &Map<String, Value> = payload.as_object().ok_or(ConfigError::NotAnObject)?;
    let mut v = PayloadValidation::default();
    for field in [
        ConfigField::UserClassWeights,
        ConfigField::SystemClassWeights,
        ConfigField::CanaryClassWeights,
    ] {
        let (Some(raw), Some(family)) = (obj.get(field.as_str()), field.family()) else {
            continue;
        };
        match parse_weights(raw, family) {
            Ok((weights, dropped)) => {
                v.dropped.extend(dropped);
                let slot = match field {
                    ConfigField::UserClassWeights => &mut v.user_class_weights,
                    ConfigField::SystemClassWeights => &mut v.system_class_weights,
                    _ => &mut v.canary_class_weights,
                };
                *slot = Some(weights);
            }
            Err(message) => v.errors.push(FieldError { field, message }),
        }
    }
    if let Some(raw) = obj.get(ConfigField::CanaryProbability.as_str()) {
        match parse_probability(raw) {
            Ok(p) => v.canary_probability = Some(p),
            Err(message) => v.errors.push(FieldError {
                field: ConfigField::CanaryProbability,
                message,
            }),
        }
    }
    Ok(v)
}

impl RealismWeights {
    /// The wire shape (`GET /realism/config`).
    pub fn to_payload(&self) -> Value {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The values this payload would produce, without touching `self`. Any field error
    /// rejects the whole payload. Returns the new values and the dropped entries.
    pub fn merged(&self, payload: &Value) -> Result<(RealismWeights, Vec<String>), ConfigError> {
        let v = validate_payload(payload)?;
        if !v.errors.is_empty() {
            return Err(ConfigError::Invalid(v.errors));
        }
        let next = RealismWeights {
            user_class_weights: v
                .user_class_weights
                .unwrap_or_else(|| self.user_class_weights.clone()),
            system_class_weights: v
                .system_class_weights
                .unwrap_or_else(|| self.system_class_weights.clone()),
            canary_class_weights: v
                .canary_class_weights
                .unwrap_or_else(|| self.canary_class_weights.clone()),
            canary_probability: v.canary_probability.unwrap_or(self.canary_probability),
        };
        Ok((next, v.dropped))
    }

    /// `apply_payload(p) -> dropped` (§4.4): all-or-nothing update of the live values.
    pub fn apply_payload(&mut self, payload: &Value) -> Result<Vec<String>, ConfigError> {
        let (next, dropped) = self.merged(payload)?;
        *self = next;
        Ok(dropped)
    }

    /// Restore the defaults.
    pub fn reset_to_defaults(&mut self) {
        *self = RealismWeights::default();
    }
}

/// Weighted pick (§4.3): `t = randint(1, Σw)`, first entry whose running sum reaches `t`.
/// Zero-weight entries are never picked; `None` for an empty or all-zero list.
pub fn weighted_pick<R: Rng + ?Sized>(
    weights: &[ClassWeight],
    rng: &mut R,
) -> Option<ContentClass> {
    let total: u64 = weights.iter().map(|w| u64::from(w.weight)).sum();
    if total == 0 {
        return None;
    }
    let target = rng.gen_range(1..=total);
    let mut running = 0u64;
    weights.iter().find_map(|w| {
        running += u64::from(w.weight);
        (running >= target).then_some(w.content_class)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    #[test]
    fn weights_may_be_written_with_a_zero_fraction() {
        assert_eq!(integral_u64(&json!(30)), Some(30));
        assert_eq!(integral_u64(&json!(30.0)), Some(30));
        assert_eq!(integral_u64(&json!(30.5)), None);
        assert_eq!(integral_u64(&json!(-1.0)), None);
        assert_eq!(integral_u64(&json!("30")), None);
        let (w, _) = RealismWeights::default()
            .merged(&json!({"user_class_weights": [{"content_class": "note", "weight": 7.0}]}))
            .unwrap();
        assert_eq!(w.user_class_weights[0].weight, 7);
    }

    fn err_text(r: Result<Vec<String>, ConfigError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let w = RealismWeights::default();
        let p = w.to_payload();
        assert_eq!(
            p["user_class_weights"][0],
            json!({"content_class": "note", "weight": 30})
        );
        assert_eq!(
            p["user_class_weights"][1],
            json!({"content_class": "todo", "weight": 20})
        );
        assert_eq!(p["user_class_weights"][2]["weight"], json!(15));
        assert_eq!(p["user_class_weights"][3]["weight"], json!(10));
        assert_eq!(
            p["system_class_weights"],
            json!([
                {"content_class": "log_cron", "weight": 12},
                {"content_class": "log_daemon", "weight": 8},
                {"content_class": "cache_tmp", "weight": 5}
            ])
        );
        assert_eq!(p["canary_class_weights"].as_array().unwrap().len(), 10);
        assert_eq!(p["canary_probability"], json!(0.03));
        assert_eq!(p.as_object().unwrap().len(), 4);
        // the wire shape round-trips through validation
        let (back, dropped) = RealismWeights::default().merged(&p).unwrap();
        assert_eq!(back, w);
        assert!(dropped.is_empty());
    }

    #[test]
    fn partial_override_keeps_other_fields() {
        let mut w = RealismWeights::default();
        let dropped = w
            .apply_payload(&json!({"canary_probability": 0.5, "future_knob": [1, 2]}))
            .unwrap();
        assert!(dropped.is_empty());
        assert_eq!(w.canary_probability, 0.5);
        assert_eq!(
            w.user_class_weights,
            RealismWeights::default().user_class_weights
        );
        w.apply_payload(&json!({"user_class_weights": [{"content_class": "todo", "weight": 3}]}))
            .unwrap();
        assert_eq!(
            w.user_class_weights,
            vec![ClassWeight::new(ContentClass::Todo, 3)]
        );
        assert_eq!(w.canary_probability, 0.5);
        w.reset_to_defaults();
        assert_eq!(w, RealismWeights::default());
    }

    #[test]
    fn probability_rules() {
        let mut w = RealismWeights::default();
        for bad in [
            json!(1.5),
            json!(-0.1),
            json!("high"),
            json!(true),
            json!(null),
            json!([0.1]),
        ] {
            let msg = err_text(w.apply_payload(&json!({"canary_probability": bad})));
            assert!(msg.contains("canary_probability"), "{msg}");
        }
        assert_eq!(w, RealismWeights::default());
        for ok in [json!(0), json!(1), json!(0.0), json!(1.0)] {
            assert!(w.apply_payload(&json!({"canary_probability": ok})).is_ok());
        }
    }

    #[test]
    fn weight_list_rules() {
        let w = RealismWeights::default();
        let check = |list: Value, needle: &str| {
            let mut copy = w.clone();
            let msg = err_text(copy.apply_payload(&json!({"user_class_weights": list})));
            assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
            assert!(msg.starts_with("user_class_weights: "), "{msg}");
            assert_eq!(copy, w, "state changed on error");
        };
        check(json!({"note": 1}), "weights must be a list");
        check(json!([1]), "must be an object");
        check(
            json!([{"content_class": 5, "weight": 1}]),
            "content_class must be a string",
        );
        check(json!([{"weight": 1}]), "content_class must be a string");
        check(
            json!([{"content_class": "note", "weight": -1}]),
            "non-negative integer",
        );
        check(
            json!([{"content_class": "note", "weight": 1.5}]),
            "non-negative integer",
        );
        check(
            json!([{"content_class": "note", "weight": true}]),
            "non-negative integer",
        );
        check(
            json!([{"content_class": "note", "weight": "3"}]),
            "non-negative integer",
        );
        check(json!([{"content_class": "note"}]), "non-negative integer");
        check(
            json!([{"content_class": "note", "weight": 5_000_000_000u64}]),
            "non-negative integer",
        );
        check(
            json!([{"content_class": "nope", "weight": 1}]),
            "unknown content_class",
        );
        check(json!([]), "zero valid entries");
        check(
            json!([{"content_class": "canary_aws_creds", "weight": 1}]),
            "zero valid entries",
        );
        check(
            json!([{"content_class": "note", "weight": 0}, {"content_class": "todo", "weight": 0}]),
            "positive number",
        );
    }

    #[test]
    fn cross_list_entry_dropped_and_reported() {
        let mut w = RealismWeights::default();
        let dropped = w
            .apply_payload(&json!({
                "user_class_weights": [
                    {"content_class": "note", "weight": 4},
                    {"content_class": "canary_aws_creds", "weight": 9},
                ],
                "system_class_weights": [
                    {"content_class": "log_cron", "weight": 1},
                    {"content_class": "todo", "weight": 1},
                ]
            }))
            .unwrap();
        assert_eq!(dropped, vec!["canary_aws_creds", "todo"]);
        assert_eq!(
            w.user_class_weights,
            vec![ClassWeight::new(ContentClass::Note, 4)]
        );
        assert_eq!(
            w.system_class_weights,
            vec![ClassWeight::new(ContentClass::LogCron, 1)]
        );
        // email belongs to no planner list
        let dropped = w
            .apply_payload(&json!({"canary_class_weights": [
                {"content_class": "email", "weight": 1},
                {"content_class": "canary_ssh_key", "weight": 2}
            ]}))
            .unwrap();
        assert_eq!(dropped, vec!["email"]);
    }

    #[test]
    fn failing_field_leaves_whole_state_intact() {
        let mut w = RealismWeights::default();
        let payload = json!({
            "user_class_weights": [{"content_class": "todo", "weight": 9}],
            "canary_probability": 9.0
        });
        let err = w.apply_payload(&payload).unwrap_err();
        assert_eq!(w, RealismWeights::default());
        match err {
            ConfigError::Invalid(errors) => {
                assert_eq!(errors.len(), 1);
                assert_eq!(errors[0].field, ConfigField::CanaryProbability);
            }
            other => panic!("{other:?}"),
        }
        // the field-wise view still shows what was acceptable
        let v = validate_payload(&payload).unwrap();
        assert_eq!(
            v.user_class_weights,
            Some(vec![ClassWeight::new(ContentClass::Todo, 9)])
        );
        assert_eq!(v.canary_probability, None);
    }

    #[test]
    fn several_field_errors_are_all_reported() {
        let v = validate_payload(&json!({
            "user_class_weights": "x",
            "system_class_weights": [{"content_class": "bogus", "weight": 1}],
            "canary_class_weights": [],
            "canary_probability": "high"
        }))
        .unwrap();
        let fields: Vec<_> = v.errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                ConfigField::UserClassWeights,
                ConfigField::SystemClassWeights,
                ConfigField::CanaryClassWeights,
                ConfigField::CanaryProbability
            ]
        );
        let msg = ConfigError::Invalid(v.errors).to_string();
        assert!(msg.contains("; "));
    }

    #[test]
    fn non_object_payload() {
        let mut w = RealismWeights::default();
        for bad in [json!([]), json!("x"), json!(null), json!(3)] {
            assert_eq!(w.apply_payload(&bad), Err(ConfigError::NotAnObject));
        }
        assert_eq!(
            ConfigError::NotAnObject.to_string(),
            "body must be an object"
        );
    }

    #[test]
    fn duplicates_accepted_and_add_up() {
        let mut w = RealismWeights::default();
        w.apply_payload(&json!({"user_class_weights": [
            {"content_class": "note", "weight": 1},
            {"content_class": "note", "weight": 1},
            {"content_class": "todo", "weight": 2}
        ]}))
        .unwrap();
        assert_eq!(w.user_class_weights.len(), 3);
        let mut rng = StdRng::seed_from_u64(5);
        let notes = (0..4000)
            .filter(|_| weighted_pick(&w.user_class_weights, &mut rng) == Some(ContentClass::Note))
            .count();
        assert!((1700..2300).contains(&notes), "{notes}");
    }

    #[test]
    fn weighted_pick_follows_weights_and_skips_zero() {
        let weights = [
            ClassWeight::new(ContentClass::Note, 0),
            ClassWeight::new(ContentClass::Todo, 3),
            ClassWeight::new(ContentClass::Draft, 1),
        ];
        let mut rng = StdRng::seed_from_u64(9);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..4000 {
            *counts
                .entry(weighted_pick(&weights, &mut rng).unwrap())
                .or_insert(0) += 1;
        }
        assert_eq!(counts.get(&ContentClass::Note), None);
        let todo = counts[&ContentClass::Todo];
        assert!((2800..3200).contains(&todo), "{todo}");
        assert_eq!(weighted_pick(&[], &mut rng), None);
        assert_eq!(weighted_pick(&weights[..1], &mut rng), None);
    }
}

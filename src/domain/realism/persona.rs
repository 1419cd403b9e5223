//! Personas (realism.md §3): fictional employees who author files and send mail.
//!
//! Parsing is tolerant at the list level (an invalid entry is dropped with a warning, the rest
//! kept) and strict at the entry level (every rule of §3.1). Shared by the Planner, the
//! MailDripper, the canary planter and the personas API.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::hours::ActiveWindow;

/// Default `active_hours` of a persona.
pub const DEFAULT_ACTIVE_HOURS: &str = "09:00-18:00";
/// Default language filled in when neither the persona nor the source has one.
pub const DEFAULT_LANGUAGE: &str = "en";
/// Maximum number of mannerisms per persona.
pub const MAX_MANNERISMS: usize = 12;

/// Writing tone of a persona.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tone {
    #[default]
    Formal,
    Direct,
    Casual,
    Technical,
    Custom,
}

impl Tone {
    pub const ALL: [Tone; 5] = [
        Tone::Formal,
        Tone::Direct,
        Tone::Casual,
        Tone::Technical,
        Tone::Custom,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Tone::Formal => "formal",
            Tone::Direct => "direct",
            Tone::Casual => "casual",
            Tone::Technical => "technical",
            Tone::Custom => "custom",
        }
    }
}

/// How quickly a persona replies to mail (stored; see realism.md §6.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyLatency {
    Fast,
    #[default]
    Normal,
    Slow,
}

impl ReplyLatency {
    pub const ALL: [ReplyLatency; 3] =
        [ReplyLatency::Fast, ReplyLatency::Normal, ReplyLatency::Slow];

    pub const fn as_str(self) -> &'static str {
        match self {
            ReplyLatency::Fast => "fast",
            ReplyLatency::Normal => "normal",
            ReplyLatency::Slow => "slow",
        }
    }
}

/// One persona (`EmailPersona`). Serialises with all 11 fields, `null` for absent optionals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Persona {
    pub name: String,
    pub email: String,
    pub role: String,
    pub tone: Tone,
    pub tone_custom: Option<String>,
    pub mannerisms: Vec<String>,
    pub language: Option<String>,
    pub signature: Option<String>,
    pub active_hours: String,
    pub reply_latency: ReplyLatency,
    pub uses_llms_heavily: bool,
    /// Optional IANA time zone of the persona's clock (`Europe/Madrid`); `None` = UTC.
    /// Active hours and mail `Date` offsets are read on this clock (one clock for the
    /// Planner and the MailDripper, realism.md §11.2).
    pub timezone: Option<String>,
}

/// Why one persona entry is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersonaError {
    #[error("persona must be an object")]
    NotAnObject,
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{field} must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("{field} must be {min}..{max} characters")]
    Length {
        field: &'static str,
        min: usize,
        max: usize,
    },
    #[error("email must look like local@domain.tld")]
    BadEmail,
    #[error("tone must be one of formal, direct, casual, technical, custom")]
    UnknownTone,
    #[error("reply_latency must be one of fast, normal, slow")]
    UnknownReplyLatency,
    #[error("tone_custom is required when tone is custom")]
    ToneCustomRequired,
    #[error("at most {MAX_MANNERISMS} mannerisms are allowed")]
    TooManyMannerisms,
    #[error("timezone must be an IANA time zone name such as Europe/Madrid")]
    UnknownTimezone,
}

/// A dropped entry or an unusable document, reported by [`parse_personas`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonaWarning {
    /// The raw text is not JSON.
    InvalidJson(String),
    /// The top-level JSON value is not a list.
    NotAList,
    /// Entry `index` was dropped.
    InvalidEntry { index: usize, error: PersonaError },
}

impl std::fmt::Display for PersonaWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PersonaWarning::InvalidJson(e) => write!(f, "personas are not valid JSON: {e}"),
            PersonaWarning::NotAList => f.write_str("personas must be a JSON list"),
            PersonaWarning::InvalidEntry { index, error } => {
                write!(f, "persona #{index} dropped: {error}")
            }
        }
    }
}

/// Result of [`parse_personas`]: the valid personas and what was dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedPersonas {
    pub personas: Vec<Persona>,
    pub warnings: Vec<PersonaWarning>,
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

fn check_len(field: &'static str, s: &str, min: usize, max: usize) -> Result<(), PersonaError> {
    let n = char_len(s);
    if n < min || n > max {
        return Err(PersonaError::Length { field, min, max });
    }
    Ok(())
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
    min: usize,
    max: usize,
) -> Result<&'a str, PersonaError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(PersonaError::Missing(field)),
        Some(Value::String(s)) => {
            check_len(field, s, min, max)?;
            Ok(s)
        }
        Some(_) => Err(PersonaError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

fn optional_str(
    obj: &Map<String, Value>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, PersonaError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            check_len(field, s, 0, max)?;
            Ok(Some(s.clone()))
        }
        Some(_) => Err(PersonaError::WrongType {
            field,
            expected: "a string or null",
        }),
    }
}

fn validate_email(email: &str) -> Result<(), PersonaError> {
    check_len("email", email, 3, 255)?;
    let (local, domain) = email.rsplit_once('@').ok_or(PersonaError::BadEmail)?;
    if local.is_empty() || domain.is_empty() || !domain.contains('.') {
        return Err(PersonaError::BadEmail);
    }
    Ok(())
}

impl Persona {
    /// Validate one persona object (§3.1). Unknown keys are ignored; `null` for a field with
    /// a default means the default.
    pub fn from_value(value: &Value) -> Result<Persona, PersonaError> {
        let obj = value.as_object().ok_or(PersonaError::NotAnObject)?;
        let name = required_str(obj, "name", 1, 128)?.to_owned();
        let email = required_str(obj, "email", 3, 255)?.to_owned();
        validate_email(&email)?;
        let role = required_str(obj, "role", 1, 128)?.to_owned();

        let tone = match obj.get("tone") {
            None | Some(Value::Null) => Tone::default(),
            Some(Value::String(s)) => Tone::ALL
                .into_iter()
                .find(|t| t.as_str() == s)
                .ok_or(PersonaError::UnknownTone)?,
            Some(_) => return Err(PersonaError::UnknownTone),
        };
        let tone_custom = optional_str(obj, "tone_custom", 128)?;
        if tone == Tone::Custom && tone_custom.as_deref().is_none_or(|s| s.trim().is_empty()) {
            return Err(PersonaError::ToneCustomRequired);
        }

        let mannerisms = match obj.get("mannerisms") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                if items.len() > MAX_MANNERISMS {
                    return Err(PersonaError::TooManyMannerisms);
                }
                items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_owned)
                            .ok_or(PersonaError::WrongType {
                                field: "mannerisms",
                                expected: "a list of strings",
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            Some(_) => {
                return Err(PersonaError::WrongType {
                    field: "mannerisms",
                    expected: "a list of strings",
                })
            }
        };

        let language = optional_str(obj, "language", 8)?.filter(|l| !l.trim().is_empty());
        let signature = optional_str(obj, "signature", 512)?;
        let active_hours = optional_str(obj, "active_hours", 32)?
            .unwrap_or_else(|| DEFAULT_ACTIVE_HOURS.to_owned());

        let reply_latency = match obj.get("reply_latency") {
            None | Some(Value::Null) => ReplyLatency::default(),
            Some(Value::String(s)) => ReplyLatency::ALL
                .into_iter()
                .find(|r| r.as_str() == s)
                .ok_or(PersonaError::UnknownReplyLatency)?,
            Some(_) => return Err(PersonaError::UnknownReplyLatency),
        };
        let uses_llms_heavily = match obj.get("uses_llms_heavily") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(PersonaError::WrongType {
                    field: "uses_llms_heavily",
                    expected: "a boolean",
                })
            }
        };

        let timezone = optional_str(obj, "timezone", 64)?.filter(|t| !t.trim().is_empty());
        if let Some(tz) = &timezone {
            tz.parse::<chrono_tz::Tz>()
                .map_err(|_| PersonaError::UnknownTimezone)?;
        }

        Ok(Persona {
            name,
            email,
            role,
            tone,
            tone_custom,
            mannerisms,
            language,
            signature,
            active_hours,
            reply_latency,
            uses_llms_heavily,
            timezone,
        })
    }

    /// The persona's time zone (UTC when unset or unknown).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone
            .as_deref()
            .and_then(|t| t.parse().ok())
            .unwrap_or(chrono_tz::UTC)
    }

    /// `now` on the persona's clock.
    pub fn local_time(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono_tz::Tz> {
        now.with_timezone(&self.tz())
    }

    /// Whether the persona is in its active hours at `now` (§3.3 on the persona's clock).
    /// The one clock shared by the Planner and the MailDripper.
    pub fn is_active(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.window().contains(&self.local_time(now))
    }

    /// The parsed active-hours window (fail-open).
    pub fn window(&self) -> ActiveWindow {
        ActiveWindow::parse(&self.active_hours)
    }

    /// The persona's POSIX login (§3.4).
    pub fn login(&self) -> String {
        login_for(&self.name)
    }

    /// The persona's home directory, `/home/<login>`.
    pub fn home_dir(&self) -> String {
        home_dir_for(&self.name)
    }

    /// The language, or `default` when the persona has none.
    pub fn language_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.language.as_deref().unwrap_or(default)
    }
}

/// `parse_personas(raw, language_default)` over an already-decoded JSON value (§3.2).
/// `None`/`null` → empty. Never fails: problems are reported as warnings.
pub fn parse_personas(raw: Option<&Value>, language_default: &str) -> ParsedPersonas {
    let mut out = ParsedPersonas::default();
    let items = match raw {
        None | Some(Value::Null) => return out,
        Some(Value::Array(items)) => items,
        Some(_) => {
            out.warnings.push(PersonaWarning::NotAList);
            return out;
        }
    };
    let default = if language_default.trim().is_empty() {
        DEFAULT_LANGUAGE
    } else {
        language_default
    };
    for (index, item) in items.iter().enumerate() {
        match Persona::from_value(item) {
            Ok(mut p) => {
                if p.language.is_none() {
                    p.language = Some(default.to_owned());
                }
                out.personas.push(p);
            }
            Err(error) => out
                .warnings
                .push(PersonaWarning::InvalidEntry { index, error }),
        }
    }
    out
}

/// [`parse_personas`] over JSON text: empty/blank → empty, invalid JSON → empty + warning.
pub fn parse_personas_str(raw: Option<&str>, language_default: &str) -> ParsedPersonas {
    let Some(text) = raw.filter(|t| !t.trim().is_empty()) else {
        return ParsedPersonas::default();
    };
    match serde_json::from_str::<Value>(text) {
        Ok(v) => parse_personas(Some(&v), language_default),
        Err(e) => ParsedPersonas {
            personas: Vec::new(),
            warnings: vec![PersonaWarning::InvalidJson(e.to_string())],
        },
    }
}

/// Persona display name → POSIX login (§3.4): lowercase, spaces removed; anything that is not
/// then non-empty ASCII alphanumeric becomes `user`. Single source of truth for naming and the
/// canary planter.
pub fn login_for(name: &str) -> String {
    let candidate: String = name.to_lowercase().chars().filter(|c| *c != ' ').collect();
    if !candidate.is_empty() && candidate.bytes().all(|b| b.is_ascii_alphanumeric()) {
        candidate
    } else {
        "user".to_owned()
    }
}

/// `/home/<login_for(name)>`.
pub fn home_dir_for(name: &str) -> String {
    format!("/home/{}", login_for(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({"name": "John Smith", "email": "jsmith@acme.example", "role": "Ops lead"})
    }

    #[test]
    fn login_examples() {
        assert_eq!(login_for("John Smith"), "johnsmith");
        assert_eq!(login_for("alice"), "alice");
        assert_eq!(login_for("ADMIN"), "admin");
        for bad in [
            "Mr. Robot",
            "C-3PO!",
            "Renée",
            "",
            "   ",
            "x/../../etc",
            "a'b;rm -rf",
        ] {
            assert_eq!(login_for(bad), "user", "{bad:?}");
        }
        assert_eq!(home_dir_for("John Smith"), "/home/johnsmith");
    }

    #[test]
    fn parse_empty_inputs() {
        assert!(parse_personas(None, "en").personas.is_empty());
        assert!(parse_personas(Some(&Value::Null), "en").personas.is_empty());
        assert!(parse_personas(Some(&json!([])), "en").warnings.is_empty());
        assert_eq!(
            parse_personas_str(Some(""), "en"),
            ParsedPersonas::default()
        );
        assert_eq!(parse_personas_str(None, "en"), ParsedPersonas::default());
    }

    #[test]
    fn parse_bad_documents_give_empty_with_warning() {
        let bad = parse_personas_str(Some("{not json"), "en");
        assert!(bad.personas.is_empty());
        assert!(matches!(bad.warnings[..], [PersonaWarning::InvalidJson(_)]));
        let obj = parse_personas_str(Some(r#"{"name":"x"}"#), "en");
        assert!(obj.personas.is_empty());
        assert_eq!(obj.warnings, vec![PersonaWarning::NotAList]);
    }

    #[test]
    fn invalid_entry_dropped_others_kept() {
        let raw = json!([valid(), {"name": "no email", "role": "x"}, {
            "name": "Ana", "email": "ana@corp.example", "role": "Finance", "language": "es"
        }]);
        let parsed = parse_personas(Some(&raw), "en");
        assert_eq!(parsed.personas.len(), 2);
        assert_eq!(
            parsed.warnings,
            vec![PersonaWarning::InvalidEntry {
                index: 1,
                error: PersonaError::Missing("email")
            }]
        );
        // default language filled in, explicit kept
        assert_eq!(parsed.personas[0].language.as_deref(), Some("en"));
        assert_eq!(parsed.personas[1].language.as_deref(), Some("es"));
        let pt = parse_personas(Some(&json!([valid()])), "pt");
        assert_eq!(pt.personas[0].language.as_deref(), Some("pt"));
    }

    #[test]
    fn defaults_applied() {
        let p = Persona::from_value(&valid()).unwrap();
        assert_eq!(p.tone, Tone::Formal);
        assert_eq!(p.active_hours, DEFAULT_ACTIVE_HOURS);
        assert_eq!(p.reply_latency, ReplyLatency::Normal);
        assert!(!p.uses_llms_heavily);
        assert!(p.mannerisms.is_empty());
        assert_eq!(p.language, None);
        assert_eq!(p.login(), "johnsmith");
    }

    #[test]
    fn field_rules() {
        let with = |k: &str, v: Value| {
            let mut o = valid();
            o[k] = v;
            Persona::from_value(&o)
        };
        assert_eq!(
            with("tone", json!("custom")),
            Err(PersonaError::ToneCustomRequired)
        );
        let mut custom = valid();
        custom["tone"] = json!("custom");
        custom["tone_custom"] = json!("   ");
        assert_eq!(
            Persona::from_value(&custom),
            Err(PersonaError::ToneCustomRequired)
        );
        custom["tone_custom"] = json!("dry, terse");
        assert!(Persona::from_value(&custom).is_ok());

        assert_eq!(with("tone", json!("angry")), Err(PersonaError::UnknownTone));
        assert_eq!(with("email", json!("nobody")), Err(PersonaError::BadEmail));
        assert_eq!(with("email", json!("a@b")), Err(PersonaError::BadEmail));
        assert_eq!(with("email", json!("@b.c")), Err(PersonaError::BadEmail));
        assert!(with("email", json!("a@.")).is_ok());
        assert!(with("email", json!("we@ird@corp.example")).is_ok());
        assert!(matches!(
            with("name", json!("")),
            Err(PersonaError::Length { field: "name", .. })
        ));
        assert!(matches!(
            with("name", json!("x".repeat(129))),
            Err(PersonaError::Length { field: "name", .. })
        ));
        assert!(with("name", json!("é".repeat(128))).is_ok());
        assert!(matches!(
            with("language", json!("waytoolong")),
            Err(PersonaError::Length { .. })
        ));
        assert_eq!(
            with("mannerisms", json!(vec!["m"; 13])),
            Err(PersonaError::TooManyMannerisms)
        );
        assert!(with("mannerisms", json!(vec!["m"; 12])).is_ok());
        assert!(matches!(
            with("mannerisms", json!([1])),
            Err(PersonaError::WrongType { .. })
        ));
        assert!(matches!(
            with("uses_llms_heavily", json!("yes")),
            Err(PersonaError::WrongType { .. })
        ));
        assert_eq!(
            with("reply_latency", json!("never")),
            Err(PersonaError::UnknownReplyLatency)
        );
        assert!(matches!(
            with("role", json!(7)),
            Err(PersonaError::WrongType { field: "role", .. })
        ));
        assert_eq!(
            Persona::from_value(&json!([1])),
            Err(PersonaError::NotAnObject)
        );
        // unknown keys ignored
        assert!(with("favourite_colour", json!("teal")).is_ok());
    }

    #[test]
    fn timezone_validated_and_shifts_the_clock() {
        use chrono::TimeZone;
        let mut v = valid();
        v["timezone"] = json!("Mars/Olympus");
        assert_eq!(Persona::from_value(&v), Err(PersonaError::UnknownTimezone));
        v["timezone"] = json!("America/Santiago");
        let p = Persona::from_value(&v).unwrap();
        // 14:00 UTC in January is 11:00 in Santiago (UTC-3, summer time): in hours
        let t = chrono::Utc.with_ymd_and_hms(2026, 1, 15, 14, 0, 0).unwrap();
        assert!(p.is_active(t));
        // 22:00 UTC is 19:00 there: out, while a UTC persona at 22:00 is out too
        let late = chrono::Utc.with_ymd_and_hms(2026, 1, 15, 22, 0, 0).unwrap();
        assert!(!p.is_active(late));
        // 07:00 UTC is 04:00 in Santiago (out) but 16:00 in Tokyo (in)
        v["timezone"] = json!("Asia/Tokyo");
        let tokyo = Persona::from_value(&v).unwrap();
        let early = chrono::Utc.with_ymd_and_hms(2026, 1, 15, 7, 0, 0).unwrap();
        assert!(tokyo.is_active(early));
        assert!(!p.is_active(early));
        let utc = Persona::from_value(&valid()).unwrap();
        assert!(!utc.is_active(early));
        assert_eq!(utc.tz(), chrono_tz::UTC);
    }

    #[test]
    fn serialises_all_eleven_fields() {
        let p = Persona::from_value(&valid()).unwrap();
        let v = serde_json::to_value(&p).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 12);
        assert_eq!(obj["timezone"], Value::Null);
        assert_eq!(obj["tone_custom"], Value::Null);
        assert_eq!(obj["tone"], json!("formal"));
        assert_eq!(obj["reply_latency"], json!("normal"));
        // and round-trips through the parser
        assert_eq!(Persona::from_value(&v).unwrap(), p);
    }
}

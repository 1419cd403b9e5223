//! LLM provider configuration (realism.md §7.2, §7.5, §8.2) and the pure half of the Ollama
//! backend: request body and response interpretation. The HTTP client lives in
//! `crate::actors::mail_dripper::llm_client`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// `realism_config` key of the LLM settings.
pub const LLM_KEY: &str = "llm";
pub const DEFAULT_MODEL: &str = "llama3.1";
pub const DEFAULT_TIMEOUT_S: f64 = 60.0;
pub const MAX_TIMEOUT_S: f64 = 600.0;
pub const MAX_MODEL_CHARS: usize = 128;
pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_API_KEY_CHARS: usize = 512;

/// The stored LLM configuration. `api_key` never leaves the server (responses carry
/// `api_key_set`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmConfig {
    pub provider: String,
    pub base_url: Option<String>,
    pub model: String,
    pub timeout: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            provider: "ollama".into(),
            base_url: None,
            model: DEFAULT_MODEL.into(),
            timeout: DEFAULT_TIMEOUT_S,
            api_key: None,
        }
    }
}

/// Why an LLM payload is invalid; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct LlmConfigError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: &str) -> LlmConfigError {
    LlmConfigError {
        field,
        message: message.to_owned(),
    }
}

impl LlmConfig {
    /// The public view of §8.2 (`api_key_set` instead of the key).
    pub fn public_view(&self) -> Value {
        json!({
            "provider": self.provider,
            "base_url": self.base_url,
            "model": self.model,
            "timeout": self.timeout,
            "api_key_set": self.api_key.is_some(),
        })
    }

    /// Whether a backend can be built (decnetd speaks Ollama over HTTP only: no `base_url`
    /// means no LLM, and mail is written by the templates).
    pub fn is_enabled(&self) -> bool {
        self.provider == "ollama" && self.base_url.is_some()
    }

    /// Stored JSON (tolerant: unknown or bad values fall back to defaults field by field).
    pub fn from_stored(v: &Value) -> LlmConfig {
        LlmConfig::default()
            .merged(v)
            .unwrap_or_else(|_| LlmConfig::default())
    }

    /// Merge a PUT body (§8.2): present fields replace, `api_key` absent = keep, `null`/`""`
    /// = clear, string = set. Validates the result.
    pub fn merged(&self, body: &Value) -> Result<LlmConfig, LlmConfigError> {
        let obj: &Map<String, Value> = body
            .as_object()
            .ok_or_else(|| err("body", "must be a JSON object"))?;
        let mut out = self.clone();
        if let Some(v) = obj.get("provider") {
            match v.as_str() {
                Some("ollama") => out.provider = "ollama".into(),
                _ => return Err(err("provider", "must be \"ollama\"")),
            }
        }
        if let Some(v) = obj.get("base_url") {
            out.base_url = match v {
                Value::Null => None,
                Value::String(s) if s.trim().is_empty() => None,
                Value::String(s) => Some(validate_url(s)?),
                _ => return Err(err("base_url", "must be an http(s) URL or null")),
            };
        }
        if let Some(v) = obj.get("model") {
            match v.as_str().map(str::trim) {
                Some(m)
                    if !m.is_empty()
                        && m.chars().count() <= MAX_MODEL_CHARS
                        && !m.contains('\0') =>
                {
                    out.model = m.to_owned()
                }
                _ => return Err(err("model", "must be 1..128 characters")),
            }
        }
        if let Some(v) = obj.get("timeout") {
            match v.as_f64() {
                Some(t) if !v.is_boolean() && t > 0.0 && t <= MAX_TIMEOUT_S => out.timeout = t,
                _ => return Err(err("timeout", "must be a number > 0 and <= 600")),
            }
        }
        if let Some(v) = obj.get("api_key") {
            out.api_key = match v {
                Value::Null => None,
                Value::String(s) if s.is_empty() => None,
                Value::String(s)
                    if s.chars().count() <= MAX_API_KEY_CHARS
                        && !s.chars().any(char::is_control) =>
                {
                    Some(s.clone())
                }
                _ => {
                    return Err(err(
                        "api_key",
                        "must be a string of at most 512 printable characters, \"\" or null",
                    ))
                }
            };
        }
        Ok(out)
    }
}

fn validate_url(raw: &str) -> Result<String, LlmConfigError> {
    let s = raw.trim().trim_end_matches('/');
    if s.chars().count() > MAX_URL_CHARS {
        return Err(err("base_url", "must be at most 2048 characters"));
    }
    let u = url::Url::parse(s).map_err(|_| err("base_url", "must be an http(s) URL or null"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(err("base_url", "must be an http(s) URL or null"));
    }
    Ok(s.to_owned())
}

/// The `/api/generate` body.
pub fn generate_body(model: &str, prompt: &str) -> Value {
    json!({"model": model, "prompt": prompt, "stream": false})
}

/// How one generate call ended (besides a timeout, which the client reports itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmOutcome {
    Success(String),
    /// Ran but produced nothing usable; `detail` goes into the row payload.
    Failure(String),
}

/// Interpret an HTTP answer (§7.2): non-200 → failure with status and ≤256 chars of body;
/// `response` field of a JSON body (raw body if not JSON); blank → failure.
pub fn interpret_response(status: u16, body: &[u8]) -> LlmOutcome {
    let text = String::from_utf8_lossy(body);
    if status != 200 {
        let snippet: String = text.trim().chars().take(256).collect();
        return LlmOutcome::Failure(format!("status {status}: {snippet}"));
    }
    let out = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => match o.get("response") {
            Some(Value::String(s)) => s.clone(),
            _ => return LlmOutcome::Failure("no response field in the answer".into()),
        },
        _ => text.into_owned(),
    };
    if out.trim().is_empty() {
        LlmOutcome::Failure("blank output".into())
    } else {
        LlmOutcome::Success(out)
    }
}

/// Whether model output is usable as an email (a body that is not tiny and not a JSON or
/// HTML blob): garbage is treated as a failure so the templates take over.
pub fn looks_like_email(body: &str) -> bool {
    let t = body.trim();
    t.chars().filter(|c| c.is_alphabetic()).count() >= 12
        && !t.starts_with('{')
        && !t.starts_with('[')
        && !t.starts_with('<')
        && !t.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_rules() {
        let d = LlmConfig::default();
        assert!(!d.is_enabled());
        assert_eq!(
            d.public_view(),
            json!({"provider": "ollama", "base_url": null, "model": "llama3.1",
                   "timeout": 60.0, "api_key_set": false})
        );
        let c = d
            .merged(
                &json!({"base_url": "http://127.0.0.1:11434/", "model": "qwen", "timeout": 5,
                            "api_key": "s3cret"}),
            )
            .unwrap();
        assert_eq!(c.base_url.as_deref(), Some("http://127.0.0.1:11434"));
        assert!(c.is_enabled());
        assert_eq!(c.public_view()["api_key_set"], json!(true));
        assert!(!c.public_view().to_string().contains("s3cret"));
        // absent key kept, "" cleared
        assert_eq!(
            c.merged(&json!({"model": "m"})).unwrap().api_key.as_deref(),
            Some("s3cret")
        );
        assert_eq!(c.merged(&json!({"api_key": ""})).unwrap().api_key, None);
        assert_eq!(c.merged(&json!({"base_url": ""})).unwrap().base_url, None);
        for (body, field) in [
            (json!({"provider": "openai"}), "provider"),
            (json!({"base_url": "ftp://x"}), "base_url"),
            (json!({"base_url": "not a url"}), "base_url"),
            (json!({"model": ""}), "model"),
            (json!({"timeout": 0}), "timeout"),
            (json!({"timeout": true}), "timeout"),
            (json!({"timeout": 601}), "timeout"),
            (json!({"api_key": 5}), "api_key"),
            (json!([1]), "body"),
        ] {
            assert_eq!(d.merged(&body).unwrap_err().field, field, "{body}");
        }
        assert_eq!(LlmConfig::from_stored(&json!("junk")), LlmConfig::default());
    }

    #[test]
    fn responses() {
        assert_eq!(
            interpret_response(200, br#"{"response":"Subject: x\n\nhi"}"#),
            LlmOutcome::Success("Subject: x\n\nhi".into())
        );
        assert_eq!(
            interpret_response(200, b"plain text"),
            LlmOutcome::Success("plain text".into())
        );
        assert!(matches!(
            interpret_response(200, br#"{"response":"  "}"#),
            LlmOutcome::Failure(_)
        ));
        assert!(matches!(
            interpret_response(200, br#"{"other":1}"#),
            LlmOutcome::Failure(_)
        ));
        match interpret_response(503, &vec![b'x'; 1000]) {
            LlmOutcome::Failure(m) => assert!(m.starts_with("status 503") && m.len() < 300),
            o => panic!("{o:?}"),
        }
        assert!(looks_like_email("Hi Bo, the numbers are attached. Ana"));
        assert!(!looks_like_email("{\"a\": 1}"));
        assert!(!looks_like_email("??? 12 !!"));
    }
}

//! Credential capture (spec §7): `secret_b64` marks a credential; the
//! sha256 is over the exact decoded bytes.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::parser::Record;

/// Column caps (characters).
pub const PRINCIPAL_MAX: usize = 256;
/// `secret_b64` cap.
pub const SECRET_B64_MAX: usize = 2048;
/// `secret_printable` cap.
pub const SECRET_PRINTABLE_MAX: usize = 512;
/// `secret_kind` cap (column is varchar(32)).
pub const SECRET_KIND_MAX: usize = 32;
/// `outcome` cap (column is varchar(16)).
pub const OUTCOME_MAX: usize = 16;

/// Standard alphabet, padding required, non-zero trailing bits tolerated
/// (Python's `b64decode(validate=True)` accepts them).
const STRICT_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// Why a `secret_b64` was refused (the log row is still stored).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CredentialError {
    /// Characters outside `[A-Za-z0-9+/]` or more than two `=`.
    #[error("secret_b64 is not standard base64 (bad character or padding)")]
    Alphabet,
    /// Right alphabet but undecodable (e.g. wrong length or padding).
    #[error("secret_b64 does not decode: {0}")]
    Decode(String),
}

/// A credential ready for the upsert of §7 step 4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialDraft {
    /// Record attacker ip.
    pub attacker_ip: String,
    /// Record decky.
    pub decky_name: String,
    /// Record service.
    pub service: String,
    /// First non-empty of `principal`, `username` (literal `None` is null).
    pub principal: Option<String>,
    /// `principal` or `""` (part of the dedup key).
    pub principal_key: String,
    /// `secret_kind` or `plaintext`.
    pub secret_kind: String,
    /// Hex sha256 of the decoded secret bytes.
    pub secret_sha256: String,
    /// The base64 text (truncated to its cap).
    pub secret_b64: String,
    /// Printable rendering (truncated).
    pub secret_printable: Option<String>,
    /// `success|failure|observed` when provided.
    pub outcome: Option<String>,
    /// Whole SD map, ASCII-escaped JSON.
    pub fields_json: String,
    /// Names of the columns that were truncated (the caller warns).
    pub truncated: Vec<&'static str>,
}

fn truncate(s: &str, cap: usize, label: &'static str, notes: &mut Vec<&'static str>) -> String {
    match s.char_indices().nth(cap) {
        Some((i, _)) => {
            notes.push(label);
            s[..i].to_owned()
        }
        None => s.to_owned(),
    }
}

/// Validate and decode a `secret_b64` value.
pub fn decode_secret(b64: &str) -> Result<Vec<u8>, CredentialError> {
    let body = b64.trim_end_matches('=');
    let pad = b64.len() - body.len();
    if pad > 2
        || !body
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
    {
        return Err(CredentialError::Alphabet);
    }
    STRICT_B64
        .decode(b64)
        .map_err(|e| CredentialError::Decode(e.to_string()))
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// §7 for one record: `None` when the record carries no `secret_b64` (or
/// no fields object), otherwise the draft or the reason it was refused.
pub fn extract_credential(rec: &Record) -> Option<Result<CredentialDraft, CredentialError>> {
    let fields = rec.fields.as_ref()?;
    let b64 = fields.get("secret_b64")?;
    Some(decode_secret(b64).map(|raw| {
        let mut truncated = Vec::new();
        let principal = ["principal", "username"]
            .iter()
            .filter_map(|k| fields.get_nonempty(k))
            .find(|v| *v != "None")
            .map(|p| truncate(p, PRINCIPAL_MAX, "principal", &mut truncated));
        let secret_kind = fields.get_nonempty("secret_kind").map_or_else(
            || "plaintext".to_owned(),
            |k| truncate(k, SECRET_KIND_MAX, "secret_kind", &mut truncated),
        );
        CredentialDraft {
            attacker_ip: rec.attacker_ip.clone(),
            decky_name: rec.decky.clone(),
            service: rec.service.clone(),
            principal_key: principal.clone().unwrap_or_default(),
            principal,
            secret_kind,
            secret_sha256: sha256_hex(&raw),
            secret_b64: truncate(b64, SECRET_B64_MAX, "secret_b64", &mut truncated),
            secret_printable: fields
                .get("secret_printable")
                .map(|p| truncate(p, SECRET_PRINTABLE_MAX, "secret_printable", &mut truncated)),
            outcome: fields
                .get_nonempty("outcome")
                .map(|o| truncate(o, OUTCOME_MAX, "outcome", &mut truncated)),
            fields_json: fields.to_ascii_json(),
            truncated,
        }
    }))
}

/// Payload of `credential.captured` (§9).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CredentialCaptured {
    /// Hex sha256.
    pub secret_sha256: String,
    /// Kind.
    pub secret_kind: String,
    /// Attacker ip.
    pub attacker_ip: String,
    /// Decky.
    pub decky: String,
    /// Service.
    pub service: String,
}

impl CredentialDraft {
    /// The bus payload for this capture.
    pub fn captured_event(&self) -> CredentialCaptured {
        CredentialCaptured {
            secret_sha256: self.secret_sha256.clone(),
            secret_kind: self.secret_kind.clone(),
            attacker_ip: self.attacker_ip.clone(),
            decky: self.decky_name.clone(),
            service: self.service.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::syslog::parse_line;

    fn rec(sd: &str) -> Record {
        parse_line(&format!(
            "<134>1 2026-05-14T09:12:03.481220+00:00 d1 ssh - auth_attempt [relay@55555 src_ip=\"1.2.3.4\" {sd}]"
        ))
        .unwrap()
    }

    #[test]
    fn decodes_and_hashes_exact_bytes() {
        let d = extract_credential(&rec(r#"username="root" secret_b64="AGFkbWlu/w==""#))
            .unwrap()
            .unwrap();
        assert_eq!(
            d.secret_sha256,
            sha256_hex(&[0x00, 0x61, 0x64, 0x6d, 0x69, 0x6e, 0xff])
        );
        assert_eq!(d.principal.as_deref(), Some("root"));
        assert_eq!(d.secret_kind, "plaintext");
        assert!(d.truncated.is_empty());
    }

    #[test]
    fn empty_secret_is_valid_and_none_principal_is_null() {
        let d = extract_credential(&rec(r#"principal="None" secret_b64="""#))
            .unwrap()
            .unwrap();
        assert_eq!(d.secret_sha256, sha256_hex(b""));
        assert_eq!(d.principal, None);
        assert_eq!(d.principal_key, "");
        let d = extract_credential(&rec(r#"principal="" username="bob" secret_b64="""#))
            .unwrap()
            .unwrap();
        assert_eq!(d.principal.as_deref(), Some("bob"));
    }

    #[test]
    fn invalid_base64_is_refused() {
        for bad in ["!!!!", "YWJj===", "YWI", "YW Jj", "YWJj\n"] {
            let r = extract_credential(&rec(&format!("secret_b64=\"{bad}\""))).unwrap();
            assert!(r.is_err(), "{bad:?}");
        }
        assert!(extract_credential(&rec(r#"username="x""#)).is_none());
        let mut r = rec(r#"secret_b64="YQ==""#);
        r.fields = None;
        assert!(extract_credential(&r).is_none());
    }

    #[test]
    fn truncation_is_reported() {
        let long = "p".repeat(300);
        let d = extract_credential(&rec(&format!(
            "principal=\"{long}\" secret_kind=\"http_bearer\" secret_printable=\"{}\" secret_b64=\"YQ==\" outcome=\"success\"",
            "é".repeat(600)
        )))
        .unwrap()
        .unwrap();
        assert_eq!(d.principal.as_ref().map(|p| p.chars().count()), Some(256));
        assert_eq!(
            d.secret_printable.as_ref().map(|p| p.chars().count()),
            Some(512)
        );
        assert_eq!(d.truncated, vec!["principal", "secret_printable"]);
        assert_eq!(d.secret_kind, "http_bearer");
        assert_eq!(d.outcome.as_deref(), Some("success"));
        assert!(d.fields_json.is_ascii());
    }
}

//! Realism rows (orchestrator events, synthetic files, realism config) and insertables.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{orchestrator_events, realism_config, synthetic_files};

/// Repository-side clip of `synthetic_files.last_body`, in characters.
pub const SYNTHETIC_FILE_BODY_LIMIT: usize = 65_536;
/// Longest `synthetic_files.path`.
pub const SYNTHETIC_FILE_PATH_MAX: usize = 512;
/// Longest `synthetic_files.decky_uuid`.
pub const SYNTHETIC_FILE_DECKY_MAX: usize = 64;

/// A stored planner event; `payload` is the raw JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = orchestrator_events)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct OrchestratorEvent {
    pub uuid: String,
    pub ts: NaiveDateTime,
    pub kind: String,
    pub protocol: String,
    pub action: String,
    pub src_decky_uuid: Option<String>,
    pub dst_decky_uuid: String,
    pub success: bool,
    pub payload: String,
}

/// An event to record (the repository sets `uuid` and `ts`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrchestratorEvent {
    /// `traffic` | `file`.
    pub kind: String,
    /// `ssh` today.
    pub protocol: String,
    /// `exec:tcp_connect:22`, `file:create`, `file:edit`.
    pub action: String,
    pub src_decky_uuid: Option<String>,
    pub dst_decky_uuid: String,
    pub success: bool,
    /// Driver payload (serialised to JSON text).
    pub payload: serde_json::Value,
}

/// A stored synthetic file.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = synthetic_files)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct SyntheticFile {
    pub uuid: String,
    pub decky_uuid: String,
    pub path: String,
    pub persona: String,
    pub content_class: String,
    pub created_at: NaiveDateTime,
    pub last_modified: NaiveDateTime,
    pub edit_count: i32,
    pub content_hash: String,
    pub last_body: String,
    pub truncated: bool,
}

/// A synthetic file to record. `body` is the FULL body: the repository hashes it and clips
/// the stored copy.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSyntheticFile {
    pub decky_uuid: String,
    pub path: String,
    pub persona: String,
    pub content_class: String,
    pub body: String,
}

/// Partial update of a synthetic file; `None` fields are left alone. `body` (full) sets
/// `content_hash`, `last_body` (clipped) and `truncated`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyntheticFilePatch {
    pub last_modified: Option<NaiveDateTime>,
    pub edit_count: Option<i32>,
    pub body: Option<String>,
}

/// Filters of synthetic-file listings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyntheticFileFilter {
    pub decky_uuid: Option<String>,
    pub persona: Option<String>,
    pub content_class: Option<String>,
}

/// A `realism_config` row; `value` is JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = realism_config)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct RealismConfigRow {
    pub uuid: String,
    pub key: String,
    pub value: String,
    pub updated_at: NaiveDateTime,
}

impl RealismConfigRow {
    /// The value parsed as JSON (`None` if the stored text is not JSON).
    pub fn value_json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.value).ok()
    }
}

/// Clip a body to [`SYNTHETIC_FILE_BODY_LIMIT`] characters (never splitting a UTF-8
/// sequence); returns the stored text and `truncated`, which is true when the stored body hit
/// the cap (`chars ≥ limit`, realism spec §11.1 and the dashboard contract).
pub fn clip_body(body: &str) -> (String, bool) {
    match body.char_indices().nth(SYNTHETIC_FILE_BODY_LIMIT) {
        Some((cut, _)) => (body[..cut].to_owned(), true),
        None => {
            let hit = body.chars().count() >= SYNTHETIC_FILE_BODY_LIMIT;
            (body.to_owned(), hit)
        }
    }
}

/// Lowercase hex SHA-256 of the UTF-8 body.
pub fn content_hash(body: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(body.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_counts_characters() {
        let short = "é".repeat(10);
        assert_eq!(clip_body(&short), (short.clone(), false));
        // Exactly at the cap: kept whole, flagged as having hit the cap.
        let exact = "x".repeat(SYNTHETIC_FILE_BODY_LIMIT);
        assert_eq!(clip_body(&exact), (exact.clone(), true));
        let below = "x".repeat(SYNTHETIC_FILE_BODY_LIMIT - 1);
        assert_eq!(clip_body(&below), (below.clone(), false));
        let long = "é".repeat(SYNTHETIC_FILE_BODY_LIMIT + 3);
        let (clipped, cut) = clip_body(&long);
        assert!(cut);
        assert_eq!(clipped.chars().count(), SYNTHETIC_FILE_BODY_LIMIT);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            content_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    /// The unique key (decky_uuid, path) must fit MySQL's 3072-byte utf8mb4 key limit.
    #[test]
    fn unique_key_fits_mysql_limit() {
        const { assert!((SYNTHETIC_FILE_DECKY_MAX + SYNTHETIC_FILE_PATH_MAX) * 4 <= 3072) };
    }
}

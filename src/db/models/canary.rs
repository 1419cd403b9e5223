//! Canary blob, token and trigger rows (canary.md §4).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{canary_blobs, canary_tokens, canary_triggers};

/// A stored upload.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = canary_blobs)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct CanaryBlob {
    pub uuid: String,
    pub sha256: String,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub uploaded_by: String,
    pub uploaded_at: NaiveDateTime,
}

/// A token row (`secret_seed` and `fingerprint_nonce` never leave the server).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = canary_tokens)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct CanaryToken {
    pub uuid: String,
    pub kind: String,
    pub decky_name: String,
    pub topology_id: Option<String>,
    pub blob_uuid: Option<String>,
    pub instrumenter: Option<String>,
    pub generator: Option<String>,
    pub placement_path: String,
    pub callback_token: String,
    pub secret_seed: String,
    pub placed_at: NaiveDateTime,
    pub last_triggered_at: Option<NaiveDateTime>,
    pub trigger_count: i64,
    pub created_by: String,
    pub state: String,
    pub last_error: Option<String>,
    pub fingerprint_nonce: Option<String>,
    /// Callback base used when the artifact was made.
    pub http_base: String,
    /// DNS zone used when the artifact was made.
    pub dns_zone: String,
}

/// A trigger row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = canary_triggers)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct CanaryTrigger {
    pub uuid: String,
    pub token_uuid: String,
    pub occurred_at: NaiveDateTime,
    pub src_ip: String,
    pub user_agent: Option<String>,
    pub request_path: Option<String>,
    pub dns_qname: Option<String>,
    /// JSON object text.
    pub raw_headers: String,
    pub attacker_id: Option<String>,
}

/// Exact-match filters of the token list (AND-combined).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFilter {
    pub decky_name: Option<String>,
    pub state: Option<String>,
    pub kind: Option<String>,
    pub topology_id: Option<String>,
}

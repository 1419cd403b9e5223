//! Intake rows and insertables. JSON columns are kept as their stored text; the repository
//! decodes them where an API needs values.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{
    attacker_ext, attackers, bounty, credential_reuse, credentials, ingest_quarantine, logs,
};

/// A stored log line.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = logs)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Log {
    pub id: i64,
    pub timestamp: NaiveDateTime,
    pub decky: String,
    pub service: String,
    pub event_type: String,
    pub attacker_ip: String,
    pub raw_line: String,
    pub fields: String,
    pub msg: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub source_worker: Option<String>,
    #[serde(skip)]
    pub line_hash: String,
    /// The received bytes when `raw_line` is not exactly them.
    #[serde(skip)]
    pub raw_bytes: Option<Vec<u8>>,
}

/// A log line to insert.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = logs)]
pub struct NewLog {
    pub timestamp: NaiveDateTime,
    pub decky: String,
    pub service: String,
    pub event_type: String,
    pub attacker_ip: String,
    pub raw_line: String,
    pub fields: String,
    pub msg: Option<String>,
    pub source_worker: Option<String>,
    pub line_hash: String,
    pub raw_bytes: Option<Vec<u8>>,
}

/// A stored bounty.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = bounty)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Bounty {
    pub id: i64,
    pub timestamp: NaiveDateTime,
    pub decky: String,
    pub service: String,
    pub attacker_ip: String,
    pub bounty_type: String,
    pub payload: String,
    pub payload_hash: String,
}

/// A bounty to insert (skipped when (type, ip, payload) exists).
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = bounty)]
pub struct NewBounty {
    pub timestamp: NaiveDateTime,
    pub decky: String,
    pub service: String,
    pub attacker_ip: String,
    pub bounty_type: String,
    pub payload: String,
    pub payload_hash: String,
}

/// The profiler-computed columns of a stored attacker row.
///
/// As a changeset every column is written (`None` → NULL) and the statement text is fixed, so
/// the prepared statement is reused across rows.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = attackers, primary_key(uuid), treat_none_as_null = true)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Attacker {
    pub uuid: String,
    pub ip: String,
    pub first_seen: NaiveDateTime,
    pub last_seen: NaiveDateTime,
    pub event_count: i64,
    pub service_count: i64,
    pub decky_count: i64,
    pub services: String,
    pub deckies: String,
    #[diesel(treat_none_as_null = true)]
    pub traversal_path: Option<String>,
    pub is_traversal: bool,
    pub bounty_count: i64,
    pub credential_count: i64,
    pub fingerprints: String,
    pub commands: String,
    pub updated_at: NaiveDateTime,
}

/// The remaining columns of an attacker row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = attacker_ext)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct AttackerExt {
    pub uuid: String,
    pub ip: String,
    pub identity_id: Option<String>,
    pub all_deckies: String,
    pub country_code: Option<String>,
    pub country_source: Option<String>,
    pub asn: Option<i64>,
    pub as_name: Option<String>,
    pub bgp_prefix: Option<String>,
    pub asn_source: Option<String>,
    pub rpki_status: Option<String>,
    pub rpki_source: Option<String>,
    pub ptr_record: Option<String>,
}

/// A stored credential.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = credentials)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Credential {
    pub id: i64,
    pub attacker_ip: String,
    pub attacker_uuid: Option<String>,
    pub decky_name: String,
    pub service: String,
    pub principal: Option<String>,
    pub principal_key: String,
    pub secret_kind: String,
    pub secret_sha256: String,
    pub secret_b64: Option<String>,
    pub secret_printable: Option<String>,
    pub outcome: Option<String>,
    pub fields: String,
    pub first_seen: NaiveDateTime,
    pub last_seen: NaiveDateTime,
    pub attempt_count: i64,
}

/// A credential attempt to upsert.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = credentials)]
pub struct NewCredential {
    pub attacker_ip: String,
    pub decky_name: String,
    pub service: String,
    pub principal: Option<String>,
    pub principal_key: String,
    pub secret_kind: String,
    pub secret_sha256: String,
    pub secret_b64: Option<String>,
    pub secret_printable: Option<String>,
    pub outcome: Option<String>,
    pub fields: String,
    pub first_seen: NaiveDateTime,
    pub last_seen: NaiveDateTime,
    pub attempt_count: i64,
    /// Write sequence of the batch (set by the commit).
    pub touched_seq: i64,
}

/// A credential-reuse finding (read and written whole).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = credential_reuse)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct CredentialReuse {
    pub id: String,
    pub secret_sha256: String,
    pub secret_kind: String,
    #[diesel(treat_none_as_null = true)]
    pub principal: Option<String>,
    pub principal_key: String,
    pub attacker_uuids: String,
    pub attacker_ips: String,
    pub deckies: String,
    pub services: String,
    pub target_count: i64,
    pub attempt_count: i64,
    pub confidence: f64,
    pub first_seen: NaiveDateTime,
    pub last_seen: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A quarantined line.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = ingest_quarantine)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Quarantined {
    pub id: i64,
    pub received_at: NaiveDateTime,
    pub source: String,
    pub reason_code: String,
    pub reason: String,
    pub raw_line: String,
    #[serde(skip)]
    pub line_hash: String,
    /// The received bytes when `raw_line` is not exactly them.
    #[serde(skip)]
    pub raw_bytes: Option<Vec<u8>>,
}

/// A line to quarantine.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = ingest_quarantine)]
pub struct NewQuarantined {
    pub received_at: NaiveDateTime,
    pub source: String,
    pub reason_code: String,
    pub reason: String,
    pub raw_line: String,
    pub line_hash: String,
    pub raw_bytes: Option<Vec<u8>>,
}

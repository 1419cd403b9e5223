//! clustering rows and insertables.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::clustering::observation_view::attackers;
use crate::db::schema::{attacker_identities, campaign_evidence, campaigns, identity_evidence};

/// One `attacker_identities` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = attacker_identities, primary_key(uuid))]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Identity {
    pub uuid: String,
    pub schema_version: i64,
    pub campaign_id: Option<String>,
    pub first_seen_at: Option<NaiveDateTime>,
    pub last_seen_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub confidence: Option<f64>,
    pub observation_count: i64,
    pub ja3_hashes: Option<String>,
    pub hassh_hashes: Option<String>,
    pub ja4h_hashes: Option<String>,
    pub ja4_quic_hashes: Option<String>,
    pub http_versions_seen: Option<String>,
    pub tls_cert_sha256: Option<String>,
    pub ipv6_link_local_iids: Option<String>,
    pub payload_simhashes: Option<String>,
    pub c2_endpoints: Option<String>,
    pub kd_digraph_simhash: Option<Vec<u8>>,
    pub merged_into_uuid: Option<String>,
    pub notes: Option<String>,
}

/// A new identity, minted by the tick with its roll-ups already computed.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = attacker_identities)]
pub struct NewIdentity {
    pub uuid: String,
    pub schema_version: i64,
    pub first_seen_at: Option<NaiveDateTime>,
    pub last_seen_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub observation_count: i64,
    pub ja3_hashes: Option<String>,
    pub hassh_hashes: Option<String>,
    pub tls_cert_sha256: Option<String>,
    pub payload_simhashes: Option<String>,
    pub c2_endpoints: Option<String>,
}

/// The columns the tick maintains on an existing identity (a full overwrite, NULLs included).
#[derive(Debug, Clone, PartialEq, AsChangeset)]
#[diesel(table_name = attacker_identities, treat_none_as_null = true)]
pub struct IdentityMaintenance {
    pub observation_count: i64,
    pub first_seen_at: Option<NaiveDateTime>,
    pub last_seen_at: Option<NaiveDateTime>,
    pub ja3_hashes: Option<String>,
    pub hassh_hashes: Option<String>,
    pub tls_cert_sha256: Option<String>,
    pub payload_simhashes: Option<String>,
    pub c2_endpoints: Option<String>,
    pub updated_at: NaiveDateTime,
}

impl IdentityMaintenance {
    /// The maintained columns of a stored row (with its own `updated_at`).
    pub fn of(row: &Identity) -> Self {
        IdentityMaintenance {
            observation_count: row.observation_count,
            first_seen_at: row.first_seen_at,
            last_seen_at: row.last_seen_at,
            ja3_hashes: row.ja3_hashes.clone(),
            hassh_hashes: row.hassh_hashes.clone(),
            tls_cert_sha256: row.tls_cert_sha256.clone(),
            payload_simhashes: row.payload_simhashes.clone(),
            c2_endpoints: row.c2_endpoints.clone(),
            updated_at: row.updated_at,
        }
    }

    /// Equal in everything but `updated_at`.
    pub fn same_content(&self, other: &Self) -> bool {
        Self {
            updated_at: other.updated_at,
            ..self.clone()
        } == *other
    }
}

/// One `campaigns` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = campaigns, primary_key(uuid))]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Campaign {
    pub uuid: String,
    pub schema_version: i64,
    pub first_seen_at: Option<NaiveDateTime>,
    pub last_seen_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub confidence: Option<f64>,
    pub identity_count: i64,
    pub ja3_hashes: Option<String>,
    pub hassh_hashes: Option<String>,
    pub tls_cert_sha256: Option<String>,
    pub payload_simhashes: Option<String>,
    pub c2_endpoints: Option<String>,
    pub merged_into_uuid: Option<String>,
    pub notes: Option<String>,
}

/// A new campaign.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = campaigns)]
pub struct NewCampaign {
    pub uuid: String,
    pub schema_version: i64,
    pub first_seen_at: Option<NaiveDateTime>,
    pub last_seen_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub identity_count: i64,
}

/// The columns the campaign tick maintains on an existing campaign (clustering.md §10.6): the
/// number of active identities literally FK'd to it and the span of their first/last seen.
#[derive(Debug, Clone, PartialEq, AsChangeset)]
#[diesel(table_name = campaigns, treat_none_as_null = true)]
pub struct CampaignMaintenance {
    pub identity_count: i64,
    pub first_seen_at: Option<NaiveDateTime>,
    pub last_seen_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
}

impl CampaignMaintenance {
    /// The maintained columns of a stored row (with its own `updated_at`).
    pub fn of(row: &Campaign) -> Self {
        CampaignMaintenance {
            identity_count: row.identity_count,
            first_seen_at: row.first_seen_at,
            last_seen_at: row.last_seen_at,
            updated_at: row.updated_at,
        }
    }

    /// Equal in everything but `updated_at`.
    pub fn same_content(&self, other: &Self) -> bool {
        Self {
            updated_at: other.updated_at,
            ..self.clone()
        } == *other
    }
}

/// One stored identity evidence edge.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = identity_evidence)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct IdentityEvidenceRow {
    #[serde(skip)]
    pub id: i64,
    #[serde(skip)]
    pub identity_uuid: String,
    pub observation_a: String,
    pub observation_b: String,
    pub signal: String,
    pub value: String,
    pub weight: f64,
    #[serde(skip)]
    pub created_at: NaiveDateTime,
}

/// A new identity evidence edge.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = identity_evidence)]
pub struct NewIdentityEvidence {
    pub identity_uuid: String,
    pub observation_a: String,
    pub observation_b: String,
    pub signal: String,
    pub value: String,
    pub weight: f64,
    pub created_at: NaiveDateTime,
}

/// One stored campaign evidence edge.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = campaign_evidence)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct CampaignEvidenceRow {
    #[serde(skip)]
    pub id: i64,
    #[serde(skip)]
    pub campaign_uuid: String,
    pub identity_a: String,
    pub identity_b: String,
    pub weight: f64,
    pub handoff: f64,
    pub shared_infra: f64,
    pub overlap: f64,
    pub cohort: f64,
    pub keystroke: f64,
    pub handoff_decky: Option<String>,
    /// JSON list of shared payload hashes / C2 endpoints.
    pub shared_tokens: String,
    #[serde(skip)]
    pub created_at: NaiveDateTime,
    /// What backed the handoff (`shared_infra`, `keystroke`, `repeated_handoff`), if anything.
    pub handoff_corroboration: Option<String>,
    /// JSON list of every decky with a handoff between the pair.
    pub handoff_deckies: String,
}

/// A new campaign evidence edge.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = campaign_evidence)]
pub struct NewCampaignEvidence {
    pub campaign_uuid: String,
    pub identity_a: String,
    pub identity_b: String,
    pub weight: f64,
    pub handoff: f64,
    pub shared_infra: f64,
    pub overlap: f64,
    pub cohort: f64,
    pub keystroke: f64,
    pub handoff_decky: Option<String>,
    pub shared_tokens: String,
    pub created_at: NaiveDateTime,
    pub handoff_corroboration: Option<String>,
    pub handoff_deckies: String,
}

/// An observation (attacker) row as the clustering routes show it (the column subset the
/// clusterer knows; intake's full row shape is richer).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = attackers)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct ObservationRecord {
    pub uuid: String,
    pub ip: String,
    pub identity_id: Option<String>,
    pub first_seen: NaiveDateTime,
    pub last_seen: NaiveDateTime,
    pub event_count: i64,
}

/// A minimal attacker row (tests, benches and tools seeding observations).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = attackers)]
pub struct NewObservation {
    pub uuid: String,
    pub ip: String,
    pub identity_id: Option<String>,
    pub first_seen: NaiveDateTime,
    pub last_seen: NaiveDateTime,
    pub event_count: i64,
    pub fingerprints: Option<String>,
    pub asn: Option<i64>,
    pub payload_hashes: Option<String>,
    pub c2_endpoints: Option<String>,
    pub updated_at: NaiveDateTime,
}

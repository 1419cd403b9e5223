//! intel rows: `attacker_intel`.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::attacker_intel;
use crate::db::{DbError, JsonText};
use crate::domain::intel::{IntelFields, Verdict};

/// Current `attacker_intel.schema_version`.
pub const INTEL_SCHEMA_VERSION: i32 = 1;

/// One stored `attacker_intel` row (also its insertable and changeset).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = attacker_intel)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
#[diesel(treat_none_as_null = true)]
pub struct AttackerIntel {
    pub uuid: String,
    pub attacker_uuid: String,
    pub attacker_ip: String,
    pub schema_version: i32,
    pub greynoise_classification: Option<String>,
    pub greynoise_name: Option<String>,
    pub greynoise_tags: JsonText,
    pub greynoise_raw: JsonText,
    pub greynoise_queried_at: Option<NaiveDateTime>,
    pub abuseipdb_score: Option<i32>,
    pub abuseipdb_categories: JsonText,
    pub abuseipdb_raw: JsonText,
    pub abuseipdb_queried_at: Option<NaiveDateTime>,
    pub feodo_listed: Option<bool>,
    pub feodo_malware_family: Option<String>,
    pub feodo_raw: JsonText,
    pub feodo_queried_at: Option<NaiveDateTime>,
    pub threatfox_listed: Option<bool>,
    pub threatfox_threat_types: JsonText,
    pub threatfox_ioc_types: JsonText,
    pub threatfox_malware_families: JsonText,
    pub threatfox_raw: JsonText,
    pub threatfox_queried_at: Option<NaiveDateTime>,
    pub aggregate_verdict: Option<String>,
    pub cached_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// A fresh `attacker_intel.uuid`: UUIDv4 as 32 lowercase hex characters.
pub fn new_intel_uuid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// UTC instant → stored timestamp (naive UTC, microseconds: pitfall 7).
pub fn to_db_time(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc().trunc_subsecs(6)
}

fn json<T: Serialize>(v: &T) -> Result<JsonText, DbError> {
    Ok(JsonText::from_serialize(v)?)
}

impl AttackerIntel {
    /// The row for `fields` (uuid reused when the row exists, minted otherwise).
    pub fn from_fields(
        uuid: String,
        attacker_uuid: &str,
        attacker_ip: &str,
        f: &IntelFields,
        cached_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<AttackerIntel, DbError> {
        Ok(AttackerIntel {
            uuid,
            attacker_uuid: attacker_uuid.to_owned(),
            attacker_ip: attacker_ip.to_owned(),
            schema_version: INTEL_SCHEMA_VERSION,
            greynoise_classification: f.greynoise_classification.clone(),
            greynoise_name: f.greynoise_name.clone(),
            greynoise_tags: json(&f.greynoise_tags)?,
            greynoise_raw: JsonText(f.greynoise_raw.clone()),
            greynoise_queried_at: f.greynoise_queried_at.map(to_db_time),
            abuseipdb_score: f.abuseipdb_score,
            abuseipdb_categories: json(&f.abuseipdb_categories)?,
            abuseipdb_raw: JsonText(f.abuseipdb_raw.clone()),
            abuseipdb_queried_at: f.abuseipdb_queried_at.map(to_db_time),
            feodo_listed: f.feodo_listed,
            feodo_malware_family: f.feodo_malware_family.clone(),
            feodo_raw: JsonText(f.feodo_raw.clone()),
            feodo_queried_at: f.feodo_queried_at.map(to_db_time),
            threatfox_listed: f.threatfox_listed,
            threatfox_threat_types: json(&f.threatfox_threat_types)?,
            threatfox_ioc_types: json(&f.threatfox_ioc_types)?,
            threatfox_malware_families: json(&f.threatfox_malware_families)?,
            threatfox_raw: JsonText(f.threatfox_raw.clone()),
            threatfox_queried_at: f.threatfox_queried_at.map(to_db_time),
            aggregate_verdict: f.aggregate_verdict.map(|v| v.as_str().to_owned()),
            cached_at: to_db_time(cached_at),
            expires_at: to_db_time(expires_at),
        })
    }

    /// The provider columns as domain data. A list column holding something else than a
    /// list of the right type is a [`DbError::Json`].
    pub fn fields(&self) -> Result<IntelFields, DbError> {
        Ok(IntelFields {
            greynoise_classification: self.greynoise_classification.clone(),
            greynoise_name: self.greynoise_name.clone(),
            greynoise_tags: self.greynoise_tags.to_typed()?,
            greynoise_raw: self.greynoise_raw.0.clone(),
            greynoise_queried_at: self.greynoise_queried_at.map(|t| t.and_utc()),
            abuseipdb_score: self.abuseipdb_score,
            abuseipdb_categories: self.abuseipdb_categories.to_typed()?,
            abuseipdb_raw: self.abuseipdb_raw.0.clone(),
            abuseipdb_queried_at: self.abuseipdb_queried_at.map(|t| t.and_utc()),
            feodo_listed: self.feodo_listed,
            feodo_malware_family: self.feodo_malware_family.clone(),
            feodo_raw: self.feodo_raw.0.clone(),
            feodo_queried_at: self.feodo_queried_at.map(|t| t.and_utc()),
            threatfox_listed: self.threatfox_listed,
            threatfox_threat_types: self.threatfox_threat_types.to_typed()?,
            threatfox_ioc_types: self.threatfox_ioc_types.to_typed()?,
            threatfox_malware_families: self.threatfox_malware_families.to_typed()?,
            threatfox_raw: self.threatfox_raw.0.clone(),
            threatfox_queried_at: self.threatfox_queried_at.map(|t| t.and_utc()),
            aggregate_verdict: self
                .aggregate_verdict
                .as_deref()
                .and_then(Verdict::from_word),
        })
    }
}

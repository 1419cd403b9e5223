//! `ttp_tags` rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::ttp::ttp_tags;

/// One stored tag.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = ttp_tags, primary_key(uuid))]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct TtpTag {
    pub uuid: String,
    pub attacker_uuid: String,
    pub decky_id: String,
    pub service: String,
    pub tactic_id: String,
    pub technique_id: String,
    pub rule_id: String,
    pub log_id: i64,
    pub evidence: String,
    pub observed_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

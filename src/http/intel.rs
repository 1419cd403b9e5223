//! HTTP routes of the intel area: `GET /api/v1/attackers/{uuid}/intel` (intake-and-intel
//! §11.6, dashboard-contract §8.3).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::db::models::intel::AttackerIntel;
use crate::db::repo::intel as repo;
use crate::http::auth::Viewer;
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// The 404 detail the dashboard keys its "no intel cached yet" state on.
pub const NO_INTEL: &str = "No intel cached for this attacker";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/attackers/{uuid}/intel", web::get().to(get_attacker_intel));
}

/// One `attacker_intel` row: every column, datetimes ISO-8601 UTC (`Z`), JSON columns as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AttackerIntelView {
    /// 32-hex row id.
    pub uuid: String,
    pub attacker_uuid: String,
    pub attacker_ip: String,
    pub schema_version: i32,
    /// Lower-cased GreyNoise classification (`malicious`, `benign`, `unknown`, …).
    pub greynoise_classification: Option<String>,
    pub greynoise_name: Option<String>,
    #[schema(value_type = Vec<String>)]
    pub greynoise_tags: Value,
    #[schema(value_type = Object)]
    pub greynoise_raw: Value,
    /// Null: GreyNoise has not answered yet ("pending").
    pub greynoise_queried_at: Option<DateTime<Utc>>,
    /// 0–100.
    pub abuseipdb_score: Option<i32>,
    #[schema(value_type = Vec<i64>)]
    pub abuseipdb_categories: Value,
    #[schema(value_type = Object)]
    pub abuseipdb_raw: Value,
    pub abuseipdb_queried_at: Option<DateTime<Utc>>,
    pub feodo_listed: Option<bool>,
    pub feodo_malware_family: Option<String>,
    /// The feed entry when listed (its `malware` is the family), `{}` otherwise.
    #[schema(value_type = Object)]
    pub feodo_raw: Value,
    pub feodo_queried_at: Option<DateTime<Utc>>,
    pub threatfox_listed: Option<bool>,
    #[schema(value_type = Vec<String>)]
    pub threatfox_threat_types: Value,
    #[schema(value_type = Vec<String>)]
    pub threatfox_ioc_types: Value,
    #[schema(value_type = Vec<String>)]
    pub threatfox_malware_families: Value,
    /// The match list when listed (`[0].malware` is shown), `{}` for no result.
    #[schema(value_type = Object)]
    pub threatfox_raw: Value,
    pub threatfox_queried_at: Option<DateTime<Utc>>,
    /// `malicious` / `suspicious` / `benign` / `unknown`, or null (no opinion yet).
    pub aggregate_verdict: Option<String>,
    pub cached_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<AttackerIntel> for AttackerIntelView {
    fn from(r: AttackerIntel) -> Self {
        let utc = |t: NaiveDateTime| t.and_utc();
        AttackerIntelView {
            uuid: r.uuid,
            attacker_uuid: r.attacker_uuid,
            attacker_ip: r.attacker_ip,
            schema_version: r.schema_version,
            greynoise_classification: r.greynoise_classification,
            greynoise_name: r.greynoise_name,
            greynoise_tags: r.greynoise_tags.0,
            greynoise_raw: r.greynoise_raw.0,
            greynoise_queried_at: r.greynoise_queried_at.map(utc),
            abuseipdb_score: r.abuseipdb_score,
            abuseipdb_categories: r.abuseipdb_categories.0,
            abuseipdb_raw: r.abuseipdb_raw.0,
            abuseipdb_queried_at: r.abuseipdb_queried_at.map(utc),
            feodo_listed: r.feodo_listed,
            feodo_malware_family: r.feodo_malware_family,
            feodo_raw: r.feodo_raw.0,
            feodo_queried_at: r.feodo_queried_at.map(utc),
            threatfox_listed: r.threatfox_listed,
            threatfox_threat_types: r.threatfox_threat_types.0,
            threatfox_ioc_types: r.threatfox_ioc_types.0,
            threatfox_malware_families: r.threatfox_malware_families.0,
            threatfox_raw: r.threatfox_raw.0,
            threatfox_queried_at: r.threatfox_queried_at.map(utc),
            aggregate_verdict: r.aggregate_verdict,
            cached_at: utc(r.cached_at),
            expires_at: utc(r.expires_at),
        }
    }
}

#[utoipa::path(
    get, path = "/api/v1/attackers/{uuid}/intel", tag = "Attackers",
    params(("uuid" = String, Path, description = "Attacker uuid")),
    responses(
        (status = 200, description = "The cached threat-intel row of the attacker", body = AttackerIntelView),
        (status = 404, description = "No intel cached for this attacker (also for unknown uuids)"),
    )
)]
pub async fn get_attacker_intel(
    _viewer: Viewer,
    state: web::Data<AppState>,
    uuid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match repo::get_by_attacker(&state.db, &uuid).await? {
        Some(row) => Ok(HttpResponse::Ok().json(AttackerIntelView::from(row))),
        None => Err(ApiError::not_found(NO_INTEL)),
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(get_attacker_intel), components(schemas(AttackerIntelView)))]
pub struct ApiDoc;

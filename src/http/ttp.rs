//! TTP routes (dashboard-contract.md §8.4 and §17, issue #19 item 4), tag "TTP": the ATT&CK
//! tags of one observation (attacker page) and of one identity (identity page). The dashboard
//! reads an array; an empty section is `200 []`. An unknown uuid is 404 like the other
//! per-attacker / per-identity routes (the page itself is "not found" then).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::models::ttp::TtpTag;
use crate::db::repo::clustering as clustering_repo;
use crate::db::repo::live::Stamp;
use crate::db::repo::ttp as repo;
use crate::domain::clustering::campaign::ukc_phase_for_tactic;
use crate::domain::ttp::tactic_name;
use crate::http::auth::Viewer;
use crate::http::error::ApiError;
use crate::http::iso;
use crate::http::pages;
use crate::http::state::AppState;

/// Most tags one answer carries (the newest).
pub const MAX_TAGS: i64 = 1_000;

/// One ATT&CK tag of attacker activity.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TtpTagView {
    pub uuid: String,
    /// The observation (attacker row) whose activity was tagged.
    pub attacker_uuid: String,
    pub decky: String,
    pub service: String,
    /// ATT&CK tactic id, e.g. `TA0007`.
    #[schema(pattern = r"^TA[0-9]{4}$")]
    pub tactic_id: String,
    /// Tactic name, e.g. `Discovery`.
    pub tactic_name: String,
    /// Unified Kill Chain phase of the tactic (clustering.md §4.1), e.g. `discovery`.
    pub phase: Option<String>,
    /// ATT&CK technique id (parent technique), e.g. `T1082`.
    #[schema(pattern = r"^T[0-9]{4}$")]
    pub technique_id: String,
    pub technique_name: String,
    /// Rule of the tagger's table that fired (`cmd-sysinfo`, `auth-failed`, …).
    pub rule_id: String,
    /// What fired the rule: the command text or the event type (≤ 512 characters).
    pub evidence: String,
    /// Time of the tagged event (ISO-8601 UTC).
    pub timestamp: String,
    /// When the tag was written.
    pub created_at: String,
}

impl From<TtpTag> for TtpTagView {
    fn from(t: TtpTag) -> Self {
        let technique_name = crate::domain::ttp::technique_name(&t.technique_id)
            .unwrap_or_default()
            .to_owned();
        TtpTagView {
            tactic_name: tactic_name(&t.tactic_id).unwrap_or_default().to_owned(),
            phase: ukc_phase_for_tactic(&t.tactic_id).map(str::to_owned),
            technique_name,
            uuid: t.uuid,
            attacker_uuid: t.attacker_uuid,
            decky: t.decky_id,
            service: t.service,
            tactic_id: t.tactic_id,
            technique_id: t.technique_id,
            rule_id: t.rule_id,
            evidence: t.evidence,
            timestamp: iso(t.observed_at),
            created_at: iso(t.created_at),
        }
    }
}

fn views(tags: Vec<TtpTag>) -> Vec<TtpTagView> {
    tags.into_iter().map(TtpTagView::from).collect()
}

#[utoipa::path(
    get, path = "/api/v1/ttp/by-attacker/{uuid}", tag = "TTP",
    params(("uuid" = String, Path, description = "Attacker (observation) uuid")),
    responses(
        (status = 200, description = "The observation's ATT&CK tags, newest event first (at most 1000); `[]` when none", body = Vec<TtpTagView>),
        (status = 404, description = "Attacker not found"),
    )
)]
pub async fn by_attacker(
    _viewer: Viewer,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    pages::cached(
        &state,
        &req,
        &[Stamp::TtpTags, Stamp::Attackers],
        || async {
            if !repo::attacker_exists(&state.db, &path).await? {
                return Err(ApiError::not_found("Attacker not found"));
            }
            let tags = repo::tags_for_attacker(&state.db, &path, MAX_TAGS).await?;
            pages::to_body(&views(tags))
        },
    )
    .await
}

#[utoipa::path(
    get, path = "/api/v1/ttp/by-identity/{uuid}", tag = "TTP",
    params(("uuid" = String, Path, description = "Identity uuid (a merged-out uuid resolves to its winner)")),
    responses(
        (status = 200, description = "ATT&CK tags of every observation linked to the canonical identity, newest event first (at most 1000); `[]` when none", body = Vec<TtpTagView>),
        (status = 404, description = "Identity not found"),
    )
)]
pub async fn by_identity(
    _viewer: Viewer,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // A link of an observation to the identity moves the identity's stamp.
    pages::cached(
        &state,
        &req,
        &[Stamp::TtpTags, Stamp::Identities],
        || async {
            let (identity, _) = clustering_repo::get_identity_by_uuid(&state.db, &path)
                .await?
                .ok_or_else(|| ApiError::not_found("Identity not found"))?;
            let tags = repo::tags_for_identity(&state.db, &identity.uuid, MAX_TAGS).await?;
            pages::to_body(&views(tags))
        },
    )
    .await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/ttp/by-attacker/{uuid}", web::get().to(by_attacker))
        .route("/ttp/by-identity/{uuid}", web::get().to(by_identity));
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(by_attacker, by_identity),
    components(schemas(TtpTagView)),
    tags((name = "TTP", description = "ATT&CK tags of attacker activity"))
)]
pub struct ApiDoc;

//! Identity and campaign routes (dashboard-contract.md §6–§7, spec clustering.md §3.5), tag
//! "Clustering": lists (merged-out rows hidden), details (merge chain followed, at most 8 hops,
//! with the chain and the evidence that joined the members), members, and the two live
//! streams. The static `/events` segments are registered before `/{uuid}` so the streams are
//! not swallowed by the detail routes (the reference's routing bug).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::db::models::clustering::{
    Campaign, CampaignEvidenceRow, Identity, IdentityEvidenceRow, ObservationRecord,
};
use crate::db::repo::clustering as repo;
use crate::db::repo::live::Stamp;
use crate::http::auth::{StreamViewer, Viewer};
use crate::http::error::ApiError;
use crate::http::pages;
use crate::http::pagination::{Page, PageQuery, Pagination, DEFAULT_LIMIT};
use crate::http::sse;
use crate::http::state::AppState;

use crate::http::iso;

/// An identity row as the dashboard reads it. List columns stay JSON-encoded strings (the UI
/// `JSON.parse`s them); `confidence` is always present (explicit null).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IdentityView {
    pub uuid: String,
    pub schema_version: i64,
    pub campaign_id: Option<String>,
    pub first_seen_at: Option<String>,
    pub last_seen_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub confidence: Option<f64>,
    pub observation_count: i64,
    /// JSON-encoded list of strings, or null.
    pub ja3_hashes: Option<String>,
    pub hassh_hashes: Option<String>,
    pub ja4h_hashes: Option<String>,
    pub ja4_quic_hashes: Option<String>,
    pub http_versions_seen: Option<String>,
    pub tls_cert_sha256: Option<String>,
    pub ipv6_link_local_iids: Option<String>,
    pub payload_simhashes: Option<String>,
    pub c2_endpoints: Option<String>,
    /// 16 hex characters (big-endian SimHash), or null.
    pub kd_digraph_simhash: Option<String>,
    pub merged_into_uuid: Option<String>,
    pub notes: Option<String>,
}

impl From<Identity> for IdentityView {
    fn from(i: Identity) -> Self {
        IdentityView {
            uuid: i.uuid,
            schema_version: i.schema_version,
            campaign_id: i.campaign_id,
            first_seen_at: i.first_seen_at.map(iso),
            last_seen_at: i.last_seen_at.map(iso),
            created_at: iso(i.created_at),
            updated_at: iso(i.updated_at),
            confidence: i.confidence,
            observation_count: i.observation_count,
            ja3_hashes: i.ja3_hashes,
            hassh_hashes: i.hassh_hashes,
            ja4h_hashes: i.ja4h_hashes,
            ja4_quic_hashes: i.ja4_quic_hashes,
            http_versions_seen: i.http_versions_seen,
            tls_cert_sha256: i.tls_cert_sha256,
            ipv6_link_local_iids: i.ipv6_link_local_iids,
            payload_simhashes: i.payload_simhashes,
            c2_endpoints: i.c2_endpoints,
            kd_digraph_simhash: i.kd_digraph_simhash.map(hex::encode),
            merged_into_uuid: i.merged_into_uuid,
            notes: i.notes,
        }
    }
}

/// One evidence edge of an identity: which signal joined which two observations.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IdentityEvidenceView {
    pub observation_a: String,
    pub observation_b: String,
    /// `ja3`, `hassh`, `payload_hash` or `c2_endpoint`.
    pub signal: String,
    /// The shared value.
    pub value: String,
    /// Full edge weight (≥ 1.0).
    pub weight: f64,
}

impl From<IdentityEvidenceRow> for IdentityEvidenceView {
    fn from(e: IdentityEvidenceRow) -> Self {
        IdentityEvidenceView {
            observation_a: e.observation_a,
            observation_b: e.observation_b,
            signal: e.signal,
            value: e.value,
            weight: e.weight,
        }
    }
}

/// Identity detail: the canonical row plus live count, chain and evidence.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IdentityDetail {
    #[serde(flatten)]
    pub identity: IdentityView,
    /// Observations literally linked to this identity right now.
    pub observation_count_live: i64,
    /// Uuids read while following `merged_into_uuid` (the requested one first, at most 9).
    pub merge_chain: Vec<String>,
    /// Why the observations are one actor (spanning edges; empty for a singleton).
    pub evidence: Vec<IdentityEvidenceView>,
}

/// An observation (per-IP attacker row) of an identity.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ObservationView {
    pub uuid: String,
    pub ip: String,
    pub identity_id: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub event_count: i64,
}

impl From<ObservationRecord> for ObservationView {
    fn from(o: ObservationRecord) -> Self {
        ObservationView {
            uuid: o.uuid,
            ip: o.ip,
            identity_id: o.identity_id,
            first_seen: iso(o.first_seen),
            last_seen: iso(o.last_seen),
            event_count: o.event_count,
        }
    }
}

/// A campaign row as the dashboard reads it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignView {
    pub uuid: String,
    pub schema_version: i64,
    pub first_seen_at: Option<String>,
    pub last_seen_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
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

impl From<Campaign> for CampaignView {
    fn from(c: Campaign) -> Self {
        CampaignView {
            uuid: c.uuid,
            schema_version: c.schema_version,
            first_seen_at: c.first_seen_at.map(iso),
            last_seen_at: c.last_seen_at.map(iso),
            created_at: iso(c.created_at),
            updated_at: iso(c.updated_at),
            confidence: c.confidence,
            identity_count: c.identity_count,
            ja3_hashes: c.ja3_hashes,
            hassh_hashes: c.hassh_hashes,
            tls_cert_sha256: c.tls_cert_sha256,
            payload_simhashes: c.payload_simhashes,
            c2_endpoints: c.c2_endpoints,
            merged_into_uuid: c.merged_into_uuid,
            notes: c.notes,
        }
    }
}

/// One evidence edge of a campaign with every term of the weight.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignEvidenceView {
    pub identity_a: String,
    pub identity_b: String,
    pub weight: f64,
    pub handoff: f64,
    pub shared_infra: f64,
    pub overlap: f64,
    pub cohort: f64,
    pub keystroke: f64,
    pub handoff_decky: Option<String>,
    /// Every decky on which the pair handed off.
    pub handoff_deckies: Vec<String>,
    /// What backed the handoff: `shared_infra`, `keystroke` or `repeated_handoff`; null for a
    /// lone handoff (weighed 0.45, never an edge on its own) or no handoff.
    pub handoff_corroboration: Option<String>,
    /// Shared payload hashes / C2 endpoints.
    pub shared_tokens: Vec<String>,
}

impl From<CampaignEvidenceRow> for CampaignEvidenceView {
    fn from(e: CampaignEvidenceRow) -> Self {
        CampaignEvidenceView {
            identity_a: e.identity_a,
            identity_b: e.identity_b,
            weight: e.weight,
            handoff: e.handoff,
            shared_infra: e.shared_infra,
            overlap: e.overlap,
            cohort: e.cohort,
            keystroke: e.keystroke,
            handoff_decky: e.handoff_decky,
            handoff_deckies: serde_json::from_str(&e.handoff_deckies).unwrap_or_default(),
            handoff_corroboration: e.handoff_corroboration,
            shared_tokens: serde_json::from_str(&e.shared_tokens).unwrap_or_default(),
        }
    }
}

/// Campaign detail: the canonical row plus live count, chain and evidence.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignDetail {
    #[serde(flatten)]
    pub campaign: CampaignView,
    /// Identities literally linked to this campaign right now.
    pub identity_count_live: i64,
    pub merge_chain: Vec<String>,
    /// Why the identities are one campaign (spanning edges; empty for a singleton).
    pub evidence: Vec<CampaignEvidenceView>,
}

/// A page of identities.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IdentityPage {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub data: Vec<IdentityView>,
}

/// A page of observations.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ObservationPage {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub data: Vec<ObservationView>,
}

/// A page of campaigns.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignPage {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub data: Vec<CampaignView>,
}

fn identity_not_found() -> ApiError {
    ApiError::not_found("Identity not found")
}

fn campaign_not_found() -> ApiError {
    ApiError::not_found("Campaign not found")
}

#[utoipa::path(
    get, path = "/api/v1/identities", tag = "Clustering", params(PageQuery),
    responses((status = 200, description = "Active identities, newest update first", body = IdentityPage))
)]
pub async fn list_identities(
    _viewer: Viewer,
    req: HttpRequest,
    page: Pagination,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    pages::cached(&state, &req, &[Stamp::Identities], || async {
        let total = repo::count_identities(&state.db).await?;
        let rows = repo::list_identities(&state.db, page.limit, page.offset).await?;
        let body: Page<IdentityView> =
            page.page(total, rows.into_iter().map(IdentityView::from).collect());
        pages::to_body(&body)
    })
    .await
}

#[utoipa::path(
    get, path = "/api/v1/identities/{uuid}", tag = "Clustering",
    params(("uuid" = String, Path, description = "Identity uuid (a merged-out uuid resolves to its winner)")),
    responses(
        (status = 200, description = "The canonical identity, its merge chain and evidence", body = IdentityDetail),
        (status = 404, description = "Identity not found"),
    )
)]
pub async fn get_identity(
    _viewer: Viewer,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    pages::cached(
        &state,
        &req,
        &[Stamp::Identities, Stamp::Attackers],
        || async {
            let (identity, chain) = repo::get_identity_by_uuid(&state.db, &path)
                .await?
                .ok_or_else(identity_not_found)?;
            let live = repo::count_observations_for_identity(&state.db, &identity.uuid).await?;
            let evidence = repo::identity_evidence(&state.db, &identity.uuid).await?;
            pages::to_body(&IdentityDetail {
                identity: identity.into(),
                observation_count_live: live,
                merge_chain: chain,
                evidence: evidence.into_iter().map(Into::into).collect(),
            })
        },
    )
    .await
}

#[utoipa::path(
    get, path = "/api/v1/identities/{uuid}/observations", tag = "Clustering",
    params(("uuid" = String, Path, description = "Identity uuid"), PageQuery),
    responses(
        (status = 200, description = "Observations linked to the canonical identity, newest first", body = ObservationPage),
        (status = 404, description = "Identity not found"),
    )
)]
pub async fn identity_observations(
    _viewer: Viewer,
    req: HttpRequest,
    path: web::Path<String>,
    page: Pagination,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    pages::cached(
        &state,
        &req,
        &[Stamp::Identities, Stamp::Attackers],
        || async {
            let (identity, _) = repo::get_identity_by_uuid(&state.db, &path)
                .await?
                .ok_or_else(identity_not_found)?;
            let total = repo::count_observations_for_identity(&state.db, &identity.uuid).await?;
            let rows = repo::list_observations_for_identity(
                &state.db,
                &identity.uuid,
                page.limit,
                page.offset,
            )
            .await?;
            let body: Page<ObservationView> =
                page.page(total, rows.into_iter().map(Into::into).collect());
            pages::to_body(&body)
        },
    )
    .await
}

#[utoipa::path(
    get, path = "/api/v1/identities/events", tag = "Clustering",
    params(("ticket" = Option<String>, Query, description = "Single-use SSE ticket (or an `Authorization: Bearer` header)")),
    responses(
        (status = 200, description = "`snapshot` {identities: [≤50 rows]}, then formed / observation.linked / merged / unmerged / campaign.assigned, each frame's data a bus envelope", content_type = "text/event-stream", body = crate::http::sse::EnvelopeSchema),
        (status = 429, description = "SSE connection limit reached"),
    )
)]
pub async fn identity_events(
    viewer: StreamViewer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let rows = repo::list_identities(&state.db, DEFAULT_LIMIT, 0).await?;
    let rows: Vec<IdentityView> = rows.into_iter().map(Into::into).collect();
    sse::sse_response(
        &state,
        &viewer,
        "identity.>",
        json!({ "identities": rows }),
        sse::strip_family,
    )
    .await
}

#[utoipa::path(
    get, path = "/api/v1/campaigns", tag = "Clustering", params(PageQuery),
    responses((status = 200, description = "Active campaigns, newest update first", body = CampaignPage))
)]
pub async fn list_campaigns(
    _viewer: Viewer,
    req: HttpRequest,
    page: Pagination,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    pages::cached(&state, &req, &[Stamp::Campaigns], || async {
        let total = repo::count_campaigns(&state.db).await?;
        let rows = repo::list_campaigns(&state.db, page.limit, page.offset).await?;
        let body: Page<CampaignView> = page.page(total, rows.into_iter().map(Into::into).collect());
        pages::to_body(&body)
    })
    .await
}

#[utoipa::path(
    get, path = "/api/v1/campaigns/{uuid}", tag = "Clustering",
    params(("uuid" = String, Path, description = "Campaign uuid (a merged-out uuid resolves to its winner)")),
    responses(
        (status = 200, description = "The canonical campaign, its merge chain and evidence", body = CampaignDetail),
        (status = 404, description = "Campaign not found"),
    )
)]
pub async fn get_campaign(
    _viewer: Viewer,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    pages::cached(
        &state,
        &req,
        &[Stamp::Campaigns, Stamp::Identities],
        || async {
            let (campaign, chain) = repo::get_campaign_by_uuid(&state.db, &path)
                .await?
                .ok_or_else(campaign_not_found)?;
            let live = repo::count_identities_for_campaign(&state.db, &campaign.uuid).await?;
            let evidence = repo::campaign_evidence(&state.db, &campaign.uuid).await?;
            pages::to_body(&CampaignDetail {
                campaign: campaign.into(),
                identity_count_live: live,
                merge_chain: chain,
                evidence: evidence.into_iter().map(Into::into).collect(),
            })
        },
    )
    .await
}

#[utoipa::path(
    get, path = "/api/v1/campaigns/{uuid}/identities", tag = "Clustering",
    params(("uuid" = String, Path, description = "Campaign uuid"), PageQuery),
    responses(
        (status = 200, description = "Identities linked to the canonical campaign (merged rows included)", body = IdentityPage),
        (status = 404, description = "Campaign not found"),
    )
)]
pub async fn campaign_identities(
    _viewer: Viewer,
    req: HttpRequest,
    path: web::Path<String>,
    page: Pagination,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    pages::cached(
        &state,
        &req,
        &[Stamp::Campaigns, Stamp::Identities],
        || async {
            let (campaign, _) = repo::get_campaign_by_uuid(&state.db, &path)
                .await?
                .ok_or_else(campaign_not_found)?;
            let total = repo::count_identities_for_campaign(&state.db, &campaign.uuid).await?;
            let rows = repo::list_identities_for_campaign(
                &state.db,
                &campaign.uuid,
                page.limit,
                page.offset,
            )
            .await?;
            let body: Page<IdentityView> =
                page.page(total, rows.into_iter().map(Into::into).collect());
            pages::to_body(&body)
        },
    )
    .await
}

#[utoipa::path(
    get, path = "/api/v1/campaigns/events", tag = "Clustering",
    params(("ticket" = Option<String>, Query, description = "Single-use SSE ticket (or an `Authorization: Bearer` header)")),
    responses(
        (status = 200, description = "`snapshot` {campaigns: [≤50 rows]}, then formed / identity.assigned / merged / unmerged, each frame's data a bus envelope", content_type = "text/event-stream", body = crate::http::sse::EnvelopeSchema),
        (status = 429, description = "SSE connection limit reached"),
    )
)]
pub async fn campaign_events(
    viewer: StreamViewer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let rows = repo::list_campaigns(&state.db, DEFAULT_LIMIT, 0).await?;
    let rows: Vec<CampaignView> = rows.into_iter().map(Into::into).collect();
    sse::sse_response(
        &state,
        &viewer,
        "campaign.>",
        json!({ "campaigns": rows }),
        sse::strip_family,
    )
    .await
}

/// Routes relative to `/api/v1`. The `events` streams come first: actix matches in
/// registration order, so `/identities/events` must not reach `/identities/{uuid}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/identities/events", web::get().to(identity_events))
        .route("/campaigns/events", web::get().to(campaign_events))
        .route("/identities", web::get().to(list_identities))
        .route("/identities/{uuid}", web::get().to(get_identity))
        .route(
            "/identities/{uuid}/observations",
            web::get().to(identity_observations),
        )
        .route("/campaigns", web::get().to(list_campaigns))
        .route("/campaigns/{uuid}", web::get().to(get_campaign))
        .route(
            "/campaigns/{uuid}/identities",
            web::get().to(campaign_identities),
        );
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list_identities,
        identity_events,
        get_identity,
        identity_observations,
        list_campaigns,
        campaign_events,
        get_campaign,
        campaign_identities
    ),
    components(schemas(
        IdentityView,
        IdentityEvidenceView,
        IdentityDetail,
        ObservationView,
        CampaignView,
        CampaignEvidenceView,
        CampaignDetail,
        IdentityPage,
        ObservationPage,
        CampaignPage
    ))
)]
pub struct ApiDoc;

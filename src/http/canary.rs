//! Canary token routes (canary.md §12, dashboard-contract.md §10), tag "Canary": blobs
//! (admin: list, multipart upload with a size cap, delete), tokens (viewer: list with
//! filters and real totals, detail, trigger log; admin: create, revoke, preview), and the
//! admin baseline seeding of one decky. `secret_seed` and `fingerprint_nonce` never leave
//! the server.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::canary::{clean_text, CanaryCore, CreateError, NewToken, PreviewError};
use crate::db::models::canary::{CanaryBlob, CanaryToken, CanaryTrigger, TokenFilter};
use crate::db::now_utc;
use crate::db::repo::canary as repo;
use crate::domain::canary::{self as dom, paths, sniff};
use crate::http::auth::{Admin, Viewer};
use crate::http::error::{parse_json, ApiError};
use crate::http::iso;
use crate::http::pagination::Pagination;
use crate::http::state::AppState;

/// Default / largest page of the blob and token lists (the dashboard sends no `limit`).
const LIST_DEFAULT: i64 = 500;
const LIST_MAX: i64 = 1000;
/// Default / largest page of the trigger log (§12.9).
const TRIGGERS_DEFAULT: i64 = 100;
const TRIGGERS_MAX: i64 = 500;

fn core(state: &AppState) -> CanaryCore {
    CanaryCore::new(
        state.settings.clone(),
        state.db.clone(),
        state.registry.clone(),
        state.docker.clone(),
    )
}

// ---- wire shapes ---------------------------------------------------------------------------

/// A blob row.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlobView {
    pub uuid: String,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    pub filename: String,
    /// Sniffed MIME type (drives the instrumenter).
    pub content_type: String,
    pub size_bytes: i64,
    pub uploaded_by: String,
    pub uploaded_at: String,
    /// Tokens (any state) made from this blob.
    pub token_count: i64,
}

impl BlobView {
    fn new(b: CanaryBlob, token_count: i64) -> BlobView {
        BlobView {
            uuid: b.uuid,
            sha256: b.sha256,
            filename: b.filename,
            content_type: b.content_type,
            size_bytes: b.size_bytes,
            uploaded_by: b.uploaded_by,
            uploaded_at: iso(b.uploaded_at),
            token_count,
        }
    }
}

/// A token row.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub uuid: String,
    #[schema(pattern = "^(http|dns|aws_passive)$")]
    pub kind: String,
    pub decky_name: String,
    pub topology_id: Option<String>,
    pub blob_uuid: Option<String>,
    pub instrumenter: Option<String>,
    pub generator: Option<String>,
    pub placement_path: String,
    /// The slug: `<base>/c/<slug>` or `<slug>.<zone>`.
    pub callback_token: String,
    pub placed_at: String,
    pub last_triggered_at: Option<String>,
    pub trigger_count: i64,
    pub created_by: String,
    #[schema(pattern = "^(planted|revoked|failed)$")]
    pub state: String,
    pub last_error: Option<String>,
}

impl From<CanaryToken> for TokenView {
    fn from(t: CanaryToken) -> Self {
        TokenView {
            uuid: t.uuid,
            kind: t.kind,
            decky_name: t.decky_name,
            topology_id: t.topology_id,
            blob_uuid: t.blob_uuid,
            instrumenter: t.instrumenter,
            generator: t.generator,
            placement_path: t.placement_path,
            callback_token: t.callback_token,
            placed_at: iso(t.placed_at),
            last_triggered_at: t.last_triggered_at.map(iso),
            trigger_count: t.trigger_count,
            created_by: t.created_by,
            state: t.state,
            last_error: t.last_error,
        }
    }
}

/// A trigger row with its headers decoded.
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerView {
    pub uuid: String,
    pub token_uuid: String,
    pub occurred_at: String,
    pub src_ip: String,
    pub user_agent: Option<String>,
    pub request_path: Option<String>,
    pub dns_qname: Option<String>,
    /// Request headers (lowercase names) as stored; `{}` for DNS hits.
    #[schema(value_type = Object)]
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// Attacker (observation) row whose IP made the hit, when known.
    pub attacker_id: Option<String>,
}

impl From<CanaryTrigger> for TriggerView {
    fn from(t: CanaryTrigger) -> Self {
        TriggerView {
            uuid: t.uuid,
            token_uuid: t.token_uuid,
            occurred_at: iso(t.occurred_at),
            src_ip: t.src_ip,
            user_agent: t.user_agent,
            request_path: t.request_path,
            dns_qname: t.dns_qname,
            headers: dom::decode_headers(&t.raw_headers),
            attacker_id: t.attacker_id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BlobList {
    pub blobs: Vec<BlobView>,
    /// All blobs (every page).
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
    /// Tokens matching the filters (every page).
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerList {
    pub triggers: Vec<TriggerView>,
    /// All triggers of the token (every page).
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OkMessage {
    /// Always `ok`.
    pub message: String,
}

/// Upload form: one part named `file`.
#[derive(Debug, ToSchema)]
pub struct UploadForm {
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// Token kinds.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Http,
    Dns,
    AwsPassive,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Http => "http",
            TokenKind::Dns => "dns",
            TokenKind::AwsPassive => "aws_passive",
        }
    }
}

/// Create body (§12.5): exactly one of `blob_uuid` / `generator` (empty counts as absent).
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateToken {
    #[schema(min_length = 1, max_length = 255)]
    pub decky_name: String,
    pub kind: TokenKind,
    /// Absolute path inside the decky; no `..` segments, NUL or newlines.
    #[schema(min_length = 1, max_length = 4096)]
    pub placement_path: String,
    #[serde(default)]
    #[schema(max_length = 64)]
    pub blob_uuid: Option<String>,
    /// One of the generator registry (§6).
    #[serde(default)]
    #[schema(max_length = 64)]
    pub generator: Option<String>,
    /// MazeNET scope (no topology exists in this build: any value is 404).
    #[serde(default)]
    #[schema(max_length = 64)]
    pub topology_id: Option<String>,
    /// Accepted and ignored.
    #[serde(default)]
    pub persona_path_hint: Option<String>,
}

/// Baseline seeding body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SeedBaseline {
    #[schema(min_length = 1, max_length = 255)]
    pub decky_name: String,
    /// `linux` (default) or `windows`: picks the default placement paths.
    #[serde(default)]
    #[schema(pattern = "^(linux|windows)$")]
    pub persona: Option<String>,
}

/// Token list filters (exact match, AND-combined) and paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    pub decky_name: Option<String>,
    pub kind: Option<String>,
    pub state: Option<String>,
    pub topology_id: Option<String>,
    /// 1..=1000, default 500.
    #[param(minimum = 1, maximum = 1000, default = 500)]
    pub limit: Option<i64>,
    #[param(minimum = 0, maximum = 2147483647, default = 0)]
    pub offset: Option<i64>,
}

/// Blob list paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlobQuery {
    /// 1..=1000, default 500.
    #[param(minimum = 1, maximum = 1000, default = 500)]
    pub limit: Option<i64>,
    #[param(minimum = 0, maximum = 2147483647, default = 0)]
    pub offset: Option<i64>,
}

/// Trigger log paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TriggerQuery {
    /// 1..=500, default 100.
    #[param(minimum = 1, maximum = 500, default = 100)]
    pub limit: Option<i64>,
    #[param(minimum = 0, maximum = 2147483647, default = 0)]
    pub offset: Option<i64>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn ok() -> HttpResponse {
    HttpResponse::Ok().json(json!({"message": "ok"}))
}

// ---- blobs ---------------------------------------------------------------------------------

#[utoipa::path(
    get, path = "/api/v1/canary/blobs", tag = "Canary", params(BlobQuery),
    responses(
        (status = 200, description = "Blobs, newest upload first, each with its live token count", body = BlobList),
        (status = 422, description = "limit/offset out of range"),
    )
)]
pub async fn list_blobs(
    _a: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let page = Pagination::from_query(req.query_string(), LIST_DEFAULT, LIST_MAX)?;
    let total = repo::count_blobs(&state.db).await?;
    let rows = repo::list_blobs(&state.db, page.limit, page.offset).await?;
    Ok(HttpResponse::Ok().json(BlobList {
        blobs: rows.into_iter().map(|(b, n)| BlobView::new(b, n)).collect(),
        total,
        limit: page.limit,
        offset: page.offset,
    }))
}

fn multipart_error() -> ApiError {
    ApiError::structural(
        "file",
        "expected a multipart/form-data body with a 'file' part",
    )
}

fn too_large(cap: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!("uploaded file exceeds the {cap}-byte limit").into())
}

#[utoipa::path(
    post, path = "/api/v1/canary/blobs", tag = "Canary",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored (also when the same bytes were uploaded before: the first upload's row)", body = BlobView),
        (status = 400, description = "No `file` part, not multipart, or an empty file"),
        (status = 413, description = "The file exceeds DECNET_CANARY_BLOB_MAX_BYTES"),
    )
)]
pub async fn upload_blob(
    a: Admin,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let cap = state.settings.canary.blob_max_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap.saturating_add(64 * 1024)) {
        return Err(too_large(cap));
    }
    let mut mp = actix_multipart::Multipart::new(req.headers(), payload);
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Some(field) = mp.next().await {
        let mut field = field.map_err(|_| multipart_error())?;
        let is_file = field.name() == Some("file") && file.is_none();
        let filename = field
            .content_disposition()
            .and_then(|cd| cd.get_filename().map(str::to_owned));
        let mut buf = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|_| multipart_error())?;
            if is_file {
                if (buf.len() + chunk.len()) as u64 > cap {
                    return Err(too_large(cap));
                }
                buf.extend_from_slice(&chunk);
            }
        }
        if is_file {
            let name = filename
                .map(|f| clean_text(f.trim(), 255))
                .filter(|f| !f.is_empty())
                .unwrap_or_else(|| "(unnamed)".to_owned());
            file = Some((name, buf));
        }
    }
    let Some((filename, bytes)) = file else {
        return Err(multipart_error());
    };
    if bytes.is_empty() {
        return Err(ApiError::BadRequest("uploaded file is empty".into()));
    }
    let content_type = sniff::sniff(&bytes, &filename).to_owned();
    let size = bytes.len() as i64;
    let c = core(&state);
    let store = c.blobs.clone();
    let sha = tokio::task::spawn_blocking(move || store.put(&bytes))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let (row, _) = repo::upsert_blob(
        &state.db,
        CanaryBlob {
            uuid: crate::db::new_uuid(),
            sha256: sha,
            filename,
            content_type,
            size_bytes: size,
            uploaded_by: a.0.uuid.clone(),
            uploaded_at: now_utc(),
        },
    )
    .await?;
    let count = repo::blob_token_counts(&state.db, std::slice::from_ref(&row.uuid))
        .await?
        .get(&row.uuid)
        .copied()
        .unwrap_or(0);
    Ok(HttpResponse::Created().json(BlobView::new(row, count)))
}

#[utoipa::path(
    delete, path = "/api/v1/canary/blobs/{uuid}", tag = "Canary",
    params(("uuid" = String, Path)),
    responses(
        (status = 200, description = "Deleted (row, then bytes)", body = OkMessage),
        (status = 404, description = "blob not found"),
        (status = 409, description = "blob is still referenced by one or more tokens"),
    )
)]
pub async fn delete_blob(
    _a: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let uuid = path.into_inner();
    let Some(blob) = repo::get_blob(&state.db, &uuid).await? else {
        return Err(ApiError::not_found("blob not found"));
    };
    match repo::delete_blob(&state.db, &uuid).await? {
        repo::BlobDelete::NotFound => Err(ApiError::not_found("blob not found")),
        repo::BlobDelete::Referenced => Err(ApiError::conflict(
            "blob is still referenced by one or more tokens",
        )),
        repo::BlobDelete::Deleted => {
            // The same bytes may have been uploaded again meanwhile: keep them then.
            if repo::get_blob_by_sha256(&state.db, &blob.sha256)
                .await?
                .is_none()
            {
                let store = core(&state).blobs;
                let sha = blob.sha256.clone();
                let res = tokio::task::spawn_blocking(move || store.unlink(&sha)).await;
                if let Ok(Err(e)) = res {
                    tracing::warn!(error = %e, "canary blob bytes not removed");
                }
            }
            Ok(ok())
        }
    }
}

// ---- tokens --------------------------------------------------------------------------------

#[utoipa::path(
    get, path = "/api/v1/canary/tokens", tag = "Canary", params(TokenQuery),
    responses(
        (status = 200, description = "Tokens, newest `placed_at` first", body = TokenList),
        (status = 422, description = "limit/offset out of range"),
    )
)]
pub async fn list_tokens(
    _v: Viewer,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let page = Pagination::from_query(req.query_string(), LIST_DEFAULT, LIST_MAX)?;
    let q = web::Query::<TokenQuery>::from_query(req.query_string())
        .map_err(|_| ApiError::invalid_field("query", "is not a valid query string"))?
        .into_inner();
    let filter = TokenFilter {
        decky_name: q.decky_name,
        state: q.state,
        kind: q.kind,
        topology_id: q.topology_id,
    };
    let total = repo::count_tokens(&state.db, &filter).await?;
    let rows = repo::list_tokens(&state.db, &filter, page.limit, page.offset).await?;
    Ok(HttpResponse::Ok().json(TokenList {
        tokens: rows.into_iter().map(TokenView::from).collect(),
        total,
        limit: page.limit,
        offset: page.offset,
    }))
}

#[utoipa::path(
    post, path = "/api/v1/canary/tokens", tag = "Canary", request_body = CreateToken,
    responses(
        (status = 201, description = "Created and planted; a planting failure shows as `state: failed` with `last_error`", body = TokenView),
        (status = 400, description = "Neither or both of blob_uuid/generator, a bad placement_path, an unknown generator, or an upload the instrumenter rejects"),
        (status = 404, description = "blob not found, or topology not found"),
        (status = 410, description = "blob bytes missing on disk; please re-upload"),
        (status = 422, description = "kind not http/dns/aws_passive, a field too long, or a NUL byte"),
    )
)]
pub async fn create_token(
    a: Admin,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let b: CreateToken = parse_json(&body)?;
    if b.decky_name.is_empty() {
        return Err(ApiError::structural("decky_name", "must not be empty"));
    }
    for (field, v, max) in [
        ("decky_name", Some(&b.decky_name), 255),
        ("placement_path", Some(&b.placement_path), 4096),
        ("blob_uuid", b.blob_uuid.as_ref(), 64),
        ("generator", b.generator.as_ref(), 64),
        ("topology_id", b.topology_id.as_ref(), 64),
    ] {
        if v.is_some_and(|s| s.chars().count() > max) {
            return Err(ApiError::invalid_field(
                field,
                &format!("must be at most {max} characters"),
            ));
        }
    }
    let blob_uuid = non_empty(b.blob_uuid);
    let generator = non_empty(b.generator);
    if blob_uuid.is_some() == generator.is_some() {
        return Err(ApiError::BadRequest(
            "provide exactly one of blob_uuid or generator".into(),
        ));
    }
    paths::validate_placement_path(&b.placement_path)
        .map_err(|m| ApiError::BadRequest(m.into()))?;
    if let Some(g) = &generator {
        if !dom::GENERATORS.contains(&g.as_str()) {
            return Err(ApiError::BadRequest(
                format!("unknown generator: '{g}'").into(),
            ));
        }
    }
    let req = NewToken {
        decky_name: b.decky_name,
        kind: b.kind.as_str().to_owned(),
        placement_path: b.placement_path,
        blob_uuid,
        generator,
        topology_id: non_empty(b.topology_id),
        created_by: a.0.uuid.clone(),
        persona: "linux".into(),
    };
    match core(&state).create_token(req).await {
        Ok(t) => Ok(HttpResponse::Created().json(TokenView::from(t))),
        Err(CreateError::BadRequest(m)) => Err(ApiError::BadRequest(m.into())),
        Err(CreateError::NotFound(m)) => Err(ApiError::not_found(m)),
        Err(CreateError::Gone(m)) => Err(ApiError::Gone(m.into())),
        Err(CreateError::Db(e)) => Err(e.into()),
        Err(CreateError::Store(m)) => Err(ApiError::internal(m)),
    }
}

async fn token_or_404(state: &AppState, uuid: &str) -> Result<CanaryToken, ApiError> {
    repo::get_token(&state.db, uuid)
        .await?
        .ok_or_else(|| ApiError::not_found("token not found"))
}

#[utoipa::path(
    get, path = "/api/v1/canary/tokens/{uuid}", tag = "Canary",
    params(("uuid" = String, Path)),
    responses(
        (status = 200, description = "The token (any state)", body = TokenView),
        (status = 404, description = "token not found"),
    )
)]
pub async fn get_token(
    _v: Viewer,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let t = token_or_404(&state, &path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(TokenView::from(t)))
}

#[utoipa::path(
    delete, path = "/api/v1/canary/tokens/{uuid}", tag = "Canary",
    params(("uuid" = String, Path)),
    responses(
        (status = 200, description = "Revoked: the file is removed and the token is `revoked` (with `last_error` if the removal failed); repeating it repeats the removal", body = OkMessage),
        (status = 404, description = "token not found"),
    )
)]
pub async fn revoke_token(
    _a: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let t = token_or_404(&state, &path.into_inner()).await?;
    core(&state).revoke(&t).await?;
    Ok(ok())
}

#[utoipa::path(
    get, path = "/api/v1/canary/tokens/{uuid}/preview", tag = "Canary",
    params(("uuid" = String, Path)),
    responses(
        (status = 200, description = "The artifact's bytes, re-derived with the addressing used at plant time", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "token not found"),
        (status = 409, description = "Nothing to preview: blob deleted, bytes missing, rejected by the instrumenter, or a generator that cannot run here"),
    )
)]
pub async fn preview_token(
    _a: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let t = token_or_404(&state, &path.into_inner()).await?;
    match core(&state).preview(&t).await {
        Ok(bytes) => Ok(HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(bytes)),
        Err(PreviewError::Conflict(m)) => Err(ApiError::conflict(m)),
        Err(PreviewError::Db(e)) => Err(e.into()),
        Err(PreviewError::Store(m)) => Err(ApiError::internal(m)),
    }
}

#[utoipa::path(
    get, path = "/api/v1/canary/tokens/{uuid}/triggers", tag = "Canary",
    params(("uuid" = String, Path), TriggerQuery),
    responses(
        (status = 200, description = "The token's hits, newest first", body = TriggerList),
        (status = 404, description = "token not found"),
        (status = 422, description = "limit/offset out of range"),
    )
)]
pub async fn list_triggers(
    _v: Viewer,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let page = Pagination::from_query(req.query_string(), TRIGGERS_DEFAULT, TRIGGERS_MAX)?;
    let t = token_or_404(&state, &path.into_inner()).await?;
    let total = repo::count_triggers(&state.db, &t.uuid).await?;
    let rows = repo::list_triggers(&state.db, &t.uuid, page.limit, page.offset).await?;
    Ok(HttpResponse::Ok().json(TriggerList {
        triggers: rows.into_iter().map(TriggerView::from).collect(),
        total,
        limit: page.limit,
        offset: page.offset,
    }))
}

#[utoipa::path(
    post, path = "/api/v1/canary/baseline", tag = "Canary", request_body = SeedBaseline,
    responses(
        (status = 201, description = "The baseline tokens created for the decky (DECNET_CANARY_BASELINE; generators that cannot run are skipped)", body = TokenList),
        (status = 422, description = "persona not linux/windows, or a field too long"),
    )
)]
pub async fn seed_baseline(
    _a: Admin,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let b: SeedBaseline = parse_json(&body)?;
    if b.decky_name.is_empty() {
        return Err(ApiError::structural("decky_name", "must not be empty"));
    }
    if b.decky_name.chars().count() > 255 {
        return Err(ApiError::invalid_field(
            "decky_name",
            "must be at most 255 characters",
        ));
    }
    let persona = b.persona.unwrap_or_else(|| "linux".into());
    if persona != "linux" && persona != "windows" {
        return Err(ApiError::invalid_field(
            "persona",
            "must be linux or windows",
        ));
    }
    let tokens = core(&state).seed_baseline(&b.decky_name, &persona).await;
    let n = tokens.len() as i64;
    Ok(HttpResponse::Created().json(TokenList {
        tokens: tokens.into_iter().map(TokenView::from).collect(),
        total: n,
        limit: n,
        offset: 0,
    }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/canary/blobs", web::get().to(list_blobs))
        .route("/canary/blobs", web::post().to(upload_blob))
        .route("/canary/blobs/{uuid}", web::delete().to(delete_blob))
        .route("/canary/tokens", web::get().to(list_tokens))
        .route("/canary/tokens", web::post().to(create_token))
        .route("/canary/tokens/{uuid}", web::get().to(get_token))
        .route("/canary/tokens/{uuid}", web::delete().to(revoke_token))
        .route(
            "/canary/tokens/{uuid}/preview",
            web::get().to(preview_token),
        )
        .route(
            "/canary/tokens/{uuid}/triggers",
            web::get().to(list_triggers),
        )
        .route("/canary/baseline", web::post().to(seed_baseline));
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list_blobs,
        upload_blob,
        delete_blob,
        list_tokens,
        create_token,
        get_token,
        revoke_token,
        preview_token,
        list_triggers,
        seed_baseline
    ),
    components(schemas(
        BlobView, TokenView, TriggerView, BlobList, TokenList, TriggerList, OkMessage,
        UploadForm, TokenKind, CreateToken, SeedBaseline
    )),
    tags((name = "Canary", description = "Canary tokens: uploads, planted tokens, their hits"))
)]
pub struct ApiDoc;

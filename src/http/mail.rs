//! HTTP routes of the MailDripper (realism.md §8.2, §8.4, §8.5 `kind=email`;
//! dashboard-contract.md §11.3, §12): persona pool, LLM provider, email events.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::actors::mail_dripper::{load_llm_config, write_persona_pool};
use crate::actors::planner::PersonaPool;
use crate::db::models::mail::OrchestratorEmail;
use crate::db::repo::{mail as repo, realism as realism_repo};
use crate::db::Db;
use crate::domain::mail::llm::{LlmConfig, LLM_KEY};
use crate::domain::realism::{parse_personas, Persona, PersonaWarning};
use crate::http::auth::{Admin, Viewer};
use crate::http::error::{parse_json, ApiError};
use crate::http::iso;
use crate::http::pagination::Pagination;
use crate::http::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/realism/personas", web::get().to(get_personas))
        .route("/realism/personas", web::put().to(put_personas))
        .route("/emailgen/personas", web::get().to(get_personas_legacy))
        .route("/emailgen/personas", web::put().to(put_personas_legacy))
        .route("/realism/llm", web::get().to(get_llm))
        .route("/realism/llm", web::put().to(put_llm));
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        get_personas,
        put_personas,
        get_personas_legacy,
        put_personas_legacy,
        get_llm,
        put_llm
    ),
    components(schemas(
        PersonaDoc,
        PersonaTone,
        PersonaLatency,
        PersonasResponse,
        PersonasUpdate,
        LlmView,
        LlmUpdate,
        EmailEventRow
    ))
)]
pub struct ApiDoc;

// ---- personas -----------------------------------------------------------------------------

/// Persona tone.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum PersonaTone {
    Formal,
    Direct,
    Casual,
    Technical,
    Custom,
}

/// Persona reply latency (minimum gap before replying: fast 5 min, normal 1 h, slow 8 h).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum PersonaLatency {
    Fast,
    Normal,
    Slow,
}

/// One persona (`EmailPersona`, realism.md §3.1). Responses always carry all fields.
#[derive(ToSchema)]
pub struct PersonaDoc {
    #[schema(min_length = 1, max_length = 128, example = "Marta Quiroga")]
    pub name: String,
    /// Must contain `@`; the domain (after the last `@`) must contain a dot.
    #[schema(
        min_length = 3,
        max_length = 255,
        example = "mquiroga@acme-logistics.cl"
    )]
    pub email: String,
    #[schema(min_length = 1, max_length = 128, example = "Finance controller")]
    pub role: String,
    #[schema(value_type = Option<PersonaTone>)]
    pub tone: Option<String>,
    /// Required and non-blank when `tone` is `custom`.
    #[schema(max_length = 128)]
    pub tone_custom: Option<String>,
    #[schema(max_items = 12)]
    pub mannerisms: Option<Vec<String>>,
    #[schema(max_length = 8, example = "es")]
    pub language: Option<String>,
    #[schema(max_length = 512)]
    pub signature: Option<String>,
    /// `HH:MM-HH:MM` on the persona's clock; malformed = always on.
    #[schema(max_length = 32, example = "09:00-18:00")]
    pub active_hours: Option<String>,
    #[schema(value_type = Option<PersonaLatency>)]
    pub reply_latency: Option<String>,
    /// Lifts the em-dash suppression.
    pub uses_llms_heavily: Option<bool>,
    /// IANA time zone of the persona's clock (UTC when null).
    #[schema(max_length = 64, example = "America/Santiago")]
    pub timezone: Option<String>,
}

/// The pool and where it lives on disk.
#[derive(Serialize, ToSchema)]
pub struct PersonasResponse {
    /// Resolved pool file (shown even when it does not exist yet).
    #[schema(example = "/etc/decnet/email_personas.json")]
    pub path: String,
    #[schema(value_type = Vec<PersonaDoc>)]
    pub personas: Vec<Persona>,
    /// Entries dropped by a PUT, each naming its index and field (PUT only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<Vec<String>>,
}

/// The whole list to store (the dashboard edits client-side and saves in one PUT).
#[derive(ToSchema)]
pub struct PersonasUpdate {
    pub personas: Vec<PersonaDoc>,
}

fn pool_of(state: &AppState) -> PersonaPool {
    PersonaPool::new(PersonaPool::resolve(
        state.settings.realism.personas_path.as_deref(),
    ))
}

async fn personas_response(state: &AppState) -> PersonasResponse {
    // a fresh pool per request: no cache, so the answer is what is on disk now
    let pool = pool_of(state);
    let personas = pool.load().await.as_ref().clone();
    PersonasResponse {
        path: pool.path().display().to_string(),
        personas,
        dropped: None,
    }
}

#[utoipa::path(
    get, path = "/api/v1/realism/personas", tag = "Realism",
    responses(
        (status = 200, description = "The global persona pool and its file", body = PersonasResponse),
        (status = 401, description = "Not authenticated")
    )
)]
pub async fn get_personas(_viewer: Viewer, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(personas_response(&state).await)
}

#[utoipa::path(
    get, path = "/api/v1/emailgen/personas", tag = "Realism",
    responses(
        (status = 200, description = "Seed-era alias of GET /realism/personas", body = PersonasResponse),
        (status = 401, description = "Not authenticated")
    )
)]
pub async fn get_personas_legacy(viewer: Viewer, state: web::Data<AppState>) -> HttpResponse {
    get_personas(viewer, state).await
}

fn entry_errors(warnings: &[PersonaWarning]) -> Vec<String> {
    warnings
        .iter()
        .map(|w| match w {
            PersonaWarning::InvalidEntry { index, error } => {
                format!("personas[{index}]: {error}")
            }
            other => other.to_string(),
        })
        .collect()
}

#[utoipa::path(
    put, path = "/api/v1/realism/personas", tag = "Realism",
    request_body = PersonasUpdate,
    responses(
        (status = 200, description = "What was stored (invalid entries dropped and listed in `dropped`)", body = PersonasResponse),
        (status = 400, description = "Malformed JSON, `personas` not a list, or every entry invalid (detail names each entry and field)"),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "Admin role required"),
        (status = 413, description = "Body too large"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "A string holds a NUL byte"),
        (status = 500, description = "The pool file could not be written (detail names the path and the env override)")
    )
)]
pub async fn put_personas(
    _admin: Admin,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let doc: Value = parse_json(&body)?;
    let Some(list) = doc.get("personas").filter(|v| v.is_array()) else {
        return Err(ApiError::BadRequest("body.personas must be a list".into()));
    };
    let parsed = parse_personas(Some(list), "en");
    let dropped = entry_errors(&parsed.warnings);
    if parsed.personas.is_empty() && list.as_array().is_some_and(|l| !l.is_empty()) {
        return Err(ApiError::BadRequest(
            format!(
                "every persona failed validation (name, email and role are required): {}",
                dropped.join("; ")
            )
            .into(),
        ));
    }
    for d in &dropped {
        tracing::warn!("personas PUT: {d} (dropped)");
    }
    let pool = pool_of(&state);
    let path = pool.path().to_path_buf();
    let personas = parsed.personas;
    let write_path = path.clone();
    let to_write = personas.clone();
    let written = web::block(move || write_persona_pool(&write_path, &to_write))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if let Err(e) = written {
        tracing::error!(path = %path.display(), error = %e, "persona pool write failed");
        return Ok(HttpResponse::InternalServerError().json(json!({
            "detail": format!(
                "cannot write the persona pool {}: {e}; set DECNET_REALISM_PERSONAS (or DECNET_EMAILGEN_PERSONAS) to a writable file",
                path.display()
            ),
        })));
    }
    Ok(HttpResponse::Ok().json(PersonasResponse {
        path: path.display().to_string(),
        personas,
        dropped: (!dropped.is_empty()).then_some(dropped),
    }))
}

#[utoipa::path(
    put, path = "/api/v1/emailgen/personas", tag = "Realism",
    request_body = PersonasUpdate,
    responses(
        (status = 200, description = "Seed-era alias of PUT /realism/personas", body = PersonasResponse),
        (status = 400, description = "Malformed JSON, `personas` not a list, or every entry invalid"),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "Admin role required"),
        (status = 413, description = "Body too large"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "A string holds a NUL byte"),
        (status = 500, description = "The pool file could not be written")
    )
)]
pub async fn put_personas_legacy(
    admin: Admin,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    put_personas(admin, state, body).await
}

// ---- LLM ----------------------------------------------------------------------------------

/// The LLM provider as the dashboard reads it (the key itself is never returned).
#[derive(Serialize, ToSchema)]
pub struct LlmView {
    #[schema(example = "ollama")]
    pub provider: String,
    /// `null` = no LLM: mail is written by the built-in templates.
    #[schema(example = "http://127.0.0.1:11434")]
    pub base_url: Option<String>,
    #[schema(example = "llama3.1")]
    pub model: String,
    /// Seconds.
    #[schema(example = 60.0)]
    pub timeout: f64,
    pub api_key_set: bool,
}

/// Any subset of the fields; `api_key` absent = keep, `null`/`""` = clear, string = set.
#[derive(ToSchema)]
pub struct LlmUpdate {
    #[schema(pattern = "^ollama$")]
    pub provider: Option<String>,
    /// `""` or `null` clears it (no LLM: template bodies).
    #[schema(max_length = 2048, pattern = "^$|^https?://")]
    pub base_url: Option<String>,
    #[schema(min_length = 1, max_length = 128)]
    pub model: Option<String>,
    #[schema(exclusive_minimum = 0.0, maximum = 600.0)]
    pub timeout: Option<f64>,
    #[schema(max_length = 512)]
    pub api_key: Option<String>,
}

#[utoipa::path(
    get, path = "/api/v1/realism/llm", tag = "Realism",
    responses(
        (status = 200, description = "The LLM provider config", body = LlmView),
        (status = 401, description = "Not authenticated")
    )
)]
pub async fn get_llm(
    _viewer: Viewer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let cfg = load_llm_config(&state.db).await?;
    Ok(HttpResponse::Ok().json(cfg.public_view()))
}

#[utoipa::path(
    put, path = "/api/v1/realism/llm", tag = "Realism",
    request_body = LlmUpdate,
    responses(
        (status = 200, description = "The stored config (the dripper applies it within 5 ticks)", body = LlmView),
        (status = 400, description = "Not an object or a field is invalid (detail names the field)"),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "Admin role required"),
        (status = 413, description = "Body too large"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "A string holds a NUL byte")
    )
)]
pub async fn put_llm(
    _admin: Admin,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let patch: Value = parse_json(&body)?;
    let current = load_llm_config(&state.db).await?;
    let next: LlmConfig = current.merged(&patch).map_err(|e| {
        ApiError::BadRequest(format!("Invalid LLM configuration payload: {e}").into())
    })?;
    let stored = serde_json::to_value(&next).map_err(|e| ApiError::internal(e.to_string()))?;
    realism_repo::set_realism_config(&state.db, LLM_KEY, &stored).await?;
    Ok(HttpResponse::Ok().json(next.public_view()))
}

// ---- email events -------------------------------------------------------------------------

/// An email attempt adapted to the common event shape (`kind=email`, realism.md §8.5).
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailEventRow {
    pub uuid: String,
    pub ts: String,
    #[schema(example = "email")]
    pub kind: String,
    #[schema(example = "smtp")]
    pub protocol: String,
    /// The subject.
    pub action: String,
    /// The sender address.
    pub src_decky_uuid: Option<String>,
    /// The recipient address.
    pub dst_decky_uuid: String,
    pub success: bool,
    /// JSON document as a string.
    pub payload: String,
    pub subject: String,
    pub sender_email: String,
    pub recipient_email: String,
    pub language: String,
    pub thread_id: String,
    pub mail_decky_uuid: String,
    pub message_id: String,
    pub in_reply_to: Option<String>,
}

impl From<OrchestratorEmail> for EmailEventRow {
    fn from(e: OrchestratorEmail) -> Self {
        EmailEventRow {
            uuid: e.uuid,
            ts: iso(e.ts),
            kind: "email".into(),
            protocol: "smtp".into(),
            action: e.subject.clone(),
            src_decky_uuid: Some(e.sender_email.clone()),
            dst_decky_uuid: e.recipient_email.clone(),
            success: e.success,
            payload: e.payload,
            subject: e.subject,
            sender_email: e.sender_email,
            recipient_email: e.recipient_email,
            language: e.language,
            thread_id: e.thread_id,
            mail_decky_uuid: e.mail_decky_uuid,
            message_id: e.message_id,
            in_reply_to: e.in_reply_to,
        }
    }
}

/// The `kind=email` page of `/orchestrator/events` (reads only `orchestrator_emails`).
pub async fn list_email_events(db: &Db, page: Pagination) -> Result<HttpResponse, ApiError> {
    let total = repo::count_orchestrator_emails(db, None).await?;
    let rows =
        repo::list_orchestrator_emails(db, page.limit, page.offset, &Default::default()).await?;
    let data: Vec<EmailEventRow> = rows.into_iter().map(EmailEventRow::from).collect();
    Ok(HttpResponse::Ok().json(page.page(total, data)))
}

//! HTTP routes of the realism area (realism.md §8, dashboard-contract.md §11.1–§11.2, §13):
//! planner config, synthetic files, orchestrator events (+ failure stats) and their SSE stream.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::actors::planner::{load_weights, ConfigLoad, WEIGHTS_KEY};
use crate::actors::topics::Envelope;
use crate::db::models::realism::{
    OrchestratorEvent, SyntheticFile, SyntheticFileFilter, SYNTHETIC_FILE_BODY_LIMIT,
};
use crate::db::repo::realism as repo;
use crate::db::{now_utc, Db};
use crate::domain::realism::{ConfigError, RealismWeights};
use crate::http::auth::{Admin, StreamViewer, Viewer};
use crate::http::error::{parse_json_allowing_nul, ApiError};
use crate::http::pagination::{Page, Pagination};
use crate::http::sse::{envelope_data, named, second_token, sse_response_with};
use crate::http::state::AppState;

/// Synthetic-files pages are capped lower than the platform default.
pub const SYNTHETIC_FILES_MAX_LIMIT: i64 = 500;
/// Rows in the SSE snapshot frame.
pub const STREAM_SNAPSHOT_ROWS: i64 = 50;
/// Longest `since` window of the stats route.
pub const MAX_STATS_WINDOW_S: i64 = 7 * 24 * 3600;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/realism/config", web::get().to(get_realism_config))
        .route("/realism/config", web::put().to(put_realism_config))
        .route(
            "/realism/synthetic-files",
            web::get().to(list_synthetic_files),
        )
        .route(
            "/realism/synthetic-files/{uuid}",
            web::get().to(get_synthetic_file),
        )
        .route(
            "/orchestrator/events",
            web::get().to(list_orchestrator_events),
        )
        .route(
            "/orchestrator/events/stats",
            web::get().to(orchestrator_event_stats),
        )
        .route(
            "/orchestrator/events/stream",
            web::get().to(orchestrator_event_stream),
        );
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        get_realism_config,
        put_realism_config,
        list_synthetic_files,
        get_synthetic_file,
        list_orchestrator_events,
        orchestrator_event_stats,
        orchestrator_event_stream
    ),
    components(schemas(
        ClassWeightDoc,
        RealismConfigDoc,
        RealismConfigUpdate,
        EventKind,
        SyntheticFileRow,
        SyntheticFileDetail,
        EventRow,
        EventStats
    ))
)]
pub struct ApiDoc;

use crate::http::iso;

fn query_map(req: &HttpRequest) -> Result<HashMap<String, String>, ApiError> {
    web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| ApiError::invalid_field("query", "is not a valid query string"))
}

/// An optional exact-match filter of at most `max` characters.
fn bounded_filter(
    q: &HashMap<String, String>,
    name: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match q.get(name) {
        None => Ok(None),
        Some(v) if v.chars().count() > max => Err(ApiError::invalid_field(
            name,
            &format!("must be at most {max} characters"),
        )),
        Some(v) => Ok(Some(v.clone())),
    }
}

/// The orchestrator event kinds (`kind` filter).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum EventKind {
    Traffic,
    File,
    Email,
}

/// `kind` must match `^(traffic|file|email)$`.
fn kind_param(q: &HashMap<String, String>) -> Result<Option<String>, ApiError> {
    match q.get("kind").map(String::as_str) {
        None => Ok(None),
        Some(k @ ("traffic" | "file" | "email")) => Ok(Some(k.to_owned())),
        Some(_) => Err(ApiError::invalid_field(
            "kind",
            "must match ^(traffic|file|email)$",
        )),
    }
}

// ---- config -------------------------------------------------------------------------------

/// One `{content_class, weight}` entry (documentation schema).
#[derive(Serialize, ToSchema)]
pub struct ClassWeightDoc {
    #[schema(example = "note")]
    pub content_class: String,
    #[schema(minimum = 0, example = 30)]
    pub weight: u32,
}

/// The planner weights payload (documentation schema).
#[derive(Serialize, ToSchema)]
pub struct RealismConfigDoc {
    pub user_class_weights: Vec<ClassWeightDoc>,
    pub system_class_weights: Vec<ClassWeightDoc>,
    pub canary_class_weights: Vec<ClassWeightDoc>,
    #[schema(minimum = 0.0, maximum = 1.0, example = 0.03)]
    pub canary_probability: f64,
    /// Only after a PUT that dropped entries posted on the wrong list.
    pub dropped_entries: Option<Vec<String>>,
}

/// The stored weights on top of the defaults; unusable stored values serve the defaults.
async fn current_weights(db: &Db) -> Result<RealismWeights, ApiError> {
    Ok(match load_weights(db).await {
        ConfigLoad::Applied(w, _) => w,
        ConfigLoad::Missing => RealismWeights::default(),
        ConfigLoad::Unreadable(e) => return Err(e.into()),
        ConfigLoad::Invalid(why) => {
            tracing::warn!(reason = %why, "stored realism weights unusable; serving defaults");
            RealismWeights::default()
        }
    })
}

#[utoipa::path(
    get, path = "/api/v1/realism/config", tag = "Realism",
    responses((status = 200, description = "Live planner weights", body = RealismConfigDoc))
)]
pub async fn get_realism_config(
    _viewer: Viewer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(current_weights(&state.db).await?.to_payload()))
}

/// Placeholder of the PUT body schema; [`update_schema`] writes the real one into the document
/// (it needs JSON Schema's `contains`, which utoipa cannot build).
#[derive(ToSchema)]
pub struct RealismConfigUpdate {}

/// The exact PUT body: an object with any subset of the four keys (others ignored). Every
/// entry names a known content class with a non-negative 32-bit weight; entries of another
/// list's class are dropped, so a list must contain at least one entry of its own classes with
/// a positive weight (`contains`); the probability is in [0, 1].
pub fn update_schema() -> Value {
    use crate::domain::realism::ContentClass;
    let names = |classes: &[ContentClass]| -> Vec<&'static str> {
        classes.iter().map(|c| c.as_str()).collect()
    };
    let list = |own: &[ContentClass]| {
        json!({
            "type": "array",
            "items": {
                "type": "object",
                "required": ["content_class", "weight"],
                "properties": {
                    "content_class": {"type": "string", "enum": names(&ContentClass::ALL)},
                    "weight": {"type": "integer", "minimum": 0, "maximum": u32::MAX}
                }
            },
            "contains": {
                "type": "object",
                "required": ["content_class", "weight"],
                "properties": {
                    "content_class": {"type": "string", "enum": names(own)},
                    "weight": {"type": "integer", "minimum": 1}
                }
            }
        })
    };
    json!({
        "type": "object",
        "description": "Any subset of the four keys; entries of another list's class are dropped and reported in `dropped_entries`",
        "properties": {
            "user_class_weights": list(&ContentClass::USER),
            "system_class_weights": list(&ContentClass::SYSTEM),
            "canary_class_weights": list(&ContentClass::CANARY),
            "canary_probability": {"type": "number", "minimum": 0.0, "maximum": 1.0}
        },
        "example": {"canary_probability": 0.05}
    })
}

#[utoipa::path(
    put, path = "/api/v1/realism/config", tag = "Realism",
    request_body(content = RealismConfigUpdate, description = "Any subset of the four keys"),
    responses(
        (status = 200, description = "The full stored payload", body = RealismConfigDoc),
        (status = 400, description = "Not an object, or a field failed validation (nothing stored)")
    )
)]
pub async fn put_realism_config(
    _admin: Admin,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // Strings of this body never reach storage verbatim (classes are enum values, unknown keys
    // are ignored), so NUL is harmless here and not refused: the document allows any extra key.
    let payload: Value = parse_json_allowing_nul(&body)?;
    // hydrate from storage first, so a partial PUT never resets other stored fields (§11.5)
    let current = current_weights(&state.db).await?;
    let (next, dropped) = current.merged(&payload).map_err(|e| match e {
        ConfigError::NotAnObject => ApiError::BadRequest("body must be an object".into()),
        invalid @ ConfigError::Invalid(_) => ApiError::BadRequest(invalid.to_string().into()),
    })?;
    let stored = next.to_payload();
    repo::set_realism_config(&state.db, WEIGHTS_KEY, &stored).await?;
    let mut out = stored;
    if !dropped.is_empty() {
        if let Some(obj) = out.as_object_mut() {
            obj.insert("dropped_entries".into(), json!(dropped));
        }
    }
    Ok(HttpResponse::Ok().json(out))
}

// ---- synthetic files ----------------------------------------------------------------------

/// A synthetic file without its body (list rows).
#[derive(Debug, Serialize, ToSchema)]
pub struct SyntheticFileRow {
    pub uuid: String,
    pub decky_uuid: String,
    pub path: String,
    pub persona: String,
    pub content_class: String,
    pub created_at: String,
    pub last_modified: String,
    pub edit_count: i32,
    pub content_hash: String,
}

/// A synthetic file with its stored body.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyntheticFileDetail {
    #[serde(flatten)]
    pub row: SyntheticFileRow,
    pub last_body: String,
    /// The stored body hit the 65 536-character cap.
    pub truncated: bool,
}

impl From<&SyntheticFile> for SyntheticFileRow {
    fn from(f: &SyntheticFile) -> Self {
        SyntheticFileRow {
            uuid: f.uuid.clone(),
            decky_uuid: f.decky_uuid.clone(),
            path: f.path.clone(),
            persona: f.persona.clone(),
            content_class: f.content_class.clone(),
            created_at: iso(f.created_at),
            last_modified: iso(f.last_modified),
            edit_count: f.edit_count,
            content_hash: f.content_hash.clone(),
        }
    }
}

/// Filters of the synthetic-files list.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyntheticFileQuery {
    /// 1..=500, default 50.
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<i64>,
    /// Rows to skip, 0..=2147483647, default 0.
    #[param(minimum = 0, maximum = 2147483647, default = 0)]
    pub offset: Option<i64>,
    /// Exact union-view id, ≤ 64 characters.
    #[param(max_length = 64)]
    pub decky_uuid: Option<String>,
    /// Exact persona name, ≤ 128 characters.
    #[param(max_length = 128)]
    pub persona: Option<String>,
    /// Exact content class, ≤ 32 characters.
    #[param(max_length = 32)]
    pub content_class: Option<String>,
}

#[utoipa::path(
    get, path = "/api/v1/realism/synthetic-files", tag = "Realism",
    params(SyntheticFileQuery),
    responses((status = 200, description = "Newest `last_modified` first; rows without body", body = Page<SyntheticFileRow>))
)]
pub async fn list_synthetic_files(
    _viewer: Viewer,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let page = Pagination::from_query(req.query_string(), 50, SYNTHETIC_FILES_MAX_LIMIT)?;
    let q = query_map(&req)?;
    let filter = SyntheticFileFilter {
        decky_uuid: bounded_filter(&q, "decky_uuid", 64)?,
        persona: bounded_filter(&q, "persona", 128)?,
        content_class: bounded_filter(&q, "content_class", 32)?,
    };
    let total = repo::count_synthetic_files(&state.db, &filter).await?;
    let rows = repo::list_synthetic_files(&state.db, &filter, page.limit, page.offset).await?;
    let data: Vec<SyntheticFileRow> = rows.iter().map(SyntheticFileRow::from).collect();
    Ok(HttpResponse::Ok().json(page.page(total, data)))
}

#[utoipa::path(
    get, path = "/api/v1/realism/synthetic-files/{uuid}", tag = "Realism",
    params(("uuid" = String, Path, description = "Synthetic file id")),
    responses(
        (status = 200, description = "The row with its stored body", body = SyntheticFileDetail),
        (status = 404, description = "synthetic file not found")
    )
)]
pub async fn get_synthetic_file(
    _viewer: Viewer,
    state: web::Data<AppState>,
    uuid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let file = repo::get_synthetic_file(&state.db, &uuid)
        .await?
        .ok_or_else(|| ApiError::not_found("synthetic file not found"))?;
    let truncated = file.truncated || file.last_body.chars().count() >= SYNTHETIC_FILE_BODY_LIMIT;
    Ok(HttpResponse::Ok().json(SyntheticFileDetail {
        row: SyntheticFileRow::from(&file),
        last_body: file.last_body,
        truncated,
    }))
}

// ---- orchestrator events ------------------------------------------------------------------

/// One traffic/file event; `payload` is the raw JSON text.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventRow {
    pub uuid: String,
    pub ts: String,
    #[schema(example = "traffic")]
    pub kind: String,
    #[schema(example = "ssh")]
    pub protocol: String,
    #[schema(example = "exec:tcp_connect:22")]
    pub action: String,
    pub src_decky_uuid: Option<String>,
    pub dst_decky_uuid: String,
    pub success: bool,
    /// JSON document as a string.
    pub payload: String,
}

impl From<OrchestratorEvent> for EventRow {
    fn from(e: OrchestratorEvent) -> Self {
        EventRow {
            uuid: e.uuid,
            ts: iso(e.ts),
            kind: e.kind,
            protocol: e.protocol,
            action: e.action,
            src_decky_uuid: e.src_decky_uuid,
            dst_decky_uuid: e.dst_decky_uuid,
            success: e.success,
            payload: e.payload,
        }
    }
}

/// Query of the events list.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Page size, 1..=1000, default 50.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    pub limit: Option<i64>,
    /// Rows to skip, 0..=2147483647, default 0.
    #[param(minimum = 0, maximum = 2147483647, default = 0)]
    pub offset: Option<i64>,
    /// `traffic`, `file` or `email`.
    #[param(value_type = Option<EventKind>)]
    pub kind: Option<String>,
}

#[utoipa::path(
    get, path = "/api/v1/orchestrator/events", tag = "Orchestrator",
    params(EventQuery),
    responses(
        (status = 200, description = "Newest first; without `kind` traffic and file rows only; `kind=email` reads the MailDripper's rows adapted to this shape plus `subject`, `sender_email`, `recipient_email`, `language`, `thread_id`, `mail_decky_uuid`, `message_id`, `in_reply_to` (schema EmailEventRow)", body = Page<EventRow>),
        (status = 422, description = "Bad paging or kind")
    )
)]
pub async fn list_orchestrator_events(
    _viewer: Viewer,
    state: web::Data<AppState>,
    page: Pagination,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let kind = kind_param(&query_map(&req)?)?;
    if kind.as_deref() == Some("email") {
        // Emails live in `orchestrator_emails` (MailDripper); this table is never read for them.
        return crate::http::mail::list_email_events(&state.db, page).await;
    }
    let total = repo::count_orchestrator_events(&state.db, kind.as_deref()).await?;
    let rows =
        repo::list_orchestrator_events(&state.db, page.limit, page.offset, kind.as_deref(), None)
            .await?;
    let data: Vec<EventRow> = rows.into_iter().map(EventRow::from).collect();
    Ok(HttpResponse::Ok().json(page.page(total, data)))
}

/// Failure count of the stats route.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventStats {
    #[schema(example = "1h")]
    pub since: String,
    pub success: bool,
    pub kind: Option<String>,
    pub count: i64,
}

/// `^(\d+)[smhd]$`, > 0, ≤ 7 days → seconds.
pub fn parse_since(raw: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::invalid_field("since", "must match ^(\\d+)[smhd]$, > 0 and <= 7d");
    let unit = raw.chars().last().ok_or_else(bad)?;
    let digits = &raw[..raw.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(mult).ok_or_else(bad)?;
    if secs <= 0 || secs > MAX_STATS_WINDOW_S {
        return Err(bad());
    }
    Ok(secs)
}

/// Query of the stats route.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Window, `^(\d+)[smhd]$`, > 0 and ≤ 7 days, default `1h`.
    #[param(
        pattern = r"^0*(?:[1-7]d|(?:[1-9][0-9]?|1[0-5][0-9]|16[0-8])h|(?:[1-9][0-9]{0,3}|100[0-7][0-9]|10080)m|(?:[1-9][0-9]{0,4}|[1-5][0-9]{5}|60[0-3][0-9]{3}|604[0-7][0-9]{2}|604800)s)$"
    )]
    pub since: Option<String>,
    /// Must be `false` (only failures are counted).
    #[param(required = true, value_type = String, pattern = "^false$")]
    pub success: Option<String>,
    /// `traffic`, `file` or `email`.
    #[param(value_type = Option<EventKind>)]
    pub kind: Option<String>,
}

#[utoipa::path(
    get, path = "/api/v1/orchestrator/events/stats", tag = "Orchestrator",
    params(StatsQuery),
    responses(
        (status = 200, description = "Failures in the window", body = EventStats),
        (status = 422, description = "success not false, bad since or kind")
    )
)]
pub async fn orchestrator_event_stats(
    _viewer: Viewer,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = query_map(&req)?;
    if q.get("success").map(String::as_str) != Some("false") {
        return Err(ApiError::invalid_field(
            "success",
            "only success=false is supported",
        ));
    }
    let since = q.get("since").cloned().unwrap_or_else(|| "1h".to_owned());
    let secs = parse_since(&since)?;
    let kind = kind_param(&q)?;
    let cutoff = now_utc() - TimeDelta::seconds(secs);
    let count = match kind.as_deref() {
        Some("email") => crate::db::repo::mail::count_email_failures(&state.db, cutoff).await?,
        Some(k) => repo::count_orchestrator_failures(&state.db, cutoff, Some(k)).await?,
        // no kind: events and emails
        None => {
            repo::count_orchestrator_failures(&state.db, cutoff, None).await?
                + crate::db::repo::mail::count_email_failures(&state.db, cutoff).await?
        }
    };
    Ok(HttpResponse::Ok().json(EventStats {
        since,
        success: false,
        kind,
        count,
    }))
}

/// The relayed data of a planner event, with the envelope `ts` as ISO-8601 UTC (the
/// dashboard computes ages from it; dashboard-contract.md §13).
fn stream_frame(env: &Envelope) -> Value {
    let mut data = envelope_data(env);
    let secs = env.ts.floor();
    let micros = ((env.ts - secs) * 1e6).round().clamp(0.0, 999_999.0);
    if let Some(t) = DateTime::<Utc>::from_timestamp(secs as i64, micros as u32 * 1000) {
        data["ts"] = json!(t.to_rfc3339_opts(SecondsFormat::Micros, true));
    }
    data
}

#[utoipa::path(
    get, path = "/api/v1/orchestrator/events/stream", tag = "Orchestrator",
    params(("ticket" = Option<String>, Query, description = "Single-use ticket from POST /auth/sse-ticket")),
    responses(
        (status = 200, description = "`: keepalive`, `snapshot` {events}, then `traffic` / `file` / `email` events whose data is a bus envelope (`ts` as ISO-8601)", content_type = "text/event-stream", body = crate::http::sse::EnvelopeSchema),
        (status = 429, description = "SSE connection limit reached")
    )
)]
pub async fn orchestrator_event_stream(
    viewer: StreamViewer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let rows =
        repo::list_orchestrator_events(&state.db, STREAM_SNAPSHOT_ROWS, 0, None, None).await?;
    let events: Vec<EventRow> = rows.into_iter().map(EventRow::from).collect();
    sse_response_with(
        &state,
        &viewer,
        "orchestrator.>",
        Some(json!({ "events": events })),
        |env: &Envelope| Some(named(&second_token(&env.topic), &stream_frame(env)).into()),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_windows() {
        assert_eq!(parse_since("1h").unwrap(), 3600);
        assert_eq!(parse_since("30s").unwrap(), 30);
        assert_eq!(parse_since("15m").unwrap(), 900);
        assert_eq!(parse_since("7d").unwrap(), 7 * 86_400);
        assert_eq!(parse_since("168h").unwrap(), 7 * 86_400);
        for bad in [
            "",
            "h",
            "0h",
            "30d",
            "8d",
            "169h",
            "1.5h",
            "-1h",
            "1w",
            "1 h",
            "99999999999999999999d",
            "１h",
        ] {
            assert!(parse_since(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stream_frame_ts_is_iso() {
        let env = Envelope {
            v: 1,
            id: "0".repeat(32),
            topic: "orchestrator.file.local:a".into(),
            kind: "file".into(),
            ts: 1_777_000_000.25,
            payload: json!({"kind": "file"}),
            relay: Default::default(),
        };
        let f = stream_frame(&env);
        assert_eq!(f["ts"], "2026-04-24T03:06:40.250000Z");
        assert_eq!(f["topic"], "orchestrator.file.local:a");
        assert_eq!(f["type"], "file");
    }

    #[test]
    fn kind_validation() {
        let q = |k: &str| HashMap::from([("kind".to_owned(), k.to_owned())]);
        assert_eq!(kind_param(&q("file")).unwrap().as_deref(), Some("file"));
        assert!(kind_param(&q("FILE")).is_err());
        assert!(kind_param(&q("traffic ")).is_err());
        assert_eq!(kind_param(&HashMap::new()).unwrap(), None);
    }
}

//! Intake routes (intake spec §10, §12; dashboard-contract §8, §9): attackers list/detail and
//! their satellites, credentials, credential reuse (secrets grafted in one batched query),
//! logs and the quarantine of unparsable lines. Timestamps are ISO-8601 UTC with `Z`.

use std::collections::{BTreeSet, HashMap};

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use serde::ser::SerializeSeq;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::db::models::intake::{Attacker, AttackerExt, Credential, Log};
use crate::db::repo::intake::{self as repo, AttackerSort, ReuseWithSecret};
use crate::db::repo::live::Stamp;
use crate::domain::syslog::fields::Fields;
use crate::domain::syslog::mail;
use crate::domain::syslog::observation::COMMAND_EVENT_TYPES;
use crate::http::auth::{Admin, StreamViewer, Viewer};
use crate::http::error::ApiError;
use crate::http::iso;
use crate::http::live::LogRow;
use crate::http::pages;
use crate::http::pagination::{Page, PageQuery, Pagination};
use crate::http::sse;
use crate::http::state::AppState;

type Params = HashMap<String, String>;

fn params(req: &HttpRequest) -> Result<Params, ApiError> {
    web::Query::<Params>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| ApiError::invalid_field("query", "is not a valid query string"))
}

/// A filter value; `null`, `NULL`, `undefined` and empty mean absent.
fn opt<'a>(p: &'a Params, k: &str) -> Option<&'a str> {
    p.get(k)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty() && !matches!(*v, "null" | "NULL" | "undefined"))
}

fn json_of(text: &str, fallback: Value) -> Value {
    serde_json::from_str(text).unwrap_or(fallback)
}

fn list_of(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Array(_)) => v,
        _ => json!([]),
    }
}

/// A stored JSON list column as it goes on the wire: passed through as raw JSON (validated, not
/// rebuilt as a `Value` tree — the attackers page carries ~2 KB of fingerprints per row, and
/// building and re-serialising them was most of the page's cost), or `[]` when the stored
/// text is not a JSON list.
#[derive(Debug)]
pub enum JsonList {
    Raw(Box<RawValue>),
    Empty,
}

impl Serialize for JsonList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            JsonList::Raw(r) => r.serialize(s),
            JsonList::Empty => s.serialize_seq(Some(0))?.end(),
        }
    }
}

/// [`JsonList`] of `text`; `rewrite` is applied to the decoded list instead when
/// `needs_rewrite` says the text holds something to rewrite.
fn raw_list_of(
    text: &str,
    needs_rewrite: impl Fn(&str) -> bool,
    rewrite: impl Fn(&mut Value),
) -> JsonList {
    let raw = if needs_rewrite(text) {
        let mut v = list_of(text);
        rewrite(&mut v);
        serde_json::value::to_raw_value(&v).ok()
    } else if text.trim_start().starts_with('[') {
        RawValue::from_string(text.to_owned()).ok()
    } else {
        None
    };
    raw.map_or(JsonList::Empty, JsonList::Raw)
}

/// [`JsonList`] of a stored list of strings, passed through as it is: the text becomes the raw
/// value without a copy.
fn raw_list_owned(text: String) -> JsonList {
    if !text.trim_start().starts_with('[') {
        return JsonList::Empty;
    }
    RawValue::from_string(text).map_or(JsonList::Empty, JsonList::Raw)
}

/// Decode string `payload`s of fingerprint records to JSON where they hold JSON.
fn decode_payloads(list: &mut Value) {
    if let Some(arr) = list.as_array_mut() {
        for fp in arr {
            if let Some(p) = fp.get("payload").and_then(Value::as_str).map(str::to_owned) {
                fp["payload"] = json_of(&p, Value::String(p.clone()));
            }
        }
    }
}

/// An attacker row (`GET /attackers` items; dashboard-contract §8.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct AttackerView {
    pub uuid: String,
    pub ip: String,
    pub identity_id: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub event_count: i64,
    pub service_count: i64,
    pub decky_count: i64,
    pub services: Vec<String>,
    pub deckies: Vec<String>,
    pub traversal_path: Option<String>,
    pub is_traversal: bool,
    pub bounty_count: i64,
    pub credential_count: i64,
    /// Fingerprint records, `payload` decoded to JSON where it is JSON.
    #[schema(value_type = Vec<Object>)]
    pub fingerprints: JsonList,
    /// `{service, decky, command, timestamp}` records.
    #[schema(value_type = Vec<Object>)]
    pub commands: JsonList,
    pub country_code: Option<String>,
    pub country_source: Option<String>,
    pub asn: Option<i64>,
    pub as_name: Option<String>,
    pub bgp_prefix: Option<String>,
    pub asn_source: Option<String>,
    pub rpki_status: Option<String>,
    pub rpki_source: Option<String>,
    pub ptr_record: Option<String>,
    pub updated_at: String,
    /// The behaviour profiler is not part of intake: always null ("NO BEHAVIORAL DATA YET").
    #[schema(value_type = Option<Object>)]
    pub behavior: Option<Value>,
}

fn strings_of(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

impl AttackerView {
    fn new(a: &Attacker, e: Option<&AttackerExt>) -> AttackerView {
        // a string payload (older rows) is stored as `"payload":"…"`, an object one as `{`
        let fingerprints = raw_list_of(
            &a.fingerprints,
            |t| t.contains("\"payload\":\"") || t.contains("\"payload\": \""),
            decode_payloads,
        );
        let ext = |f: fn(&AttackerExt) -> Option<String>| e.and_then(f);
        AttackerView {
            uuid: a.uuid.clone(),
            ip: a.ip.clone(),
            identity_id: ext(|e| e.identity_id.clone()),
            first_seen: iso(a.first_seen),
            last_seen: iso(a.last_seen),
            event_count: a.event_count,
            service_count: a.service_count,
            decky_count: a.decky_count,
            services: strings_of(&a.services),
            deckies: strings_of(&a.deckies),
            traversal_path: a.traversal_path.clone(),
            is_traversal: a.is_traversal,
            bounty_count: a.bounty_count,
            credential_count: a.credential_count,
            fingerprints,
            commands: raw_list_of(&a.commands, |_| false, |_| ()),
            country_code: ext(|e| e.country_code.clone()),
            country_source: ext(|e| e.country_source.clone()),
            asn: e.and_then(|e| e.asn),
            as_name: ext(|e| e.as_name.clone()),
            bgp_prefix: ext(|e| e.bgp_prefix.clone()),
            asn_source: ext(|e| e.asn_source.clone()),
            rpki_status: ext(|e| e.rpki_status.clone()),
            rpki_source: ext(|e| e.rpki_source.clone()),
            ptr_record: ext(|e| e.ptr_record.clone()),
            updated_at: iso(a.updated_at),
            behavior: None,
        }
    }
}

/// `GET /attackers/{uuid}`: the row plus its activity and leaks (dashboard-contract §8.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct AttackerDetail {
    #[serde(flatten)]
    pub attacker: AttackerView,
    pub service_activity: ServiceActivity,
    /// The newest `ip_leak` bounty payloads (≤ 10).
    #[schema(value_type = Vec<Object>)]
    pub ip_leaks: Vec<Value>,
    pub ip_leaks_total: i64,
    /// Attribution observations (no producer in this build: always empty).
    #[schema(value_type = Vec<Object>)]
    pub observations: Vec<Value>,
}

/// Services the attacker interacted with vs only scanned.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct ServiceActivity {
    pub interacted: Vec<String>,
    pub scanned: Vec<String>,
}

/// One command of `GET /attackers/{uuid}/commands`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandsPage {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    /// `{service, decky, command, timestamp}` records.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<Value>,
}

/// A log row of an attacker satellite list (artifacts, transcripts, mail).
#[derive(Debug, Serialize, ToSchema)]
pub struct LogItem {
    pub id: i64,
    pub timestamp: String,
    pub decky: String,
    pub service: String,
    /// The structured fields as a JSON object string.
    pub fields: String,
}

/// `{total, data}` of the attacker satellite lists (≤ 200 newest rows).
#[derive(Debug, Serialize, ToSchema)]
pub struct LogItems {
    pub total: i64,
    pub data: Vec<LogItem>,
}

/// One victim domain of `GET /attackers/{uuid}/smtp-targets`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SmtpTarget {
    pub domain: String,
    pub count: i64,
    pub first_seen: String,
    pub last_seen: String,
}

/// `{total, data}` of `GET /attackers/{uuid}/smtp-targets`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SmtpTargets {
    pub total: i64,
    pub data: Vec<SmtpTarget>,
}

/// A stored credential attempt (`GET /credentials` items).
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialView {
    pub id: i64,
    pub attacker_ip: String,
    pub attacker_uuid: Option<String>,
    pub decky_name: String,
    pub service: String,
    pub principal: Option<String>,
    pub secret_kind: String,
    pub secret_sha256: String,
    pub secret_printable: Option<String>,
    pub secret_b64: Option<String>,
    pub outcome: Option<String>,
    /// The attempt's other fields.
    #[schema(value_type = Object)]
    pub fields: Value,
    pub first_seen: String,
    pub last_seen: String,
    pub attempt_count: i64,
}

/// A credential-reuse finding with its secret (`GET /credential-reuse` items and detail).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReuseView {
    pub id: String,
    pub secret_sha256: String,
    pub secret_kind: String,
    pub principal: Option<String>,
    pub principal_key: String,
    /// Stored lists go out as raw JSON: a common secret's finding lists thousands of attackers.
    #[schema(value_type = Vec<String>)]
    pub attacker_uuids: JsonList,
    #[schema(value_type = Vec<String>)]
    pub attacker_ips: JsonList,
    #[schema(value_type = Vec<String>)]
    pub deckies: JsonList,
    #[schema(value_type = Vec<String>)]
    pub services: JsonList,
    pub target_count: i64,
    pub attempt_count: i64,
    pub confidence: f64,
    pub first_seen: String,
    pub last_seen: String,
    pub updated_at: String,
    pub secret_printable: Option<String>,
    pub secret_b64: Option<String>,
}

/// A quarantined (unparsable) line.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantineView {
    pub id: i64,
    pub received_at: String,
    pub source: String,
    pub reason_code: String,
    pub reason: String,
    pub raw_line: String,
}

#[utoipa::path(
    get, path = "/api/v1/attackers", tag = "Attackers",
    params(PageQuery,
        ("search" = Option<String>, Query, description = "Substring of the IP"),
        ("sort_by" = Option<String>, Query, description = "recent (default), active or traversals; empty, `null`, `NULL` and `undefined` mean the default", pattern = "^(recent|active|traversals|null|NULL|undefined|)$"),
        ("service" = Option<String>, Query, description = "Exact service name in the services list")),
    responses((status = 200, description = "Envelope P of attacker rows", body = Page<AttackerView>), (status = 422, description = "Bad parameter"))
)]
pub async fn list_attackers(
    _v: Viewer,
    state: web::Data<AppState>,
    req: HttpRequest,
    page: Pagination,
) -> Result<HttpResponse, ApiError> {
    let p = params(&req)?;
    let sort = match p.get("sort_by").map(String::as_str) {
        None | Some("" | "null" | "NULL" | "undefined" | "recent") => AttackerSort::Recent,
        Some("active") => AttackerSort::Active,
        Some("traversals") => AttackerSort::Traversals,
        _ => {
            return Err(ApiError::invalid_field(
                "sort_by",
                "must be recent, active or traversals",
            ))
        }
    };
    pages::cached(&state, &req, &[Stamp::Attackers], || async {
        let (total, rows) = repo::list_attackers(
            &state.db,
            opt(&p, "search"),
            opt(&p, "service"),
            sort,
            page.limit,
            page.offset,
        )
        .await?;
        // A page of 50 attackers is 150–270 KB of JSON decoded from their stored columns and
        // encoded again: built on the worker, it held that worker's other connections.
        pages::off_worker(move || {
            let data: Vec<AttackerView> = rows
                .iter()
                .map(|(a, e)| AttackerView::new(a, e.as_ref()))
                .collect();
            pages::to_body(&page.page(total, data))
        })
        .await
    })
    .await
}

const INTERACTION_TYPES: [&str; 13] = [
    "ldap_search",
    "mail_from",
    "rcpt_to",
    "rcpt_denied",
    "message_accepted",
    "file_captured",
    "upload",
    "download_attempt",
    "retr",
    "publish",
    "subscribe",
    "session_recorded",
    "command",
];
const NOISE_TYPES: [&str; 8] = [
    "startup",
    "shutdown",
    "config_error",
    "parse_error",
    "unknown_packet",
    "unknown_opcode",
    "unknown_command",
    "protocol_error",
];

/// `{interacted, scanned}`: each service goes to its best class; noise-only services drop.
pub fn service_activity(pairs: &[(String, String)]) -> ServiceActivity {
    let mut best: HashMap<&str, u8> = HashMap::new();
    for (svc, ev) in pairs {
        let class = if COMMAND_EVENT_TYPES.contains(&ev.as_str())
            || INTERACTION_TYPES.contains(&ev.as_str())
        {
            2
        } else if NOISE_TYPES.contains(&ev.as_str()) {
            0
        } else {
            1
        };
        let e = best.entry(svc.as_str()).or_insert(0);
        *e = (*e).max(class);
    }
    let pick = |c: u8| -> Vec<String> {
        best.iter()
            .filter(|(_, v)| **v == c)
            .map(|(k, _)| *k)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(str::to_owned)
            .collect()
    };
    ServiceActivity {
        interacted: pick(2),
        scanned: pick(1),
    }
}

fn not_found_attacker() -> ApiError {
    ApiError::not_found("Attacker not found")
}

#[utoipa::path(
    get, path = "/api/v1/attackers/{uuid}", tag = "Attackers",
    params(("uuid" = String, Path, description = "Attacker uuid")),
    responses((status = 200, description = "Attacker row with activity and leaks", body = AttackerDetail), (status = 404, description = "Attacker not found"))
)]
pub async fn get_attacker(
    _v: Viewer,
    state: web::Data<AppState>,
    req: HttpRequest,
    uuid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // Intake moves the attacker's `updated_at` with every log and bounty row it writes.
    pages::cached(&state, &req, &[Stamp::Attackers], || async {
        let Some((a, e)) = repo::get_attacker(&state.db, &uuid).await? else {
            return Err(not_found_attacker());
        };
        let pairs = repo::service_events(&state.db, &a.ip).await?;
        let (leaks_total, leaks) = repo::ip_leaks(&state.db, &a.ip, 10).await?;
        pages::to_body(&AttackerDetail {
            attacker: AttackerView::new(&a, e.as_ref()),
            service_activity: service_activity(&pairs),
            ip_leaks: leaks.iter().map(|p| json_of(p, Value::Null)).collect(),
            ip_leaks_total: leaks_total,
            observations: Vec::new(),
        })
    })
    .await
}

#[utoipa::path(
    get, path = "/api/v1/attackers/{uuid}/attribution", tag = "Attackers",
    params(("uuid" = String, Path, description = "Attacker uuid")),
    responses(
        (status = 200, description = "Attribution of the attacker: its identity and per-primitive states (no attribution engine in this build: `primitives` is always empty)", body = AttributionView),
        (status = 404, description = "Attacker not found"),
    )
)]
pub async fn attacker_attribution(
    _v: Viewer,
    state: web::Data<AppState>,
    req: HttpRequest,
    uuid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // A clusterer link does not move the attacker's stamp: it shows within the cache's TTL.
    pages::cached(&state, &req, &[Stamp::Attackers], || async {
        let Some((_, e)) = repo::get_attacker(&state.db, &uuid).await? else {
            return Err(not_found_attacker());
        };
        pages::to_body(&AttributionView {
            identity_uuid: e.and_then(|e| e.identity_id),
            primitives: Vec::new(),
        })
    })
    .await
}

/// `GET /attackers/{uuid}/attribution` (dashboard-contract §8.4).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AttributionView {
    /// The identity the attacker's observations belong to, if clustered.
    pub identity_uuid: Option<String>,
    /// Per-primitive attribution states (always empty in this build).
    pub primitives: Vec<Value>,
}

/// SSE event name of an attacker-family topic on the attacker page's stream
/// (dashboard-contract §8.4), `None` for topics that page does not follow.
fn attacker_stream_name(topic: &str) -> Option<&'static str> {
    match topic {
        "attacker.scored" => Some("attacker.scored"),
        "attacker.fingerprinted" => Some("fingerprint.rotated"),
        "attacker.intel.enriched" => Some("attacker.intel.enriched"),
        t if t.starts_with("attacker.observation.") => Some("observation"),
        _ => None,
    }
}

/// Whether an attacker-family payload is about this attacker (by uuid, or by address for
/// payloads that carry only the address).
fn concerns(payload: &Value, uuid: &str, ip: &str) -> bool {
    match payload.get("attacker_uuid").and_then(Value::as_str) {
        Some(u) => u == uuid,
        None => payload.get("attacker_ip").and_then(Value::as_str) == Some(ip),
    }
}

#[utoipa::path(
    get, path = "/api/v1/attackers/{uuid}/events", tag = "Attackers",
    params(
        ("uuid" = String, Path, description = "Attacker uuid"),
        ("ticket" = Option<String>, Query, description = "Single-use SSE ticket (or an `Authorization: Bearer` header)"),
    ),
    responses(
        (status = 200, description = "`snapshot` {attacker_uuid, observations: []}, then `attacker.scored`, `fingerprint.rotated`, `observation` and `attacker.intel.enriched` events (bus envelopes) about this attacker only", content_type = "text/event-stream", body = crate::http::sse::EnvelopeSchema),
        (status = 404, description = "Attacker not found"),
        (status = 429, description = "SSE connection limit reached"),
    )
)]
pub async fn attacker_events(
    viewer: StreamViewer,
    state: web::Data<AppState>,
    uuid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Some((a, _)) = repo::get_attacker(&state.db, &uuid).await? else {
        return Err(not_found_attacker());
    };
    let snapshot = json!({"attacker_uuid": a.uuid, "observations": []});
    let (uuid, ip) = (a.uuid, a.ip);
    sse::sse_response_with(&state, &viewer, "attacker.>", Some(snapshot), move |env| {
        let name = attacker_stream_name(&env.topic)?;
        concerns(&env.payload, &uuid, &ip).then(|| sse::envelope_frame(name, env))
    })
    .await
}

#[utoipa::path(
    get, path = "/api/v1/attackers/{uuid}/commands", tag = "Attackers",
    params(("uuid" = String, Path, description = "Attacker uuid"),
        ("limit" = Option<String>, Query, description = "Page size: an integer clamped to 1..=200; anything else reads as the default 50 (this route never answers 422: the dashboard alerts on it)"),
        ("offset" = Option<String>, Query, description = "Rows to skip: an integer, negative values read as 0; anything else reads as 0"),
        ("service" = Option<String>, Query, description = "Only this service")),
    responses((status = 200, description = "{total, limit, offset, data} sliced from the commands list", body = CommandsPage), (status = 404, description = "Attacker not found"))
)]
pub async fn attacker_commands(
    _v: Viewer,
    state: web::Data<AppState>,
    uuid: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let p = params(&req)?;
    // Never 422 here (the dashboard alerts on it): clamp instead.
    let limit = opt(&p, "limit")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(50)
        .clamp(1, 200);
    let offset = opt(&p, "offset")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    // The commands live in the attacker row, so its `updated_at` stamps them.
    pages::cached(&state, &req, &[Stamp::Attackers], || async {
        let Some((a, _)) = repo::get_attacker(&state.db, &uuid).await? else {
            return Err(not_found_attacker());
        };
        let all = list_of(&a.commands);
        let filtered: Vec<&Value> = all
            .as_array()
            .map(|v| {
                v.iter()
                    .filter(|c| opt(&p, "service").is_none_or(|s| c["service"] == s))
                    .collect()
            })
            .unwrap_or_default();
        let total = filtered.len() as i64;
        let data: Vec<Value> = filtered
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(200))
            .cloned()
            .collect();
        pages::to_body(&CommandsPage {
            total,
            limit,
            offset,
            data,
        })
    })
    .await
}

fn log_item(l: &Log) -> LogItem {
    LogItem {
        id: l.id,
        timestamp: iso(l.timestamp),
        decky: l.decky.clone(),
        service: l.service.clone(),
        fields: l.fields.clone(),
    }
}

async fn logs_of(state: &AppState, uuid: &str, event_type: &str) -> Result<HttpResponse, ApiError> {
    let Some((a, _)) = repo::get_attacker(&state.db, uuid).await? else {
        return Err(not_found_attacker());
    };
    let (total, rows) = repo::logs_of_type(&state.db, &a.ip, event_type, 200).await?;
    Ok(HttpResponse::Ok().json(LogItems {
        total,
        data: rows.iter().map(log_item).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/attackers/{uuid}/artifacts", tag = "Attackers",
    params(("uuid" = String, Path, description = "Attacker uuid")),
    responses((status = 200, description = "≤200 newest file_captured rows", body = LogItems), (status = 404, description = "Attacker not found")))]
pub async fn attacker_artifacts(
    _v: Viewer,
    state: web::Data<AppState>,
    uuid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    logs_of(&state, &uuid, "file_captured").await
}

#[utoipa::path(get, path = "/api/v1/attackers/{uuid}/transcripts", tag = "Attackers",
    params(("uuid" = String, Path, description = "Attacker uuid")),
    responses((status = 200, description = "≤200 newest session_recorded rows", body = LogItems), (status = 404, description = "Attacker not found")))]
pub async fn attacker_transcripts(
    _v: Viewer,
    state: web::Data<AppState>,
    uuid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    logs_of(&state, &uuid, "session_recorded").await
}

#[utoipa::path(get, path = "/api/v1/attackers/{uuid}/mail", tag = "Attackers",
    params(("uuid" = String, Path, description = "Attacker uuid")),
    responses((status = 200, description = "≤200 newest message_stored rows", body = LogItems), (status = 403, description = "Admin only"), (status = 404, description = "Attacker not found")))]
pub async fn attacker_mail(
    _a: Admin,
    state: web::Data<AppState>,
    uuid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    logs_of(&state, &uuid, "message_stored").await
}

/// Recipient events read per attacker for `/smtp-targets` (newest first).
const SMTP_TARGET_EVENTS: i64 = 20_000;

#[utoipa::path(get, path = "/api/v1/attackers/{uuid}/smtp-targets", tag = "Attackers",
    params(("uuid" = String, Path, description = "Attacker uuid")),
    responses((status = 200, description = "{total, data:[{domain, count, first_seen, last_seen}]}: domains the attacker addressed in RCPT TO, most addressed first", body = SmtpTargets), (status = 404, description = "Attacker not found")))]
pub async fn attacker_smtp_targets(
    _v: Viewer,
    state: web::Data<AppState>,
    uuid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Some((a, _)) = repo::get_attacker(&state.db, &uuid).await? else {
        return Err(not_found_attacker());
    };
    let rows = repo::smtp_rcpt_events(&state.db, &a.ip, SMTP_TARGET_EVENTS).await?;
    let fields: Vec<Fields> = rows
        .iter()
        .map(|(_, f, _)| Fields::from_json_object(f).unwrap_or_default())
        .collect();
    let targets = mail::smtp_targets(
        rows.iter()
            .zip(&fields)
            .map(|((t, _, at), f)| (t.as_str(), f, *at)),
    );
    let data: Vec<SmtpTarget> = targets
        .iter()
        .map(|t| SmtpTarget {
            domain: t.domain.clone(),
            count: i64::try_from(t.count).unwrap_or(i64::MAX),
            first_seen: iso(t.first_seen),
            last_seen: iso(t.last_seen),
        })
        .collect();
    Ok(HttpResponse::Ok().json(SmtpTargets {
        total: i64::try_from(data.len()).unwrap_or(i64::MAX),
        data,
    }))
}

fn credential_json(c: &Credential) -> CredentialView {
    CredentialView {
        id: c.id,
        attacker_ip: c.attacker_ip.clone(),
        attacker_uuid: c.attacker_uuid.clone(),
        decky_name: c.decky_name.clone(),
        service: c.service.clone(),
        principal: c.principal.clone(),
        secret_kind: c.secret_kind.clone(),
        secret_sha256: c.secret_sha256.clone(),
        secret_printable: c.secret_printable.clone(),
        secret_b64: c.secret_b64.clone(),
        outcome: c.outcome.clone(),
        fields: json_of(&c.fields, json!({})),
        first_seen: iso(c.first_seen),
        last_seen: iso(c.last_seen),
        attempt_count: c.attempt_count,
    }
}

#[utoipa::path(
    get, path = "/api/v1/credentials", tag = "Credentials",
    params(PageQuery,
        ("search" = Option<String>, Query, description = "Substring of decky/service/principal/printable secret"),
        ("service" = Option<String>, Query, description = "Exact service"),
        ("attacker_ip" = Option<String>, Query, description = "Exact attacker IP")),
    responses((status = 200, description = "Envelope P of credential rows, last_seen desc", body = Page<CredentialView>))
)]
pub async fn list_credentials(
    _v: Viewer,
    state: web::Data<AppState>,
    req: HttpRequest,
    page: Pagination,
) -> Result<HttpResponse, ApiError> {
    let p = params(&req)?;
    pages::cached(&state, &req, &[Stamp::Credentials], || async {
        let (total, rows) = repo::list_credentials(
            &state.db,
            opt(&p, "search"),
            opt(&p, "service"),
            opt(&p, "attacker_ip"),
            page.limit,
            page.offset,
        )
        .await?;
        let data: Vec<CredentialView> = rows.iter().map(credential_json).collect();
        pages::to_body(&page.page(total, data))
    })
    .await
}

/// The view of a finding, its lists moved in rather than copied (they are most of a page
/// of megabytes).
fn reuse_json((r, printable, b64): ReuseWithSecret) -> ReuseView {
    ReuseView {
        id: r.id,
        secret_sha256: r.secret_sha256,
        secret_kind: r.secret_kind,
        principal: r.principal,
        principal_key: r.principal_key,
        attacker_uuids: raw_list_owned(r.attacker_uuids),
        attacker_ips: raw_list_owned(r.attacker_ips),
        deckies: raw_list_owned(r.deckies),
        services: raw_list_owned(r.services),
        target_count: r.target_count,
        attempt_count: r.attempt_count,
        confidence: r.confidence,
        first_seen: iso(r.first_seen),
        last_seen: iso(r.last_seen),
        updated_at: iso(r.updated_at),
        secret_printable: printable,
        secret_b64: b64,
    }
}

/// About the serialized size of findings: their lists as stored plus the other fields.
fn reuse_size(rows: &[ReuseWithSecret]) -> usize {
    rows.iter()
        .map(|(r, printable, b64)| {
            let lists = [&r.attacker_uuids, &r.attacker_ips, &r.deckies, &r.services];
            let secrets = [printable, b64].map(|t| t.as_deref().map_or(0, str::len));
            // Secrets may be escaped on the way out; the lists go out as stored.
            1024 + lists.iter().map(|t| t.len()).sum::<usize>() + 2 * secrets.iter().sum::<usize>()
        })
        .sum()
}

#[utoipa::path(
    get, path = "/api/v1/credential-reuse", tag = "Credentials",
    params(PageQuery,
        ("min_target_count" = Option<i64>, Query, minimum = 2, description = "≥2, default 2"),
        ("secret_kind" = Option<String>, Query, description = "Exact kind")),
    responses((status = 200, description = "Envelope P of findings, target_count desc", body = Page<ReuseView>), (status = 422, description = "Bad parameter"))
)]
pub async fn list_reuse(
    _v: Viewer,
    state: web::Data<AppState>,
    req: HttpRequest,
    page: Pagination,
) -> Result<HttpResponse, ApiError> {
    let p = params(&req)?;
    let min = match p.get("min_target_count") {
        None => 2,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 2 => n,
            _ => {
                return Err(ApiError::invalid_field(
                    "min_target_count",
                    "must be an integer ≥ 2",
                ))
            }
        },
    };
    pages::cached(&state, &req, &[Stamp::CredentialReuse], || async {
        let (total, rows) = repo::list_reuse(
            &state.db,
            min,
            opt(&p, "secret_kind"),
            page.limit,
            page.offset,
        )
        .await?;
        // Megabytes when common secrets were tried by thousands of attackers: the lists are
        // checked and moved, and the page serialized and hashed, off the HTTP worker.
        pages::off_worker(move || {
            let size = 256 + reuse_size(&rows);
            let data: Vec<ReuseView> = rows.into_iter().map(reuse_json).collect();
            pages::to_body_sized(&page.page(total, data), size)
        })
        .await
    })
    .await
}

#[utoipa::path(
    get, path = "/api/v1/credential-reuse/{id}", tag = "Credentials",
    params(("id" = String, Path, description = "Finding id")),
    responses((status = 200, description = "The finding with its secret", body = ReuseView), (status = 404, description = "credential_reuse not found"))
)]
pub async fn get_reuse(
    _v: Viewer,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // Findings are megabytes when a common secret was tried by thousands of attackers.
    pages::cached(&state, &req, &[Stamp::CredentialReuse], || async {
        match repo::get_reuse(&state.db, &id).await? {
            Some(r) => {
                pages::off_worker(move || {
                    let size = reuse_size(std::slice::from_ref(&r));
                    pages::to_body_sized(&reuse_json(r), size)
                })
                .await
            }
            None => Err(ApiError::not_found("credential_reuse not found")),
        }
    })
    .await
}

/// A time filter: absent, or a timestamp (no null-like spellings: the document types it as a
/// date-time).
fn parse_time(p: &Params, k: &str) -> Result<Option<NaiveDateTime>, ApiError> {
    let Some(v) = p.get(k) else { return Ok(None) };
    crate::domain::syslog::parse_timestamp(v)
        .map(Some)
        .ok_or_else(|| ApiError::invalid_field(k, "must be an ISO-8601 timestamp"))
}

#[utoipa::path(
    get, path = "/api/v1/logs", tag = "Logs",
    params(PageQuery,
        ("search" = Option<String>, Query, max_length = 512, description = "Tokens: decky: service: event: attacker: key:value bare (≤512 chars)"),
        ("start_time" = Option<String>, Query, format = DateTime, description = "ISO-8601 (RFC 3339; naive and date-only forms are also read, as UTC)"),
        ("end_time" = Option<String>, Query, format = DateTime, description = "ISO-8601 (RFC 3339; naive and date-only forms are also read, as UTC)")),
    responses((status = 200, description = "Envelope P of log rows, newest first", body = Page<LogRow>), (status = 422, description = "Bad parameter"))
)]
pub async fn list_logs(
    _v: Viewer,
    state: web::Data<AppState>,
    req: HttpRequest,
    page: Pagination,
) -> Result<HttpResponse, ApiError> {
    let p = params(&req)?;
    let search = opt(&p, "search");
    if p.get("search").is_some_and(|s| s.chars().count() > 512) {
        return Err(ApiError::invalid_field(
            "search",
            "must be at most 512 characters",
        ));
    }
    let (start, end) = (parse_time(&p, "start_time")?, parse_time(&p, "end_time")?);
    pages::cached(&state, &req, &[Stamp::Logs], || async {
        let (total, rows) =
            repo::list_logs(&state.db, search, start, end, page.limit, page.offset).await?;
        let data: Vec<LogRow> = rows.iter().map(LogRow::from).collect();
        pages::to_body(&page.page(total, data))
    })
    .await
}

#[utoipa::path(
    get, path = "/api/v1/ingest/quarantine", tag = "Logs",
    params(PageQuery),
    responses((status = 200, description = "Envelope P of unparsable lines with their reason, newest first", body = Page<QuarantineView>))
)]
pub async fn list_quarantine(
    _v: Viewer,
    state: web::Data<AppState>,
    page: Pagination,
) -> Result<HttpResponse, ApiError> {
    let (total, rows) = repo::list_quarantine(&state.db, page.limit, page.offset).await?;
    let data: Vec<QuarantineView> = rows
        .iter()
        .map(|q| QuarantineView {
            id: q.id,
            received_at: iso(q.received_at),
            source: q.source.clone(),
            reason_code: q.reason_code.clone(),
            reason: q.reason.clone(),
            raw_line: q.raw_line.clone(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(page.page(total, data)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/attackers", web::get().to(list_attackers))
        .route("/attackers/{uuid}", web::get().to(get_attacker))
        .route(
            "/attackers/{uuid}/attribution",
            web::get().to(attacker_attribution),
        )
        .route("/attackers/{uuid}/events", web::get().to(attacker_events))
        .route(
            "/attackers/{uuid}/commands",
            web::get().to(attacker_commands),
        )
        .route(
            "/attackers/{uuid}/artifacts",
            web::get().to(attacker_artifacts),
        )
        .route(
            "/attackers/{uuid}/transcripts",
            web::get().to(attacker_transcripts),
        )
        .route("/attackers/{uuid}/mail", web::get().to(attacker_mail))
        .route(
            "/attackers/{uuid}/smtp-targets",
            web::get().to(attacker_smtp_targets),
        )
        .route("/credentials", web::get().to(list_credentials))
        .route("/credential-reuse", web::get().to(list_reuse))
        .route("/credential-reuse/{id}", web::get().to(get_reuse))
        .route("/logs", web::get().to(list_logs))
        .route("/ingest/quarantine", web::get().to(list_quarantine));
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_attackers,
    get_attacker,
    attacker_attribution,
    attacker_events,
    attacker_commands,
    attacker_artifacts,
    attacker_transcripts,
    attacker_mail,
    attacker_smtp_targets,
    list_credentials,
    list_reuse,
    get_reuse,
    list_logs,
    list_quarantine
))]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_classes() {
        let pairs = vec![
            ("ssh".to_string(), "auth_attempt".to_string()),
            ("ssh".to_string(), "command".to_string()),
            ("http".to_string(), "request".to_string()),
            ("smtp".to_string(), "startup".to_string()),
            ("ftp".to_string(), "connect".to_string()),
            ("ftp".to_string(), "retr".to_string()),
        ];
        assert_eq!(
            serde_json::to_value(service_activity(&pairs)).unwrap(),
            json!({"interacted": ["ftp", "ssh"], "scanned": ["http"]})
        );
    }

    #[test]
    fn null_like_params_are_absent() {
        let mut p = Params::new();
        for v in ["null", "NULL", "undefined", "", "  "] {
            p.insert("search".into(), v.into());
            assert_eq!(opt(&p, "search"), None);
        }
        p.insert("search".into(), "1.2".into());
        assert_eq!(opt(&p, "search"), Some("1.2"));
    }

    #[test]
    fn stored_lists_pass_through_and_string_payloads_are_decoded() {
        let out = |l: &JsonList| serde_json::to_value(l).expect("serialises");
        let stored = r#"[{"payload":{"ja3":"x"},"id":1},{"service":"ssh"}]"#;
        let fp = |t: &str| {
            raw_list_of(
                t,
                |t| t.contains("\"payload\":\"") || t.contains("\"payload\": \""),
                decode_payloads,
            )
        };
        assert_eq!(
            out(&fp(stored)),
            serde_json::from_str::<Value>(stored).expect("json")
        );
        assert_eq!(
            out(&fp(r#"[{"payload":"{\"a\":1}"},{"payload":"not json"}]"#)),
            json!([{"payload": {"a": 1}}, {"payload": "not json"}])
        );
        for bad in ["", "{}", "null", "[1,", "garbage", "\"[]\""] {
            assert_eq!(out(&fp(bad)), json!([]), "{bad:?}");
        }
        assert_eq!(out(&raw_list_of(" []", |_| false, |_| ())), json!([]));
    }
}

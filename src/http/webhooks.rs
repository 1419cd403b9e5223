//! Webhook routes (spec platform.md §5.3, dashboard-contract.md §15), tag "Webhooks", all
//! admin: the collection with and without the trailing slash, one subscription, the test
//! ping, and decnetd's outbox views — deliveries (dead letters included), one delivery with
//! its attempts, and replay. The secret appears only in the create response.

use actix_web::{web, HttpRequest, HttpResponse};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::actors::registry::epoch_now;
use crate::actors::topics::{Event, Pattern};
use crate::actors::webhooks::egress::{check_destination, policy, Egress};
use crate::db::models::webhooks::{
    Attempt, Delivery, Subscription, SubscriptionChanges, DEAD, DELIVERED, PENDING,
};
use crate::db::now_utc;
use crate::db::repo::webhooks as repo;
use crate::domain::webhook::sign::encode_secret;
use crate::domain::webhook::{merge_patterns, render, EventBody, Format, SimpleEvent};
use crate::http::auth::{client_ip, Admin, Bucket};
use crate::http::error::{parse_json, ApiError};
use crate::http::iso;
use crate::http::pagination::{Page, PageQuery, Pagination, DEFAULT_LIMIT, MAX_LIMIT};
use crate::http::state::AppState;

const NAME_MAX: usize = 64;
const SECRET_MIN: usize = 16;
const SECRET_MAX: usize = 256;
const URL_MAX: usize = 2048;
const PATTERNS_MAX: usize = 64;
const PATTERN_MAX: usize = 256;
const EMPTY_ON_CREATE: &str = "Provide at least one simple_events entry or topic_patterns pattern.";
const EMPTY_ON_PATCH: &str = "Cannot clear all patterns; disable the webhook instead.";

// ---- wire shapes ---------------------------------------------------------------------------

/// Create body (H2).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// 1..64 characters, unique.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// http(s) URL of a public destination (SSRF guard: private, loopback, link-local,
    /// shared, reserved and multicast addresses are refused with 422).
    #[schema(max_length = 2048, pattern = "^[Hh][Tt][Tt][Pp][Ss]?://")]
    pub url: String,
    /// HMAC key, 16..256 characters; generated when omitted or blank.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub simple_events: Vec<SimpleEvent>,
    /// Raw registry patterns (§1.4), at most 64 of at most 256 characters.
    #[serde(default)]
    pub topic_patterns: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Delivery format (default `generic`).
    #[serde(default)]
    pub format: Format,
}

fn yes() -> bool {
    true
}

/// Patch body (H3): every field optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[schema(min_length = 1, max_length = 64)]
    pub name: Option<String>,
    #[schema(max_length = 2048, pattern = "^[Hh][Tt][Tt][Pp][Ss]?://")]
    pub url: Option<String>,
    /// Rotates the key (never echoed); blank is ignored.
    pub secret: Option<String>,
    pub simple_events: Option<Vec<SimpleEvent>>,
    pub topic_patterns: Option<Vec<String>>,
    /// `true` on a disabled row also resets the breaker.
    pub enabled: Option<bool>,
    pub format: Option<Format>,
}

/// The public shape of a subscription (never the secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookView {
    pub uuid: String,
    pub name: String,
    pub url: String,
    pub topic_patterns: Vec<String>,
    pub format: Format,
    pub enabled: bool,
    pub consecutive_failures: i32,
    pub last_success_at: Option<String>,
    pub last_failure_at: Option<String>,
    pub last_error: Option<String>,
    /// Set when the circuit breaker disabled the subscription.
    pub auto_disabled_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// `insecure_url: …` for an `http://` URL.
    pub warnings: Vec<String>,
}

impl From<&Subscription> for WebhookView {
    fn from(s: &Subscription) -> Self {
        let warnings = if s.url.to_ascii_lowercase().starts_with("http://") {
            vec!["insecure_url: deliveries to this http:// URL cross the network unencrypted; use https://".to_owned()]
        } else {
            Vec::new()
        };
        WebhookView {
            uuid: s.uuid.clone(),
            name: s.name.clone(),
            url: s.url.clone(),
            topic_patterns: s.patterns(),
            format: Format::parse(&s.format).unwrap_or_default(),
            enabled: s.enabled,
            consecutive_failures: s.consecutive_failures,
            last_success_at: s.last_success_at.map(iso),
            last_failure_at: s.last_failure_at.map(iso),
            last_error: s.last_error.clone(),
            auto_disabled_at: s.auto_disabled_at.map(iso),
            created_at: iso(s.created_at),
            updated_at: iso(s.updated_at),
            warnings,
        }
    }
}

/// Create response: the public shape plus the secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub webhook: WebhookView,
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageBody {
    pub message: String,
}

/// Test delivery result (H5).
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    pub delivered: bool,
    pub status_code: Option<u16>,
    pub error: Option<String>,
}

/// One outbox row.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    pub event_id: String,
    pub topic: String,
    /// `pending`, `delivered` or `dead` (a dead letter).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: String,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub delivered_at: Option<String>,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        DeliveryView {
            id: d.id,
            event_id: d.event_id.clone(),
            topic: d.topic.clone(),
            status: d.status.clone(),
            attempts: d.attempts,
            next_attempt_at: iso(d.next_attempt_at),
            last_status_code: d.last_status_code,
            last_error: d.last_error.clone(),
            created_at: iso(d.created_at),
            updated_at: iso(d.updated_at),
            delivered_at: d.delivered_at.map(iso),
        }
    }
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
    pub attempted_at: String,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        AttemptView {
            attempt: a.attempt,
            status_code: a.status_code,
            error: a.error.clone(),
            duration_ms: a.duration_ms,
            attempted_at: iso(a.attempted_at),
        }
    }
}

/// A delivery with the event it carries and every attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    /// The event as the generic format delivers it.
    pub event: Value,
    pub attempt_log: Vec<AttemptView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub data: Vec<DeliveryView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayResult {
    /// Deliveries put back in the queue.
    pub replayed: usize,
}

/// `status` filter of the deliveries list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `pending`, `delivered` or `dead`.
    #[param(pattern = "^(pending|delivered|dead)$")]
    pub status: Option<String>,
}

// ---- validation ----------------------------------------------------------------------------

fn not_found() -> ApiError {
    ApiError::not_found("Webhook not found")
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::structural("name", "must not be empty"));
    }
    if name.chars().count() > NAME_MAX {
        return Err(ApiError::invalid_field(
            "name",
            "must be at most 64 characters",
        ));
    }
    Ok(name.to_owned())
}

fn check_url_shape(url: &str) -> Result<String, ApiError> {
    let url = url.trim();
    if url.len() > URL_MAX {
        return Err(ApiError::invalid_field(
            "url",
            "must be at most 2048 characters",
        ));
    }
    match url::Url::parse(url) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {
            Ok(u.to_string())
        }
        _ => Err(ApiError::invalid_field(
            "url",
            "must be a valid http(s) URL",
        )),
    }
}

/// Blank means "not given"; otherwise 16..256 characters.
fn check_secret(secret: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(s) = secret.filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    let n = s.chars().count();
    if n < SECRET_MIN {
        return Err(ApiError::structural(
            "secret",
            "must be at least 16 characters",
        ));
    }
    if n > SECRET_MAX {
        return Err(ApiError::invalid_field(
            "secret",
            "must be at most 256 characters",
        ));
    }
    Ok(Some(s.to_owned()))
}

/// Every raw pattern must parse with the registry's own parser (400 naming it).
fn check_patterns(raw: &[String]) -> Result<(), ApiError> {
    if raw.len() > PATTERNS_MAX {
        return Err(ApiError::invalid_field(
            "topic_patterns",
            "must hold at most 64 patterns",
        ));
    }
    for p in raw.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        if p.chars().count() > PATTERN_MAX {
            return Err(ApiError::invalid_field(
                "topic_patterns",
                "entries must be at most 256 characters",
            ));
        }
        Pattern::parse(p).map_err(|e| {
            ApiError::BadRequest(
                format!("Invalid topic pattern '{p}' in topic_patterns: {e}").into(),
            )
        })?;
    }
    Ok(())
}

async fn check_ssrf(state: &AppState, url: &str) -> Result<(), ApiError> {
    check_destination(url, policy(&state.settings.webhooks))
        .await
        .map_err(|e| ApiError::Unprocessable(e.to_string().into()))
}

fn generate_secret(format: Format) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    encode_secret(&bytes, format == Format::Standard)
}

fn changed(state: &AppState) {
    state.registry.publish(Event::WebhookSubscriptionsChanged);
}

async fn load(state: &AppState, uuid: &str) -> Result<Subscription, ApiError> {
    repo::get(&state.db, uuid).await?.ok_or_else(not_found)
}

// ---- handlers ------------------------------------------------------------------------------

#[utoipa::path(
    get, path = "/api/v1/webhooks/", tag = "Webhooks",
    responses((status = 200, description = "Every subscription, oldest first (a bare array)", body = Vec<WebhookView>))
)]
pub async fn list_webhooks(
    _a: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let rows = repo::list(&state.db).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(WebhookView::from).collect::<Vec<_>>()))
}

#[utoipa::path(
    get, path = "/api/v1/webhooks", tag = "Webhooks",
    responses((status = 200, description = "Same as `GET /api/v1/webhooks/`", body = Vec<WebhookView>))
)]
pub async fn list_webhooks_bare(
    a: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    list_webhooks(a, state).await
}

#[utoipa::path(
    post, path = "/api/v1/webhooks/", tag = "Webhooks", request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created; the only response that contains the secret", body = WebhookCreated),
        (status = 400, description = "No pattern after merging, an invalid pattern (named), an empty name or a secret under 16 characters"),
        (status = 409, description = "Webhook name already exists"),
        (status = 422, description = "Name over 64 / secret over 256 characters, a URL that is not http(s), or a forbidden destination (detail contains \"forbidden\")"),
        (status = 429, description = "Rate limit exceeded: 20 per 1 minute (per IP)"),
    )
)]
pub async fn create_webhook(
    _a: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .limits
        .check(Bucket::WebhookCreate, &client_ip(&req))?;
    let body: CreateWebhook = parse_json(&body)?;
    let name = check_name(&body.name)?;
    let url = check_url_shape(&body.url)?;
    let secret = check_secret(body.secret.as_deref())?;
    check_patterns(&body.topic_patterns)?;
    let patterns = merge_patterns(&body.simple_events, &body.topic_patterns);
    if patterns.is_empty() {
        return Err(ApiError::BadRequest(EMPTY_ON_CREATE.into()));
    }
    if repo::name_taken(&state.db, &name, None).await? {
        return Err(ApiError::conflict("Webhook name already exists"));
    }
    check_ssrf(&state, &url).await?;
    let secret = secret.unwrap_or_else(|| generate_secret(body.format));
    let row = Subscription::fresh(
        &name,
        &url,
        &secret,
        &patterns,
        body.format.as_str(),
        body.enabled,
    );
    let row = repo::create(&state.db, row).await.map_err(|e| {
        if e.is_unique_violation() {
            ApiError::conflict("Webhook name already exists")
        } else {
            e.into()
        }
    })?;
    tracing::info!(webhook = %row.uuid, name = %row.name, "webhook created");
    changed(&state);
    Ok(HttpResponse::Created().json(WebhookCreated {
        webhook: WebhookView::from(&row),
        secret,
    }))
}

#[utoipa::path(
    post, path = "/api/v1/webhooks", tag = "Webhooks", request_body = CreateWebhook,
    responses(
        (status = 201, description = "Same as `POST /api/v1/webhooks/`", body = WebhookCreated),
        (status = 400, description = "No pattern after merging, an invalid pattern (named), an empty name or a secret under 16 characters"),
        (status = 409, description = "Webhook name already exists"),
        (status = 422, description = "Name over 64 / secret over 256 characters, a URL that is not http(s), or a forbidden destination (detail contains \"forbidden\")"),
        (status = 429, description = "Rate limit exceeded: 20 per 1 minute (per IP)"),
    )
)]
pub async fn create_webhook_bare(
    a: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    create_webhook(a, req, state, body).await
}

#[utoipa::path(
    get, path = "/api/v1/webhooks/{uuid}", tag = "Webhooks",
    params(("uuid" = String, Path)),
    responses(
        (status = 200, description = "The subscription", body = WebhookView),
        (status = 404, description = "Webhook not found"),
    )
)]
pub async fn get_webhook(
    _a: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let row = load(&state, &path).await?;
    Ok(HttpResponse::Ok().json(WebhookView::from(&row)))
}

#[utoipa::path(
    patch, path = "/api/v1/webhooks/{uuid}", tag = "Webhooks",
    params(("uuid" = String, Path)), request_body = UpdateWebhook,
    responses(
        (status = 200, description = "The updated subscription (an empty patch changes nothing)", body = WebhookView),
        (status = 400, description = "Patterns cleared, an invalid pattern (named), an empty name or a secret under 16 characters"),
        (status = 404, description = "Webhook not found"),
        (status = 409, description = "Webhook name already exists"),
        (status = 422, description = "Name over 64 / secret over 256 characters, a URL that is not http(s), or a forbidden destination"),
    )
)]
pub async fn update_webhook(
    _a: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let row = load(&state, &path).await?;
    let body: UpdateWebhook = parse_json(&body)?;
    let mut ch = SubscriptionChanges::default();
    if let Some(n) = &body.name {
        ch.name = Some(check_name(n)?);
    }
    if let Some(u) = &body.url {
        ch.url = Some(check_url_shape(u)?);
    }
    ch.secret = check_secret(body.secret.as_deref())?;
    if body.simple_events.is_some() || body.topic_patterns.is_some() {
        let raw = body.topic_patterns.clone().unwrap_or_default();
        check_patterns(&raw)?;
        let merged = merge_patterns(body.simple_events.as_deref().unwrap_or_default(), &raw);
        if merged.is_empty() {
            return Err(ApiError::BadRequest(EMPTY_ON_PATCH.into()));
        }
        ch.topic_patterns =
            Some(serde_json::to_string(&merged).map_err(|e| ApiError::internal(e.to_string()))?);
    }
    ch.format = body.format.map(|f| f.as_str().to_owned());
    match body.enabled {
        Some(true) if !row.enabled => {
            ch.enabled = Some(true);
            ch.auto_disabled_at = Some(None);
            ch.last_error = Some(None);
            ch.consecutive_failures = Some(0);
        }
        Some(false) if row.enabled => ch.enabled = Some(false),
        _ => {}
    }
    let nothing = ch.name.is_none()
        && ch.url.is_none()
        && ch.secret.is_none()
        && ch.topic_patterns.is_none()
        && ch.format.is_none()
        && ch.enabled.is_none();
    if nothing {
        return Ok(HttpResponse::Ok().json(WebhookView::from(&row)));
    }
    if let Some(n) = &ch.name {
        if repo::name_taken(&state.db, n, Some(&row.uuid)).await? {
            return Err(ApiError::conflict("Webhook name already exists"));
        }
    }
    if let Some(u) = &ch.url {
        check_ssrf(&state, u).await?;
    }
    ch.updated_at = Some(now_utc());
    let updated = repo::update(&state.db, &row.uuid, ch)
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                ApiError::conflict("Webhook name already exists")
            } else {
                e.into()
            }
        })?
        .ok_or_else(not_found)?;
    changed(&state);
    Ok(HttpResponse::Ok().json(WebhookView::from(&updated)))
}

#[utoipa::path(
    delete, path = "/api/v1/webhooks/{uuid}", tag = "Webhooks",
    params(("uuid" = String, Path)),
    responses(
        (status = 200, description = "Deleted with its outbox rows", body = MessageBody),
        (status = 404, description = "Webhook not found"),
    )
)]
pub async fn delete_webhook(
    _a: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !repo::delete(&state.db, &path).await? {
        return Err(not_found());
    }
    changed(&state);
    Ok(HttpResponse::Ok().json(MessageBody {
        message: "Webhook deleted".to_owned(),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/webhooks/{uuid}/test", tag = "Webhooks",
    params(("uuid" = String, Path)),
    responses(
        (status = 200, description = "One attempt of a synthetic `test.ping` event: no retry, counters untouched, sent even when disabled", body = TestResult),
        (status = 404, description = "Webhook not found"),
    )
)]
pub async fn test_webhook(
    admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let row = load(&state, &path).await?;
    let settings = &state.settings.webhooks;
    let egress = Egress::new(settings).map_err(|e| ApiError::internal(e.to_string()))?;
    let now = epoch_now();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let body = EventBody::new(
        &id,
        "test.ping",
        "test",
        now,
        json!({"message": "Synthetic test event from DECNET", "triggered_by": admin.username}),
    );
    let format = Format::parse(&row.format).unwrap_or_default();
    let secs = now as i64;
    let req = render(
        format,
        &row.secret,
        &body,
        secs,
        secs,
        settings.dashboard_url.as_deref(),
    );
    let res = egress.send(&row.url, &req).await;
    Ok(HttpResponse::Ok().json(TestResult {
        delivered: res.error.is_none(),
        status_code: res.status,
        error: res.error,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/webhooks/{uuid}/deliveries", tag = "Webhooks",
    params(("uuid" = String, Path), DeliveryQuery, PageQuery),
    responses(
        (status = 200, description = "Outbox rows of the subscription, newest first; `status=dead` lists its dead letters", body = DeliveryPage),
        (status = 404, description = "Webhook not found"),
        (status = 422, description = "Bad status, limit or offset"),
    )
)]
pub async fn list_deliveries(
    _a: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let page = Pagination::from_query(req.query_string(), DEFAULT_LIMIT, MAX_LIMIT)?;
    let q = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .map_err(|_| ApiError::invalid_field("query", "is not a valid query string"))?;
    let status = match q.get("status").map(String::as_str) {
        None => None,
        Some(s @ (PENDING | DELIVERED | DEAD)) => Some(s),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "status",
                "must be 'pending', 'delivered' or 'dead'",
            ))
        }
    };
    let row = load(&state, &path).await?;
    let (total, rows) =
        repo::list_deliveries(&state.db, &row.uuid, status, page.limit, page.offset).await?;
    let body: Page<DeliveryView> = page.page(total, rows.iter().map(DeliveryView::from).collect());
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    get, path = "/api/v1/webhooks/{uuid}/deliveries/{id}", tag = "Webhooks",
    params(("uuid" = String, Path), ("id" = i64, Path)),
    responses(
        (status = 200, description = "The delivery, its event and every attempt", body = DeliveryDetail),
        (status = 404, description = "Webhook or delivery not found"),
        (status = 422, description = "id is not an integer"),
    )
)]
pub async fn get_delivery(
    _a: Admin,
    path: web::Path<(String, i64)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (uuid, id) = path.into_inner();
    load(&state, &uuid).await?;
    let (del, attempts) = repo::get_delivery(&state.db, &uuid, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Delivery not found"))?;
    Ok(HttpResponse::Ok().json(DeliveryDetail {
        event: serde_json::from_str(&del.event_body).unwrap_or(Value::Null),
        delivery: DeliveryView::from(&del),
        attempt_log: attempts.iter().map(AttemptView::from).collect(),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/webhooks/{uuid}/replay", tag = "Webhooks",
    params(("uuid" = String, Path)),
    responses(
        (status = 200, description = "Every dead letter of the subscription is queued again, due now, with a fresh attempt budget", body = ReplayResult),
        (status = 404, description = "Webhook not found"),
    )
)]
pub async fn replay_dead(
    _a: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let row = load(&state, &path).await?;
    let n = repo::replay(&state.db, &row.uuid, None, now_utc()).await?;
    changed(&state);
    Ok(HttpResponse::Ok().json(ReplayResult { replayed: n }))
}

#[utoipa::path(
    post, path = "/api/v1/webhooks/{uuid}/deliveries/{id}/replay", tag = "Webhooks",
    params(("uuid" = String, Path), ("id" = i64, Path)),
    responses(
        (status = 200, description = "The delivery (dead or delivered) is queued again; `replayed: 0` when it is already pending", body = ReplayResult),
        (status = 404, description = "Webhook or delivery not found"),
        (status = 422, description = "id is not an integer"),
    )
)]
pub async fn replay_one(
    _a: Admin,
    path: web::Path<(String, i64)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (uuid, id) = path.into_inner();
    load(&state, &uuid).await?;
    if repo::get_delivery(&state.db, &uuid, id).await?.is_none() {
        return Err(ApiError::not_found("Delivery not found"));
    }
    let n = repo::replay(&state.db, &uuid, Some(id), now_utc()).await?;
    changed(&state);
    Ok(HttpResponse::Ok().json(ReplayResult { replayed: n }))
}

/// Routes relative to `/api/v1`; the collection answers with and without the slash.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks", web::get().to(list_webhooks_bare))
        .route("/webhooks", web::post().to(create_webhook_bare))
        .route("/webhooks/", web::get().to(list_webhooks))
        .route("/webhooks/", web::post().to(create_webhook))
        .route("/webhooks/{uuid}", web::get().to(get_webhook))
        .route("/webhooks/{uuid}", web::patch().to(update_webhook))
        .route("/webhooks/{uuid}", web::delete().to(delete_webhook))
        .route("/webhooks/{uuid}/test", web::post().to(test_webhook))
        .route("/webhooks/{uuid}/replay", web::post().to(replay_dead))
        .route(
            "/webhooks/{uuid}/deliveries",
            web::get().to(list_deliveries),
        )
        .route(
            "/webhooks/{uuid}/deliveries/{id}",
            web::get().to(get_delivery),
        )
        .route(
            "/webhooks/{uuid}/deliveries/{id}/replay",
            web::post().to(replay_one),
        );
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list_webhooks,
        list_webhooks_bare,
        create_webhook,
        create_webhook_bare,
        get_webhook,
        update_webhook,
        delete_webhook,
        test_webhook,
        list_deliveries,
        get_delivery,
        replay_dead,
        replay_one
    ),
    components(schemas(
        CreateWebhook,
        UpdateWebhook,
        WebhookView,
        WebhookCreated,
        MessageBody,
        TestResult,
        DeliveryView,
        AttemptView,
        DeliveryDetail,
        DeliveryPage,
        ReplayResult,
        SimpleEvent,
        Format
    )),
    tags((name = "Webhooks", description = "Signed, durable delivery of registry events to operators' endpoints (admin)"))
)]
pub struct ApiDoc;

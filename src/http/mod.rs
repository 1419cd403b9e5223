//! The HTTP edge: every route in one place (`/api/v1` scope), auth guards, errors, SSE,
//! OpenAPI. [`app`] builds the complete actix `App` (used by the daemon and the tests).

pub mod auth;
pub mod canary;
pub mod clustering;
pub mod error;
pub mod fleet;
pub mod health;
pub mod intake;
pub mod intel;
pub mod live;
pub mod mail;
pub mod openapi;
pub mod pages;
pub mod pagination;
pub mod realism;
pub mod sse;
pub mod state;
pub mod stream;
pub mod ttp;
pub mod users;
pub mod webhooks;
pub mod workers;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpRequest, HttpResponse};

pub use state::AppState;

use crate::http::auth::{AnyUser, Viewer};

/// Prefix of every API route.
pub const API_PREFIX: &str = "/api/v1";

/// Mount everything: the `/api/v1` scope (CORS, JSON error bodies, 415 rule, panic
/// containment, bearer validation, each area's routes, out-of-scope answers, JSON 404), the
/// extractor error handlers, and the root `/openapi.json` + `/docs`. Self-sufficient: the
/// daemon runs [`app`] per worker.
/// ISO-8601 UTC with microseconds and a `Z`: the one timestamp format of every API response.
pub fn iso(t: chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub fn configure(cfg: &mut web::ServiceConfig, origins: std::sync::Arc<Vec<String>>) {
    cfg.app_data(error::json_config())
        .app_data(error::payload_config())
        .app_data(error::query_config())
        .app_data(error::path_config())
        .service(
            web::scope(API_PREFIX)
                // first wrap = innermost
                .wrap(from_fn(auth::bearer_middleware))
                .wrap(from_fn(error::catch_panics))
                .wrap(from_fn(error::reject_nul))
                .wrap(from_fn(error::require_json_body))
                .wrap(from_fn(error::normalize_errors))
                .wrap(cors(origins))
                .configure(users::configure)
                .configure(workers::configure)
                .configure(health::configure)
                .configure(stream::configure)
                .configure(intake::configure)
                .configure(clustering::configure)
                .configure(intel::configure)
                .configure(realism::configure)
                .configure(mail::configure)
                .configure(fleet::configure)
                .configure(webhooks::configure)
                .configure(canary::configure)
                .configure(ttp::configure)
                // last, so that a real route of an area always wins
                .configure(out_of_scope)
                .default_service(web::to(error::fallback)),
        )
        .configure(openapi::configure)
        .default_service(web::to(error::fallback));
}

/// The complete application for a state (tests; the daemon's `app.rs` does the same).
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let origins = std::sync::Arc::clone(&state.cors_origins);
    App::new()
        .app_data(web::Data::new(state))
        .configure(|cfg| configure(cfg, origins))
        .wrap(from_fn(crate::metrics::http_middleware))
}

// ---- CORS ----------------------------------------------------------------------------------

/// CORS from `DECNET_CORS_ORIGINS` (§7.3) through `actix-cors`: exact origins (the boot checks
/// refuse `*`), no credentials, the dashboard's methods and request headers, preflights cached
/// 10 minutes. A preflight from an origin not on the list gets 400; other requests from it are
/// served without CORS headers (the browser blocks them).
pub fn cors(origins: std::sync::Arc<Vec<String>>) -> actix_cors::Cors {
    actix_cors::Cors::default()
        .allowed_origin_fn(move |origin, _head| {
            origin
                .to_str()
                .is_ok_and(|o| origins.iter().any(|a| a == o))
        })
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("last-event-id"),
        ])
        .max_age(600)
        .block_on_origin_mismatch(false)
}

// ---- dashboard calls outside this build (dashboard-contract.md §17) ------------------------

/// Answer of an out-of-scope REST call.
pub const NOT_AVAILABLE: &str = "Not available in this build";

/// Out-of-scope answer, after authentication; a wrong method on a served path under an
/// out-of-scope prefix (e.g. `POST /logs`) is still a 405.
async fn not_available(req: HttpRequest) -> Result<HttpResponse, error::ApiError> {
    use actix_web::FromRequest as _;
    if let Some(res) = error::method_not_allowed(&req) {
        return Ok(res);
    }
    AnyUser::extract(&req).await?;
    Ok(HttpResponse::NotFound().json(serde_json::json!({ "detail": NOT_AVAILABLE })))
}

/// One running decky of the fleet view (dashboard-contract.md §10 K3: `{name, ip?}`; the
/// synthetic-files page reads `uuid`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeckyView {
    /// `<host_uuid>:<name>` for fleet deckies.
    pub uuid: String,
    pub name: String,
    pub ip: Option<String>,
    pub services: Vec<String>,
    /// `fleet`, `topology` or `shard`.
    pub source: String,
    pub topology_id: Option<String>,
}

#[utoipa::path(
    get, path = "/api/v1/deckies", tag = "Compatibility",
    responses((status = 200, description = "The running deckies (fleet view), by name", body = Vec<DeckyView>))
)]
async fn list_deckies(
    _v: Viewer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, error::ApiError> {
    let rows = crate::db::repo::fleet::list_running_deckies(&state.db).await?;
    let out: Vec<DeckyView> = rows
        .into_iter()
        .map(|d| DeckyView {
            source: serde_json::to_value(d.source)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            uuid: d.uuid,
            name: d.name,
            ip: d.ip,
            services: d.services,
            topology_id: d.topology_id,
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// Pages the stock dashboard links to that this build does not serve: the empty answers the
/// in-scope pages consume, and 404 `Not available in this build` for the rest (never 500).
fn out_of_scope(cfg: &mut web::ServiceConfig) {
    cfg.route("/deckies", web::get().to(list_deckies))
        .route("/attackers/export/{format}", web::route().to(not_available))
        .route(
            "/attackers/{uuid}/export/{format}",
            web::route().to(not_available),
        );
    for prefix in [
        "/deckies",
        "/topologies",
        "/swarm",
        "/swarm-updates",
        "/ttp",
        "/logs",
        "/bounty",
        "/artifacts",
        "/transcripts",
        "/system",
    ] {
        cfg.route(prefix, web::route().to(not_available))
            .route(&format!("{prefix}/"), web::route().to(not_available))
            .route(
                &format!("{prefix}/{{tail:.*}}"),
                web::route().to(not_available),
            );
    }
}

/// OpenAPI part of the compatibility routes (merged by `openapi.rs`).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_deckies),
    components(schemas(DeckyView)),
    tags((name = "Compatibility", description = "Empty answers for dashboard pages outside this build"))
)]
pub struct CompatDoc;

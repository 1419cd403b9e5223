//! The HTTP edge: every route in one place (`/api/v1` scope), auth guards, errors, SSE,
//! OpenAPI. [`app`] builds the complete actix `App` (used by the daemon and the tests).

pub mod auth;
pub mod clustering;
pub mod error;
pub mod fleet;
pub mod health;
pub mod intake;
pub mod intel;
pub mod openapi;
pub mod pagination;
pub mod realism;
pub mod sse;
pub mod state;
pub mod stream;
pub mod users;
pub mod workers;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, Uri};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse};

pub use state::AppState;

use crate::http::auth::Viewer;

/// Prefix of every API route.
pub const API_PREFIX: &str = "/api/v1";

/// Mount everything: the `/api/v1` scope (bearer validation middleware, each area's routes,
/// out-of-scope answers, JSON 404) and the root `/openapi.json` + `/docs`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(API_PREFIX)
            .wrap(from_fn(auth::bearer_middleware))
            .configure(users::configure)
            .configure(workers::configure)
            .configure(health::configure)
            .configure(stream::configure)
            .configure(intake::configure)
            .configure(clustering::configure)
            .configure(intel::configure)
            .configure(realism::configure)
            .configure(fleet::configure)
            // last, so that a real route of an area always wins
            .configure(out_of_scope)
            .default_service(web::to(error::not_found)),
    )
    .configure(openapi::configure);
}

/// The complete application: state, extractor error handlers, panic containment, 415 rule,
/// JSON error bodies, CORS.
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
    let cors = cors(&state.settings.api.effective_cors_origins());
    App::new()
        .app_data(web::Data::new(state))
        .app_data(error::json_config())
        .app_data(error::query_config())
        .app_data(error::path_config())
        .configure(configure)
        .default_service(web::to(error::not_found))
        // first wrap = innermost
        .wrap(from_fn(error::catch_panics))
        .wrap(from_fn(error::require_json_body))
        .wrap(from_fn(error::normalize_errors))
        .wrap(cors)
}

/// Run the HTTP server on an already bound listener (the daemon binds
/// `DECNET_API_HOST:DECNET_API_PORT`; tests bind `127.0.0.1:0`). Half-closed connections are
/// not kept: a client that goes away ends its SSE stream (and frees its slot) at once instead
/// of at the next keepalive write.
pub fn server(
    state: AppState,
    listener: std::net::TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let workers = state.settings.api.http_workers;
    let mut srv = actix_web::HttpServer::new(move || app(state.clone()))
        .h1_allow_half_closed(false)
        .shutdown_timeout(5);
    if workers > 0 {
        srv = srv.workers(workers);
    }
    Ok(srv.listen(listener)?.run())
}

/// CORS from `DECNET_CORS_ORIGINS` (§7.3): explicit origins, no credentials, the dashboard's
/// methods and headers. Invalid entries are skipped with a warning (boot already refused `*`).
pub fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
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
        .max_age(600);
    for origin in origins {
        let valid = origin != "*"
            && origin
                .parse::<Uri>()
                .is_ok_and(|u| u.scheme().is_some() && u.host().is_some());
        if valid {
            cors = cors.allowed_origin(origin);
        } else {
            tracing::warn!(origin = %origin, "ignoring invalid CORS origin");
        }
    }
    cors
}

// ---- dashboard calls outside this build (dashboard-contract.md §17) ------------------------

/// Answer of an out-of-scope REST call.
pub const NOT_AVAILABLE: &str = "Not available in this build";

async fn not_available() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({ "detail": NOT_AVAILABLE }))
}

#[utoipa::path(
    get, path = "/api/v1/deckies", tag = "Compatibility",
    responses((status = 200, description = "Fleet management is not part of this build: always an empty list", body = Vec<Object>))
)]
async fn empty_deckies(_v: Viewer) -> HttpResponse {
    HttpResponse::Ok().json(Vec::<serde_json::Value>::new())
}

#[utoipa::path(
    get, path = "/api/v1/ttp/by-identity/{uuid}", tag = "Compatibility",
    params(("uuid" = String, Path)),
    responses((status = 200, description = "TTP tagging is not part of this build: always an empty list", body = Vec<Object>))
)]
async fn empty_ttp_identity(_v: Viewer) -> HttpResponse {
    HttpResponse::Ok().json(Vec::<serde_json::Value>::new())
}

#[utoipa::path(
    get, path = "/api/v1/ttp/by-attacker/{uuid}", tag = "Compatibility",
    params(("uuid" = String, Path)),
    responses((status = 200, description = "TTP tagging is not part of this build: always an empty list", body = Vec<Object>))
)]
async fn empty_ttp_attacker(_v: Viewer) -> HttpResponse {
    HttpResponse::Ok().json(Vec::<serde_json::Value>::new())
}

/// Pages the stock dashboard links to that this build does not serve: the empty answers the
/// in-scope pages consume, and 404 `Not available in this build` for the rest (never 500).
fn out_of_scope(cfg: &mut web::ServiceConfig) {
    cfg.route("/deckies", web::get().to(empty_deckies))
        .route("/ttp/by-identity/{uuid}", web::get().to(empty_ttp_identity))
        .route("/ttp/by-attacker/{uuid}", web::get().to(empty_ttp_attacker));
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
    paths(empty_deckies, empty_ttp_identity, empty_ttp_attacker),
    tags((name = "Compatibility", description = "Empty answers for dashboard pages outside this build"))
)]
pub struct CompatDoc;

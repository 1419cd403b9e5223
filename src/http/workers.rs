//! Workers panel routes (spec/platform.md §2.3, dashboard-contract.md §14), tag "Observability".

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::actors::supervisor::{StartOutcome, SupervisorError, WorkerInfo};
use crate::actors::topics::build;
use crate::http::auth::{Admin, Viewer};
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// Order in which start-all walks the workers (reference preference mapped onto decnetd
/// names, §2.3); remaining known names follow in display order.
pub const START_ALL_ORDER: [&str; 10] = [
    "bus",
    "api",
    "ingester",
    "reconciler",
    "enricher",
    "clusterer",
    "campaign-clusterer",
    "webhooks",
    "planner",
    "mail-dripper",
];

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerRow {
    pub name: String,
    /// `ok` (heartbeat within the stale window), `stale`, or `unknown` (never seen).
    #[schema(example = "ok")]
    pub status: String,
    pub last_heartbeat_ts: Option<f64>,
    pub seconds_since: Option<f64>,
    /// Heartbeat payload minus `worker` and `ts`.
    #[schema(value_type = Object)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// The actor exists and is enabled in this daemon.
    pub installed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkersResponse {
    pub workers: Vec<WorkerRow>,
    /// Epoch seconds.
    pub generated_at: f64,
    /// False when the registry is disabled (explains an all-UNKNOWN panel).
    pub bus_connected: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ControlAccepted {
    pub accepted: bool,
    pub worker: String,
    #[schema(example = "stop")]
    pub action: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StartFailure {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct StartAllResponse {
    pub started: Vec<String>,
    pub already_running: Vec<String>,
    pub failed: Vec<StartFailure>,
}

fn now_epoch() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

fn unknown_worker(name: &str) -> ApiError {
    ApiError::not_found(format!("Unknown worker: '{name}'"))
}

/// First line of an error, at most 200 characters (§2.3 502 detail).
fn first_line_200(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(200).collect()
}

/// Join heartbeat snapshot and supervisor view (pure; unit-tested).
fn rows(
    known: &[WorkerInfo],
    status: Vec<crate::actors::heartbeat::WorkerStatus>,
) -> Vec<WorkerRow> {
    known
        .iter()
        .map(|w| {
            let st = status.iter().find(|s| s.name == w.name);
            WorkerRow {
                name: w.name.to_string(),
                status: st.map_or_else(|| "unknown".to_string(), |s| s.status.to_string()),
                last_heartbeat_ts: st.and_then(|s| s.last_heartbeat_ts),
                seconds_since: st.and_then(|s| s.seconds_since),
                extra: st.map(|s| s.extra.clone()).unwrap_or_default(),
                installed: w.installed,
            }
        })
        .collect()
}

#[utoipa::path(
    get, path = "/api/v1/workers", tag = "Observability",
    responses((status = 200, description = "One row per known worker, in display order", body = WorkersResponse))
)]
pub async fn list_workers(_viewer: Viewer, state: web::Data<AppState>) -> HttpResponse {
    let known = state.supervisor.known_workers();
    let body = WorkersResponse {
        workers: rows(&known, state.status.snapshot()),
        generated_at: now_epoch(),
        bus_connected: state.registry.is_enabled(),
    };
    HttpResponse::Ok().json(body)
}

#[utoipa::path(
    post, path = "/api/v1/workers/{name}/stop", tag = "Observability",
    params(("name" = String, Path, description = "Worker name")),
    responses(
        (status = 202, description = "Stop requested on system.<name>.control", body = ControlAccepted),
        (status = 503, description = "Registry unavailable"),
    )
)]
pub async fn stop_worker(
    admin: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    if !state
        .supervisor
        .known_workers()
        .iter()
        .any(|w| w.name == name)
    {
        return Err(unknown_worker(&name));
    }
    if !state.registry.is_enabled() {
        return Err(ApiError::unavailable("bus unavailable"));
    }
    let topic = build::system_control(&name)
        .map_err(|e| ApiError::internal(format!("control topic for {name:?}: {e:?}")))?;
    state.registry.publish_raw(
        &topic,
        "control",
        json!({"action": "stop", "requested_by": admin.username, "ts": now_epoch()}),
    );
    tracing::info!(worker = %name, by = %admin.username, "worker stop requested");
    Ok(HttpResponse::Accepted().json(ControlAccepted {
        accepted: true,
        worker: name,
        action: "stop".into(),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/workers/{name}/start", tag = "Observability",
    params(("name" = String, Path, description = "Worker name")),
    responses(
        (status = 202, description = "The supervisor (re)spawned the worker, or it already runs", body = ControlAccepted),
        (status = 502, description = "The start itself failed"),
        (status = 409, description = "The worker is not installed (disabled in configuration, or not part of this build)"),
    )
)]
pub async fn start_worker(
    admin: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    match state.supervisor.start(&name).await {
        Ok(_) => {
            tracing::info!(worker = %name, by = %admin.username, "worker start requested");
            Ok(HttpResponse::Accepted().json(ControlAccepted {
                accepted: true,
                worker: name,
                action: "start".into(),
            }))
        }
        Err(SupervisorError::UnknownWorker(_)) => Err(unknown_worker(&name)),
        // a known name whose worker this daemon does not run: a state conflict, not an outage
        Err(SupervisorError::NotInstalled(_)) => {
            Err(ApiError::conflict(format!("worker not installed: {name}")))
        }
        Err(SupervisorError::Failed(e)) => Err(ApiError::BadGateway(first_line_200(&e).into())),
    }
}

/// Start order: the preferred names first, then every other known name in display order.
fn start_all_order(known: &[WorkerInfo]) -> Vec<&WorkerInfo> {
    let mut out: Vec<&WorkerInfo> = START_ALL_ORDER
        .iter()
        .filter_map(|n| known.iter().find(|w| w.name == *n))
        .collect();
    for w in known {
        if !START_ALL_ORDER.contains(&w.name) {
            out.push(w);
        }
    }
    out
}

#[utoipa::path(
    post, path = "/api/v1/workers/start-all", tag = "Observability",
    responses((status = 200, description = "Per-worker outcome (200 even on partial failure)", body = StartAllResponse))
)]
pub async fn start_all(admin: Admin, state: web::Data<AppState>) -> HttpResponse {
    let known = state.supervisor.known_workers();
    let mut out = StartAllResponse::default();
    for w in start_all_order(&known) {
        if !w.installed {
            continue;
        }
        if w.running {
            out.already_running.push(w.name.to_string());
            continue;
        }
        match state.supervisor.start(w.name).await {
            Ok(StartOutcome::Started) => out.started.push(w.name.to_string()),
            Ok(StartOutcome::AlreadyRunning) => out.already_running.push(w.name.to_string()),
            Err(e) => out.failed.push(StartFailure {
                name: w.name.to_string(),
                reason: first_line_200(&e.to_string()),
            }),
        }
    }
    tracing::info!(by = %admin.username, started = ?out.started, "start-all");
    HttpResponse::Ok().json(out)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/workers", web::get().to(list_workers))
        .route("/workers/start-all", web::post().to(start_all))
        .route("/workers/{name}/stop", web::post().to(stop_worker))
        .route("/workers/{name}/start", web::post().to(start_worker));
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_workers, stop_worker, start_worker, start_all),
    components(schemas(
        WorkerRow,
        WorkersResponse,
        ControlAccepted,
        StartFailure,
        StartAllResponse
    ))
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::heartbeat::WorkerStatus;

    fn info(name: &'static str, installed: bool, running: bool) -> WorkerInfo {
        WorkerInfo {
            name,
            installed,
            running,
            restarts: 0,
            last_exit: None,
            restart_pending: false,
            admin_stopped: false,
        }
    }

    #[test]
    fn rows_join_status_and_default_to_unknown() {
        let known = [info("api", true, true), info("bus", false, false)];
        let mut extra = serde_json::Map::new();
        extra.insert("k".into(), json!(1));
        let status = vec![WorkerStatus {
            name: "api".into(),
            status: "ok",
            last_heartbeat_ts: Some(10.0),
            seconds_since: Some(2.0),
            extra,
        }];
        let r = rows(&known, status);
        assert_eq!(r[0].status, "ok");
        assert_eq!(r[0].extra["k"], 1);
        assert_eq!(r[1].status, "unknown");
        assert!(r[1].last_heartbeat_ts.is_none() && r[1].seconds_since.is_none());
        assert!(!r[1].installed);
    }

    #[test]
    fn start_all_walks_preferred_order_then_the_rest() {
        let known = [
            info("api", true, true),
            info("bus", true, true),
            info("ingester", true, false),
            info("canary", true, false),
            info("heartbeat", true, false),
            info("reconciler", true, false),
        ];
        let names: Vec<_> = start_all_order(&known).iter().map(|w| w.name).collect();
        assert_eq!(
            names,
            [
                "bus",
                "api",
                "ingester",
                "reconciler",
                "canary",
                "heartbeat"
            ]
        );
    }

    #[test]
    fn error_snippet_is_one_line_200_chars() {
        let long = format!("{}\nsecond", "x".repeat(300));
        assert_eq!(first_line_200(&long).len(), 200);
        assert_eq!(first_line_200("boom\nmore"), "boom");
    }
}

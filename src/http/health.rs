//! `GET /api/v1/health` (spec/platform.md §7.4) with real component checks: a database query
//! (cached 1 s), a Docker engine ping (cached 5 s), and the supervisor state of every actor
//! (`ingestion_worker` is the ingester). Details are fixed strings; error text never leaks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use parking_lot::Mutex;
use serde::Serialize;
use utoipa::ToSchema;

use crate::actors::supervisor::WorkerInfo;
use crate::http::auth::Viewer;
use crate::http::state::AppState;

const DB_TTL: Duration = Duration::from_secs(1);
const DOCKER_TTL: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Component name of the ingester (critical).
pub const INGESTION: &str = "ingestion_worker";
/// Workers that are not background jobs of their own (the HTTP side, the registry, beats).
const NOT_JOBS: [&str; 3] = ["api", "bus", "heartbeat"];

/// Cached probe results.
#[derive(Default)]
pub struct HealthCache {
    db: Mutex<Option<(bool, Instant)>>,
    docker: Mutex<Option<(bool, Instant)>>,
}

fn cached(slot: &Mutex<Option<(bool, Instant)>>, ttl: Duration) -> Option<bool> {
    slot.lock()
        .filter(|(_, at)| at.elapsed() < ttl)
        .map(|(ok, _)| ok)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Component {
    /// `ok` or `failing`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
}

impl Component {
    fn ok() -> Self {
        Component {
            status: "ok",
            detail: None,
        }
    }
    fn failing(detail: &'static str) -> Self {
        Component {
            status: "failing",
            detail: Some(detail),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `healthy`, `degraded` (only non-critical failing) or `unhealthy` (503).
    pub status: &'static str,
    pub components: BTreeMap<String, Component>,
}

/// Supervisor view of one actor → component (pure). Never echoes the exit reason.
pub fn worker_component(w: &WorkerInfo) -> Component {
    if w.running {
        Component::ok()
    } else if w.admin_stopped {
        Component::failing("cancelled")
    } else if w.restart_pending {
        Component::failing("exited unexpectedly")
    } else if let Some(reason) = &w.last_exit {
        if reason.to_ascii_lowercase().contains("panic") {
            Component::failing("exited unexpectedly")
        } else {
            Component::failing("exited with error")
        }
    } else {
        Component::failing("not started")
    }
}

/// Component name of an actor.
pub fn component_name(worker: &str) -> String {
    if worker == "ingester" {
        INGESTION.to_string()
    } else {
        format!("{}_worker", worker.replace('-', "_"))
    }
}

/// Overall status and HTTP code (pure).
pub fn overall(components: &BTreeMap<String, Component>) -> (&'static str, u16) {
    let critical = ["database", "docker", INGESTION];
    let failing = |c: &Component| c.status != "ok";
    if components
        .iter()
        .any(|(name, c)| critical.contains(&name.as_str()) && failing(c))
    {
        ("unhealthy", 503)
    } else if components.values().any(failing) {
        ("degraded", 200)
    } else {
        ("healthy", 200)
    }
}

async fn database_ok(state: &AppState) -> bool {
    if let Some(ok) = cached(&state.health.db, DB_TTL) {
        return ok;
    }
    let ok = matches!(
        tokio::time::timeout(PROBE_TIMEOUT, state.db.ping()).await,
        Ok(Ok(()))
    );
    *state.health.db.lock() = Some((ok, Instant::now()));
    ok
}

async fn docker_ok(state: &AppState) -> bool {
    if let Some(ok) = cached(&state.health.docker, DOCKER_TTL) {
        return ok;
    }
    let ok = match &state.docker {
        Some(d) => matches!(
            tokio::time::timeout(PROBE_TIMEOUT, d.ping()).await,
            Ok(Ok(()))
        ),
        None => false,
    };
    *state.health.docker.lock() = Some((ok, Instant::now()));
    ok
}

#[utoipa::path(
    get, path = "/api/v1/health", tag = "Observability",
    responses(
        (status = 200, description = "healthy or degraded", body = HealthResponse),
        (status = 503, description = "a critical component (database, docker, ingestion_worker) is failing", body = HealthResponse),
    )
)]
pub async fn health(_viewer: Viewer, state: web::Data<AppState>) -> HttpResponse {
    let (db, docker) = tokio::join!(database_ok(&state), docker_ok(&state));
    let mut components = BTreeMap::new();
    components.insert(
        "database".to_string(),
        if db {
            Component::ok()
        } else {
            Component::failing("database unavailable")
        },
    );
    components.insert(
        "docker".to_string(),
        if docker {
            Component::ok()
        } else {
            Component::failing("docker daemon unavailable")
        },
    );
    let known = state.supervisor.known_workers();
    for w in known.iter().filter(|w| !NOT_JOBS.contains(&w.name)) {
        let c = if w.installed {
            worker_component(w)
        } else {
            Component::failing("not started")
        };
        // an actor disabled by configuration is only reported if it is the critical ingester
        if w.installed || w.name == "ingester" {
            components.insert(component_name(w.name), c);
        }
    }
    let (status, code) = overall(&components);
    let body = HealthResponse { status, components };
    if code == 503 {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health));
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(health), components(schemas(HealthResponse, Component)))]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;

    fn w(name: &'static str, running: bool, last_exit: Option<&str>) -> WorkerInfo {
        WorkerInfo {
            name,
            installed: true,
            running,
            restarts: 0,
            last_exit: last_exit.map(str::to_string),
            restart_pending: false,
            admin_stopped: false,
        }
    }

    #[test]
    fn component_details_are_fixed_strings() {
        assert_eq!(worker_component(&w("x", true, None)), Component::ok());
        assert_eq!(
            worker_component(&w("x", false, None)).detail,
            Some("not started")
        );
        let mut stopped = w("x", false, None);
        stopped.admin_stopped = true;
        assert_eq!(worker_component(&stopped).detail, Some("cancelled"));
        let mut pending = w("x", false, Some("boom"));
        pending.restart_pending = true;
        assert_eq!(
            worker_component(&pending).detail,
            Some("exited unexpectedly")
        );
        assert_eq!(
            worker_component(&w("x", false, Some("panicked: secret=abc"))).detail,
            Some("exited unexpectedly")
        );
        assert_eq!(
            worker_component(&w("x", false, Some("error: db gone"))).detail,
            Some("exited with error")
        );
        assert_eq!(component_name("ingester"), INGESTION);
        assert_eq!(
            component_name("campaign-clusterer"),
            "campaign_clusterer_worker"
        );
    }

    #[test]
    fn overall_tiers() {
        let mut c = BTreeMap::new();
        c.insert("database".to_string(), Component::ok());
        c.insert("docker".to_string(), Component::ok());
        c.insert(INGESTION.to_string(), Component::ok());
        c.insert("enricher_worker".to_string(), Component::ok());
        assert_eq!(overall(&c), ("healthy", 200));
        c.insert(
            "enricher_worker".to_string(),
            Component::failing("not started"),
        );
        assert_eq!(overall(&c), ("degraded", 200));
        c.insert(INGESTION.to_string(), Component::failing("cancelled"));
        assert_eq!(overall(&c), ("unhealthy", 503));
    }
}

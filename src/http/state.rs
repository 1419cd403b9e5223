//! Shared state of every HTTP handler, registered as `web::Data<AppState>`.

use std::sync::Arc;
use std::time::Instant;

use crate::actors::heartbeat::StatusBoard;
use crate::actors::registry::RegistryHandle;
use crate::actors::supervisor::SupervisorHandle;
use crate::config::Settings;
use crate::db::Db;
use crate::docker::DeckyRuntime;
use crate::http::auth::{AuthSetupError, AuthState};
use crate::http::health::HealthCache;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub registry: RegistryHandle,
    pub supervisor: SupervisorHandle,
    pub status: StatusBoard,
    pub auth: Arc<AuthState>,
    pub docker: Option<Arc<dyn DeckyRuntime>>,
    pub started_at: Instant,
    /// Cached component checks of `GET /health`.
    pub health: Arc<HealthCache>,
}

impl AppState {
    /// Build the state; fails only when the JWT secret is missing (it is generated at boot).
    pub fn new(
        settings: Arc<Settings>,
        db: Db,
        registry: RegistryHandle,
        supervisor: SupervisorHandle,
        status: StatusBoard,
        docker: Option<Arc<dyn DeckyRuntime>>,
    ) -> Result<AppState, AuthSetupError> {
        let auth = Arc::new(AuthState::new(&settings)?);

        Ok(AppState {
            settings,
            db,
            registry,
            supervisor,
            status,
            auth,
            docker,
            started_at: Instant::now(),
            health: Arc::new(HealthCache::default()),
        })
    }
}

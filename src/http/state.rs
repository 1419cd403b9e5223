//! Shared state of every HTTP handler, registered as `web::Data<AppState>`.

use std::sync::Arc;
use std::time::Instant;

use crate::actors::heartbeat::StatusBoard;
use crate::actors::registry::RegistryHandle;
use crate::actors::supervisor::SupervisorHandle;
use crate::config::Settings;
use crate::db::Db;
use crate::docker::DeckyRuntime;
use crate::http::auth::AuthState;
use crate::http::health::HealthCache;
use crate::http::stream::LiveSource;

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
    /// Allowed CORS origins (`DECNET_CORS_ORIGINS`, trailing `/` trimmed).
    pub cors_origins: Arc<Vec<String>>,
    /// Data source of `GET /stream` (log rows and counts); see [`LiveSource`].
    pub live: Arc<dyn LiveSource>,
    /// Sockets of the canary trigger receivers (addresses for health and tests).
    pub canary: Arc<crate::canary::CanaryHub>,
    /// Serialized list pages reused while their tables' stamps hold (see [`super::pages`]).
    pub pages: Arc<super::pages::Pages>,
}

impl AppState {
    /// Build the state. The JWT secret is always set by the boot sequence (generated at first
    /// boot); should it be missing anyway, an ephemeral random key is used (tokens then die
    /// with the process) and the fact is logged.
    pub fn new(
        settings: Arc<Settings>,
        db: Db,
        registry: RegistryHandle,
        supervisor: SupervisorHandle,
        status: StatusBoard,
        docker: Option<Arc<dyn DeckyRuntime>>,
    ) -> AppState {
        let secret = match settings.auth.jwt_secret.as_ref().filter(|s| !s.is_empty()) {
            Some(s) => s.expose().as_bytes().to_vec(),
            None => {
                tracing::error!("DECNET_JWT_SECRET missing; using an ephemeral JWT key");
                let mut key = vec![0u8; 64];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
                key
            }
        };
        let auth = AuthState::with_secret(&secret, &settings);
        let cors_origins = settings
            .api
            .effective_cors_origins()
            .into_iter()
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty())
            .collect();
        let live = crate::http::live::DbLiveSource::shared(db.clone());
        let pages = super::pages::pages(settings.api.page_cache_ms, settings.api.page_cache_mib);
        AppState {
            settings,
            db,
            registry,
            supervisor,
            status,
            auth: Arc::new(auth),
            docker,
            started_at: Instant::now(),
            health: Arc::new(HealthCache::default()),
            cors_origins: Arc::new(cors_origins),
            live,
            canary: Arc::default(),
            pages: Arc::new(pages),
        }
    }
}

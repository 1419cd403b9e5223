use std::sync::Arc;

use crate::actors::{RegistryHandle, StatusBoard, SupervisorHandle};
use crate::config::Settings;
use crate::db::Db;
use crate::docker::DeckyRuntime;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub registry: RegistryHandle,
    pub supervisor: SupervisorHandle,
    pub status: StatusBoard,
    pub docker: Option<Arc<dyn DeckyRuntime>>,
    pub started_at: std::time::Instant,
}

impl AppState {
    pub fn new(
        settings: Arc<Settings>,
        db: Db,
        registry: RegistryHandle,
        supervisor: SupervisorHandle,
        status: StatusBoard,
        docker: Option<Arc<dyn DeckyRuntime>>,
    ) -> AppState {
        AppState {
            settings,
            db,
            registry,
            supervisor,
            status,
            docker,
            started_at: std::time::Instant::now(),
        }
    }
}

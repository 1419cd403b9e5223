//! Actors: the registry that replaces the bus, supervision, heartbeats, and the workers.
//!
//! Adding a worker: write `src/actors/<name>.rs` (an actix actor holding an [`ExitGuard`],
//! beating via [`heartbeat::start_beating`], handling [`Shutdown`]) and add one line to
//! [`worker_specs`]. Its name must be one of [`supervisor::DISPLAY_ORDER`].

pub mod campaign_clusterer;
pub mod canary;
pub mod clusterer;
pub mod enricher;
pub mod heartbeat;
pub mod ingester;
pub mod mail_dripper;
pub mod planner;
pub mod reconciler;
pub mod registry;
pub mod supervisor;
pub mod tick_worker;
pub mod topics;
pub mod ttp_tagger;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use crate::db::Db;
use crate::docker::DeckyRuntime;

pub use heartbeat::{Beat, Beating, StatusBoard};
pub use registry::RegistryHandle;
pub use supervisor::{ExitGuard, Shutdown, SupervisorHandle, WorkerSpec};

/// What a worker factory may capture. Cheap to clone.
#[derive(Clone)]
pub struct Deps {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub registry: RegistryHandle,
    pub status: StatusBoard,
    pub docker: Option<Arc<dyn DeckyRuntime>>,
    /// Sockets of the canary trigger receivers (bound at boot).
    pub canary: Arc<crate::canary::CanaryHub>,
}

impl Deps {
    /// Heartbeat settings for the worker `name`.
    pub fn beat(&self, name: &'static str) -> Beat {
        Beat::new(
            self.registry.clone(),
            name,
            Duration::from_secs_f64(self.settings.workers.heartbeat_interval_s),
        )
        .recording_to(self.status.clone())
    }
}

/// Every worker the daemon runs, minus the ones disabled in settings.
pub fn worker_specs(deps: &Deps) -> Vec<WorkerSpec> {
    let mut specs = Vec::new();
    {
        let d = deps.clone();
        specs.push(WorkerSpec::new("heartbeat", move |exit| {
            heartbeat::HeartbeatActor::new(d.status.clone(), d.beat("heartbeat"), exit)
        }));
    }
    {
        let d = deps.clone();
        // Outlives each ingester generation: listeners and their queued lines survive a restart.
        let hub = ingester::IntakeHub::default();
        specs.push(WorkerSpec::new("ingester", move |exit| {
            ingester::Ingester::new(d.clone(), hub.clone(), exit)
        }));
    }
    {
        let d = deps.clone();
        specs.push(WorkerSpec::new("clusterer", move |exit| {
            clusterer::Clusterer::new(d.clone(), exit)
        }));
    }
    {
        let d = deps.clone();
        specs.push(WorkerSpec::new("campaign-clusterer", move |exit| {
            campaign_clusterer::CampaignClusterer::new(d.clone(), exit)
        }));
    }
    {
        let d = deps.clone();
        specs.push(WorkerSpec::new(ttp_tagger::NAME, move |exit| {
            ttp_tagger::TtpTagger::new(d.clone(), exit)
        }));
    }
    {
        let d = deps.clone();
        specs.push(WorkerSpec::new("reconciler", move |exit| {
            reconciler::ReconcilerActor::from_deps(&d, exit)
        }));
    }
    specs.push(enricher::worker_spec(deps));
    {
        let d = deps.clone();
        specs.push(WorkerSpec::new("planner", move |exit| {
            planner::Planner::new(d.clone(), exit)
        }));
    }
    {
        let d = deps.clone();
        specs.push(WorkerSpec::new(mail_dripper::NAME, move |exit| {
            mail_dripper::MailDripper::new(d.clone(), exit)
        }));
    }
    {
        let d = deps.clone();
        specs.push(WorkerSpec::new(webhooks::NAME, move |exit| {
            webhooks::WebhookDispatcher::new(d.clone(), exit)
        }));
    }
    {
        let d = deps.clone();
        specs.push(WorkerSpec::new(canary::NAME, move |exit| {
            canary::CanaryPlanter::new(d.clone(), exit)
        }));
    }
    let disabled = &deps.settings.workers.disabled;
    specs.retain(|s| !disabled.iter().any(|d| d == s.name()));
    specs
}

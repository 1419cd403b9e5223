//! The `reconciler` worker (platform spec §6.4): keeps `fleet_deckies` in step with the state
//! file, the labelled decky containers and their actual Docker status, and publishes
//! `decky.<host:name>.state` on every transition.
//!
//! It also turns what it observes of each decky's service set into mutation events (§6.5):
//! creation, retirement and service changes, each appended as an RFC 5424 line to the ingest
//! file and published as `decky.<name>.mutation`. What was emitted is stored
//! (`fleet_emitted_services`) before it is emitted, so a restart never re-emits a transition.
//!
//! The decisions are the pure [`crate::domain::fleet::plan`] and
//! [`crate::domain::mutation::transitions`]; this file does the I/O around them.
//! [`Reconciler::run_pass`] is one pass (also the one-shot mode); [`ReconcilerActor`] runs it
//! every interval, and sooner when Docker reports a fleet container starting or stopping.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::actors::heartbeat::{start_beating, Beat, Beating};
use crate::actors::registry::RegistryHandle;
use crate::actors::supervisor::{ExitGuard, Shutdown};
use crate::actors::topics::{
    DeckyMutation, DeckyState as DeckyStatePayload, DeckyTransition, Event,
};
use crate::db::models::fleet::FleetDeckyUpsert;
use crate::db::repo::fleet as fleet_repo;
use crate::db::{now_utc, Db, DbError};
use crate::docker::{
    ContainerEvent, ContainerInfo, ContainerState, DeckyRuntime, DockerError, LABEL_FLEET_DECKY,
    LABEL_FLEET_SERVICE, LABEL_FLEET_SERVICE_NAME,
};
use crate::domain::fleet::{
    self, parse_state_file, DeckyState, DesiredDecky, ObservedContainer, StateFileError,
    StoredDecky, LOCAL_HOST,
};
use crate::domain::mutation::{self, Mutation, Seen};

/// Worker name.
pub const NAME: &str = "reconciler";
/// Longest wait before re-subscribing to Docker events after the stream ended.
const EVENTS_MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Why a pass failed (nothing was written).
#[derive(Debug, Error)]
pub enum ReconcileError {
    /// The state file exists but cannot be read.
    #[error("cannot read state file {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The state file is not a valid deployment (a broken file never means "no deckies").
    #[error("state file {path}: {source}")]
    StateFile {
        /// File.
        path: PathBuf,
        /// Cause.
        source: StateFileError,
    },
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Outcome of one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PassReport {
    /// Rows inserted.
    pub inserted: usize,
    /// Rows deleted.
    pub deleted: usize,
    /// Rows whose state changed.
    pub state_updated: usize,
    /// Whether Docker answered (else its view was *unknown*).
    pub docker_known: bool,
    /// Docker error, when it did not answer.
    pub docker_error: Option<String>,
    /// State-file deckies of other hosts, not reconciled here.
    pub skipped_other_hosts: usize,
    /// Mutation events emitted (§6.5).
    pub mutations: usize,
}

/// The state file's deckies and its deployment-wide mutation interval.
#[derive(Debug, Clone, Default)]
pub struct DesiredState {
    /// Deckies of every host.
    pub deckies: Vec<DesiredDecky>,
    /// Top-level `config.mutate_interval`.
    pub mutate_interval: Option<i64>,
}

/// One reconciliation pass over the database, the state file and Docker.
pub struct Reconciler {
    db: Db,
    docker: Option<Arc<dyn DeckyRuntime>>,
    registry: Option<RegistryHandle>,
    state_file: PathBuf,
    host: String,
    decky_label: String,
    ingest_file: Option<PathBuf>,
}

/// Map a listed container onto what the pure plan needs; `decky_label` names the label that
/// carries the decky name.
pub fn observe(c: &ContainerInfo, decky_label: &str) -> ObservedContainer {
    ObservedContainer {
        name: c.name.clone(),
        running: c.state == ContainerState::Running,
        fleet_service: c.labels.get(LABEL_FLEET_SERVICE).map(String::as_str) == Some("true"),
        decky_label: c.labels.get(decky_label).cloned(),
        service_label: c.labels.get(LABEL_FLEET_SERVICE_NAME).cloned(),
        ip: c.ip.clone(),
    }
}

impl Reconciler {
    /// A reconciler for the local host (`host_uuid = local`). `registry` `None` = write only.
    pub fn new(
        db: Db,
        docker: Option<Arc<dyn DeckyRuntime>>,
        registry: Option<RegistryHandle>,
        state_file: impl Into<PathBuf>,
    ) -> Self {
        Reconciler {
            db,
            docker,
            registry,
            state_file: state_file.into(),
            host: LOCAL_HOST.to_owned(),
            decky_label: LABEL_FLEET_DECKY.to_owned(),
            ingest_file: None,
        }
    }

    /// Append mutation lines (§6.5) to `path`, the file the ingester tails. Without it,
    /// mutations are only published.
    pub fn with_ingest_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ingest_file = Some(path.into());
        self
    }

    /// Use another label for the decky name of fleet service containers.
    pub fn with_decky_label(mut self, label: impl Into<String>) -> Self {
        self.decky_label = label.into();
        self
    }

    /// The state file's deckies; an absent file is an empty deployment.
    pub async fn load_state_file(&self) -> Result<DesiredState, ReconcileError> {
        let text = match tokio::fs::read_to_string(&self.state_file).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DesiredState::default())
            }
            Err(source) => {
                return Err(ReconcileError::Io {
                    path: self.state_file.clone(),
                    source,
                })
            }
        };
        let (file, raw) = parse_state_file(&text).map_err(|source| ReconcileError::StateFile {
            path: self.state_file.clone(),
            source,
        })?;
        Ok(DesiredState {
            deckies: DesiredDecky::from_state_file(&file, &raw),
            mutate_interval: file.config.mutate_interval,
        })
    }

    /// Docker's view: every container, or the error that made it unknown.
    async fn observe_docker(&self) -> Result<Vec<ObservedContainer>, String> {
        let Some(rt) = &self.docker else {
            return Err("docker client not configured".to_owned());
        };
        match rt.list_containers(None).await {
            Ok(list) => Ok(list.iter().map(|c| observe(c, &self.decky_label)).collect()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn publish(
        &self,
        name: &str,
        state: &str,
        transition: DeckyTransition,
        previous: Option<String>,
    ) {
        let Some(registry) = &self.registry else {
            return;
        };
        registry.publish(Event::DeckyState {
            decky_id: format!("{}:{name}", self.host),
            state: DeckyStatePayload {
                host_uuid: self.host.clone(),
                name: name.to_owned(),
                state: state.to_owned(),
                transition,
                previous_state: previous,
            },
        });
    }

    /// Run one pass: load, plan, write, publish. A converged pass writes and publishes
    /// nothing. Docker errors make the pass treat Docker as unknown, never as empty.
    pub async fn run_pass(&self) -> Result<PassReport, ReconcileError> {
        let DesiredState {
            deckies: desired,
            mutate_interval,
        } = self.load_state_file().await?;
        let rows = fleet_repo::list(&self.db, Some(&self.host)).await?;
        let stored: Vec<StoredDecky> = rows
            .iter()
            .map(|r| StoredDecky {
                host_uuid: r.host_uuid.clone(),
                name: r.name.clone(),
                state: r.state.clone(),
            })
            .collect();
        let observed = self.observe_docker().await;
        let mut report = PassReport {
            docker_known: observed.is_ok(),
            docker_error: observed.as_ref().err().cloned(),
            ..PassReport::default()
        };
        if let Some(err) = &report.docker_error {
            tracing::warn!(error = %err, "reconciler: docker unavailable; container state unknown");
        }
        let plan = fleet::plan(&self.host, &desired, &stored, observed.as_deref().ok());
        report.skipped_other_hosts = plan.skipped_other_hosts.len();
        let now = now_utc();

        for ins in plan.inserts {
            let d = ins.decky;
            fleet_repo::upsert(
                &self.db,
                FleetDeckyUpsert {
                    host_uuid: Some(d.host_uuid.clone()),
                    name: d.name.clone(),
                    services: d.services.clone(),
                    decky_config: d.config.clone(),
                    decky_ip: d.ip.clone(),
                    state: ins.state.as_str().to_owned(),
                    last_error: ins.detail.clone(),
                    compose_hash: None,
                    last_seen: report.docker_known.then_some(now),
                },
            )
            .await?;
            tracing::info!(decky = %d.name, state = %ins.state, source = ?d.source, "reconciler: decky inserted");
            self.publish(&d.name, ins.state.as_str(), DeckyTransition::Inserted, None);
            report.inserted += 1;
        }
        for row in plan.deletes {
            fleet_repo::delete(&self.db, Some(&row.host_uuid), &row.name).await?;
            tracing::info!(decky = %row.name, "reconciler: decky row deleted (torn down)");
            self.publish(
                &row.name,
                DeckyState::TornDown.as_str(),
                DeckyTransition::Deleted,
                None,
            );
            report.deleted += 1;
        }
        for up in plan.updates {
            let exists = fleet_repo::update_state(
                &self.db,
                Some(&up.host_uuid),
                &up.name,
                up.state.as_str(),
                up.detail.as_deref(),
                now,
            )
            .await?;
            if !exists {
                continue;
            }
            tracing::info!(decky = %up.name, from = %up.previous, to = %up.state, "reconciler: decky state changed");
            self.publish(
                &up.name,
                up.state.as_str(),
                DeckyTransition::StateChanged,
                Some(up.previous),
            );
            report.state_updated += 1;
        }
        if let Ok(containers) = &observed {
            let mine: Vec<DesiredDecky> = desired
                .into_iter()
                .filter(|d| d.host_uuid == self.host)
                .collect();
            let now = mutation::observe(&mine, mutate_interval, containers);
            report.mutations = self.emit_mutations(&now).await?;
        }
        Ok(report)
    }

    /// Compare `observed` with what was last emitted and emit each transition: stored first
    /// (a crash between the two loses an event rather than repeating it), then the line, then
    /// the registry event, each failing on its own at WARN. Returns the count emitted.
    async fn emit_mutations(&self, observed: &[mutation::Observed]) -> Result<usize, DbError> {
        let seen: Vec<Seen> = fleet_repo::list_emitted(&self.db, &self.host)
            .await?
            .into_iter()
            .map(|r| Seen {
                services: crate::db::models::fleet::decode_services(&r.services)
                    .unwrap_or_default(),
                name: r.name,
                last_mutated: r.last_mutated,
            })
            .collect();
        let mutations = mutation::transitions(&seen, observed);
        for m in &mutations {
            fleet_repo::record_emitted(
                &self.db,
                &self.host,
                &m.decky,
                &m.new_services,
                m.last_mutated,
            )
            .await?;
            crate::metrics::decky_mutation(m.trigger.as_str());
            tracing::info!(decky = %m.decky, trigger = m.trigger.as_str(), old = ?m.old_services, new = ?m.new_services, "reconciler: decky mutation");
            self.append_line(m).await;
            if let Some(registry) = &self.registry {
                registry.publish(Event::DeckyMutation(DeckyMutation {
                    decky: m.decky.clone(),
                    old_services: m.old_services.clone(),
                    new_services: m.new_services.clone(),
                    trigger: m.trigger.as_str().to_owned(),
                    actor: m.actor.clone(),
                }));
            }
        }
        Ok(mutations.len())
    }

    /// Append the §6.5 line of `m` to the ingest file (directories created); failures are
    /// logged at WARN.
    async fn append_line(&self, m: &Mutation) {
        use tokio::io::AsyncWriteExt;
        let Some(path) = &self.ingest_file else {
            return;
        };
        let line = match mutation::syslog_line(m, chrono::Utc::now()) {
            Ok(l) => l + "\n",
            Err(e) => {
                tracing::warn!(error = %e, "reconciler: mutation line not written");
                return;
            }
        };
        let res = async {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir).await?;
            }
            let mut f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await?;
            f.write_all(line.as_bytes()).await?;
            f.flush().await
        }
        .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, file = %path.display(), decky = %m.decky, "reconciler: cannot append mutation line");
        }
    }
}

/// One-shot mode (`decnetd reconcile`): one pass with the configured state file, decky
/// label and Docker engine, without publishing (no registry runs).
pub async fn run_once(
    settings: &crate::config::Settings,
    db: Db,
) -> Result<PassReport, ReconcileError> {
    let docker = match crate::docker::BollardRuntime::for_host(settings.docker.host.as_deref()) {
        Ok(rt) => Some(Arc::new(rt) as Arc<dyn DeckyRuntime>),
        Err(e) => {
            tracing::warn!(error = %e, "docker engine client unavailable; container state unknown");
            None
        }
    };
    Reconciler::new(db, docker, None, settings.fleet.state_file.clone())
        .with_decky_label(settings.fleet.decky_label.clone())
        .with_ingest_file(settings.ingest.log_file.clone())
        .run_pass()
        .await
}

// ---------------------------------------------------------------------------------------------
// Actor
// ---------------------------------------------------------------------------------------------

/// Counters shown in the heartbeat `extra`.
#[derive(Debug, Default, Clone)]
struct Stats {
    passes: u64,
    failures: u64,
    last: Option<PassReport>,
    last_error: Option<String>,
    docker_events: bool,
}

/// The supervised `reconciler` worker.
pub struct ReconcilerActor {
    rec: Arc<Reconciler>,
    beat: Beat,
    interval: Duration,
    _exit: ExitGuard,
    in_flight: bool,
    rerun: bool,
    stats: Stats,
    events_backoff: Duration,
}

impl ReconcilerActor {
    /// A worker running `rec` every `interval` (first pass after one interval).
    pub fn new(rec: Reconciler, beat: Beat, interval: Duration, exit: ExitGuard) -> Self {
        ReconcilerActor {
            rec: Arc::new(rec),
            beat,
            interval: interval.max(Duration::from_millis(100)),
            _exit: exit,
            in_flight: false,
            rerun: false,
            stats: Stats::default(),
            events_backoff: Duration::from_secs(1),
        }
    }

    /// The worker as the supervisor builds it: local host, settings' state file and interval,
    /// the shared Docker runtime and registry.
    pub fn from_deps(deps: &crate::actors::Deps, exit: ExitGuard) -> Self {
        let fleet = &deps.settings.fleet;
        let rec = Reconciler::new(
            deps.db.clone(),
            deps.docker.clone(),
            Some(deps.registry.clone()),
            fleet.state_file.clone(),
        )
        .with_decky_label(fleet.decky_label.clone())
        .with_ingest_file(deps.settings.ingest.log_file.clone());
        let interval = Duration::from_secs_f64(fleet.reconciler_interval_s.max(0.1));
        Self::new(rec, deps.beat(NAME), interval, exit)
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight {
            self.rerun = true;
            return;
        }
        self.in_flight = true;
        let rec = Arc::clone(&self.rec);
        ctx.spawn(
            async move { rec.run_pass().await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    act.in_flight = false;
                    act.stats.passes += 1;
                    match res {
                        Ok(report) => {
                            if report.inserted
                                + report.deleted
                                + report.state_updated
                                + report.mutations
                                > 0
                            {
                                tracing::debug!(?report, "reconciler pass");
                            }
                            act.stats.last = Some(report);
                            act.stats.last_error = None;
                        }
                        Err(e) => {
                            act.stats.failures += 1;
                            tracing::warn!(error = %e, "reconciler pass failed");
                            act.stats.last_error = Some(e.to_string());
                        }
                    }
                    if std::mem::take(&mut act.rerun) {
                        act.tick(ctx);
                    }
                }),
        );
    }

    fn watch_docker_events(&mut self, ctx: &mut Context<Self>) {
        let Some(rt) = self.rec.docker.clone() else {
            return;
        };
        ctx.spawn(async move { rt.events().await }.into_actor(self).map(
            |res, act, ctx| match res {
                Ok(stream) => {
                    act.stats.docker_events = true;
                    act.events_backoff = Duration::from_secs(1);
                    ctx.add_stream(stream);
                }
                Err(e) => {
                    act.stats.docker_events = false;
                    act.retry_events_later(ctx, &e);
                }
            },
        ));
    }

    fn retry_events_later(&mut self, ctx: &mut Context<Self>, e: &DockerError) {
        let wait = self.events_backoff;
        tracing::debug!(error = %e, ?wait, "reconciler: docker events unavailable; retrying");
        self.events_backoff = (self.events_backoff * 2).min(EVENTS_MAX_BACKOFF);
        ctx.run_later(wait, |act, ctx| act.watch_docker_events(ctx));
    }
}

impl Beating for ReconcilerActor {
    fn beat(&self) -> &Beat {
        &self.beat
    }

    fn health_extra(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let docker = match (&self.rec.docker, &self.stats.last) {
            (None, _) => "disabled",
            (Some(_), None) => "pending",
            (Some(_), Some(r)) if r.docker_known => "ok",
            (Some(_), Some(_)) => "unavailable",
        };
        m.insert("docker".into(), Value::from(docker));
        if let Some(err) = self
            .stats
            .last
            .as_ref()
            .and_then(|r| r.docker_error.clone())
        {
            m.insert("docker_error".into(), Value::from(err));
        }
        m.insert(
            "docker_events".into(),
            Value::from(self.stats.docker_events),
        );
        m.insert("passes".into(), Value::from(self.stats.passes));
        m.insert("failures".into(), Value::from(self.stats.failures));
        if let Some(r) = &self.stats.last {
            m.insert(
                "last_pass".into(),
                serde_json::json!({
                    "inserted": r.inserted,
                    "deleted": r.deleted,
                    "state_updated": r.state_updated,
                    "mutations": r.mutations,
                }),
            );
        }
        if let Some(e) = &self.stats.last_error {
            m.insert("last_error".into(), Value::from(e.clone()));
        }
        m
    }
}

impl Actor for ReconcilerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        start_beating(ctx, self);
        ctx.run_interval(self.interval, |act, ctx| act.tick(ctx));
        self.watch_docker_events(ctx);
    }
}

impl StreamHandler<Result<ContainerEvent, DockerError>> for ReconcilerActor {
    fn handle(&mut self, item: Result<ContainerEvent, DockerError>, ctx: &mut Context<Self>) {
        match item {
            Ok(ev) if ev.labels.get(LABEL_FLEET_SERVICE).map(String::as_str) == Some("true") => {
                tracing::debug!(container = %ev.name, action = ev.action.as_str(), "reconciler: fleet container event");
                self.tick(ctx);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "reconciler: docker events error"),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        // The engine went away (or restarted): resubscribe with backoff; passes go on.
        self.stats.docker_events = false;
        let e = DockerError::Unavailable("event stream ended".into());
        self.retry_events_later(ctx, &e);
    }
}

impl Handler<Shutdown> for ReconcilerActor {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

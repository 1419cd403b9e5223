//! The Planner actor (realism.md §5): keeps deckies alive with SSH probes between them and
//! persona-authored files inside them.
//!
//! Decisions come from [`crate::domain::realism`]; this module schedules, talks to Docker
//! through [`DeckyRuntime`], records `orchestrator_events` / `synthetic_files` rows and
//! publishes `orchestrator.traffic.*` / `orchestrator.file.*` after each write.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::actors::heartbeat::start_beating;
use crate::actors::topics::{Event, OrchestratorActivity};
use crate::actors::{Beat, Beating, Deps, ExitGuard, RegistryHandle, Shutdown};
use crate::canary::CanaryCore;
use crate::db::models::fleet::{DeckySource, RunningDecky};
use crate::db::models::realism::{NewOrchestratorEvent, NewSyntheticFile, SyntheticFile};
use crate::db::repo::{fleet as fleet_repo, realism as repo};
use crate::db::{now_utc, Db, DbError};
use crate::docker::{service_container_name, DeckyRuntime, DockerError};
use crate::domain::realism::events::{
    edit_failure_payload, edit_success_payload, file_payload, write_error_text, FILE_CREATE_ACTION,
    FILE_EDIT_ACTION, FILE_MODE, PROTOCOL_SSH,
};
use crate::domain::realism::naming::CACHE_PREFIX;
use crate::domain::realism::planner::{has_service, should_prefetch_edit};
use crate::domain::realism::pool::{
    persona_source, resolve_pool_path, PersonaSource, PoolFacts, ETC_DIR, POOL_FILE_NAME,
};
use crate::domain::realism::traffic::{
    probe_argv, TrafficResult, PROBE_EXEC_TIMEOUT_S, RC_NOT_FOUND, RC_TIMEOUT, TRAFFIC_ACTION,
};
use crate::domain::realism::{
    action_order, is_traffic_eligible, next_iteration, pick, pick_pair, ActionKind, BodyContext,
    ContentClass, EditCandidate, Persona, Plan, PlanDetail, PlannerDecky, RealismWeights,
};

/// `realism_config` key of the planner weights.
pub const WEIGHTS_KEY: &str = "weights";
/// Ticks between live-config refreshes.
pub const REFRESH_EVERY: u64 = 5;
/// Ticks between prunes.
pub const PRUNE_EVERY: u64 = 100;
/// Events kept per destination decky.
pub const EVENTS_PER_DST_CAP: i64 = 10_000;
/// Oldest synthetic file offered for an edit, days.
pub const EDIT_MAX_AGE_DAYS: i64 = 30;
/// Service whose container hosts probes and planted files.
pub const SSH_SERVICE: &str = "ssh";
/// Wall-clock cap of one file write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(8);

/// Errors that abort a tick (everything else is recorded as a failed action).
#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error("no docker client")]
    NoDocker,
}

// ---- persona pool ---------------------------------------------------------------------------

/// The global persona pool file (realism.md §3.5), cached by (path, mtime). Shared by the
/// Planner and, later, the MailDripper.
#[derive(Debug)]
pub struct PersonaPool {
    path: PathBuf,
    cache: parking_lot::Mutex<Option<(SystemTime, Arc<Vec<Persona>>)>>,
    /// The last load found no valid persona (first run); `None` before the first load.
    last_empty: parking_lot::Mutex<Option<bool>>,
}

impl PersonaPool {
    pub fn new(path: PathBuf) -> Self {
        PersonaPool {
            path,
            cache: parking_lot::Mutex::new(None),
            last_empty: parking_lot::Mutex::new(None),
        }
    }

    /// The configured path, else the §3.5 resolution (`/etc/decnet` if usable, else home).
    pub fn resolve(configured: Option<&Path>) -> PathBuf {
        if let Some(p) = configured {
            return p.to_path_buf();
        }
        let etc_dir = Path::new(ETC_DIR);
        let etc_dir_writable = std::fs::metadata(etc_dir)
            .map(|m| m.is_dir() && !m.permissions().readonly())
            .unwrap_or(false);
        let home = std::env::var_os("HOME").map(PathBuf::from);
        resolve_pool_path(&PoolFacts {
            env: None,
            legacy_env: None,
            etc_file_exists: etc_dir.join(POOL_FILE_NAME).is_file(),
            etc_dir_writable,
            home: home.as_deref(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Drop the cache so the next load re-reads the file.
    pub fn invalidate(&self) {
        *self.cache.lock() = None;
    }

    /// Why the pool cannot feed anyone (shown in `/workers`), when its last load was empty.
    pub fn idle_reason(&self) -> Option<String> {
        (*self.last_empty.lock() == Some(true)).then(|| no_personas_reason(&self.path))
    }

    /// The valid personas of the pool; empty when the file is missing or unusable (never
    /// dummy personas). Empty results are not cached.
    pub async fn load(&self) -> Arc<Vec<Persona>> {
        let list = self.load_inner().await;
        *self.last_empty.lock() = Some(list.is_empty());
        list
    }

    async fn load_inner(&self) -> Arc<Vec<Persona>> {
        let mtime_before = tokio::fs::metadata(&self.path)
            .await
            .and_then(|m| m.modified())
            .ok();
        if let (Some(m), Some((cached_m, list))) = (mtime_before, self.cache.lock().as_ref()) {
            if m == *cached_m {
                return list.clone();
            }
        }
        let text = match tokio::fs::read_to_string(&self.path).await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(path = %self.path.display(), error = %e, "persona pool unreadable");
                return Arc::new(Vec::new());
            }
        };
        let parsed = crate::domain::realism::parse_personas_str(Some(&text), "en");
        for w in &parsed.warnings {
            tracing::warn!(path = %self.path.display(), "persona pool: {w}");
        }
        let list = Arc::new(parsed.personas);
        // mtime taken after the read, so a write racing the read forces a reload next time
        let mtime_after = tokio::fs::metadata(&self.path)
            .await
            .and_then(|m| m.modified())
            .ok();
        if let Some(m) = mtime_after.filter(|_| !list.is_empty()) {
            *self.cache.lock() = Some((m, list.clone()));
        }
        list
    }
}

/// The first-run message: no personas means no planted files and no mail, and how to fix it.
pub fn no_personas_reason(path: &Path) -> String {
    format!(
        "no valid persona in {}: no files are planted and no mail flows; import a pool with \
         `decnetd personas import config/email_personas.example.json` (or PUT /api/v1/realism/personas)",
        path.display()
    )
}

// ---- one action -----------------------------------------------------------------------------

/// What one executed action left behind.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRecord {
    pub kind: ActionKind,
    pub action: String,
    pub success: bool,
    pub event_uuid: String,
    pub dst_decky_uuid: String,
}

/// The I/O side of the planner: DB, Docker, registry.
#[derive(Clone)]
pub struct PlannerCore {
    pub db: Db,
    pub docker: Arc<dyn DeckyRuntime>,
    pub registry: RegistryHandle,
    /// The CanaryPlanter's core: canary classes plant live tokens through it (§5.4). `None`
    /// = every canary plan falls back to an inert plant.
    pub canary: Option<CanaryCore>,
}

/// A live-config load outcome.
#[derive(Debug)]
pub enum ConfigLoad {
    /// No stored row: the defaults apply.
    Missing,
    /// Stored values applied (with entries dropped from the wrong list).
    Applied(RealismWeights, Vec<String>),
    /// The stored value is unusable (not JSON, not an object, invalid): keep the current
    /// values (the API serves the defaults).
    Invalid(String),
    /// The database could not be read: keep the current values.
    Unreadable(DbError),
}

/// Load the `weights` row and apply it on top of the defaults (§4.4 live refresh). Every
/// failure keeps the current values.
pub async fn load_weights(db: &Db) -> ConfigLoad {
    let row = match repo::get_realism_config(db, WEIGHTS_KEY).await {
        Ok(Some(row)) => row,
        Ok(None) => return ConfigLoad::Missing,
        Err(e) => return ConfigLoad::Unreadable(e),
    };
    let Some(value) = row.value_json() else {
        return ConfigLoad::Invalid("stored weights are not JSON".into());
    };
    match RealismWeights::default().merged(&value) {
        Ok((w, dropped)) => ConfigLoad::Applied(w, dropped),
        Err(e) => ConfigLoad::Invalid(e.to_string()),
    }
}

fn docker_rc(e: &DockerError) -> i64 {
    match e {
        DockerError::Timeout(_) => RC_TIMEOUT,
        DockerError::Unavailable(_) => RC_NOT_FOUND,
        DockerError::CommandFailed { exit_code, .. } => *exit_code,
        _ => 125,
    }
}

fn docker_message(e: &DockerError) -> String {
    match e {
        DockerError::Timeout(_) => "timeout".to_owned(),
        DockerError::CommandFailed { stderr, .. } => stderr.clone(),
        other => other.to_string(),
    }
}

fn services_of(d: &RunningDecky) -> Option<&[String]> {
    // an undecoded services value means "no services" (never guess)
    d.services_raw.is_none().then_some(d.services.as_slice())
}

fn as_object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => {
            let mut m = Map::new();
            m.insert("value".into(), other);
            m
        }
    }
}

impl PlannerCore {
    /// Insert the event row, then publish it (publication never fails the action).
    async fn record(
        &self,
        kind: ActionKind,
        action: &str,
        src: Option<&str>,
        dst: &str,
        success: bool,
        payload: Value,
    ) -> Result<ActionRecord, DbError> {
        let event_uuid = repo::record_orchestrator_event(
            &self.db,
            NewOrchestratorEvent {
                kind: kind.as_str().to_owned(),
                protocol: PROTOCOL_SSH.to_owned(),
                action: action.to_owned(),
                src_decky_uuid: src.map(str::to_owned),
                dst_decky_uuid: dst.to_owned(),
                success,
                payload: payload.clone(),
            },
        )
        .await?;
        let activity = OrchestratorActivity {
            protocol: PROTOCOL_SSH.to_owned(),
            action: action.to_owned(),
            src_decky_uuid: src.map(str::to_owned),
            dst_decky_uuid: dst.to_owned(),
            success,
            payload: as_object(payload),
            ts: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        };
        let topic_dst = dst.to_owned();
        self.registry.publish(match kind {
            ActionKind::Traffic => Event::OrchestratorTraffic {
                dst: topic_dst,
                activity,
            },
            ActionKind::File => Event::OrchestratorFile {
                dst: topic_dst,
                activity,
            },
        });
        Ok(ActionRecord {
            kind,
            action: action.to_owned(),
            success,
            event_uuid,
            dst_decky_uuid: dst.to_owned(),
        })
    }

    /// Write `body` at `path` in `container` (mode 0644, mtime); the error text on failure.
    async fn write(
        &self,
        container: &str,
        path: &str,
        body: &str,
        mtime: DateTime<Utc>,
    ) -> Result<(), String> {
        if path.is_empty() {
            return Err("empty path".to_owned());
        }
        let write =
            self.docker
                .write_file(container, path, body.as_bytes(), FILE_MODE, Some(mtime));
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(write_error_text(docker_rc(&e), &docker_message(&e))),
            Err(_) => Err("timeout".to_owned()),
        }
    }

    /// One traffic action (§5.3): `None` when fewer than two deckies can take part.
    pub async fn traffic(
        &self,
        deckies: &[RunningDecky],
        rng: &mut StdRng,
    ) -> Result<Option<ActionRecord>, DbError> {
        let eligible: Vec<&RunningDecky> = deckies
            .iter()
            .filter(|d| is_traffic_eligible(services_of(d), d.ip.as_deref()))
            .collect();
        let Some((src, dst)) = pick_pair(&eligible, rng).map(|(s, d)| (*s, *d)) else {
            return Ok(None);
        };
        let dst_ip = dst.ip.as_deref().unwrap_or_default().trim();
        let result = match probe_argv(dst_ip) {
            Ok(argv) => {
                let container = service_container_name(&src.name, SSH_SERVICE);
                let timeout = Duration::from_secs(PROBE_EXEC_TIMEOUT_S);
                match self.docker.exec(&container, &argv, None, timeout).await {
                    Ok(out) => TrafficResult::from_exec(out.exit_code, &out.stdout, &out.stderr),
                    Err(e) => TrafficResult::from_error(docker_rc(&e), &docker_message(&e)),
                }
            }
            Err(e) => TrafficResult::from_error(1, &e.to_string()),
        };
        let payload = result.payload(&src.name, &dst.name, dst_ip);
        self.record(
            ActionKind::Traffic,
            TRAFFIC_ACTION,
            Some(&src.uuid),
            &dst.uuid,
            result.success(),
            payload,
        )
        .await
        .map(Some)
    }

    /// One file action (§5.4): `None` when no decky has an in-hours persona, the planner
    /// chose to leave the fleet alone, or the edit candidate was not editable.
    pub async fn file(
        &self,
        weights: &RealismWeights,
        deckies: &[RunningDecky],
        pool: &PersonaPool,
        now: DateTime<Utc>,
        rng: &mut StdRng,
    ) -> Result<Option<ActionRecord>, DbError> {
        let ssh: Vec<&RunningDecky> = deckies
            .iter()
            .filter(|d| has_service(services_of(d), SSH_SERVICE))
            .collect();
        if ssh.is_empty() {
            return Ok(None);
        }
        let pool_personas = pool.load().await;
        let resolved: Vec<PlannerDecky<'_>> = ssh
            .iter()
            .filter_map(|d| {
                let personas: &[Persona] =
                    match persona_source(source_name(d.source), d.topology_id.as_deref()) {
                        PersonaSource::GlobalPool => &pool_personas,
                        // No topology tables in this schema yet: a topology decky has no
                        // resolvable personas (lookup failure → none, never the pool).
                        PersonaSource::Topology(_) => &[],
                    };
                (!personas.is_empty()).then_some(PlannerDecky {
                    uuid: &d.uuid,
                    name: &d.name,
                    personas,
                })
            })
            .collect();
        if resolved.is_empty() {
            return Ok(None);
        }
        let candidate = match resolved.choose(rng).filter(|_| should_prefetch_edit(rng)) {
            Some(d) => self.edit_candidate(d).await,
            None => None,
        };
        let Some(plan) = pick(weights, &resolved, now, candidate.as_ref(), rng) else {
            return Ok(None);
        };
        self.execute(plan, rng).await.map(Some)
    }

    async fn edit_candidate(&self, decky: &PlannerDecky<'_>) -> Option<EditCandidate> {
        match repo::pick_random_synthetic_file_for_edit(
            &self.db,
            decky.uuid,
            EDIT_MAX_AGE_DAYS,
            now_utc(),
        )
        .await
        {
            Ok(row) => row.map(|r: SyntheticFile| EditCandidate {
                synthetic_file_uuid: r.uuid,
                decky_uuid: r.decky_uuid,
                decky_name: decky.name.to_owned(),
                path: r.path,
                persona: r.persona,
                content_class: r.content_class,
                last_body: r.last_body,
            }),
            Err(e) => {
                tracing::warn!(decky = decky.uuid, error = %e, "planner: edit candidate lookup failed");
                None
            }
        }
    }

    /// Execute a plan: write the file, record the event, remember the file (§5.5–§5.7).
    pub async fn execute(&self, plan: Plan, rng: &mut StdRng) -> Result<ActionRecord, DbError> {
        let container = service_container_name(&plan.decky_name, SSH_SERVICE);
        match &plan.detail {
            PlanDetail::Edit {
                previous_body,
                synthetic_file_uuid,
            } => {
                let ctx = BodyContext {
                    persona: &plan.persona,
                    hostname: &plan.decky_name,
                    until: plan.mtime,
                };
                let new_body = match next_iteration(plan.content_class, previous_body, &ctx, rng) {
                    Ok(b) => b,
                    Err(e) => {
                        let payload = edit_failure_payload(
                            &plan.decky_name,
                            &plan.target_path,
                            &e.to_string(),
                        );
                        return self
                            .record(
                                ActionKind::File,
                                FILE_EDIT_ACTION,
                                None,
                                &plan.decky_uuid,
                                false,
                                payload,
                            )
                            .await;
                    }
                };
                let written = self
                    .write(&container, &plan.target_path, &new_body, plan.mtime)
                    .await;
                let payload = match &written {
                    Ok(()) => edit_success_payload(
                        &plan.decky_name,
                        &plan.target_path,
                        &new_body,
                        synthetic_file_uuid,
                    ),
                    Err(msg) => file_payload(
                        &plan.decky_name,
                        &plan.target_path,
                        new_body.len(),
                        Some(msg),
                    ),
                };
                let rec = self
                    .record(
                        ActionKind::File,
                        FILE_EDIT_ACTION,
                        None,
                        &plan.decky_uuid,
                        written.is_ok(),
                        payload,
                    )
                    .await?;
                if written.is_ok() {
                    let body = (!new_body.is_empty()).then_some(new_body.as_str());
                    match repo::bump_synthetic_file(&self.db, synthetic_file_uuid, now_utc(), body)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => tracing::debug!(
                            uuid = %synthetic_file_uuid,
                            "planner: edited file's row was pruned meanwhile"
                        ),
                        Err(e) => tracing::warn!(error = %e, "planner: synthetic file bump failed"),
                    }
                }
                Ok(rec)
            }
            PlanDetail::Create { body_hint } => {
                if plan.content_class.is_canary() {
                    if let Some(rec) = self.cultivate(&plan).await? {
                        return Ok(rec);
                    }
                }
                let (path, body, class) = if plan.content_class.is_canary() {
                    // The canary planter could not plant a live token: the tick is not
                    // wasted, an inert plant takes its place (§5.4 fallback).
                    let path = format!("{CACHE_PREFIX}{:06x}", rng.gen_range(0..0x0100_0000u32));
                    (path, String::new(), ContentClass::CacheTmp)
                } else {
                    let body = body_hint.clone().unwrap_or_default();
                    (plan.target_path.clone(), body, plan.content_class)
                };
                let written = self.write(&container, &path, &body, plan.mtime).await;
                let payload = file_payload(
                    &plan.decky_name,
                    &path,
                    body.len(),
                    written.as_ref().err().map(String::as_str),
                );
                let rec = self
                    .record(
                        ActionKind::File,
                        FILE_CREATE_ACTION,
                        None,
                        &plan.decky_uuid,
                        written.is_ok(),
                        payload,
                    )
                    .await?;
                if written.is_ok() {
                    self.remember(&plan, &path, class, &body).await;
                }
                Ok(rec)
            }
        }
    }

    /// A canary create plan (§5.4): the CanaryPlanter generates the artifact, chooses the
    /// path, stores the token and writes the file; the planner records its own file event and
    /// the synthetic-file row (text content empty). `None` when no live token got planted
    /// (no planter, generator refused, write failed): the caller falls back to an inert plant.
    async fn cultivate(&self, plan: &Plan) -> Result<Option<ActionRecord>, DbError> {
        let Some(canary) = &self.canary else {
            return Ok(None);
        };
        let (token, artifact) = match canary
            .cultivate(&plan.decky_name, plan.content_class.as_str(), &plan.persona)
            .await
        {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(decky = %plan.decky_name, class = %plan.content_class, error = %e, "planner: canary not cultivated");
                return Ok(None);
            }
        };
        if token.state != crate::domain::canary::STATE_PLANTED {
            tracing::warn!(decky = %plan.decky_name, token = %token.uuid, error = ?token.last_error, "planner: canary token not planted");
            return Ok(None);
        }
        let payload = file_payload(
            &plan.decky_name,
            &token.placement_path,
            artifact.content.len(),
            None,
        );
        let rec = self
            .record(
                ActionKind::File,
                FILE_CREATE_ACTION,
                None,
                &plan.decky_uuid,
                true,
                payload,
            )
            .await?;
        self.remember(plan, &token.placement_path, plan.content_class, "")
            .await;
        Ok(Some(rec))
    }

    /// Record a planted file; a re-plant of a known (decky, path) bumps the existing row.
    async fn remember(&self, plan: &Plan, path: &str, class: ContentClass, body: &str) {
        let new = NewSyntheticFile {
            decky_uuid: plan.decky_uuid.clone(),
            path: path.to_owned(),
            persona: plan.persona.clone(),
            content_class: class.as_str().to_owned(),
            body: body.to_owned(),
        };
        let err = match repo::record_synthetic_file(&self.db, new).await {
            Ok(_) => return,
            Err(e) => e,
        };
        if !err.is_unique_violation() {
            tracing::warn!(path, error = %err, "planner: synthetic file insert failed");
            return;
        }
        match repo::find_synthetic_file(&self.db, &plan.decky_uuid, path).await {
            Ok(Some(row)) => {
                if let Err(e) =
                    repo::bump_synthetic_file(&self.db, &row.uuid, now_utc(), Some(body)).await
                {
                    tracing::warn!(path, error = %e, "planner: synthetic file re-plant bump failed");
                }
            }
            Ok(None) => tracing::warn!(path, "planner: re-planted file has no row"),
            Err(e) => tracing::warn!(path, error = %e, "planner: synthetic file lookup failed"),
        }
    }

    /// One tick (§5.2): roll traffic vs file, fall through to the other kind when the rolled
    /// one has nothing to do. `Ok(None)` when neither did anything.
    pub async fn tick(
        &self,
        weights: &RealismWeights,
        pool: &PersonaPool,
        rng: &mut StdRng,
    ) -> Result<Option<ActionRecord>, PlannerError> {
        // SWARM shards run on other hosts: `docker exec` here cannot reach them (§11.12).
        let deckies: Vec<RunningDecky> = fleet_repo::list_running_deckies(&self.db)
            .await?
            .into_iter()
            .filter(|d| d.source != DeckySource::Shard)
            .collect();
        let now = Utc::now();
        for kind in action_order(rng) {
            let rec = match kind {
                ActionKind::Traffic => self.traffic(&deckies, rng).await?,
                ActionKind::File => self.file(weights, &deckies, pool, now, rng).await?,
            };
            if rec.is_some() {
                return Ok(rec);
            }
        }
        tracing::debug!(
            running = deckies.len(),
            ssh = deckies
                .iter()
                .filter(|d| has_service(services_of(d), SSH_SERVICE))
                .count(),
            "planner: nothing to do this tick"
        );
        Ok(None)
    }
}

fn source_name(s: DeckySource) -> &'static str {
    match s {
        DeckySource::Topology => "topology",
        DeckySource::Fleet => "fleet",
        DeckySource::Shard => "shard",
    }
}

// ---- the actor ------------------------------------------------------------------------------

/// Counters shown in the heartbeat `extra`.
#[derive(Debug, Default, Clone)]
struct Stats {
    ticks: u64,
    actions: u64,
    failures: u64,
    idle_ticks: u64,
    last_action: Option<String>,
    last_error: Option<String>,
    docker: &'static str,
    config: String,
}

/// The `planner` worker.
pub struct Planner {
    deps: Deps,
    beat: Beat,
    _exit: ExitGuard,
    core: Option<PlannerCore>,
    pool: Arc<PersonaPool>,
    weights: RealismWeights,
    busy: bool,
    docker_failures: u32,
    skip_ticks: u64,
    stats: Stats,
}

impl Planner {
    pub fn new(deps: Deps, exit: ExitGuard) -> Self {
        let beat = deps.beat("planner");
        let core = deps.docker.clone().map(|docker| PlannerCore {
            db: deps.db.clone(),
            canary: Some(CanaryCore::new(
                Arc::clone(&deps.settings),
                deps.db.clone(),
                deps.registry.clone(),
                Some(Arc::clone(&docker)),
            )),
            docker,
            registry: deps.registry.clone(),
        });
        let pool = Arc::new(PersonaPool::new(PersonaPool::resolve(
            deps.settings.realism.personas_path.as_deref(),
        )));
        let stats = Stats {
            docker: if core.is_some() { "unknown" } else { "missing" },
            config: "defaults".into(),
            ..Stats::default()
        };
        Planner {
            deps,
            beat,
            _exit: exit,
            core,
            pool,
            weights: RealismWeights::default(),
            busy: false,
            docker_failures: 0,
            skip_ticks: 0,
            stats,
        }
    }

    fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.deps.settings.realism.planner_interval_s.max(0.1))
    }

    fn apply_config(&mut self, load: ConfigLoad) {
        match load {
            ConfigLoad::Missing => {
                self.weights = RealismWeights::default();
                self.stats.config = "defaults".into();
            }
            ConfigLoad::Applied(w, dropped) => {
                if !dropped.is_empty() {
                    tracing::info!(
                        ?dropped,
                        "planner: stored weights had entries on the wrong list"
                    );
                }
                self.weights = w;
                self.stats.config = "stored".into();
            }
            ConfigLoad::Invalid(why) => {
                tracing::warn!(reason = %why, "planner: stored weights unusable; keeping current values");
            }
            ConfigLoad::Unreadable(e) => {
                tracing::warn!(error = %e, "planner: live config not readable; keeping current values");
            }
        }
    }

    fn refresh_config(&mut self, ctx: &mut Context<Self>) {
        let db = self.deps.db.clone();
        ctx.spawn(
            async move { load_weights(&db).await }
                .into_actor(self)
                .map(|load, act, _ctx| act.apply_config(load)),
        );
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.stats.ticks += 1;
        let n = self.stats.ticks;
        if n.is_multiple_of(REFRESH_EVERY) {
            self.refresh_config(ctx);
        }
        if self.skip_ticks > 0 {
            self.skip_ticks -= 1;
            return;
        }
        let Some(core) = self.core.clone() else {
            self.stats.last_error = Some(PlannerError::NoDocker.to_string());
            return;
        };
        self.busy = true;
        let pool = self.pool.clone();
        let weights = self.weights.clone();
        let prune = n.is_multiple_of(PRUNE_EVERY);
        ctx.spawn(
            async move {
                if let Err(e) = core.docker.ping().await {
                    return Err(e.to_string());
                }
                let mut rng = StdRng::from_entropy();
                let res = core.tick(&weights, &pool, &mut rng).await;
                if prune {
                    match repo::prune_orchestrator_events(&core.db, EVENTS_PER_DST_CAP).await {
                        Ok(n) if n > 0 => tracing::info!(deleted = n, "planner: pruned events"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "planner: prune failed"),
                    }
                }
                Ok(res)
            }
            .into_actor(self)
            .map(|res, act, _ctx| {
                act.busy = false;
                act.after_tick(res);
            }),
        );
    }

    fn after_tick(&mut self, res: Result<Result<Option<ActionRecord>, PlannerError>, String>) {
        match res {
            Err(docker) => {
                // engine unreachable: back off (1, 2, 4 … 16 ticks), never crash
                self.docker_failures = self.docker_failures.saturating_add(1);
                self.skip_ticks = 1u64 << self.docker_failures.min(5).saturating_sub(1);
                if self.stats.docker != "unavailable" {
                    tracing::warn!(error = %docker, "planner: docker unavailable; backing off");
                }
                self.stats.docker = "unavailable";
                self.stats.last_error = Some(docker);
            }
            Ok(outcome) => {
                self.docker_failures = 0;
                self.stats.docker = "ok";
                match outcome {
                    Ok(Some(rec)) => {
                        self.stats.actions += 1;
                        if !rec.success {
                            self.stats.failures += 1;
                        }
                        self.stats.last_action = Some(rec.action);
                    }
                    Ok(None) => self.stats.idle_ticks += 1,
                    Err(e) => {
                        tracing::warn!(error = %e, "planner: tick failed");
                        self.stats.last_error = Some(e.to_string());
                    }
                }
            }
        }
    }
}

impl Beating for Planner {
    fn beat(&self) -> &Beat {
        &self.beat
    }

    fn health_extra(&self) -> Map<String, Value> {
        let s = &self.stats;
        let mut m = Map::new();
        m.insert(
            "realism".into(),
            json!({"llm_enabled": false, "llm_backend": null, "llm_model": null,
                   "llm_breaker_state": null}),
        );
        m.insert("ticks".into(), json!(s.ticks));
        m.insert("actions".into(), json!(s.actions));
        m.insert("failed_actions".into(), json!(s.failures));
        m.insert("idle_ticks".into(), json!(s.idle_ticks));
        m.insert("last_action".into(), json!(s.last_action));
        m.insert("last_error".into(), json!(s.last_error));
        m.insert("docker".into(), json!(s.docker));
        m.insert("config".into(), json!(s.config));
        m.insert(
            "personas_path".into(),
            json!(self.pool.path().display().to_string()),
        );
        m.insert("idle_reason".into(), json!(self.pool.idle_reason()));
        m
    }
}

impl Actor for Planner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        start_beating(ctx, self);
        self.refresh_config(ctx);
        // probe the pool once so a first run shows its reason in /workers at once
        let pool = self.pool.clone();
        ctx.spawn(
            async move {
                pool.load().await;
            }
            .into_actor(self),
        );
        // sleep first, then tick
        ctx.run_interval(self.interval(), |act, ctx| act.tick(ctx));
    }
}

impl Handler<Shutdown> for Planner {
    type Result = ();
    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn persona_json(name: &str) -> String {
        format!(r#"[{{"name":"{name}","email":"x@y.example","role":"r"}}]"#)
    }

    #[tokio::test]
    async fn pool_missing_invalid_and_reload_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("email_personas.json");
        let pool = PersonaPool::new(path.clone());
        assert!(pool.load().await.is_empty(), "missing file → empty");

        std::fs::write(&path, "{not json").unwrap();
        assert!(pool.load().await.is_empty(), "invalid JSON → empty");
        std::fs::write(&path, r#"{"name":"x"}"#).unwrap();
        assert!(pool.load().await.is_empty(), "not a list → empty");

        std::fs::write(&path, persona_json("Ana")).unwrap();
        let first = pool.load().await;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].name, "Ana");
        assert_eq!(first[0].language.as_deref(), Some("en"));
        // cached while the mtime is unchanged
        assert!(Arc::ptr_eq(&first, &pool.load().await));

        // a rewrite with a new mtime is picked up
        std::fs::write(&path, persona_json("Bo")).unwrap();
        let later = std::time::SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(pool.load().await[0].name, "Bo");

        // invalidate forces a re-read even with the same mtime
        pool.invalidate();
        assert_eq!(pool.load().await[0].name, "Bo");
    }

    #[test]
    fn configured_path_wins_and_default_is_the_pool_file() {
        let p = PersonaPool::resolve(Some(Path::new("/srv/p.json")));
        assert_eq!(p, PathBuf::from("/srv/p.json"));
        assert!(PersonaPool::resolve(None).ends_with(POOL_FILE_NAME));
    }

    #[test]
    fn docker_errors_map_to_codes() {
        assert_eq!(
            docker_rc(&DockerError::Timeout(Duration::from_secs(8))),
            RC_TIMEOUT
        );
        assert_eq!(
            docker_message(&DockerError::Timeout(Duration::from_secs(8))),
            "timeout"
        );
        assert_eq!(
            docker_rc(&DockerError::Unavailable("x".into())),
            RC_NOT_FOUND
        );
        assert_eq!(
            docker_rc(&DockerError::CommandFailed {
                exit_code: 2,
                stderr: "e".into()
            }),
            2
        );
        assert_eq!(docker_rc(&DockerError::NotFound("c".into())), 125);
    }
}

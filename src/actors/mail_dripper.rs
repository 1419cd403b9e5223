//! The MailDripper actor (realism.md §6, §7): threaded, persona-voiced mail dripped into the
//! spool of IMAP/POP3 deckies, written by the configured LLM or, when none answers, by the
//! built-in templates.
//!
//! Decisions come from [`crate::domain::mail`]; this module schedules, calls the LLM over
//! HTTP (Ollama API) behind the circuit breaker, writes the EML through [`DeckyRuntime`]
//! (tar upload: mode 0644 and mtime = `Date`, busybox included), records one
//! `orchestrator_emails` row per attempt and publishes `orchestrator.email.<decky>`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Map, Value};

use crate::actors::heartbeat::start_beating;
use crate::actors::planner::{no_personas_reason, PersonaPool};
use crate::actors::topics::{Event, OrchestratorEmail};
use crate::actors::{Beat, Beating, Deps, ExitGuard, RegistryHandle, Shutdown};
use crate::db::models::fleet::{DeckySource, RunningDecky};
use crate::db::models::mail::NewOrchestratorEmail;
use crate::db::repo::{fleet as fleet_repo, mail as repo, realism as realism_repo};
use crate::db::{Db, DbError};
use crate::docker::{service_container_name, DeckyRuntime};
use crate::domain::mail::llm::{
    generate_body, interpret_response, looks_like_email, LlmConfig, LlmOutcome, LLM_KEY,
};
use crate::domain::mail::pick::pick_pair;
use crate::domain::mail::thread::THREAD_LOOKUP_LIMIT;
use crate::domain::mail::{
    apply_em_dash_policy, build_email_prompt, decide_thread, eml_path, new_message_id,
    parse_output, render_eml, template_email, BreakerState, CircuitBreaker, EmlMessage, Generator,
    ParentMessage, ThreadPlan,
};
use crate::domain::realism::pool::{persona_source, PersonaSource};
use crate::domain::realism::Persona;

/// Worker, heartbeat and control name.
pub const NAME: &str = "mail-dripper";
/// Services whose deckies receive mail.
pub const MAIL_SERVICES: [&str; 2] = ["imap", "pop3"];
/// Emails kept per mail decky.
pub const EMAILS_PER_DECKY_CAP: i64 = 5_000;
/// Ticks between prunes.
pub const PRUNE_EVERY: u64 = 100;
/// Ticks between LLM config refreshes.
pub const REFRESH_EVERY: u64 = 5;
/// Wall-clock cap of one spool write.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(8);
/// Mode of spool files.
pub const EML_MODE: u32 = 0o644;

// ---- the LLM client ---------------------------------------------------------------------

/// Why an LLM call produced no text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("timeout")]
    Timeout,
    #[error("{0}")]
    Failed(String),
    #[error("circuit breaker open")]
    BreakerOpen,
    #[error("no LLM configured")]
    Disabled,
}

/// An Ollama-compatible backend over HTTP (`POST <base_url>/api/generate`).
#[derive(Debug, Clone)]
pub struct OllamaClient {
    http: reqwest::Client,
    url: String,
    model: String,
    api_key: Option<String>,
}

impl OllamaClient {
    /// `None` when the config has no backend (no `base_url`).
    pub fn new(cfg: &LlmConfig) -> Option<Self> {
        let base = cfg.base_url.as_deref().filter(|_| cfg.is_enabled())?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(cfg.timeout))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok()?;
        Some(OllamaClient {
            http,
            url: format!("{base}/api/generate"),
            model: cfg.model.clone(),
            api_key: cfg.api_key.clone(),
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// One generate call: the model's text, or why there is none.
    pub async fn generate(&self, prompt: &str) -> Result<String, LlmError> {
        let mut req = self
            .http
            .post(&self.url)
            .json(&generate_body(&self.model, prompt));
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                LlmError::Timeout
            } else {
                LlmError::Failed(format!("transport: {}", e.without_url()))
            }
        })?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| {
            if e.is_timeout() {
                LlmError::Timeout
            } else {
                LlmError::Failed(format!("transport: {}", e.without_url()))
            }
        })?;
        match interpret_response(status, &body) {
            LlmOutcome::Success(t) => Ok(t),
            LlmOutcome::Failure(why) => Err(LlmError::Failed(why)),
        }
    }
}

/// The process-wide LLM state: config, client and the breaker (which survives refreshes).
#[derive(Debug)]
pub struct LlmState {
    /// `DECNET_REALISM_LLM`: false = templates only whatever the stored config says.
    allowed: bool,
    current: parking_lot::Mutex<(LlmConfig, Option<Arc<OllamaClient>>)>,
    breaker: parking_lot::Mutex<CircuitBreaker>,
}

impl LlmState {
    pub fn new(allowed: bool) -> Self {
        Self::with_breaker(allowed, CircuitBreaker::default())
    }

    pub fn with_breaker(allowed: bool, breaker: CircuitBreaker) -> Self {
        LlmState {
            allowed,
            current: parking_lot::Mutex::new((LlmConfig::default(), None)),
            breaker: parking_lot::Mutex::new(breaker),
        }
    }

    /// Apply a config (rebuilding the client only when it changed).
    pub fn apply(&self, cfg: LlmConfig) {
        let mut cur = self.current.lock();
        if cur.0 == cfg && (cur.1.is_some() || !cfg.is_enabled()) {
            return;
        }
        let client = if self.allowed {
            OllamaClient::new(&cfg).map(Arc::new)
        } else {
            None
        };
        *cur = (cfg, client);
    }

    pub fn client(&self) -> Option<Arc<OllamaClient>> {
        self.current.lock().1.clone()
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.lock().state(Instant::now())
    }

    /// The heartbeat's `realism` block (dashboard-contract.md §14).
    pub fn snapshot(&self) -> Value {
        match self.client() {
            Some(c) => json!({"llm_enabled": true, "llm_backend": "ollama",
                "llm_model": c.model(), "llm_breaker_state": self.breaker_state().as_str()}),
            None => json!({"llm_enabled": false, "llm_backend": null, "llm_model": null,
                "llm_breaker_state": null}),
        }
    }

    /// Call the LLM through the breaker; every failure counts against it.
    pub async fn generate(&self, prompt: &str) -> Result<(String, String), LlmError> {
        let client = self.client().ok_or(LlmError::Disabled)?;
        if !self.breaker.lock().allow_call(Instant::now()) {
            return Err(LlmError::BreakerOpen);
        }
        match client.generate(prompt).await {
            Ok(t) => {
                self.breaker.lock().record_success();
                Ok((t, client.model().to_owned()))
            }
            Err(e) => {
                self.breaker.lock().record_failure(Instant::now());
                Err(e)
            }
        }
    }

    /// Record a usable-looking but garbage answer as a failure.
    fn record_garbage(&self) {
        self.breaker.lock().record_failure(Instant::now());
    }
}

/// The stored `llm` config (defaults when absent or unusable).
pub async fn load_llm_config(db: &Db) -> Result<LlmConfig, DbError> {
    Ok(realism_repo::get_realism_config(db, LLM_KEY)
        .await?
        .and_then(|r| r.value_json())
        .map(|v| LlmConfig::from_stored(&v))
        .unwrap_or_default())
}

// ---- body generation --------------------------------------------------------------------

/// A generated message before rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub subject: String,
    pub body: String,
    pub generator: Generator,
    pub mannerisms_used: Vec<String>,
    pub model: Option<String>,
    pub generation_ms: u64,
    /// Why the LLM was not used, when it was configured.
    pub llm_error: Option<String>,
}

/// LLM first (when configured and the breaker allows), templates otherwise. Replies keep the
/// thread's `Re:` subject whatever the model wrote; the em-dash policy applies to every body.
pub async fn generate_email(
    llm: &LlmState,
    sender: &Persona,
    recipient: &Persona,
    plan: &ThreadPlan,
    rng: &mut StdRng,
) -> Generated {
    let started = Instant::now();
    let parent = match plan {
        ThreadPlan::Reply { parent_subject, .. } => Some((parent_subject.as_str(), None)),
        ThreadPlan::New { .. } => None,
    };
    let (prompt, used) = build_email_prompt(sender, recipient, plan.context_hint(), parent, rng);
    let llm_error = match llm.generate(&prompt).await {
        Ok((text, model)) => {
            let parsed = parse_output(&text);
            if looks_like_email(&parsed.body) {
                let subject = match plan {
                    ThreadPlan::Reply { subject, .. } => subject.clone(),
                    ThreadPlan::New { .. } => apply_em_dash_policy(sender, &parsed.subject),
                };
                return Generated {
                    subject,
                    body: format!("{}\n", apply_em_dash_policy(sender, &parsed.body)),
                    generator: Generator::Llm,
                    mannerisms_used: used,
                    model: Some(model),
                    generation_ms: started.elapsed().as_millis() as u64,
                    llm_error: None,
                };
            }
            llm.record_garbage();
            Some("unusable output".to_owned())
        }
        Err(LlmError::Disabled) => None,
        Err(e) => Some(e.to_string()),
    };
    let (parsed, used) = template_email(sender, recipient, plan, rng);
    Generated {
        subject: parsed.subject,
        body: parsed.body,
        generator: Generator::Template,
        mannerisms_used: used,
        model: None,
        generation_ms: started.elapsed().as_millis() as u64,
        llm_error,
    }
}

// ---- one tick ---------------------------------------------------------------------------

/// What one tick did.
#[derive(Debug, Clone, PartialEq)]
pub enum MailOutcome {
    /// Nothing to do, and why.
    Idle(String),
    /// One attempt recorded.
    Attempt(EmailRecord),
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailRecord {
    pub uuid: String,
    pub success: bool,
    /// `delivered`, `render` or `delivery`.
    pub stage: &'static str,
    pub generator: Generator,
    pub thread_id: String,
    pub message_id: String,
    pub eml_path: String,
    pub mail_decky_uuid: String,
}

/// The I/O side of the dripper.
#[derive(Clone)]
pub struct MailCore {
    pub db: Db,
    pub docker: Arc<dyn DeckyRuntime>,
    pub registry: RegistryHandle,
    pub llm: Arc<LlmState>,
}

fn services_ok(d: &RunningDecky) -> bool {
    d.services_raw.is_none() && MAIL_SERVICES.iter().any(|s| d.has_service(s))
}

/// `<name>-imap` when the decky has imap, else `<name>-pop3`.
pub fn mail_container(d: &RunningDecky) -> String {
    let svc = if d.has_service("imap") {
        "imap"
    } else {
        "pop3"
    };
    service_container_name(&d.name, svc)
}

fn parent_of(row: &crate::db::models::mail::OrchestratorEmail) -> ParentMessage {
    let payload = row.payload_json();
    let sent_at = payload
        .get("sent_at")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|| row.ts.and_utc());
    ParentMessage {
        thread_id: row.thread_id.clone(),
        message_id: row.message_id.clone(),
        subject: row.subject.clone(),
        references: payload
            .get("references")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        sent_at,
    }
}

impl MailCore {
    /// One tick at `now` (§6.2–§6.8). `reply_probability` is the 0.6 roll (tests force 1.0).
    pub async fn tick(
        &self,
        pool: &PersonaPool,
        now: DateTime<Utc>,
        reply_probability: f64,
        rng: &mut StdRng,
    ) -> Result<MailOutcome, DbError> {
        // SWARM shards run on other hosts: docker here cannot reach them (§11.12).
        let deckies: Vec<RunningDecky> = fleet_repo::list_running_deckies(&self.db)
            .await?
            .into_iter()
            .filter(|d| d.source != DeckySource::Shard && services_ok(d))
            .collect();
        let Some(decky) = deckies.choose(rng) else {
            return Ok(MailOutcome::Idle(
                "no running mail decky (imap/pop3)".into(),
            ));
        };
        let pool_personas = pool.load().await;
        let source = match decky.source {
            DeckySource::Topology => "topology",
            DeckySource::Fleet => "fleet",
            DeckySource::Shard => "shard",
        };
        let personas: &[Persona] = match persona_source(source, decky.topology_id.as_deref()) {
            PersonaSource::GlobalPool => &pool_personas,
            // no topology tables in this schema yet: never fall back to the pool
            PersonaSource::Topology(_) => &[],
        };
        if personas.is_empty() {
            return Ok(MailOutcome::Idle(no_personas_reason(pool.path())));
        }
        let pair = match pick_pair(personas, now, rng) {
            Ok(p) => p,
            Err(why) => return Ok(MailOutcome::Idle(why.as_str().to_owned())),
        };
        let (mut sender, mut recipient) = (pair.sender, pair.recipient);
        let parent_row = if rand::Rng::gen_bool(rng, reply_probability.clamp(0.0, 1.0)) {
            repo::list_orchestrator_email_threads(
                &self.db,
                &decky.uuid,
                &sender.email,
                &recipient.email,
                THREAD_LOOKUP_LIMIT,
            )
            .await?
            .into_iter()
            .next()
        } else {
            None
        };
        if let Some(row) = &parent_row {
            // a reply comes from the parent's recipient: nobody answers their own mail
            if row.sender_email.eq_ignore_ascii_case(&sender.email) {
                std::mem::swap(&mut sender, &mut recipient);
            }
        }
        let parent = parent_row.as_ref().map(parent_of);
        let plan = decide_thread(parent.as_ref(), sender, now, rng);
        let generated = generate_email(&self.llm, sender, recipient, &plan, rng).await;
        let record = self
            .deliver(decky, sender, recipient, &plan, &generated, now, rng)
            .await?;
        Ok(MailOutcome::Attempt(record))
    }

    /// Render, write, record and publish one message.
    #[allow(clippy::too_many_arguments)]
    pub async fn deliver(
        &self,
        decky: &RunningDecky,
        sender: &Persona,
        recipient: &Persona,
        plan: &ThreadPlan,
        g: &Generated,
        now: DateTime<Utc>,
        rng: &mut StdRng,
    ) -> Result<EmailRecord, DbError> {
        // Date has second precision: the file's mtime is the same instant
        let sent_at = now.trunc_subsecs(0);
        let message_id = new_message_id(&sender.email, rng);
        let thread_id = plan.thread_id().to_owned();
        let references: Vec<&str> = match plan {
            ThreadPlan::Reply { references, .. } => references.split_whitespace().collect(),
            ThreadPlan::New { .. } => Vec::new(),
        };
        let language = sender.language_or("en").to_owned();
        let container = mail_container(decky);
        let path = eml_path(&thread_id, &message_id);
        let eml = render_eml(&EmlMessage {
            from_name: &sender.name,
            from_email: &sender.email,
            to_name: &recipient.name,
            to_email: &recipient.email,
            subject: &g.subject,
            body: &g.body,
            date: sender.local_time(sent_at).fixed_offset(),
            message_id: &message_id,
            in_reply_to: plan.parent_message_id(),
            references: references.clone(),
        });
        let (stage, error, bytes) = match eml {
            Err(e) => ("render", Some(e.to_string()), 0),
            Ok(bytes) => {
                let write =
                    self.docker
                        .write_file(&container, &path, &bytes, EML_MODE, Some(sent_at));
                match tokio::time::timeout(DELIVERY_TIMEOUT, write).await {
                    Ok(Ok(())) => ("delivered", None, bytes.len()),
                    Ok(Err(e)) => ("delivery", Some(e.to_string()), bytes.len()),
                    Err(_) => ("delivery", Some("timeout".to_owned()), bytes.len()),
                }
            }
        };
        let success = error.is_none();
        let mut payload = json!({
            "stage": stage,
            "generator": g.generator.as_str(),
            "model": g.model,
            "generation_ms": g.generation_ms,
            "bytes": bytes,
            "thread_id": thread_id,
            "message_id": message_id,
            "subject": g.subject,
            "language": language,
            "mannerisms_used": g.mannerisms_used,
            "is_reply": plan.is_reply(),
            "references": references.join(" "),
            "sent_at": sent_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "container": container,
            "eml_path": path,
            "sender_name": sender.name,
            "recipient_name": recipient.name,
        });
        if let Some(e) = &g.llm_error {
            payload["llm_error"] = json!(e);
        }
        if let Some(e) = &error {
            payload["stderr"] = json!(crate::docker::clip_stderr(e));
        }
        let uuid = repo::record_orchestrator_email(
            &self.db,
            NewOrchestratorEmail {
                mail_decky_uuid: decky.uuid.clone(),
                thread_id: thread_id.clone(),
                message_id: message_id.clone(),
                in_reply_to: plan.parent_message_id().map(str::to_owned),
                sender_email: sender.email.clone(),
                recipient_email: recipient.email.clone(),
                subject: g.subject.clone(),
                language: language.clone(),
                eml_path: if success { path.clone() } else { String::new() },
                success,
                payload,
            },
        )
        .await?;
        // topic-unsafe ids (a dotted decky name) are rejected by the registry, never fatal
        self.registry
            .publish(Event::OrchestratorEmail(OrchestratorEmail {
                mail_decky_uuid: decky.uuid.clone(),
                thread_id: thread_id.clone(),
                message_id: message_id.clone(),
                in_reply_to: plan.parent_message_id().map(str::to_owned),
                sender_email: sender.email.clone(),
                recipient_email: recipient.email.clone(),
                subject: g.subject.clone(),
                language,
                success,
                ts: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            }));
        Ok(EmailRecord {
            uuid,
            success,
            stage,
            generator: g.generator,
            thread_id,
            message_id,
            eml_path: path,
            mail_decky_uuid: decky.uuid.clone(),
        })
    }
}

/// Boot check: warn (naming the fix) when the persona pool is empty (first run).
pub fn warn_if_no_personas(configured: Option<&Path>) {
    let path = PersonaPool::resolve(configured);
    let text = std::fs::read_to_string(&path).ok();
    let parsed = crate::domain::realism::parse_personas_str(text.as_deref(), "en");
    if parsed.personas.is_empty() {
        tracing::warn!("{}", no_personas_reason(&path));
    }
}

// ---- the actor --------------------------------------------------------------------------

#[derive(Debug, Default, Clone)]
struct Stats {
    ticks: u64,
    sent: u64,
    failures: u64,
    idle_ticks: u64,
    idle_reason: Option<String>,
    last_generator: Option<&'static str>,
    last_error: Option<String>,
}

/// The `mail-dripper` worker.
pub struct MailDripper {
    deps: Deps,
    beat: Beat,
    _exit: ExitGuard,
    core: Option<MailCore>,
    llm: Arc<LlmState>,
    pool: Arc<PersonaPool>,
    busy: bool,
    stats: Stats,
}

impl MailDripper {
    pub fn new(deps: Deps, exit: ExitGuard) -> Self {
        let beat = deps.beat(NAME);
        let llm = Arc::new(LlmState::new(deps.settings.realism.llm));
        let core = deps.docker.clone().map(|docker| MailCore {
            db: deps.db.clone(),
            docker,
            registry: deps.registry.clone(),
            llm: llm.clone(),
        });
        let pool = Arc::new(PersonaPool::new(PersonaPool::resolve(
            deps.settings.realism.personas_path.as_deref(),
        )));
        MailDripper {
            deps,
            beat,
            _exit: exit,
            core,
            llm,
            pool,
            busy: false,
            stats: Stats::default(),
        }
    }

    fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.deps.settings.realism.mail_interval_s.max(0.1))
    }

    fn refresh_llm(&mut self, ctx: &mut Context<Self>) {
        let db = self.deps.db.clone();
        let llm = self.llm.clone();
        ctx.spawn(
            async move {
                match load_llm_config(&db).await {
                    Ok(cfg) => llm.apply(cfg),
                    Err(e) => tracing::warn!(error = %e, "mail-dripper: LLM config unreadable"),
                }
            }
            .into_actor(self),
        );
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.stats.ticks += 1;
        let n = self.stats.ticks;
        if n.is_multiple_of(REFRESH_EVERY) {
            self.refresh_llm(ctx);
        }
        let Some(core) = self.core.clone() else {
            self.stats.last_error = Some("no docker client".into());
            return;
        };
        self.busy = true;
        let pool = self.pool.clone();
        let prune = n.is_multiple_of(PRUNE_EVERY);
        ctx.spawn(
            async move {
                let mut rng = StdRng::from_entropy();
                let res = core
                    .tick(
                        &pool,
                        Utc::now(),
                        crate::domain::mail::thread::REPLY_PROBABILITY,
                        &mut rng,
                    )
                    .await;
                if prune {
                    match repo::prune_orchestrator_emails(&core.db, EMAILS_PER_DECKY_CAP).await {
                        Ok(n) if n > 0 => {
                            tracing::info!(deleted = n, "mail-dripper: pruned emails")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "mail-dripper: prune failed"),
                    }
                }
                res
            }
            .into_actor(self)
            .map(|res, act, _ctx| {
                act.busy = false;
                match res {
                    Ok(MailOutcome::Idle(why)) => {
                        act.stats.idle_ticks += 1;
                        act.stats.idle_reason = Some(why);
                    }
                    Ok(MailOutcome::Attempt(rec)) => {
                        act.stats.idle_reason = None;
                        act.stats.last_generator = Some(rec.generator.as_str());
                        if rec.success {
                            act.stats.sent += 1;
                        } else {
                            act.stats.failures += 1;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "mail-dripper: tick failed");
                        act.stats.last_error = Some(e.to_string());
                    }
                }
            }),
        );
    }
}

impl Beating for MailDripper {
    fn beat(&self) -> &Beat {
        &self.beat
    }

    fn health_extra(&self) -> Map<String, Value> {
        let s = &self.stats;
        let mut m = Map::new();
        m.insert("realism".into(), self.llm.snapshot());
        m.insert("ticks".into(), json!(s.ticks));
        m.insert("sent".into(), json!(s.sent));
        m.insert("failed".into(), json!(s.failures));
        m.insert("idle_ticks".into(), json!(s.idle_ticks));
        let reason = s.idle_reason.clone().or_else(|| self.pool.idle_reason());
        m.insert("idle_reason".into(), json!(reason));
        m.insert("last_generator".into(), json!(s.last_generator));
        m.insert("last_error".into(), json!(s.last_error));
        m.insert(
            "personas_path".into(),
            json!(self.pool.path().display().to_string()),
        );
        m
    }
}

impl Actor for MailDripper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        start_beating(ctx, self);
        self.refresh_llm(ctx);
        let pool = self.pool.clone();
        ctx.spawn(
            async move {
                pool.load().await;
            }
            .into_actor(self),
        );
        ctx.run_interval(self.interval(), |act, ctx| act.tick(ctx));
    }
}

impl Handler<Shutdown> for MailDripper {
    type Result = ();
    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

// ---- the persona pool file (API and CLI) -------------------------------------------------

/// Write validated personas to the pool file as pretty JSON (2-space indent, non-ASCII kept),
/// creating parent directories (0700) and the file (0600).
pub fn write_persona_pool(path: &Path, personas: &[Persona]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::private_fs::create_dir_all(dir)?;
    }
    let mut text = serde_json::to_string_pretty(personas).map_err(std::io::Error::other)?;
    text.push('\n');
    crate::private_fs::write(path, text.as_bytes())
}

/// Outcome of `decnetd personas import`.
#[derive(Debug)]
pub struct ImportReport {
    pub path: std::path::PathBuf,
    pub imported: usize,
    pub warnings: Vec<String>,
}

/// `decnetd personas import FILE [--output PATH]` (§3.5 CLI): validate, then write the valid
/// personas (not the source bytes). Errors carry the operator-facing message.
pub fn import_personas(
    file: &Path,
    output: Option<&Path>,
    configured: Option<&Path>,
) -> Result<ImportReport, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| format!("Invalid JSON in {}: {e}", file.display()))?;
    if !value.is_array() {
        return Err(format!(
            "{} must hold a JSON list of persona objects",
            file.display()
        ));
    }
    let parsed = crate::domain::realism::parse_personas(Some(&value), "en");
    let mut warnings: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
    if parsed.personas.is_empty() {
        return Err(format!(
            "No valid personas in {} ({})",
            file.display(),
            warnings.join("; ")
        ));
    }
    if parsed.personas.len() == 1 {
        warnings.push("Warning: only one valid persona; mail needs at least two".into());
    }
    let path = output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PersonaPool::resolve(configured));
    write_persona_pool(&path, &parsed.personas)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(ImportReport {
        path,
        imported: parsed.personas.len(),
        warnings,
    })
}

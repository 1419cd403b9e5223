//! The Enricher (worker `enricher`, reference `enrich`): threat-intel enrichment of attackers.
//!
//! Wakes on `attacker.observed` / `attacker.scored` (coalesced), falls back to a poll tick,
//! picks attackers with no intel row or an expired one, asks every enabled provider about the
//! attacker's IP concurrently, folds the answers into `attacker_intel` and publishes
//! `attacker.intel.enriched`. Unlike the reference, a failed pass never erases or downgrades
//! what is stored: failed providers keep their previous columns, the aggregate verdict is
//! computed over the merged row, and an attacker whose every provider failed is retried after
//! a short back-off instead of getting a full TTL (spec intake-and-intel §11, §16.6).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{TimeDelta, Utc};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::actors::heartbeat::{start_beating, Beat, Beating};
use crate::actors::registry::RegistryHandle;
use crate::actors::supervisor::{ExitGuard, Shutdown};
use crate::actors::topics::{Envelope, Event, IntelEnriched};
use crate::actors::{Deps, WorkerSpec};
use crate::db::repo::intel::{self as intel_repo, IntelTarget, PassInput};
use crate::db::{Db, DbError};
use crate::domain::intel::{enriched_payload, is_public_address, ProviderName};
use crate::intel::{IntelConfig, IntelProviders, ProviderError, ProviderOutcome, RateLimitSource};

/// Worker / heartbeat / control name.
pub const NAME: &str = "enricher";
/// Topics that wake the Enricher.
pub const WAKE_TOPICS: [&str; 2] = ["attacker.observed", "attacker.scored"];

/// Scheduling knobs.
#[derive(Debug, Clone)]
pub struct EnricherSettings {
    /// Re-enrich an attacker after this long (24 h).
    pub ttl: TimeDelta,
    /// Retry an attacker whose every provider failed after this long (5 min).
    pub retry_backoff: TimeDelta,
    /// Poll fallback when no wake event arrives (60 s).
    pub poll_interval: Duration,
    /// Attackers per pass (50).
    pub batch: i64,
    /// Minimum gap between two passes, so an event storm cannot spin the loop (1 s).
    pub min_pass_gap: Duration,
    /// Do not send private/loopback/link-local addresses to third parties (true).
    pub skip_non_public: bool,
}

impl EnricherSettings {
    /// Scheduling from the validated intel configuration (other knobs at their defaults).
    pub fn from_config(cfg: &IntelConfig) -> EnricherSettings {
        let delta = |d: Duration, fallback: TimeDelta| TimeDelta::from_std(d).unwrap_or(fallback);
        let defaults = EnricherSettings::default();
        EnricherSettings {
            ttl: delta(cfg.ttl, defaults.ttl),
            retry_backoff: delta(cfg.retry_backoff, defaults.retry_backoff),
            poll_interval: cfg.poll_interval,
            skip_non_public: cfg.skip_private,
            ..defaults
        }
    }
}

impl Default for EnricherSettings {
    fn default() -> Self {
        EnricherSettings {
            ttl: TimeDelta::hours(24),
            retry_backoff: TimeDelta::minutes(5),
            poll_interval: Duration::from_secs(60),
            batch: 50,
            min_pass_gap: Duration::from_secs(1),
            skip_non_public: true,
        }
    }
}

/// What happened to one attacker in a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttackerResult {
    /// At least one provider answered; row updated, event published.
    Enriched,
    /// Every provider failed; columns kept, retried after the back-off.
    AllFailed,
    /// Not asked about (unparseable or non-public address); looked at again after a TTL.
    Skipped,
}

/// Counters shown in the heartbeat `extra`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnricherStats {
    pub passes: u64,
    pub enriched: u64,
    pub all_failed: u64,
    pub skipped: u64,
    pub errors: u64,
}

/// The Enricher's logic, independent of actix so tests can drive passes directly.
pub struct EnricherCore {
    db: Db,
    providers: IntelProviders,
    registry: RegistryHandle,
    settings: EnricherSettings,
    stats: Mutex<EnricherStats>,
}

impl EnricherCore {
    pub fn new(
        db: Db,
        providers: IntelProviders,
        registry: RegistryHandle,
        settings: EnricherSettings,
    ) -> EnricherCore {
        EnricherCore {
            db,
            providers,
            registry,
            settings,
            stats: Mutex::new(EnricherStats::default()),
        }
    }

    pub fn stats(&self) -> EnricherStats {
        self.stats.lock().clone()
    }

    /// Heartbeat `extra`: provider statuses (disabled ones say why) and counters.
    pub fn health_extra(&self) -> Map<String, Value> {
        let s = self.stats();
        let mut m = Map::new();
        if let Some(p) = self.providers.health_extra().get("providers") {
            m.insert("providers".into(), p.clone());
        }
        m.insert("passes".into(), json!(s.passes));
        m.insert("enriched".into(), json!(s.enriched));
        m.insert("all_failed".into(), json!(s.all_failed));
        m.insert("skipped".into(), json!(s.skipped));
        m.insert("errors".into(), json!(s.errors));
        m
    }

    /// One pass over at most `batch` pending attackers, sequentially. Returns how many
    /// attackers were pending (a full batch means "run again soon"). With no enabled provider
    /// nothing is queried and no row is written.
    pub async fn run_pass(&self) -> Result<usize, DbError> {
        let active = self.providers.active_names();
        if active.is_empty() {
            return Ok(0);
        }
        let pending = intel_repo::pending(&self.db, Utc::now(), self.settings.batch).await?;
        for target in &pending {
            match self.enrich(target, &active).await {
                Ok(_) => {}
                Err(e) => {
                    self.stats.lock().errors += 1;
                    tracing::warn!(attacker = %target.uuid, error = %e, "enricher: attacker failed");
                }
            }
        }
        self.stats.lock().passes += 1;
        Ok(pending.len())
    }

    /// Enrich one attacker now.
    pub async fn enrich(
        &self,
        target: &IntelTarget,
        active: &[ProviderName],
    ) -> Result<AttackerResult, DbError> {
        let ip: Option<IpAddr> = target.ip.trim().parse().ok();
        let ip = match ip {
            Some(ip) if !self.settings.skip_non_public || is_public_address(ip) => ip,
            _ => {
                tracing::debug!(attacker = %target.uuid, ip = %target.ip, "enricher: address not enrichable; skipped");
                intel_repo::record_pass(
                    &self.db,
                    &target.uuid,
                    &target.ip,
                    PassInput::Skipped,
                    Utc::now(),
                    self.settings.ttl,
                    self.settings.retry_backoff,
                )
                .await?;
                self.stats.lock().skipped += 1;
                return Ok(AttackerResult::Skipped);
            }
        };
        let outcomes = self.providers.lookup_all(ip).await;
        let mut reports = Vec::with_capacity(outcomes.len());
        for (name, outcome) in outcomes {
            crate::metrics::enrichment(name.as_str(), outcome.metric_label());
            match outcome {
                ProviderOutcome::Answered(r) => reports.push(r),
                // Our own pacing or a provider-requested back-off: expected on free tiers,
                // would flood the log at WARN (one line per attacker).
                ProviderOutcome::Failed(
                    e @ ProviderError::RateLimited {
                        origin: RateLimitSource::Local | RateLimitSource::Backoff,
                        ..
                    },
                ) => {
                    tracing::debug!(provider = %name, ip = %ip, error = %e, "intel provider skipped; keeping its previous columns")
                }
                ProviderOutcome::Failed(e) => {
                    tracing::warn!(provider = %name, ip = %ip, error = %e, "intel provider failed; keeping its previous columns")
                }
                ProviderOutcome::Disabled => {}
            }
        }
        let (row, result) = intel_repo::record_pass(
            &self.db,
            &target.uuid,
            &target.ip,
            PassInput::Answers(reports),
            Utc::now(),
            self.settings.ttl,
            self.settings.retry_backoff,
        )
        .await?;
        if !result.enriched {
            self.stats.lock().all_failed += 1;
            tracing::warn!(attacker = %target.uuid, ip = %ip, retry_at = %row.expires_at, "every intel provider failed; retrying after back-off");
            return Ok(AttackerResult::AllFailed);
        }
        self.stats.lock().enriched += 1;
        let payload = enriched_payload(
            &row.attacker_uuid,
            &row.attacker_ip,
            &result.fields,
            Some(active),
        );
        // One source of truth for the payload shape (the pure builder); the typed event
        // derives topic and type from its variant.
        match serde_json::from_value::<IntelEnriched>(payload) {
            Ok(ev) => self.registry.publish(Event::IntelEnriched(ev)),
            Err(e) => tracing::warn!(error = %e, "enricher: payload does not fit the event"),
        }
        Ok(AttackerResult::Enriched)
    }

    /// The loop: pass, then wait for a wake, the poll tick or cancellation. A full batch runs
    /// again after `min_pass_gap` without waiting.
    pub async fn run(self: Arc<Self>, wake: Arc<Notify>, cancel: CancellationToken) {
        tracing::info!(providers = ?self.providers, "enricher started");
        loop {
            let pending = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.run_pass() => r,
            };
            let full = match pending {
                Ok(n) => n as i64 >= self.settings.batch,
                Err(e) => {
                    self.stats.lock().errors += 1;
                    tracing::warn!(error = %e, "enricher: pass failed");
                    false
                }
            };
            if !full {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.settings.min_pass_gap) => {}
            }
        }
    }
}

/// The supervisor entry for the Enricher. Providers are built once here and shared by every
/// (re)start of the actor, so rate-limit state and `Retry-After` back-offs survive a crash.
/// A configuration the settings validation let through but the clients refuse leaves the
/// Enricher running with no provider (it never queries) and logs why.
pub fn worker_spec(deps: &Deps) -> WorkerSpec {
    let (providers, settings) = match IntelConfig::from_settings(&deps.settings.intel) {
        Ok(cfg) => {
            let settings = EnricherSettings::from_config(&cfg);
            match IntelProviders::from_config(&cfg) {
                Ok(p) => (p, settings),
                Err(e) => {
                    tracing::error!(error = %e, "enricher: cannot build intel clients; no provider will be queried");
                    (IntelProviders::default(), settings)
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "enricher: invalid intel settings; no provider will be queried");
            (IntelProviders::default(), EnricherSettings::default())
        }
    };
    let core = Arc::new(EnricherCore::new(
        deps.db.clone(),
        providers,
        deps.registry.clone(),
        settings,
    ));
    let beat = deps.beat(NAME);
    WorkerSpec::new(NAME, move |exit| {
        EnricherActor::new(Arc::clone(&core), beat.clone(), exit)
    })
}

/// The supervised actor around [`EnricherCore`].
pub struct EnricherActor {
    core: Arc<EnricherCore>,
    beat: Beat,
    wake: Arc<Notify>,
    cancel: CancellationToken,
    _exit: ExitGuard,
}

impl EnricherActor {
    pub fn new(core: Arc<EnricherCore>, beat: Beat, exit: ExitGuard) -> EnricherActor {
        EnricherActor {
            core,
            beat,
            wake: Arc::new(Notify::new()),
            cancel: CancellationToken::new(),
            _exit: exit,
        }
    }
}

impl Beating for EnricherActor {
    fn beat(&self) -> &Beat {
        &self.beat
    }
    fn health_extra(&self) -> Map<String, Value> {
        self.core.health_extra()
    }
}

impl Actor for EnricherActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        start_beating(ctx, self);
        for pattern in WAKE_TOPICS {
            let registry = self.beat.registry.clone();
            ctx.spawn(
                async move { registry.subscribe(pattern).await }
                    .into_actor(self)
                    .map(move |res, _act, ctx| match res {
                        Ok(sub) => {
                            Self::add_stream(sub, ctx);
                        }
                        Err(e) => tracing::warn!(pattern, error = %e, "enricher: no wake subscription; poll only"),
                    }),
            );
        }
        let run = Arc::clone(&self.core).run(Arc::clone(&self.wake), self.cancel.clone());
        ctx.spawn(run.into_actor(self).map(|(), _act, ctx| ctx.stop()));
    }

    fn stopping(&mut self, _ctx: &mut Context<Self>) -> Running {
        self.cancel.cancel();
        Running::Stop
    }
}

impl StreamHandler<Arc<Envelope>> for EnricherActor {
    fn handle(&mut self, _env: Arc<Envelope>, _ctx: &mut Context<Self>) {
        // One stored permit at most: a burst of events coalesces into one pass.
        self.wake.notify_one();
    }

    // A closed wake stream (registry shutdown) must not stop the actor: the poll goes on.
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<Shutdown> for EnricherActor {
    type Result = ();
    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        self.cancel.cancel();
        ctx.stop();
    }
}

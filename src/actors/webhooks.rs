//! The WebhookDispatcher (spec platform.md §5.6, worker `webhooks`): registry events to
//! operators' endpoints through a durable outbox.
//!
//! * Subscribes to the union of the patterns of recording subscriptions (enabled, or paused
//!   by the breaker) plus `system.webhook.subscriptions_changed`; reloads on that event and
//!   every `reload_s` (60 s), subscribing the new set before closing the old one.
//! * Each matching (event, subscription) becomes a `webhook_deliveries` row, written in short
//!   batches *before* any attempt; the unique key makes it at most one row per subscription per
//!   event even when several patterns match or a reload overlaps.
//! * A pump takes due rows of enabled subscriptions (at most `concurrency` in flight), renders
//!   them in the subscription's format, sends one attempt each, and records the attempt, the
//!   next try (jittered backoff) or the end (delivered / dead letter) with the breaker
//!   bookkeeping in one transaction. A restart simply resumes from the table.
//! * Delivered rows older than `retention_h` are pruned.

pub mod egress;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{Map, Value};

use crate::actors::heartbeat::start_beating;
use crate::actors::registry::{epoch_now, SubscriptionCloser};
use crate::actors::topics::{Envelope, Event, Pattern};
use crate::actors::{Beat, Beating, Deps, ExitGuard, Shutdown};
use crate::db::models::webhooks::{
    Attempt, AttemptRecord, Delivery, NewDelivery, Subscription, DEAD, DELIVERED, PENDING,
};
use crate::db::repo::webhooks as repo;
use crate::db::{now_utc, DbError};
use crate::domain::webhook::{
    canonical_body, classify, render, Breaker, Class, EventBody, Format, RetryPolicy,
};

use egress::Egress;

/// Worker / heartbeat name.
pub const NAME: &str = "webhooks";
/// Topic that triggers a reload.
pub const CHANGED_TOPIC: &str = "system.webhook.subscriptions_changed";
/// A batch of outbox rows is written at most this long after its first event.
const FLUSH_DELAY: Duration = Duration::from_millis(20);
/// A batch this large is written at once.
const FLUSH_ROWS: usize = 512;
/// Fallback pump period (retries are also woken exactly when due).
const PUMP_EVERY: Duration = Duration::from_secs(1);
/// Pruning period.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Stored error texts are capped (column limit).
const ERROR_MAX: usize = 512;

/// A subscription as the matcher sees it.
struct Loaded {
    uuid: String,
    patterns: Vec<Pattern>,
}

/// Counters shown in the Workers panel.
#[derive(Debug, Default, Clone)]
struct Counters {
    events_matched: u64,
    enqueued: u64,
    attempts: u64,
    delivered: u64,
    dead: u64,
    failed_writes: u64,
}

pub struct WebhookDispatcher {
    deps: Deps,
    beat: Beat,
    exit: ExitGuard,
    egress: Option<Egress>,
    policy: RetryPolicy,
    breaker: Breaker,
    subs: Vec<Loaded>,
    subscribed: Vec<String>,
    closers: Vec<SubscriptionCloser>,
    control: Option<SubscriptionCloser>,
    buffer: Vec<NewDelivery>,
    /// Attempts concluded but not yet recorded (their deliveries stay in `in_flight`).
    records: Vec<Concluded>,
    /// One write transaction at a time (outbox rows or attempt records): the dispatcher never
    /// holds more than one of the database's write slots, so ingest is not starved by it.
    writing: bool,
    flush_scheduled: bool,
    in_flight: HashSet<i64>,
    pumping: bool,
    pump_again: bool,
    reloading: bool,
    reload_again: bool,
    counters: Counters,
}

impl WebhookDispatcher {
    pub fn new(deps: Deps, exit: ExitGuard) -> Self {
        let w = &deps.settings.webhooks;
        let policy = RetryPolicy {
            base: Duration::from_secs_f64(w.retry_base_s.max(0.001)),
            max_attempts: w.max_attempts.max(1),
            jitter: 0.2,
        };
        let breaker = Breaker {
            threshold: w.circuit_threshold.max(1),
        };
        WebhookDispatcher {
            beat: deps.beat(NAME),
            deps,
            exit,
            egress: None,
            policy,
            breaker,
            subs: Vec::new(),
            subscribed: Vec::new(),
            closers: Vec::new(),
            control: None,
            buffer: Vec::new(),
            records: Vec::new(),
            writing: false,
            flush_scheduled: false,
            in_flight: HashSet::new(),
            pumping: false,
            pump_again: false,
            reloading: false,
            reload_again: false,
            counters: Counters::default(),
        }
    }

    fn concurrency(&self) -> usize {
        self.deps.settings.webhooks.concurrency.max(1)
    }

    fn reconnect_after(&self) -> Duration {
        Duration::from_secs_f64(self.deps.settings.webhooks.bus_reconnect_s.max(5.0))
    }

    // ---- subscriptions -----------------------------------------------------------------

    fn subscribe_control(&mut self, ctx: &mut Context<Self>) {
        let registry = self.deps.registry.clone();
        let cap = self.deps.settings.webhooks.buffer;
        ctx.spawn(
            async move { registry.subscribe_with_capacity(CHANGED_TOPIC, cap).await }
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(sub) => {
                        act.control = Some(sub.closer());
                        ctx.add_stream(sub);
                    }
                    Err(e) => {
                        tracing::warn!(worker = NAME, error = %e, "registry unavailable; retrying");
                        ctx.run_later(act.reconnect_after(), |act, ctx| act.subscribe_control(ctx));
                    }
                }),
        );
    }

    fn reload(&mut self, ctx: &mut Context<Self>) {
        if self.reloading {
            self.reload_again = true;
            return;
        }
        self.reloading = true;
        let db = self.deps.db.clone();
        ctx.spawn(
            async move { repo::list_recording(&db).await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    act.reloading = false;
                    match res {
                        Ok(rows) => act.apply(rows, ctx),
                        Err(e) => tracing::warn!(worker = NAME, error = %e, "cannot load webhook subscriptions"),
                    }
                    if std::mem::take(&mut act.reload_again) {
                        act.reload(ctx);
                    }
                    act.pump(ctx);
                }),
        );
    }

    fn apply(&mut self, rows: Vec<Subscription>, ctx: &mut Context<Self>) {
        let mut union: Vec<String> = Vec::new();
        self.subs = rows
            .iter()
            .map(|s| {
                let patterns: Vec<Pattern> = s
                    .patterns()
                    .iter()
                    .filter_map(|p| match Pattern::parse(p) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            tracing::warn!(worker = NAME, webhook = %s.uuid, error = %e, "stored pattern ignored");
                            None
                        }
                    })
                    .collect();
                for p in &patterns {
                    if !union.iter().any(|u| u == p.as_str()) {
                        union.push(p.as_str().to_owned());
                    }
                }
                Loaded {
                    uuid: s.uuid.clone(),
                    patterns,
                }
            })
            .collect();
        union.sort();
        if union != self.subscribed {
            self.resubscribe(union, ctx);
        }
    }

    /// Subscribe the new pattern set, then close the old one (overlap is deduplicated by the
    /// outbox's unique key, a gap would lose events).
    fn resubscribe(&mut self, union: Vec<String>, ctx: &mut Context<Self>) {
        let registry = self.deps.registry.clone();
        let cap = self.deps.settings.webhooks.buffer;
        let wanted = union.clone();
        ctx.spawn(
            async move {
                let mut subs = Vec::new();
                for p in &wanted {
                    subs.push(registry.subscribe_with_capacity(p, cap).await);
                }
                subs
            }
            .into_actor(self)
            .map(move |results, act, ctx| {
                let old = std::mem::take(&mut act.closers);
                let mut failed = false;
                for res in results {
                    match res {
                        Ok(sub) => {
                            act.closers.push(sub.closer());
                            ctx.add_stream(sub);
                        }
                        Err(e) => {
                            failed = true;
                            tracing::warn!(worker = NAME, error = %e, "cannot subscribe; retrying");
                        }
                    }
                }
                for c in old {
                    c.close();
                }
                if failed {
                    act.subscribed.clear();
                    ctx.run_later(act.reconnect_after(), |act, ctx| act.reload(ctx));
                } else {
                    act.subscribed = union;
                }
            }),
        );
    }

    // ---- outbox writes -----------------------------------------------------------------

    fn on_event(&mut self, env: &Envelope, ctx: &mut Context<Self>) {
        let matching: Vec<&Loaded> = self
            .subs
            .iter()
            .filter(|s| s.patterns.iter().any(|p| p.matches(&env.topic)))
            .collect();
        if matching.is_empty() {
            return;
        }
        self.counters.events_matched += 1;
        let body = EventBody::new(&env.id, &env.topic, &env.kind, env.ts, env.payload.clone());
        let text = canonical_body(&body);
        let now = now_utc();
        let signed_at = env.ts as i64;
        for s in matching {
            self.buffer.push(NewDelivery {
                subscription_uuid: s.uuid.clone(),
                event_id: env.id.clone(),
                topic: env.topic.clone(),
                event_body: text.clone(),
                signed_at,
                status: PENDING.to_owned(),
                attempts: 0,
                next_attempt_at: now,
                created_at: now,
                updated_at: now,
            });
        }
        if self.buffer.len() >= FLUSH_ROWS {
            self.write(ctx);
        } else if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.run_later(FLUSH_DELAY, |act, ctx| {
                act.flush_scheduled = false;
                act.write(ctx);
            });
        }
    }

    /// Start the next write when none is running: attempt records first (they free delivery
    /// slots), then outbox rows. Whatever arrives meanwhile is group-committed by the next one.
    fn write(&mut self, ctx: &mut Context<Self>) {
        if self.writing {
            return;
        }
        if !self.records.is_empty() {
            self.write_records(ctx);
        } else if !self.buffer.is_empty() {
            self.write_outbox(ctx);
        }
    }

    fn write_outbox(&mut self, ctx: &mut Context<Self>) {
        self.writing = true;
        let rows = std::mem::take(&mut self.buffer);
        let db = self.deps.db.clone();
        ctx.spawn(
            async move {
                let res = repo::enqueue(&db, rows.clone()).await;
                (rows, res)
            }
            .into_actor(self)
            .map(|(rows, res), act, ctx| {
                act.writing = false;
                match res {
                    Ok(n) => {
                        act.counters.enqueued += n as u64;
                        act.pump(ctx);
                        act.write(ctx);
                    }
                    Err(e) => {
                        act.counters.failed_writes += 1;
                        tracing::warn!(worker = NAME, error = %e, rows = rows.len(), "outbox write failed; retrying in 1 s");
                        let mut rows = rows;
                        rows.append(&mut act.buffer);
                        act.buffer = rows;
                        act.writing = true;
                        ctx.run_later(Duration::from_secs(1), |act, ctx| {
                            act.writing = false;
                            act.write(ctx);
                        });
                    }
                }
            }),
        );
    }

    fn write_records(&mut self, ctx: &mut Context<Self>) {
        self.writing = true;
        let done = std::mem::take(&mut self.records);
        let recs: Vec<AttemptRecord> = done.iter().map(|c| c.record.clone()).collect();
        let db = self.deps.db.clone();
        let breaker = self.breaker;
        ctx.spawn(
            async move { repo::record_many(&db, recs, breaker, now_utc()).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.writing = false;
                    match res {
                        Ok(outcomes) => {
                            let mut tripped = false;
                            for (c, out) in done.into_iter().zip(outcomes) {
                                act.in_flight.remove(&c.record.delivery_id);
                                act.count(c.status);
                                tripped |= out.tripped;
                                if let Some(wait) = c.retry_in {
                                    ctx.run_later(wait, |act, ctx| act.pump(ctx));
                                }
                            }
                            if tripped {
                                tracing::warn!(worker = NAME, "circuit breaker opened; subscription disabled");
                                act.deps.registry.publish(Event::WebhookSubscriptionsChanged);
                            }
                            act.write(ctx);
                            act.pump(ctx);
                        }
                        Err(e) => {
                            // Keep them (and their deliveries in flight, so no second send)
                            // and try again shortly.
                            act.counters.failed_writes += 1;
                            tracing::warn!(worker = NAME, error = %e, records = done.len(), "cannot record attempts; retrying in 1 s");
                            let mut done = done;
                            done.append(&mut act.records);
                            act.records = done;
                            act.writing = true;
                            ctx.run_later(Duration::from_secs(1), |act, ctx| {
                                act.writing = false;
                                act.write(ctx);
                            });
                        }
                    }
                }),
        );
    }

    // ---- deliveries --------------------------------------------------------------------

    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.egress.is_none() {
            return;
        }
        if self.pumping {
            self.pump_again = true;
            return;
        }
        let free = self.concurrency().saturating_sub(self.in_flight.len());
        if free == 0 {
            return;
        }
        self.pumping = true;
        let db = self.deps.db.clone();
        let exclude: Vec<i64> = self.in_flight.iter().copied().collect();
        ctx.spawn(
            async move { repo::due(&db, now_utc(), free as i64, exclude).await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    act.pumping = false;
                    match res {
                        Ok(rows) => {
                            for (del, sub) in rows {
                                if act.in_flight.insert(del.id) {
                                    act.deliver(del, sub, ctx);
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(worker = NAME, error = %e, "cannot read due deliveries")
                        }
                    }
                    if std::mem::take(&mut act.pump_again) {
                        act.pump(ctx);
                    }
                }),
        );
    }

    fn deliver(&mut self, del: Delivery, sub: Subscription, ctx: &mut Context<Self>) {
        let Some(egress) = self.egress.clone() else {
            self.in_flight.remove(&del.id);
            return;
        };
        let policy = self.policy;
        let dashboard = self.deps.settings.webhooks.dashboard_url.clone();
        ctx.spawn(
            async move { attempt(&egress, &del, &sub, policy, dashboard.as_deref()).await }
                .into_actor(self)
                .map(|out, act, ctx| {
                    // Recorded by the next group commit; the delivery stays in flight until then.
                    act.records.push(out);
                    act.write(ctx);
                }),
        );
    }

    fn count(&mut self, status: Option<&'static str>) {
        crate::metrics::webhook_delivery(status.unwrap_or("retry"));
        match status {
            Some(DELIVERED) => self.counters.delivered += 1,
            Some(DEAD) => self.counters.dead += 1,
            _ => {}
        }
        self.counters.attempts += 1;
    }

    fn prune(&mut self, ctx: &mut Context<Self>) {
        let db = self.deps.db.clone();
        let keep = self.deps.settings.webhooks.retention_h.max(0.0);
        let before =
            now_utc() - chrono::Duration::milliseconds((keep * 3_600_000.0).min(1e15) as i64);
        ctx.spawn(
            async move { repo::prune_delivered(&db, before).await }
                .into_actor(self)
                .map(|res: Result<usize, DbError>, _act, _ctx| match res {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(worker = NAME, rows = n, "pruned delivered webhook rows")
                    }
                    Err(e) => tracing::warn!(worker = NAME, error = %e, "prune failed"),
                }),
        );
    }
}

/// Nice value of the dispatcher's thread (Linux schedules threads individually): on a busy
/// machine the kernel serves ingest, the API and the other workers first, and deliveries —
/// durable in the outbox, so a delay loses nothing — take the idle time.
const DISPATCHER_NICE: libc::c_int = 10;

/// Lower this (the dispatcher's arbiter) thread's scheduling priority by [`DISPATCHER_NICE`].
/// Lowering needs no privilege; a failure only means deliveries compete at normal priority.
fn lower_thread_priority() {
    // SAFETY: gettid has no preconditions; setpriority reads its plain integer arguments.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, DISPATCHER_NICE)
    };
    if rc != 0 {
        tracing::debug!(worker = NAME, error = %std::io::Error::last_os_error(), "cannot lower the dispatcher's priority");
    }
}

/// What one attempt concluded.
struct Concluded {
    record: AttemptRecord,
    retry_in: Option<Duration>,
    status: Option<&'static str>,
}

fn cap(s: String) -> String {
    if s.chars().count() <= ERROR_MAX {
        s
    } else {
        s.chars().take(ERROR_MAX).collect()
    }
}

/// Render, send once, and decide (pure decisions from `domain::webhook`).
async fn attempt(
    egress: &Egress,
    del: &Delivery,
    sub: &Subscription,
    policy: RetryPolicy,
    dashboard: Option<&str>,
) -> Concluded {
    let body: Option<EventBody> = serde_json::from_str(&del.event_body).ok();
    let now = now_utc();
    let Some(body) = body else {
        return Concluded {
            record: AttemptRecord {
                delivery_id: del.id,
                subscription_uuid: sub.uuid.clone(),
                attempt: None,
                status: DEAD,
                next_attempt_at: now,
                status_code: None,
                error: Some("stored event is not valid JSON".to_owned()),
            },
            retry_in: None,
            status: Some(DEAD),
        };
    };
    let format = Format::parse(&sub.format).unwrap_or_default();
    let rendered = render(
        format,
        &sub.secret,
        &body,
        del.signed_at,
        epoch_now() as i64,
        dashboard,
    );
    let res = egress.send(&sub.url, &rendered).await;
    let number = del.attempts.saturating_add(1);
    let status_code = res.status.map(i32::from);
    let (status, error, retry_in) = if res.refused {
        (DEAD, res.error.clone(), None)
    } else {
        match classify(res.status) {
            Class::Success => (DELIVERED, None, None),
            Class::Terminal => (
                DEAD,
                Some(format!("non-retryable {}", res.status.unwrap_or_default())),
                None,
            ),
            Class::Retry => {
                let made = u32::try_from(number).unwrap_or(u32::MAX);
                match policy.delay(made, rand::random::<f64>()) {
                    Some(wait) => (PENDING, res.error.clone(), Some(wait)),
                    None => (DEAD, res.error.clone(), None),
                }
            }
        }
    };
    let error = error.map(cap);
    let next = match retry_in {
        Some(w) => now + chrono::Duration::from_std(w).unwrap_or_default(),
        None => now,
    };
    Concluded {
        record: AttemptRecord {
            delivery_id: del.id,
            subscription_uuid: sub.uuid.clone(),
            attempt: (!res.refused).then(|| Attempt {
                id: 0,
                delivery_id: del.id,
                attempt: number,
                status_code,
                error: error.clone(),
                duration_ms: i32::try_from(res.elapsed.as_millis()).unwrap_or(i32::MAX),
                attempted_at: now,
            }),
            status,
            next_attempt_at: next,
            status_code,
            error,
        },
        retry_in,
        status: Some(status),
    }
}

impl Beating for WebhookDispatcher {
    fn beat(&self) -> &Beat {
        &self.beat
    }
    fn health_extra(&self) -> Map<String, Value> {
        let c = &self.counters;
        let mut m = Map::new();
        m.insert("subscriptions".into(), Value::from(self.subs.len()));
        m.insert("patterns".into(), Value::from(self.subscribed.len()));
        m.insert("in_flight".into(), Value::from(self.in_flight.len()));
        m.insert("buffered".into(), Value::from(self.buffer.len()));
        m.insert("unrecorded".into(), Value::from(self.records.len()));
        m.insert("events_matched".into(), Value::from(c.events_matched));
        m.insert("enqueued".into(), Value::from(c.enqueued));
        m.insert("attempts".into(), Value::from(c.attempts));
        m.insert("delivered".into(), Value::from(c.delivered));
        m.insert("dead_letters".into(), Value::from(c.dead));
        m.insert("failed_writes".into(), Value::from(c.failed_writes));
        m
    }
}

impl Actor for WebhookDispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match Egress::new(&self.deps.settings.webhooks) {
            Ok(e) => self.egress = Some(e),
            Err(e) => {
                self.exit
                    .fail(format!("cannot build the webhook HTTP client: {e}"));
                ctx.stop();
                return;
            }
        }
        lower_thread_priority();
        start_beating(ctx, self);
        self.subscribe_control(ctx);
        self.reload(ctx);
        let every = Duration::from_secs_f64(self.deps.settings.webhooks.reload_s.max(1.0));
        ctx.run_interval(every, |act, ctx| act.reload(ctx));
        ctx.run_interval(PUMP_EVERY, |act, ctx| act.pump(ctx));
        self.prune(ctx);
        ctx.run_interval(PRUNE_EVERY, |act, ctx| act.prune(ctx));
    }

    fn stopping(&mut self, _ctx: &mut Context<Self>) -> Running {
        for c in self.closers.drain(..) {
            c.close();
        }
        if let Some(c) = self.control.take() {
            c.close();
        }
        Running::Stop
    }
}

impl StreamHandler<Arc<Envelope>> for WebhookDispatcher {
    fn handle(&mut self, env: Arc<Envelope>, ctx: &mut Context<Self>) {
        if env.topic == CHANGED_TOPIC {
            self.reload(ctx);
        }
        self.on_event(&env, ctx);
    }

    // A closed subscription (reload, registry shutdown) must not stop the actor.
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<Shutdown> for WebhookDispatcher {
    type Result = ();
    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        // Rows still in the write buffer are lost with the process; everything already in
        // the outbox (pending or retrying) resumes at the next start.
        if !self.buffer.is_empty() || !self.records.is_empty() {
            tracing::warn!(
                worker = NAME,
                rows = self.buffer.len(),
                unrecorded = self.records.len(),
                "stopping with unwritten webhook deliveries (unrecorded attempts are sent again at the next start)"
            );
        }
        ctx.stop();
    }
}

//! A worker that runs one database "tick" at a time: woken by registry events (debounced)
//! and by a slow fallback interval, never two ticks at once, and a wake that arrives during a
//! tick yields exactly one more. Both clusterers are a [`TickJob`] run by [`TickWorker`].

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::actors::heartbeat::start_beating;
use crate::actors::registry::RegistryHandle;
use crate::actors::topics::{Envelope, Event};
use crate::actors::{Beat, Beating, Deps, ExitGuard, Shutdown};
use crate::db::Db;

/// Wake-up debounce: a burst of events within this window yields one tick.
pub const WAKE_DEBOUNCE: Duration = Duration::from_millis(200);

/// Wake bookkeeping shared by both clusterers.
#[derive(Debug, Default)]
pub struct Wake {
    busy: bool,
    pending: bool,
    scheduled: bool,
}

impl Wake {
    /// A wake arrived: true when the caller should schedule a (debounced) tick now.
    pub fn request(&mut self) -> bool {
        if self.busy {
            self.pending = true;
            return false;
        }
        if self.scheduled {
            return false;
        }
        self.scheduled = true;
        true
    }

    /// The debounce elapsed: true when the tick may start (consumes the pending wake).
    pub fn begin(&mut self) -> bool {
        self.scheduled = false;
        if self.busy {
            self.pending = true;
            return false;
        }
        self.busy = true;
        self.pending = false;
        true
    }

    /// The tick finished: true when a wake arrived meanwhile and one more tick is due.
    pub fn finish(&mut self) -> bool {
        self.busy = false;
        std::mem::take(&mut self.pending)
    }
}

/// Counters shown in the Workers panel.
#[derive(Debug, Default, Clone)]
pub struct TickCounters {
    pub ticks: u64,
    pub failed_ticks: u64,
    pub last_tick_ms: f64,
    pub last_items: usize,
    pub events: u64,
}

impl TickCounters {
    pub fn to_extra(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("ticks".into(), Value::from(self.ticks));
        m.insert("failed_ticks".into(), Value::from(self.failed_ticks));
        m.insert("last_tick_ms".into(), Value::from(self.last_tick_ms));
        m.insert("last_items".into(), Value::from(self.last_items));
        m.insert("events_published".into(), Value::from(self.events));
        m
    }
}

/// Subscribe to `pattern` and feed the stream to the actor; without a registry, poll only.
pub fn subscribe_wakes<A>(
    ctx: &mut Context<A>,
    registry: RegistryHandle,
    pattern: &'static str,
    worker: &'static str,
) where
    A: Actor<Context = Context<A>> + StreamHandler<Arc<Envelope>>,
{
    let fut = actix::fut::wrap_future::<_, A>(async move { registry.subscribe(pattern).await });
    ctx.spawn(fut.map(move |res, _act, ctx: &mut Context<A>| match res {
        Ok(sub) => {
            A::add_stream(sub, ctx);
        }
        Err(e) => tracing::warn!(worker, error = %e, "registry unavailable; running poll-only"),
    }));
}

/// What one tick produced.
pub trait TickOutcome: Send + 'static {
    /// How many items the tick considered (shown as `last_items`).
    fn items(&self) -> usize;
    /// Events to publish after the tick's transaction committed, in order.
    fn events(&self) -> Vec<Event>;
}

/// One kind of tick.
pub trait TickJob: Unpin + 'static {
    /// Worker name (one of `supervisor::DISPLAY_ORDER`).
    const NAME: &'static str;
    /// Registry pattern whose events wake the worker.
    const WAKE_PATTERN: &'static str;
    /// Further registry patterns whose events wake the worker.
    const EXTRA_WAKE_PATTERNS: &'static [&'static str] = &[];
    type Outcome: TickOutcome;
    /// Run one tick against the database.
    fn run(
        db: Db,
    ) -> BoxFuture<'static, Result<Self::Outcome, crate::actors::clusterer::TickError>>;
    /// Whether an event on `topic` should wake the worker.
    fn wakes_on(_topic: &str) -> bool {
        true
    }
}

/// The supervised actor running a [`TickJob`].
pub struct TickWorker<J: TickJob> {
    deps: Deps,
    beat: Beat,
    _exit: ExitGuard,
    wake: Wake,
    counters: TickCounters,
    _job: PhantomData<J>,
}

impl<J: TickJob> TickWorker<J> {
    pub fn new(deps: Deps, exit: ExitGuard) -> Self {
        let beat = deps.beat(J::NAME);
        TickWorker {
            deps,
            beat,
            _exit: exit,
            wake: Wake::default(),
            counters: TickCounters::default(),
            _job: PhantomData,
        }
    }

    fn request(&mut self, ctx: &mut Context<Self>) {
        if self.wake.request() {
            ctx.run_later(WAKE_DEBOUNCE, |act, ctx| act.start_tick(ctx));
        }
    }

    fn start_tick(&mut self, ctx: &mut Context<Self>) {
        if !self.wake.begin() {
            return;
        }
        let db = self.deps.db.clone();
        let registry = self.deps.registry.clone();
        let started = Instant::now();
        ctx.spawn(
            async move {
                let res = J::run(db).await;
                if let Ok(outcome) = &res {
                    for ev in outcome.events() {
                        registry.publish(ev);
                    }
                }
                res
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                act.counters.ticks += 1;
                act.counters.last_tick_ms = started.elapsed().as_secs_f64() * 1_000.0;
                match res {
                    Ok(outcome) => {
                        let events = outcome.events().len();
                        crate::metrics::tick(J::NAME, started.elapsed(), outcome.items(), events);
                        act.counters.last_items = outcome.items();
                        act.counters.events += events as u64;
                    }
                    Err(e) => {
                        crate::metrics::tick_failed(J::NAME, started.elapsed());
                        act.counters.failed_ticks += 1;
                        tracing::warn!(worker = J::NAME, error = %e, "tick failed; counted as empty");
                    }
                }
                if act.wake.finish() {
                    act.request(ctx);
                }
            }),
        );
    }
}

impl<J: TickJob> Beating for TickWorker<J> {
    fn beat(&self) -> &Beat {
        &self.beat
    }
    fn health_extra(&self) -> Map<String, Value> {
        self.counters.to_extra()
    }
}

impl<J: TickJob> Actor for TickWorker<J> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        start_beating(ctx, self);
        subscribe_wakes(ctx, self.deps.registry.clone(), J::WAKE_PATTERN, J::NAME);
        for pattern in J::EXTRA_WAKE_PATTERNS {
            subscribe_wakes(ctx, self.deps.registry.clone(), pattern, J::NAME);
        }
        let every = Duration::from_secs_f64(self.deps.settings.clustering.tick_s.max(0.05));
        ctx.run_interval(every, |act, ctx| act.request(ctx));
        self.request(ctx);
    }
}

impl<J: TickJob> StreamHandler<Arc<Envelope>> for TickWorker<J> {
    fn handle(&mut self, env: Arc<Envelope>, ctx: &mut Context<Self>) {
        if J::wakes_on(&env.topic) {
            self.request(ctx);
        }
    }

    // The registry closing the stream (shutdown) must not stop the actor by itself.
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl<J: TickJob> Handler<Shutdown> for TickWorker<J> {
    type Result = ();
    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_coalesce_and_none_is_lost() {
        let mut w = Wake::default();
        assert!(w.request(), "first wake schedules");
        assert!(!w.request() && !w.request(), "a burst schedules once");
        assert!(w.begin());
        assert!(
            !w.request(),
            "wake during the tick is remembered, not scheduled"
        );
        assert!(w.finish(), "… and yields exactly one more tick");
        assert!(w.request());
        assert!(w.begin());
        assert!(!w.finish(), "no wake during the tick: nothing more");
    }
}

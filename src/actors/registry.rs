//! The in-process event registry that replaces the reference's socket bus (spec §1).
//!
//! One [`RegistryActor`] runs on its own actix arbiter and owns the subscription table. Publishing
//! stamps the envelope on the caller's thread and hands it to the actor with `do_send` (an
//! unbounded mailbox: the publisher never waits). The actor fans each envelope out to every
//! matching subscription's bounded ring buffer; when a buffer is full its **oldest** entry is
//! discarded. A [`Subscription`] is a plain [`futures::Stream`], usable from SSE handlers and from
//! actors (`ctx.add_stream(sub)`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use actix_rt::ArbiterHandle;
use futures::Stream;
use parking_lot::Mutex;
use serde_json::{Map, Value};

use super::heartbeat::StatusBoard;
use super::topics::{validate_topic, BusHealth, Envelope, Event, Pattern, TopicError};

/// Largest serialized envelope the registry routes (the reference bus cap).
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// Default per-subscription buffer.
pub const DEFAULT_CAPACITY: usize = 1024;
/// Default period of `system.bus.health`.
pub const DEFAULT_BUS_HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// Minimum spacing of the per-subscription overflow WARN.
const OVERFLOW_WARN_EVERY: Duration = Duration::from_secs(10);

/// Registry settings (`DECNET_BUS_ENABLED` maps to `enabled`).
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// When false the registry is disabled: publishes are dropped, subscribe fails with
    /// [`RegistryError::Disabled`].
    pub enabled: bool,
    /// Per-subscription buffer capacity (default 1024; 0 is treated as 1).
    pub capacity: usize,
    /// Period of the registry's own `system.bus.health` beat (default 10 s; zero disables it).
    pub bus_health_interval: Duration,
    /// Where the bus beat is also recorded directly, so the Workers panel shows the bus from
    /// the first instant instead of after the heartbeat actor has subscribed.
    pub status: Option<StatusBoard>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            capacity: DEFAULT_CAPACITY,
            bus_health_interval: DEFAULT_BUS_HEALTH_INTERVAL,
            status: None,
        }
    }
}

/// Errors of [`RegistryHandle::subscribe`]. Publishing never errors.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry is disabled (`DECNET_BUS_ENABLED=false`): treat as "bus unavailable".
    #[error("event registry is disabled")]
    Disabled,
    /// The registry has been shut down.
    #[error("event registry is closed")]
    Closed,
    /// The subscription pattern is invalid.
    #[error("bad subscription pattern: {0}")]
    BadPattern(#[from] TopicError),
}

/// Cheap counters snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RegistryStats {
    /// Envelopes accepted for routing (including the registry's own heartbeats).
    pub published: u64,
    /// Copies placed in subscription buffers.
    pub delivered: u64,
    /// Buffered copies discarded because a subscription buffer was full.
    pub dropped_overflow: u64,
    /// Live subscriptions.
    pub subscriptions: u64,
    /// Publishes refused: bad topic, non-object payload, oversize, or after shutdown.
    pub rejected: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    delivered: AtomicU64,
    dropped_overflow: AtomicU64,
    subscriptions: AtomicU64,
    rejected: AtomicU64,
}

// ---------------------------------------------------------------------------------------------
// Subscription side
// ---------------------------------------------------------------------------------------------

struct Queue {
    buf: VecDeque<Arc<Envelope>>,
    waker: Option<Waker>,
    closed: bool,
    last_warn: Option<Instant>,
    dropped_since_warn: u64,
}

enum Push {
    Stored,
    StoredDroppedOldest,
    Closed,
}

struct SubShared {
    id: u64,
    pattern: String,
    capacity: usize,
    queue: Mutex<Queue>,
    dropped: AtomicU64,
    counters: Arc<Counters>,
}

impl SubShared {
    fn new(id: u64, pattern: String, capacity: usize, counters: Arc<Counters>) -> Self {
        let capacity = capacity.max(1);
        counters.subscriptions.fetch_add(1, Ordering::Relaxed);
        Self {
            id,
            pattern,
            capacity,
            queue: Mutex::new(Queue {
                buf: VecDeque::with_capacity(capacity.min(64)),
                waker: None,
                closed: false,
                last_warn: None,
                dropped_since_warn: 0,
            }),
            dropped: AtomicU64::new(0),
            counters,
        }
    }

    fn push(&self, env: &Arc<Envelope>) -> Push {
        let (waker, overflowed, warn) = {
            let mut q = self.queue.lock();
            if q.closed {
                return Push::Closed;
            }
            let mut overflowed = false;
            let mut warn = None;
            if q.buf.len() >= self.capacity {
                q.buf.pop_front();
                overflowed = true;
                q.dropped_since_warn += 1;
                let due = q
                    .last_warn
                    .is_none_or(|at| at.elapsed() >= OVERFLOW_WARN_EVERY);
                if due {
                    q.last_warn = Some(Instant::now());
                    warn = Some(std::mem::take(&mut q.dropped_since_warn));
                }
            }
            q.buf.push_back(Arc::clone(env));
            (q.waker.take(), overflowed, warn)
        };
        if let Some(w) = waker {
            w.wake();
        }
        if !overflowed {
            return Push::Stored;
        }
        let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        crate::metrics::registry_dropped(&self.pattern, 1);
        if let Some(n) = warn {
            tracing::warn!(
                subscription = self.id,
                pattern = %self.pattern,
                capacity = self.capacity,
                dropped = n,
                total_dropped = total,
                "slow subscriber: buffer full, discarded oldest events"
            );
        }
        Push::StoredDroppedOldest
    }

    fn close(&self) {
        let waker = {
            let mut q = self.queue.lock();
            if q.closed {
                return;
            }
            q.closed = true;
            q.buf.clear();
            q.waker.take()
        };
        self.counters.subscriptions.fetch_sub(1, Ordering::Relaxed);
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn is_closed(&self) -> bool {
        self.queue.lock().closed
    }
}

/// A live subscription: a [`Stream`] of delivered envelopes. It ends (yields `None`) when closed,
/// when the registry shuts down, or when the registry actor goes away. Dropping it releases the
/// subscription immediately and discards whatever was buffered.
pub struct Subscription {
    shared: Arc<SubShared>,
    registry: Option<Addr<RegistryActor>>,
}

impl Subscription {
    /// Events discarded from this subscription's buffer because it was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Events currently buffered and not yet consumed.
    pub fn queued(&self) -> usize {
        self.shared.queue.lock().buf.len()
    }

    /// The pattern this subscription was registered with.
    pub fn pattern(&self) -> &str {
        &self.shared.pattern
    }

    /// Closes the subscription: buffered events are discarded and the stream ends.
    pub fn close(&self) {
        self.shared.close();
    }

    /// A handle that can close this subscription from elsewhere (e.g. while a consumer is blocked
    /// on it in another task).
    pub fn closer(&self) -> SubscriptionCloser {
        SubscriptionCloser {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.shared.id)
            .field("pattern", &self.shared.pattern)
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}

impl Stream for Subscription {
    type Item = Arc<Envelope>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let mut q = self.shared.queue.lock();
        if let Some(env) = q.buf.pop_front() {
            return Poll::Ready(Some(env));
        }
        if q.closed {
            return Poll::Ready(None);
        }
        match &q.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => q.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared.close();
        if let Some(addr) = &self.registry {
            addr.do_send(Unsubscribe(self.shared.id));
        }
    }
}

/// Closes a [`Subscription`] from another task; cloning is cheap.
#[derive(Clone)]
pub struct SubscriptionCloser {
    shared: Arc<SubShared>,
}

impl SubscriptionCloser {
    /// Ends the subscription's stream and discards its buffer.
    pub fn close(&self) {
        self.shared.close();
    }
}

// ---------------------------------------------------------------------------------------------
// Actor side
// ---------------------------------------------------------------------------------------------

struct Entry {
    pattern: Pattern,
    shared: Arc<SubShared>,
}

/// The registry actor (internal; use [`RegistryHandle`]).
pub struct RegistryActor {
    subs: Vec<Entry>,
    counters: Arc<Counters>,
    started: Instant,
    bus_health_interval: Duration,
    status: Option<StatusBoard>,
    shut_down: bool,
}

impl RegistryActor {
    fn route(&mut self, env: &Arc<Envelope>) {
        let mut delivered = 0u64;
        let mut overflowed = 0u64;
        let mut stale = false;
        for entry in &self.subs {
            if !entry.pattern.matches(&env.topic) {
                continue;
            }
            match entry.shared.push(env) {
                Push::Stored => delivered += 1,
                Push::StoredDroppedOldest => {
                    delivered += 1;
                    overflowed += 1;
                }
                Push::Closed => stale = true,
            }
        }
        if delivered > 0 {
            self.counters
                .delivered
                .fetch_add(delivered, Ordering::Relaxed);
        }
        if overflowed > 0 {
            self.counters
                .dropped_overflow
                .fetch_add(overflowed, Ordering::Relaxed);
        }
        if stale {
            self.subs.retain(|e| !e.shared.is_closed());
        }
    }

    fn beat(&mut self) {
        let ev = Event::BusHealth(BusHealth {
            pid: std::process::id(),
            uptime_sec: self.started.elapsed().as_secs_f64(),
            ts: epoch_now(),
        });
        let env = Arc::new(stamp(
            "system.bus.health".to_owned(),
            ev.kind().to_owned(),
            ev.payload(),
        ));
        if let Some(board) = &self.status {
            board.record(&env.topic, &env.payload);
        }
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        self.route(&env);
    }

    fn close_all(&mut self) {
        for entry in self.subs.drain(..) {
            entry.shared.close();
        }
    }
}

impl Actor for RegistryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if !self.bus_health_interval.is_zero() {
            self.beat();
            ctx.run_interval(self.bus_health_interval, |act, _| act.beat());
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.close_all();
    }
}

impl Drop for RegistryActor {
    fn drop(&mut self) {
        self.close_all();
    }
}

struct Publish(Arc<Envelope>);
impl Message for Publish {
    type Result = ();
}

impl Handler<Publish> for RegistryActor {
    type Result = ();
    fn handle(&mut self, msg: Publish, _ctx: &mut Self::Context) {
        self.route(&msg.0);
    }
}

/// Several envelopes, routed in order.
struct PublishMany(Vec<Arc<Envelope>>);
impl Message for PublishMany {
    type Result = ();
}

impl Handler<PublishMany> for RegistryActor {
    type Result = ();
    fn handle(&mut self, msg: PublishMany, _ctx: &mut Self::Context) {
        for env in &msg.0 {
            self.route(env);
        }
    }
}

/// Events to build on the registry's thread ([`RegistryHandle::publish_all_with`]).
struct PublishBuilt {
    counters: Arc<Counters>,
    build: Box<dyn FnOnce() -> Vec<Event> + Send>,
}
impl Message for PublishBuilt {
    type Result = ();
}

impl Handler<PublishBuilt> for RegistryActor {
    type Result = ();
    fn handle(&mut self, msg: PublishBuilt, _ctx: &mut Self::Context) {
        // A panicking builder loses its events, not the registry.
        let events = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(msg.build)) {
            Ok(events) => events,
            Err(_) => {
                reject(
                    &msg.counters,
                    "the event builder panicked",
                    "events not built",
                );
                return;
            }
        };
        for ev in events {
            let topic = match ev.topic() {
                Ok(t) => t,
                Err(err) => {
                    reject(&msg.counters, &err.to_string(), "invalid topic");
                    continue;
                }
            };
            if let Some(env) =
                checked_envelope(&msg.counters, topic, ev.kind().to_owned(), ev.payload())
            {
                msg.counters.published.fetch_add(1, Ordering::Relaxed);
                self.route(&Arc::new(env));
            }
        }
    }
}

struct Register {
    pattern: Pattern,
    shared: Arc<SubShared>,
}
impl Message for Register {
    type Result = ();
}

impl Handler<Register> for RegistryActor {
    type Result = ();
    fn handle(&mut self, msg: Register, _ctx: &mut Self::Context) {
        if self.shut_down {
            msg.shared.close();
        } else if !msg.shared.is_closed() {
            self.subs.push(Entry {
                pattern: msg.pattern,
                shared: msg.shared,
            });
        }
    }
}

struct Unsubscribe(u64);
impl Message for Unsubscribe {
    type Result = ();
}

impl Handler<Unsubscribe> for RegistryActor {
    type Result = ();
    fn handle(&mut self, msg: Unsubscribe, _ctx: &mut Self::Context) {
        self.subs.retain(|e| e.shared.id != msg.0);
    }
}

struct Shutdown;
impl Message for Shutdown {
    type Result = ();
}

impl Handler<Shutdown> for RegistryActor {
    type Result = ();
    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        self.shut_down = true;
        self.close_all();
        ctx.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Handle
// ---------------------------------------------------------------------------------------------

struct Inner {
    enabled: bool,
    addr: Option<Addr<RegistryActor>>,
    /// What hosts the actor when the registry owns it (stopped when the last handle goes).
    owner: Option<Owner>,
    capacity: usize,
    counters: Arc<Counters>,
    closed: AtomicBool,
    warned_closed: AtomicBool,
    next_id: AtomicU64,
}

/// The execution context the registry created for its actor.
enum Owner {
    /// A dedicated arbiter of the surrounding actix `System`.
    Arbiter(ArbiterHandle),
    /// A private `System` on a dedicated thread (no surrounding `System`).
    System(actix_rt::System),
}

impl Owner {
    fn stop(&self) {
        match self {
            Owner::Arbiter(handle) => {
                handle.stop();
            }
            Owner::System(system) => system.stop(),
        }
    }
}

type StartedActor = (Addr<RegistryActor>, Option<Owner>);

/// Hosts the actor in a private actix `System` on its own thread.
fn start_detached<F>(make: F) -> std::io::Result<StartedActor>
where
    F: FnOnce(&mut Context<RegistryActor>) -> RegistryActor + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("decnet-registry".to_owned())
        .spawn(move || {
            let runner = actix_rt::System::new();
            let system = actix_rt::System::current();
            runner.block_on(async move {
                let addr = RegistryActor::create(make);
                let _ = tx.send((addr, system));
            });
            if let Err(err) = runner.run() {
                tracing::error!(error = %err, "event registry system ended with an error");
            }
        })?;
    let (addr, system) = rx
        .recv()
        .map_err(|_| std::io::Error::other("registry thread exited before starting"))?;
    Ok((addr, Some(Owner::System(system))))
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(owner) = &self.owner {
            owner.stop();
        }
    }
}

/// Cloneable handle to the registry; every actor and handler holds one.
#[derive(Clone)]
pub struct RegistryHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RegistryHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryHandle")
            .field("enabled", &self.inner.enabled)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .field("stats", &self.stats())
            .finish()
    }
}

impl RegistryHandle {
    /// Starts the registry actor on its own actix arbiter (inside a running actix `System`, as in
    /// the daemon). Outside any `System` (e.g. a plain `#[tokio::test]`) the actor gets a private
    /// `System` on a dedicated thread instead. `cfg.enabled == false` gives a disabled handle.
    pub fn start(cfg: RegistryConfig) -> RegistryHandle {
        if !cfg.enabled {
            return Self::disabled();
        }
        let counters = Arc::new(Counters::default());
        let actor_counters = Arc::clone(&counters);
        let interval = cfg.bus_health_interval;
        let status = cfg.status.clone();
        let make = move |_: &mut Context<RegistryActor>| RegistryActor {
            subs: Vec::new(),
            counters: actor_counters,
            started: Instant::now(),
            bus_health_interval: interval,
            status: status.clone(),
            shut_down: false,
        };
        let started = if actix_rt::System::try_current().is_some() {
            match actix_rt::Arbiter::try_new() {
                Ok(arbiter) => {
                    let handle = arbiter.handle();
                    Ok((
                        RegistryActor::start_in_arbiter(&handle, make),
                        Some(Owner::Arbiter(handle)),
                    ))
                }
                Err(err) => {
                    tracing::warn!(error = %err, "no dedicated arbiter for the registry; using the current one");
                    Ok((RegistryActor::create(make), None))
                }
            }
        } else {
            start_detached(make)
        };
        let (addr, owner) = match started {
            Ok(started) => started,
            Err(err) => {
                tracing::error!(error = %err, "could not start the event registry; running disabled");
                return Self::disabled();
            }
        };
        RegistryHandle {
            inner: Arc::new(Inner {
                enabled: true,
                addr: Some(addr),
                owner,
                capacity: cfg.capacity.max(1),
                counters,
                closed: AtomicBool::new(false),
                warned_closed: AtomicBool::new(false),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// A disabled registry: publishes are dropped silently and `subscribe` answers
    /// [`RegistryError::Disabled`] (so a subscriber sees no event, exactly as "bus unavailable").
    pub fn disabled() -> RegistryHandle {
        RegistryHandle {
            inner: Arc::new(Inner {
                enabled: false,
                addr: None,
                owner: None,
                capacity: DEFAULT_CAPACITY,
                counters: Arc::new(Counters::default()),
                closed: AtomicBool::new(false),
                warned_closed: AtomicBool::new(false),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Publishes a typed event. Never blocks and never errors: an invalid topic, a non-object
    /// or oversize payload, or a closed registry is logged and the event dropped.
    pub fn publish(&self, ev: Event) {
        if !self.accepting() {
            return;
        }
        match ev.topic() {
            Ok(topic) => self.dispatch(topic, ev.kind().to_owned(), ev.payload()),
            Err(err) => self.reject(&err.to_string(), "invalid topic"),
        }
    }

    /// Publishes an untyped event on `topic` (validated: no empty or wildcard tokens). Same
    /// never-fail rules as [`publish`](Self::publish). A `null` payload becomes `{}`.
    pub fn publish_raw(&self, topic: &str, kind: &str, payload: Value) {
        if !self.accepting() {
            return;
        }
        match validate_topic(topic) {
            Ok(()) => self.dispatch(topic.to_owned(), kind.to_owned(), payload),
            Err(err) => self.reject(&err.to_string(), "invalid topic"),
        }
    }

    /// Registers a subscription; resolves once the registry acknowledged it, so every later
    /// matching publish is delivered to it.
    pub async fn subscribe(&self, pattern: &str) -> Result<Subscription, RegistryError> {
        self.subscribe_with_capacity(pattern, self.inner.capacity)
            .await
    }

    /// [`subscribe`](Self::subscribe) with an explicit buffer capacity (0 is treated as 1).
    pub async fn subscribe_with_capacity(
        &self,
        pattern: &str,
        capacity: usize,
    ) -> Result<Subscription, RegistryError> {
        let pattern = Pattern::parse(pattern)?;
        let Some(addr) = &self.inner.addr else {
            return Err(RegistryError::Disabled);
        };
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(RegistryError::Closed);
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(SubShared::new(
            id,
            pattern.as_str().to_owned(),
            capacity,
            Arc::clone(&self.inner.counters),
        ));
        // Built before the round-trip so that a cancelled `subscribe` future still releases it.
        let sub = Subscription {
            shared: Arc::clone(&shared),
            registry: Some(addr.clone()),
        };
        addr.send(Register { pattern, shared })
            .await
            .map_err(|_| RegistryError::Closed)?;
        if sub.shared.is_closed() {
            return Err(RegistryError::Closed);
        }
        Ok(sub)
    }

    /// True when the registry is enabled and not shut down (`bus_connected` of `/workers`).
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled
            && !self.inner.closed.load(Ordering::Acquire)
            && self.inner.addr.as_ref().is_some_and(Addr::connected)
    }

    /// Counter snapshot (relaxed atomics).
    pub fn stats(&self) -> RegistryStats {
        let c = &self.inner.counters;
        RegistryStats {
            published: c.published.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            dropped_overflow: c.dropped_overflow.load(Ordering::Relaxed),
            subscriptions: c.subscriptions.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
        }
    }

    /// Stops the registry: every open subscription stream ends cleanly; later publishes are
    /// dropped (first one WARN, then DEBUG) and later subscribes fail with `Closed`. Idempotent.
    pub async fn shutdown(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(addr) = &self.inner.addr {
            // Err only if the actor is already gone, in which case its Drop closed everything.
            let _ = addr.send(Shutdown).await;
        }
        if let Some(owner) = &self.inner.owner {
            owner.stop();
        }
    }

    /// False (after logging) when publishes must be dropped.
    fn accepting(&self) -> bool {
        if !self.inner.enabled {
            return false;
        }
        if self.inner.closed.load(Ordering::Acquire) {
            self.inner.counters.rejected.fetch_add(1, Ordering::Relaxed);
            if self.inner.warned_closed.swap(true, Ordering::AcqRel) {
                tracing::debug!("event registry closed; publish dropped");
            } else {
                tracing::warn!("event registry closed; publish dropped (further drops at DEBUG)");
            }
            return false;
        }
        true
    }

    fn reject(&self, detail: &str, what: &str) {
        reject(&self.inner.counters, detail, what);
    }

    fn dispatch(&self, topic: String, kind: String, payload: Value) {
        if let (Some(env), Some(addr)) = (self.envelope(topic, kind, payload), &self.inner.addr) {
            addr.do_send(Publish(env));
        }
    }

    /// Publishes `events` in order, handing them to the registry in one message (one wake of
    /// its thread instead of one per event, e.g. for the `system.log` events of an ingest
    /// batch). Each event is validated, counted and delivered as [`publish`](Self::publish)
    /// would.
    pub fn publish_all(&self, events: impl IntoIterator<Item = Event>) {
        if !self.accepting() {
            return;
        }
        let mut envs = Vec::new();
        for ev in events {
            match ev.topic() {
                Ok(topic) => envs.extend(self.envelope(topic, ev.kind().to_owned(), ev.payload())),
                Err(err) => self.reject(&err.to_string(), "invalid topic"),
            }
        }
        if let (false, Some(addr)) = (envs.is_empty(), &self.inner.addr) {
            addr.do_send(PublishMany(envs));
        }
    }

    /// Publishes the events `build` returns, in order, building them and their envelopes on
    /// the registry's thread instead of the caller's: for a producer whose own thread is the
    /// bottleneck (the ingester's writer loop, one `system.log` event per stored line). What
    /// `build` captures is dropped there too. Order is kept with the caller's other publishes
    /// (one mailbox); each event is validated, counted and delivered as
    /// [`publish`](Self::publish) would, once the registry ran `build` (the counters of
    /// [`stats`](Self::stats) follow then, not on return).
    pub fn publish_all_with(&self, build: impl FnOnce() -> Vec<Event> + Send + 'static) {
        if !self.accepting() {
            return;
        }
        match &self.inner.addr {
            Some(addr) => addr.do_send(PublishBuilt {
                counters: Arc::clone(&self.inner.counters),
                build: Box::new(build),
            }),
            None => self.publish_all(build()),
        }
    }

    /// The stamped envelope of an event, counted as published; `None` (rejected and counted)
    /// when the payload is not an object or the event is oversize.
    fn envelope(&self, topic: String, kind: String, payload: Value) -> Option<Arc<Envelope>> {
        let env = checked_envelope(&self.inner.counters, topic, kind, payload)?;
        self.inner.addr.as_ref()?;
        self.inner
            .counters
            .published
            .fetch_add(1, Ordering::Relaxed);
        Some(Arc::new(env))
    }
}

fn reject(counters: &Counters, detail: &str, what: &str) {
    counters.rejected.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(error = %detail, "{what}; event dropped");
}

/// The stamped envelope of an event; `None` (rejected and counted) when the payload is not an
/// object or the event is oversize.
fn checked_envelope(
    counters: &Counters,
    topic: String,
    kind: String,
    payload: Value,
) -> Option<Envelope> {
    crate::metrics::registry_published();
    let payload = match payload {
        Value::Object(_) => payload,
        Value::Null => Value::Object(Map::new()),
        other => {
            let detail = format!("payload for {topic:?} is {}", json_kind(&other));
            reject(counters, &detail, "payload is not a JSON object");
            return None;
        }
    };
    let env = stamp(topic, kind, payload);
    if let Err(size) = check_size(&env) {
        let detail = format!(
            "event on {:?} serializes to more than {size} bytes (cap {MAX_EVENT_BYTES})",
            env.topic
        );
        reject(counters, &detail, "oversize event");
        return None;
    }
    Some(env)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Current Unix time in seconds.
pub fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Builds an envelope with a fresh random id and the current time.
fn stamp(topic: String, kind: String, payload: Value) -> Envelope {
    Envelope {
        v: 1,
        id: format!("{:032x}", rand::random::<u128>()),
        topic,
        kind,
        ts: epoch_now(),
        payload,
        relay: Default::default(),
    }
}

/// A writer that only counts, failing as soon as the cap is exceeded.
struct CountingWriter {
    written: usize,
}

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written += buf.len();
        if self.written > MAX_EVENT_BYTES {
            return Err(std::io::Error::other("event too large"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `Err(bytes_counted)` when the serialized envelope exceeds [`MAX_EVENT_BYTES`].
fn check_size(env: &Envelope) -> Result<(), usize> {
    let mut w = CountingWriter { written: 0 };
    match serde_json::to_writer(&mut w, env) {
        Ok(()) => Ok(()),
        Err(_) => Err(w.written),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stamp_sets_version_id_and_ts() {
        let env = stamp("a.b".into(), "t".into(), json!({}));
        assert_eq!(env.v, 1);
        assert_eq!(env.id.len(), 32);
        assert!(env
            .id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(env.ts > 1.6e9);
        let other = stamp("a.b".into(), "t".into(), json!({}));
        assert_ne!(env.id, other.id);
    }

    #[test]
    fn size_cap() {
        let small = stamp("a".into(), "".into(), json!({"x": "y"}));
        assert!(check_size(&small).is_ok());
        let big = stamp(
            "a".into(),
            "".into(),
            json!({"x": "y".repeat(MAX_EVENT_BYTES)}),
        );
        assert!(check_size(&big).is_err());
    }

    #[test]
    fn ring_buffer_drops_oldest() {
        let counters = Arc::new(Counters::default());
        let shared = SubShared::new(1, ">".into(), 2, Arc::clone(&counters));
        for i in 0..5 {
            let env = Arc::new(stamp("a".into(), "".into(), json!({ "i": i })));
            shared.push(&env);
        }
        let q = shared.queue.lock();
        let is: Vec<_> = q.buf.iter().map(|e| e.payload["i"].clone()).collect();
        assert_eq!(is, vec![json!(3), json!(4)]);
        drop(q);
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 3);
        shared.close();
        assert!(matches!(
            shared.push(&Arc::new(stamp("a".into(), "".into(), json!({})))),
            Push::Closed
        ));
        assert_eq!(counters.subscriptions.load(Ordering::Relaxed), 0);
    }
}

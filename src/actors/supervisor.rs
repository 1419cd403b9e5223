//! Supervision of the worker actors (spec/platform.md §2.4).
//!
//! Every worker actor runs on its own actix [`Arbiter`] (thread), so a CPU-heavy or panicking
//! actor never stalls or kills a sibling. The actor holds an [`ExitGuard`]; when the actor is
//! dropped — after a graceful stop, an error stop (`ctx.stop()` on its own) or a panic in a
//! handler (tokio contains the panic and drops the actor's task) — the guard reports the exit to
//! the supervisor. An exit that was not requested is a crash: the supervisor restarts the actor
//! after a backoff of 1 s doubling per consecutive crash up to 30 s, and counts it. An exit that
//! was requested (admin `stop` on `system.<name>.control`, or daemon shutdown) is clean and is
//! not restarted: "stop" sticks until an explicit start.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_rt::{Arbiter, ArbiterHandle};
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{mpsc, Notify};

use crate::actors::registry::RegistryHandle;

/// The rows of the Workers panel, in display order (spec/platform.md §2.1 decision).
pub const DISPLAY_ORDER: [&str; 13] = [
    "api",
    "bus",
    "ingester",
    "clusterer",
    "campaign-clusterer",
    "ttp",
    "enricher",
    "planner",
    "mail-dripper",
    "canary",
    "reconciler",
    "webhooks",
    "heartbeat",
];

/// Names that are part of the daemon itself rather than supervised actors.
const BUILTIN: [&str; 2] = ["api", "bus"];

/// Ask a worker actor to stop gracefully (drain, then `ctx.stop()`).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Shutdown;

/// How a worker actor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitKind {
    /// The stop was requested (admin stop or daemon shutdown).
    Requested,
    /// Panic or error stop; `reason` is the panic message when there was one.
    Crashed { reason: String },
}

struct ExitReport {
    name: &'static str,
    generation: u64,
    kind: ExitKind,
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static PANIC_HOOK: Once = Once::new();

/// Remember the last panic message per thread so an [`ExitGuard`] dropped on that thread can
/// report why its actor died. The previous hook still runs (panics stay visible in the log).
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "panic".to_string()
            };
            let msg = match info.location() {
                Some(loc) => format!("panic at {}:{}: {msg}", loc.file(), loc.line()),
                None => format!("panic: {msg}"),
            };
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(msg));
            previous(info);
        }));
    });
}

/// Held by a worker actor for its whole life; reports the actor's end to the supervisor.
pub struct ExitGuard {
    name: &'static str,
    generation: u64,
    stop_requested: Arc<AtomicBool>,
    tx: mpsc::UnboundedSender<ExitReport>,
    error: Option<String>,
}

impl ExitGuard {
    /// Worker name (`ingester`, `clusterer`, …).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Record why the actor is about to stop on its own (an error stop); reported as a crash.
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.error = Some(reason.into());
    }

    /// Whether the supervisor asked this actor to stop.
    pub fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::SeqCst)
    }

    /// A guard not attached to any supervisor (pure tests, one-shot CLI runs).
    pub fn detached(name: &'static str) -> ExitGuard {
        let (tx, _rx) = mpsc::unbounded_channel();
        ExitGuard {
            name,
            generation: 0,
            stop_requested: Arc::new(AtomicBool::new(true)),
            tx,
            error: None,
        }
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let kind = if self.stop_requested.load(Ordering::SeqCst) {
            ExitKind::Requested
        } else {
            let panic = LAST_PANIC.with(|p| p.borrow_mut().take());
            let reason = panic
                .or_else(|| self.error.take())
                .unwrap_or_else(|| "stopped unexpectedly".to_string());
            ExitKind::Crashed { reason }
        };
        let _ = self.tx.send(ExitReport {
            name: self.name,
            generation: self.generation,
            kind,
        });
    }
}

type AnyAddr = Box<dyn std::any::Any + Send>;
type SpawnFn = dyn Fn(&ArbiterHandle, ExitGuard) -> (Recipient<Shutdown>, AnyAddr) + Send + Sync;

/// How to (re)start one worker actor.
#[derive(Clone)]
pub struct WorkerSpec {
    name: &'static str,
    spawn: Arc<SpawnFn>,
}

impl WorkerSpec {
    /// `make` builds a fresh actor (it runs on the worker's own arbiter thread and must store
    /// the [`ExitGuard`] it is given).
    pub fn new<A, F>(name: &'static str, make: F) -> WorkerSpec
    where
        A: Actor<Context = Context<A>> + Handler<Shutdown>,
        F: Fn(ExitGuard) -> A + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        WorkerSpec {
            name,
            spawn: Arc::new(move |arbiter, guard| {
                let make = Arc::clone(&make);
                let addr = A::start_in_arbiter(arbiter, move |_ctx| make(guard));
                (addr.clone().recipient(), Box::new(addr) as AnyAddr)
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// Snapshot of one supervised worker for `/api/v1/workers` and health.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerInfo {
    pub name: &'static str,
    pub installed: bool,
    pub running: bool,
    pub restarts: u64,
    pub last_exit: Option<String>,
    /// Set while a crashed worker waits for its restart.
    pub restart_pending: bool,
    /// An admin stop is in force.
    pub admin_stopped: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Started,
    AlreadyRunning,
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("Unknown worker: '{0}'")]
    UnknownWorker(String),
    #[error("worker not installed: {0}")]
    NotInstalled(String),
    #[error("{0}")]
    Failed(String),
}

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// A worker that ran this long before crashing starts its backoff afresh.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// Delay before restart number `consecutive` (1-based): initial · 2^(n-1), capped.
    pub fn delay(&self, consecutive: u32) -> Duration {
        let exp = consecutive.saturating_sub(1).min(16);
        self.initial
            .saturating_mul(1u32 << exp)
            .min(self.max)
            .max(self.initial.min(self.max))
    }
}

struct Slot {
    spec: WorkerSpec,
    generation: u64,
    arbiter: Option<Arbiter>,
    shutdown: Option<Recipient<Shutdown>>,
    addr: Option<AnyAddr>,
    stop_requested: Arc<AtomicBool>,
    running: bool,
    restart_pending: bool,
    admin_stopped: bool,
    restarts: u64,
    consecutive_crashes: u32,
    started_at: Instant,
    last_exit: Option<String>,
}

struct Inner {
    slots: HashMap<&'static str, Slot>,
    shutting_down: bool,
}

/// Cloneable handle on the supervisor.
#[derive(Clone)]
pub struct SupervisorHandle {
    inner: Arc<Mutex<Inner>>,
    tx: mpsc::UnboundedSender<ExitReport>,
    backoff: Backoff,
    exited: Arc<Notify>,
}

impl SupervisorHandle {
    /// Start every spec and the background task that restarts crashed actors and obeys
    /// `system.<name>.control` stop requests. Call inside a running actix System.
    pub fn launch(
        specs: Vec<WorkerSpec>,
        registry: RegistryHandle,
        backoff: Backoff,
    ) -> SupervisorHandle {
        install_panic_hook();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut slots = HashMap::new();
        for spec in specs {
            slots.insert(
                spec.name,
                Slot {
                    spec,
                    generation: 0,
                    arbiter: None,
                    shutdown: None,
                    addr: None,
                    stop_requested: Arc::new(AtomicBool::new(false)),
                    running: false,
                    restart_pending: false,
                    admin_stopped: false,
                    restarts: 0,
                    consecutive_crashes: 0,
                    started_at: Instant::now(),
                    last_exit: None,
                },
            );
        }
        let handle = SupervisorHandle {
            inner: Arc::new(Mutex::new(Inner {
                slots,
                shutting_down: false,
            })),
            tx,
            backoff,
            exited: Arc::new(Notify::new()),
        };
        {
            let mut inner = handle.inner.lock();
            let names: Vec<&'static str> = inner.slots.keys().copied().collect();
            for name in names {
                if let Some(slot) = inner.slots.get_mut(name) {
                    handle.spawn_slot(slot);
                }
            }
        }
        actix_rt::spawn(handle.clone().run_exits(rx));
        actix_rt::spawn(handle.clone().run_control(registry));
        handle
    }

    fn spawn_slot(&self, slot: &mut Slot) {
        slot.generation += 1;
        let stop_requested = Arc::new(AtomicBool::new(false));
        let guard = ExitGuard {
            name: slot.spec.name,
            generation: slot.generation,
            stop_requested: Arc::clone(&stop_requested),
            tx: self.tx.clone(),
            error: None,
        };
        let arbiter = Arbiter::new();
        let (recipient, addr) = (slot.spec.spawn)(&arbiter.handle(), guard);
        slot.addr = Some(addr);
        if let Some(old) = slot.arbiter.replace(arbiter) {
            old.stop();
        }
        slot.shutdown = Some(recipient);
        slot.stop_requested = stop_requested;
        slot.running = true;
        slot.restart_pending = false;
        slot.started_at = Instant::now();
        tracing::info!(
            worker = slot.spec.name,
            generation = slot.generation,
            "worker started"
        );
    }

    async fn run_exits(self, mut rx: mpsc::UnboundedReceiver<ExitReport>) {
        while let Some(report) = rx.recv().await {
            self.on_exit(report);
            self.exited.notify_waiters();
        }
    }

    fn on_exit(&self, report: ExitReport) {
        let mut inner = self.inner.lock();
        let shutting_down = inner.shutting_down;
        let Some(slot) = inner.slots.get_mut(report.name) else {
            return;
        };
        if slot.generation != report.generation {
            return; // a stale report from a generation already replaced
        }
        slot.running = false;
        slot.shutdown = None;
        slot.addr = None;
        match report.kind {
            ExitKind::Requested => {
                slot.last_exit = Some("stopped".into());
                tracing::info!(worker = report.name, "worker stopped");
            }
            ExitKind::Crashed { reason } => {
                if shutting_down {
                    return;
                }
                if slot.started_at.elapsed() >= self.backoff.reset_after {
                    slot.consecutive_crashes = 0;
                }
                slot.consecutive_crashes += 1;
                slot.restarts += 1;
                crate::metrics::worker_restart(report.name);
                let delay = self.backoff.delay(slot.consecutive_crashes);
                tracing::error!(
                    worker = report.name,
                    restarts = slot.restarts,
                    delay_ms = delay.as_millis() as u64,
                    reason = %reason,
                    "worker crashed; restarting after backoff"
                );
                slot.last_exit = Some(reason);
                slot.restart_pending = true;
                let generation = slot.generation;
                let name = report.name;
                let this = self.clone();
                actix_rt::spawn(async move {
                    tokio::time::sleep(delay).await;
                    this.restart_after_crash(name, generation);
                });
            }
        }
    }

    fn restart_after_crash(&self, name: &'static str, generation: u64) {
        let mut inner = self.inner.lock();
        if inner.shutting_down {
            return;
        }
        if let Some(slot) = inner.slots.get_mut(name) {
            // An admin stop or explicit start in the meantime wins over the pending restart.
            if slot.generation == generation && slot.restart_pending && !slot.admin_stopped {
                self.spawn_slot(slot);
            }
        }
    }

    async fn run_control(self, registry: RegistryHandle) {
        let mut sub = match registry.subscribe("system.*.control").await {
            Ok(sub) => sub,
            Err(e) => {
                tracing::warn!(error = %e, "supervisor: no control subscription (registry unavailable)");
                return;
            }
        };
        while let Some(env) = sub.next().await {
            let mut tokens = env.topic.split('.');
            let worker = match (tokens.next(), tokens.next(), tokens.next(), tokens.next()) {
                (Some("system"), Some(w), Some("control"), None) => w,
                _ => continue,
            };
            let action = env.payload.get("action").and_then(Value::as_str);
            match action {
                Some("stop") => {
                    let by = env
                        .payload
                        .get("requested_by")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown");
                    tracing::info!(worker, requested_by = by, "stop requested on control topic");
                    self.stop(worker);
                }
                other => {
                    tracing::debug!(worker, action = ?other, "control message ignored");
                }
            }
        }
    }

    /// Request a graceful stop; the worker stays stopped until [`start`](Self::start).
    /// Returns false for names that are not supervised here.
    pub fn stop(&self, name: &str) -> bool {
        let mut inner = self.inner.lock();
        let Some(slot) = inner.slots.get_mut(name) else {
            return false;
        };
        slot.admin_stopped = true;
        slot.restart_pending = false;
        slot.stop_requested.store(true, Ordering::SeqCst);
        if let Some(rcpt) = &slot.shutdown {
            rcpt.do_send(Shutdown);
        }
        true
    }

    /// Spawn a stopped worker again (the HTTP `start` route).
    pub async fn start(&self, name: &str) -> Result<StartOutcome, SupervisorError> {
        if BUILTIN.contains(&name) {
            return Ok(StartOutcome::AlreadyRunning);
        }
        if !DISPLAY_ORDER.contains(&name) {
            return Err(SupervisorError::UnknownWorker(name.to_string()));
        }
        let mut inner = self.inner.lock();
        if inner.shutting_down {
            return Err(SupervisorError::Failed("daemon is shutting down".into()));
        }
        let Some(slot) = inner.slots.get_mut(name) else {
            return Err(SupervisorError::NotInstalled(name.to_string()));
        };
        slot.admin_stopped = false;
        if slot.running && !slot.stop_requested.load(Ordering::SeqCst) {
            return Ok(StartOutcome::AlreadyRunning);
        }
        if slot.running {
            // Still draining after a stop: the old generation's exit report will be ignored.
            slot.stop_requested.store(true, Ordering::SeqCst);
        }
        self.spawn_slot(slot);
        Ok(StartOutcome::Started)
    }

    /// One row per known worker, in display order.
    pub fn known_workers(&self) -> Vec<WorkerInfo> {
        let inner = self.inner.lock();
        DISPLAY_ORDER
            .iter()
            .map(|&name| {
                if BUILTIN.contains(&name) {
                    return WorkerInfo {
                        name,
                        installed: true,
                        running: true,
                        restarts: 0,
                        last_exit: None,
                        restart_pending: false,
                        admin_stopped: false,
                    };
                }
                match inner.slots.get(name) {
                    Some(slot) => WorkerInfo {
                        name,
                        installed: true,
                        running: slot.running,
                        restarts: slot.restarts,
                        last_exit: slot.last_exit.clone(),
                        restart_pending: slot.restart_pending,
                        admin_stopped: slot.admin_stopped,
                    },
                    None => WorkerInfo {
                        name,
                        installed: false,
                        running: false,
                        restarts: 0,
                        last_exit: None,
                        restart_pending: false,
                        admin_stopped: false,
                    },
                }
            })
            .collect()
    }

    /// Address of the live generation of worker `name`, if it runs and is an `A`.
    pub fn addr<A: Actor>(&self, name: &str) -> Option<Addr<A>> {
        let inner = self.inner.lock();
        let slot = inner.slots.get(name)?;
        if !slot.running {
            return None;
        }
        slot.addr.as_ref()?.downcast_ref::<Addr<A>>().cloned()
    }

    /// Row for one worker (None when not supervised here).
    pub fn worker(&self, name: &str) -> Option<WorkerInfo> {
        self.known_workers()
            .into_iter()
            .find(|w| w.name == name && w.installed)
    }

    /// Ask every worker to stop and wait (up to `grace`) for them to drain; then stop their
    /// arbiters. No restart happens after this.
    pub async fn shutdown(&self, grace: Duration) {
        {
            let mut inner = self.inner.lock();
            inner.shutting_down = true;
            for slot in inner.slots.values_mut() {
                slot.restart_pending = false;
                slot.stop_requested.store(true, Ordering::SeqCst);
                if let Some(rcpt) = &slot.shutdown {
                    rcpt.do_send(Shutdown);
                }
            }
        }
        let deadline = Instant::now() + grace;
        loop {
            let notified = self.exited.notified();
            let pending: Vec<&'static str> = {
                let inner = self.inner.lock();
                inner
                    .slots
                    .values()
                    .filter(|s| s.running)
                    .map(|s| s.spec.name)
                    .collect()
            };
            if pending.is_empty() {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(?pending, "shutdown grace elapsed; abandoning workers");
                break;
            }
            let _ =
                tokio::time::timeout((deadline - now).min(Duration::from_millis(200)), notified)
                    .await;
        }
        let mut inner = self.inner.lock();
        for slot in inner.slots.values_mut() {
            if let Some(arbiter) = slot.arbiter.take() {
                arbiter.stop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff::default();
        let secs: Vec<u64> = (1..=7).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(b.delay(1000).as_secs(), 30);
    }

    #[test]
    fn display_order_has_unique_names() {
        let mut names = DISPLAY_ORDER.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DISPLAY_ORDER.len());
    }
}

//! Heartbeats (spec/platform.md §2.2): every actor beats `system.<name>.health` on start and then
//! every 30 s; the heartbeat actor records the beats in the [`StatusBoard`] that
//! `/api/v1/workers` reads (OK / STALE / UNKNOWN computed at request time).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use parking_lot::RwLock;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::actors::registry::{RegistryHandle, Subscription};
use crate::actors::supervisor::{ExitGuard, Shutdown, DISPLAY_ORDER};
use crate::actors::topics::{build, Envelope};

/// Seconds since the Unix epoch as a float (the envelope's `ts` convention).
pub fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// What one actor needs to beat.
#[derive(Clone)]
pub struct Beat {
    pub registry: RegistryHandle,
    pub name: &'static str,
    pub interval: Duration,
    /// Also recorded here directly: the heartbeat actor subscribes asynchronously, so a first
    /// beat sent before it has subscribed would otherwise leave the worker `unknown` for a
    /// whole interval.
    pub board: Option<StatusBoard>,
}

impl Beat {
    pub fn new(registry: RegistryHandle, name: &'static str, interval: Duration) -> Beat {
        Beat {
            registry,
            name,
            interval,
            board: None,
        }
    }

    /// Record every beat on `board` as well as publishing it.
    pub fn recording_to(mut self, board: StatusBoard) -> Beat {
        self.board = Some(board);
        self
    }

    /// Publish one beat: `{worker, ts}` merged with `extra` (which cannot override either key).
    pub fn publish(&self, extra: Map<String, Value>) {
        let mut payload = extra;
        payload.insert("worker".into(), Value::from(self.name));
        payload.insert("ts".into(), Value::from(epoch_now()));
        match build::system_health(self.name) {
            Ok(topic) => {
                let payload = Value::Object(payload);
                if let Some(board) = &self.board {
                    board.record(&topic, &payload);
                }
                self.registry.publish_raw(&topic, "health", payload)
            }
            Err(e) => tracing::warn!(worker = self.name, error = %e, "bad heartbeat topic"),
        }
    }
}

/// An actor that beats. `health_extra` feeds the `extra` map shown in the Workers panel; a
/// panicking `health_extra` still yields the base beat.
pub trait Beating: Actor<Context = Context<Self>> {
    fn beat(&self) -> &Beat;
    fn health_extra(&self) -> Map<String, Value> {
        Map::new()
    }
}

fn beat_now<A: Beating>(act: &A) {
    let extra =
        std::panic::catch_unwind(AssertUnwindSafe(|| act.health_extra())).unwrap_or_else(|_| {
            tracing::warn!(
                worker = act.beat().name,
                "health_extra panicked; base beat sent"
            );
            Map::new()
        });
    act.beat().publish(extra);
}

/// Beat immediately and then every `beat.interval`. Call from `Actor::started`.
pub fn start_beating<A: Beating>(ctx: &mut Context<A>, act: &A) {
    beat_now(act);
    let interval = act.beat().interval;
    ctx.run_interval(interval, |act, _ctx| beat_now(act));
}

/// One row of the Workers panel.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkerStatus {
    pub name: String,
    /// `ok`, `stale` or `unknown`.
    pub status: &'static str,
    pub last_heartbeat_ts: Option<f64>,
    pub seconds_since: Option<f64>,
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone)]
struct Seen {
    ts: f64,
    payload: Map<String, Value>,
}

/// Last beat per known worker. Cheap to clone; shared by the heartbeat actor and HTTP.
#[derive(Clone, Debug)]
pub struct StatusBoard {
    seen: Arc<RwLock<HashMap<String, Seen>>>,
    stale_after: f64,
}

impl StatusBoard {
    pub fn new(stale_after: Duration) -> StatusBoard {
        StatusBoard {
            seen: Arc::new(RwLock::new(HashMap::new())),
            stale_after: stale_after.as_secs_f64(),
        }
    }

    /// Record a beat. Only topics of exactly `system.<known>.health` count, so no publisher can
    /// inject rows; a missing or non-numeric `ts` falls back to now.
    pub fn record(&self, topic: &str, payload: &Value) {
        let mut it = topic.split('.');
        let name = match (it.next(), it.next(), it.next(), it.next()) {
            (Some("system"), Some(name), Some("health"), None) => name,
            _ => return,
        };
        if !DISPLAY_ORDER.contains(&name) {
            return;
        }
        let payload = payload.as_object().cloned().unwrap_or_default();
        let ts = payload
            .get("ts")
            .and_then(Value::as_f64)
            .unwrap_or_else(epoch_now);
        self.seen
            .write()
            .insert(name.to_string(), Seen { ts, payload });
    }

    pub fn snapshot(&self) -> Vec<WorkerStatus> {
        self.snapshot_at(epoch_now())
    }

    /// Rows for every known worker in display order, tiers computed against `now`.
    pub fn snapshot_at(&self, now: f64) -> Vec<WorkerStatus> {
        let seen = self.seen.read();
        DISPLAY_ORDER
            .iter()
            .map(|&name| match seen.get(name) {
                None => WorkerStatus {
                    name: name.to_string(),
                    status: "unknown",
                    last_heartbeat_ts: None,
                    seconds_since: None,
                    extra: Map::new(),
                },
                Some(s) => {
                    let since = (now - s.ts).max(0.0);
                    let mut extra = s.payload.clone();
                    extra.remove("worker");
                    extra.remove("ts");
                    WorkerStatus {
                        name: name.to_string(),
                        status: if now - s.ts < self.stale_after {
                            "ok"
                        } else {
                            "stale"
                        },
                        last_heartbeat_ts: Some(s.ts),
                        seconds_since: Some(since),
                        extra,
                    }
                }
            })
            .collect()
    }

    /// The stored `extra` of one worker, if it ever beat.
    pub fn extra_of(&self, name: &str) -> Option<Map<String, Value>> {
        self.snapshot()
            .into_iter()
            .find(|w| w.name == name && w.status != "unknown")
            .map(|w| w.extra)
    }
}

/// The `heartbeat` worker: subscribes to `system.*.health` and fills the [`StatusBoard`].
pub struct HeartbeatActor {
    board: StatusBoard,
    beat: Beat,
    _exit: ExitGuard,
    recorded: u64,
}

impl HeartbeatActor {
    pub fn new(board: StatusBoard, beat: Beat, exit: ExitGuard) -> HeartbeatActor {
        HeartbeatActor {
            board,
            beat,
            _exit: exit,
            recorded: 0,
        }
    }
}

impl Beating for HeartbeatActor {
    fn beat(&self) -> &Beat {
        &self.beat
    }
    fn health_extra(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("beats_recorded".into(), Value::from(self.recorded));
        m
    }
}

impl Actor for HeartbeatActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let registry = self.beat.registry.clone();
        // Subscribe first (acknowledged) so our own first beat is recorded too.
        ctx.wait(
            async move { registry.subscribe("system.*.health").await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    match res {
                        Ok(sub) => {
                            Self::add_stream(sub, ctx);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "heartbeat: registry unavailable; board stays empty")
                        }
                    }
                    start_beating(ctx, act);
                }),
        );
        // systemd's watchdog (`WatchdogSec=`): fed from this worker's thread, so a wedged
        // actor system stops feeding it and systemd restarts the service.
        if let Some(period) = crate::systemd::watchdog_period() {
            crate::systemd::watchdog();
            ctx.run_interval(period, |_act, _ctx| crate::systemd::watchdog());
        }
    }
}

impl StreamHandler<Arc<Envelope>> for HeartbeatActor {
    fn handle(&mut self, env: Arc<Envelope>, _ctx: &mut Context<Self>) {
        self.recorded += 1;
        self.board.record(&env.topic, &env.payload);
    }

    // The registry closing our stream (shutdown) must not stop the actor by itself.
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<Shutdown> for HeartbeatActor {
    type Result = ();
    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Keeps the type in scope for callers that hold a subscription outside an actor.
pub type HealthSubscription = Subscription;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tiers_unknown_ok_stale() {
        let board = StatusBoard::new(Duration::from_secs(90));
        let now = 1_714_000_000.0;
        board.record(
            "system.ingester.health",
            &json!({"worker":"ingester","ts": now - 10.0, "lines": 5}),
        );
        board.record("system.clusterer.health", &json!({"ts": now - 91.0}));
        let rows = board.snapshot_at(now);
        assert_eq!(rows.len(), DISPLAY_ORDER.len());
        let get = |n: &str| rows.iter().find(|r| r.name == n).cloned().unwrap();
        let ing = get("ingester");
        assert_eq!(ing.status, "ok");
        assert_eq!(ing.seconds_since, Some(10.0));
        assert_eq!(ing.extra, json!({"lines": 5}).as_object().cloned().unwrap());
        assert_eq!(get("clusterer").status, "stale");
        let unk = get("planner");
        assert_eq!(unk.status, "unknown");
        assert!(unk.last_heartbeat_ts.is_none() && unk.seconds_since.is_none());
        assert!(unk.extra.is_empty());
    }

    #[test]
    fn unknown_names_and_odd_topics_are_ignored() {
        let board = StatusBoard::new(Duration::from_secs(90));
        board.record("system.evil.health", &json!({"ts": 1.0}));
        board.record("system.ingester.health.extra", &json!({"ts": 1.0}));
        board.record("system.ingester", &json!({"ts": 1.0}));
        assert!(board.snapshot().iter().all(|r| r.status == "unknown"));
    }

    #[test]
    fn missing_ts_falls_back_to_now_and_future_beats_clamp() {
        let board = StatusBoard::new(Duration::from_secs(90));
        board.record("system.bus.health", &json!({"pid": 1}));
        let row = board
            .snapshot()
            .into_iter()
            .find(|r| r.name == "bus")
            .unwrap();
        assert_eq!(row.status, "ok");
        board.record("system.api.health", &json!({"ts": epoch_now() + 100.0}));
        let row = board
            .snapshot()
            .into_iter()
            .find(|r| r.name == "api")
            .unwrap();
        assert_eq!(row.seconds_since, Some(0.0));
    }
}

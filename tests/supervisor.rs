//! Supervision: a panicking actor is restarted with its count rising while a sibling keeps
//! beating; an admin stop on `system.<name>.control` sticks until start; shutdown drains.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::StreamExt;
use serde_json::json;

use decnetd::actors::heartbeat::{start_beating, Beat, Beating};
use decnetd::actors::registry::{RegistryConfig, RegistryHandle};
use decnetd::actors::supervisor::{
    Backoff, ExitGuard, Shutdown, StartOutcome, SupervisorHandle, WorkerSpec,
};

/// Test actor: beats, and panics on `Boom`.
struct Crashy {
    beat: Beat,
    _exit: ExitGuard,
    started: Arc<AtomicUsize>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Boom;

impl Beating for Crashy {
    fn beat(&self) -> &Beat {
        &self.beat
    }
}

impl Actor for Crashy {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.started.fetch_add(1, Ordering::SeqCst);
        start_beating(ctx, self);
    }
}

impl Handler<Boom> for Crashy {
    type Result = ();
    fn handle(&mut self, _: Boom, _: &mut Context<Self>) {
        panic!("boom requested by the test");
    }
}

impl Handler<Shutdown> for Crashy {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

fn spec(name: &'static str, registry: &RegistryHandle, started: Arc<AtomicUsize>) -> WorkerSpec {
    let registry = registry.clone();
    WorkerSpec::new(name, move |exit| Crashy {
        beat: Beat::new(registry.clone(), name, Duration::from_millis(50)),
        _exit: exit,
        started: Arc::clone(&started),
    })
}

fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(400),
        reset_after: Duration::from_secs(60),
    }
}

async fn wait_until(mut f: impl FnMut() -> bool, what: &str) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[actix_rt::test]
async fn panicking_actor_restarts_and_siblings_keep_beating() {
    let registry = RegistryHandle::start(RegistryConfig::default());
    let mut beats = registry.subscribe("system.*.health").await.unwrap();
    let crashy_starts = Arc::new(AtomicUsize::new(0));
    let sibling_starts = Arc::new(AtomicUsize::new(0));
    let sup = SupervisorHandle::launch(
        vec![
            spec("clusterer", &registry, crashy_starts.clone()),
            spec("enricher", &registry, sibling_starts.clone()),
        ],
        registry.clone(),
        fast_backoff(),
    );
    wait_until(|| crashy_starts.load(Ordering::SeqCst) == 1, "first start").await;

    // Crash it three times through a real panic in a message handler.
    for round in 1..=3u64 {
        let addr = sup
            .addr::<Crashy>("clusterer")
            .expect("running clusterer has an address");
        addr.do_send(Boom);
        wait_until(
            || sup.worker("clusterer").map(|w| w.restarts) == Some(round),
            "restart counted",
        )
        .await;
        wait_until(
            || crashy_starts.load(Ordering::SeqCst) == round as usize + 1,
            "restarted",
        )
        .await;
        let info = sup.worker("clusterer").unwrap();
        assert!(info
            .last_exit
            .unwrap()
            .contains("boom requested by the test"));
    }
    // The sibling was never restarted and is still beating.
    assert_eq!(sibling_starts.load(Ordering::SeqCst), 1);
    assert_eq!(sup.worker("enricher").unwrap().restarts, 0);
    let mut sibling_beats = 0;
    while sibling_beats < 3 {
        let env = tokio::time::timeout(Duration::from_secs(5), beats.next())
            .await
            .expect("beats keep coming")
            .expect("stream open");
        if env.topic == "system.enricher.health" {
            sibling_beats += 1;
        }
    }
    sup.shutdown(Duration::from_secs(2)).await;
    registry.shutdown().await;
}

#[actix_rt::test]
async fn admin_stop_sticks_until_start() {
    let registry = RegistryHandle::start(RegistryConfig::default());
    let starts = Arc::new(AtomicUsize::new(0));
    let sup = SupervisorHandle::launch(
        vec![spec("planner", &registry, starts.clone())],
        registry.clone(),
        fast_backoff(),
    );
    wait_until(
        || sup.worker("planner").is_some_and(|w| w.running),
        "running",
    )
    .await;
    // Give the supervisor's control subscription time to be acknowledged.
    tokio::time::sleep(Duration::from_millis(200)).await;
    registry.publish_raw(
        "system.planner.control",
        "control",
        json!({"action": "stop", "requested_by": "admin", "ts": 1.0}),
    );
    wait_until(
        || sup.worker("planner").is_some_and(|w| !w.running),
        "stopped",
    )
    .await;
    // Well past the backoff: still stopped, never restarted, not counted as a crash.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let info = sup.worker("planner").unwrap();
    assert!(!info.running);
    assert!(info.admin_stopped);
    assert_eq!(info.restarts, 0);
    assert_eq!(starts.load(Ordering::SeqCst), 1);
    // Unknown or missing actions are ignored.
    registry.publish_raw(
        "system.planner.control",
        "control",
        json!({"action": "dance"}),
    );
    registry.publish_raw("system.planner.control", "control", json!({}));
    assert_eq!(sup.start("planner").await.unwrap(), StartOutcome::Started);
    wait_until(|| starts.load(Ordering::SeqCst) == 2, "restarted by start").await;
    assert_eq!(
        sup.start("planner").await.unwrap(),
        StartOutcome::AlreadyRunning
    );
    assert!(sup.start("nonsense").await.is_err());
    sup.shutdown(Duration::from_secs(2)).await;
    assert!(
        !sup.worker("planner").unwrap().running,
        "shutdown drained it"
    );
    registry.shutdown().await;
}

/// Beats carry `{worker, ts}` merged with `extra`; a panicking `extra` still yields the base
/// beat, and the heartbeat actor turns beats into `ok` rows on the status board.
struct BadExtra {
    beat: Beat,
    _exit: ExitGuard,
}

impl Beating for BadExtra {
    fn beat(&self) -> &Beat {
        &self.beat
    }
    fn health_extra(&self) -> serde_json::Map<String, serde_json::Value> {
        panic!("extra is broken");
    }
}

impl Actor for BadExtra {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        start_beating(ctx, self);
    }
}

impl Handler<Shutdown> for BadExtra {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[actix_rt::test]
async fn beats_survive_failing_extra_and_reach_the_status_board() {
    use decnetd::actors::heartbeat::{HeartbeatActor, StatusBoard};
    let registry = RegistryHandle::start(RegistryConfig::default());
    let mut beats = registry.subscribe("system.ingester.health").await.unwrap();
    let board = StatusBoard::new(Duration::from_secs(90));
    let (r1, r2, b) = (registry.clone(), registry.clone(), board.clone());
    let sup = SupervisorHandle::launch(
        vec![
            WorkerSpec::new("ingester", move |exit| BadExtra {
                beat: Beat::new(r1.clone(), "ingester", Duration::from_millis(50)),
                _exit: exit,
            }),
            WorkerSpec::new("heartbeat", move |exit| {
                HeartbeatActor::new(
                    b.clone(),
                    Beat::new(r2.clone(), "heartbeat", Duration::from_millis(50)),
                    exit,
                )
            }),
        ],
        registry.clone(),
        fast_backoff(),
    );
    let env = tokio::time::timeout(Duration::from_secs(5), beats.next())
        .await
        .expect("a beat despite the panicking extra")
        .expect("open stream");
    assert_eq!(env.kind, "health");
    assert_eq!(env.payload["worker"], "ingester");
    assert!(env.payload["ts"].is_f64(), "ts is an epoch float");
    assert_eq!(sup.worker("ingester").unwrap().restarts, 0, "no crash");
    wait_until(
        || {
            board
                .snapshot()
                .iter()
                .any(|w| w.name == "ingester" && w.status == "ok")
        },
        "board shows ingester ok",
    )
    .await;
    let rows = board.snapshot();
    assert_eq!(
        rows.iter().find(|w| w.name == "planner").unwrap().status,
        "unknown"
    );
    sup.shutdown(Duration::from_secs(2)).await;
    registry.shutdown().await;
}

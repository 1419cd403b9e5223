//! Event registry behaviour (spec §1.5, §9 "Registry" items 3–5), against the real actor.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use decnetd::actors::registry::{
    RegistryConfig, RegistryError, RegistryHandle, Subscription, MAX_EVENT_BYTES,
};
use decnetd::actors::topics::{AttackerObserved, Envelope, Event, IdentityFormed, WorkerHealth};
use futures::StreamExt;
use serde_json::{json, Map};

/// Safety net so a broken registry fails the test instead of hanging it (not a timing assertion).
const HANG: Duration = Duration::from_secs(30);

fn quiet() -> RegistryConfig {
    RegistryConfig {
        bus_health_interval: Duration::ZERO,
        ..RegistryConfig::default()
    }
}

async fn next(sub: &mut Subscription) -> Option<Arc<Envelope>> {
    tokio::time::timeout(HANG, sub.next())
        .await
        .expect("subscription stalled")
}

async fn recv(sub: &mut Subscription) -> Arc<Envelope> {
    next(sub).await.expect("stream ended unexpectedly")
}

fn observed(ip: &str) -> Event {
    Event::AttackerObserved(AttackerObserved {
        attacker_ip: ip.into(),
        decky: "d1".into(),
        service: "ssh".into(),
        event_type: "login_attempt".into(),
        first_seen: "2026-01-01T00:00:00+00:00".into(),
        attacker_uuid: None,
    })
}

/// `n` observed events from `192.0.2.x`, the `bad`-th (1-based) oversize.
fn numbered_observed(n: usize, bad: usize) -> Vec<Event> {
    let huge = "x".repeat(MAX_EVENT_BYTES + 1);
    (1..=n)
        .map(|i| {
            if i == bad {
                observed(&huge)
            } else {
                observed(&format!("192.0.2.{}", i % 250))
            }
        })
        .collect()
}

/// What a subscriber sees of `192.0.2.0`, then [`numbered_observed`]`(n, bad)`, then
/// `198.51.100.1`: the oversize one is missing.
fn bracketed_ips(n: usize, bad: usize) -> Vec<String> {
    let mut want = vec!["192.0.2.0".to_owned()];
    want.extend(
        (1..=n)
            .filter(|&i| i != bad)
            .map(|i| format!("192.0.2.{}", i % 250)),
    );
    want.push("198.51.100.1".to_owned());
    want
}

/// The `attacker_ip` of the next `n` events.
async fn recv_ips(sub: &mut Subscription, n: usize) -> Vec<String> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        got.push(
            recv(sub).await.payload["attacker_ip"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    got
}

#[actix_rt::test]
async fn exact_and_wildcard_delivery_and_mismatch() {
    let reg = RegistryHandle::start(quiet());
    let mut exact = reg.subscribe("attacker.observed").await.unwrap();
    let mut wild = reg.subscribe("attacker.>").await.unwrap();
    let mut star = reg.subscribe("*.observed").await.unwrap();
    let mut other = reg.subscribe("identity.>").await.unwrap();

    reg.publish(observed("10.0.0.1"));
    reg.publish(Event::IdentityFormed(IdentityFormed {
        identity_uuid: "i-1".into(),
        observation_uuids: vec!["o-1".into()],
    }));

    let a = recv(&mut exact).await;
    let b = recv(&mut wild).await;
    let c = recv(&mut star).await;
    assert_eq!(a.topic, "attacker.observed");
    assert_eq!(a.kind, "observed");
    assert_eq!(a.payload["attacker_ip"], "10.0.0.1");
    assert_eq!(
        a.id, b.id,
        "one publish, same envelope for every subscriber"
    );
    assert_eq!(a.id, c.id);

    // The mismatching subscription's first event is the later identity event: the attacker
    // event (published first, same publisher, FIFO) was never delivered to it.
    let first_other = recv(&mut other).await;
    assert_eq!(first_other.topic, "identity.formed");
    assert_eq!(first_other.kind, "formed");
    reg.shutdown().await;
}

#[actix_rt::test]
async fn envelope_is_stamped_by_the_registry() {
    let reg = RegistryHandle::start(quiet());
    let mut sub = reg.subscribe(">").await.unwrap();
    reg.publish_raw("custom.thing", "", json!({"k": 1}));
    reg.publish_raw("custom.thing", "", json!({"k": 1}));
    let a = recv(&mut sub).await;
    let b = recv(&mut sub).await;
    assert_eq!(a.v, 1);
    assert_eq!(a.id.len(), 32);
    assert!(a
        .id
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    assert_ne!(a.id, b.id);
    assert!(a.ts > 1.6e9 && b.ts >= a.ts);
    assert_eq!(a.kind, "");
    let wire = serde_json::to_value(&*a).unwrap();
    assert_eq!(
        wire.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["id", "payload", "topic", "ts", "type", "v"]
    );
    assert_eq!(wire["type"], "");
    reg.shutdown().await;
}

#[actix_rt::test]
async fn two_subscribers_each_get_one_copy() {
    let reg = RegistryHandle::start(quiet());
    let mut s1 = reg.subscribe("credential.>").await.unwrap();
    let mut s2 = reg.subscribe("credential.captured").await.unwrap();
    reg.publish_raw("credential.captured", "captured", json!({"n": 1}));
    reg.publish_raw("credential.captured", "captured", json!({"n": 2}));
    for sub in [&mut s1, &mut s2] {
        assert_eq!(recv(sub).await.payload["n"], 1);
        assert_eq!(recv(sub).await.payload["n"], 2);
    }
    assert_eq!(reg.stats().delivered, 4);
    assert_eq!(reg.stats().published, 2);
    reg.shutdown().await;
}

#[actix_rt::test]
async fn per_publisher_fifo() {
    let reg = RegistryHandle::start(quiet());
    let mut sub = reg.subscribe("seq.*").await.unwrap();
    for i in 0..1000 {
        reg.publish_raw("seq.n", "", json!({ "i": i }));
    }
    for i in 0..1000 {
        assert_eq!(recv(&mut sub).await.payload["i"], i);
    }
    reg.shutdown().await;
}

/// `publish_all` delivers its events in order, after what was published before it and before
/// what is published after it; an oversize event among them is rejected and counted, the
/// others still land.
#[actix_rt::test]
async fn publish_all_keeps_order_and_rejects_per_event() {
    let reg = RegistryHandle::start(quiet());
    let mut sub = reg.subscribe("attacker.>").await.unwrap();
    let before = reg.stats();
    reg.publish(observed("192.0.2.0"));
    reg.publish_all(numbered_observed(500, 250));
    reg.publish(observed("198.51.100.1"));
    reg.publish_all(std::iter::empty());
    assert_eq!(recv_ips(&mut sub, 501).await, bracketed_ips(500, 250));
    let after = reg.stats();
    assert_eq!(after.rejected, before.rejected + 1);
    assert_eq!(after.published, before.published + 501);
    reg.shutdown().await;
}

/// `publish_all_with` builds its events on the registry's thread, not the caller's, and drops
/// what the builder captured there; order with the caller's other publishes is kept; a bad
/// event among them is rejected alone; a builder that panics loses its own events and the
/// registry goes on.
#[actix_rt::test]
async fn publish_all_with_builds_on_the_registry_thread() {
    let reg = RegistryHandle::start(quiet());
    let mut sub = reg.subscribe("attacker.>").await.unwrap();
    let before = reg.stats();
    let caller = std::thread::current().id();
    let (built_on_tx, built_on_rx) = std::sync::mpsc::channel();
    // Dropped where the builder is dropped: it reports that thread.
    struct ReportDrop(std::sync::mpsc::Sender<std::thread::ThreadId>);
    impl Drop for ReportDrop {
        fn drop(&mut self) {
            let _ = self.0.send(std::thread::current().id());
        }
    }
    let (dropped_on_tx, dropped_on_rx) = std::sync::mpsc::channel();
    let guard = ReportDrop(dropped_on_tx);
    reg.publish(observed("192.0.2.0"));
    reg.publish_all_with(move || {
        let _keep = &guard;
        let _ = built_on_tx.send(std::thread::current().id());
        numbered_observed(300, 150)
    });
    reg.publish_all_with(|| panic!("a builder bug"));
    reg.publish(observed("198.51.100.1"));
    assert_eq!(recv_ips(&mut sub, 301).await, bracketed_ips(300, 150));
    let built_on = built_on_rx.recv_timeout(HANG).unwrap();
    assert_ne!(built_on, caller, "events were built on the caller's thread");
    assert_eq!(dropped_on_rx.recv_timeout(HANG).unwrap(), built_on);
    // Counted once the registry ran the builders (the last publish was routed after them):
    // the oversize event and the panicking builder are rejected, the rest published.
    let after = reg.stats();
    assert_eq!(after.rejected, before.rejected + 2);
    assert_eq!(after.published, before.published + 301);
    reg.shutdown().await;
}

/// An actix actor that subscribes via `ctx.add_stream` and publishes on its own topic.
struct Echo {
    reg: RegistryHandle,
    seen: tokio::sync::mpsc::UnboundedSender<Arc<Envelope>>,
}

impl Actor for Echo {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        self.reg.publish(Event::WorkerHealth(WorkerHealth {
            worker: "echo".into(),
            ts: 1.5,
            extra: Map::new(),
        }));
    }
}

impl StreamHandler<Arc<Envelope>> for Echo {
    fn handle(&mut self, env: Arc<Envelope>, _ctx: &mut Self::Context) {
        let _ = self.seen.send(env);
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[actix_rt::test]
async fn actor_subscriber_receives_its_own_publication() {
    let reg = RegistryHandle::start(quiet());
    let sub = reg.subscribe("system.*.health").await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let r = reg.clone();
    let addr = Echo::create(move |ctx| {
        ctx.add_stream(sub);
        Echo { reg: r, seen: tx }
    });
    let env = tokio::time::timeout(HANG, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(env.topic, "system.echo.health");
    assert_eq!(env.kind, "health");
    assert_eq!(env.payload, json!({"worker": "echo", "ts": 1.5}));

    // Shutdown ends the actor's stream, and `finished` stops it.
    reg.shutdown().await;
    for _ in 0..1000 {
        if !addr.connected() {
            break;
        }
        tokio::task::yield_now().await;
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!addr.connected(), "actor should stop once its stream ends");
}

#[actix_rt::test]
async fn full_buffer_keeps_only_the_newest() {
    let reg = RegistryHandle::start(quiet());
    let mut slow = reg.subscribe_with_capacity("buf.test", 2).await.unwrap();
    let mut probe = reg.subscribe("buf.test").await.unwrap();
    for i in 0..5 {
        reg.publish_raw("buf.test", "", json!({ "i": i }));
    }
    // Once the probe has all five, the registry has routed all five to `slow` as well.
    for i in 0..5 {
        assert_eq!(recv(&mut probe).await.payload["i"], i);
    }
    assert_eq!(slow.queued(), 2);
    assert_eq!(slow.dropped(), 3);
    assert_eq!(recv(&mut slow).await.payload["i"], 3);
    assert_eq!(recv(&mut slow).await.payload["i"], 4);
    assert_eq!(reg.stats().dropped_overflow, 3);

    // Same with the registry-wide default capacity.
    let reg2 = RegistryHandle::start(RegistryConfig {
        capacity: 2,
        ..quiet()
    });
    let mut slow2 = reg2.subscribe(">").await.unwrap();
    let mut probe2 = reg2.subscribe_with_capacity(">", 16).await.unwrap();
    for i in 0..5 {
        reg2.publish_raw("buf.test", "", json!({ "i": i }));
    }
    for _ in 0..5 {
        recv(&mut probe2).await;
    }
    let rest: Vec<_> = [recv(&mut slow2).await, recv(&mut slow2).await]
        .iter()
        .map(|e| e.payload["i"].as_i64().unwrap())
        .collect();
    assert_eq!(rest, vec![3, 4]);
    assert_eq!(slow2.dropped(), 3);
    reg.shutdown().await;
    reg2.shutdown().await;
}

#[actix_rt::test]
async fn closing_a_subscription_ends_a_blocked_consumer() {
    let reg = RegistryHandle::start(quiet());
    let mut sub = reg.subscribe("nothing.here").await.unwrap();
    let closer = sub.closer();
    let consumer = tokio::spawn(async move { sub.next().await });
    tokio::task::yield_now().await;
    closer.close();
    let got = tokio::time::timeout(HANG, consumer).await.unwrap().unwrap();
    assert!(got.is_none());
    assert_eq!(reg.stats().subscriptions, 0);
    reg.shutdown().await;
}

#[actix_rt::test]
async fn dropping_releases_immediately_and_discards_buffer() {
    let reg = RegistryHandle::start(quiet());
    let a = reg.subscribe("x.y").await.unwrap();
    let mut b = reg.subscribe("x.y").await.unwrap();
    assert_eq!(reg.stats().subscriptions, 2);
    reg.publish_raw("x.y", "", json!({}));
    recv(&mut b).await;
    assert_eq!(a.queued(), 1);
    drop(a);
    assert_eq!(reg.stats().subscriptions, 1);

    // Closing in place also discards what was buffered.
    reg.publish_raw("x.y", "", json!({"n": 2}));
    reg.publish_raw("x.y", "", json!({"n": 3}));
    assert_eq!(recv(&mut b).await.payload["n"], 2);
    b.close();
    assert!(next(&mut b).await.is_none());
    assert_eq!(reg.stats().subscriptions, 0);
    reg.shutdown().await;
}

#[actix_rt::test]
async fn shutdown_ends_all_streams_and_later_calls_are_safe() {
    let reg = RegistryHandle::start(quiet());
    assert!(reg.is_enabled());
    let mut consumers = Vec::new();
    for p in ["a.>", "b.*", ">"] {
        let mut sub = reg.subscribe(p).await.unwrap();
        consumers.push(tokio::spawn(async move {
            let mut n = 0;
            while sub.next().await.is_some() {
                n += 1;
            }
            n
        }));
    }
    reg.publish_raw("a.one", "", json!({}));
    reg.shutdown().await;
    for c in consumers {
        let n = tokio::time::timeout(HANG, c).await.unwrap().unwrap();
        assert!(n <= 1);
    }
    assert!(!reg.is_enabled());
    assert_eq!(reg.stats().subscriptions, 0);

    // After shutdown: publishes are dropped (counted), subscribes fail, shutdown is idempotent.
    let before = reg.stats().rejected;
    reg.publish(observed("10.0.0.2"));
    reg.publish_raw("a.two", "", json!({}));
    assert_eq!(reg.stats().rejected, before + 2);
    assert!(matches!(
        reg.subscribe(">").await,
        Err(RegistryError::Closed)
    ));
    reg.shutdown().await;
}

#[actix_rt::test]
async fn disabled_registry_drops_and_yields_nothing() {
    for reg in [
        RegistryHandle::disabled(),
        RegistryHandle::start(RegistryConfig {
            enabled: false,
            ..RegistryConfig::default()
        }),
    ] {
        assert!(!reg.is_enabled());
        reg.publish(observed("10.0.0.3"));
        reg.publish_raw("x.y", "", json!({}));
        assert!(matches!(
            reg.subscribe(">").await,
            Err(RegistryError::Disabled)
        ));
        assert_eq!(reg.stats().published, 0);
        assert_eq!(reg.stats().delivered, 0);
        reg.shutdown().await;
    }
}

#[actix_rt::test]
async fn bad_patterns_and_bad_publishes_are_refused() {
    let reg = RegistryHandle::start(quiet());
    assert!(matches!(
        reg.subscribe("a.>.b").await,
        Err(RegistryError::BadPattern(_))
    ));
    assert!(matches!(
        reg.subscribe("").await,
        Err(RegistryError::BadPattern(_))
    ));
    let mut all = reg.subscribe(">").await.unwrap();
    reg.publish_raw("a.*.b", "", json!({}));
    reg.publish_raw("a.>", "", json!({}));
    reg.publish_raw("a..b", "", json!({}));
    reg.publish_raw("", "", json!({}));
    reg.publish_raw("with space.x", "", json!({}));
    reg.publish_raw("ok.topic", "", json!([1, 2]));
    reg.publish_raw(
        "ok.topic",
        "",
        json!({"blob": "x".repeat(MAX_EVENT_BYTES + 1)}),
    );
    reg.publish(Event::AttackerFingerprinted(
        decnetd::actors::topics::AttackerFingerprinted {
            probe: "jarm".into(),
            attacker_ip: "1.2.3.4".into(),
            fields: Map::new(),
        },
    ));
    reg.publish(Event::CanaryPlaced(decnetd::actors::topics::CanaryPlaced {
        token_id: "bad.token".into(),
        decky_name: "d".into(),
        placement_path: "/x".into(),
        instrumenter: "i".into(),
        generator: "g".into(),
    }));
    reg.publish_raw("ok.null", "", serde_json::Value::Null);

    let first = recv(&mut all).await;
    assert_eq!(first.topic, "attacker.fingerprinted");
    assert_eq!(first.kind, "jarm");
    let second = recv(&mut all).await;
    assert_eq!(second.topic, "ok.null");
    assert_eq!(second.payload, json!({}));
    assert_eq!(reg.stats().rejected, 8);
    assert_eq!(reg.stats().published, 2);
    reg.shutdown().await;
}

#[actix_rt::test]
async fn stuck_subscriber_never_slows_the_publisher() {
    const N: usize = 100_000;
    let reg = RegistryHandle::start(quiet());
    let stuck = reg.subscribe("load.>").await.unwrap(); // never polled
    let mut fast = reg.subscribe("load.>").await.unwrap();
    let consumer = tokio::spawn(async move {
        let mut got = 0usize;
        while let Some(env) = fast.next().await {
            got += 1;
            if env.topic == "load.end" {
                return (got, fast.dropped());
            }
        }
        (got, fast.dropped())
    });
    for i in 0..N {
        reg.publish_raw("load.item", "", json!({ "i": i }));
    }
    reg.publish_raw("load.end", "", json!({}));
    // Reaching this line is the point: the publisher was never blocked by `stuck`.

    let (got, fast_dropped) = tokio::time::timeout(Duration::from_secs(300), consumer)
        .await
        .unwrap()
        .unwrap();
    assert!(got >= 1);
    assert_eq!(got as u64 + fast_dropped, N as u64 + 1);
    // Everything was routed before `load.end`: the stuck buffer holds exactly the newest 1024.
    assert_eq!(stuck.queued(), 1024);
    assert_eq!(stuck.dropped(), (N + 1 - 1024) as u64);
    let stats = reg.stats();
    assert_eq!(stats.published, N as u64 + 1);
    assert_eq!(stats.delivered, 2 * (N as u64 + 1));
    reg.shutdown().await;
}

#[actix_rt::test]
async fn registry_publishes_bus_health() {
    let reg = RegistryHandle::start(RegistryConfig {
        bus_health_interval: Duration::from_millis(20),
        ..RegistryConfig::default()
    });
    let mut sub = reg.subscribe("system.*.health").await.unwrap();
    let beat = recv(&mut sub).await;
    assert_eq!(beat.topic, "system.bus.health");
    assert_eq!(beat.kind, "bus.health");
    assert_eq!(beat.payload["pid"], std::process::id());
    assert!(beat.payload["uptime_sec"].is_f64());
    assert!(beat.payload["ts"].as_f64().unwrap() > 1.6e9);
    let again = recv(&mut sub).await;
    assert!(again.payload["uptime_sec"].as_f64() >= beat.payload["uptime_sec"].as_f64());
    reg.shutdown().await;
}

#[actix_rt::test]
async fn dropping_every_handle_ends_subscriptions() {
    let reg = RegistryHandle::start(quiet());
    let mut sub = reg.subscribe(">").await.unwrap();
    drop(reg);
    assert!(next(&mut sub).await.is_none());
}

#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[actix_rt::test]
async fn failed_publishes_are_logged_not_raised() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let reg = RegistryHandle::start(quiet());
    reg.publish_raw("bad.*.topic", "", json!({}));
    reg.shutdown().await;
    reg.publish_raw("late.one", "", json!({}));
    reg.publish_raw("late.two", "", json!({}));
    reg.publish_raw("late.three", "", json!({}));

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("WARN")
            && l.contains("invalid topic")
            && l.contains("bad.*.topic")),
        "{text}"
    );
    let closed: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("registry closed"))
        .collect();
    assert_eq!(closed.len(), 3, "{text}");
    assert!(closed[0].contains("WARN"));
    assert!(closed[1].contains("DEBUG") && closed[2].contains("DEBUG"));
}

/// Outside any actix System (plain tokio, as in SSE handler tests) the registry hosts itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_without_an_actix_system() {
    let reg = RegistryHandle::start(quiet());
    assert!(reg.is_enabled());
    let mut sub = reg.subscribe("identity.*").await.unwrap();
    reg.publish(Event::IdentityFormed(IdentityFormed {
        identity_uuid: "i-9".into(),
        observation_uuids: vec![],
    }));
    let env = recv(&mut sub).await;
    assert_eq!(
        env.payload,
        json!({"identity_uuid": "i-9", "observation_uuids": []})
    );
    let consumer = tokio::spawn(async move { sub.next().await });
    reg.shutdown().await;
    assert!(tokio::time::timeout(HANG, consumer)
        .await
        .unwrap()
        .unwrap()
        .is_none());
}

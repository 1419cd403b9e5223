//! Webhook benchmarks (issue #17), whole-daemon, release build:
//!
//! 1. events/s from `registry.publish` to the receiver's acknowledgement (loopback receiver,
//!    one subscription on `attacker.>`, default concurrency 10), SQLite and — when
//!    `WEBHOOK_BENCH_PG_URL` names an empty database — PostgreSQL;
//! 2. the outbox's write cost per event (batches of 512 rows, as the dispatcher writes them);
//! 3. the live ingest path (file tail → committed rows) with and without 5 subscriptions on
//!    `attacker.>`, interleaved.
//!
//! `cargo bench --bench webhooks` (EVENTS=5000 LINES=50000 RUNS=3 to change the sizes).

use std::path::Path;
use std::time::{Duration, Instant};

use decnetd::actors::topics::{AttackerObserved, Event};
use decnetd::app::RunningApp;
use decnetd::config::Settings;
use decnetd::db::models::webhooks::{NewDelivery, Subscription, PENDING};
use decnetd::db::repo::webhooks as repo;
use decnetd::db::{now_utc, Db};
use decnetd::testkit;
use decnetd::testkit::receiver::Receiver;
use serde_json::Value;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn observed(i: usize) -> Event {
    Event::AttackerObserved(AttackerObserved {
        attacker_ip: format!("198.18.{}.{}", i / 250 % 250, i % 250 + 1),
        decky: "web1".into(),
        service: "ssh".into(),
        event_type: "login".into(),
        first_seen: "2026-11-23T00:00:00Z".into(),
        attacker_uuid: Some(format!("a-{i}")),
    })
}

fn subscription(name: &str, url: &str) -> Subscription {
    let patterns = ["attacker.>".to_owned()];
    Subscription::fresh(
        name,
        url,
        "bench-secret-0123456789",
        &patterns,
        "generic",
        true,
    )
}

async fn daemon(dir: &Path, db_url: Option<String>, ingester: bool) -> RunningApp {
    let mut s: Settings = testkit::settings(dir, db_url);
    s.webhooks.allow_loopback = true;
    s.workers.heartbeat_interval_s = 0.1;
    s.workers.disabled = decnetd::actors::supervisor::DISPLAY_ORDER
        .iter()
        .filter(|n| {
            let keep = matches!(**n, "webhooks" | "heartbeat" | "api" | "bus")
                || (ingester && **n == "ingester");
            !keep
        })
        .map(|n| n.to_string())
        .collect();
    testkit::start(s).await.expect("daemon starts")
}

async fn wait_for(mut f: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

async fn add_subscriptions(app: &RunningApp, url: &str, n: usize) {
    for i in 0..n {
        repo::create(&app.state.db, subscription(&format!("bench-{i}"), url))
            .await
            .expect("subscription");
    }
    app.state
        .registry
        .publish(Event::WebhookSubscriptionsChanged);
    let ok = wait_for(
        || {
            app.state
                .status
                .extra_of("webhooks")
                .and_then(|e| e.get("subscriptions").and_then(Value::as_u64))
                == Some(n as u64)
        },
        Duration::from_secs(10),
    )
    .await;
    assert!(ok, "dispatcher loaded {n} subscriptions");
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn publish_to_ack(label: &str, db_url: Option<String>, events: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = daemon(dir.path(), db_url, false).await;
    let r = Receiver::start_with(200, false).expect("receiver");
    add_subscriptions(&app, &r.url, 1).await;
    let t0 = Instant::now();
    for i in 0..events {
        app.state.registry.publish(observed(i));
    }
    let ok = wait_for(|| r.count() >= events, Duration::from_secs(600)).await;
    let s = t0.elapsed().as_secs_f64();
    assert!(ok, "{label}: {} of {events} acknowledged", r.count());
    println!(
        "publish→ack {label:<10} {events} events in {s:6.2} s = {:8.0} events/s",
        events as f64 / s
    );
    app.stop().await;
    r.stop().await;
}

async fn outbox_cost(label: &str, db: Db) {
    let sub = subscription("cost", "http://127.0.0.1:9/");
    repo::create(&db, sub.clone()).await.expect("subscription");
    let body = r#"{"id":"x","payload":{"attacker_ip":"198.18.0.1","decky":"web1","event_type":"login","service":"ssh"},"topic":"attacker.observed","ts":"2026-11-23T00:00:00.000000+00:00","type":"observed","v":1}"#;
    let batches = 40;
    let t0 = Instant::now();
    for b in 0..batches {
        let now = now_utc();
        let rows = (0..512)
            .map(|i| NewDelivery {
                subscription_uuid: sub.uuid.clone(),
                event_id: format!("{b:08x}{i:024x}"),
                topic: "attacker.observed".into(),
                event_body: body.into(),
                signed_at: 0,
                status: PENDING.into(),
                attempts: 0,
                next_attempt_at: now,
                created_at: now,
                updated_at: now,
            })
            .collect();
        repo::enqueue(&db, rows).await.expect("enqueue");
    }
    let per = t0.elapsed().as_secs_f64() * 1e6 / f64::from(batches * 512);
    println!("outbox write {label:<10} {per:6.1} µs per (event, subscription) row, batches of 512");
}

fn extra_u64(app: &RunningApp, worker: &str, key: &str) -> u64 {
    app.state
        .status
        .extra_of(worker)
        .and_then(|e| e.get(key).and_then(Value::as_u64))
        .unwrap_or(0)
}

/// Seconds from writing the corpus until the ingester's committed-row count stops moving.
async fn ingest_once(corpus: &Path, subs: usize) -> (f64, u64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = daemon(dir.path(), None, true).await;
    let r = Receiver::start_with(200, false).expect("receiver");
    if subs > 0 {
        add_subscriptions(&app, &r.url, subs).await;
    }
    let t0 = Instant::now();
    std::fs::copy(corpus, dir.path().join("ingest.log")).expect("corpus");
    let mut last = 0;
    let mut last_change = t0;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = extra_u64(&app, "ingester", "logs_inserted");
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last > 0 && last_change.elapsed() > Duration::from_secs(2) {
            break;
        }
        if t0.elapsed() > Duration::from_secs(600) {
            break;
        }
    }
    let secs = last_change.duration_since(t0).as_secs_f64();
    let enqueued = extra_u64(&app, "webhooks", "enqueued");
    app.stop().await;
    r.stop().await;
    (secs, last, enqueued)
}

fn main() {
    actix_rt::System::new().block_on(async {
        let events = env_usize("EVENTS", 5000);
        let lines = env_usize("LINES", 50_000);
        let runs = env_usize("RUNS", 3);
        let pg = std::env::var("WEBHOOK_BENCH_PG_URL").ok().filter(|u| !u.is_empty());

        publish_to_ack("sqlite", None, events).await;
        if let Some(url) = &pg {
            publish_to_ack("postgresql", Some(url.clone()), events).await;
        }

        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("o.db").display()), 2)
            .await
            .expect("sqlite");
        db.migrate().await.expect("migrate");
        outbox_cost("sqlite", db).await;
        if let Some(url) = &pg {
            let db = Db::connect(url, 2).await.expect("postgres");
            db.migrate().await.expect("migrate");
            outbox_cost("postgresql", db).await;
        }

        let corpus = dir.path().join("corpus.log");
        let root = env!("CARGO_MANIFEST_DIR");
        let st = std::process::Command::new("python3")
            .arg(format!("{root}/scripts/bench/gen_corpus.py"))
            .arg(&corpus)
            .arg(lines.to_string())
            .arg("2000")
            .status()
            .expect("python3");
        assert!(st.success(), "gen_corpus.py");
        for run in 1..=runs {
            for subs in [0, 5] {
                let (s, rows, enq) = ingest_once(&corpus, subs).await;
                println!(
                    "ingest run {run} subs={subs}: {rows} rows committed in {s:6.2} s = {:8.0} lines/s; outbox rows written {enq}",
                    lines as f64 / s
                );
            }
        }
    });
}

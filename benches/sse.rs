//! SSE fan-out at scale (issue #18 item 5): N concurrent `GET /api/v1/identities/events`
//! streams (one single-use ticket each; the per-user cap raised here only) on a real daemon on
//! loopback, then a burst of `identity.formed` events published on the registry. Prints, per
//! run: streams opened, events each stream received (every stream must get every event),
//! publish → receipt latency p50/p99/max over every (stream, event) pair, and the daemon's RSS
//! growth per open stream.
//!
//! `cargo bench --bench sse`   (STREAMS=1000 EVENTS=100 by default)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use decnetd::actors::topics::{Event, IdentityFormed};
use decnetd::testkit;
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::Value;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let streams = env_usize("STREAMS", 1000);
    let events = env_usize("EVENTS", 100);
    actix_rt::System::new().block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = testkit::settings(dir.path(), None);
        s.auth.sse_max_per_user = streams + 10;
        s.auth.limiter_enabled = false;
        s.bus.capacity = events.max(1024);
        let app = testkit::start_http_only(s).await.expect("daemon starts");
        let base = app.base_url();
        let token = testkit::token_for(&app, "bench-viewer", "viewer").await;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(streams + 10)
            .build()
            .expect("client");

        // publish time of each event, by identity uuid
        let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let received: Arc<Mutex<Vec<usize>>> = Arc::new(Mutex::new(vec![0; streams]));

        let rss_before = rss_kib();
        let mut opened = 0usize;
        let mut tasks = Vec::with_capacity(streams);
        for i in 0..streams {
            let ticket: Value = client
                .post(format!("{base}/api/v1/auth/sse-ticket"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("ticket")
                .json()
                .await
                .expect("ticket json");
            let ticket = ticket["ticket"].as_str().expect("ticket").to_owned();
            let resp = client
                .get(format!("{base}/api/v1/identities/events?ticket={ticket}"))
                .send()
                .await
                .expect("stream");
            if resp.status() != 200 {
                eprintln!("stream {i}: HTTP {}", resp.status());
                continue;
            }
            opened += 1;
            let (sent, latencies, received) = (
                Arc::clone(&sent),
                Arc::clone(&latencies),
                Arc::clone(&received),
            );
            tasks.push(actix_rt::spawn(async move {
                let mut body = resp.bytes_stream();
                let mut buf = String::new();
                let mut got = 0usize;
                while let Some(Ok(chunk)) = body.next().await {
                    let at = Instant::now();
                    buf.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = buf.find("\n\n") {
                        let frame: String = buf.drain(..end + 2).collect();
                        let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) else {
                            continue;
                        };
                        let Ok(v) = serde_json::from_str::<Value>(data.trim()) else {
                            continue;
                        };
                        let uuid = v
                            .pointer("/payload/identity_uuid")
                            .or_else(|| v.get("identity_uuid"))
                            .and_then(Value::as_str);
                        if let Some(t0) = uuid.and_then(|u| sent.lock().get(u).copied()) {
                            latencies.lock().push(at.duration_since(t0));
                            got += 1;
                            received.lock()[i] = got;
                        }
                    }
                    if got >= events {
                        break;
                    }
                }
            }));
        }
        // let every stream reach its subscription before the burst
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_open = rss_kib();

        let started = Instant::now();
        for n in 0..events {
            let uuid = format!("00000000-0000-4000-8000-{n:012}");
            sent.lock().insert(uuid.clone(), Instant::now());
            app.state
                .registry
                .publish(Event::IdentityFormed(IdentityFormed {
                    identity_uuid: uuid,
                    observation_uuids: vec![format!("obs-{n}")],
                }));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline
            && received.lock().iter().filter(|&&g| g >= events).count() < opened
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let burst = started.elapsed();
        let complete = received.lock().iter().filter(|&&g| g >= events).count();
        let mut lat = latencies.lock().clone();
        lat.sort();
        println!(
            "sse fan-out: {opened}/{streams} streams open, {events} events published in a burst; \
             {complete} streams received all {events} ({} frames in {:.0} ms)",
            lat.len(),
            burst.as_secs_f64() * 1e3
        );
        println!(
            "  publish -> receipt: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pct(&lat, 0.50).as_secs_f64() * 1e3,
            pct(&lat, 0.99).as_secs_f64() * 1e3,
            pct(&lat, 1.0).as_secs_f64() * 1e3
        );
        println!(
            "  RSS (daemon and clients in one process): {} MiB before, {} MiB with the streams \
             open: {:.1} KiB per stream (server and client side)",
            rss_before / 1024,
            rss_open / 1024,
            (rss_open.saturating_sub(rss_before)) as f64 / opened.max(1) as f64
        );
        for t in tasks {
            t.abort();
        }
        app.stop().await;
    });
}

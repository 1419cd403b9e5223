//! SSE fan-out at scale (issue #18 item 5): N concurrent `GET /api/v1/identities/events`
//! streams (one single-use ticket each; the per-user cap raised here only) on a real daemon on
//! loopback, then a burst of `identity.formed` events published on the registry. Prints, per
//! run: streams opened, events each stream received (every stream must get every event),
//! publish → receipt latency p50/p99/max over every (stream, event) pair, and the daemon's RSS
//! growth per open stream.
//!
//! The process runs with the daemon's allocator settings (mimalloc as the global allocator,
//! [`decnetd::memory::tune_allocators`]), so the server side costs here what it costs in
//! `decnetd serve`.
//!
//! `cargo bench --bench sse`   (STREAMS=1000 EVENTS=100 by default)

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use decnetd::actors::topics::{Event, IdentityFormed};
use decnetd::testkit;
use futures::StreamExt;
use memchr::memmem;
use serde_json::Value;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// The event number a frame carries: the last 12 digits of its identity uuid
/// (`00000000-0000-4000-8000-{n:012}`, see the burst below).
fn event_number(key: &memmem::Finder<'_>, frame: &[u8]) -> Option<usize> {
    let at = key.find(frame)? + key.needle().len();
    let digits = frame.get(at + 24..at + 36)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn main() {
    let streams = env_usize("STREAMS", 1000);
    let events = env_usize("EVENTS", 100);
    decnetd::memory::tune_allocators();
    actix_rt::System::new().block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = testkit::settings(dir.path(), None);
        s.auth.sse_max_per_user = streams + 10;
        s.auth.limiter_enabled = false;
        s.bus.capacity = events.max(1024);
        let app = testkit::start_http_only(s).await.expect("daemon starts");
        let base_url = app.base_url();
        let token = testkit::token_for(&app, "bench-viewer", "viewer").await;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(streams + 10)
            .build()
            .expect("client");

        // Publish time of event n (nanoseconds since `base`, plus one; 0 = not yet sent) and
        // the events each stream has received. The clients share this process and the 2 cores
        // with the daemon, so they are kept cheap: a frame is matched by a byte search for its
        // identity uuid (which encodes n) rather than parsed, and each stream keeps its own
        // latencies (no lock per frame). Receipt time is taken when a chunk arrives.
        let base = Instant::now();
        let sent: Arc<Vec<AtomicU64>> = Arc::new((0..events).map(|_| AtomicU64::new(0)).collect());
        let received: Arc<Vec<AtomicUsize>> =
            Arc::new((0..streams).map(|_| AtomicUsize::new(0)).collect());
        // Body chunks read by every stream during the burst (after its first event).
        let chunks = Arc::new(AtomicUsize::new(0));

        let rss_before = rss_kib();
        let mut opened = 0usize;
        let mut tasks = Vec::with_capacity(streams);
        for i in 0..streams {
            let ticket: Value = client
                .post(format!("{base_url}/api/v1/auth/sse-ticket"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("ticket")
                .json()
                .await
                .expect("ticket json");
            let ticket = ticket["ticket"].as_str().expect("ticket").to_owned();
            let resp = client
                .get(format!(
                    "{base_url}/api/v1/identities/events?ticket={ticket}"
                ))
                .send()
                .await
                .expect("stream");
            if resp.status() != 200 {
                eprintln!("stream {i}: HTTP {}", resp.status());
                continue;
            }
            opened += 1;
            let (sent, received, chunks) =
                (Arc::clone(&sent), Arc::clone(&received), Arc::clone(&chunks));
            tasks.push(actix_rt::spawn(async move {
                let mut body = resp.bytes_stream();
                let mut buf: Vec<u8> = Vec::new();
                let mut lat = Vec::with_capacity(events);
                let mut got = 0usize;
                // Built once per stream: building a searcher costs more than one search.
                let end_of_frame = memmem::Finder::new(b"\n\n");
                let key = memmem::Finder::new(b"\"identity_uuid\":\"");
                while let Some(Ok(chunk)) = body.next().await {
                    let at = base.elapsed().as_nanos() as u64;
                    if sent[0].load(Ordering::Acquire) > 0 {
                        chunks.fetch_add(1, Ordering::Relaxed);
                    }
                    buf.extend_from_slice(&chunk);
                    let mut from = 0;
                    while let Some(end) = end_of_frame.find(&buf[from..]) {
                        let frame = &buf[from..from + end];
                        from += end + 2;
                        let Some(n) = event_number(&key, frame) else {
                            continue;
                        };
                        let t0 = sent.get(n).map_or(0, |t| t.load(Ordering::Acquire));
                        if t0 > 0 {
                            lat.push(Duration::from_nanos(at.saturating_sub(t0 - 1)));
                            got += 1;
                            received[i].store(got, Ordering::Release);
                        }
                    }
                    buf.drain(..from);
                    if got >= events {
                        break;
                    }
                }
                lat
            }));
        }
        // let every stream reach its subscription before the burst
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_open = rss_kib();

        let started = Instant::now();
        for n in 0..events {
            let uuid = format!("00000000-0000-4000-8000-{n:012}");
            sent[n].store(base.elapsed().as_nanos() as u64 + 1, Ordering::Release);
            app.state
                .registry
                .publish(Event::IdentityFormed(IdentityFormed {
                    identity_uuid: uuid,
                    observation_uuids: vec![format!("obs-{n}")],
                }));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let complete = || {
            received
                .iter()
                .filter(|g| g.load(Ordering::Acquire) >= events)
                .count()
        };
        while Instant::now() < deadline && complete() < opened {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let burst = started.elapsed();
        let complete = complete();
        let mut lat = Vec::with_capacity(opened * events);
        for t in tasks {
            if complete < opened {
                t.abort();
            }
            if let Ok(l) = t.await {
                lat.extend(l);
            }
        }
        lat.sort();
        println!(
            "sse fan-out: {opened}/{streams} streams open, {events} events published in a burst; \
             {complete} streams received all {events} ({} frames in {:.0} ms)",
            lat.len(),
            burst.as_secs_f64() * 1e3
        );
        println!(
            "  publish -> receipt: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.1} body chunks per stream",
            pct(&lat, 0.50).as_secs_f64() * 1e3,
            pct(&lat, 0.99).as_secs_f64() * 1e3,
            pct(&lat, 1.0).as_secs_f64() * 1e3,
            chunks.load(Ordering::Relaxed) as f64 / opened.max(1) as f64
        );
        println!(
            "  RSS (daemon and clients in one process): {} MiB before, {} MiB with the streams \
             open: {:.1} KiB per stream (server and client side)",
            rss_before / 1024,
            rss_open / 1024,
            (rss_open.saturating_sub(rss_before)) as f64 / opened.max(1) as f64
        );
        app.stop().await;
    });
}

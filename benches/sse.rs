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
//! The clients run on a runtime of their own (`CLIENT_THREADS`, 2 by default; 0 runs them on
//! the daemon's actix thread, as the bench did before): 1 000 dashboards do not share one
//! thread, and the figure should not be the reading loop's.
//!
//! `ROUNDS=n` publishes n bursts one after the other, each once the one before has reached
//! every stream, and prints each round and the median of the rounds' p50/p99 (one burst is
//! tens of milliseconds, so one round is one sample; several make the figure steadier and a
//! profile of the run mostly the bursts).
//!
//! `cargo bench --bench sse`   (STREAMS=1000 EVENTS=100 ROUNDS=1 CLIENT_THREADS=2 by default)

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use decnetd::actors::topics::{Event, IdentityFormed};
use decnetd::testkit;
use futures::StreamExt;
use memchr::memmem;

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

/// Minor page faults of this process so far (`/proc/self/stat`, field 10).
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The command name (field 2) may hold spaces; count from after its ')'.
            let rest = s.get(s.rfind(')')? + 2..)?;
            rest.split_whitespace().nth(7)?.parse().ok()
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

/// Shared between the publisher and the client tasks.
struct Shared {
    base: Instant,
    /// Publish time of event n (nanoseconds since `base`, plus one; 0 = not yet sent).
    sent: Vec<AtomicU64>,
    /// Events each stream has received.
    received: Vec<AtomicUsize>,
    /// Body chunks read by every stream during the bursts (after the first event).
    chunks: AtomicUsize,
    /// Events every stream must receive: the bursts' events together.
    events: usize,
}

/// Open `streams` SSE streams (a ticket each) and spawn one reader task per stream on the
/// current (client) runtime; each returns its publish → receipt latencies with the event
/// number they were measured on.
async fn open_streams(
    base_url: String,
    token: String,
    streams: usize,
    shared: Arc<Shared>,
    finished: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<Vec<(usize, Duration)>>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(streams + 10)
        .build()
        .expect("client");
    let mut tasks = Vec::with_capacity(streams);
    for i in 0..streams {
        let ticket = testkit::sse_ticket(&client, &format!("{base_url}/api/v1"), &token).await;
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
        let shared = Arc::clone(&shared);
        let mut finished = finished.clone();
        tasks.push(tokio::spawn(async move {
            // The clients share the 2 cores with the daemon, so they are kept cheap: a frame
            // is matched by a byte search for its identity uuid (which encodes n) rather than
            // parsed, and each stream keeps its own latencies (no lock per frame). Receipt
            // time is taken when a chunk arrives.
            let events = shared.events;
            let mut body = resp.bytes_stream();
            let mut buf: Vec<u8> = Vec::new();
            let mut lat = Vec::with_capacity(events);
            let mut got = 0usize;
            // Built once per stream: building a searcher costs more than one search.
            let end_of_frame = memmem::Finder::new(b"\n\n");
            let key = memmem::Finder::new(b"\"identity_uuid\":\"");
            while let Some(Ok(chunk)) = body.next().await {
                let at = shared.base.elapsed().as_nanos() as u64;
                if shared.sent[0].load(Ordering::Acquire) > 0 {
                    shared.chunks.fetch_add(1, Ordering::Relaxed);
                }
                buf.extend_from_slice(&chunk);
                let mut from = 0;
                while let Some(end) = end_of_frame.find(&buf[from..]) {
                    let frame = &buf[from..from + end];
                    from += end + 2;
                    let Some(n) = event_number(&key, frame) else {
                        continue;
                    };
                    let t0 = shared.sent.get(n).map_or(0, |t| t.load(Ordering::Acquire));
                    if t0 > 0 {
                        lat.push((n, Duration::from_nanos(at.saturating_sub(t0 - 1))));
                        got += 1;
                        shared.received[i].store(got, Ordering::Release);
                    }
                }
                buf.drain(..from);
                if got >= events {
                    break;
                }
            }
            // The stream stays open until every stream has its events: a client that hung up
            // as soon as it had its own would put its connection's teardown (and its
            // unsubscription) into the other streams' tail.
            let _ = finished.wait_for(|done| *done).await;
            drop(body);
            lat
        }));
    }
    tasks
}

fn main() {
    let streams = env_usize("STREAMS", 1000);
    let burst = env_usize("EVENTS", 100);
    let rounds = env_usize("ROUNDS", 1).max(1);
    let events = burst * rounds;
    // The clients' runtime: its own threads, as 1 000 dashboards would not share one thread
    // (CLIENT_THREADS=0 runs them on the daemon's actix thread, as before).
    let client_threads = env_usize("CLIENT_THREADS", 2);
    decnetd::memory::tune_allocators();
    let client_rt = (client_threads > 0).then(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(client_threads)
            .thread_name("sse-bench-client")
            .enable_all()
            .build()
            .expect("client runtime")
    });
    let client_handle = client_rt.as_ref().map(|rt| rt.handle().clone());
    actix_rt::System::new().block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = testkit::settings(dir.path(), None);
        s.auth.sse_max_per_user = streams + 10;
        s.auth.limiter_enabled = false;
        s.bus.capacity = burst.max(1024);
        let app = testkit::start_http_only(s).await.expect("daemon starts");
        let base_url = app.base_url();
        let token = testkit::token_for(&app, "bench-viewer", "viewer").await;

        let shared = Arc::new(Shared {
            base: Instant::now(),
            sent: (0..events).map(|_| AtomicU64::new(0)).collect(),
            received: (0..streams).map(|_| AtomicUsize::new(0)).collect(),
            chunks: AtomicUsize::new(0),
            events,
        });

        let rss_before = rss_kib();
        let (finish, finished) = tokio::sync::watch::channel(false);
        let opening = open_streams(base_url, token, streams, Arc::clone(&shared), finished);
        let tasks = match &client_handle {
            Some(h) => h.spawn(opening).await.expect("streams opened"),
            None => opening.await,
        };
        let opened = tasks.len();
        // let every stream reach its subscription before the burst
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_open = rss_kib();

        let mut took = Vec::with_capacity(rounds);
        let mut faults = Vec::with_capacity(rounds);
        let mut complete = 0;
        for round in 0..rounds {
            let started = Instant::now();
            let faults_before = minor_faults();
            for n in round * burst..(round + 1) * burst {
                let uuid = format!("00000000-0000-4000-8000-{n:012}");
                shared.sent[n]
                    .store(shared.base.elapsed().as_nanos() as u64 + 1, Ordering::Release);
                app.state
                    .registry
                    .publish(Event::IdentityFormed(IdentityFormed {
                        identity_uuid: uuid,
                        observation_uuids: vec![format!("obs-{n}")],
                    }));
            }
            let want = (round + 1) * burst;
            let deadline = Instant::now() + Duration::from_secs(30);
            let done = || {
                shared
                    .received
                    .iter()
                    .filter(|g| g.load(Ordering::Acquire) >= want)
                    .count()
            };
            while Instant::now() < deadline && done() < opened {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            took.push(started.elapsed());
            faults.push(minor_faults().saturating_sub(faults_before));
            complete = done();
            if complete < opened {
                break;
            }
        }
        let _ = finish.send(true);
        let mut lat: Vec<Vec<Duration>> = vec![Vec::with_capacity(opened * burst); rounds];
        for t in tasks {
            if complete < opened {
                t.abort();
            }
            if let Ok(l) = t.await {
                for (n, d) in l {
                    lat[n / burst].push(d);
                }
            }
        }
        println!(
            "sse fan-out: {opened}/{streams} streams open, {rounds} burst(s) of {burst} events; \
             {complete} streams received every event; clients on {}",
            if client_threads > 0 {
                format!("{client_threads} threads of their own")
            } else {
                "the daemon's actix thread".to_owned()
            }
        );
        let mut p50s = Vec::with_capacity(rounds);
        let mut p99s = Vec::with_capacity(rounds);
        for (round, l) in lat.iter_mut().enumerate() {
            l.sort();
            let (p50, p99) = (pct(l, 0.50), pct(l, 0.99));
            p50s.push(p50);
            p99s.push(p99);
            println!(
                "  burst {}: {} frames in {:.0} ms, {} page faults; publish -> receipt: p50 {:.1} \
                 ms, p99 {:.1} ms, max {:.1} ms",
                round + 1,
                l.len(),
                took.get(round).map_or(0.0, |t| t.as_secs_f64() * 1e3),
                faults.get(round).copied().unwrap_or(0),
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3,
                pct(l, 1.0).as_secs_f64() * 1e3,
            );
        }
        p50s.sort();
        p99s.sort();
        println!(
            "  median of {rounds} burst(s): p50 {:.1} ms, p99 {:.1} ms; {:.1} body chunks per stream \
             and burst",
            pct(&p50s, 0.5).as_secs_f64() * 1e3,
            pct(&p99s, 0.5).as_secs_f64() * 1e3,
            shared.chunks.load(Ordering::Relaxed) as f64 / (opened.max(1) * rounds) as f64
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
    if let Some(rt) = client_rt {
        rt.shutdown_background();
    }
}

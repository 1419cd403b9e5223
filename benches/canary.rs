//! Canary trigger receivers under load (issue #15), whole daemon, release build: DNS answers
//! per second (UDP, closed loop) and HTTP triggers per second (`GET /c/<slug>/…`, keep-alive),
//! each with p50/p99 latency, on loopback against a daemon started in-process (real SQLite,
//! the CanaryPlanter actor running the receivers and the batched recorder). Every query hits
//! a planted token, so every answer is also a trigger row: after each run the bench waits for
//! the recorder and prints how many were stored (receivers wait for room in the hit queue before
//! answering, so stored/answered must be 1).
//!
//! The load comes from a separate 2-thread tokio runtime in this process: `CONC` concurrent
//! clients (default 64), each sending its next query when the previous answer arrived, for
//! `DURATION` seconds (default 10). DNS clients use distinct loopback sources
//! (127.0.0.2 …); the per-source rate limit stays on, raised so that it never trips (its check
//! is part of the measured path).
//!
//! `cargo bench --bench canary` (DURATION=20 CONC=128 to change).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use decnetd::db::models::canary::CanaryToken;
use decnetd::db::repo::canary as repo;
use decnetd::db::{new_uuid, now_utc};
use decnetd::domain::canary::new_slug;
use decnetd::testkit;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

const ZONE: &str = "canary.bench.test";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn token(generator: &str) -> CanaryToken {
    let slug = new_slug();
    CanaryToken {
        uuid: new_uuid(),
        kind: "http".into(),
        decky_name: "bench".into(),
        topology_id: None,
        blob_uuid: None,
        instrumenter: None,
        generator: Some(generator.into()),
        placement_path: "/tmp/x".into(),
        callback_token: slug.clone(),
        secret_seed: slug,
        placed_at: now_utc(),
        last_triggered_at: None,
        trigger_count: 0,
        created_by: "bench".into(),
        state: "planted".into(),
        last_error: None,
        fingerprint_nonce: None,
        http_base: "https://cb.example.org".into(),
        dns_zone: ZONE.into(),
    }
}

/// Sorted latencies (µs) and the count of lost requests.
struct Run {
    lat: Vec<u32>,
    lost: u64,
    secs: f64,
}

impl Run {
    fn report(&self, what: &str) {
        let n = self.lat.len();
        let pct = |p: f64| {
            if n == 0 {
                0.0
            } else {
                f64::from(self.lat[((n as f64 * p) as usize).min(n - 1)]) / 1000.0
            }
        };
        println!(
            "{what}: {n} answers in {:.1} s = {:.0}/s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; lost {}",
            self.secs,
            n as f64 / self.secs,
            pct(0.50),
            pct(0.99),
            pct(1.0),
            self.lost
        );
    }
}

async fn dns_load(addr: SocketAddr, qname: String, conc: u64, dur: Duration) -> Run {
    let lost = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for k in 0..conc {
        let qname = qname.clone();
        let lost = Arc::clone(&lost);
        tasks.push(tokio::spawn(async move {
            let src = format!("127.0.{}.{}:0", 1 + k / 250, 2 + k % 250);
            let sock = tokio::net::UdpSocket::bind(src).await.expect("bind client");
            sock.connect(addr).await.expect("connect");
            let name = Name::from_ascii(&qname).expect("name");
            let mut lat = Vec::with_capacity(200_000);
            let mut buf = [0u8; 1500];
            let mut id: u16 = (k as u16).wrapping_mul(7919);
            while Instant::now() < deadline {
                id = id.wrapping_add(1);
                let mut m = Message::new(id, MessageType::Query, OpCode::Query);
                m.add_query(Query::query(name.clone(), RecordType::A));
                let q = m.to_vec().expect("encode");
                let t0 = Instant::now();
                sock.send(&q).await.expect("send");
                loop {
                    match tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
                        Ok(Ok(n)) => {
                            let r = Message::from_vec(&buf[..n]).expect("decode reply");
                            if r.metadata.id != id {
                                continue; // a late answer to a query given up on
                            }
                            assert_eq!(r.answers.len(), 1, "an A answer");
                            lat.push(t0.elapsed().as_micros() as u32);
                        }
                        _ => {
                            lost.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    break;
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("client task"));
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    Run {
        lat,
        lost: lost.load(Ordering::Relaxed),
        secs,
    }
}

async fn http_load(url: String, conc: u64, dur: Duration) -> Run {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conc as usize)
        .build()
        .expect("client");
    let lost = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let client = client.clone();
        let url = url.clone();
        let lost = Arc::clone(&lost);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(200_000);
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match client.get(&url).send().await {
                    Ok(r) if r.status().as_u16() == 200 => match r.bytes().await {
                        Ok(b) if b.len() == 43 => lat.push(t0.elapsed().as_micros() as u32),
                        _ => {
                            lost.fetch_add(1, Ordering::Relaxed);
                        }
                    },
                    _ => {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("client task"));
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    Run {
        lat,
        lost: lost.load(Ordering::Relaxed),
        secs,
    }
}

/// Wait until the token has `want` triggers (or 60 s passed); prints stored/answered, the
/// token's counter and how many hits waited for room in the queue (backpressure).
async fn stored(app: &decnetd::app::RunningApp, tok: &str, want: usize, t0: Instant) {
    let db = &app.state.db;
    let mut n = 0;
    for _ in 0..600 {
        n = repo::count_triggers(db, tok).await.unwrap_or(-1);
        if n >= want as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counter = repo::get_token(db, tok)
        .await
        .ok()
        .flatten()
        .map(|t| t.trigger_count)
        .unwrap_or(-1);
    let stats = app.state.canary.hit_stats();
    println!(
        "  stored {n} trigger rows of {want} answers (stored/answered {:.4}), token counter {counter}, \
         {:.1} s after the run started; queue waits so far {}",
        n as f64 / want.max(1) as f64,
        t0.elapsed().as_secs_f64(),
        stats.waited.load(Ordering::Relaxed)
    );
}

fn main() {
    let dur = Duration::from_secs(env_u64("DURATION", 10));
    let conc = env_u64("CONC", 64);
    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("load runtime");
    let load_handle = load.handle().clone();
    actix_rt::System::new().block_on(async move {
        let load = load_handle;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = testkit::settings(dir.path(), None);
        s.canary.dns_zone = ZONE.into();
        s.canary.http_bind = Some("127.0.0.1:0".into());
        s.canary.dns_bind = Some("127.0.0.1:0".into());
        s.canary.dns_rate_per_source = 1_000_000;
        s.workers.disabled = decnetd::actors::supervisor::DISPLAY_ORDER
            .iter()
            .filter(|n| !matches!(**n, "canary" | "heartbeat" | "api" | "bus"))
            .map(|n| n.to_string())
            .collect();
        let app = testkit::start(s).await.expect("daemon");
        let db = app.state.db.clone();
        let dns = app.state.canary.dns_addr().expect("dns receiver");
        let http = app.state.canary.http_addr().expect("http receiver");
        println!(
            "canary receivers: {conc} concurrent clients, {} s per run",
            dur.as_secs()
        );

        let t = token("ssh_key");
        repo::create_token(&db, &t).await.expect("token");
        let qname = format!("{}.{ZONE}.", t.callback_token);
        let t0 = Instant::now();
        let run = load
            .spawn(dns_load(dns, qname, conc, dur))
            .await
            .expect("dns load");
        run.report("DNS/UDP");
        stored(&app, &t.uuid, run.lat.len(), t0).await;

        let t = token("git_config");
        repo::create_token(&db, &t).await.expect("token");
        let url = format!("http://{http}/c/{}/repo.git/info/refs", t.callback_token);
        let t0 = Instant::now();
        let run = load
            .spawn(http_load(url, conc, dur))
            .await
            .expect("http load");
        run.report("HTTP");
        stored(&app, &t.uuid, run.lat.len(), t0).await;
        app.stop().await;
    });
    drop(load);
}

//! Production clustering ticks on SQLite at scale (`cargo bench --bench cluster_tick`).
//!
//! Seeds `DECNETD_BENCH_ROWS` (default 100 000) synthetic observations through the repository
//! layer into a real SQLite file, then times, each as identity tick + campaign tick exactly as
//! the workers run them:
//! * the first tick (every observation new: everything formed);
//! * five empty ticks (nothing new since the last one);
//! * one tick after 1 % more observations arrive (most link into existing identities).
//!
//! For each it prints one JSON line with the wall time of each level, the rows each level read,
//! the events it produced and the process's peak RSS growth during the tick (VmHWM is reset
//! through `/proc/self/clear_refs` before each tick, so the figure is the tick's own peak above
//! what the process held before it). A one-shot measurement, not a criterion loop: a first tick
//! at 100 000 needs a fresh 100 000-row database per sample.
//!
//! The process runs with the daemon's allocator settings (mimalloc as the global allocator,
//! [`decnetd::memory::tune_allocators`]), so a tick costs here what it costs in `decnetd serve`.

use std::time::Instant;

use decnetd::actors::campaign_clusterer::run_campaign_tick;
use decnetd::actors::clusterer::run_identity_tick;
use decnetd::db::Db;
use decnetd::domain::clustering::synth;
use serde_json::json;

mod common;
use common::clustering::{insert, seeded_db};

/// The daemon's global allocator (`src/main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn status_kib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU seconds (user + system) this process has used so far: next to the wall time, a figure
/// that another process competing for the cores does not inflate.
fn cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn reset_peak() {
    // "5" resets VmHWM to the current RSS (Linux ≥ 4.0); harmless where unsupported.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn tick(db: &Db, label: &str) {
    let rss_before = status_kib("VmRSS:").unwrap_or(0);
    reset_peak();
    let cpu_before = cpu_s();
    let started = Instant::now();
    let identity = run_identity_tick(db).await.expect("identity tick");
    let identity_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let campaign = run_campaign_tick(db).await.expect("campaign tick");
    let campaign_s = started.elapsed().as_secs_f64();
    let cpu = cpu_s() - cpu_before;
    let peak = status_kib("VmHWM:").unwrap_or(0);
    println!(
        "{}",
        json!({
            "tick": label,
            "identity_s": identity_s,
            "campaign_s": campaign_s,
            "total_s": identity_s + campaign_s,
            "cpu_s": cpu,
            "identity_rows_read": identity.observations,
            "campaign_rows_read": campaign.identities,
            "identity_events": identity.events().len(),
            "campaign_events": campaign.events().len(),
            "peak_rss_growth_mib": (peak.saturating_sub(rss_before)) as f64 / 1024.0,
        })
    );
}

fn main() {
    decnetd::memory::tune_allocators();
    // `RUST_LOG=decnetd::laps=debug` prints each tick's phases (stderr).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    // `cargo bench` passes `--bench`; nothing to parse.
    let n: usize = std::env::var("DECNETD_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let started = Instant::now();
        let (_dir, db) = seeded_db(n).await;
        println!(
            "{}",
            json!({"seeded": n, "seed_s": started.elapsed().as_secs_f64(),
                   "rss_mib": status_kib("VmRSS:").unwrap_or(0) as f64 / 1024.0})
        );
        tick(&db, "first").await;
        for k in 0..5 {
            tick(&db, &format!("empty-{k}")).await;
        }
        let more = synth::observations(n / 100, 8);
        insert(&db, &more, n).await;
        tick(&db, "one_percent_new").await;
        tick(&db, "empty-after").await;
    });
}

//! Prometheus metrics (issue #20): the `metrics` facade, rendered in the Prometheus text format
//! by `metrics-exporter-prometheus`, served by [`serve`] on a listener of its own.
//!
//! Off by default: until [`install`] runs (only when `DECNET_METRICS_ENABLED=true`), no recorder
//! is installed, every helper below is a no-op and the HTTP middleware skips its work.
//!
//! Every metric is written through one named helper here, so call sites are one line and the
//! label sets stay bounded: route *templates* (never raw paths), worker names, provider names,
//! outcomes from fixed lists, subscription names cut to [`MAX_LABEL_LEN`]. No IP, uuid or
//! user-supplied text is ever a label.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use thiserror::Error;

use crate::actors::heartbeat::StatusBoard;
use crate::config::MetricsSettings;

/// Longest label value taken from a name the operator chose (webhook subscriptions).
pub const MAX_LABEL_LEN: usize = 64;
/// Histogram buckets, seconds: 100 µs … 30 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];
/// Worker statuses of the heartbeat board (one gauge series each).
const WORKER_STATUSES: [&str; 3] = ["ok", "stale", "unknown"];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Why metrics cannot be served.
#[derive(Debug, Error)]
pub enum MetricsError {
    /// The exporter refused its configuration.
    #[error("metrics exporter: {0}")]
    Build(String),
    /// The listener could not be bound.
    #[error("cannot bind the metrics listener on {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// Whether a recorder is installed (metrics are on in this process).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Install the process-wide recorder once (later calls return the same handle).
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| MetricsError::Build(e.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    // A lost race (two daemons of one test process) keeps the first recorder and its handle.
    if metrics::set_global_recorder(recorder).is_ok() {
        let _ = HANDLE.set(handle);
    }
    ENABLED.store(true, Ordering::Relaxed);
    HANDLE
        .get()
        .cloned()
        .ok_or_else(|| MetricsError::Build("another metrics recorder is installed".into()))
}

fn bounded(s: &str) -> String {
    s.chars().take(MAX_LABEL_LEN).collect()
}

// ---- HTTP ------------------------------------------------------------------------------------

/// One answered API request: route template (`unmatched` when no route matched), method,
/// status, latency.
pub fn http_request(route: String, method: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("route", route),
        ("method", method.to_owned()),
        ("status", status.to_string()),
    ];
    counter!("decnetd_http_requests_total", &labels).increment(1);
    histogram!("decnetd_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

/// Middleware counting every request of the API by route template (actix `match_pattern`,
/// resolved from the root resource map, so requests answered with an error count too).
pub async fn http_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !enabled() {
        return next.call(req).await;
    }
    let start = std::time::Instant::now();
    let method = req.method().clone();
    let route = req
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let res = next.call(req).await;
    let status = match &res {
        Ok(r) => r.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    http_request(route, method.as_str(), status.as_u16(), start.elapsed());
    res
}

/// Open SSE streams; the gauge goes down when the guard is dropped.
pub struct SseGuard(());

/// Count one SSE stream open until the returned guard drops.
pub fn sse_opened() -> SseGuard {
    gauge!("decnetd_sse_connections_open").increment(1.0);
    SseGuard(())
}

impl Drop for SseGuard {
    fn drop(&mut self) {
        gauge!("decnetd_sse_connections_open").decrement(1.0);
    }
}

// ---- ingest ----------------------------------------------------------------------------------

/// Lines read by the ingester (file tail, listeners, replays).
pub fn ingest_lines_read(n: usize) {
    counter!("decnetd_ingest_lines_read_total").increment(n as u64);
}

/// One committed batch: rows stored, lines quarantined, duplicates skipped, commit latency.
pub fn ingest_batch(committed: u64, quarantined: u64, duplicates: u64, elapsed: Duration) {
    counter!("decnetd_ingest_lines_committed_total").increment(committed);
    counter!("decnetd_ingest_lines_quarantined_total").increment(quarantined);
    counter!("decnetd_ingest_lines_deduplicated_total").increment(duplicates);
    histogram!("decnetd_ingest_batch_commit_seconds").record(elapsed.as_secs_f64());
}

/// Bytes of the tailed ingest file not read yet.
pub fn ingest_tail_lag(bytes: u64) {
    gauge!("decnetd_ingest_tail_lag_bytes").set(bytes as f64);
}

// ---- registry --------------------------------------------------------------------------------

/// One event published on the registry.
pub fn registry_published() {
    counter!("decnetd_registry_events_published_total").increment(1);
}

/// Events dropped for one subscription (its buffer was full).
pub fn registry_dropped(subscription: &str, n: u64) {
    counter!("decnetd_registry_events_dropped_total", "subscription" => bounded(subscription))
        .increment(n);
}

// ---- workers ---------------------------------------------------------------------------------

/// A crashed worker was restarted by the supervisor.
pub fn worker_restart(worker: &'static str) {
    counter!("decnetd_worker_restarts_total", "worker" => worker).increment(1);
}

/// Per worker, 1 on its current heartbeat status (`ok`, `stale`, `unknown`), 0 on the others.
pub fn worker_statuses(board: &StatusBoard) {
    for w in board.snapshot() {
        for s in WORKER_STATUSES {
            let v = if w.status == s { 1.0 } else { 0.0 };
            gauge!("decnetd_worker_status", "worker" => w.name.clone(), "status" => s).set(v);
        }
    }
}

// ---- analysis --------------------------------------------------------------------------------

/// One enrichment request to `provider` (a known provider name) and its outcome.
pub fn enrichment(provider: &'static str, outcome: &'static str) {
    counter!("decnetd_enrichment_requests_total", "provider" => provider, "outcome" => outcome)
        .increment(1);
}

/// One successful tick of a tick worker (`clusterer`, `campaign_clusterer`, `ttp`):
/// duration, items considered, events published.
pub fn tick(worker: &'static str, elapsed: Duration, items: usize, events: usize) {
    histogram!("decnetd_tick_duration_seconds", "worker" => worker).record(elapsed.as_secs_f64());
    counter!("decnetd_ticks_total", "worker" => worker, "outcome" => "ok").increment(1);
    counter!("decnetd_tick_items_total", "worker" => worker).increment(items as u64);
    counter!("decnetd_tick_events_total", "worker" => worker).increment(events as u64);
}

/// A failed tick of a tick worker.
pub fn tick_failed(worker: &'static str, elapsed: Duration) {
    histogram!("decnetd_tick_duration_seconds", "worker" => worker).record(elapsed.as_secs_f64());
    counter!("decnetd_ticks_total", "worker" => worker, "outcome" => "error").increment(1);
}

// ---- database --------------------------------------------------------------------------------

/// Time spent waiting for a pooled connection.
pub fn db_pool_wait(elapsed: Duration) {
    histogram!("decnetd_db_pool_wait_seconds").record(elapsed.as_secs_f64());
}

/// A pooled connection could not be had (`timeout`, `backend`, `closed`, …).
pub fn db_pool_error(kind: &'static str) {
    counter!("decnetd_db_pool_errors_total", "kind" => kind).increment(1);
}

// ---- canary, webhooks, fleet -----------------------------------------------------------------

/// A canary token fired, by `channel` (`http` or `dns`).
pub fn canary_trigger(channel: &'static str) {
    counter!("decnetd_canary_triggers_total", "channel" => channel).increment(1);
}

/// One webhook delivery attempt and its outcome (`delivered`, `retry`, `dead_letter`, …).
pub fn webhook_delivery(outcome: &'static str) {
    counter!("decnetd_webhook_deliveries_total", "outcome" => outcome).increment(1);
}

/// A decky mutation event emitted, by trigger.
pub fn decky_mutation(trigger: &'static str) {
    counter!("decnetd_decky_mutations_total", "trigger" => trigger).increment(1);
}

// ---- serving ---------------------------------------------------------------------------------

struct ScrapeState {
    handle: PrometheusHandle,
    token: Option<String>,
    board: Option<StatusBoard>,
}

/// Constant-time comparison of the presented bearer token with the configured one.
fn token_ok(req: &HttpRequest, want: &str) -> bool {
    use subtle::ConstantTimeEq;
    let got = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Lengths may differ; ct_eq then answers false (the length is not secret).
    bool::from(got.as_bytes().ct_eq(want.as_bytes()))
}

async fn scrape(req: HttpRequest, st: web::Data<ScrapeState>) -> HttpResponse {
    if let Some(want) = &st.token {
        if !token_ok(&req, want) {
            return HttpResponse::Unauthorized()
                .insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"))
                .finish();
        }
    }
    if let Some(board) = &st.board {
        worker_statuses(board);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(st.handle.render())
}

/// A running metrics listener.
pub struct MetricsServer {
    /// Bound address.
    pub addr: std::net::SocketAddr,
    /// Server handle (stop on shutdown).
    pub handle: actix_web::dev::ServerHandle,
    upkeep: actix_rt::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Stop serving.
    pub async fn stop(self) {
        self.upkeep.abort();
        self.handle.stop(true).await;
    }
}

/// When `settings.enabled`, install the recorder and serve `GET /metrics` on
/// `settings.bind` (its own listener, one worker), behind the bearer token when one is set.
/// `board` feeds the per-worker status gauges at each scrape.
pub fn serve(
    settings: &MetricsSettings,
    board: Option<StatusBoard>,
) -> Result<Option<MetricsServer>, MetricsError> {
    if !settings.enabled {
        return Ok(None);
    }
    let handle = install()?;
    let state = web::Data::new(ScrapeState {
        handle: handle.clone(),
        token: settings
            .token
            .as_ref()
            .map(|t| t.expose().to_owned())
            .filter(|t| !t.is_empty()),
        board,
    });
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(scrape))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(&settings.bind)
    .map_err(|source| MetricsError::Bind {
        addr: settings.bind.clone(),
        source,
    })?;
    let addr =
        server.addrs().first().copied().ok_or_else(|| {
            MetricsError::Build(format!("no address bound for {}", settings.bind))
        })?;
    let server = server.run();
    let srv_handle = server.handle();
    actix_rt::spawn(server);
    // Histogram samples are drained into their buckets at upkeep (and at each render).
    let upkeep = actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
    tracing::info!(%addr, token = state_has_token(settings), "metrics listening");
    Ok(Some(MetricsServer {
        addr,
        handle: srv_handle,
        upkeep,
    }))
}

fn state_has_token(settings: &MetricsSettings) -> bool {
    settings.token.as_ref().is_some_and(|t| !t.is_empty())
}

/// Wall time of the phases of one piece of work, logged as one DEBUG line (target
/// `decnetd::laps`) when dropped: `RUST_LOG=decnetd::laps=debug` shows where a clustering tick
/// or an intake profiler pass spends its time. Not a Prometheus metric; costs one `Instant::now()` per phase.
#[derive(Debug)]
pub struct Laps {
    what: &'static str,
    last: std::time::Instant,
    laps: Vec<(&'static str, Duration)>,
}

impl Laps {
    pub fn new(what: &'static str) -> Self {
        Laps {
            what,
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    /// The phase `name` ended now (it began at the previous lap or at [`Laps::new`]).
    pub fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((name, now.duration_since(self.last)));
        self.last = now;
    }
}

impl Drop for Laps {
    fn drop(&mut self) {
        if self.laps.is_empty()
            || !tracing::enabled!(target: "decnetd::laps", tracing::Level::DEBUG)
        {
            return;
        }
        let phases = self
            .laps
            .iter()
            .map(|(n, d)| format!("{n}={:.3}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" ");
        tracing::debug!(target: "decnetd::laps", what = self.what, %phases, "phases (s)");
    }
}

//! `GET /api/v1/stream` — the landing page / Live Logs firehose (dashboard-contract.md §4).
//!
//! Unnamed-style `event: message` frames whose data is `{"type": "stats"|"logs", "data": …}`:
//! `: keepalive`, then a `stats` frame at once (the landing page waits for it), then every
//! second new log rows (id > last seen, ascending, ≤ 50) followed by fresh stats, and stats
//! every 10 s otherwise. On an internal failure: `{"type":"error","message":"Stream
//! interrupted"}` and the stream ends. `histogram` frames are ignored by both consumers and are
//! not sent.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use actix_web_lab::sse;
use futures_util::future::LocalBoxFuture;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::http::auth::{SseSlot, StreamViewer};
use crate::http::error::ApiError;
use crate::http::sse::{acquire_slot, keepalive, named, sse_http_response, KEEPALIVE};
use crate::http::state::AppState;

/// Rows per `logs` frame.
pub const LOGS_PER_FRAME: i64 = 50;

/// Cadence of the firehose.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How often new rows are looked for.
    pub poll: Duration,
    /// Stats frame period when no rows arrive.
    pub stats_every: Duration,
    /// Keepalive after this much silence.
    pub keepalive: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll: Duration::from_secs(1),
            stats_every: Duration::from_secs(10),
            keepalive: KEEPALIVE,
        }
    }
}

/// The `stats` frame payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Stats {
    pub total_logs: i64,
    pub unique_attackers: i64,
    pub active_deckies: i64,
    pub deployed_deckies: i64,
}

/// Row filter of the Live Logs page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Case-insensitive substring over the row's text columns.
    pub search: Option<String>,
    /// Only rows at or after this time (`YYYY-MM-DD HH:MM:SS`, UTC).
    pub start_time: Option<chrono::NaiveDateTime>,
}

/// Where the stream reads from. The daemon's source is [`AppState::live`]; the intake area
/// provides the database-backed implementation (log rows, attackers, deckies live in its
/// tables), unit tests a fake.
pub trait LiveSource: Send + Sync + 'static {
    fn stats(&self) -> LocalBoxFuture<'_, Result<Stats, ApiError>>;
    /// Highest log id now (0 when empty).
    fn max_log_id(&self) -> LocalBoxFuture<'_, Result<i64, ApiError>>;
    /// Up to `limit` rows with `id > after`, ascending id, as dashboard log rows (each has `id`).
    fn logs_after<'a>(
        &'a self,
        after: i64,
        filter: &'a LogFilter,
        limit: i64,
    ) -> LocalBoxFuture<'a, Result<Vec<Value>, ApiError>>;
}

/// The source used until a log store is wired in: no rows, zero counts (logged once).
pub struct NoLogStore;

impl LiveSource for NoLogStore {
    fn stats(&self) -> LocalBoxFuture<'_, Result<Stats, ApiError>> {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| tracing::warn!("/stream: no log store wired; stats are zero"));
        Box::pin(async { Ok(Stats::default()) })
    }
    fn max_log_id(&self) -> LocalBoxFuture<'_, Result<i64, ApiError>> {
        Box::pin(async { Ok(0) })
    }
    fn logs_after<'a>(
        &'a self,
        _after: i64,
        _filter: &'a LogFilter,
        _limit: i64,
    ) -> LocalBoxFuture<'a, Result<Vec<Value>, ApiError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Single-use ticket from `POST /auth/sse-ticket`.
    pub ticket: Option<String>,
    /// Text filter for `logs` frames.
    pub search: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS`: only rows at or after this time.
    pub start_time: Option<String>,
    /// Start after this log id (0 = from the current newest row).
    #[serde(rename = "lastEventId")]
    #[param(rename = "lastEventId")]
    pub last_event_id: Option<i64>,
}

/// The data of one `/stream` frame (OpenAPI shape).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StreamFrame {
    /// `stats` (counters object), `logs` (array of log rows) or `error`.
    #[serde(rename = "type")]
    #[schema(pattern = "^(stats|logs|error)$")]
    pub kind: String,
    /// `stats`: the landing-page counters; `logs`: new rows (see `GET /logs`).
    #[schema(value_type = Object)]
    pub data: Option<Value>,
    /// `error` frames only.
    pub message: Option<String>,
}

fn message(kind: &str, data: Value) -> sse::Event {
    named("message", &json!({ "type": kind, "data": data }))
}

fn error_message() -> sse::Event {
    named(
        "message",
        &json!({"type": "error", "message": "Stream interrupted"}),
    )
}

fn stats_frame(s: &Stats) -> sse::Event {
    message("stats", json!(s))
}

/// Parse the query into a filter (422 naming the parameter).
pub fn parse_filter(q: &StreamQuery) -> Result<LogFilter, ApiError> {
    let search = q
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty() && !matches!(*s, "null" | "NULL" | "undefined"))
        .map(str::to_string);
    let start_time = match q.start_time.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(
            chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S"))
                .map_err(|_| {
                    ApiError::invalid_field("start_time", "must be YYYY-MM-DD HH:MM:SS")
                })?,
        ),
    };
    Ok(LogFilter { search, start_time })
}

struct Live {
    _slot: SseSlot,
    source: Arc<dyn LiveSource>,
    filter: LogFilter,
    last_id: i64,
    pending: VecDeque<sse::Event>,
    since_frame: tokio::time::Instant,
    since_stats: tokio::time::Instant,
    timing: Timing,
    done: bool,
}

/// The frame stream; `first_stats` is sent right after the opening keepalive.
pub fn live_stream(
    slot: SseSlot,
    source: Arc<dyn LiveSource>,
    filter: LogFilter,
    last_id: i64,
    first_stats: Stats,
    timing: Timing,
) -> impl Stream<Item = sse::Event> + 'static {
    let now = tokio::time::Instant::now();
    let st: Live = Live {
        _slot: slot,
        source,
        filter,
        last_id,
        pending: VecDeque::from([keepalive(), stats_frame(&first_stats)]),
        since_frame: now,
        since_stats: now,
        timing,
        done: false,
    };
    futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(ev) = st.pending.pop_front() {
                st.since_frame = tokio::time::Instant::now();
                return Some((ev, st));
            }
            if st.done {
                return None;
            }
            tokio::time::sleep(st.timing.poll).await;
            if let Err(e) = step(&mut st).await {
                tracing::warn!(error = %e, "live stream failed");
                st.pending.push_back(error_message());
                st.done = true;
                continue;
            }
            if st.pending.is_empty() && st.since_frame.elapsed() >= st.timing.keepalive {
                st.pending.push_back(keepalive());
            }
        }
    })
}

async fn step(st: &mut Live) -> Result<(), ApiError> {
    let rows = st
        .source
        .logs_after(st.last_id, &st.filter, LOGS_PER_FRAME)
        .await?;
    let fresh = !rows.is_empty();
    if let Some(max) = rows.iter().filter_map(|r| r["id"].as_i64()).max() {
        st.last_id = st.last_id.max(max);
    }
    if fresh {
        st.pending.push_back(message("logs", Value::Array(rows)));
    }
    if fresh || st.since_stats.elapsed() >= st.timing.stats_every {
        let stats = st.source.stats().await?;
        st.pending.push_back(stats_frame(&stats));
        st.since_stats = tokio::time::Instant::now();
    }
    Ok(())
}

#[utoipa::path(
    get, path = "/api/v1/stream", tag = "Observability",
    params(StreamQuery),
    responses(
        (status = 200, description = "`event: message` frames whose data is one JSON object: {type: stats|logs|error, data}", content_type = "text/event-stream", body = StreamFrame),
        (status = 429, description = "SSE connection limit (N) reached"),
    )
)]
pub async fn stream(
    viewer: StreamViewer,
    state: web::Data<AppState>,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = parse_filter(&query)?;
    let slot = acquire_slot(&state, &viewer)?;
    let source = state.live.clone();
    let first = source.stats().await?;
    let last_id = match query.last_event_id {
        Some(id) if id > 0 => id,
        _ => source.max_log_id().await?,
    };
    Ok(sse_http_response(live_stream(
        slot,
        source,
        filter,
        last_id,
        first,
        Timing::default(),
    )))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/stream", web::get().to(stream));
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(stream), components(schemas(Stats)))]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::auth::SseSlots;
    use actix_web::body::MessageBody;
    use parking_lot::Mutex;

    #[derive(Clone, Default)]
    struct Fake {
        rows: Arc<Mutex<Vec<Value>>>,
        fail: Arc<Mutex<bool>>,
    }

    impl LiveSource for Fake {
        fn stats(&self) -> LocalBoxFuture<'_, Result<Stats, ApiError>> {
            let n = self.rows.lock().len() as i64;
            Box::pin(async move {
                Ok(Stats {
                    total_logs: n,
                    ..Stats::default()
                })
            })
        }
        fn max_log_id(&self) -> LocalBoxFuture<'_, Result<i64, ApiError>> {
            let n = self.rows.lock().len() as i64;
            Box::pin(async move { Ok(n) })
        }
        fn logs_after<'a>(
            &'a self,
            after: i64,
            _f: &'a LogFilter,
            limit: i64,
        ) -> LocalBoxFuture<'a, Result<Vec<Value>, ApiError>> {
            let res = if *self.fail.lock() {
                Err(ApiError::internal("db down"))
            } else {
                Ok(self
                    .rows
                    .lock()
                    .iter()
                    .filter(|r| r["id"].as_i64().unwrap() > after)
                    .take(limit as usize)
                    .cloned()
                    .collect())
            };
            Box::pin(async move { res })
        }
    }

    /// The next frame (ending in its blank line) of `body`; frames that arrived together in
    /// one chunk wait in `buf`.
    async fn next_frame(
        body: &mut std::pin::Pin<Box<impl MessageBody<Error = impl std::fmt::Debug>>>,
        buf: &mut String,
    ) -> Option<String> {
        loop {
            if let Some(end) = buf.find("\n\n") {
                let frame = buf[..end + 2].to_string();
                buf.drain(..end + 2);
                return Some(frame);
            }
            let chunk = futures_util::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await?;
            buf.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    }

    fn data(frame: &str) -> Value {
        let line = frame.lines().find(|l| l.starts_with("data: ")).unwrap();
        serde_json::from_str(&line[6..]).unwrap()
    }

    #[tokio::test]
    async fn stats_first_then_logs_then_error() {
        let fake = Fake::default();
        let slots = SseSlots::new(1);
        let s = live_stream(
            slots.try_acquire("u").unwrap(),
            Arc::new(fake.clone()),
            LogFilter::default(),
            0,
            Stats::default(),
            Timing {
                poll: Duration::from_millis(5),
                stats_every: Duration::from_millis(60),
                keepalive: Duration::from_secs(60),
            },
        );
        let mut body = Box::pin(sse_http_response(s).into_body());
        let mut buf = String::new();
        assert_eq!(
            next_frame(&mut body, &mut buf).await.unwrap(),
            ": keepalive\n\n"
        );
        let f = next_frame(&mut body, &mut buf).await.unwrap();
        assert!(f.starts_with("event: message\n"));
        assert_eq!(data(&f)["type"], "stats");
        assert_eq!(data(&f)["data"]["total_logs"], 0);

        fake.rows.lock().push(json!({"id": 1, "msg": "a"}));
        fake.rows.lock().push(json!({"id": 2, "msg": "b"}));
        let logs = data(&next_frame(&mut body, &mut buf).await.unwrap());
        assert_eq!(logs["type"], "logs");
        assert_eq!(logs["data"].as_array().unwrap().len(), 2);
        let stats = data(&next_frame(&mut body, &mut buf).await.unwrap());
        assert_eq!(stats["data"]["total_logs"], 2);

        // quiet: the next frame is a periodic stats frame, not a repeat of old rows
        let f = data(&next_frame(&mut body, &mut buf).await.unwrap());
        assert_eq!(f["type"], "stats");

        *fake.fail.lock() = true;
        let f = data(&next_frame(&mut body, &mut buf).await.unwrap());
        assert_eq!(f, json!({"type":"error","message":"Stream interrupted"}));
        assert!(
            next_frame(&mut body, &mut buf).await.is_none(),
            "stream ends"
        );
        drop(body);
        assert_eq!(slots.in_use("u"), 0);
    }

    #[test]
    fn filter_parsing() {
        let q = |search: Option<&str>, start: Option<&str>| StreamQuery {
            ticket: None,
            search: search.map(str::to_string),
            start_time: start.map(str::to_string),
            last_event_id: None,
        };
        assert_eq!(parse_filter(&q(Some("null"), None)).unwrap().search, None);
        assert_eq!(
            parse_filter(&q(Some(" ssh "), None))
                .unwrap()
                .search
                .as_deref(),
            Some("ssh")
        );
        assert!(parse_filter(&q(None, Some("2024-01-02 03:04:05")))
            .unwrap()
            .start_time
            .is_some());
        let err = parse_filter(&q(None, Some("yesterday"))).unwrap_err();
        assert!(err.to_string().contains("start_time"));
    }
}

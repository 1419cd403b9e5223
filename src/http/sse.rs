//! SSE infrastructure (spec/platform.md §7.1, dashboard-contract.md §3) on `actix-web-lab`.
//!
//! A stream route looks like:
//! ```ignore
//! async fn events(viewer: StreamViewer, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
//!     let snapshot = serde_json::json!({ "identities": first_page(&state.db).await? });
//!     sse::sse_response(&state, &viewer, "identity.>", snapshot, sse::strip_family).await
//! }
//! ```
//! The per-user slot is taken *before* the 200 is produced (429 otherwise), the first frame is
//! the comment `: keepalive`, then `event: snapshot`, then one named event per registry event
//! (`data: {topic, type, ts, payload}`), and a `: keepalive` comment after every 15 s without a
//! frame. The registry subscription's own bounded buffer (drop-oldest, §1.5) is the relay
//! queue; the stream owns the subscription and the slot, so a disconnect (the body is dropped)
//! releases both. With the registry disabled the stream sends only keepalives.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, ContentEncoding};
use actix_web::HttpResponse;
use actix_web_lab::sse::{self, Sse};
use futures_util::{Stream, StreamExt as _};
use serde_json::{json, Value};

use crate::actors::topics::Envelope;
use crate::http::auth::{Principal, SseSlot};
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// Keepalive period without any other frame.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// The keepalive comment frame (`: keepalive`).
pub fn keepalive() -> sse::Event {
    sse::Event::Comment("keepalive".into())
}

/// A named event whose data is one line of compact JSON.
pub fn named(name: &str, data: &Value) -> sse::Event {
    // `Value`'s Display is compact single-line JSON (string contents escape newlines)
    sse::Event::Data(sse::Data::new(data.to_string()).event(name.to_string()))
}

/// The `event: error` frame sent on an internal failure before closing (§7.1).
pub fn error_frame() -> sse::Event {
    named("error", &json!({"message": "Stream interrupted"}))
}

/// OpenAPI shape of the `data` of a relayed registry event (every named event after the
/// snapshot): one line of JSON per frame.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = SseEnvelope)]
pub struct EnvelopeSchema {
    /// The concrete topic the registry routed on.
    pub topic: String,
    /// Short publisher-chosen discriminator (may be empty).
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix epoch seconds.
    pub ts: f64,
    /// The event's payload (always an object).
    pub payload: serde_json::Map<String, Value>,
}

/// The relayed data of a registry event: `{topic, type, ts, payload}`.
pub fn envelope_data(env: &Envelope) -> Value {
    json!({
        "topic": env.topic,
        "type": env.kind,
        "ts": env.ts,
        "payload": env.payload,
    })
}

/// A named event relaying `env` as [`envelope_data`]; the JSON is built once per envelope and
/// shared by every stream that relays it.
pub fn envelope_frame(name: &str, env: &Envelope) -> sse::Event {
    let data = env.relay.get_or_init(|| envelope_data(env).to_string());
    sse::Event::Data(sse::Data::new(data).event(name.to_string()))
}

/// Event name = topic minus its family prefix (`identity.observation.linked` →
/// `observation.linked`); a one-token topic passes through.
pub fn strip_family(topic: &str) -> String {
    topic
        .split_once('.')
        .map_or(topic, |(_, rest)| rest)
        .to_string()
}

/// Event name = second token (`orchestrator.traffic.<decky>` → `traffic`).
pub fn second_token(topic: &str) -> String {
    topic.split('.').nth(1).unwrap_or(topic).to_string()
}

/// Event name = the topic itself.
pub fn passthrough(topic: &str) -> String {
    topic.to_string()
}

/// Wrap an SSE event stream in the 200 response with the contract headers.
pub fn sse_http_response<S>(stream: S) -> HttpResponse
where
    S: Stream<Item = sse::Event> + 'static,
{
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .insert_header(ContentEncoding::Identity)
        .body(Sse::from_infallible_stream(stream))
}

/// Take the caller's SSE slot: 429 `SSE connection limit (N) reached` when full.
pub fn acquire_slot(state: &AppState, principal: &Principal) -> Result<SseSlot, ApiError> {
    state.auth.sse.try_acquire(&principal.uuid)
}

/// The standard relay: slot, subscription to `pattern`, keepalive, snapshot, then one event
/// per registry event named by `name_of(topic)`.
pub async fn sse_response(
    state: &AppState,
    principal: &Principal,
    pattern: &str,
    snapshot: Value,
    name_of: fn(&str) -> String,
) -> Result<HttpResponse, ApiError> {
    sse_response_with(state, principal, pattern, Some(snapshot), move |env| {
        Some(envelope_frame(&name_of(&env.topic), env))
    })
    .await
}

/// Like [`sse_response`] with a caller-built frame per event (`None` = not relayed), e.g. to
/// filter on the payload. `snapshot: None` skips the snapshot frame.
pub async fn sse_response_with<F>(
    state: &AppState,
    principal: &Principal,
    pattern: &str,
    snapshot: Option<Value>,
    relay: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnMut(&Envelope) -> Option<sse::Event> + 'static,
{
    let slot = acquire_slot(state, principal)?;
    let subscription = if state.registry.is_enabled() {
        match state.registry.subscribe(pattern).await {
            Ok(sub) => Some(sub),
            Err(e) => {
                tracing::warn!(pattern, error = %e, "SSE subscribe failed; keepalive-only stream");
                None
            }
        }
    } else {
        None
    };
    let mut first = vec![keepalive()];
    if let Some(s) = snapshot {
        first.push(named("snapshot", &s));
    }
    Ok(sse_http_response(relay_stream(
        slot,
        subscription,
        first,
        relay,
        KEEPALIVE,
    )))
}

struct Relay<S, F> {
    _slot: SseSlot,
    sub: Option<S>,
    pending: VecDeque<sse::Event>,
    relay: F,
    keepalive: Duration,
}

/// The frame stream: `first` frames, then relayed events with keepalives after `keepalive` of
/// silence. When the subscription ends (registry disabled/closed) only keepalives follow.
/// Dropping the stream drops the subscription and the slot.
pub fn relay_stream<S, F>(
    slot: SseSlot,
    sub: Option<S>,
    first: Vec<sse::Event>,
    relay: F,
    keepalive_every: Duration,
) -> impl Stream<Item = sse::Event> + 'static
where
    S: Stream<Item = Arc<Envelope>> + Unpin + 'static,
    F: FnMut(&Envelope) -> Option<sse::Event> + 'static,
{
    let state = Relay {
        _slot: slot,
        sub,
        pending: first.into(),
        relay,
        keepalive: keepalive_every,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        if let Some(ev) = st.pending.pop_front() {
            return Some((ev, st));
        }
        let deadline = tokio::time::Instant::now() + st.keepalive;
        loop {
            let Some(sub) = st.sub.as_mut() else {
                tokio::time::sleep_until(deadline).await;
                return Some((keepalive(), st));
            };
            match tokio::time::timeout_at(deadline, sub.next()).await {
                Ok(Some(env)) => {
                    if let Some(ev) = (st.relay)(&env) {
                        return Some((ev, st));
                    }
                }
                Ok(None) => st.sub = None,
                Err(_elapsed) => return Some((keepalive(), st)),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::auth::SseSlots;
    use actix_web::body::MessageBody;

    fn env(topic: &str) -> Arc<Envelope> {
        Arc::new(Envelope {
            v: 1,
            id: "0".repeat(32),
            topic: topic.into(),
            kind: "formed".into(),
            ts: 1.5,
            payload: json!({"identity_uuid": "x"}),
            relay: Default::default(),
        })
    }

    async fn frames(body: impl Stream<Item = sse::Event> + 'static, n: usize) -> Vec<String> {
        let resp = sse_http_response(body);
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "text/event-stream"
        );
        assert_eq!(resp.headers().get("x-accel-buffering").unwrap(), "no");
        assert_eq!(resp.headers().get("cache-control").unwrap(), "no-cache");
        let mut body = Box::pin(resp.into_body());
        let mut out = Vec::new();
        while out.len() < n {
            let chunk = futures_util::future::poll_fn(|cx| body.as_mut().poll_next(cx))
                .await
                .unwrap()
                .unwrap();
            out.push(String::from_utf8(chunk.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn names() {
        assert_eq!(
            strip_family("identity.observation.linked"),
            "observation.linked"
        );
        assert_eq!(
            strip_family("identity.campaign.assigned"),
            "campaign.assigned"
        );
        assert_eq!(second_token("orchestrator.traffic.d1"), "traffic");
        assert_eq!(passthrough("a.b"), "a.b");
    }

    #[tokio::test]
    async fn framing_order_relay_and_keepalive() {
        let slots = SseSlots::new(1);
        let (tx, rx) = futures::channel::mpsc::unbounded::<Arc<Envelope>>();
        let slot = slots.try_acquire("u").unwrap();
        let stream = relay_stream(
            slot,
            Some(rx),
            vec![keepalive(), named("snapshot", &json!({"identities": []}))],
            |e: &Envelope| {
                (e.topic != "identity.skip").then(|| envelope_frame(&strip_family(&e.topic), e))
            },
            Duration::from_millis(50),
        );
        tx.unbounded_send(env("identity.skip")).unwrap();
        tx.unbounded_send(env("identity.formed")).unwrap();
        let got = frames(stream, 4).await;
        assert_eq!(got[0], ": keepalive\n\n");
        assert_eq!(got[1], "event: snapshot\ndata: {\"identities\":[]}\n\n");
        assert!(got[2].starts_with("event: formed\ndata: {"), "{}", got[2]);
        let data: Value = serde_json::from_str(
            got[2]
                .lines()
                .nth(1)
                .unwrap()
                .strip_prefix("data: ")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(data["topic"], "identity.formed");
        assert_eq!(data["type"], "formed");
        assert_eq!(data["payload"]["identity_uuid"], "x");
        assert!(data.get("id").is_none());
        // nothing else arrives: after the keepalive period a keepalive is sent
        assert_eq!(got[3], ": keepalive\n\n");
        drop(tx);
    }

    #[tokio::test]
    async fn slot_released_when_stream_dropped_and_keepalive_only_without_registry() {
        let slots = SseSlots::new(1);
        let slot = slots.try_acquire("u").unwrap();
        assert!(slots.try_acquire("u").is_err());
        let stream = relay_stream(
            slot,
            None::<futures::channel::mpsc::UnboundedReceiver<Arc<Envelope>>>,
            vec![keepalive()],
            |_e: &Envelope| None,
            Duration::from_millis(10),
        );
        let got = frames(stream, 3).await;
        assert!(got.iter().all(|f| f == ": keepalive\n\n"));
        assert_eq!(
            slots.in_use("u"),
            0,
            "body dropped with the frames() future"
        );
        assert!(slots.try_acquire("u").is_ok());
    }

    #[actix_rt::test]
    async fn envelope_frames_share_one_serialization() {
        let e = env("identity.formed");
        let one = e.relay.get_or_init(|| envelope_data(&e).to_string());
        let two = e.relay.get_or_init(|| unreachable!("serialized twice"));
        assert_eq!(one.as_ptr(), two.as_ptr(), "one buffer for every stream");
        // The frame is the one `named` builds from the same data.
        let cached = frames(futures::stream::iter([envelope_frame("formed", &e)]), 1).await;
        let fresh = frames(
            futures::stream::iter([named("formed", &envelope_data(&e))]),
            1,
        )
        .await;
        assert_eq!(cached, fresh);
        // The cache is not part of the envelope's value.
        assert_eq!(*e, *env("identity.formed"));
    }

    #[test]
    fn error_frame_shape() {
        let ev = error_frame();
        let sse::Event::Data(_) = ev else {
            panic!("data frame expected")
        };
    }
}

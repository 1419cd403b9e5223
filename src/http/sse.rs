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
//!
//! Frames are encoded by `actix-web-lab` ([`Frame::from`] an [`sse::Event`]). A relayed registry
//! event is encoded once for every stream that relays it under the same name
//! ([`envelope_frame`]), and the frames of a burst leave a stream as one body chunk
//! ([`SseBody`]): at 1 000 streams the per-frame work is a copy, not an encoding.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header::{self, ContentEncoding};
use actix_web::HttpResponse;
use actix_web_lab::sse::{self, Sse};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use serde_json::{json, Value};

use crate::actors::topics::Envelope;
use crate::http::auth::{Principal, SseSlot};
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// Keepalive period without any other frame.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// One SSE frame in its wire form (ending in its blank line). Cloning shares the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame(Bytes);

impl Frame {
    /// The frame's bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
}

impl From<sse::Event> for Frame {
    /// Encodes `ev` with `actix-web-lab`'s event-stream encoder: its `Sse` body over a
    /// one-event stream yields exactly that event's bytes on its first poll.
    fn from(ev: sse::Event) -> Self {
        let mut one = Sse::from_infallible_stream(futures_util::stream::iter([ev]));
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        match Pin::new(&mut one).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(bytes))) => Frame(bytes),
            // A ready one-item stream always yields its item on the first poll.
            _ => Frame(Bytes::new()),
        }
    }
}

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

/// The frame relaying `env` as a named event whose data is [`envelope_data`]. The JSON is
/// built once per envelope, and the frame encoded once per envelope for the first name it
/// is relayed under, shared by every stream that relays it so.
pub fn envelope_frame(name: &str, env: &Envelope) -> Frame {
    let encode = || {
        let data = env.relay.get_or_init(|| envelope_data(env).to_string());
        Frame::from(sse::Event::Data(
            sse::Data::new(data).event(name.to_string()),
        ))
        .0
    };
    Frame(env.relay.frame_or_init(name, encode))
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

/// Wrap a stream of SSE frames (or events, encoded as they come) in the 200 response with
/// the contract headers.
pub fn sse_http_response<S, T>(stream: S) -> HttpResponse
where
    S: Stream<Item = T> + 'static,
    T: Into<Frame>,
{
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .insert_header(ContentEncoding::Identity)
        .body(SseBody::new(stream))
}

/// Largest body chunk [`SseBody`] builds out of frames that are ready together.
pub const COALESCE_MAX_BYTES: usize = 16 * 1024;

/// The response body of an SSE stream: the frames that are ready at the same poll leave as
/// one chunk (up to [`COALESCE_MAX_BYTES`]), so a burst of registry events reaches a client
/// as a few HTTP chunks instead of one per frame (the client, and the chunked encoding on the
/// server, pay per chunk). Nothing waits for company: a chunk goes out as soon as the stream
/// has nothing more ready. SSE frames carry their own terminator, so where the chunk
/// boundaries fall does not change what a client parses.
pub struct SseBody<S> {
    frames: Pin<Box<S>>,
    done: bool,
}

impl<S> SseBody<S> {
    /// The body of `frames`.
    pub fn new(frames: S) -> Self {
        Self {
            frames: Box::pin(frames),
            done: false,
        }
    }
}

impl<S, T> MessageBody for SseBody<S>
where
    S: Stream<Item = T>,
    T: Into<Frame>,
{
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let first = match this.frames.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                this.done = true;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(f)) => f.into().0,
        };
        // The frames ready behind the first, collected before copying so that the chunk is
        // allocated once, at its size.
        let mut more: Vec<Bytes> = Vec::new();
        let mut len = first.len();
        while len < COALESCE_MAX_BYTES {
            match this.frames.as_mut().poll_next(cx) {
                // The stream registered the waker; what is here goes out now.
                Poll::Pending => break,
                Poll::Ready(None) => {
                    this.done = true;
                    break;
                }
                Poll::Ready(Some(f)) => {
                    let b = f.into().0;
                    len += b.len();
                    more.push(b);
                }
            }
        }
        if more.is_empty() {
            return Poll::Ready(Some(Ok(first)));
        }
        let mut chunk = BytesMut::with_capacity(len);
        chunk.extend_from_slice(&first);
        for b in &more {
            chunk.extend_from_slice(b);
        }
        Poll::Ready(Some(Ok(chunk.freeze())))
    }
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
    F: FnMut(&Envelope) -> Option<Frame> + Unpin + 'static,
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

/// The frame stream [`relay_stream`] builds.
pub struct Relay<S, F> {
    _slot: SseSlot,
    sub: Option<S>,
    pending: VecDeque<Frame>,
    relay: F,
    keepalive: Duration,
    /// When the next keepalive is due; moved on when the stream goes quiet after frames.
    quiet_until: Pin<Box<tokio::time::Sleep>>,
    /// Frames went out since `quiet_until` was last set.
    sent: bool,
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
) -> Relay<S, F>
where
    S: Stream<Item = Arc<Envelope>> + Unpin + 'static,
    F: FnMut(&Envelope) -> Option<Frame> + Unpin + 'static,
{
    Relay {
        _slot: slot,
        sub,
        pending: first.into_iter().map(Frame::from).collect(),
        relay,
        keepalive: keepalive_every,
        quiet_until: Box::pin(tokio::time::sleep(keepalive_every)),
        sent: true,
    }
}

impl<S, F> Stream for Relay<S, F>
where
    S: Stream<Item = Arc<Envelope>> + Unpin,
    F: FnMut(&Envelope) -> Option<Frame> + Unpin,
{
    type Item = Frame;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        let st = self.get_mut();
        if let Some(f) = st.pending.pop_front() {
            st.sent = true;
            return Poll::Ready(Some(f));
        }
        while let Some(sub) = st.sub.as_mut() {
            match Pin::new(sub).poll_next(cx) {
                Poll::Ready(Some(env)) => {
                    if let Some(f) = (st.relay)(&env) {
                        st.sent = true;
                        return Poll::Ready(Some(f));
                    }
                }
                Poll::Ready(None) => st.sub = None,
                Poll::Pending => break,
            }
        }
        // Nothing ready. The silence is counted from the last frame, read from the clock
        // once a burst is over rather than once per frame.
        if std::mem::take(&mut st.sent) {
            let at = tokio::time::Instant::now() + st.keepalive;
            st.quiet_until.as_mut().reset(at);
        }
        if st.quiet_until.as_mut().poll(cx).is_ready() {
            st.sent = true;
            return Poll::Ready(Some(Frame::from(keepalive())));
        }
        Poll::Pending
    }
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

    /// The first `n` frames of the response body, each ending in its blank line; frames that
    /// arrived in one chunk are split apart.
    async fn frames(body: impl Stream<Item = impl Into<Frame>> + 'static, n: usize) -> Vec<String> {
        let resp = sse_http_response(body);
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "text/event-stream"
        );
        assert_eq!(resp.headers().get("x-accel-buffering").unwrap(), "no");
        assert_eq!(resp.headers().get("cache-control").unwrap(), "no-cache");
        let mut body = Box::pin(resp.into_body());
        let mut out = Vec::new();
        let mut buf = String::new();
        while out.len() < n {
            let chunk = futures_util::future::poll_fn(|cx| body.as_mut().poll_next(cx))
                .await
                .unwrap()
                .unwrap();
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buf.find("\n\n") {
                out.push(buf[..end + 2].to_string());
                buf.drain(..end + 2);
            }
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
        // The frame is the one `named` builds from the same data, encoded once per name.
        let first = envelope_frame("formed", &e);
        let again = envelope_frame("formed", &e);
        assert_eq!(
            first.bytes().as_ptr(),
            again.bytes().as_ptr(),
            "encoded once"
        );
        let fresh = Frame::from(named("formed", &envelope_data(&e)));
        assert_eq!(first, fresh);
        assert_eq!(
            frames(futures::stream::iter([first]), 1).await,
            frames(
                futures::stream::iter([named("formed", &envelope_data(&e))]),
                1
            )
            .await
        );
        // Another name is encoded for itself, and does not replace the cached one.
        let other = envelope_frame("identity.formed", &e);
        assert_eq!(
            other,
            Frame::from(named("identity.formed", &envelope_data(&e)))
        );
        assert_eq!(
            envelope_frame("formed", &e).bytes().as_ptr(),
            again.bytes().as_ptr()
        );
        // The cache is not part of the envelope's value.
        assert_eq!(*e, *env("identity.formed"));
    }

    #[test]
    fn frames_are_actix_web_labs_encoding() {
        assert_eq!(Frame::from(keepalive()).bytes(), ": keepalive\n\n");
        assert_eq!(
            Frame::from(named("x", &json!({"a": "b\nc"}))).bytes(),
            "event: x\ndata: {\"a\":\"b\\nc\"}\n\n"
        );
        let multi = sse::Event::Data(sse::Data::new("l1\nl2"));
        assert_eq!(Frame::from(multi).bytes(), "data: l1\ndata: l2\n\n");
    }

    /// A stream yielding the given steps in order (`None` = not ready this time, which wakes
    /// the task at once), then ending.
    struct Steps(VecDeque<Option<&'static str>>);

    impl Stream for Steps {
        type Item = Frame;

        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
            match self.get_mut().0.pop_front() {
                None => Poll::Ready(None),
                Some(None) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Some(Some(s)) => Poll::Ready(Some(Frame(Bytes::from_static(s.as_bytes())))),
            }
        }
    }

    /// Every chunk the body yields until it ends.
    async fn chunks(steps: Vec<Option<&'static str>>) -> Vec<String> {
        let mut body = Box::pin(SseBody::new(Steps(steps.into())));
        let mut out = Vec::new();
        while let Some(c) = futures_util::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
            out.push(String::from_utf8(c.unwrap().to_vec()).unwrap());
        }
        out
    }

    #[actix_rt::test]
    async fn frames_ready_together_leave_as_one_chunk() {
        // Ready together: one chunk; a pause ends the chunk, nothing waits for company.
        let got = chunks(vec![
            Some("a\n\n"),
            Some("b\n\n"),
            Some("c\n\n"),
            None,
            Some("d\n\n"),
        ])
        .await;
        assert_eq!(got, ["a\n\nb\n\nc\n\n", "d\n\n"]);
        // A chunk stops growing once it reaches the cap; the rest follows in the next one.
        const BIG: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\n\n";
        let n = COALESCE_MAX_BYTES / BIG.len() + 3;
        let got = chunks(vec![Some(BIG); n]).await;
        let sizes: Vec<usize> = got.iter().map(String::len).collect();
        assert_eq!(sizes, [COALESCE_MAX_BYTES, 3 * BIG.len()]);
        assert_eq!(got.concat(), BIG.repeat(n));
    }

    #[tokio::test]
    async fn a_burst_of_relayed_events_is_one_chunk() {
        let slots = SseSlots::new(1);
        let (tx, rx) = futures::channel::mpsc::unbounded::<Arc<Envelope>>();
        for _ in 0..50 {
            tx.unbounded_send(env("identity.formed")).unwrap();
        }
        let stream = relay_stream(
            slots.try_acquire("u").unwrap(),
            Some(rx),
            vec![keepalive()],
            |e: &Envelope| Some(envelope_frame(&strip_family(&e.topic), e)),
            Duration::from_secs(60),
        );
        let mut body = Box::pin(sse_http_response(stream).into_body());
        let chunk = futures_util::future::poll_fn(|cx| body.as_mut().poll_next(cx))
            .await
            .unwrap()
            .unwrap();
        let text = std::str::from_utf8(&chunk).unwrap();
        assert!(text.starts_with(": keepalive\n\nevent: formed\n"), "{text}");
        assert_eq!(text.matches("event: formed\n").count(), 50);
        drop(tx);
    }

    #[tokio::test]
    async fn the_keepalive_counts_from_the_last_frame() {
        let slots = SseSlots::new(1);
        let (tx, rx) = futures::channel::mpsc::unbounded::<Arc<Envelope>>();
        let every = Duration::from_millis(200);
        let stream = relay_stream(
            slots.try_acquire("u").unwrap(),
            Some(rx),
            vec![],
            |e: &Envelope| Some(envelope_frame("formed", e)),
            every,
        );
        let mut body = Box::pin(sse_http_response(stream).into_body());
        let started = tokio::time::Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            tx.unbounded_send(env("identity.formed")).unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let event = futures_util::future::poll_fn(|cx| body.as_mut().poll_next(cx))
            .await
            .unwrap()
            .unwrap();
        assert!(event.starts_with(b"event: formed\n"));
        let ka = futures_util::future::poll_fn(|cx| body.as_mut().poll_next(cx))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ka, ": keepalive\n\n");
        // 200 ms of silence after the event at ~150 ms, not 200 ms after the start.
        let at = started.elapsed();
        assert!(at >= Duration::from_millis(340), "keepalive after {at:?}");
    }

    #[test]
    fn error_frame_shape() {
        let ev = error_frame();
        let sse::Event::Data(_) = ev else {
            panic!("data frame expected")
        };
    }
}

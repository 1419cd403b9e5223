//! Webhooks end to end (spec platform.md §5, issue #17) against real HTTP receivers on
//! loopback (allowed by `webhooks.allow_loopback`, a test-only setting): signatures checked
//! with an independent HMAC (`ring`), the retry schedule, no retry on 400/3xx, the breaker,
//! dead letters and replay, SSRF refusals at create and at delivery, and durability across
//! restarts (in-process stop/start on both backends; `kill -9` of a real `decnetd serve`).

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use decnetd::actors::topics::{AttackerObserved, Event};
use decnetd::app::RunningApp;
use decnetd::config::Settings;
use decnetd::testkit;
use decnetd::testkit::receiver::{Hit, Receiver};
use reqwest::Method;
use serde_json::{json, Value};

async fn receiver(default: u16) -> Receiver {
    Receiver::start(default).expect("receiver on loopback")
}

// ---------------------------------------------------------------- daemon helpers

fn tune(s: &mut Settings) {
    s.auth.limiter_enabled = false;
    s.webhooks.allow_loopback = true;
    s.webhooks.timeout_s = 3.0;
    s.workers.disabled = decnetd::actors::supervisor::DISPLAY_ORDER
        .iter()
        .filter(|n| !matches!(**n, "webhooks" | "heartbeat" | "api" | "bus"))
        .map(|n| n.to_string())
        .collect();
}

async fn start_at(
    dir: &Path,
    db_url: Option<String>,
    tweak: impl FnOnce(&mut Settings),
) -> RunningApp {
    let mut s = testkit::settings(dir, db_url);
    tune(&mut s);
    tweak(&mut s);
    testkit::start(s).await.expect("daemon starts")
}

/// SQLite always; PostgreSQL when `DECNETD_TEST_PG_URL` is set.
async fn backends() -> Vec<(&'static str, Option<String>)> {
    let mut out = vec![("sqlite", None)];
    if let Some(url) = common::pg_database_url().await {
        out.push(("postgres", Some(url)));
    }
    out
}

async fn call(
    base: &str,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let res = rb.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn create(app: &RunningApp, token: &str, body: Value) -> Value {
    let (st, v) = call(
        &app.base_url(),
        Method::POST,
        "/api/v1/webhooks/",
        token,
        Some(body),
    )
    .await;
    assert_eq!(st, 201, "create: {v}");
    v
}

fn observed(ip: &str) -> Event {
    Event::AttackerObserved(AttackerObserved {
        attacker_ip: ip.to_owned(),
        decky: "web1".into(),
        service: "ssh".into(),
        event_type: "login".into(),
        first_seen: "2026-11-23T00:00:00Z".into(),
        attacker_uuid: Some(format!("uuid-{ip}")),
    })
}

/// Wait until the dispatcher has subscribed the current patterns (its heartbeat says so).
async fn dispatcher_ready(app: &RunningApp, patterns: u64) {
    let ok = testkit::eventually(Duration::from_secs(15), || async {
        let extra = app.state.status.extra_of("webhooks")?;
        (extra.get("patterns").and_then(Value::as_u64) == Some(patterns)).then_some(())
    })
    .await;
    assert!(
        ok.is_some(),
        "dispatcher never subscribed {patterns} pattern(s)"
    );
}

async fn wait_hits(r: &Receiver, n: usize, secs: u64) -> Vec<Hit> {
    testkit::eventually(Duration::from_secs(secs), || async {
        let h = r.hits();
        (h.len() >= n).then_some(h)
    })
    .await
    .unwrap_or_else(|| panic!("receiver got {} of {n} requests", r.hits().len()))
}

async fn deliveries(app: &RunningApp, token: &str, uuid: &str, q: &str) -> Value {
    let (st, v) = call(
        &app.base_url(),
        Method::GET,
        &format!("/api/v1/webhooks/{uuid}/deliveries?limit=1000{q}"),
        token,
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v
}

fn hmac_hex(key: &[u8], msg: &[u8]) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    hex::encode(ring::hmac::sign(&k, msg).as_ref())
}

// ---------------------------------------------------------------- routes and validation

#[actix_rt::test]
async fn routes_validate_and_never_leak_the_secret() {
    for (backend, url) in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let app = start_at(dir.path(), url, |s| s.webhooks.allow_loopback = false).await;
        let admin = testkit::token_for(&app, "wh-admin", "admin").await;
        let viewer = testkit::token_for(&app, "wh-viewer", "viewer").await;
        let base = app.base_url();

        let v = create(
            &app,
            &admin,
            json!({"name": "siem", "url": "https://93.184.215.14/in", "secret": "0123456789abcdef-secret",
                   "simple_events": ["DeckyStatus", "AttackerDetail"], "topic_patterns": ["canary.>", "attacker.>", ""]}),
        )
        .await;
        assert_eq!(v["secret"], "0123456789abcdef-secret", "{backend}");
        assert_eq!(
            v["topic_patterns"],
            json!(["decky.*.state", "decky.*.traffic", "attacker.>", "canary.>"])
        );
        assert_eq!(v["warnings"], json!([]));
        assert_eq!(v["format"], "generic");
        let uuid = v["uuid"].as_str().unwrap().to_owned();

        // Without the slash too; a generated secret; http:// warns.
        let (st, v2) = call(&base, Method::POST, "/api/v1/webhooks", &admin,
            Some(json!({"name": "chat", "url": "http://93.184.215.14/x", "topic_patterns": ["identity.formed"], "format": "standard"}))).await;
        assert_eq!(st, 201, "{v2}");
        assert!(v2["secret"].as_str().unwrap().starts_with("whsec_"));
        assert!(v2["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("insecure_url:"));

        for path in ["/api/v1/webhooks/", "/api/v1/webhooks"] {
            let (st, list) = call(&base, Method::GET, path, &admin, None).await;
            assert_eq!(st, 200);
            assert_eq!(list.as_array().unwrap().len(), 2);
            assert!(!list.to_string().contains("secret"), "{list}");
            let (st, _) = call(&base, Method::GET, path, &viewer, None).await;
            assert_eq!(st, 403, "viewers may not read or write webhooks");
        }
        let (st, _) = call(
            &base,
            Method::POST,
            "/api/v1/webhooks/",
            &viewer,
            Some(json!({"name": "v", "url": "https://93.184.215.14/", "topic_patterns": ["a.>"]})),
        )
        .await;
        assert_eq!(st, 403);

        // Order of checks and their details.
        let cases = [
            (
                json!({"name": "x", "url": "https://93.184.215.14/", "topic_patterns": []}),
                400,
                "Provide at least one",
            ),
            (
                json!({"name": "x", "url": "https://93.184.215.14/", "topic_patterns": ["a.>.b"]}),
                400,
                "'a.>.b'",
            ),
            (
                json!({"name": "x", "url": "https://93.184.215.14/", "topic_patterns": ["a..b"]}),
                400,
                "'a..b'",
            ),
            (
                json!({"name": "siem", "url": "https://93.184.215.14/", "topic_patterns": ["a.>"]}),
                409,
                "Webhook name already exists",
            ),
            (
                json!({"name": "x", "url": "ftp://93.184.215.14/", "topic_patterns": ["a.>"]}),
                422,
                "url",
            ),
            (
                json!({"name": "x", "url": "https://93.184.215.14/", "topic_patterns": ["a.>"], "secret": "short"}),
                400,
                "secret",
            ),
            (
                json!({"name": "", "url": "https://93.184.215.14/", "topic_patterns": ["a.>"]}),
                400,
                "name",
            ),
            (
                json!({"name": "x".repeat(65), "url": "https://93.184.215.14/", "topic_patterns": ["a.>"]}),
                422,
                "name",
            ),
            (
                json!({"name": "x", "url": "https://93.184.215.14/", "simple_events": ["Nope"]}),
                422,
                "Nope",
            ),
            (
                json!({"name": "x", "url": "https://93.184.215.14/", "topic_patterns": ["a.>"], "format": "xml"}),
                422,
                "xml",
            ),
        ];
        for (body, code, needle) in cases {
            let (st, v) = call(
                &base,
                Method::POST,
                "/api/v1/webhooks/",
                &admin,
                Some(body.clone()),
            )
            .await;
            assert_eq!(st, code, "{body} → {v}");
            let d = v["detail"].as_str().unwrap_or_default();
            assert!(d.contains(needle), "{body}: detail {d:?} lacks {needle:?}");
        }

        // PATCH: replace patterns, clear → 400, rename onto another → 409, empty → unchanged.
        let p = format!("/api/v1/webhooks/{uuid}");
        let (st, v) = call(
            &base,
            Method::PATCH,
            &p,
            &admin,
            Some(json!({"topic_patterns": ["custom.>"]})),
        )
        .await;
        assert_eq!(
            (st, v["topic_patterns"].clone()),
            (200, json!(["custom.>"]))
        );
        assert!(
            !v.to_string().contains("0123456789abcdef"),
            "secret never echoed"
        );
        let (st, v) = call(
            &base,
            Method::PATCH,
            &p,
            &admin,
            Some(json!({"simple_events": [], "topic_patterns": []})),
        )
        .await;
        assert_eq!(st, 400);
        assert_eq!(
            v["detail"],
            "Cannot clear all patterns; disable the webhook instead."
        );
        let (st, _) = call(
            &base,
            Method::PATCH,
            &p,
            &admin,
            Some(json!({"name": "chat"})),
        )
        .await;
        assert_eq!(st, 409);
        let (st, v) = call(
            &base,
            Method::PATCH,
            &p,
            &admin,
            Some(json!({"url": "http://10.0.0.5/"})),
        )
        .await;
        assert_eq!(st, 422);
        assert!(v["detail"].as_str().unwrap().contains("forbidden"));
        let (_, before) = call(&base, Method::GET, &p, &admin, None).await;
        let (st, after) = call(&base, Method::PATCH, &p, &admin, Some(json!({}))).await;
        assert_eq!((st, &before), (200, &after));

        // DELETE twice.
        let (st, v) = call(&base, Method::DELETE, &p, &admin, None).await;
        assert_eq!((st, v["message"].clone()), (200, json!("Webhook deleted")));
        let (st, v) = call(&base, Method::DELETE, &p, &admin, None).await;
        assert_eq!((st, v["detail"].clone()), (404, json!("Webhook not found")));
        app.stop().await;
    }
}

#[actix_rt::test]
async fn ssrf_refused_at_create_and_at_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_at(dir.path(), None, |s| s.webhooks.allow_loopback = false).await;
    let admin = testkit::token_for(&app, "wh-admin", "admin").await;
    let base = app.base_url();
    for url in [
        "http://127.0.0.1:8000/",
        "http://localhost/", // a name that resolves to loopback
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.0.10/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/", // mapped metadata address
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "http://2130706433/", // 127.0.0.1 spelled as an integer
        "http://0x7f.1/",
        "http://does-not-exist.invalid/",
    ] {
        let (st, v) = call(
            &base,
            Method::POST,
            "/api/v1/webhooks/",
            &admin,
            Some(json!({"name": "x", "url": url, "topic_patterns": ["attacker.>"]})),
        )
        .await;
        assert_eq!(st, 422, "{url}: {v}");
        assert!(
            v["detail"].as_str().unwrap().contains("forbidden"),
            "{url}: {v}"
        );
    }

    // At delivery: a row that points at loopback (written behind the API's back, as if the
    // name had been rebound after creation) ends dead with zero attempts.
    let r = receiver(200).await;
    let row = decnetd::db::models::webhooks::Subscription::fresh(
        "rebound",
        &r.url,
        "0123456789abcdef",
        &["attacker.>".to_owned()],
        "generic",
        true,
    );
    let uuid = row.uuid.clone();
    decnetd::db::repo::webhooks::create(&app.state.db, row)
        .await
        .unwrap();
    app.state
        .registry
        .publish(Event::WebhookSubscriptionsChanged);
    dispatcher_ready(&app, 1).await;
    app.state.registry.publish(observed("203.0.113.1"));
    let dead = testkit::eventually(Duration::from_secs(10), || async {
        let v = deliveries(&app, &admin, &uuid, "&status=dead").await;
        (v["total"] == 1).then_some(v)
    })
    .await
    .expect("delivery refused and dead");
    let d = &dead["data"][0];
    assert_eq!(d["attempts"], 0, "{d}");
    assert!(
        d["last_error"].as_str().unwrap().contains("forbidden"),
        "{d}"
    );
    assert!(r.hits().is_empty(), "nothing reached the loopback receiver");
    app.stop().await;
}

// ---------------------------------------------------------------- signing and formats

#[actix_rt::test]
async fn deliveries_are_signed_and_verify_with_an_independent_hmac() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_at(dir.path(), None, |_| {}).await;
    let admin = testkit::token_for(&app, "wh-admin", "admin").await;
    let generic = receiver(200).await;
    let standard = receiver(204).await;
    let slack = receiver(200).await;
    let teams = receiver(202).await;
    let discord = receiver(204).await;
    let secret = "generic-secret-0123456789";
    create(
        &app,
        &admin,
        json!({"name": "g", "url": generic.url, "secret": secret,
        "topic_patterns": ["attacker.>", "attacker.observed", "*.observed"]}),
    )
    .await;
    let std_v = create(
        &app,
        &admin,
        json!({"name": "s", "url": standard.url, "format": "standard",
        "simple_events": ["AttackerDetail"]}),
    )
    .await;
    for (name, r, f) in [
        ("sl", &slack, "slack"),
        ("te", &teams, "teams"),
        ("di", &discord, "discord"),
    ] {
        create(&app, &admin, json!({"name": name, "url": r.url, "format": f, "topic_patterns": ["attacker.observed"]})).await;
    }
    dispatcher_ready(&app, 3).await;
    app.state.registry.publish(observed("203.0.113.7"));

    // Generic: one delivery although three patterns match; HMAC over the exact bytes.
    let h = wait_hits(&generic, 1, 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        generic.hits().len(),
        1,
        "at most once per (subscription, event)"
    );
    let h = &h[0];
    let sig = h.headers["x-decnet-signature"]
        .strip_prefix("sha256=")
        .unwrap();
    assert_eq!(sig, hmac_hex(secret.as_bytes(), &h.body));
    assert_eq!(h.headers["content-type"], "application/json");
    assert_eq!(h.headers["user-agent"], "decnet-webhook/1.0");
    assert_eq!(h.headers["x-decnet-event-topic"], "attacker.observed");
    let body: Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(body["id"], h.headers["x-decnet-event-id"].as_str());
    assert_eq!(body["v"], 1);
    assert_eq!(body["type"], "observed");
    assert_eq!(body["payload"]["attacker_ip"], "203.0.113.7");
    assert!(body["ts"].as_str().unwrap().ends_with("+00:00"));
    // Compact, keys sorted at every level.
    assert_eq!(String::from_utf8(h.body.clone()).unwrap(), body.to_string());
    let ts: i64 = h.headers["x-decnet-timestamp"].parse().unwrap();
    assert!((ts - chrono::Utc::now().timestamp()).abs() < 30);

    // Standard Webhooks: base64 HMAC of "{id}.{timestamp}.{body}" keyed by the whsec_ bytes.
    let h = &wait_hits(&standard, 1, 10).await[0];
    let key = base64::engine::general_purpose::STANDARD
        .decode(
            std_v["secret"]
                .as_str()
                .unwrap()
                .strip_prefix("whsec_")
                .unwrap(),
        )
        .unwrap();
    let signed = [
        h.headers["webhook-id"].as_bytes(),
        b".",
        h.headers["webhook-timestamp"].as_bytes(),
        b".",
        &h.body,
    ]
    .concat();
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&k, &signed).as_ref())
    );
    assert_eq!(h.headers["webhook-signature"], expected);
    assert!(h.headers["webhook-id"].starts_with("msg_"));

    // Chat formats: a readable one-liner.
    let line = "DECNET · attacker.observed · attacker_ip=203.0.113.7 · decky=web1 · service=ssh";
    let s: Value = serde_json::from_slice(&wait_hits(&slack, 1, 10).await[0].body).unwrap();
    assert_eq!(s["text"], line);
    let t: Value = serde_json::from_slice(&wait_hits(&teams, 1, 10).await[0].body).unwrap();
    assert_eq!(t["attachments"][0]["content"]["body"][0]["text"], line);
    let d: Value = serde_json::from_slice(&wait_hits(&discord, 1, 10).await[0].body).unwrap();
    assert_eq!(d["content"], line);

    // The test ping: one attempt, counters untouched.
    let (_, list) = call(
        &app.base_url(),
        Method::GET,
        "/api/v1/webhooks/",
        &admin,
        None,
    )
    .await;
    let g = list
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "g")
        .unwrap()
        .clone();
    generic.script(&[500]);
    let (st, v) = call(
        &app.base_url(),
        Method::POST,
        &format!("/api/v1/webhooks/{}/test", g["uuid"].as_str().unwrap()),
        &admin,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        v,
        json!({"delivered": false, "status_code": 500, "error": "http 500"})
    );
    let last = generic.hits().last().cloned().unwrap();
    assert_eq!(last.headers["x-decnet-event-topic"], "test.ping");
    let (_, after) = call(
        &app.base_url(),
        Method::GET,
        &format!("/api/v1/webhooks/{}", g["uuid"].as_str().unwrap()),
        &admin,
        None,
    )
    .await;
    assert_eq!(after["consecutive_failures"], 0);
    app.stop().await;
}

// ---------------------------------------------------------------- retries, breaker, replay

#[actix_rt::test]
async fn retry_schedule_is_1_2_4_seconds_within_jitter() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_at(dir.path(), None, |_| {}).await;
    let admin = testkit::token_for(&app, "wh-admin", "admin").await;
    let r = receiver(200).await;
    r.script(&[500, 429, 503]);
    let v = create(
        &app,
        &admin,
        json!({"name": "r", "url": r.url, "topic_patterns": ["attacker.>"]}),
    )
    .await;
    dispatcher_ready(&app, 1).await;
    app.state.registry.publish(observed("203.0.113.8"));
    let hits = wait_hits(&r, 4, 20).await;
    for (i, base) in [1.0f64, 2.0, 4.0].iter().enumerate() {
        let gap = hits[i + 1].at.duration_since(hits[i].at).as_secs_f64();
        assert!(
            gap >= base * 0.8 - 0.02 && gap <= base * 1.2 + 0.25,
            "gap {i} = {gap:.3}s outside {base}s ±20%"
        );
        assert_eq!(hits[i].body, hits[i + 1].body, "same bytes on every retry");
        assert_eq!(
            hits[i].headers["x-decnet-signature"],
            hits[i + 1].headers["x-decnet-signature"]
        );
    }
    let uuid = v["uuid"].as_str().unwrap();
    let done = testkit::eventually(Duration::from_secs(5), || async {
        let v = deliveries(&app, &admin, uuid, "&status=delivered").await;
        (v["total"] == 1).then_some(v)
    })
    .await
    .expect("delivered after 4 attempts");
    let id = done["data"][0]["id"].as_i64().unwrap();
    let (_, detail) = call(
        &app.base_url(),
        Method::GET,
        &format!("/api/v1/webhooks/{uuid}/deliveries/{id}"),
        &admin,
        None,
    )
    .await;
    let codes: Vec<i64> = detail["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 429, 503, 200]);
    assert_eq!(detail["event"]["payload"]["attacker_ip"], "203.0.113.8");
    app.stop().await;
}

#[actix_rt::test]
async fn no_retry_on_400_or_redirect() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_at(dir.path(), None, |s| s.webhooks.retry_base_s = 0.2).await;
    let admin = testkit::token_for(&app, "wh-admin", "admin").await;
    let bad = receiver(400).await;
    let moved = receiver(302).await;
    let a = create(
        &app,
        &admin,
        json!({"name": "a", "url": bad.url, "topic_patterns": ["attacker.>"]}),
    )
    .await;
    let b = create(
        &app,
        &admin,
        json!({"name": "b", "url": moved.url, "topic_patterns": ["attacker.>"]}),
    )
    .await;
    dispatcher_ready(&app, 1).await;
    app.state.registry.publish(observed("203.0.113.9"));
    wait_hits(&bad, 1, 10).await;
    wait_hits(&moved, 1, 10).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(bad.hits().len(), 1, "400 is not retried");
    assert_eq!(moved.hits().len(), 1, "3xx is neither retried nor followed");
    for (v, code) in [(a, 400), (b, 302)] {
        let d = deliveries(&app, &admin, v["uuid"].as_str().unwrap(), "&status=dead").await;
        assert_eq!(d["total"], 1);
        assert_eq!(d["data"][0]["last_error"], format!("non-retryable {code}"));
        assert_eq!(d["data"][0]["attempts"], 1);
    }
    app.stop().await;
}

#[actix_rt::test]
async fn breaker_opens_then_patch_reenables_and_replay_delivers_dead_letters() {
    for (backend, url) in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let app = start_at(dir.path(), url, |s| {
            s.webhooks.retry_base_s = 0.05;
            s.webhooks.circuit_threshold = 2;
        })
        .await;
        let admin = testkit::token_for(&app, "wh-admin", "admin").await;
        let base = app.base_url();
        let r = receiver(503).await;
        let v = create(
            &app,
            &admin,
            json!({"name": "b", "url": r.url, "topic_patterns": ["attacker.>"]}),
        )
        .await;
        let uuid = v["uuid"].as_str().unwrap().to_owned();
        dispatcher_ready(&app, 1).await;
        app.state.registry.publish(observed("198.51.100.1"));
        app.state.registry.publish(observed("198.51.100.2"));
        let tripped = testkit::eventually(Duration::from_secs(15), || async {
            let (_, w) = call(
                &base,
                Method::GET,
                &format!("/api/v1/webhooks/{uuid}"),
                &admin,
                None,
            )
            .await;
            (!w["auto_disabled_at"].is_null()).then_some(w)
        })
        .await
        .unwrap_or_else(|| panic!("{backend}: breaker never opened"));
        assert_eq!(tripped["enabled"], false);
        assert_eq!(tripped["consecutive_failures"], 2);
        assert_eq!(tripped["last_error"], "http 503");
        assert_eq!(r.hits().len(), 8, "2 deliveries × 4 attempts");
        let dead = deliveries(&app, &admin, &uuid, "&status=dead").await;
        assert_eq!(dead["total"], 2, "{backend}: {dead}");

        // While open: new events wait in the outbox, nothing is sent.
        app.state.registry.publish(observed("198.51.100.3"));
        let queued = testkit::eventually(Duration::from_secs(5), || async {
            let v = deliveries(&app, &admin, &uuid, "&status=pending").await;
            (v["total"] == 1).then_some(())
        })
        .await;
        assert!(
            queued.is_some(),
            "{backend}: event recorded while the breaker is open"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(r.hits().len(), 8);

        // Receiver back; PATCH enabled resets the breaker; the queued event flows.
        r.set_default(200);
        let (st, w) = call(
            &base,
            Method::PATCH,
            &format!("/api/v1/webhooks/{uuid}"),
            &admin,
            Some(json!({"enabled": true})),
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(
            (
                w["enabled"].clone(),
                w["auto_disabled_at"].clone(),
                w["consecutive_failures"].clone(),
                w["last_error"].clone()
            ),
            (json!(true), Value::Null, json!(0), Value::Null)
        );
        testkit::eventually(Duration::from_secs(10), || async {
            (r.acked().len() == 1).then_some(())
        })
        .await
        .expect("queued event delivered after re-enable");

        // Replay the dead letters: both delivered, each exactly once.
        let (st, v) = call(
            &base,
            Method::POST,
            &format!("/api/v1/webhooks/{uuid}/replay"),
            &admin,
            None,
        )
        .await;
        assert_eq!((st, v["replayed"].clone()), (200, json!(2)));
        let acked = testkit::eventually(Duration::from_secs(10), || async {
            let a = r.acked();
            (a.len() == 3).then_some(a)
        })
        .await
        .expect("replayed dead letters delivered");
        assert!(acked.values().all(|n| *n == 1), "{acked:?}");
        // The receiver acknowledges before the outcome is committed: wait for the rows.
        let d = testkit::eventually(Duration::from_secs(5), || async {
            let d = deliveries(&app, &admin, &uuid, "&status=delivered").await;
            (d["total"] == 3).then_some(d)
        })
        .await
        .expect("three delivered rows");
        let (_, w) = call(
            &base,
            Method::GET,
            &format!("/api/v1/webhooks/{uuid}"),
            &admin,
            None,
        )
        .await;
        assert!(w["last_success_at"].is_string());
        // One delivery replayed by id is sent again.
        let id = d["data"][0]["id"].as_i64().unwrap();
        let (st, v) = call(
            &base,
            Method::POST,
            &format!("/api/v1/webhooks/{uuid}/deliveries/{id}/replay"),
            &admin,
            None,
        )
        .await;
        assert_eq!((st, v["replayed"].clone()), (200, json!(1)));
        wait_hits(&r, 8 + 1 + 2 + 1, 10).await;
        app.stop().await;
    }
}

// ---------------------------------------------------------------- durability

#[actix_rt::test]
async fn pending_and_retrying_deliveries_survive_a_restart() {
    for (backend, url) in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let tweak = |s: &mut Settings| {
            s.webhooks.retry_base_s = 0.3;
            s.webhooks.max_attempts = 50;
        };
        let app = start_at(dir.path(), url.clone(), tweak).await;
        let admin = testkit::token_for(&app, "wh-admin", "admin").await;
        let r = receiver(503).await;
        let v = create(
            &app,
            &admin,
            json!({"name": "d", "url": r.url, "topic_patterns": ["attacker.>"]}),
        )
        .await;
        let uuid = v["uuid"].as_str().unwrap().to_owned();
        dispatcher_ready(&app, 1).await;
        const N: usize = 200;
        for i in 0..N {
            app.state
                .registry
                .publish(observed(&format!("192.0.2.{}", i % 250 + 1)));
        }
        testkit::eventually(Duration::from_secs(20), || async {
            let v = deliveries(&app, &admin, &uuid, "&status=pending&limit=1").await;
            (v["total"] == N).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("{backend}: {N} deliveries queued"));
        wait_hits(&r, 12, 10).await; // some are retrying
        app.stop().await;
        // An attempt already written to the socket when the app stopped may still reach the
        // receiver; answered 200 it would be delivered but unrecorded, and so sent again by
        // the next start (at least once, by design). Flip only once the old attempts are over.
        let mut seen = r.hits().len();
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = r.hits().len();
            if now == seen {
                break;
            }
            seen = now;
        }

        r.set_default(200);
        let app = start_at(dir.path(), url, tweak).await;
        let acked = testkit::eventually(Duration::from_secs(30), || async {
            let a = r.acked();
            (a.len() == N).then_some(a)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "{backend}: {} of {N} delivered after restart",
                r.acked().len()
            )
        });
        assert!(
            acked.values().all(|n| *n == 1),
            "{backend}: exactly once each"
        );
        app.stop().await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_daemon(dir: &Path, port: u16, db_url: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_decnetd"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DECNET_TESTING", "1")
        .env("DECNET_DATA_DIR", dir)
        .env("DECNET_DB_URL", db_url)
        .env("DECNET_API_PORT", port.to_string())
        .env(
            "DECNET_JWT_SECRET",
            "test-jwt-secret-test-jwt-secret-0123456789",
        )
        .env("DECNET_ADMIN_PASSWORD", testkit::ADMIN_PASSWORD)
        .env("DECNET_INGEST_LOG_FILE", dir.join("ingest.log"))
        .env("DECNET_STATE_FILE", dir.join("state.json"))
        .env("DECNET_WEBHOOK_ALLOW_LOOPBACK", "true")
        .env("DECNET_WEBHOOK_RETRY_BASE_SECS", "0.5")
        .env("DECNET_WEBHOOK_MAX_ATTEMPTS", "1000")
        .env("DECNET_LIMITER_ENABLED", "false")
        .env("DECNET_LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn decnetd")
}

async fn pending_rows(db_url: &str) -> i64 {
    let db = decnetd::db::Db::connect(db_url, 1).await.unwrap();
    let (p, _, _) = decnetd::db::repo::webhooks::outbox_counts(&db)
        .await
        .unwrap_or_default();
    p
}

/// `kill -9` of a real `decnetd serve` while 1,000 deliveries are queued and retrying; a new
/// process on the same database delivers every event exactly once.
#[actix_rt::test]
async fn kill_9_while_1000_deliveries_are_queued_loses_nothing() {
    let mut targets = vec![("sqlite", None)];
    if let Some(url) = common::pg_database_url().await {
        targets.push(("postgres", Some(url)));
    }
    for (backend, pg) in targets {
        let dir = tempfile::tempdir().unwrap();
        let db_url =
            pg.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("decnet.db").display()));
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = spawn_daemon(dir.path(), port, &db_url);
        let up = testkit::eventually(Duration::from_secs(30), || async {
            let (st, _) = testkit::login(&base, "admin", testkit::ADMIN_PASSWORD).await;
            (st == 200).then_some(())
        })
        .await;
        up.expect("daemon up");
        let db = decnetd::db::Db::connect(&db_url, 1).await.unwrap();
        testkit::create_user(&db, "k-admin", "k-admin-password-123", "admin")
            .await
            .unwrap();
        let (_, v) = testkit::login(&base, "k-admin", "k-admin-password-123").await;
        let token = v["access_token"].as_str().unwrap().to_owned();
        let r = receiver(503).await;
        let (st, v) = call(
            &base,
            Method::POST,
            "/api/v1/webhooks/",
            &token,
            Some(json!({"name": "k", "url": r.url, "topic_patterns": ["attacker.observed"]})),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        tokio::time::sleep(Duration::from_millis(500)).await; // hot reload

        // 1,000 new attackers → 1,000 attacker.observed events.
        let mut lines = String::new();
        for i in 0..1000u32 {
            lines.push_str(&format!(
                "<134>1 2026-05-14T09:12:03.481220+00:00 web-decky-03 auth-helper - auth_attempt [relay@55555 username=\"root\" principal=\"root\" secret_printable=\"x\" secret_b64=\"eA==\" src_ip=\"198.18.{}.{}\"]\n",
                i / 250,
                i % 250 + 1
            ));
        }
        std::fs::write(dir.path().join("ingest.log"), lines).unwrap();
        let queued = testkit::eventually(Duration::from_secs(60), || async {
            (pending_rows(&db_url).await >= 1000).then_some(())
        })
        .await;
        assert!(
            queued.is_some(),
            "{backend}: 1000 deliveries queued (have {})",
            pending_rows(&db_url).await
        );
        wait_hits(&r, 20, 10).await; // retrying
        child.kill().expect("kill -9"); // SIGKILL
        child.wait().unwrap();
        let refused_before = r.hits().len();
        assert!(r.acked().is_empty());

        r.set_default(200);
        let mut child = spawn_daemon(dir.path(), port, &db_url);
        let acked = testkit::eventually(Duration::from_secs(90), || async {
            let a = r.acked();
            (a.len() == 1000).then_some(a)
        })
        .await;
        let _ = child.kill();
        let _ = child.wait();
        let acked =
            acked.unwrap_or_else(|| panic!("{backend}: {} of 1000 delivered", r.acked().len()));
        assert!(
            acked.values().all(|n| *n == 1),
            "{backend}: exactly once per event"
        );
        eprintln!("{backend}: {refused_before} refused attempts before kill -9; 1000/1000 delivered once after restart");
        r.stop().await;
    }
}

/// Live ingest beside five `attacker.>` subscriptions on a two-connection pool: the
/// dispatcher group-commits its attempt records (one write transaction at a time), so the
/// file tail commits every line, no write of either side fails, and every event reaches every
/// receiver exactly once. Both backends.
#[actix_rt::test]
async fn ingest_beside_five_subscriptions_on_a_small_pool_loses_and_repeats_nothing() {
    let lines = 3000;
    for (backend, pg) in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let app = start_at(dir.path(), pg, |s| {
            s.db.pool_size = 2;
            s.workers.disabled.retain(|n| n != "ingester");
        })
        .await;
        let admin = testkit::token_for(&app, "wh-admin", "admin").await;
        let mut receivers = Vec::new();
        for i in 0..5 {
            let r = receiver(200).await;
            create(
                &app,
                &admin,
                json!({"name": format!("sub-{i}"), "url": r.url, "topic_patterns": ["attacker.>"]}),
            )
            .await;
            receivers.push(r);
        }
        dispatcher_ready(&app, 1).await;

        let corpus = dir.path().join("corpus.log");
        let st = std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/bench/gen_corpus.py"
            ))
            .arg(&corpus)
            .arg(lines.to_string())
            .arg("300")
            .status()
            .expect("python3");
        assert!(st.success(), "gen_corpus.py");
        std::fs::copy(&corpus, dir.path().join("ingest.log")).unwrap();

        let extra = |worker: &str, key: &str| {
            app.state
                .status
                .extra_of(worker)
                .and_then(|e| e.get(key).and_then(Value::as_u64))
                .unwrap_or(0)
        };
        let read = testkit::eventually(Duration::from_secs(120), || async {
            let n = extra("ingester", "lines");
            (n >= lines as u64 && extra("ingester", "batches") > 0).then_some(n)
        })
        .await;
        assert!(
            read.is_some(),
            "{backend}: ingester read {} lines",
            extra("ingester", "lines")
        );
        // Every event matched by the dispatcher ends delivered, once per subscription.
        let settled = testkit::eventually(Duration::from_secs(180), || async {
            let (pending, _, _) = decnetd::db::repo::webhooks::outbox_counts(&app.state.db)
                .await
                .ok()?;
            let matched = extra("webhooks", "events_matched");
            let acked: Vec<usize> = receivers.iter().map(|r| r.acked().len()).collect();
            (pending == 0
                && extra("webhooks", "buffered") == 0
                && matched > 0
                && acked.iter().all(|&n| n as u64 == matched))
            .then_some(matched)
        })
        .await;
        let matched = extra("webhooks", "events_matched");
        assert!(
            settled.is_some(),
            "{backend}: {matched} events matched; receivers acked {:?}",
            receivers
                .iter()
                .map(|r| r.acked().len())
                .collect::<Vec<_>>()
        );
        for (i, r) in receivers.iter().enumerate() {
            let twice: Vec<_> = r.acked().into_iter().filter(|(_, n)| *n > 1).collect();
            assert!(
                twice.is_empty(),
                "{backend}: receiver {i} got repeats {twice:?}"
            );
        }
        assert_eq!(
            extra("webhooks", "failed_writes"),
            0,
            "{backend}: dispatcher write failures"
        );
        assert_eq!(
            extra("ingester", "db_errors"),
            0,
            "{backend}: ingest commit failures"
        );
        let logs = extra("ingester", "logs_inserted") + extra("ingester", "duplicates");
        assert!(logs > 0, "{backend}: nothing committed");
        app.stop().await;
        for r in receivers {
            r.stop().await;
        }
    }
}

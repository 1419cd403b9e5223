//! MailDripper integration tests: a real Docker mail decky receives a thread read back and
//! parsed by an independent parser (`mail-parser`), the LLM client against a local HTTP
//! server speaking the Ollama API (wiremock), the template fallback, the persona / LLM /
//! events routes on a real daemon, and the first-run reason in `/workers`.
//!
//! Docker tests need the image of `scripts/build-test-image` (built on demand) and SKIP
//! loudly without an engine, unless `DECNETD_REQUIRE_DOCKER=1`.
//!
//! Run: `cargo test --test mail`

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use decnetd::actors::mail_dripper::{
    generate_email, LlmState, MailCore, MailOutcome, OllamaClient,
};
use decnetd::actors::planner::PersonaPool;
use decnetd::actors::registry::{RegistryConfig, RegistryHandle};
use decnetd::db::models::fleet::FleetDeckyUpsert;
use decnetd::db::models::mail::NewOrchestratorEmail;
use decnetd::db::repo::{fleet as fleet_repo, mail as mail_repo, realism as realism_repo};
use decnetd::docker::{BollardRuntime, ContainerSpec, DeckyRuntime};
use decnetd::domain::mail::llm::LlmConfig;
use decnetd::domain::mail::{CircuitBreaker, Generator, ThreadPlan};
use decnetd::domain::realism::{parse_personas, Persona};
use mail_parser::{HeaderValue, MessageParser};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const IMAGE: &str = "decnetd-test-decky:latest";
const T: Duration = Duration::from_secs(20);

// ---- docker scaffolding (as tests/realism.rs) ----------------------------------------------

fn loud_skip(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n!!! SKIPPING {msg} !!!\n");
}

fn require_docker() -> bool {
    std::env::var("DECNETD_REQUIRE_DOCKER").is_ok_and(|v| v == "1")
}

fn build_images_once() -> bool {
    static BUILT: OnceLock<bool> = OnceLock::new();
    *BUILT.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/build-test-image");
        std::process::Command::new(script)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

async fn runtime_or_skip(test: &str) -> Option<Arc<BollardRuntime>> {
    let rt = BollardRuntime::new();
    if let Err(e) = rt.ping().await {
        assert!(
            !require_docker(),
            "DECNETD_REQUIRE_DOCKER=1 but no engine: {e}"
        );
        loud_skip(&format!("{test}: no Docker engine reachable ({e})"));
        return None;
    }
    let mut present = rt.image_exists(IMAGE).await.unwrap_or(false);
    if !present {
        let _ = tokio::task::spawn_blocking(build_images_once).await;
        present = rt.image_exists(IMAGE).await.unwrap_or(false);
    }
    if !present {
        assert!(!require_docker(), "test image {IMAGE} missing");
        loud_skip(&format!("{test}: test image {IMAGE} unavailable"));
        return None;
    }
    Some(Arc::new(rt))
}

/// A mail decky: container `<name>-imap`, removed on drop.
struct MailDecky {
    rt: Arc<BollardRuntime>,
    name: String,
    container: String,
}

impl MailDecky {
    async fn start(rt: &Arc<BollardRuntime>) -> MailDecky {
        let name = format!("mz{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let container = format!("{name}-imap");
        rt.run_container(&ContainerSpec {
            name: container.clone(),
            image: IMAGE.to_owned(),
            hostname: Some(name.clone()),
            ..Default::default()
        })
        .await
        .expect("start container");
        MailDecky {
            rt: Arc::clone(rt),
            name,
            container,
        }
    }

    async fn register(&self, db: &decnetd::db::Db) {
        fleet_repo::upsert(
            db,
            FleetDeckyUpsert {
                host_uuid: None,
                name: self.name.clone(),
                services: vec!["imap".to_owned(), "smtp".to_owned()],
                decky_config: None,
                decky_ip: Some("10.0.0.9".to_owned()),
                state: "running".to_owned(),
                last_error: None,
                compose_hash: None,
                last_seen: None,
            },
        )
        .await
        .expect("register decky");
    }

    async fn read(&self, p: &str) -> Vec<u8> {
        self.rt
            .read_file(&self.container, p, T)
            .await
            .expect("read eml")
    }

    async fn mtime(&self, p: &str) -> i64 {
        let argv = ["stat", "-c", "%Y", "--", p].map(str::to_owned);
        let out = self
            .rt
            .exec(&self.container, &argv, None, T)
            .await
            .expect("stat");
        assert!(out.success(), "{}", out.stderr_lossy());
        out.stdout_lossy().trim().parse().expect("mtime")
    }

    async fn find_emls(&self) -> Vec<String> {
        let argv = ["find", "/var/spool/decnet-emails", "-name", "*.eml"].map(str::to_owned);
        let out = self
            .rt
            .exec(&self.container, &argv, None, T)
            .await
            .expect("find");
        out.stdout_lossy().lines().map(str::to_owned).collect()
    }
}

impl Drop for MailDecky {
    fn drop(&mut self) {
        let rt = Arc::clone(&self.rt);
        let name = self.container.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(r) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = r.block_on(rt.remove_container(&name, true));
            }
        })
        .join();
    }
}

fn two_personas() -> Value {
    json!([
        {"name": "Jürgen Weiß", "email": "jweiss@acme.example", "role": "Controlling",
         "language": "de", "active_hours": "00:00-00:00", "reply_latency": "fast",
         "timezone": "Europe/Berlin"},
        {"name": "Ana Díaz", "email": "adiaz@acme.example", "role": "Finanzas",
         "language": "es", "active_hours": "00:00-00:00", "reply_latency": "fast",
         "signature": "Ana Díaz\nFinanzas"}
    ])
}

fn ids(h: &HeaderValue<'_>) -> Vec<String> {
    match h {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(l) => l.iter().map(ToString::to_string).collect(),
        _ => Vec::new(),
    }
}

async fn ollama(reply: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/generate"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"model": "m", "response": reply, "done": true})),
        )
        .mount(&server)
        .await;
    server
}

fn llm_for(server: &MockServer, timeout: f64) -> LlmConfig {
    LlmConfig::default()
        .merged(&json!({"base_url": server.uri(), "model": "test-model", "timeout": timeout}))
        .unwrap()
}

/// A mail decky receives a thread of three messages from two personas (LLM-written, with an
/// em-dash the policy must strip and a non-ASCII subject), then a fourth written by the
/// templates once the LLM is down; the EMLs are read back from the container and parsed with
/// `mail-parser`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_decky_receives_a_parseable_thread() {
    let Some(rt) = runtime_or_skip("mail_decky_receives_a_parseable_thread").await else {
        return;
    };
    let (_dir, db) = common::sqlite_db().await;
    let decky = MailDecky::start(&rt).await;
    decky.register(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let pool_path = dir.path().join("email_personas.json");
    std::fs::write(&pool_path, two_personas().to_string()).unwrap();
    let pool = PersonaPool::new(pool_path);

    let server = ollama(
        "Subject: Überprüfung — Q3-Budget\n\nHallo,\nanbei die Zahlen — bitte prüfen.\nGruß",
    )
    .await;
    let llm = Arc::new(LlmState::new(true));
    llm.apply(llm_for(&server, 5.0));
    let registry = RegistryHandle::start(RegistryConfig::default());
    let mut sub = registry.subscribe("orchestrator.email.*").await.unwrap();
    let core = MailCore {
        db: db.clone(),
        docker: rt.clone() as Arc<dyn DeckyRuntime>,
        registry: registry.clone(),
        llm: llm.clone(),
    };
    let base = Utc.with_ymd_and_hms(2026, 5, 4, 8, 0, 0).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let mut records = Vec::new();
    for i in 0..4 {
        if i == 3 {
            // the LLM goes down: templates take over and the row says so
            server.reset().await;
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(503).set_body_string("overloaded"))
                .mount(&server)
                .await;
        }
        let now = base + TimeDelta::hours(9 * i);
        match core.tick(&pool, now, 1.0, &mut rng).await.expect("tick") {
            MailOutcome::Attempt(r) => records.push((now, r)),
            MailOutcome::Idle(why) => panic!("idle: {why}"),
        }
    }
    assert!(
        records
            .iter()
            .all(|(_, r)| r.success && r.stage == "delivered"),
        "{records:?}"
    );
    let thread = &records[0].1.thread_id;
    assert!(
        records.iter().all(|(_, r)| &r.thread_id == thread),
        "one thread"
    );
    assert_eq!(
        records.iter().map(|(_, r)| r.generator).collect::<Vec<_>>(),
        vec![
            Generator::Llm,
            Generator::Llm,
            Generator::Llm,
            Generator::Template
        ]
    );
    let emls = decky.find_emls().await;
    assert_eq!(emls.len(), 4, "{emls:?}");

    let parser = MessageParser::default();
    let mut senders = std::collections::HashSet::new();
    let mut prev_ids: Vec<String> = Vec::new();
    for (i, (now, rec)) in records.iter().enumerate() {
        assert!(rec
            .eml_path
            .starts_with(&format!("/var/spool/decnet-emails/{thread}/")));
        let raw = decky.read(&rec.eml_path).await;
        let text = String::from_utf8(raw.clone()).expect("utf-8");
        assert!(text.is_ascii(), "7-bit clean on the wire");
        assert_eq!(text.matches("MIME-Version:").count(), 1);
        let msg = parser.parse(&raw).expect("parses");
        let mid = format!("<{}>", msg.message_id().expect("message id"));
        assert_eq!(mid, rec.message_id);
        assert!(
            mid.ends_with("@acme.example>"),
            "Message-ID on the sender's domain: {mid}"
        );
        let date = msg.date().expect("date");
        assert_eq!(
            date.to_timestamp(),
            now.timestamp(),
            "Date is the send time"
        );
        assert_eq!(
            decky.mtime(&rec.eml_path).await,
            now.timestamp(),
            "mtime == Date"
        );
        let subject = msg.subject().expect("subject");
        let body = msg.body_text(0).expect("body").to_string();
        assert!(
            !body.contains('—') && !body.contains('–'),
            "no em-dash: {body:?}"
        );
        assert!(!subject.contains('—'), "{subject}");
        let from = msg.from().and_then(|a| a.first()).expect("from");
        senders.insert(from.address().unwrap_or_default().to_owned());
        if i == 0 {
            // the non-ASCII subject round-trips (RFC 2047), em-dash stripped
            assert_eq!(subject, "Überprüfung, Q3-Budget");
            assert!(ids(msg.in_reply_to()).is_empty());
            assert!(ids(msg.references()).is_empty());
        } else {
            assert_eq!(subject, "Re: Überprüfung, Q3-Budget", "Re: never doubled");
            let parent = prev_ids.last().unwrap().clone();
            assert_eq!(
                ids(msg.in_reply_to()),
                vec![parent.trim_matches(['<', '>']).to_owned()]
            );
            let refs: Vec<String> = prev_ids
                .iter()
                .map(|s| s.trim_matches(['<', '>']).to_owned())
                .collect();
            assert_eq!(
                ids(msg.references()),
                refs,
                "References carry the whole chain"
            );
        }
        // non-ASCII display names decode
        assert!(["Jürgen Weiß", "Ana Díaz"].contains(&from.name().unwrap_or_default()));
        prev_ids.push(mid);
    }
    assert_eq!(senders.len(), 2, "two personas wrote: {senders:?}");
    // replies alternate: each reply comes from the parent's recipient
    for w in rows_pairs(&db).await.windows(2) {
        assert_eq!(w[0].0, w[1].1, "reply sender was the parent's recipient");
    }

    // rows: one per attempt, generator recorded, threading columns
    let rows = mail_repo::list_orchestrator_emails(&db, 10, 0, &Default::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 4);
    let last = &rows[0];
    let p: Value = serde_json::from_str(&last.payload).unwrap();
    assert_eq!(p["generator"], "template");
    assert!(p["llm_error"].as_str().unwrap().contains("503"), "{p}");
    assert_eq!(last.in_reply_to.as_deref(), Some(prev_ids[2].as_str()));
    assert_eq!(rows[3].in_reply_to, None);
    assert_eq!(
        serde_json::from_str::<Value>(&rows[3].payload).unwrap()["generator"],
        "llm"
    );
    // and the bus saw every attempt
    for _ in 0..4 {
        let env = tokio::time::timeout(T, futures::StreamExt::next(&mut sub))
            .await
            .expect("event")
            .expect("open");
        assert_eq!(
            env.topic,
            format!("orchestrator.email.local:{}", decky.name)
        );
        assert_eq!(env.kind, "email");
    }
}

/// A failed delivery (the container is gone) is recorded with its stage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_delivery_is_recorded_with_its_stage() {
    let Some(rt) = runtime_or_skip("failed_delivery_is_recorded_with_its_stage").await else {
        return;
    };
    let (_dir, db) = common::sqlite_db().await;
    let decky = MailDecky::start(&rt).await;
    decky.register(&db).await;
    rt.remove_container(&decky.container, true).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pool_path = dir.path().join("p.json");
    std::fs::write(&pool_path, two_personas().to_string()).unwrap();
    let core = MailCore {
        db: db.clone(),
        docker: rt.clone() as Arc<dyn DeckyRuntime>,
        registry: RegistryHandle::start(RegistryConfig::default()),
        llm: Arc::new(LlmState::new(false)),
    };
    let out = core
        .tick(
            &PersonaPool::new(pool_path),
            Utc::now(),
            0.6,
            &mut StdRng::seed_from_u64(1),
        )
        .await
        .unwrap();
    let MailOutcome::Attempt(rec) = out else {
        panic!("{out:?}")
    };
    assert!(!rec.success);
    assert_eq!(rec.stage, "delivery");
    let rows = mail_repo::list_orchestrator_emails(&db, 10, 0, &Default::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].success);
    assert_eq!(rows[0].eml_path, "");
    let p: Value = serde_json::from_str(&rows[0].payload).unwrap();
    assert_eq!(p["stage"], "delivery");
    assert_eq!(p["generator"], "template");
    assert!(p["stderr"].as_str().is_some_and(|s| !s.is_empty()));
    // failed rows never become thread parents
    let threads = mail_repo::list_orchestrator_email_threads(
        &db,
        &rows[0].mail_decky_uuid,
        &rows[0].sender_email,
        &rows[0].recipient_email,
        20,
    )
    .await
    .unwrap();
    assert!(threads.is_empty());
}

/// (sender, recipient) of every row, oldest first.
async fn rows_pairs(db: &decnetd::db::Db) -> Vec<(String, String)> {
    let mut rows = mail_repo::list_orchestrator_emails(db, 100, 0, &Default::default())
        .await
        .unwrap();
    rows.reverse();
    rows.into_iter()
        .map(|r| (r.sender_email, r.recipient_email))
        .collect()
}

// ---- the LLM client against a local Ollama-speaking server ---------------------------------

fn personas() -> Vec<Persona> {
    parse_personas(Some(&two_personas()), "en").personas
}

fn new_plan() -> ThreadPlan {
    ThreadPlan::New {
        thread_id: "t".into(),
        context_hint: "Q3 budget review and approval".into(),
    }
}

#[tokio::test]
async fn llm_success_timeout_5xx_and_garbage() {
    let ps = personas();
    let (a, b) = (&ps[0], &ps[1]);
    let mut rng = StdRng::seed_from_u64(5);

    // success: the request is the Ollama generate call
    let ok = ollama("Subject: Zahlen Q3\n\nHallo Ana,\ndie Zahlen sind fertig.\nJürgen").await;
    let llm = LlmState::new(true);
    llm.apply(llm_for(&ok, 5.0));
    let g = generate_email(&llm, a, b, &new_plan(), &mut rng).await;
    assert_eq!(
        (g.generator, g.subject.as_str()),
        (Generator::Llm, "Zahlen Q3")
    );
    assert_eq!(g.model.as_deref(), Some("test-model"));
    let reqs = ok.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1);
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["stream"], false);
    assert!(body["prompt"].as_str().unwrap().contains("in German"));

    // timeout → templates, reason recorded
    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(3))
                .set_body_json(json!({"response": "Subject: x\n\nlate body text here"})),
        )
        .mount(&slow)
        .await;
    let llm = LlmState::new(true);
    llm.apply(llm_for(&slow, 0.3));
    let g = generate_email(&llm, a, b, &new_plan(), &mut rng).await;
    assert_eq!(g.generator, Generator::Template);
    assert_eq!(g.llm_error.as_deref(), Some("timeout"));
    assert_eq!(g.subject, "Überprüfung des Q3-Budgets", "German template");

    // 5xx
    let down = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .mount(&down)
        .await;
    let llm = LlmState::new(true);
    llm.apply(llm_for(&down, 5.0));
    let g = generate_email(&llm, a, b, &new_plan(), &mut rng).await;
    assert_eq!(g.generator, Generator::Template);
    assert!(g.llm_error.unwrap().contains("status 500"));

    // garbage output (JSON blob, no usable body) and a non-JSON blank answer
    for garbage in [
        json!({"response": "{\"error\": 1}"}),
        json!({"response": "   "}),
        json!({"nope": 1}),
    ] {
        let junk = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(garbage.clone()))
            .mount(&junk)
            .await;
        let llm = LlmState::new(true);
        llm.apply(llm_for(&junk, 5.0));
        let g = generate_email(&llm, a, b, &new_plan(), &mut rng).await;
        assert_eq!(g.generator, Generator::Template, "{garbage}");
        assert!(g.llm_error.is_some());
    }

    // disabled (DECNET_REALISM_LLM=off, or no base_url): no request at all
    let quiet = ollama("Subject: x\n\nshould never be asked for").await;
    let off = LlmState::new(false);
    off.apply(llm_for(&quiet, 5.0));
    let no_url = LlmState::new(true);
    no_url.apply(LlmConfig::default());
    for llm in [&off, &no_url] {
        let g = generate_email(llm, a, b, &new_plan(), &mut rng).await;
        assert_eq!((g.generator, g.llm_error), (Generator::Template, None));
        assert_eq!(llm.snapshot()["llm_enabled"], false);
    }
    assert!(quiet.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn breaker_opens_then_half_opens() {
    let ps = personas();
    let (a, b) = (&ps[0], &ps[1]);
    let mut rng = StdRng::seed_from_u64(9);
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let llm = LlmState::with_breaker(true, CircuitBreaker::new(3, Duration::from_millis(700)));
    llm.apply(llm_for(&server, 5.0));
    assert_eq!(llm.snapshot()["llm_breaker_state"], "closed");
    for _ in 0..3 {
        generate_email(&llm, a, b, &new_plan(), &mut rng).await;
    }
    assert_eq!(llm.snapshot()["llm_breaker_state"], "open");
    let g = generate_email(&llm, a, b, &new_plan(), &mut rng).await;
    assert_eq!(g.llm_error.as_deref(), Some("circuit breaker open"));
    assert_eq!(g.generator, Generator::Template);
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        3,
        "open: no call"
    );

    // cooldown over → half-open; the probe fails → open again
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(llm.snapshot()["llm_breaker_state"], "half_open");
    generate_email(&llm, a, b, &new_plan(), &mut rng).await;
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
    assert_eq!(llm.snapshot()["llm_breaker_state"], "open");

    // config refresh keeps the breaker; the next probe succeeds → closed
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"response": "Subject: Wieder da\n\nHallo Ana,\nalles wieder in Ordnung.\nJW"}),
        ))
        .mount(&server)
        .await;
    llm.apply(llm_for(&server, 5.0));
    assert_eq!(llm.snapshot()["llm_breaker_state"], "open");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let g = generate_email(&llm, a, b, &new_plan(), &mut rng).await;
    assert_eq!(g.generator, Generator::Llm);
    assert_eq!(llm.snapshot()["llm_breaker_state"], "closed");
    // the client speaks to exactly <base>/api/generate
    assert!(OllamaClient::new(&llm_for(&server, 1.0)).is_some());
}

// ---- routes on a real daemon ---------------------------------------------------------------

async fn send(
    client: &reqwest::Client,
    m: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = client.request(m, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[actix_rt::test]
async fn persona_llm_and_email_routes() {
    let mut backends: Vec<(&str, Option<String>)> = vec![("sqlite", None)];
    if let Some(url) = common::pg_database_url().await {
        backends.push(("postgres", Some(url)));
    }
    for (backend, db_url) in backends {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = decnetd::testkit::settings(dir.path(), db_url);
        let pool_path = dir.path().join("pool").join("email_personas.json");
        settings.realism.personas_path = Some(pool_path.clone());
        let app = decnetd::testkit::start_http_only(settings)
            .await
            .expect("daemon starts");
        let base = format!("{}/api/v1", app.base_url());
        let c = reqwest::Client::new();
        let viewer = decnetd::testkit::token_for(&app, "vera", "viewer").await;
        let admin = decnetd::testkit::token_for(&app, "adam", "admin").await;
        use reqwest::Method as M;
        let shown = pool_path.display().to_string();

        for p in ["realism/personas", "emailgen/personas"] {
            let url = format!("{base}/{p}");
            assert_eq!(send(&c, M::GET, &url, None, None).await.0, 401, "{backend}");
            let (s, body) = send(&c, M::GET, &url, Some(&viewer), None).await;
            assert_eq!(
                (s, &body),
                (200, &json!({"path": shown, "personas": []})),
                "{backend}"
            );
        }
        let url = format!("{base}/realism/personas");
        let mut list = two_personas();
        list.as_array_mut()
            .unwrap()
            .push(json!({"name": "Broken", "role": "x"}));
        list.as_array_mut()
            .unwrap()
            .push(json!({"name": "Tz", "email": "tz@a.example", "role": "x",
            "timezone": "Nowhere/Land"}));
        let doc = json!({"personas": list}).to_string();
        assert_eq!(
            send(&c, M::PUT, &url, Some(&viewer), Some(&doc)).await.0,
            403
        );
        let (s, body) = send(&c, M::PUT, &url, Some(&admin), Some(&doc)).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["path"], shown);
        assert_eq!(body["personas"].as_array().unwrap().len(), 2);
        let dropped: Vec<&str> = body["dropped"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(dropped.len(), 2);
        assert!(
            dropped[0].contains("personas[2]") && dropped[0].contains("email"),
            "{dropped:?}"
        );
        assert!(
            dropped[1].contains("personas[3]") && dropped[1].contains("timezone"),
            "{dropped:?}"
        );
        // every persona carries all fields, timezone round-trips
        let first = &body["personas"][0];
        assert_eq!(first.as_object().unwrap().len(), 12);
        assert_eq!(first["timezone"], "Europe/Berlin");
        assert_eq!(first["tone"], "formal");
        // GET (and the alias) read what is on disk; the file is private
        let (_, got) = send(
            &c,
            M::GET,
            &format!("{base}/emailgen/personas"),
            Some(&viewer),
            None,
        )
        .await;
        assert_eq!(got["personas"], body["personas"]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&pool_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let on_disk = PersonaPool::new(pool_path.clone()).load().await;
        assert_eq!(on_disk.len(), 2);

        // 400s: not a list, every entry invalid (naming entries and fields)
        let (s, b) = send(
            &c,
            M::PUT,
            &url,
            Some(&admin),
            Some(r#"{"personas": {"a": 1}}"#),
        )
        .await;
        assert_eq!(
            (s, b["detail"].as_str()),
            (400, Some("body.personas must be a list"))
        );
        let bad = json!({"personas": [{"name": "x"}, {"name": "y", "email": "nope", "role": "r"}]})
            .to_string();
        let (s, b) = send(&c, M::PUT, &url, Some(&admin), Some(&bad)).await;
        assert_eq!(s, 400);
        let d = b["detail"].as_str().unwrap();
        assert!(
            d.contains("personas[0]: email is required") && d.contains("personas[1]: email must"),
            "{d}"
        );
        assert_eq!(
            PersonaPool::new(pool_path.clone()).load().await.len(),
            2,
            "nothing written"
        );
        let (s, _) = send(
            &c,
            M::PUT,
            &url,
            Some(&admin),
            Some(r#"{"personas": [{"name": "a\u0000"}]}"#),
        )
        .await;
        assert_eq!(s, 422);
        // an empty list clears the pool
        let (s, b) = send(&c, M::PUT, &url, Some(&admin), Some(r#"{"personas": []}"#)).await;
        assert_eq!((s, b["personas"].clone()), (200, json!([])));

        // LLM tab
        let llm = format!("{base}/realism/llm");
        let (s, b) = send(&c, M::GET, &llm, Some(&viewer), None).await;
        assert_eq!(
            (s, b),
            (
                200,
                json!({"provider": "ollama", "base_url": null, "model": "llama3.1",
            "timeout": 60.0, "api_key_set": false})
            )
        );
        let put = r#"{"provider":"ollama","base_url":"http://127.0.0.1:11434/","model":"qwen2","timeout":30,"api_key":"sk-secret"}"#;
        assert_eq!(
            send(&c, M::PUT, &llm, Some(&viewer), Some(put)).await.0,
            403
        );
        let (s, b) = send(&c, M::PUT, &llm, Some(&admin), Some(put)).await;
        assert_eq!(
            (s, b.clone()),
            (
                200,
                json!({"provider": "ollama", "base_url": "http://127.0.0.1:11434",
            "model": "qwen2", "timeout": 30.0, "api_key_set": true})
            )
        );
        assert!(!b.to_string().contains("sk-secret"));
        let (_, b) = send(&c, M::PUT, &llm, Some(&admin), Some(r#"{"model":"m2"}"#)).await;
        assert_eq!(b["api_key_set"], true, "absent key kept");
        let (s, b) = send(&c, M::PUT, &llm, Some(&admin), Some(r#"{"timeout":-1}"#)).await;
        assert_eq!(s, 400);
        assert!(b["detail"].as_str().unwrap().contains("timeout"));
        let (_, b) = send(&c, M::PUT, &llm, Some(&admin), Some(r#"{"api_key":""}"#)).await;
        assert_eq!(b["api_key_set"], false);

        // kind=email reads orchestrator_emails adapted to the common shape
        mail_repo::record_orchestrator_email(
            &app.state.db,
            NewOrchestratorEmail {
                mail_decky_uuid: "local:mx".into(),
                thread_id: "t1".into(),
                message_id: "<a@acme.example>".into(),
                in_reply_to: None,
                sender_email: "a@acme.example".into(),
                recipient_email: "b@acme.example".into(),
                subject: "Überprüfung".into(),
                language: "de".into(),
                eml_path: "/var/spool/decnet-emails/t1/a_at_acme.example.eml".into(),
                success: false,
                payload: json!({"stage": "delivery", "generator": "template"}),
            },
        )
        .await
        .unwrap();
        let (s, b) = send(
            &c,
            M::GET,
            &format!("{base}/orchestrator/events?kind=email"),
            Some(&viewer),
            None,
        )
        .await;
        assert_eq!((s, b["total"].clone()), (200, json!(1)), "{b}");
        let row = &b["data"][0];
        for (k, v) in [
            ("kind", json!("email")),
            ("protocol", json!("smtp")),
            ("action", json!("Überprüfung")),
            ("src_decky_uuid", json!("a@acme.example")),
            ("dst_decky_uuid", json!("b@acme.example")),
            ("mail_decky_uuid", json!("local:mx")),
            ("thread_id", json!("t1")),
            ("in_reply_to", Value::Null),
            ("language", json!("de")),
            ("success", json!(false)),
        ] {
            assert_eq!(row[k], v, "{k}");
        }
        assert!(row["payload"].as_str().unwrap().contains("template"));
        let (_, b) = send(
            &c,
            M::GET,
            &format!("{base}/orchestrator/events"),
            Some(&viewer),
            None,
        )
        .await;
        assert_eq!(b["total"], 0, "emails never in the unfiltered list");
        let (_, b) = send(
            &c,
            M::GET,
            &format!("{base}/orchestrator/events/stats?success=false&kind=email"),
            Some(&viewer),
            None,
        )
        .await;
        assert_eq!(b["count"], 1);
        let (_, b) = send(
            &c,
            M::GET,
            &format!("{base}/orchestrator/events/stats?success=false"),
            Some(&viewer),
            None,
        )
        .await;
        assert_eq!(b["count"], 1, "no kind: events + emails");
        let _ = realism_repo::get_realism_config(&app.state.db, "llm")
            .await
            .unwrap()
            .expect("llm stored");
        app.stop().await;
    }
}

/// First run: no persona pool → the planner and the dripper say why in `/workers`.
#[actix_rt::test]
async fn first_run_reason_in_workers() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = decnetd::testkit::settings(dir.path(), None);
    settings.workers.disabled = vec!["reconciler".into()];
    settings.workers.heartbeat_interval_s = 0.2;
    settings.realism.personas_path = Some(dir.path().join("missing.json"));
    let app = decnetd::testkit::start(settings)
        .await
        .expect("daemon starts");
    let base = format!("{}/api/v1", app.base_url());
    let c = reqwest::Client::new();
    let viewer = decnetd::testkit::token_for(&app, "vera", "viewer").await;
    let rows = decnetd::testkit::eventually(Duration::from_secs(20), || {
        let (c, base, viewer) = (c.clone(), base.clone(), viewer.clone());
        async move {
            let (_, b) = send(
                &c,
                reqwest::Method::GET,
                &format!("{base}/workers"),
                Some(&viewer),
                None,
            )
            .await;
            let workers = b["workers"].as_array()?.clone();
            let reason = |n: &str| {
                workers
                    .iter()
                    .find(|w| w["name"] == n)
                    .and_then(|w| w["extra"]["idle_reason"].as_str().map(str::to_owned))
            };
            Some((reason("planner")?, reason("mail-dripper")?))
        }
    })
    .await
    .expect("both rows carry a reason");
    for r in [&rows.0, &rows.1] {
        assert!(r.contains("decnetd personas import"), "{r}");
        assert!(r.contains("missing.json"), "{r}");
    }
    app.stop().await;
}

/// `decnetd personas import` accepts the shipped example pool; bad input exits non-zero.
#[test]
fn cli_imports_the_example_pool() {
    let bin = env!("CARGO_BIN_EXE_decnetd");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sub").join("pool.json");
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/email_personas.example.json"
    );
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .env("HOME", dir.path())
            .env("DECNETD_DATA_DIR", dir.path())
            .output()
            .unwrap()
    };
    let ok = run(&["personas", "import", example, "-o", out.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let parsed = parse_personas(
        Some(&serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()),
        "en",
    );
    assert!(parsed.personas.len() >= 2 && parsed.warnings.is_empty());
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let r = run(&[
        "emailgen",
        "import-personas",
        bad.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("Invalid JSON"));
    std::fs::write(&bad, r#"[{"name": "x"}]"#).unwrap();
    let r = run(&[
        "personas",
        "import",
        bad.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("No valid personas"));
    std::fs::write(
        &bad,
        r#"[{"name": "x", "email": "x@y.example", "role": "r"}]"#,
    )
    .unwrap();
    let r = run(&[
        "personas",
        "import",
        bad.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("Warning"));
}

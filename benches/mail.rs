//! MailDripper benchmarks: template-written messages per second (no LLM) and one full
//! delivery tick (pick, thread lookup, template body, EML render, tar upload into a real
//! busybox mail decky, row insert, publish). The tick bench needs a Docker engine and the
//! image of `scripts/build-test-image`; without them it is skipped with a message.
//!
//! Run: `cargo bench --bench mail`

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use decnetd::actors::mail_dripper::{LlmState, MailCore, MailOutcome};
use decnetd::actors::planner::PersonaPool;
use decnetd::actors::registry::{RegistryConfig, RegistryHandle};
use decnetd::db::models::fleet::FleetDeckyUpsert;
use decnetd::db::repo::fleet as fleet_repo;
use decnetd::db::Db;
use decnetd::docker::{BollardRuntime, ContainerSpec, DeckyRuntime};
use decnetd::domain::mail::thread::CONTEXT_HINTS;
use decnetd::domain::mail::{render_eml, template_email, EmlMessage, ThreadPlan};
use decnetd::domain::realism::parse_personas;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;

const IMAGE: &str = "decnetd-test-decky:latest";

fn personas() -> serde_json::Value {
    json!([
        {"name": "Jürgen Weiß", "email": "jweiss@acme.example", "role": "Controlling",
         "language": "de", "active_hours": "00:00-00:00", "reply_latency": "fast",
         "mannerisms": ["numbers every request"], "timezone": "Europe/Berlin"},
        {"name": "Ana Díaz", "email": "adiaz@acme.example", "role": "Finanzas",
         "language": "es", "active_hours": "00:00-00:00", "reply_latency": "fast",
         "signature": "Ana Díaz\nFinanzas"}
    ])
}

fn template_bodies(c: &mut Criterion) {
    let ps = parse_personas(Some(&personas()), "en").personas;
    let mut g = c.benchmark_group("mail");
    g.throughput(Throughput::Elements(1));
    let mut rng = StdRng::seed_from_u64(1);
    let mut i = 0usize;
    g.bench_function("template_body", |b| {
        b.iter(|| {
            i += 1;
            let plan = ThreadPlan::New {
                thread_id: "t".into(),
                context_hint: CONTEXT_HINTS[i % CONTEXT_HINTS.len()].into(),
            };
            template_email(&ps[i % 2], &ps[(i + 1) % 2], &plan, &mut rng)
        })
    });
    g.bench_function("template_body_and_eml", |b| {
        b.iter(|| {
            i += 1;
            let plan = ThreadPlan::New {
                thread_id: "t".into(),
                context_hint: CONTEXT_HINTS[i % CONTEXT_HINTS.len()].into(),
            };
            let (s, r) = (&ps[i % 2], &ps[(i + 1) % 2]);
            let (m, _) = template_email(s, r, &plan, &mut rng);
            render_eml(&EmlMessage {
                from_name: &s.name,
                from_email: &s.email,
                to_name: &r.name,
                to_email: &r.email,
                subject: &m.subject,
                body: &m.body,
                date: s.local_time(Utc::now()).fixed_offset(),
                message_id: "<0123456789abcdef0123456789abcdef@acme.example>",
                in_reply_to: None,
                references: Vec::new(),
            })
            .expect("render")
        })
    });
    g.finish();
}

fn delivery_tick(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let docker = Arc::new(BollardRuntime::new());
    let ready = rt.block_on(async {
        docker.ping().await.is_ok() && docker.image_exists(IMAGE).await.unwrap_or(false)
    });
    if !ready {
        eprintln!("\n!!! SKIPPING mail/delivery_tick: no Docker engine or no {IMAGE} (run scripts/build-test-image) !!!\n");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("mb{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let container = format!("{name}-imap");
    let (core, pool) = rt.block_on(async {
        docker
            .run_container(&ContainerSpec {
                name: container.clone(),
                image: IMAGE.to_owned(),
                ..Default::default()
            })
            .await
            .expect("start decky");
        let db = Db::connect(
            &format!("sqlite://{}", dir.path().join("m.db").display()),
            2,
        )
        .await
        .expect("sqlite");
        db.migrate().await.expect("migrate");
        fleet_repo::upsert(
            &db,
            FleetDeckyUpsert {
                host_uuid: None,
                name: name.clone(),
                services: vec!["imap".into()],
                decky_config: None,
                decky_ip: Some("10.0.0.2".into()),
                state: "running".into(),
                last_error: None,
                compose_hash: None,
                last_seen: None,
            },
        )
        .await
        .expect("decky");
        let pool_path = dir.path().join("p.json");
        std::fs::write(&pool_path, personas().to_string()).expect("pool");
        let core = MailCore {
            db,
            docker: docker.clone() as Arc<dyn DeckyRuntime>,
            registry: RegistryHandle::start(RegistryConfig::default()),
            llm: Arc::new(LlmState::new(false)),
        };
        (core, PersonaPool::new(pool_path))
    });
    let mut g = c.benchmark_group("mail");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    let mut rng = StdRng::seed_from_u64(2);
    g.bench_function("delivery_tick", |b| {
        b.iter(|| {
            rt.block_on(async {
                match core
                    .tick(&pool, Utc::now(), 0.6, &mut rng)
                    .await
                    .expect("tick")
                {
                    MailOutcome::Attempt(r) => assert!(r.success, "{r:?}"),
                    MailOutcome::Idle(why) => panic!("idle: {why}"),
                }
            })
        })
    });
    g.finish();
    let _ = rt.block_on(docker.remove_container(&container, true));
}

criterion_group!(benches, template_bodies, delivery_tick);
criterion_main!(benches);

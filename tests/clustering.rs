//! Clustering end to end on real databases (SQLite always, PostgreSQL when configured):
//! fixture rows in as `attackers`, identities and campaigns out, events in order; merges,
//! revocations, hop-capped reads, idempotent ticks; and the two workers inside a running daemon.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime};
use decnetd::actors::campaign_clusterer::run_campaign_tick;
use decnetd::actors::clusterer::run_identity_tick;
use decnetd::actors::topics::Event;
use decnetd::db::models::clustering::NewObservation;
use decnetd::db::models::ttp::TtpTag;
use decnetd::db::repo::clustering as repo;
use decnetd::db::{now_utc, Db};
use decnetd::domain::clustering::fixture::{identity_projection, Fixture, FixtureRow, TruthLevel};
use decnetd::domain::clustering::metrics;
use decnetd::domain::clustering::rollup::encode_list;

const FIXTURES: [(&str, &str); 4] = [
    (
        "lone_wolf",
        include_str!("../src/domain/clustering/testdata/lone_wolf.json"),
    ),
    (
        "multi_operator",
        include_str!("../src/domain/clustering/testdata/multi_operator.json"),
    ),
    (
        "shared_wordlist",
        include_str!("../src/domain/clustering/testdata/shared_wordlist.json"),
    ),
    (
        "vpn_hopping",
        include_str!("../src/domain/clustering/testdata/vpn_hopping.json"),
    ),
];

fn ts(epoch: f64) -> NaiveDateTime {
    DateTime::from_timestamp(epoch.floor() as i64, 0)
        .map(|d| d.naive_utc())
        .unwrap_or_else(now_utc)
}

fn list(set: &BTreeSet<String>) -> Option<String> {
    if set.is_empty() {
        None
    } else {
        encode_list(Some(&set.iter().cloned().collect::<Vec<_>>()))
    }
}

/// A fixture row as the intake would have stored it (plus the mined payload / C2 lists).
fn observation(row: &FixtureRow) -> NewObservation {
    let o = identity_projection(row);
    let first = row
        .sessions
        .iter()
        .map(|s| s.start_ts)
        .fold(f64::INFINITY, f64::min);
    let last = row
        .sessions
        .iter()
        .map(|s| s.start_ts + s.duration_s)
        .fold(f64::NEG_INFINITY, f64::max);
    let first = if first.is_finite() {
        first
    } else {
        1_767_225_600.0
    };
    let last = if last.is_finite() { last } else { first };
    NewObservation {
        uuid: row.row_id.clone(),
        ip: row.ip.clone().unwrap_or_else(|| "192.0.2.1".into()),
        identity_id: None,
        first_seen: ts(first),
        last_seen: ts(last),
        event_count: row.sessions.len() as i64,
        fingerprints: Some(row.fingerprints.to_string()),
        asn: row.asn,
        payload_hashes: list(&o.payload_hashes),
        c2_endpoints: list(&o.c2_endpoints),
        updated_at: now_utc(),
    }
}

fn bare(uuid: &str, fingerprints: &str, minute: u32) -> NewObservation {
    let t = ts(1_767_225_600.0 + f64::from(minute) * 60.0);
    NewObservation {
        uuid: uuid.into(),
        ip: format!("198.51.100.{minute}"),
        identity_id: None,
        first_seen: t,
        last_seen: t,
        event_count: 1,
        fingerprints: Some(fingerprints.into()),
        asn: None,
        payload_hashes: None,
        c2_endpoints: None,
        updated_at: now_utc(),
    }
}

fn fp(ja3: &str, hassh: &str) -> String {
    format!(
        r#"[{{"bounty_type":"fingerprint","payload":{{"fingerprint_type":"ja3","ja3":"{ja3}"}}}},{{"bounty_type":"fingerprint","payload":{{"fingerprint_type":"hassh_server","hash":"{hassh}"}}}}]"#
    )
}

/// `observation → (canonical identity, canonical campaign)` as the read side resolves them.
async fn predicted(
    db: &Db,
    rows: &[FixtureRow],
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut ids = BTreeMap::new();
    let mut cmps = BTreeMap::new();
    let stored = repo::list_attackers_for_clustering(db, None)
        .await
        .expect("list observations");
    let fk: BTreeMap<String, Option<String>> = stored
        .into_iter()
        .map(|o| (o.row.uuid, o.row.identity_id))
        .collect();
    for row in rows {
        let literal = fk[&row.row_id]
            .clone()
            .expect("every observation is linked");
        let (identity, _) = repo::get_identity_by_uuid(db, &literal)
            .await
            .expect("read")
            .expect("identity exists");
        let campaign = identity
            .campaign_id
            .clone()
            .expect("every identity has a campaign");
        let (campaign, _) = repo::get_campaign_by_uuid(db, &campaign)
            .await
            .expect("read")
            .expect("campaign exists");
        ids.insert(row.row_id.clone(), identity.uuid);
        cmps.insert(row.row_id.clone(), campaign.uuid);
    }
    (ids, cmps)
}

fn perfect(s: &metrics::Scores) -> bool {
    [
        s.adjusted_rand_index,
        s.homogeneity,
        s.completeness,
        s.singleton_recall,
    ] == [1.0; 4]
}

#[actix_rt::test]
async fn shared_fixtures_through_both_ticks_on_every_backend() {
    for (backend, db, _dir) in common::all_backends().await {
        for (name, text) in FIXTURES {
            // Each fixture in its own database (row ids repeat across fixtures).
            let (db, _keep) = if backend == "sqlite" {
                let (dir, db) = common::sqlite_db().await;
                (db, Some(dir))
            } else {
                (common::pg_db().await.expect("pg configured"), None)
            };
            let fx = Fixture::from_json(text).expect("fixture parses");
            repo::insert_observations(&db, fx.rows.iter().map(observation).collect())
                .await
                .expect("seed");

            let identity = run_identity_tick(&db).await.expect("identity tick");
            assert!(identity.maintenance_ok, "{backend}/{name}");
            let campaign = run_campaign_tick(&db).await.expect("campaign tick");
            assert!(campaign.maintenance_ok, "{backend}/{name}");

            // Events: one formed identity per truth identity here (fresh DB), every observation named once.
            let formed_obs: usize = identity
                .formed
                .iter()
                .map(|f| f.observation_uuids.len())
                .sum();
            assert_eq!(formed_obs, fx.rows.len(), "{backend}/{name}");
            let events = campaign.events();
            let assigned = events
                .iter()
                .filter(|e| matches!(e, Event::IdentityCampaignAssigned(_)))
                .count();
            assert_eq!(
                assigned,
                identity.formed.len(),
                "{backend}/{name}: one cross-family event per identity"
            );
            assert!(
                matches!(events.first(), Some(Event::CampaignFormed(_))),
                "{backend}/{name}"
            );

            let (ids, cmps) = predicted(&db, &fx.rows).await;
            let s = metrics::score(&ids, &fx.truth(TruthLevel::Identity)).expect("score");
            assert!(perfect(&s), "{backend}/{name} identity {s:?}");
            let s = metrics::score(&cmps, &fx.truth(TruthLevel::Campaign)).expect("score");
            assert!(perfect(&s), "{backend}/{name} campaign {s:?}");

            // Second ticks: nothing new.
            let again = run_identity_tick(&db).await.expect("tick");
            assert!(
                again.events().is_empty(),
                "{backend}/{name}: {:?}",
                again.events()
            );
            assert!(
                run_campaign_tick(&db)
                    .await
                    .expect("tick")
                    .events()
                    .is_empty(),
                "{backend}/{name}"
            );

            // Roll-ups and evidence on a multi-observation identity.
            if name == "vpn_hopping" {
                let (identity, _) =
                    repo::get_identity_by_uuid(&db, &identity.formed[0].identity_uuid)
                        .await
                        .expect("read")
                        .expect("exists");
                let ja3 = fx.rows[0].ja3.clone().expect("ja3");
                assert_eq!(identity.ja3_hashes, encode_list(Some(&[ja3])), "{backend}");
                assert_eq!(identity.tls_cert_sha256, None, "no certificates → NULL");
                assert_eq!(identity.observation_count, 5);
                let evidence = repo::identity_evidence(&db, &identity.uuid)
                    .await
                    .expect("evidence");
                assert_eq!(
                    evidence.len(),
                    4,
                    "{backend}: spanning edges of 5 observations"
                );
                assert!(evidence
                    .iter()
                    .all(|e| e.signal == "ja3" && e.weight >= 1.0));
            }
            if name == "multi_operator" {
                let campaigns = repo::list_campaigns(&db, 50, 0).await.expect("list");
                assert_eq!(campaigns.len(), 1);
                assert_eq!(campaigns[0].identity_count, 2);
                let evidence = repo::campaign_evidence(&db, &campaigns[0].uuid)
                    .await
                    .expect("evidence");
                assert_eq!(evidence.len(), 1, "{backend}");
                assert_eq!(evidence[0].shared_infra, 1.0);
                assert_eq!(repo::count_identities(&db).await.expect("count"), 2);
            }
        }
        drop(db);
    }
}

#[actix_rt::test]
async fn bridging_observation_merges_and_diverged_merge_is_revoked() {
    for (backend, db, _dir) in common::all_backends().await {
        repo::insert_observations(
            &db,
            vec![
                bare("o1", &fp("J1", "H1"), 1),
                bare("o2", &fp("J2", "H2"), 2),
            ],
        )
        .await
        .expect("seed");
        let first = run_identity_tick(&db).await.expect("tick");
        assert_eq!(first.formed.len(), 2, "{backend}");
        let (a, b) = (
            first.formed[0].identity_uuid.clone(),
            first.formed[1].identity_uuid.clone(),
        );
        let (winner, loser) = if a < b { (a, b) } else { (b, a) };

        // o3 shares JA3 with o1 and HASSH with o2: the two identities merge.
        repo::insert_observations(&db, vec![bare("o3", &fp("J1", "H2"), 3)])
            .await
            .expect("seed");
        let bridge = run_identity_tick(&db).await.expect("tick");
        assert_eq!(bridge.merged.len(), 1, "{backend}");
        assert_eq!(
            bridge.merged[0].winner_uuid, winner,
            "{backend}: smallest uuid wins"
        );
        assert_eq!(bridge.merged[0].loser_uuid, loser);
        assert_eq!(bridge.linked.len(), 1);
        assert_eq!(bridge.linked[0].identity_uuid, winner);
        let (read, chain) = repo::get_identity_by_uuid(&db, &loser)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(read.uuid, winner, "{backend}: a loser reads as its winner");
        assert_eq!(chain, vec![loser.clone(), winner.clone()]);
        assert_eq!(
            repo::count_identities(&db).await.expect("count"),
            1,
            "merged-out rows hidden"
        );
        let (rolled, _) = repo::get_identity_by_uuid(&db, &winner)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(
            rolled.ja3_hashes.as_deref(),
            Some(r#"["J1","J2"]"#),
            "{backend}: roll-up covers loser rows"
        );
        let literal: BTreeMap<String, Option<String>> =
            repo::list_attackers_for_clustering(&db, None)
                .await
                .expect("list")
                .into_iter()
                .map(|o| (o.row.uuid, o.row.identity_id))
                .collect();
        assert!(
            literal
                .values()
                .any(|v| v.as_deref() == Some(loser.as_str())),
            "loser keeps its FK"
        );
        assert!(
            run_identity_tick(&db)
                .await
                .expect("tick")
                .events()
                .is_empty(),
            "{backend}: idempotent"
        );
        drop(db);
    }
}

#[actix_rt::test]
async fn pre_seeded_merge_without_support_is_revoked_keeping_the_uuid() {
    for (backend, db, _dir) in common::all_backends().await {
        repo::insert_observations(
            &db,
            vec![
                bare("o1", &fp("J1", "H1"), 1),
                bare("o2", &fp("J2", "H2"), 2),
            ],
        )
        .await
        .expect("seed");
        let first = run_identity_tick(&db).await.expect("tick");
        let (a, b) = (
            first.formed[0].identity_uuid.clone(),
            first.formed[1].identity_uuid.clone(),
        );
        // An operator (or an older tick) merged b into a; the observations say otherwise.
        seed_merge(&db, &b, &a).await;
        let tick = run_identity_tick(&db).await.expect("tick");
        assert_eq!(tick.unmerged.len(), 1, "{backend}");
        assert_eq!(tick.unmerged[0].resurrected_uuid, b);
        assert_eq!(tick.unmerged[0].former_winner_uuid, a);
        assert!(
            tick.formed.is_empty(),
            "{backend}: the resurrected identity keeps its uuid"
        );
        // identity.formed is published again for it, right after its identity.unmerged
        // (clustering.md §10.6), with the observations literally FK'd to it.
        let events = tick.events();
        let at = events
            .iter()
            .position(|e| matches!(e, Event::IdentityUnmerged(u) if u.resurrected_uuid == b))
            .expect("unmerged event");
        match &events[at + 1] {
            Event::IdentityFormed(f) => {
                assert_eq!(f.identity_uuid, b, "{backend}");
                assert_eq!(f.observation_uuids, vec!["o2".to_owned()], "{backend}");
            }
            other => panic!("{backend}: expected identity.formed, got {other:?}"),
        }
        let (read, _) = repo::get_identity_by_uuid(&db, &b)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(read.uuid, b);
        assert_eq!(read.merged_into_uuid, None);
        assert!(
            run_identity_tick(&db)
                .await
                .expect("tick")
                .events()
                .is_empty(),
            "{backend}"
        );
        drop(db);
    }
}

async fn seed_merge(db: &Db, loser: &str, winner: &str) {
    // Through the repository's own plan writer, as a tick would.
    repo::apply_identity_plan(
        db,
        repo::IdentityPlanWrites {
            merge_pointers: vec![(loser.to_owned(), Some(winner.to_owned()))],
            ..Default::default()
        },
        now_utc(),
    )
    .await
    .expect("seed merge");
}

#[actix_rt::test]
async fn merge_chain_reads_stop_after_eight_hops() {
    for (backend, db, _dir) in common::all_backends().await {
        let rows: Vec<NewObservation> = (0..12)
            .map(|i| {
                bare(
                    &format!("o{i:02}"),
                    &fp(&format!("J{i}"), &format!("H{i}")),
                    i,
                )
            })
            .collect();
        repo::insert_observations(&db, rows).await.expect("seed");
        let tick = run_identity_tick(&db).await.expect("tick");
        let ids: Vec<String> = tick
            .formed
            .iter()
            .map(|f| f.identity_uuid.clone())
            .collect();
        for pair in ids.windows(2) {
            seed_merge(&db, &pair[0], &pair[1]).await;
        }
        let (read, chain) = repo::get_identity_by_uuid(&db, &ids[0])
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(chain.len(), 9, "{backend}: start + 8 hops");
        assert_eq!(read.uuid, ids[8], "{backend}: the last row read at the cap");
        assert!(repo::get_identity_by_uuid(&db, "no-such-identity")
            .await
            .expect("read")
            .is_none());
        drop(db);
    }
}

#[actix_rt::test]
async fn empty_database_tick_does_nothing() {
    for (backend, db, _dir) in common::all_backends().await {
        let i = run_identity_tick(&db).await.expect("tick");
        let c = run_campaign_tick(&db).await.expect("tick");
        assert!(i.events().is_empty() && c.events().is_empty(), "{backend}");
        assert_eq!(repo::count_identities(&db).await.expect("count"), 0);
        drop(db);
    }
}

/// The workers inside a running daemon: rows in, identities and campaigns in the database,
/// events out on the registry (both families, incl. the cross-family copy), on every backend.
#[actix_rt::test]
async fn workers_cluster_fixture_rows_end_to_end() {
    let mut urls: Vec<(&str, Option<String>)> = vec![("sqlite", None)];
    if let Some(url) = common::pg_database_url().await {
        urls.push(("postgres", Some(url)));
    }
    for (backend, url) in urls {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = decnetd::testkit::settings(dir.path(), url);
        settings.clustering.tick_s = 0.5;
        settings.workers.disabled = [
            "ingester",
            "enricher",
            "planner",
            "mail-dripper",
            "canary",
            "reconciler",
            "webhooks",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let app = decnetd::testkit::start(settings)
            .await
            .expect("daemon starts");
        let mut identity_events = app
            .state
            .registry
            .subscribe("identity.>")
            .await
            .expect("subscribe");
        let mut campaign_events = app
            .state
            .registry
            .subscribe("campaign.>")
            .await
            .expect("subscribe");

        let fx = Fixture::from_json(FIXTURES[1].1).expect("multi_operator");
        repo::insert_observations(&app.state.db, fx.rows.iter().map(observation).collect())
            .await
            .expect("seed");
        // Announce the rows the way intake does.
        app.state.registry.publish_raw(
            "attacker.observed",
            "observed",
            serde_json::json!({"attacker_ip": "x"}),
        );

        let db = app.state.db.clone();
        let done = decnetd::testkit::eventually(Duration::from_secs(20), || {
            let db = db.clone();
            async move {
                let n = repo::count_campaigns(&db).await.ok()?;
                let ids = repo::list_identities(&db, 50, 0).await.ok()?;
                (n == 1 && ids.len() == 2 && ids.iter().all(|i| i.campaign_id.is_some()))
                    .then_some(())
            }
        })
        .await;
        assert!(
            done.is_some(),
            "{backend}: the workers formed 2 identities in 1 campaign"
        );

        use futures::StreamExt;
        let mut topics = Vec::new();
        while let Ok(Some(env)) =
            tokio::time::timeout(Duration::from_millis(500), identity_events.next()).await
        {
            topics.push(env.topic.clone());
        }
        while let Ok(Some(env)) =
            tokio::time::timeout(Duration::from_millis(500), campaign_events.next()).await
        {
            topics.push(env.topic.clone());
        }
        assert_eq!(
            topics.iter().filter(|t| *t == "identity.formed").count(),
            2,
            "{backend}: {topics:?}"
        );
        assert_eq!(
            topics.iter().filter(|t| *t == "campaign.formed").count(),
            1,
            "{backend}: {topics:?}"
        );
        assert_eq!(
            topics
                .iter()
                .filter(|t| *t == "identity.campaign.assigned")
                .count(),
            2,
            "{backend}: {topics:?}"
        );
        app.stop().await;
    }
}

mod routes {
    use super::*;
    use serde_json::Value;

    async fn get(client: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
        let r = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Open an SSE stream with a fresh ticket and read until `needle` shows up (or 5 s pass).
    async fn sse_until(
        client: &reqwest::Client,
        base: &str,
        token: &str,
        path: &str,
        needles: &[&str],
    ) -> (u16, String) {
        let ticket = decnetd::testkit::sse_ticket(client, &format!("{base}/api/v1"), token).await;
        let mut resp = client
            .get(format!("{base}{path}?ticket={ticket}"))
            .send()
            .await
            .expect("stream");
        let status = resp.status().as_u16();
        let mut text = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !needles.iter().all(|n| text.contains(n)) && tokio::time::Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, resp.chunk()).await {
                Ok(Ok(Some(bytes))) => text.push_str(&String::from_utf8_lossy(&bytes)),
                _ => break,
            }
        }
        (status, text)
    }

    #[actix_rt::test]
    async fn identity_and_campaign_routes_and_streams() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = decnetd::testkit::start_http_only(decnetd::testkit::settings(dir.path(), None))
            .await
            .expect("daemon");
        let db = app.state.db.clone();
        let base = app.base_url();
        let token = decnetd::testkit::token_for(&app, "vera", "viewer").await;
        let client = reqwest::Client::new();

        let fx = Fixture::from_json(FIXTURES[1].1).expect("multi_operator");
        repo::insert_observations(&db, fx.rows.iter().map(observation).collect())
            .await
            .expect("seed");
        repo::insert_observations(
            &db,
            vec![
                bare("b1", &fp("J1", "H1"), 1),
                bare("b2", &fp("J2", "H2"), 2),
            ],
        )
        .await
        .expect("seed");
        run_identity_tick(&db).await.expect("tick");
        repo::insert_observations(&db, vec![bare("b3", &fp("J1", "H2"), 3)])
            .await
            .expect("seed");
        let bridge = run_identity_tick(&db).await.expect("tick");
        run_campaign_tick(&db).await.expect("tick");
        let winner = bridge.merged[0].winner_uuid.clone();
        let loser = bridge.merged[0].loser_uuid.clone();

        // List: merged-out rows hidden, JSON-list columns are strings, confidence is an explicit null.
        let (status, list) = get(
            &client,
            &format!("{base}/api/v1/identities?limit=50"),
            &token,
        )
        .await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["total"], 3);
        let rows = list["data"].as_array().expect("data");
        assert!(rows
            .iter()
            .all(|r| r["uuid"].as_str() != Some(loser.as_str())));
        assert!(rows
            .iter()
            .all(|r| r.as_object().is_some_and(|o| o.contains_key("confidence"))));
        assert!(rows.iter().any(|r| r["ja3_hashes"].is_string()));
        let (status, _) = get(
            &client,
            &format!("{base}/api/v1/identities?limit=0"),
            &token,
        )
        .await;
        assert_eq!(status, 422);

        // Detail of the loser resolves to the winner, with chain and evidence.
        let (status, detail) = get(
            &client,
            &format!("{base}/api/v1/identities/{loser}"),
            &token,
        )
        .await;
        assert_eq!(status, 200, "{detail}");
        assert_eq!(detail["uuid"], Value::from(winner.clone()));
        assert_eq!(detail["merge_chain"], serde_json::json!([loser, winner]));
        assert_eq!(
            detail["observation_count_live"], 2,
            "b1 (or b2) and b3 are FK'd to the winner"
        );
        let signals: BTreeSet<&str> = detail["evidence"]
            .as_array()
            .expect("evidence")
            .iter()
            .filter_map(|e| e["signal"].as_str())
            .collect();
        assert_eq!(signals, BTreeSet::from(["ja3", "hassh"]));
        assert!(detail["confidence"].is_null());
        let (status, obs) = get(
            &client,
            &format!("{base}/api/v1/identities/{loser}/observations"),
            &token,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(obs["total"], 2, "observations of the canonical identity");
        let (status, missing) =
            get(&client, &format!("{base}/api/v1/identities/nope"), &token).await;
        assert_eq!(
            (status, missing["detail"].as_str()),
            (404, Some("Identity not found"))
        );
        let (status, _) = get(
            &client,
            &format!("{base}/api/v1/identities/nope/observations"),
            &token,
        )
        .await;
        assert_eq!(status, 404);

        // Campaigns.
        let (status, campaigns) = get(&client, &format!("{base}/api/v1/campaigns"), &token).await;
        assert_eq!(status, 200);
        let shared = campaigns["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|c| c["identity_count"] == 2)
            .expect("the multi-operator campaign")
            .clone();
        let uuid = shared["uuid"].as_str().expect("uuid");
        let (status, detail) =
            get(&client, &format!("{base}/api/v1/campaigns/{uuid}"), &token).await;
        assert_eq!(status, 200);
        assert_eq!(detail["identity_count_live"], 2);
        assert_eq!(detail["evidence"][0]["shared_infra"], 1.0);
        assert_eq!(
            detail["evidence"][0]["shared_tokens"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        let (status, members) = get(
            &client,
            &format!("{base}/api/v1/campaigns/{uuid}/identities"),
            &token,
        )
        .await;
        assert_eq!((status, members["total"].as_i64()), (200, Some(2)));
        let (status, missing) =
            get(&client, &format!("{base}/api/v1/campaigns/nope"), &token).await;
        assert_eq!(
            (status, missing["detail"].as_str()),
            (404, Some("Campaign not found"))
        );

        // Streams: `/events` is not swallowed by `/{uuid}`; snapshot first, then live events.
        let registry = app.state.registry.clone();
        let publisher = actix_rt::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(150)).await;
                registry.publish(Event::IdentityMerged(decnetd::actors::topics::Merged {
                    winner_uuid: "w".into(),
                    loser_uuid: "l".into(),
                }));
                registry.publish(Event::CampaignIdentityAssigned(
                    decnetd::actors::topics::CampaignAssigned {
                        identity_uuid: "i".into(),
                        campaign_uuid: "c".into(),
                        prior_campaign_uuid: None,
                    },
                ));
            }
        });
        let (status, text) = sse_until(
            &client,
            &base,
            &token,
            "/api/v1/identities/events",
            &["event: merged"],
        )
        .await;
        assert_eq!(status, 200, "{text}");
        assert!(
            text.contains("event: snapshot") && text.contains("\"identities\""),
            "{text}"
        );
        assert!(
            text.find("event: snapshot") < text.find("event: merged"),
            "{text}"
        );
        let (status, text) = sse_until(
            &client,
            &base,
            &token,
            "/api/v1/campaigns/events",
            &["event: identity.assigned"],
        )
        .await;
        assert_eq!(status, 200, "{text}");
        assert!(
            text.contains("event: snapshot") && text.contains("\"campaigns\""),
            "{text}"
        );
        publisher.abort();
        app.stop().await;
    }
}

fn with_c2(mut o: NewObservation, c2: &str) -> NewObservation {
    o.c2_endpoints = encode_list(Some(&[c2.to_owned()]));
    o
}

#[actix_rt::test]
async fn a_new_identity_joins_an_existing_campaign_with_the_cross_family_event() {
    for (backend, db, _dir) in common::all_backends().await {
        repo::insert_observations(
            &db,
            vec![
                with_c2(bare("a1", &fp("JA", "HA"), 1), "c2.example"),
                with_c2(bare("b1", &fp("JB", "HB"), 2), "c2.example"),
            ],
        )
        .await
        .expect("seed");
        run_identity_tick(&db).await.expect("tick");
        let first = run_campaign_tick(&db).await.expect("tick");
        assert_eq!(first.formed.len(), 1, "{backend}");
        let campaign = first.formed[0].campaign_uuid.clone();

        repo::insert_observations(
            &db,
            vec![with_c2(bare("c1", &fp("JC", "HC"), 3), "c2.example")],
        )
        .await
        .expect("seed");
        let identities = run_identity_tick(&db).await.expect("tick");
        assert_eq!(
            identities.formed.len(),
            1,
            "{backend}: the veto keeps a third operator apart"
        );
        let second = run_campaign_tick(&db).await.expect("tick");
        assert!(second.formed.is_empty(), "{backend}");
        assert_eq!(second.assigned.len(), 1);
        assert_eq!(second.assigned[0].campaign_uuid, campaign);
        assert_eq!(second.assigned[0].prior_campaign_uuid, None);
        let events = second.events();
        assert!(
            matches!(&events[0], Event::CampaignIdentityAssigned(a) if a.campaign_uuid == campaign)
        );
        assert!(
            matches!(&events[1], Event::IdentityCampaignAssigned(a) if a.campaign_uuid == campaign)
        );
        let (row, _) = repo::get_campaign_by_uuid(&db, &campaign)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(row.identity_count, 3, "{backend}: maintained count");
        assert!(
            run_campaign_tick(&db)
                .await
                .expect("tick")
                .events()
                .is_empty(),
            "{backend}"
        );
        drop(db);
    }
}

fn tag(id: &str, observation: &str, decky: &str, tactic: &str, minute: u32, log_id: i64) -> TtpTag {
    let at = ts(1_767_225_600.0 + f64::from(minute) * 60.0);
    TtpTag {
        uuid: id.into(),
        attacker_uuid: observation.into(),
        decky_id: decky.into(),
        service: "ssh".into(),
        tactic_id: tactic.into(),
        technique_id: "T0000".into(),
        rule_id: "test".into(),
        log_id,
        evidence: "{}".into(),
        observed_at: at,
        created_at: at,
    }
}

/// A merged-out identity's observations keep their FK, and their TTP tags count for the
/// winner (as their payload / C2 do): handoffs seen only on the loser's side link the winner,
/// found from either end. By the literal FK alone the tags counted for no one, so whether a
/// merged identity joined a campaign depended on which of the two identity uuids was smaller.
#[actix_rt::test]
async fn a_merged_out_identitys_tags_count_for_its_winner() {
    for (backend, db, _dir) in common::all_backends().await {
        repo::insert_observations(
            &db,
            vec![
                bare("o1", &fp("J1", "H1"), 1),
                bare("o2", &fp("J2", "H2"), 2),
                bare("p1", &fp("JP", "HP"), 3),
            ],
        )
        .await
        .expect("seed");
        assert_eq!(tick_pair(&db).await, (3, 3), "{backend}");
        // o3 bridges o1's and o2's identities.
        repo::insert_observations(&db, vec![bare("o3", &fp("J1", "H2"), 4)])
            .await
            .expect("seed");
        let merge = run_identity_tick(&db).await.expect("tick");
        assert_eq!(merge.merged.len(), 1, "{backend}");
        run_campaign_tick(&db).await.expect("tick");
        let literal: BTreeMap<String, Option<String>> =
            repo::list_attackers_for_clustering(&db, None)
                .await
                .expect("list")
                .into_iter()
                .map(|o| (o.row.uuid, o.row.identity_id))
                .collect();
        let loser = &merge.merged[0].loser_uuid;
        let on_loser = ["o1", "o2"]
            .into_iter()
            .find(|o| literal[*o].as_deref() == Some(loser.as_str()))
            .expect("an observation keeps the loser's FK");
        let winner = merge.merged[0].winner_uuid.clone();
        let partner = literal["p1"].clone().expect("linked");
        let together = || {
            let (db, winner, partner) = (db.clone(), winner.clone(), partner.clone());
            async move {
                let mut campaigns = Vec::new();
                for uuid in [winner, partner] {
                    let (identity, _) = repo::get_identity_by_uuid(&db, &uuid)
                        .await
                        .expect("read")
                        .expect("exists");
                    let campaign = identity.campaign_id.expect("in a campaign");
                    let (row, _) = repo::get_campaign_by_uuid(&db, &campaign)
                        .await
                        .expect("read")
                        .expect("exists");
                    campaigns.push(row.uuid);
                }
                campaigns[0] == campaigns[1]
            }
        };
        let ttp = |tags: Vec<TtpTag>| {
            let db = db.clone();
            async move {
                let cursor = tags.iter().map(|t| t.log_id).max().unwrap_or(0);
                decnetd::db::repo::ttp::commit_tags(&db, tags, cursor)
                    .await
                    .expect("tags");
                tick_pair(&db).await
            }
        };
        assert!(!together().await, "{backend}");

        // C2 phases on two deckies, on the loser's observation: the winner's features change,
        // and no partner yet.
        ttp(vec![
            tag("t1", on_loser, "decky-01", "TA0011", 10, 1),
            tag("t2", on_loser, "decky-02", "TA0011", 10, 2),
        ])
        .await;
        assert!(!together().await, "{backend}: no handoff yet");
        // A tick later p1's discovery on both deckies an hour after: p1 changes and finds the
        // loser's tags in its windows; a handoff repeated on two deckies links on its own.
        ttp(vec![
            tag("t3", "p1", "decky-01", "TA0007", 70, 3),
            tag("t4", "p1", "decky-02", "TA0007", 70, 4),
        ])
        .await;
        assert!(
            together().await,
            "{backend}: the handoff from the loser's side links the winner"
        );
        drop(db);
    }
}

/// Run raw SQL on either backend (test-only surgery).
async fn raw_sql(db: &Db, sql: &str) {
    use diesel_async::SimpleAsyncConnection;
    match db {
        Db::Sqlite(pool) => pool
            .get()
            .await
            .expect("conn")
            .batch_execute(sql)
            .await
            .expect("sql"),
        Db::Pg(pool) => pool
            .get()
            .await
            .expect("conn")
            .batch_execute(sql)
            .await
            .expect("sql"),
    }
}

#[actix_rt::test]
async fn a_failing_rollup_write_is_logged_and_never_breaks_the_tick() {
    for (backend, db, _dir) in common::all_backends().await {
        repo::insert_observations(
            &db,
            vec![bare("o1", &fp("J", "H1"), 1), bare("o2", &fp("J", "H2"), 2)],
        )
        .await
        .expect("seed");
        // Evidence cannot be written any more: the maintenance transaction fails.
        raw_sql(&db, "DROP TABLE identity_evidence").await;
        let tick = run_identity_tick(&db)
            .await
            .expect("the tick itself succeeds");
        assert!(!tick.maintenance_ok, "{backend}");
        assert_eq!(
            tick.formed.len(),
            1,
            "{backend}: the plan was committed and is published"
        );
        assert_eq!(repo::count_identities(&db).await.expect("count"), 1);
        drop(db);
    }
}

#[actix_rt::test]
async fn a_failing_tick_is_counted_and_the_worker_keeps_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = decnetd::testkit::settings(dir.path(), None);
    settings.clustering.tick_s = 0.2;
    settings.workers.disabled = [
        "ingester",
        "enricher",
        "planner",
        "mail-dripper",
        "canary",
        "reconciler",
        "webhooks",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let app = decnetd::testkit::start(settings)
        .await
        .expect("daemon starts");
    let db = app.state.db.clone();
    // Break the campaign layer's storage first: once an identity exists, every campaign tick
    // fails when it applies its plan (the identity layer is untouched).
    raw_sql(
        &db,
        "CREATE TRIGGER no_campaigns BEFORE INSERT ON campaigns BEGIN SELECT RAISE(ABORT, 'broken'); END;",
    )
    .await;
    repo::insert_observations(&db, vec![bare("o1", &fp("J", "H"), 1)])
        .await
        .expect("seed");
    let formed = decnetd::testkit::eventually(Duration::from_secs(10), || {
        let db = db.clone();
        async move { (repo::count_identities(&db).await.ok()? == 1).then_some(()) }
    })
    .await;
    assert!(formed.is_some(), "the clusterer formed the identity");
    let status = app.state.status.clone();
    let failing = decnetd::testkit::eventually(Duration::from_secs(10), || {
        let status = status.clone();
        async move {
            let extra = status.extra_of("campaign-clusterer")?;
            (extra.get("failed_ticks")?.as_u64()? >= 2).then_some(())
        }
    })
    .await;
    assert!(
        failing.is_some(),
        "failed ticks are counted while the worker keeps beating"
    );
    let workers = app.state.supervisor.known_workers();
    assert!(workers.iter().any(|w| w.name == "campaign-clusterer"));
    app.stop().await;
}

#[test]
fn clusterer_implementation_selectors_are_validated_at_startup() {
    use decnetd::config::{ClustererKind, EnvSource, Settings};
    let ok = Settings::load(
        None,
        &EnvSource::from_pairs([
            ("DECNET_CLUSTERER_TYPE", "Connected_Components"),
            ("DECNET_CAMPAIGN_CLUSTERER_TYPE", "connected_components"),
        ]),
    )
    .expect("case-insensitive known name");
    assert_eq!(
        ok.clustering.clusterer_type,
        ClustererKind::ConnectedComponents
    );
    for var in ["DECNET_CLUSTERER_TYPE", "DECNET_CAMPAIGN_CLUSTERER_TYPE"] {
        let err = Settings::load(None, &EnvSource::from_pairs([(var, "kmeans")]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(var), "{var}: {err}");
    }
}

/// Rows one identity tick and one campaign tick read, as their outcomes report them.
async fn tick_pair(db: &Db) -> (usize, usize) {
    let i = run_identity_tick(db).await.expect("identity tick");
    let c = run_campaign_tick(db).await.expect("campaign tick");
    (i.observations, c.identities)
}

#[actix_rt::test]
async fn ticks_read_only_what_changed_and_its_closure() {
    for (backend, db, _dir) in common::all_backends().await {
        repo::insert_observations(
            &db,
            vec![
                bare("o1", &fp("J1", "H1"), 1),
                bare("o2", &fp("J1", "H2"), 2),
                bare("o3", &fp("J3", "H3"), 3),
                bare("o4", "[]", 4),
            ],
        )
        .await
        .expect("seed");
        let (obs, ids) = tick_pair(&db).await;
        assert_eq!(
            (obs, ids),
            (4, 3),
            "{backend}: the first tick reads everything"
        );
        // The campaign links bump identities' updated_at; that is no news for either layer.
        assert_eq!(
            tick_pair(&db).await,
            (0, 0),
            "{backend}: an idle tick reads nothing"
        );

        // A new observation sharing o1's JA3: the identity tick reads it, o1 and o2 (its
        // identity), nothing of o3 / o4.
        repo::insert_observations(&db, vec![bare("o5", &fp("J1", "H5"), 5)])
            .await
            .expect("seed");
        let i = run_identity_tick(&db).await.expect("tick");
        assert_eq!(i.observations, 3, "{backend}: the change and its closure");
        assert_eq!(i.linked.len(), 1);
        assert_eq!(i.linked[0].observation_uuid, "o5");
        let c = run_campaign_tick(&db).await.expect("tick");
        assert_eq!(
            c.identities, 1,
            "{backend}: only the identity that changed (its campaign has no other member)"
        );
        assert!(c.events().is_empty(), "{backend}: nothing to regroup");
        assert_eq!(tick_pair(&db).await, (0, 0), "{backend}: idle again");

        // An observation that changes (intake rewrote it with new fingerprints) is re-read with
        // its closure and moves: o3 takes o1's JA3, so its identity merges into o1's.
        let stamp = match backend {
            "sqlite" => "'2027-01-01 00:00:00'",
            _ => "TIMESTAMP '2027-01-01 00:00:00'",
        };
        raw_sql(
            &db,
            &format!(
                "UPDATE attackers SET fingerprints = '{}', updated_at = {stamp} WHERE uuid = 'o3'",
                fp("J1", "H3"),
            ),
        )
        .await;
        let i = run_identity_tick(&db).await.expect("tick");
        assert_eq!(i.merged.len(), 1, "{backend}: the changed row bridges");
        assert_eq!(
            i.observations, 4,
            "{backend}: o3 and the J1 identity's rows"
        );
        drop(db);
    }
}

#[actix_rt::test]
async fn campaign_span_and_counts_are_maintained_and_updated_at_moves_only_on_change() {
    for (backend, db, _dir) in common::all_backends().await {
        repo::insert_observations(
            &db,
            vec![
                with_c2(bare("a1", &fp("JA", "HA"), 10), "c2.example"),
                with_c2(bare("b1", &fp("JB", "HB"), 20), "c2.example"),
            ],
        )
        .await
        .expect("seed");
        run_identity_tick(&db).await.expect("tick");
        let first = run_campaign_tick(&db).await.expect("tick");
        let campaign = first.formed[0].campaign_uuid.clone();
        let read = |db: &Db, uuid: &str| {
            let (db, uuid) = (db.clone(), uuid.to_owned());
            async move {
                repo::get_campaign_by_uuid(&db, &uuid)
                    .await
                    .expect("read")
                    .expect("exists")
                    .0
            }
        };
        let row = read(&db, &campaign).await;
        let minute = |m: u32| ts(1_767_225_600.0 + f64::from(m) * 60.0);
        assert_eq!(row.identity_count, 2, "{backend}");
        assert_eq!(
            row.first_seen_at,
            Some(minute(10)),
            "{backend}: earliest member"
        );
        assert_eq!(
            row.last_seen_at,
            Some(minute(20)),
            "{backend}: latest member"
        );

        // Idle ticks change nothing: no row's updated_at moves (clustering.md §10.10).
        let identities_before = repo::list_identities(&db, 10, 0).await.expect("list");
        for _ in 0..2 {
            assert_eq!(tick_pair(&db).await, (0, 0), "{backend}");
        }
        assert_eq!(
            read(&db, &campaign).await,
            row,
            "{backend}: campaign untouched"
        );
        assert_eq!(
            repo::list_identities(&db, 10, 0).await.expect("list"),
            identities_before,
            "{backend}: identities untouched"
        );

        // A third operator on the same C2, later: count and last seen follow.
        repo::insert_observations(
            &db,
            vec![with_c2(bare("c1", &fp("JC", "HC"), 30), "c2.example")],
        )
        .await
        .expect("seed");
        run_identity_tick(&db).await.expect("tick");
        let second = run_campaign_tick(&db).await.expect("tick");
        assert_eq!(second.assigned.len(), 1, "{backend}");
        let grown = read(&db, &campaign).await;
        assert_eq!(grown.identity_count, 3, "{backend}");
        assert_eq!(grown.first_seen_at, Some(minute(10)), "{backend}");
        assert_eq!(
            grown.last_seen_at,
            Some(minute(30)),
            "{backend}: span extended"
        );
        assert!(
            grown.updated_at > row.updated_at,
            "{backend}: a real change moves it"
        );

        // The observation shows up again later (intake moves last_seen): the identity's and
        // the campaign's last seen follow.
        let later = minute(45);
        let stamp = match backend {
            "sqlite" => format!("'{}'", later.format("%Y-%m-%d %H:%M:%S%.f")),
            _ => format!("TIMESTAMP '{}'", later.format("%Y-%m-%d %H:%M:%S")),
        };
        raw_sql(
            &db,
            &format!(
                "UPDATE attackers SET last_seen = {stamp}, updated_at = {stamp} WHERE uuid = 'a1'"
            ),
        )
        .await;
        tick_pair(&db).await;
        let moved = read(&db, &campaign).await;
        assert_eq!(moved.last_seen_at, Some(later), "{backend}");
        assert_eq!(moved.identity_count, 3, "{backend}");
        assert_eq!(tick_pair(&db).await, (0, 0), "{backend}: idle again");
        assert_eq!(read(&db, &campaign).await, moved, "{backend}");
        drop(db);
    }
}

/// More rows than one `UPDATE … FROM (VALUES …)` statement holds, and more than one statement
/// could bind (11 000 rows × 3 binds > SQLite's 32 766): every observation is linked and
/// marked, every identity joins a campaign and is marked, on both backends.
#[actix_rt::test]
async fn a_tick_over_more_rows_than_one_update_statement_writes_every_row() {
    const N: usize = 11_000;
    const { assert!(N > repo::VALUES_ROWS_PER_UPDATE && N * 3 > 32_766) };
    for (backend, db, _dir) in common::all_backends().await {
        let t = ts(1_767_225_600.0);
        let rows: Vec<NewObservation> = (0..N)
            .map(|i| NewObservation {
                uuid: format!("obs-{i:05}"),
                ip: format!("10.9.{}.{}", i / 256, i % 256),
                identity_id: None,
                first_seen: t + chrono::Duration::seconds(i as i64),
                last_seen: t + chrono::Duration::seconds(i as i64),
                event_count: 1,
                fingerprints: Some("[]".into()),
                asn: None,
                payload_hashes: None,
                c2_endpoints: None,
                updated_at: now_utc(),
            })
            .collect();
        repo::insert_observations(&db, rows).await.expect("seed");

        let i = run_identity_tick(&db).await.expect("identity tick");
        assert_eq!((i.observations, i.formed.len()), (N, N), "{backend}");
        assert!(i.maintenance_ok, "{backend}");
        let stored = repo::list_attackers_for_clustering(&db, None)
            .await
            .expect("read");
        let linked: BTreeSet<&str> = stored
            .iter()
            .filter_map(|o| o.row.identity_id.as_deref())
            .collect();
        assert_eq!(linked.len(), N, "{backend}: every observation linked");
        assert!(
            repo::list_dirty_observations(&db)
                .await
                .expect("dirty")
                .is_empty(),
            "{backend}: every observation marked"
        );

        let c = run_campaign_tick(&db).await.expect("campaign tick");
        assert_eq!((c.identities, c.formed.len()), (N, N), "{backend}");
        assert!(c.maintenance_ok, "{backend}");
        let identities = repo::list_identities_for_clustering(&db, None)
            .await
            .expect("read");
        assert_eq!(identities.len(), N, "{backend}");
        assert!(
            identities.iter().all(|i| i.row.campaign_id.is_some()),
            "{backend}: every identity in a campaign"
        );
        assert!(
            repo::list_campaign_dirty_identities(&db)
                .await
                .expect("dirty")
                .is_empty(),
            "{backend}: every identity marked"
        );
        assert_eq!(tick_pair(&db).await, (0, 0), "{backend}: idle afterwards");
        drop(db);
    }
}

/// The identity plan marks an observation processed with the `updated_at` the tick read: an
/// observation intake rewrote meanwhile stays dirty, and both get their identity link either
/// way (one `UPDATE … FROM (VALUES …)` statement writes marker and link).
#[actix_rt::test]
async fn an_observation_rewritten_during_the_tick_stays_dirty_but_is_linked() {
    for (backend, db, _dir) in common::all_backends().await {
        repo::insert_observations(
            &db,
            vec![
                bare("p1", &fp("JP1", "HP1"), 1),
                bare("p2", &fp("JP2", "HP2"), 2),
            ],
        )
        .await
        .expect("seed");
        run_identity_tick(&db).await.expect("tick");
        let read = repo::list_attackers_for_clustering(&db, None)
            .await
            .expect("read");
        let identity = |uuid: &str| {
            read.iter()
                .find(|o| o.row.uuid == uuid)
                .and_then(|o| o.row.identity_id.clone())
                .expect("linked")
        };
        let (i1, i2) = (identity("p1"), identity("p2"));
        // Both rows changed (dirty again); the tick reads them; then intake rewrites p2.
        let stamp = |s: &str| match backend {
            "sqlite" => format!("'{s}'"),
            _ => format!("TIMESTAMP '{s}'"),
        };
        raw_sql(
            &db,
            &format!(
                "UPDATE attackers SET updated_at = {} WHERE uuid IN ('p1', 'p2')",
                stamp("2027-01-01 00:00:00")
            ),
        )
        .await;
        let processed: Vec<(String, NaiveDateTime)> = repo::list_dirty_observations(&db)
            .await
            .expect("dirty")
            .into_iter()
            .map(|o| (o.row.uuid, o.updated_at))
            .collect();
        assert_eq!(processed.len(), 2, "{backend}");
        raw_sql(
            &db,
            &format!(
                "UPDATE attackers SET updated_at = {} WHERE uuid = 'p2'",
                stamp("2027-01-02 00:00:00")
            ),
        )
        .await;
        repo::apply_identity_plan(
            &db,
            repo::IdentityPlanWrites {
                links: vec![("p1".into(), i2.clone()), ("p2".into(), i1.clone())],
                processed,
                ..Default::default()
            },
            now_utc(),
        )
        .await
        .expect("apply");
        let dirty: Vec<String> = repo::list_dirty_observations(&db)
            .await
            .expect("dirty")
            .into_iter()
            .map(|o| o.row.uuid)
            .collect();
        assert_eq!(
            dirty,
            vec!["p2".to_owned()],
            "{backend}: only the rewritten row"
        );
        let after = repo::list_attackers_for_clustering(&db, None)
            .await
            .expect("read");
        let linked: BTreeMap<&str, Option<&str>> = after
            .iter()
            .map(|o| (o.row.uuid.as_str(), o.row.identity_id.as_deref()))
            .collect();
        assert_eq!(linked["p1"], Some(i2.as_str()), "{backend}");
        assert_eq!(linked["p2"], Some(i1.as_str()), "{backend}");
        drop(db);
    }
}

mod scale {
    //! The same seeded synthetic set through both backends: the clusterers must give the same
    //! partitions (compared as sets of member sets, never by uuid) on SQLite and PostgreSQL.

    use std::sync::{Arc, Mutex};

    use super::*;
    use decnetd::actors::campaign_clusterer::run_campaign_tick_with_mint;
    use decnetd::actors::clusterer::run_identity_tick_with_mint;
    use decnetd::domain::clustering::campaign::tactic_for_ukc_phase;
    use decnetd::domain::clustering::observation::Observation;
    use decnetd::domain::clustering::synth;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    /// Observations of the set.
    const N: usize = 4_000;
    const SEED: u64 = 11;
    /// 2026-01-01T00:00Z.
    const BASE: i64 = 1_767_225_600;

    /// A partition of observation uuids into identities.
    type Identities = BTreeSet<BTreeSet<String>>;
    /// A partition of identities (each its observation set) into campaigns.
    type Campaigns = BTreeSet<BTreeSet<BTreeSet<String>>>;

    /// What one run stored.
    struct Run {
        identities: Identities,
        campaigns: Campaigns,
        /// Stored campaign evidence edges backed by a phase handoff / by shared
        /// infrastructure without a handoff.
        handoff_edges: usize,
        infra_edges: usize,
    }

    /// The stored row of synthetic observation `i` (the benches' row shape, with times fixed by
    /// `i` instead of the clock so both backends get identical rows).
    fn stored(o: &Observation, i: usize) -> NewObservation {
        let mut fps = Vec::new();
        if let Some(j) = &o.ja3 {
            fps.push(json!({"bounty_type": "fingerprint", "payload": {"fingerprint_type": "ja3", "ja3": j}}));
        }
        if let Some(h) = &o.hassh {
            fps.push(json!({"bounty_type": "fingerprint", "payload": {"fingerprint_type": "hassh_server", "hash": h}}));
        }
        let t = ts((BASE + i as i64 * 60) as f64);
        NewObservation {
            uuid: o.observation_id.clone(),
            ip: format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
            identity_id: None,
            first_seen: t,
            last_seen: t + chrono::Duration::seconds(30),
            event_count: 1,
            fingerprints: Some(serde_json::Value::Array(fps).to_string()),
            asn: o.asn,
            payload_hashes: list(&o.payload_hashes),
            c2_endpoints: list(&o.c2_endpoints),
            updated_at: now_utc(),
        }
    }

    /// Campaign-level signal derived from the data, never from uuids: about half the
    /// observations get one ATT&CK tag on one of a dozen deckies, in the phase synth gave their
    /// commands, at an event time with sub-second digits. Phase handoffs between identities
    /// (corroborated by shared infrastructure, or repeated) then link campaigns besides the
    /// shared-infrastructure edge, through the tag reads of both backends.
    fn tags(observations: &[Observation], seed: u64) -> Vec<TtpTag> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = Vec::new();
        for (i, o) in observations.iter().enumerate() {
            let tagged = rng.gen_bool(0.5);
            let decky = format!("decky-{:02}", rng.gen_range(1..=12));
            let jitter_ms = rng.gen_range(0..86_400_000_i64);
            let tactic = o
                .commands_by_phase
                .keys()
                .next()
                .and_then(|p| tactic_for_ukc_phase(p));
            let (true, Some(tactic)) = (tagged, tactic) else {
                continue;
            };
            let at =
                ts((BASE + i as i64 * 60) as f64) + chrono::Duration::milliseconds(jitter_ms + 123);
            out.push(TtpTag {
                uuid: format!("tag-{i:08}"),
                attacker_uuid: o.observation_id.clone(),
                decky_id: decky,
                service: "ssh".into(),
                tactic_id: tactic.into(),
                technique_id: "T0000".into(),
                rule_id: "synthetic".into(),
                log_id: i as i64 + 1,
                evidence: "{}".into(),
                observed_at: at,
                created_at: at,
            });
        }
        out
    }

    /// Where the ticks take the uuids of what they form. Merge direction follows uuid order,
    /// so two runs compared chunk by chunk need the same sequence ([`Mint::Seeded`]).
    #[derive(Clone)]
    enum Mint {
        /// Random v4, as in production.
        Random,
        /// v4-shaped uuids from a seeded generator.
        Seeded(Arc<Mutex<StdRng>>),
    }

    impl Mint {
        fn seeded(seed: u64) -> Self {
            Self::Seeded(Arc::new(Mutex::new(StdRng::seed_from_u64(seed))))
        }

        fn minter(&self) -> impl FnMut() -> String + Send + 'static {
            let mint = self.clone();
            move || match &mint {
                Mint::Random => decnetd::db::new_uuid(),
                Mint::Seeded(rng) => {
                    let bytes: [u8; 16] = rng.lock().expect("mint").gen();
                    uuid::Builder::from_random_bytes(bytes)
                        .into_uuid()
                        .to_string()
                }
            }
        }
    }

    /// Identity and campaign ticks until neither has anything to publish.
    async fn settle(db: &Db, backend: &str, mint: &Mint) {
        for _ in 0..8 {
            let i = run_identity_tick_with_mint(db, mint.minter())
                .await
                .expect("identity tick");
            let c = run_campaign_tick_with_mint(db, mint.minter())
                .await
                .expect("campaign tick");
            assert!(i.maintenance_ok && c.maintenance_ok, "{backend}");
            if i.events().is_empty() && c.events().is_empty() {
                return;
            }
        }
        panic!("{backend}: ticks did not settle");
    }

    /// A fresh database of `backend` (`None`: PostgreSQL is not configured) holding the set,
    /// inserted in `chunks` equal parts (each part's tags with it), the ticks settled after each
    /// part; its partitions.
    async fn cluster(
        backend: &str,
        rows: &[NewObservation],
        tags: &[TtpTag],
        chunks: usize,
        mint: Mint,
    ) -> Option<Run> {
        let (_dir, db) = if backend == "sqlite" {
            let (dir, db) = common::sqlite_db().await;
            (Some(dir), db)
        } else {
            (None, common::pg_db().await?)
        };
        let started = std::time::Instant::now();
        for part in rows.chunks(rows.len().div_ceil(chunks)) {
            let uuids: BTreeSet<&str> = part.iter().map(|r| r.uuid.as_str()).collect();
            repo::insert_observations(&db, part.to_vec())
                .await
                .expect("seed");
            let mine: Vec<TtpTag> = tags
                .iter()
                .filter(|t| uuids.contains(t.attacker_uuid.as_str()))
                .cloned()
                .collect();
            let cursor = mine.iter().map(|t| t.log_id).max().unwrap_or(0);
            decnetd::db::repo::ttp::commit_tags(&db, mine, cursor)
                .await
                .expect("tags");
            settle(&db, backend, &mint).await;
        }
        let (identities, campaigns) = partitions(&db, backend).await;
        let (mut handoff_edges, mut infra_edges) = (0, 0);
        for c in repo::list_all_campaigns(&db).await.expect("campaigns") {
            if c.merged_into_uuid.is_none() && c.identity_count > 1 {
                for e in repo::campaign_evidence(&db, &c.uuid)
                    .await
                    .expect("evidence")
                {
                    if e.handoff > 0.0 {
                        handoff_edges += 1;
                    } else if e.shared_infra > 0.0 {
                        infra_edges += 1;
                    }
                }
            }
        }
        let uuids = match mint {
            Mint::Random => "random",
            Mint::Seeded(_) => "seeded",
        };
        eprintln!(
            "{backend}, {chunks} chunk(s), {uuids} uuids: {}; evidence: {handoff_edges} handoff, {infra_edges} shared-infrastructure edges; {:?}",
            shape(&identities, &campaigns),
            started.elapsed()
        );
        Some(Run {
            identities,
            campaigns,
            handoff_edges,
            infra_edges,
        })
    }

    /// Follow merge pointers to the canonical uuid.
    fn resolve<'a>(pointers: &'a BTreeMap<String, Option<String>>, mut uuid: &'a str) -> &'a str {
        for _ in 0..64 {
            match pointers.get(uuid).and_then(Option::as_deref) {
                Some(next) if next != uuid => uuid = next,
                _ => break,
            }
        }
        uuid
    }

    /// The identity partition (observations per canonical identity) and the campaign partition
    /// (active identities, as their observation sets, per canonical campaign) stored in `db`.
    async fn partitions(db: &Db, backend: &str) -> (Identities, Campaigns) {
        let identities = repo::list_identities_for_clustering(db, None)
            .await
            .expect("identities");
        let id_pointers: BTreeMap<String, Option<String>> = identities
            .iter()
            .map(|i| (i.row.uuid.clone(), i.row.merged_into_uuid.clone()))
            .collect();
        let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for o in repo::list_attackers_for_clustering(db, None)
            .await
            .expect("observations")
        {
            let literal = o
                .row
                .identity_id
                .unwrap_or_else(|| panic!("{backend}: {} is not linked", o.row.uuid));
            members
                .entry(resolve(&id_pointers, &literal).to_owned())
                .or_default()
                .insert(o.row.uuid);
        }
        let cmp_pointers: BTreeMap<String, Option<String>> = repo::list_all_campaigns(db)
            .await
            .expect("campaigns")
            .into_iter()
            .map(|c| (c.uuid, c.merged_into_uuid))
            .collect();
        let mut campaigns: BTreeMap<String, BTreeSet<BTreeSet<String>>> = BTreeMap::new();
        for i in identities
            .iter()
            .filter(|i| i.row.merged_into_uuid.is_none())
        {
            let set = members.get(&i.row.uuid).unwrap_or_else(|| {
                panic!(
                    "{backend}: active identity {} has no observation",
                    i.row.uuid
                )
            });
            let campaign =
                i.row.campaign_id.as_deref().unwrap_or_else(|| {
                    panic!("{backend}: identity {} has no campaign", i.row.uuid)
                });
            campaigns
                .entry(resolve(&cmp_pointers, campaign).to_owned())
                .or_default()
                .insert(set.clone());
        }
        (
            members.into_values().collect(),
            campaigns.into_values().collect(),
        )
    }

    /// A group as short text: an identity as its first observation and size, a campaign as
    /// its first identities.
    trait Brief {
        fn brief(&self) -> String;
    }

    impl Brief for BTreeSet<String> {
        fn brief(&self) -> String {
            let first = self.first().map_or("", |s| s.get(..12).unwrap_or(s));
            format!("{first}(+{})", self.len().saturating_sub(1))
        }
    }

    impl Brief for BTreeSet<BTreeSet<String>> {
        fn brief(&self) -> String {
            let ids: Vec<String> = self.iter().take(6).map(Brief::brief).collect();
            let more = match self.len().saturating_sub(6) {
                0 => String::new(),
                n => format!(" …{n} more"),
            };
            format!("[{}{more}]", ids.join(" "))
        }
    }

    /// `None` when equal, else the counts and the first differing groups of each side.
    fn diff<T: Ord + Brief>(
        what: &str,
        (a, left): (&str, &BTreeSet<T>),
        (b, right): (&str, &BTreeSet<T>),
    ) -> Option<String> {
        if left == right {
            return None;
        }
        let only = |x: &BTreeSet<T>, y: &BTreeSet<T>| -> String {
            let first: Vec<String> = x
                .difference(y)
                .take(4)
                .map(|g| format!("\n    {}", g.brief()))
                .collect();
            format!(
                "{} groups, first:{}",
                x.difference(y).count(),
                first.concat()
            )
        };
        Some(format!(
            "{what}: {a} has {} groups, {b} has {}\n  only in {a}: {}\n  only in {b}: {}",
            left.len(),
            right.len(),
            only(left, right),
            only(right, left),
        ))
    }

    fn shape(identities: &Identities, campaigns: &Campaigns) -> String {
        let multi = identities.iter().filter(|g| g.len() > 1).count();
        let joint = campaigns.iter().filter(|g| g.len() > 1).count();
        let largest = campaigns.iter().map(BTreeSet::len).max().unwrap_or(0);
        format!(
            "{} identities ({multi} of several observations), {} campaigns ({joint} of several identities, largest {largest})",
            identities.len(),
            campaigns.len()
        )
    }

    fn assert_same((a, left): (&str, &Run), (b, right): (&str, &Run)) {
        let problems: Vec<String> = [
            diff("identities", (a, &left.identities), (b, &right.identities)),
            diff("campaigns", (a, &left.campaigns), (b, &right.campaigns)),
        ]
        .into_iter()
        .flatten()
        .collect();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    fn data_set() -> (Vec<NewObservation>, Vec<TtpTag>) {
        let observations = synth::observations(N, SEED);
        let rows = observations
            .iter()
            .enumerate()
            .map(|(i, o)| stored(o, i))
            .collect();
        (rows, tags(&observations, SEED))
    }

    /// The benchmark's two backends disagreed on its 100k set; its seeding used random uuids,
    /// so this pins the clusterers themselves: the same rows, ingested the same way, give the
    /// same identity and campaign partitions on SQLite and PostgreSQL. Chunked ingestion with
    /// the same uuid sequence on both (the incremental scoped reads, merges between chunks), and
    /// everything at once with production's random uuids (the full-scope reads). The identity
    /// partition is the connected components of the rows however they arrive. The campaign
    /// partition of chunked ingestion is not that of one pass (a membership stays when a grown
    /// identity's shared-infrastructure Jaccard drops, and an undone campaign merge splits its
    /// members by their literal campaign, which for members linked during the merge is the
    /// smaller uuid's), so it is compared only under one uuid sequence.
    #[actix_rt::test]
    async fn scale_set_clusters_identically_on_both_backends() {
        let started = std::time::Instant::now();
        let (rows, tags) = data_set();
        let chunked = cluster("sqlite", &rows, &tags, 4, Mint::seeded(SEED))
            .await
            .expect("sqlite");
        let once = cluster("sqlite", &rows, &tags, 1, Mint::Random)
            .await
            .expect("sqlite");
        assert!(
            once.identities.len() < N * 3 / 4
                && once.campaigns.iter().any(|c| c.len() > 1)
                && once.handoff_edges > 0
                && once.infra_edges > 0,
            "the set forms identities of several observations and campaigns of several \
             identities, linked by handoffs and by shared infrastructure"
        );
        if let Some(d) = diff(
            "identities",
            ("4 chunks", &chunked.identities),
            ("1 chunk", &once.identities),
        ) {
            panic!("sqlite: {d}");
        }
        if let Some(d) = diff(
            "campaigns",
            ("4 chunks", &chunked.campaigns),
            ("1 chunk", &once.campaigns),
        ) {
            eprintln!("(not required) sqlite {d}");
        }

        let Some(pg_chunked) = cluster("postgres", &rows, &tags, 4, Mint::seeded(SEED)).await
        else {
            return;
        };
        assert_same(("sqlite", &chunked), ("postgres", &pg_chunked));
        let pg_once = cluster("postgres", &rows, &tags, 1, Mint::Random)
            .await
            .expect("postgres");
        assert_same(("sqlite", &once), ("postgres", &pg_once));
        eprintln!("both backends agree ({:?} in all)", started.elapsed());
    }

    /// Chunked ingestion with two different uuid sequences on one backend: the identity
    /// partition must not move. The campaign partition still does a little, which is printed,
    /// not asserted (1–2 groups of about 1 930 here, 14–19 before merged-out identities' tags
    /// counted for their winners): one way two runs of one benchmark on one backend can
    /// disagree (see the test above).
    #[actix_rt::test]
    async fn chunked_identities_do_not_follow_the_minted_uuids() {
        let (rows, tags) = data_set();
        let a = cluster("sqlite", &rows, &tags, 4, Mint::seeded(1))
            .await
            .expect("sqlite");
        let b = cluster("sqlite", &rows, &tags, 4, Mint::seeded(2))
            .await
            .expect("sqlite");
        if let Some(d) = diff(
            "identities",
            ("mint 1", &a.identities),
            ("mint 2", &b.identities),
        ) {
            panic!("{d}");
        }
        eprintln!(
            "{}",
            diff(
                "campaigns",
                ("mint 1", &a.campaigns),
                ("mint 2", &b.campaigns)
            )
            .unwrap_or_else(|| "campaigns: same partition".into())
        );
    }
}

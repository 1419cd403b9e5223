//! Seeding shared by the clustering benches: synthetic observations stored through the
//! repository layer on a real SQLite file.

use decnetd::db::models::clustering::NewObservation;
use decnetd::db::repo::clustering as repo;
use decnetd::db::{now_utc, Db};
use decnetd::domain::clustering::observation::Observation;
use decnetd::domain::clustering::rollup::encode_list;
use decnetd::domain::clustering::synth;
use serde_json::json;

/// The stored row of a synthetic observation (bounty-shape fingerprints, as the profiler
/// writes them); `i` spreads the times and IPs.
pub fn stored(o: &Observation, i: usize) -> NewObservation {
    let mut fps = Vec::new();
    if let Some(j) = &o.ja3 {
        fps.push(
            json!({"bounty_type": "fingerprint", "payload": {"fingerprint_type": "ja3", "ja3": j}}),
        );
    }
    if let Some(h) = &o.hassh {
        fps.push(json!({"bounty_type": "fingerprint", "payload": {"fingerprint_type": "hassh_server", "hash": h}}));
    }
    let list = |s: &std::collections::BTreeSet<String>| {
        (!s.is_empty())
            .then(|| encode_list(Some(&s.iter().cloned().collect::<Vec<_>>())))
            .flatten()
    };
    let t = now_utc() - chrono::Duration::seconds(i as i64);
    NewObservation {
        uuid: o.observation_id.clone(),
        ip: format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
        identity_id: None,
        first_seen: t,
        last_seen: t,
        event_count: 1,
        fingerprints: Some(serde_json::Value::Array(fps).to_string()),
        asn: o.asn,
        payload_hashes: list(&o.payload_hashes),
        c2_endpoints: list(&o.c2_endpoints),
        updated_at: t,
    }
}

/// Insert `observations` (numbered from `offset`) in batches of 10 000.
#[allow(dead_code)]
pub async fn insert(db: &Db, observations: &[Observation], offset: usize) {
    for (k, chunk) in observations.chunks(10_000).enumerate() {
        let rows: Vec<NewObservation> = chunk
            .iter()
            .enumerate()
            .map(|(i, o)| stored(o, offset + k * 10_000 + i))
            .collect();
        repo::insert_observations(db, rows).await.expect("seed");
    }
}

/// A fresh migrated SQLite file holding `n` synthetic observations (seed 7).
pub async fn seeded_db(n: usize) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let db = Db::connect(&url, 4).await.expect("open SQLite");
    db.migrate().await.expect("migrate");
    insert(&db, &synth::observations(n, 7), 0).await;
    (dir, db)
}

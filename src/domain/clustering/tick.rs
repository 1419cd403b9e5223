//! The pure part of one clustering tick for each layer: project the stored rows, run the
//! kernel, build the reconciliation plan, and compute per target entity what the tick writes
//! besides the plan (fingerprint roll-up, infrastructure roll-up, evidence). The actors only
//! read rows, call these functions, apply the result in one transaction and publish.
//!
//! Beyond the reference (spec §10.2): when observations carry payload hashes or C2 endpoints,
//! the identity tick rolls them up onto the identity's `payload_simhashes` / `c2_endpoints`
//! columns (sorted, de-duplicated, NULL when none), which is what the campaign layer's shared
//! infrastructure edge reads. Nothing else populates those columns.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use super::campaign::{
    self, CampaignClustering, CampaignEvidence, IdentityFeatures, TtpPhaseEntry,
};
use super::kernel::{self, IdentityClustering, IdentityEvidence};
use super::observation::{decode_fingerprints_text, Observation};
use super::reconcile::{self, EntityState, MemberState, Plan};
use super::rollup::{self, encode_list, FingerprintRollup};

/// The stored columns of an `attackers` row the identity tick reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservationRow {
    pub uuid: String,
    pub asn: Option<i64>,
    pub identity_id: Option<String>,
    /// JSON list TEXT (§3.1).
    pub fingerprints: Option<String>,
    /// JSON list TEXT of payload hashes mined from the logs (NULL until something feeds it).
    pub payload_hashes: Option<String>,
    /// JSON list TEXT of C2 endpoints mined from the logs (NULL until something feeds it).
    pub c2_endpoints: Option<String>,
}

impl ObservationRow {
    /// The identity projection of the row.
    pub fn project(&self) -> Observation {
        self.decode().observation
    }

    /// The identity projection and the fingerprint roll-up values of the row, its
    /// `fingerprints` JSON parsed once.
    pub fn decode(&self) -> DecodedRow {
        let fps = decode_fingerprints_text(self.fingerprints.as_deref());
        let mut payload_hashes = campaign::decode_string_list(self.payload_hashes.as_deref());
        payload_hashes.retain(|s| !s.is_empty());
        let mut c2_endpoints = campaign::decode_string_list(self.c2_endpoints.as_deref());
        c2_endpoints.retain(|s| !s.is_empty());
        DecodedRow {
            observation: Observation {
                observation_id: self.uuid.clone(),
                ja3: fps.ja3,
                hassh: fps.hassh,
                asn: self.asn,
                payload_hashes,
                c2_endpoints,
                ..Observation::default()
            },
            rollup: fps.rollup,
        }
    }

    /// [`Self::decode`], then the row's JSON text (fingerprints, payload hashes, C2 endpoints)
    /// is dropped: a tick that keeps the decoded row never reads the text again, and a full
    /// pass holds every changed row until its writes (the text was most of each row: ~2 KB
    /// at the 100k-attacker bench set).
    pub fn decode_releasing(&mut self) -> DecodedRow {
        let decoded = self.decode();
        self.fingerprints = None;
        self.payload_hashes = None;
        self.c2_endpoints = None;
        decoded
    }
}

/// One [`ObservationRow`] decoded ([`ObservationRow::decode`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedRow {
    pub observation: Observation,
    /// Fingerprint roll-up values (`DecodedFingerprints::rollup`).
    pub rollup: Vec<(u8, String)>,
}

/// What the tick writes onto one identity besides the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdentityUpdate {
    pub identity_uuid: String,
    pub fingerprints: FingerprintRollup,
    pub payload_simhashes: Option<Vec<String>>,
    pub c2_endpoints: Option<Vec<String>>,
    /// Observations effectively belonging to the identity (its components' members).
    pub observation_uuids: Vec<String>,
    /// Spanning edges of its components: why its observations are one actor.
    pub evidence: Vec<IdentityEvidence>,
    /// True when this tick formed, linked, merged or unmerged anything touching it.
    pub changed: bool,
}

impl IdentityUpdate {
    pub fn payload_simhashes_json(&self) -> Option<String> {
        encode_list(self.payload_simhashes.as_deref())
    }
    pub fn c2_endpoints_json(&self) -> Option<String> {
        encode_list(self.c2_endpoints.as_deref())
    }
}

/// The pure result of an identity tick.
#[derive(Debug, Clone)]
pub struct IdentityTick {
    pub clustering: IdentityClustering,
    pub plan: Plan,
    pub updates: Vec<IdentityUpdate>,
}

fn non_empty_list(set: BTreeSet<String>) -> Option<Vec<String>> {
    (!set.is_empty()).then(|| set.into_iter().collect())
}

/// Plan an identity tick. `rows` in `first_seen` order; `identities` every stored identity
/// (merged-out included) in `created_at` order; `mint` yields fresh uuids.
pub fn plan_identity_tick(
    rows: &[ObservationRow],
    identities: &[EntityState],
    mint: &mut dyn FnMut() -> String,
) -> IdentityTick {
    plan_identity_tick_decoded(rows, Vec::new(), identities, mint)
}

/// [`plan_identity_tick`] reusing rows already decoded: `decoded[i]`, when present and
/// `Some`, is `rows[i].decode()` (the caller decoded it to read the row's linking keys, and
/// may have released the row's text since: [`ObservationRow::decode_releasing`]); the other
/// rows are decoded here.
pub fn plan_identity_tick_decoded(
    rows: &[ObservationRow],
    decoded: Vec<Option<DecodedRow>>,
    identities: &[EntityState],
    mint: &mut dyn FnMut() -> String,
) -> IdentityTick {
    let mut decoded = decoded.into_iter();
    let (observations, fingerprint_values): (Vec<Observation>, Vec<Vec<(u8, String)>>) = rows
        .iter()
        .map(|r| {
            let d = decoded.next().flatten().unwrap_or_else(|| r.decode());
            (d.observation, d.rollup)
        })
        .unzip();
    let clustering = kernel::cluster(&observations);
    let members: Vec<MemberState> = rows
        .iter()
        .map(|r| MemberState {
            id: r.uuid.clone(),
            literal: r.identity_id.clone(),
        })
        .collect();
    let plan = reconcile::plan(&members, &clustering.components, identities, mint);
    let index: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.uuid.as_str(), i))
        .collect();
    let updates = plan
        .targets
        .iter()
        .map(|t| {
            let idx: Vec<usize> = t
                .members
                .iter()
                .filter_map(|m| index.get(m.as_str()).copied())
                .collect();
            let fingerprints =
                rollup::rollup_decoded(idx.iter().map(|&i| fingerprint_values[i].as_slice()));
            let payload: BTreeSet<String> = idx
                .iter()
                .flat_map(|&i| observations[i].payload_hashes.iter().cloned())
                .collect();
            let c2: BTreeSet<String> = idx
                .iter()
                .flat_map(|&i| observations[i].c2_endpoints.iter().cloned())
                .collect();
            IdentityUpdate {
                identity_uuid: t.uuid.clone(),
                fingerprints,
                payload_simhashes: non_empty_list(payload),
                c2_endpoints: non_empty_list(c2),
                observation_uuids: t.members.clone(),
                evidence: t
                    .components
                    .iter()
                    .flat_map(|&c| clustering.evidence[c].iter().cloned())
                    .collect(),
                changed: t.changed,
            }
        })
        .collect();
    IdentityTick {
        clustering,
        plan,
        updates,
    }
}

/// The stored columns of an `attacker_identities` row the campaign tick reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityRow {
    pub uuid: String,
    pub campaign_id: Option<String>,
    pub merged_into_uuid: Option<String>,
    pub payload_simhashes: Option<String>,
    pub c2_endpoints: Option<String>,
    pub kd_digraph_simhash: Option<Vec<u8>>,
}

/// What the tick records for one campaign besides the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignUpdate {
    pub campaign_uuid: String,
    pub identity_uuids: Vec<String>,
    pub evidence: Vec<CampaignEvidence>,
    pub changed: bool,
}

/// The pure result of a campaign tick.
#[derive(Debug, Clone)]
pub struct CampaignTick {
    /// Active identities only, in input order.
    pub features: Vec<IdentityFeatures>,
    pub clustering: CampaignClustering,
    pub plan: Plan,
    pub updates: Vec<CampaignUpdate>,
}

/// Plan a campaign tick. `rows` every identity in `created_at` order (merged-out ones are
/// excluded here); `ttp` the phase entries per identity uuid, each list freed once its
/// identity's features are built (the kernel holds the features, not the entries);
/// `campaigns` every stored campaign.
pub fn plan_campaign_tick(
    rows: &[IdentityRow],
    mut ttp: HashMap<String, Vec<TtpPhaseEntry>>,
    campaigns: &[EntityState],
    mint: &mut dyn FnMut() -> String,
) -> CampaignTick {
    let active: Vec<&IdentityRow> = rows
        .iter()
        .filter(|r| r.merged_into_uuid.is_none())
        .collect();
    let features: Vec<IdentityFeatures> = active
        .iter()
        .map(|r| {
            IdentityFeatures::from_stored(
                &r.uuid,
                r.payload_simhashes.as_deref(),
                r.c2_endpoints.as_deref(),
                r.kd_digraph_simhash.as_deref(),
                &ttp.remove(&r.uuid).unwrap_or_default(),
            )
        })
        .collect();
    drop(ttp);
    let clustering = campaign::cluster_identities(&features);
    let members: Vec<MemberState> = active
        .iter()
        .map(|r| MemberState {
            id: r.uuid.clone(),
            literal: r.campaign_id.clone(),
        })
        .collect();
    let plan = reconcile::plan(&members, &clustering.components, campaigns, mint);
    let updates = plan
        .targets
        .iter()
        .map(|t| CampaignUpdate {
            campaign_uuid: t.uuid.clone(),
            identity_uuids: t.members.clone(),
            evidence: t
                .components
                .iter()
                .flat_map(|&c| clustering.evidence[c].iter().cloned())
                .collect(),
            changed: t.changed,
        })
        .collect();
    CampaignTick {
        features,
        clustering,
        plan,
        updates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clustering::chain::walk_chain;
    use crate::domain::clustering::fixture::tests::{load, SHARED};
    use crate::domain::clustering::fixture::{identity_projection, FixtureRow};
    use crate::domain::clustering::metrics;
    use std::collections::BTreeMap;

    /// An in-memory stand-in for the two tables, driven only through the pure tick functions.
    #[derive(Default)]
    struct Store {
        observations: Vec<ObservationRow>,
        identities: Vec<(EntityState, IdentityRow)>,
        campaigns: Vec<EntityState>,
        next: u64,
    }

    impl Store {
        fn mint(&mut self) -> impl FnMut() -> String + '_ {
            move || {
                self.next += 1;
                // Descending uuids so "smallest wins" is not "oldest wins" by accident.
                format!("{:08x}", u32::MAX as u64 - self.next)
            }
        }

        fn identity_tick(&mut self) -> Plan {
            let entities: Vec<EntityState> =
                self.identities.iter().map(|(e, _)| e.clone()).collect();
            let rows = self.observations.clone();
            let tick = plan_identity_tick(&rows, &entities, &mut self.mint());
            let mut members: Vec<MemberState> = rows
                .iter()
                .map(|r| MemberState {
                    id: r.uuid.clone(),
                    literal: r.identity_id.clone(),
                })
                .collect();
            let mut entities = entities;
            reconcile::apply(&tick.plan, &mut members, &mut entities);
            for (row, m) in self.observations.iter_mut().zip(members) {
                row.identity_id = m.literal;
            }
            for e in entities {
                match self.identities.iter_mut().find(|(x, _)| x.uuid == e.uuid) {
                    Some((x, r)) => {
                        r.merged_into_uuid = e.merged_into.clone();
                        *x = e;
                    }
                    None => {
                        let row = IdentityRow {
                            uuid: e.uuid.clone(),
                            ..IdentityRow::default()
                        };
                        self.identities.push((e, row));
                    }
                }
            }
            for u in &tick.updates {
                if let Some((_, r)) = self
                    .identities
                    .iter_mut()
                    .find(|(e, _)| e.uuid == u.identity_uuid)
                {
                    r.payload_simhashes = u.payload_simhashes_json();
                    r.c2_endpoints = u.c2_endpoints_json();
                }
            }
            tick.plan
        }

        fn campaign_tick(&mut self) -> Plan {
            let rows: Vec<IdentityRow> = self.identities.iter().map(|(_, r)| r.clone()).collect();
            let campaigns = self.campaigns.clone();
            let tick = plan_campaign_tick(&rows, HashMap::new(), &campaigns, &mut self.mint());
            let mut members: Vec<MemberState> = tick
                .features
                .iter()
                .map(|f| {
                    let r = rows.iter().find(|r| r.uuid == f.identity_uuid);
                    MemberState {
                        id: f.identity_uuid.clone(),
                        literal: r.and_then(|r| r.campaign_id.clone()),
                    }
                })
                .collect();
            let mut campaigns = campaigns;
            reconcile::apply(&tick.plan, &mut members, &mut campaigns);
            for m in members {
                if let Some((_, r)) = self.identities.iter_mut().find(|(e, _)| e.uuid == m.id) {
                    r.campaign_id = m.literal;
                }
            }
            self.campaigns = campaigns;
            tick.plan
        }

        fn resolve(list: &[EntityState], uuid: &str) -> String {
            walk_chain(uuid, |u| {
                list.iter()
                    .find(|e| e.uuid == u)
                    .map(|e| e.merged_into.clone())
            })
            .end
        }

        /// `observation → (identity, campaign)` as a reader following the chains sees it.
        fn labels(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
            let ents: Vec<EntityState> = self.identities.iter().map(|(e, _)| e.clone()).collect();
            let mut ids = BTreeMap::new();
            let mut cmps = BTreeMap::new();
            for o in &self.observations {
                let identity = Self::resolve(&ents, o.identity_id.as_deref().unwrap_or("none"));
                let campaign = self
                    .identities
                    .iter()
                    .find(|(e, _)| e.uuid == identity)
                    .and_then(|(_, r)| r.campaign_id.clone())
                    .map(|c| Self::resolve(&self.campaigns, &c))
                    .unwrap_or_else(|| "none".into());
                ids.insert(o.uuid.clone(), identity);
                cmps.insert(o.uuid.clone(), campaign);
            }
            (ids, cmps)
        }
    }

    fn stored(row: &FixtureRow) -> ObservationRow {
        let o = identity_projection(row);
        let list = |s: &BTreeSet<String>| {
            (!s.is_empty())
                .then(|| encode_list(Some(&s.iter().cloned().collect::<Vec<_>>())))
                .flatten()
        };
        ObservationRow {
            uuid: row.row_id.clone(),
            asn: row.asn,
            identity_id: None,
            fingerprints: Some(row.fingerprints.to_string()),
            payload_hashes: list(&o.payload_hashes),
            c2_endpoints: list(&o.c2_endpoints),
        }
    }

    #[test]
    fn shared_fixtures_through_the_tick_path_score_one_and_converge() {
        for (name, text) in SHARED {
            let (fx, _) = load(text);
            let mut store = Store::default();
            // Rows arrive in two batches, with a tick pair after each.
            let half = fx.rows.len() / 2;
            for batch in [&fx.rows[..half], &fx.rows[half..]] {
                store.observations.extend(batch.iter().map(stored));
                store.identity_tick();
                store.campaign_tick();
            }
            let (ids, cmps) = store.labels();
            let s = metrics::score(
                &ids,
                &fx.truth(crate::domain::clustering::fixture::TruthLevel::Identity),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                [
                    s.adjusted_rand_index,
                    s.homogeneity,
                    s.completeness,
                    s.singleton_recall
                ],
                [1.0; 4],
                "{name} identity"
            );
            let s = metrics::score(
                &cmps,
                &fx.truth(crate::domain::clustering::fixture::TruthLevel::Campaign),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                [
                    s.adjusted_rand_index,
                    s.homogeneity,
                    s.completeness,
                    s.singleton_recall
                ],
                [1.0; 4],
                "{name} campaign"
            );
            assert!(
                store.identity_tick().is_quiet(),
                "{name}: identity tick idempotent"
            );
            assert!(
                store.campaign_tick().is_quiet(),
                "{name}: campaign tick idempotent"
            );
        }
    }

    #[test]
    fn a_bridging_observation_merges_and_rollups_cover_all_members() {
        let fp = |ja3: &str, hassh: &str| {
            Some(format!(
                r#"[{{"bounty_type":"fingerprint","payload":{{"fingerprint_type":"ja3","ja3":"{ja3}"}}}},{{"bounty_type":"fingerprint","payload":{{"fingerprint_type":"hassh_server","hash":"{hassh}"}}}},{{"bounty_type":"fingerprint","payload":{{"fingerprint_type":"tls_certificate","cert_sha256":"cert-{ja3}"}}}}]"#
            ))
        };
        let row = |uuid: &str, fingerprints: Option<String>| ObservationRow {
            uuid: uuid.into(),
            fingerprints,
            ..ObservationRow::default()
        };
        let mut store = Store {
            observations: vec![
                row("o1", fp("J1", "H1")),
                row("o2", fp("J2", "H2")),
                row("o3", None),
            ],
            ..Store::default()
        };
        let p = store.identity_tick();
        assert_eq!(p.formed.len(), 3);
        // A bridge sharing JA3 with o1 and HASSH with o2.
        store.observations.push(row("o4", fp("J1", "H2")));
        let entities: Vec<EntityState> = store.identities.iter().map(|(e, _)| e.clone()).collect();
        let tick = plan_identity_tick(&store.observations, &entities, &mut || "unused".into());
        // Rows decoded by the reader and their text released plan the same tick (nothing after
        // the decode reads the text): roll-ups and payload/C2 lists included.
        let mut released = store.observations.clone();
        released[3].payload_hashes = Some(r#"["p1"]"#.into());
        released[3].c2_endpoints = Some(r#"["c2.example:443"]"#.into());
        let mut with_text = store.observations.clone();
        with_text[3] = released[3].clone();
        let decoded: Vec<Option<DecodedRow>> = released
            .iter_mut()
            .map(|r| Some(r.decode_releasing()))
            .collect();
        assert!(released
            .iter()
            .all(|r| r.fingerprints.is_none() && r.c2_endpoints.is_none()));
        let from_released =
            plan_identity_tick_decoded(&released, decoded, &entities, &mut || "unused".into());
        let from_text = plan_identity_tick(&with_text, &entities, &mut || "unused".into());
        assert!(from_text.updates.iter().any(|u| u.c2_endpoints.is_some()));
        assert_eq!(format!("{from_released:?}"), format!("{from_text:?}"));
        assert_eq!(tick.plan.merged.len(), 1);
        let winner = &tick.plan.merged[0].winner;
        assert!(winner < &tick.plan.merged[0].loser, "smallest uuid wins");
        let update = tick
            .updates
            .iter()
            .find(|u| &u.identity_uuid == winner)
            .unwrap_or_else(|| panic!("no update"));
        assert_eq!(
            update.fingerprints.ja3_hashes,
            Some(vec!["J1".to_owned(), "J2".to_owned()])
        );
        assert_eq!(
            update.fingerprints.hassh_hashes,
            Some(vec!["H1".to_owned(), "H2".to_owned()])
        );
        assert_eq!(
            update.fingerprints.tls_cert_sha256,
            Some(vec!["cert-J1".to_owned(), "cert-J2".to_owned()])
        );
        assert_eq!(
            update.evidence.len(),
            2,
            "o4 joined to o1 by JA3 and to o2 by HASSH"
        );
        assert!(update.changed);
        let bare = tick
            .updates
            .iter()
            .find(|u| u.observation_uuids == ["o3"])
            .unwrap_or_else(|| panic!("no o3"));
        assert_eq!(
            bare.fingerprints,
            FingerprintRollup::default(),
            "no fingerprints → NULL columns"
        );
        assert!(!bare.changed && bare.evidence.is_empty());
        store.identity_tick();
        assert!(store.identity_tick().is_quiet());
    }

    #[test]
    fn merged_out_identities_are_excluded_from_campaigns() {
        let rows = vec![
            IdentityRow {
                uuid: "a".into(),
                c2_endpoints: Some(r#"["c2"]"#.into()),
                ..IdentityRow::default()
            },
            IdentityRow {
                uuid: "b".into(),
                merged_into_uuid: Some("a".into()),
                c2_endpoints: Some(r#"["c2"]"#.into()),
                ..IdentityRow::default()
            },
            IdentityRow {
                uuid: "c".into(),
                c2_endpoints: Some(r#"["c2"]"#.into()),
                ..IdentityRow::default()
            },
            IdentityRow {
                uuid: "d".into(),
                ..IdentityRow::default()
            },
        ];
        let mut n = 0;
        let tick = plan_campaign_tick(&rows, HashMap::new(), &[], &mut || {
            n += 1;
            format!("cmp{n}")
        });
        assert_eq!(tick.features.len(), 3);
        assert_eq!(tick.plan.formed.len(), 2);
        assert_eq!(tick.plan.formed[0].members, vec!["a", "c"]);
        assert_eq!(tick.updates[0].evidence.len(), 1);
        assert_eq!(
            tick.updates[0].evidence[0].score.shared_tokens,
            vec!["c2".to_owned()]
        );
    }
}

//! The synthetic-fixture format (spec §7–8): loading, the row projections of §7.3 and the
//! chained identity → campaign pipeline of §4.4.
//!
//! The exported rows are authoritative: projections are recomputed from each row's fields and
//! sessions (the exporter's own `observation` / `campaign_features` copies are ignored, and a
//! test checks that both agree on the shared fixtures).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use super::campaign::{self, CampaignClustering, IdentityFeatures};
use super::kernel::{self, IdentityClustering};
use super::observation::Observation;

/// Fixture loading errors.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("fixture is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("row id {0:?} appears more than once")]
    DuplicateRow(String),
    #[error("row id must not be empty")]
    EmptyRowId,
    #[error("unknown floor scope: clusterer {clusterer:?} at truth level {truth_level:?}")]
    UnknownScope {
        clusterer: String,
        truth_level: String,
    },
    #[error("unknown metric {0:?} in expected_floors")]
    UnknownMetric(String),
    #[error("floor for {metric} is not a number in [0, 1]")]
    BadFloor { metric: String },
}

/// A floor, either `0.9` or `{min: 0.9}` (the `expected.yaml` shape).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Floor {
    Bare(f64),
    Min { min: f64 },
}

impl Floor {
    pub fn min(self) -> f64 {
        match self {
            Self::Bare(v) | Self::Min { min: v } => v,
        }
    }
}

/// Which clusterer output is gated against which truth level.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FloorScope {
    pub clusterer: String,
    pub truth_level: String,
    /// `"expected_floors"` when the fixture's floors apply; absent for informative entries.
    #[serde(default)]
    pub floors: Option<String>,
    #[serde(default)]
    pub extra: Option<String>,
}

/// Ground-truth labels of one row.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Truth {
    pub identity: String,
    pub campaign: String,
    #[serde(default)]
    pub actor: Option<String>,
}

/// One synthetic session.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Session {
    #[serde(default)]
    pub decky_id: Option<String>,
    pub start_ts: f64,
    #[serde(default)]
    pub duration_s: f64,
    pub phase: String,
    #[serde(default)]
    pub commands: Vec<String>,
    #[serde(default)]
    pub credentials_tried: Vec<(String, String)>,
    #[serde(default)]
    pub payload_hash: Option<String>,
    #[serde(default)]
    pub c2_callback: Option<String>,
}

/// One observation row.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FixtureRow {
    pub row_id: String,
    /// Source IP (never read by any clusterer).
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub asn: Option<i64>,
    #[serde(default)]
    pub ja3: Option<String>,
    #[serde(default)]
    pub hassh: Option<String>,
    /// Production bounty-shape list (informative; JA3/HASSH are read from the row fields).
    #[serde(default)]
    pub fingerprints: Value,
    #[serde(default)]
    pub payload_hashes: Vec<String>,
    #[serde(default)]
    pub c2_endpoints: Vec<String>,
    #[serde(default)]
    pub credentials: Vec<(String, String)>,
    #[serde(default)]
    pub commands_by_phase: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub sessions: Vec<Session>,
    pub truth: Truth,
}

/// A whole fixture file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Fixture {
    #[serde(default)]
    pub fixture: String,
    #[serde(default)]
    pub expected_floors: BTreeMap<String, Floor>,
    #[serde(default)]
    pub floor_scope: Vec<FloorScope>,
    pub rows: Vec<FixtureRow>,
    /// The DSL the rows were expanded from (informative).
    #[serde(default)]
    pub dsl_spec: Option<Value>,
}

impl Fixture {
    /// Parse and validate a fixture.
    pub fn from_json(text: &str) -> Result<Self, FixtureError> {
        let fixture: Fixture = serde_json::from_str(text)?;
        fixture.validate()?;
        Ok(fixture)
    }

    /// Row ids are unique and non-empty; floors are numbers in [0, 1] on known metrics.
    pub fn validate(&self) -> Result<(), FixtureError> {
        let mut seen = BTreeSet::new();
        for row in &self.rows {
            if row.row_id.is_empty() {
                return Err(FixtureError::EmptyRowId);
            }
            if !seen.insert(row.row_id.as_str()) {
                return Err(FixtureError::DuplicateRow(row.row_id.clone()));
            }
        }
        for (metric, floor) in &self.expected_floors {
            if !super::eval::METRICS.contains(&metric.as_str()) {
                return Err(FixtureError::UnknownMetric(metric.clone()));
            }
            if !(0.0..=1.0).contains(&floor.min()) {
                return Err(FixtureError::BadFloor {
                    metric: metric.clone(),
                });
            }
        }
        Ok(())
    }

    /// `row_id → truth label` at one level.
    pub fn truth(&self, level: TruthLevel) -> BTreeMap<String, String> {
        self.rows
            .iter()
            .map(|r| {
                let label = match level {
                    TruthLevel::Identity => &r.truth.identity,
                    TruthLevel::Campaign => &r.truth.campaign,
                };
                (r.row_id.clone(), label.clone())
            })
            .collect()
    }
}

/// A truth level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruthLevel {
    Identity,
    Campaign,
}

fn non_empty(v: &Option<String>) -> Option<&String> {
    v.as_ref().filter(|s| !s.is_empty())
}

/// Identity projection of a row (spec §7.3): the partition-deciding signals
/// ([`identity_signals`]) plus credentials and commands per phase.
pub fn identity_projection(row: &FixtureRow) -> Observation {
    let mut o = identity_signals(row);
    o.credentials.extend(row.credentials.iter().cloned());
    for s in &row.sessions {
        o.credentials.extend(s.credentials_tried.iter().cloned());
        if !s.commands.is_empty() {
            o.commands_by_phase
                .entry(s.phase.clone())
                .or_default()
                .extend(s.commands.iter().cloned());
        }
    }
    if row.sessions.is_empty() {
        o.commands_by_phase = row.commands_by_phase.clone();
    }
    o
}

/// Campaign projection of a single row (spec §7.3), as if the row were its own identity.
pub fn row_campaign_projection(row: &FixtureRow) -> IdentityFeatures {
    project_row(row, true)
}

/// [`row_campaign_projection`] without `commands_by_phase_on_decky`, which no campaign edge
/// reads (clustering.md §10.12): the same partition without copying every command of every
/// session (what `cluster-eval` runs at scale).
pub fn row_campaign_signals(row: &FixtureRow) -> IdentityFeatures {
    project_row(row, false)
}

fn project_row(row: &FixtureRow, with_commands: bool) -> IdentityFeatures {
    let mut f = IdentityFeatures {
        identity_uuid: row.row_id.clone(),
        ..IdentityFeatures::default()
    };
    f.asn_cohort.extend(row.asn);
    f.payload_hashes
        .extend(row.payload_hashes.iter().filter(|s| !s.is_empty()).cloned());
    f.c2_endpoints
        .extend(row.c2_endpoints.iter().filter(|s| !s.is_empty()).cloned());
    for s in &row.sessions {
        let end = s.start_ts + s.duration_s;
        f.session_windows.push((s.start_ts, end));
        f.payload_hashes.extend(non_empty(&s.payload_hash).cloned());
        f.c2_endpoints.extend(non_empty(&s.c2_callback).cloned());
        let Some(decky) = non_empty(&s.decky_id) else {
            continue;
        };
        f.touch_decky(decky, &s.phase, s.start_ts, end);
        if with_commands && !s.commands.is_empty() {
            f.commands_by_phase_on_decky
                .entry((decky.clone(), s.phase.clone()))
                .or_default()
                .extend(s.commands.iter().cloned());
        }
    }
    f
}

/// Merge the per-row projections of one predicted identity (spec §4.4 step 3). Rows are taken
/// in row-id order, so ties (same first/last second on a decky) go to the smaller row id.
pub fn merge_features(identity_uuid: &str, mut rows: Vec<IdentityFeatures>) -> IdentityFeatures {
    if rows.len() == 1 {
        if let Some(mut only) = rows.pop() {
            only.identity_uuid = identity_uuid.to_owned();
            return only;
        }
    }
    rows.sort_by(|a, b| a.identity_uuid.cmp(&b.identity_uuid));
    let mut out = IdentityFeatures {
        identity_uuid: identity_uuid.to_owned(),
        ..IdentityFeatures::default()
    };
    for r in rows {
        out.asn_cohort.extend(r.asn_cohort);
        out.payload_hashes.extend(r.payload_hashes);
        out.c2_endpoints.extend(r.c2_endpoints);
        out.session_windows.extend(r.session_windows);
        for t in r.deckies {
            match out.deckies.binary_search_by(|o| o.decky.cmp(&t.decky)) {
                Err(at) => out.deckies.insert(at, t),
                Ok(at) => {
                    let o = &mut out.deckies[at];
                    if t.first_seen < o.first_seen {
                        o.first_phase = t.first_phase;
                        o.first_seen = t.first_seen;
                    }
                    if t.last_seen > o.last_seen {
                        o.last_phase = t.last_phase;
                        o.last_seen = t.last_seen;
                    }
                }
            }
        }
        for (key, cmds) in r.commands_by_phase_on_decky {
            out.commands_by_phase_on_decky
                .entry(key)
                .or_default()
                .extend(cmds);
        }
    }
    out
}

/// The chained pipeline's intermediate and final results.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub observations: Vec<Observation>,
    pub identities: IdentityClustering,
    /// One merged feature set per predicted identity (aligned with `identities.components`).
    pub features: Vec<IdentityFeatures>,
    pub campaigns: CampaignClustering,
}

impl Pipeline {
    /// `row_id → identity label`.
    pub fn identity_labels(&self) -> BTreeMap<String, String> {
        self.identities.label_map(&self.observations)
    }

    /// `row_id → campaign label` (a row's campaign is its identity's campaign).
    pub fn campaign_labels(&self) -> BTreeMap<String, String> {
        self.observations
            .iter()
            .zip(&self.identities.component_of)
            .map(|(o, &ic)| {
                let cc = self.campaigns.component_of[ic];
                (o.observation_id.clone(), self.campaigns.labels[cc].clone())
            })
            .collect()
    }
}

/// The part of the identity projection that decides the partition: JA3, HASSH, ASN, payload
/// hashes and C2 endpoints. Credentials and commands feed only the medium and low tiers, which
/// can never create an edge (spec §3.2), so the partition is the same as with
/// [`identity_projection`]; only the evidence weights leave those tiers out. The scoring harness
/// uses it to keep 100k-row sets small.
pub fn identity_signals(row: &FixtureRow) -> Observation {
    let mut o = Observation {
        observation_id: row.row_id.clone(),
        ja3: row.ja3.clone().filter(|s| !s.is_empty()),
        hassh: row.hassh.clone().filter(|s| !s.is_empty()),
        asn: row.asn,
        ..Observation::default()
    };
    o.payload_hashes
        .extend(row.payload_hashes.iter().filter(|s| !s.is_empty()).cloned());
    o.c2_endpoints
        .extend(row.c2_endpoints.iter().filter(|s| !s.is_empty()).cloned());
    for s in &row.sessions {
        o.payload_hashes.extend(non_empty(&s.payload_hash).cloned());
        o.c2_endpoints.extend(non_empty(&s.c2_callback).cloned());
    }
    o
}

/// Run the identity kernel over the partition-deciding projection ([`identity_signals`]).
pub fn run_identity_signals(rows: &[FixtureRow]) -> IdentityClustering {
    let observations: Vec<Observation> = rows.iter().map(identity_signals).collect();
    kernel::cluster(&observations)
}

/// Run the identity kernel over the rows.
pub fn run_identity(rows: &[FixtureRow]) -> (Vec<Observation>, IdentityClustering) {
    let observations: Vec<Observation> = rows.iter().map(identity_projection).collect();
    let identities = kernel::cluster(&observations);
    (observations, identities)
}

/// Whether a row carries anything a campaign edge can start from: a payload hash or C2
/// endpoint (shared infra) or a session in a handoff phase. Fixture rows carry no keystroke
/// centroid, so an identity none of whose rows qualifies scores `h = s = k = 0` against
/// everyone, stays below the threshold (overlap and cohort top out at 0.5) and is a singleton
/// campaign whatever its other features say.
fn can_link(row: &FixtureRow) -> bool {
    let handoff_phase =
        |p: &str| campaign::OUT_PHASES.contains(&p) || campaign::IN_PHASES.contains(&p);
    row.payload_hashes.iter().any(|s| !s.is_empty())
        || row.c2_endpoints.iter().any(|s| !s.is_empty())
        || row.sessions.iter().any(|s| {
            handoff_phase(&s.phase)
                || non_empty(&s.payload_hash).is_some()
                || non_empty(&s.c2_callback).is_some()
        })
}

/// Build campaign features per predicted identity and run the campaign kernel. Identities that
/// cannot link (see [`can_link`]) get an empty feature set with their label only: same
/// partition, a fraction of the memory on noise-heavy sets.
pub fn run_campaign(
    rows: &[FixtureRow],
    identities: &IdentityClustering,
) -> (Vec<IdentityFeatures>, CampaignClustering) {
    let features: Vec<IdentityFeatures> = identities
        .components
        .iter()
        .zip(&identities.labels)
        .map(|(members, label)| {
            if !members.iter().any(|&m| can_link(&rows[m])) {
                return IdentityFeatures {
                    identity_uuid: label.clone(),
                    ..IdentityFeatures::default()
                };
            }
            merge_features(
                label,
                members
                    .iter()
                    .map(|&m| row_campaign_signals(&rows[m]))
                    .collect(),
            )
        })
        .collect();
    let campaigns = campaign::cluster_identities(&features);
    (features, campaigns)
}

/// The whole chained pipeline (spec §4.4).
pub fn run_pipeline(rows: &[FixtureRow]) -> Pipeline {
    let (observations, identities) = run_identity(rows);
    let (features, campaigns) = run_campaign(rows, &identities);
    Pipeline {
        observations,
        identities,
        features,
        campaigns,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::clustering::campaign::DeckyTrack;

    pub(crate) use crate::domain::clustering::scale::SHARED_FIXTURES as SHARED;

    pub(crate) fn load(text: &str) -> (Fixture, Value) {
        let fx = Fixture::from_json(text).unwrap_or_else(|e| panic!("{e}"));
        let raw: Value = serde_json::from_str(text).unwrap_or_default();
        (fx, raw)
    }

    fn strings(v: &Value) -> BTreeSet<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn signal_projection_gives_the_full_projection_partition() {
        let templates =
            crate::domain::clustering::scale::shared_templates().unwrap_or_else(|e| panic!("{e}"));
        let fx = crate::domain::clustering::scale::build(
            &templates,
            &crate::domain::clustering::scale::ScaleParams {
                rows: 3_000,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (_, full) = run_identity(&fx.rows);
        let lean = run_identity_signals(&fx.rows);
        assert_eq!(full.component_of, lean.component_of);
        assert_eq!(full.labels, lean.labels);
    }

    /// Leaving out the features of identities that cannot link changes no partition.
    #[test]
    fn skipping_unlinkable_identities_keeps_the_partition() {
        let templates =
            crate::domain::clustering::scale::shared_templates().unwrap_or_else(|e| panic!("{e}"));
        let params = crate::domain::clustering::scale::ScaleParams {
            rows: 3_000,
            rounds_per_day: 1.0,
            ..Default::default()
        };
        let fx = crate::domain::clustering::scale::build(&templates, &params)
            .unwrap_or_else(|e| panic!("{e}"));
        let (_, identities) = run_identity(&fx.rows);
        let (light, fast) = run_campaign(&fx.rows, &identities);
        let full: Vec<IdentityFeatures> = identities
            .components
            .iter()
            .zip(&identities.labels)
            .map(|(m, l)| {
                merge_features(
                    l,
                    m.iter()
                        .map(|&i| row_campaign_projection(&fx.rows[i]))
                        .collect(),
                )
            })
            .collect();
        assert!(light.iter().filter(|f| f.deckies.is_empty()).count() > 1_000);
        let slow = campaign::cluster_identities(&full);
        assert_eq!(fast.labels.len(), slow.labels.len());
        assert!(fast.components.len() < full.len(), "some campaigns link");
        assert_eq!(fast.label_map(&light), slow.label_map(&full));
    }

    #[test]
    fn identity_projection_matches_the_exported_projection() {
        for (name, text) in SHARED {
            let (fx, raw) = load(text);
            for (row, raw_row) in fx
                .rows
                .iter()
                .zip(raw["rows"].as_array().into_iter().flatten())
            {
                let o = identity_projection(row);
                let want = &raw_row["observation"];
                assert_eq!(o.ja3.as_deref(), want["ja3"].as_str(), "{name}");
                assert_eq!(o.hassh.as_deref(), want["hassh"].as_str(), "{name}");
                assert_eq!(o.asn, want["asn"].as_i64(), "{name}");
                assert_eq!(o.payload_hashes, strings(&want["payload_hashes"]), "{name}");
                assert_eq!(o.c2_endpoints, strings(&want["c2_endpoints"]), "{name}");
                let creds: BTreeSet<(String, String)> =
                    serde_json::from_value(want["credentials"].clone()).unwrap_or_default();
                assert_eq!(o.credentials, creds, "{name}");
                let cmds: BTreeMap<String, Vec<String>> =
                    serde_json::from_value(want["commands_by_phase"].clone()).unwrap_or_default();
                assert_eq!(o.commands_by_phase, cmds, "{name}");
                // The production adapter reads the same JA3/HASSH from the bounty-shape list.
                let adapted =
                    Observation::from_stored(&row.row_id, row.asn, Some(&row.fingerprints));
                assert_eq!(
                    (adapted.ja3, adapted.hassh),
                    (o.ja3.clone(), o.hassh.clone()),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn campaign_projection_matches_the_exported_projection() {
        for (name, text) in SHARED {
            let (fx, raw) = load(text);
            for (row, raw_row) in fx
                .rows
                .iter()
                .zip(raw["rows"].as_array().into_iter().flatten())
            {
                let f = row_campaign_projection(row);
                let lean = IdentityFeatures {
                    commands_by_phase_on_decky: BTreeMap::new(),
                    ..f.clone()
                };
                assert_eq!(row_campaign_signals(row), lean, "{name}: all but commands");
                let want = &raw_row["campaign_features"];
                let asn: BTreeSet<i64> =
                    serde_json::from_value(want["asn_cohort"].clone()).unwrap_or_default();
                assert_eq!(f.asn_cohort, asn, "{name}");
                assert_eq!(f.payload_hashes, strings(&want["payload_hashes"]), "{name}");
                assert_eq!(f.c2_endpoints, strings(&want["c2_endpoints"]), "{name}");
                let deckies: BTreeSet<String> =
                    f.deckies.iter().map(|t| t.decky.to_string()).collect();
                assert_eq!(deckies, strings(&want["decky_set"]), "{name}");
                let windows: Vec<(f64, f64)> =
                    serde_json::from_value(want["session_windows"].clone()).unwrap_or_default();
                assert_eq!(f.session_windows, windows, "{name}");
                let phases = |k: &str| -> BTreeMap<String, String> {
                    serde_json::from_value(want[k].clone()).unwrap_or_default()
                };
                let times = |k: &str| -> BTreeMap<String, f64> {
                    serde_json::from_value(want[k].clone()).unwrap_or_default()
                };
                let per_decky = |value: fn(&DeckyTrack) -> String| -> BTreeMap<String, String> {
                    f.deckies
                        .iter()
                        .map(|t| (t.decky.to_string(), value(t)))
                        .collect()
                };
                let per_decky_time = |value: fn(&DeckyTrack) -> f64| -> BTreeMap<String, f64> {
                    f.deckies
                        .iter()
                        .map(|t| (t.decky.to_string(), value(t)))
                        .collect()
                };
                assert_eq!(
                    per_decky(|t| t.first_phase.to_string()),
                    phases("first_phase_per_decky"),
                    "{name}"
                );
                assert_eq!(
                    per_decky(|t| t.last_phase.to_string()),
                    phases("last_phase_per_decky"),
                    "{name}"
                );
                assert_eq!(
                    per_decky_time(|t| t.first_seen),
                    times("first_seen_per_decky"),
                    "{name}"
                );
                assert_eq!(
                    per_decky_time(|t| t.last_seen),
                    times("last_seen_per_decky"),
                    "{name}"
                );
                let cmds: BTreeMap<String, Vec<String>> =
                    serde_json::from_value(want["commands_by_phase_on_decky"].clone())
                        .unwrap_or_default();
                let mine: BTreeMap<String, Vec<String>> = f
                    .commands_by_phase_on_decky
                    .iter()
                    .map(|((d, p), c)| (format!("{d}|{p}"), c.clone()))
                    .collect();
                assert_eq!(mine, cmds, "{name}");
            }
        }
    }

    fn partition_of(labels: &BTreeMap<String, String>) -> BTreeSet<BTreeSet<String>> {
        let mut by: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (item, label) in labels {
            by.entry(label).or_default().insert(item.clone());
        }
        by.into_values().collect()
    }

    fn reference_partition(raw: &Value, key: &str) -> BTreeSet<BTreeSet<String>> {
        raw["reference"][key]["partition"]
            .as_array()
            .into_iter()
            .flatten()
            .map(strings)
            .collect()
    }

    #[test]
    fn partitions_equal_the_reference_partitions() {
        for (name, text) in SHARED {
            let (fx, raw) = load(text);
            let p = run_pipeline(&fx.rows);
            assert_eq!(
                partition_of(&p.identity_labels()),
                reference_partition(&raw, "identity_clusterer"),
                "{name}"
            );
            assert_eq!(
                partition_of(&p.campaign_labels()),
                reference_partition(&raw, "chained_campaign_clusterer"),
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_rows_shapes_are_typed_errors() {
        assert!(matches!(
            Fixture::from_json("{"),
            Err(FixtureError::Json(_))
        ));
        assert!(matches!(
            Fixture::from_json(r#"{"rows": 3}"#),
            Err(FixtureError::Json(_))
        ));
        let row = r#"{"row_id": "a", "truth": {"identity": "i", "campaign": "c"}}"#;
        let dup = format!(r#"{{"rows": [{row}, {row}]}}"#);
        assert!(
            matches!(Fixture::from_json(&dup), Err(FixtureError::DuplicateRow(id)) if id == "a")
        );
        let bad_floor =
            format!(r#"{{"rows": [{row}], "expected_floors": {{"homogeneity": 2.0}}}}"#);
        assert!(matches!(
            Fixture::from_json(&bad_floor),
            Err(FixtureError::BadFloor { .. })
        ));
        let bad_metric =
            format!(r#"{{"rows": [{row}], "expected_floors": {{"purity": {{"min": 0.5}}}}}}"#);
        assert!(matches!(
            Fixture::from_json(&bad_metric),
            Err(FixtureError::UnknownMetric(_))
        ));
        let minimal =
            format!(r#"{{"rows": [{row}], "expected_floors": {{"homogeneity": {{"min": 0.5}}}}}}"#);
        let fx = Fixture::from_json(&minimal).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fx.expected_floors["homogeneity"].min(), 0.5);
    }
}

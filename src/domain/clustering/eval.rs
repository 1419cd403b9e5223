//! `evaluate(fixture) → Report`: the scoring harness behind `decnetd cluster-eval`. Both levels
//! run through the same pure kernels the actors use.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use super::fixture::{self, Fixture, FixtureError, TruthLevel};
use super::metrics::{self, MetricError, Scores};

/// The four gated metrics, in report order.
pub const METRICS: [&str; 4] = [
    "adjusted_rand_index",
    "homogeneity",
    "completeness",
    "singleton_recall",
];

/// Evaluation errors.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Fixture(#[from] FixtureError),
    #[error(transparent)]
    Metric(#[from] MetricError),
}

/// Scores of one level plus the time its clustering took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelReport {
    #[serde(flatten)]
    pub scores: Scores,
    pub elapsed_ms: f64,
}

/// One gated floor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FloorCheck {
    pub clusterer: String,
    pub truth_level: String,
    pub metric: String,
    pub min: f64,
    pub observed: f64,
    pub ok: bool,
}

/// What `cluster-eval` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub fixture: String,
    pub rows: usize,
    /// Identity kernel against identity truth.
    pub identity: LevelReport,
    /// Chained pipeline against campaign truth.
    pub campaign: LevelReport,
    /// Every floor the fixture's scope gates.
    pub floors: Vec<FloorCheck>,
    /// True when every floor holds (`observed ≥ min`).
    pub passed: bool,
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1_000.0
}

/// Score a fixture at both levels and check its floors.
pub fn evaluate(fx: &Fixture) -> Result<Report, EvalError> {
    fx.validate()?;
    let started = Instant::now();
    // The partition-deciding projection (same partition as the full one; see
    // `fixture::identity_signals`); an observation's id is its row id.
    let identities = fixture::run_identity_signals(&fx.rows);
    let identity_ms = ms(started);
    let started = Instant::now();
    let (features, campaigns) = fixture::run_campaign(&fx.rows, &identities);
    let campaign_ms = ms(started);
    drop(features);

    // Borrowed label maps (row id → label): no copy of 100k ids per map.
    let predicted_identity: BTreeMap<&str, &str> = fx
        .rows
        .iter()
        .zip(&identities.component_of)
        .map(|(r, &c)| (r.row_id.as_str(), identities.labels[c].as_str()))
        .collect();
    let predicted_campaign: BTreeMap<&str, &str> = fx
        .rows
        .iter()
        .zip(&identities.component_of)
        .map(|(r, &ic)| {
            let cc = campaigns.component_of[ic];
            (r.row_id.as_str(), campaigns.labels[cc].as_str())
        })
        .collect();
    let truth_of = |level: TruthLevel| -> BTreeMap<&str, &str> {
        fx.rows
            .iter()
            .map(|r| {
                let label = match level {
                    TruthLevel::Identity => &r.truth.identity,
                    TruthLevel::Campaign => &r.truth.campaign,
                };
                (r.row_id.as_str(), label.as_str())
            })
            .collect()
    };
    let truth_identity = truth_of(TruthLevel::Identity);
    let truth_campaign = truth_of(TruthLevel::Campaign);
    let identity = LevelReport {
        scores: metrics::score(&predicted_identity, &truth_identity)?,
        elapsed_ms: identity_ms,
    };
    let campaign = LevelReport {
        scores: metrics::score(&predicted_campaign, &truth_campaign)?,
        elapsed_ms: campaign_ms,
    };

    let default_scope = [fixture::FloorScope {
        clusterer: "chained_campaign".into(),
        truth_level: "campaign".into(),
        floors: Some("expected_floors".into()),
        extra: None,
    }];
    let scopes = if fx.floor_scope.is_empty() {
        &default_scope[..]
    } else {
        &fx.floor_scope[..]
    };
    let mut floors = Vec::new();
    for scope in scopes.iter().filter(|s| s.floors.is_some()) {
        let predicted = match scope.clusterer.as_str() {
            "identity" => &predicted_identity,
            "chained_campaign" | "campaign" => &predicted_campaign,
            _ => return Err(unknown(scope).into()),
        };
        let truth = match scope.truth_level.as_str() {
            "identity" => &truth_identity,
            "campaign" => &truth_campaign,
            _ => return Err(unknown(scope).into()),
        };
        let scores = metrics::score(predicted, truth)?;
        let gated: BTreeMap<&str, f64> = fx
            .expected_floors
            .iter()
            .map(|(k, v)| (k.as_str(), v.min()))
            .collect();
        for metric in METRICS {
            let Some(&min) = gated.get(metric) else {
                continue;
            };
            let observed = scores.metric(metric).unwrap_or(f64::NAN);
            floors.push(FloorCheck {
                clusterer: scope.clusterer.clone(),
                truth_level: scope.truth_level.clone(),
                metric: metric.to_owned(),
                min,
                observed,
                ok: observed >= min,
            });
        }
    }
    let passed = floors.iter().all(|f| f.ok);
    Ok(Report {
        fixture: fx.fixture.clone(),
        rows: fx.rows.len(),
        identity,
        campaign,
        floors,
        passed,
    })
}

fn unknown(scope: &fixture::FloorScope) -> FixtureError {
    FixtureError::UnknownScope {
        clusterer: scope.clusterer.clone(),
        truth_level: scope.truth_level.clone(),
    }
}

/// Parse a fixture from JSON text and evaluate it (the CLI reads the file and prints
/// `serde_json::to_string(&report)`; exit status 0 iff `report.passed`).
pub fn cluster_eval(json: &str) -> Result<Report, EvalError> {
    let fx = Fixture::from_json(json)?;
    evaluate(&fx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clustering::fixture::tests::{load, SHARED};
    use crate::domain::clustering::fixture::FixtureRow;

    fn all_ones(level: &LevelReport) -> bool {
        let s = &level.scores;
        [
            s.adjusted_rand_index,
            s.homogeneity,
            s.completeness,
            s.singleton_recall,
        ] == [1.0; 4]
    }

    #[test]
    fn every_shared_fixture_scores_one_at_both_levels() {
        for (name, text) in SHARED {
            let report = cluster_eval(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(report.passed, "{name}: {report:?}");
            assert!(!report.floors.is_empty(), "{name}: floors gated");
            assert!(
                all_ones(&report.identity),
                "{name} identity: {:?}",
                report.identity
            );
            assert!(
                all_ones(&report.campaign),
                "{name} campaign: {:?}",
                report.campaign
            );
            assert_eq!(
                report.identity.scores.predicted_clusters,
                report.identity.scores.truth_clusters
            );
        }
    }

    #[test]
    fn fixture_specific_extras_hold() {
        let counts = |text: &str| {
            let r = cluster_eval(text).unwrap_or_else(|e| panic!("{e}"));
            (
                r.identity.scores.predicted_clusters,
                r.campaign.scores.predicted_clusters,
            )
        };
        assert_eq!(
            counts(SHARED[1].1),
            (2, 1),
            "multi_operator: veto keeps two identities, one campaign"
        );
        assert_eq!(counts(SHARED[3].1), (1, 1), "vpn_hopping folds");
        assert_eq!(counts(SHARED[2].1), (2, 2), "shared wordlist stays apart");
        assert_eq!(
            counts(SHARED[0].1),
            (9, 9),
            "lone wolf and noise stay singletons"
        );
    }

    /// A deterministic permutation (no RNG dependency in the pure layer's tests).
    fn shuffled(rows: &[FixtureRow], seed: u64) -> Vec<FixtureRow> {
        let mut keyed: Vec<(u64, FixtureRow)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut x = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                x ^= x >> 33;
                x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
                x ^= x >> 33;
                (x, r.clone())
            })
            .collect();
        keyed.sort_by_key(|(k, _)| *k);
        keyed.into_iter().map(|(_, r)| r).collect()
    }

    fn merged_corpus() -> Fixture {
        let mut rows = Vec::new();
        for (name, text) in SHARED {
            // Row ids and truth labels repeat across fixtures (same generator seed): prefix them.
            rows.extend(load(text).0.rows.into_iter().map(|mut r| {
                r.row_id = format!("{name}/{}", r.row_id);
                r.truth.identity = format!("{name}/{}", r.truth.identity);
                r.truth.campaign = format!("{name}/{}", r.truth.campaign);
                r
            }));
        }
        Fixture {
            fixture: "composite".into(),
            expected_floors: METRICS
                .iter()
                .map(|m| (m.to_string(), super::fixture::Floor::Bare(1.0)))
                .collect(),
            floor_scope: Vec::new(),
            rows,
            dsl_spec: None,
        }
    }

    #[test]
    fn labels_do_not_depend_on_row_order() {
        let fx = merged_corpus();
        let base = fixture::run_pipeline(&fx.rows);
        for seed in 1..6 {
            let rows = shuffled(&fx.rows, seed);
            let p = fixture::run_pipeline(&rows);
            assert_eq!(p.identity_labels(), base.identity_labels(), "seed {seed}");
            assert_eq!(p.campaign_labels(), base.campaign_labels(), "seed {seed}");
        }
    }

    #[test]
    fn composite_corpus_has_no_cross_fixture_interference() {
        let report = evaluate(&merged_corpus()).unwrap_or_else(|e| panic!("{e}"));
        assert!(report.passed, "{report:?}");
        assert!(all_ones(&report.campaign));
        assert!(all_ones(&report.identity));
    }

    #[test]
    fn partitions_survive_a_ninety_day_shift() {
        let fx = merged_corpus();
        let base = fixture::run_pipeline(&fx.rows);
        let mut rows = fx.rows.clone();
        for row in &mut rows {
            for s in &mut row.sessions {
                s.start_ts += 90.0 * 86_400.0;
            }
        }
        let shifted = fixture::run_pipeline(&rows);
        assert_eq!(shifted.campaign_labels(), base.campaign_labels());
        assert_eq!(shifted.identity_labels(), base.identity_labels());
    }

    #[test]
    fn a_breached_floor_fails_the_gate() {
        let (mut fx, _) = load(SHARED[1].1); // multi_operator
                                             // Claim the two operators are two campaigns: the chained pipeline fuses them.
        fx.rows[1].truth.campaign = "someone-else".into();
        let report = evaluate(&fx).unwrap_or_else(|e| panic!("{e}"));
        assert!(!report.passed);
        let failed: Vec<&str> = report
            .floors
            .iter()
            .filter(|f| !f.ok)
            .map(|f| f.metric.as_str())
            .collect();
        assert!(failed.contains(&"homogeneity"), "{failed:?}");
        let json = serde_json::to_value(&report).unwrap_or_default();
        assert!(json["campaign"]["adjusted_rand_index"].is_number());
        assert!(json["identity"]["elapsed_ms"].is_number());
    }

    #[test]
    fn unknown_scope_is_an_error() {
        let (mut fx, _) = load(SHARED[0].1);
        fx.floor_scope[0].clusterer = "magic".into();
        assert!(matches!(
            evaluate(&fx),
            Err(EvalError::Fixture(FixtureError::UnknownScope { .. }))
        ));
    }
}

//! Scale sets: many copies of the fixture campaigns on one small shared fleet, with the truth
//! carried along (issue #19). Pure and seeded: same templates and parameters, same rows.
//!
//! Each copy of a template fixture gets fresh row ids, fresh truth labels, fresh fingerprints
//! (JA3/HASSH), fresh infrastructure (payload hashes, C2 endpoints), a random start inside the
//! set's time span (every session of the copy moves by the same delta, so the copy's internal
//! gaps are kept), and its deckies mapped onto the fleet (`decky-01` … `decky-F`; one random
//! fleet decky per template decky, so "same decky" inside a copy stays the same decky while
//! different copies collide on the small fleet). ASNs, credentials and commands are kept: they
//! are shared by unrelated actors in the wild too. Noise scanners (no fingerprint, one
//! 1-second delivery on a random decky at a random time) fill the rest.
//!
//! Density is the number of template *rounds* (one copy of every template) started per day;
//! the time span follows from the row count, so 10k and 100k sets have the same traffic per
//! decky per day and differ only in length. On a small fleet this produces the coincidental
//! phase hand-offs of clustering.md §10.7 at a steady rate: an access broker's
//! command-and-control session followed within a day by an unrelated actor's discovery
//! session on the same decky.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::fixture::{Fixture, FixtureRow, Truth};

/// The shared fixtures, embedded (default templates of `decnetd cluster-eval --scale`).
pub const SHARED_FIXTURES: [(&str, &str); 4] = [
    ("lone_wolf", include_str!("testdata/lone_wolf.json")),
    (
        "multi_operator",
        include_str!("testdata/multi_operator.json"),
    ),
    (
        "shared_wordlist",
        include_str!("testdata/shared_wordlist.json"),
    ),
    ("vpn_hopping", include_str!("testdata/vpn_hopping.json")),
];

/// Parameters of one scale set.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleParams {
    /// Rows to produce (the last round is cut short at this count).
    pub rows: usize,
    pub seed: u64,
    /// Deckies in the shared fleet.
    pub fleet: u32,
    /// Template rounds started per day.
    pub rounds_per_day: f64,
    /// Share of the rows that are extra noise scanners, in [0, 1).
    pub noise_share: f64,
}

impl Default for ScaleParams {
    fn default() -> Self {
        Self {
            rows: 10_000,
            seed: 1,
            fleet: 16,
            rounds_per_day: 0.1,
            noise_share: 0.3,
        }
    }
}

/// Scale-set errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScaleError {
    #[error("fleet must have 1 to 999 deckies")]
    Fleet,
    #[error("rounds_per_day must be a positive number")]
    Density,
    #[error("noise_share must be in [0, 1)")]
    Noise,
    #[error("no template rows")]
    NoTemplates,
}

fn earliest(rows: &[FixtureRow]) -> f64 {
    rows.iter()
        .flat_map(|r| r.sessions.iter().map(|s| s.start_ts))
        .filter(|t| t.is_finite())
        .min_by(f64::total_cmp)
        .unwrap_or(0.0)
}

fn fleet_decky(k: u32) -> String {
    format!("decky-{k:02}")
}

/// One fresh copy of a template's rows.
fn copy_rows(
    template: &Fixture,
    copy: usize,
    start: f64,
    fleet: u32,
    rng: &mut StdRng,
) -> Vec<FixtureRow> {
    let tag = format!("c{copy:06}");
    let delta = start - earliest(&template.rows);
    let mut deckies: BTreeMap<String, String> = BTreeMap::new();
    let fresh = |v: &String| format!("{v}#{tag}");
    template
        .rows
        .iter()
        .map(|r| {
            let mut row = r.clone();
            row.row_id = format!("{tag}/{}", r.row_id);
            row.truth = Truth {
                identity: format!("{tag}/{}", r.truth.identity),
                campaign: format!("{tag}/{}", r.truth.campaign),
                actor: r.truth.actor.as_ref().map(|a| format!("{tag}/{a}")),
            };
            row.ip = None;
            row.ja3 = r.ja3.as_ref().map(fresh);
            row.hassh = r.hassh.as_ref().map(fresh);
            row.fingerprints = serde_json::Value::Null;
            row.payload_hashes = r.payload_hashes.iter().map(fresh).collect();
            row.c2_endpoints = r
                .c2_endpoints
                .iter()
                .map(|c| format!("{tag}.{c}"))
                .collect();
            // Row-level summaries of what the sessions carry: every projection reads the
            // sessions when there are any, so the copies leave these out.
            if !row.sessions.is_empty() {
                row.credentials = Vec::new();
                row.commands_by_phase = BTreeMap::new();
            }
            for s in &mut row.sessions {
                s.start_ts = (s.start_ts + delta).round();
                s.payload_hash = s.payload_hash.as_ref().map(fresh);
                s.c2_callback = s.c2_callback.as_ref().map(|c| format!("{tag}.{c}"));
                if let Some(d) = &s.decky_id {
                    let mapped = deckies
                        .entry(d.clone())
                        .or_insert_with(|| fleet_decky(rng.gen_range(1..=fleet)))
                        .clone();
                    s.decky_id = Some(mapped);
                }
            }
            row
        })
        .collect()
}

fn noise_row(k: usize, span_s: f64, fleet: u32, rng: &mut StdRng) -> FixtureRow {
    let label = format!("noise/{k:07}");
    FixtureRow {
        row_id: label.clone(),
        ip: None,
        asn: Some(rng.gen_range(1000..=65000)),
        ja3: None,
        hassh: None,
        fingerprints: serde_json::Value::Null,
        payload_hashes: Vec::new(),
        c2_endpoints: Vec::new(),
        credentials: Vec::new(),
        commands_by_phase: BTreeMap::new(),
        sessions: vec![super::fixture::Session {
            decky_id: Some(fleet_decky(rng.gen_range(1..=fleet))),
            start_ts: (super::dsl::EPOCH_S + rng.gen_range(0.0..span_s)).round(),
            duration_s: 1.0,
            phase: "delivery".to_owned(),
            commands: Vec::new(),
            credentials_tried: Vec::new(),
            payload_hash: None,
            c2_callback: None,
        }],
        truth: Truth {
            identity: label.clone(),
            campaign: label.clone(),
            actor: Some(label),
        },
    }
}

/// Build a scale set of `params.rows` rows from the templates (every floor 1.0, gated at
/// campaign level; the identity level is reported too).
pub fn build(templates: &[Fixture], params: &ScaleParams) -> Result<Fixture, ScaleError> {
    if !(1..=999).contains(&params.fleet) {
        return Err(ScaleError::Fleet);
    }
    if !(params.rounds_per_day.is_finite() && params.rounds_per_day > 0.0) {
        return Err(ScaleError::Density);
    }
    if !(0.0..1.0).contains(&params.noise_share) {
        return Err(ScaleError::Noise);
    }
    let per_round: usize = templates.iter().map(|t| t.rows.len()).sum();
    if per_round == 0 {
        return Err(ScaleError::NoTemplates);
    }
    let mut rng = StdRng::seed_from_u64(params.seed);
    let noise = (params.rows as f64 * params.noise_share).round() as usize;
    let campaign_rows = params.rows - noise.min(params.rows);
    let rounds = campaign_rows.div_ceil(per_round);
    let span_s = (rounds as f64 / params.rounds_per_day).max(1.0) * 86_400.0;
    let mut rows = Vec::with_capacity(params.rows);
    let mut copy = 0;
    'fill: for _ in 0..rounds {
        for t in templates {
            let start = super::dsl::EPOCH_S + rng.gen_range(0.0..span_s);
            for row in copy_rows(t, copy, start, params.fleet, &mut rng) {
                if rows.len() == campaign_rows {
                    break 'fill;
                }
                rows.push(row);
            }
            copy += 1;
        }
    }
    for k in 0..(params.rows - rows.len()) {
        rows.push(noise_row(k, span_s, params.fleet, &mut rng));
    }
    // Interleave: the clusterers must not depend on row order, and real intake is mixed.
    for i in (1..rows.len()).rev() {
        let j = rng.gen_range(0..=i);
        rows.swap(i, j);
    }
    let floors = super::eval::METRICS
        .iter()
        .map(|m| (m.to_string(), super::fixture::Floor::Bare(1.0)))
        .collect();
    Ok(Fixture {
        fixture: format!(
            "scale-{}-seed{}-fleet{}-density{}",
            params.rows, params.seed, params.fleet, params.rounds_per_day
        ),
        expected_floors: floors,
        floor_scope: Vec::new(),
        rows,
        dsl_spec: None,
    })
}

/// The embedded shared fixtures, parsed.
pub fn shared_templates() -> Result<Vec<Fixture>, super::fixture::FixtureError> {
    SHARED_FIXTURES
        .iter()
        .map(|(_, text)| Fixture::from_json(text))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn set(rows: usize, seed: u64) -> Fixture {
        let t = shared_templates().unwrap_or_else(|e| panic!("{e}"));
        let p = ScaleParams {
            rows,
            seed,
            ..ScaleParams::default()
        };
        build(&t, &p).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn deterministic_per_seed_exact_size_unique_ids() {
        let a = set(2_000, 3);
        assert_eq!(a, set(2_000, 3));
        assert_ne!(a.rows, set(2_000, 4).rows);
        assert_eq!(a.rows.len(), 2_000);
        assert!(a.validate().is_ok(), "unique row ids");
        let deckies: BTreeSet<&str> = a
            .rows
            .iter()
            .flat_map(|r| r.sessions.iter().filter_map(|s| s.decky_id.as_deref()))
            .collect();
        assert!(deckies.len() <= 16 && deckies.len() > 10, "{deckies:?}");
    }

    #[test]
    fn copies_get_fresh_fingerprints_and_infra_but_keep_their_internal_gaps() {
        let fx = set(3_000, 9);
        let broker: Vec<&FixtureRow> = fx
            .rows
            .iter()
            .filter(|r| {
                r.truth
                    .actor
                    .as_deref()
                    .is_some_and(|a| a.ends_with("/ops-broker-night"))
            })
            .collect();
        assert!(broker.len() > 20);
        let ja3: BTreeSet<_> = broker.iter().map(|r| r.ja3.clone()).collect();
        let c2: BTreeSet<_> = broker.iter().map(|r| r.c2_endpoints.clone()).collect();
        assert_eq!((ja3.len(), c2.len()), (broker.len(), broker.len()));
        let (t, _) = crate::domain::clustering::fixture::tests::load(SHARED_FIXTURES[1].1);
        let gaps = |r: &FixtureRow| -> Vec<f64> {
            r.sessions
                .iter()
                .map(|s| s.start_ts - r.sessions[0].start_ts)
                .collect()
        };
        assert_eq!(gaps(broker[0]), gaps(&t.rows[0]));
    }

    #[test]
    fn bad_parameters_are_rejected() {
        let t = shared_templates().unwrap_or_else(|e| panic!("{e}"));
        let p = ScaleParams::default();
        assert_eq!(
            build(
                &t,
                &ScaleParams {
                    fleet: 0,
                    ..p.clone()
                }
            ),
            Err(ScaleError::Fleet)
        );
        assert_eq!(
            build(
                &t,
                &ScaleParams {
                    rounds_per_day: 0.0,
                    ..p.clone()
                }
            ),
            Err(ScaleError::Density)
        );
        assert_eq!(
            build(
                &t,
                &ScaleParams {
                    noise_share: 1.0,
                    ..p.clone()
                }
            ),
            Err(ScaleError::Noise)
        );
        assert_eq!(build(&[], &p), Err(ScaleError::NoTemplates));
    }

    /// The scale sets produce coincidental handoffs between unrelated campaigns (what fused
    /// campaigns in the reference), and the campaign level keeps every one of them apart.
    #[test]
    fn coincidental_handoffs_occur_and_stay_apart() {
        use crate::domain::clustering::{campaign, eval, fixture};
        for seed in [11, 12] {
            let fx = set(2_000, seed);
            let p = fixture::run_pipeline(&fx.rows);
            let truth: Vec<&str> = p
                .identities
                .components
                .iter()
                .map(|m| fx.rows[m[0]].truth.campaign.as_str())
                .collect();
            let mut coincidences = 0;
            for i in 0..p.features.len() {
                for j in (i + 1)..p.features.len() {
                    if truth[i] != truth[j]
                        && !campaign::handoff_deckies(&p.features[i], &p.features[j]).is_empty()
                    {
                        coincidences += 1;
                    }
                }
            }
            assert!(coincidences > 0, "seed {seed}: no coincidental handoff");
            let report = eval::evaluate(&fx).unwrap_or_else(|e| panic!("{e}"));
            assert!(report.passed, "seed {seed}: {:?}", report.campaign);
        }
    }
}

//! The identity kernel (spec §3.3): connected components of the identity edge graph.
//!
//! Instead of scoring all pairs, the kernel uses the structure of the high tier (the only tier
//! that can create an edge) and builds the same components in near-linear time:
//!
//! * every pair sharing a JA3 (or a HASSH) value is an edge, whatever else differs, so each JA3
//!   and each HASSH bucket is one connected set;
//! * a pair sharing a payload hash or a C2 endpoint but no JA3/HASSH value is an edge exactly
//!   when it has **no comparable fingerprint slot** (otherwise the veto fires). Inside such a
//!   bucket that means: an un-fingerprinted member links to everyone, and a JA3-only member links
//!   to every HASSH-only member. Both patterns are connected with a linear number of unions.
//!
//! [`cluster_all_pairs`] is the literal all-pairs definition, kept as the oracle the indexed
//! kernel is tested against. Everything is independent of the input order: buckets are built in
//! observation-id order, and labels are derived from the smallest observation id of a component.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::Serialize;

use super::edge::{self, IdentitySignal};
use super::observation::Observation;
use super::union_find::{component_labels, UnionFind};

/// Why two observations were joined: one edge of the component's spanning forest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdentityEvidence {
    /// Observation ids of the two ends (`a < b`).
    pub a: String,
    pub b: String,
    pub signal: IdentitySignal,
    /// The shared value (JA3, HASSH, payload hash or C2 endpoint).
    pub value: String,
    /// Full edge weight of the pair (≥ 1.0).
    pub weight: f64,
}

/// The kernel's output, aligned with the input slice.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityClustering {
    /// Component index of every input observation.
    pub component_of: Vec<usize>,
    /// Members (input indices, ascending) of every component, in order of first member.
    pub components: Vec<Vec<usize>>,
    /// Opaque label per component: `cc-<smallest observation id>`.
    pub labels: Vec<String>,
    /// Spanning-forest edges per component (empty for singletons).
    pub evidence: Vec<Vec<IdentityEvidence>>,
}

impl IdentityClustering {
    /// `{observation_id: label}`, the spec's map form.
    pub fn label_map(&self, observations: &[Observation]) -> BTreeMap<String, String> {
        observations
            .iter()
            .zip(&self.component_of)
            .map(|(o, &c)| (o.observation_id.clone(), self.labels[c].clone()))
            .collect()
    }
}

/// Buckets keyed by a string, in order of first appearance along `order`.
struct Buckets<'a> {
    index: FxHashMap<&'a str, usize>,
    members: Vec<(&'a str, Vec<usize>)>,
}

impl<'a> Buckets<'a> {
    fn new() -> Self {
        Self {
            index: FxHashMap::default(),
            members: Vec::new(),
        }
    }
    fn add(&mut self, key: &'a str, item: usize) {
        let slot = *self.index.entry(key).or_insert_with(|| {
            self.members.push((key, Vec::new()));
            self.members.len() - 1
        });
        self.members[slot].1.push(item);
    }
}

struct Forest<'a> {
    observations: &'a [Observation],
    uf: UnionFind,
    edges: Vec<(usize, usize, IdentitySignal, &'a str)>,
}

impl<'a> Forest<'a> {
    fn join(&mut self, a: usize, b: usize, signal: IdentitySignal, value: &'a str) {
        if self.uf.union(a, b) {
            self.edges.push((a, b, signal, value));
        }
    }
}

/// Canonical processing order: by observation id, then input position.
fn canonical_order(observations: &[Observation]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..observations.len()).collect();
    order.sort_by(|&x, &y| {
        observations[x]
            .observation_id
            .cmp(&observations[y].observation_id)
            .then(x.cmp(&y))
    });
    order
}

/// The linking keys of an observation, prefixed by kind: every value an identity edge can be
/// built on (JA3, HASSH, payload hash, C2 endpoint). Two observations can only be linked when
/// their key sets intersect, so the incremental tick finds a changed observation's possible
/// neighbours through the stored keys instead of re-reading every observation. Sorted, unique.
pub fn linking_keys(o: &Observation) -> Vec<String> {
    let mut keys: Vec<String> = o
        .ja3
        .iter()
        .map(|v| format!("ja3:{v}"))
        .chain(o.hassh.iter().map(|v| format!("hassh:{v}")))
        .chain(o.payload_hashes.iter().map(|v| format!("payload:{v}")))
        .chain(o.c2_endpoints.iter().map(|v| format!("c2:{v}")))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Cluster observations into identities (indexed kernel).
pub fn cluster(observations: &[Observation]) -> IdentityClustering {
    let order = canonical_order(observations);
    let mut ja3 = Buckets::new();
    let mut hassh = Buckets::new();
    let mut payload = Buckets::new();
    let mut c2 = Buckets::new();
    for &i in &order {
        let o = &observations[i];
        if let Some(v) = &o.ja3 {
            ja3.add(v, i);
        }
        if let Some(v) = &o.hassh {
            hassh.add(v, i);
        }
        for v in &o.payload_hashes {
            payload.add(v, i);
        }
        for v in &o.c2_endpoints {
            c2.add(v, i);
        }
    }

    let mut forest = Forest {
        observations,
        uf: UnionFind::new(observations.len()),
        edges: Vec::new(),
    };
    for (buckets, signal) in [(&ja3, IdentitySignal::Ja3), (&hassh, IdentitySignal::Hassh)] {
        for (key, members) in &buckets.members {
            if let Some((&first, rest)) = members.split_first() {
                for &m in rest {
                    forest.join(first, m, signal, key);
                }
            }
        }
    }
    for (buckets, signal) in [
        (&payload, IdentitySignal::PayloadHash),
        (&c2, IdentitySignal::C2Endpoint),
    ] {
        for (key, members) in &buckets.members {
            join_shared_infra_bucket(&mut forest, members, signal, key);
        }
    }
    finish(observations, forest)
}

/// Inside a payload/C2 bucket, join exactly the pairs with no comparable fingerprint slot.
fn join_shared_infra_bucket<'a>(
    forest: &mut Forest<'a>,
    members: &[usize],
    signal: IdentitySignal,
    key: &'a str,
) {
    if members.len() < 2 {
        return;
    }
    let obs = forest.observations;
    let bare = members
        .iter()
        .copied()
        .find(|&m| obs[m].ja3.is_none() && obs[m].hassh.is_none());
    if let Some(anchor) = bare {
        for &m in members {
            if m != anchor {
                forest.join(anchor, m, signal, key);
            }
        }
    }
    let ja3_only: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&m| obs[m].ja3.is_some() && obs[m].hassh.is_none())
        .collect();
    let hassh_only: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&m| obs[m].ja3.is_none() && obs[m].hassh.is_some())
        .collect();
    if let (Some(&j0), Some(&h0)) = (ja3_only.first(), hassh_only.first()) {
        for &h in &hassh_only {
            forest.join(j0, h, signal, key);
        }
        for &j in &ja3_only[1..] {
            forest.join(j, h0, signal, key);
        }
    }
}

fn finish(observations: &[Observation], mut forest: Forest<'_>) -> IdentityClustering {
    let components = forest.uf.components();
    let (component_of, labels) = component_labels(&components, "cc-", |m| {
        observations[m].observation_id.as_str()
    });
    let mut evidence: Vec<Vec<IdentityEvidence>> = vec![Vec::new(); components.len()];
    for (x, y, signal, value) in forest.edges {
        let (oa, ob) = (&observations[x], &observations[y]);
        let (a, b) = if oa.observation_id <= ob.observation_id {
            (oa, ob)
        } else {
            (ob, oa)
        };
        evidence[component_of[x]].push(IdentityEvidence {
            a: a.observation_id.clone(),
            b: b.observation_id.clone(),
            signal,
            value: value.to_owned(),
            weight: edge::edge_weight(a, b),
        });
    }
    IdentityClustering {
        component_of,
        components,
        labels,
        evidence,
    }
}

/// `cluster_observations(observations) → {observation_id: label}` (spec §3.3).
pub fn cluster_observations(observations: &[Observation]) -> BTreeMap<String, String> {
    cluster(observations).label_map(observations)
}

/// The literal definition: union every pair whose weight crosses the threshold. O(n²); the
/// oracle for tests and the baseline in benches. Returns the component index per input.
pub fn cluster_all_pairs(observations: &[Observation]) -> Vec<usize> {
    let n = observations.len();
    let mut uf = UnionFind::new(n);
    for i in 0..n {
        for j in (i + 1)..n {
            if edge::score(&observations[i], &observations[j]).is_edge() {
                uf.union(i, j);
            }
        }
    }
    let components = uf.components();
    let mut out = vec![0; n];
    for (c, members) in components.iter().enumerate() {
        for &m in members {
            out[m] = c;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn o(
        id: &str,
        ja3: Option<&str>,
        hassh: Option<&str>,
        payload: &[&str],
        c2: &[&str],
    ) -> Observation {
        Observation {
            observation_id: id.to_owned(),
            ja3: ja3.map(str::to_owned),
            hassh: hassh.map(str::to_owned),
            payload_hashes: payload.iter().map(|s| s.to_string()).collect(),
            c2_endpoints: c2.iter().map(|s| s.to_string()).collect(),
            ..Observation::default()
        }
    }

    fn groups(obs: &[Observation], component_of: &[usize]) -> BTreeSet<BTreeSet<String>> {
        let mut by: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        for (o, &c) in obs.iter().zip(component_of) {
            by.entry(c).or_default().insert(o.observation_id.clone());
        }
        by.into_values().collect()
    }

    #[test]
    fn empty_input_gives_empty_map() {
        assert!(cluster_observations(&[]).is_empty());
    }

    #[test]
    fn singletons_stay_apart_and_shared_ja3_unions() {
        let obs = vec![
            o("a", Some("J"), None, &[], &[]),
            o("b", None, None, &[], &[]),
            o("c", Some("J"), Some("H"), &[], &[]),
            o("d", None, None, &[], &[]),
        ];
        let labels = cluster_observations(&obs);
        assert_eq!(labels["a"], labels["c"]);
        assert_ne!(labels["a"], labels["b"]);
        assert_ne!(labels["b"], labels["d"], "un-fingerprinted rows never fuse");
        let c = cluster(&obs);
        assert_eq!(c.components.len(), 3);
        assert_eq!(c.evidence[0].len(), 1);
        assert_eq!(c.evidence[0][0].signal, IdentitySignal::Ja3);
        assert!(c.evidence[0][0].weight >= 1.0);
    }

    #[test]
    fn transitivity_via_different_signals() {
        let obs = vec![
            o("a", Some("J"), None, &[], &[]),
            o("b", Some("J"), None, &["p"], &[]),
            o("c", None, None, &["p"], &[]),
        ];
        let c = cluster(&obs);
        assert_eq!(c.components, vec![vec![0, 1, 2]]);
        let signals: BTreeSet<IdentitySignal> = c.evidence[0].iter().map(|e| e.signal).collect();
        assert_eq!(
            signals,
            [IdentitySignal::Ja3, IdentitySignal::PayloadHash].into()
        );
    }

    #[test]
    fn weak_signals_only_never_fuse() {
        let mut a = o("a", Some("J1"), Some("H1"), &[], &[]);
        let mut b = o("b", Some("J2"), Some("H2"), &[], &[]);
        a.asn = Some(64512);
        b.asn = Some(64512);
        let creds: BTreeSet<(String, String)> = [("root".to_string(), "root".to_string())].into();
        a.credentials = creds.clone();
        b.credentials = creds;
        a.commands_by_phase
            .insert("discovery".into(), vec!["id".into()]);
        b.commands_by_phase
            .insert("discovery".into(), vec!["id".into()]);
        let c = cluster(&[a.clone(), b.clone()]);
        assert_eq!(
            c.components.len(),
            2,
            "credentials + ASN + commands stacked"
        );
        a.ja3 = None;
        a.hassh = None;
        b.ja3 = None;
        b.hassh = None;
        assert_eq!(
            cluster(&[a, b]).components.len(),
            2,
            "even un-fingerprinted"
        );
    }

    #[test]
    fn shared_credentials_alone_never_link() {
        let creds: BTreeSet<(String, String)> = [("root", "toor"), ("admin", "admin")]
            .iter()
            .map(|(u, p)| (u.to_string(), p.to_string()))
            .collect();
        let obs: Vec<Observation> = ["a", "b", "c"]
            .iter()
            .map(|id| Observation {
                credentials: creds.clone(),
                ..Observation::new(*id)
            })
            .collect();
        assert_eq!(cluster(&obs).components.len(), 3);
    }

    #[test]
    fn shared_asn_alone_never_links() {
        let obs: Vec<Observation> = ["a", "b", "c"]
            .iter()
            .map(|id| Observation {
                asn: Some(14061),
                ..Observation::new(*id)
            })
            .collect();
        assert_eq!(cluster(&obs).components.len(), 3);
        let fingerprinted: Vec<Observation> = [("a", "J1"), ("b", "J2")]
            .iter()
            .map(|(id, j)| Observation {
                asn: Some(14061),
                ja3: Some(j.to_string()),
                ..Observation::new(*id)
            })
            .collect();
        assert_eq!(cluster(&fingerprinted).components.len(), 2);
    }

    #[test]
    fn veto_keeps_cooperating_operators_apart() {
        let obs = vec![
            o("a", Some("J1"), Some("H1"), &["p"], &["c2"]),
            o("b", Some("J2"), Some("H2"), &["p"], &["c2"]),
        ];
        assert_eq!(cluster(&obs).components.len(), 2);
    }

    #[test]
    fn labels_and_partition_do_not_depend_on_row_order() {
        let obs = vec![
            o("e", None, Some("H"), &["p"], &[]),
            o("b", Some("J"), None, &["p"], &[]),
            o("a", Some("J"), Some("X"), &[], &["c"]),
            o("d", None, None, &[], &["c"]),
            o("c", Some("K"), Some("Y"), &[], &["c"]),
            o("f", None, None, &[], &[]),
        ];
        let base = cluster_observations(&obs);
        let mut reversed = obs.clone();
        reversed.reverse();
        assert_eq!(cluster_observations(&reversed), base);
        let mut rotated = obs.clone();
        rotated.rotate_left(2);
        assert_eq!(cluster_observations(&rotated), base);
    }

    #[test]
    fn indexed_kernel_matches_all_pairs_on_a_dense_case() {
        let obs = vec![
            o("1", Some("J1"), None, &["p"], &[]),
            o("2", None, Some("H1"), &["p"], &[]),
            o("3", Some("J2"), Some("H2"), &["p"], &["c"]),
            o("4", Some("J3"), None, &["p"], &["c"]),
            o("5", None, None, &[], &["c"]),
            o("6", Some("J2"), Some("H9"), &[], &[]),
            o("7", Some("J4"), Some("H4"), &["q"], &[]),
            o("8", Some("J5"), None, &["q"], &[]),
        ];
        let indexed = cluster(&obs);
        assert_eq!(
            groups(&obs, &indexed.component_of),
            groups(&obs, &cluster_all_pairs(&obs))
        );
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn arb_obs() -> impl Strategy<Value = (Option<u8>, Option<u8>, Vec<u8>, Vec<u8>)> {
            (
                proptest::option::of(0u8..3),
                proptest::option::of(0u8..3),
                proptest::collection::vec(0u8..3, 0..2),
                proptest::collection::vec(0u8..3, 0..2),
            )
        }

        proptest! {
            #[test]
            fn indexed_equals_all_pairs(raw in proptest::collection::vec(arb_obs(), 0..24)) {
                let obs: Vec<Observation> = raw
                    .iter()
                    .enumerate()
                    .map(|(i, (j, h, p, c))| Observation {
                        observation_id: format!("o{i:02}"),
                        ja3: j.map(|v| format!("j{v}")),
                        hassh: h.map(|v| format!("h{v}")),
                        payload_hashes: p.iter().map(|v| format!("p{v}")).collect(),
                        c2_endpoints: c.iter().map(|v| format!("c{v}")).collect(),
                        ..Observation::default()
                    })
                    .collect();
                let indexed = cluster(&obs);
                prop_assert_eq!(groups(&obs, &indexed.component_of), groups(&obs, &cluster_all_pairs(&obs)));
                // Every evidence edge is a real edge of the graph.
                let by_id: BTreeMap<&str, &Observation> =
                    obs.iter().map(|o| (o.observation_id.as_str(), o)).collect();
                for e in indexed.evidence.iter().flatten() {
                    prop_assert!(edge::score(by_id[e.a.as_str()], by_id[e.b.as_str()]).is_edge());
                }
                let edges: usize = indexed.evidence.iter().map(Vec::len).sum();
                prop_assert_eq!(edges, obs.len() - indexed.components.len());
            }
        }
    }

    #[test]
    fn every_edge_shares_a_linking_key() {
        let obs = crate::domain::clustering::synth::observations(400, 3);
        let keys: Vec<BTreeSet<String>> = obs
            .iter()
            .map(|o| linking_keys(o).into_iter().collect())
            .collect();
        let mut edges = 0;
        for i in 0..obs.len() {
            for j in i + 1..obs.len() {
                if edge::score(&obs[i], &obs[j]).is_edge() {
                    edges += 1;
                    assert!(
                        !keys[i].is_disjoint(&keys[j]),
                        "{} and {} are linked without a shared key",
                        obs[i].observation_id,
                        obs[j].observation_id
                    );
                }
            }
        }
        assert!(edges > 100, "the sample has edges ({edges})");
        let bare = Observation::new("bare");
        assert!(linking_keys(&bare).is_empty(), "nothing to link on");
        let full = o("x", Some("J"), Some("H"), &["p"], &["c"]);
        assert_eq!(
            linking_keys(&full),
            ["c2:c", "hassh:H", "ja3:J", "payload:p"]
        );
    }
}

//! The identity edge function (spec §3.2): four tiers with fixed multipliers; an edge exists
//! exactly when the high tier fires, because the three weaker tiers sum to at most 0.85.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::observation::Observation;

pub const HIGH_MULTIPLIER: f64 = 1.0;
pub const MEDIUM_MULTIPLIER: f64 = 0.6;
pub const LOW_MULTIPLIER: f64 = 0.2;
pub const VERY_LOW_MULTIPLIER: f64 = 0.05;
/// An identity edge exists when the combined weight reaches this value.
pub const EDGE_THRESHOLD: f64 = 1.0;

/// The high-tier signal that made two observations one actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentitySignal {
    Ja3,
    Hassh,
    PayloadHash,
    C2Endpoint,
}

impl IdentitySignal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ja3 => "ja3",
            Self::Hassh => "hassh",
            Self::PayloadHash => "payload_hash",
            Self::C2Endpoint => "c2_endpoint",
        }
    }
}

/// The high-tier outcome: which signal fired and on which shared value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HighMatch {
    pub signal: IdentitySignal,
    pub value: String,
}

/// The four tier scores and their combination.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeScore {
    pub high: Option<HighMatch>,
    pub medium: f64,
    pub low: f64,
    pub very_low: f64,
}

impl EdgeScore {
    pub fn weight(&self) -> f64 {
        let high = if self.high.is_some() { 1.0 } else { 0.0 };
        HIGH_MULTIPLIER * high
            + MEDIUM_MULTIPLIER * self.medium
            + LOW_MULTIPLIER * self.low
            + VERY_LOW_MULTIPLIER * self.very_low
    }

    pub fn is_edge(&self) -> bool {
        self.weight() >= EDGE_THRESHOLD
    }
}

fn both_equal<'a>(a: &'a Option<String>, b: &Option<String>) -> Option<&'a str> {
    match (a, b) {
        (Some(x), Some(y)) if x == y => Some(x.as_str()),
        _ => None,
    }
}

/// "Fully disagree": at least one slot is comparable (both sides non-null) and every
/// comparable slot differs.
pub fn fingerprints_fully_disagree(a: &Observation, b: &Observation) -> bool {
    let slots = [(&a.ja3, &b.ja3), (&a.hassh, &b.hassh)];
    let mut comparable = 0;
    for (x, y) in slots {
        if let (Some(x), Some(y)) = (x, y) {
            if x == y {
                return false;
            }
            comparable += 1;
        }
    }
    comparable > 0
}

fn first_shared(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Option<String> {
    a.intersection(b).next().cloned()
}

/// High tier, evaluated in the spec's order (JA3, HASSH, veto, payload, C2).
pub fn high_tier(a: &Observation, b: &Observation) -> Option<HighMatch> {
    if let Some(v) = both_equal(&a.ja3, &b.ja3) {
        return Some(HighMatch {
            signal: IdentitySignal::Ja3,
            value: v.to_owned(),
        });
    }
    if let Some(v) = both_equal(&a.hassh, &b.hassh) {
        return Some(HighMatch {
            signal: IdentitySignal::Hassh,
            value: v.to_owned(),
        });
    }
    if fingerprints_fully_disagree(a, b) {
        return None;
    }
    if let Some(v) = first_shared(&a.payload_hashes, &b.payload_hashes) {
        return Some(HighMatch {
            signal: IdentitySignal::PayloadHash,
            value: v,
        });
    }
    first_shared(&a.c2_endpoints, &b.c2_endpoints).map(|v| HighMatch {
        signal: IdentitySignal::C2Endpoint,
        value: v,
    })
}

/// Jaccard index of two sets; 0 when the union is empty.
pub fn jaccard<T: Ord>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> f64 {
    let inter = a.intersection(b).count();
    let union = a.len() + b.len() - inter;
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// Medium tier: max over shared UKC phases of the Jaccard of the command sets.
pub fn medium_tier(a: &Observation, b: &Observation) -> f64 {
    let mut best: f64 = 0.0;
    for (phase, cmds_a) in &a.commands_by_phase {
        let Some(cmds_b) = b.commands_by_phase.get(phase) else {
            continue;
        };
        let set_a: BTreeSet<&String> = cmds_a.iter().collect();
        let set_b: BTreeSet<&String> = cmds_b.iter().collect();
        if set_a.is_empty() && set_b.is_empty() {
            continue;
        }
        best = best.max(jaccard(&set_a, &set_b));
    }
    best
}

/// Low tier: Jaccard of the credential-pair sets; 0 when either side is empty.
pub fn low_tier(a: &Observation, b: &Observation) -> f64 {
    if a.credentials.is_empty() || b.credentials.is_empty() {
        return 0.0;
    }
    jaccard(&a.credentials, &b.credentials)
}

/// Very-low tier: same non-null ASN.
pub fn very_low_tier(a: &Observation, b: &Observation) -> f64 {
    match (a.asn, b.asn) {
        (Some(x), Some(y)) if x == y => 1.0,
        _ => 0.0,
    }
}

/// The full, symmetric identity edge score.
pub fn score(a: &Observation, b: &Observation) -> EdgeScore {
    EdgeScore {
        high: high_tier(a, b),
        medium: medium_tier(a, b),
        low: low_tier(a, b),
        very_low: very_low_tier(a, b),
    }
}

/// The combined weight of the pair.
pub fn edge_weight(a: &Observation, b: &Observation) -> f64 {
    score(a, b).weight()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(id: &str) -> Observation {
        Observation::new(id)
    }
    fn with_fp(id: &str, ja3: Option<&str>, hassh: Option<&str>) -> Observation {
        Observation {
            ja3: ja3.map(str::to_owned),
            hassh: hassh.map(str::to_owned),
            ..obs(id)
        }
    }
    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }
    fn creds(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        items
            .iter()
            .map(|(u, p)| (u.to_string(), p.to_string()))
            .collect()
    }
    fn cmds(phases: &[(&str, &[&str])]) -> std::collections::BTreeMap<String, Vec<String>> {
        phases
            .iter()
            .map(|(p, c)| (p.to_string(), c.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn ja3_match_links() {
        let a = with_fp("a", Some("J"), None);
        let b = with_fp("b", Some("J"), Some("H"));
        let s = score(&a, &b);
        assert_eq!(s.high.map(|h| h.signal), Some(IdentitySignal::Ja3));
        assert!(edge_weight(&a, &b) >= EDGE_THRESHOLD);
    }

    #[test]
    fn hassh_match_links_even_when_ja3_differs() {
        let a = with_fp("a", Some("J1"), Some("H"));
        let b = with_fp("b", Some("J2"), Some("H"));
        assert_eq!(
            high_tier(&a, &b).map(|h| h.signal),
            Some(IdentitySignal::Hassh)
        );
    }

    #[test]
    fn payload_and_c2_overlap_link_unfingerprinted_rows() {
        let mut a = obs("a");
        let mut b = obs("b");
        a.payload_hashes = set(&["p1", "p2"]);
        b.payload_hashes = set(&["p2"]);
        assert_eq!(
            high_tier(&a, &b).map(|h| h.signal),
            Some(IdentitySignal::PayloadHash)
        );
        a.payload_hashes.clear();
        a.c2_endpoints = set(&["c2.example"]);
        b.c2_endpoints = set(&["c2.example"]);
        assert_eq!(
            high_tier(&a, &b).map(|h| h.value),
            Some("c2.example".to_owned())
        );
    }

    #[test]
    fn absence_is_not_agreement() {
        assert!(high_tier(&obs("a"), &obs("b")).is_none());
        assert_eq!(edge_weight(&obs("a"), &obs("b")), 0.0);
        let mut a = obs("a");
        let b = obs("b");
        a.payload_hashes = set(&["p"]);
        assert!(high_tier(&a, &b).is_none(), "empty set never intersects");
    }

    #[test]
    fn veto_on_fully_disagreeing_fingerprints() {
        let mut a = with_fp("a", Some("J1"), Some("H1"));
        let mut b = with_fp("b", Some("J2"), Some("H2"));
        a.c2_endpoints = set(&["c2"]);
        b.c2_endpoints = set(&["c2"]);
        assert!(high_tier(&a, &b).is_none(), "shared C2 vetoed");
        a.payload_hashes = set(&["p"]);
        b.payload_hashes = set(&["p"]);
        assert!(high_tier(&a, &b).is_none(), "shared payload vetoed");
        // One comparable slot that differs (other null on one side) → vetoed too.
        let mut c = with_fp("c", Some("J1"), None);
        let mut d = with_fp("d", Some("J2"), Some("H"));
        c.c2_endpoints = set(&["c2"]);
        d.c2_endpoints = set(&["c2"]);
        assert!(high_tier(&c, &d).is_none());
    }

    #[test]
    fn no_veto_without_comparable_slot() {
        let mut a = with_fp("a", Some("J1"), None);
        let mut b = with_fp("b", None, Some("H2"));
        a.c2_endpoints = set(&["c2"]);
        b.c2_endpoints = set(&["c2"]);
        assert!(high_tier(&a, &b).is_some(), "no slot comparable");
        let mut c = obs("c");
        c.c2_endpoints = set(&["c2"]);
        assert!(high_tier(&a, &c).is_some(), "one side un-fingerprinted");
        assert!(!fingerprints_fully_disagree(&obs("x"), &obs("y")));
    }

    #[test]
    fn medium_tier_cases() {
        let mut a = obs("a");
        let mut b = obs("b");
        assert_eq!(medium_tier(&a, &b), 0.0, "no shared phase");
        a.commands_by_phase = cmds(&[
            ("discovery", &["id", "whoami", "id"]),
            ("persistence", &["x"]),
        ]);
        b.commands_by_phase = cmds(&[("discovery", &["whoami", "id"])]);
        assert_eq!(medium_tier(&a, &b), 1.0, "full, repeats ignored");
        b.commands_by_phase = cmds(&[
            ("discovery", &["whoami", "uname"]),
            ("persistence", &["x", "y"]),
        ]);
        assert!(
            (medium_tier(&a, &b) - 0.5).abs() < 1e-12,
            "max over phases: 1/3 vs 1/2"
        );
        b.commands_by_phase = cmds(&[("discovery", &["ls"])]);
        assert_eq!(medium_tier(&a, &b), 0.0, "disjoint");
        a.commands_by_phase = cmds(&[("discovery", &[])]);
        b.commands_by_phase = cmds(&[("discovery", &[])]);
        assert_eq!(medium_tier(&a, &b), 0.0, "both empty skipped");
    }

    #[test]
    fn low_and_very_low_tiers() {
        let mut a = obs("a");
        let mut b = obs("b");
        a.credentials = creds(&[("root", "root"), ("admin", "admin")]);
        assert_eq!(low_tier(&a, &b), 0.0);
        b.credentials = creds(&[("root", "root")]);
        assert!((low_tier(&a, &b) - 0.5).abs() < 1e-12);
        b.credentials = a.credentials.clone();
        assert_eq!(low_tier(&a, &b), 1.0);
        assert_eq!(very_low_tier(&a, &b), 0.0, "null ASN");
        a.asn = Some(7);
        b.asn = Some(7);
        assert_eq!(very_low_tier(&a, &b), 1.0);
        b.asn = Some(8);
        assert_eq!(very_low_tier(&a, &b), 0.0);
    }

    #[test]
    fn weak_tiers_never_link_even_stacked() {
        let mut a = with_fp("a", Some("J1"), Some("H1"));
        let mut b = with_fp("b", Some("J2"), Some("H2"));
        a.asn = Some(1);
        b.asn = Some(1);
        let asn_only = edge_weight(&a, &b);
        assert!(asn_only > 0.0 && asn_only < EDGE_THRESHOLD);
        a.credentials = creds(&[("root", "toor")]);
        b.credentials = a.credentials.clone();
        a.commands_by_phase = cmds(&[("discovery", &["id"])]);
        b.commands_by_phase = a.commands_by_phase.clone();
        let stacked = edge_weight(&a, &b);
        assert!((stacked - 0.85).abs() < 1e-12 && stacked < EDGE_THRESHOLD);
        // High + medium crosses.
        b.ja3 = Some("J1".into());
        assert!(edge_weight(&a, &b) >= EDGE_THRESHOLD);
    }

    #[test]
    fn edge_function_is_symmetric() {
        let mut a = with_fp("a", Some("J1"), None);
        let mut b = with_fp("b", None, Some("H"));
        a.payload_hashes = set(&["p"]);
        b.payload_hashes = set(&["p"]);
        a.asn = Some(3);
        assert_eq!(score(&a, &b), score(&b, &a));
    }
}

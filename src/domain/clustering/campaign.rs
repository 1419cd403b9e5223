//! The campaign layer (spec §4): identity features, the five edge families, and the kernel
//! that groups identities into campaigns.
//!
//! Timestamps enter only through pairwise differences (handoff gap, window overlap), so a
//! common shift of every timestamp changes no weight. The overlap term is asymmetric; the
//! reference orients a pair by kernel input order. Here a pair is oriented by a key of the data
//! itself — the identity whose earliest session starts first is `A` (ties and identities
//! without windows: smaller uuid) — so the partition does not depend on the order of the input
//! rows. That key is shift-invariant too.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::Value;

use super::edge::jaccard;
use super::rollup::parse_simhash_hex;
use super::union_find::{component_labels, UnionFind};

pub const HANDOFF_MULTIPLIER: f64 = 1.0;
pub const SHARED_INFRA_MULTIPLIER: f64 = 1.0;
pub const OVERLAP_MULTIPLIER: f64 = 0.4;
pub const COHORT_MULTIPLIER: f64 = 0.1;
pub const KEYSTROKE_MULTIPLIER: f64 = 0.6;
/// A campaign edge exists when the weight reaches this value (equality counts).
pub const CAMPAIGN_EDGE_THRESHOLD: f64 = 1.0;
/// Maximum gap between an out-phase session and an in-phase session on one decky.
pub const HANDOFF_WINDOW_S: f64 = 86_400.0;
/// Keystroke centroids this many bits apart (or more) score 0.
pub const KD_HAMMING_MAX: u32 = 8;
/// Weight of a phase handoff nothing else backs (clustering.md §10.7: on a small fleet one
/// coincidence is not proof). With overlap (≤ 0.4) and cohort (≤ 0.1) at their maxima the pair
/// still stays below the threshold.
pub const HANDOFF_UNCORROBORATED: f64 = 0.45;
/// Handoffs on this many distinct deckies corroborate each other.
pub const REPEATED_HANDOFF_DECKIES: usize = 2;
/// Phases that hand a decky over.
pub const OUT_PHASES: [&str; 2] = ["command_and_control", "persistence"];
/// Phases that pick a decky up.
pub const IN_PHASES: [&str; 2] = ["discovery", "lateral_movement"];

/// The Unified Kill Chain phases, in order.
pub const UKC_PHASES: [&str; 19] = [
    "reconnaissance",
    "resource_development",
    "weaponization",
    "delivery",
    "social_engineering",
    "exploitation",
    "persistence",
    "defense_evasion",
    "command_and_control",
    "pivoting",
    "discovery",
    "privilege_escalation",
    "execution",
    "credential_access",
    "lateral_movement",
    "collection",
    "exfiltration",
    "impact",
    "objectives",
];

/// ATT&CK tactic → UKC phase (enterprise first, then ICS).
const ATTACK_TO_UKC: [(&str, &str); 18] = [
    ("TA0043", "reconnaissance"),
    ("TA0042", "resource_development"),
    ("TA0001", "delivery"),
    ("TA0002", "execution"),
    ("TA0003", "persistence"),
    ("TA0004", "privilege_escalation"),
    ("TA0005", "defense_evasion"),
    ("TA0006", "credential_access"),
    ("TA0007", "discovery"),
    ("TA0008", "lateral_movement"),
    ("TA0009", "collection"),
    ("TA0011", "command_and_control"),
    ("TA0010", "exfiltration"),
    ("TA0040", "impact"),
    ("TA0100", "collection"),
    ("TA0102", "discovery"),
    ("TA0105", "impact"),
    ("TA0106", "impact"),
];

/// Map an ATT&CK tactic id to its UKC phase.
pub fn ukc_phase_for_tactic(tactic: &str) -> Option<&'static str> {
    ATTACK_TO_UKC
        .iter()
        .find(|(t, _)| *t == tactic)
        .map(|(_, p)| *p)
}

/// The enterprise ATT&CK tactic of a UKC phase (first entry of the table).
pub fn tactic_for_ukc_phase(phase: &str) -> Option<&'static str> {
    ATTACK_TO_UKC
        .iter()
        .find(|(_, p)| *p == phase)
        .map(|(t, _)| *t)
}

/// Campaign-layer features of one identity (spec §4.1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdentityFeatures {
    pub identity_uuid: String,
    pub asn_cohort: BTreeSet<i64>,
    pub tooling_cohort: BTreeSet<String>,
    pub payload_hashes: BTreeSet<String>,
    pub c2_endpoints: BTreeSet<String>,
    pub kd_digraph_simhash: Option<u64>,
    /// `(start_s, end_s)` per session.
    pub session_windows: Vec<(f64, f64)>,
    /// The spec's decky set and its four per-decky maps (first/last phase, first/last seen):
    /// one track per decky, sorted by decky name, names unique.
    pub deckies: Vec<DeckyTrack>,
    /// `(decky, phase)` → commands. Carried, unused by any edge.
    pub commands_by_phase_on_decky: BTreeMap<(String, String), Vec<String>>,
}

/// What an identity did on one decky: the phase and time of its first session there, and of
/// its last. The names are shared (`Arc<str>`): a full campaign pass over every identity holds
/// one copy of each decky and phase name, where four maps and a set of owned strings held
/// seven strings and five tree nodes per identity and decky.
#[derive(Debug, Clone, PartialEq)]
pub struct DeckyTrack {
    pub decky: Arc<str>,
    pub first_phase: Arc<str>,
    pub first_seen: f64,
    pub last_phase: Arc<str>,
    pub last_seen: f64,
}

/// The shared copy of a UKC phase name; any other name gets its own.
fn shared_phase(phase: &str) -> Arc<str> {
    static NAMES: LazyLock<Vec<Arc<str>>> =
        LazyLock::new(|| UKC_PHASES.iter().map(|p| Arc::from(*p)).collect());
    NAMES
        .iter()
        .find(|p| &***p == phase)
        .cloned()
        .unwrap_or_else(|| Arc::from(phase))
}

/// One `list_ttp_decky_phases` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TtpPhaseEntry {
    /// Shared: a full read holds one copy of each decky and tactic name for every entry.
    pub decky_id: Option<std::sync::Arc<str>>,
    pub tactic: Option<std::sync::Arc<str>>,
    pub created_at_ts: Option<f64>,
}

/// Decode a stored JSON-list column: NULL, non-list or undecodable → empty; null items dropped;
/// other items stringified.
pub fn decode_string_list(column: Option<&str>) -> BTreeSet<String> {
    let Some(text) = column else {
        return BTreeSet::new();
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::Null => None,
                Value::String(s) => Some(s),
                other => Some(other.to_string()),
            })
            .collect(),
        _ => BTreeSet::new(),
    }
}

/// A stored keystroke centroid: 8 big-endian bytes, or a 16-character hex string.
pub fn simhash_from_stored(bytes: Option<&[u8]>) -> Option<u64> {
    let bytes = bytes?;
    if let Ok(raw) = <[u8; 8]>::try_from(bytes) {
        return Some(u64::from_be_bytes(raw));
    }
    std::str::from_utf8(bytes).ok().and_then(parse_simhash_hex)
}

impl IdentityFeatures {
    /// Production projection of a stored identity row plus its TTP phase entries (in order).
    pub fn from_stored(
        identity_uuid: &str,
        payload_simhashes: Option<&str>,
        c2_endpoints: Option<&str>,
        kd_digraph_simhash: Option<&[u8]>,
        ttp: &[TtpPhaseEntry],
    ) -> Self {
        let mut f = Self {
            identity_uuid: identity_uuid.to_owned(),
            payload_hashes: decode_string_list(payload_simhashes),
            c2_endpoints: decode_string_list(c2_endpoints),
            kd_digraph_simhash: simhash_from_stored(kd_digraph_simhash),
            ..Self::default()
        };
        for entry in ttp {
            let (Some(decky), Some(tactic)) = (&entry.decky_id, &entry.tactic) else {
                continue;
            };
            let Some(phase) = ukc_phase_for_tactic(tactic) else {
                continue;
            };
            let ts = entry.created_at_ts.unwrap_or(0.0);
            f.touch(decky, || Arc::clone(decky), phase, ts, ts);
        }
        f.deckies.shrink_to_fit();
        f
    }

    /// Walk one session: the first session on a decky sets its first phase and first seen;
    /// every session overwrites the last phase and last seen.
    pub fn touch_decky(&mut self, decky: &str, phase: &str, start: f64, end: f64) {
        self.touch(decky, || Arc::from(decky), phase, start, end);
    }

    /// [`Self::touch_decky`] with the decky's shared name made by `name` when it is new.
    fn touch(
        &mut self,
        decky: &str,
        name: impl FnOnce() -> Arc<str>,
        phase: &str,
        start: f64,
        end: f64,
    ) {
        match self.deckies.binary_search_by(|t| (*t.decky).cmp(decky)) {
            Ok(at) => {
                let track = &mut self.deckies[at];
                if *track.last_phase != *phase {
                    track.last_phase = shared_phase(phase);
                }
                track.last_seen = end;
            }
            Err(at) => {
                let phase = shared_phase(phase);
                self.deckies.insert(
                    at,
                    DeckyTrack {
                        decky: name(),
                        first_phase: Arc::clone(&phase),
                        first_seen: start,
                        last_phase: phase,
                        last_seen: end,
                    },
                );
            }
        }
    }

    /// The track on `decky`, if the identity was there.
    pub fn track(&self, decky: &str) -> Option<&DeckyTrack> {
        self.deckies
            .binary_search_by(|t| (*t.decky).cmp(decky))
            .ok()
            .map(|at| &self.deckies[at])
    }

    /// Earliest session start (for pair orientation).
    fn earliest_start(&self) -> Option<f64> {
        self.session_windows
            .iter()
            .map(|w| w.0)
            .filter(|s| s.is_finite())
            .min_by(f64::total_cmp)
    }
}

/// The campaign candidate keys of an identity: its payload/C2 tokens (one namespace, as the
/// shared-infrastructure edge reads them) and its eight keystroke bands. Together with
/// [`handoff_windows`] they cover every pair that can reach the threshold (an edge needs shared
/// infrastructure, a keystroke centroid within 8 bits, or a handoff), so the incremental tick
/// finds a changed identity's possible partners without reading every identity. Sorted, unique.
pub fn candidate_keys(f: &IdentityFeatures) -> Vec<String> {
    let mut keys: Vec<String> = f
        .payload_hashes
        .iter()
        .chain(&f.c2_endpoints)
        .map(|t| format!("token:{t}"))
        .collect();
    if let Some(h) = f.kd_digraph_simhash {
        keys.extend(
            h.to_be_bytes()
                .into_iter()
                .enumerate()
                .map(|(band, byte)| format!("kd{band}:{byte:02x}")),
        );
    }
    keys.sort();
    keys.dedup();
    keys
}

/// A time window on one decky in which another identity's phase entry could form a handoff
/// with this identity (epoch seconds, both ends inclusive).
#[derive(Debug, Clone, PartialEq)]
pub struct HandoffWindow {
    pub decky: String,
    pub from: f64,
    pub to: f64,
}

/// Where a handoff partner of `f` must have a phase entry: before each decky `f` picks up in
/// an in-phase (the partner's last entry there within [`HANDOFF_WINDOW_S`] before `f`'s
/// first), and after each decky `f` hands over in an out-phase (the partner's first entry
/// within the window after `f`'s last).
pub fn handoff_windows(f: &IdentityFeatures) -> Vec<HandoffWindow> {
    let mut out = Vec::new();
    for t in &f.deckies {
        if picks_up(t) && t.first_seen.is_finite() {
            out.push(HandoffWindow {
                decky: t.decky.to_string(),
                from: t.first_seen - HANDOFF_WINDOW_S,
                to: t.first_seen,
            });
        }
    }
    for t in &f.deckies {
        if hands_over(t) && t.last_seen.is_finite() {
            out.push(HandoffWindow {
                decky: t.decky.to_string(),
                from: t.last_seen,
                to: t.last_seen + HANDOFF_WINDOW_S,
            });
        }
    }
    out
}

/// The identity's last phase on the decky is an out-phase.
fn hands_over(t: &DeckyTrack) -> bool {
    OUT_PHASES.contains(&&*t.last_phase)
}

/// The identity's first phase on the decky is an in-phase.
fn picks_up(t: &DeckyTrack) -> bool {
    IN_PHASES.contains(&&*t.first_phase)
}

/// Directed handoffs out → in: every decky on which one happened, appended to `out_deckies`.
fn handoffs_directed(out: &IdentityFeatures, inn: &IdentityFeatures, deckies: &mut Vec<String>) {
    for t in &out.deckies {
        let Some(u) = inn.track(&t.decky) else {
            continue;
        };
        if !hands_over(t) || !picks_up(u) {
            continue;
        }
        let gap = u.first_seen - t.last_seen;
        if (0.0..=HANDOFF_WINDOW_S).contains(&gap) && !deckies.iter().any(|d| **d == *t.decky) {
            deckies.push(t.decky.to_string());
        }
    }
}

/// Every decky on which `a` hands off to `b` or `b` to `a` (sorted, distinct).
pub fn handoff_deckies(a: &IdentityFeatures, b: &IdentityFeatures) -> Vec<String> {
    let mut deckies = Vec::new();
    handoffs_directed(a, b, &mut deckies);
    handoffs_directed(b, a, &mut deckies);
    deckies.sort();
    deckies
}

/// Phase handoff as the reference defines it (symmetric): 1 and the first decky when either
/// direction hands off. [`campaign_score`] weighs it by its corroboration.
pub fn phase_handoff(a: &IdentityFeatures, b: &IdentityFeatures) -> (f64, Option<String>) {
    match handoff_deckies(a, b).into_iter().next() {
        Some(decky) => (1.0, Some(decky)),
        None => (0.0, None),
    }
}

/// What backs a phase handoff (why a handoff may link on its own weight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffCorroboration {
    /// The pair shares at least one payload hash or C2 endpoint.
    SharedInfra,
    /// The pair's keystroke centroids are within [`KD_HAMMING_MAX`] bits.
    Keystroke,
    /// The pair hands off on at least [`REPEATED_HANDOFF_DECKIES`] distinct deckies.
    RepeatedHandoff,
}

impl HandoffCorroboration {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SharedInfra => "shared_infra",
            Self::Keystroke => "keystroke",
            Self::RepeatedHandoff => "repeated_handoff",
        }
    }
}

/// Decide how much a handoff weighs: `(h, corroboration)`. A corroborated handoff scores 1; a
/// lone one [`HANDOFF_UNCORROBORATED`] (below the threshold with every weak term at its
/// maximum), 0 without any handoff.
pub fn weigh_handoff(
    deckies: &[String],
    shared_infra: f64,
    keystroke: f64,
) -> (f64, Option<HandoffCorroboration>) {
    if deckies.is_empty() {
        return (0.0, None);
    }
    let corroboration = if shared_infra > 0.0 {
        Some(HandoffCorroboration::SharedInfra)
    } else if keystroke > 0.0 {
        Some(HandoffCorroboration::Keystroke)
    } else if deckies.len() >= REPEATED_HANDOFF_DECKIES {
        Some(HandoffCorroboration::RepeatedHandoff)
    } else {
        None
    };
    match corroboration {
        Some(c) => (1.0, Some(c)),
        None => (HANDOFF_UNCORROBORATED, None),
    }
}

fn infra(f: &IdentityFeatures) -> BTreeSet<&String> {
    f.payload_hashes.iter().chain(&f.c2_endpoints).collect()
}

/// Shared infrastructure `s`: Jaccard of payload ∪ C2 (one namespace).
pub fn shared_infra(a: &IdentityFeatures, b: &IdentityFeatures) -> f64 {
    jaccard(&infra(a), &infra(b))
}

/// Temporal overlap `t(A, B)`: summed positive overlap of every window pair over A's total
/// window time, capped at 1 (asymmetric).
pub fn temporal_overlap(a: &IdentityFeatures, b: &IdentityFeatures) -> f64 {
    if a.session_windows.is_empty() || b.session_windows.is_empty() {
        return 0.0;
    }
    let total: f64 = a.session_windows.iter().map(|(s, e)| e - s).sum();
    if total.is_nan() || total <= 0.0 {
        return 0.0;
    }
    let mut overlap = 0.0;
    for (sa, ea) in &a.session_windows {
        for (sb, eb) in &b.session_windows {
            let o = ea.min(*eb) - sa.max(*sb);
            if o > 0.0 {
                overlap += o;
            }
        }
    }
    (overlap / total).min(1.0)
}

/// Cohort `c`: Jaccard of tagged ASN / tool / decky tokens. The three tags are disjoint
/// namespaces, so the intersection and union are sums over them (no token set is built).
pub fn cohort(a: &IdentityFeatures, b: &IdentityFeatures) -> f64 {
    let inter = a.asn_cohort.intersection(&b.asn_cohort).count()
        + a.tooling_cohort.intersection(&b.tooling_cohort).count()
        + common_deckies(&a.deckies, &b.deckies);
    let total = a.asn_cohort.len()
        + b.asn_cohort.len()
        + a.tooling_cohort.len()
        + b.tooling_cohort.len()
        + a.deckies.len()
        + b.deckies.len();
    let union = total - inter;
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// Deckies both sorted track lists name.
fn common_deckies(a: &[DeckyTrack], b: &[DeckyTrack]) -> usize {
    sorted_common(a, b, |x, y| x.decky.cmp(&y.decky))
}

/// Items two lists sorted (and unique) by `cmp` have in common.
fn sorted_common<T>(a: &[T], b: &[T], cmp: impl Fn(&T, &T) -> Ordering) -> usize {
    let (mut x, mut y, mut n) = (0, 0, 0);
    while x < a.len() && y < b.len() {
        match cmp(&a[x], &b[y]) {
            Ordering::Less => x += 1,
            Ordering::Greater => y += 1,
            Ordering::Equal => {
                n += 1;
                x += 1;
                y += 1;
            }
        }
    }
    n
}

/// Keystroke `k`: `1 − d/8` for Hamming distance `d < 8` between both centroids, else 0.
pub fn keystroke(a: &IdentityFeatures, b: &IdentityFeatures) -> f64 {
    keystroke_of(a.kd_digraph_simhash, b.kd_digraph_simhash)
}

fn keystroke_of(a: Option<u64>, b: Option<u64>) -> f64 {
    match (a, b) {
        (Some(x), Some(y)) => {
            let d = (x ^ y).count_ones();
            if d >= KD_HAMMING_MAX {
                0.0
            } else {
                1.0 - f64::from(d) / f64::from(KD_HAMMING_MAX)
            }
        }
        _ => 0.0,
    }
}

/// The scored campaign edge of an oriented pair (`a` earlier).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignScore {
    pub handoff: f64,
    pub shared_infra: f64,
    pub overlap: f64,
    pub cohort: f64,
    pub keystroke: f64,
    pub weight: f64,
    /// The (first) decky of the handoff, when one happened.
    pub handoff_decky: Option<String>,
    /// Every decky with a handoff between the pair.
    pub handoff_deckies: Vec<String>,
    /// What backs the handoff (`None`: a lone handoff, weighed [`HANDOFF_UNCORROBORATED`]).
    pub handoff_corroboration: Option<HandoffCorroboration>,
    /// Shared payload hashes / C2 endpoints.
    pub shared_tokens: Vec<String>,
}

impl CampaignScore {
    pub fn is_edge(&self) -> bool {
        self.weight >= CAMPAIGN_EDGE_THRESHOLD
    }
}

/// `weight(A, B) = 1.0·h + 1.0·s + 0.4·t(A,B) + 0.1·c + 0.6·k`, summed in that order, where
/// `h` is the handoff weighed by its corroboration ([`weigh_handoff`]).
pub fn campaign_score(a: &IdentityFeatures, b: &IdentityFeatures) -> CampaignScore {
    let handoff_deckies = handoff_deckies(a, b);
    let shared_infra = shared_infra(a, b);
    let overlap = temporal_overlap(a, b);
    let cohort = cohort(a, b);
    let keystroke = keystroke(a, b);
    let (handoff, handoff_corroboration) = weigh_handoff(&handoff_deckies, shared_infra, keystroke);
    let handoff_decky = handoff_deckies.first().cloned();
    let weight = HANDOFF_MULTIPLIER * handoff
        + SHARED_INFRA_MULTIPLIER * shared_infra
        + OVERLAP_MULTIPLIER * overlap
        + COHORT_MULTIPLIER * cohort
        + KEYSTROKE_MULTIPLIER * keystroke;
    let shared_tokens = infra(a)
        .intersection(&infra(b))
        .map(|s| (*s).clone())
        .collect();
    CampaignScore {
        handoff,
        shared_infra,
        overlap,
        cohort,
        keystroke,
        weight,
        handoff_decky,
        handoff_deckies,
        handoff_corroboration,
        shared_tokens,
    }
}

/// Cheap exact pre-check: false only when the pair cannot reach the threshold even with
/// overlap and cohort at their maxima (so the full score, which allocates, is skipped).
/// Reference form over the owned features; the kernel runs [`Compact::could_link`], which
/// decides the same on interned ids.
#[cfg(test)]
fn could_link(a: &IdentityFeatures, b: &IdentityFeatures) -> bool {
    let s = shared_infra(a, b);
    let k = keystroke(a, b);
    let h = weigh_handoff(&handoff_deckies(a, b), s, k).0;
    link_bound(h, s, k)
}

/// The best weight a pair with these `h`, `s`, `k` can reach (overlap and cohort at 1).
fn link_bound(h: f64, s: f64, k: f64) -> bool {
    HANDOFF_MULTIPLIER * h
        + SHARED_INFRA_MULTIPLIER * s
        + OVERLAP_MULTIPLIER
        + COHORT_MULTIPLIER
        + KEYSTROKE_MULTIPLIER * k
        >= CAMPAIGN_EDGE_THRESHOLD
}

/// Bit masks of one identity for the candidate scans: a necessary condition of
/// [`Compact::could_link`] that costs a few instructions and no memory access beyond itself.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Summary {
    /// Bit `token id % 64` of every payload/C2 token (collisions only let more pairs through).
    tokens: u64,
    /// Bit of every decky with an out-side entry ([`Compact::outs`]).
    outs: u64,
    /// Bit of every decky with an in-side entry ([`Compact::ins`]).
    ins: u64,
    kd: Option<u64>,
}

impl Summary {
    /// False only when the pair cannot pass [`Compact::could_link`]: that needs a shared token
    /// (`s > 0`), centroids within [`KD_HAMMING_MAX`] bits (`k > 0`), or handoffs on two
    /// distinct deckies (a lone handoff stays below the threshold with overlap and cohort at
    /// their maxima). With at most 64 deckies a decky's bit is its id, so two handoff deckies
    /// are two bits; beyond, bits are ids modulo 64 and one shared bit is required.
    fn may_link(&self, other: &Self, exact_deckies: bool) -> bool {
        if self.tokens & other.tokens != 0 {
            return true;
        }
        if let (Some(x), Some(y)) = (self.kd, other.kd) {
            if (x ^ y).count_ones() < KD_HAMMING_MAX {
                return true;
            }
        }
        let hand = (self.outs & other.ins) | (other.outs & self.ins);
        if exact_deckies {
            hand.count_ones() as usize >= REPEATED_HANDOFF_DECKIES
        } else {
            hand != 0
        }
    }
}

/// The edge-deciding part of one identity's features on interned ids, built once per kernel
/// run so that the per-pair pre-check neither allocates nor compares strings.
#[derive(Debug, Default)]
struct Compact {
    /// Payload ∪ C2 tokens (one namespace), interned, sorted, unique.
    infra: Vec<u32>,
    kd: Option<u64>,
    /// `(decky, last_seen)` where the last phase is an out-phase, by decky id.
    outs: Vec<(u32, f64)>,
    /// `(decky, first_seen)` where the first phase is an in-phase, by decky id.
    ins: Vec<(u32, f64)>,
}

impl Compact {
    fn new<'f>(
        f: &'f IdentityFeatures,
        tokens: &mut FxHashMap<&'f str, u32>,
        decky_id: &FxHashMap<&str, u32>,
    ) -> Self {
        let mut infra: Vec<u32> = f
            .payload_hashes
            .iter()
            .chain(&f.c2_endpoints)
            .map(|t| {
                let next = tokens.len() as u32;
                *tokens.entry(t.as_str()).or_insert(next)
            })
            .collect();
        infra.sort_unstable();
        infra.dedup();
        // A gap with a non-finite end never lies in [0, W], so only finite times matter.
        let side = |out_side: bool| {
            let mut v: Vec<(u32, f64)> = f
                .deckies
                .iter()
                .filter_map(|t| {
                    let (phase_fits, at) = if out_side {
                        (hands_over(t), t.last_seen)
                    } else {
                        (picks_up(t), t.first_seen)
                    };
                    let id = *decky_id.get(&*t.decky)?;
                    (phase_fits && at.is_finite()).then_some((id, at))
                })
                .collect();
            v.sort_unstable_by_key(|e| e.0);
            v
        };
        let outs = side(true);
        let ins = side(false);
        Self {
            infra,
            kd: f.kd_digraph_simhash,
            outs,
            ins,
        }
    }

    fn summary(&self) -> Summary {
        let bits = |ids: &mut dyn Iterator<Item = u32>| ids.fold(0u64, |m, id| m | 1 << (id % 64));
        Summary {
            tokens: bits(&mut self.infra.iter().copied()),
            outs: bits(&mut self.outs.iter().map(|e| e.0)),
            ins: bits(&mut self.ins.iter().map(|e| e.0)),
            kd: self.kd,
        }
    }

    /// Jaccard of the two token lists (the value [`shared_infra`] computes).
    fn shared_infra(&self, other: &Self) -> f64 {
        let (a, b) = (&self.infra, &other.infra);
        let inter = sorted_common(a, b, Ord::cmp);
        let union = a.len() + b.len() - inter;
        if union == 0 {
            0.0
        } else {
            inter as f64 / union as f64
        }
    }

    /// Distinct deckies with a handoff between the pair, counted up to 2.
    fn handoff_deckies_upto2(&self, other: &Self) -> usize {
        let mut first: Option<u32> = None;
        for (outs, ins) in [(&self.outs, &other.ins), (&other.outs, &self.ins)] {
            let (mut x, mut y) = (0, 0);
            while x < outs.len() && y < ins.len() {
                let ((d_out, t_out), (d_in, t_in)) = (outs[x], ins[y]);
                match d_out.cmp(&d_in) {
                    Ordering::Less => x += 1,
                    Ordering::Greater => y += 1,
                    Ordering::Equal => {
                        if (0.0..=HANDOFF_WINDOW_S).contains(&(t_in - t_out)) {
                            match first {
                                None => first = Some(d_out),
                                Some(d) if d != d_out => return 2,
                                Some(_) => {}
                            }
                        }
                        x += 1;
                        y += 1;
                    }
                }
            }
        }
        usize::from(first.is_some())
    }

    /// The exact pre-check of the reference `could_link` (symmetric).
    fn could_link(&self, other: &Self) -> bool {
        let s = self.shared_infra(other);
        let k = keystroke_of(self.kd, other.kd);
        let h = match self.handoff_deckies_upto2(other) {
            0 => 0.0,
            n if s > 0.0 || k > 0.0 || n >= REPEATED_HANDOFF_DECKIES => 1.0,
            _ => HANDOFF_UNCORROBORATED,
        };
        link_bound(h, s, k)
    }
}

/// Orientation order: earlier earliest session first, identities without windows last, then
/// uuid, then input position.
fn orientation(
    features: &[IdentityFeatures],
    starts: &[Option<f64>],
    i: usize,
    j: usize,
) -> Ordering {
    let key = |x: usize| starts[x].unwrap_or(f64::INFINITY);
    key(i)
        .total_cmp(&key(j))
        .then_with(|| features[i].identity_uuid.cmp(&features[j].identity_uuid))
        .then(i.cmp(&j))
}

/// Why two identities were joined: one spanning-forest edge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignEvidence {
    /// The oriented pair: `a` is the earlier identity.
    pub a: String,
    pub b: String,
    #[serde(flatten)]
    pub score: CampaignScore,
}

/// The campaign kernel's output, aligned with the input slice.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignClustering {
    pub component_of: Vec<usize>,
    /// Members (input indices, ascending) per component, in order of first member.
    pub components: Vec<Vec<usize>>,
    /// `cmp-<smallest identity uuid>` per component.
    pub labels: Vec<String>,
    pub evidence: Vec<Vec<CampaignEvidence>>,
}

impl CampaignClustering {
    pub fn label_map(&self, features: &[IdentityFeatures]) -> BTreeMap<String, String> {
        features
            .iter()
            .zip(&self.component_of)
            .map(|(f, &c)| (f.identity_uuid.clone(), self.labels[c].clone()))
            .collect()
    }
}

struct CampaignForest<'a> {
    features: &'a [IdentityFeatures],
    starts: Vec<Option<f64>>,
    /// Per identity, the interned pre-check data (empty for the reference kernel).
    compact: Vec<Compact>,
    /// `compact[i].summary()`, packed for the candidate scans.
    summaries: Vec<Summary>,
    /// At most 64 deckies: a decky's summary bit is its id ([`Summary::may_link`]).
    exact_deckies: bool,
    uf: UnionFind,
    /// Spanning-forest edges with the input index of their `a` side.
    edges: Vec<(usize, CampaignEvidence)>,
}

impl<'a> CampaignForest<'a> {
    fn new(features: &'a [IdentityFeatures], compact: Vec<Compact>, deckies: usize) -> Self {
        Self {
            features,
            starts: features
                .iter()
                .map(IdentityFeatures::earliest_start)
                .collect(),
            summaries: compact.iter().map(Compact::summary).collect(),
            exact_deckies: deckies <= 64,
            compact,
            uf: UnionFind::new(features.len()),
            edges: Vec::new(),
        }
    }

    fn oriented(&self, i: usize, j: usize) -> (usize, usize) {
        if orientation(self.features, &self.starts, i, j) == Ordering::Greater {
            (j, i)
        } else {
            (i, j)
        }
    }

    /// Score the pair unless already connected or unable to link; union when it is an edge.
    fn consider(&mut self, i: usize, j: usize) {
        if i != j && self.summaries[i].may_link(&self.summaries[j], self.exact_deckies) {
            self.consider_unless_joined(i, j);
        }
    }

    /// [`Self::consider`] after the summary test passed.
    fn consider_unless_joined(&mut self, i: usize, j: usize) {
        if self.uf.find(i) == self.uf.find(j) || !self.compact[i].could_link(&self.compact[j]) {
            return;
        }
        self.score_and_join(i, j);
    }

    /// The reference form of [`Self::consider`]: the pre-check over the owned features.
    #[cfg(test)]
    fn consider_reference(&mut self, i: usize, j: usize) {
        if i == j || self.uf.find(i) == self.uf.find(j) {
            return;
        }
        let (a, b) = self.oriented(i, j);
        if !could_link(&self.features[a], &self.features[b]) {
            return;
        }
        self.score_and_join(i, j);
    }

    fn score_and_join(&mut self, i: usize, j: usize) {
        let (a, b) = self.oriented(i, j);
        let score = campaign_score(&self.features[a], &self.features[b]);
        if score.is_edge() && self.uf.union(a, b) {
            self.edges.push((
                a,
                CampaignEvidence {
                    a: self.features[a].identity_uuid.clone(),
                    b: self.features[b].identity_uuid.clone(),
                    score,
                },
            ));
        }
    }

    fn finish(mut self) -> CampaignClustering {
        let features = self.features;
        let components = self.uf.components();
        let (component_of, labels) =
            component_labels(&components, "cmp-", |m| features[m].identity_uuid.as_str());
        let mut evidence: Vec<Vec<CampaignEvidence>> = vec![Vec::new(); components.len()];
        for (a, e) in self.edges {
            evidence[component_of[a]].push(e);
        }
        CampaignClustering {
            component_of,
            components,
            labels,
            evidence,
        }
    }
}

/// Input indices in identity-uuid order (ties: input position): the order in which the
/// candidate indexes are filled, so the spanning forest does not depend on input order.
fn uuid_order(features: &[IdentityFeatures]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..features.len()).collect();
    order.sort_by(|&x, &y| {
        features[x]
            .identity_uuid
            .cmp(&features[y].identity_uuid)
            .then(x.cmp(&y))
    });
    order
}

/// Token and keystroke-band buckets: identities sharing a payload/C2 token (one namespace),
/// or one of the eight 8-bit bands of their centroids, in bucket creation order.
fn candidate_buckets(features: &[IdentityFeatures], order: &[usize]) -> Vec<Vec<usize>> {
    let mut bucket_index: FxHashMap<&str, usize> = FxHashMap::default();
    let mut band_index: FxHashMap<(u8, u8), usize> = FxHashMap::default();
    let mut buckets: Vec<Vec<usize>> = Vec::new();
    for &i in order {
        let f = &features[i];
        for token in f.payload_hashes.iter().chain(&f.c2_endpoints) {
            let slot = *bucket_index.entry(token.as_str()).or_insert_with(|| {
                buckets.push(Vec::new());
                buckets.len() - 1
            });
            if buckets[slot].last() != Some(&i) {
                buckets[slot].push(i);
            }
        }
        if let Some(h) = f.kd_digraph_simhash {
            for (band, byte) in h.to_be_bytes().into_iter().enumerate() {
                let slot = *band_index.entry((band as u8, byte)).or_insert_with(|| {
                    buckets.push(Vec::new());
                    buckets.len() - 1
                });
                buckets[slot].push(i);
            }
        }
    }
    buckets
}

/// Cluster identities into campaigns (indexed kernel; same partition as all pairs).
///
/// Candidates: pairs handing off on a decky (found per decky through the in-side entries
/// sorted by time), then pairs sharing a token or keystroke band. Each candidate passes a
/// bit-mask test ([`Summary::may_link`]) and an allocation-free pre-check on interned ids
/// ([`Compact::could_link`]) before the full score; both reject only pairs that cannot reach
/// the threshold, so the partition and the spanning-forest evidence are those of scoring every
/// candidate (`cluster_identities_reference` in the tests).
pub fn cluster_identities(features: &[IdentityFeatures]) -> CampaignClustering {
    let order = uuid_order(features);
    let buckets = candidate_buckets(features, &order);

    // Deckies interned in string order (the handoff scan visits deckies in that order).
    let mut seen: FxHashMap<&str, ()> = FxHashMap::default();
    for f in features {
        for t in &f.deckies {
            seen.entry(&*t.decky).or_default();
        }
    }
    let mut decky_names: Vec<&str> = seen.into_keys().collect();
    decky_names.sort_unstable();
    let decky_id: FxHashMap<&str, u32> = decky_names
        .iter()
        .enumerate()
        .map(|(id, d)| (*d, id as u32))
        .collect();
    let mut tokens: FxHashMap<&str, u32> = FxHashMap::default();
    let compact: Vec<Compact> = features
        .iter()
        .map(|f| Compact::new(f, &mut tokens, &decky_id))
        .collect();
    drop(tokens);

    let mut forest = CampaignForest::new(features, compact, decky_names.len());
    // Handoff index per decky: out-side (last_seen) in uuid order, in-side (first_seen) by
    // time, each entry with its identity's summary so the scan rejects hopeless pairs without
    // touching anything else.
    let mut outs: Vec<Vec<(f64, usize)>> = vec![Vec::new(); decky_names.len()];
    let mut ins: Vec<Vec<(f64, usize, Summary)>> = vec![Vec::new(); decky_names.len()];
    for &i in &order {
        let c = &forest.compact[i];
        for &(d, t) in &c.outs {
            outs[d as usize].push((t, i));
        }
        for &(d, t) in &c.ins {
            ins[d as usize].push((t, i, forest.summaries[i]));
        }
    }

    for (out_side, in_side) in outs.iter().zip(ins.iter_mut()) {
        if out_side.is_empty() || in_side.is_empty() {
            continue;
        }
        in_side.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        for &(t_out, o) in out_side {
            let so = forest.summaries[o];
            let lo = in_side.partition_point(|e| e.0 < t_out);
            for (t_in, i, si) in &in_side[lo..] {
                if t_in - t_out > HANDOFF_WINDOW_S {
                    break;
                }
                if o != *i && so.may_link(si, forest.exact_deckies) {
                    forest.consider_unless_joined(o, *i);
                }
            }
        }
    }
    for bucket in &buckets {
        for (x, &i) in bucket.iter().enumerate() {
            for &j in &bucket[x + 1..] {
                forest.consider(i, j);
            }
        }
    }
    forest.finish()
}

/// The kernel as it was before the interned pre-check (string-keyed indexes, the owned
/// pre-check per candidate): the reference the fast kernel must equal, evidence included.
#[cfg(test)]
fn cluster_identities_reference(features: &[IdentityFeatures]) -> CampaignClustering {
    let order = uuid_order(features);
    let buckets = candidate_buckets(features, &order);
    let mut outs: BTreeMap<&str, Vec<(f64, usize)>> = BTreeMap::new();
    let mut ins: BTreeMap<&str, Vec<(f64, usize)>> = BTreeMap::new();
    for &i in &order {
        for t in &features[i].deckies {
            if hands_over(t) && t.last_seen.is_finite() {
                outs.entry(&*t.decky).or_default().push((t.last_seen, i));
            }
            if picks_up(t) && t.first_seen.is_finite() {
                ins.entry(&*t.decky).or_default().push((t.first_seen, i));
            }
        }
    }
    let mut forest = CampaignForest::new(features, Vec::new(), 0);
    for (decky, out_side) in &outs {
        let Some(in_side) = ins.get_mut(decky) else {
            continue;
        };
        in_side.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        for &(t_out, o) in out_side {
            let lo = in_side.partition_point(|(t, _)| *t < t_out);
            for &(t_in, i) in &in_side[lo..] {
                if t_in - t_out > HANDOFF_WINDOW_S {
                    break;
                }
                forest.consider_reference(o, i);
            }
        }
    }
    for bucket in &buckets {
        for (x, &i) in bucket.iter().enumerate() {
            for &j in &bucket[x + 1..] {
                forest.consider_reference(i, j);
            }
        }
    }
    forest.finish()
}

/// The literal all-pairs definition (oracle for tests).
pub fn cluster_identities_all_pairs(features: &[IdentityFeatures]) -> Vec<usize> {
    let n = features.len();
    let starts: Vec<Option<f64>> = features
        .iter()
        .map(IdentityFeatures::earliest_start)
        .collect();
    let mut uf = UnionFind::new(n);
    for i in 0..n {
        for j in (i + 1)..n {
            let (a, b) = if orientation(features, &starts, i, j) == Ordering::Greater {
                (j, i)
            } else {
                (i, j)
            };
            if campaign_score(&features[a], &features[b]).is_edge() {
                uf.union(i, j);
            }
        }
    }
    let mut out = vec![0; n];
    for (c, members) in uf.components().iter().enumerate() {
        for &m in members {
            out[m] = c;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feat(uuid: &str) -> IdentityFeatures {
        IdentityFeatures {
            identity_uuid: uuid.to_owned(),
            ..IdentityFeatures::default()
        }
    }
    fn on(
        mut f: IdentityFeatures,
        decky: &str,
        phase: &str,
        start: f64,
        end: f64,
    ) -> IdentityFeatures {
        f.touch_decky(decky, phase, start, end);
        f.session_windows.push((start, end));
        f
    }
    fn tokens(mut f: IdentityFeatures, payload: &[&str], c2: &[&str]) -> IdentityFeatures {
        f.payload_hashes = payload.iter().map(|s| s.to_string()).collect();
        f.c2_endpoints = c2.iter().map(|s| s.to_string()).collect();
        f
    }
    fn shift(f: &IdentityFeatures, d: f64) -> IdentityFeatures {
        let mut g = f.clone();
        g.session_windows = f
            .session_windows
            .iter()
            .map(|(s, e)| (s + d, e + d))
            .collect();
        for t in &mut g.deckies {
            t.first_seen += d;
            t.last_seen += d;
        }
        g
    }

    #[test]
    fn handoff_within_window_is_symmetric() {
        let a = on(feat("a"), "d1", "command_and_control", 100.0, 200.0);
        let b = on(feat("b"), "d1", "discovery", 3_600.0, 3_700.0);
        assert_eq!(phase_handoff(&a, &b), (1.0, Some("d1".into())));
        assert_eq!(phase_handoff(&b, &a), (1.0, Some("d1".into())));
        let lone = campaign_score(&a, &b);
        assert_eq!(lone.handoff, HANDOFF_UNCORROBORATED);
        assert_eq!(lone.handoff_corroboration, None);
        assert!(
            !lone.is_edge(),
            "a lone handoff is a coincidence on a small fleet"
        );
    }

    /// Two unrelated campaigns whose sessions happen to meet on a shared decky (one actor's
    /// command-and-control session, another's discovery session an hour later) stay apart; an
    /// access broker handing a foothold to a buyer still links, backed by a second handoff or
    /// by shared infrastructure, and the evidence says which.
    #[test]
    fn coincidental_handoff_stays_apart_real_operator_change_links() {
        // Unrelated: broker X's C2 beacon on d3, then stranger Y's discovery on d3.
        let x = on(
            tokens(feat("x"), &["payload-x"], &["c2.x"]),
            "d3",
            "command_and_control",
            1_000.0,
            1_005.0,
        );
        let y = on(
            tokens(feat("y"), &["payload-y"], &[]),
            "d3",
            "discovery",
            4_600.0,
            4_605.0,
        );
        // A broker persists on two deckies; the buyer starts on both within hours.
        let broker = on(
            on(feat("broker"), "d1", "persistence", 10_000.0, 10_010.0),
            "d2",
            "persistence",
            11_000.0,
            11_010.0,
        );
        let buyer = on(
            on(feat("buyer"), "d1", "discovery", 20_000.0, 20_005.0),
            "d2",
            "lateral_movement",
            21_000.0,
            21_005.0,
        );
        // A second broker/buyer pair meets on one decky only, but reuses the broker's C2.
        let seller = tokens(
            on(feat("seller"), "d4", "command_and_control", 0.0, 5.0),
            &[],
            &["c2.s"],
        );
        let renter = tokens(
            on(feat("renter"), "d4", "discovery", 900.0, 905.0),
            &["p.r"],
            &["c2.s"],
        );

        let lone = campaign_score(&x, &y);
        assert_eq!(lone.handoff_deckies, vec!["d3".to_owned()]);
        assert!(!lone.is_edge(), "{lone:?}");
        let repeated = campaign_score(&broker, &buyer);
        assert_eq!(
            repeated.handoff_deckies,
            vec!["d1".to_owned(), "d2".to_owned()]
        );
        assert_eq!(
            repeated.handoff_corroboration,
            Some(HandoffCorroboration::RepeatedHandoff)
        );
        assert!(repeated.is_edge());
        let infra = campaign_score(&seller, &renter);
        assert_eq!(
            infra.handoff_corroboration,
            Some(HandoffCorroboration::SharedInfra)
        );
        assert_eq!(infra.handoff, 1.0);
        assert!(infra.is_edge() && infra.shared_infra < 1.0, "{infra:?}");

        let fs = vec![x, y, broker, buyer, seller, renter];
        let c = cluster_identities(&fs);
        let labels = c.label_map(&fs);
        assert_ne!(labels["x"], labels["y"]);
        assert_eq!(labels["broker"], labels["buyer"]);
        assert_eq!(labels["seller"], labels["renter"]);
        assert_eq!(c.components.len(), 4);
        let why: Vec<Option<HandoffCorroboration>> = c
            .evidence
            .iter()
            .flatten()
            .map(|e| e.score.handoff_corroboration)
            .collect();
        assert!(why.contains(&Some(HandoffCorroboration::RepeatedHandoff)));
        assert!(why.contains(&Some(HandoffCorroboration::SharedInfra)));
    }

    #[test]
    fn lone_handoff_stays_below_threshold_with_every_weak_term_at_its_maximum() {
        // Same decky, same ASN, B's windows cover A's entirely, and a handoff on the decky.
        let mut a = on(feat("a"), "d1", "persistence", 0.0, 100.0);
        let mut b = on(feat("b"), "d1", "discovery", 100.0, 200.0);
        b.session_windows.push((0.0, 100.0));
        a.asn_cohort.insert(1);
        b.asn_cohort.insert(1);
        let s = campaign_score(&a, &b);
        assert_eq!((s.overlap, s.cohort), (1.0, 1.0));
        assert!(!s.is_edge() && s.weight < CAMPAIGN_EDGE_THRESHOLD, "{s:?}");
        // A keystroke match corroborates the handoff.
        a.kd_digraph_simhash = Some(0xabcd);
        b.kd_digraph_simhash = Some(0xabcf);
        let s = campaign_score(&a, &b);
        assert_eq!(
            s.handoff_corroboration,
            Some(HandoffCorroboration::Keystroke)
        );
        assert!(s.is_edge());
    }

    #[test]
    fn handoff_negative_cases() {
        let a = on(feat("a"), "d1", "persistence", 100.0, 200.0);
        assert_eq!(
            phase_handoff(&a, &on(feat("b"), "d2", "discovery", 300.0, 301.0)).0,
            0.0,
            "no shared decky"
        );
        assert_eq!(
            phase_handoff(&a, &on(feat("b"), "d1", "exfiltration", 300.0, 301.0)).0,
            0.0,
            "wrong phase"
        );
        let late = 200.0 + HANDOFF_WINDOW_S + 1.0;
        assert_eq!(
            phase_handoff(&a, &on(feat("b"), "d1", "lateral_movement", late, late)).0,
            0.0,
            "outside"
        );
        assert_eq!(
            phase_handoff(&a, &on(feat("b"), "d1", "discovery", 150.0, 160.0)).0,
            0.0,
            "negative gap"
        );
        let edge = 200.0 + HANDOFF_WINDOW_S;
        assert_eq!(
            phase_handoff(&a, &on(feat("b"), "d1", "discovery", edge, edge)).0,
            1.0,
            "gap = W counts"
        );
    }

    #[test]
    fn shared_infra_cases() {
        let a = tokens(feat("a"), &["p"], &["c"]);
        assert_eq!(
            shared_infra(&a, &tokens(feat("b"), &["c"], &["p"])),
            1.0,
            "one namespace"
        );
        assert_eq!(shared_infra(&a, &tokens(feat("b"), &["x"], &[])), 0.0);
        assert_eq!(shared_infra(&feat("a"), &feat("b")), 0.0, "both empty");
        let s = campaign_score(&a, &tokens(feat("b"), &["p"], &["c"]));
        assert!(
            s.is_edge() && s.weight == 1.0,
            "exact s = 1.0 alone is an edge"
        );
        assert_eq!(s.shared_tokens, vec!["c".to_owned(), "p".to_owned()]);
        let half = tokens(feat("b"), &["p"], &[]);
        assert!(!campaign_score(&a, &half).is_edge());
    }

    #[test]
    fn overlap_cases() {
        let a = on(feat("a"), "d1", "delivery", 0.0, 100.0);
        assert_eq!(
            temporal_overlap(&a, &on(feat("b"), "d2", "delivery", 0.0, 100.0)),
            1.0
        );
        assert_eq!(
            temporal_overlap(&a, &on(feat("b"), "d2", "delivery", 50.0, 500.0)),
            0.5
        );
        assert_eq!(
            temporal_overlap(&a, &on(feat("b"), "d2", "delivery", 200.0, 300.0)),
            0.0
        );
        assert_eq!(temporal_overlap(&a, &feat("b")), 0.0);
        let zero = on(feat("z"), "d1", "delivery", 5.0, 5.0);
        assert_eq!(temporal_overlap(&zero, &a), 0.0, "A's total time 0");
        // Asymmetric.
        let long = on(feat("l"), "d1", "delivery", 0.0, 400.0);
        assert_eq!(temporal_overlap(&a, &long), 1.0);
        assert_eq!(temporal_overlap(&long, &a), 0.25);
    }

    #[test]
    fn cohort_and_keystroke() {
        let mut a = feat("a");
        let mut b = feat("b");
        assert_eq!(cohort(&a, &b), 0.0);
        a.asn_cohort.insert(1);
        b.asn_cohort.insert(1);
        assert_eq!(cohort(&a, &b), 1.0);
        b.asn_cohort = [2].into();
        assert_eq!(cohort(&a, &b), 0.0);
        assert!(
            !campaign_score(&a, &a.clone()).is_edge(),
            "cohort alone < 1"
        );
        assert_eq!(keystroke(&a, &b), 0.0, "missing");
        a.kd_digraph_simhash = Some(0xff00);
        b.kd_digraph_simhash = Some(0xff00);
        assert_eq!(keystroke(&a, &b), 1.0);
        b.kd_digraph_simhash = Some(0xff03);
        assert_eq!(keystroke(&a, &b), 0.75);
        b.kd_digraph_simhash = Some(0x00ff);
        assert_eq!(keystroke(&a, &b), 0.0, "16 bits apart");
        b.kd_digraph_simhash = Some(0xff00 ^ 0xff);
        assert_eq!(keystroke(&a, &b), 0.0, "exactly 8 bits");
        b.kd_digraph_simhash = Some(0xff00);
        assert!(!campaign_score(&a, &b).is_edge(), "typing alone < 1");
        let a = on(a, "d1", "delivery", 0.0, 10.0);
        let b = on(b, "d2", "delivery", 0.0, 10.0);
        assert!(
            campaign_score(&a, &b).is_edge(),
            "typing + full overlap = 1.0"
        );
    }

    #[test]
    fn weak_campaign_signals_never_link() {
        // Shared deckies + shared ASN + full overlap, no handoff/infra/typing.
        let mut a = on(feat("a"), "d1", "delivery", 0.0, 100.0);
        let mut b = on(feat("b"), "d1", "exploitation", 0.0, 100.0);
        a.asn_cohort.insert(7);
        b.asn_cohort.insert(7);
        let s = campaign_score(&a, &b);
        assert!(s.weight <= 0.5 + 1e-12 && !s.is_edge());
        assert_eq!(cluster_identities(&[a, b]).components.len(), 2);
    }

    #[test]
    fn weights_are_shift_invariant() {
        let a = tokens(
            on(feat("a"), "d1", "persistence", 1_000.0, 2_000.0),
            &["p", "q"],
            &[],
        );
        let b = tokens(
            on(feat("b"), "d1", "discovery", 1_500.0, 9_000.0),
            &["p"],
            &[],
        );
        let base = campaign_score(&a, &b);
        for d in [86_400.0 * 90.0, -5_000.0, 1e9] {
            assert_eq!(campaign_score(&shift(&a, d), &shift(&b, d)), base);
        }
    }

    #[test]
    fn projection_from_stored_row_and_ttp_entries() {
        let entries = vec![
            TtpPhaseEntry {
                decky_id: Some("d1".into()),
                tactic: Some("TA0011".into()),
                created_at_ts: Some(10.0),
            },
            TtpPhaseEntry {
                decky_id: Some("d1".into()),
                tactic: Some("TA0003".into()),
                created_at_ts: Some(20.0),
            },
            TtpPhaseEntry {
                decky_id: Some("d2".into()),
                tactic: Some("TA9999".into()),
                created_at_ts: Some(30.0),
            },
            TtpPhaseEntry {
                decky_id: None,
                tactic: Some("TA0007".into()),
                created_at_ts: Some(40.0),
            },
            TtpPhaseEntry {
                decky_id: Some("d3".into()),
                tactic: Some("TA0007".into()),
                created_at_ts: None,
            },
        ];
        let bytes = 0x0102_0304_0506_0708u64.to_be_bytes();
        let f = IdentityFeatures::from_stored(
            "i",
            Some(r#"["p", null, 3]"#),
            Some("not json"),
            Some(&bytes),
            &entries,
        );
        assert_eq!(f.payload_hashes, ["3".to_owned(), "p".to_owned()].into());
        assert!(f.c2_endpoints.is_empty());
        assert_eq!(f.kd_digraph_simhash, Some(0x0102_0304_0506_0708));
        let d1 = f.track("d1").unwrap();
        assert_eq!(&*d1.first_phase, "command_and_control");
        assert_eq!((d1.first_seen, d1.last_seen), (10.0, 20.0));
        assert_eq!(&*d1.last_phase, "persistence");
        assert_eq!(f.track("d3").unwrap().first_seen, 0.0, "missing time → 0.0");
        assert!(f.track("d2").is_none(), "unknown tactic skipped");
        let names: Vec<&str> = f.deckies.iter().map(|t| &*t.decky).collect();
        assert_eq!(names, ["d1", "d3"]);
        // One shared copy of each decky and phase name.
        assert!(Arc::ptr_eq(
            &d1.decky,
            entries[0].decky_id.as_ref().unwrap()
        ));
        let again = IdentityFeatures::from_stored("i2", None, None, None, &entries);
        assert!(Arc::ptr_eq(
            &again.track("d1").unwrap().last_phase,
            &d1.last_phase
        ));
        assert_eq!(
            simhash_from_stored(Some(b"0102030405060708")),
            Some(0x0102_0304_0506_0708)
        );
        assert_eq!(simhash_from_stored(Some(b"xyz")), None);
        assert_eq!(simhash_from_stored(None), None);
        let empty = IdentityFeatures::from_stored("j", None, None, None, &[]);
        assert!(empty.deckies.is_empty());
        // A handoff fires from stored TTP rows.
        let next = IdentityFeatures::from_stored(
            "k",
            None,
            None,
            None,
            &[TtpPhaseEntry {
                decky_id: Some("d1".into()),
                tactic: Some("TA0008".into()),
                created_at_ts: Some(500.0),
            }],
        );
        let lone = campaign_score(&f, &next);
        assert_eq!(lone.handoff_decky.as_deref(), Some("d1"));
        assert!(
            !lone.is_edge(),
            "one handoff alone does not cross the threshold"
        );
        // The same identity picking up a second decky the first one left: repeated handoff.
        let mut both = entries.clone();
        both.push(TtpPhaseEntry {
            decky_id: Some("d5".into()),
            tactic: Some("TA0011".into()),
            created_at_ts: Some(30.0),
        });
        let f2 = IdentityFeatures::from_stored("i", None, None, None, &both);
        let next2 = IdentityFeatures::from_stored(
            "k",
            None,
            None,
            None,
            &[
                TtpPhaseEntry {
                    decky_id: Some("d1".into()),
                    tactic: Some("TA0008".into()),
                    created_at_ts: Some(500.0),
                },
                TtpPhaseEntry {
                    decky_id: Some("d5".into()),
                    tactic: Some("TA0007".into()),
                    created_at_ts: Some(600.0),
                },
            ],
        );
        assert!(campaign_score(&f2, &next2).is_edge());
        let elsewhere = IdentityFeatures::from_stored(
            "m",
            None,
            None,
            None,
            &[TtpPhaseEntry {
                decky_id: Some("d9".into()),
                tactic: Some("TA0008".into()),
                created_at_ts: Some(500.0),
            }],
        );
        assert_eq!(campaign_score(&f, &elsewhere).weight, 0.0);
    }

    #[test]
    fn attack_ukc_table_round_trips() {
        for (tactic, phase) in ATTACK_TO_UKC.iter().take(14) {
            assert_eq!(ukc_phase_for_tactic(tactic), Some(*phase));
            assert_eq!(tactic_for_ukc_phase(phase), Some(*tactic));
            assert!(UKC_PHASES.contains(phase));
        }
        assert_eq!(ukc_phase_for_tactic("TA0106"), Some("impact"));
        assert_eq!(ukc_phase_for_tactic("TA0000"), None);
    }

    #[test]
    fn kernel_groups_by_infra_and_handoff_and_matches_all_pairs() {
        let fs = vec![
            tokens(feat("e"), &["p"], &["c"]),
            tokens(feat("d"), &["p"], &["c"]),
            tokens(
                on(feat("c"), "d1", "persistence", 0.0, 10.0),
                &["pc"],
                &["c2"],
            ),
            tokens(
                on(feat("b"), "d1", "discovery", 100.0, 110.0),
                &["pb"],
                &["c2"],
            ),
            tokens(
                on(feat("a"), "d1", "discovery", 90_000.0, 90_001.0),
                &["pa"],
                &["c2x"],
            ),
            IdentityFeatures {
                kd_digraph_simhash: Some(0xdead_beef),
                ..feat("f")
            },
            IdentityFeatures {
                kd_digraph_simhash: Some(0xdead_beee),
                session_windows: vec![(0.0, 10.0)],
                ..feat("g")
            },
        ];
        let c = cluster_identities(&fs);
        let labels = c.label_map(&fs);
        assert_eq!(labels["e"], labels["d"]);
        assert_eq!(labels["c"], labels["b"]);
        assert_ne!(labels["c"], labels["a"], "outside the window");
        assert_ne!(labels["f"], labels["g"], "typing without overlap");
        assert_eq!(labels["b"], "cmp-b");
        let all = cluster_identities_all_pairs(&fs);
        for i in 0..fs.len() {
            for j in 0..fs.len() {
                assert_eq!(c.component_of[i] == c.component_of[j], all[i] == all[j]);
            }
        }
        let evidence: Vec<&CampaignEvidence> = c.evidence.iter().flatten().collect();
        assert_eq!(evidence.len(), 2);
        assert!(evidence
            .iter()
            .any(|e| e.score.handoff_decky.as_deref() == Some("d1")));
        let mut reversed = fs.clone();
        reversed.reverse();
        assert_eq!(cluster_identities(&reversed).label_map(&reversed), labels);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// Tokens, centroid `(base, flipped low bits)`, phase entries `(decky, phase, half-day,
        /// dwell)`.
        type RawIdentity = (Vec<u8>, Option<(u8, u8)>, Vec<(u8, u8, i32, u8)>);

        /// One identity of the randomized equality tests: tokens from a small pool (so pairs
        /// share some), phase entries on a small fleet at times that straddle the handoff
        /// window (some non-finite), centroids near one another (some within 8 bits).
        fn arb_identity() -> impl Strategy<Value = RawIdentity> {
            (
                proptest::collection::vec(0u8..12, 0..3),
                proptest::option::weighted(0.4, (0u8..4, 0u8..12)),
                proptest::collection::vec((0u8..5, 0u8..6, -2i32..8, 0u8..20), 0..5),
            )
        }

        fn build(raw: &[RawIdentity]) -> Vec<IdentityFeatures> {
            let phases = [
                "command_and_control",
                "persistence",
                "discovery",
                "lateral_movement",
                "delivery",
                "impact",
            ];
            raw.iter()
                .enumerate()
                .map(|(i, (toks, kd, entries))| {
                    // Uuids not in input order, so orientation and bucket order differ.
                    let mut f = feat(&format!("u{:03}", (i * 37) % 101));
                    for t in toks {
                        if t % 2 == 0 {
                            f.payload_hashes.insert(format!("t{t}"));
                        } else {
                            f.c2_endpoints.insert(format!("t{t}"));
                        }
                    }
                    f.kd_digraph_simhash = kd.map(|(base, flip)| {
                        (u64::from(base) * 0x0101_0101_0101_0101) ^ ((1u64 << flip) - 1)
                    });
                    for &(decky, phase, half_day, dwell) in entries {
                        let start = if half_day < 0 {
                            f64::INFINITY
                        } else {
                            f64::from(half_day) * 43_200.0 + f64::from(dwell) * 5_000.0
                        };
                        let end = start + f64::from(dwell) * 600.0;
                        f = on(
                            f,
                            &format!("decky-{decky}"),
                            phases[phase as usize],
                            start,
                            end,
                        );
                    }
                    f
                })
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]
            #[test]
            fn interned_kernel_equals_reference(
                raw in proptest::collection::vec(arb_identity(), 0..40),
                wide in any::<bool>(),
            ) {
                let mut fs = build(&raw);
                if wide {
                    // More than 64 deckies: summary bits are decky ids modulo 64, and the
                    // fillers sort first, so the real deckies share bits with them.
                    if let Some(first) = fs.first_mut() {
                        for k in 0..70 {
                            first.touch_decky(&format!("a-filler-{k:02}"), "delivery", 0.0, 1.0);
                        }
                    }
                }
                prop_assert_eq!(cluster_identities(&fs), cluster_identities_reference(&fs));
            }

            #[test]
            fn interned_precheck_equals_reference(raw in proptest::collection::vec(arb_identity(), 2..12)) {
                let fs = build(&raw);
                let names: BTreeSet<&str> = fs
                    .iter()
                    .flat_map(|f| f.deckies.iter().map(|t| &*t.decky))
                    .collect();
                let ids: FxHashMap<&str, u32> = names.iter().enumerate().map(|(i, d)| (*d, i as u32)).collect();
                let mut tokens = FxHashMap::default();
                let compact: Vec<Compact> = fs.iter().map(|f| Compact::new(f, &mut tokens, &ids)).collect();
                for i in 0..fs.len() {
                    for j in 0..fs.len() {
                        let reference = could_link(&fs[i], &fs[j]);
                        prop_assert_eq!(compact[i].could_link(&compact[j]), reference);
                        if reference {
                            prop_assert!(compact[i].summary().may_link(&compact[j].summary(), true));
                            prop_assert!(compact[i].summary().may_link(&compact[j].summary(), false));
                        }
                    }
                }
            }
        }

        proptest! {
            #[test]
            fn indexed_equals_all_pairs(raw in proptest::collection::vec(
                (0u8..4, 0u8..3, 0u8..4, 0u32..3, proptest::option::of(0u8..4), 0u8..3), 0..16)) {
                let fs: Vec<IdentityFeatures> = raw
                    .iter()
                    .enumerate()
                    .map(|(i, (tok, decky, phase, day, kd, win))| {
                        let phases = ["command_and_control", "discovery", "persistence", "delivery"];
                        let t = f64::from(*day) * 50_000.0;
                        let mut f = on(feat(&format!("i{i:02}")), &format!("d{decky}"), phases[*phase as usize], t, t + f64::from(*win) * 30_000.0);
                        if *tok > 0 {
                            f.payload_hashes.insert(format!("p{tok}"));
                        }
                        if *tok > 1 {
                            f.c2_endpoints.insert("c".into());
                        }
                        f.kd_digraph_simhash = kd.map(|k| 0xf0f0u64 ^ u64::from(k) ^ (u64::from(k) << 9));
                        f
                    })
                    .collect();
                let c = cluster_identities(&fs);
                let all = cluster_identities_all_pairs(&fs);
                for i in 0..fs.len() {
                    for j in 0..fs.len() {
                        prop_assert_eq!(c.component_of[i] == c.component_of[j], all[i] == all[j]);
                    }
                }
            }
        }
    }

    #[test]
    fn every_edge_is_found_through_candidate_keys_or_handoff_windows() {
        let features = crate::domain::clustering::synth::identity_features(500, 5);
        let keys: Vec<BTreeSet<String>> = features
            .iter()
            .map(|f| candidate_keys(f).into_iter().collect())
            .collect();
        // A partner is found through a window when one of its phase-entry times on that decky
        // falls inside it (its first and last entries are such times).
        let in_window = |w: &HandoffWindow, g: &IdentityFeatures| {
            g.track(&w.decky).is_some_and(|t| {
                [t.first_seen, t.last_seen]
                    .iter()
                    .any(|t| (w.from..=w.to).contains(t))
            })
        };
        let mut edges = 0;
        for i in 0..features.len() {
            for j in i + 1..features.len() {
                if !campaign_score(&features[i], &features[j]).is_edge() {
                    continue;
                }
                edges += 1;
                let found = !keys[i].is_disjoint(&keys[j])
                    || handoff_windows(&features[i])
                        .iter()
                        .any(|w| in_window(w, &features[j]))
                    || handoff_windows(&features[j])
                        .iter()
                        .any(|w| in_window(w, &features[i]));
                assert!(found, "edge {i}–{j} has no candidate path");
            }
        }
        assert!(edges > 50, "the sample has edges ({edges})");
        let mut f = feat("x");
        f.kd_digraph_simhash = Some(0x0102_0304_0506_0708);
        f.c2_endpoints.insert("c2".into());
        f.payload_hashes.insert("c2".into());
        let keys = candidate_keys(&f);
        assert_eq!(
            keys.len(),
            9,
            "one token (shared namespace) + 8 bands: {keys:?}"
        );
        assert!(keys.contains(&"kd0:01".to_owned()) && keys.contains(&"token:c2".to_owned()));
    }

    #[test]
    fn handoff_windows_follow_the_phase_maps() {
        let f = on(feat("a"), "decky-01", "command_and_control", 1000.0, 1100.0);
        let f = on(f, "decky-02", "discovery", 5000.0, 5100.0);
        let f = on(f, "decky-03", "collection", 9000.0, 9100.0);
        let w = handoff_windows(&f);
        assert_eq!(
            w,
            vec![
                HandoffWindow {
                    decky: "decky-02".into(),
                    from: 5000.0 - HANDOFF_WINDOW_S,
                    to: 5000.0
                },
                HandoffWindow {
                    decky: "decky-01".into(),
                    from: 1100.0,
                    to: 1100.0 + HANDOFF_WINDOW_S
                },
            ]
        );
    }

    #[test]
    fn interned_kernel_equals_reference_on_synthetic_identities() {
        for seed in [1, 2, 3] {
            let fs = crate::domain::clustering::synth::identity_features(3_000, seed);
            let fast = cluster_identities(&fs);
            assert!(
                fast.components.len() < fs.len(),
                "the sample has edges (seed {seed})"
            );
            assert_eq!(fast, cluster_identities_reference(&fs), "seed {seed}");
        }
    }
}

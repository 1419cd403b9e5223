//! Seeded synthetic workloads for benchmarks and scale tests (pure: same seed, same data).
//!
//! The mix resembles a honeypot fleet: about 40 % un-fingerprinted noise, the rest spread over
//! actors that rotate IPs/ASNs and keep their JA3/HASSH (sometimes only one of them is seen),
//! some sharing payloads or C2 with a partner actor, plus wordlist credentials and commands.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::campaign::IdentityFeatures;
use super::observation::Observation;

const PHASES: [&str; 4] = [
    "discovery",
    "persistence",
    "command_and_control",
    "lateral_movement",
];

/// `n` synthetic observations.
pub fn observations(n: usize, seed: u64) -> Vec<Observation> {
    let mut rng = StdRng::seed_from_u64(seed);
    let actors = (n / 8).max(1);
    let wordlist: Vec<(String, String)> = (0..50)
        .map(|i| (format!("user{}", i % 7), format!("pass{i}")))
        .collect();
    (0..n)
        .map(|i| {
            let mut o = Observation::new(format!("obs-{i:08}-{:08x}", rng.gen::<u32>()));
            o.asn = Some(rng.gen_range(1000..1500));
            for _ in 0..3 {
                o.credentials
                    .insert(wordlist[rng.gen_range(0..wordlist.len())].clone());
            }
            let phase = PHASES[rng.gen_range(0..PHASES.len())];
            o.commands_by_phase
                .insert(phase.to_owned(), vec!["id".into(), "uname -a".into()]);
            if rng.gen_bool(0.4) {
                return o;
            }
            let actor = rng.gen_range(0..actors);
            let seen: f64 = rng.gen();
            if !(0.8..0.9).contains(&seen) {
                o.ja3 = Some(format!("ja3-{actor:06}"));
            }
            if seen >= 0.8 {
                o.hassh = Some(format!("hassh-{actor:06}"));
            }
            if rng.gen_bool(0.3) {
                o.payload_hashes.insert(format!("payload-{:06}", actor / 2));
            }
            if rng.gen_bool(0.2) {
                o.c2_endpoints
                    .insert(format!("c2-{:06}.example", actor / 3));
            }
            o
        })
        .collect()
}

/// `n` synthetic identity feature sets for the campaign kernel.
pub fn identity_features(n: usize, seed: u64) -> Vec<IdentityFeatures> {
    let mut rng = StdRng::seed_from_u64(seed);
    let campaigns = (n / 6).max(1);
    let base = 1_767_225_600.0; // 2026-01-01T00:00Z
    (0..n)
        .map(|i| {
            let mut f = IdentityFeatures {
                identity_uuid: format!("id-{i:08}-{:08x}", rng.gen::<u32>()),
                ..IdentityFeatures::default()
            };
            f.asn_cohort = BTreeSet::from([rng.gen_range(1000..1500)]);
            let campaign = rng.gen_range(0..campaigns);
            if rng.gen_bool(0.3) {
                f.c2_endpoints.insert(format!("c2-{campaign:06}.example"));
            }
            if rng.gen_bool(0.2) {
                f.payload_hashes.insert(format!("payload-{campaign:06}"));
            }
            if rng.gen_bool(0.1) {
                f.kd_digraph_simhash = Some(rng.gen());
            }
            for _ in 0..rng.gen_range(1..4) {
                let decky = format!("decky-{:02}", rng.gen_range(1..=20));
                let start = base + rng.gen_range(0.0..(90.0 * 86_400.0));
                let end = start + rng.gen_range(1.0..600.0);
                f.touch_decky(&decky, PHASES[rng.gen_range(0..PHASES.len())], start, end);
                f.session_windows.push((start, end));
            }
            f
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data() {
        assert_eq!(observations(50, 7), observations(50, 7));
        assert_ne!(observations(50, 7), observations(50, 8));
        assert_eq!(identity_features(20, 1), identity_features(20, 1));
    }

    #[test]
    fn indexed_kernels_match_all_pairs_on_synthetic_data() {
        let obs = observations(400, 3);
        let fast = crate::domain::clustering::kernel::cluster(&obs);
        let slow = crate::domain::clustering::kernel::cluster_all_pairs(&obs);
        for i in 0..obs.len() {
            for j in (i + 1)..obs.len() {
                assert_eq!(
                    fast.component_of[i] == fast.component_of[j],
                    slow[i] == slow[j]
                );
            }
        }
        let fs = identity_features(300, 4);
        let fast = crate::domain::clustering::campaign::cluster_identities(&fs);
        let slow = crate::domain::clustering::campaign::cluster_identities_all_pairs(&fs);
        for i in 0..fs.len() {
            for j in (i + 1)..fs.len() {
                assert_eq!(
                    fast.component_of[i] == fast.component_of[j],
                    slow[i] == slow[j]
                );
            }
        }
    }
}

//! The reconciliation plan (spec §3.4 steps 2–6 and §4.3): given the stored state of one layer
//! (members with their literal FK, entities with their merge pointers) and the kernel's
//! components, decide every write and every event of a tick. The same code serves both layers:
//! observations → identities, and active identities → campaigns.
//!
//! Departures from the reference (both make the stored state converge in one tick instead of
//! flapping; neither changes any outcome the spec's tests pin):
//! * the in-memory chain is re-walked on every lookup, so a rewrite of one pointer is seen by
//!   every row that points through it (spec §10.5);
//! * the revocable-merge undo (the spec's Pass 2) is decided first, on the snapshot's literal
//!   FKs, and the per-component pass runs on the corrected chain. A new observation that
//!   clusters only with a revoked loser's rows is therefore linked to the loser, not to the
//!   winner whose merge is being revoked in the same tick (spec §10.4). Events keep the
//!   spec's publication order (formed, linked, merged, unmerged).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use serde::Serialize;

use super::chain::MergeChain;

/// One member of the layer (an observation, or an active identity) with its literal FK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    pub id: String,
    pub literal: Option<String>,
}

/// One stored entity (identity or campaign), merged-out ones included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityState {
    pub uuid: String,
    pub merged_into: Option<String>,
}

/// A new entity minted for a fresh component; every member is linked to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Formed {
    pub uuid: String,
    pub component: usize,
    pub members: Vec<String>,
}

/// A previously unassigned member linked to an existing entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Linked {
    pub entity: String,
    pub member: String,
}

/// `loser.merged_into = winner`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Merged {
    pub winner: String,
    pub loser: String,
}

/// `resurrected.merged_into = NULL`: its observations no longer support the merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unmerged {
    pub resurrected: String,
    pub former_winner: String,
}

/// The entity a set of components finally belongs to (after Pass 2), for the fingerprint
/// rollup and the stored evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub uuid: String,
    /// Component indices resolving to this entity, ascending.
    pub components: Vec<usize>,
    /// Member ids of those components, in input order.
    pub members: Vec<String>,
    /// Their indices in the plan's `members`, same order.
    pub member_indices: Vec<usize>,
    /// True when this tick formed, linked, merged or unmerged anything touching the entity.
    pub changed: bool,
}

/// Everything one tick does, in event order inside each list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub formed: Vec<Formed>,
    pub linked: Vec<Linked>,
    pub merged: Vec<Merged>,
    pub unmerged: Vec<Unmerged>,
    pub targets: Vec<Target>,
}

impl Plan {
    /// True when the tick publishes nothing (the idempotent case).
    pub fn is_quiet(&self) -> bool {
        self.formed.is_empty()
            && self.linked.is_empty()
            && self.merged.is_empty()
            && self.unmerged.is_empty()
    }
}

/// Build the plan. `components` are member indices per component in processing order (the
/// kernel's order of first member); `mint` yields a fresh entity uuid.
pub fn plan(
    members: &[MemberState],
    components: &[Vec<usize>],
    entities: &[EntityState],
    mint: &mut dyn FnMut() -> String,
) -> Plan {
    let mut chain = MergeChain::new(
        entities
            .iter()
            .map(|e| (e.uuid.as_str(), e.merged_into.as_deref())),
    );
    let mut out = Plan::default();
    let mut touched: HashSet<String> = HashSet::new();

    // Revocable-merge undo (the spec's Pass 2), decided on the snapshot's literal FKs before any
    // new link is made.
    let mut component_of = vec![usize::MAX; members.len()];
    for (c, comp) in components.iter().enumerate() {
        for &m in comp {
            component_of[m] = c;
        }
    }
    let mut components_of: HashMap<&str, BTreeSet<usize>> = HashMap::new();
    for (m, member) in members.iter().enumerate() {
        if let (Some(l), c) = (member.literal.as_deref(), component_of[m]) {
            if c != usize::MAX {
                components_of.entry(l).or_default().insert(c);
            }
        }
    }
    let empty = BTreeSet::new();
    for loser in entities.iter().filter(|e| e.merged_into.is_some()) {
        let winner = chain.resolve(&loser.uuid);
        if winner == loser.uuid {
            continue;
        }
        let lose_set = components_of.get(loser.uuid.as_str()).unwrap_or(&empty);
        let win_set = components_of.get(winner.as_str()).unwrap_or(&empty);
        if lose_set.is_empty() || win_set.is_empty() {
            continue;
        }
        if lose_set.is_disjoint(win_set) {
            chain.unmerge(&loser.uuid);
            touched.insert(loser.uuid.clone());
            touched.insert(winner.clone());
            out.unmerged.push(Unmerged {
                resurrected: loser.uuid.clone(),
                former_winner: winner,
            });
        }
    }

    // Per-component reconciliation (the spec's Pass 1). Literal FKs are shared strings: a
    // component's members all point at one allocation.
    let mut literal: Vec<Option<Rc<str>>> = members
        .iter()
        .map(|m| m.literal.as_deref().map(Rc::from))
        .collect();
    for (c, comp) in components.iter().enumerate() {
        let effective: Vec<String> = {
            let set: BTreeSet<&str> = comp
                .iter()
                .filter_map(|&m| members[m].literal.as_deref())
                .map(|l| chain.resolve_ref(l))
                .collect();
            set.into_iter().map(str::to_owned).collect()
        };
        let mut effective = effective.into_iter();
        let Some(winner) = effective.next() else {
            let uuid = mint();
            chain.insert(&uuid);
            let shared: Rc<str> = Rc::from(uuid.as_str());
            for &m in comp {
                literal[m] = Some(Rc::clone(&shared));
            }
            touched.insert(uuid.clone());
            out.formed.push(Formed {
                uuid,
                component: c,
                members: comp.iter().map(|&m| members[m].id.clone()).collect(),
            });
            continue;
        };
        for loser in effective {
            chain.merge(&loser, &winner);
            touched.insert(loser.clone());
            touched.insert(winner.clone());
            out.merged.push(Merged {
                winner: winner.clone(),
                loser,
            });
        }
        let mut shared: Option<Rc<str>> = None;
        for &m in comp {
            if literal[m].is_none() {
                let w = shared.get_or_insert_with(|| Rc::from(winner.as_str()));
                literal[m] = Some(Rc::clone(w));
                touched.insert(winner.clone());
                out.linked.push(Linked {
                    entity: winner.clone(),
                    member: members[m].id.clone(),
                });
            }
        }
    }

    // Final targets: every component belongs to the (smallest) canonical entity of its members.
    // (component indices, member indices) per target uuid.
    let mut targets: BTreeMap<&str, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for (c, comp) in components.iter().enumerate() {
        let mut best: Option<&str> = None;
        let mut previous: Option<&str> = None;
        for &m in comp {
            let Some(l) = literal[m].as_deref() else {
                continue;
            };
            if previous == Some(l) {
                continue;
            }
            previous = Some(l);
            let resolved = chain.resolve_ref(l);
            if best.is_none_or(|b| resolved < b) {
                best = Some(resolved);
            }
        }
        let Some(uuid) = best else {
            continue;
        };
        let target = targets.entry(uuid).or_default();
        target.0.push(c);
        target.1.extend(comp.iter().copied());
    }
    // Members in input order; a repeated id sorts at its last position.
    let position: HashMap<&str, usize> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    out.targets = targets
        .into_iter()
        .map(|(uuid, (components, mut member_indices))| {
            member_indices.sort_by_key(|&i| {
                position
                    .get(members[i].id.as_str())
                    .copied()
                    .unwrap_or(usize::MAX)
            });
            Target {
                uuid: uuid.to_owned(),
                components,
                members: member_indices
                    .iter()
                    .map(|&i| members[i].id.clone())
                    .collect(),
                member_indices,
                changed: touched.contains(uuid),
            }
        })
        .collect();
    out
}

/// Apply a plan to an in-memory copy of the state (what the stored state looks like after the
/// tick commits). Used by tests and by the fixture pipeline's simulations.
pub fn apply(plan: &Plan, members: &mut [MemberState], entities: &mut Vec<EntityState>) {
    let index: BTreeMap<String, usize> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.clone(), i))
        .collect();
    for f in &plan.formed {
        entities.push(EntityState {
            uuid: f.uuid.clone(),
            merged_into: None,
        });
        for id in &f.members {
            if let Some(&i) = index.get(id) {
                members[i].literal = Some(f.uuid.clone());
            }
        }
    }
    for l in &plan.linked {
        if let Some(&i) = index.get(&l.member) {
            members[i].literal = Some(l.entity.clone());
        }
    }
    for m in &plan.merged {
        if let Some(e) = entities.iter_mut().find(|e| e.uuid == m.loser) {
            e.merged_into = Some(m.winner.clone());
        }
    }
    for u in &plan.unmerged {
        if let Some(e) = entities.iter_mut().find(|e| e.uuid == u.resurrected) {
            e.merged_into = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan as it was built before the allocation cuts (the reference). `components` are member indices per component in processing order (the
    /// kernel's order of first member); `mint` yields a fresh entity uuid.
    fn reference_plan(
        members: &[MemberState],
        components: &[Vec<usize>],
        entities: &[EntityState],
        mint: &mut dyn FnMut() -> String,
    ) -> Plan {
        let mut chain = MergeChain::new(
            entities
                .iter()
                .map(|e| (e.uuid.as_str(), e.merged_into.as_deref())),
        );
        let mut out = Plan::default();
        let mut touched: BTreeSet<String> = BTreeSet::new();

        // Revocable-merge undo (the spec's Pass 2), decided on the snapshot's literal FKs before any
        // new link is made.
        let mut component_of = vec![usize::MAX; members.len()];
        for (c, comp) in components.iter().enumerate() {
            for &m in comp {
                component_of[m] = c;
            }
        }
        let mut components_of: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
        for (m, member) in members.iter().enumerate() {
            if let (Some(l), c) = (member.literal.as_deref(), component_of[m]) {
                if c != usize::MAX {
                    components_of.entry(l).or_default().insert(c);
                }
            }
        }
        let empty = BTreeSet::new();
        for loser in entities.iter().filter(|e| e.merged_into.is_some()) {
            let winner = chain.resolve(&loser.uuid);
            if winner == loser.uuid {
                continue;
            }
            let lose_set = components_of.get(loser.uuid.as_str()).unwrap_or(&empty);
            let win_set = components_of.get(winner.as_str()).unwrap_or(&empty);
            if lose_set.is_empty() || win_set.is_empty() {
                continue;
            }
            if lose_set.is_disjoint(win_set) {
                chain.unmerge(&loser.uuid);
                touched.insert(loser.uuid.clone());
                touched.insert(winner.clone());
                out.unmerged.push(Unmerged {
                    resurrected: loser.uuid.clone(),
                    former_winner: winner,
                });
            }
        }

        // Per-component reconciliation (the spec's Pass 1).
        let mut literal: Vec<Option<String>> = members.iter().map(|m| m.literal.clone()).collect();
        for (c, comp) in components.iter().enumerate() {
            let effective: BTreeSet<String> = comp
                .iter()
                .filter_map(|&m| members[m].literal.as_deref())
                .map(|l| chain.resolve(l))
                .collect();
            let mut effective = effective.into_iter();
            let Some(winner) = effective.next() else {
                let uuid = mint();
                chain.insert(&uuid);
                for &m in comp {
                    literal[m] = Some(uuid.clone());
                }
                touched.insert(uuid.clone());
                out.formed.push(Formed {
                    uuid,
                    component: c,
                    members: comp.iter().map(|&m| members[m].id.clone()).collect(),
                });
                continue;
            };
            for loser in effective {
                chain.merge(&loser, &winner);
                touched.insert(loser.clone());
                touched.insert(winner.clone());
                out.merged.push(Merged {
                    winner: winner.clone(),
                    loser,
                });
            }
            for &m in comp {
                if literal[m].is_none() {
                    literal[m] = Some(winner.clone());
                    touched.insert(winner.clone());
                    out.linked.push(Linked {
                        entity: winner.clone(),
                        member: members[m].id.clone(),
                    });
                }
            }
        }

        // Final targets: every component belongs to the (smallest) canonical entity of its members.
        let mut targets: BTreeMap<String, Target> = BTreeMap::new();
        for (c, comp) in components.iter().enumerate() {
            let Some(uuid) = comp
                .iter()
                .filter_map(|&m| literal[m].as_deref())
                .map(|l| chain.resolve(l))
                .min()
            else {
                continue;
            };
            let target = targets.entry(uuid.clone()).or_insert_with(|| Target {
                uuid: uuid.clone(),
                components: Vec::new(),
                members: Vec::new(),
                member_indices: Vec::new(),
                changed: false,
            });
            target.components.push(c);
            target
                .members
                .extend(comp.iter().map(|&m| members[m].id.clone()));
        }
        let position: BTreeMap<&str, usize> = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.as_str(), i))
            .collect();
        out.targets = targets
            .into_values()
            .map(|mut t| {
                t.members
                    .sort_by_key(|id| position.get(id.as_str()).copied().unwrap_or(usize::MAX));
                t.changed = touched.contains(&t.uuid);
                t
            })
            .collect();
        out
    }

    /// The plan matches the reference implementation on random states: literal FKs, merge
    /// chains with cycles, dangling pointers and stale pointers, repeated member ids.
    #[test]
    fn plan_matches_the_reference_on_random_states() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        for seed in 0..400u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let n_entities = rng.gen_range(0..12);
            let entities: Vec<EntityState> = (0..n_entities)
                .map(|i| EntityState {
                    uuid: format!("e{:02}", (i * 7) % 13),
                    merged_into: rng
                        .gen_bool(0.4)
                        .then(|| format!("e{:02}", rng.gen_range(0..14))),
                })
                .collect();
            let n_members = rng.gen_range(0..40);
            let members: Vec<MemberState> = (0..n_members)
                .map(|i| MemberState {
                    id: format!("m{:02}", if rng.gen_bool(0.05) { 0 } else { i }),
                    literal: rng
                        .gen_bool(0.6)
                        .then(|| format!("e{:02}", rng.gen_range(0..14))),
                })
                .collect();
            let mut order: Vec<usize> = (0..n_members).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.gen_range(0..=i));
            }
            let mut components: Vec<Vec<usize>> = Vec::new();
            for m in order {
                if components.is_empty() || rng.gen_bool(0.4) {
                    components.push(vec![m]);
                } else {
                    let k = rng.gen_range(0..components.len());
                    components[k].push(m);
                }
            }
            let mut minted = 0;
            let mut mint_a = || {
                minted += 1;
                format!("n{minted:03}")
            };
            let mut got = plan(&members, &components, &entities, &mut mint_a);
            let mut minted = 0;
            let mut mint_b = || {
                minted += 1;
                format!("n{minted:03}")
            };
            let want = reference_plan(&members, &components, &entities, &mut mint_b);
            for t in &mut got.targets {
                let ids: Vec<&str> = t
                    .member_indices
                    .iter()
                    .map(|&i| members[i].id.as_str())
                    .collect();
                assert_eq!(ids, t.members, "seed {seed}: indices match ids");
                t.member_indices.clear();
            }
            assert_eq!(got, want, "seed {seed}");
        }
    }

    fn member(id: &str, literal: Option<&str>) -> MemberState {
        MemberState {
            id: id.to_owned(),
            literal: literal.map(str::to_owned),
        }
    }
    fn entity(uuid: &str, merged_into: Option<&str>) -> EntityState {
        EntityState {
            uuid: uuid.to_owned(),
            merged_into: merged_into.map(str::to_owned),
        }
    }
    fn minter() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("new-{n}")
        }
    }

    #[test]
    fn empty_input_is_quiet() {
        let p = plan(&[], &[], &[], &mut minter());
        assert!(p.is_quiet());
        assert!(p.targets.is_empty());
    }

    #[test]
    fn fresh_components_form_one_entity_each_including_singletons() {
        let members = vec![member("o1", None), member("o2", None), member("o3", None)];
        let p = plan(&members, &[vec![0, 2], vec![1]], &[], &mut minter());
        assert_eq!(p.formed.len(), 2);
        assert_eq!(p.formed[0].members, vec!["o1", "o3"]);
        assert_eq!(p.formed[1].uuid, "new-2");
        assert!(p.linked.is_empty() && p.merged.is_empty());
        assert_eq!(p.targets.len(), 2);
        assert!(p.targets.iter().all(|t| t.changed));
    }

    #[test]
    fn single_effective_id_links_unassigned_members() {
        let members = vec![member("o1", Some("idA")), member("o2", None)];
        let entities = vec![entity("idA", None)];
        let p = plan(&members, &[vec![0, 1]], &entities, &mut minter());
        assert!(p.formed.is_empty() && p.merged.is_empty());
        assert_eq!(
            p.linked,
            vec![Linked {
                entity: "idA".into(),
                member: "o2".into()
            }]
        );
    }

    #[test]
    fn bridging_member_soft_merges_into_smallest_uuid() {
        let members = vec![
            member("o1", Some("idC")),
            member("o2", Some("idA")),
            member("o3", Some("idB")),
            member("bridge", None),
        ];
        let entities = vec![
            entity("idC", None),
            entity("idA", None),
            entity("idB", None),
        ];
        let p = plan(&members, &[vec![0, 1, 2, 3]], &entities, &mut minter());
        assert_eq!(
            p.merged,
            vec![
                Merged {
                    winner: "idA".into(),
                    loser: "idB".into()
                },
                Merged {
                    winner: "idA".into(),
                    loser: "idC".into()
                },
            ]
        );
        assert_eq!(
            p.linked,
            vec![Linked {
                entity: "idA".into(),
                member: "bridge".into()
            }]
        );
        assert!(p.unmerged.is_empty(), "merges made this tick are supported");
        assert_eq!(p.targets.len(), 1);
        assert_eq!(p.targets[0].members, vec!["o1", "o2", "o3", "bridge"]);
        // Observations FK'd to losers keep their FK.
        let mut m = members.clone();
        let mut e = entities.clone();
        apply(&p, &mut m, &mut e);
        assert_eq!(m[0].literal.as_deref(), Some("idC"));
        assert_eq!(e[0].merged_into.as_deref(), Some("idA"));
        // Re-planning the applied state is quiet (idempotence).
        let again = plan(&m, &[vec![0, 1, 2, 3]], &e, &mut minter());
        assert!(again.is_quiet(), "{again:?}");
        assert!(again.targets.iter().all(|t| !t.changed));
    }

    #[test]
    fn contradicted_merge_is_revoked_and_resurrected_uuid_kept() {
        // Snapshot: idB merged into idA, but their observations are now in different components.
        let members = vec![
            member("a1", Some("idA")),
            member("b1", Some("idB")),
            member("n", None),
        ];
        let entities = vec![entity("idA", None), entity("idB", Some("idA"))];
        let components = vec![vec![0], vec![1, 2]];
        let p = plan(&members, &components, &entities, &mut minter());
        assert_eq!(
            p.unmerged,
            vec![Unmerged {
                resurrected: "idB".into(),
                former_winner: "idA".into()
            }]
        );
        assert!(
            p.formed.is_empty() && p.merged.is_empty(),
            "no new uuid for the resurrected identity"
        );
        // The new observation joins the resurrected identity, not the former winner.
        assert_eq!(
            p.linked,
            vec![Linked {
                entity: "idB".into(),
                member: "n".into()
            }]
        );
        let mut m = members.clone();
        let mut e = entities.clone();
        apply(&p, &mut m, &mut e);
        assert_eq!(e[1], entity("idB", None));
        assert_eq!(m[1].literal.as_deref(), Some("idB"));
        let next = plan(&m, &components, &e, &mut minter());
        assert!(next.is_quiet(), "converged in one tick: {next:?}");
        assert_eq!(
            next.targets
                .iter()
                .map(|t| t.uuid.as_str())
                .collect::<Vec<_>>(),
            ["idA", "idB"]
        );
    }

    #[test]
    fn revocation_needs_observations_on_both_sides() {
        let members = vec![member("b1", Some("idB"))];
        let entities = vec![entity("idA", None), entity("idB", Some("idA"))];
        let p = plan(&members, &[vec![0]], &entities, &mut minter());
        assert!(
            p.is_quiet(),
            "winner has no observations: nothing can disprove the merge"
        );
        assert_eq!(p.targets[0].uuid, "idA");
    }

    #[test]
    fn supported_premerge_is_kept_and_targets_union_components() {
        // idB → idA; b1 shares a component with a1, b2 is alone: the merge stands and both
        // components roll up onto idA.
        let members = vec![
            member("a1", Some("idA")),
            member("b1", Some("idB")),
            member("b2", Some("idB")),
        ];
        let entities = vec![entity("idA", None), entity("idB", Some("idA"))];
        let p = plan(&members, &[vec![0, 1], vec![2]], &entities, &mut minter());
        assert!(p.is_quiet());
        assert_eq!(p.targets.len(), 1);
        assert_eq!(p.targets[0].components, vec![0, 1]);
    }

    #[test]
    fn chains_are_followed_with_the_hop_cap() {
        let mut entities: Vec<EntityState> = (0..12)
            .map(|i| {
                entity(
                    &format!("e{i:02}"),
                    (i < 11).then(|| format!("e{:02}", i + 1)).as_deref(),
                )
            })
            .collect();
        entities.reverse();
        let members = vec![member("o", Some("e00")), member("p", None)];
        let p = plan(&members, &[vec![0, 1]], &entities, &mut minter());
        // Eight hops from e00 reach e08, which is where the link goes.
        assert_eq!(
            p.linked,
            vec![Linked {
                entity: "e08".into(),
                member: "p".into()
            }]
        );
    }
}

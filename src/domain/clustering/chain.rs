//! Soft-merge chains (spec §3.4 step 2 and §3.5): a merged-out row keeps existing and points at
//! its winner through `merged_into_uuid`; readers follow the pointers, at most
//! [`MAX_MERGE_HOPS`] of them (cycle guard).

use std::collections::HashMap;

/// Maximum number of `merged_into_uuid` hops any reader follows.
pub const MAX_MERGE_HOPS: usize = 8;

/// The result of walking a chain from one uuid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainWalk {
    /// Uuids of the rows read, the start first. Empty when the start has no row.
    pub rows: Vec<String>,
    /// Where the walk ended: the canonical uuid for the clustering tick. A pointer to a uuid
    /// with no row ends the walk on that uuid.
    pub end: String,
    /// Pointers followed.
    pub hops: usize,
    /// True when the hop cap stopped the walk.
    pub capped: bool,
}

impl ChainWalk {
    /// Read-side answer (`get_*_by_uuid`): the last row read; `None` for an unknown start.
    pub fn last_row(&self) -> Option<&str> {
        self.rows.last().map(String::as_str)
    }
}

/// Walk from `start`. `lookup(uuid)` is `None` when no row exists, else the row's
/// `merged_into_uuid`.
pub fn walk_chain<F>(start: &str, mut lookup: F) -> ChainWalk
where
    F: FnMut(&str) -> Option<Option<String>>,
{
    let mut rows = Vec::new();
    let mut current = start.to_owned();
    let mut capped = false;
    let mut hops = 0;
    while let Some(next) = lookup(&current) {
        rows.push(current.clone());
        match next {
            None => break,
            Some(n) if n == current => break,
            Some(n) => {
                if hops == MAX_MERGE_HOPS {
                    capped = true;
                    break;
                }
                current = n;
                hops += 1;
            }
        }
    }
    ChainWalk {
        rows,
        end: current,
        hops,
        capped,
    }
}

/// In-memory merge pointers for one tick, updated as the tick merges and unmerges.
#[derive(Debug, Clone, Default)]
pub struct MergeChain {
    /// Every known row → its `merged_into_uuid`.
    pointers: HashMap<String, Option<String>>,
}

impl MergeChain {
    /// Build from `(uuid, merged_into_uuid)` pairs.
    pub fn new<'a, I>(rows: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, Option<&'a str>)>,
    {
        let pointers = rows
            .into_iter()
            .map(|(u, m)| (u.to_owned(), m.map(str::to_owned)))
            .collect();
        Self { pointers }
    }

    /// The canonical winner of `uuid` (itself when not merged or unknown).
    pub fn resolve(&self, uuid: &str) -> String {
        self.resolve_ref(uuid).to_owned()
    }

    /// [`MergeChain::resolve`] without allocating: the same walk as [`walk_chain`] (same stop
    /// rules, same hop cap), borrowing the uuids.
    pub fn resolve_ref<'a>(&'a self, uuid: &'a str) -> &'a str {
        let mut current = uuid;
        let mut hops = 0;
        while let Some(next) = self.pointers.get(current) {
            match next.as_deref() {
                None => break,
                Some(n) if n == current => break,
                Some(n) => {
                    if hops == MAX_MERGE_HOPS {
                        break;
                    }
                    current = n;
                    hops += 1;
                }
            }
        }
        current
    }

    /// Record `loser → winner`.
    pub fn merge(&mut self, loser: &str, winner: &str) {
        self.pointers
            .insert(loser.to_owned(), Some(winner.to_owned()));
    }

    /// Clear the pointer of `uuid`.
    pub fn unmerge(&mut self, uuid: &str) {
        self.pointers.insert(uuid.to_owned(), None);
    }

    /// Register a freshly created row.
    pub fn insert(&mut self, uuid: &str) {
        self.pointers.insert(uuid.to_owned(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> HashMap<String, Option<String>> {
        (0..n)
            .map(|i| {
                let next = (i + 1 < n).then(|| format!("u{}", i + 1));
                (format!("u{i}"), next)
            })
            .collect()
    }

    #[test]
    fn follows_until_unmerged_row() {
        let rows = chain(4);
        let w = walk_chain("u0", |u| rows.get(u).cloned());
        assert_eq!(w.end, "u3");
        assert_eq!(w.last_row(), Some("u3"));
        assert!(!w.capped);
        assert_eq!(w.hops, 3);
    }

    #[test]
    fn hop_cap_stops_after_eight_hops() {
        let exact = chain(MAX_MERGE_HOPS + 1); // u0 → … → u8: exactly 8 hops
        let w = walk_chain("u0", |u| exact.get(u).cloned());
        assert_eq!((w.end.as_str(), w.capped, w.hops), ("u8", false, 8));
        let long = chain(12);
        let w = walk_chain("u0", |u| long.get(u).cloned());
        assert_eq!((w.end.as_str(), w.capped, w.hops), ("u8", true, 8));
        assert_eq!(w.last_row(), Some("u8"));
    }

    #[test]
    fn cycles_self_pointers_and_dangling_pointers() {
        let mut rows: HashMap<String, Option<String>> = HashMap::new();
        rows.insert("a".into(), Some("b".into()));
        rows.insert("b".into(), Some("a".into()));
        let w = walk_chain("a", |u| rows.get(u).cloned());
        assert!(w.capped, "a cycle is cut by the cap");
        rows.insert("s".into(), Some("s".into()));
        assert_eq!(walk_chain("s", |u| rows.get(u).cloned()).end, "s");
        rows.insert("d".into(), Some("ghost".into()));
        let w = walk_chain("d", |u| rows.get(u).cloned());
        assert_eq!((w.end.as_str(), w.last_row()), ("ghost", Some("d")));
        let w = walk_chain("nobody", |u| rows.get(u).cloned());
        assert_eq!((w.end.as_str(), w.last_row()), ("nobody", None));
    }

    /// The borrowing resolve ends where the reference walk ends, caps and cycles included.
    #[test]
    fn resolve_matches_walk_chain() {
        let mut rows: Vec<(String, Option<String>)> = chain(12).into_iter().collect();
        rows.push(("a".into(), Some("b".into())));
        rows.push(("b".into(), Some("a".into())));
        rows.push(("s".into(), Some("s".into())));
        rows.push(("d".into(), Some("ghost".into())));
        let c = MergeChain::new(rows.iter().map(|(u, m)| (u.as_str(), m.as_deref())));
        let map: HashMap<String, Option<String>> = rows.iter().cloned().collect();
        let mut starts: Vec<String> = map.keys().cloned().collect();
        starts.extend(["ghost".to_owned(), "nobody".to_owned()]);
        for start in &starts {
            let end = walk_chain(start, |u| map.get(u).cloned()).end;
            assert_eq!(c.resolve_ref(start), end, "{start}");
            assert_eq!(c.resolve(start), end, "{start}");
        }
    }

    #[test]
    fn merge_chain_updates() {
        let mut c = MergeChain::new([("a", None), ("b", Some("a")), ("c", Some("b"))]);
        assert_eq!(c.resolve("c"), "a");
        c.unmerge("b");
        assert_eq!(c.resolve("c"), "b");
        c.merge("b", "z");
        assert_eq!(c.resolve("c"), "z");
        assert_eq!(c.resolve("unknown"), "unknown");
    }
}

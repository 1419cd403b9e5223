//! Disjoint-set forest with path halving and union by size.

/// Union-find over `0..n`.
#[derive(Debug, Clone)]
pub struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    /// `n` singletons.
    pub fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }

    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// Representative of `x`'s set.
    pub fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            let grand = self.parent[self.parent[x]];
            self.parent[x] = grand;
            x = grand;
        }
        x
    }

    /// Join the sets of `a` and `b`; true when they were distinct.
    pub fn union(&mut self, a: usize, b: usize) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        let (big, small) = if self.size[ra] >= self.size[rb] {
            (ra, rb)
        } else {
            (rb, ra)
        };
        self.parent[small] = big;
        self.size[big] += self.size[small];
        true
    }

    /// The sets, each listed in ascending element order, ordered by their smallest element.
    pub fn components(&mut self) -> Vec<Vec<usize>> {
        let n = self.len();
        let mut slot_of_root: Vec<usize> = vec![usize::MAX; n];
        let mut out: Vec<Vec<usize>> = Vec::new();
        for x in 0..n {
            let r = self.find(x);
            if slot_of_root[r] == usize::MAX {
                slot_of_root[r] = out.len();
                out.push(Vec::new());
            }
            out[slot_of_root[r]].push(x);
        }
        out
    }
}

/// Where each element landed and each component's label: `prefix` + the smallest id of its
/// members (`id_of(element)`), the projection's stable label for a component.
pub fn component_labels<'a>(
    components: &[Vec<usize>],
    prefix: &str,
    id_of: impl Fn(usize) -> &'a str,
) -> (Vec<usize>, Vec<String>) {
    let n = components.iter().map(Vec::len).sum();
    let mut component_of = vec![0; n];
    for (c, members) in components.iter().enumerate() {
        for &m in members {
            component_of[m] = c;
        }
    }
    let labels = components
        .iter()
        .map(|members| {
            let smallest = members.iter().map(|&m| id_of(m)).min().unwrap_or_default();
            format!("{prefix}{smallest}")
        })
        .collect();
    (component_of, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_take_the_smallest_member_id() {
        let ids = ["z", "b", "y", "a"];
        let (of, labels) = component_labels(&[vec![0, 2], vec![1, 3]], "cc-", |m| ids[m]);
        assert_eq!(of, vec![0, 1, 0, 1]);
        assert_eq!(labels, vec!["cc-y".to_owned(), "cc-a".to_owned()]);
    }

    #[test]
    fn unions_and_components() {
        let mut uf = UnionFind::new(6);
        assert!(uf.union(4, 1));
        assert!(uf.union(1, 5));
        assert!(!uf.union(5, 4));
        assert!(uf.union(2, 3));
        assert_eq!(uf.components(), vec![vec![0], vec![1, 4, 5], vec![2, 3]]);
        assert!(UnionFind::new(0).components().is_empty());
    }
}

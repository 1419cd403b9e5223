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

#[cfg(test)]
mod tests {
    use super::*;

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

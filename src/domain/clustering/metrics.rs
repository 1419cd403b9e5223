//! Partition scores (spec §7.4): adjusted Rand index, homogeneity, completeness, singleton
//! recall. Truth and prediction are maps item → label; labels are compared for equality only.

use std::collections::BTreeMap;
use std::hash::Hash;

use rustc_hash::FxHashMap;
use serde::Serialize;

/// Metric errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    #[error("truth and prediction cover different items ({missing} without a prediction, {extra} without a truth label)")]
    ItemMismatch { missing: usize, extra: usize },
}

/// The four scores plus cluster counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    pub adjusted_rand_index: f64,
    pub homogeneity: f64,
    pub completeness: f64,
    pub singleton_recall: f64,
    pub predicted_clusters: usize,
    pub truth_clusters: usize,
}

impl Scores {
    /// The named metric (`adjusted_rand_index`, `homogeneity`, `completeness`,
    /// `singleton_recall`).
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "adjusted_rand_index" => Some(self.adjusted_rand_index),
            "homogeneity" => Some(self.homogeneity),
            "completeness" => Some(self.completeness),
            "singleton_recall" => Some(self.singleton_recall),
            _ => None,
        }
    }
}

fn c2(x: usize) -> f64 {
    let x = x as f64;
    x * (x - 1.0) / 2.0
}

/// Contingency table of two aligned label vectors: (n_ij, a_i, b_j).
struct Contingency {
    cells: FxHashMap<(usize, usize), usize>,
    predicted: Vec<usize>,
    truth: Vec<usize>,
    n: usize,
}

fn dense<L: Eq + Hash>(labels: &[L]) -> (Vec<usize>, usize) {
    let mut ids: FxHashMap<&L, usize> = FxHashMap::default();
    let out = labels
        .iter()
        .map(|l| {
            let next = ids.len();
            *ids.entry(l).or_insert(next)
        })
        .collect();
    (out, ids.len())
}

impl Contingency {
    /// From dense label ids (`dense`) with `np` / `nt` distinct labels.
    fn new(p: &[usize], np: usize, t: &[usize], nt: usize) -> Self {
        let mut cells = FxHashMap::default();
        let mut a = vec![0; np];
        let mut b = vec![0; nt];
        for (&i, &j) in p.iter().zip(t) {
            *cells.entry((i, j)).or_insert(0) += 1;
            a[i] += 1;
            b[j] += 1;
        }
        Self {
            cells,
            predicted: a,
            truth: b,
            n: p.len(),
        }
    }
}

fn entropy(sizes: impl Iterator<Item = usize>, n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    sizes
        .filter(|&s| s > 0)
        .map(|s| {
            let p = s as f64 / n;
            -p * p.ln()
        })
        .sum()
}

fn ari(c: &Contingency) -> f64 {
    if c.n < 2 {
        return 1.0;
    }
    let index: f64 = c.cells.values().map(|&x| c2(x)).sum();
    let a: f64 = c.predicted.iter().map(|&x| c2(x)).sum();
    let b: f64 = c.truth.iter().map(|&x| c2(x)).sum();
    let expected = a * b / c2(c.n);
    let max = (a + b) / 2.0;
    if max == expected {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

/// `1 − H(X|Y)/H(X)` where X are the classes counted by `sizes_x` and Y the groups by which
/// the cells are conditioned.
fn conditional_score(c: &Contingency, truth_side: bool) -> f64 {
    if c.n == 0 {
        return 1.0;
    }
    let (x_sizes, y_sizes) = if truth_side {
        (&c.truth, &c.predicted)
    } else {
        (&c.predicted, &c.truth)
    };
    let hx = entropy(x_sizes.iter().copied(), c.n);
    if hx == 0.0 {
        return 1.0;
    }
    // H(X|Y) = Σ_y (|y|/n) · H(X inside y)
    let mut inside: Vec<Vec<usize>> = vec![Vec::new(); y_sizes.len()];
    for (&(i, j), &count) in &c.cells {
        let y = if truth_side { i } else { j };
        inside[y].push(count);
    }
    let n = c.n as f64;
    let conditional: f64 = inside
        .iter()
        .zip(y_sizes)
        .map(|(cells, &size)| (size as f64 / n) * entropy(cells.iter().copied(), size))
        .sum();
    1.0 - conditional / hx
}

fn singleton_recall(predicted: &[usize], truth: &[usize], c: &Contingency) -> f64 {
    let singles: Vec<usize> = (0..truth.len())
        .filter(|&k| c.truth[truth[k]] == 1)
        .collect();
    if singles.is_empty() {
        return 1.0;
    }
    let kept = singles
        .iter()
        .filter(|&&k| c.predicted[predicted[k]] == 1)
        .count();
    kept as f64 / singles.len() as f64
}

/// Score a prediction against the truth. Both maps must cover exactly the same items.
pub fn score<K: Ord, L: Eq + Hash + Ord>(
    predicted: &BTreeMap<K, L>,
    truth: &BTreeMap<K, L>,
) -> Result<Scores, MetricError> {
    let missing = truth.keys().filter(|k| !predicted.contains_key(*k)).count();
    let extra = predicted.keys().filter(|k| !truth.contains_key(*k)).count();
    if missing + extra > 0 {
        return Err(MetricError::ItemMismatch { missing, extra });
    }
    // Both maps iterate in the same key order.
    let p: Vec<&L> = predicted.values().collect();
    let t: Vec<&L> = truth.values().collect();
    let (pd, np) = dense(&p);
    let (td, nt) = dense(&t);
    let c = Contingency::new(&pd, np, &td, nt);
    Ok(Scores {
        adjusted_rand_index: ari(&c),
        homogeneity: conditional_score(&c, true),
        completeness: conditional_score(&c, false),
        singleton_recall: singleton_recall(&pd, &td, &c),
        predicted_clusters: np,
        truth_clusters: nt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(items: &[(&str, &str)]) -> BTreeMap<String, String> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
    fn seq(prefix: &str, of: &[usize]) -> BTreeMap<String, String> {
        of.iter()
            .enumerate()
            .map(|(i, l)| (format!("i{i:02}"), format!("{prefix}{l}")))
            .collect()
    }

    #[test]
    fn renamed_isomorphic_labels_score_one() {
        let t = seq("t", &[0, 0, 1, 1, 1, 2]);
        let p = seq("p", &[5, 5, 9, 9, 9, 7]);
        let s = score(&p, &t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                s.adjusted_rand_index,
                s.homogeneity,
                s.completeness,
                s.singleton_recall
            ),
            (1.0, 1.0, 1.0, 1.0)
        );
        assert_eq!((s.predicted_clusters, s.truth_clusters), (3, 3));
    }

    #[test]
    fn degenerate_partitions() {
        let t = seq("t", &[0, 1, 2, 3]);
        let s = score(&seq("p", &[0, 1, 2, 3]), &t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.adjusted_rand_index, 1.0,
            "all singletons vs all singletons"
        );
        let one = seq("x", &[0]);
        assert_eq!(score(&one, &one).map(|s| s.adjusted_rand_index), Ok(1.0));
        let empty: BTreeMap<String, String> = BTreeMap::new();
        let s = score(&empty, &empty).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (s.homogeneity, s.completeness, s.singleton_recall),
            (1.0, 1.0, 1.0)
        );
    }

    #[test]
    fn fused_classes_lose_homogeneity_split_class_loses_completeness() {
        let t = seq("t", &[0, 0, 1, 1]);
        let fused = score(&seq("p", &[0, 0, 0, 0]), &t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((fused.homogeneity, fused.completeness), (0.0, 1.0));
        let t = seq("t", &[0, 0, 0, 0]);
        let split = score(&seq("p", &[0, 0, 1, 1]), &t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((split.homogeneity, split.completeness), (1.0, 0.0));
    }

    #[test]
    fn singleton_recall_counts_noise_kept_apart() {
        let t = seq("t", &[0, 1, 2, 3, 3]);
        let s = score(&seq("p", &[0, 0, 0, 0, 0]), &t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.singleton_recall, 0.0);
        let s = score(&seq("p", &[0, 1, 5, 5, 5]), &t).unwrap_or_else(|e| panic!("{e}"));
        assert!((s.singleton_recall - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn mismatched_items_are_an_error() {
        let t = labels(&[("a", "x"), ("b", "x")]);
        let p = labels(&[("a", "x"), ("c", "x")]);
        assert_eq!(
            score(&p, &t),
            Err(MetricError::ItemMismatch {
                missing: 1,
                extra: 1
            })
        );
    }

    #[test]
    fn unrelated_labelling_has_low_ari() {
        let truth: Vec<usize> = (0..20).map(|i| i / 4).collect();
        let unrelated: Vec<usize> = (0..20).map(|i| i % 5).collect();
        let s = score(&seq("p", &unrelated), &seq("t", &truth)).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.adjusted_rand_index < 0.3, "{}", s.adjusted_rand_index);
    }
}

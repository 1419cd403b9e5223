//! Order-preserving parallel map over a slice with scoped threads (no pool, no new crate):
//! used where a batch of independent lines is parsed before serial database work.

/// Below this many items `map` runs on the calling thread (spawning costs more than it saves).
pub const PARALLEL_MIN: usize = 512;

/// `items.iter().map(f).collect()`, split over up to `available_parallelism()` (max 8) scoped
/// threads when there are at least [`PARALLEL_MIN`] items. The output order is the input order.
/// A panic in `f` is re-raised on the calling thread.
pub fn map<T, R, F>(items: &[T], f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    map_with(items, default_threads(), f)
}

/// The thread count [`map`] uses: `available_parallelism()`, at most 8.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8)
}

/// [`map`] with an explicit thread count.
pub fn map_with<T, R, F>(items: &[T], threads: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    if threads < 2 || items.len() < PARALLEL_MIN {
        return items.iter().map(&f).collect();
    }
    let per = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(per)
            .map(|chunk| scope.spawn(move || chunk.iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for w in workers {
            match w.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_for_every_split() {
        let items: Vec<u32> = (0..2_000).collect();
        let want: Vec<u64> = items.iter().map(|x| u64::from(*x) * 3).collect();
        for threads in [1, 2, 3, 7, 8] {
            assert_eq!(map_with(&items, threads, |x| u64::from(*x) * 3), want);
        }
        assert_eq!(
            map_with(&items[..10], 4, |x| *x),
            (0..10).collect::<Vec<_>>()
        );
        assert!(map_with(&[] as &[u8], 4, |x| *x).is_empty());
    }

    #[test]
    #[should_panic(expected = "boom")]
    fn a_panic_reaches_the_caller() {
        let items: Vec<u32> = (0..1_000).collect();
        map_with(&items, 2, |x| if *x == 900 { panic!("boom") } else { *x });
    }
}

//! The `total` of list pages, counted once and shared by concurrent requests.
//!
//! Counting a table of a million rows costs milliseconds on either backend — more than the
//! rest of a page request together — and a dashboard asks for the same total over and over.
//! [`Totals`] keeps, per list and filter, the last count together with a **stamp** of the
//! table: a value that a cheap indexed query (`max(id)`, `max(updated_at)`, …) reads in
//! microseconds and that moves whenever a row is added or changed. A cached total is reused
//! while the stamp has not moved and it is younger than the time-to-live; the time-to-live
//! bounds how long a change the stamp cannot see (a deleted row that was not the newest) takes
//! to show. While one request recounts, the others asking for the same total wait for its
//! result instead of counting too.
//!
//! Pure bookkeeping: the stamp and count queries are the caller's.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::DbError;

/// How long a total is reused while its table's stamp has not moved.
pub const TOTALS_TTL: Duration = Duration::from_secs(2);
/// How many distinct keys a cache holds (values or slots left empty by a failed computation,
/// e.g. a 404 page); beyond it the cache starts over.
const MAX_KEYS: usize = 4096;

/// A cached value.
#[derive(Debug, Clone)]
struct Entry<V> {
    stamp: String,
    at: Instant,
    value: V,
}

/// One key's value, and whether a request is refreshing it ahead of its expiry.
#[derive(Debug)]
struct SlotInner<V> {
    entry: tokio::sync::Mutex<Option<Entry<V>>>,
    refreshing: AtomicBool,
}

type Slot<V> = Arc<SlotInner<V>>;

/// Clears a slot's `refreshing` flag however the refresh ends (done, failed, or its request
/// dropped mid-way).
struct Refreshing<'a>(&'a AtomicBool);

impl Drop for Refreshing<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Values computed from the database, one per key, each kept with the stamp it was computed
/// at: reused while the stamp holds and it is younger than the time-to-live, recomputed by
/// one caller while the others asking for the same key wait for its result. The cache holds
/// at most `budget` units of weight (the sum of `weigh` over the values and their keys);
/// beyond it, it starts over. [`Totals`] caches counts; the API's page cache caches
/// serialized pages the same way.
pub struct StampCache<V> {
    slots: parking_lot::Mutex<HashMap<String, Slot<V>>>,
    ttl: Duration,
    budget: usize,
    used: AtomicUsize,
    weigh: fn(&str, &V) -> usize,
}

impl<V> std::fmt::Debug for StampCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StampCache")
            .field("keys", &self.slots.lock().len())
            .field("ttl", &self.ttl)
            .field("budget", &self.budget)
            .field("used", &self.used.load(Ordering::Relaxed))
            .finish()
    }
}

/// Totals of list pages, one per (list, filter) key. Cheap to share (`Arc` inside `Db`).
pub type Totals = StampCache<i64>;

impl Default for Totals {
    fn default() -> Self {
        Totals::new(TOTALS_TTL)
    }
}

impl Totals {
    /// An empty cache whose totals live at most `ttl` (zero: every request counts).
    pub fn new(ttl: Duration) -> Self {
        StampCache::with_budget(ttl, MAX_KEYS, |_, _| 1)
    }

    /// The total for `key` (see [`StampCache::get_with`]).
    pub async fn get<F, Fut>(&self, key: &str, stamp: String, count: F) -> Result<i64, DbError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<i64, DbError>>,
    {
        self.get_with(key, stamp, count).await
    }
}

impl<V: Clone> StampCache<V> {
    /// An empty cache: values live at most `ttl` (zero: nothing is cached) and the cache
    /// holds at most `budget` units as measured by `weigh(key, value)`.
    pub fn with_budget(ttl: Duration, budget: usize, weigh: fn(&str, &V) -> usize) -> Self {
        StampCache {
            slots: parking_lot::Mutex::new(HashMap::new()),
            ttl,
            budget,
            used: AtomicUsize::new(0),
            weigh,
        }
    }

    fn slot(&self, key: &str) -> Slot<V> {
        let mut slots = self.slots.lock();
        if let Some(s) = slots.get(key) {
            return Arc::clone(s);
        }
        if slots.len() >= MAX_KEYS {
            // Slots of failed computations weigh nothing, so the budget alone would not bound
            // them (hostile requests for distinct missing pages).
            slots.clear();
            self.used.store(0, Ordering::Relaxed);
        }
        let s: Slot<V> = Arc::new(SlotInner {
            entry: tokio::sync::Mutex::new(None),
            refreshing: AtomicBool::new(false),
        });
        slots.insert(key.to_owned(), Arc::clone(&s));
        s
    }

    /// Account for a value of weight `w` replacing one of weight `old`; start over when the
    /// budget would be exceeded (the slot being filled is then no longer in the map: the
    /// value still answers the callers waiting for it, and the next request recomputes).
    fn account(&self, old: usize, w: usize) {
        let used = self.used.load(Ordering::Relaxed);
        let next = used.saturating_sub(old).saturating_add(w);
        if next > self.budget {
            self.clear();
        } else {
            self.used.store(next, Ordering::Relaxed);
        }
    }

    /// The value for `key`: the cached one when `stamp` equals the stamp it was computed at
    /// and it is younger than the time-to-live, else `compute()`'s (then cached with `stamp`).
    /// Read the stamp BEFORE computing, so that a write between the two makes the next
    /// request recompute rather than keep a value that missed it. An error is not cached.
    pub async fn get_with<F, Fut, E>(&self, key: &str, stamp: String, compute: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if self.ttl.is_zero() {
            return compute().await;
        }
        let slot = self.slot(key);
        let entry = slot.entry.lock().await;
        if let Some(e) = entry.as_ref() {
            let age = e.at.elapsed();
            if e.stamp == stamp && age < self.ttl {
                // Past half its life, one caller computes the value again while the others
                // are still answered from this one, so that expiry does not stall every
                // caller of a busy key behind one computation.
                if age < self.ttl / 2
                    || slot
                        .refreshing
                        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                        .is_err()
                {
                    return Ok(e.value.clone());
                }
                drop(entry);
                let _refreshing = Refreshing(&slot.refreshing);
                let at = Instant::now();
                let value = compute().await?;
                let entry = slot.entry.lock().await;
                // Keep whatever is newer (a caller that found the stamp moved recomputes
                // under the lock meanwhile).
                if entry.as_ref().is_none_or(|e| e.at <= at) {
                    self.store(key, entry, stamp, at, value.clone());
                }
                return Ok(value);
            }
        }
        let at = Instant::now();
        let value = compute().await?;
        self.store(key, entry, stamp, at, value.clone());
        Ok(value)
    }

    /// Put `value`, computed from `at` with `stamp`, in the locked slot of `key`, and account
    /// for its weight against the one it replaces.
    fn store(
        &self,
        key: &str,
        mut entry: tokio::sync::MutexGuard<'_, Option<Entry<V>>>,
        stamp: String,
        at: Instant,
        value: V,
    ) {
        let old = entry.as_ref().map_or(0, |e| (self.weigh)(key, &e.value));
        let w = (self.weigh)(key, &value);
        *entry = Some(Entry { stamp, at, value });
        drop(entry);
        self.account(old, w);
    }

    /// Whether caching is off (a zero time-to-live: every call computes).
    pub fn is_off(&self) -> bool {
        self.ttl.is_zero()
    }

    /// Drop the values older than the time-to-live: they can no longer answer a request, and
    /// without this they would hold their memory until their key is asked for again. Slots in
    /// use (a computation running) are left alone. Returns how many values were dropped.
    pub fn sweep(&self) -> usize {
        let mut slots = self.slots.lock();
        let mut dropped = 0;
        let mut freed = 0;
        slots.retain(|key, slot| {
            if Arc::strong_count(slot) > 1 {
                return true; // a caller is about to use it
            }
            let Ok(entry) = slot.entry.try_lock() else {
                return true;
            };
            match entry.as_ref() {
                Some(e) if e.at.elapsed() < self.ttl => true,
                Some(e) => {
                    freed += (self.weigh)(key, &e.value);
                    dropped += 1;
                    false
                }
                None => false,
            }
        });
        let used = self.used.load(Ordering::Relaxed);
        self.used
            .store(used.saturating_sub(freed), Ordering::Relaxed);
        dropped
    }

    /// Forget every cached value (after a write the stamps cannot see, e.g. a bulk delete).
    pub fn clear(&self) {
        let mut slots = self.slots.lock();
        slots.clear();
        self.used.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn counted(t: &Totals, key: &str, stamp: &str, n: i64, calls: &AtomicUsize) -> i64 {
        t.get(key, stamp.to_owned(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(n)
        })
        .await
        .expect("count")
    }

    #[tokio::test]
    async fn reuses_a_total_while_the_stamp_holds_and_recounts_when_it_moves() {
        let t = Totals::new(Duration::from_secs(60));
        let calls = AtomicUsize::new(0);
        assert_eq!(counted(&t, "logs", "7", 10, &calls).await, 10);
        assert_eq!(counted(&t, "logs", "7", 99, &calls).await, 10);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(counted(&t, "logs", "8", 11, &calls).await, 11);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // another filter is another total
        assert_eq!(counted(&t, "logs?q=x", "8", 3, &calls).await, 3);
        assert_eq!(counted(&t, "logs", "8", 99, &calls).await, 11);
        t.clear();
        assert_eq!(counted(&t, "logs", "8", 12, &calls).await, 12);
    }

    #[tokio::test]
    async fn a_total_older_than_the_ttl_is_recounted_even_with_the_same_stamp() {
        let t = Totals::new(Duration::from_millis(20));
        let calls = AtomicUsize::new(0);
        counted(&t, "k", "s", 1, &calls).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(counted(&t, "k", "s", 2, &calls).await, 2);
        let zero = Totals::new(Duration::ZERO);
        counted(&zero, "k", "s", 1, &calls).await;
        assert_eq!(counted(&zero, "k", "s", 5, &calls).await, 5);
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_count() {
        let t = Arc::new(Totals::new(Duration::from_secs(60)));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (t, calls) = (Arc::clone(&t), Arc::clone(&calls));
            tasks.push(tokio::spawn(async move {
                t.get("k", "s".into(), || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok(42)
                })
                .await
                .expect("count")
            }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("join"), 42);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_count_is_not_cached() {
        let t = Totals::new(Duration::from_secs(60));
        let err = t
            .get("k", "s".into(), || async {
                Err(DbError::Task("boom".into()))
            })
            .await;
        assert!(err.is_err());
        let calls = AtomicUsize::new(0);
        assert_eq!(counted(&t, "k", "s", 4, &calls).await, 4);
    }

    #[tokio::test]
    async fn the_cache_starts_over_beyond_its_budget() {
        let pages: StampCache<Vec<u8>> =
            StampCache::with_budget(Duration::from_secs(60), 100, |_, v| v.len());
        let calls = AtomicUsize::new(0);
        let page = |n: usize| {
            let calls = &calls;
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, DbError>(vec![0u8; n])
            }
        };
        pages.get_with("a", "s".into(), page(40)).await.expect("a");
        pages.get_with("b", "s".into(), page(40)).await.expect("b");
        // both cached: 80 of 100
        pages
            .get_with("a", "s".into(), page(40))
            .await
            .expect("a again");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // a third page would make 120: the cache starts over, so `a` is computed again
        pages.get_with("c", "s".into(), page(40)).await.expect("c");
        pages
            .get_with("a", "s".into(), page(40))
            .await
            .expect("a after");
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // replacing a value accounts for the old one: 40 → 60 keeps the total at 60
        pages
            .get_with("a", "t".into(), page(60))
            .await
            .expect("a grown");
        pages
            .get_with("a", "t".into(), page(60))
            .await
            .expect("a cached");
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn failed_computations_do_not_grow_the_cache_without_bound() {
        let pages: StampCache<Vec<u8>> =
            StampCache::with_budget(Duration::from_secs(60), 1 << 20, |_, v| v.len());
        for i in 0..(MAX_KEYS + 100) {
            let r = pages
                .get_with(&format!("/missing/{i}"), "s".into(), || async {
                    Err::<Vec<u8>, _>(DbError::Task("not found".into()))
                })
                .await;
            assert!(r.is_err());
        }
        assert!(pages.slots.lock().len() <= MAX_KEYS);
    }

    #[tokio::test]
    async fn sweep_drops_expired_values_and_their_weight() {
        let pages: StampCache<Vec<u8>> =
            StampCache::with_budget(Duration::from_millis(50), 1 << 20, |_, v| v.len());
        for key in ["a", "b"] {
            pages
                .get_with(key, "s".into(), || async {
                    Ok::<_, DbError>(vec![0u8; 1000])
                })
                .await
                .expect("page");
        }
        assert_eq!(pages.sweep(), 0, "fresh values stay");
        assert_eq!(pages.used.load(Ordering::Relaxed), 2000);
        tokio::time::sleep(Duration::from_millis(80)).await;
        pages
            .get_with("b", "s".into(), || async {
                Ok::<_, DbError>(vec![0u8; 10])
            })
            .await
            .expect("b again");
        assert_eq!(pages.sweep(), 1, "only the expired value goes");
        assert_eq!(pages.slots.lock().len(), 1);
        assert_eq!(pages.used.load(Ordering::Relaxed), 10);
    }

    #[tokio::test]
    async fn past_half_its_life_one_caller_refreshes_while_the_others_get_the_value_at_once() {
        let pages: StampCache<u32> =
            StampCache::with_budget(Duration::from_millis(400), 1 << 20, |_, _| 1);
        let v = |n: u32| move || async move { Ok::<_, DbError>(n) };
        assert_eq!(pages.get_with("k", "s".into(), v(1)).await.ok(), Some(1));
        tokio::time::sleep(Duration::from_millis(220)).await;
        // The refresh takes 150 ms; a caller arriving meanwhile is answered from the cache.
        let slow = pages.get_with("k", "s".into(), || async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            Ok::<_, DbError>(2)
        });
        let other = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let t = Instant::now();
            let got = pages.get_with("k", "s".into(), v(3)).await.ok();
            (got, t.elapsed())
        };
        let (refreshed, (got, waited)) = tokio::join!(slow, other);
        assert_eq!(refreshed.ok(), Some(2));
        assert_eq!(got, Some(1), "the other caller gets the cached value");
        assert!(
            waited < Duration::from_millis(100),
            "and does not wait: {waited:?}"
        );
        // The refreshed value is the cached one now, with a new life.
        assert_eq!(pages.get_with("k", "s".into(), v(4)).await.ok(), Some(2));
        // A moved stamp is never answered from the cache, refresh or not.
        assert_eq!(pages.get_with("k", "t".into(), v(5)).await.ok(), Some(5));
    }
}

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
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::DbError;

/// How long a total is reused while its table's stamp has not moved.
pub const TOTALS_TTL: Duration = Duration::from_secs(2);
/// How many distinct (list, filter) totals are kept; beyond it the cache starts over.
const MAX_KEYS: usize = 4096;

/// A cached total.
#[derive(Debug, Clone)]
struct Entry {
    stamp: String,
    at: Instant,
    total: i64,
}

type Slot = Arc<tokio::sync::Mutex<Option<Entry>>>;

/// Totals of list pages, one per (list, filter) key. Cheap to share (`Arc` inside `Db`).
#[derive(Debug)]
pub struct Totals {
    slots: parking_lot::Mutex<HashMap<String, Slot>>,
    ttl: Duration,
}

impl Default for Totals {
    fn default() -> Self {
        Totals::new(TOTALS_TTL)
    }
}

impl Totals {
    /// An empty cache whose totals live at most `ttl` (zero: every request counts).
    pub fn new(ttl: Duration) -> Self {
        Totals {
            slots: parking_lot::Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn slot(&self, key: &str) -> Slot {
        let mut slots = self.slots.lock();
        if let Some(s) = slots.get(key) {
            return Arc::clone(s);
        }
        if slots.len() >= MAX_KEYS {
            slots.clear();
        }
        let s: Slot = Arc::default();
        slots.insert(key.to_owned(), Arc::clone(&s));
        s
    }

    /// The total for `key`: the cached one when `stamp` equals the stamp it was counted at and
    /// it is younger than the time-to-live, else `count()`'s (then cached with `stamp`).
    /// Read the stamp BEFORE counting, so that a write between the two makes the next request
    /// recount rather than keep a count that missed it.
    pub async fn get<F, Fut>(&self, key: &str, stamp: String, count: F) -> Result<i64, DbError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<i64, DbError>>,
    {
        if self.ttl.is_zero() {
            return count().await;
        }
        let slot = self.slot(key);
        let mut entry = slot.lock().await;
        if let Some(e) = entry.as_ref() {
            if e.stamp == stamp && e.at.elapsed() < self.ttl {
                return Ok(e.total);
            }
        }
        let at = Instant::now();
        let total = count().await?;
        *entry = Some(Entry { stamp, at, total });
        Ok(total)
    }

    /// Forget every cached total (after a write the stamps cannot see, e.g. a bulk delete).
    pub fn clear(&self) {
        self.slots.lock().clear();
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
}

//! Concurrent probes of the same query, answered by one run that started after each caller
//! arrived.
//!
//! The page cache validates every request with a stamp probe (an indexed `max` per table).
//! Under load, 64 connections asking for pages that read the same tables would each run the
//! same probe, and on SQLite each probe is a round trip through the blocking pool. A
//! [`Coalescer`] runs at most one probe per key at a time: a caller that arrives while a
//! probe runs waits for the **next** run (which starts after it arrived, so it sees every
//! write committed before the caller's request), and every caller waiting for that run shares
//! its answer. A caller never gets an answer older than its own arrival, so coalescing changes
//! nothing a client can observe except how many probes run.
//!
//! Pure bookkeeping: the probe is the caller's.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use tokio::sync::Notify;

#[derive(Debug)]
struct LaneState<V> {
    /// Number of the last run started (runs are numbered from 1).
    started: u64,
    /// Whether run `started` is still running.
    running: bool,
    /// Number of the run whose answer `answer` holds (0: none yet).
    done: u64,
    answer: Option<Result<V, String>>,
}

#[derive(Debug)]
struct Lane<V> {
    state: parking_lot::Mutex<LaneState<V>>,
    changed: Notify,
}

/// Clears `running` when a run is abandoned (its caller's future dropped), so that a waiting
/// caller starts the next run instead of waiting forever.
struct Running<'a, V> {
    lane: &'a Lane<V>,
    armed: bool,
}

impl<V> Drop for Running<'_, V> {
    fn drop(&mut self) {
        if self.armed {
            self.lane.state.lock().running = false;
            self.lane.changed.notify_waiters();
        }
    }
}

/// One lane of probes per key (see the module documentation).
#[derive(Debug)]
pub struct Coalescer<K, V> {
    lanes: parking_lot::Mutex<HashMap<K, Arc<Lane<V>>>>,
}

impl<K, V> Default for Coalescer<K, V> {
    fn default() -> Self {
        Coalescer {
            lanes: parking_lot::Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Coalescer<K, V> {
    fn lane(&self, key: &K) -> Arc<Lane<V>> {
        let mut lanes = self.lanes.lock();
        Arc::clone(lanes.entry(key.clone()).or_insert_with(|| {
            Arc::new(Lane {
                state: parking_lot::Mutex::new(LaneState {
                    started: 0,
                    running: false,
                    done: 0,
                    answer: None,
                }),
                changed: Notify::new(),
            })
        }))
    }

    /// The answer of a run of `probe` for `key` that started after this call: this caller's
    /// own run, or the one it joined. An error is shared with the callers of that run as its
    /// message.
    pub async fn run<F, Fut, E>(&self, key: &K, probe: F) -> Result<V, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: std::fmt::Display,
    {
        let lane = self.lane(key);
        // Runs numbered above `arrived` start after this point.
        let (arrived, mut mine) = {
            let mut s = lane.state.lock();
            if s.running {
                (s.started, None)
            } else {
                s.started += 1;
                s.running = true;
                (s.started - 1, Some(s.started))
            }
        };
        // Wait for a run that started after this caller arrived, or lead the next one.
        let run = loop {
            if let Some(run) = mine {
                break run;
            }
            let notified = lane.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = lane.state.lock();
                if s.done > arrived {
                    if let Some(answer) = &s.answer {
                        return answer.clone();
                    }
                }
                if !s.running {
                    s.started += 1;
                    s.running = true;
                    mine = Some(s.started);
                    continue;
                }
            }
            notified.await;
        };
        let mut guard = Running {
            lane: &lane,
            armed: true,
        };
        let answer = probe().await.map_err(|e| e.to_string());
        guard.armed = false;
        {
            let mut s = lane.state.lock();
            s.running = false;
            if run > s.done {
                s.done = run;
                s.answer = Some(answer.clone());
            }
        }
        lane.changed.notify_waiters();
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_runs_and_never_get_an_answer_older_than_their_arrival() {
        let c: Arc<Coalescer<&'static str, u64>> = Arc::new(Coalescer::default());
        // The "table": a counter bumped by writers; a probe reads it after a delay.
        let table = Arc::new(AtomicU64::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let (c, table, runs) = (Arc::clone(&c), Arc::clone(&table), Arc::clone(&runs));
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_micros(i * 50)).await;
                // A write this caller has seen committed before it asks.
                let seen = table.fetch_add(1, Ordering::SeqCst) + 1;
                let got = c
                    .run(&"k", || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let v = table.load(Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        Ok::<_, String>(v)
                    })
                    .await
                    .expect("probe");
                assert!(
                    got >= seen,
                    "answer {got} older than the caller's write {seen}"
                );
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let runs = runs.load(Ordering::SeqCst);
        assert!(runs < 200, "{runs} runs for 200 overlapping callers");
        assert!(runs >= 2);
    }

    #[tokio::test]
    async fn an_abandoned_run_hands_over_to_a_waiting_caller() {
        let c: Arc<Coalescer<u8, u8>> = Arc::new(Coalescer::default());
        let c2 = Arc::clone(&c);
        let leader = tokio::spawn(async move {
            c2.run(&1, || async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, String>(1)
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let c3 = Arc::clone(&c);
        let follower =
            tokio::spawn(async move { c3.run(&1, || async { Ok::<_, String>(2) }).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abort();
        let got = tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .expect("the follower ran the probe itself")
            .expect("task");
        assert_eq!(got, Ok(2));
    }

    #[tokio::test]
    async fn errors_are_shared_and_not_kept() {
        let c: Coalescer<u8, u8> = Coalescer::default();
        let e = c.run(&0, || async { Err::<u8, _>("locked") }).await;
        assert_eq!(e, Err("locked".to_owned()));
        assert_eq!(c.run(&0, || async { Ok::<_, String>(3) }).await, Ok(3));
    }
}

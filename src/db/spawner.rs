//! How SQLite work reaches a blocking thread, and SQLite `BEGIN IMMEDIATE` transactions.
//!
//! diesel-async's default spawner makes a dropped, unfinished query future wait for its
//! blocking task with `block_in_place`, which **panics on a current-thread runtime** — every
//! actix-web worker and `#[tokio::test]`. A handler whose future is dropped mid-query (client
//! gone, timeout, SSE stream closed) would panic. [`SqliteSpawner`] lets the blocking task
//! finish in the background instead and counts tasks in flight; the pool's pre-recycle hook
//! ([`check_idle`]) discards a connection that is still busy with such an orphaned task,
//! because reusing it would make diesel-async panic on the shared connection state. The
//! orphaned task ends, drops the last reference and the connection closes (rolling back any
//! open transaction).

use std::cell::Cell;
use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::HookError;
use diesel_async::sync_connection_wrapper::SpawnBlocking;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{DbError, SqliteConn};

type BoxError = Box<dyn Error + Send + Sync + 'static>;

thread_local! {
    /// Set while [`check_idle`] probes a connection: the spawner then runs the (trivial) task
    /// inline, or refuses it when an orphaned task is still running.
    static PROBING: Cell<bool> = const { Cell::new(false) };
}

/// Runs a SQLite connection's work on the blocking pool of the runtime that opened it
/// (pitfall 1) without ever blocking the caller when the future is dropped.
pub struct SqliteSpawner {
    handle: Option<tokio::runtime::Handle>,
    in_flight: Arc<AtomicUsize>,
}

impl SpawnBlocking for SqliteSpawner {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, BoxError>>
    where
        R: Send + 'static,
    {
        if PROBING.with(Cell::get) {
            let res = if self.in_flight.load(Ordering::Acquire) > 0 {
                Err(BoxError::from(
                    "connection still busy with a cancelled query",
                ))
            } else {
                Ok(task())
            };
            return futures_util::future::ready(res).boxed();
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let in_flight = Arc::clone(&self.in_flight);
        let job = move || {
            // `task` is consumed by the call, so its reference to the connection is gone
            // before the counter drops.
            let out = task();
            in_flight.fetch_sub(1, Ordering::AcqRel);
            out
        };
        match &self.handle {
            Some(handle) => handle
                .spawn_blocking(job)
                .map(|joined| joined.map_err(BoxError::from))
                .boxed(),
            None => {
                // Not created inside a runtime (never the case for pooled connections): use a
                // plain thread rather than failing.
                let (tx, rx) = futures::channel::oneshot::channel();
                let spawned = std::thread::Builder::new()
                    .name("decnetd-sqlite".into())
                    .spawn(move || {
                        let _ = tx.send(job());
                    });
                async move {
                    spawned.map_err(BoxError::from)?;
                    rx.await.map_err(BoxError::from)
                }
                .boxed()
            }
        }
    }

    fn get_runtime() -> Self {
        SqliteSpawner {
            handle: tokio::runtime::Handle::try_current().ok(),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// Pre-recycle hook: refuses a connection whose previous user was dropped mid-query and whose
/// blocking task is still running. Costs no thread hop for an idle connection.
pub(super) fn check_idle(conn: &mut SqliteConn) -> Result<(), HookError> {
    /// Clears the probe flag even if the probe unwinds, so no later task runs inline.
    struct Probing;
    impl Drop for Probing {
        fn drop(&mut self) {
            PROBING.with(|p| p.set(false));
        }
    }
    PROBING.with(|p| p.set(true));
    let flag = Probing;
    let probe = conn.spawn_blocking(|_| Ok(()));
    drop(flag);
    match probe.now_or_never() {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(HookError::Message(e.to_string().into())),
        None => Err(HookError::Message("idle probe did not complete".into())),
    }
}

/// `BEGIN IMMEDIATE` on a pooled SQLite connection (used by `db_tx!`).
#[doc(hidden)]
pub async fn sqlite_tx_begin(conn: &mut SqliteConn) -> Result<(), DbError> {
    conn.spawn_blocking(|c: &mut SqliteConnection| {
        AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
    })
    .await?;
    Ok(())
}

/// Commits when `body` is `Ok`, rolls back when it is `Err` (used by `db_tx!`).
#[doc(hidden)]
pub async fn sqlite_tx_finish<T: Send>(
    conn: &mut SqliteConn,
    body: Result<T, DbError>,
) -> Result<T, DbError> {
    match body {
        Ok(value) => {
            conn.spawn_blocking(|c: &mut SqliteConnection| {
                <AnsiTransactionManager as TransactionManager<SqliteConnection>>::commit_transaction(c)
            })
            .await?;
            Ok(value)
        }
        Err(e) => {
            let rolled_back = conn
                .spawn_blocking(|c: &mut SqliteConnection| {
                    <AnsiTransactionManager as TransactionManager<SqliteConnection>>::rollback_transaction(c)
                })
                .await;
            if let Err(rb) = rolled_back {
                // The transaction manager now reports the connection broken; the pool drops it.
                tracing::warn!(error = %rb, "rollback failed");
            }
            Err(e)
        }
    }
}

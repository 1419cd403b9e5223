//! Storage layer: one Diesel code path serving SQLite (embedded default) and PostgreSQL.
//!
//! The backend is chosen at runtime from the URL given to [`Db::connect`]. Repositories
//! (`db::repo::*`) write each query once inside [`db_run!`](crate::db_run) or
//! [`db_tx!`](crate::db_tx); the macro pastes the body into one match arm per backend, so the
//! same source is type-checked against `SyncConnectionWrapper<SqliteConnection>` and against
//! `AsyncPgConnection`. See `/work/shared/notes/dual-backend-storage.md` for the pitfalls this
//! module works around (numbered "pitfall N" below).
//!
//! Cancellation: any `db_run!`/`db_tx!` future may be dropped at any point (client gone,
//! timeout, SSE stream closed), also on actix's current-thread workers. A dropped transaction's
//! connection is closed (rolled back) by [`TxGuard`]; a SQLite query left running in the
//! background is finished by [`SqliteSpawner`] without blocking, and its connection is not
//! reused until it is idle again (diesel-async's default spawner panics in this situation on
//! a current-thread runtime).
//!
//! Portable column conventions: UUIDs are `Text` strings, JSON is [`JsonText`] (`Text`),
//! timestamps are `Timestamp` holding UTC [`chrono::NaiveDateTime`] truncated to microseconds
//! ([`now_utc`]), surrogate ids are `BigInt`.

pub mod coalesce;
pub mod models;
pub mod repo;
pub mod schema;
mod spawner;
pub mod totals;
mod types;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use diesel::result::{ConnectionError, DatabaseErrorKind};
use diesel::SqliteConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;

pub use spawner::SqliteSpawner;
#[doc(hidden)]
pub use spawner::{sqlite_tx_begin, sqlite_tx_finish};
pub use totals::Totals;
pub use types::{new_uuid, now_utc, JsonText};

/// The SQLite connection type used by the pool: sync diesel behind tokio's blocking pool,
/// driven by [`SqliteSpawner`] instead of diesel-async's default spawner (see there why).
pub type SqliteConn =
    diesel_async::sync_connection_wrapper::SyncConnectionWrapper<SqliteConnection, SqliteSpawner>;

/// Embedded SQLite migrations (`migrations/sqlite`).
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// Run on every new PostgreSQL connection (see `pg_pool`).
pub const PG_SESSION_SETUP: &str = "SET plan_cache_mode = force_custom_plan";

/// Embedded PostgreSQL migrations (`migrations/postgres`).
pub const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Pragmas applied to every new SQLite connection (busy_timeout first so that switching the
/// journal mode waits for a concurrent writer instead of failing); the page cache size and the
/// temp store are set per pool (see [`sqlite_pool`]).
/// A database created by decnetd uses 16 KiB pages (the page size is fixed once the file has
/// content, so on an existing file the pragma does nothing): intake rows carry whole log
/// lines, and bigger pages cut B-tree and WAL overhead, +9% committed lines/s in the replay
/// benchmark over 4 KiB.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA page_size = 16384; \
                              PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

/// Connection settings beside the URL (`[db]` in `config/decnetd.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbOptions {
    /// Connections of the pool (on SQLite: of the read pool; writes have one connection of
    /// their own, SQLite having one write lock).
    pub pool_size: usize,
    /// SQLite page cache of each reading connection, in KiB.
    pub sqlite_read_cache_kib: u32,
    /// SQLite page cache of the writing connection, in KiB.
    pub sqlite_write_cache_kib: u32,
}

impl DbOptions {
    /// Default reader cache: list pages touch a few dozen pages each; what they miss comes from
    /// the kernel's page cache, which counts once, not once per connection.
    pub const DEFAULT_READ_CACHE_KIB: u32 = 4096;
    /// Default writer cache: ingest inserts into the line-hash index at random places, so the
    /// writer keeps the upper levels of the intake indexes in memory.
    pub const DEFAULT_WRITE_CACHE_KIB: u32 = 32768;

    /// The defaults with `pool_size` connections.
    pub fn with_pool_size(pool_size: usize) -> Self {
        DbOptions {
            pool_size,
            sqlite_read_cache_kib: Self::DEFAULT_READ_CACHE_KIB,
            sqlite_write_cache_kib: Self::DEFAULT_WRITE_CACHE_KIB,
        }
    }
}

/// How long `pool.get()` waits for a free connection before failing with [`DbError::Pool`].
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long establishing one new connection may take.
const POOL_CREATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handle to the database: a connection pool for the backend chosen from the URL.
/// Cheap to clone (the pools are reference-counted).
#[derive(Clone)]
pub enum Db {
    /// Embedded SQLite (WAL, `synchronous=NORMAL`, `busy_timeout=5000`, `foreign_keys=ON`),
    /// with a FIFO write gate in front of its single write lock (see [`SqlitePool`]).
    Sqlite(SqlitePool),
    /// PostgreSQL over tokio-postgres (no libpq).
    Pg(PgPool),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = match self {
            Db::Sqlite(p) => p.status(),
            Db::Pg(p) => p.status(),
        };
        f.debug_struct("Db")
            .field("backend", &self.backend())
            .field("size", &status.size)
            .field("max_size", &status.max_size)
            .finish()
    }
}

/// The SQLite pools plus a FIFO gate for write transactions.
///
/// SQLite has one write lock, and a writer that finds it taken sleeps in the busy handler
/// (1, 2, 5 … 100 ms) and retries: whoever asks at the right moment wins. A worker that commits
/// back to back (the webhook dispatcher under load, a clusterer) could win every time and
/// starve the ingester's batch commits for seconds. `db_tx!` therefore queues for the gate —
/// tokio's semaphore is first come, first served — and then runs on the one **writing
/// connection**, a pool of its own: writers take turns in arrival order, never hold a
/// connection that readers need, and only the writer pays for a large page cache (readers
/// keep small ones, see [`DbOptions`]). Dereferences to the read pool for everything else.
#[derive(Clone)]
pub struct SqlitePool {
    pool: Pool<SqliteConn>,
    writer: Pool<SqliteConn>,
    gate: Arc<tokio::sync::Semaphore>,
    totals: Arc<Totals>,
}

impl SqlitePool {
    fn new(path: &str, options: DbOptions) -> Result<Self, DbError> {
        Ok(SqlitePool {
            pool: sqlite_pool(
                path,
                options.pool_size,
                options.sqlite_read_cache_kib,
                false,
            )?,
            writer: sqlite_pool(path, 1, options.sqlite_write_cache_kib, true)?,
            gate: Arc::new(tokio::sync::Semaphore::new(1)),
            totals: Arc::default(),
        })
    }

    /// The pool of the one writing connection (used by `db_tx!` after its write turn).
    #[doc(hidden)]
    pub fn writer(&self) -> &Pool<SqliteConn> {
        &self.writer
    }

    /// Wait (in arrival order, at most the pool's wait timeout) for this database's write
    /// turn; the turn ends when the permit is dropped (used by `db_tx!`).
    #[doc(hidden)]
    pub async fn write_turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit, DbError> {
        match tokio::time::timeout(POOL_WAIT_TIMEOUT, Arc::clone(&self.gate).acquire_owned()).await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(DbError::Pool("write gate closed".into())),
            Err(_elapsed) => Err(DbError::Pool(format!(
                "no write turn within {} s",
                POOL_WAIT_TIMEOUT.as_secs()
            ))),
        }
    }
}

impl std::ops::Deref for SqlitePool {
    type Target = Pool<SqliteConn>;
    fn deref(&self) -> &Pool<SqliteConn> {
        &self.pool
    }
}

/// The PostgreSQL pool and this database's cached list totals. Dereferences to the pool.
#[derive(Clone)]
pub struct PgPool {
    pool: Pool<AsyncPgConnection>,
    totals: Arc<Totals>,
}

impl std::ops::Deref for PgPool {
    type Target = Pool<AsyncPgConnection>;
    fn deref(&self) -> &Pool<AsyncPgConnection> {
        &self.pool
    }
}

/// Which backend a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be obtained from the pool (timeout, closed pool, connect failure).
    #[error("database pool error: {0}")]
    Pool(String),
    /// A query failed (constraint violation, busy database, not found via `first`…).
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// Running the embedded migrations failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// The database could not be opened or reached at startup.
    #[error("cannot connect to database: {0}")]
    Connect(String),
    /// The URL has neither a `sqlite://` nor a `postgres://`/`postgresql://` scheme, or is empty.
    #[error("unsupported database URL (expected sqlite://PATH or postgres://…): {0}")]
    InvalidUrl(String),
    /// A stored JSON value could not be (de)serialized.
    #[error("invalid JSON in database: {0}")]
    Json(#[from] serde_json::Error),
    /// A blocking task running database work panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(String),
}

impl From<PoolError> for DbError {
    fn from(e: PoolError) -> Self {
        use diesel_async::pooled_connection::deadpool::PoolError as P;
        crate::metrics::db_pool_error(match &e {
            P::Timeout(_) => "timeout",
            P::Backend(_) => "backend",
            P::Closed => "closed",
            _ => "other",
        });
        DbError::Pool(e.to_string())
    }
}

/// `pool.get().await`, timing the wait for a connection (metrics).
#[doc(hidden)]
#[macro_export]
macro_rules! pool_get {
    ($pool:expr) => {{
        let started = ::std::time::Instant::now();
        let res = $pool.get().await;
        $crate::metrics::db_pool_wait(started.elapsed());
        res
    }};
}

impl DbError {
    /// True for a UNIQUE / PRIMARY KEY violation (same `DatabaseErrorKind` on both backends).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }

    /// True when SQLite reported `SQLITE_BUSY`/`SQLITE_LOCKED` (after `busy_timeout` expired).
    /// Diesel maps these to `DatabaseErrorKind::Unknown`, so the message is inspected (pitfall 3).
    /// Also true for a PostgreSQL serialization failure, the other "retry later" condition.
    pub fn is_busy(&self) -> bool {
        match self {
            DbError::Query(diesel::result::Error::DatabaseError(kind, info)) => match kind {
                DatabaseErrorKind::SerializationFailure => true,
                DatabaseErrorKind::Unknown => {
                    let m = info.message();
                    m.contains("database is locked")
                        || m.contains("database table is locked")
                        || m.contains("database is busy")
                }
                _ => false,
            },
            _ => false,
        }
    }
}

/// Where a URL points.
enum Target<'a> {
    Sqlite(&'a str),
    Postgres(&'a str),
}

fn parse_url(url: &str) -> Result<Target<'_>, DbError> {
    let invalid = || DbError::InvalidUrl(redact_url(url));
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() || path == ":memory:" {
            // An in-memory database would be a different database per pooled connection.
            return Err(invalid());
        }
        Ok(Target::Sqlite(path))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Target::Postgres(url))
    } else {
        Err(invalid())
    }
}

/// The URL with any password replaced, for error messages and logs.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_owned(),
    }
}

impl Db {
    /// Opens a pool for `url`: `sqlite://<path>` (relative or `sqlite:///abs/path`; the parent
    /// directory is created) or `postgres://…` / `postgresql://…`. One connection is checked
    /// out before returning, so an unreachable database fails here with [`DbError::Connect`].
    ///
    /// SQLite connections are established on the runtime that calls `connect` (pitfall 1): call
    /// it from the process's main runtime, not from a short-lived worker runtime.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Db, DbError> {
        Db::connect_with(url, DbOptions::with_pool_size(pool_size)).await
    }

    /// [`Db::connect`] with every connection setting.
    pub async fn connect_with(url: &str, options: DbOptions) -> Result<Db, DbError> {
        let size = options.pool_size.max(1);
        let options = DbOptions {
            pool_size: size,
            ..options
        };
        let db = match parse_url(url)? {
            Target::Sqlite(path) => Db::Sqlite(SqlitePool::new(path, options)?),
            Target::Postgres(url) => Db::Pg(PgPool {
                pool: pg_pool(url, size)?,
                totals: Arc::default(),
            }),
        };
        db.ping()
            .await
            .map_err(|e| DbError::Connect(e.to_string()))?;
        tracing::debug!(backend = ?db.backend(), pool_size = size, "database pool ready");
        Ok(db)
    }

    /// Close the pooled connections that have not been checked out for `idle` or longer,
    /// returning how many were closed (connections in use are left alone). On SQLite an open
    /// connection keeps its page cache, up to `sqlite_read_cache_kib` per reader and
    /// `sqlite_write_cache_kib` for the writer, for as long as it lives: on a large database one
    /// pass over a big table fills the writer's, and the memory stays after it. A closed connection is opened again by
    /// the next query that needs it. They are closed on a blocking thread, as the last one to
    /// close checkpoints the WAL into the database, and the freed heap is handed back to the
    /// system. PostgreSQL connections keep their memory in the server, so they stay open.
    pub fn close_idle(&self, idle: Duration) -> usize {
        let Db::Sqlite(p) = self else {
            return 0;
        };
        let mut closed = p.pool.retain(|_, m| m.last_used() < idle).removed;
        closed.extend(p.writer.retain(|_, m| m.last_used() < idle).removed);
        let n = closed.len();
        if n > 0 {
            // Then the C library's heap (SQLite allocates through it) gives the pages back.
            let close = move || {
                drop(closed);
                crate::memory::release_free_heap();
            };
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn_blocking(close);
                }
                Err(_) => close(),
            }
        }
        n
    }

    /// Open connections: (readers, writers) on SQLite, (pool, 0) on PostgreSQL.
    pub fn open_connections(&self) -> (usize, usize) {
        match self {
            Db::Sqlite(p) => (p.pool.status().size, p.writer.status().size),
            Db::Pg(p) => (p.status().size, 0),
        }
    }

    /// Which backend this handle talks to.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Pg(_) => Backend::Postgres,
        }
    }

    /// The cached `total`s of this database's list pages (see [`totals`]).
    pub fn totals(&self) -> &Totals {
        match self {
            Db::Sqlite(p) => &p.totals,
            Db::Pg(p) => &p.totals,
        }
    }

    /// A cheap round trip (`SELECT 1`) on a pooled connection.
    pub async fn ping(&self) -> Result<(), DbError> {
        crate::db_run!(self, |c| c.batch_execute("SELECT 1").await)?;
        Ok(())
    }

    /// Applies the embedded migrations not yet recorded in `__diesel_schema_migrations` and
    /// returns how many were applied (0 when up to date).
    ///
    /// Runs the synchronous migration harness on a blocking thread (pitfall 4: diesel-async's
    /// `AsyncMigrationHarness` panics under actix-rt's current-thread runtime).
    pub async fn migrate(&self) -> Result<usize, DbError> {
        let applied = match self {
            Db::Sqlite(pool) => {
                let mut conn = pool.get().await?;
                // The wrapper hands the inner sync connection to a blocking thread.
                conn.spawn_blocking(|c: &mut SqliteConnection| {
                    Ok(run_migrations(c, SQLITE_MIGRATIONS))
                })
                .await??
            }
            Db::Pg(pool) => {
                // Detach the connection from the pool: it moves to a blocking thread.
                let conn = Object::take(pool.get().await?);
                tokio::task::spawn_blocking(move || {
                    let mut wrapped = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
                    run_migrations(&mut wrapped, PG_MIGRATIONS)
                })
                .await
                .map_err(|e| DbError::Task(e.to_string()))??
            }
        };
        if applied > 0 {
            tracing::info!(backend = ?self.backend(), applied, "database migrations applied");
        }
        Ok(applied)
    }
}

fn run_migrations<C>(conn: &mut C, migrations: EmbeddedMigrations) -> Result<usize, DbError>
where
    C: MigrationHarness<<C as diesel::Connection>::Backend> + diesel::Connection,
{
    conn.run_pending_migrations(migrations)
        .map(|versions| versions.len())
        .map_err(|e| DbError::Migration(e.to_string()))
}

fn pool_builder_timeouts<C>(
    builder: diesel_async::pooled_connection::deadpool::PoolBuilder<C>,
    size: usize,
) -> diesel_async::pooled_connection::deadpool::PoolBuilder<C>
where
    C: diesel_async::pooled_connection::PoolableConnection + Send + 'static,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager,
{
    builder
        .max_size(size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT_TIMEOUT))
        .create_timeout(Some(POOL_CREATE_TIMEOUT))
}

/// WAL pages after which a commit of the writer copies the log back into the database
/// (SQLite's default is 1 000). A clustering tick rewrites the same pages in several
/// transactions (markers, then identity links, then roll-ups); with the default each of its
/// commits checkpointed and copied those pages again. 4 096 pages of 16 KiB: the WAL file
/// grows to ~64 MiB before a checkpoint.
const WRITER_AUTOCHECKPOINT_PAGES: u32 = 4096;

/// A pool of `size` SQLite connections with a page cache of `cache_kib` each. The writer keeps
/// its temporary tables and statement journals in memory (small, and on the ingest path);
/// readers put theirs in temporary files, so that a large sort (a deep `offset`, a search
/// without a matching index) lands in the kernel's page cache instead of growing the heap.
fn sqlite_pool(
    path: &str,
    size: usize,
    cache_kib: u32,
    writer: bool,
) -> Result<Pool<SqliteConn>, DbError> {
    let per_pool = format!(
        "PRAGMA cache_size = -{cache_kib}; PRAGMA temp_store = {};{}",
        if writer { "MEMORY" } else { "FILE" },
        if writer {
            format!(" PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES};")
        } else {
            String::new()
        }
    );
    if let Some(parent) = Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            crate::private_fs::create_dir_all(parent).map_err(|e| {
                DbError::Connect(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
    }
    // Created 0600 before SQLite opens it: SQLite gives `-wal` and `-shm` the same mode.
    crate::private_fs::create_file_if_missing(Path::new(path))
        .map_err(|e| DbError::Connect(format!("cannot create {path}: {e}")))?;
    // Pitfall 1: a SyncConnectionWrapper sends its work to the runtime it was created on.
    // Establish every connection on this (long-lived) handle, never on the runtime of whichever
    // actix worker happens to trigger pool growth.
    let home = tokio::runtime::Handle::try_current()
        .map_err(|e| DbError::Connect(format!("no tokio runtime: {e}")))?;
    let mut cfg = ManagerConfig::<SqliteConn>::default();
    // Pitfall 6: `Verified` costs a SELECT 1 per checkout; pitfalls 1 and 2 are handled instead.
    cfg.recycling_method = RecyclingMethod::Fast;
    cfg.custom_setup = Box::new(move |path: &str| {
        let path = path.to_owned();
        let per_pool = per_pool.clone();
        home.spawn(async move {
            let mut conn = SqliteConn::establish(&path).await?;
            conn.batch_execute(SQLITE_PRAGMAS)
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            // a negative cache_size is in KiB rather than pages
            conn.batch_execute(&per_pool)
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;

            Ok::<_, ConnectionError>(conn)
        })
        .map(|joined| joined.unwrap_or_else(|e| Err(ConnectionError::BadConnection(e.to_string()))))
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(path, cfg);
    pool_builder_timeouts(Pool::builder(manager), size)
        .pre_recycle(diesel_async::pooled_connection::deadpool::Hook::sync_fn(
            |conn: &mut SqliteConn, _| spawner::check_idle(conn),
        ))
        .build()
        .map_err(|e| DbError::Connect(e.to_string()))
}

fn pg_pool(url: &str, size: usize) -> Result<Pool<AsyncPgConnection>, DbError> {
    let mut cfg = ManagerConfig::<AsyncPgConnection>::default();
    // A closed Postgres connection is detected by `is_broken` and replaced silently.
    cfg.recycling_method = RecyclingMethod::Fast;
    // diesel-async keeps every statement prepared for the connection's lifetime, and after
    // five runs PostgreSQL may switch a prepared statement to its generic plan — costed while
    // the table was small. Tables here start empty and grow for weeks, so that plan becomes a
    // sequential scan (measured: the batch's `line_hash = ANY($1)` probe took 150–400 ms per
    // 1 000 keys at 30 000 rows instead of ~2 ms). Planning each run costs microseconds.
    cfg.custom_setup = Box::new(|url: &str| {
        let url = url.to_owned();
        async move {
            let mut conn = AsyncPgConnection::establish(&url).await?;
            conn.batch_execute(PG_SESSION_SETUP)
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, cfg);
    pool_builder_timeouts(Pool::builder(manager), size)
        .build()
        .map_err(|e| DbError::Connect(e.to_string()))
}

/// Holds a pooled connection for the duration of a transaction. If the transaction future is
/// dropped before it finishes (client went away, timeout, task aborted), the connection is
/// detached from the pool and closed instead of being returned with an open transaction —
/// closing rolls the transaction back and releases SQLite's write lock (pitfall 2).
/// Used by [`db_tx!`](crate::db_tx); not meant to be used directly.
pub struct TxGuard<C>(Option<Object<C>>)
where
    C: diesel_async::pooled_connection::PoolableConnection + Send + 'static,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager;

impl<C> TxGuard<C>
where
    C: diesel_async::pooled_connection::PoolableConnection + Send + 'static,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager<Type = C>,
{
    #[doc(hidden)]
    pub fn new(obj: Object<C>) -> Self {
        TxGuard(Some(obj))
    }

    /// The guarded connection. `None` only after [`TxGuard::release`], which consumes the guard,
    /// so this never fails in practice; it is an `Option` to stay panic-free.
    #[doc(hidden)]
    pub fn conn(&mut self) -> Result<&mut C, DbError> {
        self.0
            .as_deref_mut()
            .ok_or_else(|| DbError::Pool("transaction guard already released".into()))
    }

    /// The transaction finished (committed or rolled back): return the connection to the pool.
    #[doc(hidden)]
    pub fn release(mut self) {
        drop(self.0.take());
    }
}

impl<C> Drop for TxGuard<C>
where
    C: diesel_async::pooled_connection::PoolableConnection + Send + 'static,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager,
{
    fn drop(&mut self) {
        if let Some(obj) = self.0.take() {
            tracing::warn!("transaction dropped before completion; closing its connection");
            drop(Object::take(obj));
        }
    }
}

/// Runs `$body` with `$c` bound to a pooled connection of whichever backend `$db` uses.
/// The body is written once and compiled once per backend; it may use `.await`, its value is
/// the value of the macro, and a `?` inside it returns from the enclosing function (the body
/// is pasted in place, not wrapped in a closure). Pool errors are converted with `?` through
/// [`DbError`](crate::db::DbError), so the enclosing function's error type needs
/// `From<DbError>`.
///
/// ```ignore
/// let n: i64 = db_run!(db, |c| users::table.count().get_result(c).await)?;
/// ```
#[macro_export]
macro_rules! db_run {
    ($db:expr, |$c:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite(pool) => {
                let mut obj = $crate::pool_get!(pool).map_err($crate::db::DbError::from)?;
                let $c: &mut $crate::db::SqliteConn = &mut obj;
                $body
            }
            $crate::db::Db::Pg(pool) => {
                let mut obj = $crate::pool_get!(pool).map_err($crate::db::DbError::from)?;
                let $c: &mut ::diesel_async::AsyncPgConnection = &mut obj;
                $body
            }
        }
    };
}

/// Runs `$body` inside a transaction and evaluates to `Result<T, DbError>`: commit when the
/// body returns `Ok`, roll back on `Err` (the body must evaluate to `Result<T, DbError>`;
/// diesel errors convert with `?`, which leaves the body, not the enclosing function). Pool
/// errors are returned as `Err` too, so unlike [`db_run!`](crate::db_run) the enclosing
/// function needs no particular error type. SQLite uses `BEGIN IMMEDIATE` (pitfall 3), so the
/// write lock is taken up front and contention waits on `busy_timeout` instead of failing
/// late. If the future is dropped mid-transaction the connection is closed, not pooled
/// (pitfall 2). Read-then-write on PostgreSQL needs `FOR UPDATE` (see [`AnyConnMut`]).
///
/// ```ignore
/// let user = db_tx!(db, |c| {
///     diesel::delete(t::table.filter(t::expires_at.lt(now))).execute(c).await?;
///     let u = diesel::insert_into(t::table).values(&row).get_result(c).await?;
///     Ok(u)
/// })?;
/// ```
#[macro_export]
macro_rules! db_tx {
    ($db:expr, |$c:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite(pool) => match pool.write_turn().await {
                Err(e) => Err(e),
                Ok(turn) => {
                    let res = match $crate::pool_get!(pool.writer()) {
                        Err(e) => Err($crate::db::DbError::from(e)),
                        Ok(obj) => {
                            let mut guard = $crate::db::TxGuard::new(obj);
                            let res = match guard.conn() {
                                Err(e) => Err(e),
                                Ok(conn) => {
                                    let conn: &mut $crate::db::SqliteConn = conn;
                                    match $crate::db::sqlite_tx_begin(conn).await {
                                        Err(e) => Err(e),
                                        Ok(()) => {
                                            let body: ::std::result::Result<
                                                _,
                                                $crate::db::DbError,
                                            > = async {
                                                let $c: &mut $crate::db::SqliteConn = &mut *conn;
                                                $body
                                            }
                                            .await;
                                            $crate::db::sqlite_tx_finish(conn, body).await
                                        }
                                    }
                                }
                            };
                            guard.release();
                            res
                        }
                    };
                    drop(turn);
                    res
                }
            },
            $crate::db::Db::Pg(pool) => match $crate::pool_get!(pool) {
                Err(e) => Err($crate::db::DbError::from(e)),
                Ok(obj) => {
                    let mut guard = $crate::db::TxGuard::new(obj);
                    let res = match guard.conn() {
                        Err(e) => Err(e),
                        Ok(conn) => ::diesel_async::AsyncConnection::transaction::<
                            _,
                            $crate::db::DbError,
                            _,
                        >(
                            conn,
                            async |$c: &mut ::diesel_async::AsyncPgConnection| $body,
                        )
                        .await,
                    };
                    guard.release();
                    res
                }
            },
        }
    };
}

/// A mutable connection of either backend, for the rare statement inside a `db_run!`/`db_tx!`
/// body that must differ per backend (see [`db_insert_batch!`](crate::db_insert_batch)).
/// Each arm is type-checked against its concrete connection only:
///
/// ```ignore
/// let v = match c.as_any_conn() {
///     AnyConnMut::Sqlite(c) => q.first(c).await?,             // BEGIN IMMEDIATE already locks
///     AnyConnMut::Pg(c) => q.for_update().first(c).await?,     // FOR UPDATE: Postgres only
/// };
/// ```
pub enum AnyConnMut<'a> {
    Sqlite(&'a mut SqliteConn),
    Pg(&'a mut AsyncPgConnection),
}

/// Conversion of a concrete pooled connection into [`AnyConnMut`].
pub trait AsAnyConn {
    fn as_any_conn(&mut self) -> AnyConnMut<'_>;
}

impl AsAnyConn for SqliteConn {
    fn as_any_conn(&mut self) -> AnyConnMut<'_> {
        AnyConnMut::Sqlite(self)
    }
}

impl AsAnyConn for AsyncPgConnection {
    fn as_any_conn(&mut self) -> AnyConnMut<'_> {
        AnyConnMut::Pg(self)
    }
}

/// Rows per multi-row INSERT statement on PostgreSQL; keeps `rows × columns` under the
/// protocol's 65 535 bind-parameter limit for tables of up to 65 columns.
pub const PG_BATCH_ROWS: usize = 1000;

/// Multi-row insert of `$rows` (a `Vec` of `Insertable` structs, `Send + 'static`) into
/// `$table`, usable inside a `db_run!` or `db_tx!` body; evaluates to
/// `Result<usize, diesel::result::Error>` (rows inserted). Pitfall 5: diesel-async cannot build
/// a multi-row INSERT for SQLite, so the SQLite arm hands the rows to sync diesel on the
/// wrapper's blocking thread (one prepared statement, reused per row), and the PostgreSQL arm
/// sends multi-row `INSERT … VALUES (…), (…)` statements of [`PG_BATCH_ROWS`] rows.
/// Inside `db_tx!` both arms join the surrounding transaction.
///
/// ```ignore
/// db_tx!(db, |c| {
///     let n = db_insert_batch!(c, logs::table, rows)?;
///     repo::state::set_in(c, "ingest_worker_position", &pos).await?; // same transaction
///     Ok(n)
/// })?;
/// ```
/// For `ON CONFLICT` or `RETURNING` variants, copy this macro's two arms into the repository
/// function and adapt the statement.
#[macro_export]
macro_rules! db_insert_batch {
    ($c:expr, $table:expr, $rows:expr) => {{
        let rows: ::std::vec::Vec<_> = $rows;
        match $crate::db::AsAnyConn::as_any_conn(&mut *$c) {
            $crate::db::AnyConnMut::Sqlite(conn) => {
                let table = $table;
                conn.spawn_blocking(move |sync_conn| {
                    ::diesel::RunQueryDsl::execute(
                        ::diesel::insert_into(table).values(&rows),
                        sync_conn,
                    )
                })
                .await
            }
            $crate::db::AnyConnMut::Pg(conn) => {
                let mut inserted = 0usize;
                let mut failed = None;
                for chunk in rows.chunks($crate::db::PG_BATCH_ROWS) {
                    match ::diesel_async::RunQueryDsl::execute(
                        ::diesel::insert_into($table).values(chunk),
                        &mut *conn,
                    )
                    .await
                    {
                        Ok(n) => inserted += n,
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                match failed {
                    Some(e) => Err(e),
                    None => Ok(inserted),
                }
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_err(kind: DatabaseErrorKind, msg: &str) -> DbError {
        DbError::Query(diesel::result::Error::DatabaseError(
            kind,
            Box::new(msg.to_owned()),
        ))
    }

    #[test]
    fn classifies_errors() {
        assert!(db_err(DatabaseErrorKind::UniqueViolation, "dup").is_unique_violation());
        assert!(!db_err(DatabaseErrorKind::UniqueViolation, "dup").is_busy());
        assert!(db_err(DatabaseErrorKind::Unknown, "database is locked").is_busy());
        assert!(db_err(DatabaseErrorKind::SerializationFailure, "x").is_busy());
        assert!(!db_err(DatabaseErrorKind::Unknown, "syntax error").is_busy());
        assert!(!db_err(DatabaseErrorKind::ForeignKeyViolation, "fk").is_unique_violation());
        assert!(!DbError::Pool("timeout".into()).is_busy());
        assert!(!DbError::Query(diesel::result::Error::NotFound).is_unique_violation());
    }

    #[test]
    fn parses_urls() {
        assert!(matches!(
            parse_url("sqlite://data/x.db"),
            Ok(Target::Sqlite("data/x.db"))
        ));
        assert!(matches!(
            parse_url("sqlite:///var/lib/decnet/x.db"),
            Ok(Target::Sqlite("/var/lib/decnet/x.db"))
        ));
        assert!(matches!(
            parse_url("postgresql://u@h/db"),
            Ok(Target::Postgres(_))
        ));
        assert!(matches!(
            parse_url("postgres://u@h/db"),
            Ok(Target::Postgres(_))
        ));
        for bad in [
            "",
            "sqlite://",
            "sqlite://:memory:",
            "sqlite:x.db",
            "mysql://h/db",
        ] {
            assert!(
                matches!(parse_url(bad), Err(DbError::InvalidUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://user:pw@host:5432/db"),
            "postgres://user:***@host:5432/db"
        );
        assert_eq!(
            redact_url("postgres://user@host:5432/db"),
            "postgres://user@host:5432/db"
        );
        assert_eq!(redact_url("mysql://a:b@c/d"), "mysql://a:***@c/d");
        assert_eq!(redact_url("no scheme"), "no scheme");
    }
}

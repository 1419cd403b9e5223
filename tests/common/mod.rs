//! Shared integration-test support: real, freshly migrated databases on both backends.
//!
//! PostgreSQL tests need `DECNETD_TEST_PG_URL` (an admin URL of a running server):
//! `eval "$(scripts/pg start)"; cargo test --test NAME; scripts/pg stop`. Without it they are
//! skipped with a loud message, unless `DECNETD_REQUIRE_PG=1`, which makes them fail.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use decnetd::db::Db;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use tempfile::TempDir;

/// Pool size used by test databases.
pub const TEST_POOL_SIZE: usize = 4;

/// A fresh, migrated SQLite database in a temporary directory (kept alive by the `TempDir`).
pub async fn sqlite_db() -> (TempDir, Db) {
    sqlite_db_with_pool(TEST_POOL_SIZE).await
}

/// Same as [`sqlite_db`] with a chosen pool size.
pub async fn sqlite_db_with_pool(pool_size: usize) -> (TempDir, Db) {
    let dir = tempfile::tempdir().expect("create temp dir");
    let url = format!("sqlite://{}", dir.path().join("decnetd.db").display());
    let db = Db::connect(&url, pool_size)
        .await
        .expect("open SQLite test database");
    db.migrate().await.expect("migrate SQLite test database");
    (dir, db)
}

/// A fresh, migrated PostgreSQL database created on the server at `DECNETD_TEST_PG_URL`, or
/// `None` (after a loud message on stderr) when the variable is unset. Panics when it is unset
/// and `DECNETD_REQUIRE_PG=1`, or when the server is unreachable.
pub async fn pg_db() -> Option<Db> {
    pg_db_with_pool(TEST_POOL_SIZE).await
}

/// Same as [`pg_db`] with a chosen pool size.
pub async fn pg_db_with_pool(pool_size: usize) -> Option<Db> {
    let url = pg_database_url().await?;
    let db = Db::connect(&url, pool_size)
        .await
        .expect("open PostgreSQL test database");
    db.migrate()
        .await
        .expect("migrate PostgreSQL test database");
    Some(db)
}

/// The URL of a freshly created, empty (unmigrated) PostgreSQL database, or `None` as in
/// [`pg_db`]. Databases are left behind; `scripts/pg stop` deletes the whole server.
pub async fn pg_database_url() -> Option<String> {
    let admin_url = match std::env::var("DECNETD_TEST_PG_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => {
            if std::env::var("DECNETD_REQUIRE_PG").as_deref() == Ok("1") {
                panic!(
                    "DECNETD_REQUIRE_PG=1 but DECNETD_TEST_PG_URL is unset; run \
                     `eval \"$(scripts/pg start)\"` first"
                );
            }
            eprintln!(
                "\n!!!!!!!! SKIPPING PostgreSQL test: DECNETD_TEST_PG_URL is not set !!!!!!!!\n\
                 !!!!!!!! run: eval \"$(scripts/pg start)\"; cargo test; scripts/pg stop !!!!!!!!\n"
            );
            return None;
        }
    };
    let name = unique_db_name();
    let mut admin = AsyncPgConnection::establish(&admin_url)
        .await
        .expect("connect to DECNETD_TEST_PG_URL");
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("CREATE DATABASE for test");
    Some(replace_db_name(&admin_url, &name))
}

/// Every backend available to this test run: always SQLite, plus PostgreSQL when configured.
/// Each entry is `(backend name, db, temp dir to keep alive)`.
pub async fn all_backends() -> Vec<(&'static str, Db, Option<TempDir>)> {
    let (dir, sqlite) = sqlite_db().await;
    let mut out = vec![("sqlite", sqlite, Some(dir))];
    if let Some(pg) = pg_db().await {
        out.push(("postgres", pg, None));
    }
    out
}

fn unique_db_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("decnetd_test_{}_{}_{:08x}", std::process::id(), n, nanos)
}

/// Replaces the database name (path) of a postgres URL, keeping any `?query`.
fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    format!("{host_part}/{name}{query}")
}

/// `on_both_backends!(f, g)`: for each `async fn f(db: &Db)` of the including test file, a
/// module `f` with a `sqlite` and a `postgres` test running it on a fresh database (the
/// PostgreSQL one skips, or fails under `DECNETD_REQUIRE_PG=1`, without a server).
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (_dir, db) = crate::common::sqlite_db().await;
                super::$name(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = crate::common::pg_db().await else { return };
                super::$name(&db).await;
            }
        }
    )*};
}

//! Repositories: the only place that builds queries, one file per domain.
//!
//! `diesel_async::RunQueryDsl` is imported here and only here (pitfall 8: it is implemented for
//! every type and would hijack `.load()`/`.first()` elsewhere). Each function writes its query
//! once inside [`db_run!`](crate::db_run) (single statement) or [`db_tx!`](crate::db_tx)
//! (several statements, or any read-then-write), which compiles it for both backends:
//!
//! ```ignore
//! use diesel::prelude::*;
//! use diesel_async::RunQueryDsl;
//! use crate::db::{schema::users, models::User, Db, DbError};
//!
//! pub async fn get(db: &Db, uuid: &str) -> Result<Option<User>, DbError> {
//!     Ok(crate::db_run!(db, |c| users::table
//!         .find(uuid)
//!         .select(User::as_select())
//!         .first(c)
//!         .await
//!         .optional())?)
//! }
//! ```
//!
//! # Multi-row inserts (pitfall 5)
//!
//! `insert_into(t).values(&vec)` does not compile for SQLite under diesel-async. Use
//! [`db_insert_batch!`](crate::db_insert_batch) inside a `db_tx!` body: SQLite runs the batch
//! through sync diesel on the connection's blocking thread (one reused prepared statement), and
//! PostgreSQL sends multi-row `INSERT`s of [`PG_BATCH_ROWS`](crate::db::PG_BATCH_ROWS) rows.
//! [`tokens::insert_batch`] is a working example (tested with 2 500 rows on both backends):
//!
//! ```ignore
//! pub async fn insert_logs(db: &Db, rows: Vec<NewLog>) -> Result<usize, DbError> {
//!     db_tx!(db, |c| Ok(crate::db_insert_batch!(c, logs::table, rows)?))
//! }
//! ```
//!
//! Rows must be owned (`Vec<NewRow>`, `Send + 'static`) because the SQLite arm moves them to a
//! blocking thread. For `ON CONFLICT …` or `RETURNING` batches, copy the macro's two arms into
//! the repository function and adapt the statement in each.
//!
//! # Errors
//!
//! Every function returns [`DbError`](crate::db::DbError); use
//! [`DbError::is_unique_violation`](crate::db::DbError::is_unique_violation) to map a duplicate
//! to 409 and [`DbError::is_busy`](crate::db::DbError::is_busy) to decide on a retry.

/// Rows deleted per statement by [`prune_per_group!`].
const PRUNE_CHUNK: usize = 500;

/// Keep the newest `$cap` rows (by `$ts`, then `$uuid`) of every `$group` value of `$table`;
/// evaluates to `Result<usize, DbError>` (rows deleted). One body for the orchestrator's event
/// and email logs, which prune the same way per decky.
macro_rules! prune_per_group {
    ($db:expr, $table:ident, $group:ident, $ts:ident, $uuid:ident, $cap:expr) => {{
        use $table::dsl as t;
        let cap: i64 = $cap;
        async {
            let over: Vec<(String, i64)> = $crate::db_run!($db, |c| $table::table
                .group_by(t::$group)
                .select((t::$group, diesel::dsl::count_star()))
                .having(diesel::dsl::count_star().gt(cap))
                .load(c)
                .await)?;
            let mut deleted = 0;
            for (group, _) in over {
                let doomed: Vec<String> = $crate::db_run!($db, |c| $table::table
                    .filter(t::$group.eq(&group))
                    .order((t::$ts.desc(), t::$uuid.desc()))
                    .offset(cap)
                    .limit(i64::MAX)
                    .select(t::$uuid)
                    .load(c)
                    .await)?;
                for chunk in doomed.chunks($crate::db::repo::PRUNE_CHUNK) {
                    deleted += $crate::db_run!($db, |c| diesel::delete(
                        $table::table.filter(t::$uuid.eq_any(chunk))
                    )
                    .execute(c)
                    .await)?;
                }
            }
            Ok::<usize, $crate::db::DbError>(deleted)
        }
        .await
    }};
}

pub mod canary;
pub mod clustering;
pub mod fleet;
pub mod intake;
pub mod intel;
pub mod live;
pub mod mail;
pub mod realism;
pub mod state;
pub mod tokens;
pub mod ttp;
pub mod users;
pub mod webhooks;

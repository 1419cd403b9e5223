//! Storage layer: the same repository suite on SQLite and on PostgreSQL.
//!
//! PostgreSQL cases need a server: `eval "$(scripts/pg start)"; cargo test --test db;
//! scripts/pg stop` (skipped loudly without `DECNETD_TEST_PG_URL`).

mod common;

use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta};
use decnetd::db::models::{NewUser, RevokedToken, ROLE_ADMIN, ROLE_VIEWER};
use decnetd::db::repo::{state, tokens, users};
use decnetd::db::schema;
use decnetd::db::{now_utc, Db, DbError};
use decnetd::{db_run, db_tx};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::json;

/// Defines `mod $name { sqlite(), postgres() }` running the async fn `$name(&Db)` on each backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (_dir, db) = crate::common::sqlite_db().await;
                assert_eq!(db.backend(), decnetd::db::Backend::Sqlite);
                super::$name(&db).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) = crate::common::pg_db().await else { return };
                assert_eq!(db.backend(), decnetd::db::Backend::Postgres);
                super::$name(&db).await;
            }
        }
    )*};
}

on_both_backends!(
    users_crud,
    duplicate_username_is_unique_violation,
    invalid_role_is_rejected_but_not_a_unique_violation,
    timestamps_round_trip_exactly,
    revoke_and_purge_expired,
    state_get_set_upsert,
    transaction_rolls_back_on_error,
    transaction_rolls_back_on_constraint_violation,
    migrate_again_is_noop,
    dropped_transaction_does_not_block_writers,
    cancelled_in_flight_queries_do_not_panic_or_poison_the_pool,
    concurrent_read_modify_write_transactions,
    batch_insert_multi_row,
    ping_and_debug,
    idle_connections_close_and_reopen,
);

/// `Db::close_idle`: SQLite connections unused for the given time close (their page caches
/// with them) and the next query opens one again; PostgreSQL keeps its connections.
async fn idle_connections_close_and_reopen(db: &Db) {
    state::set(db, "counter", &json!({"n": 0})).await.unwrap();
    // A write transaction (SQLite: on the writing connection), and reads.
    increment_counter(db).await.unwrap();
    assert_eq!(
        state::get(db, "counter").await.unwrap(),
        Some(json!({"n": 1}))
    );
    let (readers, writers) = db.open_connections();
    assert!(readers >= 1, "a read went through the pool");
    // Nothing has been idle for an hour.
    assert_eq!(db.close_idle(Duration::from_secs(3600)), 0);
    assert_eq!(db.open_connections(), (readers, writers));
    tokio::time::sleep(Duration::from_millis(60)).await;
    let closed = db.close_idle(Duration::from_millis(30));
    match db.backend() {
        decnetd::db::Backend::Sqlite => {
            assert_eq!(writers, 1, "the write went through the writing connection");
            assert_eq!(closed, readers + writers);
            assert_eq!(db.open_connections(), (0, 0));
        }
        decnetd::db::Backend::Postgres => {
            assert_eq!(closed, 0);
            assert_eq!(db.open_connections(), (readers, 0));
        }
    }
    // The next queries open connections again and see what was written before.
    assert_eq!(
        state::get(db, "counter").await.unwrap(),
        Some(json!({"n": 1}))
    );
    increment_counter(db).await.unwrap();
    assert_eq!(
        state::get(db, "counter").await.unwrap(),
        Some(json!({"n": 2}))
    );
    assert!(db.open_connections().0 >= 1);
}

/// `[db] idle_close_s` on a daemon: once nothing has used them for that long, its SQLite
/// connections are closed by the API's 2 s beat; a request afterwards is answered as before.
#[actix_rt::test]
async fn serve_closes_idle_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = decnetd::testkit::settings(dir.path(), None);
    settings.db.idle_close_s = 1;
    let app = decnetd::testkit::start_http_only(settings)
        .await
        .expect("daemon starts");
    let token = decnetd::testkit::token_for(&app, "idle-viewer", "viewer").await;
    let get = || {
        reqwest::Client::new()
            .get(format!("{}/api/v1/attackers?limit=5", app.base_url()))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(get().await.expect("request").status(), 200);
    assert_ne!(app.state.db.open_connections(), (0, 0));
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.state.db.open_connections() != (0, 0) {
        assert!(
            Instant::now() < deadline,
            "still open after 20 s: {:?}",
            app.state.db.open_connections()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get().await.expect("request").status(), 200);
    app.stop().await;
}

/// Awaits a fallible block (`db_run!` propagates pool errors with `?`) and unwraps it.
async fn run<T>(fut: impl std::future::Future<Output = Result<T, DbError>>) -> T {
    fut.await.unwrap()
}

fn ts(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
}

async fn users_crud(db: &Db) {
    assert!(users::list(db).await.unwrap().is_empty());
    assert_eq!(users::get_by_username(db, "alice").await.unwrap(), None);

    let bob = users::create(db, NewUser::new("bob", "hash-b", ROLE_VIEWER, false))
        .await
        .unwrap();
    let alice = users::create(db, NewUser::new("alice", "hash-a", ROLE_ADMIN, true))
        .await
        .unwrap();
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.password_hash, "hash-a");
    assert!(alice.is_admin() && alice.must_change_password);
    assert_eq!(alice.tokens_valid_from, None);
    assert_ne!(alice.uuid, bob.uuid);

    assert_eq!(
        users::get_by_username(db, "alice").await.unwrap().as_ref(),
        Some(&alice)
    );
    assert_eq!(
        users::get_by_uuid(db, &bob.uuid).await.unwrap().as_ref(),
        Some(&bob)
    );
    assert_eq!(users::get_by_uuid(db, "no-such-uuid").await.unwrap(), None);

    let names: Vec<_> = users::list(db)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(users::count(db).await.unwrap(), 2);

    assert!(users::update_password(db, &alice.uuid, "hash-a2", false)
        .await
        .unwrap());
    let a = users::get_by_uuid(db, &alice.uuid).await.unwrap().unwrap();
    assert_eq!(a.password_hash, "hash-a2");
    assert!(!a.must_change_password);

    assert!(users::update_role(db, &bob.uuid, ROLE_ADMIN).await.unwrap());
    assert!(users::get_by_uuid(db, &bob.uuid)
        .await
        .unwrap()
        .unwrap()
        .is_admin());

    let cutoff = now_utc();
    assert!(users::set_tokens_valid_from(db, &bob.uuid, cutoff)
        .await
        .unwrap());
    assert_eq!(
        users::get_by_uuid(db, &bob.uuid)
            .await
            .unwrap()
            .unwrap()
            .tokens_valid_from,
        Some(cutoff)
    );

    // Missing rows are reported, not errors.
    assert!(!users::update_password(db, "missing", "h", true)
        .await
        .unwrap());
    assert!(!users::update_role(db, "missing", ROLE_VIEWER)
        .await
        .unwrap());
    assert!(!users::set_tokens_valid_from(db, "missing", cutoff)
        .await
        .unwrap());

    assert!(users::delete(db, &bob.uuid).await.unwrap());
    assert!(!users::delete(db, &bob.uuid).await.unwrap());
    assert_eq!(users::get_by_uuid(db, &bob.uuid).await.unwrap(), None);
    assert_eq!(users::count(db).await.unwrap(), 1);
}

async fn duplicate_username_is_unique_violation(db: &Db) {
    users::create(db, NewUser::new("carol", "h1", ROLE_VIEWER, false))
        .await
        .unwrap();
    let err = users::create(db, NewUser::new("carol", "h2", ROLE_ADMIN, false))
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err:?}");
    assert!(!err.is_busy());
    // The first row is untouched.
    let carol = users::get_by_username(db, "carol").await.unwrap().unwrap();
    assert_eq!(carol.password_hash, "h1");
    assert_eq!(users::count(db).await.unwrap(), 1);
}

async fn invalid_role_is_rejected_but_not_a_unique_violation(db: &Db) {
    let err = users::create(db, NewUser::new("dave", "h", "root", false))
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Query(_)), "{err:?}");
    assert!(!err.is_unique_violation());
    let u = users::create(db, NewUser::new("dave", "h", ROLE_VIEWER, false))
        .await
        .unwrap();
    assert!(users::update_role(db, &u.uuid, "superuser").await.is_err());
    assert_eq!(
        users::get_by_uuid(db, &u.uuid).await.unwrap().unwrap().role,
        ROLE_VIEWER
    );
}

async fn timestamps_round_trip_exactly(db: &Db) {
    let u = users::create(db, NewUser::new("erin", "h", ROLE_VIEWER, false))
        .await
        .unwrap();
    for t in [
        ts("2026-11-23 05:00:00.123456"),
        ts("1999-12-31 23:59:59"),
        ts("2038-01-19 03:14:08.000001"),
    ] {
        users::set_tokens_valid_from(db, &u.uuid, t).await.unwrap();
        let back = users::get_by_uuid(db, &u.uuid).await.unwrap().unwrap();
        assert_eq!(back.tokens_valid_from, Some(t));
    }
    // Ordering comparisons in SQL agree with Rust on both backends.
    let later: i64 = run(async {
        Ok(db_run!(db, |c| schema::users::table
            .filter(schema::users::tokens_valid_from.gt(ts("2038-01-19 03:14:08")))
            .count()
            .get_result(c)
            .await)?)
    })
    .await;
    assert_eq!(later, 1);
}

async fn revoke_and_purge_expired(db: &Db) {
    let now = now_utc();
    let future = now + TimeDelta::hours(4);
    assert!(!tokens::is_revoked(db, "jti-1").await.unwrap());

    tokens::revoke(db, "jti-1", "user-1", future).await.unwrap();
    assert!(tokens::is_revoked(db, "jti-1").await.unwrap());
    assert!(!tokens::is_revoked(db, "jti-2").await.unwrap());

    // Duplicate jti is a no-op (no error, no second row, first row kept).
    tokens::revoke(db, "jti-1", "someone-else", future + TimeDelta::hours(1))
        .await
        .unwrap();
    assert_eq!(tokens::count(db).await.unwrap(), 1);
    let row: RevokedToken = run(async {
        Ok(db_run!(db, |c| schema::revoked_tokens::table
            .find("jti-1")
            .select(RevokedToken::as_select())
            .first(c)
            .await)?)
    })
    .await;
    assert_eq!(row.user_uuid, "user-1");
    assert_eq!(row.expires_at, future);
    assert!(row.revoked_at >= now && row.revoked_at <= now_utc());

    // An already expired revocation is purged by the next insert.
    tokens::revoke(db, "jti-old", "user-1", now - TimeDelta::minutes(1))
        .await
        .unwrap();
    assert!(tokens::is_revoked(db, "jti-old").await.unwrap());
    assert_eq!(tokens::count(db).await.unwrap(), 2);
    tokens::revoke(db, "jti-3", "user-2", future).await.unwrap();
    assert!(!tokens::is_revoked(db, "jti-old").await.unwrap());
    assert!(tokens::is_revoked(db, "jti-1").await.unwrap());
    assert!(tokens::is_revoked(db, "jti-3").await.unwrap());
    assert_eq!(tokens::count(db).await.unwrap(), 2);
}

async fn state_get_set_upsert(db: &Db) {
    assert_eq!(
        state::get(db, "ingest_worker_position").await.unwrap(),
        None
    );
    state::set(db, "ingest_worker_position", &json!({"position": 0}))
        .await
        .unwrap();
    state::set(db, "attacker_worker_cursor", &json!({"last_log_id": 7}))
        .await
        .unwrap();
    state::set(
        db,
        "ingest_worker_position",
        &json!({"position": 123_456_789_012_i64}),
    )
    .await
    .unwrap();
    assert_eq!(
        state::get(db, "ingest_worker_position").await.unwrap(),
        Some(json!({"position": 123_456_789_012_i64}))
    );
    assert_eq!(
        state::get(db, "attacker_worker_cursor").await.unwrap(),
        Some(json!({"last_log_id": 7}))
    );
    // Arbitrary documents (nested, unicode, quotes) survive the TEXT round trip.
    let doc = json!({"config": {"deckies": [{"name": "décky-01", "services": ["ssh"]}],
                     "note": "it's \"quoted\"", "n": null, "f": 1.5}});
    state::set(db, "deployment", &doc).await.unwrap();
    assert_eq!(state::get(db, "deployment").await.unwrap(), Some(doc));

    assert!(state::delete(db, "deployment").await.unwrap());
    assert!(!state::delete(db, "deployment").await.unwrap());
    assert_eq!(state::get(db, "deployment").await.unwrap(), None);

    // A non-JSON value written behind the repository's back is an error, not a panic.
    run(async {
        Ok(db_run!(db, |c| diesel::insert_into(schema::state::table)
            .values((
                schema::state::key.eq("broken"),
                schema::state::value.eq("{not json"),
            ))
            .execute(c)
            .await)?)
    })
    .await;
    assert!(state::get(db, "broken").await.is_err());
}

#[derive(Debug)]
struct Abort;

async fn transaction_rolls_back_on_error(db: &Db) {
    let new = NewUser::new("frank", "h", ROLE_VIEWER, false);
    let res: Result<(), DbError> = db_tx!(db, |c| {
        diesel::insert_into(schema::users::table)
            .values(&new)
            .execute(c)
            .await?;
        let seen: i64 = schema::users::table.count().get_result(c).await?;
        assert_eq!(seen, 1, "the insert is visible inside the transaction");
        Err(DbError::Migration(format!("{Abort:?}")))
    });
    assert!(matches!(res, Err(DbError::Migration(_))));
    assert_eq!(users::get_by_username(db, "frank").await.unwrap(), None);

    // And a successful transaction commits both writes.
    let a = NewUser::new("grace", "h", ROLE_VIEWER, false);
    let b = NewUser::new("heidi", "h", ROLE_VIEWER, false);
    let n = db_tx!(db, |c| {
        let mut n = diesel::insert_into(schema::users::table)
            .values(&a)
            .execute(c)
            .await?;
        n += diesel::insert_into(schema::users::table)
            .values(&b)
            .execute(c)
            .await?;
        Ok(n)
    })
    .unwrap();
    assert_eq!(n, 2);
    assert_eq!(users::count(db).await.unwrap(), 2);
}

async fn transaction_rolls_back_on_constraint_violation(db: &Db) {
    users::create(db, NewUser::new("ivan", "h", ROLE_VIEWER, false))
        .await
        .unwrap();
    let first = NewUser::new("judy", "h", ROLE_VIEWER, false);
    let dup = NewUser::new("ivan", "h", ROLE_VIEWER, false);
    let res: Result<(), DbError> = db_tx!(db, |c| {
        diesel::insert_into(schema::users::table)
            .values(&first)
            .execute(c)
            .await?;
        diesel::insert_into(schema::users::table)
            .values(&dup)
            .execute(c)
            .await?;
        Ok(())
    });
    assert!(res.unwrap_err().is_unique_violation());
    assert_eq!(users::get_by_username(db, "judy").await.unwrap(), None);
    // The connection that rolled back is healthy and reused.
    for _ in 0..8 {
        db.ping().await.unwrap();
    }
    users::create(db, NewUser::new("judy", "h", ROLE_VIEWER, false))
        .await
        .unwrap();
}

async fn migrate_again_is_noop(db: &Db) {
    assert_eq!(db.migrate().await.unwrap(), 0);
    assert_eq!(db.migrate().await.unwrap(), 0);
    // Tables are intact and usable after the no-op.
    users::create(db, NewUser::new("kim", "h", ROLE_VIEWER, false))
        .await
        .unwrap();
    assert_eq!(users::count(db).await.unwrap(), 1);
}

/// Pitfall 2: a future dropped inside a write transaction must not leave the write lock held
/// by a pooled connection. Without `TxGuard`, later SQLite writers each wait `busy_timeout`
/// (5 s) and then fail with "database is locked".
async fn dropped_transaction_does_not_block_writers(db: &Db) {
    // Fill the pool so idle connections queue up ahead of the one returned by the dropped
    // transaction (deadpool hands connections out FIFO).
    fill_pool(db).await;
    let doomed = NewUser::new("mallory", "h", ROLE_VIEWER, false);
    let res = tokio::time::timeout(Duration::from_millis(200), async {
        db_tx!(db, |c| {
            diesel::insert_into(schema::users::table)
                .values(&doomed)
                .execute(c)
                .await?;
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, DbError>(())
        })
    })
    .await;
    assert!(res.is_err(), "the transaction future should have timed out");

    // More writers than the pool has connections, one after another.
    for i in 0..(common::TEST_POOL_SIZE * 2) {
        let started = Instant::now();
        let name = format!("writer-{i}");
        let u = NewUser::new(name.clone(), "h", ROLE_VIEWER, false);
        db_tx!(db, |c| {
            diesel::insert_into(schema::users::table)
                .values(&u)
                .execute(c)
                .await?;
            Ok::<_, DbError>(())
        })
        .unwrap_or_else(|e| panic!("writer {i} failed after {:?}: {e}", started.elapsed()));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "writer {i} waited {:?} for a lock",
            started.elapsed()
        );
    }
    // The dropped transaction was rolled back.
    assert_eq!(users::get_by_username(db, "mallory").await.unwrap(), None);
    assert_eq!(
        users::count(db).await.unwrap(),
        (common::TEST_POOL_SIZE * 2) as i64
    );
}

/// A statement that keeps the database busy for a while (hundreds of ms).
async fn slow_statement<C: decnetd::db::AsAnyConn + ?Sized>(c: &mut C) -> Result<(), DbError> {
    use decnetd::db::AnyConnMut;
    match c.as_any_conn() {
        AnyConnMut::Sqlite(c) => {
            diesel::sql_query(
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1500000) \
                 SELECT count(*) FROM n",
            )
            .execute(c)
            .await?;
        }
        AnyConnMut::Pg(c) => {
            diesel::sql_query("SELECT pg_sleep(0.7)").execute(c).await?;
        }
    }
    Ok(())
}

/// Dropping a future while its query is running (client gone, timeout, SSE stream closed) on a
/// current-thread runtime, as actix workers are: no panic (diesel-async's default SQLite
/// spawner would `block_in_place` and panic here), the dropped transaction is rolled back, and
/// every later checkout gets a usable connection.
async fn cancelled_in_flight_queries_do_not_panic_or_poison_the_pool(db: &Db) {
    fill_pool(db).await;
    for _ in 0..2 {
        let res = tokio::time::timeout(Duration::from_millis(30), async {
            db_run!(db, |c| slow_statement(c).await)
        })
        .await;
        assert!(res.is_err(), "the query should still be running");
    }
    let doomed = NewUser::new("oscar", "h", ROLE_VIEWER, false);
    let res = tokio::time::timeout(Duration::from_millis(30), async {
        db_tx!(db, |c| {
            diesel::insert_into(schema::users::table)
                .values(&doomed)
                .execute(c)
                .await?;
            slow_statement(c).await
        })
    })
    .await;
    assert!(res.is_err(), "the transaction should still be running");

    for i in 0..(common::TEST_POOL_SIZE * 2) {
        let started = Instant::now();
        db.ping().await.unwrap();
        users::create(
            db,
            NewUser::new(format!("after-{i}"), "h", ROLE_VIEWER, false),
        )
        .await
        .unwrap_or_else(|e| panic!("write {i} failed after {:?}: {e}", started.elapsed()));
        assert!(
            started.elapsed() < Duration::from_millis(4500),
            "write {i} took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(users::get_by_username(db, "oscar").await.unwrap(), None);
    assert_eq!(
        users::count(db).await.unwrap(),
        (common::TEST_POOL_SIZE * 2) as i64
    );
}

/// Checks out every pooled connection at once so the pool is at its full size.
async fn fill_pool(db: &Db) {
    let mut handles = Vec::new();
    for _ in 0..common::TEST_POOL_SIZE {
        let db = db.clone();
        handles.push(tokio::spawn(async move {
            let db = &db;
            db_run!(db, |c| {
                diesel_async::SimpleAsyncConnection::batch_execute(c, "SELECT 1").await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, DbError>(())
            })
        }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
}

/// Read-then-write transactions from concurrent tasks: no busy errors, no lost updates
/// (SQLite `BEGIN IMMEDIATE` + `busy_timeout`, pitfall 3).
async fn concurrent_read_modify_write_transactions(db: &Db) {
    const TASKS: i64 = 8;
    const PER_TASK: i64 = 25;
    state::set(db, "counter", &json!({"n": 0})).await.unwrap();
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let db = db.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..PER_TASK {
                increment_counter(&db).await?;
            }
            Ok::<_, DbError>(())
        }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(
        state::get(db, "counter").await.unwrap(),
        Some(json!({"n": TASKS * PER_TASK}))
    );
    eprintln!(
        "[{:?}] {} read-modify-write transactions from {TASKS} tasks in {elapsed:?} ({:.0} tx/s)",
        db.backend(),
        TASKS * PER_TASK,
        (TASKS * PER_TASK) as f64 / elapsed.as_secs_f64()
    );
}

async fn increment_counter(db: &Db) -> Result<(), DbError> {
    use decnetd::db::{AnyConnMut, AsAnyConn};
    use schema::state::dsl as s;
    db_tx!(db, |c| {
        let q = s::state.find("counter").select(s::value);
        // Postgres needs the row lock for a read-then-write under READ COMMITTED; SQLite has no
        // FOR UPDATE (it does not compile there) and BEGIN IMMEDIATE already serializes writers.
        let v: decnetd::db::JsonText = match c.as_any_conn() {
            AnyConnMut::Sqlite(c) => q.first(c).await?,
            AnyConnMut::Pg(c) => q.for_update().first(c).await?,
        };
        let n = v.0["n"].as_i64().unwrap_or(0) + 1;
        diesel::update(s::state.find("counter"))
            .set(s::value.eq(decnetd::db::JsonText(json!({ "n": n }))))
            .execute(c)
            .await?;
        Ok(())
    })
}

/// Multi-row insert (pitfall 5) through `db_insert_batch!`, larger than one Postgres chunk.
async fn batch_insert_multi_row(db: &Db) {
    const N: usize = 2500;
    let now = now_utc();
    let rows: Vec<RevokedToken> = (0..N)
        .map(|i| RevokedToken {
            jti: format!("batch-{i:05}"),
            user_uuid: format!("user-{}", i % 7),
            expires_at: now + TimeDelta::hours(1),
            revoked_at: now,
        })
        .collect();
    let started = Instant::now();
    assert_eq!(tokens::insert_batch(db, rows.clone()).await.unwrap(), N);
    let elapsed = started.elapsed();
    eprintln!(
        "[{:?}] batch insert of {N} rows in one transaction: {elapsed:?} ({:.0} rows/s)",
        db.backend(),
        N as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(tokens::count(db).await.unwrap(), N as i64);
    assert!(tokens::is_revoked(db, "batch-02499").await.unwrap());
    assert_eq!(tokens::insert_batch(db, Vec::new()).await.unwrap(), 0);

    // A batch containing a duplicate fails as a whole and leaves nothing behind.
    let mut again: Vec<RevokedToken> = (0..10)
        .map(|i| RevokedToken {
            jti: format!("second-{i}"),
            ..rows[0].clone()
        })
        .collect();
    again.push(rows[0].clone());
    let err = tokens::insert_batch(db, again).await.unwrap_err();
    assert!(err.is_unique_violation(), "{err:?}");
    assert!(!tokens::is_revoked(db, "second-0").await.unwrap());
    assert_eq!(tokens::count(db).await.unwrap(), N as i64);
}

async fn ping_and_debug(db: &Db) {
    db.ping().await.unwrap();
    let shown = format!("{db:?}");
    assert!(shown.contains("backend"), "{shown}");
}

// ---- backend-specific cases ---------------------------------------------------------------

#[tokio::test]
async fn sqlite_fresh_database_applies_migrations_once() {
    let dir = tempfile::tempdir().unwrap();
    // The parent directories do not exist yet: connect creates them.
    let path = dir.path().join("nested/deeper/decnetd.db");
    let db = Db::connect(&format!("sqlite://{}", path.display()), 2)
        .await
        .unwrap();
    assert!(path.exists());
    assert!(db.migrate().await.unwrap() >= 1);
    assert_eq!(db.migrate().await.unwrap(), 0);
    // A second pool on the same file sees the schema and the same migration state.
    let again = Db::connect(&format!("sqlite://{}", path.display()), 2)
        .await
        .unwrap();
    assert_eq!(again.migrate().await.unwrap(), 0);
}

/// Runs `probe` on `TEST_POOL_SIZE` tasks at once and returns what each saw. A probe holds its
/// connection briefly (see the callers), so the pool hands out distinct connections.
async fn on_each_pooled_connection<T, F, Fut>(db: &Db, probe: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Db) -> Fut,
    Fut: std::future::Future<Output = Result<T, DbError>> + Send + 'static,
{
    let handles: Vec<_> = (0..common::TEST_POOL_SIZE)
        .map(|_| tokio::spawn(probe(db.clone())))
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap().unwrap());
    }
    out
}

#[tokio::test]
async fn sqlite_connections_use_wal_and_pragmas() {
    let (_dir, db) = common::sqlite_db().await;
    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    #[derive(QueryableByName)]
    struct Num {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        v: i32,
    }
    // Check several pooled connections, not just the first.
    let seen = on_each_pooled_connection(&db, |db| async move {
        let db = &db;
        db_run!(db, |c| {
            let mode: Mode = diesel::sql_query("PRAGMA journal_mode")
                .get_result(c)
                .await?;
            let fk: Num = diesel::sql_query("SELECT foreign_keys AS v FROM pragma_foreign_keys")
                .get_result(c)
                .await?;
            let bt: Num = diesel::sql_query("SELECT timeout AS v FROM pragma_busy_timeout")
                .get_result(c)
                .await?;
            let sync: Num = diesel::sql_query("SELECT synchronous AS v FROM pragma_synchronous")
                .get_result(c)
                .await?;
            let page: Num = diesel::sql_query("SELECT page_size AS v FROM pragma_page_size")
                .get_result(c)
                .await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, DbError>((mode.journal_mode, fk.v, bt.v, sync.v, page.v))
        })
    })
    .await;
    for (mode, fk, busy, sync, page) in seen {
        assert_eq!(page, 16384, "a database decnetd creates uses 16 KiB pages");
        assert_eq!(mode, "wal");
        assert_eq!(fk, 1);
        assert_eq!(busy, 5000);
        assert_eq!(sync, 1, "synchronous=NORMAL");
    }
}

/// Every pooled PostgreSQL connection plans each statement with its parameters: a generic
/// plan cached while a table was empty turns the batch's key probe into a sequential scan.
#[tokio::test]
async fn postgres_connections_never_reuse_generic_plans() {
    let Some(db) = common::pg_db().await else {
        return;
    };
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        plan_cache_mode: String,
    }
    let seen = on_each_pooled_connection(&db, |db| async move {
        let db = &db;
        db_run!(db, |c| {
            let s: Setting = diesel::sql_query("SHOW plan_cache_mode")
                .get_result(c)
                .await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, DbError>(s.plan_cache_mode)
        })
    })
    .await;
    assert_eq!(seen.len(), common::TEST_POOL_SIZE);
    assert!(seen.iter().all(|m| m == "force_custom_plan"), "{seen:?}");
}

/// Pitfall 1: connections created while serving a short-lived runtime must keep working after
/// that runtime is gone (they are established on the runtime that called `connect`).
#[test]
fn sqlite_connections_survive_the_runtime_that_requested_them() {
    let home = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (_dir, db) = home.block_on(common::sqlite_db_with_pool(4));
    // A worker runtime (like an actix worker) grows the pool, then dies.
    {
        let worker = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        worker.block_on(async {
            let mut handles = Vec::new();
            for i in 0..4 {
                let db = db.clone();
                handles.push(tokio::spawn(async move {
                    state::set(&db, &format!("k{i}"), &json!(i)).await?;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, DbError>(())
                }));
            }
            for h in handles {
                h.await.unwrap().unwrap();
            }
        });
    }
    // Another short-lived runtime uses the pooled connections.
    let worker = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    worker.block_on(async {
        for i in 0..16 {
            assert_eq!(
                state::get(&db, &format!("k{}", i % 4)).await.unwrap(),
                Some(json!(i % 4))
            );
        }
    });
    drop(worker);
    drop(db);
}

#[tokio::test]
async fn postgres_fresh_database_applies_migrations_once() {
    let Some(url) = common::pg_database_url().await else {
        return;
    };
    let db = Db::connect(&url, 2).await.unwrap();
    assert!(db.migrate().await.unwrap() >= 1);
    assert_eq!(db.migrate().await.unwrap(), 0);
}

#[tokio::test]
async fn connect_rejects_bad_urls() {
    for url in [
        "",
        "mysql://x",
        "sqlite://",
        "sqlite://:memory:",
        "/tmp/x.db",
    ] {
        let err = Db::connect(url, 1).await.unwrap_err();
        assert!(matches!(err, DbError::InvalidUrl(_)), "{url}: {err:?}");
    }
    // Nothing listens on port 1: a clear Connect error, and the password is not echoed.
    let err = Db::connect("postgres://u:s3cret@127.0.0.1:1/db", 1)
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Connect(_)), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    let err = Db::connect("mysql://u:s3cret@h/db", 1).await.unwrap_err();
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

/// Pitfall 4: migrations must also run under actix-rt's current-thread runtime.
#[actix_rt::test]
async fn migrations_run_under_actix_rt() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/a.db", dir.path().display()), 2)
        .await
        .unwrap();
    assert!(db.migrate().await.unwrap() >= 1);
    users::create(&db, NewUser::new("actix", "h", ROLE_VIEWER, false))
        .await
        .unwrap();
    if let Some(url) = common::pg_database_url().await {
        let pg = Db::connect(&url, 2).await.unwrap();
        assert!(pg.migrate().await.unwrap() >= 1);
        assert_eq!(pg.migrate().await.unwrap(), 0);
        users::create(&pg, NewUser::new("actix", "h", ROLE_VIEWER, false))
            .await
            .unwrap();
    }
}

/// A writer blocked by another process's write lock waits `busy_timeout` (5 s), then fails
/// with an error that `is_busy()` recognizes.
#[tokio::test]
async fn sqlite_lock_contention_is_busy_after_timeout() {
    use diesel::connection::SimpleConnection;
    let (dir, db) = common::sqlite_db().await;
    let path = dir.path().join("decnetd.db");
    let mut other = diesel::SqliteConnection::establish(&path.display().to_string()).unwrap();
    other.batch_execute("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let err = state::set(&db, "k", &json!(1)).await.unwrap_err();
    assert!(err.is_busy(), "{err:?}");
    assert!(!err.is_unique_violation());
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    other.batch_execute("ROLLBACK").unwrap();
    state::set(&db, "k", &json!(1)).await.unwrap();
}

//! Webhook subscriptions (platform.md §5.1/§5.3) and the durable outbox: deliveries written
//! before their first attempt (unique per subscription and event), their attempts, dead
//! letters (status `dead`), replay and pruning.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::models::webhooks::{
    Attempt, AttemptRecord, Delivery, NewDelivery, RecordOutcome, Subscription,
    SubscriptionChanges, DEAD, DELIVERED, PENDING,
};
use crate::db::schema::{webhook_attempts, webhook_deliveries, webhook_subscriptions};
use crate::db::{AnyConnMut, AsAnyConn, Db, DbError, PG_BATCH_ROWS};
use crate::domain::webhook::Breaker;
use crate::{db_run, db_tx};

use webhook_deliveries::dsl as d;
use webhook_subscriptions::dsl as s;

/// Insert a subscription; a taken name is a unique violation.
pub async fn create(db: &Db, row: Subscription) -> Result<Subscription, DbError> {
    db_run!(db, |c| diesel::insert_into(webhook_subscriptions::table)
        .values(&row)
        .execute(c)
        .await)?;
    Ok(row)
}

/// Every subscription, oldest first.
pub async fn list(db: &Db) -> Result<Vec<Subscription>, DbError> {
    Ok(db_run!(db, |c| webhook_subscriptions::table
        .order((s::created_at.asc(), s::uuid.asc()))
        .select(Subscription::as_select())
        .load(c)
        .await)?)
}

/// One subscription.
pub async fn get(db: &Db, uuid: &str) -> Result<Option<Subscription>, DbError> {
    Ok(db_run!(db, |c| webhook_subscriptions::table
        .find(uuid)
        .select(Subscription::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Whether `name` belongs to a subscription other than `except`.
pub async fn name_taken(db: &Db, name: &str, except: Option<&str>) -> Result<bool, DbError> {
    let except = except.unwrap_or_default().to_owned();
    let n: i64 = db_run!(db, |c| webhook_subscriptions::table
        .filter(s::name.eq(name))
        .filter(s::uuid.ne(&except))
        .count()
        .get_result(c)
        .await)?;
    Ok(n > 0)
}

/// Apply a change set; the updated row, or `None` when absent.
pub async fn update(
    db: &Db,
    uuid: &str,
    changes: SubscriptionChanges,
) -> Result<Option<Subscription>, DbError> {
    db_tx!(db, |c| {
        let n = diesel::update(webhook_subscriptions::table.find(uuid))
            .set(&changes)
            .execute(c)
            .await?;
        if n == 0 {
            return Ok(None);
        }
        Ok(webhook_subscriptions::table
            .find(uuid)
            .select(Subscription::as_select())
            .first(c)
            .await
            .optional()?)
    })
}

/// Delete a subscription (its deliveries and attempts go with it); whether it existed.
pub async fn delete(db: &Db, uuid: &str) -> Result<bool, DbError> {
    let n = db_run!(db, |c| diesel::delete(
        webhook_subscriptions::table.find(uuid)
    )
    .execute(c)
    .await)?;
    Ok(n > 0)
}

/// Subscriptions whose events are recorded: enabled ones and those paused by the breaker
/// (their deliveries wait in the outbox until an admin re-enables them). Admin-paused rows
/// (disabled, no breaker stamp) record nothing.
pub async fn list_recording(db: &Db) -> Result<Vec<Subscription>, DbError> {
    Ok(db_run!(db, |c| webhook_subscriptions::table
        .filter(s::enabled.eq(true).or(s::auto_disabled_at.is_not_null()))
        .order(s::created_at.asc())
        .select(Subscription::as_select())
        .load(c)
        .await)?)
}

/// Write deliveries (one transaction); a (subscription, event) already present is skipped.
/// Returns how many rows were new.
pub async fn enqueue(db: &Db, rows: Vec<NewDelivery>) -> Result<usize, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    // One blocking hop for the whole batch on SQLite (a hop per row cost ~30 µs a row and
    // held the write lock that long), multi-row statements on PostgreSQL.
    db_tx!(db, |c| {
        let n = match c.as_any_conn() {
            AnyConnMut::Sqlite(conn) => {
                conn.spawn_blocking(move |sync| {
                    let mut inserted = 0;
                    for row in &rows {
                        inserted += diesel::RunQueryDsl::execute(
                            diesel::insert_into(webhook_deliveries::table)
                                .values(row)
                                .on_conflict((d::subscription_uuid, d::event_id))
                                .do_nothing(),
                            sync,
                        )?;
                    }
                    Ok(inserted)
                })
                .await?
            }
            AnyConnMut::Pg(conn) => {
                let mut inserted = 0;
                for chunk in rows.chunks(PG_BATCH_ROWS) {
                    inserted += diesel::insert_into(webhook_deliveries::table)
                        .values(chunk)
                        .on_conflict((d::subscription_uuid, d::event_id))
                        .do_nothing()
                        .execute(&mut *conn)
                        .await?;
                }
                inserted
            }
        };
        Ok(n)
    })
}

/// Pending deliveries of enabled subscriptions due at `now`, oldest due first, at most
/// `limit`, leaving out `exclude` (in flight), each with its subscription.
pub async fn due(
    db: &Db,
    now: NaiveDateTime,
    limit: i64,
    exclude: Vec<i64>,
) -> Result<Vec<(Delivery, Subscription)>, DbError> {
    Ok(db_run!(db, |c| webhook_deliveries::table
        .inner_join(webhook_subscriptions::table)
        .filter(d::status.eq(PENDING))
        .filter(d::next_attempt_at.le(now))
        .filter(s::enabled.eq(true))
        .filter(diesel::dsl::not(d::id.eq_any(&exclude)))
        .order((d::next_attempt_at.asc(), d::id.asc()))
        .limit(limit)
        .select((Delivery::as_select(), Subscription::as_select()))
        .load(c)
        .await)?)
}

/// Earliest `next_attempt_at` of a pending delivery of an enabled subscription.
pub async fn next_due(db: &Db) -> Result<Option<NaiveDateTime>, DbError> {
    Ok(db_run!(db, |c| webhook_deliveries::table
        .inner_join(webhook_subscriptions::table)
        .filter(d::status.eq(PENDING))
        .filter(s::enabled.eq(true))
        .select(diesel::dsl::min(d::next_attempt_at))
        .get_result(c)
        .await)?)
}

/// The statements of [`record_many`], written once for the sync SQLite connection and the
/// async PostgreSQL one (`await` given for the latter). Uses `?` on diesel errors and
/// evaluates to the outcomes, one per record, in order.
macro_rules! record_body {
    ($c:expr, $recs:expr, $breaker:expr, $now:expr $(, $aw:ident)?) => {{
        use webhook_attempts::dsl as a;
        let (breaker, now): (Breaker, NaiveDateTime) = ($breaker, $now);
        let c = $c;
        let mut outcomes = Vec::new();
        for rec in $recs {
            let tried = i32::from(rec.attempt.is_some());
            if let Some(att) = &rec.attempt {
                diesel::insert_into(webhook_attempts::table)
                    .values((
                        a::delivery_id.eq(att.delivery_id),
                        a::attempt.eq(att.attempt),
                        a::status_code.eq(att.status_code),
                        a::error.eq(&att.error),
                        a::duration_ms.eq(att.duration_ms),
                        a::attempted_at.eq(att.attempted_at),
                    ))
                    .execute(&mut *c)
                    $(.$aw)??;
            }
            let delivered_at = (rec.status == DELIVERED).then_some(now);
            let n = diesel::update(webhook_deliveries::table.find(rec.delivery_id))
                .set((
                    d::status.eq(rec.status),
                    d::attempts.eq(d::attempts + tried),
                    d::next_attempt_at.eq(rec.next_attempt_at),
                    d::last_status_code.eq(rec.status_code),
                    d::last_error.eq(&rec.error),
                    d::updated_at.eq(now),
                    d::delivered_at.eq(delivered_at),
                ))
                .execute(&mut *c)
                $(.$aw)??;
            let mut out = RecordOutcome::default();
            if n == 0 {
                outcomes.push(out); // the subscription was deleted meanwhile
                continue;
            }
            let sub = webhook_subscriptions::table.find(&rec.subscription_uuid);
            if rec.status == DELIVERED {
                diesel::update(sub)
                    .set((
                        s::consecutive_failures.eq(breaker.on_success().consecutive_failures),
                        s::last_success_at.eq(Some(now)),
                        s::last_error.eq(None::<String>),
                    ))
                    .execute(&mut *c)
                    $(.$aw)??;
            } else if rec.status == DEAD {
                let (failures, enabled): (i32, bool) = diesel::update(sub)
                    .set((
                        s::consecutive_failures.eq(s::consecutive_failures + 1),
                        s::last_failure_at.eq(Some(now)),
                        s::last_error.eq(&rec.error),
                    ))
                    .returning((s::consecutive_failures, s::enabled))
                    .get_result(&mut *c)
                    $(.$aw)??;
                if enabled && breaker.on_failure(failures - 1).trip {
                    diesel::update(sub)
                        .set((s::enabled.eq(false), s::auto_disabled_at.eq(Some(now))))
                        .execute(&mut *c)
                        $(.$aw)??;
                    out.tripped = true;
                }
            }
            outcomes.push(out);
        }
        outcomes
    }};
}

/// Record a batch of attempts in ONE transaction (the dispatcher group-commits them, so that
/// it holds at most one write transaction however many deliveries finish at once), in order,
/// with, for each delivery that ended, the subscription's bookkeeping (§5.6): success resets
/// the failure count; a dead delivery increments it and opens the breaker at the threshold
/// (disable + `auto_disabled_at`). Returns one outcome per record, in the same order.
pub async fn record_many(
    db: &Db,
    recs: Vec<AttemptRecord>,
    breaker: Breaker,
    now: NaiveDateTime,
) -> Result<Vec<RecordOutcome>, DbError> {
    if recs.is_empty() {
        return Ok(Vec::new());
    }
    db_tx!(db, |c| {
        let out = match c.as_any_conn() {
            // One blocking hop for the whole batch (see `enqueue`).
            AnyConnMut::Sqlite(conn) => {
                conn.spawn_blocking(move |sync| sync_body::record(sync, &recs, breaker, now))
                    .await?
            }
            AnyConnMut::Pg(conn) => record_body!(&mut *conn, &recs, breaker, now, await),
        };
        Ok(out)
    })
}

/// [`record_body!`] expanded for sync diesel (its `RunQueryDsl`, not diesel-async's).
mod sync_body {
    use chrono::NaiveDateTime;
    use diesel::prelude::*;

    use crate::db::models::webhooks::{AttemptRecord, RecordOutcome, DEAD, DELIVERED};
    use crate::db::schema::{webhook_attempts, webhook_deliveries, webhook_subscriptions};
    use crate::domain::webhook::Breaker;
    use webhook_deliveries::dsl as d;
    use webhook_subscriptions::dsl as s;

    pub(super) fn record(
        c: &mut SqliteConnection,
        recs: &[AttemptRecord],
        breaker: Breaker,
        now: NaiveDateTime,
    ) -> QueryResult<Vec<RecordOutcome>> {
        Ok(record_body!(c, recs, breaker, now))
    }
}

/// Deliveries of a subscription, newest first, optionally of one status.
pub async fn list_deliveries(
    db: &Db,
    sub: &str,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<Delivery>), DbError> {
    let status = status.map(str::to_owned);
    let total: i64 = db_run!(db, |c| {
        let mut q = webhook_deliveries::table
            .filter(d::subscription_uuid.eq(sub))
            .into_boxed();
        if let Some(st) = &status {
            q = q.filter(d::status.eq(st.clone()));
        }
        q.count().get_result(c).await
    })?;
    let rows = db_run!(db, |c| {
        let mut q = webhook_deliveries::table
            .filter(d::subscription_uuid.eq(sub))
            .into_boxed();
        if let Some(st) = &status {
            q = q.filter(d::status.eq(st.clone()));
        }
        q.order(d::id.desc())
            .limit(limit)
            .offset(offset)
            .select(Delivery::as_select())
            .load(c)
            .await
    })?;
    Ok((total, rows))
}

/// One delivery of a subscription with its attempts (oldest first).
pub async fn get_delivery(
    db: &Db,
    sub: &str,
    id: i64,
) -> Result<Option<(Delivery, Vec<Attempt>)>, DbError> {
    use webhook_attempts::dsl as a;
    db_tx!(db, |c| {
        let Some(del) = webhook_deliveries::table
            .find(id)
            .filter(d::subscription_uuid.eq(sub))
            .select(Delivery::as_select())
            .first(c)
            .await
            .optional()?
        else {
            return Ok(None);
        };
        let attempts = webhook_attempts::table
            .filter(a::delivery_id.eq(id))
            .order(a::id.asc())
            .select(Attempt::as_select())
            .load(c)
            .await?;
        Ok(Some((del, attempts)))
    })
}

/// Put deliveries back in the queue, due now, with a fresh attempt budget: every dead letter
/// of `sub`, or the one delivery `id` (dead or delivered). Returns how many were requeued.
pub async fn replay(
    db: &Db,
    sub: &str,
    id: Option<i64>,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    Ok(db_run!(db, |c| {
        let mut q = diesel::update(webhook_deliveries::table)
            .filter(d::subscription_uuid.eq(sub))
            .into_boxed();
        q = match id {
            Some(id) => q.filter(d::id.eq(id)).filter(d::status.ne(PENDING)),
            None => q.filter(d::status.eq(DEAD)),
        };
        q.set((
            d::status.eq(PENDING),
            d::attempts.eq(0),
            d::next_attempt_at.eq(now),
            d::updated_at.eq(now),
            d::delivered_at.eq(None::<NaiveDateTime>),
        ))
        .execute(c)
        .await
    })?)
}

/// Delete delivered rows delivered before `before` (attempts go with them).
pub async fn prune_delivered(db: &Db, before: NaiveDateTime) -> Result<usize, DbError> {
    Ok(db_run!(db, |c| diesel::delete(
        webhook_deliveries::table
            .filter(d::status.eq(DELIVERED))
            .filter(d::delivered_at.lt(before))
    )
    .execute(c)
    .await)?)
}

/// Outbox size by status: (pending, delivered, dead).
pub async fn outbox_counts(db: &Db) -> Result<(i64, i64, i64), DbError> {
    let rows: Vec<(String, i64)> = db_run!(db, |c| webhook_deliveries::table
        .group_by(d::status)
        .select((d::status, diesel::dsl::count_star()))
        .load(c)
        .await)?;
    let get = |k: &str| {
        rows.iter()
            .find(|(s, _)| s == k)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    Ok((get(PENDING), get(DELIVERED), get(DEAD)))
}

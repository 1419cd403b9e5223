//! Revoked JWT ids (platform spec §3.1).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::models::RevokedToken;
use crate::db::schema::revoked_tokens;
use crate::db::{now_utc, Db, DbError};
use crate::{db_insert_batch, db_run, db_tx};

/// Revokes `jti` until `expires_at` (the token's `exp`, UTC). First purges rows whose
/// `expires_at` is in the past; revoking an already revoked jti is a no-op.
pub async fn revoke(
    db: &Db,
    jti: &str,
    user_uuid: &str,
    expires_at: NaiveDateTime,
) -> Result<(), DbError> {
    let now = now_utc();
    let row = RevokedToken {
        jti: jti.to_owned(),
        user_uuid: user_uuid.to_owned(),
        expires_at,
        revoked_at: now,
    };
    db_tx!(db, |c| {
        diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.lt(now)))
            .execute(c)
            .await?;
        diesel::insert_into(revoked_tokens::table)
            .values(&row)
            .on_conflict(revoked_tokens::jti)
            .do_nothing()
            .execute(c)
            .await?;
        Ok(())
    })
}

/// Whether `jti` has been revoked.
pub async fn is_revoked(db: &Db, jti: &str) -> Result<bool, DbError> {
    Ok(db_run!(db, |c| diesel::select(diesel::dsl::exists(
        revoked_tokens::table.find(jti)
    ))
    .get_result(c)
    .await)?)
}

/// Inserts many revocations in one transaction (multi-row insert on both backends; a duplicate
/// jti fails the whole batch). Returns the number of rows inserted. This is also the reference
/// example of [`db_insert_batch!`](crate::db_insert_batch) for other repositories.
pub async fn insert_batch(db: &Db, rows: Vec<RevokedToken>) -> Result<usize, DbError> {
    db_tx!(db, |c| Ok(db_insert_batch!(
        c,
        revoked_tokens::table,
        rows
    )?))
}

/// Number of stored revocations (including expired rows not yet purged).
pub async fn count(db: &Db) -> Result<i64, DbError> {
    Ok(db_run!(db, |c| revoked_tokens::table
        .count()
        .get_result(c)
        .await)?)
}

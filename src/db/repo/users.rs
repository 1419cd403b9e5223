//! Users (platform spec §3.1).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::models::{NewUser, User};
use crate::db::schema::users;
use crate::db::{Db, DbError};
use crate::db_run;

/// The user with this username, if any.
pub async fn get_by_username(db: &Db, username: &str) -> Result<Option<User>, DbError> {
    Ok(db_run!(db, |c| users::table
        .filter(users::username.eq(username))
        .select(User::as_select())
        .first(c)
        .await
        .optional())?)
}

/// The user with this uuid, if any.
pub async fn get_by_uuid(db: &Db, uuid: &str) -> Result<Option<User>, DbError> {
    Ok(db_run!(db, |c| users::table
        .find(uuid)
        .select(User::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Inserts a user and returns the stored row. A taken username (or uuid) fails with an error
/// for which [`DbError::is_unique_violation`] is true.
pub async fn create(db: &Db, new: NewUser) -> Result<User, DbError> {
    Ok(db_run!(db, |c| diesel::insert_into(users::table)
        .values(&new)
        .returning(User::as_returning())
        .get_result(c)
        .await)?)
}

/// Replaces the password hash and sets `must_change_password`. Returns whether the user exists.
pub async fn update_password(
    db: &Db,
    uuid: &str,
    password_hash: &str,
    must_change_password: bool,
) -> Result<bool, DbError> {
    let n = db_run!(db, |c| diesel::update(users::table.find(uuid))
        .set((
            users::password_hash.eq(password_hash),
            users::must_change_password.eq(must_change_password),
        ))
        .execute(c)
        .await)?;
    Ok(n > 0)
}

/// All users, ordered by username.
pub async fn list(db: &Db) -> Result<Vec<User>, DbError> {
    Ok(db_run!(db, |c| users::table
        .select(User::as_select())
        .order(users::username.asc())
        .load(c)
        .await)?)
}

/// Deletes a user; returns whether a row existed.
pub async fn delete(db: &Db, uuid: &str) -> Result<bool, DbError> {
    let n = db_run!(db, |c| diesel::delete(users::table.find(uuid))
        .execute(c)
        .await)?;
    Ok(n > 0)
}

/// Sets the role (`admin`|`viewer`; anything else violates a CHECK constraint). Returns
/// whether the user exists. Revoking the user's tokens is the caller's job
/// ([`set_tokens_valid_from`]).
pub async fn update_role(db: &Db, uuid: &str, role: &str) -> Result<bool, DbError> {
    let n = db_run!(db, |c| diesel::update(users::table.find(uuid))
        .set(users::role.eq(role))
        .execute(c)
        .await)?;
    Ok(n > 0)
}

/// Sets the bulk-revocation cutoff (tokens issued before `at` are invalid). Returns whether
/// the user exists. Pass a value from [`crate::db::now_utc`].
pub async fn set_tokens_valid_from(
    db: &Db,
    uuid: &str,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    let n = db_run!(db, |c| diesel::update(users::table.find(uuid))
        .set(users::tokens_valid_from.eq(Some(at)))
        .execute(c)
        .await)?;
    Ok(n > 0)
}

/// Number of users.
pub async fn count(db: &Db) -> Result<i64, DbError> {
    Ok(db_run!(db, |c| users::table.count().get_result(c).await)?)
}

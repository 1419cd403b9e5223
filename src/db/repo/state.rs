//! The `state` key/value table (intake spec §5.7): small JSON documents such as worker cursors.

use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::db::models::StateEntry;
use crate::db::schema::state;
use crate::db::{Db, DbError, JsonText};
use crate::db_run;

/// The value stored under `key`, if any.
pub async fn get(db: &Db, key: &str) -> Result<Option<serde_json::Value>, DbError> {
    let v: Option<JsonText> = db_run!(db, |c| state::table
        .find(key)
        .select(state::value)
        .first::<JsonText>(c)
        .await
        .optional())?;
    Ok(v.map(JsonText::into_inner))
}

/// Stores `value` under `key`, replacing any previous value.
pub async fn set(db: &Db, key: &str, value: &serde_json::Value) -> Result<(), DbError> {
    let row = StateEntry {
        key: key.to_owned(),
        value: JsonText(value.clone()),
    };
    db_run!(db, |c| diesel::insert_into(state::table)
        .values(&row)
        .on_conflict(state::key)
        .do_update()
        .set(state::value.eq(excluded(state::value)))
        .execute(c)
        .await)?;
    Ok(())
}

/// Removes `key`; returns whether it existed.
pub async fn delete(db: &Db, key: &str) -> Result<bool, DbError> {
    let n = db_run!(db, |c| diesel::delete(state::table.find(key))
        .execute(c)
        .await)?;
    Ok(n > 0)
}

//! Counters behind the dashboard's `/stream` firehose (landing page cards, Live Logs).

use diesel::dsl::max;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::{attackers, logs};
use crate::db::{Db, DbError};
use crate::db_run;

/// `(total log rows, distinct attacker observations)`.
pub async fn stream_counts(db: &Db) -> Result<(i64, i64), DbError> {
    Ok(db_run!(db, |c| {
        let total: i64 = logs::table.count().get_result(c).await?;
        let attackers: i64 = attackers::table.count().get_result(c).await?;
        (total, attackers)
    }))
}

/// Highest log id (0 when the table is empty).
pub async fn max_log_id(db: &Db) -> Result<i64, DbError> {
    let id: Option<i64> = db_run!(db, |c| logs::table.select(max(logs::id)).first(c).await)?;
    Ok(id.unwrap_or(0))
}

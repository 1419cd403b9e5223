//! Counters behind the dashboard's `/stream` firehose (landing page cards, Live Logs).

use chrono::NaiveDateTime;
use diesel::dsl::max;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::{attackers, logs};
use crate::db::{Db, DbError};
use crate::db_run;

/// `(total log rows, distinct attacker observations)`, through [`Db::totals`] (every open
/// stream asks every few seconds; the stamps are the newest log id and the newest attacker
/// `updated_at`, which move with every insert).
pub async fn stream_counts(db: &Db) -> Result<(i64, i64), DbError> {
    let (log_stamp, attacker_stamp): (Option<i64>, Option<NaiveDateTime>) = db_run!(db, |c| {
        let l: Option<i64> = logs::table.select(max(logs::id)).first(c).await?;
        let a: Option<NaiveDateTime> = attackers::table
            .select(max(attackers::updated_at))
            .first(c)
            .await?;
        (l, a)
    });
    let total = db
        .totals()
        .get("stream:logs", format!("{log_stamp:?}"), || async {
            Ok(db_run!(db, |c| logs::table
                .count()
                .get_result::<i64>(c)
                .await)?)
        })
        .await?;
    let attackers = db
        .totals()
        .get(
            "stream:attackers",
            format!("{attacker_stamp:?}"),
            || async {
                Ok(db_run!(db, |c| attackers::table
                    .count()
                    .get_result::<i64>(c)
                    .await)?)
            },
        )
        .await?;
    Ok((total, attackers))
}

/// Highest log id (0 when the table is empty).
pub async fn max_log_id(db: &Db) -> Result<i64, DbError> {
    let id: Option<i64> = db_run!(db, |c| logs::table.select(max(logs::id)).first(c).await)?;
    Ok(id.unwrap_or(0))
}

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

/// A table whose stamp (an indexed `max` that moves with every insert and update) validates a
/// cached API page (see `http::pages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stamp {
    /// Newest log id.
    Logs,
    /// Newest attacker `updated_at`.
    Attackers,
    /// Newest credential `touched_seq`.
    Credentials,
    /// Newest reuse-finding `updated_at`.
    CredentialReuse,
    /// Newest identity `updated_at` (merges and campaign links move it).
    Identities,
    /// Newest campaign `updated_at`.
    Campaigns,
    /// Newest tagged log id (the tagger follows the log table in id order).
    TtpTags,
}

/// The stamps of `tables`, in one string (one indexed probe per table, one connection).
pub async fn stamps(db: &Db, tables: &[Stamp]) -> Result<String, DbError> {
    use crate::db::schema::{
        attacker_identities, campaigns, credential_reuse, credentials, ttp_tags,
    };
    use std::fmt::Write;
    Ok(db_run!(db, |c| {
        let mut out = String::new();
        for t in tables {
            match t {
                Stamp::Logs => {
                    let v: Option<i64> = logs::table.select(max(logs::id)).first(c).await?;
                    let _ = write!(out, "l{v:?}|");
                }
                Stamp::Attackers => {
                    let v: Option<NaiveDateTime> = attackers::table
                        .select(max(attackers::updated_at))
                        .first(c)
                        .await?;
                    let _ = write!(out, "a{v:?}|");
                }
                Stamp::Credentials => {
                    let v: Option<i64> = credentials::table
                        .select(max(credentials::touched_seq))
                        .first(c)
                        .await?;
                    let _ = write!(out, "c{v:?}|");
                }
                Stamp::CredentialReuse => {
                    let v: Option<NaiveDateTime> = credential_reuse::table
                        .select(max(credential_reuse::updated_at))
                        .first(c)
                        .await?;
                    let _ = write!(out, "r{v:?}|");
                }
                Stamp::Identities => {
                    let v: Option<NaiveDateTime> = attacker_identities::table
                        .select(max(attacker_identities::updated_at))
                        .first(c)
                        .await?;
                    let _ = write!(out, "i{v:?}|");
                }
                Stamp::Campaigns => {
                    let v: Option<NaiveDateTime> = campaigns::table
                        .select(max(campaigns::updated_at))
                        .first(c)
                        .await?;
                    let _ = write!(out, "k{v:?}|");
                }
                Stamp::TtpTags => {
                    let v: Option<i64> = ttp_tags::table
                        .select(max(ttp_tags::log_id))
                        .first(c)
                        .await?;
                    let _ = write!(out, "t{v:?}|");
                }
            }
        }
        out
    }))
}

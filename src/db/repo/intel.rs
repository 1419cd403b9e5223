//! intel repository: `attacker_intel` reads, the per-pass upsert, and the "who needs
//! enriching" query.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use diesel_async::RunQueryDsl;

use crate::db::models::intel::{new_intel_uuid, to_db_time, AttackerIntel};
use crate::db::schema::attacker_intel;
use crate::db::{Backend, Db, DbError};
use crate::db_run;
use crate::db_tx;
use crate::domain::intel::{merge_pass, skipped_pass, PassResult, ProviderReport};

/// An attacker the Enricher should look at.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct IntelTarget {
    #[diesel(sql_type = Text)]
    pub uuid: String,
    #[diesel(sql_type = Text)]
    pub ip: String,
}

// Raw SQL keeps this module independent of the `attackers` table's diesel declaration (owned
// by the intake schema); only `uuid`, `ip` and `last_seen` of §5.5 are used.
const PENDING_SQLITE: &str = "SELECT a.uuid AS uuid, a.ip AS ip FROM attackers a \
     LEFT JOIN attacker_intel i ON i.attacker_uuid = a.uuid \
     WHERE i.uuid IS NULL OR i.expires_at < ? \
     ORDER BY a.last_seen DESC, a.uuid LIMIT ?";
const PENDING_PG: &str = "SELECT a.uuid AS uuid, a.ip AS ip FROM attackers a \
     LEFT JOIN attacker_intel i ON i.attacker_uuid = a.uuid \
     WHERE i.uuid IS NULL OR i.expires_at < $1 \
     ORDER BY a.last_seen DESC, a.uuid LIMIT $2";

/// Attackers with no intel row or an expired one (`expires_at < now`), most recently seen
/// first, at most `limit`.
pub async fn pending(db: &Db, now: DateTime<Utc>, limit: i64) -> Result<Vec<IntelTarget>, DbError> {
    let sql = match db.backend() {
        Backend::Sqlite => PENDING_SQLITE,
        Backend::Postgres => PENDING_PG,
    };
    let now = to_db_time(now);
    Ok(db_run!(db, |c| diesel::sql_query(sql)
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(limit)
        .load::<IntelTarget>(c)
        .await)?)
}

/// The intel row of an attacker, if any.
pub async fn get_by_attacker(
    db: &Db,
    attacker_uuid: &str,
) -> Result<Option<AttackerIntel>, DbError> {
    Ok(db_run!(db, |c| attacker_intel::table
        .filter(attacker_intel::attacker_uuid.eq(attacker_uuid))
        .select(AttackerIntel::as_select())
        .first(c)
        .await
        .optional())?)
}

/// What to fold into an attacker's row.
#[derive(Debug, Clone)]
pub enum PassInput {
    /// This pass's successful provider answers (possibly none: every provider failed).
    Answers(Vec<ProviderReport>),
    /// Nobody was asked (e.g. a private address).
    Skipped,
}

/// Fold one pass into the attacker's row in one transaction: read the previous row, merge
/// ([`merge_pass`]: failed providers keep their columns, the aggregate is recomputed over the
/// merged row, all-failed retries after `retry_backoff`), then insert or update. The row keeps
/// its uuid across passes. Returns the stored row and the merge result.
pub async fn record_pass(
    db: &Db,
    attacker_uuid: &str,
    attacker_ip: &str,
    input: PassInput,
    now: DateTime<Utc>,
    ttl: TimeDelta,
    retry_backoff: TimeDelta,
) -> Result<(AttackerIntel, PassResult), DbError> {
    let attacker_uuid = attacker_uuid.to_owned();
    let attacker_ip = attacker_ip.to_owned();
    db_tx!(db, |c| {
        let previous: Option<AttackerIntel> = attacker_intel::table
            .filter(attacker_intel::attacker_uuid.eq(&attacker_uuid))
            .select(AttackerIntel::as_select())
            .first(c)
            .await
            .optional()?;
        let prev_fields = match &previous {
            Some(row) => Some((row.fields()?, row.cached_at.and_utc())),
            None => None,
        };
        let prev_ref = prev_fields.as_ref().map(|(f, at)| (f, *at));
        let result = match &input {
            PassInput::Answers(reports) => merge_pass(prev_ref, reports, now, ttl, retry_backoff),
            PassInput::Skipped => skipped_pass(prev_ref, now, ttl),
        };
        let uuid = previous
            .as_ref()
            .map_or_else(new_intel_uuid, |row| row.uuid.clone());
        let row = AttackerIntel::from_fields(
            uuid,
            &attacker_uuid,
            &attacker_ip,
            &result.fields,
            result.cached_at,
            result.expires_at,
        )?;
        if previous.is_some() {
            diesel::update(attacker_intel::table.filter(attacker_intel::uuid.eq(&row.uuid)))
                .set(&row)
                .execute(c)
                .await?;
        } else {
            diesel::insert_into(attacker_intel::table)
                .values(&row)
                .execute(c)
                .await?;
        }
        Ok::<_, DbError>((row, result))
    })
}

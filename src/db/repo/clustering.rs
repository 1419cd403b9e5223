//! clustering repository (spec clustering.md §2.4): the clusterers' reads, the one-transaction
//! application of a tick plan, the maintenance writes (roll-ups, counts, evidence), and the
//! read side of the identity and campaign routes.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable};
use diesel_async::RunQueryDsl;

use crate::db::models::clustering::{
    Campaign, CampaignEvidenceRow, Identity, IdentityEvidenceRow, IdentityMaintenance, NewCampaign,
    NewCampaignEvidence, NewIdentity, NewIdentityEvidence, NewObservation, ObservationRecord,
};
use crate::db::schema::clustering::observation_view::attackers;
use crate::db::schema::{attacker_identities, campaign_evidence, campaigns, identity_evidence};
use crate::db::{AnyConnMut, AsAnyConn, Db, DbError};
use crate::domain::clustering::chain::{walk_chain, ChainWalk, MAX_MERGE_HOPS};
use crate::domain::clustering::tick::{IdentityRow, ObservationRow};
use crate::{db_insert_batch, db_run, db_tx};

/// Rows per `IN (…)` list of a bulk FK update.
const IN_CHUNK: usize = 500;

/// One observation as the identity tick reads it, with the times used for the identity's
/// first/last seen.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusteringObservation {
    pub row: ObservationRow,
    pub first_seen: NaiveDateTime,
    pub last_seen: NaiveDateTime,
}

type ObservationTuple = (
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    NaiveDateTime,
    NaiveDateTime,
);

/// `list_attackers_for_clustering(limit?)`: every observation ordered by `first_seen` (then
/// uuid, for a total order).
pub async fn list_attackers_for_clustering(
    db: &Db,
    limit: Option<i64>,
) -> Result<Vec<ClusteringObservation>, DbError> {
    let rows: Vec<ObservationTuple> = db_run!(db, |c| {
        let mut q = attackers::table
            .select((
                attackers::uuid,
                // Portable whatever integer width intake gives `asn`.
                sql::<Nullable<BigInt>>("CAST(asn AS BIGINT)"),
                attackers::identity_id,
                attackers::fingerprints,
                attackers::payload_hashes,
                attackers::c2_endpoints,
                attackers::first_seen,
                attackers::last_seen,
            ))
            .order((attackers::first_seen.asc(), attackers::uuid.asc()))
            .into_boxed();
        if let Some(l) = limit {
            q = q.limit(l);
        }
        q.load::<ObservationTuple>(c).await
    })?;
    Ok(rows
        .into_iter()
        .map(
            |(
                uuid,
                asn,
                identity_id,
                fingerprints,
                payload_hashes,
                c2_endpoints,
                first_seen,
                last_seen,
            )| {
                ClusteringObservation {
                    row: ObservationRow {
                        uuid,
                        asn,
                        identity_id,
                        fingerprints,
                        payload_hashes,
                        c2_endpoints,
                    },
                    first_seen,
                    last_seen,
                }
            },
        )
        .collect())
}

/// `list_all_identities()`: every identity including merged-out ones, `created_at` ascending.
pub async fn list_all_identities(db: &Db) -> Result<Vec<Identity>, DbError> {
    Ok(db_run!(db, |c| attacker_identities::table
        .select(Identity::as_select())
        .order((
            attacker_identities::created_at.asc(),
            attacker_identities::uuid.asc()
        ))
        .load(c)
        .await)?)
}

/// The writes of an identity plan (spec §3.4 Pass 1 and 2).
#[derive(Debug, Clone, Default)]
pub struct IdentityPlanWrites {
    pub new_identities: Vec<NewIdentity>,
    /// `(observation uuid, identity uuid)`.
    pub links: Vec<(String, String)>,
    /// `(identity uuid, merged_into_uuid)`: `Some` merges, `None` unmerges.
    pub merge_pointers: Vec<(String, Option<String>)>,
}

/// Set `attackers.identity_id` for many rows, grouped per identity, inside a transaction.
async fn set_identity_ids<C: AsAnyConn>(
    c: &mut C,
    links: Vec<(String, String)>,
) -> Result<(), diesel::result::Error> {
    let mut by_identity: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (member, identity) in links {
        by_identity.entry(identity).or_default().push(member);
    }
    match c.as_any_conn() {
        AnyConnMut::Sqlite(conn) => {
            conn.spawn_blocking(move |sync| {
                for (identity, members) in &by_identity {
                    for chunk in members.chunks(IN_CHUNK) {
                        diesel::RunQueryDsl::execute(
                            diesel::update(attackers::table.filter(attackers::uuid.eq_any(chunk)))
                                .set(attackers::identity_id.eq(identity)),
                            sync,
                        )?;
                    }
                }
                Ok(())
            })
            .await
        }
        AnyConnMut::Pg(conn) => {
            for (identity, members) in &by_identity {
                for chunk in members.chunks(IN_CHUNK) {
                    diesel::update(attackers::table.filter(attackers::uuid.eq_any(chunk)))
                        .set(attackers::identity_id.eq(identity))
                        .execute(&mut *conn)
                        .await?;
                }
            }
            Ok(())
        }
    }
}

/// Apply an identity plan in one transaction: new identities, FK links, merge pointers.
pub async fn apply_identity_plan(
    db: &Db,
    writes: IdentityPlanWrites,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    let IdentityPlanWrites {
        new_identities,
        links,
        merge_pointers,
    } = writes;
    db_tx!(db, |c| {
        if !new_identities.is_empty() {
            db_insert_batch!(c, attacker_identities::table, new_identities)?;
        }
        if !links.is_empty() {
            set_identity_ids(&mut *c, links).await?;
        }
        for (uuid, winner) in &merge_pointers {
            diesel::update(attacker_identities::table.find(uuid))
                .set((
                    attacker_identities::merged_into_uuid.eq(winner),
                    attacker_identities::updated_at.eq(now),
                ))
                .execute(c)
                .await?;
        }
        Ok(())
    })
}

/// Maintenance writes of an identity tick: changed columns per identity, and evidence
/// replacements (`(identity, edges)`; the identity's previous evidence is deleted first).
#[derive(Debug, Clone, Default)]
pub struct IdentityMaintenanceWrites {
    pub columns: Vec<(String, IdentityMaintenance)>,
    pub evidence: Vec<(String, Vec<NewIdentityEvidence>)>,
}

/// Apply maintenance writes in one transaction.
pub async fn write_identity_maintenance(
    db: &Db,
    writes: IdentityMaintenanceWrites,
) -> Result<(), DbError> {
    let IdentityMaintenanceWrites { columns, evidence } = writes;
    db_tx!(db, |c| {
        for (uuid, cols) in &columns {
            diesel::update(attacker_identities::table.find(uuid))
                .set(cols)
                .execute(c)
                .await?;
        }
        let mut rows = Vec::new();
        for (uuid, edges) in evidence {
            diesel::delete(
                identity_evidence::table.filter(identity_evidence::identity_uuid.eq(&uuid)),
            )
            .execute(c)
            .await?;
            rows.extend(edges);
        }
        if !rows.is_empty() {
            db_insert_batch!(c, identity_evidence::table, rows)?;
        }
        Ok(())
    })
}

/// The row of `uuid` as the chain walker needs it: `None` = no row, else its pointer.
async fn identity_pointer(db: &Db, uuid: &str) -> Result<Option<Option<String>>, DbError> {
    Ok(db_run!(db, |c| attacker_identities::table
        .find(uuid)
        .select(attacker_identities::merged_into_uuid)
        .first::<Option<String>>(c)
        .await
        .optional())?)
}

async fn campaign_pointer(db: &Db, uuid: &str) -> Result<Option<Option<String>>, DbError> {
    Ok(db_run!(db, |c| campaigns::table
        .find(uuid)
        .select(campaigns::merged_into_uuid)
        .first::<Option<String>>(c)
        .await
        .optional())?)
}

/// Walk a stored chain (at most [`MAX_MERGE_HOPS`] hops) with one small query per row.
async fn walk_stored<F, Fut>(start: &str, mut pointer: F) -> Result<ChainWalk, DbError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Option<String>>, DbError>>,
{
    // Prefetch up to MAX_MERGE_HOPS + 1 rows along the chain, then walk them purely.
    let mut known: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut current = start.to_owned();
    for _ in 0..=MAX_MERGE_HOPS {
        if known.contains_key(&current) {
            break;
        }
        match pointer(current.clone()).await? {
            None => break,
            Some(next) => {
                known.insert(current.clone(), next.clone());
                match next {
                    Some(n) if n != current => current = n,
                    _ => break,
                }
            }
        }
    }
    Ok(walk_chain(start, |u| known.get(u).cloned()))
}

/// `get_identity_by_uuid`: follow `merged_into_uuid` up to 8 hops; the last row read, with the
/// chain of uuids read (start first). Unknown uuid → `None`.
pub async fn get_identity_by_uuid(
    db: &Db,
    uuid: &str,
) -> Result<Option<(Identity, Vec<String>)>, DbError> {
    let walk = walk_stored(uuid, |u| async move { identity_pointer(db, &u).await }).await?;
    let Some(last) = walk.last_row() else {
        return Ok(None);
    };
    let row = db_run!(db, |c| attacker_identities::table
        .find(last)
        .select(Identity::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row.map(|r| (r, walk.rows.clone())))
}

/// `list_identities`: active (not merged-out) identities, newest `updated_at` first.
pub async fn list_identities(db: &Db, limit: i64, offset: i64) -> Result<Vec<Identity>, DbError> {
    Ok(db_run!(db, |c| attacker_identities::table
        .filter(attacker_identities::merged_into_uuid.is_null())
        .select(Identity::as_select())
        .order((
            attacker_identities::updated_at.desc(),
            attacker_identities::uuid.asc()
        ))
        .limit(limit)
        .offset(offset)
        .load(c)
        .await)?)
}

/// `count_identities`: active identities.
/// Cached in [`Db::totals`]: a new identity and a merge both move the newest `updated_at`.
pub async fn count_identities(db: &Db) -> Result<i64, DbError> {
    let stamp: Option<NaiveDateTime> = db_run!(db, |c| attacker_identities::table
        .select(diesel::dsl::max(attacker_identities::updated_at))
        .get_result(c)
        .await)?;
    db.totals()
        .get("identities", format!("{stamp:?}"), || async {
            Ok(db_run!(db, |c| attacker_identities::table
                .filter(attacker_identities::merged_into_uuid.is_null())
                .count()
                .get_result(c)
                .await)?)
        })
        .await
}

/// Observations literally FK'd to `identity`, newest `last_seen` first.
pub async fn list_observations_for_identity(
    db: &Db,
    identity: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<ObservationRecord>, DbError> {
    Ok(db_run!(db, |c| attackers::table
        .filter(attackers::identity_id.eq(identity))
        .select(ObservationRecord::as_select())
        .order((attackers::last_seen.desc(), attackers::uuid.asc()))
        .limit(limit)
        .offset(offset)
        .load(c)
        .await)?)
}

/// Number of observations literally FK'd to `identity`.
pub async fn count_observations_for_identity(db: &Db, identity: &str) -> Result<i64, DbError> {
    Ok(db_run!(db, |c| attackers::table
        .filter(attackers::identity_id.eq(identity))
        .count()
        .get_result(c)
        .await)?)
}

/// Stored evidence edges of an identity.
pub async fn identity_evidence(
    db: &Db,
    identity: &str,
) -> Result<Vec<IdentityEvidenceRow>, DbError> {
    Ok(db_run!(db, |c| identity_evidence::table
        .filter(identity_evidence::identity_uuid.eq(identity))
        .select(IdentityEvidenceRow::as_select())
        .order(identity_evidence::id.asc())
        .load(c)
        .await)?)
}

/// Insert observation rows (tests, benches, tools); one transaction.
pub async fn insert_observations(db: &Db, rows: Vec<NewObservation>) -> Result<usize, DbError> {
    db_tx!(db, |c| Ok(db_insert_batch!(c, attackers::table, rows)?))
}

// ---------------------------------------------------------------------------------------------
// Campaign side.

type IdentityTuple = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
);

/// `list_identities_for_clustering(limit?)`: every identity (merged-out included; the tick
/// filters them), `created_at` ascending.
pub async fn list_identities_for_clustering(
    db: &Db,
    limit: Option<i64>,
) -> Result<Vec<IdentityRow>, DbError> {
    let rows: Vec<IdentityTuple> = db_run!(db, |c| {
        let mut q = attacker_identities::table
            .select((
                attacker_identities::uuid,
                attacker_identities::campaign_id,
                attacker_identities::merged_into_uuid,
                attacker_identities::payload_simhashes,
                attacker_identities::c2_endpoints,
                attacker_identities::kd_digraph_simhash,
            ))
            .order((
                attacker_identities::created_at.asc(),
                attacker_identities::uuid.asc(),
            ))
            .into_boxed();
        if let Some(l) = limit {
            q = q.limit(l);
        }
        q.load::<IdentityTuple>(c).await
    })?;
    Ok(rows
        .into_iter()
        .map(
            |(
                uuid,
                campaign_id,
                merged_into_uuid,
                payload_simhashes,
                c2_endpoints,
                kd_digraph_simhash,
            )| {
                IdentityRow {
                    uuid,
                    campaign_id,
                    merged_into_uuid,
                    payload_simhashes,
                    c2_endpoints,
                    kd_digraph_simhash,
                }
            },
        )
        .collect())
}

/// `list_all_campaigns()`: every campaign including merged-out ones, `created_at` ascending.
pub async fn list_all_campaigns(db: &Db) -> Result<Vec<Campaign>, DbError> {
    Ok(db_run!(db, |c| campaigns::table
        .select(Campaign::as_select())
        .order((campaigns::created_at.asc(), campaigns::uuid.asc()))
        .load(c)
        .await)?)
}

/// The writes of a campaign plan.
#[derive(Debug, Clone, Default)]
pub struct CampaignPlanWrites {
    pub new_campaigns: Vec<NewCampaign>,
    /// `(identity uuid, campaign uuid)`.
    pub links: Vec<(String, String)>,
    /// `(campaign uuid, merged_into_uuid)`.
    pub merge_pointers: Vec<(String, Option<String>)>,
}

/// Apply a campaign plan in one transaction (linking bumps the identity's `updated_at`).
pub async fn apply_campaign_plan(
    db: &Db,
    writes: CampaignPlanWrites,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    let CampaignPlanWrites {
        new_campaigns,
        links,
        merge_pointers,
    } = writes;
    db_tx!(db, |c| {
        if !new_campaigns.is_empty() {
            db_insert_batch!(c, campaigns::table, new_campaigns)?;
        }
        for (identity, campaign) in &links {
            diesel::update(attacker_identities::table.find(identity))
                .set((
                    attacker_identities::campaign_id.eq(campaign),
                    attacker_identities::updated_at.eq(now),
                ))
                .execute(c)
                .await?;
        }
        for (uuid, winner) in &merge_pointers {
            diesel::update(campaigns::table.find(uuid))
                .set((
                    campaigns::merged_into_uuid.eq(winner),
                    campaigns::updated_at.eq(now),
                ))
                .execute(c)
                .await?;
        }
        Ok(())
    })
}

/// Maintenance writes of a campaign tick: `identity_count` per campaign and evidence.
#[derive(Debug, Clone, Default)]
pub struct CampaignMaintenanceWrites {
    /// `(campaign, identity_count)`.
    pub counts: Vec<(String, i64)>,
    pub evidence: Vec<(String, Vec<NewCampaignEvidence>)>,
}

/// Apply campaign maintenance writes in one transaction.
pub async fn write_campaign_maintenance(
    db: &Db,
    writes: CampaignMaintenanceWrites,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    let CampaignMaintenanceWrites { counts, evidence } = writes;
    db_tx!(db, |c| {
        for (uuid, count) in &counts {
            diesel::update(campaigns::table.find(uuid))
                .set((
                    campaigns::identity_count.eq(count),
                    campaigns::updated_at.eq(now),
                ))
                .execute(c)
                .await?;
        }
        let mut rows = Vec::new();
        for (uuid, edges) in evidence {
            diesel::delete(
                campaign_evidence::table.filter(campaign_evidence::campaign_uuid.eq(&uuid)),
            )
            .execute(c)
            .await?;
            rows.extend(edges);
        }
        if !rows.is_empty() {
            db_insert_batch!(c, campaign_evidence::table, rows)?;
        }
        Ok(())
    })
}

/// `get_campaign_by_uuid`: 8-hop chain follow; the last row read and the chain.
pub async fn get_campaign_by_uuid(
    db: &Db,
    uuid: &str,
) -> Result<Option<(Campaign, Vec<String>)>, DbError> {
    let walk = walk_stored(uuid, |u| async move { campaign_pointer(db, &u).await }).await?;
    let Some(last) = walk.last_row() else {
        return Ok(None);
    };
    let row = db_run!(db, |c| campaigns::table
        .find(last)
        .select(Campaign::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row.map(|r| (r, walk.rows.clone())))
}

/// `list_campaigns`: active campaigns, newest `updated_at` first.
pub async fn list_campaigns(db: &Db, limit: i64, offset: i64) -> Result<Vec<Campaign>, DbError> {
    Ok(db_run!(db, |c| campaigns::table
        .filter(campaigns::merged_into_uuid.is_null())
        .select(Campaign::as_select())
        .order((campaigns::updated_at.desc(), campaigns::uuid.asc()))
        .limit(limit)
        .offset(offset)
        .load(c)
        .await)?)
}

/// `count_campaigns`: active campaigns.
/// Cached in [`Db::totals`]: a new campaign and a merge both move the newest `updated_at`.
pub async fn count_campaigns(db: &Db) -> Result<i64, DbError> {
    let stamp: Option<NaiveDateTime> = db_run!(db, |c| campaigns::table
        .select(diesel::dsl::max(campaigns::updated_at))
        .get_result(c)
        .await)?;
    db.totals()
        .get("campaigns", format!("{stamp:?}"), || async {
            Ok(db_run!(db, |c| campaigns::table
                .filter(campaigns::merged_into_uuid.is_null())
                .count()
                .get_result(c)
                .await)?)
        })
        .await
}

/// Identities literally FK'd to `campaign` (merged rows included), newest `updated_at` first.
pub async fn list_identities_for_campaign(
    db: &Db,
    campaign: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<Identity>, DbError> {
    Ok(db_run!(db, |c| attacker_identities::table
        .filter(attacker_identities::campaign_id.eq(campaign))
        .select(Identity::as_select())
        .order((
            attacker_identities::updated_at.desc(),
            attacker_identities::uuid.asc()
        ))
        .limit(limit)
        .offset(offset)
        .load(c)
        .await)?)
}

/// Number of identities literally FK'd to `campaign`.
pub async fn count_identities_for_campaign(db: &Db, campaign: &str) -> Result<i64, DbError> {
    Ok(db_run!(db, |c| attacker_identities::table
        .filter(attacker_identities::campaign_id.eq(campaign))
        .count()
        .get_result(c)
        .await)?)
}

/// Stored evidence edges of a campaign.
pub async fn campaign_evidence(
    db: &Db,
    campaign: &str,
) -> Result<Vec<CampaignEvidenceRow>, DbError> {
    Ok(db_run!(db, |c| campaign_evidence::table
        .filter(campaign_evidence::campaign_uuid.eq(campaign))
        .select(CampaignEvidenceRow::as_select())
        .order(campaign_evidence::id.asc())
        .load(c)
        .await)?)
}

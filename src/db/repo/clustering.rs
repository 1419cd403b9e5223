//! clustering repository (spec clustering.md §2.4): the clusterers' reads, the one-transaction
//! application of a tick plan, the maintenance writes (roll-ups, counts, evidence), and the
//! read side of the identity and campaign routes.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Timestamp};
use diesel_async::RunQueryDsl;

use crate::db::models::clustering::{
    Campaign, CampaignEvidenceRow, CampaignMaintenance, Identity, IdentityEvidenceRow,
    IdentityMaintenance, NewCampaign, NewCampaignEvidence, NewIdentity, NewIdentityEvidence,
    NewObservation, ObservationRecord,
};
use crate::db::schema::clustering::observation_view::attackers;
use crate::db::schema::{
    attacker_identities, campaign_evidence, campaigns, identity_evidence, state,
};
use crate::db::{AnyConnMut, AsAnyConn, Db, DbError};
use crate::domain::clustering::chain::{walk_chain, ChainWalk, MAX_MERGE_HOPS};
use crate::domain::clustering::tick::{IdentityRow, ObservationRow};
use crate::{db_insert_batch, db_run, db_tx};

/// Rows per `IN (…)` list of a bulk FK update.
const IN_CHUNK: usize = 500;

/// Key rows per INSERT statement.
const KEY_ROWS_PER_INSERT: usize = 10_000;

/// One observation as the identity tick reads it, with the times used for the identity's
/// first/last seen and the `updated_at` the tick marks as processed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusteringObservation {
    pub row: ObservationRow,
    pub first_seen: NaiveDateTime,
    pub last_seen: NaiveDateTime,
    pub updated_at: NaiveDateTime,
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
    NaiveDateTime,
);

/// A row is dirty for a layer while its processed marker differs from its `updated_at` (the
/// partial indexes of migration 000014 hold exactly these rows).
const DIRTY: &str = "(clustered_at IS NULL OR clustered_at <> updated_at)";
const CAMPAIGN_DIRTY: &str =
    "(campaign_clustered_at IS NULL OR campaign_clustered_at <> updated_at)";

/// Which observations to read.
#[derive(Debug, Clone, Copy)]
enum ObservationFilter<'a> {
    All(Option<i64>),
    /// Changed since the identity clusterer last processed them.
    Dirty,
    /// Literally FK'd to one of these identities.
    OfIdentities(&'a [String]),
    /// Holding one of these linking keys (as last processed).
    WithKeys(&'a [String]),
    /// These observations.
    Uuids(&'a [String]),
}

/// Apply an [`ObservationFilter`] other than `All` and `Dirty` to a boxed `attackers` query.
macro_rules! observation_filter {
    ($q:expr, $filter:expr) => {{
        use crate::db::schema::observation_cluster_keys as keys;
        let q = $q;
        match $filter {
            ObservationFilter::All(_) | ObservationFilter::Dirty => q,
            ObservationFilter::OfIdentities(ids) => q.filter(attackers::identity_id.eq_any(ids)),
            ObservationFilter::WithKeys(k) => q.filter(
                attackers::uuid.eq_any(
                    keys::table
                        .filter(keys::cluster_key.eq_any(k))
                        .select(keys::observation_uuid),
                ),
            ),
            ObservationFilter::Uuids(u) => q.filter(attackers::uuid.eq_any(u)),
        }
    }};
}

fn observation_from_tuple(t: ObservationTuple) -> ClusteringObservation {
    let (
        uuid,
        asn,
        identity_id,
        fingerprints,
        payload_hashes,
        c2_endpoints,
        first_seen,
        last_seen,
        updated_at,
    ) = t;
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
        updated_at,
    }
}

async fn load_observations(
    db: &Db,
    filter: ObservationFilter<'_>,
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
                attackers::updated_at,
            ))
            .into_boxed();
        if !matches!(filter, ObservationFilter::Dirty) {
            q = q.order((attackers::first_seen.asc(), attackers::uuid.asc()));
        }
        match filter {
            ObservationFilter::All(limit) => {
                if let Some(l) = limit {
                    q = q.limit(l);
                }
            }
            // Unordered: an ORDER BY makes SQLite scan the whole table through the
            // `first_seen` index instead of the partial index of dirty rows (sorted below).
            ObservationFilter::Dirty => q = q.filter(sql::<Bool>(DIRTY)),
            other => q = observation_filter!(q, other),
        }
        q.load::<ObservationTuple>(c).await
    })?;
    let mut out: Vec<ClusteringObservation> =
        rows.into_iter().map(observation_from_tuple).collect();
    if matches!(filter, ObservationFilter::Dirty) {
        out.sort_by(|a, b| {
            a.first_seen
                .cmp(&b.first_seen)
                .then_with(|| a.row.uuid.cmp(&b.row.uuid))
        });
    }
    Ok(out)
}

/// The uuids of the observations `filter` (one of the `IN (…)` filters) selects, read without
/// their rows.
async fn observation_uuids(db: &Db, filter: ObservationFilter<'_>) -> Result<Vec<String>, DbError> {
    Ok(db_run!(db, |c| {
        let q = attackers::table.select(attackers::uuid).into_boxed();
        observation_filter!(q, filter).load::<String>(c).await
    })?)
}

/// Uuids of the observations changed since the identity clusterer last processed them, read
/// from the partial index of dirty rows without their rows.
pub async fn list_dirty_observation_uuids(db: &Db) -> Result<Vec<String>, DbError> {
    Ok(db_run!(db, |c| attackers::table
        .select(attackers::uuid)
        .filter(sql::<Bool>(DIRTY))
        .load::<String>(c)
        .await)?)
}

/// Uuids of the observations holding one of `keys` (as last processed); the same uuid may
/// come more than once.
pub async fn observation_uuids_with_keys(db: &Db, keys: &[String]) -> Result<Vec<String>, DbError> {
    chunked(keys, |k| {
        observation_uuids(db, ObservationFilter::WithKeys(k))
    })
    .await
}

/// Uuids of the observations literally FK'd to one of `identities`.
pub async fn observation_uuids_of_identities(
    db: &Db,
    identities: &[String],
) -> Result<Vec<String>, DbError> {
    chunked(identities, |i| {
        observation_uuids(db, ObservationFilter::OfIdentities(i))
    })
    .await
}

/// Observations by uuid.
pub async fn observations_by_uuid(
    db: &Db,
    uuids: &[String],
) -> Result<Vec<ClusteringObservation>, DbError> {
    chunked(uuids, |u| {
        load_observations(db, ObservationFilter::Uuids(u))
    })
    .await
}

/// Run a chunked `IN (…)` read and concatenate the results.
async fn chunked<'a, T, F, Fut>(items: &'a [String], mut read: F) -> Result<Vec<T>, DbError>
where
    F: FnMut(&'a [String]) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, DbError>>,
{
    let mut out = Vec::new();
    for chunk in items.chunks(IN_CHUNK) {
        out.extend(read(chunk).await?);
    }
    Ok(out)
}

/// `list_attackers_for_clustering(limit?)`: every observation ordered by `first_seen` (then
/// uuid, for a total order).
pub async fn list_attackers_for_clustering(
    db: &Db,
    limit: Option<i64>,
) -> Result<Vec<ClusteringObservation>, DbError> {
    load_observations(db, ObservationFilter::All(limit)).await
}

/// Observations changed since the identity clusterer last processed them (new ones included).
pub async fn list_dirty_observations(db: &Db) -> Result<Vec<ClusteringObservation>, DbError> {
    load_observations(db, ObservationFilter::Dirty).await
}

/// Uuids of identities changed outside the identity clusterer since it last processed them
/// (e.g. a merge pointer an operator set).
pub async fn list_dirty_identity_uuids(db: &Db) -> Result<Vec<String>, DbError> {
    Ok(db_run!(db, |c| attacker_identities::table
        .filter(sql::<Bool>(DIRTY))
        .select(attacker_identities::uuid)
        .order(attacker_identities::uuid.asc())
        .load::<String>(c)
        .await)?)
}

/// Every row of `$table` connected to `$seeds` through merge pointers (either direction, any
/// depth), `created_at` order.
macro_rules! merge_closure {
    ($db:expr, $table:ident, $model:ty, $seeds:expr) => {{
        let db: &Db = $db;
        let seeds: &BTreeSet<String> = $seeds;
        let mut found: BTreeMap<String, $model> = BTreeMap::new();
        let mut asked: BTreeSet<String> = BTreeSet::new();
        let mut frontier: Vec<String> = seeds.iter().cloned().collect();
        while !frontier.is_empty() {
            asked.extend(frontier.iter().cloned());
            let f = &frontier;
            let mut rows = chunked(f, |ids| async move {
                Ok(db_run!(db, |c| $table::table
                    .filter($table::uuid.eq_any(ids))
                    .select(<$model>::as_select())
                    .load(c)
                    .await)?)
            })
            .await?;
            rows.extend(
                chunked(f, |ids| async move {
                    Ok(db_run!(db, |c| $table::table
                        .filter($table::merged_into_uuid.eq_any(ids))
                        .select(<$model>::as_select())
                        .load(c)
                        .await)?)
                })
                .await?,
            );
            let mut next = BTreeSet::new();
            for row in rows {
                if let Some(w) = &row.merged_into_uuid {
                    if !asked.contains(w) {
                        next.insert(w.clone());
                    }
                }
                if !asked.contains(&row.uuid) {
                    next.insert(row.uuid.clone());
                }
                found.entry(row.uuid.clone()).or_insert(row);
            }
            frontier = next.into_iter().collect();
        }
        let mut out: Vec<$model> = found.into_values().collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.uuid.cmp(&b.uuid)));
        Ok::<Vec<$model>, DbError>(out)
    }};
}

/// Every identity connected to `seeds` through merge pointers (in either direction, any depth):
/// the rows a partial tick needs to resolve and revoke merges exactly as a full one would.
/// `created_at` order, like [`list_all_identities`].
pub async fn identity_merge_closure(
    db: &Db,
    seeds: &BTreeSet<String>,
) -> Result<Vec<Identity>, DbError> {
    merge_closure!(db, attacker_identities, Identity, seeds)
}

/// Every campaign connected to `seeds` through merge pointers, `created_at` order.
pub async fn campaign_merge_closure(
    db: &Db,
    seeds: &BTreeSet<String>,
) -> Result<Vec<Campaign>, DbError> {
    merge_closure!(db, campaigns, Campaign, seeds)
}

/// The writes of an identity plan (spec §3.4 Pass 1 and 2).
#[derive(Debug, Clone, Default)]
pub struct IdentityPlanWrites {
    pub new_identities: Vec<NewIdentity>,
    /// `(observation uuid, identity uuid)`.
    pub links: Vec<(String, String)>,
    /// `(identity uuid, merged_into_uuid)`: `Some` merges, `None` unmerges.
    pub merge_pointers: Vec<(String, Option<String>)>,
    /// Observations this tick processed, with the `updated_at` it read: each is marked
    /// processed unless it changed again meanwhile.
    pub processed: Vec<(String, NaiveDateTime)>,
    /// `(observation uuid, linking keys)`: the stored keys of each processed observation are
    /// replaced by these.
    pub keys: Vec<(String, Vec<String>)>,
}

/// Which processed marker [`mark_processed`] sets.
#[derive(Debug, Clone, Copy)]
enum Marker {
    /// `attacker_identities.clustered_at`.
    Identity,
    /// `attacker_identities.campaign_clustered_at`.
    IdentityCampaign,
}

impl Marker {
    fn table_column(self) -> (&'static str, &'static str) {
        match self {
            Marker::Identity => ("attacker_identities", "clustered_at"),
            Marker::IdentityCampaign => ("attacker_identities", "campaign_clustered_at"),
        }
    }
}

/// One bound value of a `VALUES` row of [`update_from_values`].
#[derive(Debug, Clone, Copy)]
enum Cell<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    At(NaiveDateTime),
    OptAt(Option<NaiveDateTime>),
}

/// Rows per `UPDATE … FROM (VALUES …)` statement ([`update_from_values`]): at three binds a
/// row at most, 30 000 binds, under SQLite's limit of 32 766 (PostgreSQL's is 65 535).
pub const VALUES_ROWS_PER_UPDATE: usize = 10_000;

/// `UPDATE {table} SET {set} FROM (VALUES (uuid, cells…), …) AS v WHERE {table}.uuid =
/// v.column1{and}`, one statement per [`VALUES_ROWS_PER_UPDATE`] rows: many single-row
/// updates in a few statements (SQLite ≥ 3.33 and PostgreSQL both have `UPDATE … FROM`; both
/// name the columns of a `VALUES` list `column1`, `column2`, …). `set` and `and` refer to a
/// row's cells as `v.column2`, `v.column3`, …, to the target's columns unqualified in `set` and
/// as `{table}.x` in `and`. Uuids must be distinct. Rows are written in the order given: in
/// the order the target's rows are stored, its pages are visited in order (SQLite), not at
/// random.
async fn update_from_values<C: AsAnyConn, const W: usize>(
    c: &mut C,
    table: &str,
    set: &str,
    and: &str,
    rows: &[(&str, [Cell<'_>; W])],
) -> Result<(), diesel::result::Error> {
    use diesel::sql_types::Text;
    macro_rules! run {
        ($conn:expr, $backend:ty, $placeholder:expr) => {
            for chunk in rows.chunks(VALUES_ROWS_PER_UPDATE) {
                let mut n = 0usize;
                let mut values = String::with_capacity(chunk.len() * (W + 1) * 6);
                for (i, _) in chunk.iter().enumerate() {
                    values.push_str(if i == 0 { "(" } else { ", (" });
                    for k in 0..=W {
                        n += 1;
                        if k > 0 {
                            values.push_str(", ");
                        }
                        values.push_str(&$placeholder(n));
                    }
                    values.push(')');
                }
                let stmt = format!(
                    "UPDATE {table} SET {set} FROM (VALUES {values}) AS v \
                     WHERE {table}.uuid = v.column1{and}"
                );
                let mut q = diesel::sql_query(stmt).into_boxed::<$backend>();
                for (uuid, cells) in chunk {
                    q = q.bind::<Text, _>(*uuid);
                    for cell in cells {
                        q = match *cell {
                            Cell::Text(s) => q.bind::<Text, _>(s),
                            Cell::OptText(s) => q.bind::<Nullable<Text>, _>(s),
                            Cell::At(t) => q.bind::<Timestamp, _>(t),
                            Cell::OptAt(t) => q.bind::<Nullable<Timestamp>, _>(t),
                        };
                    }
                }
                q.execute(&mut *$conn).await?;
            }
        };
    }
    match c.as_any_conn() {
        AnyConnMut::Sqlite(conn) => run!(conn, diesel::sqlite::Sqlite, |_| String::from("?")),
        AnyConnMut::Pg(conn) => run!(conn, diesel::pg::Pg, |n| format!("${n}")),
    }
    Ok(())
}

/// Set a processed marker to the `updated_at` each row had when the tick read it, only where
/// `updated_at` still has that value (a row written again meanwhile stays dirty).
async fn mark_processed<C: AsAnyConn>(
    c: &mut C,
    marker: Marker,
    rows: Vec<(String, NaiveDateTime)>,
) -> Result<(), diesel::result::Error> {
    let (table, column) = marker.table_column();
    // Uuid order: a tick inserts identities in uuid order (see `apply_identity_plan`).
    let mut cells: Vec<(&str, [Cell<'_>; 1])> = rows
        .iter()
        .map(|(uuid, at)| (uuid.as_str(), [Cell::At(*at)]))
        .collect();
    cells.sort_unstable_by(|a, b| a.0.cmp(b.0));
    update_from_values(
        c,
        table,
        &format!("{column} = v.column2"),
        &format!(" AND {table}.updated_at = v.column2"),
        &cells,
    )
    .await
}

/// Set an identity marker to the row's current `updated_at` (rows this tick itself wrote).
async fn mark_written<C: AsAnyConn>(
    c: &mut C,
    marker: Marker,
    uuids: &[String],
) -> Result<(), diesel::result::Error> {
    macro_rules! set_marker {
        ($conn:expr, $column:expr, $chunk:expr) => {
            diesel::update(
                attacker_identities::table.filter(attacker_identities::uuid.eq_any($chunk)),
            )
            .set($column.eq(attacker_identities::updated_at.nullable()))
            .execute($conn)
            .await?
        };
    }
    for chunk in uuids.chunks(IN_CHUNK) {
        match (marker, c.as_any_conn()) {
            (Marker::Identity, AnyConnMut::Sqlite(conn)) => {
                set_marker!(conn, attacker_identities::clustered_at, chunk);
            }
            (Marker::Identity, AnyConnMut::Pg(conn)) => {
                set_marker!(conn, attacker_identities::clustered_at, chunk);
            }
            (Marker::IdentityCampaign, AnyConnMut::Sqlite(conn)) => {
                set_marker!(conn, attacker_identities::campaign_clustered_at, chunk);
            }
            (Marker::IdentityCampaign, AnyConnMut::Pg(conn)) => {
                set_marker!(conn, attacker_identities::campaign_clustered_at, chunk);
            }
        }
    }
    Ok(())
}

/// Replace the stored keys of each `(owner, keys)` in an observation or identity key table.
macro_rules! replace_keys {
    ($c:expr, $table:ident, $owner:ident, $keys:expr) => {{
        use crate::db::schema::$table as k;
        let keys: Vec<(String, Vec<String>)> = $keys;
        if !keys.is_empty() {
            let owners: Vec<&str> = keys.iter().map(|(o, _)| o.as_str()).collect();
            // In primary-key order: the index inserts walk the index in order. The pairs
            // borrow from `keys` and only one insert's rows are owned at a time (a full
            // campaign pass writes ~9 keys for each of tens of thousands of identities).
            let mut pairs: Vec<(&str, &str)> = keys
                .iter()
                .flat_map(|(o, ks)| ks.iter().map(move |key| (key.as_str(), o.as_str())))
                .collect();
            pairs.sort_unstable();
            for chunk in owners.chunks(IN_CHUNK) {
                match $crate::db::AsAnyConn::as_any_conn(&mut *$c) {
                    AnyConnMut::Sqlite(conn) => {
                        diesel::delete(k::table.filter(k::$owner.eq_any(chunk)))
                            .execute(conn)
                            .await?;
                    }
                    AnyConnMut::Pg(conn) => {
                        diesel::delete(k::table.filter(k::$owner.eq_any(chunk)))
                            .execute(conn)
                            .await?;
                    }
                }
            }
            // Two binds a row: chunks stay under SQLite's 32 766-variable limit (the rows have
            // no DEFAULT column, so SQLite gets one multi-row statement per chunk).
            for chunk in pairs.chunks(KEY_ROWS_PER_INSERT) {
                let rows: Vec<_> = chunk
                    .iter()
                    .map(|&(key, o)| {
                        (
                            k::cluster_key.eq(key.to_owned()),
                            k::$owner.eq(o.to_owned()),
                        )
                    })
                    .collect();
                db_insert_batch!($c, k::table, rows)?;
            }
        }
    }};
}

/// The observation writes of an identity plan, one row write each: mark each `processed`
/// observation processed (`clustered_at` = the `updated_at` read, only where `updated_at`
/// still has it) and set `identity_id` of each `(observation, identity)` link.
async fn write_observations<C: AsAnyConn>(
    c: &mut C,
    processed: &[(String, NaiveDateTime)],
    links: &[(String, String)],
) -> Result<(), diesel::result::Error> {
    // In the order of `processed` (the tick reads them in `first_seen` order, which is
    // roughly the order intake inserted them, i.e. their order in the table), then the links
    // of rows not processed.
    let mut at_row: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(processed.len());
    let mut cells: Vec<(&str, [Cell<'_>; 2])> = Vec::with_capacity(processed.len());
    for (uuid, at) in processed {
        at_row.entry(uuid).or_insert_with(|| {
            cells.push((uuid, [Cell::OptAt(Some(*at)), Cell::OptText(None)]));
            cells.len() - 1
        });
    }
    for (member, identity) in links {
        let row = *at_row.entry(member).or_insert_with(|| {
            cells.push((member, [Cell::OptAt(None), Cell::OptText(None)]));
            cells.len() - 1
        });
        cells[row].1[1] = Cell::OptText(Some(identity));
    }
    update_from_values(
        c,
        "attackers",
        "clustered_at = CASE WHEN updated_at = v.column2 THEN v.column2 ELSE clustered_at END, \
         identity_id = COALESCE(v.column3, identity_id)",
        "",
        &cells,
    )
    .await
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
        processed,
        keys,
    } = writes;
    let mut laps = crate::metrics::Laps::new("apply_identity_plan");
    db_tx!(db, |c| {
        replace_keys!(c, observation_cluster_keys, observation_uuid, keys);
        laps.lap("keys");
        if !new_identities.is_empty() {
            // In uuid order: the inserts into the uuid-keyed indexes walk them in order.
            let mut new_identities = new_identities;
            new_identities.sort_unstable_by(|a, b| a.uuid.cmp(&b.uuid));
            db_insert_batch!(c, attacker_identities::table, new_identities)?;
        }
        laps.lap("insert_identities");
        write_observations(&mut *c, &processed, &links).await?;
        laps.lap("observations");
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
    /// Identities this tick wrote (plan or maintenance): marked processed as they now are.
    pub written: Vec<String>,
    /// Identities this tick only read, with the `updated_at` it read.
    pub read: Vec<(String, NaiveDateTime)>,
}

impl IdentityMaintenanceWrites {
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
            && self.evidence.is_empty()
            && self.written.is_empty()
            && self.read.is_empty()
    }
}

/// Apply maintenance writes in one transaction.
pub async fn write_identity_maintenance(
    db: &Db,
    writes: IdentityMaintenanceWrites,
) -> Result<(), DbError> {
    let IdentityMaintenanceWrites {
        columns,
        evidence,
        written,
        read,
    } = writes;
    let mut laps = crate::metrics::Laps::new("write_identity_maintenance");
    db_tx!(db, |c| {
        for (uuid, cols) in &columns {
            diesel::update(attacker_identities::table.find(uuid))
                .set(cols)
                .execute(c)
                .await?;
        }
        laps.lap("columns");
        let (owners, edges): (Vec<String>, Vec<_>) = evidence.into_iter().unzip();
        for chunk in owners.chunks(IN_CHUNK) {
            diesel::delete(
                identity_evidence::table.filter(identity_evidence::identity_uuid.eq_any(chunk)),
            )
            .execute(c)
            .await?;
        }
        let rows: Vec<_> = edges.into_iter().flatten().collect();
        if !rows.is_empty() {
            db_insert_batch!(c, identity_evidence::table, rows)?;
        }
        laps.lap("evidence");
        mark_written(&mut *c, Marker::Identity, &written).await?;
        laps.lap("mark_written");
        mark_processed(&mut *c, Marker::Identity, read).await?;
        laps.lap("mark_read");
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

/// A page of the active (not merged-out) rows of `$table` (identities or campaigns), newest
/// `updated_at` first, then uuid. The page's keys come from a subquery on the page index alone,
/// then only those rows are read (see [`super::intake::list_attackers`]): PostgreSQL planned
/// identities at `offset=40000` as a scan and sort of the table (54 ms; 4.5 ms so).
macro_rules! active_page {
    ($db:expr, $table:ident, $row:ty, $limit:expr, $offset:expr) => {{
        let order = ($table::updated_at.desc(), $table::uuid.asc());
        db_run!($db, |c| {
            // Boxed: diesel would take the same table in the subquery for a join.
            let keys = $table::table
                .filter($table::merged_into_uuid.is_null())
                .select($table::uuid)
                .into_boxed()
                .order(order)
                .limit($limit)
                .offset($offset);
            $table::table
                .filter($table::uuid.eq_any(keys))
                .select(<$row>::as_select())
                .order(order)
                .load(c)
                .await
        })
    }};
}

/// `list_identities`: active (not merged-out) identities, newest `updated_at` first.
pub async fn list_identities(db: &Db, limit: i64, offset: i64) -> Result<Vec<Identity>, DbError> {
    Ok(active_page!(
        db,
        attacker_identities,
        Identity,
        limit,
        offset
    )?)
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
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    NaiveDateTime,
    NaiveDateTime,
);

/// One identity as the campaign tick reads it: the projection's columns, the span the campaign
/// maintenance rolls up, and the `updated_at` the tick marks as processed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusteringIdentity {
    pub row: IdentityRow,
    pub first_seen_at: Option<NaiveDateTime>,
    pub last_seen_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
}

/// Which identities the campaign tick reads.
#[derive(Debug, Clone, Copy)]
enum IdentityFilter<'a> {
    All(Option<i64>),
    /// Changed since the campaign clusterer last processed them.
    Dirty,
    Uuids(&'a [String]),
    /// Literally FK'd to one of these campaigns.
    OfCampaigns(&'a [String]),
    /// Holding one of these campaign candidate keys (as last processed).
    WithKeys(&'a [String]),
}

async fn load_identities(
    db: &Db,
    filter: IdentityFilter<'_>,
) -> Result<Vec<ClusteringIdentity>, DbError> {
    use crate::db::schema::identity_cluster_keys as keys;
    let rows: Vec<IdentityTuple> = db_run!(db, |c| {
        let mut q = attacker_identities::table
            .select((
                attacker_identities::uuid,
                attacker_identities::campaign_id,
                attacker_identities::merged_into_uuid,
                attacker_identities::payload_simhashes,
                attacker_identities::c2_endpoints,
                attacker_identities::kd_digraph_simhash,
                attacker_identities::first_seen_at,
                attacker_identities::last_seen_at,
                attacker_identities::updated_at,
                attacker_identities::created_at,
            ))
            .into_boxed();
        if !matches!(filter, IdentityFilter::Dirty) {
            q = q.order((
                attacker_identities::created_at.asc(),
                attacker_identities::uuid.asc(),
            ));
        }
        match filter {
            IdentityFilter::All(limit) => {
                if let Some(l) = limit {
                    q = q.limit(l);
                }
            }
            // Unordered, so SQLite reads the partial index of dirty rows (sorted below).
            IdentityFilter::Dirty => q = q.filter(sql::<Bool>(CAMPAIGN_DIRTY)),
            IdentityFilter::Uuids(u) => q = q.filter(attacker_identities::uuid.eq_any(u)),
            IdentityFilter::OfCampaigns(cs) => {
                q = q.filter(attacker_identities::campaign_id.eq_any(cs))
            }
            IdentityFilter::WithKeys(k) => {
                q = q.filter(
                    attacker_identities::uuid.eq_any(
                        keys::table
                            .filter(keys::cluster_key.eq_any(k))
                            .select(keys::identity_uuid),
                    ),
                )
            }
        }
        q.load::<IdentityTuple>(c).await
    })?;
    let mut rows = rows;
    if matches!(filter, IdentityFilter::Dirty) {
        rows.sort_by(|a, b| a.9.cmp(&b.9).then_with(|| a.0.cmp(&b.0)));
    }
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
                first_seen_at,
                last_seen_at,
                updated_at,
                _created_at,
            )| ClusteringIdentity {
                row: IdentityRow {
                    uuid,
                    campaign_id,
                    merged_into_uuid,
                    payload_simhashes,
                    c2_endpoints,
                    kd_digraph_simhash,
                },
                first_seen_at,
                last_seen_at,
                updated_at,
            },
        )
        .collect())
}

/// `list_identities_for_clustering(limit?)`: every identity (merged-out included; the tick
/// filters them), `created_at` ascending.
pub async fn list_identities_for_clustering(
    db: &Db,
    limit: Option<i64>,
) -> Result<Vec<ClusteringIdentity>, DbError> {
    load_identities(db, IdentityFilter::All(limit)).await
}

/// Identities changed since the campaign clusterer last processed them (new ones included).
pub async fn list_campaign_dirty_identities(db: &Db) -> Result<Vec<ClusteringIdentity>, DbError> {
    load_identities(db, IdentityFilter::Dirty).await
}

/// `(uuid, merged_into_uuid)` of the identities changed since the campaign clusterer last
/// processed them: what the campaign tick needs to size its scope before it reads whole rows
/// (a first tick reads every identity anyway, so its dirty rows are not read twice).
pub async fn list_campaign_dirty_identity_pointers(
    db: &Db,
) -> Result<Vec<(String, Option<String>)>, DbError> {
    Ok(db_run!(db, |c| attacker_identities::table
        .filter(sql::<Bool>(CAMPAIGN_DIRTY))
        .select((
            attacker_identities::uuid,
            attacker_identities::merged_into_uuid
        ))
        .load::<(String, Option<String>)>(c)
        .await)?)
}

/// Identities by uuid.
pub async fn identities_by_uuid(
    db: &Db,
    uuids: &[String],
) -> Result<Vec<ClusteringIdentity>, DbError> {
    chunked(uuids, |u| load_identities(db, IdentityFilter::Uuids(u))).await
}

/// Identities literally FK'd to one of `campaigns`.
pub async fn identities_of_campaigns(
    db: &Db,
    campaigns: &[String],
) -> Result<Vec<ClusteringIdentity>, DbError> {
    chunked(campaigns, |c| {
        load_identities(db, IdentityFilter::OfCampaigns(c))
    })
    .await
}

/// Identities whose last processed campaign candidate keys include one of `keys`.
pub async fn identities_with_keys(
    db: &Db,
    keys: &[String],
) -> Result<Vec<ClusteringIdentity>, DbError> {
    chunked(keys, |k| load_identities(db, IdentityFilter::WithKeys(k))).await
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
    let mut laps = crate::metrics::Laps::new("apply_campaign_plan");
    db_tx!(db, |c| {
        if !new_campaigns.is_empty() {
            // In uuid order, like the identities.
            let mut new_campaigns = new_campaigns;
            new_campaigns.sort_unstable_by(|a, b| a.uuid.cmp(&b.uuid));
            db_insert_batch!(c, campaigns::table, new_campaigns)?;
        }
        laps.lap("insert_campaigns");
        // A campaign link is no news for the identity layer: its marker follows `updated_at`
        // when it was up to date (SET expressions read the row as it was).
        // Uuid order: a tick inserts identities in uuid order (see `apply_identity_plan`).
        let mut cells: Vec<(&str, [Cell<'_>; 2])> = links
            .iter()
            .map(|(identity, campaign)| (identity.as_str(), [Cell::Text(campaign), Cell::At(now)]))
            .collect();
        cells.sort_unstable_by(|a, b| a.0.cmp(b.0));
        update_from_values(
            &mut *c,
            "attacker_identities",
            "campaign_id = v.column2, updated_at = v.column3, clustered_at = \
             CASE WHEN clustered_at = updated_at THEN v.column3 ELSE clustered_at END",
            "",
            &cells,
        )
        .await?;
        laps.lap("links");
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

/// Maintenance writes of a campaign tick: maintained columns per campaign, evidence, the
/// candidate keys of processed identities, processed markers and the tag cursor.
#[derive(Debug, Clone, Default)]
pub struct CampaignMaintenanceWrites {
    /// `(campaign, columns)`, only where they differ.
    pub columns: Vec<(String, CampaignMaintenance)>,
    pub evidence: Vec<(String, Vec<NewCampaignEvidence>)>,
    /// `(identity, candidate keys)`: replaces the identity's stored keys.
    pub keys: Vec<(String, Vec<String>)>,
    /// Identities this tick wrote (campaign links), with the `updated_at` the link stamped:
    /// marked processed only where nothing wrote them since (an identity tick that linked
    /// another observation in between leaves the identity campaign-dirty).
    pub written: Vec<(String, NaiveDateTime)>,
    /// Identities this tick only read, with the `updated_at` it read.
    pub read: Vec<(String, NaiveDateTime)>,
    /// The tag cursor to store (`None`: unchanged).
    pub tag_cursor: Option<i64>,
}

impl CampaignMaintenanceWrites {
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
            && self.evidence.is_empty()
            && self.keys.is_empty()
            && self.written.is_empty()
            && self.read.is_empty()
            && self.tag_cursor.is_none()
    }
}

/// Apply campaign maintenance writes in one transaction.
pub async fn write_campaign_maintenance(
    db: &Db,
    writes: CampaignMaintenanceWrites,
) -> Result<(), DbError> {
    let CampaignMaintenanceWrites {
        columns,
        evidence,
        keys,
        written,
        read,
        tag_cursor,
    } = writes;
    let mut laps = crate::metrics::Laps::new("write_campaign_maintenance");
    db_tx!(db, |c| {
        for (uuid, cols) in &columns {
            diesel::update(campaigns::table.find(uuid))
                .set(cols)
                .execute(c)
                .await?;
        }
        laps.lap("columns");
        let (owners, edges): (Vec<String>, Vec<_>) = evidence.into_iter().unzip();
        for chunk in owners.chunks(IN_CHUNK) {
            diesel::delete(
                campaign_evidence::table.filter(campaign_evidence::campaign_uuid.eq_any(chunk)),
            )
            .execute(c)
            .await?;
        }
        let rows: Vec<_> = edges.into_iter().flatten().collect();
        if !rows.is_empty() {
            db_insert_batch!(c, campaign_evidence::table, rows)?;
        }
        laps.lap("evidence");
        replace_keys!(c, identity_cluster_keys, identity_uuid, keys);
        laps.lap("keys");
        mark_processed(&mut *c, Marker::IdentityCampaign, written).await?;
        mark_processed(&mut *c, Marker::IdentityCampaign, read).await?;
        laps.lap("mark");
        if let Some(log_id) = tag_cursor {
            let entry = crate::db::repo::ttp::campaign_tag_cursor_entry(log_id);
            diesel::insert_into(state::table)
                .values(&entry)
                .on_conflict(state::key)
                .do_update()
                .set(state::value.eq(diesel::upsert::excluded(state::value)))
                .execute(c)
                .await?;
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
    Ok(active_page!(db, campaigns, Campaign, limit, offset)?)
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

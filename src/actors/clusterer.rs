//! The Clusterer worker (spec clustering.md §3.4–§6): turns observations into identities.
//!
//! Shape shared with the CampaignClusterer ([`Wake`]): one tick at a time; events wake it
//! (coalesced by a short debounce), a slow tick is the fallback; a wake that lands while a
//! tick runs causes exactly one more tick afterwards (the pending flag is cleared right
//! before a tick reads). A tick reads, plans with the pure kernel on the blocking pool, applies
//! the plan in one transaction, writes roll-ups / counts / evidence in a second one (a failure
//! there is logged and never breaks the tick), and only then publishes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDateTime;
use futures::future::BoxFuture;

use crate::actors::tick_worker::{TickJob, TickOutcome, TickWorker};
use crate::actors::topics::{self, Event};
use crate::db::models::clustering::{
    Identity, IdentityMaintenance, NewIdentity, NewIdentityEvidence,
};
use crate::db::repo::clustering::{self as repo, ClusteringObservation};
use crate::db::{new_uuid, now_utc, Db, DbError};
use crate::domain::clustering::kernel::linking_keys;
use crate::domain::clustering::reconcile::EntityState;
use crate::domain::clustering::tick::{
    plan_identity_tick_decoded, DecodedRow, IdentityTick, ObservationRow,
};

/// Errors that end a tick early (logged; the tick counts as empty).
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("clustering task failed: {0}")]
    Join(String),
}

/// What one identity tick did (for events, counters and tests).
#[derive(Debug, Clone, Default)]
pub struct IdentityTickOutcome {
    pub observations: usize,
    pub formed: Vec<topics::IdentityFormed>,
    pub linked: Vec<topics::ObservationLinked>,
    pub merged: Vec<topics::Merged>,
    pub unmerged: Vec<topics::Unmerged>,
    /// `identity.formed` again for each resurrected identity (clustering.md §10.6), with the
    /// observations literally FK'd to it; published right after its `identity.unmerged`.
    pub resurrected: Vec<topics::IdentityFormed>,
    /// False when the maintenance transaction failed (logged).
    pub maintenance_ok: bool,
}

impl IdentityTickOutcome {
    /// The events of the tick, in publication order (spec §5).
    pub fn events(&self) -> Vec<Event> {
        let mut out = Vec::new();
        out.extend(self.formed.iter().cloned().map(Event::IdentityFormed));
        out.extend(
            self.linked
                .iter()
                .cloned()
                .map(Event::IdentityObservationLinked),
        );
        out.extend(self.merged.iter().cloned().map(Event::IdentityMerged));
        for u in &self.unmerged {
            out.push(Event::IdentityUnmerged(u.clone()));
            out.extend(
                self.resurrected
                    .iter()
                    .filter(|f| f.identity_uuid == u.resurrected_uuid)
                    .cloned()
                    .map(Event::IdentityFormed),
            );
        }
        out
    }
}

/// Observation count and first / last seen per identity uuid (literal FKs after the plan).
type Stats<'a> = HashMap<&'a str, (i64, NaiveDateTime, NaiveDateTime)>;

fn to_json_list(list: Option<&[String]>) -> Option<String> {
    crate::domain::clustering::rollup::encode_list(list)
}

/// Dirty observation rows read per query batch of the identity tick (see
/// [`read_identity_scope`]).
const DIRTY_ROWS_PER_READ: usize = 5_000;

/// The uuids in `found` not in `loaded`, each once.
fn unread<V>(loaded: &BTreeMap<String, V>, found: Vec<String>) -> Vec<String> {
    let mut missing: Vec<String> = found
        .into_iter()
        .filter(|u| !loaded.contains_key(u))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    missing
}

/// Read what an identity tick works on: the observations changed since the last tick, every
/// processed observation sharing a linking key with them, and every observation of every
/// identity connected to those (through FKs and merge pointers), together with those identities.
/// Components untouched by a change are neither read nor written: after a tick the stored state
/// is converged (one effective identity per component), so only a changed observation can move
/// anything, and the closure holds every row its component and merges depend on. `None` when
/// nothing changed.
async fn read_identity_scope(db: &Db) -> Result<Option<IdentityScope>, TickError> {
    let dirty_uuids = repo::list_dirty_observation_uuids(db).await?;
    let dirty_identities = repo::list_dirty_identity_uuids(db).await?;
    if dirty_uuids.is_empty() && dirty_identities.is_empty() {
        return Ok(None);
    }
    let mut laps = crate::metrics::Laps::new("read_identity_scope");
    // Each dirty row is decoded once: here for its linking keys, and the planner reuses it.
    // The rows are read DIRTY_ROWS_PER_READ at a time and each is decoded, its JSON text
    // released, before the next read: read whole, the SQLite driver held every row's text
    // twice (its own row buffers, then the row), ~500 MiB for the 100k dirty rows of a
    // first pass after a large ingest.
    let mut read: Vec<(ClusteringObservation, DecodedRow)> = Vec::with_capacity(dirty_uuids.len());
    for chunk in dirty_uuids.chunks(DIRTY_ROWS_PER_READ) {
        for mut o in repo::observations_by_uuid(db, chunk).await? {
            let d = o.row.decode_releasing();
            read.push((o, d));
        }
    }
    drop(dirty_uuids);
    // In `first_seen` order (then uuid), as the rows were read before.
    read.sort_by(|(a, _), (b, _)| {
        a.first_seen
            .cmp(&b.first_seen)
            .then_with(|| a.row.uuid.cmp(&b.row.uuid))
    });
    let (dirty, decoded): (Vec<ClusteringObservation>, Vec<DecodedRow>) = read.into_iter().unzip();
    laps.lap("dirty");
    let keys: Vec<(String, Vec<String>)> = dirty
        .iter()
        .zip(&decoded)
        .map(|(o, d)| (o.row.uuid.clone(), linking_keys(&d.observation)))
        .collect();
    let processed: Vec<(String, NaiveDateTime)> = dirty
        .iter()
        .map(|o| (o.row.uuid.clone(), o.updated_at))
        .collect();
    let wanted: Vec<String> = keys
        .iter()
        .flat_map(|(_, k)| k.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut loaded: BTreeMap<String, (ClusteringObservation, Option<DecodedRow>)> = dirty
        .into_iter()
        .zip(decoded)
        .map(|(o, d)| (o.row.uuid.clone(), (o, Some(d))))
        .collect();
    laps.lap("keys");
    // Uuids first, then the rows not read yet: the dirty rows already hold most of them (all of
    // them in a full pass, where reading whole rows again held every observation two or three
    // times: ~900 MiB at the 100k-attacker bench set).
    let missing = unread(
        &loaded,
        repo::observation_uuids_with_keys(db, &wanted).await?,
    );
    for o in repo::observations_by_uuid(db, &missing).await? {
        loaded.entry(o.row.uuid.clone()).or_insert((o, None));
    }
    laps.lap("with_keys");
    let seeds: BTreeSet<String> = loaded
        .values()
        .filter_map(|(o, _)| o.row.identity_id.clone())
        .chain(dirty_identities)
        .collect();
    let identities = repo::identity_merge_closure(db, &seeds).await?;
    let uuids: Vec<String> = identities.iter().map(|i| i.uuid.clone()).collect();
    let missing = unread(
        &loaded,
        repo::observation_uuids_of_identities(db, &uuids).await?,
    );
    for o in repo::observations_by_uuid(db, &missing).await? {
        loaded.entry(o.row.uuid.clone()).or_insert((o, None));
    }
    laps.lap("closure");
    let mut observations: Vec<(ClusteringObservation, Option<DecodedRow>)> =
        loaded.into_values().collect();
    observations.sort_by(|(a, _), (b, _)| {
        a.first_seen
            .cmp(&b.first_seen)
            .then_with(|| a.row.uuid.cmp(&b.row.uuid))
    });
    laps.lap("sort");
    Ok(Some(IdentityScope {
        observations,
        identities,
        processed,
        keys,
    }))
}

/// The rows one identity tick works on (see [`read_identity_scope`]).
struct IdentityScope {
    /// `first_seen` order, with the decoded row where the read already decoded it.
    observations: Vec<(ClusteringObservation, Option<DecodedRow>)>,
    /// `created_at` order, merged-out ones included.
    identities: Vec<Identity>,
    /// The changed observations with the `updated_at` read.
    processed: Vec<(String, NaiveDateTime)>,
    /// Their current linking keys.
    keys: Vec<(String, Vec<String>)>,
}

/// One identity tick against the database (no publishing). Reads only what changed since the
/// last tick and its closure ([`read_identity_scope`]); a tick with nothing new reads nothing
/// but two probes of the dirty-row indexes.
pub async fn run_identity_tick(db: &Db) -> Result<IdentityTickOutcome, TickError> {
    run_identity_tick_with_mint(db, new_uuid).await
}

/// [`run_identity_tick`] with the uuids of the identities it forms taken from `mint` (random
/// v4 in production). Merge direction follows uuid order, so tests that compare two runs
/// (e.g. the same rows on both backends) give both the same sequence.
pub async fn run_identity_tick_with_mint<M>(
    db: &Db,
    mut mint: M,
) -> Result<IdentityTickOutcome, TickError>
where
    M: FnMut() -> String + Send + 'static,
{
    let mut laps = crate::metrics::Laps::new("run_identity_tick");
    let Some(IdentityScope {
        observations,
        identities: stored,
        processed,
        keys,
    }) = read_identity_scope(db).await?
    else {
        return Ok(IdentityTickOutcome {
            maintenance_ok: true,
            ..Default::default()
        });
    };
    let entities: Vec<EntityState> = stored
        .iter()
        .map(|i| EntityState {
            uuid: i.uuid.clone(),
            merged_into: i.merged_into_uuid.clone(),
        })
        .collect();
    // The rows move to the planner and back: every row's strings are held once.
    let mut rows: Vec<ObservationRow> = Vec::with_capacity(observations.len());
    let mut seen: Vec<(NaiveDateTime, NaiveDateTime)> = Vec::with_capacity(observations.len());
    let mut decoded: Vec<Option<DecodedRow>> = Vec::with_capacity(observations.len());
    for (o, d) in observations {
        rows.push(o.row);
        seen.push((o.first_seen, o.last_seen));
        decoded.push(d);
    }
    laps.lap("read");
    let (tick, rows): (IdentityTick, Vec<ObservationRow>) =
        tokio::task::spawn_blocking(move || {
            let tick = plan_identity_tick_decoded(&rows, decoded, &entities, &mut mint);
            (tick, rows)
        })
        .await
        .map_err(|e| TickError::Join(e.to_string()))?;
    laps.lap("plan");
    let now = now_utc();

    // Literal FK of every observation after the plan, and the seen-times per identity.
    let mut literal: HashMap<&str, &str> = rows
        .iter()
        .filter_map(|r| r.identity_id.as_deref().map(|i| (r.uuid.as_str(), i)))
        .collect();
    for f in &tick.plan.formed {
        for m in &f.members {
            literal.insert(m.as_str(), f.uuid.as_str());
        }
    }
    for l in &tick.plan.linked {
        literal.insert(l.member.as_str(), l.entity.as_str());
    }
    let mut stats: Stats<'_> = HashMap::with_capacity(literal.len());
    for (r, &(first_seen, last_seen)) in rows.iter().zip(&seen) {
        if let Some(&identity) = literal.get(r.uuid.as_str()) {
            let e = stats.entry(identity).or_insert((0, first_seen, last_seen));
            e.0 += 1;
            e.1 = e.1.min(first_seen);
            e.2 = e.2.max(last_seen);
        }
    }
    let updates: HashMap<&str, &crate::domain::clustering::tick::IdentityUpdate> = tick
        .updates
        .iter()
        .map(|u| (u.identity_uuid.as_str(), u))
        .collect();

    // Transaction 1: the plan.
    let mut writes = repo::IdentityPlanWrites::default();
    for f in &tick.plan.formed {
        let (count, first, last) =
            stats
                .get(f.uuid.as_str())
                .copied()
                .unwrap_or((f.members.len() as i64, now, now));
        let u = updates.get(f.uuid.as_str());
        writes.new_identities.push(NewIdentity {
            uuid: f.uuid.clone(),
            schema_version: 1,
            first_seen_at: Some(first),
            last_seen_at: Some(last),
            created_at: now,
            updated_at: now,
            observation_count: count,
            ja3_hashes: u.and_then(|u| u.fingerprints.ja3_json()),
            hassh_hashes: u.and_then(|u| u.fingerprints.hassh_json()),
            tls_cert_sha256: u.and_then(|u| u.fingerprints.tls_cert_json()),
            payload_simhashes: u.and_then(|u| u.payload_simhashes_json()),
            c2_endpoints: u.and_then(|u| u.c2_endpoints_json()),
        });
        writes
            .links
            .extend(f.members.iter().map(|m| (m.clone(), f.uuid.clone())));
    }
    writes.links.extend(
        tick.plan
            .linked
            .iter()
            .map(|l| (l.member.clone(), l.entity.clone())),
    );
    writes.merge_pointers.extend(
        tick.plan
            .merged
            .iter()
            .map(|m| (m.loser.clone(), Some(m.winner.clone()))),
    );
    writes.merge_pointers.extend(
        tick.plan
            .unmerged
            .iter()
            .map(|u| (u.resurrected.clone(), None)),
    );
    let mut written: BTreeSet<String> = tick.plan.formed.iter().map(|f| f.uuid.clone()).collect();
    written.extend(writes.merge_pointers.iter().map(|(u, _)| u.clone()));
    writes.processed = processed;
    writes.keys = keys;
    laps.lap("prepare");
    if !tick.plan.is_quiet() || !writes.processed.is_empty() {
        repo::apply_identity_plan(db, writes, now).await?;
    }
    laps.lap("apply");

    // Transaction 2: maintenance of existing rows (roll-ups, counts, first/last seen) and
    // evidence of changed identities. Only differences are written (idempotent ticks).
    let mut maintenance = identity_maintenance(&stored, &stats, &tick, now);
    written.extend(maintenance.columns.iter().map(|(u, _)| u.clone()));
    maintenance.read = stored
        .iter()
        .filter(|i| !written.contains(&i.uuid))
        .map(|i| (i.uuid.clone(), i.updated_at))
        .collect();
    maintenance.written = written.into_iter().collect();
    laps.lap("prepare_maintenance");
    let maintenance_ok = if maintenance.is_empty() {
        true
    } else {
        match repo::write_identity_maintenance(db, maintenance).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "clusterer: roll-up/evidence write failed; kept the tick");
                false
            }
        }
    };

    laps.lap("maintenance");
    let resurrected = tick
        .plan
        .unmerged
        .iter()
        .map(|u| topics::IdentityFormed {
            identity_uuid: u.resurrected.clone(),
            observation_uuids: rows
                .iter()
                .filter(|r| literal.get(r.uuid.as_str()).copied() == Some(u.resurrected.as_str()))
                .map(|r| r.uuid.clone())
                .collect(),
        })
        .collect();
    Ok(IdentityTickOutcome {
        observations: rows.len(),
        resurrected,
        formed: tick
            .plan
            .formed
            .iter()
            .map(|f| topics::IdentityFormed {
                identity_uuid: f.uuid.clone(),
                observation_uuids: f.members.clone(),
            })
            .collect(),
        linked: tick
            .plan
            .linked
            .iter()
            .map(|l| topics::ObservationLinked {
                identity_uuid: l.entity.clone(),
                observation_uuid: l.member.clone(),
            })
            .collect(),
        merged: tick
            .plan
            .merged
            .iter()
            .map(|m| topics::Merged {
                winner_uuid: m.winner.clone(),
                loser_uuid: m.loser.clone(),
            })
            .collect(),
        unmerged: tick
            .plan
            .unmerged
            .iter()
            .map(|u| topics::Unmerged {
                resurrected_uuid: u.resurrected.clone(),
                former_winner_uuid: u.former_winner.clone(),
            })
            .collect(),
        maintenance_ok,
    })
}

/// The maintenance writes: for every stored identity, the wanted counts / seen-times (literal
/// FK) and, when it is a tick target, roll-ups; written only where they differ. Evidence is
/// replaced for every changed target.
fn identity_maintenance(
    stored: &[Identity],
    stats: &Stats<'_>,
    tick: &IdentityTick,
    now: NaiveDateTime,
) -> repo::IdentityMaintenanceWrites {
    let updates: HashMap<&str, &crate::domain::clustering::tick::IdentityUpdate> = tick
        .updates
        .iter()
        .map(|u| (u.identity_uuid.as_str(), u))
        .collect();
    let formed: BTreeSet<&str> = tick.plan.formed.iter().map(|f| f.uuid.as_str()).collect();
    let mut out = repo::IdentityMaintenanceWrites::default();
    for row in stored {
        let current = IdentityMaintenance::of(row);
        let mut wanted = current.clone();
        if let Some(&(count, first, last)) = stats.get(row.uuid.as_str()) {
            wanted.observation_count = count;
            wanted.first_seen_at = Some(first);
            wanted.last_seen_at = Some(last);
        }
        if let Some(u) = updates.get(row.uuid.as_str()) {
            wanted.ja3_hashes = u.fingerprints.ja3_json();
            wanted.hassh_hashes = u.fingerprints.hassh_json();
            wanted.tls_cert_sha256 = u.fingerprints.tls_cert_json();
            wanted.payload_simhashes = to_json_list(u.payload_simhashes.as_deref());
            wanted.c2_endpoints = to_json_list(u.c2_endpoints.as_deref());
        }
        if !wanted.same_content(&current) {
            wanted.updated_at = now;
            out.columns.push((row.uuid.clone(), wanted));
        }
    }
    for u in tick.updates.iter().filter(|u| u.changed) {
        let edges = u
            .evidence
            .iter()
            .map(|e| NewIdentityEvidence {
                identity_uuid: u.identity_uuid.clone(),
                observation_a: e.a.clone(),
                observation_b: e.b.clone(),
                signal: e.signal.as_str().to_owned(),
                value: e.value.clone(),
                weight: e.weight,
                created_at: now,
            })
            .collect::<Vec<_>>();
        if !(formed.contains(u.identity_uuid.as_str()) && edges.is_empty()) {
            out.evidence.push((u.identity_uuid.clone(), edges));
        }
    }
    out
}

/// The identity level as a [`TickJob`].
pub struct IdentityJob;

impl TickOutcome for IdentityTickOutcome {
    fn items(&self) -> usize {
        self.observations
    }
    fn events(&self) -> Vec<Event> {
        IdentityTickOutcome::events(self)
    }
}

impl TickJob for IdentityJob {
    const NAME: &'static str = "clusterer";
    // Every attacker.* event may bring a new observation or fingerprint (spec §10.9).
    const WAKE_PATTERN: &'static str = "attacker.>";
    type Outcome = IdentityTickOutcome;

    fn run(db: Db) -> BoxFuture<'static, Result<IdentityTickOutcome, TickError>> {
        Box::pin(async move { run_identity_tick(&db).await })
    }
}

/// The `clusterer` worker.
pub type Clusterer = TickWorker<IdentityJob>;

//! The CampaignClusterer worker (spec clustering.md §4.3, §5, §6): groups active identities
//! into campaigns. Same loop shape as the [`Clusterer`](super::clusterer::Clusterer); wakes on
//! `identity.>` except its own cross-family `identity.campaign.assigned` copies.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDateTime;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::actors::clusterer::TickError;
use crate::actors::tick_worker::{TickJob, TickOutcome, TickWorker};
use crate::actors::topics::{self, Event};
use crate::db::models::clustering::{
    Campaign, CampaignMaintenance, NewCampaign, NewCampaignEvidence,
};
use crate::db::repo::clustering::{self as repo, ClusteringIdentity};
use crate::db::{new_uuid, now_utc, Db};
use crate::domain::clustering::campaign::{
    candidate_keys, handoff_windows, ukc_phase_for_tactic, IdentityFeatures, TtpPhaseEntry,
};
use crate::domain::clustering::chain::MergeChain;
use crate::domain::clustering::reconcile::EntityState;
use crate::domain::clustering::tick::{plan_campaign_tick, CampaignTick, IdentityRow};

/// The topic of our own cross-family copies, which must not wake us again.
const OWN_ECHO: &str = "identity.campaign.assigned";

/// What one campaign tick did.
#[derive(Debug, Clone, Default)]
pub struct CampaignTickOutcome {
    pub identities: usize,
    pub formed: Vec<topics::CampaignFormed>,
    pub assigned: Vec<topics::CampaignAssigned>,
    pub merged: Vec<topics::Merged>,
    pub unmerged: Vec<topics::Unmerged>,
    pub maintenance_ok: bool,
}

impl CampaignTickOutcome {
    /// The events of the tick in publication order (spec §5): each formed campaign followed by
    /// one `identity.campaign.assigned` per member; each assignment followed by its
    /// cross-family copy; then merges; then unmerges.
    pub fn events(&self) -> Vec<Event> {
        let mut out = Vec::new();
        for f in &self.formed {
            out.push(Event::CampaignFormed(f.clone()));
            for identity in &f.identity_uuids {
                out.push(Event::IdentityCampaignAssigned(topics::CampaignAssigned {
                    identity_uuid: identity.clone(),
                    campaign_uuid: f.campaign_uuid.clone(),
                    prior_campaign_uuid: None,
                }));
            }
        }
        for a in &self.assigned {
            out.push(Event::CampaignIdentityAssigned(a.clone()));
            out.push(Event::IdentityCampaignAssigned(a.clone()));
        }
        out.extend(self.merged.iter().cloned().map(Event::CampaignMerged));
        out.extend(self.unmerged.iter().cloned().map(Event::CampaignUnmerged));
        out
    }
}

/// Changed identities above this many make the campaign tick read every identity instead of
/// looking up neighbours one changed identity at a time (the first tick over an existing
/// database, a large backlog): beyond it the per-identity lookups cost more than one full read.
pub const FULL_CAMPAIGN_SCOPE_ABOVE: usize = 2_000;

/// The rows one campaign tick works on.
struct CampaignScope {
    /// Every identity the tick needs (merged-out ones are filtered by the plan), `created_at`
    /// order.
    identities: Vec<ClusteringIdentity>,
    /// Phase entries of the active ones.
    phases: HashMap<String, Vec<TtpPhaseEntry>>,
    /// The campaigns of their merge closure, `created_at` order.
    campaigns: Vec<StoredCampaign>,
    /// The changed identities (their candidate keys are replaced, markers set).
    changed: BTreeSet<String>,
    tag_cursor: Option<i64>,
}

/// What the tick uses of a stored campaign: its merge pointer and the columns it maintains.
/// A full pass holds every campaign through the plan and the writes; the whole rows (fifteen
/// columns, the roll-up lists among them) were the largest single allocation of the plan's
/// peak on the 100k-attacker bench set (~18 MB for 25 000 campaigns).
struct StoredCampaign {
    uuid: String,
    merged_into_uuid: Option<String>,
    maintained: CampaignMaintenance,
}

/// The slim form of every row in `rows`, built as the rows are dropped.
fn stored_campaigns(rows: Vec<Campaign>) -> Vec<StoredCampaign> {
    rows.into_iter()
        .map(|c| StoredCampaign {
            maintained: CampaignMaintenance::of(&c),
            uuid: c.uuid,
            merged_into_uuid: c.merged_into_uuid,
        })
        .collect()
}

/// Phase maps of the active identities `uuids`: the tags of every observation literally FK'd
/// to one of them or to an identity merged into one of them (any depth). A merged-out identity
/// is left out of the campaign kernel and represented by its winner, so its observations' tags
/// count for the winner, as its payload and C2 roll-ups already do; by the literal FK alone
/// they would count for no one, and which side of a merge keeps them would follow the uuid
/// order of the two identities (random), so the same rows gave different campaigns from run
/// to run. (clustering.md §2.4's `list_ttp_decky_phases` reads the literal FK only.) A failed
/// read fails the tick: the tick marks what it read as processed and moves
/// the tag cursor, so a tick without phase data would never read those tags again
/// (clustering.md §4.3's "warning, not an error" assumed every tick re-read everything; the
/// next tick retries instead).
async fn phases_of(
    db: &Db,
    uuids: &[String],
) -> Result<HashMap<String, Vec<TtpPhaseEntry>>, TickError> {
    let read = async {
        let active: BTreeSet<String> = uuids.iter().cloned().collect();
        let closure = repo::identity_merge_closure(db, &active).await?;
        let chain = MergeChain::new(
            closure
                .iter()
                .map(|i| (i.uuid.as_str(), i.merged_into_uuid.as_deref())),
        );
        let literal: Vec<String> = closure
            .iter()
            .filter(|i| active.contains(chain.resolve_ref(&i.uuid)))
            .map(|i| i.uuid.clone())
            .collect();
        crate::db::repo::ttp::ttp_decky_phases_of(db, &literal, |l| {
            let owner = chain.resolve_ref(l);
            active.contains(owner).then(|| owner.to_owned())
        })
        .await
    };
    read.await.map_err(|e| {
        tracing::warn!(error = %e, "campaign-clusterer: TTP phase read failed; tick retried later");
        TickError::from(e)
    })
}

fn epoch(t: f64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(t.floor() as i64, 0)
        .map(|d| d.naive_utc())
        .unwrap_or_default()
}

/// Read what a campaign tick works on: the identities changed since the last tick (markers,
/// and the identities of observations tagged since the tag cursor), their possible partners
/// (shared token or keystroke band through the stored keys, handoff partners through the tags
/// on the same decky inside the window), and every identity of every campaign connected to
/// those. `None` when nothing changed.
async fn read_campaign_scope(db: &Db) -> Result<Option<CampaignScope>, TickError> {
    // Pointers first: above the threshold every identity is read anyway.
    let dirty = repo::list_campaign_dirty_identity_pointers(db).await?;
    let (tagged, tag_cursor) = crate::db::repo::ttp::identities_tagged_since_cursor(db).await?;
    if dirty.is_empty() && tagged.is_empty() && tag_cursor.is_none() {
        return Ok(None);
    }
    // uuid → merged_into_uuid of every changed identity; whole rows where already read.
    let mut pointers: BTreeMap<String, Option<String>> = dirty.into_iter().collect();
    let mut loaded: BTreeMap<String, ClusteringIdentity> = BTreeMap::new();
    let missing: Vec<String> = tagged
        .into_iter()
        .filter(|u| !pointers.contains_key(u))
        .collect();
    for i in repo::identities_by_uuid(db, &missing).await? {
        pointers
            .entry(i.row.uuid.clone())
            .or_insert_with(|| i.row.merged_into_uuid.clone());
        loaded.entry(i.row.uuid.clone()).or_insert(i);
    }
    let mut changed: BTreeSet<String> = pointers.keys().cloned().collect();
    // A merged-out identity is represented by its winner.
    let winners: Vec<String> = pointers
        .values()
        .flatten()
        .filter(|w| !pointers.contains_key(*w))
        .cloned()
        .collect();
    if !winners.is_empty() {
        let closure = repo::identity_merge_closure(db, &winners.into_iter().collect()).await?;
        let active: Vec<String> = closure
            .into_iter()
            .filter(|i| i.merged_into_uuid.is_none() && !pointers.contains_key(&i.uuid))
            .map(|i| i.uuid)
            .collect();
        for i in repo::identities_by_uuid(db, &active).await? {
            changed.insert(i.row.uuid.clone());
            pointers
                .entry(i.row.uuid.clone())
                .or_insert_with(|| i.row.merged_into_uuid.clone());
            loaded.entry(i.row.uuid.clone()).or_insert(i);
        }
    }

    if changed.len() > FULL_CAMPAIGN_SCOPE_ABOVE {
        let mut laps = crate::metrics::Laps::new("read_campaign_scope(full)");
        let identities = repo::list_identities_for_clustering(db, None).await?;
        laps.lap("identities");
        // Tags of merged-out identities count for their winners (see [`phases_of`]).
        let chain = MergeChain::new(
            identities
                .iter()
                .map(|i| (i.row.uuid.as_str(), i.row.merged_into_uuid.as_deref())),
        );
        // Features read only each decky's first and last counted entry: the read keeps those.
        let phases = crate::db::repo::ttp::ttp_decky_phase_bounds_owned(
            db,
            |l| Some(chain.resolve_ref(l).to_owned()),
            |tactic| ukc_phase_for_tactic(tactic).is_some(),
        )
        .await?;
        laps.lap("phases");
        let campaigns = stored_campaigns(repo::list_all_campaigns(db).await?);
        laps.lap("campaigns");
        return Ok(Some(CampaignScope {
            identities,
            phases,
            campaigns,
            changed,
            tag_cursor,
        }));
    }

    // The whole rows of the changed identities not read yet.
    let unread: Vec<String> = pointers
        .keys()
        .filter(|u| !loaded.contains_key(*u))
        .cloned()
        .collect();
    for i in repo::identities_by_uuid(db, &unread).await? {
        loaded.entry(i.row.uuid.clone()).or_insert(i);
    }

    // Partners of the changed active identities.
    let active: Vec<String> = loaded
        .values()
        .filter(|i| i.row.merged_into_uuid.is_none())
        .map(|i| i.row.uuid.clone())
        .collect();
    let mut phases = phases_of(db, &active).await?;
    let mut keys: BTreeSet<String> = BTreeSet::new();
    let mut partners: BTreeSet<String> = BTreeSet::new();
    for uuid in &active {
        let Some(i) = loaded.get(uuid) else { continue };
        let f = features_of(i, &phases);
        keys.extend(candidate_keys(&f));
        for w in handoff_windows(&f) {
            // Whole seconds on both ends, widened by one: never narrower than the window.
            let ids = crate::db::repo::ttp::identities_tagged_in(
                db,
                &w.decky,
                epoch(w.from - 1.0),
                epoch(w.to + 1.0),
            )
            .await?;
            partners.extend(ids);
        }
    }
    let keys: Vec<String> = keys.into_iter().collect();
    for i in repo::identities_with_keys(db, &keys).await? {
        loaded.entry(i.row.uuid.clone()).or_insert(i);
    }
    let partners: Vec<String> = partners
        .into_iter()
        .filter(|u| !loaded.contains_key(u))
        .collect();
    // A tag found in a handoff window may be on an observation FK'd to a merged-out identity:
    // the partner is the identity that represents it.
    let mut represented: BTreeSet<String> = BTreeSet::new();
    for i in repo::identities_by_uuid(db, &partners).await? {
        if i.row.merged_into_uuid.is_some() {
            represented.insert(i.row.uuid.clone());
        }
        loaded.entry(i.row.uuid.clone()).or_insert(i);
    }
    if !represented.is_empty() {
        let winners: Vec<String> = repo::identity_merge_closure(db, &represented)
            .await?
            .into_iter()
            .filter(|i| i.merged_into_uuid.is_none() && !loaded.contains_key(&i.uuid))
            .map(|i| i.uuid)
            .collect();
        for i in repo::identities_by_uuid(db, &winners).await? {
            loaded.entry(i.row.uuid.clone()).or_insert(i);
        }
    }

    // Every identity of every campaign connected to those.
    let seeds: BTreeSet<String> = loaded
        .values()
        .filter_map(|i| i.row.campaign_id.clone())
        .collect();
    let campaigns = stored_campaigns(repo::campaign_merge_closure(db, &seeds).await?);
    let uuids: Vec<String> = campaigns.iter().map(|c| c.uuid.clone()).collect();
    for i in repo::identities_of_campaigns(db, &uuids).await? {
        loaded.entry(i.row.uuid.clone()).or_insert(i);
    }
    let active_set: BTreeSet<&str> = active.iter().map(String::as_str).collect();
    let missing: Vec<String> = loaded
        .values()
        .filter(|i| i.row.merged_into_uuid.is_none() && !phases.contains_key(&i.row.uuid))
        .map(|i| i.row.uuid.clone())
        .filter(|u| !active_set.contains(u.as_str()))
        .collect();
    phases.extend(phases_of(db, &missing).await?);
    let mut identities: Vec<ClusteringIdentity> = loaded.into_values().collect();
    identities.sort_by(|a, b| a.row.uuid.cmp(&b.row.uuid));
    Ok(Some(CampaignScope {
        identities,
        phases,
        campaigns,
        changed,
        tag_cursor,
    }))
}

fn features_of(
    i: &ClusteringIdentity,
    phases: &HashMap<String, Vec<TtpPhaseEntry>>,
) -> IdentityFeatures {
    IdentityFeatures::from_stored(
        &i.row.uuid,
        i.row.payload_simhashes.as_deref(),
        i.row.c2_endpoints.as_deref(),
        i.row.kd_digraph_simhash.as_deref(),
        phases
            .get(&i.row.uuid)
            .map(Vec::as_slice)
            .unwrap_or_default(),
    )
}

/// One campaign tick against the database (no publishing). Phase maps come from the stored
/// TTP tags; a failing read fails the tick, which the next one retries (see [`phases_of`]).
/// Reads only what changed since the last tick and its closure ([`read_campaign_scope`]).
pub async fn run_campaign_tick(db: &Db) -> Result<CampaignTickOutcome, TickError> {
    run_campaign_tick_with_mint(db, new_uuid).await
}

/// [`run_campaign_tick`] with the uuids of the campaigns it forms taken from `mint` (random v4
/// in production; see [`run_identity_tick_with_mint`](super::clusterer::run_identity_tick_with_mint)).
pub async fn run_campaign_tick_with_mint<M>(
    db: &Db,
    mut mint: M,
) -> Result<CampaignTickOutcome, TickError>
where
    M: FnMut() -> String + Send + 'static,
{
    let mut laps = crate::metrics::Laps::new("run_campaign_tick");
    let Some(CampaignScope {
        identities: scope,
        phases,
        campaigns: stored,
        changed,
        tag_cursor,
    }) = read_campaign_scope(db).await?
    else {
        return Ok(CampaignTickOutcome {
            maintenance_ok: true,
            ..Default::default()
        });
    };
    // The rows move to the planner and back: every row's strings are held once.
    type Times = (Option<NaiveDateTime>, Option<NaiveDateTime>, NaiveDateTime);
    let (rows, times): (Vec<IdentityRow>, Vec<Times>) = scope
        .into_iter()
        .map(|i| (i.row, (i.first_seen_at, i.last_seen_at, i.updated_at)))
        .unzip();
    let active = rows.iter().filter(|r| r.merged_into_uuid.is_none()).count();
    let entities: Vec<EntityState> = stored
        .iter()
        .map(|c| EntityState {
            uuid: c.uuid.clone(),
            merged_into: c.merged_into_uuid.clone(),
        })
        .collect();
    laps.lap("read");
    let (mut tick, rows): (CampaignTick, Vec<IdentityRow>) =
        tokio::task::spawn_blocking(move || {
            let tick = plan_campaign_tick(&rows, phases, &entities, &mut mint);
            (tick, rows)
        })
        .await
        .map_err(|e| TickError::Join(e.to_string()))?;
    laps.lap("plan");
    let now = now_utc();
    // The candidate keys of the changed identities are all the features are still needed
    // for: taken now, the features (every active identity's deckies and phases, the largest
    // thing a full tick holds) are freed before the writes.
    let keys: Vec<(String, Vec<String>)> = {
        let features: HashMap<&str, &IdentityFeatures> = tick
            .features
            .iter()
            .map(|f| (f.identity_uuid.as_str(), f))
            .collect();
        changed
            .iter()
            .map(|u| {
                let keys = features
                    .get(u.as_str())
                    .map(|f| candidate_keys(f))
                    .unwrap_or_default();
                (u.clone(), keys)
            })
            .collect()
    };
    tick.features = Vec::new();

    // Literal campaign of every active identity after the plan → count and span per campaign.
    let mut literal: BTreeMap<&str, &str> = rows
        .iter()
        .filter(|r| r.merged_into_uuid.is_none())
        .filter_map(|r| r.campaign_id.as_deref().map(|c| (r.uuid.as_str(), c)))
        .collect();
    for f in &tick.plan.formed {
        for m in &f.members {
            literal.insert(m.as_str(), f.uuid.as_str());
        }
    }
    for l in &tick.plan.linked {
        literal.insert(l.member.as_str(), l.entity.as_str());
    }
    let mut spans: BTreeMap<String, Span> = BTreeMap::new();
    for (r, &(first_seen_at, last_seen_at, _)) in rows.iter().zip(&times) {
        if let Some(&campaign) = literal.get(r.uuid.as_str()) {
            spans
                .entry(campaign.to_owned())
                .or_default()
                .add(first_seen_at, last_seen_at);
        }
    }

    let mut writes = repo::CampaignPlanWrites::default();
    for f in &tick.plan.formed {
        let span = spans.get(&f.uuid).cloned().unwrap_or_default();
        writes.new_campaigns.push(NewCampaign {
            uuid: f.uuid.clone(),
            schema_version: 1,
            first_seen_at: span.first.or(Some(now)),
            last_seen_at: span.last.or(Some(now)),
            created_at: now,
            updated_at: now,
            identity_count: f.members.len() as i64,
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
    let written: BTreeSet<String> = writes.links.iter().map(|(i, _)| i.clone()).collect();
    laps.lap("prepare");
    if !tick.plan.is_quiet() {
        repo::apply_campaign_plan(db, writes, now).await?;
    }
    laps.lap("apply");

    let mut maintenance = campaign_maintenance(&stored, &spans, &tick, now);
    maintenance.keys = keys;
    maintenance.read = rows
        .iter()
        .zip(&times)
        .filter(|(r, _)| changed.contains(&r.uuid) && !written.contains(&r.uuid))
        .map(|(r, &(_, _, updated_at))| (r.uuid.clone(), updated_at))
        .collect();
    // The links stamped `updated_at = now` (apply_campaign_plan).
    maintenance.written = written.into_iter().map(|u| (u, now)).collect();
    maintenance.tag_cursor = tag_cursor;
    laps.lap("prepare_maintenance");
    let maintenance_ok = if maintenance.is_empty() {
        true
    } else {
        match repo::write_campaign_maintenance(db, maintenance).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "campaign-clusterer: count/evidence write failed; kept the tick");
                false
            }
        }
    };
    laps.lap("maintenance");

    Ok(CampaignTickOutcome {
        identities: active,
        formed: tick
            .plan
            .formed
            .iter()
            .map(|f| topics::CampaignFormed {
                campaign_uuid: f.uuid.clone(),
                identity_uuids: f.members.clone(),
            })
            .collect(),
        assigned: tick
            .plan
            .linked
            .iter()
            .map(|l| topics::CampaignAssigned {
                identity_uuid: l.member.clone(),
                campaign_uuid: l.entity.clone(),
                prior_campaign_uuid: None,
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

/// Count and first/last seen of the active identities of one campaign.
#[derive(Debug, Clone, Default)]
struct Span {
    count: i64,
    first: Option<NaiveDateTime>,
    last: Option<NaiveDateTime>,
}

impl Span {
    fn add(&mut self, first: Option<NaiveDateTime>, last: Option<NaiveDateTime>) {
        self.count += 1;
        self.first = match (self.first, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = match (self.last, last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// The maintenance writes: for every campaign of the scope with active members, the wanted
/// count and span, written only where they differ (so `updated_at` moves only on a real
/// change, clustering.md §10.10); evidence replaced for every changed target.
fn campaign_maintenance(
    stored: &[StoredCampaign],
    spans: &BTreeMap<String, Span>,
    tick: &CampaignTick,
    now: NaiveDateTime,
) -> repo::CampaignMaintenanceWrites {
    // A set, not a scan per update: a first tick forms one campaign per identity.
    let formed: BTreeSet<&str> = tick.plan.formed.iter().map(|f| f.uuid.as_str()).collect();
    let mut out = repo::CampaignMaintenanceWrites::default();
    for row in stored {
        let Some(span) = spans.get(&row.uuid) else {
            continue;
        };
        let current = &row.maintained;
        let wanted = CampaignMaintenance {
            identity_count: span.count,
            first_seen_at: span.first.or(current.first_seen_at),
            last_seen_at: span.last.or(current.last_seen_at),
            updated_at: now,
        };
        if !wanted.same_content(current) {
            out.columns.push((row.uuid.clone(), wanted));
        }
    }
    for u in tick.updates.iter().filter(|u| u.changed) {
        let edges: Vec<NewCampaignEvidence> = u
            .evidence
            .iter()
            .map(|e| NewCampaignEvidence {
                campaign_uuid: u.campaign_uuid.clone(),
                identity_a: e.a.clone(),
                identity_b: e.b.clone(),
                weight: e.score.weight,
                handoff: e.score.handoff,
                shared_infra: e.score.shared_infra,
                overlap: e.score.overlap,
                cohort: e.score.cohort,
                keystroke: e.score.keystroke,
                handoff_decky: e.score.handoff_decky.clone(),
                shared_tokens: Value::from(e.score.shared_tokens.clone()).to_string(),
                created_at: now,
                handoff_corroboration: e.score.handoff_corroboration.map(|c| c.as_str().to_owned()),
                handoff_deckies: Value::from(e.score.handoff_deckies.clone()).to_string(),
            })
            .collect();
        if !(formed.contains(u.campaign_uuid.as_str()) && edges.is_empty()) {
            out.evidence.push((u.campaign_uuid.clone(), edges));
        }
    }
    out
}

/// The campaign level as a [`TickJob`].
pub struct CampaignJob;

impl TickOutcome for CampaignTickOutcome {
    fn items(&self) -> usize {
        self.identities
    }
    fn events(&self) -> Vec<Event> {
        CampaignTickOutcome::events(self)
    }
}

impl TickJob for CampaignJob {
    const NAME: &'static str = "campaign-clusterer";
    const WAKE_PATTERN: &'static str = "identity.>";
    /// New TTP tags change the phase maps.
    const EXTRA_WAKE_PATTERNS: &'static [&'static str] = &["ttp.tagged"];
    type Outcome = CampaignTickOutcome;

    fn run(db: Db) -> BoxFuture<'static, Result<CampaignTickOutcome, TickError>> {
        Box::pin(async move { run_campaign_tick(&db).await })
    }

    /// Our own cross-family copies must not wake us again.
    fn wakes_on(topic: &str) -> bool {
        topic != OWN_ECHO
    }
}

/// The `campaign-clusterer` worker.
pub type CampaignClusterer = TickWorker<CampaignJob>;

//! The CampaignClusterer worker (spec clustering.md §4.3, §5, §6): groups active identities
//! into campaigns. Same loop shape as the [`Clusterer`](super::clusterer::Clusterer); wakes on
//! `identity.>` except its own cross-family `identity.campaign.assigned` copies.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDateTime;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::actors::clusterer::TickError;
use crate::actors::tick_worker::{TickJob, TickOutcome, TickWorker};
use crate::actors::topics::{self, Event};
use crate::db::models::clustering::{Campaign, NewCampaign, NewCampaignEvidence};
use crate::db::repo::clustering as repo;
use crate::db::{new_uuid, now_utc, Db};
use crate::domain::clustering::reconcile::EntityState;
use crate::domain::clustering::tick::{plan_campaign_tick, CampaignTick};

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

/// One campaign tick against the database (no publishing). Phase maps come from the stored
/// TTP tags ([`crate::db::repo::ttp::ttp_decky_phases`]); a failing read gives no phase data
/// (warning, not an error — spec §4.3).
pub async fn run_campaign_tick(db: &Db) -> Result<CampaignTickOutcome, TickError> {
    let rows = repo::list_identities_for_clustering(db, None).await?;
    let active = rows.iter().filter(|r| r.merged_into_uuid.is_none()).count();
    if active == 0 {
        return Ok(CampaignTickOutcome {
            maintenance_ok: true,
            ..Default::default()
        });
    }
    let stored = repo::list_all_campaigns(db).await?;
    let entities: Vec<EntityState> = stored
        .iter()
        .map(|c| EntityState {
            uuid: c.uuid.clone(),
            merged_into: c.merged_into_uuid.clone(),
        })
        .collect();
    let phases = match crate::db::repo::ttp::ttp_decky_phases(db).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "campaign-clusterer: TTP phase read failed; no phase data this tick");
            HashMap::new()
        }
    };
    let input = rows.clone();
    let tick: CampaignTick = tokio::task::spawn_blocking(move || {
        plan_campaign_tick(&input, &phases, &entities, &mut new_uuid)
    })
    .await
    .map_err(|e| TickError::Join(e.to_string()))?;
    let now = now_utc();

    let mut writes = repo::CampaignPlanWrites::default();
    for f in &tick.plan.formed {
        writes.new_campaigns.push(NewCampaign {
            uuid: f.uuid.clone(),
            schema_version: 1,
            first_seen_at: Some(now),
            last_seen_at: Some(now),
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
    if !tick.plan.is_quiet() {
        repo::apply_campaign_plan(db, writes, now).await?;
    }

    // Literal campaign of every active identity after the plan → identity_count per campaign.
    let mut literal: BTreeMap<String, String> = rows
        .iter()
        .filter(|r| r.merged_into_uuid.is_none())
        .filter_map(|r| r.campaign_id.clone().map(|c| (r.uuid.clone(), c)))
        .collect();
    for f in &tick.plan.formed {
        for m in &f.members {
            literal.insert(m.clone(), f.uuid.clone());
        }
    }
    for l in &tick.plan.linked {
        literal.insert(l.member.clone(), l.entity.clone());
    }
    let maintenance = campaign_maintenance(&stored, &literal, &tick, now);
    let maintenance_ok = if maintenance.counts.is_empty() && maintenance.evidence.is_empty() {
        true
    } else {
        match repo::write_campaign_maintenance(db, maintenance, now).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "campaign-clusterer: count/evidence write failed; kept the tick");
                false
            }
        }
    };

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

fn campaign_maintenance(
    stored: &[Campaign],
    literal: &BTreeMap<String, String>,
    tick: &CampaignTick,
    now: NaiveDateTime,
) -> repo::CampaignMaintenanceWrites {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for campaign in literal.values() {
        *counts.entry(campaign.as_str()).or_default() += 1;
    }
    let mut out = repo::CampaignMaintenanceWrites::default();
    for row in stored {
        if let Some(&n) = counts.get(row.uuid.as_str()) {
            if n != row.identity_count {
                out.counts.push((row.uuid.clone(), n));
            }
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
        let formed = tick.plan.formed.iter().any(|f| f.uuid == u.campaign_uuid);
        if !(formed && edges.is_empty()) {
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

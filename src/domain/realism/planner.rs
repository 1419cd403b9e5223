//! The realism planner (realism.md §4.2–§4.3, §4.8, §5.2–§5.4): picks the next action from
//! plain data and a caller-supplied RNG. Deterministic for a seeded RNG.

use chrono::{DateTime, Utc};
use rand::seq::SliceRandom;
use rand::Rng;

use super::bodies::{make_body, BodyContext};
use super::classes::ContentClass;
use super::config::{weighted_pick, RealismWeights};
use super::hours::ActiveWindow;
use super::mtime::{sample_mtime, MtimeBounds};
use super::naming::make_path;
use super::persona::Persona;

/// Share of ticks that leave the fleet alone.
pub const IDLE_PROBABILITY: f64 = 0.10;
/// Roll threshold below which an edit happens when a candidate exists (10 % idle + 30 % edit).
pub const EDIT_THRESHOLD: f64 = 0.40;
/// Share of non-canary creates that are user (vs system) content.
pub const USER_CLASS_SHARE: f64 = 0.7;
/// Probability that a file tick prefetches an edit candidate (§5.4 step 2).
pub const EDIT_PREFETCH_PROBABILITY: f64 = 0.5;

/// One running decky with its resolved personas (§5.4 step 1).
#[derive(Debug, Clone, Copy)]
pub struct PlannerDecky<'a> {
    /// Union-view id (§2).
    pub uuid: &'a str,
    pub name: &'a str,
    pub personas: &'a [Persona],
}

/// A `synthetic_files` row offered for an in-place edit (§4.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditCandidate {
    pub synthetic_file_uuid: String,
    pub decky_uuid: String,
    pub decky_name: String,
    pub path: String,
    pub persona: String,
    /// Raw wire value from the row; unknown values yield no plan.
    pub content_class: String,
    pub last_body: String,
}

/// What a plan does to its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanAction {
    Create,
    Edit,
    /// Reserved; never produced.
    Rotate,
}

impl PlanAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            PlanAction::Create => "create",
            PlanAction::Edit => "edit",
            PlanAction::Rotate => "rotate",
        }
    }
}

/// Action-specific plan data. An edit always carries the body it mutates, so an edit plan
/// without `previous_body` cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanDetail {
    Create {
        /// Template body; `None` for canaries (the planter builds their bytes).
        body_hint: Option<String>,
    },
    Edit {
        previous_body: String,
        synthetic_file_uuid: String,
    },
}

/// The planner's decision for one file tick (§4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub decky_uuid: String,
    pub decky_name: String,
    /// Persona display name.
    pub persona: String,
    pub content_class: ContentClass,
    /// Absolute container path; empty for canaries (the planter chooses).
    pub target_path: String,
    pub mtime: DateTime<Utc>,
    pub detail: PlanDetail,
    pub notes: Vec<String>,
}

impl Plan {
    pub fn action(&self) -> PlanAction {
        match self.detail {
            PlanDetail::Create { .. } => PlanAction::Create,
            PlanDetail::Edit { .. } => PlanAction::Edit,
        }
    }

    pub fn body_hint(&self) -> Option<&str> {
        match &self.detail {
            PlanDetail::Create { body_hint } => body_hint.as_deref(),
            PlanDetail::Edit { .. } => None,
        }
    }

    pub fn previous_body(&self) -> Option<&str> {
        match &self.detail {
            PlanDetail::Edit { previous_body, .. } => Some(previous_body),
            PlanDetail::Create { .. } => None,
        }
    }

    pub fn is_canary(&self) -> bool {
        self.content_class.is_canary()
    }
}

/// Every (decky, persona) pair whose persona is in hours at `now` (§4.3 step 1).
pub fn eligible_pairs<'a>(
    deckies: &[PlannerDecky<'a>],
    now: DateTime<Utc>,
) -> Vec<(PlannerDecky<'a>, &'a Persona)> {
    deckies
        .iter()
        .flat_map(|d| d.personas.iter().map(move |p| (*d, p)))
        .filter(|(_, p)| p.is_active(now))
        .collect()
}

/// `pick(deckies, now, edit_candidate, rng)` (§4.3): the next file plan, or `None` when no
/// persona is in hours, the roll says "leave alone", or the edit candidate is not editable.
pub fn pick<R: Rng + ?Sized>(
    weights: &RealismWeights,
    deckies: &[PlannerDecky<'_>],
    now: DateTime<Utc>,
    edit_candidate: Option<&EditCandidate>,
    rng: &mut R,
) -> Option<Plan> {
    let eligible = eligible_pairs(deckies, now);
    if eligible.is_empty() {
        return None;
    }
    let roll: f64 = rng.gen();
    if roll < IDLE_PROBABILITY {
        return None;
    }
    if roll < EDIT_THRESHOLD {
        if let Some(candidate) = edit_candidate {
            return edit_plan(candidate, now, rng);
        }
    }
    let (decky, persona) = *eligible.choose(rng)?;
    let window = persona.window();

    let canary_p = if weights.canary_probability.is_finite() {
        weights.canary_probability.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if rng.gen_bool(canary_p) {
        let class = weighted_pick(&weights.canary_class_weights, rng)?;
        let mtime = sample_mtime(window, now, MtimeBounds::CREATE, rng);
        return Some(Plan {
            decky_uuid: decky.uuid.to_owned(),
            decky_name: decky.name.to_owned(),
            persona: persona.name.clone(),
            content_class: class,
            target_path: String::new(),
            mtime,
            detail: PlanDetail::Create { body_hint: None },
            notes: vec![
                format!("persona={}", persona.name),
                format!("class={class}"),
                "kind=canary".to_owned(),
            ],
        });
    }

    let list = if rng.gen_bool(USER_CLASS_SHARE) {
        &weights.user_class_weights
    } else {
        &weights.system_class_weights
    };
    let class = weighted_pick(list, rng)?;
    let target_path = make_path(class, &persona.name, rng).ok()?;
    let mtime = sample_mtime(window, now, MtimeBounds::CREATE, rng);
    let ctx = BodyContext {
        persona: &persona.name,
        hostname: decky.name,
        until: mtime,
    };
    let body = make_body(class, &ctx, rng).ok()?;
    Some(Plan {
        decky_uuid: decky.uuid.to_owned(),
        decky_name: decky.name.to_owned(),
        persona: persona.name.clone(),
        content_class: class,
        target_path,
        mtime,
        detail: PlanDetail::Create {
            body_hint: Some(body),
        },
        notes: vec![
            format!("persona={}", persona.name),
            format!("class={class}"),
            format!("window={}", persona.active_hours),
        ],
    })
}

/// The edit plan for a candidate row (§4.8); `None` when its class is unknown or not editable.
/// The persona's active hours are deliberately not re-checked (reference behaviour).
pub fn edit_plan<R: Rng + ?Sized>(
    candidate: &EditCandidate,
    now: DateTime<Utc>,
    rng: &mut R,
) -> Option<Plan> {
    let class: ContentClass = candidate.content_class.parse().ok()?;
    if !class.is_editable() {
        return None;
    }
    let mtime = sample_mtime(ActiveWindow::AlwaysOn, now, MtimeBounds::EDIT, rng);
    Some(Plan {
        decky_uuid: candidate.decky_uuid.clone(),
        decky_name: candidate.decky_name.clone(),
        persona: candidate.persona.clone(),
        content_class: class,
        target_path: candidate.path.clone(),
        mtime,
        detail: PlanDetail::Edit {
            previous_body: candidate.last_body.clone(),
            synthetic_file_uuid: candidate.synthetic_file_uuid.clone(),
        },
        notes: vec![
            format!("persona={}", candidate.persona),
            format!("class={class}"),
            "action=edit".to_owned(),
            format!("synthetic_file_uuid={}", candidate.synthetic_file_uuid),
        ],
    })
}

/// The two Planner action kinds (§5.2; mail is the MailDripper's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    Traffic,
    File,
}

impl ActionKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ActionKind::Traffic => "traffic",
            ActionKind::File => "file",
        }
    }
}

/// The action-kind roll (§5.2): 50/50, the rolled kind first, then the fall-through kind.
pub fn action_order<R: Rng + ?Sized>(rng: &mut R) -> [ActionKind; 2] {
    if rng.gen_bool(0.5) {
        [ActionKind::Traffic, ActionKind::File]
    } else {
        [ActionKind::File, ActionKind::Traffic]
    }
}

/// Whether a decky's decoded service list contains `service`. Undecoded lists (`None`) never
/// do (§2: never guess).
pub fn has_service(services: Option<&[String]>, service: &str) -> bool {
    services.is_some_and(|s| s.iter().any(|x| x == service))
}

/// Whether a decky can take part in a traffic action (§5.3): `ssh` in its services and a
/// non-empty IP.
pub fn is_traffic_eligible(services: Option<&[String]>, ip: Option<&str>) -> bool {
    has_service(services, "ssh") && ip.is_some_and(|ip| !ip.trim().is_empty())
}

/// Two distinct entries of `eligible`, uniformly: `(src, dst)`. `None` with fewer than two.
pub fn pick_pair<'a, T, R: Rng + ?Sized>(eligible: &'a [T], rng: &mut R) -> Option<(&'a T, &'a T)> {
    if eligible.len() < 2 {
        return None;
    }
    let src = rng.gen_range(0..eligible.len());
    let mut dst = rng.gen_range(0..eligible.len() - 1);
    if dst >= src {
        dst += 1;
    }
    Some((&eligible[src], &eligible[dst]))
}

/// The 50 % edit-candidate prefetch roll (§5.4 step 2).
pub fn should_prefetch_edit<R: Rng + ?Sized>(rng: &mut R) -> bool {
    rng.gen_bool(EDIT_PREFETCH_PROBABILITY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::realism::persona::parse_personas;
    use chrono::{Duration, TimeZone, Timelike};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    fn personas(hours: &str) -> Vec<Persona> {
        parse_personas(
            Some(&json!([
                {"name": "John Smith", "email": "js@acme.example", "role": "ops", "active_hours": hours},
                {"name": "Ana Diaz", "email": "ad@acme.example", "role": "finance", "active_hours": hours}
            ])),
            "en",
        )
        .personas
    }

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 4, 28, 12, 0, 0).unwrap()
    }

    fn candidate(class: &str) -> EditCandidate {
        EditCandidate {
            synthetic_file_uuid: "5d1c0000-0000-4000-8000-000000000001".into(),
            decky_uuid: "local:omega".into(),
            decky_name: "omega".into(),
            path: "/home/johnsmith/TODO.md".into(),
            persona: "John Smith".into(),
            content_class: class.into(),
            last_body: "- [ ] rotate keys\n".into(),
        }
    }

    #[test]
    fn nothing_to_do_returns_none() {
        let w = RealismWeights::default();
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(pick(&w, &[], noon(), None, &mut rng), None);
        let empty: Vec<Persona> = Vec::new();
        let d = [PlannerDecky {
            uuid: "u",
            name: "n",
            personas: &empty,
        }];
        assert_eq!(pick(&w, &d, noon(), None, &mut rng), None);
        let night = personas("09:00-18:00");
        let d = [PlannerDecky {
            uuid: "u",
            name: "n",
            personas: &night,
        }];
        let three_am = Utc.with_ymd_and_hms(2026, 4, 28, 3, 0, 0).unwrap();
        for seed in 0..50 {
            assert_eq!(
                pick(&w, &d, three_am, None, &mut StdRng::seed_from_u64(seed)),
                None
            );
        }
    }

    #[test]
    fn seeded_create_plan_shape() {
        let w = RealismWeights::default();
        let ps = personas("09:00-18:00");
        let d = [PlannerDecky {
            uuid: "local:omega",
            name: "omega",
            personas: &ps,
        }];
        let mut creates = 0;
        for seed in 0..100 {
            let Some(plan) = pick(&w, &d, noon(), None, &mut StdRng::seed_from_u64(seed)) else {
                continue;
            };
            assert_eq!(plan.action(), PlanAction::Create);
            assert!(plan.mtime < noon());
            assert!((9..18).contains(&plan.mtime.hour()), "{}", plan.mtime);
            assert!(plan.notes.iter().any(|n| n.starts_with("persona=")));
            assert!(plan
                .notes
                .iter()
                .any(|n| n == &format!("class={}", plan.content_class)));
            assert_eq!(plan.decky_uuid, "local:omega");
            if plan.is_canary() {
                assert!(plan.target_path.is_empty() && plan.body_hint().is_none());
                assert!(plan.notes.contains(&"kind=canary".to_owned()));
            } else {
                assert!(plan.target_path.starts_with('/'));
                assert!(!plan.body_hint().unwrap().is_empty());
                assert!(plan.notes.contains(&"window=09:00-18:00".to_owned()));
                creates += 1;
            }
        }
        assert!(creates > 50, "{creates}");
    }

    #[test]
    fn idle_share_is_about_ten_percent() {
        let w = RealismWeights::default();
        let ps = personas("00:00-00:00");
        let d = [PlannerDecky {
            uuid: "u",
            name: "n",
            personas: &ps,
        }];
        let idle = (0..2000)
            .filter(|s| pick(&w, &d, noon(), None, &mut StdRng::seed_from_u64(*s)).is_none())
            .count();
        assert!((140..260).contains(&idle), "{idle}");
    }

    #[test]
    fn class_mix_and_canary_rate() {
        let w = RealismWeights::default();
        let ps = personas("00:00-00:00");
        let d = [PlannerDecky {
            uuid: "u",
            name: "n",
            personas: &ps,
        }];
        let plans: Vec<Plan> = (0..80)
            .filter_map(|s| pick(&w, &d, noon(), None, &mut StdRng::seed_from_u64(s)))
            .collect();
        assert!(plans.iter().any(|p| p.content_class.is_user_class()));
        assert!(plans.iter().any(|p| p.content_class.is_system_class()));
        let plans: Vec<Plan> = (0..500)
            .filter_map(|s| pick(&w, &d, noon(), None, &mut StdRng::seed_from_u64(s)))
            .collect();
        let canaries = plans.iter().filter(|p| p.is_canary()).count();
        assert!(canaries > 0);
        assert!((canaries as f64) / 500.0 <= 0.06, "{canaries}");
        assert!(plans.iter().all(|p| p.content_class != ContentClass::Email));
    }

    #[test]
    fn live_weights_are_honoured() {
        let mut w = RealismWeights::default();
        w.apply_payload(&json!({
            "user_class_weights": [{"content_class": "script", "weight": 1}],
            "system_class_weights": [{"content_class": "cache_tmp", "weight": 1}],
            "canary_probability": 0
        }))
        .unwrap();
        let ps = personas("00:00-00:00");
        let d = [PlannerDecky {
            uuid: "u",
            name: "n",
            personas: &ps,
        }];
        for seed in 0..100 {
            if let Some(p) = pick(&w, &d, noon(), None, &mut StdRng::seed_from_u64(seed)) {
                assert!(
                    matches!(
                        p.content_class,
                        ContentClass::Script | ContentClass::CacheTmp
                    ),
                    "{}",
                    p.content_class
                );
            }
        }
        w.apply_payload(&json!({"canary_probability": 1.0, "canary_class_weights": [
            {"content_class": "canary_ssh_key", "weight": 1}]}))
            .unwrap();
        let p = (0..20)
            .find_map(|s| pick(&w, &d, noon(), None, &mut StdRng::seed_from_u64(s)))
            .unwrap();
        assert_eq!(p.content_class, ContentClass::CanarySshKey);
    }

    #[test]
    fn only_in_hours_personas_are_picked() {
        let w = RealismWeights::default();
        let mut ps = personas("09:00-18:00");
        ps[1].active_hours = "22:00-06:00".into();
        let d = [PlannerDecky {
            uuid: "u",
            name: "n",
            personas: &ps,
        }];
        for seed in 0..100 {
            if let Some(p) = pick(&w, &d, noon(), None, &mut StdRng::seed_from_u64(seed)) {
                assert_eq!(p.persona, "John Smith");
            }
        }
        let pairs = eligible_pairs(&d, Utc.with_ymd_and_hms(2026, 4, 28, 23, 0, 0).unwrap());
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].1.name, "Ana Diaz");
    }

    #[test]
    fn more_personas_more_picks() {
        let w = RealismWeights::default();
        let two = personas("00:00-00:00");
        let one = &two[..1];
        let d = [
            PlannerDecky {
                uuid: "a",
                name: "a",
                personas: &two,
            },
            PlannerDecky {
                uuid: "b",
                name: "b",
                personas: one,
            },
        ];
        let a = (0..3000)
            .filter_map(|s| pick(&w, &d, noon(), None, &mut StdRng::seed_from_u64(s)))
            .filter(|p| p.decky_uuid == "a")
            .count();
        let ratio = a as f64 / (0.9 * 3000.0);
        assert!((0.60..0.73).contains(&ratio), "{ratio}");
    }

    #[test]
    fn edit_branch() {
        let w = RealismWeights::default();
        let ps = personas("00:00-00:00");
        let d = [PlannerDecky {
            uuid: "u",
            name: "n",
            personas: &ps,
        }];
        let c = candidate("todo");
        let mut edits = 0;
        for seed in 0..200 {
            let Some(p) = pick(&w, &d, noon(), Some(&c), &mut StdRng::seed_from_u64(seed)) else {
                continue;
            };
            if p.action() == PlanAction::Edit {
                edits += 1;
                assert_eq!(p.target_path, c.path);
                assert_eq!(p.previous_body(), Some(c.last_body.as_str()));
                assert_eq!(p.decky_uuid, "local:omega");
                assert!(p.mtime <= noon() - Duration::hours(1));
                assert!(p.mtime >= noon() - Duration::days(2));
                assert!(p.notes.contains(&"action=edit".to_owned()));
                assert!(p
                    .notes
                    .contains(&format!("synthetic_file_uuid={}", c.synthetic_file_uuid)));
            }
        }
        // 30 % of ticks
        assert!((40..80).contains(&edits), "{edits}");
    }

    #[test]
    fn edit_plan_rejects_unknown_and_non_editable_classes() {
        let mut rng = StdRng::seed_from_u64(0);
        for class in ["cache_tmp", "canary_aws_creds", "email", "bogus"] {
            assert_eq!(
                edit_plan(&candidate(class), noon(), &mut rng),
                None,
                "{class}"
            );
        }
        for class in ["note", "todo", "draft", "script", "log_cron", "log_daemon"] {
            assert!(
                edit_plan(&candidate(class), noon(), &mut rng).is_some(),
                "{class}"
            );
        }
        // the candidate's persona is not re-checked against hours
        let p = edit_plan(&candidate("note"), noon(), &mut rng).unwrap();
        assert_eq!(p.persona, "John Smith");
    }

    #[test]
    fn deterministic_under_a_seed() {
        let w = RealismWeights::default();
        let ps = personas("08:00-20:00");
        let d = [
            PlannerDecky {
                uuid: "a",
                name: "alpha",
                personas: &ps,
            },
            PlannerDecky {
                uuid: "b",
                name: "beta",
                personas: &ps,
            },
        ];
        let c = candidate("note");
        for seed in 0..100 {
            let a = pick(&w, &d, noon(), Some(&c), &mut StdRng::seed_from_u64(seed));
            let b = pick(&w, &d, noon(), Some(&c), &mut StdRng::seed_from_u64(seed));
            assert_eq!(a, b);
        }
    }

    #[test]
    fn action_roll_is_fair_with_fall_through() {
        let mut rng = StdRng::seed_from_u64(3);
        let traffic_first = (0..2000)
            .map(|_| action_order(&mut rng))
            .inspect(|o| assert_ne!(o[0], o[1]))
            .filter(|o| o[0] == ActionKind::Traffic)
            .count();
        assert!((900..1100).contains(&traffic_first), "{traffic_first}");
        assert_eq!(ActionKind::File.as_str(), "file");
    }

    #[test]
    fn traffic_eligibility_and_pairs() {
        let ssh = vec!["ssh".to_owned(), "http".to_owned()];
        let web = vec!["http".to_owned()];
        assert!(is_traffic_eligible(Some(&ssh), Some("10.0.0.2")));
        assert!(!is_traffic_eligible(Some(&web), Some("10.0.0.2")));
        assert!(!is_traffic_eligible(Some(&ssh), Some("")));
        assert!(!is_traffic_eligible(Some(&ssh), None));
        assert!(!is_traffic_eligible(None, Some("10.0.0.2")));

        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(pick_pair::<u8, _>(&[], &mut rng), None);
        assert_eq!(pick_pair(&[1], &mut rng), None);
        let items = [1, 2, 3];
        let mut seen = std::collections::HashSet::new();
        for _ in 0..300 {
            let (a, b) = pick_pair(&items, &mut rng).unwrap();
            assert_ne!(a, b);
            seen.insert((*a, *b));
        }
        assert_eq!(seen.len(), 6, "every ordered pair reachable");
    }

    #[test]
    fn plan_action_wire_values() {
        assert_eq!(PlanAction::Create.as_str(), "create");
        assert_eq!(PlanAction::Edit.as_str(), "edit");
        assert_eq!(PlanAction::Rotate.as_str(), "rotate");
    }

    proptest::proptest! {
        #[test]
        fn any_input_yields_a_coherent_plan_or_none(
            seed in proptest::prelude::any::<u64>(),
            windows in proptest::collection::vec("([0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9])|.{0,12}", 0..4),
            names in proptest::collection::vec(".{1,20}", 1..4),
            hour in 0u32..24,
        ) {
            let now = Utc.with_ymd_and_hms(2026, 4, 28, hour, 7, 0).unwrap();
            let ps: Vec<Persona> = windows
                .iter()
                .zip(names.iter().cycle())
                .enumerate()
                .filter_map(|(i, (w, n))| {
                    Persona::from_value(&json!({
                        "name": format!("{n}{i}"), "email": "x@y.example", "role": "r", "active_hours": w
                    }))
                    .ok()
                })
                .collect();
            let d = [PlannerDecky { uuid: "local:a", name: "a", personas: &ps }];
            let w = RealismWeights::default();
            if let Some(plan) = pick(&w, &d, now, None, &mut StdRng::seed_from_u64(seed)) {
                let persona = ps.iter().find(|p| p.name == plan.persona).unwrap();
                proptest::prop_assert!(persona.window().contains(&now));
                proptest::prop_assert!(plan.mtime < now);
                proptest::prop_assert!(persona.window().contains(&plan.mtime));
                if !plan.is_canary() {
                    proptest::prop_assert!(plan.target_path.starts_with('/'));
                    proptest::prop_assert!(!plan.target_path.contains(".."));
                    proptest::prop_assert!(plan.body_hint().is_some_and(|b| b.ends_with('\n')));
                }
            }
        }
    }
}

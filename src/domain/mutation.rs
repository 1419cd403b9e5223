//! Decky mutation events, pure part (platform.md §6.5): what the reconciler observes of each
//! decky's service set, the transitions between what it last emitted and what it sees now, and
//! the RFC 5424 line of each transition.
//!
//! Decisions where the spec leaves room:
//! * A decky's *observed* service set is what exists in Docker: the services of its labelled
//!   fleet containers (running or not) plus the state-file services whose expected container
//!   `<decky>-<service>` exists. A decky with an empty observed set does not exist. Nothing is
//!   derived while Docker is unknown (an outage never retires the fleet).
//! * A change of the service set is `scheduled` when the state file says the decky's mutation
//!   clock advanced (`last_mutated` grew since the last emission) and the decky is on an
//!   interval (its own `mutate_interval` or the deployment's): that is the mutator's interval
//!   tick. Every other change — a forced mutation, or a container added or removed by hand — is
//!   `operator`.
//! * What was emitted is remembered per decky (its service set and `last_mutated`), so a
//!   restarted reconciler compares against that and re-emits nothing.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use thiserror::Error;

use super::fleet::{discover_labelled, expected_container, DesiredDecky, ObservedContainer};
use super::syslog::sd::render_relay_element;

/// PRI of a mutation line: facility local0 (16) × 8 + severity info (6).
pub const PRI: u8 = 134;
/// APP-NAME of a mutation line.
pub const APP_NAME: &str = "mutator";
/// MSGID of a mutation line.
pub const MSG_ID: &str = "decky_mutated";
/// Longest HOSTNAME (RFC 5424 §6.2.4).
pub const MAX_HOSTNAME: usize = 255;

/// Why a mutation happened (§6.5; `behavioral`, `healer`, `federation` are reserved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Trigger {
    /// The decky appeared.
    Creation,
    /// The decky disappeared.
    Retirement,
    /// The mutator's interval tick changed its services.
    Scheduled,
    /// Anything else changed its services.
    Operator,
}

impl Trigger {
    /// Wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Creation => "creation",
            Trigger::Retirement => "retirement",
            Trigger::Scheduled => "scheduled",
            Trigger::Operator => "operator",
        }
    }
}

/// What the reconciler last emitted about a decky (persisted between passes and restarts).
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// Decky name.
    pub name: String,
    /// Service set last emitted (sorted, unique).
    pub services: Vec<String>,
    /// State-file `last_mutated` at that time (0 when unknown).
    pub last_mutated: f64,
}

/// A decky as observed now.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Decky name.
    pub name: String,
    /// Services that exist in Docker (sorted, unique, non-empty).
    pub services: Vec<String>,
    /// State-file `last_mutated` (0 when the decky is not in the state file).
    pub last_mutated: f64,
    /// Whether the decky is on a mutation interval (own or the deployment's).
    pub on_interval: bool,
}

/// One transition to emit.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    /// Decky name.
    pub decky: String,
    /// Services before (empty on creation).
    pub old_services: Vec<String>,
    /// Services after (empty on retirement).
    pub new_services: Vec<String>,
    /// Why.
    pub trigger: Trigger,
    /// Acting user, when known (never from observation).
    pub actor: Option<String>,
    /// `last_mutated` to remember with the new set.
    pub last_mutated: f64,
}

/// Observed service sets of this host's deckies. `state_file` holds the state-file deckies
/// already restricted to this host; `deployment_interval` is the state file's top-level
/// `mutate_interval`.
pub fn observe(
    state_file: &[DesiredDecky],
    deployment_interval: Option<i64>,
    containers: &[ObservedContainer],
) -> Vec<Observed> {
    let existing: BTreeSet<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let mut out: BTreeMap<String, Observed> = BTreeMap::new();
    for d in discover_labelled(containers) {
        out.insert(
            d.name.clone(),
            Observed {
                name: d.name,
                services: d.services,
                last_mutated: 0.0,
                on_interval: false,
            },
        );
    }
    for d in state_file {
        let present: Vec<String> = d
            .services
            .iter()
            .filter(|s| existing.contains(expected_container(&d.name, s).as_str()))
            .cloned()
            .collect();
        let config = d.config.as_ref();
        let number = |key: &str| config.and_then(|c| c.get(key));
        let last_mutated = number("last_mutated")
            .and_then(serde_json::Value::as_f64)
            .filter(|v| v.is_finite())
            .unwrap_or(0.0);
        let own_interval = number("mutate_interval").and_then(serde_json::Value::as_i64);
        let on_interval = own_interval.or(deployment_interval).is_some_and(|i| i > 0);
        let entry = out.entry(d.name.clone()).or_insert_with(|| Observed {
            name: d.name.clone(),
            services: Vec::new(),
            last_mutated: 0.0,
            on_interval: false,
        });
        entry.services.extend(present);
        entry.last_mutated = last_mutated;
        entry.on_interval = on_interval;
    }
    out.into_values()
        .filter_map(|mut o| {
            o.services.sort();
            o.services.dedup();
            (!o.services.is_empty()).then_some(o)
        })
        .collect()
}

/// The transitions from `seen` (what was last emitted) to `observed`, ordered by decky name.
/// Identical sets yield nothing; a decky only in `observed` is a creation, one only in `seen`
/// a retirement.
pub fn transitions(seen: &[Seen], observed: &[Observed]) -> Vec<Mutation> {
    let seen: BTreeMap<&str, &Seen> = seen.iter().map(|s| (s.name.as_str(), s)).collect();
    let now: BTreeMap<&str, &Observed> = observed.iter().map(|o| (o.name.as_str(), o)).collect();
    let names: BTreeSet<&str> = seen.keys().chain(now.keys()).copied().collect();
    let mut out = Vec::new();
    for name in names {
        let (trigger, old, new, last_mutated) = match (seen.get(name), now.get(name)) {
            (None, Some(o)) => (
                Trigger::Creation,
                Vec::new(),
                o.services.clone(),
                o.last_mutated,
            ),
            (Some(s), None) => (
                Trigger::Retirement,
                s.services.clone(),
                Vec::new(),
                s.last_mutated,
            ),
            (Some(s), Some(o)) if s.services != o.services => {
                let trigger = if o.on_interval && o.last_mutated > s.last_mutated {
                    Trigger::Scheduled
                } else {
                    Trigger::Operator
                };
                (
                    trigger,
                    s.services.clone(),
                    o.services.clone(),
                    o.last_mutated,
                )
            }
            _ => continue,
        };
        out.push(Mutation {
            decky: name.to_owned(),
            old_services: old,
            new_services: new,
            trigger,
            actor: None,
            last_mutated,
        });
    }
    out
}

/// Why a mutation cannot be written as a line.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LineError {
    /// The decky name is not a valid RFC 5424 HOSTNAME (1–255 printable ASCII).
    #[error("decky name {0:?} is not a valid syslog HOSTNAME (1-255 printable ASCII characters)")]
    Hostname(String),
}

/// The §6.5 line (no terminator):
/// `<134>1 <ts> <decky> mutator - decky_mutated [relay@55555 decky=… old_services=…
/// new_services=… trigger=… actor=…]`; `actor` omitted when absent or empty.
pub fn syslog_line(m: &Mutation, at: DateTime<Utc>) -> Result<String, LineError> {
    let host = m.decky.as_str();
    if host.is_empty() || host.len() > MAX_HOSTNAME || !host.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(LineError::Hostname(m.decky.clone()));
    }
    let old = m.old_services.join(",");
    let new = m.new_services.join(",");
    let mut params = vec![
        ("decky", host),
        ("old_services", old.as_str()),
        ("new_services", new.as_str()),
        ("trigger", m.trigger.as_str()),
    ];
    if let Some(actor) = m.actor.as_deref().filter(|a| !a.is_empty()) {
        params.push(("actor", actor));
    }
    let ts = at.to_rfc3339_opts(SecondsFormat::Micros, true);
    Ok(format!(
        "<{PRI}>1 {ts} {host} {APP_NAME} - {MSG_ID} {}",
        render_relay_element(params)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fleet::{DesiredSource, LOCAL_HOST};
    use crate::domain::syslog::parser::parse_line;

    fn svc(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn seen(name: &str, services: &[&str], last: f64) -> Seen {
        Seen {
            name: name.into(),
            services: svc(services),
            last_mutated: last,
        }
    }

    fn observed(name: &str, services: &[&str], last: f64, on_interval: bool) -> Observed {
        Observed {
            name: name.into(),
            services: svc(services),
            last_mutated: last,
            on_interval,
        }
    }

    fn container(name: &str, decky: Option<&str>, service: Option<&str>) -> ObservedContainer {
        ObservedContainer {
            name: name.into(),
            running: true,
            fleet_service: decky.is_some(),
            decky_label: decky.map(str::to_owned),
            service_label: service.map(str::to_owned),
            ip: None,
        }
    }

    fn state_decky(name: &str, services: &[&str], config: serde_json::Value) -> DesiredDecky {
        DesiredDecky {
            host_uuid: LOCAL_HOST.into(),
            name: name.into(),
            ip: None,
            services: svc(services),
            config: Some(config),
            source: DesiredSource::StateFile,
        }
    }

    #[test]
    fn creation_change_retirement_and_nothing_when_unchanged() {
        let got = transitions(&[], &[observed("d", &["ssh"], 0.0, false)]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].trigger, Trigger::Creation);
        assert!(got[0].old_services.is_empty());
        assert_eq!(got[0].new_services, ["ssh"]);

        let s = [seen("d", &["ssh"], 0.0)];
        assert!(transitions(&s, &[observed("d", &["ssh"], 0.0, false)]).is_empty());

        let got = transitions(&s, &[observed("d", &["http", "ssh"], 0.0, false)]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].trigger, Trigger::Operator);
        assert_eq!(got[0].old_services, ["ssh"]);
        assert_eq!(got[0].new_services, ["http", "ssh"]);

        let got = transitions(&[seen("d", &["http", "ssh"], 5.0)], &[]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].trigger, Trigger::Retirement);
        assert_eq!(got[0].old_services, ["http", "ssh"]);
        assert!(got[0].new_services.is_empty());
        assert_eq!(got[0].last_mutated, 5.0);
    }

    #[test]
    fn scheduled_only_when_on_interval_and_clock_advanced() {
        let s = [seen("d", &["ssh"], 100.0)];
        let on =
            |last, interval| transitions(&s, &[observed("d", &["rdp"], last, interval)])[0].trigger;
        assert_eq!(on(200.0, true), Trigger::Scheduled);
        assert_eq!(on(100.0, true), Trigger::Operator, "clock did not move");
        assert_eq!(on(200.0, false), Trigger::Operator, "no interval");
        let m = &transitions(&s, &[observed("d", &["rdp"], 200.0, true)])[0];
        assert_eq!(m.last_mutated, 200.0, "the new clock is remembered");
    }

    #[test]
    fn transitions_are_ordered_by_name_and_independent() {
        let s = [seen("b", &["ssh"], 0.0), seen("c", &["ssh"], 0.0)];
        let o = [
            observed("a", &["ssh"], 0.0, false),
            observed("c", &["ftp"], 0.0, false),
        ];
        let got: Vec<(String, Trigger)> = transitions(&s, &o)
            .into_iter()
            .map(|m| (m.decky, m.trigger))
            .collect();
        assert_eq!(
            got,
            [
                ("a".to_owned(), Trigger::Creation),
                ("b".to_owned(), Trigger::Retirement),
                ("c".to_owned(), Trigger::Operator),
            ]
        );
    }

    #[test]
    fn observe_unions_labels_and_state_file_containers() {
        let containers = [
            container("lab-ssh", Some("lab"), Some("ssh")),
            container("lab-smtp-relay", Some("lab"), Some("smtp_relay")),
            container("sf-ssh", None, None),
            container("unrelated", None, None),
        ];
        let sf = [
            state_decky(
                "sf",
                &["ssh", "http"],
                serde_json::json!({"last_mutated": 42.5, "mutate_interval": null}),
            ),
            state_decky("gone", &["ssh"], serde_json::json!({})),
        ];
        let got = observe(&sf, Some(30), &containers);
        assert_eq!(
            got,
            [
                observed("lab", &["smtp_relay", "ssh"], 0.0, false),
                observed("sf", &["ssh"], 42.5, true),
            ],
            "state-file decky without containers does not exist; http is not there"
        );
        let own = [state_decky(
            "sf",
            &["ssh"],
            serde_json::json!({"mutate_interval": 0}),
        )];
        assert!(!observe(&own, Some(30), &containers)[0].on_interval);
        assert!(observe(&sf[..1], None, &[]).is_empty());
    }

    #[test]
    fn line_matches_the_spec_and_parses_back() {
        let at = DateTime::parse_from_rfc3339("2026-05-14T09:20:10Z")
            .unwrap()
            .with_timezone(&Utc);
        let m = Mutation {
            decky: "decky-01".into(),
            old_services: svc(&["ssh", "http"]),
            new_services: svc(&["rdp"]),
            trigger: Trigger::Operator,
            actor: Some("anti".into()),
            last_mutated: 0.0,
        };
        let line = syslog_line(&m, at).unwrap();
        assert_eq!(
            line,
            "<134>1 2026-05-14T09:20:10.000000Z decky-01 mutator - decky_mutated \
             [relay@55555 decky=\"decky-01\" old_services=\"ssh,http\" new_services=\"rdp\" \
             trigger=\"operator\" actor=\"anti\"]"
        );
        let rec = parse_line(&line).unwrap();
        assert_eq!(rec.decky, "decky-01");
        assert_eq!(rec.service, "mutator");
        assert_eq!(rec.event_type, "decky_mutated");
        assert_eq!(rec.procid, "-");

        // actor omitted when absent or empty; empty side is an empty value; escaping.
        let m = Mutation {
            decky: "d".into(),
            old_services: Vec::new(),
            new_services: svc(&["we\"ird]\\"]),
            trigger: Trigger::Creation,
            actor: Some(String::new()),
            last_mutated: 0.0,
        };
        let line = syslog_line(&m, at).unwrap();
        assert!(!line.contains("actor="));
        assert!(line.contains(r#"old_services="""#));
        let rec = parse_line(&line).unwrap();
        assert_eq!(rec.fields().get("new_services"), Some("we\"ird]\\"));
    }

    #[test]
    fn invalid_hostnames_are_refused() {
        let at = Utc::now();
        for bad in ["", "has space", &"x".repeat(256), "é"] {
            let m = Mutation {
                decky: bad.to_owned(),
                old_services: Vec::new(),
                new_services: svc(&["ssh"]),
                trigger: Trigger::Creation,
                actor: None,
                last_mutated: 0.0,
            };
            assert_eq!(
                syslog_line(&m, at),
                Err(LineError::Hostname(bad.to_owned()))
            );
        }
    }
}

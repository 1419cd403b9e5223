//! Fleet reconciliation, pure part (platform.md §6.2–§6.4): parse the state file, discover
//! decky service containers by label, aggregate a decky's state from its containers, and plan
//! the inserts / deletes / state changes that bring `fleet_deckies` in step.
//!
//! Decisions where the spec leaves room (see the report of the fleet work):
//! * Only deckies of the reconciler's own host are reconciled (§10.11): a state-file decky
//!   whose `host_uuid` names another host is skipped, its containers are not visible here.
//! * Desired deckies come from the state file **and** from running-or-not containers labelled
//!   `decnet.fleet.service=true` (grouped by `decnet.fleet.decky`); the state file wins when
//!   both name a decky.
//! * When Docker is unknown, label-discovered deckies are unknown too, so no row is deleted
//!   unless it is also absent from the state file **and** Docker is known. Docker errors never
//!   mean "everything is gone".

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Sentinel `host_uuid` of the mothership's own deckies.
pub const LOCAL_HOST: &str = "local";

/// `fleet_deckies.state` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeckyState {
    /// Deploy requested, not yet observed.
    Pending,
    /// Every expected container runs.
    Running,
    /// Containers exist but none runs.
    Failed,
    /// No container exists.
    TornDown,
    /// Some but not all expected containers run.
    Degraded,
    /// Teardown in progress.
    TearingDown,
    /// Teardown failed.
    TeardownFailed,
}

impl DeckyState {
    /// Every state, in declaration order.
    pub const ALL: [DeckyState; 7] = [
        DeckyState::Pending,
        DeckyState::Running,
        DeckyState::Failed,
        DeckyState::TornDown,
        DeckyState::Degraded,
        DeckyState::TearingDown,
        DeckyState::TeardownFailed,
    ];

    /// Column value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeckyState::Pending => "pending",
            DeckyState::Running => "running",
            DeckyState::Failed => "failed",
            DeckyState::TornDown => "torn_down",
            DeckyState::Degraded => "degraded",
            DeckyState::TearingDown => "tearing_down",
            DeckyState::TeardownFailed => "teardown_failed",
        }
    }

    /// Parse a column value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for DeckyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// State file (§6.2)
// ---------------------------------------------------------------------------------------------

/// Why a state file was refused.
#[derive(Debug, Error)]
pub enum StateFileError {
    /// Not JSON, or not the expected shape (unknown decky key, missing field…).
    #[error("invalid state file: {0}")]
    Invalid(#[from] serde_json::Error),
    /// Well-formed but violating a rule of §6.2.
    #[error("invalid state file: {0}")]
    Rule(String),
}

/// One decky of the state file. Unknown keys are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateDecky {
    /// Decky name.
    pub name: String,
    /// Decky IP.
    pub ip: String,
    /// Services (at least one).
    pub services: Vec<String>,
    /// Distro slug.
    pub distro: String,
    /// Image of the base (IP holder) container.
    pub base_image: String,
    /// Image services are built from.
    #[serde(default = "default_build_base")]
    pub build_base: String,
    /// Hostname.
    pub hostname: String,
    /// Archetype slug.
    #[serde(default)]
    pub archetype: Option<String>,
    /// Per-service persona config.
    #[serde(default)]
    pub service_config: serde_json::Map<String, serde_json::Value>,
    /// OS family for stack spoofing.
    #[serde(default = "default_nmap_os")]
    pub nmap_os: String,
    /// Rotation interval (minutes).
    #[serde(default)]
    pub mutate_interval: Option<i64>,
    /// Unix time of the last mutation.
    #[serde(default)]
    pub last_mutated: f64,
    /// Unix time of the last login attempt.
    #[serde(default)]
    pub last_login_attempt: f64,
    /// Owning swarm host (`None` = this mothership).
    #[serde(default)]
    pub host_uuid: Option<String>,
}

fn default_build_base() -> String {
    "debian:bookworm-slim".to_owned()
}

fn default_nmap_os() -> String {
    "linux".to_owned()
}

/// Deployment mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployMode {
    /// Single host.
    Unihost,
    /// Swarm.
    Swarm,
}

/// The `config` object of the state file (unknown top-level keys are tolerated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentConfig {
    /// Deployment mode.
    pub mode: DeployMode,
    /// Host interface.
    pub interface: String,
    /// Decky subnet.
    pub subnet: String,
    /// Gateway.
    pub gateway: String,
    /// Deckies (at least one).
    pub deckies: Vec<StateDecky>,
    /// Deployment-wide rotation interval (minutes), for deckies without their own.
    #[serde(default)]
    pub mutate_interval: Option<i64>,
}

/// The whole state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateFile {
    /// Deployment.
    pub config: DeploymentConfig,
    /// Compose file path.
    #[serde(default)]
    pub compose_path: Option<String>,
}

/// Parse and validate a state file. The raw JSON of each decky is kept alongside (for the
/// `decky_config` column, which stores the full decky object as deployed).
pub fn parse_state_file(text: &str) -> Result<(StateFile, Vec<serde_json::Value>), StateFileError> {
    let raw: serde_json::Value = serde_json::from_str(text)?;
    let parsed: StateFile = serde_json::from_value(raw.clone())?;
    if parsed.config.deckies.is_empty() {
        return Err(StateFileError::Rule("deckies must not be empty".into()));
    }
    let mut names = BTreeSet::new();
    for d in &parsed.config.deckies {
        if d.name.is_empty() {
            return Err(StateFileError::Rule("decky with an empty name".into()));
        }
        if d.services.is_empty() {
            return Err(StateFileError::Rule(format!(
                "decky {} has no service",
                d.name
            )));
        }
        if !names.insert((d.host_uuid.clone(), d.name.clone())) {
            return Err(StateFileError::Rule(format!("duplicate decky {}", d.name)));
        }
    }
    let raw_deckies = raw
        .get("config")
        .and_then(|c| c.get("deckies"))
        .and_then(|d| d.as_array())
        .cloned()
        .unwrap_or_default();
    Ok((parsed, raw_deckies))
}

// ---------------------------------------------------------------------------------------------
// Desired, stored and observed deckies
// ---------------------------------------------------------------------------------------------

/// Where a desired decky comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredSource {
    /// The state file.
    StateFile,
    /// Containers labelled as fleet decky services.
    Labels,
}

/// A decky that should have a `fleet_deckies` row.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredDecky {
    /// Owning host (`local` when the state file says nothing).
    pub host_uuid: String,
    /// Name.
    pub name: String,
    /// IP, when known.
    pub ip: Option<String>,
    /// Services.
    pub services: Vec<String>,
    /// Full decky object (state-file deckies only).
    pub config: Option<serde_json::Value>,
    /// Origin.
    pub source: DesiredSource,
}

impl DesiredDecky {
    /// The deckies of a parsed state file, with their raw JSON.
    pub fn from_state_file(file: &StateFile, raw: &[serde_json::Value]) -> Vec<DesiredDecky> {
        file.config
            .deckies
            .iter()
            .enumerate()
            .map(|(i, d)| DesiredDecky {
                host_uuid: d
                    .host_uuid
                    .clone()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| LOCAL_HOST.to_owned()),
                name: d.name.clone(),
                ip: Some(d.ip.clone()).filter(|ip| !ip.is_empty()),
                services: d.services.clone(),
                config: raw.get(i).cloned(),
                source: DesiredSource::StateFile,
            })
            .collect()
    }
}

/// A stored `fleet_deckies` row, as far as reconciliation cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDecky {
    /// Host.
    pub host_uuid: String,
    /// Name.
    pub name: String,
    /// Stored state (unparseable values are kept as text).
    pub state: String,
}

/// A container as observed in Docker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    /// Container name.
    pub name: String,
    /// Whether Docker reports it `running`.
    pub running: bool,
    /// Value of `decnet.fleet.service` (`"true"` marks a fleet service container).
    pub fleet_service: bool,
    /// Value of `decnet.fleet.decky`.
    pub decky_label: Option<String>,
    /// Value of `decnet.fleet.service_name`.
    pub service_label: Option<String>,
    /// Container IP.
    pub ip: Option<String>,
}

/// Container name of one decky service (`_` in the service becomes `-`).
pub fn expected_container(decky: &str, service: &str) -> String {
    format!("{decky}-{}", service.replace('_', "-"))
}

/// Aggregate state of a decky from the observed `{container name → running}` map (§6.4 step 2).
pub fn aggregate_state(
    decky: &str,
    services: &[String],
    observed: &HashMap<String, bool>,
) -> DeckyState {
    aggregate(decky, services, observed).0
}

/// [`aggregate_state`] plus a human explanation of what is wrong (`None` when running):
/// `missing: d-http; not running: d-ssh`.
pub fn aggregate(
    decky: &str,
    services: &[String],
    observed: &HashMap<String, bool>,
) -> (DeckyState, Option<String>) {
    let mut missing = Vec::new();
    let mut stopped = Vec::new();
    let mut running = 0usize;
    for svc in services {
        let name = expected_container(decky, svc);
        match observed.get(&name) {
            None => missing.push(name),
            Some(true) => running += 1,
            Some(false) => stopped.push(name),
        }
    }
    let present = running + stopped.len();
    let state = if present == 0 {
        DeckyState::TornDown
    } else if missing.is_empty() && stopped.is_empty() {
        DeckyState::Running
    } else if running == 0 {
        DeckyState::Failed
    } else {
        DeckyState::Degraded
    };
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing: {}", missing.join(", ")));
    }
    if !stopped.is_empty() {
        parts.push(format!("not running: {}", stopped.join(", ")));
    }
    let detail = (state != DeckyState::Running).then(|| parts.join("; "));
    (state, detail)
}

/// Deckies discovered from labelled containers: containers with `decnet.fleet.service=true`
/// and a non-empty `decnet.fleet.decky`, grouped by that label. Services come from
/// `decnet.fleet.service_name`, or else from the container name minus the `<decky>-` prefix.
/// Deckies are returned sorted by name, services sorted and de-duplicated. The IP is the
/// first service container's, else the base container's (named like the decky).
pub fn discover_labelled(containers: &[ObservedContainer]) -> Vec<DesiredDecky> {
    let mut by_decky: BTreeMap<&str, (BTreeSet<String>, Option<String>)> = BTreeMap::new();
    let mut sorted: Vec<&ObservedContainer> = containers.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for c in sorted {
        if !c.fleet_service {
            continue;
        }
        let Some(decky) = c.decky_label.as_deref().filter(|d| !d.is_empty()) else {
            continue;
        };
        let service = c
            .service_label
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| {
                c.name
                    .strip_prefix(decky)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            });
        let Some(service) = service else {
            continue;
        };
        let entry = by_decky.entry(decky).or_default();
        entry.0.insert(service);
        if entry.1.is_none() {
            entry.1 = c.ip.clone().filter(|ip| !ip.is_empty());
        }
    }
    // Service containers of a reference deployment share the network namespace of the
    // decky's base container (named like the decky, unlabelled), so they report no IP.
    let base_ip = |decky: &str| {
        containers
            .iter()
            .find(|c| c.name == decky)
            .and_then(|c| c.ip.clone())
            .filter(|ip| !ip.is_empty())
    };
    by_decky
        .into_iter()
        .map(|(name, (services, ip))| DesiredDecky {
            host_uuid: LOCAL_HOST.to_owned(),
            name: name.to_owned(),
            ip: ip.or_else(|| base_ip(name)),
            services: services.into_iter().collect(),
            config: None,
            source: DesiredSource::Labels,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Plan
// ---------------------------------------------------------------------------------------------

/// A row to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedInsert {
    /// The decky.
    pub decky: DesiredDecky,
    /// Its initial state.
    pub state: DeckyState,
    /// Why it is not running (for `last_error`), when Docker is known.
    pub detail: Option<String>,
}

/// A state change of an existing row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedUpdate {
    /// Host.
    pub host_uuid: String,
    /// Name.
    pub name: String,
    /// Stored state before.
    pub previous: String,
    /// New state.
    pub state: DeckyState,
    /// Why it is not running (for `last_error`).
    pub detail: Option<String>,
}

/// What one reconciliation pass must do. Empty when converged.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReconcilePlan {
    /// Rows to insert (step 3).
    pub inserts: Vec<PlannedInsert>,
    /// Rows to delete (step 4).
    pub deletes: Vec<StoredDecky>,
    /// Rows whose state changes (step 5).
    pub updates: Vec<PlannedUpdate>,
    /// Rows present in both whose state is unchanged (their `last_seen` may be touched).
    pub unchanged: Vec<StoredDecky>,
    /// State-file deckies of other hosts, skipped.
    pub skipped_other_hosts: Vec<String>,
}

impl ReconcilePlan {
    /// Nothing to write or publish.
    pub fn is_converged(&self) -> bool {
        self.inserts.is_empty() && self.deletes.is_empty() && self.updates.is_empty()
    }
}

/// Plan one pass for `host`.
///
/// * `from_state_file`: deckies of the state file (empty when the file is absent).
/// * `stored`: rows of `host` only.
/// * `observed`: every container Docker reported, or `None` when Docker is unknown.
pub fn plan(
    host: &str,
    from_state_file: &[DesiredDecky],
    stored: &[StoredDecky],
    observed: Option<&[ObservedContainer]>,
) -> ReconcilePlan {
    let mut out = ReconcilePlan::default();

    // Desired set: state file first (it wins), then labelled containers.
    let mut desired: BTreeMap<String, DesiredDecky> = BTreeMap::new();
    for d in from_state_file {
        if d.host_uuid != host {
            out.skipped_other_hosts.push(d.name.clone());
            continue;
        }
        desired.entry(d.name.clone()).or_insert_with(|| d.clone());
    }
    let state_file_names: BTreeSet<String> = desired.keys().cloned().collect();
    if let Some(containers) = observed {
        for d in discover_labelled(containers) {
            if d.host_uuid == host {
                desired.entry(d.name.clone()).or_insert(d);
            }
        }
    }

    let running_map: Option<HashMap<String, bool>> =
        observed.map(|cs| cs.iter().map(|c| (c.name.clone(), c.running)).collect());
    let stored_by_name: BTreeMap<&str, &StoredDecky> = stored
        .iter()
        .filter(|s| s.host_uuid == host)
        .map(|s| (s.name.as_str(), s))
        .collect();

    for (name, d) in &desired {
        let aggregated = running_map
            .as_ref()
            .map(|m| aggregate(name, &d.services, m));
        match stored_by_name.get(name.as_str()) {
            None => {
                let (state, detail) = aggregated.unwrap_or((DeckyState::Running, None));
                out.inserts.push(PlannedInsert {
                    decky: d.clone(),
                    state,
                    detail,
                });
            }
            Some(row) => match aggregated {
                Some((state, detail)) if row.state != state.as_str() => {
                    out.updates.push(PlannedUpdate {
                        host_uuid: row.host_uuid.clone(),
                        name: row.name.clone(),
                        previous: row.state.clone(),
                        state,
                        detail,
                    })
                }
                _ => out.unchanged.push((*row).clone()),
            },
        }
    }

    for (name, row) in &stored_by_name {
        if desired.contains_key(*name) {
            continue;
        }
        // Absent from the state file. With Docker unknown, label-discovered deckies are
        // unknown too: keep the row rather than guess it is gone.
        if observed.is_none() && !state_file_names.contains(*name) {
            out.unchanged.push((*row).clone());
            continue;
        }
        out.deletes.push((*row).clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn obs(pairs: &[(&str, bool)]) -> HashMap<String, bool> {
        pairs.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect()
    }

    fn container(
        name: &str,
        running: bool,
        decky: Option<&str>,
        service: Option<&str>,
    ) -> ObservedContainer {
        ObservedContainer {
            name: name.to_owned(),
            running,
            fleet_service: decky.is_some(),
            decky_label: decky.map(str::to_owned),
            service_label: service.map(str::to_owned),
            ip: Some(format!("10.0.0.{}", name.len())),
        }
    }

    fn desired(name: &str, services: &[&str]) -> DesiredDecky {
        DesiredDecky {
            host_uuid: LOCAL_HOST.into(),
            name: name.into(),
            ip: Some("10.0.0.5".into()),
            services: svc(services),
            config: None,
            source: DesiredSource::StateFile,
        }
    }

    fn stored(name: &str, state: &str) -> StoredDecky {
        StoredDecky {
            host_uuid: LOCAL_HOST.into(),
            name: name.into(),
            state: state.into(),
        }
    }

    #[test]
    fn states_round_trip() {
        for s in DeckyState::ALL {
            assert_eq!(DeckyState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
        assert_eq!(DeckyState::parse("bogus"), None);
    }

    #[test]
    fn aggregation_rules() {
        let s = svc(&["ssh", "smtp_relay"]);
        assert_eq!(aggregate_state("d", &s, &obs(&[])), DeckyState::TornDown);
        assert_eq!(
            aggregate_state("d", &s, &obs(&[("other-ssh", true)])),
            DeckyState::TornDown
        );
        assert_eq!(
            aggregate_state("d", &s, &obs(&[("d-ssh", true), ("d-smtp-relay", true)])),
            DeckyState::Running
        );
        // Underscore not replaced → not the expected container.
        assert_eq!(
            aggregate_state("d", &s, &obs(&[("d-ssh", true), ("d-smtp_relay", true)])),
            DeckyState::Degraded
        );
        assert_eq!(
            aggregate_state("d", &s, &obs(&[("d-ssh", false), ("d-smtp-relay", false)])),
            DeckyState::Failed
        );
        assert_eq!(
            aggregate_state("d", &s, &obs(&[("d-ssh", false)])),
            DeckyState::Failed
        );
        assert_eq!(
            aggregate_state("d", &s, &obs(&[("d-ssh", true), ("d-smtp-relay", false)])),
            DeckyState::Degraded
        );
        // All present running but one missing → degraded.
        assert_eq!(
            aggregate_state("d", &s, &obs(&[("d-ssh", true)])),
            DeckyState::Degraded
        );
    }

    #[test]
    fn aggregation_details() {
        let s = svc(&["ssh", "http"]);
        assert_eq!(
            aggregate("d", &s, &obs(&[("d-ssh", true), ("d-http", true)])),
            (DeckyState::Running, None)
        );
        assert_eq!(
            aggregate("d", &s, &obs(&[("d-ssh", false)])),
            (
                DeckyState::Failed,
                Some("missing: d-http; not running: d-ssh".into())
            )
        );
        assert_eq!(
            aggregate("d", &s, &obs(&[])),
            (DeckyState::TornDown, Some("missing: d-ssh, d-http".into()))
        );
    }

    const STATE: &str = r#"{
      "config": {"mode":"unihost","interface":"eth0","subnet":"10.0.0.0/24","gateway":"10.0.0.1",
        "deckies":[{"name":"decky-01","ip":"10.0.0.5","services":["ssh","http"],"distro":"debian",
          "base_image":"debian:bookworm-slim","build_base":"debian:bookworm-slim","hostname":"web01",
          "archetype":null,"service_config":{},"nmap_os":"linux","mutate_interval":null,
          "last_mutated":0.0,"last_login_attempt":0.0,"host_uuid":null},
          {"name":"decky-02","ip":"10.0.0.6","services":["smtp_relay"],"distro":"debian",
          "base_image":"x","hostname":"mail","host_uuid":"swarm-host-1"}],
        "log_file":null,"ipvlan":false,"mutate_interval":30},
      "compose_path":"/opt/decnet/decnet-compose.yml"}"#;

    #[test]
    fn parses_state_file() {
        let (file, raw) = parse_state_file(STATE).unwrap();
        assert_eq!(file.config.mode, DeployMode::Unihost);
        assert_eq!(file.config.deckies.len(), 2);
        assert_eq!(file.config.deckies[1].build_base, "debian:bookworm-slim");
        let d = DesiredDecky::from_state_file(&file, &raw);
        assert_eq!(d[0].host_uuid, LOCAL_HOST);
        assert_eq!(d[1].host_uuid, "swarm-host-1");
        assert_eq!(d[0].config.as_ref().unwrap()["hostname"], "web01");
        assert_eq!(d[0].services, svc(&["ssh", "http"]));
    }

    #[test]
    fn rejects_bad_state_files() {
        let unknown_key =
            STATE.replace("\"nmap_os\":\"linux\"", "\"nmap_os\":\"linux\",\"evil\":1");
        let no_service = STATE.replace("[\"smtp_relay\"]", "[]");
        let no_deckies = r#"{"config":{"mode":"unihost","interface":"e","subnet":"s","gateway":"g","deckies":[]}}"#;
        let bad_mode = STATE.replace("unihost", "multihost");
        let dup = STATE
            .replace("decky-02", "decky-01")
            .replace("swarm-host-1", "");
        let dup = dup.replace("\"host_uuid\":\"\"", "\"host_uuid\":null");
        for bad in [
            "not json",
            "{}",
            unknown_key.as_str(),
            no_service.as_str(),
            no_deckies,
            bad_mode.as_str(),
            dup.as_str(),
        ] {
            assert!(parse_state_file(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn discovers_labelled_deckies() {
        let cs = [
            container("alpha-ssh", true, Some("alpha"), Some("ssh")),
            container("alpha-smtp-relay", false, Some("alpha"), None),
            container("beta-http", true, Some("beta"), Some("http")),
            container("unlabelled", true, None, None),
            container("gamma", true, Some("gamma"), None), // no service derivable
        ];
        let found = discover_labelled(&cs);
        let names: Vec<_> = found.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["alpha", "beta"]);
        assert_eq!(found[0].services, svc(&["smtp-relay", "ssh"]));
        assert_eq!(found[0].source, DesiredSource::Labels);
        assert!(found[0].ip.is_some());
    }

    #[test]
    fn labelled_decky_ip_falls_back_to_base_container() {
        let mut svc_c = container("delta-ssh", true, Some("delta"), Some("ssh"));
        svc_c.ip = None;
        let mut base = container("delta", true, None, None);
        base.ip = Some("10.0.0.44".into());
        let found = discover_labelled(&[svc_c.clone(), base]);
        assert_eq!(found[0].ip.as_deref(), Some("10.0.0.44"));
        assert_eq!(discover_labelled(&[svc_c])[0].ip, None);
    }

    #[test]
    fn plan_inserts_with_aggregated_state_or_running_when_unknown() {
        let want = [desired("d1", &["ssh"]), desired("d2", &["ssh", "http"])];
        let cs = [
            container("d1-ssh", true, None, None),
            container("d2-ssh", false, None, None),
        ];
        let p = plan(LOCAL_HOST, &want, &[], Some(&cs));
        let got: Vec<_> = p
            .inserts
            .iter()
            .map(|i| (i.decky.name.as_str(), i.state))
            .collect();
        assert_eq!(
            got,
            [("d1", DeckyState::Running), ("d2", DeckyState::Failed)]
        );

        let p = plan(LOCAL_HOST, &want, &[], None);
        assert!(p.inserts.iter().all(|i| i.state == DeckyState::Running));
    }

    #[test]
    fn plan_updates_only_when_docker_known() {
        let want = [desired("d1", &["ssh"])];
        let rows = [stored("d1", "running")];
        let stopped = [container("d1-ssh", false, None, None)];
        let p = plan(LOCAL_HOST, &want, &rows, Some(&stopped));
        assert_eq!(
            p.updates,
            [PlannedUpdate {
                host_uuid: LOCAL_HOST.into(),
                name: "d1".into(),
                previous: "running".into(),
                state: DeckyState::Failed,
                detail: Some("not running: d1-ssh".into()),
            }]
        );
        let p = plan(LOCAL_HOST, &want, &rows, None);
        assert!(p.is_converged());
        assert_eq!(p.unchanged.len(), 1);
    }

    #[test]
    fn plan_is_converged_when_in_step() {
        let want = [desired("d1", &["ssh"])];
        let rows = [stored("d1", "running")];
        let cs = [container("d1-ssh", true, None, None)];
        assert!(plan(LOCAL_HOST, &want, &rows, Some(&cs)).is_converged());
    }

    #[test]
    fn plan_deletes_rows_absent_from_all_sources() {
        let rows = [stored("gone", "running"), stored("lab", "running")];
        let cs = [container("lab-ssh", true, Some("lab"), Some("ssh"))];
        let p = plan(LOCAL_HOST, &[], &rows, Some(&cs));
        assert_eq!(p.deletes, [stored("gone", "running")]);
        assert!(p.updates.is_empty());

        // Labelled containers all removed → the labelled decky goes too.
        let p = plan(LOCAL_HOST, &[], &rows, Some(&[]));
        assert_eq!(p.deletes.len(), 2);
    }

    #[test]
    fn docker_unknown_never_means_everything_is_gone() {
        let rows = [stored("lab", "running"), stored("d1", "degraded")];
        let want = [desired("d1", &["ssh"])];
        let p = plan(LOCAL_HOST, &want, &rows, None);
        assert!(p.is_converged(), "{p:?}");
        assert_eq!(p.unchanged.len(), 2);
    }

    #[test]
    fn state_file_wins_over_labels_and_other_hosts_are_skipped() {
        let mut other = desired("remote", &["ssh"]);
        other.host_uuid = "swarm-1".into();
        let want = [desired("d1", &["ssh", "http"]), other];
        let cs = [
            container("d1-ssh", true, Some("d1"), Some("ssh")),
            container("d1-http", true, Some("d1"), Some("http")),
            container("remote-ssh", true, None, None),
        ];
        let p = plan(LOCAL_HOST, &want, &[], Some(&cs));
        assert_eq!(p.inserts.len(), 1);
        assert_eq!(p.inserts[0].decky.source, DesiredSource::StateFile);
        assert_eq!(p.inserts[0].state, DeckyState::Running);
        assert_eq!(p.skipped_other_hosts, ["remote"]);
        // Rows of other hosts are never deleted.
        let foreign = StoredDecky {
            host_uuid: "swarm-1".into(),
            name: "x".into(),
            state: "running".into(),
        };
        let p = plan(LOCAL_HOST, &[], &[foreign], Some(&[]));
        assert!(p.deletes.is_empty());
    }

    #[test]
    fn unparseable_stored_state_is_corrected() {
        let want = [desired("d1", &["ssh"])];
        let rows = [stored("d1", "weird")];
        let cs = [container("d1-ssh", true, None, None)];
        let p = plan(LOCAL_HOST, &want, &rows, Some(&cs));
        assert_eq!(p.updates[0].state, DeckyState::Running);
        assert_eq!(p.updates[0].previous, "weird");
    }
}

//! Attacker observation rows (spec §8) as pure incremental state: a batch of
//! records folds into per-IP deltas, and a delta merges into the stored
//! profile without re-reading old logs.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::ip::msg_kv_tokens;
use super::parser::Record;

/// Event types whose text lands in `attackers.commands`.
pub const COMMAND_EVENT_TYPES: [&str; 9] = [
    "command",
    "exec",
    "query",
    "input",
    "shell_input",
    "execute",
    "run",
    "sql_query",
    "redis_command",
];

const COMMAND_TEXT_KEYS: [&str; 6] = ["command", "query", "input", "line", "sql", "cmd"];

/// ISO-8601 UTC rendering used in JSON columns and payloads.
pub fn iso(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string()
}

/// Why the profiler does not index a record as an attacker event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotIndexed {
    /// PROCID is not `-` (native daemon line).
    NativeProcid,
    /// HOSTNAME or APP-NAME is NIL/empty.
    NilHeader,
    /// Timestamp did not parse.
    BadTimestamp,
    /// No attacker address.
    NoAttackerIp,
    /// `mutator`/`decky_mutated`: a mutation, not attacker activity.
    Mutation,
}

/// One command entry of `attackers.commands`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandEntry {
    /// Service.
    pub service: String,
    /// Decky.
    pub decky: String,
    /// Command text.
    pub command: String,
    /// ISO timestamp.
    pub timestamp: String,
}

/// Split a bash `CMD …` body: `key=value` heads plus `command` = everything
/// after `cmd=` (spaces kept).
pub fn split_cmd_body(msg: &str) -> Vec<(String, String)> {
    let Some(body) = msg.strip_prefix("CMD ") else {
        return Vec::new();
    };
    let (head, cmd) = match body.find("cmd=") {
        Some(i) => (&body[..i], Some(&body[i + 4..])),
        None => (body, None),
    };
    let mut out: Vec<(String, String)> = msg_kv_tokens(head)
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if let Some(c) = cmd {
        out.push(("command".to_owned(), c.to_owned()));
    }
    out
}

/// Command text of a record when it is a command-family event.
pub fn command_text(rec: &Record) -> Option<String> {
    let et = rec.event_type.as_str();
    let f = rec.fields();
    let split = if (et == "-" || et == "command") && !f.contains_key("command") {
        split_cmd_body(&rec.msg)
    } else {
        Vec::new()
    };
    let is_cmd_type = COMMAND_EVENT_TYPES.contains(&et) || (et == "-" && !split.is_empty());
    if !is_cmd_type {
        return None;
    }
    COMMAND_TEXT_KEYS.iter().find_map(|k| {
        f.get_nonempty(k).map(str::to_owned).or_else(|| {
            split
                .iter()
                .find(|(sk, sv)| sk == k && !sv.is_empty())
                .map(|(_, v)| v.clone())
        })
    })
}

/// Profiler acceptance rules (spec §3.9).
pub fn check_indexable(rec: &Record) -> Result<NaiveDateTime, NotIndexed> {
    if rec.procid != "-" {
        return Err(NotIndexed::NativeProcid);
    }
    if rec.decky.is_empty() || rec.decky == "-" || rec.service.is_empty() || rec.service == "-" {
        return Err(NotIndexed::NilHeader);
    }
    let ts = rec.timestamp.ok_or(NotIndexed::BadTimestamp)?;
    if rec.service == "mutator" && rec.event_type == "decky_mutated" {
        return Err(NotIndexed::Mutation);
    }
    if !rec.has_attacker_ip() {
        return Err(NotIndexed::NoAttackerIp);
    }
    Ok(ts)
}

/// The first event seen for an IP in a batch (payload of `attacker.observed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstEvent {
    /// Decky.
    pub decky: String,
    /// Service.
    pub service: String,
    /// Event type.
    pub event_type: String,
    /// Event time.
    pub at: NaiveDateTime,
}

/// What one batch adds to one IP.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AttackerDelta {
    /// Attacker ip.
    pub ip: String,
    /// Earliest indexed event of the batch.
    pub first_seen: Option<NaiveDateTime>,
    /// Latest indexed event of the batch.
    pub last_seen: Option<NaiveDateTime>,
    /// Indexed events.
    pub event_count: i64,
    /// Services in first-seen order.
    pub services: Vec<String>,
    /// Deckies in first-contact order (including `decnet-*`).
    pub deckies: Vec<String>,
    /// New command entries.
    pub commands: Vec<CommandEntry>,
    /// New fingerprint bounty rows (full row objects), oldest first.
    pub fingerprints: Vec<serde_json::Value>,
    /// Newly inserted bounty rows of any type.
    pub bounty_count: i64,
    /// Newly inserted credential rows.
    pub credential_count: i64,
    /// First indexed event.
    pub first_event: Option<FirstEvent>,
}

/// Per-IP deltas of one batch, in first-touch order.
#[derive(Debug, Clone, Default)]
pub struct ObservationBatch {
    order: Vec<String>,
    map: HashMap<String, AttackerDelta>,
}

fn push_unique(v: &mut Vec<String>, s: &str) -> bool {
    if v.iter().any(|x| x == s) {
        false
    } else {
        v.push(s.to_owned());
        true
    }
}

impl ObservationBatch {
    /// Empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(&mut self, ip: &str) -> &mut AttackerDelta {
        if !self.map.contains_key(ip) {
            self.order.push(ip.to_owned());
        }
        self.map
            .entry(ip.to_owned())
            .or_insert_with(|| AttackerDelta {
                ip: ip.to_owned(),
                ..AttackerDelta::default()
            })
    }

    /// Index one record; returns why it was not indexed, if it was not.
    pub fn observe(&mut self, rec: &Record) -> Result<(), NotIndexed> {
        let ts = check_indexable(rec)?;
        let command = command_text(rec);
        let d = self.slot(&rec.attacker_ip);
        d.first_seen = Some(d.first_seen.map_or(ts, |f| f.min(ts)));
        d.last_seen = Some(d.last_seen.map_or(ts, |l| l.max(ts)));
        d.event_count += 1;
        push_unique(&mut d.services, &rec.service);
        push_unique(&mut d.deckies, &rec.decky);
        if d.first_event.is_none() {
            d.first_event = Some(FirstEvent {
                decky: rec.decky.clone(),
                service: rec.service.clone(),
                event_type: rec.event_type.clone(),
                at: ts,
            });
        }
        if let Some(command) = command {
            d.commands.push(CommandEntry {
                service: rec.service.clone(),
                decky: rec.decky.clone(),
                command,
                timestamp: iso(ts),
            });
        }
        Ok(())
    }

    /// Count a newly inserted bounty row; fingerprints also carry the full
    /// row object `{id, timestamp, decky, service, attacker_ip, bounty_type, payload}`.
    pub fn add_bounty(&mut self, ip: &str, fingerprint_row: Option<serde_json::Value>) {
        let d = self.slot(ip);
        d.bounty_count += 1;
        if let Some(row) = fingerprint_row {
            d.fingerprints.push(row);
        }
    }

    /// Count a newly inserted credential row.
    pub fn add_credential(&mut self, ip: &str) {
        self.slot(ip).credential_count += 1;
    }

    /// Whether nothing was touched.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// IPs touched, in first-touch order.
    pub fn ips(&self) -> &[String] {
        &self.order
    }

    /// Deltas in first-touch order.
    pub fn into_deltas(mut self) -> Vec<AttackerDelta> {
        self.order
            .iter()
            .filter_map(|ip| self.map.remove(ip))
            .collect()
    }
}

/// The computed columns of an `attackers` row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AttackerProfile {
    /// Min event time.
    pub first_seen: NaiveDateTime,
    /// Max event time.
    pub last_seen: NaiveDateTime,
    /// Indexed events.
    pub event_count: i64,
    /// `services.len()`.
    pub service_count: i64,
    /// Distinct deckies including `decnet-*`.
    pub decky_count: i64,
    /// Sorted unique services.
    pub services: Vec<String>,
    /// Display list: traversal order when traversal, else all deckies.
    pub deckies: Vec<String>,
    /// Every decky in first-contact order (persisted so merges stay exact).
    pub all_deckies: Vec<String>,
    /// `a → b → c` when traversal.
    pub traversal_path: Option<String>,
    /// ≥2 distinct deckies excluding `decnet-*`.
    pub is_traversal: bool,
    /// All bounty rows for the IP.
    pub bounty_count: i64,
    /// Credential rows for the IP.
    pub credential_count: i64,
    /// Fingerprint bounty rows, oldest first.
    pub fingerprints: Vec<serde_json::Value>,
    /// Command entries.
    pub commands: Vec<CommandEntry>,
}

/// Merge a delta into the stored profile. `None` when there is no stored
/// row and the delta holds no indexed event (bounties alone do not create
/// an attacker).
pub fn merge_profile(
    existing: Option<&AttackerProfile>,
    delta: &AttackerDelta,
) -> Option<AttackerProfile> {
    let mut p = match (existing, delta.first_seen, delta.last_seen) {
        (Some(e), _, _) => e.clone(),
        (None, Some(f), Some(l)) => AttackerProfile {
            first_seen: f,
            last_seen: l,
            ..AttackerProfile::default()
        },
        (None, _, _) => return None,
    };
    if let Some(f) = delta.first_seen {
        p.first_seen = p.first_seen.min(f);
    }
    if let Some(l) = delta.last_seen {
        p.last_seen = p.last_seen.max(l);
    }
    p.event_count += delta.event_count;
    for s in &delta.services {
        if let Err(pos) = p.services.binary_search(s) {
            p.services.insert(pos, s.clone());
        }
    }
    // Rows written before `all_deckies` existed fall back to the display list.
    if p.all_deckies.is_empty() {
        p.all_deckies = p.deckies.clone();
    }
    for d in &delta.deckies {
        push_unique(&mut p.all_deckies, d);
    }
    let real: Vec<String> = p
        .all_deckies
        .iter()
        .filter(|d| !d.starts_with("decnet-"))
        .cloned()
        .collect();
    p.is_traversal = real.len() >= 2;
    p.traversal_path = p.is_traversal.then(|| real.join(" → "));
    p.deckies = if p.is_traversal {
        real
    } else {
        p.all_deckies.clone()
    };
    p.service_count = p.services.len() as i64;
    p.decky_count = p.all_deckies.len() as i64;
    p.bounty_count += delta.bounty_count;
    p.credential_count += delta.credential_count;
    p.fingerprints.extend(delta.fingerprints.iter().cloned());
    p.commands.extend(delta.commands.iter().cloned());
    Some(p)
}

/// Payload of `attacker.observed` (uuid added by the caller when known).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedPayload {
    /// Attacker ip.
    pub attacker_ip: String,
    /// Decky of the first event.
    pub decky: String,
    /// Service of the first event.
    pub service: String,
    /// Event type of the first event.
    pub event_type: String,
    /// ISO time of the first event.
    pub first_seen: String,
}

impl AttackerDelta {
    /// `attacker.observed` payload for a newly created row.
    pub fn observed_payload(&self) -> Option<ObservedPayload> {
        self.first_event.as_ref().map(|e| ObservedPayload {
            attacker_ip: self.ip.clone(),
            decky: e.decky.clone(),
            service: e.service.clone(),
            event_type: e.event_type.clone(),
            first_seen: iso(e.at),
        })
    }
}

/// Payload of `attacker.scored`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScoredPayload {
    /// Attacker ip.
    pub attacker_ip: String,
    /// Events.
    pub event_count: i64,
    /// Services.
    pub service_count: i64,
    /// Deckies.
    pub decky_count: i64,
    /// Bounties.
    pub bounty_count: i64,
    /// Credentials.
    pub credential_count: i64,
    /// Traversal flag.
    pub is_traversal: bool,
}

impl AttackerProfile {
    /// `attacker.scored` payload.
    pub fn scored_payload(&self, ip: &str) -> ScoredPayload {
        ScoredPayload {
            attacker_ip: ip.to_owned(),
            event_count: self.event_count,
            service_count: self.service_count,
            decky_count: self.decky_count,
            bounty_count: self.bounty_count,
            credential_count: self.credential_count,
            is_traversal: self.is_traversal,
        }
    }
}

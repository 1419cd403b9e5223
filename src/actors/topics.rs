//! Topic grammar (§1.3), wildcard patterns (§1.4), the delivered [`Envelope`] (§1.2) and the
//! typed [`Event`] enum whose variants derive their topic (§1.6).
//!
//! Nothing here performs I/O: it is plain data and string handling, unit-tested below.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why a topic, pattern or builder segment was refused. Every variant names the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The whole topic or pattern was the empty string.
    #[error("topic is empty")]
    Empty,
    /// `a..b`, `.a`, `a.`: an empty token inside the given topic or pattern.
    #[error("empty token in {0:?}")]
    EmptyToken(String),
    /// A token (or id segment) that contains a forbidden character.
    #[error("invalid token {token:?}: {reason}")]
    InvalidToken {
        /// The offending token / segment, verbatim.
        token: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A published topic that contains a wildcard token.
    #[error("wildcard token {token:?} in published topic {topic:?}")]
    WildcardInTopic {
        /// The wildcard token (`*` or `>`).
        token: String,
        /// The topic as given.
        topic: String,
    },
    /// A subscription pattern with tokens after `>`.
    #[error("pattern {0:?} has tokens after `>`")]
    TokensAfterTail(String),
    /// A family builder was given an empty leaf.
    #[error("empty leaf for topic family {0:?}")]
    EmptyLeaf(&'static str),
}

/// Checks an id segment (`topology_id`, `decky_id`, `worker`, …): non-empty, no `.`, `*`, `>`
/// and no whitespace.
pub fn validate_segment(seg: &str) -> Result<(), TopicError> {
    let reason = if seg.is_empty() {
        "empty segment"
    } else if seg.contains('.') {
        "contains `.`"
    } else if seg.contains('*') {
        "contains `*`"
    } else if seg.contains('>') {
        "contains `>`"
    } else if seg.chars().any(char::is_whitespace) {
        "contains whitespace"
    } else {
        return Ok(());
    };
    Err(TopicError::InvalidToken {
        token: seg.to_owned(),
        reason,
    })
}

/// Validates a topic about to be published: non-empty `.`-separated tokens, none of which is or
/// contains `*`/`>`, and no whitespace anywhere.
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    for token in topic.split('.') {
        if token.is_empty() {
            return Err(TopicError::EmptyToken(topic.to_owned()));
        }
        if token == "*" || token == ">" {
            return Err(TopicError::WildcardInTopic {
                token: token.to_owned(),
                topic: topic.to_owned(),
            });
        }
        validate_segment(token)?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatToken {
    Literal(Box<str>),
    /// `*`: exactly one non-empty token.
    Star,
    /// `>`: one or more remaining tokens (always last).
    Tail,
}

/// A parsed subscription pattern (§1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    raw: String,
    tokens: Vec<PatToken>,
}

impl Pattern {
    /// Parses a pattern. Rejects the empty pattern, empty tokens, whitespace, and any token after
    /// `>`. Partial wildcards (`sys*`) are accepted as literals, as in the reference; they simply
    /// never match a valid topic.
    pub fn parse(p: &str) -> Result<Pattern, TopicError> {
        if p.is_empty() {
            return Err(TopicError::Empty);
        }
        let mut tokens = Vec::new();
        let mut saw_tail = false;
        for token in p.split('.') {
            if saw_tail {
                return Err(TopicError::TokensAfterTail(p.to_owned()));
            }
            if token.is_empty() {
                return Err(TopicError::EmptyToken(p.to_owned()));
            }
            if token.chars().any(char::is_whitespace) {
                return Err(TopicError::InvalidToken {
                    token: token.to_owned(),
                    reason: "contains whitespace",
                });
            }
            tokens.push(match token {
                "*" => PatToken::Star,
                ">" => {
                    saw_tail = true;
                    PatToken::Tail
                }
                lit => PatToken::Literal(lit.into()),
            });
        }
        Ok(Pattern {
            raw: p.to_owned(),
            tokens,
        })
    }

    /// True iff `topic` matches this pattern under the §1.4 rules.
    pub fn matches(&self, topic: &str) -> bool {
        let mut topic_tokens = topic.split('.');
        for pt in &self.tokens {
            match pt {
                PatToken::Tail => {
                    // One or more remaining tokens, each non-empty.
                    let mut any = false;
                    for t in topic_tokens.by_ref() {
                        if t.is_empty() {
                            return false;
                        }
                        any = true;
                    }
                    return any;
                }
                PatToken::Star => match topic_tokens.next() {
                    Some(t) if !t.is_empty() => {}
                    _ => return false,
                },
                PatToken::Literal(lit) => match topic_tokens.next() {
                    Some(t) if t == &**lit => {}
                    _ => return false,
                },
            }
        }
        topic_tokens.next().is_none()
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Topic builders (§1.3). Id segments are validated with [`validate_segment`]; family leaves may
/// be dotted and are only refused when empty.
pub mod build {
    use super::{validate_segment, TopicError};

    fn leaf(family: &'static str, leaf: &str) -> Result<String, TopicError> {
        if leaf.is_empty() {
            return Err(TopicError::EmptyLeaf(family));
        }
        Ok(format!("{family}.{leaf}"))
    }

    /// `topology.{id}.mutation.{leaf}` (`enqueued`, `applying`, `applied`, `failed`).
    pub fn topology_mutation(topology_id: &str, leaf: &str) -> Result<String, TopicError> {
        validate_segment(topology_id)?;
        if leaf.is_empty() {
            return Err(TopicError::EmptyLeaf("topology.mutation"));
        }
        Ok(format!("topology.{topology_id}.mutation.{leaf}"))
    }

    /// `topology.{id}.status`.
    pub fn topology_status(topology_id: &str) -> Result<String, TopicError> {
        validate_segment(topology_id)?;
        Ok(format!("topology.{topology_id}.status"))
    }

    /// `decky.{id}.{leaf}`.
    pub fn decky(decky_id: &str, leaf: &str) -> Result<String, TopicError> {
        validate_segment(decky_id)?;
        if leaf.is_empty() {
            return Err(TopicError::EmptyLeaf("decky"));
        }
        Ok(format!("decky.{decky_id}.{leaf}"))
    }

    /// `decky.{id}.state`.
    pub fn decky_state(decky_id: &str) -> Result<String, TopicError> {
        decky(decky_id, "state")
    }

    /// `decky.{id}.mutation` (§6.5).
    pub fn decky_mutation(decky_id: &str) -> Result<String, TopicError> {
        decky(decky_id, "mutation")
    }

    /// `system.{leaf}`.
    pub fn system(leaf_: &str) -> Result<String, TopicError> {
        leaf("system", leaf_)
    }

    /// `system.{worker}.health`.
    pub fn system_health(worker: &str) -> Result<String, TopicError> {
        validate_segment(worker)?;
        Ok(format!("system.{worker}.health"))
    }

    /// `system.{worker}.control`.
    pub fn system_control(worker: &str) -> Result<String, TopicError> {
        validate_segment(worker)?;
        Ok(format!("system.{worker}.control"))
    }

    /// `attacker.{leaf}`.
    pub fn attacker(leaf_: &str) -> Result<String, TopicError> {
        leaf("attacker", leaf_)
    }

    /// `attacker.observation.{primitive}`; the primitive may be dotted, only empty is refused.
    pub fn attacker_observation(primitive: &str) -> Result<String, TopicError> {
        if primitive.is_empty() {
            return Err(TopicError::EmptyLeaf("attacker.observation"));
        }
        Ok(format!("attacker.observation.{primitive}"))
    }

    /// `identity.{leaf}`.
    pub fn identity(leaf_: &str) -> Result<String, TopicError> {
        leaf("identity", leaf_)
    }

    /// `campaign.{leaf}`.
    pub fn campaign(leaf_: &str) -> Result<String, TopicError> {
        leaf("campaign", leaf_)
    }

    /// `credential.{leaf}`.
    pub fn credential(leaf_: &str) -> Result<String, TopicError> {
        leaf("credential", leaf_)
    }

    /// `attribution.{leaf}`.
    pub fn attribution(leaf_: &str) -> Result<String, TopicError> {
        leaf("attribution", leaf_)
    }

    /// `smtp.{leaf}`.
    pub fn smtp(leaf_: &str) -> Result<String, TopicError> {
        leaf("smtp", leaf_)
    }

    /// `email.{leaf}`.
    pub fn email(leaf_: &str) -> Result<String, TopicError> {
        leaf("email", leaf_)
    }

    /// `ttp.{leaf}`.
    pub fn ttp(leaf_: &str) -> Result<String, TopicError> {
        leaf("ttp", leaf_)
    }

    /// `ttp.rule.fired.{technique_id}` — parent technique only, so `T1110.001` is refused.
    pub fn ttp_rule_fired(technique_id: &str) -> Result<String, TopicError> {
        validate_segment(technique_id)?;
        Ok(format!("ttp.rule.fired.{technique_id}"))
    }

    /// `ttp.rule.reloaded.{rule_id}`.
    pub fn ttp_rule_reloaded(rule_id: &str) -> Result<String, TopicError> {
        validate_segment(rule_id)?;
        Ok(format!("ttp.rule.reloaded.{rule_id}"))
    }

    /// `ttp.rule.state.{rule_id}`.
    pub fn ttp_rule_state(rule_id: &str) -> Result<String, TopicError> {
        validate_segment(rule_id)?;
        Ok(format!("ttp.rule.state.{rule_id}"))
    }

    /// `canary.{token_id}.{leaf}` (`placed`, `triggered`, `revoked`).
    pub fn canary(token_id: &str, leaf: &str) -> Result<String, TopicError> {
        validate_segment(token_id)?;
        if leaf.is_empty() {
            return Err(TopicError::EmptyLeaf("canary"));
        }
        Ok(format!("canary.{token_id}.{leaf}"))
    }

    /// `orchestrator.{kind}.{dst}` (`traffic`, `file`, `email`).
    pub fn orchestrator(kind: &str, dst: &str) -> Result<String, TopicError> {
        validate_segment(kind)?;
        validate_segment(dst)?;
        Ok(format!("orchestrator.{kind}.{dst}"))
    }
}

/// The delivered event `{v, id, topic, type, ts, payload}` (§1.2).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    /// Envelope version, always `1`.
    pub v: u8,
    /// Random 128-bit id, 32 lowercase hex chars, stamped by the registry.
    pub id: String,
    /// The concrete topic the registry routed on.
    pub topic: String,
    /// Short publisher-chosen discriminator (may be empty).
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix epoch seconds, stamped by the registry.
    pub ts: f64,
    /// Always a JSON object.
    pub payload: Value,
    /// What SSE streams relay of this envelope, serialized once for all of them.
    #[serde(skip)]
    pub relay: RelayCache,
}

/// A lazily filled, shared serialization of an [`Envelope`]: its relayed data (one line of
/// JSON) and its encoded SSE frame under the first event name it was relayed with. Never part
/// of the envelope's value: two envelopes compare equal whatever their caches hold.
#[derive(Clone, Debug, Default)]
pub struct RelayCache {
    data: std::sync::OnceLock<bytestring::ByteString>,
    frame: std::sync::OnceLock<(Box<str>, bytes::Bytes)>,
}

impl RelayCache {
    /// The cached text, computed by `make` on first use.
    pub fn get_or_init(&self, make: impl FnOnce() -> String) -> bytestring::ByteString {
        self.data.get_or_init(|| make().into()).clone()
    }

    /// The frame encoded for event name `name`: cached for the first name asked for (the
    /// streams relaying one envelope almost always share one name); another name gets
    /// `make()` without caching it.
    pub fn frame_or_init(&self, name: &str, make: impl FnOnce() -> bytes::Bytes) -> bytes::Bytes {
        if let Some((cached, frame)) = self.frame.get() {
            return if &**cached == name {
                frame.clone()
            } else {
                make()
            };
        }
        // Two streams may encode it at once: both answers are right, the first one stays.
        let frame = make();
        let _ = self.frame.set((name.into(), frame.clone()));
        frame
    }
}

impl PartialEq for RelayCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Typed payloads (§1.6). Field names are contractual.
// ---------------------------------------------------------------------------------------------

/// `system.{worker}.health`: `{worker, ts, …extra}`. `worker` and `ts` win over `extra` keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerHealth {
    /// Heartbeat name (= topic token).
    pub worker: String,
    /// Epoch seconds.
    pub ts: f64,
    /// Actor-supplied extra fields, merged flat into the payload.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Action carried by `system.{worker}.control`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlAction {
    /// Graceful stop.
    Stop,
    /// Reserved on the wire (a stopped actor has no listener).
    Start,
}

/// `system.{worker}.control` payload (routed on `worker`, which is not part of the payload).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerControl {
    /// `stop` or `start`.
    pub action: ControlAction,
    /// Admin username.
    pub requested_by: String,
    /// Epoch seconds.
    pub ts: f64,
}

/// `system.bus.health`: the registry's own heartbeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BusHealth {
    /// Daemon process id.
    pub pid: u32,
    /// Seconds since the registry started.
    pub uptime_sec: f64,
    /// Epoch seconds.
    pub ts: f64,
}

/// `system.log` from the collector/ingester for one parsed log line; type = `event_type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Decky (syslog HOSTNAME).
    pub decky: String,
    /// Service (syslog APP-NAME).
    pub service: String,
    /// Parsed event type.
    pub event_type: String,
    /// Attacker address, when any.
    pub attacker_ip: Option<String>,
    /// Event timestamp (ISO-8601).
    pub timestamp: String,
}

/// `system.log` type `batch_committed`: `{component:"ingester", flushed, position}` (never 0 rows).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchCommitted {
    /// Rows flushed in the batch.
    pub flushed: u64,
    /// Byte offset reached in the ingest file.
    pub position: u64,
}

/// `email.received` (type `received`): a mail the attacker stored on a mail decky (intake §6
/// clause 12b). Hashes, counts and domains only, never addresses or bodies (platform §5);
/// fields the artifact record does not carry are left out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmailReceived {
    /// The `bounty` row of the artifact.
    pub source_id: Option<i64>,
    /// The attacker row (published only when the IP already has one).
    pub attacker_uuid: String,
    /// Attacker address.
    pub attacker_ip: String,
    /// Mail decky.
    pub decky_id: String,
    /// Service (`smtp`, `smtp_relay`, …).
    pub service: String,
    /// Subject, sender/recipient domains, counts, `stored_as`, `body_sha256` (flattened).
    #[serde(flatten)]
    pub mail: crate::domain::syslog::mail::MailSummary,
}

/// `smtp.probe.pending` (type `probe.pending`): a relay probe to forward once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmtpProbePending {
    /// Mail decky.
    pub decky: String,
    /// Attacker address.
    pub attacker_ip: String,
    /// Where the decky stored the message.
    pub stored_as: String,
    /// Envelope sender.
    pub mail_from: Option<String>,
    /// Envelope recipients as logged.
    pub rcpt_to: Option<String>,
}

/// `decky.{id}.state` transition kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeckyTransition {
    /// Row inserted.
    Inserted,
    /// Row deleted.
    Deleted,
    /// State column changed.
    StateChanged,
}

/// `decky.{id}.state` payload (reconciler); `source` is always `"fleet"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeckyState {
    /// Host owning the decky.
    pub host_uuid: String,
    /// Decky name.
    pub name: String,
    /// New state.
    pub state: String,
    /// What happened.
    pub transition: DeckyTransition,
    /// Previous state, only on `state_changed`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub previous_state: Option<String>,
}

/// `decky.{decky}.mutation` payload (§6.5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeckyMutation {
    /// Decky name (also the topic token).
    pub decky: String,
    /// Services before.
    pub old_services: Vec<String>,
    /// Services after.
    pub new_services: Vec<String>,
    /// `creation`, `retirement`, `scheduled`, `operator`, …
    pub trigger: String,
    /// Acting user, omitted when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub actor: Option<String>,
}

/// `orchestrator.traffic.{dst}` / `orchestrator.file.{dst}` payload (the `kind` field is added
/// from the variant).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrchestratorActivity {
    /// Protocol used (`ssh`).
    pub protocol: String,
    /// Action performed.
    pub action: String,
    /// Source decky (null for file events).
    pub src_decky_uuid: Option<String>,
    /// Destination decky.
    pub dst_decky_uuid: String,
    /// Whether it succeeded.
    pub success: bool,
    /// Action-specific details.
    pub payload: Map<String, Value>,
    /// ISO-8601 timestamp.
    pub ts: String,
}

/// `orchestrator.email.{mail_decky}` payload (the `kind` field is added from the variant).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrchestratorEmail {
    /// Mail decky (also the topic token).
    pub mail_decky_uuid: String,
    /// Thread id.
    pub thread_id: String,
    /// Message-ID.
    pub message_id: String,
    /// In-Reply-To, when a reply.
    pub in_reply_to: Option<String>,
    /// Sender address.
    pub sender_email: String,
    /// Recipient address.
    pub recipient_email: String,
    /// Subject line.
    pub subject: String,
    /// Language code.
    pub language: String,
    /// Whether delivery succeeded.
    pub success: bool,
    /// ISO-8601 timestamp.
    pub ts: String,
}

/// `attacker.observed` (first sighting).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackerObserved {
    /// Attacker address.
    pub attacker_ip: String,
    /// Decky name.
    pub decky: String,
    /// Service name.
    pub service: String,
    /// Event type of the sighting.
    pub event_type: String,
    /// ISO-8601 first-seen time.
    pub first_seen: String,
    /// The attacker row just created (spec §16.5: added so per-attacker streams can filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attacker_uuid: Option<String>,
}

/// `attacker.scored`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackerScored {
    /// Attacker address.
    pub attacker_ip: String,
    /// The attacker row (spec §16.5: the per-attacker SSE filters on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attacker_uuid: Option<String>,
    /// Events seen.
    pub event_count: u64,
    /// Distinct services.
    pub service_count: u64,
    /// Distinct deckies.
    pub decky_count: u64,
    /// Bounties collected.
    pub bounty_count: u64,
    /// Credentials captured.
    pub credential_count: u64,
    /// Whether the attacker moved between deckies.
    pub is_traversal: bool,
}

/// `attacker.fingerprinted`: type = probe name; payload = `{attacker_ip, …fields}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackerFingerprinted {
    /// Probe name (`jarm`, `hassh`, `tcpfp`, …) — the envelope type, not part of the payload.
    #[serde(skip)]
    pub probe: String,
    /// Attacker address.
    pub attacker_ip: String,
    /// Probe-specific fields (open-ended).
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// `attacker.intel.enriched`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntelEnriched {
    /// Attacker row id.
    pub attacker_uuid: String,
    /// Attacker address.
    pub attacker_ip: String,
    /// Aggregate verdict (`malicious` > `suspicious` > `benign` > `unknown`); null = no opinion.
    pub aggregate_verdict: Option<String>,
    /// Providers that were queried.
    #[serde(default)]
    pub providers: Vec<String>,
    /// AbuseIPDB confidence score.
    pub abuseipdb_score: Option<i64>,
    /// AbuseIPDB categories.
    pub abuseipdb_categories: Vec<i64>,
    /// GreyNoise classification.
    pub greynoise_classification: Option<String>,
    /// GreyNoise actor name.
    pub greynoise_name: Option<String>,
    /// GreyNoise tags.
    pub greynoise_tags: Vec<String>,
    /// Listed by Feodo Tracker (null = not answered).
    pub feodo_listed: Option<bool>,
    /// Feodo malware family.
    pub feodo_malware_family: Option<String>,
    /// Listed by ThreatFox (null = not answered).
    pub threatfox_listed: Option<bool>,
    /// ThreatFox threat types.
    pub threatfox_threat_types: Vec<String>,
    /// ThreatFox IOC types.
    pub threatfox_ioc_types: Vec<String>,
    /// ThreatFox malware families.
    pub threatfox_malware_families: Vec<String>,
}

/// `credential.captured`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CredentialCaptured {
    /// SHA-256 of the secret (never the secret).
    pub secret_sha256: String,
    /// Secret kind.
    pub secret_kind: String,
    /// Attacker address.
    pub attacker_ip: String,
    /// Decky name.
    pub decky: String,
    /// Service name.
    pub service: String,
}

/// `credential.reuse.detected`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CredentialReuseDetected {
    /// Reuse row id.
    pub id: String,
    /// Secret kind.
    pub secret_kind: String,
    /// Number of distinct targets.
    pub target_count: u64,
    /// Attackers involved.
    pub attacker_uuids: Vec<String>,
    /// Their addresses.
    pub attacker_ips: Vec<String>,
    /// Deckies involved.
    pub deckies: Vec<String>,
    /// Services involved.
    pub services: Vec<String>,
}

/// `identity.formed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdentityFormed {
    /// New identity.
    pub identity_uuid: String,
    /// Its observations.
    pub observation_uuids: Vec<String>,
}

/// `identity.observation.linked`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservationLinked {
    /// Identity.
    pub identity_uuid: String,
    /// Linked observation.
    pub observation_uuid: String,
}

/// `identity.merged` / `campaign.merged`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Merged {
    /// Surviving row.
    pub winner_uuid: String,
    /// Absorbed row.
    pub loser_uuid: String,
}

/// `identity.unmerged` / `campaign.unmerged`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unmerged {
    /// Row brought back.
    pub resurrected_uuid: String,
    /// The former winner.
    pub former_winner_uuid: String,
}

/// `identity.campaign.assigned` and `campaign.identity.assigned` (same fields).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CampaignAssigned {
    /// Identity.
    pub identity_uuid: String,
    /// Campaign it now belongs to.
    pub campaign_uuid: String,
    /// Previous campaign (null when none; always serialized).
    pub prior_campaign_uuid: Option<String>,
}

/// `campaign.formed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CampaignFormed {
    /// New campaign.
    pub campaign_uuid: String,
    /// Its identities.
    pub identity_uuids: Vec<String>,
}

/// `ttp.tagged`: new tag rows of one observation (only when at least one was written).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TtpTagged {
    /// The observation.
    pub attacker_uuid: String,
    /// Its identity when it has one.
    pub identity_uuid: Option<String>,
    /// Always null: tags come from log lines, not from sessions.
    pub session_id: Option<String>,
    /// The new tag rows.
    pub tag_uuids: Vec<String>,
    /// Distinct techniques of the new rows.
    pub techniques_added: Vec<String>,
}

/// `canary.{token_id}.placed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanaryPlaced {
    /// Token (also the topic token).
    pub token_id: String,
    /// Decky name.
    pub decky_name: String,
    /// Where it was placed.
    pub placement_path: String,
    /// Instrumenter used.
    pub instrumenter: String,
    /// Generator used.
    pub generator: String,
}

/// `canary.{token_id}.triggered`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanaryTriggered {
    /// Token (also the topic token).
    pub token_id: String,
    /// Trigger row id.
    pub trigger_id: String,
    /// Decky name.
    pub decky_name: String,
    /// Caller address.
    pub src_ip: Option<String>,
    /// HTTP user agent.
    pub user_agent: Option<String>,
    /// HTTP path.
    pub request_path: Option<String>,
    /// DNS query name.
    pub dns_qname: Option<String>,
}

/// `canary.{token_id}.revoked`: operator revoke or auto-revoke after fingerprint capture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CanaryRevoked {
    /// `{token_id, decky_name, placement_path}`.
    Operator {
        /// Token.
        token_id: String,
        /// Decky name.
        decky_name: String,
        /// Placement path.
        placement_path: String,
    },
    /// `{token_id, trigger_id, reason}` (reason `fingerprint_collected`).
    Auto {
        /// Token.
        token_id: String,
        /// Trigger that caused the revoke.
        trigger_id: String,
        /// Why.
        reason: String,
    },
}

impl CanaryRevoked {
    fn token_id(&self) -> &str {
        match self {
            CanaryRevoked::Operator { token_id, .. } | CanaryRevoked::Auto { token_id, .. } => {
                token_id
            }
        }
    }
}

/// Every event decnetd produces. The topic and envelope `type` are derived from the variant.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// `system.{worker}.health`, type `health`.
    WorkerHealth(WorkerHealth),
    /// `system.{worker}.control`, type `control`.
    WorkerControl {
        /// Target worker (topic token).
        worker: String,
        /// Payload.
        control: WorkerControl,
    },
    /// `system.bus.health`, type `bus.health`.
    BusHealth(BusHealth),
    /// `system.log`, type = the line's `event_type`.
    Log(LogLine),
    /// `system.log`, type `batch_committed`, payload `{component:"ingester", flushed, position}`.
    BatchCommitted(BatchCommitted),
    /// `system.webhook.subscriptions_changed`, type `changed`, payload `{}`.
    WebhookSubscriptionsChanged,
    /// `decky.{decky_id}.state`, type `state`, payload has `source:"fleet"`.
    DeckyState {
        /// Topic token, e.g. `local:omega`.
        decky_id: String,
        /// Payload.
        state: DeckyState,
    },
    /// `decky.{decky}.mutation`, type `mutation` (§6.5).
    DeckyMutation(DeckyMutation),
    /// `orchestrator.traffic.{dst}`, type `traffic`.
    OrchestratorTraffic {
        /// Topic token (destination decky).
        dst: String,
        /// Payload.
        activity: OrchestratorActivity,
    },
    /// `orchestrator.file.{dst}`, type `file`.
    OrchestratorFile {
        /// Topic token (destination decky).
        dst: String,
        /// Payload.
        activity: OrchestratorActivity,
    },
    /// `orchestrator.email.{mail_decky_uuid}`, type `email`.
    OrchestratorEmail(OrchestratorEmail),
    /// `attacker.observed`, type `observed`.
    AttackerObserved(AttackerObserved),
    /// `attacker.scored`, type `scored`.
    AttackerScored(AttackerScored),
    /// `attacker.fingerprinted`, type = probe name.
    AttackerFingerprinted(AttackerFingerprinted),
    /// `attacker.intel.enriched`, type `intel.enriched`.
    IntelEnriched(IntelEnriched),
    /// `credential.captured`, type `captured`.
    CredentialCaptured(CredentialCaptured),
    /// `email.received`, type `received`.
    EmailReceived(EmailReceived),
    /// `smtp.probe.pending`, type `probe.pending`.
    SmtpProbePending(SmtpProbePending),
    /// `credential.reuse.detected`, type `reuse.detected`.
    CredentialReuseDetected(CredentialReuseDetected),
    /// `identity.formed`, type `formed`.
    IdentityFormed(IdentityFormed),
    /// `identity.observation.linked`, type `observation.linked`.
    IdentityObservationLinked(ObservationLinked),
    /// `identity.merged`, type `merged`.
    IdentityMerged(Merged),
    /// `identity.unmerged`, type `unmerged`.
    IdentityUnmerged(Unmerged),
    /// `identity.campaign.assigned`, type `campaign.assigned`.
    IdentityCampaignAssigned(CampaignAssigned),
    /// `campaign.formed`, type `formed`.
    CampaignFormed(CampaignFormed),
    /// `campaign.identity.assigned`, type `identity.assigned`.
    CampaignIdentityAssigned(CampaignAssigned),
    /// `campaign.merged`, type `merged`.
    CampaignMerged(Merged),
    /// `campaign.unmerged`, type `unmerged`.
    CampaignUnmerged(Unmerged),
    /// `ttp.tagged`, type `tagged`.
    TtpTagged(TtpTagged),
    /// `canary.{token_id}.placed`, type `""`.
    CanaryPlaced(CanaryPlaced),
    /// `canary.{token_id}.triggered`, type `""`.
    CanaryTriggered(CanaryTriggered),
    /// `canary.{token_id}.revoked`, type `""`.
    CanaryRevoked(CanaryRevoked),
}

fn to_object<T: Serialize>(value: &T) -> Map<String, Value> {
    // Serializing our own plain structs (string keys, no maps with non-string keys) cannot fail;
    // fall back to an empty object rather than panicking should that ever change.
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        Ok(_) | Err(_) => {
            tracing::error!("event payload did not serialize to a JSON object");
            Map::new()
        }
    }
}

fn with_key(mut map: Map<String, Value>, key: &str, value: Value) -> Map<String, Value> {
    map.insert(key.to_owned(), value);
    map
}

impl Event {
    /// The concrete topic of this event; fails when an id segment is invalid.
    pub fn topic(&self) -> Result<String, TopicError> {
        use build::*;
        match self {
            Event::WorkerHealth(h) => system_health(&h.worker),
            Event::WorkerControl { worker, .. } => system_control(worker),
            Event::BusHealth(_) => Ok("system.bus.health".to_owned()),
            Event::Log(_) | Event::BatchCommitted(_) => Ok("system.log".to_owned()),
            Event::WebhookSubscriptionsChanged => {
                Ok("system.webhook.subscriptions_changed".to_owned())
            }
            Event::DeckyState { decky_id, .. } => decky_state(decky_id),
            Event::DeckyMutation(m) => decky_mutation(&m.decky),
            Event::OrchestratorTraffic { dst, .. } => orchestrator("traffic", dst),
            Event::OrchestratorFile { dst, .. } => orchestrator("file", dst),
            Event::OrchestratorEmail(e) => orchestrator("email", &e.mail_decky_uuid),
            Event::AttackerObserved(_) => Ok("attacker.observed".to_owned()),
            Event::AttackerScored(_) => Ok("attacker.scored".to_owned()),
            Event::AttackerFingerprinted(_) => Ok("attacker.fingerprinted".to_owned()),
            Event::IntelEnriched(_) => Ok("attacker.intel.enriched".to_owned()),
            Event::CredentialCaptured(_) => Ok("credential.captured".to_owned()),
            Event::EmailReceived(_) => Ok("email.received".to_owned()),
            Event::SmtpProbePending(_) => Ok("smtp.probe.pending".to_owned()),
            Event::CredentialReuseDetected(_) => Ok("credential.reuse.detected".to_owned()),
            Event::IdentityFormed(_) => Ok("identity.formed".to_owned()),
            Event::IdentityObservationLinked(_) => Ok("identity.observation.linked".to_owned()),
            Event::IdentityMerged(_) => Ok("identity.merged".to_owned()),
            Event::IdentityUnmerged(_) => Ok("identity.unmerged".to_owned()),
            Event::IdentityCampaignAssigned(_) => Ok("identity.campaign.assigned".to_owned()),
            Event::CampaignFormed(_) => Ok("campaign.formed".to_owned()),
            Event::CampaignIdentityAssigned(_) => Ok("campaign.identity.assigned".to_owned()),
            Event::CampaignMerged(_) => Ok("campaign.merged".to_owned()),
            Event::CampaignUnmerged(_) => Ok("campaign.unmerged".to_owned()),
            Event::TtpTagged(_) => Ok("ttp.tagged".to_owned()),
            Event::CanaryPlaced(c) => canary(&c.token_id, "placed"),
            Event::CanaryTriggered(c) => canary(&c.token_id, "triggered"),
            Event::CanaryRevoked(c) => canary(c.token_id(), "revoked"),
        }
    }

    /// The envelope `type` (§1.6).
    pub fn kind(&self) -> &str {
        match self {
            Event::WorkerHealth(_) => "health",
            Event::WorkerControl { .. } => "control",
            Event::BusHealth(_) => "bus.health",
            Event::Log(l) => &l.event_type,
            Event::BatchCommitted(_) => "batch_committed",
            Event::WebhookSubscriptionsChanged => "changed",
            Event::DeckyState { .. } => "state",
            Event::DeckyMutation(_) => "mutation",
            Event::OrchestratorTraffic { .. } => "traffic",
            Event::OrchestratorFile { .. } => "file",
            Event::OrchestratorEmail(_) => "email",
            Event::AttackerObserved(_) => "observed",
            Event::AttackerScored(_) => "scored",
            Event::AttackerFingerprinted(f) => &f.probe,
            Event::IntelEnriched(_) => "intel.enriched",
            Event::CredentialCaptured(_) => "captured",
            Event::EmailReceived(_) => "received",
            Event::SmtpProbePending(_) => "probe.pending",
            Event::CredentialReuseDetected(_) => "reuse.detected",
            Event::IdentityFormed(_) | Event::CampaignFormed(_) => "formed",
            Event::IdentityObservationLinked(_) => "observation.linked",
            Event::IdentityMerged(_) | Event::CampaignMerged(_) => "merged",
            Event::IdentityUnmerged(_) | Event::CampaignUnmerged(_) => "unmerged",
            Event::IdentityCampaignAssigned(_) => "campaign.assigned",
            Event::CampaignIdentityAssigned(_) => "identity.assigned",
            Event::TtpTagged(_) => "tagged",
            Event::CanaryPlaced(_) | Event::CanaryTriggered(_) | Event::CanaryRevoked(_) => "",
        }
    }

    /// The payload, always a JSON object.
    pub fn payload(&self) -> Value {
        let map = match self {
            Event::WorkerHealth(h) => {
                // Base keys win over `extra` so a misbehaving callback cannot forge them.
                let mut map = h.extra.clone();
                map.insert("worker".to_owned(), Value::from(h.worker.clone()));
                map.insert("ts".to_owned(), Value::from(h.ts));
                map
            }
            Event::WorkerControl { control, .. } => to_object(control),
            Event::BusHealth(b) => to_object(b),
            Event::Log(l) => to_object(l),
            Event::BatchCommitted(b) => with_key(to_object(b), "component", "ingester".into()),
            Event::WebhookSubscriptionsChanged => Map::new(),
            Event::DeckyState { state, .. } => with_key(to_object(state), "source", "fleet".into()),
            Event::DeckyMutation(m) => to_object(m),
            Event::OrchestratorTraffic { activity, .. } => {
                with_key(to_object(activity), "kind", "traffic".into())
            }
            Event::OrchestratorFile { activity, .. } => {
                with_key(to_object(activity), "kind", "file".into())
            }
            Event::OrchestratorEmail(e) => with_key(to_object(e), "kind", "email".into()),
            Event::AttackerObserved(p) => to_object(p),
            Event::AttackerScored(p) => to_object(p),
            Event::AttackerFingerprinted(p) => {
                let mut map = p.fields.clone();
                map.insert("attacker_ip".to_owned(), p.attacker_ip.clone().into());
                map
            }
            Event::IntelEnriched(p) => to_object(p),
            Event::CredentialCaptured(p) => to_object(p),
            Event::EmailReceived(p) => to_object(p),
            Event::SmtpProbePending(p) => to_object(p),
            Event::CredentialReuseDetected(p) => to_object(p),
            Event::IdentityFormed(p) => to_object(p),
            Event::IdentityObservationLinked(p) => to_object(p),
            Event::IdentityMerged(p) | Event::CampaignMerged(p) => to_object(p),
            Event::IdentityUnmerged(p) | Event::CampaignUnmerged(p) => to_object(p),
            Event::IdentityCampaignAssigned(p) => to_object(p),
            Event::CampaignIdentityAssigned(p) => to_object(p),
            Event::CampaignFormed(p) => to_object(p),
            Event::TtpTagged(p) => to_object(p),
            Event::CanaryPlaced(p) => to_object(p),
            Event::CanaryTriggered(p) => to_object(p),
            Event::CanaryRevoked(p) => to_object(p),
        };
        Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(pattern: &str, topic: &str) -> bool {
        Pattern::parse(pattern)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
            .matches(topic)
    }

    #[test]
    fn wildcard_table_rows() {
        assert!(m("topology.*.mutation.*", "topology.abc.mutation.applied"));
        assert!(m("topology.>", "topology.abc.status"));
        assert!(!m("topology.>", "topology"));
        assert!(!m("topology.*", "topology.abc.mutation.applied"));
        assert!(!m("decky.*.state", "decky.state"));
        assert!(m("decky.*.state", "decky.local:d1.state"));
        assert!(!m("a.b.c", "a.b"));
        assert!(!m("a.b", "a.b.c"));
        assert!(m("system.*.health", "system.bus.health"));
        assert!(m(">", "a"));
        assert!(m(">", "system.bus.health"));
        assert!(m(">", "a.b.c.d.e"));
    }

    #[test]
    fn literal_and_edge_matching() {
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "a.c"));
        assert!(!m("sys*.bus.health", "system.bus.health"));
        assert!(!m("*", "a.b"));
        assert!(m("*", "a"));
        assert!(!m("a.*", "a."));
        assert!(!m(">", ""));
        assert!(!m("a.>", "a..b"));
        assert!(m("a.*.>", "a.b.c"));
        assert!(!m("a.*.>", "a.b"));
    }

    #[test]
    fn pattern_rejections_name_the_problem() {
        assert_eq!(
            Pattern::parse("a.>.b"),
            Err(TopicError::TokensAfterTail("a.>.b".into()))
        );
        assert_eq!(Pattern::parse(""), Err(TopicError::Empty));
        assert_eq!(
            Pattern::parse("a..b"),
            Err(TopicError::EmptyToken("a..b".into()))
        );
        assert!(matches!(
            Pattern::parse("a.b c"),
            Err(TopicError::InvalidToken { ref token, .. }) if token == "b c"
        ));
        assert_eq!(
            Pattern::parse("a.>").map(|p| p.as_str().to_owned()),
            Ok("a.>".into())
        );
    }

    #[test]
    fn validate_topic_rules() {
        assert!(validate_topic("decky.local:d-1_x.state").is_ok());
        assert_eq!(validate_topic(""), Err(TopicError::Empty));
        assert!(matches!(
            validate_topic("a.*.b"),
            Err(TopicError::WildcardInTopic { ref token, .. }) if token == "*"
        ));
        assert!(matches!(
            validate_topic("a.>"),
            Err(TopicError::WildcardInTopic { ref token, .. }) if token == ">"
        ));
        assert!(matches!(
            validate_topic("a..b"),
            Err(TopicError::EmptyToken(_))
        ));
        assert!(matches!(
            validate_topic("a."),
            Err(TopicError::EmptyToken(_))
        ));
        assert!(matches!(
            validate_topic("a.b*c"),
            Err(TopicError::InvalidToken { ref token, .. }) if token == "b*c"
        ));
        assert!(validate_topic("a.b c").is_err());
        assert!(validate_topic("a.b\tc").is_err());
    }

    #[test]
    fn builders_produce_spec_topics() {
        use build::*;
        assert_eq!(
            topology_mutation("abc123", "applied").as_deref(),
            Ok("topology.abc123.mutation.applied")
        );
        assert_eq!(topology_status("t-1").as_deref(), Ok("topology.t-1.status"));
        assert_eq!(decky_state("d-42").as_deref(), Ok("decky.d-42.state"));
        assert_eq!(system("bus.health").as_deref(), Ok("system.bus.health"));
        assert_eq!(
            system_health("sniffer").as_deref(),
            Ok("system.sniffer.health")
        );
        assert_eq!(
            system_control("mutator").as_deref(),
            Ok("system.mutator.control")
        );
        assert_eq!(
            attacker("session.started").as_deref(),
            Ok("attacker.session.started")
        );
        assert_eq!(
            identity("observation.linked").as_deref(),
            Ok("identity.observation.linked")
        );
        assert_eq!(
            attribution("profile.state_changed").as_deref(),
            Ok("attribution.profile.state_changed")
        );
        assert_eq!(
            ttp_rule_fired("T1110").as_deref(),
            Ok("ttp.rule.fired.T1110")
        );
        assert_eq!(
            orchestrator("traffic", "local:d1").as_deref(),
            Ok("orchestrator.traffic.local:d1")
        );
        assert_eq!(
            canary("tok1", "placed").as_deref(),
            Ok("canary.tok1.placed")
        );
        assert_eq!(
            attacker_observation("motor.shell_mastery.tab_completion").as_deref(),
            Ok("attacker.observation.motor.shell_mastery.tab_completion")
        );
    }

    type IdBuilder = fn(&str) -> Result<String, TopicError>;

    #[test]
    fn id_builders_reject_bad_segments() {
        let builders: [(&str, IdBuilder); 9] = [
            ("topology_status", build::topology_status),
            ("topology_mutation", |s| {
                build::topology_mutation(s, "applied")
            }),
            ("decky_state", build::decky_state),
            ("system_health", build::system_health),
            ("system_control", build::system_control),
            ("ttp_rule_fired", build::ttp_rule_fired),
            ("canary", |s| build::canary(s, "placed")),
            ("orchestrator dst", |s| build::orchestrator("traffic", s)),
            ("orchestrator kind", |s| build::orchestrator(s, "d1")),
        ];
        for (name, b) in builders {
            for bad in [
                "",
                "has.dot",
                "has*wildcard",
                "has>wild",
                "with space",
                "with\ttab",
            ] {
                match b(bad) {
                    Err(TopicError::InvalidToken { token, .. }) => assert_eq!(token, bad),
                    other => panic!("{name}({bad:?}) gave {other:?}"),
                }
            }
        }
        assert!(build::ttp_rule_fired("T1110.001").is_err());
    }

    #[test]
    fn family_builders_reject_only_empty_leaf() {
        type Family = fn(&str) -> Result<String, TopicError>;
        let families: [Family; 9] = [
            build::system,
            build::attacker,
            build::identity,
            build::campaign,
            build::credential,
            build::attribution,
            build::smtp,
            build::email,
            build::ttp,
        ];
        for f in families {
            assert!(matches!(f(""), Err(TopicError::EmptyLeaf(_))));
            assert!(f("a.b").is_ok());
        }
        assert!(build::attacker_observation("").is_err());
        assert!(build::decky("d1", "").is_err());
    }

    #[test]
    fn event_topics_kinds_and_payloads() {
        let ev = Event::WorkerHealth(WorkerHealth {
            worker: "ingester".into(),
            ts: 12.5,
            extra: serde_json::from_value(json!({"lag": 3, "worker": "forged"})).unwrap(),
        });
        assert_eq!(ev.topic().unwrap(), "system.ingester.health");
        assert_eq!(ev.kind(), "health");
        assert_eq!(
            ev.payload(),
            json!({"worker": "ingester", "ts": 12.5, "lag": 3})
        );

        let ev = Event::WorkerControl {
            worker: "clusterer".into(),
            control: WorkerControl {
                action: ControlAction::Stop,
                requested_by: "admin".into(),
                ts: 1.0,
            },
        };
        assert_eq!(ev.topic().unwrap(), "system.clusterer.control");
        assert_eq!(
            ev.payload(),
            json!({"action": "stop", "requested_by": "admin", "ts": 1.0})
        );

        let ev = Event::DeckyState {
            decky_id: "local:d1".into(),
            state: DeckyState {
                host_uuid: "local".into(),
                name: "d1".into(),
                state: "running".into(),
                transition: DeckyTransition::Inserted,
                previous_state: None,
            },
        };
        assert_eq!(ev.topic().unwrap(), "decky.local:d1.state");
        assert_eq!(ev.kind(), "state");
        assert_eq!(
            ev.payload(),
            json!({"host_uuid": "local", "name": "d1", "state": "running",
                   "transition": "inserted", "source": "fleet"})
        );

        let ev = Event::BatchCommitted(BatchCommitted {
            flushed: 5,
            position: 100,
        });
        assert_eq!(ev.topic().unwrap(), "system.log");
        assert_eq!(ev.kind(), "batch_committed");
        assert_eq!(
            ev.payload(),
            json!({"component": "ingester", "flushed": 5, "position": 100})
        );

        assert_eq!(Event::WebhookSubscriptionsChanged.payload(), json!({}));
        assert_eq!(
            Event::WebhookSubscriptionsChanged.topic().unwrap(),
            "system.webhook.subscriptions_changed"
        );

        let ev = Event::AttackerFingerprinted(AttackerFingerprinted {
            probe: "jarm".into(),
            attacker_ip: "1.2.3.4".into(),
            fields: serde_json::from_value(json!({"port": 443, "jarm_hash": "abc"})).unwrap(),
        });
        assert_eq!(ev.kind(), "jarm");
        assert_eq!(
            ev.payload(),
            json!({"attacker_ip": "1.2.3.4", "port": 443, "jarm_hash": "abc"})
        );

        let ev = Event::CampaignIdentityAssigned(CampaignAssigned {
            identity_uuid: "i".into(),
            campaign_uuid: "c".into(),
            prior_campaign_uuid: None,
        });
        assert_eq!(ev.topic().unwrap(), "campaign.identity.assigned");
        assert_eq!(ev.kind(), "identity.assigned");
        assert_eq!(ev.payload()["prior_campaign_uuid"], Value::Null);

        let ev = Event::CanaryRevoked(CanaryRevoked::Auto {
            token_id: "tok".into(),
            trigger_id: "t1".into(),
            reason: "fingerprint_collected".into(),
        });
        assert_eq!(ev.topic().unwrap(), "canary.tok.revoked");
        assert_eq!(ev.kind(), "");
        assert_eq!(
            ev.payload(),
            json!({"token_id": "tok", "trigger_id": "t1", "reason": "fingerprint_collected"})
        );

        let ev = Event::OrchestratorFile {
            dst: "local:d2".into(),
            activity: OrchestratorActivity {
                protocol: "ssh".into(),
                action: "drop".into(),
                src_decky_uuid: None,
                dst_decky_uuid: "local:d2".into(),
                success: true,
                payload: Map::new(),
                ts: "2026-01-01T00:00:00Z".into(),
            },
        };
        assert_eq!(ev.topic().unwrap(), "orchestrator.file.local:d2");
        assert_eq!(ev.payload()["kind"], "file");
        assert_eq!(ev.payload()["src_decky_uuid"], Value::Null);

        let bad = Event::DeckyState {
            decky_id: "bad id".into(),
            state: DeckyState {
                host_uuid: "local".into(),
                name: "bad id".into(),
                state: "running".into(),
                transition: DeckyTransition::Deleted,
                previous_state: None,
            },
        };
        assert!(bad.topic().is_err());
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn topic_tokens() -> impl Strategy<Value = Vec<String>> {
            prop::collection::vec("[a-z0-9:_-]{1,6}", 1..6)
        }

        proptest! {
            #[test]
            fn topic_matches_itself_and_star_substitutions(
                tokens in topic_tokens(),
                mask in prop::collection::vec(any::<bool>(), 6),
            ) {
                let topic = tokens.join(".");
                prop_assert!(validate_topic(&topic).is_ok());
                prop_assert!(Pattern::parse(&topic).unwrap().matches(&topic));
                let starred: Vec<&str> = tokens
                    .iter()
                    .zip(&mask)
                    .map(|(t, &star)| if star { "*" } else { t.as_str() })
                    .collect();
                prop_assert!(Pattern::parse(&starred.join(".")).unwrap().matches(&topic));
                let longer = format!("{topic}.extra");
                prop_assert!(!Pattern::parse(&topic).unwrap().matches(&longer));
                prop_assert!(!Pattern::parse(&longer).unwrap().matches(&topic));
            }

            #[test]
            fn tail_needs_at_least_one_more_token(tokens in topic_tokens(), cut in 0usize..6) {
                let topic = tokens.join(".");
                let cut = cut.min(tokens.len());
                let mut pat: Vec<&str> = tokens[..cut].iter().map(String::as_str).collect();
                pat.push(">");
                let pattern = Pattern::parse(&pat.join(".")).unwrap();
                prop_assert_eq!(pattern.matches(&topic), cut < tokens.len());
            }
        }
    }
}

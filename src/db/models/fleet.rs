//! Fleet rows and insertables.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{fleet_deckies, fleet_emitted_services};

/// A stored `fleet_deckies` row. `services` and `decky_config` are JSON text, decoded on
/// demand so that one bad value never fails a whole listing.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = fleet_deckies)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct FleetDecky {
    pub host_uuid: String,
    pub name: String,
    pub services: String,
    pub decky_config: Option<String>,
    pub decky_ip: Option<String>,
    pub state: String,
    pub last_error: Option<String>,
    pub compose_hash: Option<String>,
    pub last_seen: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
}

impl FleetDecky {
    /// Services decoded from JSON; `None` when the stored text is not a JSON list of strings
    /// (consumers then treat the decky as having no services). JSON `null` is an empty list.
    pub fn services_list(&self) -> Option<Vec<String>> {
        decode_services(&self.services)
    }

    /// The full decky object, if stored and valid JSON.
    pub fn decky_config_json(&self) -> Option<serde_json::Value> {
        self.decky_config
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
    }
}

/// A `fleet_emitted_services` row: what the reconciler last emitted about a decky (§6.5).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = fleet_emitted_services)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct EmittedServices {
    pub host_uuid: String,
    pub name: String,
    /// JSON text list of service names.
    pub services: String,
    pub last_mutated: f64,
    pub emitted_at: NaiveDateTime,
}

/// Decode a JSON services list (`null` → empty; anything else not a list of strings → `None`).
pub fn decode_services(text: &str) -> Option<Vec<String>> {
    match serde_json::from_str::<serde_json::Value>(text).ok()? {
        serde_json::Value::Null => Some(Vec::new()),
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// What an upsert writes (the repository fills `updated_at` and serialises the JSON).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FleetDeckyUpsert {
    /// `None` or empty → `local`.
    pub host_uuid: Option<String>,
    pub name: String,
    pub services: Vec<String>,
    pub decky_config: Option<serde_json::Value>,
    pub decky_ip: Option<String>,
    /// One of the `fleet_deckies.state` values.
    pub state: String,
    pub last_error: Option<String>,
    pub compose_hash: Option<String>,
    /// Reconciler observation time, when the write comes from an observation.
    pub last_seen: Option<NaiveDateTime>,
}

/// Where a running decky comes from (platform spec §6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeckySource {
    /// `topology_deckies` (MazeNET).
    Topology,
    /// `fleet_deckies`.
    Fleet,
    /// `decky_shards` (SWARM).
    Shard,
}

/// One entry of the running-decky union view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunningDecky {
    /// Opaque id: topology uuid, or `<host_uuid>:<name>` for fleet and shard deckies.
    pub uuid: String,
    pub name: String,
    pub ip: Option<String>,
    /// Decoded services; empty when the stored value could not be decoded.
    pub services: Vec<String>,
    /// The stored services text when it could not be decoded (consumers must then treat the
    /// decky as having no services, never guess).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services_raw: Option<String>,
    pub source: DeckySource,
    /// Parent topology (topology deckies only; `null` otherwise).
    pub topology_id: Option<String>,
}

impl RunningDecky {
    /// Whether the decky runs `service` (false when services could not be decoded).
    pub fn has_service(&self, service: &str) -> bool {
        self.services.iter().any(|s| s == service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_decoding() {
        assert_eq!(
            decode_services(r#"["ssh","http"]"#),
            Some(vec!["ssh".into(), "http".into()])
        );
        assert_eq!(decode_services("null"), Some(vec![]));
        assert_eq!(decode_services("[]"), Some(vec![]));
        assert_eq!(decode_services("ssh"), None);
        assert_eq!(decode_services(r#"[1]"#), None);
        assert_eq!(decode_services(r#"{"a":1}"#), None);
    }
}

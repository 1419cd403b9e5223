//! Simple-mode event kinds and the stored pattern list (§5.2).

use serde::{Deserialize, Serialize};

/// A dashboard preset; each expands to fixed registry patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum SimpleEvent {
    /// `attacker.>`
    AttackerDetail,
    /// `decky.*.state`, `decky.*.traffic`
    DeckyStatus,
    /// `system.>` (also every heartbeat)
    SystemStatus,
}

impl SimpleEvent {
    /// The patterns this preset stands for, in stored order.
    pub fn patterns(self) -> &'static [&'static str] {
        match self {
            SimpleEvent::AttackerDetail => &["attacker.>"],
            SimpleEvent::DeckyStatus => &["decky.*.state", "decky.*.traffic"],
            SimpleEvent::SystemStatus => &["system.>"],
        }
    }
}

/// Stored pattern list: preset expansions first (request order), then raw patterns (request
/// order), empty strings and duplicates dropped, first occurrence kept.
pub fn merge_patterns(simple: &[SimpleEvent], raw: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let expanded = simple.iter().flat_map(|s| s.patterns().iter().copied());
    for p in expanded.chain(raw.iter().map(String::as_str)) {
        let p = p.trim();
        if !p.is_empty() && !out.iter().any(|q| q == p) {
            out.push(p.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_first_then_raw_without_duplicates() {
        let raw = vec![
            "canary.>".to_owned(),
            String::new(),
            "attacker.>".to_owned(),
            "canary.>".to_owned(),
        ];
        assert_eq!(
            merge_patterns(
                &[SimpleEvent::DeckyStatus, SimpleEvent::AttackerDetail],
                &raw
            ),
            ["decky.*.state", "decky.*.traffic", "attacker.>", "canary.>"]
        );
    }

    #[test]
    fn empty_inputs_give_an_empty_list() {
        assert!(merge_patterns(&[], &[]).is_empty());
        assert!(merge_patterns(&[], &[" ".to_owned()]).is_empty());
    }

    #[test]
    fn preset_names_are_the_dashboard_spelling() {
        let v: Vec<SimpleEvent> =
            serde_json::from_str(r#"["AttackerDetail","DeckyStatus","SystemStatus"]"#).unwrap();
        assert_eq!(merge_patterns(&v, &[]).len(), 4);
        assert!(serde_json::from_str::<SimpleEvent>(r#""Attacker""#).is_err());
    }
}

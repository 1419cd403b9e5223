//! ATT&CK tags of attacker activity (issue #19 item 4, migration 000012).

diesel::table! {
    /// One row per (ingested log line, rule that fired on it).
    ttp_tags (uuid) {
        uuid -> Text,
        /// The observation (`attackers.uuid`) the line belongs to.
        attacker_uuid -> Text,
        decky_id -> Text,
        service -> Text,
        /// ATT&CK tactic id (`TA0007`).
        tactic_id -> Text,
        /// ATT&CK technique id, parent only (`T1082`).
        technique_id -> Text,
        /// Rule of `domain::ttp` that fired.
        rule_id -> Text,
        /// `logs.id` of the tagged line.
        log_id -> BigInt,
        /// What fired the rule: the command text or the event type (≤ 512 characters).
        evidence -> Text,
        /// Time of the tagged event.
        observed_at -> Timestamp,
        /// When the tagger wrote the row.
        created_at -> Timestamp,
    }
}

//! Realism tables (realism spec §1.1, §1.3, §1.4).

diesel::table! {
    /// Planner traffic/file activity, append-only. Decky columns hold union-view ids (no FK).
    orchestrator_events (uuid) {
        uuid -> Text,
        ts -> Timestamp,
        /// `traffic` | `file`.
        kind -> Text,
        protocol -> Text,
        action -> Text,
        src_decky_uuid -> Nullable<Text>,
        dst_decky_uuid -> Text,
        success -> Bool,
        /// JSON object text.
        payload -> Text,
    }
}

diesel::table! {
    /// Per-(decky, path) memory of planted files.
    synthetic_files (uuid) {
        uuid -> Text,
        decky_uuid -> Text,
        /// At most 512 characters.
        path -> Text,
        persona -> Text,
        content_class -> Text,
        created_at -> Timestamp,
        last_modified -> Timestamp,
        edit_count -> Integer,
        /// Lowercase hex SHA-256 of the full body.
        content_hash -> Text,
        /// Body clipped to 65 536 characters.
        last_body -> Text,
        /// Whether `last_body` was clipped.
        truncated -> Bool,
    }
}

diesel::table! {
    /// Operator knobs, key/value (`weights`, `llm`).
    realism_config (uuid) {
        uuid -> Text,
        key -> Text,
        /// JSON document text.
        value -> Text,
        updated_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(orchestrator_events, synthetic_files, realism_config);

//! Canary tables (canary.md §4).

diesel::table! {
    /// Operator uploads, one row per distinct sha256.
    canary_blobs (uuid) {
        uuid -> Text,
        sha256 -> Text,
        filename -> Text,
        content_type -> Text,
        size_bytes -> BigInt,
        uploaded_by -> Text,
        uploaded_at -> Timestamp,
    }
}

diesel::table! {
    /// One planted artifact; never deleted.
    canary_tokens (uuid) {
        uuid -> Text,
        kind -> Text,
        decky_name -> Text,
        topology_id -> Nullable<Text>,
        blob_uuid -> Nullable<Text>,
        instrumenter -> Nullable<Text>,
        generator -> Nullable<Text>,
        placement_path -> Text,
        callback_token -> Text,
        secret_seed -> Text,
        placed_at -> Timestamp,
        last_triggered_at -> Nullable<Timestamp>,
        trigger_count -> BigInt,
        created_by -> Text,
        state -> Text,
        last_error -> Nullable<Text>,
        fingerprint_nonce -> Nullable<Text>,
        http_base -> Text,
        dns_zone -> Text,
    }
}

diesel::table! {
    /// Append-only hit log.
    canary_triggers (uuid) {
        uuid -> Text,
        token_uuid -> Text,
        occurred_at -> Timestamp,
        src_ip -> Text,
        user_agent -> Nullable<Text>,
        request_path -> Nullable<Text>,
        dns_qname -> Nullable<Text>,
        raw_headers -> Text,
        attacker_id -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(canary_blobs, canary_tokens, canary_triggers);

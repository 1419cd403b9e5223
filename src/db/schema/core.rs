//! Core tables: users, revoked_tokens (platform spec §3.1) and the `state` key/value table
//! (intake spec §5.7).

diesel::table! {
    /// Dashboard/API accounts.
    users (uuid) {
        /// UUIDv4 text.
        uuid -> Text,
        /// Unique.
        username -> Text,
        password_hash -> Text,
        /// `admin` | `viewer`.
        role -> Text,
        must_change_password -> Bool,
        /// Bulk-revocation cutoff: tokens issued before it are rejected (UTC).
        tokens_valid_from -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Revoked JWT ids; rows past `expires_at` are purged on every insert.
    revoked_tokens (jti) {
        jti -> Text,
        /// Indexed, no foreign key.
        user_uuid -> Text,
        /// The token's `exp` (UTC).
        expires_at -> Timestamp,
        revoked_at -> Timestamp,
    }
}

diesel::table! {
    /// Small JSON documents keyed by name (worker cursors, deployment state…).
    state (key) {
        key -> Text,
        /// JSON text (`JsonText`).
        value -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(users, revoked_tokens, state);

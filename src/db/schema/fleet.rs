//! Fleet tables (platform spec §6.3).

diesel::table! {
    /// DB mirror of deployed deckies, kept in step by the reconciler.
    fleet_deckies (host_uuid, name) {
        /// `local` for the mothership's own deckies.
        host_uuid -> Text,
        name -> Text,
        /// JSON text list of service names.
        services -> Text,
        /// JSON text of the full decky object, when known.
        decky_config -> Nullable<Text>,
        decky_ip -> Nullable<Text>,
        /// `pending|running|failed|torn_down|degraded|tearing_down|teardown_failed`.
        state -> Text,
        last_error -> Nullable<Text>,
        compose_hash -> Nullable<Text>,
        /// Last reconciler observation (UTC).
        last_seen -> Nullable<Timestamp>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Per decky, the service set the reconciler last emitted as a mutation (§6.5).
    fleet_emitted_services (host_uuid, name) {
        host_uuid -> Text,
        name -> Text,
        /// JSON text list of service names (sorted).
        services -> Text,
        /// State-file `last_mutated` when emitted (0 when unknown).
        last_mutated -> Double,
        emitted_at -> Timestamp,
    }
}

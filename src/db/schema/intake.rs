//! Intake tables (intake spec §5.1–§5.5) and the quarantine of unparsable lines.

diesel::table! {
    /// One row per ingested line; `id` is the profiler/consumer cursor.
    logs (id) {
        id -> BigInt,
        /// Event time (UTC); ingest time when the line's timestamp did not parse.
        timestamp -> Timestamp,
        decky -> Text,
        service -> Text,
        event_type -> Text,
        /// `Unknown` when unresolved.
        attacker_ip -> Text,
        raw_line -> Text,
        /// Compact JSON object of SD params.
        fields -> Text,
        msg -> Nullable<Text>,
        trace_id -> Nullable<Text>,
        span_id -> Nullable<Text>,
        /// Peer CN of the TLS listener, when received that way.
        source_worker -> Nullable<Text>,
        /// sha256 of `raw_line` (unique: replays do not double rows).
        line_hash -> Text,
        /// The received bytes when `raw_line` is not exactly them (invalid UTF-8 or NUL,
        /// replaced by U+FFFD in the text columns); NULL otherwise.
        raw_bytes -> Nullable<Binary>,
    }
}

diesel::table! {
    /// Fingerprints, artifacts and IP leaks extracted from logs.
    bounty (id) {
        id -> BigInt,
        timestamp -> Timestamp,
        decky -> Text,
        service -> Text,
        attacker_ip -> Text,
        bounty_type -> Text,
        /// Compact JSON, keys in spec order.
        payload -> Text,
        /// sha256 of `payload`; unique with (bounty_type, attacker_ip).
        payload_hash -> Text,
    }
}

diesel::table! {
    /// One row per source IP (an observation): the profiler-computed columns. Diesel tables
    /// are limited to 16 columns here, so the same SQL table is also declared as
    /// [`attacker_ext`] (identity link, full decky list, GeoIP/ASN/RPKI/PTR). The prober
    /// rotation and sniffer IPv6-leak columns exist in SQL with defaults and no producer yet.
    attackers (uuid) {
        uuid -> Text,
        ip -> Text,
        first_seen -> Timestamp,
        last_seen -> Timestamp,
        event_count -> BigInt,
        service_count -> BigInt,
        decky_count -> BigInt,
        services -> Text,
        deckies -> Text,
        traversal_path -> Nullable<Text>,
        is_traversal -> Bool,
        bounty_count -> BigInt,
        credential_count -> BigInt,
        fingerprints -> Text,
        commands -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// The other columns of `attackers` (same SQL table, see [`attackers`]).
    #[sql_name = "attackers"]
    attacker_ext (uuid) {
        uuid -> Text,
        ip -> Text,
        /// Set by the clusterer only.
        identity_id -> Nullable<Text>,
        /// Every decky in first-contact order incl. `decnet-*` (keeps merges exact).
        all_deckies -> Text,
        country_code -> Nullable<Text>,
        country_source -> Nullable<Text>,
        asn -> Nullable<BigInt>,
        as_name -> Nullable<Text>,
        bgp_prefix -> Nullable<Text>,
        asn_source -> Nullable<Text>,
        rpki_status -> Nullable<Text>,
        rpki_source -> Nullable<Text>,
        ptr_record -> Nullable<Text>,
    }
}

diesel::table! {
    /// Captured credentials, deduplicated per (ip, decky, service, kind, sha, principal).
    credentials (id) {
        id -> BigInt,
        attacker_ip -> Text,
        attacker_uuid -> Nullable<Text>,
        decky_name -> Text,
        service -> Text,
        principal -> Nullable<Text>,
        principal_key -> Text,
        secret_kind -> Text,
        secret_sha256 -> Text,
        secret_b64 -> Nullable<Text>,
        secret_printable -> Nullable<Text>,
        outcome -> Nullable<Text>,
        fields -> Text,
        first_seen -> Timestamp,
        last_seen -> Timestamp,
        attempt_count -> BigInt,
        /// Write sequence (see the `credential_seq` migration).
        touched_seq -> BigInt,
    }
}

diesel::table! {
    /// Credential-reuse findings.
    credential_reuse (id) {
        id -> Text,
        secret_sha256 -> Text,
        secret_kind -> Text,
        principal -> Nullable<Text>,
        principal_key -> Text,
        attacker_uuids -> Text,
        attacker_ips -> Text,
        deckies -> Text,
        services -> Text,
        target_count -> BigInt,
        attempt_count -> BigInt,
        confidence -> Double,
        first_seen -> Timestamp,
        last_seen -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Lines that did not parse, with the reason.
    ingest_quarantine (id) {
        id -> BigInt,
        received_at -> Timestamp,
        /// `file:<path>`, `tcp:<peer>`, `tls:<cn>`, `cli:<path>`.
        source -> Text,
        reason_code -> Text,
        reason -> Text,
        raw_line -> Text,
        line_hash -> Text,
        /// The received bytes when `raw_line` is not exactly them; NULL otherwise.
        raw_bytes -> Nullable<Binary>,
    }
}

diesel::joinable!(credentials -> attackers (attacker_uuid));
diesel::allow_tables_to_appear_in_same_query!(
    logs,
    bounty,
    attackers,
    attacker_ext,
    credentials,
    credential_reuse,
    ingest_quarantine
);
